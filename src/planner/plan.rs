//! What a quiet path needs: nothing (the journal says the server has these
//! bytes), an upload (new, or changed; same size and a new mtime lets the
//! worker compare fingerprints first), the removal of an old kind in the way
//! (a directory where a file goes, or the reverse), or with `--delete` the
//! delete of what is gone. Also the whole-tree reconcile against the journal
//! under `--max-delete`, the work a previous run left (uploads under way,
//! the journal's queue), and the scope check when a job is handed out.

use std::time::Instant;

use log::{debug, error, info};

use super::{Local, Need, Planner, Root, Tally};
use crate::event::Job;
use crate::journal::{Op, mtime_ns};
use crate::localfs::{FileKind, Found, Stamp};
use crate::relpath::{EscapedPath, RelPath};
use crate::scope::Out;

/// After this many uploads in a row that the file outran, it is reported (and,
/// with `--publish-changing`, the next copy is published as it was read).
pub const SNAPSHOT_AFTER: u32 = 2;

/// What a walk found that can be synced.
#[derive(Debug, Default)]
pub struct Walked {
    /// Regular files in scope, with their stamps.
    pub files: Vec<(RelPath, Stamp)>,
    /// Directories that could not be read: their files are not gone.
    pub unreadable: Vec<RelPath>,
    /// The walk could not read the watch directory itself.
    pub unreadable_root: bool,
}

