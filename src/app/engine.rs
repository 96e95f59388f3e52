//! The sync decisions of the run loop: what a change means, what a quiet path
//! needs (nothing, an upload, a delete), reconciling the tree with the
//! journal, the first sync against an already-populated server, dispatching
//! jobs to the workers, and what each outcome changes.

use std::cmp::Reverse;
use std::path::Path;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::{App, Awaiting, Retry};
use crate::config::ASIDE_SUFFIX;
use crate::event::{Done, Job, Outcome};
use crate::ftp::{Failure, Kind, RemoteEntry, Stamp};
use crate::journal::{Op, Synced, mtime_ns};
use crate::localfs::{FileKind, Found, Meta, Tree};
use crate::relpath::{BadName, Escaped, EscapedPath, RelPath};
use crate::watcher::{Change, Watcher};

/// Per-file retry back-off: first delay and cap.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(300);
/// Server back-off cap (reconnect attempts while it is down).
const SERVER_CAP: Duration = Duration::from_secs(60);
/// A failure that repeats is logged again at most this often.
const RELOG: Duration = Duration::from_secs(600);
/// `--once` gives a file, and the server, this many attempts.
const ONCE_ATTEMPTS: u32 = 5;
/// After this many uploads in a row that the file outran, it is reported (and,
/// with `--publish-changing`, the next copy is published as it was read).
const SNAPSHOT_AFTER: u32 = 2;
/// How long the halves of a move wait for the rename event that pairs them.
const MOVE_PAIRING: Duration = Duration::from_millis(100);
/// Files at least this big go to their own queue, so that small files never
/// wait behind them while another connection is free.
const LARGE: u64 = 8 * 1024 * 1024;

