//! What a finished job changes: the journal's view of the server, the
//! directories left empty, the paths changed while the job ran; and for a
//! failure, by its kind: a copy that changed while it was read is never
//! published (unless `--publish-changing`) and goes through the cooldown
//! again; a lost connection backs off for the whole server; a local problem
//! skips the file until it changes; a refused rename becomes an upload; the
//! rest retries with back-off. `--once` gives up after a few attempts.

use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};

use super::plan::SNAPSHOT_AFTER;
use super::retry::{ONCE_ATTEMPTS, RELOG, Verdict};
use super::{Local, Need, Notice, Planner, Tally};
use crate::event::{Done, Job, Outcome};
use crate::ftp::{Failure, Kind};
use crate::journal::{Synced, mtime_ns};
use crate::localfs::{HandedOff, Stamp};
use crate::relpath::{Escaped, RelPath};

/// The mtime to record for a file read during the `elapsed` before `now`
/// (the wall clock): 0 ("not to be trusted") if the file's mtime is that
/// recent, since a rewrite of the same size within the file system's
/// timestamp granularity would leave size and mtime unchanged. The next look
/// at it then compares fingerprints.
pub fn racy_safe_mtime(stamp: Stamp, elapsed: Duration, now: SystemTime) -> i64 {
    let ns = mtime_ns(stamp.mtime);
    // Whole seconds suggest a coarse file system (FAT, SMB, HFS+: up to 2 s);
    // otherwise the kernel's coarse clock ticks in milliseconds.
    let granularity = if ns % 1_000_000_000 == 0 { Duration::from_secs(2) } else { Duration::from_millis(20) };
    let read_start = now.checked_sub(elapsed + granularity);
    match (stamp.mtime, read_start) {
        (Some(m), Some(start)) if m >= start => 0,
        _ => ns,
    }
}

