//! Runs the real `ftpmonitor` binary against an in-process FTP server, in throw-away
//! directories, and kills whatever it started when the test ends (passing or not).
//!
//! Layout of a test's temporary directory (`Sandbox::tmp`):
//!
//! ```text
//! watch/            WATCH_DIR
//! state/            --state-dir
//! outside/          a sibling on the same filesystem (secrets, trees to move in)
//! home/, run/, xdg/ HOME, XDG_RUNTIME_DIR, XDG_*_HOME of the child
//! ftpmonitor.pid    --pid-file
//! ftpmonitor.log    --log-file
//! stdout.N stderr.N what the N-th process started here printed
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::contract::{self, EXIT_USAGE, READY};
use super::server::{FtpServer, PASSWORD, USER, files_under};
use super::{POLL, TIMEOUT, poll_until, proc};

/// The directories and the FTP server one test works with. Shared by every process the
/// test starts (see [`Daemon::again`]); dropping the last handle kills every process whose
/// command line mentions the directory, stops the server and removes the files.
pub struct Sandbox {
    dir: PathBuf,
    server: FtpServer,
    spawned: AtomicUsize,
    _tmp: TempDir,
}

impl Sandbox {
    fn new(ip: IpAddr) -> Sandbox {
        let tmp = tempfile::Builder::new().prefix("ftpmonitor-it.").tempdir().expect("create the test's temp dir");
        let dir = tmp.path().canonicalize().expect("canonicalize the temp dir");
        for sub in ["watch", "state", "outside", "home", "run", "xdg"] {
            std::fs::create_dir(dir.join(sub)).expect("create a test directory");
        }
        Sandbox { dir, server: FtpServer::start_on(ip), spawned: AtomicUsize::new(0), _tmp: tmp }
    }

    /// The test's private temporary directory.
    pub fn tmp(&self) -> &Path {
        &self.dir
    }

    /// WATCH_DIR.
    pub fn watch_dir(&self) -> PathBuf {
        self.dir.join("watch")
    }

    /// `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// A directory next to WATCH_DIR, on the same filesystem, that the daemon must not read.
    pub fn outside_dir(&self) -> PathBuf {
        self.dir.join("outside")
    }

    /// `--pid-file`.
    pub fn pid_file_path(&self) -> PathBuf {
        self.dir.join("ftpmonitor.pid")
    }

    /// `--log-file`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ftpmonitor.log")
    }

    /// The FTP server.
    pub fn server(&self) -> &FtpServer {
        &self.server
    }

    /// Writes `bytes` to `rel` under WATCH_DIR, creating parent directories.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.watch_dir().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, bytes).expect("write a file into the watch dir");
        path
    }

    /// The PID file's content as a number, if the file exists and holds one.
    pub fn pid_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file_path()).ok()?.trim().parse().ok()
    }

    /// The log file, or "" while it does not exist.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// How many log lines report the upload of exactly `rel`.
    pub fn upload_count(&self, rel: &str) -> usize {
        self.log().lines().filter(|l| contract::is_upload_line(l, rel)).count()
    }

    /// Panics unless every line of the log starts with `YYYY-MM-DD HH:MM:SS - `.
    pub fn assert_log_well_formed(&self) {
        let log = self.log();
        for (i, line) in log.lines().enumerate() {
            assert!(
                contract::has_timestamp(line),
                "log line {} does not start with `YYYY-MM-DD HH:MM:SS - `: {line:?}\n--- log ---\n{log}",
                i + 1
            );
        }
    }

    fn next_output_files(&self) -> (PathBuf, PathBuf) {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        (self.dir.join(format!("stdout.{n}")), self.dir.join(format!("stderr.{n}")))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A process that has only just been started may not show its argv in
        // /proc yet: sweep until none is left, for a bounded time.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            proc::kill_processes_mentioning(&self.dir);
            if proc::processes_mentioning(&self.dir).is_empty() || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Clone)]
