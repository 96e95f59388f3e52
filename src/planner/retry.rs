//! When a failed job is tried again, and when the operator hears of it: the
//! per-file back-off (doubling from 1 s to 5 min, spread by jitter so that
//! many failures do not retry in step), the server's back-off while it is
//! unreachable (to 1 min), a repeated failure logged again at most every
//! 10 minutes, and the attempts `--once` gives before it gives up.
//!
//! No clock and no global randomness: `now` is passed in, and the jitter
//! draws from a [`Random`] the owner chooses (tests give a fixed one).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::event::Job;

/// Per-file retry back-off: first delay and cap.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(300);
/// Server back-off cap (reconnect attempts while it is down).
pub const SERVER_CAP: Duration = Duration::from_secs(60);
/// A failure that repeats is logged again at most this often.
pub const RELOG: Duration = Duration::from_secs(600);
/// `--once` gives a file, and the server, this many attempts.
pub const ONCE_ATTEMPTS: u32 = 5;

/// Where the jitter's randomness comes from.
pub trait Random {
    fn next_u64(&mut self) -> u64;
}

/// The process's hash seeds: a fresh random number for every draw, without
/// a dependency.
#[derive(Debug, Default)]
pub struct SystemRandom;

impl Random for SystemRandom {
    fn next_u64(&mut self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    }
}

/// The delay before attempt `attempt + 1`: `first`, doubled per attempt, at
/// most `cap`.
pub fn backoff(first: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(cap)
}

/// Spreads a delay over 75–125 % (by `r`, a random number) so that many
/// failures do not retry in step.
pub fn jitter(d: Duration, r: u64) -> Duration {
    let frac = 0.75 + (r % 1000) as f64 / 2000.0;
    d.mul_f64(frac)
}

/// What to do about one more failure of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `--once` and out of attempts.
    GiveUp { attempts: u32 },
    /// Try again after `delay`; `loud`: log it as a warning (the first
    /// failure, a new message, or the last warning 10 minutes ago).
    Retry { attempts: u32, delay: Duration, loud: bool },
}

#[derive(Debug, Clone)]
struct Attempts {
    attempts: u32,
    last_logged: Instant,
    last_message: String,
}

/// Per-job failures and the jobs waiting for their retry.
#[derive(Debug, Default)]
pub struct Retries {
    by_key: HashMap<String, Attempts>,
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    jobs: HashMap<u64, Job>,
    seq: u64,
}

impl Retries {
    /// One more failure of the job `key` with `message`: how many attempts
    /// it has had, and whether and when it is tried again.
    pub fn failed(&mut self, key: &str, message: &str, once: bool, now: Instant, random: &mut dyn Random) -> Verdict {
        let r = self.by_key.entry(key.to_string()).or_insert(Attempts {
            attempts: 0,
            last_logged: now,
            last_message: String::new(),
        });
        r.attempts += 1;
        let attempts = r.attempts;
        if once && attempts >= ONCE_ATTEMPTS {
            return Verdict::GiveUp { attempts };
        }
        let delay = jitter(backoff(RETRY_FIRST, RETRY_CAP, attempts), random.next_u64());
        let loud = attempts == 1 || r.last_message != message || now.duration_since(r.last_logged) >= RELOG;
        if loud {
            r.last_logged = now;
            message.clone_into(&mut r.last_message);
        }
        Verdict::Retry { attempts, delay, loud }
    }

    /// `job` runs again at `at`.
    pub fn schedule(&mut self, job: Job, at: Instant) {
        self.seq += 1;
        self.jobs.insert(self.seq, job);
        self.due.push(Reverse((at, self.seq)));
    }

    /// The job `key` is done with (it succeeded, or left scope): its failed
    /// attempts, if it had any.
    pub fn forget(&mut self, key: &str) -> Option<u32> {
        self.by_key.remove(key).map(|r| r.attempts)
    }

    /// The paths of the file jobs waiting for their retry.
    pub fn paths(&self) -> impl Iterator<Item = &crate::relpath::RelPath> + '_ {
        self.jobs.values().filter_map(Job::path)
    }

    /// When the next retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// A job whose retry is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Job> {
        while let Some(Reverse((t, seq))) = self.due.peek().copied() {
            if t > now {
                return None;
            }
            self.due.pop();
            if let Some(job) = self.jobs.remove(&seq) {
                return Some(job);
            }
        }
        None
    }

    /// No retry is waiting.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

/// The server's reachability, for the back-off of every job while it is down.
#[derive(Debug, Default)]
pub struct Server {
    down_since: Option<Instant>,
    backoff: Duration,
    resume_at: Option<Instant>,
    last_logged: Option<Instant>,
    failures: u32,
}

/// A new report that the server is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// The back-off before the next probe (without its jitter, for the log).
    pub backoff: Duration,
    /// Log it as a warning: the first report, or the last warning 10 minutes ago.
    pub loud: bool,
}

impl Server {
    /// A session could not reach the server. `None` when another session
    /// already reported this outage (its back-off still runs).
    pub fn down(&mut self, now: Instant, random: &mut dyn Random) -> Option<Outage> {
        if self.resume_at.is_some_and(|t| t > now) {
            return None;
        }
        self.failures += 1;
        let first = self.down_since.is_none();
        self.backoff = if first { RETRY_FIRST } else { (self.backoff * 2).min(SERVER_CAP) };
        self.resume_at = Some(now + jitter(self.backoff, random.next_u64()));
        self.down_since.get_or_insert(now);
        let loud = first || self.last_logged.is_none_or(|t| now.duration_since(t) >= RELOG);
        if loud {
            self.last_logged = Some(now);
        }
        Some(Outage { backoff: self.backoff, loud })
    }