impl App {
    /// A path relative to the watch directory, or `None` (logged) if it is
    /// not synced.
    pub(super) fn rel(&mut self, path: &Path) -> Option<RelPath> {
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
                self.skip_once(&name, "name is not valid UTF-8, which FTP commands cannot carry");
                None
            }
            Err(BadName::LineBreak(name)) => {
                self.skip_once(&name, "name contains a line break, which FTP cannot carry");
                None
            }
        }
    }

    pub(super) fn skip_once(&mut self, name: &str, why: &str) {
        if self.skipped.insert(format!("{name}\0{why}")) {
            info!("skipping {}: {why}", Escaped(name));
        }
    }

    /// A path enters the cooldown (and the journal's queue, so that a crash
    /// during the cooldown loses nothing).
    fn touch(&mut self, rel: RelPath, now: Instant) {
        if !self.debouncer.contains(&rel) {
            self.batch.queue(rel.clone(), Op::Upload);
        }
        self.debouncer.push(rel, now);
    }

    pub(super) fn on_change(&mut self, change: Change) {
        let now = Instant::now();
        match change {
            Change::Touched(p) | Change::Removed(p) => {
                if p == self.cfg.watch_dir {
                    if self.tree().root_is_dir() {
                        // Something happened to the watch directory itself (an
                        // unmount leaves the mount point, and the watch dies
                        // with the file system): look again shortly, which
                        // renews the watch and reconciles.
                        self.root_check_at.get_or_insert(Instant::now() + super::ROOT_RECHECK);
                    } else {
                        self.hold_for_root();
                    }
                    return;
                }
                if let Some(rel) = self.rel(&p) {
                    self.touch(rel, now);
                }
            }
            Change::DirAppeared(p) => {
                if let Some(dir) = self.rel(&p) {
                    for (rel, _) in self.walk(&p) {
                        self.touch(rel, now);
                    }
                    // Walked again once quiet: a file created inside before
                    // notify watched the new directory has no event of its own.
                    self.touch(dir, now);
                }
            }
            Change::MovedOut(_) | Change::MovedIn(_) => self.moves.push((change, now + MOVE_PAIRING)),
            Change::Renamed { from, to } => {
                // The halves of this rename are no separate changes.
                self.moves.retain(|(c, _)| match c {
                    Change::MovedOut(p) => *p != from,
                    Change::MovedIn(p) => *p != to,
                    _ => true,
                });
                self.on_rename(&from, &to, now);
            }
            Change::Rescan => {
                warn!("warning: filesystem events were lost (event queue overflow); reconciling the tree");
                let n = self.reconcile("overflow");
                info!("reconcile after overflow: {n} files queued");
            }
            Change::Error(msg) => warn!("warning: {msg}"),
        }
    }

    /// Halves of moves that no rename claimed in time: a move out is a
    /// removal, a move in a new file or directory.
    pub(super) fn flush_moves(&mut self, now: Instant) {
        if self.moves.first().is_none_or(|(_, t)| *t > now) {
            return;
        }
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.moves).into_iter().partition(|(_, t)| *t <= now);
        self.moves = rest;
        for (change, _) in due {
            match change {
                Change::MovedOut(p) => self.on_change(Change::Removed(p)),
                Change::MovedIn(p) => self.on_change(crate::watcher::appeared(&self.tree(), p)),
                other => self.on_change(other),
            }
        }
    }

    fn on_rename(&mut self, from: &Path, to: &Path, now: Instant) {
        let (Some(from_rel), Some(to_rel)) = (self.rel(from), self.rel(to)) else {
            // Renamed from or to an excluded or unusable name: a delete plus
            // a new file.
            if let Some(rel) = self.rel(from) {
                self.touch(rel, now);
            }
            if let Some(rel) = self.rel(to) {
                if self.is_dir(&rel) {
                    self.on_change(Change::DirAppeared(to.to_path_buf()));
                } else {
                    self.touch(rel, now);
                }
            }
            return;
        };
        let synced_here = self.synced.contains_key(&from_rel) || self.synced_below(&from_rel).next().is_some();
        let busy = self.debouncer.contains(&from_rel)
            || self.in_flight.contains_key(from_rel.as_str())
            || self.queued.contains(from_rel.as_str())
            || self.in_flight.contains_key(to_rel.as_str())
            || self.queued.contains(to_rel.as_str())
            // Any upload below (synced before or new): a remote rename of the
            // directory would move its temporary file away from under it.
            || self.in_flight.keys().any(|k| k.strip_prefix(from_rel.as_str()).is_some_and(|r| r.starts_with('/')));
        if self.cfg.delete && synced_here && !busy && !self.synced.contains_key(&to_rel) {
            self.batch.queue(to_rel.clone(), Op::Upload);
            self.enqueue(Job::Rename { from: from_rel, to: to_rel });
            return;
        }
        self.touch(from_rel, now);
        if self.is_dir(&to_rel) {
            for (rel, _) in self.walk(to) {
                self.touch(rel, now);
            }
        } else {
            self.touch(to_rel, now);
        }
    }

    /// Synced paths strictly below the directory `dir`: as strings they sort
    /// between `dir/` and `dir0` ('0' follows '/').
    fn synced_below<'a>(&'a self, dir: &RelPath) -> impl Iterator<Item = &'a RelPath> + 'a {
        let lo = RelPath::bound(format!("{}/", dir.as_str()));
        let hi = RelPath::bound(format!("{}0", dir.as_str()));
        self.synced.range(lo..hi).map(|(k, _)| k)
    }

    /// The watch directory, the only way to what lies below it: no link is
    /// followed in any component of a path (see `localfs`).
    fn tree(&self) -> Tree {
        Tree::new(self.cfg.watch_dir.clone())
    }

    /// Whether `rel` is a directory of the tree (not a link to one).
    fn is_dir(&self, rel: &RelPath) -> bool {
        matches!(self.tree().lstat(Path::new(rel.as_str())), Ok(Some(Meta { kind: FileKind::Dir, .. })))
    }

    /// Regular files below `dir` with their metadata, skipping (and logging)
    /// what cannot be synced. Symlinks are never followed, nor entered: not
    /// below `dir`, not at `dir` itself, not when a directory is swapped for
    /// one during the walk.
    pub(super) fn walk(&mut self, dir: &Path) -> Vec<(RelPath, Stamp)> {
        let tree = self.tree();
        let Some(start) = tree.relative(dir).map(Path::to_path_buf) else {
            return Vec::new();
        };
        if !self.cfg.recursive && start.components().next().is_some() {
            // Only the top level is synced: nothing below a directory in it.
            return Vec::new();
        }
        let root = self.cfg.watch_dir.clone();
        let excludes = self.cfg.excludes.clone();
        let keep = |p: &Path| !RelPath::from_local(&root, p).is_ok_and(|r| excludes.is_match(r.as_str()));
        let mut out = Vec::new();
        for found in tree.walk(&start, self.cfg.recursive, keep) {
            match found {
                Found::File(path, meta) => {
                    if let Some(rel) = self.rel(&path) {
                        out.push((rel, meta.stamp()));
                    }
                }
                Found::Skipped(path, kind) => {
                    if let Some(rel) = self.rel(&path) {
                        self.skip_not_regular(&rel, kind);
                    }
                }
                Found::Unreadable(path, e) => {
                    self.skip_once(&EscapedPath(&path).to_string(), &format!("cannot read: {e}"));
                    // What lies below an unreadable directory is unknown, not gone.
                    match RelPath::from_local(&root, &path) {
                        Ok(rel) => self.unreadable.push(rel),
                        Err(_) => self.unreadable_root = true,
                    }
                }
            }
        }
        out
    }

    fn skip_not_regular(&mut self, rel: &RelPath, kind: FileKind) {
        if kind == FileKind::Symlink {
            self.skip_once(rel.as_str(), "symbolic link (never followed)");
        } else {
            self.skip_once(rel.as_str(), "not a regular file (socket, FIFO or device)");
        }
    }

    /// Whether the watch directory looks like itself: it exists and, if the
    /// journal knows synced files, it is not empty (an unmounted disk leaves
    /// an empty mount point).
    fn root_ok(&self) -> bool {
        match self.tree().root_has_entries() {
            Ok(any) => self.synced.is_empty() || any,
            Err(_) => false,
        }
    }

    /// Holds every delete until the watch directory is back.
    fn hold_for_root(&mut self) {
        if !self.root_held {
            error!(
                "error: the watch directory {} is missing or empty while {} files are synced: \
                 holding all deletes (nothing is deleted on the server) until it is back",
                EscapedPath(&self.cfg.watch_dir),
                self.synced.len()
            );
            self.root_held = true;
        }
        let queued = &mut self.queued;
        self.pending.retain(|j| {
            let delete = matches!(j, Job::Delete(_));
            if delete {
                queued.remove(&j.key());
            }
            !delete
        });
        self.root_check_at = Some(Instant::now() + super::ROOT_RECHECK);
    }

    pub(super) fn check_root_back(&mut self) {
        if !self.root_ok() {
            self.root_check_at = Some(Instant::now() + super::ROOT_RECHECK);
            return;
        }
        if self.root_held {
            info!("the watch directory {} is back; reconciling", EscapedPath(&self.cfg.watch_dir));
            self.root_held = false;
        }
        if !self.cfg.once {
            // The old watch died with the directory.
            self.watcher = None;
            match Watcher::start(&self.cfg.watch_dir, self.cfg.recursive, self.tx.clone()) {
                Ok(w) => self.watcher = Some(w),
                Err(e) => warn!("warning: cannot watch {} again: {e}", EscapedPath(&self.cfg.watch_dir)),
            }
        }
        let n = self.reconcile("watch directory back");
        info!("reconcile: {n} files queued");
    }

    /// Compares the whole tree with the journal and queues what is new or
    /// changed, and (with `--delete`) what is gone, unless that is more than
    /// `--max-delete` percent of the synced files. Returns how many files
    /// were queued.
    pub(super) fn reconcile(&mut self, why: &str) -> usize {
        if !self.root_ok() {
            self.hold_for_root();
            return 0;
        }
        let root = self.cfg.watch_dir.clone();
        self.unreadable.clear();
        self.unreadable_root = false;
        let files = self.walk(&root);
        let unreadable = std::mem::take(&mut self.unreadable);
        let mut seen = std::collections::HashSet::with_capacity(files.len());
        let mut queued = 0;
        for (rel, stamp) in files {
            seen.insert(rel.clone());
            if self.debouncer.contains(&rel) {
                continue;
            }
            if let Some(s) = self.synced.get(&rel)
                && s.size == stamp.len
                && s.mtime_ns == mtime_ns(stamp.mtime)
            {
                continue;
            }
            if self.plan_file(rel, stamp) {
                queued += 1;
            }
        }
        if self.cfg.delete {
            let gone: Vec<RelPath> = self
                .synced
                .keys()
                .filter(|k| !seen.contains(*k) && self.in_scope(k))
                .filter(|k| !self.unreadable_root && !unreadable.iter().any(|u| k.starts_with(u)))
                .filter(|k| !self.debouncer.contains(k) && !self.in_flight.contains_key(k.as_str()))
                .cloned()
                .collect();
            let limit = self.synced.len() * usize::from(self.cfg.max_delete) / 100;
            if gone.len() > limit && !gone.is_empty() {
                error!(
                    "error: {why}: {} of {} synced files are gone locally, more than --max-delete {} %: \
                     holding these deletes (nothing is deleted on the server); if this is intended, raise \
                     --max-delete (config + SIGHUP, or one run with --once --max-delete 100)",
                    gone.len(),
                    self.synced.len(),
                    self.cfg.max_delete
                );
            } else {
                for rel in gone {
                    self.batch.queue(rel.clone(), Op::Delete);
                    self.enqueue(Job::Delete(rel));
                }
            }
        }
        self.progress.add(queued as u64);
        queued
    }

    /// Whether a journal entry is still within what this run syncs.
    fn in_scope(&self, rel: &RelPath) -> bool {
        self.out_of_scope(rel).is_none()
    }

    /// Why `rel` is outside what this run syncs now, if it is.
    fn out_of_scope(&self, rel: &RelPath) -> Option<&'static str> {
        if !self.cfg.recursive && rel.parent().is_some() {
            Some("below the top level (--no-recursive) now; dropped from the queue")
        } else if self.cfg.excludes.is_match(rel.as_str()) {
            Some("excluded now; dropped from the queue")
        } else {
            None
        }
    }

    /// The job as it may run now: scope is checked again when a job is handed to a
    /// worker, whatever queued it (the journal's queue after a restart, a retry, a plan
    /// made before SIGHUP added an exclude), so that nothing out of scope leaves the
    /// machine. A rename to an excluded name is the delete of the old one; a rename from
    /// one is the upload of the new one.
    fn scoped(&mut self, job: Job) -> Option<Job> {
        let (rel, why) = match &job {
            Job::Upload { rel, .. } | Job::Delete(rel) => match self.out_of_scope(rel) {
                Some(why) => (rel.clone(), why),
                None => return Some(job),
            },
            Job::Rename { from, to } => {
                let decision = (self.out_of_scope(from), self.out_of_scope(to));
                if decision != (None, None) {
                    self.renaming.remove(from);
                }
                return match decision {
                    (None, None) => Some(job),
                    (None, Some(why)) => {
                        self.skip_once(to.as_str(), why);
                        self.batch.dequeue(to.clone());
                        self.batch.queue(from.clone(), Op::Delete);
                        Some(Job::Delete(from.clone()))
                    }
                    (Some(why), to_ok) => {
                        self.skip_once(from.as_str(), why);
                        if to_ok.is_none() {
                            self.plan(to.clone());
                        } else {
                            self.batch.dequeue(to.clone());
                        }
                        None
                    }
                };
            }
            _ => return Some(job),
        };
        self.skip_once(rel.as_str(), why);
        self.retries.remove(rel.as_str());
        self.batch.dequeue(rel);
        None
    }

    /// Compares the tree with the server's listings: one listing per local
    /// directory. A remote file with the same size and an mtime no older than
    /// the local one counts as synced; everything else is uploaded, whatever
    /// the journal says. Used for the first sync of a job (empty journal), so
    /// that an already-populated server is not sent everything again, and on
    /// SIGUSR1, to repair a server that lost files behind our back.
    pub(super) fn compare_with_server(&mut self, why: &str) -> usize {
        if !self.root_ok() {
            self.hold_for_root();
            return 0;
        }
        let root = self.cfg.watch_dir.clone();
        let files = self.walk(&root);
        if files.is_empty() {
            return 0;
        }
        let mut by_dir: std::collections::HashMap<Option<RelPath>, Awaiting> = std::collections::HashMap::new();
        for (rel, stamp) in files {
            let dir = rel.parent().and_then(RelPath::parse);
            by_dir.entry(dir).or_default().push((rel, stamp));
        }
        if !self.awaiting.is_empty() {
            info!("{why}: a comparison with the server's listings is still running; not starting another");
            return 0;
        }
        let n = by_dir.values().map(Vec::len).sum::<usize>();
        info!("{why}: comparing {n} files with the server's listing of up to {} directories", by_dir.len());
        // Listed from the top down: a directory missing on the server has
        // nothing below it, so a first push into an empty remote directory
        // costs one listing, not one per directory.
        let dirs: Vec<Option<RelPath>> = by_dir.keys().cloned().collect();
        for (dir, files) in by_dir {
            self.awaiting.insert(Job::List(dir).key(), files);
        }
        for mut dir in dirs {
            while let Some(d) = dir {
                let parent = d.parent().and_then(RelPath::parse);
                let parent_key = Job::List(parent.clone()).key();
                let known = self.awaiting.contains_key(&parent_key);
                self.awaiting.entry(parent_key.clone()).or_default();
                let siblings = self.list_children.entry(parent_key).or_default();
                if !siblings.contains(&d) {
                    siblings.push(d);
                }
                if known {
                    break;
                }
                dir = parent;
            }
        }
        self.enqueue(Job::List(None));
        n
    }

    /// A directory's listing is in (`entries`), or failed: `missing` when the
    /// server said the directory is not there (550), so nothing below it is.
    fn on_listing(&mut self, job: &Job, entries: Option<Vec<RemoteEntry>>, missing: bool) {
        let Some(files) = self.awaiting.remove(&job.key()) else {
            return;
        };
        let listed = entries.is_some();
        let entries = entries.unwrap_or_default();
        let by_name: std::collections::HashMap<&str, &RemoteEntry> =
            entries.iter().map(|e| (e.name.as_str(), e)).collect();
        let mut matched = 0;
        let mut local_names = std::collections::HashSet::new();
        let mut to_plan = Vec::new();
        for (rel, stamp) in files {
            local_names.insert(rel.file_name().to_string());
            let same = by_name
                .get(rel.file_name())
                .is_some_and(|e| e.is_file && e.size == stamp.len && remote_not_older(e, stamp.mtime));
            let known = self.synced.get(&rel).is_some_and(|s| s.size == stamp.len);
            if same && !known {
                let s = Synced { size: stamp.len, mtime_ns: mtime_ns(stamp.mtime), hash: None };
                self.synced.insert(rel.clone(), s);
                self.batch.synced(rel, s, false);
                matched += 1;
            } else if same {
                matched += 1;
            } else {
                to_plan.push((rel, stamp));
            }
        }
        let queued = to_plan.len();
        for (rel, stamp) in to_plan {
            // Missing or different on the server: send it, whatever the journal says.
            self.batch.queue(rel.clone(), Op::Upload);
            self.queue_upload(rel, stamp, None);
        }
        self.progress.add(queued as u64);
        // Temporary uploads left by a crash, whose file is not being sent now,
        // and old copies a crash left renamed aside.
        if let Job::List(dir) = job {
            let rel_of = |name: &str| {
                RelPath::parse(&dir.as_ref().map_or_else(|| name.to_string(), |d| format!("{}/{name}", d.as_str())))
            };
            for name in crate::ftp::leftover_temps(&entries, &local_names) {
                if let Some(rel) = rel_of(name) {
                    self.enqueue(Job::RemoveTemp(rel));
                }
            }
            for e in &entries {
                if let Some(name) = e.name.strip_suffix(ASIDE_SUFFIX)
                    && let Some(rel) = rel_of(name)
                {
                    let restore = local_names.contains(name) || !self.cfg.delete;
                    self.enqueue(Job::RemoveAside { rel, restore });
                }
            }
        }
        if matched > 0 {
            debug!("listing: {matched} files already on the server, {queued} to upload");
        }
        // The subdirectories: listed where they exist, all missing below a
        // directory that is missing. A listing that failed otherwise tells
        // nothing, and LIST may hide dot-names: those are listed anyway.
        for child in self.list_children.remove(&job.key()).unwrap_or_default() {
            let shown = entries.iter().any(|e| !e.is_file && e.name == child.file_name());
            let unsure = !missing && (!listed || child.file_name().starts_with('.'));
            if shown || unsure {
                self.enqueue(Job::List(Some(child)));
            } else {
                self.on_listing(&Job::List(Some(child)), None, true);
            }
        }
    }

    /// Uploads a previous run left under way (a crash, `kill -9`, an abort at
    /// shutdown): each resumes where the server's temporary file ends if the
    /// local file is still exactly as it was, else starts over (its temporary
    /// file is removed if the file is gone); an old copy an interrupted
    /// publish left renamed aside is cleaned up either way.
    /// Called before the first reconcile, which then plans them as resumable.
    pub(super) fn resume_uploads(&mut self, uploads: Vec<(RelPath, u64, i64)>) {
        for (rel, size, mtime) in uploads {
            let local = match self.tree().lstat(Path::new(rel.as_str())) {
                Ok(Some(m)) if m.kind == FileKind::File => Some(m.stamp()),
                _ => None,
            };
            let restore = local.is_some() || !self.cfg.delete;
            self.enqueue(Job::RemoveAside { rel: rel.clone(), restore });
            match local {
                Some(stamp) if stamp.len == size && mtime_ns(stamp.mtime) == mtime => {
                    debug!("{rel}: an upload of it was under way; resuming it");
                    self.partial.insert(rel.clone(), stamp);
                    self.batch.queue(rel, Op::Upload);
                }
                Some(_) => {
                    // Sent again from the start, over its temporary file.
                    debug!("{rel}: an upload of it was under way, and it changed since; starting over");
                    self.batch.upload_ended(rel.clone());
                    self.batch.queue(rel, Op::Upload);
                }
                None => {
                    self.batch.upload_ended(rel.clone());
                    self.enqueue(Job::RemoveTemp(rel));
                }
            }
        }
    }

    /// Work the previous run left in the journal's queue.
    pub(super) fn resume_leftovers(&mut self, leftovers: Vec<(RelPath, Op, u32)>) {
        if leftovers.is_empty() {
            return;
        }
        info!("resuming {} operations left by the previous run", leftovers.len());
        for (rel, _op, _attempts) in leftovers {
            if !matches!(self.tree().lstat(Path::new(rel.as_str())), Ok(Some(_))) {
                // An upload may have been cut off: do not leave its temporary file.
                self.enqueue(Job::RemoveTemp(rel.clone()));
            }
            if !self.queued.contains(rel.as_str()) {
                self.plan(rel);
            }
        }
    }

    /// Decides what a quiet path needs. What it is is looked at without
    /// following a link in any component: below a directory that became a
    /// link, the path is gone.
    pub(super) fn plan(&mut self, rel: RelPath) {
        match self.tree().lstat(Path::new(rel.as_str())) {
            Ok(Some(m)) if m.kind == FileKind::File => {
                self.plan_file(rel, m.stamp());
            }
            Ok(Some(m)) if m.kind == FileKind::Dir => {
                let local = rel.to_local(&self.cfg.watch_dir);
                self.batch.dequeue(rel);
                for (file, stamp) in self.walk(&local) {
                    if !self.debouncer.contains(&file) {
                        self.plan_file(file, stamp);
                    }
                }
            }
            Ok(Some(m)) => {
                self.skip_not_regular(&rel, m.kind);
                self.batch.dequeue(rel);
            }
            // Missing, or below a link or a file (a directory replaced by
            // one): gone.
            Ok(None) => self.plan_gone(rel),
            Err(e) => {
                self.skip_once(rel.as_str(), &format!("cannot read: {e}"));
                self.batch.dequeue(rel);
            }
        }
    }

    /// A regular file: upload it unless the journal says the server has
    /// these bytes. Returns whether an upload was queued.
    fn plan_file(&mut self, rel: RelPath, stamp: Stamp) -> bool {
        if self.old_kind_in_the_way(&rel) {
            return false;
        }
        if let Some(s) = self.synced.get(&rel).copied()
            && s.size == stamp.len
        {
            let mtime = mtime_ns(stamp.mtime);
            if s.mtime_ns == mtime {
                self.batch.dequeue(rel);
                return false;
            }
            // Same size, new mtime: a worker compares the bytes with the
            // journal's fingerprint before sending anything.
            return self.queue_upload(rel, stamp, s.hash);
        }
        self.queue_upload(rel, stamp, None)
    }

    /// Whether the server still has `rel`'s old kind where the file must go: a
    /// directory of that name (synced files below it), or a file where one of its
    /// directories must be. With `--delete` the old one is removed first (its deletes,
    /// then the empty directory) and the path planned again once that is done;
    /// without, the path cannot be published and is skipped with a log line.
    fn old_kind_in_the_way(&mut self, rel: &RelPath) -> bool {
        if self.replaced.contains(rel) {
            // Being removed: planned again once it is gone.
            return true;
        }
        let below: Vec<RelPath> = self.synced_below(rel).cloned().collect();
        let file_above = std::iter::successors(rel.parent(), |p| p.rsplit_once('/').map(|(d, _)| d))
            .filter_map(RelPath::parse)
            .find(|a| self.synced.contains_key(a));
        if below.is_empty() && file_above.is_none() {
            return false;
        }
        if !self.cfg.delete {
            let why = if below.is_empty() {
                "the server has a file where its directory must be; --delete replaces it"
            } else {
                "the server has a directory of this name; --delete replaces it"
            };
            self.skip_once(rel.as_str(), why);
            self.batch.dequeue(rel.clone());
            return true;
        }
        let (old, doomed) = match file_above {
            Some(file) => (file.clone(), vec![file]),
            None => (rel.clone(), below),
        };
        debug!(
            "{rel}: the server still has {old} as a {}; removing that first",
            if old == *rel { "directory" } else { "file" }
        );
        self.replaced.insert(old);
        self.batch.dequeue(rel.clone());
        for t in doomed {
            self.batch.queue(t.clone(), Op::Delete);
            self.enqueue(Job::Delete(t));
        }
        true
    }

    /// A path whose old kind was removed from the server (see
    /// [`App::old_kind_in_the_way`]) is planned again.
    fn old_kind_gone(&mut self, rel: &RelPath) {
        if self.replaced.remove(rel) {
            self.plan(rel.clone());
        }
    }

    /// The path below REMOTE_DIR of a full remote path.
    fn rel_of_remote(&self, remote: &str) -> Option<RelPath> {
        remote.strip_prefix(&self.cfg.remote_dir).map(|r| r.trim_start_matches('/')).and_then(RelPath::parse)
    }

    fn queue_upload(&mut self, rel: RelPath, stamp: Stamp, known: Option<[u8; 32]>) -> bool {
        self.batch.queue(rel.clone(), Op::Upload);
        let resume = self.partial.get(&rel).copied();
        let snapshot =
            self.cfg.publish_changing && self.changed_streak.get(&rel).is_some_and(|c| c.attempts >= SNAPSHOT_AFTER);
        self.enqueue(Job::Upload { rel, stamp, resume, snapshot, known })
    }

    /// The path is gone locally.
    fn plan_gone(&mut self, rel: RelPath) {
        self.batch.dequeue(rel.clone());
        self.retries.remove(rel.as_str());
        if !self.cfg.delete {
            return;
        }
        // Once the watch directory went away, no removal seen since is
        // trusted: the reconcile when it is back decides, under --max-delete.
        if self.root_held || !self.root_ok() {
            self.hold_for_root();
            return;
        }
        let targets: Vec<RelPath> = if self.synced.contains_key(&rel) {
            vec![rel]
        } else {
            // A directory that went away: everything synced below it.
            self.synced_below(&rel).cloned().collect()
        };
        for t in targets {
            self.batch.queue(t.clone(), Op::Delete);
            self.enqueue(Job::Delete(t));
        }
    }

    /// Queues a job unless it is already queued; a job for a path that is
    /// in flight is planned again once that finishes. Returns whether it was
    /// queued.
    pub(super) fn enqueue(&mut self, job: Job) -> bool {
        let key = job.key();
        // A rename holds its old name too (see `renaming`): nothing may store
        // a new file there before the server has moved the old one away.
        let held = job.path().filter(|p| self.renaming.contains(*p));
        if self.in_flight.contains_key(&key) || held.is_some() {
            if let Some(p) = job.path() {
                debug!("{} waits for the job running on {p}", job_what(&job));
                self.dirty.insert(p.clone());
            }
            return false;
        }
        if self.queued.contains(&key) {
            // The newer intent for a path wins (an upload after a queued
            // delete, a delete after a queued upload), except over a rename,
            // whose old name would stay on the server: the path is looked at
            // again once the rename is done.
            if job.path().is_some() {
                for q in [&mut self.pending, &mut self.pending_large] {
                    if let Some(slot) = q.iter_mut().find(|j| j.key() == key) {
                        if matches!(slot, Job::Rename { .. }) {
                            debug!("{} waits for the {}", job_what(&job), job_what(slot));
                            if let Some(p) = job.path() {
                                self.dirty.insert(p.clone());
                            }
                            return false;
                        }
                        debug!("queued {} instead of {}", job_what(&job), job_what(slot));
                        *slot = job;
                        return true;
                    }
                }
            }
            return false;
        }
        if self.cfg.dry_run && !matches!(job, Job::List(_)) {
            match &job {
                Job::Upload { rel, stamp, .. } => {
                    info!("dry run: would upload {rel} ({})", super::human_bytes(stamp.len));
                }
                Job::Delete(p) => info!("dry run: would delete {p}"),
                Job::Rename { from, to } => info!("dry run: would rename {from} to {to}"),
                Job::RemoveTemp(p) => info!("dry run: would remove the temporary upload of {p}"),
                Job::RemoveAside { rel, .. } => info!("dry run: would clean up an old copy of {rel} renamed aside"),
                Job::RemoveDir(d) => {
                    info!("dry run: would remove the empty directory {}", Escaped(d))
                }
                Job::List(_) => {}
            }
            return false;
        }
        self.queued.insert(key);
        if job.path().is_some() {
            debug!("queued {}", job_what(&job));
        }
        if let Job::Rename { from, .. } = &job {
            self.renaming.insert(from.clone());
        }
        match job {
            Job::Upload { stamp, .. } if stamp.len >= LARGE => self.pending_large.push_back(job),
            _ => self.pending.push_back(job),
        }
        true
    }

    pub(super) fn dispatch(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let now = Instant::now();
        let down = self.server.down_since.is_some();
        if down && (!self.in_flight.is_empty() || self.server.resume_at.is_some_and(|t| t > now)) {
            // While the server is down one job at a time probes it.
            return;
        }
        let large_cap = self.pool.size().saturating_sub(1).max(1);
        while self.free_slots > 0 {
            let take_large = !self.pending_large.is_empty()
                && self.large_in_flight < large_cap
                && (self.pending.is_empty() || self.large_in_flight == 0);
            let job = if take_large { self.pending_large.pop_front() } else { self.pending.pop_front() };
            let Some(job) = job else { break };
            self.queued.remove(&job.key());
            let Some(job) = self.scoped(job) else { continue };
            if let Job::Upload { rel, stamp, .. } = &job {
                self.batch.upload_started(rel.clone(), stamp.len, mtime_ns(stamp.mtime));
            }
            let key = job.key();
            self.in_flight.insert(key, take_large);
            if take_large {
                self.large_in_flight += 1;
            }
            self.free_slots -= 1;
            self.pool.submit(job);
            if down {
                break;
            }
        }
    }

    pub(super) fn on_done(&mut self, outcome: Outcome) {
        let Outcome { job, result, elapsed, created_dirs } = outcome;
        self.free_slots += 1;
        if self.in_flight.remove(&job.key()) == Some(true) {
            self.large_in_flight -= 1;
        }
        for d in created_dirs {
            if self.created_dirs.insert(d.clone()) {
                self.batch.dir_created(d);
            }
        }
        let now = Instant::now();
        if let Job::Upload { rel, .. } = &job {
            // Kept while the server may hold a part of it to resume from.
            let resumable = matches!(&result, Err(f) if f.partial.is_some() || f.kind == Kind::Aborted);
            if !resumable {
                self.batch.upload_ended(rel.clone());
            }
        }
        match result {
            Ok(done) => {
                if !matches!(done, Done::Unchanged(_)) {
                    self.server_up(now);
                }
                if let Some(r) = self.retries.remove(&job.key()) {
                    info!("{}: succeeded after {} failed attempt(s)", job_name(&job), r.attempts);
                }
                self.on_success(&job, done, elapsed);
            }
            Err(f) => self.on_failure(job.clone(), f, now),
        }
        let mut look_again = vec![job.path()];
        if let Job::Rename { from, .. } = &job
            && !self.queued.contains(&job.key())
        {
            // Done (not queued again after a lost connection): the old name is free.
            self.renaming.remove(from);
            look_again.push(Some(from));
        }
        for p in look_again.into_iter().flatten() {
            if self.dirty.remove(p) && self.stop.is_none() {
                self.touch(p.clone(), now);
            }
        }
    }

    fn on_success(&mut self, job: &Job, done: Done, elapsed: Duration) {
        match (job, done) {
            (Job::Upload { rel, .. }, Done::Uploaded(u)) => {
                self.changed_streak.remove(rel);
                self.partial.remove(rel);
                let s = Synced { size: u.stamp.len, mtime_ns: racy_safe_mtime(u.stamp, elapsed), hash: Some(u.blake3) };
                self.synced.insert(rel.clone(), s);
                self.batch.synced(rel.clone(), s, true);
                self.uploaded_files += 1;
                self.uploaded_bytes += u.bytes;
                self.progress.done(u.bytes);
                info!("uploaded {rel} ({}, {} ms)", super::human_bytes(u.bytes), elapsed.as_millis());
            }
            (Job::Upload { rel, .. }, Done::Unchanged(stamp)) => {
                debug!("{rel}: same content, new mtime; not sent again");
                if let Some(s) = self.synced.get(rel).copied() {
                    let s = Synced { mtime_ns: racy_safe_mtime(stamp, elapsed), ..s };
                    self.synced.insert(rel.clone(), s);
                    self.batch.synced(rel.clone(), s, false);
                }
                self.progress.done(0);
            }
            (Job::List(_), Done::Listed(entries)) => self.on_listing(job, Some(entries), false),
            (Job::Delete(rel), _) => {
                self.synced.remove(rel);
                self.batch.forget(rel.clone());
                info!("deleted {rel} on the server");
                self.remove_empty_dirs(rel.parent().and_then(RelPath::parse));
                self.old_kind_gone(rel);
            }
            (Job::Rename { from, to }, _) => {
                let moved: Vec<RelPath> = if self.synced.contains_key(from) {
                    vec![from.clone()]
                } else {
                    self.synced_below(from).cloned().collect()
                };
                for old in moved {
                    if let (Some(s), Some(new)) = (self.synced.remove(&old), old.rebase(from, to)) {
                        self.batch.forget(old);
                        self.synced.insert(new.clone(), s);
                        self.batch.synced(new, s, false);
                    }
                }
                self.batch.dequeue(to.clone());
                let (old_dir, new_dir) = (from.to_remote(&self.cfg.remote_dir), to.to_remote(&self.cfg.remote_dir));
                let moved_dirs: Vec<String> = self
                    .created_dirs
                    .iter()
                    .filter(|d| **d == old_dir || d.starts_with(&format!("{old_dir}/")))
                    .cloned()
                    .collect();
                for d in moved_dirs {
                    self.created_dirs.remove(&d);
                    let new = format!("{new_dir}{}", &d[old_dir.len()..]);
                    self.batch.dir_removed(d);
                    self.created_dirs.insert(new.clone());
                    self.batch.dir_created(new);
                }
                info!("renamed {from} to {to} on the server");
                self.remove_empty_dirs(from.parent().and_then(RelPath::parse));
                // What changed under the new name while the rename waited
                // (an edit, a file added to a renamed directory) is looked at
                // again; unchanged files cost a stat.
                let now = Instant::now();
                if self.is_dir(to) {
                    let local = to.to_local(&self.cfg.watch_dir);
                    for (rel, _) in self.walk(&local) {
                        self.touch(rel, now);
                    }
                } else {
                    self.touch(to.clone(), now);
                }
            }
            (Job::RemoveTemp(rel), _) => debug!("removed any temporary upload of {rel}"),
            (Job::RemoveAside { rel, .. }, _) => debug!("cleaned up any old copy of {rel} renamed aside"),
            (Job::RemoveDir(dir), _) => {
                self.created_dirs.remove(dir);
                self.batch.dir_removed(dir.clone());
                info!("removed the empty directory {} on the server", Escaped(dir));
                if let Some(rel) = self.rel_of_remote(dir) {
                    self.remove_empty_dirs(rel.parent().and_then(RelPath::parse));
                    self.old_kind_gone(&rel);
                }
            }
            (job, _) => debug!("{} done", job_name(job)),
        }
    }

    /// With `--delete`: a remote directory this tool created, that is gone
    /// locally and holds no synced file any more, is removed.
    /// Also a directory the tool did not create, when a file took its name (or the
    /// name of one above it) locally: the file cannot be published otherwise.
    fn remove_empty_dirs(&mut self, dir: Option<RelPath>) {
        let Some(dir) = dir else { return };
        // Still a directory of the tree (not a link to one), or unknown (an
        // error): kept.
        let local = self.tree().lstat(Path::new(dir.as_str()));
        if !self.cfg.delete || matches!(local, Ok(Some(Meta { kind: FileKind::Dir, .. })) | Err(_)) {
            return;
        }
        if self.synced_below(&dir).next().is_some() {
            return;
        }
        let remote = dir.to_remote(&self.cfg.remote_dir);
        if matches!(local, Ok(Some(_))) {
            // A file (or a link) has the directory's name now.
            self.replaced.insert(dir.clone());
        }
        let replaced = self.replaced.iter().any(|r| dir.starts_with(r));
        if self.created_dirs.contains(&remote) || replaced {
            self.enqueue(Job::RemoveDir(remote));
        }
    }

    fn on_failure(&mut self, job: Job, f: Failure, now: Instant) {
        if let (Job::Upload { rel, .. }, Some(stamp)) = (&job, f.partial) {
            self.partial.insert(rel.clone(), stamp);
        }
        if let Job::Upload { rel, .. } = &job
            && f.no_room
        {
            // Its partial copy would keep the server's disk full: removed (also
            // when the failed session could not), and not resumed.
            self.partial.remove(rel);
            self.enqueue(Job::RemoveTemp(rel.clone()));
        }
        let job = match job {
            Job::Upload { rel, stamp, snapshot, known, .. } => {
                let resume = self.partial.get(&rel).copied();
                Job::Upload { rel, stamp, resume, snapshot, known }
            }
            other => other,
        };
        match f.kind {
            Kind::Changed => {
                if let Some(p) = job.path() {
                    let publish_changing = self.cfg.publish_changing;
                    let c = self.changed_streak.entry(p.clone()).or_default();
                    c.attempts += 1;
                    if publish_changing && c.attempts >= SNAPSHOT_AFTER {
                        // It never goes quiet and the operator wants snapshots:
                        // publish what is read next time. The journal keeps its
                        // stamp from before the read, so the settled version
                        // follows once it is quiet.
                        info!("{p} keeps changing while it is uploaded; sending a snapshot of it now");
                        self.plan(p.clone());
                        return;
                    }
                    // A copy that changed while it was read is never published:
                    // a receiver would take the torn file for the real one.
                    debug!("{f}; uploading it once it is quiet");
                    if c.attempts >= SNAPSHOT_AFTER && c.warned.is_none_or(|t| now.duration_since(t) >= RELOG) {
                        warn!(
                            "warning: {p} keeps changing while it is read ({} attempts); a copy that changed \
                             while it was read is never published, so it goes up once it holds still \
                             (--publish-changing publishes such copies)",
                            c.attempts
                        );
                        c.warned = Some(now);
                    }
                    self.touch(p.clone(), now);
                }
            }
            Kind::Vanished => {
                debug!("{f}");
                if let Some(p) = job.path() {
                    self.plan(p.clone());
                }
            }
            Kind::Aborted => {}
            Kind::Connection | Kind::Login | Kind::Tls | Kind::Data => {
                if self.stop.is_some() {
                    return;
                }
                self.server_down(&f, now);
                if self.cfg.once && self.server.failures >= ONCE_ATTEMPTS {
                    self.give_up(&job, &f.message);
                    let rest: Vec<Job> = self.pending.drain(..).chain(self.pending_large.drain(..)).collect();
                    for j in rest {
                        self.give_up(&j, "server unreachable");
                    }
                    self.queued.clear();
                    // Files still waiting for a listing (one in flight, or
                    // of a directory below one) cannot be synced either.
                    for (_, files) in self.awaiting.drain() {
                        for (rel, _) in files {
                            self.failed_for_good.push((rel.to_string(), "server unreachable".to_string()));
                        }
                    }
                    self.list_children.clear();
                    return;
                }
                self.queued.insert(job.key());
                self.pending.push_front(job);
            }
            Kind::Local | Kind::LocalBroken => {
                warn!("warning: {f}; skipped until it changes again");
                if self.cfg.once {
                    self.give_up(&job, &f.message);
                }
                if let Some(p) = job.path() {
                    self.batch.dequeue(p.clone());
                }
            }
            Kind::Transient | Kind::Refused => match job {
                Job::Rename { from, to } => {
                    // The server could not rename: upload under the new name
                    // and delete the old one instead.
                    warn!("warning: {f}; uploading {to} instead");
                    self.touch(from, now);
                    self.touch(to, now);
                }
                Job::List(_) => {
                    // No listing (e.g. the directory does not exist yet):
                    // everything in it is uploaded.
                    debug!("{f}");
                    self.on_listing(&job, None, f.code == Some(550));
                }
                Job::RemoveTemp(_) | Job::RemoveAside { .. } => debug!("{f}"),
                Job::RemoveDir(dir) => {
                    let rel = self.rel_of_remote(&dir);
                    if let Some(rel) = rel.as_ref().filter(|r| self.replaced.contains(*r)) {
                        warn!("warning: {f}: the file {rel} cannot replace that directory until it is empty");
                    } else {
                        debug!("{f}; leaving the directory");
                    }
                    self.created_dirs.remove(&dir);
                    self.batch.dir_removed(dir);
                    if let Some(rel) = rel {
                        self.old_kind_gone(&rel);
                    }
                }
                job => self.retry_later(job, &f, now),
            },
        }
    }

    fn give_up(&mut self, job: &Job, why: &str) {
        if let Job::List(_) = job {
            if let Some(files) = self.awaiting.remove(&job.key()) {
                for (rel, _) in files {
                    self.failed_for_good.push((rel.to_string(), why.to_string()));
                }
            }
            for child in self.list_children.remove(&job.key()).unwrap_or_default() {
                self.give_up(&Job::List(Some(child)), why);
            }
            return;
        }
        self.failed_for_good.push((job_name(job), why.to_string()));
    }

    fn retry_later(&mut self, job: Job, f: &Failure, now: Instant) {
        let key = job.key();
        let r = self.retries.entry(key).or_insert(Retry { attempts: 0, last_logged: now, last_message: String::new() });
        r.attempts += 1;
        let attempts = r.attempts;
        if let Some(p) = job.path() {
            self.batch.failed(p.clone(), attempts, f.message.clone());
        }
        if self.cfg.once && attempts >= ONCE_ATTEMPTS {
            warn!("warning: {f}; giving up after {attempts} attempts");
            self.give_up(&job, &f.message);
            return;
        }
        let delay = jitter(backoff(RETRY_FIRST, RETRY_CAP, attempts));
        let Some(r) = self.retries.get_mut(&job.key()) else {
            return;
        };
        if attempts == 1 || r.last_message != f.message || now.duration_since(r.last_logged) >= RELOG {
            warn!(
                "warning: {f} (attempt {attempts}); retrying in {}",
                humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
            );
            r.last_logged = now;
            r.last_message.clone_from(&f.message);
        } else {
            debug!("{f} (attempt {attempts})");
        }
        self.retry_seq += 1;
        self.retry_jobs.insert(self.retry_seq, job);
        self.retry_at.push(Reverse((now + delay, self.retry_seq)));
    }

    pub(super) fn retry_due(&mut self, job: Job) {
        match job {
            Job::Upload { rel, .. } | Job::Delete(rel) => self.plan(rel),
            other => {
                self.enqueue(other);
            }
        }
    }

    fn server_down(&mut self, f: &Failure, now: Instant) {
        let s = &mut self.server;
        if s.resume_at.is_some_and(|t| t > now) {
            // Another session already reported this outage.
            return;
        }
        s.failures += 1;
        s.backoff = if s.down_since.is_none() { RETRY_FIRST } else { (s.backoff * 2).min(SERVER_CAP) };
        s.resume_at = Some(now + jitter(s.backoff));
        let first = s.down_since.is_none();
        s.down_since.get_or_insert(now);
        let loud = first || s.last_logged.is_none_or(|t| now.duration_since(t) >= RELOG);
        let msg = format!(
            "{}: {f}; retrying in {}",
            if f.kind == Kind::Login { "error: login refused" } else { "warning: server unavailable" },
            humantime::format_duration(Duration::from_secs(s.backoff.as_secs().max(1)))
        );
        if loud {
            warn!("{msg}");
            s.last_logged = Some(now);
            self.batch.error(f.message.clone());
        } else {
            debug!("{msg}");
        }
    }

    fn server_up(&mut self, now: Instant) {
        if let Some(since) = self.server.down_since.take() {
            info!(
                "server reachable again after {}",
                humantime::format_duration(Duration::from_secs(now.duration_since(since).as_secs()))
            );
        }
        self.server = super::ServerState::default();
    }
}

