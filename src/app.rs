//! Wiring and the run loop: start-up in the daemon's order (`startup`), one
//! deadline-driven loop, and shutdown.
//!
//! Only this loop decides anything: the watcher, the signal thread and the
//! transfer workers just send [`Event`]s. The loop sleeps in `recv_timeout`
//! until the next deadline (the planner's: a cooldown ending, a retry due,
//! the server back-off ending; and its own: the periodic rescan, a progress
//! line, the journal's next write, the shutdown grace period): no polling
//! while idle. The sync rules live in [`crate::planner`]; this loop feeds it
//! events, outcomes and what the local tree looks like (`local`), and
//! carries out what it returns: jobs for the workers, journal writes.

mod handoff;
mod local;
mod progress;
mod startup;

use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant, SystemTime};

use log::{error, info, warn};

use crate::cli::{Cli, Command, RunArgs};
use crate::config::Config;
use crate::daemon;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::ftp::{Connector, Session};
use crate::journal::{Batch, JobKey, Journal};
use crate::mounts::Snapshot;
use crate::planner::retry::SystemRandom;
use crate::planner::{Planner, Rules};
use crate::relpath::{Escaped, EscapedPath};
use crate::signals::{self, SignalThread};
use crate::transfer::Pool;
use crate::watcher::Watcher;
use crate::{check, logging, pause, status};

use progress::Progress;

/// How long running transfers may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// After the grace period, how long aborted transfers may take to stop.
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// While transfers run, the journal is written at most this often.
const JOURNAL_EVERY: Duration = Duration::from_millis(250);

/// The program, after argument parsing.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Status(args)) => status::run(&args),
        Some(Command::Pause(args)) => pause::run(&args, true),
        Some(Command::Resume(args)) => pause::run(&args, false),
        None => startup::run_daemon(cli.run),
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

