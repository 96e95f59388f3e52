//! The loop's side of the planner's looks at the local tree: every look and
//! walk goes through `localfs` (no link is followed in any component of a
//! path), and the planner hears what they found. Also the rescans it asks
//! for: watching the tree anew (a new watcher) and reconciling it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{info, warn};

use super::App;
use crate::hooks::HookEvent;
use crate::journal::Op;
use crate::localfs::{FileKind, Found, Tree};
use crate::mounts::Snapshot;
use crate::planner::{Local, Need, Notice, Root, Tally};
use crate::relpath::{EscapedPath, RelPath};
use crate::watcher::Watcher;

/// The most threads a walk of the whole tree uses.
const WALK_THREADS: usize = 4;

impl App {
    /// The watch directory, the only way to what lies below it.
    fn tree(&self) -> Tree {
        Tree::new(self.cfg.watch_dir.clone())
    }

    /// What `rel` is now, and with `walk` what lies below it if it is a directory.
    fn look(&self, rel: &RelPath, walk: bool) -> Local {
        match self.tree().lstat(Path::new(rel.as_str())) {
            Ok(Some(m)) => match m.kind {
                FileKind::File => Local::File(m.stamp()),
                FileKind::Dir => Local::Dir(if walk { self.walk(Some(rel)) } else { Vec::new() }),
                other => Local::Other(other),
            },
            Ok(None) => Local::Gone(self.look_root()),
            Err(e) => Local::Unreadable(e.to_string()),
        }
    }

    /// With `--poll`: notify's poll watcher keeps each file's mtime in whole
    /// seconds and reports only a newer one, so a file written again within
    /// the second of a look would never be reported. Files found in the
    /// second of their last write (or the one before it, for the clocks'
    /// sake) are looked at again once that second is over, as if an event
    /// had come; an unchanged one then costs a stat.
    fn recheck_if_fresh(&mut self, rel: &RelPath, local: &Local, now: Instant) {
        if self.cfg.poll.is_none() {
            return;
        }
        let wall = std::time::SystemTime::now();
        let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let wall_secs = wall.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut fresh = |path: PathBuf, modified: Option<std::time::SystemTime>| {
            let Some(m) = modified.map(secs) else { return };
            if m + 1 >= secs(wall) {
                // Just after the end of that second, by the wall clock.
                let after = Duration::from_secs_f64((m as f64 + 1.1 - wall_secs).max(0.1));
                self.poll_rechecks.entry(now + after).or_default().push(path);
            }
        };
        match local {
            Local::File(stamp) => fresh(rel.to_local(&self.cfg.watch_dir), stamp.mtime),
            Local::Dir(found) => {
                for f in found {
                    if let Found::File(path, meta) = f {
                        fresh(self.cfg.watch_dir.join(path), meta.stamp().mtime);
                    }
                }
            }
            _ => {}
        }
    }

    /// What the watch directory is now.
    pub(super) fn look_root(&self) -> Root {
        let tree = self.tree();
        match tree.root_has_entries() {
            Ok(true) => Root::Entries,
            Ok(false) => Root::Empty,
            Err(_) if tree.root_is_dir() => Root::Unreadable,
            Err(_) => Root::Gone,
        }
    }

    /// What lies below `dir` (`None`: the whole tree), within the selection: an
    /// excluded directory (or one nothing below which can be included) is not
    /// entered, and with `--no-recursive` nothing below the top level is read.
    fn walk(&self, dir: Option<&RelPath>) -> Vec<Found> {
        let selection = &self.planner.rules().selection;
        if !selection.walks_into(dir) {
            return Vec::new();
        }
        let start = dir.map_or_else(PathBuf::new, |d| PathBuf::from(d.as_str()));
        let mut last = None;
        self.tree().walk(&start, selection.recursive, |p, kind| selection.keeps_walked(p, kind, &mut last)).collect()
    }

    /// Answers what the planner needs, until it needs nothing more, and
    /// passes its progress on. Returns whether it needed anything.
    pub(super) fn settle(&mut self) -> bool {
        let mut any = false;
        while let Some(need) = self.planner.poll_need() {
            any = true;
            let now = Instant::now();
            match need {
                Need::Plan(rel) => {
                    let local = self.look(&rel, true);
                    self.recheck_if_fresh(&rel, &local, now);
                    self.planner.plan(rel, local, now);
                }
                Need::Appeared(rel) => {
                    let local = self.look(&rel, true);
                    self.recheck_if_fresh(&rel, &local, now);
                    self.planner.appeared(rel, local, now);
                }
                Need::TouchInside(rel) => {
                    let local = self.look(&rel, true);
                    self.recheck_if_fresh(&rel, &local, now);
                    self.planner.touch_inside(rel, local, now);
                }
                Need::DirLeft(rel) => {
                    let local = self.look(&rel, false);
                    self.planner.dir_left(rel, &local);
                }
                Need::Root => {
                    let root = self.look_root();
                    self.planner.root_event(root, now);
                }
                Need::Mounts => self.planner.mounts_changed(Snapshot::take(&self.cfg.watch_dir), now),
                Need::HandOff { rel, stamp, hash } => self.hand_off(rel, stamp, hash, now),
                Need::Rescan(why) => {
                    self.rewatch();
                    let n = self.reconcile(why.why());
                    info!("{}", why.report(n));
                }
            }
        }
        self.run_hooks();
        for t in self.planner.take_tallies() {
            match t {
                Tally::Queued(n) => self.progress.add(n),
                Tally::Done(bytes) => self.progress.done(bytes),
            }
        }
        any
    }

