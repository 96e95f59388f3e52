//! `--last GLOB`: trigger files (`*.done`, `*.ok`, `*.md5`, `*.sem`) are
//! published only after every other pending file of their directory has
//! been published. A receiver that waits for the trigger then never sees it
//! before the data.
//!
//! The trigger's job goes through the queue as any other; when it is handed
//! out while a file of its directory is still pending (cooling down, waiting
//! for `--min-age` or a listing, queued, running, or waiting for its retry),
//! it is held aside in the queue instead (still queued: a newer intent
//! replaces it, shutdown leaves it in the journal's queue) and handed out
//! once nothing of its directory is pending. Triggers do not wait for one
//! another. With `--once`, a trigger whose data files failed for good is not
//! published (the run exits 1), and one whose data files are left for a
//! later run (`--min-age`) is left for that run too.
//!
//! Only uploads and renames onto a trigger's name wait; "same directory"
//! means the same parent, not a directory below it. The look at whether a
//! directory is busy goes over what is pending, and runs only while a
//! trigger is held.

use std::collections::HashSet;

use log::{info, warn};

use super::{Need, Planner};
use crate::event::Job;
use crate::relpath::RelPath;

/// What becomes of a trigger's job handed out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Not a trigger, or nothing of its directory is pending: it goes.
    Go,
    /// Files of its directory are still pending.
    Hold,
    /// `--once`: files of its directory failed for good.
    Drop,
    /// `--once`: files of its directory were left for a later run.
    Leave,
}

/// The directories whose data files will not be published this run
/// (`--once`), by their path relative to WATCH_DIR ("" for the top).
#[derive(Debug, Default)]
pub(super) struct LastState {
    failed: HashSet<String>,
    left: HashSet<String>,
}

pub(super) fn dir_of(rel: &RelPath) -> &str {
    rel.parent().unwrap_or("")
}

impl Planner {
    /// Whether `rel` is a trigger file (`--last`).
    pub(super) fn is_last(&self, rel: &RelPath) -> bool {
        self.rules.last.is_match(rel.as_str())
    }

    /// The trigger file `rel` would publish (an upload or a rename onto it).
    pub(super) fn trigger_of(&self, job: &Job) -> Option<RelPath> {
        match job {
            Job::Upload { rel, .. } | Job::Rename { to: rel, .. } if self.is_last(rel) => Some(rel.clone()),
            _ => None,
        }
    }

    /// `--once`: the data file `rel` failed for good; triggers of its
    /// directory are not published.
    pub(super) fn last_failed(&mut self, rel: &RelPath) {
        if !self.rules.last.is_empty() && !self.is_last(rel) {
            self.last.failed.insert(dir_of(rel).to_string());
        }
    }

    /// `--once`: the data file `rel` is left for a later run; so are the
    /// triggers of its directory.
    pub(super) fn last_left(&mut self, rel: &RelPath) {
        if !self.rules.last.is_empty() && !self.is_last(rel) {
            self.last.left.insert(dir_of(rel).to_string());
        }
    }

    fn verdict(&self, job: &Job) -> Verdict {
        let Some(trigger) = self.trigger_of(job) else { return Verdict::Go };
        let dir = dir_of(&trigger);
        if self.last.failed.contains(dir) {
            Verdict::Drop
        } else if self.dir_busy(dir) {
            Verdict::Hold
        } else if self.last.left.contains(dir) {
            Verdict::Leave
        } else {
            Verdict::Go
        }
    }

    /// Whether a file of `dir` that is not a trigger is pending anywhere:
    /// running or queued, cooling down, to be looked at, waiting for its
    /// retry, for `--min-age` or for a listing, or for an old kind in its way
    /// to be removed.
    fn dir_busy(&self, dir: &str) -> bool {
        let data = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d) == dir && !self.rules.last.is_match(p);
        let data_rel = |p: &RelPath| data(p.as_str());
        self.queue.paths().any(data)
            || self.retries.paths().any(data_rel)
            || self.ages.paths().any(data_rel)
            || self.listings.paths().any(data_rel)
            || self.replaced.iter().any(data_rel)
            || self.needs.iter().any(|n| match n {
                Need::Plan(p) | Need::Appeared(p) | Need::TouchInside(p) => data_rel(p),
                _ => false,
            })
            || self.debouncer.keys().any(data_rel)
    }

    /// The job just taken off the queue, if it may start: a trigger whose
    /// directory is busy is held, one whose data failed or was left is
    /// dropped.
    pub(super) fn held_back(&mut self, job: Job) -> Option<Job> {
        match self.verdict(&job) {
            Verdict::Go => Some(job),
            Verdict::Hold => {
                if let Some(t) = self.trigger_of(&job) {
                    info!("{t} waits for the other files of its directory (--last)");
                }
                self.queue.hold(job);
                None
            }
            Verdict::Drop | Verdict::Leave => {
                self.not_published(&job);
                None
            }
        }
    }

    /// A held trigger that may go now (its directory has nothing pending),
    /// if a slot is free; held triggers whose data failed or was left are
    /// dropped on the way.
    ///
    /// With `--order` every queued job is held, and only the one its
    /// directory's order puts first may go (see `order`).
    pub(super) fn release_held(&mut self) -> Option<Job> {
        if !self.queue.has_slot() {
            return None;
        }
        if self.rules.order.is_some() {
            self.queue.hold_all();
        }
        let allowed = self.in_order();
        for i in 0..self.queue.held().len() {
            if allowed.as_ref().is_some_and(|a| !a.contains(&i)) {
                continue;
            }
            match self.verdict(&self.queue.held()[i]) {
                Verdict::Hold => {}
                Verdict::Go => return Some(self.queue.release(i)),
                Verdict::Drop | Verdict::Leave => {
                    let job = self.queue.release(i);
                    self.not_published(&job);
                    // The indices moved: look again.
                    return self.release_held();
                }
            }
        }
        None
    }

    /// `--once`: a trigger not published because its data was not.
    fn not_published(&mut self, job: &Job) {
        let Some(t) = self.trigger_of(job) else { return };
        if self.last.failed.contains(dir_of(&t)) {
            let why = "not published: other files of its directory could not be synced (--last)";
            warn!(path:% = t; "warning: {t}: {why}");
            self.failed_for_good.push((job.name(), why.to_string()));
        } else {
            info!("{t}: left for a later run with the files of its directory that are not old enough yet (--last)");
        }
        self.batch.dequeue(t);
    }
}
