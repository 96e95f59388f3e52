//! The cooldown: a changed path is ready once no event has touched it for the
//! cooldown, or once it has waited `max_wait` since its first event (a file
//! that never goes quiet is still uploaded regularly).
//!
//! Pure state, no clock and no threads: the caller passes `now` and sleeps
//! until [`Debouncer::next_deadline`]. Every path enters two queues in time
//! order (last event, first event); stale queue entries are skipped lazily, so
//! every operation is amortised O(1) however many paths are waiting.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    first: Instant,
    last: Instant,
}

#[derive(Debug)]
pub struct Debouncer<K> {
    cooldown: Duration,
    max_wait: Duration,
    entries: HashMap<K, Entry>,
    by_last: VecDeque<(Instant, K)>,
    by_first: VecDeque<(Instant, K)>,
}

impl<K: Clone + Eq + Hash> Debouncer<K> {
    pub fn new(cooldown: Duration, max_wait: Duration) -> Self {
        Self { cooldown, max_wait, entries: HashMap::new(), by_last: VecDeque::new(), by_first: VecDeque::new() }
    }

    pub fn set_cooldown(&mut self, cooldown: Duration) {
        self.cooldown = cooldown;
    }

    /// Records an event on `key` at `now` (`now` never goes backwards).
    pub fn push(&mut self, key: K, now: Instant) {
        match self.entries.get_mut(&key) {
            Some(e) => e.last = now,
            None => {
                self.entries.insert(key.clone(), Entry { first: now, last: now });
                self.by_first.push_back((now, key.clone()));
            }
        }
        self.by_last.push_back((now, key));
    }

    /// The keys cooling down.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.entries.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn drop_stale_fronts(&mut self) {
        while let Some((t, k)) = self.by_last.front() {
            match self.entries.get(k) {
                Some(e) if e.last == *t => break,
                _ => {
                    self.by_last.pop_front();
                }
            }
        }
        while let Some((t, k)) = self.by_first.front() {
            match self.entries.get(k) {
                Some(e) if e.first == *t => break,
                _ => {
                    self.by_first.pop_front();
                }
            }
        }
    }

    /// When the next key becomes ready, if any is waiting.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_fronts();
        let quiet = self.by_last.front().map(|(t, _)| *t + self.cooldown);
        let forced = self.by_first.front().map(|(t, _)| *t + self.max_wait);
        match (quiet, forced) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns the keys that are ready at `now`, oldest first.
    pub fn drain_ready(&mut self, now: Instant) -> Vec<K> {
        let mut ready = Vec::new();
        loop {
            self.drop_stale_fronts();
            let due = |queue: &VecDeque<(Instant, K)>, wait: Duration| {
                queue.front().filter(|(t, _)| *t + wait <= now).map(|(_, k)| k.clone())
            };
            // Its entries in both queues are stale now: dropped on the next turn.
            let Some(k) = due(&self.by_last, self.cooldown).or_else(|| due(&self.by_first, self.max_wait)) else {
                break;
            };
            self.entries.remove(&k);
            ready.push(k);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_path_is_ready_after_a_quiet_cooldown() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(5 * S, 60 * S);
        d.push("a", t0);
        assert_eq!(d.next_deadline(), Some(t0 + 5 * S));
        assert!(d.drain_ready(t0 + 4 * S).is_empty());
        d.push("a", t0 + 4 * S);
        assert_eq!(d.next_deadline(), Some(t0 + 9 * S));
        assert!(d.drain_ready(t0 + 8 * S).is_empty());
        assert_eq!(d.drain_ready(t0 + 9 * S), vec!["a"]);
        assert!(d.is_empty());
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn events_inside_a_cooldown_are_never_dropped() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(5 * S, 60 * S);
        d.push("a", t0);
        d.push("b", t0 + S);
        d.push("a", t0 + 2 * S);
        assert_eq!(d.drain_ready(t0 + 6 * S), vec!["b"]);
        assert_eq!(d.drain_ready(t0 + 7 * S), vec!["a"]);
        d.push("a", t0 + 8 * S);
        assert_eq!(d.drain_ready(t0 + 13 * S), vec!["a"]);
    }

    #[test]
    fn a_path_that_never_goes_quiet_is_released_after_max_wait() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(5 * S, 60 * S);
        let mut t = t0;
        let mut released = None;
        while t < t0 + 70 * S {
            d.push("busy", t);
            if !d.drain_ready(t).is_empty() {
                released = Some(t - t0);
                break;
            }
            t += S;
        }
        assert_eq!(released, Some(60 * S));
    }

    #[test]
    fn zero_cooldown_releases_at_once() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::ZERO, 60 * S);
        d.push(1, t0);
        d.push(2, t0);
        assert_eq!(d.drain_ready(t0), vec![1, 2]);
    }

    #[test]
    fn many_paths_drain_in_order() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(S, 60 * S);
        for i in 0..10_000u32 {
            d.push(i, t0 + Duration::from_micros(u64::from(i)));
        }
        let ready = d.drain_ready(t0 + 2 * S);
        assert_eq!(ready.len(), 10_000);
        assert!(ready.windows(2).all(|w| w[0] < w[1]));
    }
}
