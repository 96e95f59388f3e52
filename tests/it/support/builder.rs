//! The `Test` builder: one run of the real `ftpmonitor` binary, its command
//! line and environment, started in the test's sandbox (see `sandbox`) and
//! handed back as a [`Daemon`] or, run to completion, a [`Finished`].

use std::cell::{Cell, RefCell};
use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::process::{Daemon, Finished};
use super::sandbox::Sandbox;
use super::server::{FtpServer, PASSWORD, TEST_CA, USER};
use super::{TIMEOUT, proc};

#[derive(Clone)]
pub(super) struct Opts {
    pub(super) subcommand: Option<String>,
    pub(super) foreground: bool,
    pub(super) new_session: bool,
    pub(super) controlling_tty: bool,
    pub(super) standard_paths: bool,
    pub(super) user: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) cooldown: Option<String>,
    pub(super) args: Vec<OsString>,
    pub(super) positionals: bool,
    pub(super) watch_arg: Option<OsString>,
    pub(super) host: String,
    pub(super) port_arg: Option<String>,
    pub(super) remote_dir: String,
    pub(super) create_remote_dir: bool,
    pub(super) env: Vec<(OsString, Option<OsString>)>,
    /// A command the binary is run through (its path and arguments follow).
    pub(super) wrapper: Vec<OsString>,
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
    pub(super) sandbox: Arc<Sandbox>,
    pub(super) opts: Opts,
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

    /// [`Test::new`] with a server that requires FTPS on control and data connections, and
    /// the daemon given `--tls --ca-file` with the CA that signed its certificate.
    pub fn tls() -> Test {
        let server = FtpServer::start_tls();
        let mut t = Test::with_sandbox(Sandbox::with_server(server), Ipv4Addr::LOCALHOST.into());
        t.opts.args.extend(["--tls".into(), "--ca-file".into(), TEST_CA.into()]);
        t
    }

    fn with_server_on(ip: IpAddr) -> Test {
        Test::with_sandbox(Sandbox::new(ip), ip)
    }

    fn with_sandbox(sandbox: Sandbox, ip: IpAddr) -> Test {
        Test {
            sandbox: Arc::new(sandbox),
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
                wrapper: Vec::new(),
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

    /// Runs the binary through `program args...` (given the binary's path
    /// and its arguments after them), such as `unshare ... sh -c '...; exec "$0" "$@"'`.
    pub fn wrapper<I, S>(mut self, program_and_args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.opts.wrapper = program_and_args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
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
        let mut cmd = match o.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(env!("CARGO_BIN_EXE_ftpmonitor"));
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_ftpmonitor")),
        };
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
