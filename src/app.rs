//! Wiring and the run loop: start-up in the daemon's order, one
//! deadline-driven loop that owns all sync state, and shutdown.
//!
//! Only this loop decides anything: the watcher, the signal thread and the
//! transfer workers just send [`Event`]s. The loop sleeps in `recv_timeout`
//! until the next deadline (a cooldown ending, a retry due, the server back-off
//! ending, the periodic rescan, the shutdown grace period): no polling while
//! idle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use crate::cli::{Cli, Command, RunArgs};
use crate::config::Config;
use crate::daemon::{self, Forked, PidFile, Readiness};
use crate::debounce::Debouncer;
use crate::error::{Error, Result};
use crate::event::{Event, Job, Outcome};
use crate::ftp::{Connector, Failure, Kind, Stamp};
use crate::relpath::{BadName, EscapedPath, RelPath};
use crate::signals::{self, SignalThread};
use crate::transfer::Pool;
use crate::watcher::{Change, Watcher};
use crate::{check, logging, status};

/// A file that never goes quiet is still uploaded this often.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long running transfers may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// After the grace period, how long aborted transfers may take to stop.
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// Per-file retry back-off: first delay and cap.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(300);
/// Server back-off cap (reconnect attempts while it is down).
const SERVER_CAP: Duration = Duration::from_secs(60);
/// A failure that repeats is logged again at most this often.
const RELOG: Duration = Duration::from_secs(600);
/// `--once` gives a file this many attempts.
const ONCE_ATTEMPTS: u32 = 5;

/// The program, after argument parsing.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Status(args)) => status::run(&args),
        None => run_daemon(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Only errors from before the fork (or from `check`/`status`) get
            // here, while stderr is still the terminal.
            eprintln!("ftpmonitor: error: {e}");
            e.exit_code()
        }
    }
}

fn run_daemon(args: RunArgs) -> Result<ExitCode> {
    let cfg = Config::from_args(&args)?;
    logging::set_level(cfg.log_level);
    create_state_dir(&cfg.state_dir)?;
    if let Some(log) = &cfg.log_file {
        logging::probe(log).map_err(Error::usage)?;
    }
    let connector = Connector::new(&cfg).map_err(|f| Error::usage(f.message))?;
    preflight_login(&cfg, &connector)?;

    let mut pid_file = PidFile::acquire(&cfg.pid_file)?;
    let mut readiness = if cfg.foreground {
        std::env::set_current_dir(&cfg.state_dir).map_err(|e| {
            Error::runtime(format!(
                "cannot enter state directory {}: {e}",
                EscapedPath(&cfg.state_dir)
            ))
        })?;
        Readiness::none()
    } else {
        let hint = cfg
            .log_file
            .as_deref()
            .map_or_else(|| "the log".to_string(), |p| EscapedPath(p).to_string());
        match daemon::daemonize(&cfg.state_dir, &hint)? {
            Forked::Launcher(code) => return Ok(code),
            Forked::Daemon(r) => r,
        }
    };
    // From here on we are the daemon: errors go to the log and the launcher.
    let result = (|| -> Result<ExitCode> {
        pid_file.write_pid().map_err(|e| {
            Error::runtime(format!(
                "cannot write PID file {}: {e}",
                EscapedPath(pid_file.path())
            ))
        })?;
        logging::redirect(cfg.log_file.as_deref(), cfg.foreground).map_err(|e| {
            Error::runtime(format!(
                "cannot open log file: {e}: fix --log-file or its directory's permissions"
            ))
        })?;
        if let Some(user) = &cfg.run_as {
            let mut owned: Vec<&Path> = vec![pid_file.path(), cfg.state_dir.as_path()];
            owned.extend(cfg.log_file.as_deref());
            daemon::drop_privileges(user, &owned)?;
            info!("running as user {user}");
        }
        let mut app = App::start(cfg, args, connector)?;
        readiness.ready();
        Ok(app.run())
    })();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            error!("error: {e}");
            readiness.failed(&e.to_string());
            e.exit_code()
        }
    };
    pid_file.remove();
    Ok(code)
}

fn create_state_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
    b.create(dir).map_err(|e| {
        Error::runtime(format!(
            "cannot create state directory {}: {e}: create it, or choose another --state-dir",
            EscapedPath(dir)
        ))
    })
}

