//! The sync rules as tables: a state (the local tree, the journal, the
//! options) and an input (a change, time passing, an outcome, a listing) in,
//! the decision out (the jobs handed to the workers, written short:
//! `upload a`, `delete d/b`, `rename a -> b`, `list /`). The planner is
//! driven as the loop drives it, with a tree in memory answering its looks
//! and a fixed random source for the jitter.
//!
//! The rules README.md ("Usage", "How it syncs") and SPEC.md §3 state, and
//! the test (a table) that checks each, one row or more per rule:
//!
//! - C1 cooldown: a changed path is uploaded once no event touched it for
//!   the cooldown; events inside the cooldown are not dropped, they extend
//!   it (`changes::cooldown`)
//! - C2 a file that never goes quiet is still uploaded at least once a
//!   minute (`changes::cooldown`)
//! - C3 a new directory is walked: files created inside before its watch
//!   existed are uploaded; `--no-recursive` syncs the top level only
//!   (`changes::new_directories`)
//! - C4 a move out of the tree is a removal, a move into it new files; the
//!   halves of a rename inside it are one rename (`changes::moves`)
//! - C5 deletes and renames reach the server only with `--delete`; a rename
//!   is one RNFR/RNTO, not a delete plus an upload, unless something is
//!   pending on either name, an upload runs below the old one, or the old
//!   name is not on the server (`changes::renames`, `changes::deletes`)
//! - C6 skipped, with one log line each: symlinks (never followed), sockets,
//!   FIFOs, devices, unreadable files, excluded paths, names FTP cannot
//!   carry; scope is checked again when a job is handed to a worker
//!   (`changes::skipped`, `changes::scope_at_dispatch`)
//! - C7 `--include`: only matching paths are synced (a matching directory
//!   includes everything below it), excludes still win, and a directory
//!   nothing below which can match is not walked (`changes::includes`)
//! - P1 comparison by content: size and mtime as in the journal → nothing;
//!   same size, new mtime → fingerprint compared before sending; else
//!   uploaded (`plan::by_content`)
//! - P2 reconcile (start, SIGUSR1, overflow, rescan): what is new or changed
//!   is queued, with `--delete` what is gone is deleted; a restart with
//!   nothing changed sends nothing; SIGHUP reconciles only when what is
//!   synced or deleted changed (`plan::reconcile`, `plan::reload`)
//! - P3 `--max-delete`: a reconcile that would delete more than that share
//!   of the synced files holds the deletes (`plan::reconcile`)
//! - P4 a watch directory that vanishes or turns empty while files are
//!   synced never empties the server: deletes are held (queued ones too)
//!   until it is back, then it is reconciled; a disk unmounted below it
//!   holds the deletes of its files (`plan::root_guard`, `plan::mounts`)
//! - P5 an old kind in the way (a directory where a file must go, or a file
//!   where its directory must be) is removed first with `--delete`, else
//!   the path is skipped (`plan::kind_changes`)
//! - P6 after a crash, an upload under way resumes (REST) when the file did
//!   not change, starts over when it did, and its temporary file is removed
//!   when it is gone; old copies renamed aside are cleaned up; the
//!   journal's queue is planned again (`plan::crash_leftovers`)
//! - Q1 one job per path: the newer intent wins (a delete after a queued
//!   upload, an upload after a queued delete), except over a rename; a path
//!   changed while its job runs is looked at again when it ends
//!   (`queue::intent`)
//! - Q2 files of 8 MiB and more have their own queue, so small files never
//!   wait behind them while a connection is free (`queue::large`)
//! - Q3 `--dry-run` sends and changes nothing on the server, but listings
//!   are still read (`queue::dry_run`)
//! - L1 first sync (empty journal): a remote file with the same size and an
//!   mtime no older than the local one counts as synced (MLSD to the second,
//!   LIST with 15 hours' slack), everything else is uploaded
//!   (`listing::first_sync`, `listing::remote_times`)
//! - L2 listings go from the top down: a directory missing on the server is
//!   not listed, nor anything below it; a failed listing tells nothing, and
//!   hidden names are listed anyway (`listing::top_down`)
//! - L3 left-over temporary names from a crash are removed, old copies
//!   renamed aside dropped or renamed back (`listing::leftovers`)
//! - O1 a copy that changed while it was read is never published (unless
//!   `--publish-changing`, from the second attempt); the file is tried again
//!   once quiet, with a warning at most every 10 minutes (`outcome::changing`)
//! - O2 failures are retried with exponential back-off (1 s doubling to
//!   5 min) with jitter; one failing file never blocks the others; a lost
//!   connection is retried for the whole server with its own back-off (to
//!   1 min), one probe at a time; `--once` gives up after 5 attempts; an
//!   upload broken off resumes from what the server kept, except when the
//!   server has no room for it: that copy is removed and the file starts
//!   over (`outcome::failures`, `outcome::server_down`, the tests in
//!   `planner/retry.rs`)
//! - O3 a rename the server refuses becomes an upload under the new name and
//!   a delete of the old one (`outcome::failures`)
//! - O4 after a verified upload the journal holds its size, mtime and
//!   fingerprint, but an mtime as recent as the read is not trusted; a
//!   delete removes the remote directories the tool created once they are
//!   empty; a rename moves what the journal knows (`outcome::success`,
//!   `outcome::racy_mtime`)
//! - O5 the hooks hear of each verified upload, of a file's first failure
//!   (not of each retry), of a local failure and of a `--once` give-up
//!   (`outcome::hook_notices`)
//! - O6 move mode (`--remove-source`, `--archive-dir`): a file is handed off
//!   only after its verified upload and only as uploaded; one changed
//!   meanwhile is sent again; the journal forgets what went; no first sync
//!   by listings (`outcome::hand_off`); a failed hand-off is tried again after
//!   1 min, doubling to 1 h (`outcome::failed_hand_off_is_tried_again_after_a_minute_then_less_often`)
//! - G1 with `--min-age` a file is uploaded once its mtime is that old; a write
//!   meanwhile starts the wait again; an mtime in the future counts once the
//!   file held still that long; `--once` leaves a young file for a later run
//!   (`ages::min_age_waits`)
//! - G2 with `--max-age` a file modified longer ago is left alone, by events,
//!   reconciles and the first sync, and is not gone for `--delete`
//!   (`ages::max_age_leaves_old_files`)
//! - G3 a SIGHUP that changes the ages reconciles (`ages::reload`)
//! - K1 `--last`: a trigger file is published only after every other pending
//!   file of its directory (cooling down, queued, running, retrying); triggers
//!   do not wait for one another; with `--once` a trigger whose data failed
//!   for good is not published (`last::trigger_waits`)
//! - K2 `--order`: the files of a directory are published one at a time, the
//!   first by the order (arrival, mtime, name, size) first; directories go in
//!   parallel (`order::one_directory_in_order`)

