//! The sync rules, apart from all I/O: what a change means, what a quiet
//! path needs (nothing, an upload, a delete, a rename), the queue
//! discipline, the first sync against an already-populated server, the
//! delete guards, and what each outcome changes. The run loop (`app`) owns
//! one [`Planner`] and only moves data between it and the world.
//!
//! The planner does no I/O and reads no clock. Every input is a method call
//! with `now` passed in: a change ([`Planner::on_change`]), an outcome
//! ([`Planner::on_done`]), what a look at the local tree found
//! ([`Planner::plan`] and the other answers to a [`Need`]), the deadlines
//! that passed ([`Planner::tick`]). Every output is polled: the jobs for the
//! workers ([`Planner::next_job`]), the looks and rescans it needs
//! ([`Planner::poll_need`]), the journal's next batch
//! ([`Planner::batch_mut`]), progress ([`Planner::take_tallies`]), what the
//! hooks hear of ([`Planner::take_notices`]) and the
//! next deadline ([`Planner::next_deadline`]). It logs what it decides.
//!
//! Its parts: `changes` (events, moves, renames), `plan` (quiet paths,
//! reconciles, crash leftovers), `listing` (the first sync), `outcome` (what
//! a finished job changes), `root` (the watch directory and its mounts, the
//! guards on deletes), `queue` (the queue discipline), `retry` (back-off),
//! `selection` (what this run syncs).

mod age;
mod changes;
mod last;
mod listing;
mod order;
mod outcome;
mod plan;
mod queue;
pub mod retry;
mod root;
mod selection;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use log::info;

use crate::config::Config;
use crate::debounce::Debouncer;
use crate::event::{Change, Job};
use crate::journal::{Batch, Synced, mtime_ns};
use crate::localfs::{FileKind, Found, Stamp};
use crate::mounts::Snapshot;
use crate::relpath::{Escaped, RelPath};

use listing::Listings;
use queue::Queue;
use retry::{Random, Retries, Server};
use root::RootGuard;

pub use age::Ages;
pub use root::Root;
pub use selection::Selection;

/// A file that never goes quiet is still uploaded this often.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The options the rules depend on (SIGHUP may change some of them).
#[derive(Debug, Clone)]
pub struct Rules {
    pub selection: Selection,
    pub remote_dir: String,
    /// `--delete`: deletes and renames are propagated.
    pub delete: bool,
    /// `--max-delete`, in percent of the synced files.
    pub max_delete: u8,
    pub publish_changing: bool,
    /// `--min-age` and `--max-age`.
    pub ages: Ages,
    pub once: bool,
    pub dry_run: bool,
    /// `--remove-source` or `--archive-dir`: each file is handed off (removed
    /// or archived) once its upload is verified.
    pub hand_off: bool,
    /// `--last`: trigger files, published after the rest of their directory.
    pub last: crate::scope::Globs,
    /// `--order`: files of a directory are published in this order.
    pub order: Option<crate::config::Order>,
}

impl Rules {
    pub fn of(cfg: &Config) -> Self {
        Self {
            selection: Selection {
                watch_dir: cfg.watch_dir.clone(),
                recursive: cfg.recursive,
                globs: cfg.scope.clone(),
            },
            remote_dir: cfg.remote_dir.clone(),
            delete: cfg.delete,
            max_delete: cfg.max_delete,
            publish_changing: cfg.publish_changing,
            ages: Ages { min: cfg.min_age, max: cfg.max_age },
            once: cfg.once,
            dry_run: cfg.dry_run,
            hand_off: cfg.hand_off.is_some(),
            last: cfg.last.clone(),
            order: cfg.order,
        }
    }
}

/// Something the planner needs from the world before it can go on. The loop
/// carries it out and answers with the method named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A quiet path: look at it (and walk it, if it is a directory), then
    /// [`Planner::plan`].
    Plan(RelPath),
    /// A path that appeared (a new directory, a move into the tree): look at
    /// it and walk it, then [`Planner::appeared`].
    Appeared(RelPath),
    /// A path renamed locally whose files go through the cooldown again:
    /// look at it and walk it, then [`Planner::touch_inside`].
    TouchInside(RelPath),
    /// A directory that may no longer be needed on the server: look at it
    /// (no walk), then [`Planner::dir_left`].
    DirLeft(RelPath),
    /// Something happened to the watch directory itself: look at it, then
    /// [`Planner::root_event`].
    Root,
    /// The mount table changed: take a new snapshot, then
    /// [`Planner::mounts_changed`].
    Mounts,
    /// Watch the tree anew and reconcile it ([`Planner::reconcile`]).
    Rescan(Rescan),
    /// `--remove-source` / `--archive-dir`: the journal records the hand-off
    /// first, then the file goes if it is still the one uploaded (this stamp
    /// and fingerprint); then [`Planner::handed_off`].
    HandOff { rel: RelPath, stamp: Stamp, hash: [u8; 32] },
}