/// Logs in once while errors still reach the terminal: a refused login or a
/// TLS failure stops here; an unreachable server only warns.
fn preflight_login(cfg: &Config, connector: &Connector) -> Result<()> {
    match connector.connect() {
        Ok(session) => {
            debug!("logged in to {}", cfg.target());
            session.quit();
            Ok(())
        }
        Err(f) if f.kind == Kind::Login => Err(Error::runtime(format!(
            "login refused by {}:{} for user {:?} ({}): check --user and the password \
             (FTPMONITOR_PASSWORD, --password-file, the config file or ~/.netrc)",
            cfg.host, cfg.port, cfg.user, f.message
        ))),
        Err(f) if f.kind == Kind::Tls => Err(Error::runtime(format!(
            "TLS with {} failed: {}: check the server's certificate and host name, or give its CA with --ca-file",
            cfg.host, f.message
        ))),
        Err(f) => {
            warn!("warning: {f}; starting anyway and retrying until the server answers");
            Ok(())
        }
    }
}

/// Per-file retry bookkeeping.
#[derive(Debug, Clone)]
struct Retry {
    attempts: u32,
    last_logged: Instant,
    last_message: String,
}

/// The server's reachability, for the global back-off.
#[derive(Debug, Default)]
struct ServerState {
    down_since: Option<Instant>,
    backoff: Duration,
    resume_at: Option<Instant>,
    last_logged: Option<Instant>,
    failures: u32,
}

struct App {
    cfg: Config,
    args: RunArgs,
    _tx: Sender<Event>,
    rx: Receiver<Event>,
    watcher: Option<Watcher>,
    _signals: SignalThread,
    pool: Pool,
    idle: usize,
    exited: usize,
    debouncer: Debouncer<RelPath>,
    pending: VecDeque<Job>,
    queued: HashSet<RelPath>,
    in_flight: HashSet<RelPath>,
    dirty: HashSet<RelPath>,
    retry_at: BinaryHeap<Reverse<(Instant, u64, RelPath)>>,
    retries: HashMap<RelPath, Retry>,
    retry_seq: u64,
    server: ServerState,
    /// What this process uploaded: path -> size and mtime at upload.
    synced: HashMap<RelPath, Stamp>,
    skipped: HashSet<String>,
    failed_for_good: Vec<(RelPath, String)>,
    next_rescan: Option<Instant>,
    stop: Option<Stop>,
    uploaded_files: u64,
    uploaded_bytes: u64,
    hangup_is_stop: bool,
}

#[derive(Debug, Clone, Copy)]
struct Stop {
    grace_until: Instant,
    aborted: bool,
}

impl App {
    fn start(cfg: Config, args: RunArgs, connector: Connector) -> Result<Self> {
        let (tx, rx) = channel();
        let signals = SignalThread::start(tx.clone())
            .map_err(|e| Error::runtime(format!("cannot install signal handlers: {e}")))?;
        info!(
            "ftpmonitor {} started (pid {}): {} -> {}, cooldown {}, {} connection(s){}{}{}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            EscapedPath(&cfg.watch_dir),
            cfg.target(),
            humantime::format_duration(cfg.cooldown),
            cfg.parallel,
            if cfg.recursive {
                ""
            } else {
                ", top level only"
            },
            if cfg.delete {
                ", deletes propagated"
            } else {
                ""
            },
            if cfg.dry_run { ", dry run" } else { "" },
        );
        let watcher = if cfg.once {
            None
        } else {
            Some(
                Watcher::start(&cfg.watch_dir, cfg.recursive, tx.clone()).map_err(|e| {
                    Error::runtime(format!(
                        "cannot watch {}: {}",
                        EscapedPath(&cfg.watch_dir),
                        crate::watcher::describe_error(&e)
                    ))
                })?,
            )
        };
        let pool = Pool::start(cfg.parallel, &connector, cfg.watch_dir.clone(), &tx)
            .map_err(|e| Error::runtime(format!("cannot start transfer threads: {e}")))?;
        let hangup_is_stop = cfg.foreground && daemon::has_controlling_terminal();
        let now = Instant::now();
        let mut app = Self {
            debouncer: Debouncer::new(cfg.cooldown, MAX_WAIT),
            next_rescan: cfg.rescan_interval.map(|d| now + d),
            idle: pool.size(),
            exited: 0,
            pool,
            watcher,
            _signals: signals,
            _tx: tx,
            rx,
            pending: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashSet::new(),
            dirty: HashSet::new(),
            retry_at: BinaryHeap::new(),
            retries: HashMap::new(),
            retry_seq: 0,
            server: ServerState::default(),
            synced: HashMap::new(),
            skipped: HashSet::new(),
            failed_for_good: Vec::new(),
            stop: None,
            uploaded_files: 0,
            uploaded_bytes: 0,
            hangup_is_stop,
            args,
            cfg,
        };
        let queued = app.full_scan(false);
        if app.cfg.once {
            info!(
                "ready: syncing {} ({queued} files to check)",
                EscapedPath(&app.cfg.watch_dir)
            );
        } else {
            info!(
                "ready: watching {} ({queued} files queued)",
                EscapedPath(&app.cfg.watch_dir)
            );
        }
        Ok(app)
    }