struct Opts {
    subcommand: Option<String>,
    foreground: bool,
    new_session: bool,
    controlling_tty: bool,
    standard_paths: bool,
    user: Option<String>,
    password_env: Option<String>,
    cooldown: Option<String>,
    args: Vec<OsString>,
    positionals: bool,
    watch_arg: Option<OsString>,
    host: String,
    port_arg: Option<String>,
    remote_dir: String,
    create_remote_dir: bool,
    env: Vec<(OsString, Option<OsString>)>,
}

/// Builder for one run of the binary. By default:
///
/// ```text
/// FTPMONITOR_PASSWORD=s3cret-pass ftpmonitor --foreground --pid-file <tmp>/ftpmonitor.pid
///     --log-file <tmp>/ftpmonitor.log --state-dir <tmp>/state --user alice --cooldown 0.2s
///     [args…] <tmp>/watch 127.0.0.1 <server port> /upload
/// ```
///
/// in a new session (no controlling terminal), with `/upload` created on the server.
#[must_use]
pub struct Test {
    sandbox: Arc<Sandbox>,
    opts: Opts,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// A new sandbox with its own FTP server and directories.
    pub fn new() -> Test {
        Test::with_server_on(Ipv4Addr::LOCALHOST.into())
    }

    /// [`Test::new`] with the server on `::1`, and the daemon told to connect there.
    pub fn ipv6() -> Test {
        Test::with_server_on(Ipv6Addr::LOCALHOST.into())
    }

    fn with_server_on(ip: IpAddr) -> Test {
        Test {
            sandbox: Arc::new(Sandbox::new(ip)),
            opts: Opts {
                subcommand: None,
                foreground: true,
                new_session: true,
                controlling_tty: false,
                standard_paths: true,
                user: Some(USER.to_owned()),
                password_env: Some(PASSWORD.to_owned()),
                cooldown: Some("0.2s".to_owned()),
                args: Vec::new(),
                positionals: true,
                watch_arg: None,
                host: ip.to_string(),
                port_arg: None,
                remote_dir: "/upload".to_owned(),
                create_remote_dir: true,
                env: Vec::new(),
            },
        }
    }

    /// Run a subcommand (`check`): its name comes first in argv and `--foreground` is left out
    /// (a subcommand never forks, so the child is still treated as a foreground process).
    pub fn subcommand(mut self, name: &str) -> Self {
        self.opts.subcommand = Some(name.to_owned());
        self
    }

    /// Pass `--foreground` (default) or not (the binary forks into a daemon).
    pub fn foreground(mut self, yes: bool) -> Self {
        self.opts.foreground = yes;
        self
    }

    /// Shorthand for `foreground(false)`.
    pub fn daemonize(self) -> Self {
        self.foreground(false)
    }

    /// Start a foreground child in a new session, so it has no controlling terminal
    /// (default: yes; daemon-mode children always stay in the test's session).
    pub fn new_session(mut self, yes: bool) -> Self {
        self.opts.new_session = yes;
        self
    }

    /// Give a foreground child a pseudo-terminal as stdin and controlling terminal.
    pub fn controlling_tty(mut self, yes: bool) -> Self {
        self.opts.controlling_tty = yes;
        self
    }

    /// Leave out `--pid-file`, `--log-file` and `--state-dir`.
    pub fn no_standard_paths(mut self) -> Self {
        self.opts.standard_paths = false;
        self
    }

    /// `--user` value (`None`: no `--user`).
    pub fn user(mut self, user: Option<&str>) -> Self {
        self.opts.user = user.map(str::to_owned);
        self
    }

    /// Value of `FTPMONITOR_PASSWORD` (`None`: not set).
    pub fn password_env(mut self, password: Option<&str>) -> Self {
        self.opts.password_env = password.map(str::to_owned);
        self
    }