/// Why the tree is watched anew and reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rescan {
    /// Filesystem events were lost.
    Overflow,
    /// The watch directory is back (or was touched): its old watch may be dead.
    RootBack,
}

impl Rescan {
    /// The reconcile's reason, for its log lines.
    pub fn why(self) -> &'static str {
        match self {
            Self::Overflow => "overflow",
            Self::RootBack => "watch directory back",
        }
    }

    /// The line that reports how many files it queued.
    pub fn report(self, queued: usize) -> String {
        match self {
            Self::Overflow => format!("reconcile after overflow: {queued} files queued"),
            Self::RootBack => format!("reconcile: {queued} files queued"),
        }
    }
}

/// What a look at one path below the watch directory found, following no
/// link in any component.
#[derive(Debug)]
pub enum Local {
    File(Stamp),
    /// A directory of the tree, with what a walk of it found when the need
    /// asked for one (else empty).
    Dir(Vec<Found>),
    /// A symbolic link, socket, FIFO or device.
    Other(FileKind),
    /// Not in the tree (missing, or below a link or a file), and how the
    /// watch directory looked then (the delete guard needs it).
    Gone(Root),
    /// The look failed.
    Unreadable(String),
}

/// Progress of long work, for the progress bar or lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// More files were queued.
    Queued(u64),
    /// A file was uploaded (so many bytes), or found unchanged (0).
    Done(u64),
}

/// What a hook (`--on-upload`, `--on-failure`) is told about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Verified on the server (size checked, renamed into place).
    Uploaded { rel: RelPath, size: u64 },
    /// A failure logged for the first time, or given up.
    Failed { rel: RelPath, size: Option<u64>, error: String },
}

/// A file that changed while it was read, uploads in a row.
#[derive(Debug, Default)]
struct Changing {
    attempts: u32,
    /// When the operator was last told that it will not hold still.
    warned: Option<Instant>,
}

/// How long after a failed hand-off (an archive disk away, a file that
/// cannot be removed) it is tried again; the wait doubles up to
/// [`HANDOFF_RETRY_MAX`] while it keeps failing.
pub const HANDOFF_RETRY: Duration = Duration::from_secs(60);
pub const HANDOFF_RETRY_MAX: Duration = Duration::from_secs(3600);

/// The sync state of one run and the rules that change it.
pub struct Planner {
    rules: Rules,
    random: Box<dyn Random>,
    debouncer: Debouncer<RelPath>,
    /// What the server holds, as far as the journal knows.
    synced: BTreeMap<RelPath, Synced>,
    /// Remote directories this tool created (full remote paths).
    created_dirs: HashSet<String>,
    queue: Queue,
    /// Paths whose old kind is being removed from the server before they are
    /// planned again (see `plan::old_kind_in_the_way`).
    replaced: HashSet<RelPath>,
    retries: Retries,
    server: Server,
    listings: Listings,
    /// Halves of moves waiting for their pair (see `changes::flush_moves`).
    moves: Vec<(Change, Instant)>,
    /// Files whose last uploads they outran (they changed while read).
    changed_streak: HashMap<RelPath, Changing>,
    /// Uploads that broke off, with the file's stamp then: they may resume.
    partial: HashMap<RelPath, Stamp>,
    root: RootGuard,
    /// Files waiting for `--min-age`, and the clock.
    ages: age::AgeState,
    /// Skips already logged (name and reason).
    skipped: HashSet<String>,
    failed_for_good: Vec<(String, String)>,
    uploaded_files: u64,
    uploaded_bytes: u64,
    stopping: bool,
    /// `ftpmonitor pause`: no job starts.
    paused: bool,
    batch: Batch,
    needs: VecDeque<Need>,
    tallies: Vec<Tally>,
    notices: Vec<Notice>,
    /// Hand-offs that failed (the file stays): tried again when
    /// `handoff_retry` is due, or at the next reconcile.
    handoffs_failed: HashMap<RelPath, (Stamp, [u8; 32])>,
    /// When the failed hand-offs are tried again, and the wait after that
    /// (doubling from [`HANDOFF_RETRY`] to [`HANDOFF_RETRY_MAX`]).
    handoff_retry: (Option<Instant>, Duration),
    /// Hand-offs the loop gave to the hand-off thread and has not heard of.
    handoffs_running: usize,
    /// The newest hand-off asked for of each file (as uploaded): an answer
    /// about an older one (the file was uploaded again meanwhile) changes
    /// nothing, or it would clear the newer one's journal row.
    handoffs_latest: HashMap<RelPath, (Stamp, [u8; 32])>,
    /// `--last`: the directories whose triggers are not published this run.
    last: last::LastState,
}