#[derive(Debug, Clone, Copy)]
struct Stop {
    grace_until: Instant,
    aborted: bool,
}

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
    exited: usize,
    planner: Planner,
    journal: Journal,
    journal_failing: bool,
    /// What `--metrics-addr` counts.
    counters: crate::metrics::Counters,
    journal_due: Option<Instant>,
    next_rescan: Option<Instant>,
    stop: Option<Stop>,
    hangup_is_stop: bool,
    progress: Progress,
    /// systemd watchdog: ping period and the next ping.
    watchdog: Option<(Duration, Instant)>,
    /// `ftpmonitor pause` / SIGUSR2: no new transfer starts; events are
    /// still taken and queued. Kept in the journal across restarts.
    paused: bool,
    /// `--bwlimit`: the shared bucket, its rate now, and when the timetable
    /// changes it next.
    limiter: crate::bwlimit::Limiter,
    rate: Option<crate::bwlimit::Rate>,
    rate_change_at: Option<Instant>,
    /// `--poll`: files looked at in the second of their last write, to be
    /// looked at again once that second is over (see `app::local`).
    poll_rechecks: std::collections::BTreeMap<Instant, Vec<std::path::PathBuf>>,
    /// `--on-upload`, `--on-failure`: run on threads of their own.
    hooks: crate::hooks::Hooks,
    /// Move mode: the hand-off thread.
    handoffs: Option<handoff::HandOffs>,
    /// Work ran since the heap was last trimmed (see `App::run`).
    worked: bool,
    /// `--once`: the pre-flight login, made when the first job is handed
    /// out (none if nothing changed); a refused one ends the run in `fatal`.
    deferred_login: Option<Connector>,
    fatal: Option<Error>,
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
            match &cfg.hand_off {
                _ if cfg.delete => ", deletes propagated".to_string(),
                Some(crate::config::HandOff::Remove) => ", files removed once uploaded".to_string(),
                Some(crate::config::HandOff::Archive(d)) =>
                    format!(", files moved to {} once uploaded", EscapedPath(d)),
                None => String::new(),
            },
            if cfg.dry_run { ", dry run" } else { "" },
        );
        let journal = Journal::open(&cfg.state_dir, &JobKey::of(&cfg))
            .map_err(|e| Error::runtime(format!("{e}: check the state directory (--state-dir)")))?;
        let synced = journal.load_synced().map_err(|e| Error::runtime(e.to_string()))?;
        let created_dirs = journal.load_dirs().map_err(|e| Error::runtime(e.to_string()))?.into_iter().collect();
        let leftovers = journal.load_queue().map_err(|e| Error::runtime(e.to_string()))?;
        let uploads = journal.load_uploads().map_err(|e| Error::runtime(e.to_string()))?;
        let handoffs = journal.load_handoffs().map_err(|e| Error::runtime(e.to_string()))?;
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
        let mounts = Snapshot::take(&cfg.watch_dir);
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
        let pool = Pool::start(cfg.parallel, &connector, cfg.watch_dir.clone(), &tx, session)
            .map_err(|e| Error::runtime(format!("cannot start transfer threads: {e}")))?;
        let hand_off_thread = match &cfg.hand_off {
            None => None,
            Some(how) => {
                let archive = match how {
                    crate::config::HandOff::Archive(dir) => Some(crate::localfs::Tree::new(dir.clone())),
                    crate::config::HandOff::Remove => None,
                };
                let tree = crate::localfs::Tree::new(cfg.watch_dir.clone());
                Some(
                    handoff::HandOffs::start(tree, archive, tx.clone())
                        .map_err(|e| Error::runtime(format!("cannot start the hand-off thread: {e}")))?,
                )
            }
        };
        let hooks = crate::hooks::Hooks::start(cfg.on_upload.clone(), cfg.on_failure.clone(), cfg.password.expose())
            .map_err(|e| Error::runtime(format!("cannot start the hook threads: {e}")))?;
        let counters = crate::metrics::Counters::default();
        if let Some(addr) = cfg.metrics_addr {
            let source = crate::metrics::Source {
                counters: counters.clone(),
                connected: pool.connected(),
                state_dir: cfg.state_dir.clone(),
                job: journal.job_id(),
            };
            let bound = crate::metrics::serve(addr, source).map_err(Error::runtime)?;
            info!("metrics: http://{bound}/metrics");
        }
        let hangup_is_stop = cfg.foreground && daemon::has_controlling_terminal();
        let now = Instant::now();
        let mut planner = Planner::new(
            Rules::of(&cfg),
            cfg.cooldown,
            pool.size(),
            synced,
            created_dirs,
            mounts,
            Box::new(SystemRandom),
        );
        planner.set_paused(paused);
        planner.set_clock(now, SystemTime::now());
        let mut app = Self {
            next_rescan: cfg.rescan_interval.map(|d| now + d),
            exited: 0,
            pool,
            watcher,
            _signals: signals,
            tx,
            rx,
            planner,
            journal,
            journal_failing: false,
            counters,
            journal_due: None,
            stop: None,
            hangup_is_stop,
            progress: Progress::new(cfg.foreground),
            watchdog: crate::systemd::watchdog_every().map(|d| (d, now)),
            paused,
            limiter: connector.limiter().clone(),
            rate: None,
            rate_change_at: None,
            poll_rechecks: std::collections::BTreeMap::new(),
            hooks,
            handoffs: hand_off_thread,
            worked: true,
            deferred_login: cfg.once.then(|| connector.clone()),
            fatal: None,
            args,
            cfg,
        };
        // Hand-offs a crash interrupted, before the tree is compared.
        app.planner.resume_handoffs(handoffs);
        app.settle();
        app.resume_uploads(uploads);
        app.apply_bwlimit();
        let queued = if app.planner.first_sync() {
            app.compare_with_server("first sync of this job")
        } else {
            app.reconcile("start")
        };
        app.resume_leftovers(leftovers);
        app.settle();
        app.flush_journal();
        let what = if app.cfg.once { "syncing" } else { "watching" };
        info!(
            "ready: {what} {} ({} files in the journal, {queued} queued)",
            EscapedPath(&app.cfg.watch_dir),
            app.planner.synced_count()
        );
        if app.paused {
            info!("paused: no transfer starts until ftpmonitor resume (or SIGUSR2); changes are queued meanwhile");
        }
        Ok(app)
    }

    fn run(&mut self) -> ExitCode {
        loop {
            self.dispatch();
            if self.fatal.is_some() {
                self.planner.stop();
                return self.shutdown();
            }
            self.maybe_flush_journal();
            if self.finished() {
                break;
            }
            if self.worked && self.planner.outstanding() == 0 {
                // Idle after work: what the burst (walks, listings, queues)
                // freed goes back to the system.
                self.worked = false;
                daemon::give_back_free_memory();
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
            // File ages (--min-age, --max-age) are measured from this reading.
            self.planner.set_clock(Instant::now(), SystemTime::now());
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

    /// Hands the planner's jobs to the workers while it has any that may
    /// start, answering what it needs to know meanwhile.
    fn dispatch(&mut self) {
        loop {
            let now = Instant::now();
            while let Some(job) = self.planner.next_job(now) {
                if let Some(connector) = self.deferred_login.take() {
                    match startup::preflight_login(&self.cfg, &connector) {
                        Ok(Some(session)) => self.pool.lend(session),
                        Ok(None) => {}
                        Err(e) => {
                            self.fatal = Some(e);
                            return;
                        }
                    }
                }
                self.pool.submit(job);
                self.worked = true;
            }
            if !self.settle() {
                break;
            }
        }
    }

    /// Writes the journal when the batch is due: at most every
    /// `JOURNAL_EVERY` while transfers run, at once when nothing runs. A
    /// crash loses at most that much bookkeeping, which the next start's
    /// reconcile finds again.
    fn maybe_flush_journal(&mut self) {
        if self.planner.batch_mut().is_empty() {
            self.journal_due = None;
            return;
        }
        let now = Instant::now();
        let due = *self.journal_due.get_or_insert(now + JOURNAL_EVERY);
        if now >= due || self.planner.running() == 0 {
            self.flush_journal();
            self.journal_due = None;
        }
    }

    fn flush_journal(&mut self) {
        let batch = self.planner.batch_mut();
        if self.cfg.dry_run {
            *batch = Batch::default();
            return;
        }
        match self.journal.apply(batch) {
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
            return self.planner.running() == 0 || (stop.aborted && Instant::now() >= stop.grace_until);
        }
        self.cfg.once && self.planner.is_done()
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        if let Some(stop) = self.stop {
            return Some(stop.grace_until);
        }
        [
            self.planner.next_deadline(),
            self.next_rescan,
            self.progress.next_tick(),
            self.watchdog.map(|(_, t)| t),
            self.journal_due,
            self.rate_change_at,
            self.poll_rechecks.keys().next().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_deadlines(&mut self, now: Instant) {
        if let Some((every, next)) = self.watchdog.as_mut()
            && *next <= now
        {
            crate::systemd::watchdog();
            *next = now + *every;
        }
        if let Some(stop) = self.stop.as_mut() {
            let running = self.planner.running();
            if !stop.aborted && now >= stop.grace_until && running > 0 {
                warn!(
                    "warning: {running} transfer(s) still running after {} s; aborting them (nothing partial is \
                     published)",
                    GRACE.as_secs()
                );
                self.pool.abort();
                stop.aborted = true;
                stop.grace_until = now + ABORT_WAIT;
            }
            return;
        }
        while let Some(entry) = self.poll_rechecks.first_entry().filter(|e| *e.key() <= now) {
            for path in entry.remove() {
                self.planner.on_change(crate::event::Change::Touched(path), now);
            }
        }
        self.planner.tick(now);
        self.settle();
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
        if self.planner.root_check_due(now) {
            let root = self.look_root();
            self.planner.root_checked(root, now);
        }
        self.settle();
        self.progress.tick(now, self.planner.outstanding());
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Fs(change) => self.planner.on_change(change, Instant::now()),
            Event::Signal(sig) => self.on_signal(sig),
            Event::Done(outcome) => {
                self.counters.outcome(&outcome);
                self.planner.on_done(outcome, Instant::now(), SystemTime::now());
            }
            Event::HandedOff { rel, stamp, hash, result } => {
                self.planner.handed_off(rel, (stamp, hash), result, Instant::now());
            }
            Event::WorkerExit => self.exited += 1,
        }
        self.settle();
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
        let running = self.planner.running();
        info!(
            "stopping on {why}{}",
            if running == 0 { String::new() } else { format!(", letting {running} transfer(s) finish") }
        );
        crate::systemd::stopping();
        self.pool.stop_taking();
        self.watcher = None;
        // What is still queued stays in the journal's queue for the next start.
        self.planner.stop();
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
                 server, login, TLS, mode, connections, --temp-dir or --chmod): restart ftpmonitor to apply that part"
            );
        }
        self.cfg.cooldown = new.cooldown;
        self.cfg.log_level = new.log_level;
        // The staging directory stays the one the sessions use until a restart.
        self.cfg.scope = new.scope.reserve(self.cfg.scope.reserved().map(str::to_string));
        self.cfg.delete = new.delete;
        self.cfg.max_delete = new.max_delete;
        self.cfg.publish_changing = new.publish_changing;
        self.cfg.min_age = new.min_age;
        self.cfg.max_age = new.max_age;
        let rescan = self.planner.set_rules(Rules::of(&self.cfg), self.cfg.cooldown);
        if self.cfg.poll != new.poll {
            self.cfg.poll = new.poll;
            self.rewatch();
        }
        if self.cfg.bwlimit != new.bwlimit {
            self.cfg.bwlimit = new.bwlimit;
            self.apply_bwlimit();
        }
        if (&self.cfg.on_upload, &self.cfg.on_failure) != (&new.on_upload, &new.on_failure) {
            match self.hooks.set_commands(new.on_upload.clone(), new.on_failure.clone()) {
                Ok(()) => (self.cfg.on_upload, self.cfg.on_failure) = (new.on_upload, new.on_failure),
                Err(e) => warn!("warning: SIGHUP: keeping the old hooks: cannot start the hook threads: {e}"),
            }
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
        self.planner.set_paused(self.paused);
        if let Err(e) = self.journal.set_paused(self.paused) {
            warn!("warning: cannot record the pause in the journal: {e}");
        }
        if self.paused {
            info!(
                "paused: no new transfer starts ({} running go on); changes are still watched and queued",
                self.planner.running()
            );
        } else {
            info!("resumed: transfers start again ({} waiting)", self.planner.waiting());
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
        self.hooks.stop();
        if let Some(h) = self.handoffs.as_mut() {
            h.close();
        }
        self.pool.close();
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.exited < self.pool.size() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(ev @ (Event::WorkerExit | Event::Done(_))) => self.handle(ev),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.flush_journal();
        self.journal.stopped();
        let pool = std::mem::replace(&mut self.pool, Pool::empty());
        pool.join();
        self.progress.finish();
        let (files, bytes) = self.planner.uploaded();
        let summary = format!("{files} file(s), {} uploaded", logging::human_bytes(bytes));
        if let Some(e) = self.fatal.take() {
            error!("error: {e}");
            return e.exit_code();
        }
        if self.cfg.once && self.stop.is_none() {
            if self.planner.root_held() {
                error!(
                    "error: {} file(s) synced before, but the watch directory {} is missing or empty: nothing \
                     was synced; check that its disk is mounted",
                    self.planner.synced_count(),
                    EscapedPath(&self.cfg.watch_dir)
                );
                return ExitCode::from(1);
            }
            let failed = self.planner.failed_for_good();
            if failed.is_empty() {
                info!("done: {summary}");
                return ExitCode::SUCCESS;
            }
            let n = failed.len();
            let list: Vec<String> = failed.iter().take(20).map(|(p, why)| format!("{p} ({why})")).collect();
            error!("error: {n} file(s) could not be synced: {}{}", list.join(", "), if n > 20 { ", ..." } else { "" });
            return ExitCode::from(1);
        }
        info!("stopped ({summary})");
        ExitCode::SUCCESS
    }
}
