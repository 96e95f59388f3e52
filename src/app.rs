//! Wiring and the run loop: start-up in the daemon's order, one
//! deadline-driven loop that owns all sync state, and shutdown.
//!
//! Only this loop decides anything: the watcher, the signal thread and the
//! transfer workers just send [`Event`]s. The loop sleeps in `recv_timeout`
//! until the next deadline (a cooldown ending, a retry due, the server back-off
//! ending, the periodic rescan, a progress line, the shutdown grace period):
//! no polling while idle. The sync decisions themselves live in `engine`.

mod engine;
mod progress;

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
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
use crate::event::{Event, Job};
use crate::ftp::{Connector, Kind, Session};
use crate::journal::{Batch, JobKey, Journal, Synced};
use crate::relpath::{Escaped, EscapedPath, RelPath};
use crate::signals::{self, SignalThread};
use crate::transfer::Pool;
use crate::watcher::Watcher;
use crate::{check, logging, pause, status};

use progress::Progress;

/// A file that never goes quiet is still uploaded this often.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long running transfers may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// After the grace period, how long aborted transfers may take to stop.
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// While transfers run, the journal is written at most this often.
const JOURNAL_EVERY: Duration = Duration::from_millis(250);
/// How often a missing or empty watch directory is looked at again.
const ROOT_RECHECK: Duration = Duration::from_secs(5);

/// The program, after argument parsing.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Status(args)) => status::run(&args),
        Some(Command::Pause(args)) => pause::run(&args, true),
        Some(Command::Resume(args)) => pause::run(&args, false),
        None => run_daemon(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Only errors from before the fork (or from `check`/`status`) get
            // here, while stderr is still the terminal.
            eprintln!("ftpmonitor: error: {}", logging::redact(&e.to_string()));
            e.exit_code()
        }
    }
}

fn run_daemon(args: RunArgs) -> Result<ExitCode> {
    let cfg = Config::from_args(&args)?;
    logging::hide(cfg.password.expose());
    logging::set_level(cfg.log_level);
    logging::set_format(cfg.log_format);
    prepare_local_files(&cfg)?;
    if let Some(log) = &cfg.log_file {
        // From here on warnings (an unreachable server at start-up) reach the
        // log file as well as the terminal.
        logging::redirect(Some(log), true)
            .map_err(|e| Error::usage(format!("{}: {}", cfg.origins.log_file, logging::describe(log, &e))))?;
    }
    let connector = Connector::new(&cfg).map_err(|f| Error::usage(f.message))?;
    // Taken before the login: a second instance says "already running" at
    // once, without a connection to the server (or a wait for a silent one).
    let mut pid_file = PidFile::acquire(&cfg.pid_file)?;
    let session = match preflight_login(&cfg, &connector) {
        Ok(session) => session,
        Err(e) => {
            // A refused login leaves no PID file behind.
            pid_file.remove();
            return Err(e);
        }
    };
    let mut readiness = if cfg.foreground {
        std::env::set_current_dir(&cfg.state_dir).map_err(|e| {
            Error::runtime(format!("cannot enter state directory {}: {e}", EscapedPath(&cfg.state_dir)))
        })?;
        Readiness::none()
    } else {
        let hint = cfg.log_file.as_deref().map_or_else(|| "the log".to_string(), |p| EscapedPath(p).to_string());
        match daemon::daemonize(&cfg.state_dir, &hint)? {
            Forked::Launcher(code) => return Ok(code),
            Forked::Daemon(r) => r,
        }
    };
    // From here on we are the daemon: errors go to the log and the launcher.
    let result = (|| -> Result<ExitCode> {
        pid_file
            .write_pid()
            .map_err(|e| Error::runtime(format!("cannot write PID file {}: {e}", EscapedPath(pid_file.path()))))?;
        logging::redirect(cfg.log_file.as_deref(), cfg.foreground).map_err(|e| {
            Error::runtime(format!("cannot open log file: {e}: fix --log-file or its directory's permissions"))
        })?;
        #[cfg(unix)]
        if let Some(user) = &cfg.run_as {
            // The PID file stays root's: the user must not be able to make
            // it name another process (logrotate signals what it names).
            let mut owned: Vec<std::path::PathBuf> = vec![cfg.state_dir.clone()];
            owned.extend(cfg.log_file.clone());
            let journal = Journal::path_in(&cfg.state_dir);
            for suffix in ["", "-wal", "-shm"] {
                let p = std::path::PathBuf::from(format!("{}{suffix}", journal.display()));
                if p.exists() {
                    owned.push(p);
                }
            }
            let owned: Vec<&Path> = owned.iter().map(std::path::PathBuf::as_path).collect();
            daemon::drop_privileges(user, &owned)?;
            info!("running as user {user}");
        }
        let mut app = App::start(cfg, args, connector, session)?;
        readiness.ready();
        crate::systemd::ready(&format!("watching {}", EscapedPath(&app.cfg.watch_dir)));
        Ok(app.run())
    })();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            error!("error: {e}");
            readiness.failed(&logging::redact(&e.to_string()));
            e.exit_code()
        }
    };
    pid_file.remove();
    Ok(code)
}

