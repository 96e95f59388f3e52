//! Test support: an in-process FTP server, a proxy to put in front of it, a builder that runs
//! the real `ftpmonitor` binary against it in throw-away directories, and deadline-based waiting.
//!
//! The running of the binary, by concern:
//! - `builder`: the [`Test`] builder (command line, environment, start, run to completion);
//! - `sandbox`: a test's directories and server, and the sweep of its processes at the end;
//! - `process`: process control of a started [`Daemon`] (pids, signals, exits, the kill when
//!   dropped) and the exit assertions of a [`Finished`] run;
//! - `waiting`: waiting with a deadline (a condition, the ready line, a log line) and the
//!   diagnostics a timed-out wait panics with;
//! - `trees`: tree comparison (the files of the server's tree or the watch directory, left-over
//!   temporary uploads, a file arriving on the server).
//!
//! Nothing here sleeps to synchronise: every wait polls a condition until a deadline and
//! panics with what it waited for and the daemon's log.

// Each test module uses a different subset of the helpers.
#![allow(dead_code)]

mod builder;
pub mod contract;
pub mod control;
pub mod proc;
mod process;
pub mod proxy;
mod sandbox;
mod server;
pub mod toxics;
mod trees;
mod waiting;

#[cfg(test)]
mod selftest;

use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use builder::Test;
pub use contract::*;
#[allow(unused_imports)]
pub use process::{Daemon, Finished};
#[allow(unused_imports)]
pub use proxy::{Behaviour, DataConn, DataLink, FtpProxy, PROXY_IP, Transparent, Verdict};
#[allow(unused_imports)]
pub use sandbox::Sandbox;
#[allow(unused_imports)]
pub use server::{FtpServer, PASSWORD, ServerEvent, USER};
#[allow(unused_imports)]
pub use toxics::{StallFirstUpload, StallState, is_store_verb};
#[allow(unused_imports)]
pub use trees::{files_under, temp_files_under};

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