impl Planner {
    /// The regular files in scope among what a walk found; links, special
    /// files and unreadable names are skipped with a log line each.
    pub(super) fn files_of(&mut self, found: impl IntoIterator<Item = Found>) -> Walked {
        let found = found.into_iter();
        let mut out = Walked { files: Vec::with_capacity(found.size_hint().0), ..Walked::default() };
        let mut last = None;
        for f in found {
            match f {
                Found::File(path, meta) => {
                    if let Some(rel) = self.rel_walked(path, &mut last) {
                        out.files.push((rel, meta.stamp()));
                    }
                }
                Found::Skipped(path, kind) => {
                    if let Some(rel) = self.rel_walked(path, &mut last) {
                        self.skip_not_regular(&rel, kind);
                    }
                }
                Found::Unreadable(path, e) => {
                    let abs = self.rules.selection.watch_dir.join(&path);
                    self.skip_once(&EscapedPath(&abs).to_string(), &format!("cannot read: {e}"));
                    // What lies below an unreadable directory is unknown, not gone.
                    match RelPath::from_walked(path) {
                        Ok(rel) => out.unreadable.push(rel),
                        Err(_) => out.unreadable_root = true,
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

    /// The answer to [`Need::Plan`]: what a quiet path needs, by what it is
    /// now. Below a directory that became a link (or a file), it is gone.
    pub fn plan(&mut self, rel: RelPath, local: Local, now: Instant) {
        if !matches!(local, Local::File(_)) {
            self.ages.forget(&rel);
        }
        match local {
            // Planned from the queue, a retry or an event's directory: what
            // is out of scope now is dropped here.
            Local::File(stamp) => match self.rules.selection.globs.file(rel.as_str()) {
                Some(Out::Excluded) => {
                    self.ages.forget(&rel);
                    self.skip_once(rel.as_str(), "excluded now; dropped from the queue");
                    self.batch.dequeue(rel);
                }
                Some(Out::NotIncluded) => {
                    self.ages.forget(&rel);
                    debug!("{rel}: not matched by any --include");
                    self.batch.dequeue(rel);
                }
                None => {
                    let before = self.ages.too_old;
                    self.plan_file(rel.clone(), stamp);
                    if self.ages.too_old > before {
                        self.skip_once(rel.as_str(), "older than --max-age; left alone");
                    }
                }
            },
            Local::Dir(found) => {
                self.batch.dequeue(rel);
                for (file, stamp) in self.files_of(found).files {
                    if !self.debouncer.contains(&file) {
                        self.plan_file(file, stamp);
                    }
                }
            }
            Local::Other(kind) => {
                self.skip_not_regular(&rel, kind);
                self.batch.dequeue(rel);
            }
            Local::Gone(root) => self.plan_gone(rel, root, now),
            Local::Unreadable(e) => {
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
            if s.mtime_ns == mtime_ns(stamp.mtime) {
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
        if !self.rules.delete {
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
        self.queue_deletes(doomed);
        true
    }

    /// A path whose old kind was removed from the server (see
    /// `old_kind_in_the_way`) is planned again.
    pub(super) fn old_kind_gone(&mut self, rel: &RelPath) {
        if self.replaced.remove(rel) {
            self.needs.push_back(Need::Plan(rel.clone()));
        }
    }

    /// Queues the upload of `rel` if its age allows (see `age`). Returns
    /// whether it was queued.
    pub(super) fn queue_upload(&mut self, rel: RelPath, stamp: Stamp, known: Option<[u8; 32]>) -> bool {
        if !self.old_enough(&rel, stamp) {
            return false;
        }
        self.batch.queue(rel.clone(), Op::Upload);
        let resume = self.partial.get(&rel).copied();
        let snapshot =
            self.rules.publish_changing && self.changed_streak.get(&rel).is_some_and(|c| c.attempts >= SNAPSHOT_AFTER);
        self.enqueue(Job::Upload { rel, stamp, resume, snapshot, known })
    }

    /// Queues the deletes of `paths`, in the journal's queue too.
    fn queue_deletes(&mut self, paths: Vec<RelPath>) {
        for t in paths {
            self.batch.queue(t.clone(), Op::Delete);
            self.enqueue(Job::Delete(t));
        }
    }

    /// The path is gone locally.
    fn plan_gone(&mut self, rel: RelPath, root: Root, now: Instant) {
        self.batch.dequeue(rel.clone());
        self.retries.forget(rel.as_str());
        if !self.rules.delete {
            return;
        }
        // Once the watch directory (or the disk below it this was on) went
        // away, no removal seen since is trusted: the reconcile when it is
        // back decides, under --max-delete.
        if self.root.on_lost_mount(&rel) {
            return;
        }
        if self.root.held || !self.root_ok(root) {
            self.hold_for_root(now);
            return;
        }
        // A directory that went away: everything synced below it.
        let targets = self.synced_at_or_below(&rel);
        self.queue_deletes(targets);
    }

    /// Compares the whole tree (`found`, a walk of it; `root`, a look at the
    /// watch directory first) with the journal and queues what is new or
    /// changed, and (with `--delete`) what is gone, unless that is more than
    /// `--max-delete` percent of the synced files. Returns how many files
    /// were queued.
    pub fn reconcile(&mut self, why: &str, root: Root, found: impl IntoIterator<Item = Found>, now: Instant) -> usize {
        // Hand-offs that failed are tried again (before the tree is planned).
        self.retry_handoffs();
        if !self.root_ok(root) {
            self.hold_for_root(now);
            return 0;
        }
        let walked = self.files_of(found);
        let too_old = self.ages.too_old;
        // What is still there, for --delete only.
        let mut seen = std::collections::HashSet::with_capacity(if self.rules.delete { walked.files.len() } else { 0 });
        let mut queued = 0;
        for (rel, stamp) in walked.files {
            let unchanged = self.debouncer.contains(&rel)
                || self.synced.get(&rel).is_some_and(|s| s.size == stamp.len && s.mtime_ns == mtime_ns(stamp.mtime));
            if self.rules.delete {
                seen.insert(rel.clone());
            }
            if !unchanged && self.plan_file(rel, stamp) {
                queued += 1;
            }
        }
        self.report_too_old(why, too_old);
        if self.rules.delete {
            let gone: Vec<RelPath> = self
                .synced
                .keys()
                .filter(|k| !seen.contains(*k) && self.rules.selection.contains(k))
                .filter(|k| !walked.unreadable_root && !walked.unreadable.iter().any(|u| k.starts_with(u)))
                .filter(|k| !self.root.on_lost_mount(k))
                .filter(|k| !self.debouncer.contains(k) && !self.queue.is_running(k.as_str()))
                .cloned()
                .collect();
            let limit = self.synced.len() * usize::from(self.rules.max_delete) / 100;
            if gone.len() > limit && !gone.is_empty() {
                error!(
                    "error: {why}: {} of {} synced files are gone locally, more than --max-delete {} %: \
                     holding these deletes (nothing is deleted on the server); if this is intended, raise \
                     --max-delete (config + SIGHUP, or one run with --once --max-delete 100)",
                    gone.len(),
                    self.synced.len(),
                    self.rules.max_delete
                );
            } else {
                self.queue_deletes(gone);
            }
        }
        self.tallies.push(Tally::Queued(queued as u64));
        queued
    }

    /// An upload a previous run left under way (a crash, `kill -9`, an abort
    /// at shutdown), `size` and `mtime` the local file's then, `local` the
    /// file now (no walk): it resumes where the server's temporary file ends
    /// if the file is still exactly as it was, else starts over (its
    /// temporary file is removed if the file is gone); an old copy an
    /// interrupted publish left renamed aside is cleaned up either way.
    /// Given before the first reconcile, which then plans it as resumable.
    pub fn resume_upload(&mut self, rel: RelPath, size: u64, mtime: i64, local: &Local) {
        let local = match local {
            Local::File(stamp) => Some(*stamp),
            _ => None,
        };
        let restore = local.is_some() || !self.rules.delete;
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

    /// Work the previous run left in the journal's queue, with a look at each
    /// path (a walk for a directory).
    pub fn resume_leftovers(&mut self, leftovers: Vec<(RelPath, Local)>, now: Instant) {
        if leftovers.is_empty() {
            return;
        }
        info!("resuming {} operations left by the previous run", leftovers.len());
        for (rel, local) in leftovers {
            if matches!(local, Local::Gone(_) | Local::Unreadable(_)) {
                // An upload may have been cut off: do not leave its temporary file.
                self.enqueue(Job::RemoveTemp(rel.clone()));
            }
            if !self.queue.is_queued(rel.as_str()) {
                self.plan(rel, local, now);
            }
        }
    }

    /// The job as it may run now: scope is checked again when a job is handed to a
    /// worker, whatever queued it (the journal's queue after a restart, a retry, a plan
    /// made before SIGHUP added an exclude), so that nothing out of scope leaves the
    /// machine. A rename to an excluded name is the delete of the old one; a rename from
    /// one is the upload of the new one.
    pub(super) fn scoped(&mut self, job: Job) -> Option<Job> {
        let (rel, why) = match &job {
            Job::Upload { rel, .. } | Job::Delete(rel) => match self.rules.selection.out_of_scope(rel, true) {
                Some(why) => (rel.clone(), why),
                None => return Some(job),
            },
            Job::Rename { from, to } => {
                // A rename of a synced file, else of a directory.
                let file = self.synced.contains_key(from);
                let selection = &self.rules.selection;
                let decision = (selection.out_of_scope(from, file), selection.out_of_scope(to, file));
                if decision != (None, None) {
                    self.queue.rename_over(from);
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
                            self.needs.push_back(Need::Plan(to.clone()));
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
        self.retries.forget(rel.as_str());
        self.batch.dequeue(rel);
        None
    }
}