/// Makes ready, and checks, every local file the daemon will keep, before
/// the pre-flight login: a wrong path is a usage error (exit 2) on the
/// terminal, and no server sees a connection for a run that cannot start.
/// The PID file itself is only looked at here (not created): it is taken
/// right before the login, and removed again if the login is refused.
fn prepare_local_files(cfg: &Config) -> Result<()> {
    create_state_dir(&cfg.state_dir, &cfg.origins.state_dir)?;
    protect_journal(&cfg.state_dir)?;
    check_pid_file_place(&cfg.pid_file, &cfg.origins.pid_file)?;
    if let Some(log) = &cfg.log_file {
        logging::probe(log).map_err(|e| Error::usage(format!("{}: {e}", cfg.origins.log_file)))?;
    }
    Ok(())
}

/// The state directory: created owner-only (it holds the journal of every
/// file name synced), never a symbolic link (the journal must not be written
/// wherever a planted link points).
fn create_state_dir(dir: &Path, origin: &crate::config::Origin) -> Result<()> {
    let shown = EscapedPath(dir);
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::usage(format!(
            "{origin}: state directory {shown} is a symbolic link, which ftpmonitor does not follow: \
             give the directory it points to"
        ))),
        Ok(m) if !m.is_dir() => Err(Error::usage(format!(
            "{origin}: state directory {shown} is not a directory: remove the file or choose another --state-dir"
        ))),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir).map_err(|e| {
                Error::usage(format!(
                    "{origin}: cannot create state directory {shown}: {}: create it, or choose another --state-dir",
                    why_not_created(dir, &e)
                ))
            })
        }
        Err(e) => Err(Error::usage(format!(
            "{origin}: cannot use state directory {shown}: {e}: fix its permissions or choose another --state-dir"
        ))),
    }
}

/// The journal's files are never symbolic links, and are owner-only even
/// when an older version (or a restore) left them readable by others.
fn protect_journal(state_dir: &Path) -> Result<()> {
    let main = Journal::path_in(state_dir);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", main.display()));
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        let shown = EscapedPath(&path);
        if meta.file_type().is_symlink() {
            return Err(Error::usage(format!(
                "journal file {shown} is a symbolic link, which ftpmonitor never writes through: remove it"
            )));
        }
        if !meta.is_file() {
            return Err(Error::usage(format!(
                "journal file {shown} is not a regular file: remove it or choose another --state-dir"
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                    Error::usage(format!("cannot make journal file {shown} owner-only: {e}: fix its owner"))
                })?;
            }
        }
    }
    Ok(())
}