    /// `--cooldown` value (`None`: no `--cooldown`, the binary's default).
    pub fn cooldown(mut self, cooldown: Option<&str>) -> Self {
        self.opts.cooldown = cooldown.map(str::to_owned);
        self
    }

    /// An extra argument, placed after the standard options and before the positionals.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.opts.args.push(arg.as_ref().to_owned());
        self
    }

    /// Extra arguments, see [`Test::arg`].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.opts.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Leave out the four positionals (for `--config`).
    pub fn no_positionals(mut self) -> Self {
        self.opts.positionals = false;
        self
    }

    /// WATCH_DIR argument instead of `<tmp>/watch`.
    pub fn watch_arg(mut self, watch: impl AsRef<OsStr>) -> Self {
        self.opts.watch_arg = Some(watch.as_ref().to_owned());
        self
    }

    /// HOST argument instead of `127.0.0.1`.
    pub fn host(mut self, host: &str) -> Self {
        self.opts.host = host.to_owned();
        self
    }

    /// PORT argument instead of the server's port.
    pub fn port_arg(mut self, port: &str) -> Self {
        self.opts.port_arg = Some(port.to_owned());
        self
    }

    /// REMOTE_DIR argument (default `/upload`).
    pub fn remote_dir(mut self, remote_dir: &str) -> Self {
        self.opts.remote_dir = remote_dir.to_owned();
        self
    }

    /// Whether to create REMOTE_DIR on the server before starting (default: yes).
    pub fn create_remote_dir(mut self, yes: bool) -> Self {
        self.opts.create_remote_dir = yes;
        self
    }

    /// Set an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.opts.env.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Remove an environment variable for the child.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.opts.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The command line (without the program) this builder would run.
    pub fn command_line(&self) -> Vec<OsString> {
        let s = &self.sandbox;
        let o = &self.opts;
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(sub) = &o.subcommand {
            argv.push(sub.into());
        } else if o.foreground {
            argv.push("--foreground".into());
        }
        if o.standard_paths {
            argv.push("--pid-file".into());
            argv.push(s.pid_file_path().into());
            argv.push("--log-file".into());
            argv.push(s.log_path().into());
            argv.push("--state-dir".into());
            argv.push(s.state_dir().into());
        }
        if let Some(user) = &o.user {
            argv.push("--user".into());
            argv.push(user.into());
        }
        if let Some(cooldown) = &o.cooldown {
            argv.push("--cooldown".into());
            argv.push(cooldown.into());
        }
        argv.extend(o.args.iter().cloned());
        if o.positionals {
            argv.push(o.watch_arg.clone().unwrap_or_else(|| s.watch_dir().into_os_string()));
            argv.push(o.host.clone().into());
            argv.push(o.port_arg.clone().unwrap_or_else(|| s.server.port().to_string()).into());
            argv.push(o.remote_dir.clone().into());
        }
        argv
    }

    /// Starts the binary and returns at once.
    pub fn spawn(self) -> Daemon {
        let s = Arc::clone(&self.sandbox);
        let o = self.opts.clone();
        if o.create_remote_dir {
            std::fs::create_dir_all(s.server.root().join(o.remote_dir.trim_start_matches('/')))
                .expect("create the remote dir on the server");
        }
        let (stdout, stderr) = s.next_output_files();
        // Several runs may share the log file: this one's lines start here.
        let log_offset = std::fs::metadata(s.log_path()).map_or(0, |m| m.len());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpmonitor"));
        cmd.args(self.command_line()).current_dir(s.tmp());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FTPMONITOR_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("HOME", s.tmp().join("home"))
            .env("XDG_RUNTIME_DIR", s.tmp().join("run"))
            .env("XDG_STATE_HOME", s.tmp().join("xdg").join("state"))
            .env("XDG_CONFIG_HOME", s.tmp().join("xdg").join("config"))
            .env("XDG_DATA_HOME", s.tmp().join("xdg").join("data"));
        if let Some(password) = &o.password_env {
            cmd.env("FTPMONITOR_PASSWORD", password);
        }
        for (key, value) in &o.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd.stdout(std::fs::File::create(&stdout).expect("create stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("create stderr file"));

        let mut pty_master = None;
        if o.foreground && o.controlling_tty {
            let (master, slave) = proc::open_pty().expect("open a pseudo-terminal");
            pty_master = Some(master);
            cmd.stdin(slave);
            // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        } else {
            cmd.stdin(Stdio::null());
            if o.foreground && o.new_session {
                // SAFETY: setsid is async-signal-safe; nothing else runs in the child.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::setsid() < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
        }
        let child = cmd.spawn().expect("spawn the ftpmonitor binary");
        Daemon {
            sandbox: s,
            opts: o,
            child: RefCell::new(child),
            exit: Cell::new(None),
            daemon_pid: Cell::new(None),
            log_offset,
            stdout,
            stderr,
            _pty_master: pty_master,
        }
    }

    /// Starts the binary and waits until it is ready: in daemon mode the launcher must exit 0
    /// and the PID file name a live process; then the log must show the ready line.
    pub fn start(self) -> Daemon {
        let d = self.spawn();
        if !d.opts.foreground {
            let status = d.wait_exit(TIMEOUT);
            if !status.success() {
                panic!("the launcher exited with {status} instead of 0\n{}", d.diagnostics());
            }
            d.wait_until("the PID file names a live process", || d.pid_file().is_some_and(proc::is_alive));
            d.daemon_pid.set(d.pid_file());
        }
        d.wait_ready();
        d
    }

    /// Runs the binary to completion (at most [`TIMEOUT`]).
    pub fn run(self) -> Finished {
        self.run_for(TIMEOUT)
    }

    /// Runs the binary to completion, for at most `timeout` (then kills it and panics).
    pub fn run_for(self, timeout: Duration) -> Finished {
        let d = self.spawn();
        let status = d.wait_exit(timeout);
        Finished { status, stdout: d.stdout(), stderr: d.stderr(), daemon: d }
    }
}

impl Deref for Test {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

/// A started `ftpmonitor` process (in daemon mode: the launcher, and the daemon it forked).
/// Dropping it SIGKILLs both if they still run.
pub struct Daemon {
    sandbox: Arc<Sandbox>,
    opts: Opts,
    child: RefCell<Child>,
    exit: Cell<Option<ExitStatus>>,
    daemon_pid: Cell<Option<u32>>,
    log_offset: u64,
    stdout: PathBuf,
    stderr: PathBuf,
    _pty_master: Option<OwnedFd>,
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

    /// What the spawned child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// What the spawned child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// The REMOTE_DIR argument (an absolute FTP path, e.g. `/upload`).
    pub fn remote_dir(&self) -> &str {
        &self.opts.remote_dir
    }

    /// REMOTE_DIR on the server's disk.
    pub fn remote_root(&self) -> PathBuf {
        self.server.root().join(self.opts.remote_dir.trim_start_matches('/'))
    }

    /// The bytes of `rel` (relative to REMOTE_DIR) on the server's disk.
    pub fn remote(&self, rel: &str) -> Option<Vec<u8>> {
        let path = self.remote_root().join(rel);
        if path.symlink_metadata().ok()?.is_file() { std::fs::read(path).ok() } else { None }
    }

    /// Every file under REMOTE_DIR on the server's disk, by `/`-separated relative path.
    pub fn remote_files(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(&self.remote_root())
    }

    /// Waits until `rel` (relative to REMOTE_DIR) holds exactly `bytes` on the server.
    pub fn wait_remote(&self, rel: &str, bytes: &[u8]) {
        self.wait_until(&format!("{rel:?} arrives on the server with its {} bytes", bytes.len()), || {
            self.remote(rel).as_deref() == Some(bytes)
        });
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

fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
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