fn job_name(job: &Job) -> String {
    match job {
        Job::Upload { rel, .. } | Job::Delete(rel) => rel.to_string(),
        Job::Rename { from, to } => format!("{from} -> {to}"),
        Job::List(dir) => format!("listing of {}", dir.as_ref().map_or_else(|| "/".to_string(), ToString::to_string)),
        Job::RemoveTemp(rel) => format!("temporary upload of {rel}"),
        Job::RemoveAside { rel, .. } => format!("old copy of {rel} renamed aside"),
        Job::RemoveDir(dir) => Escaped(dir).to_string(),
    }
}

/// A file job, for a debug line about a decision: `upload of a/b.txt`.
fn job_what(job: &Job) -> String {
    match job {
        Job::Upload { rel, .. } => format!("upload of {rel}"),
        Job::Delete(rel) => format!("delete of {rel}"),
        Job::Rename { from, to } => format!("rename of {from} to {to}"),
        other => job_name(other),
    }
}

/// How much newer than the local file a LIST time must be for the remote
/// file to count as synced: LIST shows the server's local time (anything from
/// UTC-12 to UTC+14) in whole minutes, so a copy older than the local file
/// can look up to 14 hours newer. (Dates older than half a year show no time
/// of day and read as midnight: older than they are, which is the safe side.)
const LIST_TIME_SLACK: Duration = Duration::from_secs(15 * 3600);