/// The PID file's directory exists (or is created) and is a directory; the
/// file, if there, is a regular file and not a symbolic link. Opening and
/// locking it happen in `PidFile::acquire`, which checks all this again.
fn check_pid_file_place(path: &Path, origin: &crate::config::Origin) -> Result<()> {
    let shown = EscapedPath(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::usage(format!(
                    "{origin}: PID file {shown} cannot be created: {} is not a directory: choose another --pid-file",
                    EscapedPath(dir)
                )));
            }
            Err(_) => std::fs::create_dir_all(dir).map_err(|e| {
                Error::usage(format!(
                    "{origin}: cannot create the directory of PID file {shown}: {}: choose another --pid-file",
                    why_not_created(dir, &e)
                ))
            })?,
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::usage(format!(
            "{origin}: PID file {shown} is a symbolic link, which ftpmonitor never writes through: remove it"
        ))),
        Ok(m) if !m.is_file() => Err(Error::usage(format!(
            "{origin}: PID file {shown} is not a regular file: remove it or choose another --pid-file"
        ))),
        _ => Ok(()),
    }
}

/// Why `create_dir_all(dir)` failed, in words: "File exists" for a path
/// through a plain file says little; name the file instead.
fn why_not_created(dir: &Path, e: &std::io::Error) -> String {
    let blocker = dir.ancestors().skip(1).find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
    match blocker {
        Some(file) => format!("{} is not a directory", EscapedPath(file)),
        None if dir.is_file() => format!("{} is a file", EscapedPath(dir)),
        None => e.to_string(),
    }
}

