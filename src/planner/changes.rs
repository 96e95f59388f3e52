//! What a filesystem change means: a path enters the cooldown (and the
//! journal's queue); a new directory is walked, since events for what was
//! created inside it before its watch existed can be missing; the halves of
//! a move wait briefly for the rename that pairs them; a rename becomes a
//! remote rename when `--delete` is on, the old name is synced and nothing
//! is busy on either name, else a delete plus new uploads.

use std::path::Path;
use std::time::{Duration, Instant};

use log::warn;

use super::{Local, Need, Planner, Rescan};
use crate::event::{Change, Job};
use crate::journal::Op;
use crate::relpath::RelPath;

/// How long the halves of a move wait for the rename event that pairs them.
pub const MOVE_PAIRING: Duration = Duration::from_millis(100);

impl Planner {
    /// A path relative to the watch directory, or `None` (logged) if it is
    /// not synced.
    pub(super) fn rel(&mut self, path: &Path) -> Option<RelPath> {
        let r = self.rules.selection.rel(path);
        self.admitted(r)
    }

    /// [`Planner::rel`] for the entries of a walk (see
    /// [`crate::planner::selection::Selection::rel_walked`]).
    pub(super) fn rel_walked(
        &mut self,
        path: std::path::PathBuf,
        last: &mut Option<(String, bool)>,
    ) -> Option<RelPath> {
        let r = self.rules.selection.rel_walked(path, last);
        self.admitted(r)
    }

    fn admitted(&mut self, r: Result<RelPath, super::selection::Unsynced>) -> Option<RelPath> {
        match r {
            Ok(rel) => Some(rel),
            Err(Some((name, why))) => {
                self.skip_once(&name, why);
                None
            }
            Err(None) => None,
        }
    }

    /// A filesystem change (ignored once stopping).
    pub fn on_change(&mut self, change: Change, now: Instant) {
        if self.stopping {
            return;
        }
        match change {
            Change::Touched(p) | Change::Removed(p) => {
                if p == self.rules.selection.watch_dir {
                    self.needs.push_back(Need::Root);
                } else if let Some(rel) = self.rel(&p) {
                    self.touch(rel, now);
                }
            }
            Change::DirAppeared(p) => {
                if let Some(dir) = self.rel(&p) {
                    self.needs.push_back(Need::Appeared(dir));
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
                warn!(
                    "warning: filesystem events were lost (event queue overflow); watching the tree anew \
                     and reconciling it"
                );
                // Directories created meanwhile got no watch: notify adds one
                // only when it sees the creation.
                self.needs.push_back(Need::Rescan(Rescan::Overflow));
            }
            Change::Mounts => self.needs.push_back(Need::Mounts),
            Change::Error(msg) => warn!("warning: {msg}"),
        }
    }

    /// The answer to [`Need::Appeared`]: a directory's files enter the
    /// cooldown, and so does the directory itself (walked again once quiet:
    /// a file created inside before notify watched it has no event of its
    /// own); anything else is touched.
    pub fn appeared(&mut self, rel: RelPath, local: Local, now: Instant) {
        if let Local::Dir(found) = local {
            for (file, _) in self.files_of(found).files {
                self.touch(file, now);
            }
        }
        self.touch(rel, now);
    }

    /// The answer to [`Need::TouchInside`]: a directory's files enter the
    /// cooldown, or the path itself if it is no directory.
    pub fn touch_inside(&mut self, rel: RelPath, local: Local, now: Instant) {
        match local {
            Local::Dir(found) => {
                for (file, _) in self.files_of(found).files {
                    self.touch(file, now);
                }
            }
            _ => self.touch(rel, now),
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
                Change::MovedOut(p) => self.on_change(Change::Removed(p), now),
                Change::MovedIn(p) => self.on_change(Change::DirAppeared(p), now),
                other => self.on_change(other, now),
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
                self.needs.push_back(Need::Appeared(rel));
            }
            return;
        };
        if self.rename_is_remote(&from_rel, &to_rel) {
            self.batch.queue(to_rel.clone(), Op::Upload);
            self.enqueue(Job::Rename { from: from_rel, to: to_rel });
            return;
        }
        self.touch(from_rel, now);
        self.needs.push_back(Need::TouchInside(to_rel));
    }

    /// Whether a local rename is done on the server (RNFR/RNTO): with
    /// `--delete`, when the server has the old name (a file or files below
    /// it), nothing is pending or running on either name or below the old
    /// one (a new file's upload too), and the new name is not synced.
    fn rename_is_remote(&self, from: &RelPath, to: &RelPath) -> bool {
        let synced_here = self.synced.contains_key(from) || self.synced_below(from).next().is_some();
        let busy = self.debouncer.contains(from)
            || self.queue.is_running(from.as_str())
            || self.queue.is_queued(from.as_str())
            || self.queue.is_running(to.as_str())
            || self.queue.is_queued(to.as_str())
            // Any upload below (synced before or new): a remote rename of the
            // directory would move its temporary file away from under it.
            || self.queue.is_running_below(from.as_str());
        self.rules.delete && synced_here && !busy && !self.synced.contains_key(to)
    }
}
