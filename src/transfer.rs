//! The transfer workers: `--parallel` threads, each with its own FTP session
//! kept open between jobs, fed from one job queue by the main loop (a job
//! goes to an idle worker that is logged in already, if there is one: a
//! new login is a new connection and costs the server a password check) and
//! reporting every outcome back to it. Workers hold no sync state and make no
//! retry decisions beyond one: a job whose session turns out to be dead (the
//! server closed an idle connection) is tried once more on a fresh session.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::event::{Done, Event, Job, Outcome};
use crate::ftp::{Connector, Failure, Kind, Session};
use crate::localfs::Tree;
use crate::relpath::RelPath;

/// The jobs handed out and the idle workers, split by whether they hold a
/// session: [`Pool::submit`] wakes a logged-in one first.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    /// Idle workers with a session wait here.
    warm: Condvar,
    /// Idle workers without one.
    cold: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Workers waiting on `warm`, and how many of them were woken and have
    /// not taken the lock yet.
    idle_warm: usize,
    waking_warm: usize,
    /// Workers waiting on `cold` (none: a push wakes nobody, which saves the
    /// loop a system call per job while every worker is busy).
    idle_cold: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) {
        let mut st = self.lock();
        st.jobs.push_back(job);
        if st.idle_warm > st.waking_warm {
            st.waking_warm += 1;
            self.warm.notify_one();
        } else if st.idle_cold > 0 {
            self.cold.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.warm.notify_all();
        self.cold.notify_all();
    }

    /// The next job, waiting for one; `None` once closed and empty.
    fn take(&self, logged_in: bool) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                return Some(job);
            }
            if st.closed {
                return None;
            }
            if logged_in {
                st.idle_warm += 1;
                st = self.warm.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle_warm -= 1;
                st.waking_warm = st.waking_warm.saturating_sub(1);
            } else {
                st.idle_cold += 1;
                st = self.cold.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle_cold -= 1;
            }
        }
    }
}

pub struct Pool {
    /// `None` once closed.
    jobs: Option<Arc<Queue>>,
    /// Jobs handed out that no worker has taken yet.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
    abort: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    /// Sessions logged in now (for `--metrics-addr`).
    connected: Arc<std::sync::atomic::AtomicUsize>,
    /// A session logged in by someone else (see [`Pool::lend`]).
    spare: Spare,
}

/// A logged-in session waiting for the first worker without one.
type Spare = Arc<Mutex<Option<Session>>>;