/// Logs in once while errors still reach the terminal: a refused login or a
/// TLS failure stops here; an unreachable server only warns.
/// The session is kept for the first transfer worker.
fn preflight_login(cfg: &Config, connector: &Connector) -> Result<Option<Session>> {
    match connector.connect() {
        Ok(session) => {
            if session.pipelines() {
                info!(
                    "logged in to {}; the server reads commands in order, so an upload's follow-up commands \
                     are sent together",
                    cfg.target()
                );
            } else {
                debug!("logged in to {}", cfg.target());
            }
            Ok(Some(session))
        }
        Err(f) if f.kind == Kind::Login => Err(Error::runtime(format!(
            "login refused by {}:{} for user {:?} ({}): check --user and the password \
             (FTPMONITOR_PASSWORD, --password-file, the config file or ~/.netrc)",
            cfg.host, cfg.port, cfg.user, f.message
        ))),
        Err(f) if f.kind == Kind::Tls => Err(Error::runtime(format!(
            "TLS with {} failed: {}: check the server's certificate and host name, or give its CA with --ca-file",
            cfg.host,
            f.message.strip_prefix(&format!("TLS with {}: ", cfg.host)).unwrap_or(&f.message)
        ))),
        Err(f) => {
            warn!("warning: {f}; starting anyway and retrying until the server answers");
            Ok(None)
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

/// A file that changed while it was read, uploads in a row.
#[derive(Debug, Default)]
struct Changing {
    attempts: u32,
    /// When the operator was last told that it will not hold still.
    warned: Option<Instant>,
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

#[derive(Debug, Clone, Copy)]
struct Stop {
    grace_until: Instant,
    aborted: bool,
}

/// A local file waiting for its directory's remote listing (first sync).
type Awaiting = Vec<(RelPath, crate::ftp::Stamp)>;

struct App {
    cfg: Config,
    args: RunArgs,
    /// Kept to give a renewed watcher its sender (and so that `recv` never
    /// sees every sender gone).
    tx: Sender<Event>,
    rx: Receiver<Event>,
    watcher: Option<Watcher>,
    _signals: SignalThread,
    pool: Pool,
    /// Jobs that may still be handed out: two per worker, so that a worker
    /// that finishes finds its next job waiting instead of waking this loop
    /// first.
    free_slots: usize,
    exited: usize,
    journal: Journal,
    batch: Batch,
    journal_failing: bool,
    journal_due: Option<Instant>,
    /// What the server holds, as far as the journal knows.
    synced: BTreeMap<RelPath, Synced>,
    /// Remote directories this tool created (full remote paths).
    created_dirs: HashSet<String>,
    debouncer: Debouncer<RelPath>,
    pending: VecDeque<Job>,
    pending_large: VecDeque<Job>,
    queued: HashSet<String>,
    in_flight: HashMap<String, bool>,
    large_in_flight: usize,
    dirty: HashSet<RelPath>,
    /// The old names of the renames queued or running: they are busy too.
    renaming: HashSet<RelPath>,
    /// Paths whose old kind is being removed from the server before they are
    /// planned again (see `engine::old_kind_in_the_way`).
    replaced: HashSet<RelPath>,
    retry_at: BinaryHeap<std::cmp::Reverse<(Instant, u64)>>,
    retry_jobs: HashMap<u64, Job>,
    retries: HashMap<String, Retry>,
    retry_seq: u64,
    server: ServerState,
    /// Files waiting for the listing of their directory (first sync), by
    /// the listing's job key; an empty list for a directory listed only to
    /// learn which of its subdirectories exist.
    awaiting: HashMap<String, Awaiting>,
    /// The local subdirectories to list, or to take as missing, once a
    /// directory's listing (by its job key) shows whether they exist.
    list_children: HashMap<String, Vec<RelPath>>,
    /// Halves of moves waiting for their pair (see `engine::flush_moves`).
    moves: Vec<(crate::watcher::Change, Instant)>,
    /// Files whose last uploads they outran (they changed while read).
    changed_streak: HashMap<RelPath, Changing>,
    /// Uploads that broke off, with the file's stamp then: they may resume.
    partial: HashMap<RelPath, crate::ftp::Stamp>,
    root_held: bool,
    /// The mounts at and below the watch directory, as last seen.
    mounts: crate::mounts::Snapshot,
    /// The watch directory was a mount point and its disk is away.
    root_unmounted: bool,
    /// Mount points below the watch directory whose disk is away: what the
    /// journal knows below them is not taken as deleted.
    lost_mounts: Vec<RelPath>,
    /// Directories the last walk could not read (their files are not gone).
    unreadable: Vec<RelPath>,
    unreadable_root: bool,
    root_check_at: Option<Instant>,
    skipped: HashSet<String>,
    failed_for_good: Vec<(String, String)>,
    next_rescan: Option<Instant>,
    stop: Option<Stop>,
    uploaded_files: u64,
    uploaded_bytes: u64,
    hangup_is_stop: bool,
    progress: Progress,
    /// systemd watchdog: ping period and the next ping.
    watchdog: Option<(Duration, Instant)>,
    /// `--bwlimit`: the shared bucket, its rate now, and when the timetable
    /// changes it next.
    /// `ftpmonitor pause` / SIGUSR2: no new transfer starts; events are
    /// still taken and queued. Kept in the journal across restarts.
    paused: bool,
    limiter: crate::bwlimit::Limiter,
    rate: Option<crate::bwlimit::Rate>,
    rate_change_at: Option<Instant>,
}

impl App {
    fn start(cfg: Config, args: RunArgs, connector: Connector, session: Option<Session>) -> Result<Self> {
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
            if cfg.recursive { "" } else { ", top level only" },
            if cfg.delete { ", deletes propagated" } else { "" },
            if cfg.dry_run { ", dry run" } else { "" },
        );
        let journal = Journal::open(&cfg.state_dir, &JobKey::of(&cfg))
            .map_err(|e| Error::runtime(format!("{e}: check the state directory (--state-dir)")))?;
        let synced: BTreeMap<_, _> =
            journal.load_synced().map_err(|e| Error::runtime(e.to_string()))?.into_iter().collect();
        let created_dirs = journal.load_dirs().map_err(|e| Error::runtime(e.to_string()))?.into_iter().collect();
        let leftovers = journal.load_queue().map_err(|e| Error::runtime(e.to_string()))?;
        let uploads = journal.load_uploads().map_err(|e| Error::runtime(e.to_string()))?;
        let paused = journal.paused().map_err(|e| Error::runtime(e.to_string()))?;
        if paused && cfg.once {
            return Err(Error::runtime(
                "this job is paused (ftpmonitor pause): run ftpmonitor resume with the same --state-dir first",
            ));
        }

        let watcher = if cfg.once {
            None
        } else {
            Some(Watcher::start(&cfg.watch_dir, cfg.recursive, cfg.poll, tx.clone()).map_err(|e| {
                Error::runtime(format!(
                    "cannot watch {}: {}",
                    EscapedPath(&cfg.watch_dir),
                    crate::watcher::describe_error(&e)
                ))
            })?)
        };
        let mounts = crate::mounts::Snapshot::take(&cfg.watch_dir);
        if let Some(m) = mounts.holding.as_ref().filter(|m| crate::mounts::misses_remote_changes(&m.fstype))
            && cfg.poll.is_none()
            && !cfg.once
        {
            warn!(
                "warning: the watch directory {} is on a {} file system, where files written by other machines \
                 raise no events here: add --poll 30s (poll = \"30s\" in the config file) to find them by polling",
                EscapedPath(&cfg.watch_dir),
                Escaped(&m.fstype)
            );
        }
        let busy = synced.is_empty() || !leftovers.is_empty();
        let pool = Pool::start(cfg.parallel, &connector, cfg.watch_dir.clone(), &tx, session, busy)
            .map_err(|e| Error::runtime(format!("cannot start transfer threads: {e}")))?;
        let hangup_is_stop = cfg.foreground && daemon::has_controlling_terminal();
        let now = Instant::now();
        let mut app = Self {
            debouncer: Debouncer::new(cfg.cooldown, MAX_WAIT),
            next_rescan: cfg.rescan_interval.map(|d| now + d),
            free_slots: 2 * pool.size(),
            exited: 0,
            pool,
            watcher,
            _signals: signals,
            tx,
            rx,
            journal,
            batch: Batch::default(),
            journal_failing: false,
            journal_due: None,
            synced,
            created_dirs,
            pending: VecDeque::new(),
            pending_large: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashMap::new(),
            large_in_flight: 0,
            dirty: HashSet::new(),
            renaming: HashSet::new(),
            replaced: HashSet::new(),
            retry_at: BinaryHeap::new(),
            retry_jobs: HashMap::new(),
            retries: HashMap::new(),
            retry_seq: 0,
            server: ServerState::default(),
            awaiting: HashMap::new(),
            list_children: HashMap::new(),
            moves: Vec::new(),
            partial: HashMap::new(),
            changed_streak: HashMap::new(),
            root_held: false,
            mounts,
            root_unmounted: false,
            lost_mounts: Vec::new(),
            unreadable: Vec::new(),
            unreadable_root: false,
            root_check_at: None,
            skipped: HashSet::new(),
            failed_for_good: Vec::new(),
            stop: None,
            uploaded_files: 0,
            uploaded_bytes: 0,
            hangup_is_stop,
            progress: Progress::new(cfg.foreground),
            watchdog: crate::systemd::watchdog_every().map(|d| (d, now)),
            paused,
            limiter: connector.limiter().clone(),
            rate: None,
            rate_change_at: None,
            args,
            cfg,
        };
        app.resume_uploads(uploads);
        app.apply_bwlimit();
        let queued = if app.synced.is_empty() {
            app.compare_with_server("first sync of this job")
        } else {
            app.reconcile("start")
        };
        app.resume_leftovers(leftovers);
        app.flush_journal();
        let what = if app.cfg.once { "syncing" } else { "watching" };
        info!(
            "ready: {what} {} ({} files in the journal, {queued} queued)",
            EscapedPath(&app.cfg.watch_dir),
            app.synced.len()
        );
        if app.paused {
            info!("paused: no transfer starts until ftpmonitor resume (or SIGUSR2); changes are queued meanwhile");
        }
        Ok(app)
    }

    fn run(&mut self) -> ExitCode {
        loop {
            self.dispatch();
            self.maybe_flush_journal();
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

    /// Writes the journal when the batch is due: at most every
    /// `JOURNAL_EVERY` while transfers run, at once when nothing runs. A
    /// crash loses at most that much bookkeeping, which the next start's
    /// reconcile finds again.
    fn maybe_flush_journal(&mut self) {
        if self.batch.is_empty() {
            self.journal_due = None;
            return;
        }
        let now = Instant::now();
        let due = *self.journal_due.get_or_insert(now + JOURNAL_EVERY);
        if now >= due || self.in_flight.is_empty() {
            self.flush_journal();
            self.journal_due = None;
        }
    }

    fn flush_journal(&mut self) {
        if self.cfg.dry_run {
            self.batch = Batch::default();
            return;
        }
        match self.journal.apply(&mut self.batch) {
            Ok(()) => {
                if self.journal_failing {
                    info!("the journal is writable again");
                    self.journal_failing = false;
                }
            }
            Err(e) => {
                if !self.journal_failing {
                    error!("error: cannot write the journal: {e}; uploads go on, but a restart may repeat some");
                    self.journal_failing = true;
                }
            }
        }
    }

    fn finished(&self) -> bool {
        if let Some(stop) = self.stop {
            return self.in_flight.is_empty() || (stop.aborted && Instant::now() >= stop.grace_until);
        }
        self.cfg.once
            && self.pending.is_empty()
            && self.pending_large.is_empty()
            && self.in_flight.is_empty()
            && self.retry_at.is_empty()
            && self.debouncer.is_empty()
            && self.awaiting.is_empty()
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
        consider(self.retry_at.peek().map(|std::cmp::Reverse((t, _))| *t));
        if self.has_pending() && self.in_flight.is_empty() {
            consider(self.server.resume_at);
        }
        consider(self.next_rescan);
        consider(self.root_check_at);
        consider(self.progress.next_tick());
        consider(self.watchdog.map(|(_, t)| t));
        consider(self.journal_due);
        consider(self.rate_change_at);
        consider(self.moves.first().map(|(_, t)| *t));
        d
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_large.is_empty()
    }

    fn on_deadlines(&mut self, now: Instant) {
        if let Some((every, next)) = self.watchdog.as_mut()
            && *next <= now
        {
            crate::systemd::watchdog();
            *next = now + *every;
        }
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
        self.flush_moves(now);
        for rel in self.debouncer.drain_ready(now) {
            self.plan(rel);
        }
        while let Some(std::cmp::Reverse((t, seq))) = self.retry_at.peek().copied() {
            if t > now {
                break;
            }
            self.retry_at.pop();
            if let Some(job) = self.retry_jobs.remove(&seq) {
                self.retry_due(job);
            }
        }
        if let (Some(t), Some(every)) = (self.next_rescan, self.cfg.rescan_interval)
            && t <= now
        {
            self.next_rescan = Some(now + every);
            let n = self.reconcile("periodic rescan");
            if n > 0 {
                info!("periodic rescan: {n} new or changed files queued");
            }
        }
        if self.rate_change_at.is_some_and(|t| t <= now) {
            self.apply_bwlimit();
        }
        if self.root_check_at.is_some_and(|t| t <= now) {
            self.root_check_at = None;
            self.check_root_back();
        }
        self.progress.tick(now, self.pending.len() + self.pending_large.len() + self.in_flight.len());
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
            signals::USR2 => self.toggle_pause(),
            signals::USR1 => {
                // The journal says what changed here; the listings say what
                // the server lost or holds differently.
                let n = self.reconcile("SIGUSR1");
                info!("SIGUSR1: {n} new or changed files queued; checking the server's copies");
                self.compare_with_server("SIGUSR1");
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
        crate::systemd::stopping();
        self.pool.stop_taking();
        self.watcher = None;
        // What is still queued stays in the journal's queue for the next start.
        self.pending.clear();
        self.pending_large.clear();
        self.queued.clear();
        self.stop = Some(Stop { grace_until: Instant::now() + GRACE, aborted: false });
    }

    fn reload(&mut self) {
        crate::systemd::reloading();
        if let Err(e) = logging::reopen() {
            warn!("warning: SIGHUP: cannot reopen the log file: {e}");
        }
        let new = match Config::from_args(&self.args) {
            Ok(c) => c,
            Err(e) => {
                warn!("warning: SIGHUP: keeping the old configuration: {e}");
                crate::systemd::ready("kept the old configuration");
                return;
            }
        };
        logging::set_level(new.log_level);
        logging::set_format(new.log_format);
        if !new.same_job(&self.cfg) {
            warn!(
                "warning: SIGHUP: the new configuration changes what is synced where (watch directory, \
                 server, login, TLS, mode or connections): restart ftpmonitor to apply that part"
            );
        }
        let rescan = new.scope.patterns() != self.cfg.scope.patterns()
            || new.delete != self.cfg.delete
            || new.max_delete != self.cfg.max_delete;
        self.debouncer.set_cooldown(new.cooldown);
        self.cfg.cooldown = new.cooldown;
        self.cfg.log_level = new.log_level;
        self.cfg.scope = new.scope;
        self.cfg.delete = new.delete;
        self.cfg.max_delete = new.max_delete;
        self.cfg.publish_changing = new.publish_changing;
        if self.cfg.poll != new.poll {
            self.cfg.poll = new.poll;
            self.rewatch();
        }
        if self.cfg.bwlimit != new.bwlimit {
            self.cfg.bwlimit = new.bwlimit;
            self.apply_bwlimit();
        }
        if self.cfg.rescan_interval != new.rescan_interval {
            self.cfg.rescan_interval = new.rescan_interval;
            self.next_rescan = new.rescan_interval.map(|d| Instant::now() + d);
        }
        info!("reloaded configuration and reopened the log (SIGHUP)");
        crate::systemd::ready("reloaded");
        if rescan {
            let n = self.reconcile("new configuration");
            info!("reconcile after reload: {n} files queued");
        }
    }

    /// Pauses or resumes the starting of transfers (SIGUSR2, which `ftpmonitor
    /// pause` and `resume` send). Transfers running go on; the state is written
    /// to the journal at once, where `status` and those commands read it.
    fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if let Err(e) = self.journal.set_paused(self.paused) {
            warn!("warning: cannot record the pause in the journal: {e}");
        }
        if self.paused {
            info!(
                "paused: no new transfer starts ({} running go on); changes are still watched and queued",
                self.in_flight.len()
            );
        } else {
            let waiting = self.pending.len() + self.pending_large.len();
            info!("resumed: transfers start again ({waiting} waiting)");
        }
    }

    /// Sets the upload rate the timetable gives for now (logged when it
    /// changes; transfers in flight go on at the new rate) and schedules the
    /// next change.
    fn apply_bwlimit(&mut self) {
        let second = crate::bwlimit::local_second_of_day();
        let rate = self.cfg.bwlimit.rate_at(second);
        if self.rate != Some(rate) {
            if self.rate.is_some() || rate.is_some() {
                info!("upload rate: {}", crate::bwlimit::describe(rate));
            }
            self.limiter.set(rate);
            self.rate = Some(rate);
        }
        // Measured from the start of this second: the change lands just after the boundary.
        self.rate_change_at = self.cfg.bwlimit.next_change(second).map(|d| Instant::now() + d);
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
                Ok(Event::Done(o)) => self.on_done(o),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.flush_journal();
        self.journal.stopped();
        let pool = std::mem::replace(&mut self.pool, Pool::empty());
        pool.join();
        self.progress.finish();
        let summary = format!("{} file(s), {} uploaded", self.uploaded_files, human_bytes(self.uploaded_bytes));
        if self.cfg.once && self.stop.is_none() {
            if self.root_held {
                error!(
                    "error: {} file(s) synced before, but the watch directory {} is missing or empty: nothing \
                     was synced; check that its disk is mounted",
                    self.synced.len(),
                    EscapedPath(&self.cfg.watch_dir)
                );
                return ExitCode::from(1);
            }
            if self.failed_for_good.is_empty() {
                info!("done: {summary}");
                return ExitCode::SUCCESS;
            }
            let n = self.failed_for_good.len();
            let list: Vec<String> =
                self.failed_for_good.iter().take(20).map(|(p, why)| format!("{p} ({why})")).collect();
            error!("error: {n} file(s) could not be synced: {}{}", list.join(", "), if n > 20 { ", ..." } else { "" });
            return ExitCode::from(1);
        }
        info!("stopped ({summary})");
        ExitCode::SUCCESS
    }
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
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(512 * 1024 * 1024), "512.0 MiB");
    }
}