mod ages;
mod changes;
mod last;
mod listing;
mod order;
mod outcome;
mod plan;
mod queue;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::retry::Random;
use super::{Local, Need, Planner, Rescan, Root, Rules, Selection};
use crate::event::{Change, Done, Job, Outcome};
use crate::ftp::{Failure, Kind, RemoteEntry, Uploaded};
use crate::journal::{Synced, mtime_ns};
use crate::localfs::{FileKind, Found, Meta, Stamp};
use crate::mounts::Snapshot;
use crate::relpath::RelPath;
use crate::scope::Scope;

pub const WATCH: &str = "/w";
pub const REMOTE: &str = "/r";
pub const COOLDOWN: Duration = Duration::from_secs(1);
/// The wall clock at the start of a test, in seconds after the epoch.
pub const NOW: u64 = 2_000_000_000;

/// A time stamp `secs` after the epoch.
pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn rel(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

pub fn abs(s: &str) -> PathBuf {
    if s.is_empty() { PathBuf::from(WATCH) } else { Path::new(WATCH).join(s) }
}

/// One thing in the tree in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fake {
    File {
        len: u64,
        mtime: u64,
    },
    Dir,
    Link,
    Fifo,
    /// A directory that cannot be read.
    Unreadable,
}

/// The local tree, in memory: paths below WATCH.
#[derive(Debug, Default, Clone)]
pub struct Fs {
    pub entries: BTreeMap<String, Fake>,
    /// The watch directory itself is gone (unmounted, removed).
    pub root_gone: bool,
}

