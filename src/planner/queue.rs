//! The queue discipline: at most one job per path queued and one running;
//! the newer intent for a path wins (an upload after a queued delete, a
//! delete after a queued upload), except over a rename, whose old name would
//! stay on the server; a rename holds both its names until it is done; a
//! path changed while its job runs is "dirty" and looked at again
//! afterwards. Large files wait in their own queue so that small ones never
//! wait behind them while a connection is free. Trigger files (`--last`)
//! that must wait for the rest of their directory are held aside, still
//! queued: a newer intent replaces them, and shutdown drains them.

use std::collections::{HashMap, HashSet, VecDeque};

use log::{debug, info};

use crate::event::Job;
use crate::logging::human_bytes;
use crate::relpath::{Escaped, RelPath};

/// Files at least this big go to their own queue, so that small files never
/// wait behind them while another connection is free.
pub const LARGE: u64 = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct Queue {
    pending: VecDeque<Job>,
    pending_large: VecDeque<Job>,
    /// The keys of the queued jobs.
    queued: HashSet<String>,
    /// The keys of the running jobs: `true` for one from the large queue.
    in_flight: HashMap<String, bool>,
    large_in_flight: usize,
    /// Jobs that may still be handed out: two per worker, so that a worker
    /// that finishes finds its next job waiting instead of waking the loop
    /// first.
    free_slots: usize,
    /// How many large files may be sent at once: all connections but one.
    large_cap: usize,
    /// Paths changed while a job on them ran or a rename held them.
    dirty: HashSet<RelPath>,
    /// The old names of the renames queued or running: they are busy too.
    renaming: HashSet<RelPath>,
    /// Jobs taken off the queue and held until the planner lets them go
    /// (`--last`); still queued.
    held: Vec<Job>,
}