    fn run(&mut self) -> ExitCode {
        loop {
            self.dispatch();
            if self.finished() {
                break;
            }
            let now = Instant::now();
            let event = match self.next_deadline() {
                Some(d) if d <= now => self.rx.try_recv().ok(),
                Some(d) => match self.rx.recv_timeout(d - now) {
                    Ok(ev) => Some(ev),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(ev) => Some(ev),
                    Err(_) => break,
                },
            };
            if let Some(ev) = event {
                self.handle(ev);
                // Take everything already waiting before planning again.
                while let Ok(ev) = self.rx.try_recv() {
                    self.handle(ev);
                }
            }
            self.on_deadlines(Instant::now());
        }
        self.shutdown()
    }

    fn finished(&self) -> bool {
        if let Some(stop) = self.stop {
            return self.in_flight.is_empty()
                || (stop.aborted && Instant::now() >= stop.grace_until);
        }
        self.cfg.once
            && self.pending.is_empty()
            && self.in_flight.is_empty()
            && self.retry_at.is_empty()
            && self.debouncer.is_empty()
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        if let Some(stop) = self.stop {
            return Some(stop.grace_until);
        }
        let mut d = self.debouncer.next_deadline();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d: Instant| d.min(t)));
            }
        };
        consider(self.retry_at.peek().map(|Reverse((t, _, _))| *t));
        if !self.pending.is_empty() && self.in_flight.is_empty() {
            consider(self.server.resume_at);
        }
        consider(self.next_rescan);
        d
    }

    fn on_deadlines(&mut self, now: Instant) {
        if let Some(stop) = self.stop.as_mut() {
            if !stop.aborted && now >= stop.grace_until && !self.in_flight.is_empty() {
                warn!(
                    "warning: {} transfer(s) still running after {} s; aborting them (nothing partial is published)",
                    self.in_flight.len(),
                    GRACE.as_secs()
                );
                self.pool.abort();
                stop.aborted = true;
                stop.grace_until = now + ABORT_WAIT;
            }
            return;
        }
        for rel in self.debouncer.drain_ready(now) {
            self.plan(rel);
        }
        while let Some(Reverse((t, _, _))) = self.retry_at.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((_, _, rel))) = self.retry_at.pop() {
                self.plan(rel);
            }
        }
        if let (Some(t), Some(every)) = (self.next_rescan, self.cfg.rescan_interval)
            && t <= now
        {
            self.next_rescan = Some(now + every);
            let n = self.full_scan(false);
            info!("periodic rescan: {n} new or changed files queued");
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Fs(change) if self.stop.is_none() => self.on_change(change),
            Event::Fs(_) => {}
            Event::Signal(sig) => self.on_signal(sig),
            Event::Done(outcome) => self.on_done(outcome),
            Event::WorkerExit => self.exited += 1,
        }
    }

    fn on_signal(&mut self, sig: i32) {
        match sig {
            signals::TERM | signals::INT => self.begin_stop(signals::name(sig)),
            signals::HUP if self.hangup_is_stop => self.begin_stop("SIGHUP (terminal hang-up)"),
            signals::HUP => self.reload(),
            signals::USR1 => {
                info!("SIGUSR1: queueing the whole tree");
                self.synced.clear();
                let n = self.full_scan(true);
                info!("SIGUSR1: {n} files queued");
            }
            _ => {}
        }
    }

    fn begin_stop(&mut self, why: &str) {
        if self.stop.is_some() {
            return;
        }
        info!(
            "stopping on {why}{}",
            if self.in_flight.is_empty() {
                String::new()
            } else {
                format!(", letting {} transfer(s) finish", self.in_flight.len())
            }
        );
        self.watcher = None;
        self.pending.clear();
        self.queued.clear();
        self.stop = Some(Stop {
            grace_until: Instant::now() + GRACE,
            aborted: false,
        });
    }

    fn reload(&mut self) {
        if let Err(e) = logging::reopen() {
            warn!("warning: SIGHUP: cannot reopen the log file: {e}");
        }
        let new = match Config::from_args(&self.args) {
            Ok(c) => c,
            Err(e) => {
                warn!("warning: SIGHUP: keeping the old configuration: {e}");
                return;
            }
        };
        logging::set_level(new.log_level);
        if !new.same_job(&self.cfg) {
            warn!(
                "warning: SIGHUP: the new configuration changes what is synced where (watch directory, \
                 server, login, TLS, mode or connections): restart ftpmonitor to apply that part"
            );
        }
        self.debouncer.set_cooldown(new.cooldown);
        self.cfg.cooldown = new.cooldown;
        self.cfg.log_level = new.log_level;
        self.cfg.excludes = new.excludes;
        self.cfg.delete = new.delete;
        self.cfg.max_delete = new.max_delete;
        if self.cfg.rescan_interval != new.rescan_interval {
            self.cfg.rescan_interval = new.rescan_interval;
            self.next_rescan = new.rescan_interval.map(|d| Instant::now() + d);
        }
        info!("reloaded configuration and reopened the log (SIGHUP)");
    }

    /// A path relative to the watch directory, or why it is skipped.
    fn rel(&mut self, path: &Path) -> Option<RelPath> {
        match RelPath::from_local(&self.cfg.watch_dir, path) {
            Ok(rel) => {
                if !self.cfg.recursive && rel.parent().is_some() {
                    return None;
                }
                if self.cfg.excludes.is_match(rel.as_str()) {
                    self.skip_once(rel.as_str(), "excluded");
                    return None;
                }
                Some(rel)
            }
            Err(BadName::Outside) => None,
            Err(BadName::NotUtf8(name)) => {
                self.skip_once(
                    &name,
                    "name is not valid UTF-8, which FTP commands cannot carry",
                );
                None
            }
            Err(BadName::LineBreak(name)) => {
                self.skip_once(&name, "name contains a line break, which FTP cannot carry");
                None
            }
        }
    }

    fn skip_once(&mut self, name: &str, why: &str) {
        if self.skipped.insert(format!("{name}\0{why}")) {
            info!("skipping {}: {why}", crate::relpath::Escaped(name));
        }
    }

    fn on_change(&mut self, change: Change) {
        let now = Instant::now();
        match change {
            Change::Touched(p) | Change::Removed(p) => {
                if p == self.cfg.watch_dir {
                    return;
                }
                if let Some(rel) = self.rel(&p) {
                    self.debouncer.push(rel, now);
                }
            }
            Change::DirAppeared(p) => {
                if self.rel(&p).is_some() {
                    for rel in self.walk(&p) {
                        self.debouncer.push(rel, now);
                    }
                }
            }
            Change::Renamed { from, to } => {
                let (Some(from_rel), Some(to_rel)) = (self.rel(&from), self.rel(&to)) else {
                    // Renamed from or to an excluded or unusable name.
                    for p in [from, to] {
                        if let Some(rel) = self.rel(&p) {
                            self.debouncer.push(rel, now);
                        }
                    }
                    return;
                };
                let was_synced = self.synced.contains_key(&from_rel)
                    || self.synced.keys().any(|k| k.starts_with(&from_rel));
                if self.cfg.delete && was_synced && !self.debouncer.contains(&from_rel) {
                    self.enqueue(Job::Rename {
                        from: from_rel,
                        to: to_rel,
                    });
                } else {
                    self.debouncer.push(from_rel, now);
                    if to.is_dir() {
                        for rel in self.walk(&to) {
                            self.debouncer.push(rel, now);
                        }
                    } else {
                        self.debouncer.push(to_rel, now);
                    }
                }
            }
            Change::Rescan => {
                warn!("warning: filesystem events were lost (queue overflow); rescanning the tree");
                let n = self.full_scan(false);
                info!("rescan: {n} new or changed files queued");
            }
            Change::Error(msg) => warn!("warning: {msg}"),
        }
    }

    /// Regular files below `dir` (or `dir` itself), skipping and logging what
    /// cannot be synced. Symlinks are never followed.
    fn walk(&mut self, dir: &Path) -> Vec<RelPath> {
        let max_depth = if self.cfg.recursive { usize::MAX } else { 1 };
        let root = self.cfg.watch_dir.clone();
        let depth_here = dir
            .strip_prefix(&root)
            .map_or(0, |r| r.components().count());
        let mut out = Vec::new();
        let excludes = self.cfg.excludes.clone();
        let walker = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .max_depth(max_depth.saturating_sub(depth_here))
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || !RelPath::from_local(&root, e.path())
                        .is_ok_and(|r| excludes.is_match(r.as_str()))
            });
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let name = e
                        .path()
                        .map(|p| EscapedPath(p).to_string())
                        .unwrap_or_default();
                    self.skip_once(
                        &name,
                        &format!(
                            "cannot read: {}",
                            e.io_error()
                                .map_or_else(|| e.to_string(), ToString::to_string)
                        ),
                    );
                    continue;
                }
            };
            let ft = entry.file_type();
            if ft.is_dir() {
                continue;
            }
            let Some(rel) = self.rel(entry.path()) else {
                continue;
            };
            if ft.is_file() {
                out.push(rel);
            } else if ft.is_symlink() {
                self.skip_once(rel.as_str(), "symbolic link (never followed)");
            } else {
                self.skip_once(rel.as_str(), "not a regular file");
            }
        }
        out
    }

    /// Walks the whole tree and queues what this process has not uploaded in
    /// its current form. Returns how many files were queued.
    fn full_scan(&mut self, everything: bool) -> usize {
        let root = self.cfg.watch_dir.clone();
        let mut n = 0;
        for rel in self.walk(&root) {
            if !everything
                && let Some(stamp) = self.synced.get(&rel)
                && std::fs::symlink_metadata(rel.to_local(&root))
                    .is_ok_and(|m| Stamp::of(&m) == *stamp)
            {
                continue;
            }
            if self.debouncer.contains(&rel) {
                continue;
            }
            self.enqueue(Job::Upload(rel));
            n += 1;
        }
        n
    }

    /// Decides what a quiet path needs.
    fn plan(&mut self, rel: RelPath) {
        let local = rel.to_local(&self.cfg.watch_dir);
        match std::fs::symlink_metadata(&local) {
            Ok(m) if m.is_file() => {
                if self.synced.get(&rel) == Some(&Stamp::of(&m)) && !self.retries.contains_key(&rel)
                {
                    debug!("{rel} is unchanged since its upload");
                    return;
                }
                self.enqueue(Job::Upload(rel));
            }
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                self.skip_once(rel.as_str(), "symbolic link (never followed)")
            }
            Ok(_) => self.skip_once(rel.as_str(), "not a regular file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.retries.remove(&rel);
                if !self.cfg.watch_dir.is_dir() {
                    warn!(
                        "warning: the watch directory {} is gone: nothing is deleted on the server",
                        EscapedPath(&self.cfg.watch_dir)
                    );
                    return;
                }
                if self.cfg.delete && self.synced.contains_key(&rel) {
                    self.enqueue(Job::Delete(rel));
                }
            }
            Err(e) => self.skip_once(rel.as_str(), &format!("cannot read: {e}")),
        }
    }

    fn enqueue(&mut self, job: Job) {
        let path = job.path().clone();
        if self.in_flight.contains(&path) {
            self.dirty.insert(path);
            return;
        }
        if !self.queued.insert(path) {
            return;
        }
        if self.cfg.dry_run {
            self.queued.remove(job.path());
            match &job {
                Job::Upload(p) => info!("dry run: would upload {p}"),
                Job::Delete(p) => info!("dry run: would delete {p}"),
                Job::Rename { from, to } => info!("dry run: would rename {from} to {to}"),
            }
            return;
        }
        self.pending.push_back(job);
    }

    fn dispatch(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let now = Instant::now();
        if self.server.down_since.is_some() {
            // While the server is down one job at a time probes it.
            if !self.in_flight.is_empty() || self.server.resume_at.is_some_and(|t| t > now) {
                return;
            }
        }
        while self.idle > 0 {
            let Some(job) = self.pending.pop_front() else {
                break;
            };
            self.queued.remove(job.path());
            self.in_flight.insert(job.path().clone());
            self.idle -= 1;
            self.pool.submit(job);
            if self.server.down_since.is_some() {
                break;
            }
        }
    }

    fn on_done(&mut self, outcome: Outcome) {
        self.idle += 1;
        let Outcome { job, result } = outcome;
        let path = job.path().clone();
        self.in_flight.remove(&path);
        let now = Instant::now();
        match result {
            Ok(done) => {
                self.server_up(now);
                if let Some(r) = self.retries.remove(&path) {
                    info!("{path}: succeeded after {} failed attempt(s)", r.attempts);
                }
                match &job {
                    Job::Upload(rel) => {
                        if let Ok(m) = std::fs::symlink_metadata(rel.to_local(&self.cfg.watch_dir))
                        {
                            self.synced.insert(rel.clone(), Stamp::of(&m));
                        }
                        self.uploaded_files += 1;
                        self.uploaded_bytes += done.bytes;
                        info!(
                            "uploaded {rel} ({}, {} ms)",
                            human_bytes(done.bytes),
                            done.elapsed.as_millis()
                        );
                    }
                    Job::Delete(rel) => {
                        self.synced.remove(rel);
                        info!("deleted {rel} on the server");
                    }
                    Job::Rename { from, to } => {
                        let moved: Vec<_> = self
                            .synced
                            .keys()
                            .filter(|k| k.starts_with(from))
                            .cloned()
                            .collect();
                        for k in moved {
                            if let Some(s) = self.synced.remove(&k) {
                                let suffix = &k.as_str()[from.as_str().len()..];
                                if let Ok(nk) = RelPath::from_local(
                                    Path::new("/"),
                                    Path::new(&format!("/{}{suffix}", to.as_str())),
                                ) {
                                    self.synced.insert(nk, s);
                                }
                            }
                        }
                        info!("renamed {from} to {to} on the server");
                    }
                }
            }
            Err(f) => self.on_failure(job, f, now),
        }
        if self.dirty.remove(&path) && self.stop.is_none() {
            self.debouncer.push(path, now);
        }
    }

    fn on_failure(&mut self, job: Job, f: Failure, now: Instant) {
        let path = job.path().clone();
        match f.kind {
            Kind::Changed => {
                debug!("{f}; uploading it once it is quiet");
                self.debouncer.push(path, now);
            }
            Kind::Vanished => {
                debug!("{f}");
                self.plan(path);
            }
            Kind::Aborted => {}
            Kind::Connection | Kind::Login | Kind::Tls => {
                if self.stop.is_some() {
                    return;
                }
                self.server_down(&f, now);
                if self.cfg.once && self.server.failures >= ONCE_ATTEMPTS {
                    self.failed_for_good.push((path.clone(), f.message.clone()));
                    for job in self.pending.drain(..) {
                        self.failed_for_good
                            .push((job.path().clone(), "server unreachable".into()));
                    }
                    self.queued.clear();
                    return;
                }
                self.queued.insert(path);
                self.pending.push_front(job);
            }
            Kind::Local => {
                warn!("warning: {f}; skipped until it changes again");
                if self.cfg.once {
                    self.failed_for_good.push((path, f.message));
                }
            }
            Kind::Transient | Kind::Refused => {
                if matches!(job, Job::Rename { .. }) {
                    // The server could not rename (e.g. the source was never
                    // uploaded): upload under the new name instead.
                    if let Job::Rename { from, to } = &job {
                        warn!("warning: {f}; uploading {to} instead");
                        self.debouncer.push(from.clone(), now);
                        self.debouncer.push(to.clone(), now);
                    }
                    return;
                }
                self.retry_later(path, &f, now);
            }
        }
    }

    fn retry_later(&mut self, path: RelPath, f: &Failure, now: Instant) {
        let r = self.retries.entry(path.clone()).or_insert(Retry {
            attempts: 0,
            last_logged: now,
            last_message: String::new(),
        });
        r.attempts += 1;
        if self.cfg.once && r.attempts >= ONCE_ATTEMPTS {
            warn!("warning: {f}; giving up after {} attempts", r.attempts);
            self.failed_for_good.push((path, f.message.clone()));
            return;
        }
        let delay = jitter(backoff(RETRY_FIRST, RETRY_CAP, r.attempts));
        if r.attempts == 1
            || r.last_message != f.message
            || now.duration_since(r.last_logged) >= RELOG
        {
            warn!(
                "warning: {f} (attempt {}); retrying in {}",
                r.attempts,
                humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
            );
            r.last_logged = now;
            r.last_message.clone_from(&f.message);
        } else {
            debug!("{f} (attempt {})", r.attempts);
        }
        self.retry_seq += 1;
        self.retry_at
            .push(Reverse((now + delay, self.retry_seq, path)));
    }

    fn server_down(&mut self, f: &Failure, now: Instant) {
        let s = &mut self.server;
        if s.resume_at.is_some_and(|t| t > now) {
            // Another session already reported this outage.
            return;
        }
        s.failures += 1;
        s.backoff = if s.down_since.is_none() {
            RETRY_FIRST
        } else {
            (s.backoff * 2).min(SERVER_CAP)
        };
        s.resume_at = Some(now + jitter(s.backoff));
        let first = s.down_since.is_none();
        s.down_since.get_or_insert(now);
        let level_warn = first || s.last_logged.is_none_or(|t| now.duration_since(t) >= RELOG);
        let msg = format!(
            "{}: {f}; retrying in {}",
            if f.kind == Kind::Login {
                "error: login refused"
            } else {
                "warning: server unavailable"
            },
            humantime::format_duration(Duration::from_secs(s.backoff.as_secs().max(1)))
        );
        if level_warn {
            warn!("{msg}");
            s.last_logged = Some(now);
        } else {
            debug!("{msg}");
        }
    }

    fn server_up(&mut self, now: Instant) {
        if let Some(since) = self.server.down_since.take() {
            info!(
                "server reachable again after {}",
                humantime::format_duration(Duration::from_secs(
                    now.duration_since(since).as_secs()
                ))
            );
        }
        self.server = ServerState::default();
    }

    fn shutdown(&mut self) -> ExitCode {
        self.watcher = None;
        self.pool.close();
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.exited < self.pool.size() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(Event::WorkerExit) => self.exited += 1,
                Ok(Event::Done(o)) => {
                    if let Ok(done) = &o.result {
                        info!("uploaded {} ({})", o.job.path(), human_bytes(done.bytes));
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let pool = std::mem::replace(&mut self.pool, Pool::empty());
        pool.join();
        let summary = format!(
            "{} file(s), {} uploaded",
            self.uploaded_files,
            human_bytes(self.uploaded_bytes)
        );
        if self.cfg.once && self.stop.is_none() {
            if self.failed_for_good.is_empty() {
                info!("done: {summary}");
                return ExitCode::SUCCESS;
            }
            let n = self.failed_for_good.len();
            let list: Vec<String> = self
                .failed_for_good
                .iter()
                .take(20)
                .map(|(p, why)| format!("{p} ({why})"))
                .collect();
            error!(
                "error: {n} file(s) could not be synced: {}{}",
                list.join(", "),
                if n > 20 { ", ..." } else { "" }
            );
            return ExitCode::from(1);
        }
        info!("stopped ({summary})");
        ExitCode::SUCCESS
    }
}

fn backoff(first: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(cap)
}

/// Spreads a delay over 75–125 % so that many failures do not retry in step.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let frac = 0.75 + (r % 1000) as f64 / 2000.0;
    d.mul_f64(frac)
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 300 * s, 1), s);
        assert_eq!(backoff(s, 300 * s, 2), 2 * s);
        assert_eq!(backoff(s, 300 * s, 9), 256 * s);
        assert_eq!(backoff(s, 300 * s, 10), 300 * s);
        assert_eq!(backoff(s, 300 * s, 1000), 300 * s);
        for _ in 0..100 {
            let j = jitter(4 * s);
            assert!(j >= 3 * s && j <= 5 * s, "{j:?}");
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(512 * 1024 * 1024), "512.0 MiB");
    }
}