impl Fs {
    pub fn put(&mut self, path: &str, what: Fake) {
        let mut dir = path;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            self.entries.entry(parent.to_string()).or_insert(Fake::Dir);
            dir = parent;
        }
        self.entries.insert(path.to_string(), what);
    }

    pub fn remove(&mut self, path: &str) {
        self.entries.retain(|p, _| p != path && !p.starts_with(&format!("{path}/")));
    }

    fn root(&self) -> Root {
        if self.root_gone {
            Root::Gone
        } else if self.entries.is_empty() {
            Root::Empty
        } else {
            Root::Entries
        }
    }

    fn meta(len: u64, mtime: u64) -> Meta {
        Meta { kind: FileKind::File, len, modified: Some(at(mtime)) }
    }

    /// A look at `path` as localfs gives it: below a link or a file, gone.
    fn look(&self, path: &str, walk: bool, scope: &Selection) -> Local {
        let blocked =
            std::iter::successors(path.rsplit_once('/').map(|(d, _)| d), |p| p.rsplit_once('/').map(|(d, _)| d))
                .any(|a| !matches!(self.entries.get(a), Some(Fake::Dir) | None));
        match (self.entries.get(path), blocked || self.root_gone) {
            (_, true) | (None, _) => Local::Gone(self.root()),
            (Some(Fake::File { len, mtime }), _) => Local::File(Stamp { len: *len, mtime: Some(at(*mtime)) }),
            (Some(Fake::Dir), _) => Local::Dir(if walk { self.walk(Some(path), scope) } else { Vec::new() }),
            (Some(Fake::Link), _) => Local::Other(FileKind::Symlink),
            (Some(Fake::Fifo), _) => Local::Other(FileKind::Special),
            (Some(Fake::Unreadable), _) => Local::Unreadable("Permission denied (os error 13)".into()),
        }
    }

    /// A walk as localfs gives it (paths relative to the watch directory):
    /// directories entered (not reported), links and special files reported
    /// as skipped, excluded names left out.
    fn walk(&self, dir: Option<&str>, scope: &Selection) -> Vec<Found> {
        if self.root_gone || !scope.walks_into(dir.and_then(RelPath::parse).as_ref()) {
            return Vec::new();
        }
        let prefix = dir.map_or_else(String::new, |d| format!("{d}/"));
        let mut out = Vec::new();
        let ancestors =
            |p: &'_ str| std::iter::successors(Some(p.to_string()), |a| a.rsplit_once('/').map(|(d, _)| d.to_string()));
        for (path, what) in self.entries.range(prefix.clone()..) {
            let Some(inner) = path.strip_prefix(&prefix) else { break };
            let kind = |p: &str| match self.entries.get(p) {
                Some(Fake::File { .. }) => FileKind::File,
                Some(Fake::Link) => FileKind::Symlink,
                Some(Fake::Fifo) => FileKind::Special,
                Some(Fake::Dir | Fake::Unreadable) | None => FileKind::Dir,
            };
            let excluded = ancestors(path).any(|a| !scope.keeps(&abs(&a), kind(&a)));
            let below_unreadable = ancestors(path).skip(1).any(|a| self.entries.get(&a) == Some(&Fake::Unreadable));
            if (!scope.recursive && inner.contains('/')) || excluded || below_unreadable {
                continue;
            }
            match what {
                Fake::File { len, mtime } => out.push(Found::File(PathBuf::from(path), Self::meta(*len, *mtime))),
                Fake::Dir => {}
                Fake::Link => out.push(Found::Skipped(PathBuf::from(path), FileKind::Symlink)),
                Fake::Fifo => out.push(Found::Skipped(PathBuf::from(path), FileKind::Special)),
                Fake::Unreadable => {
                    out.push(Found::Unreadable(PathBuf::from(path), std::io::ErrorKind::PermissionDenied.into()));
                }
            }
        }
        out
    }
}

/// Random numbers from a list, round and round.
pub struct Fixed(pub Vec<u64>, pub usize);

impl Random for Fixed {
    fn next_u64(&mut self) -> u64 {
        let r = self.0[self.1 % self.0.len()];
        self.1 += 1;
        r
    }
}

/// The state a row starts from.
pub struct Given {
    pub rules: Rules,
    pub fs: Fs,
    synced: BTreeMap<RelPath, Synced>,
    created_dirs: HashSet<String>,
    workers: usize,
    random: Vec<u64>,
}