impl Queue {
    pub fn new(workers: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            pending_large: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashMap::new(),
            large_in_flight: 0,
            free_slots: 2 * workers,
            large_cap: workers.saturating_sub(1).max(1),
            dirty: HashSet::new(),
            renaming: HashSet::new(),
            held: Vec::new(),
        }
    }

    /// Queues a job unless it is already queued; a job for a path that is
    /// in flight (or held by a rename) is planned again once that finishes.
    /// With `dry_run` the job is only logged. Returns whether it was queued.
    pub fn push(&mut self, job: Job, dry_run: bool) -> bool {
        let key = job.key();
        // A rename holds its old name too (see `renaming`): nothing may store
        // a new file there before the server has moved the old one away.
        let held = job.path().filter(|p| self.renaming.contains(*p));
        if self.in_flight.contains_key(&key) || held.is_some() {
            if let Some(p) = job.path() {
                debug!("{} waits for the job running on {p}", job.what());
                self.dirty.insert(p.clone());
            }
            return false;
        }
        if self.queued.contains(&key) {
            // The newer intent for a path wins, except over a rename: the
            // path is looked at again once the rename is done.
            if job.path().is_some() {
                for q in [&mut self.pending, &mut self.pending_large] {
                    if let Some(slot) = q.iter_mut().chain(self.held.iter_mut()).find(|j| j.key() == key) {
                        if matches!(slot, Job::Rename { .. }) {
                            debug!("{} waits for the {}", job.what(), slot.what());
                            if let Some(p) = job.path() {
                                self.dirty.insert(p.clone());
                            }
                            return false;
                        }
                        debug!("queued {} instead of {}", job.what(), slot.what());
                        *slot = job;
                        return true;
                    }
                }
            }
            return false;
        }
        if dry_run && !matches!(job, Job::List(_)) {
            log_dry_run(&job);
            return false;
        }
        self.queued.insert(key);
        if job.path().is_some() {
            debug!("queued {}", job.what());
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

    /// Puts a job back at the head of the queue (its connection was lost).
    pub fn push_front(&mut self, job: Job) {
        self.queued.insert(job.key());
        self.pending.push_front(job);
    }

    /// The next job to hand to a worker, if a slot is free, and whether it
    /// comes from the large queue. It is no longer queued, and not yet
    /// running: [`Queue::started`] says it runs.
    pub fn pop(&mut self) -> Option<(Job, bool)> {
        if self.free_slots == 0 {
            return None;
        }
        let take_large = !self.pending_large.is_empty()
            && self.large_in_flight < self.large_cap
            && (self.pending.is_empty() || self.large_in_flight == 0);
        let job = if take_large { self.pending_large.pop_front() } else { self.pending.pop_front() }?;
        self.queued.remove(&job.key());
        Some((job, take_large))
    }

    /// Whether a job may be handed out now (a slot is free).
    pub fn has_slot(&self) -> bool {
        self.free_slots > 0
    }

    /// Holds a job just popped (it stays queued) until [`Queue::release`].
    pub fn hold(&mut self, job: Job) {
        self.queued.insert(job.key());
        self.held.push(job);
    }

    /// The jobs held.
    pub fn held(&self) -> &[Job] {
        &self.held
    }

    /// Takes the held job at `i` (an index into [`Queue::held`]): no longer
    /// queued, not yet running.
    pub fn release(&mut self, i: usize) -> Job {
        let job = self.held.remove(i);
        self.queued.remove(&job.key());
        job
    }

    /// Every queued job is held (`--order` picks among them).
    pub fn hold_all(&mut self) {
        self.held.extend(self.pending.drain(..).chain(self.pending_large.drain(..)));
    }

    /// The paths of the file jobs running.
    pub fn running_paths(&self) -> impl Iterator<Item = &str> + '_ {
        // A file job's key is its path; the others' begin with a NUL.
        self.in_flight.keys().map(String::as_str).filter(|k| !k.starts_with('\0'))
    }

    /// The paths of the file jobs running, queued and held.
    pub fn paths(&self) -> impl Iterator<Item = &str> + '_ {
        let queued = self.pending.iter().chain(self.pending_large.iter()).chain(self.held.iter());
        self.running_paths().chain(queued.filter_map(Job::path).map(RelPath::as_str))
    }

    pub fn started(&mut self, key: String, large: bool) {
        self.in_flight.insert(key, large);
        if large {
            self.large_in_flight += 1;
        }
        self.free_slots -= 1;
    }

    /// The job `key` ended: its slot is free again.
    pub fn finished(&mut self, key: &str) {
        self.free_slots += 1;
        if self.in_flight.remove(key) == Some(true) {
            self.large_in_flight -= 1;
        }
    }

    /// The rename from `from` is over: the old name is free, and whether it
    /// was changed meanwhile.
    pub fn rename_over(&mut self, from: &RelPath) {
        self.renaming.remove(from);
    }

    /// Whether `rel` changed while its job ran (and forgets it).
    pub fn take_dirty(&mut self, rel: &RelPath) -> bool {
        self.dirty.remove(rel)
    }

    pub fn is_queued(&self, key: &str) -> bool {
        self.queued.contains(key)
    }

    pub fn is_running(&self, key: &str) -> bool {
        self.in_flight.contains_key(key)
    }

    /// Whether a job runs on a path below the directory `dir`.
    pub fn is_running_below(&self, dir: &str) -> bool {
        self.in_flight.keys().any(|k| k.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
    }

    pub fn running(&self) -> usize {
        self.in_flight.len()
    }

    pub fn waiting(&self) -> usize {
        self.pending.len() + self.pending_large.len() + self.held.len()
    }

    pub fn has_waiting(&self) -> bool {
        !self.pending.is_empty() || !self.pending_large.is_empty() || !self.held.is_empty()
    }

    /// Drops the queued jobs that `drop` picks.
    pub fn drop_where(&mut self, mut drop: impl FnMut(&Job) -> bool) {
        let queued = &mut self.queued;
        let mut keep = |j: &Job| {
            let gone = drop(j);
            if gone {
                queued.remove(&j.key());
            }
            !gone
        };
        self.pending.retain(&mut keep);
        self.pending_large.retain(&mut keep);
        self.held.retain(keep);
    }

    /// Takes every queued job out (first the small, then the large queue,
    /// then the held jobs).
    pub fn drain(&mut self) -> Vec<Job> {
        self.queued.clear();
        self.pending.drain(..).chain(self.pending_large.drain(..)).chain(self.held.drain(..)).collect()
    }
}

fn log_dry_run(job: &Job) {
    match job {
        Job::Upload { rel, stamp, .. } => info!("dry run: would upload {rel} ({})", human_bytes(stamp.len)),
        Job::Delete(p) => info!("dry run: would delete {p}"),
        Job::Rename { from, to } => info!("dry run: would rename {from} to {to}"),
        Job::RemoveTemp(p) => info!("dry run: would remove the temporary upload of {p}"),
        Job::RemoveAside { rel, .. } => info!("dry run: would clean up an old copy of {rel} renamed aside"),
        Job::RemoveDir(d) => info!("dry run: would remove the empty directory {}", Escaped(d)),
        Job::List(_) => {}
    }
}
