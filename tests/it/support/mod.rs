//! Test support: an in-process FTP server, a proxy to put in front of it, a builder that runs
//! the real `ftpmonitor` binary against it in throw-away directories, and deadline-based waiting.
//!
//! Nothing here sleeps to synchronise: every wait polls a condition until a deadline and
//! panics with what it waited for and the daemon's log.

// Each test module uses a different subset of the helpers.
#![allow(dead_code)]

pub mod contract;
pub mod control;
mod daemon;
pub mod proc;
pub mod proxy;
mod server;
pub mod toxics;

#[cfg(test)]
mod selftest;

use std::time::{Duration, Instant};

pub use contract::*;
#[allow(unused_imports)]
pub use daemon::{Daemon, Finished, Sandbox, Test};
#[allow(unused_imports)]
pub use proxy::{Behaviour, DataConn, DataLink, FtpProxy, PROXY_IP, Transparent, Verdict};
#[allow(unused_imports)]
pub use server::{FtpServer, PASSWORD, ServerEvent, USER, files_under};
#[allow(unused_imports)]
pub use toxics::{StallFirstUpload, StallState, is_store_verb};

/// Default deadline for anything the daemon should do "soon". Generous, so a loaded CI
/// machine is not flaky; a passing test never waits for it.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Interval between two checks of a condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` every [`POLL`] until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
/// [`Daemon::wait_until`] adds the daemon's log and stderr to the panic message.
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(poll_until(timeout, cond), "timed out after {timeout:?} waiting until {what}");
}

/// Files under `root` (a server's tree on disk) whose name ends with the
/// temporary-upload suffix.
pub fn temp_files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(ft) if ft.is_dir() => dirs.push(path),
                Ok(_) if entry.file_name().to_string_lossy().ends_with(contract::TEMP_SUFFIX) => out.push(path),
                _ => {}
            }
        }
    }
    out
}
