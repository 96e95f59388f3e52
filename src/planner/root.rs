//! The guard on the watch directory: a watch directory that vanishes or
//! turns empty while the journal knows synced files (an unmounted disk
//! leaves an empty mount point) never empties the server. Every delete is
//! held, queued deletes are dropped, and the directory is looked at again
//! every few seconds until it is back; then the tree is watched anew and
//! reconciled. A disk unmounted below the watch directory holds the deletes
//! of what lies on it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::{Need, Planner, Rescan};
use crate::event::Job;
use crate::mounts::Snapshot;
use crate::relpath::{EscapedPath, RelPath};

/// How often a missing or empty watch directory is looked at again.
pub const ROOT_RECHECK: Duration = Duration::from_secs(5);
/// How long after a change of the mount table the tree is watched anew and
/// reconciled (the changes of one `mount -a` come together).
pub const MOUNT_SETTLE: Duration = Duration::from_millis(500);

/// What a look at the watch directory found (never through a link at its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// Not a directory: missing, a link, a file.
    Gone,
    /// A directory that cannot be read.
    Unreadable,
    Empty,
    Entries,
}

#[derive(Debug)]
pub(super) struct RootGuard {
    /// Deletes are held until the watch directory is back.
    pub held: bool,
    /// When to look at the watch directory again.
    pub check_at: Option<Instant>,
    /// The mounts at and below the watch directory, as last seen.
    mounts: Snapshot,
    /// The watch directory was a mount point and its disk is away.
    unmounted: bool,
    /// Mount points below the watch directory whose disk is away: what the
    /// journal knows below them is not taken as deleted.
    lost_mounts: Vec<RelPath>,
}

impl RootGuard {
    pub fn new(mounts: Snapshot) -> Self {
        Self { held: false, check_at: None, mounts, unmounted: false, lost_mounts: Vec::new() }
    }

    /// Whether `rel` lies on a disk unmounted below the watch directory.
    pub fn on_lost_mount(&self, rel: &RelPath) -> bool {
        self.lost_mounts.iter().any(|m| rel.starts_with(m))
    }

    /// Looks at the watch directory again by `at` at the latest.
    fn check_by(&mut self, at: Instant) {
        self.check_at = Some(self.check_at.map_or(at, |t| t.min(at)));
    }
}

impl Planner {
    /// Whether the watch directory looks like itself: it exists, its disk
    /// is mounted and, if the journal knows synced files, it is not empty.
    pub fn root_ok(&self, root: Root) -> bool {
        !self.root.unmounted
            && match root {
                Root::Entries => true,
                Root::Empty => self.synced.is_empty(),
                Root::Gone | Root::Unreadable => false,
            }
    }

    /// Holds every delete until the watch directory is back.
    pub(super) fn hold_for_root(&mut self, now: Instant) {
        if !self.root.held {
            error!(
                "error: the watch directory {} is missing or empty while {} files are synced: \
                 holding all deletes (nothing is deleted on the server) until it is back",
                EscapedPath(&self.rules.selection.watch_dir),
                self.synced.len()
            );
            self.root.held = true;
        }
        self.queue.drop_where(|j| matches!(j, Job::Delete(_)));
        self.root.check_at = Some(now + ROOT_RECHECK);
    }

    /// The answer to [`Need::Root`]: something happened to the watch
    /// directory itself. Gone: deletes are held. Still a directory (an
    /// unmount leaves the mount point, and the watch dies with the file
    /// system): it is looked at again shortly, which renews the watch and
    /// reconciles.
    pub fn root_event(&mut self, root: Root, now: Instant) {
        if root == Root::Gone {
            self.hold_for_root(now);
        } else {
            self.root.check_at.get_or_insert(now + ROOT_RECHECK);
        }
    }

    /// Whether the watch directory is due for a look ([`Planner::root_checked`]).
    pub fn root_check_due(&mut self, now: Instant) -> bool {
        if self.root.check_at.is_some_and(|t| t <= now) {
            self.root.check_at = None;
            return true;
        }
        false
    }

    /// A look at the watch directory when it was due: still away, it is
    /// looked at again later; back, its deletes are no longer held, and the
    /// tree is watched anew and reconciled.
    pub fn root_checked(&mut self, root: Root, now: Instant) {
        if !self.root_ok(root) {
            self.root.check_at = Some(now + ROOT_RECHECK);
            return;
        }
        if self.root.held {
            info!("the watch directory {} is back; reconciling", EscapedPath(&self.rules.selection.watch_dir));
            self.root.held = false;
        }
        // The old watch died with the directory.
        self.needs.push_back(Need::Rescan(Rescan::RootBack));
    }

    /// The answer to [`Need::Mounts`]: the mount table as it is now. If the
    /// mounts at or below the watch directory changed (an unmount, a
    /// remount), the tree is watched anew and reconciled shortly (a mount
    /// storm settles first). Files on a disk unmounted below the watch
    /// directory are not taken as deleted, nor is anything while the watch
    /// directory's own disk is away.
    pub fn mounts_changed(&mut self, snapshot: Snapshot, now: Instant) {
        if snapshot == self.root.mounts {
            return;
        }
        let root: PathBuf = self.rules.selection.watch_dir.clone();
        let old = std::mem::replace(&mut self.root.mounts, snapshot);
        let lost: Vec<RelPath> = old
            .lost_in(&self.root.mounts)
            .filter_map(|p| p.strip_prefix(&root).ok())
            .filter_map(|r| RelPath::parse(&r.to_string_lossy()))
            .collect();
        for rel in lost {
            if !self.root.lost_mounts.contains(&rel) {
                warn!(
                    "warning: the disk mounted at {rel} was unmounted: its files are not taken as deleted while it \
                     is away"
                );
                self.root.lost_mounts.push(rel);
            }
        }
        let back: Vec<RelPath> = self
            .root
            .lost_mounts
            .iter()
            .filter(|m| self.root.mounts.below.iter().any(|n| n.point == m.to_local(&root)))
            .cloned()
            .collect();
        for rel in back {
            info!("the disk at {rel} is mounted again");
            self.root.lost_mounts.retain(|m| *m != rel);
        }
        let was = old.root_is_mount_point(&root);
        let is = self.root.mounts.root_is_mount_point(&root);
        if was && !is {
            warn!("warning: the disk mounted at the watch directory {} was unmounted", EscapedPath(&root));
            self.root.unmounted = true;
            self.hold_for_root(now);
        } else if is && self.root.unmounted {
            self.root.unmounted = false;
        }
        self.root.check_by(now + MOUNT_SETTLE);
    }
}