impl Planner {
    /// A planner for `workers` connections, knowing what the journal knows
    /// (`synced`, `created_dirs`) and the mounts at start.
    pub fn new(
        rules: Rules,
        cooldown: Duration,
        workers: usize,
        synced: BTreeMap<RelPath, Synced>,
        created_dirs: HashSet<String>,
        mounts: Snapshot,
        random: Box<dyn Random>,
    ) -> Self {
        Self {
            rules,
            random,
            debouncer: Debouncer::new(cooldown, MAX_WAIT),
            synced,
            created_dirs,
            queue: Queue::new(workers),
            replaced: HashSet::new(),
            retries: Retries::default(),
            server: Server::default(),
            listings: Listings::default(),
            moves: Vec::new(),
            changed_streak: HashMap::new(),
            partial: HashMap::new(),
            root: RootGuard::new(mounts),
            ages: age::AgeState::default(),
            skipped: HashSet::new(),
            failed_for_good: Vec::new(),
            uploaded_files: 0,
            uploaded_bytes: 0,
            stopping: false,
            paused: false,
            batch: Batch::default(),
            needs: VecDeque::new(),
            tallies: Vec::new(),
            notices: Vec::new(),
            handoffs_failed: HashMap::new(),
            handoff_retry: (None, HANDOFF_RETRY),
            handoffs_running: 0,
            handoffs_latest: HashMap::new(),
            last: last::LastState::default(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// New options (SIGHUP). Returns whether the tree must be reconciled:
    /// when what is synced (the globs, the ages) or what is deleted
    /// (`--delete`, `--max-delete`) changed; anything else takes effect
    /// without a rescan.
    pub fn set_rules(&mut self, rules: Rules, cooldown: Duration) -> bool {
        let old = std::mem::replace(&mut self.rules, rules);
        self.debouncer.set_cooldown(cooldown);
        old.selection.globs.patterns() != self.rules.selection.globs.patterns()
            || old.delete != self.rules.delete
            || old.max_delete != self.rules.max_delete
            || old.ages != self.rules.ages
    }

    /// A first sync of this job (the journal knows nothing): the tree is
    /// compared with the server's listings, not with the journal.
    ///
    /// Not in move mode (`--remove-source`, `--archive-dir`): the journal
    /// forgets each file handed off, and a file in the tree is one still to
    /// be handed over, whatever the server holds under its name.
    pub fn first_sync(&self) -> bool {
        self.synced.is_empty() && !self.rules.hand_off
    }

    /// The next thing to look at or do, oldest first.
    pub fn poll_need(&mut self) -> Option<Need> {
        self.needs.pop_front()
    }

    /// The journal's writes collected since the last flush.
    pub fn batch_mut(&mut self) -> &mut Batch {
        &mut self.batch
    }

    pub fn take_tallies(&mut self) -> Vec<Tally> {
        std::mem::take(&mut self.tallies)
    }

    /// What the hooks are to hear of, oldest first.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// The earliest of the planner's deadlines: a cooldown ending, a retry,
    /// the server back-off ending (while jobs wait), a move pairing, a look
    /// at the watch directory, a young file old enough (`--min-age`).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let server = if self.queue.has_waiting() && self.queue.running() == 0 { self.server.resume_at() } else { None };
        [
            self.debouncer.next_deadline(),
            self.retries.next_due(),
            server,
            self.root.check_at,
            self.moves.first().map(|(_, t)| *t),
            self.ages.next_due(),
            self.handoff_retry.0,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The deadlines that passed by `now`: halves of moves that found no
    /// pair, paths whose cooldown ended, retries that are due, young files
    /// whose wait ended.
    pub fn tick(&mut self, now: Instant) {
        if self.handoff_retry.0.is_some_and(|at| at <= now) {
            self.handoff_retry = (None, (self.handoff_retry.1 * 2).min(HANDOFF_RETRY_MAX));
            self.retry_handoffs();
        }
        self.flush_moves(now);
        self.young_due(now);
        for rel in self.debouncer.drain_ready(now) {
            self.needs.push_back(Need::Plan(rel));
        }
        while let Some(job) = self.retries.pop_due(now) {
            match job {
                Job::Upload { rel, .. } | Job::Delete(rel) => self.needs.push_back(Need::Plan(rel)),
                other => {
                    self.enqueue(other);
                }
            }
        }
    }

    /// The next job for a worker, if one may start now: none while paused
    /// or stopping; while the server is down one job at a time probes it,
    /// once its back-off ran out. Trigger files (`--last`) wait for the rest
    /// of their directory.
    pub fn next_job(&mut self, now: Instant) -> Option<Job> {
        if self.stopping || self.paused {
            return None;
        }
        loop {
            if !self.server.lets_start(now, self.queue.running()) {
                return None;
            }
            let (job, large) = match self.release_held() {
                Some(job) => (job, false),
                None => self.queue.pop()?,
            };
            let Some(job) = self.scoped(job) else { continue };
            let Some(job) = self.held_back(job) else { continue };
            if let Job::Upload { rel, stamp, .. } = &job {
                self.batch.upload_started(rel.clone(), stamp.len, mtime_ns(stamp.mtime));
            }
            self.queue.started(job.key(), large);
            return Some(job);
        }
    }

    /// Shutdown: nothing more is planned or started; what is still queued
    /// stays in the journal's queue for the next start.
    pub fn stop(&mut self) {
        self.stopping = true;
        self.queue.drain();
    }

    /// `ftpmonitor pause` (true) or `resume`: whether jobs may start.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Jobs queued, not yet started.
    pub fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// Jobs running on the workers.
    pub fn running(&self) -> usize {
        self.queue.running()
    }

    /// Jobs queued or running.
    pub fn outstanding(&self) -> usize {
        self.queue.waiting() + self.queue.running()
    }

    /// Nothing is left to do (`--once` exits then).
    pub fn is_done(&self) -> bool {
        !self.queue.has_waiting()
            && self.queue.running() == 0
            && self.retries.is_empty()
            && self.debouncer.is_empty()
            && self.listings.is_empty()
            && self.needs.is_empty()
            && self.ages.is_empty()
            && self.handoffs_running == 0
    }

    /// Files the journal knows on the server.
    pub fn synced_count(&self) -> usize {
        self.synced.len()
    }

    /// Whether deletes are held because the watch directory went away.
    pub fn root_held(&self) -> bool {
        self.root.held
    }

    /// Files that could not be synced (`--once`): name and why.
    pub fn failed_for_good(&self) -> &[(String, String)] {
        &self.failed_for_good
    }

    /// Files uploaded and their bytes.
    pub fn uploaded(&self) -> (u64, u64) {
        (self.uploaded_files, self.uploaded_bytes)
    }

    /// Logs a skipped name once per reason.
    fn skip_once(&mut self, name: &str, why: &str) {
        if self.skipped.insert(format!("{name}\0{why}")) {
            info!("skipping {}: {why}", Escaped(name));
        }
    }

    /// Queues a job (see [`Queue::push`]).
    fn enqueue(&mut self, job: Job) -> bool {
        self.queue.push(job, self.rules.dry_run)
    }

    /// A path enters the cooldown (and the journal's queue, so that a crash
    /// during the cooldown loses nothing).
    fn touch(&mut self, rel: RelPath, now: Instant) {
        if !self.debouncer.contains(&rel) {
            self.batch.queue(rel.clone(), crate::journal::Op::Upload);
        }
        self.debouncer.push(rel, now);
    }

    /// Synced paths strictly below the directory `dir`: as strings they sort
    /// between `dir/` and `dir0` ('0' follows '/').
    fn synced_below<'a>(&'a self, dir: &RelPath) -> impl Iterator<Item = &'a RelPath> + 'a {
        let lo = RelPath::bound(format!("{}/", dir.as_str()));
        let hi = RelPath::bound(format!("{}0", dir.as_str()));
        self.synced.range(lo..hi).map(|(k, _)| k)
    }

    /// `rel` itself if the journal knows it as a file, else everything
    /// synced below it (a directory).
    fn synced_at_or_below(&self, rel: &RelPath) -> Vec<RelPath> {
        if self.synced.contains_key(rel) { vec![rel.clone()] } else { self.synced_below(rel).cloned().collect() }
    }

    /// The path below REMOTE_DIR of a full remote path.
    fn rel_of_remote(&self, remote: &str) -> Option<RelPath> {
        remote.strip_prefix(&self.rules.remote_dir).map(|r| r.trim_start_matches('/')).and_then(RelPath::parse)
    }
}
