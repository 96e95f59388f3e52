//! `--bwlimit`: the total upload rate over all connections, fixed (`10M`) or
//! by the time of day (`"08:00,512k 18:00,10M 23:00,off"`), changed live at
//! each boundary and on SIGHUP without stopping a transfer in flight.
//!
//! The token bucket is governor's (GCRA): every upload's reader takes its
//! bytes from one shared [`Limiter`] before they go out. The timetable is
//! pure: the loop asks [`Timetable::rate_at`] and [`Timetable::next_change`]
//! with the local time of day and sleeps until the next change like until
//! any other deadline.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Bytes per second, `None` for no limit.
pub type Rate = Option<u32>;

/// Seconds in a day.
const DAY: u32 = 24 * 3600;

/// The rates by time of day: each applies from its second of the day (local
/// time) until the next one, the last one around midnight until the first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timetable {
    /// Sorted by second of the day, never empty once parsed (an unlimited
    /// run has `[(0, None)]`).
    entries: Vec<(u32, Rate)>,
}

impl Timetable {
    /// No limit at any time.
    pub fn off() -> Self {
        Self { entries: vec![(0, None)] }
    }

    /// `RATE`, or `HH:MM[:SS],RATE` entries separated by spaces. RATE is a
    /// number of bytes per second with an optional `k`, `M` or `G` (binary
    /// multiples: `512k` is 512 KiB/s), or `off`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(
                "empty: give a rate such as 500k or 10M, off, or a timetable such as \"08:00,512k 18:00,off\"".into()
            );
        }
        if !t.contains(',') {
            return Ok(Self { entries: vec![(0, parse_rate(t)?)] });
        }
        let mut entries = Vec::new();
        for part in t.split_whitespace() {
            let Some((at, rate)) = part.split_once(',') else {
                return Err(format!("{part:?} is not TIME,RATE: write each entry as HH:MM,RATE, e.g. 08:00,512k"));
            };
            let second = parse_time_of_day(at)?;
            if entries.iter().any(|(s, _)| *s == second) {
                return Err(format!("{at} is given twice: keep one rate per time"));
            }
            entries.push((second, parse_rate(rate)?));
        }
        entries.sort_by_key(|(s, _)| *s);
        Ok(Self { entries })
    }

    /// For a report: `no limit`, `10.0 MiB/s`, or each entry with its time.
    pub fn describe(&self) -> String {
        match self.entries.as_slice() {
            [(0, rate)] => describe(*rate),
            entries => entries
                .iter()
                .map(|(s, r)| {
                    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
                    let at = if sec == 0 { format!("{h:02}:{m:02}") } else { format!("{h:02}:{m:02}:{sec:02}") };
                    format!("from {at} {}", describe(*r))
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Whether this limits anything at any time.
    pub fn is_off(&self) -> bool {
        self.entries.iter().all(|(_, r)| r.is_none())
    }

    /// The rate at `second` of the day.
    pub fn rate_at(&self, second: u32) -> Rate {
        let second = second % DAY;
        self.entries.iter().rev().find(|(s, _)| *s <= second).or_else(|| self.entries.last()).and_then(|(_, r)| *r)
    }

    /// How long after `second` of the day the rate may change next (`None`:
    /// it never does).
    pub fn next_change(&self, second: u32) -> Option<Duration> {
        if self.entries.len() < 2 {
            return None;
        }
        let second = second % DAY;
        let next = self.entries.iter().map(|(s, _)| *s).find(|s| *s > second).unwrap_or(self.entries[0].0 + DAY);
        Some(Duration::from_secs(u64::from(next - second)))
    }
}

fn parse_time_of_day(at: &str) -> Result<u32, String> {
    let fields: Vec<&str> = at.split(':').collect();
    let bad = || format!("{at:?} is not a time of day: use HH:MM (24 h, local time), e.g. 08:00 or 18:30");
    if !(2..=3).contains(&fields.len()) {
        return Err(bad());
    }
    let mut parts = fields.iter().map(|f| f.parse::<u32>().ok().filter(|_| f.len() == 2));
    let (Some(Some(h)), Some(Some(m))) = (parts.next(), parts.next()) else { return Err(bad()) };
    let s = match parts.next() {
        Some(Some(s)) => s,
        Some(None) => return Err(bad()),
        None => 0,
    };
    if h > 23 || m > 59 || s > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + s)
}

/// `500k`, `10M`, `1.5M`, `2G`, `4096` (bytes/s), `off`.
fn parse_rate(text: &str) -> Result<Rate, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(None);
    }
    let bad = || format!("{t:?} is not a rate: use bytes per second with k, M or G (binary), e.g. 500k or 10M, or off");
    let (number, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let factor: f64 = match unit.trim_end_matches(['B', 'b', '/', 's']).trim_end_matches('i') {
        "" => 1.0,
        "k" | "K" => 1024.0,
        "m" | "M" => 1024.0 * 1024.0,
        "g" | "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = (value * factor).round();
    if !(1.0..=f64::from(u32::MAX)).contains(&bytes) {
        return Err(format!("{t:?} is out of range: use 1 byte/s to 4G, or off"));
    }
    // In range, checked above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Some(bytes as u32))
}

/// A rate for a log line: `512.0 KiB/s`, `no limit`.
pub fn describe(rate: Rate) -> String {
    rate.map_or_else(|| "no limit".to_string(), |r| format!("{}/s", crate::logging::human_bytes(u64::from(r))))
}

/// The shared token bucket every upload takes its bytes from. Cheap to
/// clone; a rate change replaces the bucket, which the next read picks up.
#[derive(Clone, Default)]
pub struct Limiter {
    bucket: Arc<Mutex<Option<Arc<DefaultDirectRateLimiter>>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("limited", &self.current().is_some()).finish()
    }
}

impl Limiter {
    /// Sets the rate for every transfer from the next read on.
    pub fn set(&self, rate: Rate) {
        let bucket = rate.and_then(NonZeroU32::new).map(|r| {
            // A quarter of a second's worth may go at once: smooth enough for
            // a link, big enough for one read.
            let burst = NonZeroU32::new((r.get() / 4).max(64 * 1024)).unwrap_or(r);
            Arc::new(RateLimiter::direct(Quota::per_second(r).allow_burst(burst)))
        });
        *self.bucket.lock().unwrap_or_else(PoisonError::into_inner) = bucket;
    }

    fn current(&self) -> Option<Arc<DefaultDirectRateLimiter>> {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until `n` bytes may go, or `abort` is set.
    pub fn take(&self, mut n: usize, abort: &AtomicBool) {
        while n > 0 {
            let Some(bucket) = self.current() else { return };
            // A piece no bigger than the bucket holds.
            let piece = n.min(64 * 1024);
            let cells = NonZeroU32::new(u32::try_from(piece).unwrap_or(64 * 1024)).unwrap_or(NonZeroU32::MIN);
            match bucket.check_n(cells) {
                Ok(Ok(())) | Err(_) => n -= piece,
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(bucket.clock().now());
                    // In short steps, so that shutdown and a rate change are seen.
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                    if abort.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        }
    }
}

/// The local time of day in seconds, DST included where the C library knows it.
pub fn local_second_of_day() -> u32 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let utc = u32::try_from(now % u64::from(DAY)).unwrap_or(0);
    (utc + DAY).wrapping_add_signed(local_offset_secs(now)) % DAY
}

#[cfg(unix)]
fn local_offset_secs(now: u64) -> i32 {
    let t: libc::time_t = now.try_into().unwrap_or(0);
    // SAFETY: localtime_r writes only into the `tm` we own; it is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&raw const t, &raw mut tm).is_null() };
    if ok { i32::try_from(tm.tm_gmtoff).unwrap_or(0) } else { 0 }
}

#[cfg(not(unix))]
fn local_offset_secs(_now: u64) -> i32 {
    crate::logging::local_offset_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u32 = 1024;

    #[test]
    fn rates_parse_with_binary_units() {
        assert_eq!(parse_rate("500k"), Ok(Some(500 * K)));
        assert_eq!(parse_rate("10M"), Ok(Some(10 * K * K)));
        assert_eq!(parse_rate("1.5M"), Ok(Some(3 * K * K / 2)));
        assert_eq!(parse_rate("2MiB/s"), Ok(Some(2 * K * K)));
        assert_eq!(parse_rate("4096"), Ok(Some(4096)));
        assert_eq!(parse_rate("off"), Ok(None));
        for bad in ["fast", "-1k", "10X", "", "5G"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_timetable_applies_each_rate_until_the_next_and_wraps_at_midnight() {
        let t = Timetable::parse("08:00,512k 18:00,10M 23:00,off").unwrap();
        let at = |h: u32, m: u32| h * 3600 + m * 60;
        assert_eq!(t.rate_at(at(7, 59)), None, "before the first entry the last one of the day applies");
        assert_eq!(t.rate_at(at(8, 0)), Some(512 * K));
        assert_eq!(t.rate_at(at(17, 59)), Some(512 * K));
        assert_eq!(t.rate_at(at(18, 0)), Some(10 * K * K));
        assert_eq!(t.rate_at(at(23, 30)), None);
        assert_eq!(t.next_change(at(7, 0)), Some(Duration::from_secs(3600)));
        assert_eq!(t.next_change(at(23, 0)), Some(Duration::from_secs(9 * 3600)));
        assert_eq!(Timetable::parse("10M").unwrap().next_change(0), None);
        assert!(Timetable::parse("off").unwrap().is_off());
        assert_eq!(t.describe(), "from 08:00 512.0 KiB/s, from 18:00 10.0 MiB/s, from 23:00 no limit");
        assert_eq!(Timetable::parse("10M").unwrap().describe(), "10.0 MiB/s");
    }

    #[test]
    fn timetable_errors_name_the_bad_entry() {
        for (bad, says) in [
            ("8:00,1M", "not a time of day"),
            ("25:00,1M", "not a time of day"),
            ("08:00", "not a rate"),
            ("08:00,1M 08:00,2M", "given twice"),
            ("08:00;1M 09:00,2M", "not TIME,RATE"),
            ("08:00,1M 09:00,fast", "not a rate"),
        ] {
            let e = Timetable::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(Timetable::parse("08:00:30,1M 09:00,off").unwrap().rate_at(8 * 3600 + 30), Some(K * K));
    }

    #[test]
    fn the_limiter_holds_a_rate() {
        let l = Limiter::default();
        l.set(Some(4 * K * K));
        let abort = AtomicBool::new(false);
        let start = std::time::Instant::now();
        // The first quarter second's worth (1 MiB) goes at once, the rest at the rate.
        for _ in 0..3 * 1024 / 64 {
            l.take(64 * 1024, &abort);
        }
        // Never faster than the rate (a loaded machine may make it slower).
        let took = start.elapsed().as_secs_f64();
        assert!((0.48..2.0).contains(&took), "3 MiB at 4 MiB/s took {took:.3} s");
        l.set(None);
        let start = std::time::Instant::now();
        l.take(100 * 1024 * 1024, &abort);
        assert!(start.elapsed() < Duration::from_millis(50), "no limit still waited");
    }
}