/// A remote file counts as synced when its mtime is no older than the local
/// one: to the second with MLSD (UTC), by [`LIST_TIME_SLACK`] with LIST.
fn remote_not_older(remote: &RemoteEntry, local: Option<std::time::SystemTime>) -> bool {
    let slack = if remote.exact_time { Duration::ZERO } else { LIST_TIME_SLACK };
    match (remote.modified, local.and_then(|l| l.checked_add(slack))) {
        (Some(r), Some(l)) => {
            let secs = |t: std::time::SystemTime| mtime_ns(Some(t)) / 1_000_000_000;
            secs(r) >= secs(l)
        }
        _ => false,
    }
}

/// The mtime to record for a file read during the last `elapsed`: 0 ("not
/// to be trusted") if the file's mtime is that recent, since a rewrite of the
/// same size within the file system's timestamp granularity would leave size
/// and mtime unchanged. The next look at it then compares fingerprints.
fn racy_safe_mtime(stamp: Stamp, elapsed: Duration) -> i64 {
    let ns = mtime_ns(stamp.mtime);
    // Whole seconds suggest a coarse file system (FAT, SMB, HFS+: up to 2 s);
    // otherwise the kernel's coarse clock ticks in milliseconds.
    let granularity = if ns % 1_000_000_000 == 0 { Duration::from_secs(2) } else { Duration::from_millis(20) };
    let read_start = std::time::SystemTime::now().checked_sub(elapsed + granularity);
    match (stamp.mtime, read_start) {
        (Some(m), Some(start)) if m >= start => 0,
        _ => ns,
    }
}

