//! Progress of long work (a reconcile that queued many files, a `--once`
//! run): a bar on stderr when it is a terminal and the process runs in the
//! foreground, and otherwise a log line every few seconds:
//! `reconcile: 12000/20000 files, 48.0 MiB/s, eta 30 s`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use log::info;

/// Below this many queued files no progress is shown.
const MIN_FILES: u64 = 200;
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    tty: bool,
    total: u64,
    done: u64,
    bytes: u64,
    started: Option<Instant>,
    next_log: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(foreground: bool) -> Self {
        Self {
            tty: foreground && std::io::stderr().is_terminal(),
            total: 0,
            done: 0,
            bytes: 0,
            started: None,
            next_log: None,
            bar: None,
        }
    }

    /// More files were queued.
    pub fn add(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.total += n;
        if self.started.is_none() && self.total - self.done >= MIN_FILES {
            let now = Instant::now();
            self.started = Some(now);
            if self.tty {
                let bar = ProgressBar::new(self.total);
                if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} files, {msg}, eta {eta}") {
                    bar.set_style(style);
                }
                crate::logging::set_progress(Some(bar.clone()));
                self.bar = Some(bar);
            } else {
                self.next_log = Some(now + LOG_EVERY);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
        }
    }

    /// A file was uploaded.
    pub fn done(&mut self, bytes: u64) {
        if self.started.is_none() {
            return;
        }
        self.done += 1;
        self.bytes += bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
            bar.set_message(self.rate());
        }
        if self.done >= self.total {
            self.finish();
        }
    }

    fn rate(&self) -> String {
        let secs = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(0.001);
        format!("{}/s", crate::logging::human_bytes((self.bytes as f64 / secs) as u64))
    }

    pub fn next_tick(&self) -> Option<Instant> {
        self.next_log
    }

    /// Logs a progress line when one is due.
    pub fn tick(&mut self, now: Instant, outstanding: usize) {
        // Nothing left to do ends it (some queued files turned out unchanged).
        if outstanding == 0 && self.started.is_some() {
            self.finish();
            return;
        }
        let (Some(t), Some(started)) = (self.next_log, self.started) else {
            return;
        };
        if now < t {
            return;
        }
        self.next_log = Some(now + LOG_EVERY);
        let elapsed = now.duration_since(started).as_secs_f64().max(0.001);
        let per_file = elapsed / self.done.max(1) as f64;
        let eta = (self.total.saturating_sub(self.done) as f64 * per_file) as u64;
        info!("reconcile: {}/{} files, {}, eta {eta} s", self.done, self.total, self.rate());
    }

    /// Ends the bar or the log lines.
    pub fn finish(&mut self) {
        if let Some(started) = self.started.take() {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
                crate::logging::set_progress(None);
            }
            if self.done > 0 {
                info!(
                    "reconcile finished: {} files, {} in {:.1} s",
                    self.done,
                    crate::logging::human_bytes(self.bytes),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        self.next_log = None;
        self.total = 0;
        self.done = 0;
        self.bytes = 0;
    }
}
