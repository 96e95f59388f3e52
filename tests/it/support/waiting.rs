//! Waiting for what a daemon does, with a deadline and never a bare sleep:
//! a condition, its ready line, a line of its own log; and the diagnostics a
//! timed-out wait panics with (command line, log, stderr, the server's tree).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::builder::Test;
use super::contract::{self, READY};
use super::process::Daemon;
use super::{POLL, TIMEOUT, poll_until};

impl Daemon {
    /// Polls `cond` for up to [`TIMEOUT`]; panics with `what`, the log, stderr and the
    /// remote tree.
    pub fn wait_until(&self, what: &str, cond: impl FnMut() -> bool) {
        self.wait_until_for(TIMEOUT, what, cond);
    }

    /// [`Daemon::wait_until`] with an explicit deadline.
    pub fn wait_until_for(&self, timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
        if !poll_until(timeout, cond) {
            panic!("timed out after {timeout:?} waiting until {what}\n{}", self.diagnostics());
        }
    }

    /// What this run wrote to the log: the log after the length it had when this process was
    /// spawned (the whole log if it has since been replaced by a shorter one).
    pub fn own_log(&self) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        let from = usize::try_from(self.log_offset).unwrap_or(usize::MAX);
        String::from_utf8_lossy(bytes.get(from..).unwrap_or(&bytes)).into_owned()
    }

    /// Waits for this run's ready line; fails early if a foreground process exits first.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if self.own_log().contains(READY) {
                return;
            }
            if self.opts.foreground
                && let Some(status) = self.try_exit()
            {
                panic!("ftpmonitor exited with {status} before logging {READY:?}\n{}", self.diagnostics());
            }
            if Instant::now() >= deadline {
                panic!("timed out after {TIMEOUT:?} waiting for {READY:?} in the log\n{}", self.diagnostics());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        self.wait_until(&format!("the log contains {needle:?}"), || self.log().contains(needle));
    }

    /// Waits until the log reports the upload of exactly `rel`.
    pub fn wait_for_upload_line(&self, rel: &str) {
        self.wait_until(&format!("the log reports {:?}", contract::uploaded(rel)), || self.upload_count(rel) > 0);
    }

    /// The log, stderr, stdout and remote listing, for a panic message.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "--- command line ---");
        let _ = writeln!(
            out,
            "{}",
            Test { sandbox: Arc::clone(&self.sandbox), opts: self.opts.clone() }
                .command_line()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let _ = writeln!(out, "--- status: {:?}", self.try_exit());
        let _ = writeln!(out, "--- log ({}) ---", self.log_path().display());
        let _ = writeln!(out, "{}", tail(&self.log(), 200));
        let _ = writeln!(out, "--- stderr ---\n{}", tail(&self.stderr(), 100));
        let _ = writeln!(out, "--- stdout ---\n{}", tail(&self.stdout(), 50));
        let _ = writeln!(out, "--- server tree ---");
        for (name, bytes) in self.server.remote_files() {
            let _ = writeln!(out, "{name:?} ({} B)", bytes.len());
        }
        out
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "[… {skip} earlier lines]");
    }
    out.push_str(&all[skip..].join("\n"));
    out
}