fn backoff(first: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(cap)
}

/// Spreads a delay over 75–125 % so that many failures do not retry in step.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let frac = 0.75 + (r % 1000) as f64 / 2000.0;
    d.mul_f64(frac)
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
    fn a_file_modified_while_it_was_read_is_not_trusted_by_its_stamp() {
        let now = std::time::SystemTime::now();
        let fresh = Stamp { len: 1, mtime: Some(now) };
        assert_eq!(racy_safe_mtime(fresh, Duration::from_millis(5)), 0);
        let old = now - Duration::from_secs(3600);
        let settled = Stamp { len: 1, mtime: Some(old) };
        assert_eq!(racy_safe_mtime(settled, Duration::from_millis(5)), mtime_ns(Some(old)));
        // Whole seconds (a coarse file system): two seconds count as "during the read".
        let coarse = std::time::UNIX_EPOCH
            + Duration::from_secs(now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 1);
        assert_eq!(racy_safe_mtime(Stamp { len: 1, mtime: Some(coarse) }, Duration::ZERO), 0);
    }

    #[test]
    fn remote_mtime_rule() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mlsd = |modified| RemoteEntry { name: "f".into(), is_file: true, size: 1, modified, exact_time: true };
        assert!(remote_not_older(&mlsd(Some(t)), Some(t + Duration::from_millis(400))));
        assert!(remote_not_older(&mlsd(Some(t + Duration::from_secs(5))), Some(t)));
        assert!(!remote_not_older(&mlsd(Some(t)), Some(t + Duration::from_secs(1))));
        assert!(!remote_not_older(&mlsd(None), Some(t)));
        // LIST: local time of an unknown zone, whole minutes.
        let list = |modified| RemoteEntry { exact_time: false, ..mlsd(modified) };
        assert!(!remote_not_older(&list(Some(t + Duration::from_secs(14 * 3600))), Some(t)));
        assert!(remote_not_older(&list(Some(t + LIST_TIME_SLACK)), Some(t)));
    }
}