impl Given {
    pub fn new() -> Self {
        Self {
            rules: Rules {
                selection: Selection {
                    watch_dir: PathBuf::from(WATCH),
                    recursive: true,
                    globs: Scope::new(&[], &[]).unwrap(),
                },
                remote_dir: REMOTE.to_string(),
                delete: false,
                max_delete: 50,
                publish_changing: false,
                ages: crate::planner::Ages::default(),
                once: false,
                dry_run: false,
                hand_off: false,
                last: crate::scope::Globs::default(),
                order: None,
            },
            fs: Fs::default(),
            synced: BTreeMap::new(),
            created_dirs: HashSet::new(),
            workers: 2,
            // 500 of 1000: the jitter's middle, the delay as computed.
            random: vec![500],
        }
    }

    /// With `--delete`, and one file synced that stays: the watch directory
    /// does not look unmounted to the delete guard.
    pub fn deleting() -> Self {
        Self::new().delete().synced("keep", 1, 100)
    }

    /// Options: `.with(|r| r.once = true)`.
    pub fn with(mut self, set: fn(&mut Rules)) -> Self {
        set(&mut self.rules);
        self
    }

    pub fn delete(mut self) -> Self {
        self.rules.delete = true;
        self
    }

    pub fn exclude(self, glob: &str) -> Self {
        self.globs(&[glob], &[])
    }

    /// `--exclude` and `--include` globs.
    pub fn globs(mut self, exclude: &[&str], include: &[&str]) -> Self {
        self.rules.selection.globs = globs(exclude, include);
        self
    }

    /// `--min-age` and `--max-age`.
    pub fn ages(mut self, ages: crate::planner::Ages) -> Self {
        self.rules.ages = ages;
        self
    }

    pub fn max_delete(mut self, percent: u8) -> Self {
        self.rules.max_delete = percent;
        self
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    pub fn random(mut self, r: &[u64]) -> Self {
        self.random = r.to_vec();
        self
    }

    /// A local file (and its directories).
    pub fn file(mut self, path: &str, len: u64, mtime: u64) -> Self {
        self.fs.put(path, Fake::File { len, mtime });
        self
    }

    pub fn put(mut self, path: &str, what: Fake) -> Self {
        self.fs.put(path, what);
        self
    }

    /// What the journal knows on the server.
    pub fn journal(mut self, path: &str, len: u64, mtime: u64) -> Self {
        let s = Synced { size: len, mtime_ns: mtime_ns(Some(at(mtime))), hash: Some([7; 32]) };
        self.synced.insert(rel(path), s);
        self
    }

    /// A local file that the journal knows synced as it is.
    pub fn synced(self, path: &str, len: u64, mtime: u64) -> Self {
        self.file(path, len, mtime).journal(path, len, mtime)
    }

    pub fn created_dir(mut self, remote: &str) -> Self {
        self.created_dirs.insert(remote.to_string());
        self
    }

    pub fn start(self) -> H {
        let t0 = Instant::now();
        let mut p = Planner::new(
            self.rules,
            COOLDOWN,
            self.workers,
            self.synced,
            self.created_dirs,
            Snapshot::default(),
            Box::new(Fixed(self.random, 0)),
        );
        p.set_clock(t0, at(NOW));
        H {
            p,
            fs: self.fs,
            t0,
            now: t0,
            wall: at(NOW),
            running: Vec::new(),
            rescans: Vec::new(),
            handed: Vec::new(),
            handoff_error: None,
        }
    }
}

/// The planner, the tree it looks at, and the clock, driven as the loop does.
pub struct H {
    pub p: Planner,
    pub fs: Fs,
    pub t0: Instant,
    pub now: Instant,
    pub wall: SystemTime,
    /// Jobs handed out and not finished.
    pub running: Vec<Job>,
    /// The rescans it asked for.
    pub rescans: Vec<Rescan>,
    /// The files it asked to hand off (move mode).
    pub handed: Vec<String>,
    /// Hand-offs fail with this error (an archive disk gone).
    pub handoff_error: Option<String>,
}

impl H {
    /// Answers what the planner needs, as `app::local` does.
    pub fn settle(&mut self) {
        while let Some(need) = self.p.poll_need() {
            let scope = self.p.rules().selection.clone();
            let now = self.now;
            match need {
                Need::Plan(r) => {
                    let l = self.fs.look(r.as_str(), true, &scope);
                    self.p.plan(r, l, now);
                }
                Need::Appeared(r) => {
                    let l = self.fs.look(r.as_str(), true, &scope);
                    self.p.appeared(r, l, now);
                }
                Need::TouchInside(r) => {
                    let l = self.fs.look(r.as_str(), true, &scope);
                    self.p.touch_inside(r, l, now);
                }
                Need::DirLeft(r) => {
                    let l = self.fs.look(r.as_str(), false, &scope);
                    self.p.dir_left(r, &l);
                }
                Need::Root => {
                    let root = self.fs.root();
                    self.p.root_event(root, now);
                }
                Need::Mounts => {}
                Need::Rescan(why) => {
                    self.rescans.push(why);
                    self.reconcile();
                }
                Need::HandOff { rel, stamp, hash } => {
                    // As localfs does: only the file as uploaded goes.
                    let result = match self.fs.entries.get(rel.as_str()) {
                        _ if self.handoff_error.is_some() => Err(self.handoff_error.clone().unwrap_or_default()),
                        Some(Fake::File { len, mtime }) if stamp == Fs::meta(*len, *mtime).stamp() => {
                            self.fs.remove(rel.as_str());
                            Ok(crate::localfs::HandedOff::Done)
                        }
                        Some(_) => Ok(crate::localfs::HandedOff::Changed),
                        None => Ok(crate::localfs::HandedOff::Gone),
                    };
                    self.handed.push(rel.to_string());
                    self.p.handed_off(rel, (stamp, hash), result, now);
                }
            }
        }
    }

