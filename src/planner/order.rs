//! `--order arrival|mtime|name|size`: the files of a directory are
//! published one after another, in that order, even with several
//! connections: a file is not handed out while another file of its
//! directory runs, and of the files of a directory waiting, the one the
//! order puts first goes first. Directories go in parallel. Without the
//! option, ready files go in arrival order over all connections at once.
//!
//! Every queued job is held in the queue (see `Queue::hold_all`) and picked
//! from there, so the large-file lane does not apply with `--order`.
//! Trigger files (`--last`) are not ordered: they wait for the rest of their
//! directory anyway.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::Planner;
use super::last::dir_of;
use crate::config::Order;
use crate::event::Job;
use crate::relpath::RelPath;

/// The file `job` publishes under its final name, if it is ordered.
fn published(job: &Job) -> Option<&RelPath> {
    match job {
        Job::Upload { rel, .. } | Job::Rename { to: rel, .. } => Some(rel),
        _ => None,
    }
}

/// How `a` sorts against `b` by `order` (ties: arrival, which is the order
/// of the held list).
fn compare(order: Order, a: &Job, b: &Job) -> Ordering {
    let stamp = |j: &Job| match j {
        Job::Upload { stamp, .. } => Some(*stamp),
        _ => None,
    };
    match order {
        Order::Arrival => Ordering::Equal,
        Order::Mtime => stamp(a).and_then(|s| s.mtime).cmp(&stamp(b).and_then(|s| s.mtime)),
        Order::Name => published(a).map(RelPath::as_str).cmp(&published(b).map(RelPath::as_str)),
        Order::Size => stamp(a).map(|s| s.len).cmp(&stamp(b).map(|s| s.len)),
    }
}

impl Planner {
    /// With `--order`: the indices of the held jobs that may go now: per
    /// directory with no file job running, the first by the order; and every
    /// job that publishes no file (or a trigger file).
    pub(super) fn in_order(&self) -> Option<HashSet<usize>> {
        let order = self.rules.order?;
        let running: HashSet<&str> =
            self.queue.running_paths().map(|p| p.rsplit_once('/').map_or("", |(d, _)| d)).collect();
        let held = self.queue.held();
        let mut allowed = HashSet::new();
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, job) in held.iter().enumerate() {
            let Some(rel) = published(job).filter(|_| self.trigger_of(job).is_none()) else {
                allowed.insert(i);
                continue;
            };
            let dir = dir_of(rel);
            if running.contains(dir) {
                continue;
            }
            match first.get(dir) {
                Some(&j) if compare(order, job, &held[j]) != Ordering::Less => {}
                _ => {
                    first.insert(dir, i);
                }
            }
        }
        allowed.extend(first.into_values());
        Some(allowed)
    }
}