impl Pool {
    /// Starts `n` workers; `first` is a session already logged in (the
    /// start-up check's), handed to the first worker, which gets the first
    /// job. The others log in when a job comes that no logged-in worker is
    /// free for.
    pub fn start(
        n: usize,
        connector: &Connector,
        watch_dir: PathBuf,
        events: &Sender<Event>,
        mut first: Option<Session>,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::default());
        let abort = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let spare = Spare::default();
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let worker = Worker {
                connector: connector.clone(),
                waiting: Arc::clone(&waiting),
                session: first.take(),
                tree: Tree::new(watch_dir.clone()),
                abort: Arc::clone(&abort),
                stopping: Arc::clone(&stopping),
                connected: Arc::clone(&connected),
                spare: Arc::clone(&spare),
                counted: false,
            };
            let (queue, events) = (Arc::clone(&queue), events.clone());
            let handle =
                std::thread::Builder::new().name(format!("transfer-{i}")).spawn(move || worker.run(&queue, &events))?;
            handles.push(handle);
        }
        Ok(Self { jobs: Some(queue), waiting, handles, abort, stopping, connected, spare })
    }

    /// A pool with no workers, left behind once the real one is joined.
    pub fn empty() -> Self {
        Self {
            jobs: None,
            waiting: Arc::default(),
            handles: Vec::new(),
            abort: Arc::new(AtomicBool::new(false)),
            stopping: Arc::new(AtomicBool::new(false)),
            connected: Arc::default(),
            spare: Spare::default(),
        }
    }

    /// Gives a session logged in elsewhere (the deferred pre-flight login of
    /// `--once`) to the next worker that needs one, instead of a login of
    /// its own.
    pub fn lend(&self, session: Session) {
        *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(session);
    }

    /// Hands a job to the next idle worker. The caller sends no more jobs
    /// than there are idle workers.
    pub fn submit(&self, job: Job) {
        if let Some(queue) = &self.jobs {
            self.waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            queue.push(job);
        }
    }

    /// Makes running uploads stop at their next read; nothing half-written is
    /// ever published under a final name.
    /// Jobs handed out but not started yet come back unstarted (as
    /// [`Kind::Aborted`]); running ones go on.
    pub fn stop_taking(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn abort(&self) {
        self.abort.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes the job channel: each worker finishes its job, says goodbye to
    /// the server and sends [`Event::WorkerExit`].
    pub fn close(&mut self) {
        if let Some(queue) = self.jobs.take() {
            queue.close();
        }
    }

    pub fn size(&self) -> usize {
        self.handles.len()
    }

    /// The count of sessions logged in now, kept by the workers.
    pub fn connected(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        Arc::clone(&self.connected)
    }

    /// Joins the workers that have exited (all of them, once every
    /// `WorkerExit` was seen).
    pub fn join(self) {
        for h in self.handles {
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

/// The file's stamp if its bytes hash to `known` (read here, in a worker,
/// so that a big file never stalls the main loop). Opened like an upload:
/// no link followed, never a FIFO.
fn same_content(tree: &Tree, rel: &RelPath, known: &[u8; 32]) -> Option<crate::localfs::Stamp> {
    let rel = std::path::Path::new(rel.as_str());
    let (file, before) = tree.open_file(rel).ok()?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file).ok()?;
    let after = tree.lstat(rel).ok()??;
    (hasher.finalize().as_bytes() == known && before == after).then_some(before.stamp())
}

struct Worker {
    connector: Connector,
    /// See [`Pool::waiting`]: the sessions' hint that another upload follows.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    session: Option<Session>,
    /// The watch directory: every file is opened through it.
    tree: Tree,
    abort: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    connected: Arc<std::sync::atomic::AtomicUsize>,
    /// See [`Pool::lend`].
    spare: Spare,
    /// Whether this worker's session is in `connected`.
    counted: bool,
}

impl Worker {
    /// Keeps `connected` in step with whether this worker holds a session.
    fn count_session(&mut self) {
        let has = self.session.is_some();
        if has != self.counted {
            if has {
                self.connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                self.connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.counted = has;
        }
    }

    fn run(mut self, jobs: &Queue, events: &Sender<Event>) {
        self.count_session();
        while let Some(job) = jobs.take(self.session.is_some()) {
            self.waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let started = Instant::now();
            let result = if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                Err(Failure::new(Kind::Aborted, "not started: shutting down"))
            } else {
                // A panic in a library must not lose the job or the worker.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute(&job))) {
                    Ok(result) => result,
                    Err(_) => {
                        self.session = None;
                        Err(Failure::new(Kind::Connection, "internal error in the FTP client; reconnecting"))
                    }
                }
            };
            self.count_session();
            let created_dirs = self.session.as_mut().map(Session::take_created).unwrap_or_default();
            let outcome = Outcome { job, result, elapsed: started.elapsed(), created_dirs };
            if events.send(Event::Done(outcome)).is_err() {
                break;
            }
        }
        if let Some(s) = self.session.take() {
            s.quit();
        }
        self.count_session();
        let _ = events.send(Event::WorkerExit);
    }

    fn execute(&mut self, job: &Job) -> Result<Done, Failure> {
        if let Job::Upload { rel, known: Some(known), .. } = job
            && let Some(stamp) = same_content(&self.tree, rel, known)
        {
            return Ok(Done::Unchanged(stamp));
        }
        let mut reused = self.session.is_some();
        let mut data_retries = 0;
        let mut job = job.clone();
        loop {
            let result = self.attempt(&job);
            // An upload that broke off continues where it stopped.
            if let (Job::Upload { resume, .. }, Err(Failure { partial: Some(stamp), .. })) = (&mut job, &result) {
                *resume = Some(*stamp);
            }
            match result {
                // A kept-open session may have been closed by the server while
                // idle: that is no reason to report a failure yet.
                Err(f) if reused && f.kind == Kind::Connection => {
                    log::debug!("session lost ({f}); reconnecting");
                    reused = false;
                }
                // A data connection that could not be opened (425, e.g. two
                // sessions picked the same passive port) is retried at once.
                Err(f) if f.kind == Kind::Data && data_retries < 3 => {
                    log::debug!("{f}; retrying at once");
                    data_retries += 1;
                }
                Err(mut f) if f.kind == Kind::Data => {
                    f.kind = Kind::Transient;
                    return Err(f);
                }
                other => return other,
            }
        }
    }

    fn attempt(&mut self, job: &Job) -> Result<Done, Failure> {
        let lent = || self.spare.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut session = match self.session.take().or_else(lent) {
            Some(s) => s,
            None => self.connector.connect()?,
        };
        session.expect_more_uploads(Arc::clone(&self.waiting));
        let result = match job {
            Job::Upload { rel, resume, snapshot, .. } => {
                session.upload(&self.tree, rel, &self.abort, *resume, *snapshot).map(Done::Uploaded)
            }
            Job::Delete(rel) => session.delete(rel).map(|()| Done::Ok),
            Job::Rename { from, to } => session.rename(from, to).map(|()| Done::Ok),
            Job::List(dir) => session.list(dir.as_ref()).map(Done::Listed),
            Job::RemoveTemp(rel) => session.remove_temp(rel).map(|()| Done::Ok),
            Job::RemoveAside { rel, restore } => session.remove_aside(rel, *restore).map(|()| Done::Ok),
            Job::RemoveDir(dir) => session.remove_dir(dir).map(|()| Done::Ok),
        };
        match &result {
            Err(f) if !f.session_usable() => drop(session),
            _ if session.is_broken() => drop(session),
            _ => self.session = Some(session),
        }
        result
    }
}