    pub fn change(&mut self, c: Change) {
        self.p.on_change(c, self.now);
        self.settle();
    }

    /// An event on `path` (created, written, removed).
    pub fn touched(&mut self, path: &str) {
        self.change(Change::Touched(abs(path)));
    }

    /// Time passes: the deadlines due meanwhile are handled.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        // As the loop does after each wait.
        self.wall += d;
        self.p.set_clock(self.now, self.wall);
        self.p.tick(self.now);
        self.settle();
        if self.p.root_check_due(self.now) {
            let root = self.fs.root();
            self.p.root_checked(root, self.now);
        }
        self.settle();
    }

    /// An event on `path`, and its cooldown.
    pub fn changed(&mut self, path: &str) {
        self.touched(path);
        self.quiet();
    }

    /// An event on `path`, its cooldown, and the workers take their jobs.
    pub fn send(&mut self, path: &str) -> Vec<String> {
        self.changed(path);
        self.jobs()
    }

    /// SIGHUP added an exclude.
    pub fn exclude_now(&mut self, glob: &str) {
        self.globs_now(&[glob], &[]);
    }

    /// SIGHUP changed the `--exclude` and `--include` globs.
    pub fn globs_now(&mut self, exclude: &[&str], include: &[&str]) {
        let mut rules = self.p.rules().clone();
        rules.selection.globs = globs(exclude, include);
        let _ = self.p.set_rules(rules, COOLDOWN);
    }

    /// Until every cooldown has ended.
    pub fn quiet(&mut self) {
        self.advance(COOLDOWN + Duration::from_millis(1));
    }

    /// A look at the watch directory and, if it looks like itself, a walk of it.
    fn whole_tree(&self) -> (Root, Vec<Found>) {
        let root = self.fs.root();
        let found = if self.p.root_ok(root) { self.fs.walk(None, &self.p.rules().selection) } else { Vec::new() };
        (root, found)
    }

    pub fn reconcile(&mut self) -> usize {
        let (root, found) = self.whole_tree();
        let n = self.p.reconcile("test", root, found, self.now);
        self.settle();
        n
    }

    pub fn compare(&mut self) -> usize {
        let (root, found) = self.whole_tree();
        let n = self.p.compare_with_server("test", root, found, self.now);
        self.settle();
        n
    }

