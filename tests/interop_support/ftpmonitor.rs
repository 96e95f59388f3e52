//! Runs the real `ftpmonitor` binary against a [`Server`] (or a proxy in front of it),
//! in its own temporary directory:
//!
//! ```text
//! watch/           WATCH_DIR
//! work/            --pid-file, --log-file, --state-dir, HOME; stderr.N of the N-th run
//! ```
//!
//! Every run is bounded: `--once` runs and launchers are killed at their deadline, a
//! foreground daemon is stopped (SIGTERM, then SIGKILL) when its handle is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::servers::Server;
use super::{KeptDir, POLL, REMOTE_DIR, tail, temp_dir};

/// One ftpmonitor job: a watch directory, a target, and its own PID/log/state files.
pub struct Job {
    pub watch: PathBuf,
    pub work: PathBuf,
    host: String,
    port: u16,
    user: String,
    password: String,
    ca_file: Option<PathBuf>,
    extra: Vec<String>,
    runs: AtomicUsize,
    _tmp: KeptDir,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Job {
    /// A job that syncs into `server` (FTPS with the server's CA when it requires TLS).
    pub fn new(server: &Server) -> Job {
        Job::to(server, server.host(), server.port)
    }

    /// A job that connects to `host:port` (a proxy) and logs in as `server`'s user.
    pub fn to(server: &Server, host: &str, port: u16) -> Job {
        let tmp = temp_dir("ftpmonitor-interop-job.");
        let base = tmp.path().canonicalize().expect("canonicalize the temp dir");
        let (watch, work) = (base.join("watch"), base.join("work"));
        for d in [&watch, &work] {
            std::fs::create_dir(d).expect("create a job dir");
        }
        let mut job = Job {
            watch,
            work,
            host: host.to_owned(),
            port,
            user: server.user.clone(),
            password: server.password.clone(),
            ca_file: server.pki.as_ref().map(|p| p.ca.clone()),
            extra: vec!["--cooldown".into(), "0.2".into()],
            runs: AtomicUsize::new(0),
            _tmp: tmp,
        };
        if server.options.tls {
            job.extra.push("--tls".into());
        }
        job
    }

    /// Uses `path` as `--ca-file` instead of the server's CA.
    pub fn ca_file(mut self, path: &Path) -> Job {
        self.ca_file = Some(path.to_owned());
        self
    }

    /// Adds command-line arguments (before the positionals).
    pub fn args(mut self, args: &[&str]) -> Job {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub fn log_path(&self) -> PathBuf {
        self.work.join("ftpmonitor.log")
    }

    pub fn pid_path(&self) -> PathBuf {
        self.work.join("ftpmonitor.pid")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Whether the journal holds nothing queued, retrying or under way (the
    /// daemon writes it at once when nothing runs any more).
    pub fn journal_idle(&self) -> bool {
        let path = self.work.join("state").join("journal.sqlite");
        let Ok(conn) = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return false;
        };
        conn.query_row("SELECT (SELECT count(*) FROM queue) + (SELECT count(*) FROM uploads)", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok_and(|n| n == 0)
    }

    /// What the journal holds queued or under way, for failure messages.
    pub fn journal_pending(&self) -> Vec<String> {
        let path = self.work.join("state").join("journal.sqlite");
        let Ok(conn) = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return vec!["(no journal)".into()];
        };
        let mut out = Vec::new();
        for sql in ["SELECT 'queue ' || path || ' ' || op FROM queue", "SELECT 'upload ' || path FROM uploads"] {
            if let Ok(mut stmt) = conn.prepare(sql) {
                out.extend(stmt.query_map([], |r| r.get::<_, String>(0)).into_iter().flatten().flatten());
            }
        }
        out
    }

    /// How many times the log says `rel` was uploaded.
    pub fn uploads(&self, rel: &str) -> usize {
        let needle = format!(" - uploaded {rel} (");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// The log and what the runs printed, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = format!("--- ftpmonitor log (tail) ---\n{}\n", tail(&self.log_path(), 60));
        let runs = self.runs.load(Ordering::Relaxed);
        for n in runs.saturating_sub(2)..runs {
            let path = self.work.join(format!("stderr.{n}"));
            out.push_str(&format!("--- ftpmonitor stderr.{n} (tail) ---\n{}\n", tail(&path, 30)));
        }
        out
    }

    fn command(&self, mode: &[&str]) -> (Command, PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let stderr_path = self.work.join(format!("stderr.{n}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpmonitor"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FTPMONITOR_") || key.to_string_lossy().starts_with("XDG_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("HOME", &self.work)
            .env("FTPMONITOR_PASSWORD", &self.password)
            .args(mode)
            .arg("--user")
            .arg(&self.user)
            .arg("--pid-file")
            .arg(self.pid_path())
            .arg("--log-file")
            .arg(self.log_path())
            .arg("--state-dir")
            .arg(self.work.join("state"))
            .args(&self.extra);
        if let Some(ca) = &self.ca_file
            && self.extra.iter().any(|a| a == "--tls")
        {
            cmd.arg("--ca-file").arg(ca);
        }
        cmd.arg(&self.watch).arg(&self.host).arg(self.port.to_string()).arg(REMOTE_DIR);
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        (cmd, stderr_path)
    }

    /// Runs to completion (`mode` decides how: `--once`, or the forking launcher) and
    /// kills it at `timeout`.
    fn run(&self, mode: &[&str], timeout: Duration, server: &Server) -> Finished {
        let (mut cmd, stderr_path) = self.command(mode);
        let started = Instant::now();
        let mut child = cmd.spawn().expect("start ftpmonitor");
        loop {
            if let Some(status) = child.try_wait().expect("wait for ftpmonitor") {
                return Finished {
                    status,
                    stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                    elapsed: started.elapsed(),
                };
            }
            if started.elapsed() >= timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ftpmonitor {} did not finish within {timeout:?}\n{}{}",
                    mode.join(" "),
                    self.diagnostics(),
                    server.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `ftpmonitor --once --foreground ...`, killed after `timeout`.
    pub fn once(&self, timeout: Duration, server: &Server) -> Finished {
        self.run(&["--once", "--foreground"], timeout, server)
    }

    /// `ftpmonitor --once --foreground ...`; panics unless it exits 0 within `timeout`.
    pub fn once_ok(&self, timeout: Duration, server: &Server) -> Finished {
        let done = self.once(timeout, server);
        assert!(
            done.status.success(),
            "ftpmonitor --once exited with {} after {:?}\n{}{}",
            done.status,
            done.elapsed,
            self.diagnostics(),
            server.logs()
        );
        done
    }

    /// The plain launcher (forks into the background once it logged in), killed after
    /// `timeout` if it neither exits nor forks.
    pub fn launch(&self, timeout: Duration, server: &Server) -> Finished {
        self.run(&[], timeout, server)
    }

    /// `ftpmonitor --foreground ...` as a running daemon.
    pub fn spawn_foreground(&self) -> Daemon<'_> {
        let (mut cmd, _) = self.command(&["--foreground"]);
        let child = cmd.spawn().expect("start ftpmonitor --foreground");
        Daemon { job: self, child: Some(child) }
    }
}

/// A running `ftpmonitor --foreground`; stopped (SIGTERM, SIGKILL after 20 s) on drop.
pub struct Daemon<'a> {
    job: &'a Job,
    child: Option<Child>,
}

impl Daemon<'_> {
    /// Polls `cond` until it holds; panics naming `what`, with the daemon's log and the
    /// server's logs, after `timeout` or when the daemon exits.
    pub fn wait_until(&mut self, timeout: Duration, server: &Server, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "ftpmonitor exited ({status}) while waiting until {what}\n{}{}",
                    self.job.diagnostics(),
                    server.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting until {what}\n{}{}",
                self.job.diagnostics(),
                server.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon runs").id()
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) on the child this handle started.
        unsafe { libc::kill(pid, sig) };
    }

    /// Whether the daemon still runs (`None` while it does, else how it ended).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// `kill -9`, and waits until it is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon runs");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM; the exit status, within 30 s (then SIGKILL and a panic).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon runs");
        let pid = i32::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) on the child this handle started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait for ftpmonitor") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ftpmonitor did not stop within 30 s of SIGTERM\n{}", self.job.diagnostics());
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the child this handle started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills a daemon a launcher forked, if its PID file names a live process.
pub fn kill_forked(job: &Job) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(job.pid_path()).ok()?.trim().parse().ok()?;
    let raw = i32::try_from(pid).ok()?;
    // SAFETY: signal 0 only checks; SIGKILL goes to the daemon this job started (its PID
    // file is in the job's private directory).
    if unsafe { libc::kill(raw, 0) } == 0 {
        unsafe { libc::kill(raw, libc::SIGKILL) };
        return Some(pid);
    }
    None
}
