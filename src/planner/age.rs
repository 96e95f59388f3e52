//! `--min-age` and `--max-age`: whether a file is old enough, or too old,
//! to be uploaded, by its mtime against the wall clock the loop gives with
//! [`Planner::set_clock`].
//!
//! A file younger than `--min-age` waits (its journal entry stays queued) and
//! is looked at again when it would be old enough; a write meanwhile moves
//! that on. A file whose mtime lies in the future (another machine's clock,
//! a copy that kept a bad mtime) would never get old: it also counts as old
//! enough once its size and mtime have held still here for `--min-age`.
//! With `--once` a young file is left for a later run. A file older than
//! `--max-age` is left alone, whatever the journal says; it is not gone, so
//! `--delete` never deletes it.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info};

use super::{Need, Planner};
use crate::localfs::Stamp;
use crate::relpath::RelPath;

/// `--min-age` and `--max-age`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ages {
    pub min: Option<Duration>,
    pub max: Option<Duration>,
}

/// A file that is not old enough yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Young {
    stamp: Stamp,
    /// Since when it has held still with this stamp.
    since: Instant,
    /// When it is looked at again.
    due: Instant,
}

/// What the age rules say of a file now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Upload,
    /// Younger than `--min-age`: this much longer.
    Wait(Duration),
    /// Older than `--max-age`.
    TooOld,
}

/// The young files and the clock they are measured against.
#[derive(Debug, Default)]
pub(super) struct AgeState {
    /// The loop's last reading of both clocks.
    clock: Option<(Instant, SystemTime)>,
    young: HashMap<RelPath, Young>,
    /// Files left alone as older than `--max-age`, this run.
    pub(super) too_old: u64,
    /// `too_old` when the comparison with the server's listings began.
    pub(super) listing_from: u64,
}

impl AgeState {
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.young.values().map(|y| y.due).min()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.young.is_empty()
    }

    /// The files waiting.
    pub(super) fn paths(&self) -> impl Iterator<Item = &RelPath> + '_ {
        self.young.keys()
    }

    pub(super) fn forget(&mut self, rel: &RelPath) {
        self.young.remove(rel);
    }

    /// The wall clock at `now`, from the loop's last reading.
    fn wall(&self, now: Instant) -> Option<SystemTime> {
        let (at, wall) = self.clock?;
        Some(match now.checked_duration_since(at) {
            Some(ahead) => wall + ahead,
            None => wall.checked_sub(at - now).unwrap_or(wall),
        })
    }

    fn verdict(&self, ages: Ages, rel: &RelPath, stamp: Stamp, now: Instant) -> Verdict {
        let (Some(wall), Some(mtime)) = (self.wall(now), stamp.mtime) else {
            return Verdict::Upload;
        };
        // An mtime in the future is an age of zero.
        let by_mtime = wall.duration_since(mtime).unwrap_or(Duration::ZERO);
        if ages.max.is_some_and(|max| by_mtime > max) {
            return Verdict::TooOld;
        }
        let Some(min) = ages.min else { return Verdict::Upload };
        let held = self.young.get(rel).filter(|y| y.stamp == stamp).map_or(Duration::ZERO, |y| now - y.since);
        match min.checked_sub(by_mtime.max(held)) {
            Some(left) if !left.is_zero() => Verdict::Wait(left),
            _ => Verdict::Upload,
        }
    }
}

impl Planner {
    /// The loop's reading of the monotonic and the wall clock, taken
    /// together; file ages are measured against it. Without one, no file is
    /// too young or too old.
    pub fn set_clock(&mut self, now: Instant, wall: SystemTime) {
        self.ages.clock = Some((now, wall));
    }

    /// Whether `rel` (as `stamp` says it is) may be uploaded now by its age.
    /// A young file is looked at again once it may be; a file too old is
    /// left alone (and counted, for the reconcile's report).
    pub(super) fn old_enough(&mut self, rel: &RelPath, stamp: Stamp) -> bool {
        let ages = self.rules.ages;
        if ages == Ages::default() {
            return true;
        }
        let Some((now, _)) = self.ages.clock else { return true };
        match self.ages.verdict(ages, rel, stamp, now) {
            Verdict::Upload => {
                self.ages.young.remove(rel);
                true
            }
            Verdict::TooOld => {
                self.ages.young.remove(rel);
                self.ages.too_old += 1;
                debug!("{rel}: older than --max-age; left alone");
                self.batch.dequeue(rel.clone());
                false
            }
            Verdict::Wait(left) if self.rules.once => {
                self.last_left(rel);
                self.skip_once(
                    rel.as_str(),
                    &format!("modified less than --min-age ago; left for a later run ({} to go)", human(left)),
                );
                self.batch.dequeue(rel.clone());
                false
            }
            Verdict::Wait(left) => {
                let since = match self.ages.young.get(rel) {
                    Some(y) if y.stamp == stamp => y.since,
                    _ => now,
                };
                debug!("{rel}: modified less than --min-age ago; uploading it in {}", human(left));
                self.ages.young.insert(rel.clone(), Young { stamp, since, due: now + left });
                // Queued in the journal, so that a restart meanwhile still sends it.
                self.batch.queue(rel.clone(), crate::journal::Op::Upload);
                false
            }
        }
    }

    /// Young files whose wait ended by `now` are looked at again (unless a
    /// cooldown will do that).
    pub(super) fn young_due(&mut self, now: Instant) {
        let due: Vec<RelPath> = self.ages.young.iter().filter(|(_, y)| y.due <= now).map(|(r, _)| r.clone()).collect();
        for rel in due {
            // Kept (with `since`) until the look decides; only its deadline goes.
            if let Some(y) = self.ages.young.get_mut(&rel) {
                y.due = now + Duration::from_secs(3600);
            }
            if !self.debouncer.contains(&rel) {
                self.needs.push_back(Need::Plan(rel));
            }
        }
    }

    /// Reports the files left alone as too old since `before` (a count of
    /// [`AgeState::too_old`]), for a reconcile or a comparison `why`.
    pub(super) fn report_too_old(&mut self, why: &str, before: u64) {
        let n = self.ages.too_old - before;
        if n > 0
            && let Some(max) = self.rules.ages.max
        {
            info!("{why}: {n} files older than --max-age {} left alone", human(max));
        }
    }
}

impl Planner {
    /// A comparison with the server's listings begins.
    pub(super) fn listings_begin(&mut self) {
        self.ages.listing_from = self.ages.too_old;
    }

    /// Once every listing is in: the files left alone as too old, once.
    pub(super) fn listings_end(&mut self) {
        let from = std::mem::replace(&mut self.ages.listing_from, self.ages.too_old);
        self.report_too_old("comparison with the server", from);
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}