    /// The jobs the workers get now, written short (they stay running).
    pub fn jobs(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            while let Some(job) = self.p.next_job(self.now) {
                out.push(show(&job));
                self.running.push(job);
            }
            if self.p.needs.is_empty() {
                return out;
            }
            self.settle();
        }
    }

    /// The running job written `name` ends with `result`.
    pub fn finish(&mut self, name: &str, result: Result<Done, Failure>) {
        let i = self.running.iter().position(|j| show(j) == name).unwrap_or_else(|| {
            panic!("{name} is not running; running: {:?}", self.running.iter().map(show).collect::<Vec<_>>())
        });
        let job = self.running.remove(i);
        let outcome = Outcome { job, result, elapsed: Duration::from_millis(10), created_dirs: Vec::new() };
        self.p.on_done(outcome, self.now, self.wall);
        self.settle();
    }

    /// The running job `name` succeeds (an upload as planned).
    pub fn succeed(&mut self, name: &str) {
        let done = match self.running.iter().find(|j| show(j) == name) {
            Some(Job::Upload { stamp, .. }) => {
                Done::Uploaded(Uploaded { bytes: stamp.len, stamp: *stamp, blake3: [1; 32] })
            }
            _ => Done::Ok,
        };
        self.finish(name, Ok(done));
    }

    pub fn fail(&mut self, name: &str, kind: Kind, message: &str) {
        self.finish(name, Err(Failure::new(kind, message)));
    }

    /// Every running job succeeds.
    pub fn all_succeed(&mut self) {
        while let Some(job) = self.running.first() {
            let name = show(job);
            self.succeed(&name);
        }
    }

    /// The listing `name` (`list /`, `list d`) shows `entries`.
    pub fn listed(&mut self, name: &str, entries: Vec<RemoteEntry>) {
        self.finish(name, Ok(Done::Listed(entries)));
    }

    /// A comparison with the server starts, and the listing of REMOTE_DIR
    /// shows `entries`.
    pub fn list_top(&mut self, entries: Vec<RemoteEntry>) {
        self.compare();
        assert_eq!(self.jobs(), ["list /"]);
        self.listed("list /", entries);
    }

    /// What the journal says the server holds.
    pub fn journal(&self) -> Vec<String> {
        self.p.synced.keys().map(ToString::to_string).collect()
    }
}

pub fn globs(exclude: &[&str], include: &[&str]) -> Scope {
    let owned = |g: &[&str]| g.iter().map(ToString::to_string).collect::<Vec<_>>();
    Scope::new(&owned(exclude), &owned(include)).unwrap()
}

/// A remote file as MLSD shows it.
pub fn remote(name: &str, size: u64, mtime: u64) -> RemoteEntry {
    RemoteEntry { name: name.into(), is_file: true, size, modified: Some(at(mtime)), exact_time: true }
}

pub fn remote_dir(name: &str) -> RemoteEntry {
    RemoteEntry { name: name.into(), is_file: false, size: 0, modified: None, exact_time: true }
}

/// A job, short: `upload a`, `upload a (compare)`, `delete a`, `rename a -> b`.
pub fn show(job: &Job) -> String {
    match job {
        Job::Upload { rel, resume, snapshot, known, .. } => format!(
            "upload {rel}{}{}{}",
            if known.is_some() { " (compare)" } else { "" },
            if resume.is_some() { " (resume)" } else { "" },
            if *snapshot { " (snapshot)" } else { "" }
        ),
        Job::Delete(rel) => format!("delete {rel}"),
        Job::Rename { from, to } => format!("rename {from} -> {to}"),
        Job::List(None) => "list /".into(),
        Job::List(Some(d)) => format!("list {d}"),
        Job::RemoveTemp(rel) => format!("remove temp {rel}"),
        Job::RemoveAside { rel, restore } => format!("aside {rel} {}", if *restore { "restore" } else { "drop" }),
        Job::RemoveDir(d) => format!("rmdir {d}"),
    }
}

/// One row of a table: the rule, the state, the input, the jobs out.
pub struct Row {
    pub rule: &'static str,
    pub given: fn() -> Given,
    pub when: fn(&mut H),
    pub then: &'static [&'static str],
}

/// Runs every row; a failing row is named.
pub fn run(rows: &[Row]) {
    for row in rows {
        let mut h = (row.given)().start();
        (row.when)(&mut h);
        let got = h.jobs();
        assert_eq!(got, row.then, "rule: {}", row.rule);
    }
}