impl Planner {
    /// A worker finished a job; `wall` is the wall clock now (for
    /// [`racy_safe_mtime`]).
    pub fn on_done(&mut self, outcome: Outcome, now: Instant, wall: SystemTime) {
        let Outcome { job, result, elapsed, created_dirs } = outcome;
        self.queue.finished(&job.key());
        for d in created_dirs {
            if self.created_dirs.insert(d.clone()) {
                self.batch.dir_created(d);
            }
        }
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
                if let Some(attempts) = self.retries.forget(&job.key()) {
                    info!("{}: succeeded after {attempts} failed attempt(s)", job.name());
                }
                self.on_success(&job, done, elapsed, wall);
            }
            Err(f) => self.on_failure(job.clone(), f, now),
        }
        let mut look_again = vec![job.path()];
        if let Job::Rename { from, .. } = &job
            && !self.queue.is_queued(&job.key())
        {
            // Done (not queued again after a lost connection): the old name is free.
            self.queue.rename_over(from);
            look_again.push(Some(from));
        }
        for p in look_again.into_iter().flatten() {
            if self.queue.take_dirty(p) && !self.stopping {
                self.touch(p.clone(), now);
            }
        }
    }

    fn on_success(&mut self, job: &Job, done: Done, elapsed: Duration, wall: SystemTime) {
        match (job, done) {
            (Job::Upload { rel, .. }, Done::Uploaded(u)) => {
                self.changed_streak.remove(rel);
                self.partial.remove(rel);
                let s = Synced {
                    size: u.stamp.len,
                    mtime_ns: racy_safe_mtime(u.stamp, elapsed, wall),
                    hash: Some(u.blake3),
                };
                self.synced.insert(rel.clone(), s);
                self.batch.synced(rel.clone(), s, true);
                self.uploaded_files += 1;
                self.uploaded_bytes += u.bytes;
                self.tallies.push(Tally::Done(u.bytes));
                self.notices.push(Notice::Uploaded { rel: rel.clone(), size: u.stamp.len });
                self.hand_off(rel, u.stamp, u.blake3);
                info!(path:% = rel, bytes = u.bytes, ms = elapsed.as_millis();
                    "uploaded {rel} ({}, {} ms)", crate::logging::human_bytes(u.bytes), elapsed.as_millis());
            }
            (Job::Upload { rel, .. }, Done::Unchanged(stamp)) => {
                debug!("{rel}: same content, new mtime; not sent again");
                if let Some(s) = self.synced.get(rel).copied() {
                    let s = Synced { mtime_ns: racy_safe_mtime(stamp, elapsed, wall), ..s };
                    self.synced.insert(rel.clone(), s);
                    self.batch.synced(rel.clone(), s, false);
                    if let Some(hash) = s.hash {
                        // The server has these very bytes: they are handed over.
                        self.hand_off(rel, stamp, hash);
                    }
                }
                self.tallies.push(Tally::Done(0));
            }
            (Job::List(_), Done::Listed(entries)) => self.on_listing(job, Some(entries), false),
            (Job::Delete(rel), _) => {
                self.synced.remove(rel);
                self.batch.forget(rel.clone());
                info!(path:% = rel; "deleted {rel} on the server");
                self.remove_empty_dirs(rel.parent().and_then(RelPath::parse));
                self.old_kind_gone(rel);
            }
            (Job::Rename { from, to }, _) => self.renamed(from, to),
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
            (job, _) => debug!("{} done", job.name()),
        }
    }

    /// Move mode: the journal records the hand-off (in the batch the loop
    /// writes before it acts), and the loop removes or archives the file.
    fn hand_off(&mut self, rel: &RelPath, stamp: Stamp, hash: [u8; 32]) {
        if !self.rules.hand_off || self.rules.dry_run {
            return;
        }
        self.batch.handoff(rel.clone(), Some((stamp.len, mtime_ns(stamp.mtime), hash)));
        // A failed hand-off of an older version is replaced by this one.
        self.handoffs_failed.remove(rel);
        self.handoffs_latest.insert(rel.clone(), (stamp, hash));
        self.needs.push_back(Need::HandOff { rel: rel.clone(), stamp, hash });
    }

    /// The loop gave a [`Need::HandOff`] to the hand-off thread: its answer
    /// ([`Planner::handed_off`]) comes later.
    pub fn handing_off(&mut self) {
        self.handoffs_running += 1;
    }

    /// The failed hand-offs, tried again now.
    pub(super) fn retry_handoffs(&mut self) {
        for (rel, (stamp, hash)) in std::mem::take(&mut self.handoffs_failed) {
            self.needs.push_back(Need::HandOff { rel, stamp, hash });
        }
    }

    /// Hand-offs a previous run recorded and did not finish (a crash between
    /// the upload and the removal): finished now, while the file is the one
    /// uploaded; a file changed since is uploaded again.
    pub fn resume_handoffs(&mut self, pending: Vec<crate::journal::PendingHandOff>) {
        for (rel, size, mtime, hash) in pending {
            let mtime = u64::try_from(mtime)
                .ok()
                .filter(|ns| *ns > 0)
                .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns));
            let stamp = Stamp { len: size, mtime };
            self.handoffs_latest.insert(rel.clone(), (stamp, hash));
            self.needs.push_back(Need::HandOff { rel, stamp, hash });
        }
    }

    /// The answer to [`Need::HandOff`]: the file went (`Done`), or is not
    /// the one uploaded any more (`Changed`: sent again), or is gone, or
    /// could not be removed (`Err`: it stays, and is tried again after
    /// [`super::HANDOFF_RETRY`], doubling while it fails, or at the next
    /// reconcile or start).
    pub fn handed_off(
        &mut self,
        rel: RelPath,
        (stamp, hash): (Stamp, [u8; 32]),
        result: Result<HandedOff, String>,
        now: Instant,
    ) {
        self.handoffs_running = self.handoffs_running.saturating_sub(1);
        if self.handoffs_latest.get(&rel) != Some(&(stamp, hash)) {
            debug!("{rel}: the answer about an older hand-off is dropped (a newer one is under way)");
            return;
        }
        if result.is_ok() {
            self.handoffs_latest.remove(&rel);
        }
        match result {
            Ok(HandedOff::Done | HandedOff::Gone) => {
                if self.handoffs_failed.is_empty() && self.handoff_retry.0.is_none() {
                    // Hand-offs work again: the next failure waits the shortest time.
                    self.handoff_retry.1 = super::HANDOFF_RETRY;
                }
                self.batch.handoff(rel.clone(), None);
                // Handed over: the journal need not remember it for ever.
                if self.synced.remove(&rel).is_some() {
                    self.batch.forget(rel);
                }
            }
            Ok(HandedOff::Changed) => {
                self.batch.handoff(rel.clone(), None);
                info!("{rel} changed since its upload: not removed; it is sent again");
                self.touch(rel, now);
            }
            Err(e) => {
                let wait = self.handoff_retry.1;
                let at = *self.handoff_retry.0.get_or_insert(now + wait);
                warn!(
                    "warning: cannot hand off {rel} after its upload: {e}; the file stays and is tried again in {}",
                    humantime::format_duration(at.saturating_duration_since(now))
                );
                self.handoffs_failed.insert(rel, (stamp, hash));
            }
        }
    }

    /// The server renamed `from` to `to`: what the journal knows moves along.
    fn renamed(&mut self, from: &RelPath, to: &RelPath) {
        for old in self.synced_at_or_below(from) {
            if let (Some(s), Some(new)) = (self.synced.remove(&old), old.rebase(from, to)) {
                self.batch.forget(old);
                self.synced.insert(new.clone(), s);
                self.batch.synced(new, s, false);
            }
        }
        self.batch.dequeue(to.clone());
        let (old_dir, new_dir) = (from.to_remote(&self.rules.remote_dir), to.to_remote(&self.rules.remote_dir));
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
        // What changed under the new name while the rename waited (an edit, a
        // file added to a renamed directory) is looked at again; unchanged
        // files cost a stat.
        self.needs.push_back(Need::TouchInside(to.clone()));
    }

    /// With `--delete`: a remote directory this tool created, that is gone
    /// locally and holds no synced file any more, is removed (after a look
    /// at it, [`Need::DirLeft`]).
    fn remove_empty_dirs(&mut self, dir: Option<RelPath>) {
        if let Some(dir) = dir
            && self.rules.delete
        {
            self.needs.push_back(Need::DirLeft(dir));
        }
    }

    /// The answer to [`Need::DirLeft`]. Still a directory of the tree (not a
    /// link to one), or unknown (an error): kept. Also removed: a directory
    /// the tool did not create, when a file took its name (or the name of
    /// one above it) locally: the file cannot be published otherwise.
    pub fn dir_left(&mut self, dir: RelPath, local: &Local) {
        if matches!(local, Local::Dir(_) | Local::Unreadable(_)) || self.synced_below(&dir).next().is_some() {
            return;
        }
        let remote = dir.to_remote(&self.rules.remote_dir);
        if !matches!(local, Local::Gone(_)) {
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
                    self.changed_while_read(p.clone(), &f, now);
                }
            }
            Kind::Vanished => {
                debug!("{f}");
                if let Some(p) = job.path() {
                    self.needs.push_back(Need::Plan(p.clone()));
                }
            }
            Kind::Aborted => {}
            Kind::Connection | Kind::Login | Kind::Tls | Kind::Data => {
                if self.stopping {
                    return;
                }
                self.server_down(&f, now);
                if self.rules.once && self.server.failures() >= ONCE_ATTEMPTS {
                    self.give_up(&job, &f.message);
                    for j in self.queue.drain() {
                        self.give_up(&j, "server unreachable");
                    }
                    // Files still waiting for a listing (one in flight, or
                    // of a directory below one) cannot be synced either.
                    self.listings_given_up("server unreachable");
                    return;
                }
                self.queue.push_front(job);
            }
            Kind::Local | Kind::LocalBroken => {
                warn!(path = job.name(), error = f.message; "warning: {f}; skipped until it changes again");
                if self.rules.once {
                    self.give_up(&job, &f.message);
                } else {
                    self.failure_notice(&job, &f.message);
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

    /// The file changed while it was read: that copy was not published. It
    /// goes through the cooldown again; with `--publish-changing` a file
    /// that never holds still is published as read from the next attempt.
    fn changed_while_read(&mut self, p: RelPath, f: &Failure, now: Instant) {
        let publish_changing = self.rules.publish_changing;
        let c = self.changed_streak.entry(p.clone()).or_default();
        c.attempts += 1;
        if publish_changing && c.attempts >= SNAPSHOT_AFTER {
            // It never goes quiet and the operator wants snapshots: publish
            // what is read next time. The journal keeps its stamp from before
            // the read, so the settled version follows once it is quiet.
            info!("{p} keeps changing while it is uploaded; sending a snapshot of it now");
            self.needs.push_back(Need::Plan(p));
            return;
        }
        // A copy that changed while it was read is never published: a
        // receiver would take the torn file for the real one.
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
        self.touch(p, now);
    }

    fn give_up(&mut self, job: &Job, why: &str) {
        if let Job::List(_) = job {
            self.listing_given_up(&job.key(), why);
            return;
        }
        self.failure_notice(job, why);
        self.failed_for_good.push((job.name(), why.to_string()));
        if let Some(rel) = job.path() {
            let rel = rel.clone();
            self.last_failed(&rel);
        }
    }

    /// Tells the `--on-failure` hook of a file job's failure.
    fn failure_notice(&mut self, job: &Job, why: &str) {
        if let Some(rel) = job.path() {
            let size = match job {
                Job::Upload { stamp, .. } => Some(stamp.len),
                _ => None,
            };
            self.notices.push(Notice::Failed { rel: rel.clone(), size, error: why.to_string() });
        }
    }

    fn retry_later(&mut self, job: Job, f: &Failure, now: Instant) {
        let key = job.key();
        let verdict = self.retries.failed(&key, &f.message, self.rules.once, now, self.random.as_mut());
        let attempts = match verdict {
            Verdict::GiveUp { attempts } | Verdict::Retry { attempts, .. } => attempts,
        };
        if let Some(p) = job.path() {
            self.batch.failed(p.clone(), attempts, f.message.clone());
        }
        match verdict {
            Verdict::GiveUp { attempts } => {
                warn!(path = job.name(), error = f.message; "warning: {f}; giving up after {attempts} attempts");
                self.give_up(&job, &f.message);
            }
            Verdict::Retry { attempts, delay, loud } => {
                if attempts == 1 {
                    self.failure_notice(&job, &f.message);
                }
                if loud {
                    warn!(path = job.name(), error = f.message;
                        "warning: {f} (attempt {attempts}); retrying in {}", whole_seconds(delay));
                } else {
                    debug!("{f} (attempt {attempts})");
                }
                self.retries.schedule(job, now + delay);
            }
        }
    }

    /// A session could not reach the server.
    fn server_down(&mut self, f: &Failure, now: Instant) {
        let Some(outage) = self.server.down(now, self.random.as_mut()) else {
            // Another session already reported this outage.
            return;
        };
        // For `status`: since when it is down (the first report of an outage counts).
        self.batch.server(false);
        let msg = format!(
            "{}: {f}; retrying in {}",
            if f.kind == Kind::Login { "error: login refused" } else { "warning: server unavailable" },
            whole_seconds(outage.backoff)
        );
        if outage.loud {
            warn!(error = f.message; "{msg}");
            self.batch.error(f.message.clone());
        } else {
            debug!("{msg}");
        }
    }

    fn server_up(&mut self, now: Instant) {
        if let Some(down) = self.server.up(now) {
            self.batch.server(true);
            info!("server reachable again after {}", humantime::format_duration(Duration::from_secs(down.as_secs())));
        }
    }
}

/// A delay for a log line, in whole seconds (at least 1).
fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1)))
}