    /// Has a file whose upload was verified removed or archived (on the
    /// hand-off thread), once the journal knows of it: a crash then neither
    /// loses the file nor hands it over twice. The thread hands it off only
    /// while it is still the file uploaded.
    fn hand_off(&mut self, rel: RelPath, stamp: crate::localfs::Stamp, hash: [u8; 32], now: Instant) {
        if self.planner.batch_mut().has_handoffs() {
            self.flush_journal();
        }
        let refused = if self.journal_failing {
            "the journal cannot be written, so a crash could lose track of it"
        } else {
            match &self.handoffs {
                Some(h) if h.submit(rel.clone(), stamp, hash) => {
                    self.planner.handing_off();
                    return;
                }
                _ => "the hand-off thread has stopped",
            }
        };
        self.planner.handing_off();
        self.planner.handed_off(rel, (stamp, hash), Err(refused.to_string()), now);
    }

    /// Hands what the planner noticed to the hooks (their own threads: this
    /// only queues).
    fn run_hooks(&mut self) {
        for notice in self.planner.take_notices() {
            let (rel, failed, size, error) = match notice {
                Notice::Uploaded { rel, size } => (rel, false, Some(size), None),
                Notice::Failed { rel, size, error } => (rel, true, size, Some(error)),
            };
            let event = HookEvent {
                failed,
                local: rel.to_local(&self.cfg.watch_dir),
                remote: rel.to_remote(&self.cfg.remote_dir),
                rel,
                size,
                error,
            };
            if failed {
                self.hooks.failed(event);
            } else {
                self.hooks.uploaded(event);
            }
        }
    }

    /// Watches the tree anew (a new inotify instance, every directory walked
    /// again): after an overflow, an unmount or a remount.
    pub(super) fn rewatch(&mut self) {
        if self.cfg.once {
            return;
        }
        self.watcher = None;
        match Watcher::start(&self.cfg.watch_dir, self.cfg.recursive, self.cfg.poll, self.tx.clone()) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => warn!(
                "warning: cannot watch {} again: {}",
                EscapedPath(&self.cfg.watch_dir),
                crate::watcher::describe_error(&e)
            ),
        }
    }

    /// A look at the watch directory and, if it looks like itself (see
    /// [`crate::planner::Planner::root_ok`]), a walk of the whole tree, on
    /// as many threads as there are cores (at most [`WALK_THREADS`]): on a
    /// big tree the walk is a stat per file.
    fn whole_tree(&self) -> (Root, impl Iterator<Item = Found> + use<>) {
        let root = self.look_root();
        let found = if self.planner.root_ok(root) {
            let selection = &self.planner.rules().selection;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(WALK_THREADS));
            self.tree().walk_all(Path::new(""), selection.recursive, threads, |p, kind, last| {
                selection.keeps_walked(p, kind, last)
            })
        } else {
            Vec::new()
        };
        (root, found.into_iter().flatten())
    }

    /// The whole tree against the journal (see [`crate::planner::Planner::reconcile`]).
    pub(super) fn reconcile(&mut self, why: &str) -> usize {
        let (root, found) = self.whole_tree();
        self.planner.reconcile(why, root, found, Instant::now())
    }

    /// The whole tree against the server's listings (see
    /// [`crate::planner::Planner::compare_with_server`]).
    pub(super) fn compare_with_server(&mut self, why: &str) -> usize {
        let (root, found) = self.whole_tree();
        self.planner.compare_with_server(why, root, found, Instant::now())
    }

    /// Uploads a previous run left under way, with a look at each file.
    pub(super) fn resume_uploads(&mut self, uploads: Vec<(RelPath, u64, i64)>) {
        for (rel, size, mtime) in uploads {
            let local = self.look(&rel, false);
            self.planner.resume_upload(rel, size, mtime, &local);
        }
    }

    /// The journal's queue as the previous run left it, with a look at each path.
    pub(super) fn resume_leftovers(&mut self, leftovers: Vec<(RelPath, Op, u32)>) {
        let looked = leftovers
            .into_iter()
            .map(|(rel, _, _)| {
                let local = self.look(&rel, true);
                (rel, local)
            })
            .collect();
        self.planner.resume_leftovers(looked, Instant::now());
    }
}
