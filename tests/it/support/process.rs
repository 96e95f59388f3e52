//! Process control of a started binary: its pids (the launcher, and the daemon
//! it forked), signals, waiting for it to exit or be gone, what it printed,
//! the kill when the test drops it, and the exit assertions of a run to
//! completion.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use super::builder::{Opts, Test};
use super::contract::EXIT_USAGE;
use super::sandbox::{Sandbox, read_lossy};
use super::{poll_until, proc};

/// A started `ftpmonitor` process (in daemon mode: the launcher, and the daemon it forked).
/// Dropping it SIGKILLs both if they still run.
pub struct Daemon {
    pub(super) sandbox: Arc<Sandbox>,
    pub(super) opts: Opts,
    pub(super) child: RefCell<Child>,
    pub(super) exit: Cell<Option<ExitStatus>>,
    pub(super) daemon_pid: Cell<Option<u32>>,
    pub(super) log_offset: u64,
    pub(super) stdout: PathBuf,
    pub(super) stderr: PathBuf,
    pub(super) _pty_master: Option<OwnedFd>,
}

impl Deref for Daemon {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl Daemon {
    /// A builder for another process with the same sandbox, server and options.
    pub fn again(&self) -> Test {
        Test { sandbox: Arc::clone(&self.sandbox), opts: self.opts.clone() }
    }

    /// Whether this was started with `--foreground`.
    pub fn is_foreground(&self) -> bool {
        self.opts.foreground
    }

    /// The pid of the process we spawned (in daemon mode: the launcher).
    pub fn child_pid(&self) -> u32 {
        self.child.borrow().id()
    }

    /// The pid of the process doing the work: the child in foreground mode, the forked
    /// daemon (from the PID file, remembered once seen) otherwise.
    pub fn pid(&self) -> u32 {
        if self.opts.foreground {
            return self.child_pid();
        }
        if let Some(pid) = self.daemon_pid.get() {
            return pid;
        }
        let pid = self.pid_file().unwrap_or_else(|| panic!("no pid in the PID file\n{}", self.diagnostics()));
        self.daemon_pid.set(Some(pid));
        pid
    }

    /// Sends `sig` to [`Daemon::pid`].
    pub fn signal(&self, sig: libc::c_int) {
        proc::signal(self.pid(), sig);
    }

    /// The exit status of the spawned child, if it has exited.
    pub fn try_exit(&self) -> Option<ExitStatus> {
        if let Some(status) = self.exit.get() {
            return Some(status);
        }
        let status = self.child.borrow_mut().try_wait().expect("try_wait on the child")?;
        self.exit.set(Some(status));
        Some(status)
    }

    /// Waits for the spawned child (in daemon mode: the launcher) to exit; on timeout
    /// kills it and panics.
    pub fn wait_exit(&self, timeout: Duration) -> ExitStatus {
        if poll_until(timeout, || self.try_exit().is_some()) {
            return self.try_exit().expect("exited");
        }
        let _ = self.child.borrow_mut().kill();
        let _ = self.child.borrow_mut().wait();
        panic!("ftpmonitor (pid {}) did not exit within {timeout:?}\n{}", self.child_pid(), self.diagnostics());
    }

    /// Waits until [`Daemon::pid`] is gone (for a forked daemon, which is not our child).
    pub fn wait_gone(&self, timeout: Duration) {
        let pid = self.pid();
        if self.opts.foreground {
            self.wait_exit(timeout);
            return;
        }
        if !poll_until(timeout, || !proc::is_alive(pid)) {
            panic!("daemon pid {pid} still runs after {timeout:?}\n{}", self.diagnostics());
        }
    }

    /// What the spawned child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// What the spawned child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A forked daemon is not our child: kill it by pid, but only if this run saw it start
        // (the PID file may name another instance that shares the sandbox) and its argv names
        // our private temp dir (the pid may have been reused). The sandbox sweeps the rest.
        if !self.opts.foreground
            && let Some(pid) = self.daemon_pid.get()
            && proc::cmdline(pid)
                .windows(self.sandbox.tmp().as_os_str().len())
                .any(|w| w == self.sandbox.tmp().as_os_str().as_encoded_bytes())
            && let Ok(raw) = i32::try_from(pid)
        {
            // SAFETY: kill(2) on the daemon this test started.
            unsafe { libc::kill(raw, libc::SIGKILL) };
        }
    }
}

/// A process that ran to completion.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub daemon: Daemon,
}

impl Deref for Finished {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.daemon.sandbox
    }
}

impl Finished {
    /// Panics unless the exit code is `code`.
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}, got {} (signal {:?})\n{}",
            self.status,
            self.status.signal(),
            self.daemon.diagnostics()
        );
        self
    }

    /// Panics unless the process exited 2 with exactly one non-empty line on stderr that
    /// contains every one of `needles` (case-insensitive), and left no PID file behind.
    pub fn assert_usage_error(&self, needles: &[&str]) -> &Self {
        self.assert_exit(EXIT_USAGE);
        self.assert_one_line_error(needles);
        assert!(!self.pid_file_path().exists(), "a usage error left a PID file behind");
        self
    }

    /// Panics unless stderr is one non-empty line containing every one of `needles`
    /// (case-insensitive).
    pub fn assert_one_line_error(&self, needles: &[&str]) -> &Self {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected a one-line error on stderr, got {} lines:\n{}", lines.len(), self.stderr);
        let line = lines[0].to_lowercase();
        for needle in needles {
            assert!(line.contains(&needle.to_lowercase()), "the error {:?} does not mention {needle:?}", lines[0]);
        }
        self
    }
}