    /// The server answered: how long it was down, if it was.
    pub fn up(&mut self, now: Instant) -> Option<Duration> {
        let since = self.down_since.take();
        *self = Self::default();
        since.map(|s| now.duration_since(s))
    }

    /// Outages reported since it went down (`--once` gives up at [`ONCE_ATTEMPTS`]).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn is_down(&self) -> bool {
        self.down_since.is_some()
    }

    /// When the next probe may start (while down).
    pub fn resume_at(&self) -> Option<Instant> {
        self.resume_at
    }

    /// Whether a job may start now: while the server is down, one job at a
    /// time probes it, once the back-off has run out.
    pub fn lets_start(&self, now: Instant, running: usize) -> bool {
        !self.is_down() || (running == 0 && self.resume_at.is_none_or(|t| t <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    struct Fixed(u64);

    impl Random for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    #[test]
    fn the_file_back_off_doubles_from_a_second_to_five_minutes() {
        let table = [(1, S), (2, 2 * S), (3, 4 * S), (9, 256 * S), (10, 300 * S), (1000, 300 * S)];
        for (attempt, delay) in table {
            assert_eq!(backoff(RETRY_FIRST, RETRY_CAP, attempt), delay, "attempt {attempt}");
        }
    }

    #[test]
    fn jitter_spreads_a_delay_over_75_to_125_percent() {
        let table = [(0, 3000), (500, 4000), (999, 4998), (1000, 3000), (u64::MAX, 4230)];
        for (r, ms) in table {
            assert_eq!(jitter(4 * S, r).as_millis(), ms, "random {r}");
        }
        for _ in 0..100 {
            let j = jitter(4 * S, SystemRandom.next_u64());
            assert!(j >= 3 * S && j <= 5 * S, "{j:?}");
        }
    }

    #[test]
    fn a_repeated_failure_is_logged_first_on_a_new_reason_and_every_10_minutes() {
        let t0 = Instant::now();
        let mut r = Retries::default();
        let mut random = Fixed(500);
        let mut fail = |msg: &str, after: Duration| match r.failed("a", msg, false, t0 + after, &mut random) {
            Verdict::Retry { loud, .. } => loud,
            Verdict::GiveUp { .. } => panic!("gave up without --once"),
        };
        let table = [
            ("first failure", "451 busy", Duration::ZERO, true),
            ("same reason", "451 busy", S, false),
            ("new reason", "553 denied", 2 * S, true),
            ("same again", "553 denied", 3 * S, false),
            ("10 minutes after the last warning", "553 denied", 2 * S + RELOG, true),
        ];
        for (what, msg, after, loud) in table {
            assert_eq!(fail(msg, after), loud, "{what}");
        }
    }

    #[test]
    fn once_gives_up_at_the_fifth_attempt() {
        let t0 = Instant::now();
        let mut r = Retries::default();
        let verdicts: Vec<Verdict> = (0..5).map(|_| r.failed("a", "no", true, t0, &mut Fixed(500))).collect();
        assert_eq!(verdicts[3], Verdict::Retry { attempts: 4, delay: 8 * S, loud: false });
        assert_eq!(verdicts[4], Verdict::GiveUp { attempts: 5 });
        assert_eq!(r.forget("a"), Some(5));
    }

    #[test]
    fn retries_come_due_in_time_order() {
        let t0 = Instant::now();
        let mut r = Retries::default();
        r.schedule(Job::Delete(crate::relpath::RelPath::parse("late").unwrap()), t0 + 2 * S);
        r.schedule(Job::Delete(crate::relpath::RelPath::parse("soon").unwrap()), t0 + S);
        assert_eq!(r.next_due(), Some(t0 + S));
        assert_eq!(r.pop_due(t0), None);
        let due: Vec<String> = std::iter::from_fn(|| r.pop_due(t0 + 2 * S)).map(|j| j.name()).collect();
        assert_eq!(due, ["soon", "late"]);
        assert!(r.is_empty());
    }

    #[test]
    fn a_server_down_lets_one_probe_start_once_its_back_off_ran_out() {
        let t0 = Instant::now();
        let mut s = Server::default();
        assert!(s.lets_start(t0, 3), "up: everything starts");
        assert_eq!(s.down(t0, &mut Fixed(500)), Some(Outage { backoff: S, loud: true }));
        assert_eq!(s.down(t0, &mut Fixed(500)), None, "the same outage, reported by another session");
        let table = [("backing off", t0, 0, false), ("a probe runs", t0 + S, 1, false), ("probe", t0 + S, 0, true)];
        for (what, now, running, starts) in table {
            assert_eq!(s.lets_start(now, running), starts, "{what}");
        }
        assert_eq!(s.down(t0 + S, &mut Fixed(500)).map(|o| o.backoff), Some(2 * S));
        assert_eq!(s.failures(), 2);
        assert_eq!(s.up(t0 + 3 * S), Some(3 * S));
        assert!(!s.is_down());
    }
}
