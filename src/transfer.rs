//! The transfer workers: `--parallel` threads, each with its own FTP session
//! kept open between jobs, fed from one job channel by the main loop and
//! reporting every outcome back to it. Workers hold no sync state and make no
//! retry decisions beyond one: a job whose session turns out to be dead (the
//! server closed an idle connection) is tried once more on a fresh session.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::event::{Done, Event, Job, Outcome};
use crate::ftp::{Connector, Failure, Kind, Session};
use crate::localfs::Tree;
use crate::relpath::RelPath;

pub struct Pool {
    jobs: Option<Sender<Job>>,
    /// Jobs handed out that no worker has taken yet.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
    abort: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl Pool {
    /// Starts `n` workers; `first` is a session already logged in (the
    /// start-up check's), handed to the first worker. With `busy` (work is
    /// known to be coming: a first sync, a queue left over), the others log
    /// in at once.
    pub fn start(
        n: usize,
        connector: &Connector,
        watch_dir: PathBuf,
        events: &Sender<Event>,
        mut first: Option<Session>,
        busy: bool,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let abort = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        // The server answered a moment ago: the other workers log in now, while
        // the first one starts, instead of when their first job comes (a
        // login can cost the server milliseconds of password hashing).
        let prewarm = busy && first.is_some();
        for i in 0..n {
            let worker = Worker {
                connector: connector.clone(),
                prewarm,
                waiting: Arc::clone(&waiting),
                session: first.take(),
                tree: Tree::new(watch_dir.clone()),
                abort: Arc::clone(&abort),
                stopping: Arc::clone(&stopping),
            };
            let (rx, events) = (Arc::clone(&rx), events.clone());
            let handle =
                std::thread::Builder::new().name(format!("transfer-{i}")).spawn(move || worker.run(&rx, &events))?;
            handles.push(handle);
        }
        Ok(Self { jobs: Some(tx), waiting, handles, abort, stopping })
    }

    /// A pool with no workers, left behind once the real one is joined.
    pub fn empty() -> Self {
        Self {
            jobs: None,
            waiting: Arc::default(),
            handles: Vec::new(),
            abort: Arc::new(AtomicBool::new(false)),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Hands a job to the next idle worker. The caller sends no more jobs
    /// than there are idle workers.
    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            self.waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Workers only stop after `close`.
            let _ = tx.send(job);
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
        self.jobs = None;
    }

    pub fn size(&self) -> usize {
        self.handles.len()
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
    /// Log in before the first job (see [`Pool::start`]).
    prewarm: bool,
    /// See [`Pool::waiting`]: the sessions' hint that another upload follows.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    session: Option<Session>,
    /// The watch directory: every file is opened through it.
    tree: Tree,
    abort: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self, jobs: &Mutex<Receiver<Job>>, events: &Sender<Event>) {
        if self.prewarm && self.session.is_none() {
            // A failure here is not reported: the first job connects again
            // and reports what it finds.
            match self.connector.connect() {
                Ok(s) => self.session = Some(s),
                Err(f) => log::debug!("connecting ahead of the first job: {f}"),
            }
        }
        loop {
            let job = {
                let rx = jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                rx.recv()
            };
            let Ok(job) = job else { break };
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
            let created_dirs = self.session.as_mut().map(Session::take_created).unwrap_or_default();
            let outcome = Outcome { job, result, elapsed: started.elapsed(), created_dirs };
            if events.send(Event::Done(outcome)).is_err() {
                break;
            }
        }
        if let Some(s) = self.session.take() {
            s.quit();
        }
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
        let mut session = match self.session.take() {
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
