//! The typed configuration: command line merged over the optional TOML file,
//! validated once, with absolute paths, `Duration`s and a [`Secret`] password.
//!
//! Every check that can fail before the daemon forks lives here, and every
//! failure is a one-line [`Error::Usage`] naming the thing and the fix. Nothing
//! here touches the network beyond resolving HOST, forks or logs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::Glob;
use log::LevelFilter;
use toml::de::DeValue;

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::relpath::EscapedPath;

pub use crate::scope::{ASIDE_SUFFIX, DEFAULT_EXCLUDES, Scope, TEMP_SUFFIX};

/// Connect, greeting, control-reply and data timeout, unless `--timeout` says.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A password: never printed by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the password came from, for the start-up line (never the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Environment,
    File,
    Config,
    Netrc,
    Anonymous,
    None,
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub watch_dir: PathBuf,
    pub host: String,
    pub port: u16,
    pub remote_dir: String,
    pub user: String,
    pub password: Secret,
    pub password_source: PasswordSource,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub active: bool,
    /// Connect, greeting, reply and data timeout.
    pub timeout: Duration,

    pub foreground: bool,
    pub pid_file: PathBuf,
    /// `None`: stderr only (`--log-file -`).
    pub log_file: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub run_as: Option<String>,
    pub log_level: LevelFilter,
    pub log_format: crate::logging::LogFormat,

    pub cooldown: Duration,
    pub recursive: bool,
    pub delete: bool,
    /// `--exclude` and `--include`.
    pub scope: Scope,
    pub parallel: usize,
    pub rescan_interval: Option<Duration>,
    pub max_delete: u8,
    pub once: bool,
    pub dry_run: bool,
    /// Publish copies that changed while they were read (snapshots of files
    /// that never hold still).
    pub publish_changing: bool,
    /// `--bwlimit`: the total upload rate by time of day.
    pub bwlimit: crate::bwlimit::Timetable,
    /// `--poll`: watch by polling at this interval.
    pub poll: Option<Duration>,

    pub config_file: Option<PathBuf>,
    /// Where the local files' paths came from, for errors found at start-up.
    pub origins: Origins,
}

/// Where a value came from, to name it in an error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Not given: the default, named by its option (kebab-case key).
    Default(&'static str),
    /// An option or positional on the command line (`--cooldown`, `PORT`).
    Cli(&'static str),
    /// An option's environment twin (`FTPMONITOR_COOLDOWN`).
    Env(&'static str),
    /// A key of the config file, as written there.
    File { path: PathBuf, line: usize, key: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default(key) => write!(f, "--{key}"),
            Self::Cli(name) | Self::Env(name) => f.write_str(name),
            Self::File { path, line, key } => write!(f, "config file {}, line {line}: {key}", EscapedPath(path)),
        }
    }
}

/// Where the paths of the files the daemon keeps came from.
#[derive(Clone, Debug)]
pub struct Origins {
    pub state_dir: Origin,
    pub pid_file: Origin,
    pub log_file: Origin,
}

impl Config {
    /// Merges `args` over the config file they name, validates and resolves.
    pub fn from_args(args: &RunArgs) -> Result<Self> {
        let env = Env::from_process();
        Self::from_args_env(args, &env)
    }

    #[allow(clippy::too_many_lines)] // one merge, value by value, in the order of the help
    fn from_args_env(args: &RunArgs, env: &Env) -> Result<Self> {
        // A value clap handed us came from the command line or from its
        // environment twin: name the one the user wrote.
        let cli = |flag: &'static str, var: Option<&'static str>, text: &std::ffi::OsStr| match var {
            Some(v) if env.vars.get(v).is_some_and(|x| x.as_os_str() == text) => Origin::Env(v),
            _ => Origin::Cli(flag),
        };
        let (file, config_file) = match &args.config {
            Some(path) => {
                let origin = cli("--config", Some("FTPMONITOR_CONFIG"), path.as_os_str());
                if path.as_os_str().is_empty() {
                    return Err(Error::usage(format!("{origin}: is empty: give the path of a TOML config file")));
                }
                let path = absolute(path, &env.cwd);
                (FileConfig::load(&path, &origin)?, Some(path))
            }
            None => (FileConfig::default(), None),
        };
        let from_file = |key: &'static str| file.origin(key, config_file.as_deref());
        // Relative paths in the config file are relative to the file itself.
        let file_base =
            config_file.as_deref().and_then(Path::parent).map_or_else(|| env.cwd.clone(), Path::to_path_buf);
        // A path from the command line (relative to the working directory)
        // or else from the file, with where it came from.
        let path_of = |given: &Option<PathBuf>,
                       flag: &'static str,
                       var: Option<&'static str>,
                       in_file: &Option<PathBuf>,
                       key: &'static str|
         -> Result<Option<(PathBuf, Origin)>> {
            if let Some(p) = given {
                let origin = cli(flag, var, p.as_os_str());
                if p.as_os_str().is_empty() {
                    return Err(Error::usage(format!("{origin}: is empty: give a path")));
                }
                return Ok(Some((absolute(p, &env.cwd), origin)));
            }
            Ok(in_file.as_ref().map(|p| (absolute(p, &file_base), from_file(key))))
        };
        let text_of = |given: &Option<String>, flag: &'static str, var: Option<&'static str>| {
            given.as_ref().map(|v| (v.clone(), cli(flag, var, v.as_ref())))
        };

        // The values of options first: a value option missing its value
        // takes the next word, and its error then says more than the
        // positionals shifted by one would.
        let d = &args.daemon;
        let s = &args.server;
        let y = &args.sync;
        let cooldown = match &y.cooldown {
            Some(c) => parse_duration(c).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--cooldown", Some("FTPMONITOR_COOLDOWN"), c.as_ref())))
            })?,
            None => file.cooldown.unwrap_or(Duration::from_secs(5)),
        };
        let rescan_interval = match &y.rescan_interval {
            Some(c) => parse_duration(c).map_err(|e| {
                let origin = cli("--rescan-interval", Some("FTPMONITOR_RESCAN_INTERVAL"), c.as_ref());
                Error::usage(format!("{origin}: {e}"))
            })?,
            None => file.rescan_interval.unwrap_or(Duration::from_secs(3600)),
        };
        let timeout = match &s.timeout {
            Some(t) => parse_timeout(t).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--timeout", Some("FTPMONITOR_TIMEOUT"), t.as_ref())))
            })?,
            None => file.timeout.unwrap_or(TIMEOUT),
        };
        let parallel = match &y.parallel {
            Some(p) => parse_parallel(p).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--parallel", Some("FTPMONITOR_PARALLEL"), p.as_ref())))
            })?,
            None => file.parallel.unwrap_or(4),
        };
        let max_delete = match &y.max_delete {
            Some(p) => parse_percent(p).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--max-delete", Some("FTPMONITOR_MAX_DELETE"), p.as_ref())))
            })?,
            None => file.max_delete.unwrap_or(50),
        };
        let bwlimit = match &y.bwlimit {
            Some(b) => crate::bwlimit::Timetable::parse(b).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--bwlimit", Some("FTPMONITOR_BWLIMIT"), b.as_ref())))
            })?,
            None => file.bwlimit.clone().unwrap_or_else(crate::bwlimit::Timetable::off),
        };
        let poll =
            match &y.poll {
                Some(p) => Some(parse_poll(p).map_err(|e| {
                    Error::usage(format!("{}: {e}", cli("--poll", Some("FTPMONITOR_POLL"), p.as_ref())))
                })?),
                None => file.poll,
            };
        let log_level = match &d.log_level {
            Some(l) => parse_log_level(l).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--log-level", Some("FTPMONITOR_LOG_LEVEL"), l.as_ref())))
            })?,
            None => file.log_level.unwrap_or(LevelFilter::Info),
        };
        let log_format = match &d.log_format {
            Some(f) => f.parse().map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--log-format", Some("FTPMONITOR_LOG_FORMAT"), f.as_ref())))
            })?,
            None => file.log_format.unwrap_or_default(),
        };

        let watch_dir = path_of(&args.watch_dir, "WATCH_DIR", None, &file.watch_dir, "watch-dir")?;
        let host = text_of(&args.host, "HOST", None).or_else(|| file.host.clone().map(|h| (h, from_file("host"))));
        let port = match &args.port {
            Some(p) => Some(parse_port(p).map_err(|e| Error::usage(format!("PORT: {e}")))?),
            None => file.port,
        };
        let remote_dir = text_of(&args.remote_dir, "REMOTE_DIR", None)
            .or_else(|| file.remote_dir.clone().map(|r| (r, from_file("remote-dir"))));
        let (Some((watch_dir, watch_origin)), Some((host, host_origin)), Some(port), Some((remote_dir, remote_origin))) =
            (watch_dir, host, port, remote_dir)
        else {
            return Err(Error::usage(
                "WATCH_DIR, HOST, PORT and REMOTE_DIR are required: give all four on the command \
                 line (ftpmonitor /watch ftp.example.com 21 /incoming) or in --config FILE",
            ));
        };
        let watch_dir = check_watch_dir(&watch_dir, &watch_origin)?;
        check_host(&host, port, &host_origin)?;
        let remote_dir = normalize_remote_dir(&remote_dir, &remote_origin)?;
        let root = env.is_root;

        let (state_dir, state_origin) =
            path_of(&d.state_dir, "--state-dir", Some("FTPMONITOR_STATE_DIR"), &file.state_dir, "state-dir")?
                .unwrap_or_else(|| (env.default_state_dir(), Origin::Default("state-dir")));
        let (pid_file, pid_origin) =
            path_of(&d.pid_file, "--pid-file", Some("FTPMONITOR_PID_FILE"), &file.pid_file, "pid-file")?
                .unwrap_or_else(|| (env.default_pid_file(&state_dir), Origin::Default("pid-file")));
        let (log_file, log_origin) = match d.log_file.as_ref().or(file.log_file.as_ref()) {
            Some(p) if p.as_os_str() == "-" => (None, Origin::Default("log-file")),
            _ => {
                let (path, origin) =
                    path_of(&d.log_file, "--log-file", Some("FTPMONITOR_LOG_FILE"), &file.log_file, "log-file")?
                        .unwrap_or_else(|| (env.default_log_file(), Origin::Default("log-file")));
                (Some(path), origin)
            }
        };
        let user_given = text_of(&s.user, "--user", Some("FTPMONITOR_USER"))
            .or_else(|| file.user.clone().map(|u| (u, from_file("user"))));
        if let Some((user, origin)) = &user_given {
            check_user(user, origin)?;
        }
        let user_given = user_given.map(|(u, _)| u);
        let netrc = env.home.as_ref().map(|h| h.join(".netrc"));
        let netrc_entry = netrc.as_deref().and_then(|p| netrc_lookup(p, &host, user_given.as_deref()));
        let user = user_given
            .or_else(|| netrc_entry.as_ref().and_then(|e| e.login.clone()))
            .unwrap_or_else(|| "anonymous".to_string());
        // Every source given is checked, also those a higher one overrides:
        // a broken --password-file is a mistake even while the environment
        // supplies the password.
        let from_env = match &env.password {
            Some(pw) => {
                let origin = Origin::Env("FTPMONITOR_PASSWORD");
                let pw = pw.to_str().ok_or_else(|| {
                    Error::usage(format!("{origin}: not valid UTF-8: give the password as UTF-8 text"))
                })?;
                Some(check_password(Secret::new(pw), &origin)?)
            }
            None => None,
        };
        let from_password_file = match path_of(
            &s.password_file,
            "--password-file",
            Some("FTPMONITOR_PASSWORD_FILE"),
            &file.password_file,
            "password-file",
        )? {
            Some((path, origin)) => Some(read_password_file(&path, &origin)?),
            None => None,
        };
        let from_config = match &file.password {
            Some(pw) => Some(check_password(pw.clone(), &from_file("password"))?),
            None => None,
        };
        let (password, password_source) = if let Some(pw) = from_env {
            (pw, PasswordSource::Environment)
        } else if let Some(pw) = from_password_file {
            (pw, PasswordSource::File)
        } else if let Some(pw) = from_config {
            (pw, PasswordSource::Config)
        } else if let Some(pw) = netrc_entry.and_then(|e| e.password) {
            (Secret::new(pw), PasswordSource::Netrc)
        } else if user == "anonymous" || user == "ftp" {
            (Secret::new("anonymous@"), PasswordSource::Anonymous)
        } else {
            (Secret::default(), PasswordSource::None)
        };

        let tls = s.tls || file.tls.unwrap_or(false);
        let ca = path_of(&s.ca_file, "--ca-file", Some("FTPMONITOR_CA_FILE"), &file.ca_file, "ca-file")?;
        if let Some((ca, origin)) = &ca {
            if !tls {
                return Err(Error::usage(format!(
                    "{origin}: a CA file only applies to FTPS: add --tls (tls = true in a config file), \
                     or leave the CA file out"
                )));
            }
            check_readable_file(ca, origin, "CA file", "give a readable PEM file")?;
        }
        let ca_file = ca.map(|(p, _)| p);

        let mut exclude = file.exclude.clone().unwrap_or_default();
        exclude.extend(y.exclude.iter().cloned());
        let mut include = file.include.clone().unwrap_or_default();
        include.extend(y.include.iter().cloned());
        let scope = Scope::new(&exclude, &include)?;

        let once = y.once || file.once.unwrap_or(false);
        let run_as = text_of(&d.run_as, "--run-as", Some("FTPMONITOR_RUN_AS"))
            .or_else(|| file.run_as.clone().map(|u| (u, from_file("run-as"))));
        if let Some((name, origin)) = &run_as {
            if !root {
                return Err(Error::usage(format!(
                    "{origin}: dropping privileges needs root: start ftpmonitor as root, or leave --run-as out"
                )));
            }
            crate::daemon::lookup_user(name).map_err(|e| Error::usage(format!("{origin}: {e}")))?;
        }
        let run_as = run_as.map(|(u, _)| u);

        Ok(Self {
            watch_dir,
            host,
            port,
            remote_dir,
            user,
            password,
            password_source,
            tls,
            ca_file,
            active: s.active || file.active.unwrap_or(false),
            timeout,
            // Windows has no background mode: its scripts run the foreground.
            foreground: d.foreground || once || file.foreground.unwrap_or(false) || cfg!(windows),
            pid_file,
            log_file,
            state_dir,
            run_as,
            log_level,
            log_format,
            cooldown,
            recursive: !(y.no_recursive || file.no_recursive.unwrap_or(false)),
            delete: y.delete || file.delete.unwrap_or(false),
            scope,
            parallel,
            rescan_interval: (!rescan_interval.is_zero()).then_some(rescan_interval),
            max_delete,
            once,
            dry_run: y.dry_run || file.dry_run.unwrap_or(false),
            publish_changing: y.publish_changing || file.publish_changing.unwrap_or(false),
            bwlimit,
            poll,
            config_file,
            origins: Origins { state_dir: state_origin, pid_file: pid_origin, log_file: log_origin },
        })
    }

    /// The address to connect to, resolved anew (DNS may change while we run).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        (self.host.as_str(), self.port).to_socket_addrs().map(Iterator::collect)
    }

    /// A URL-ish description of the target, without the password.
    pub fn target(&self) -> String {
        let scheme = if self.tls { "ftpes" } else { "ftp" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{}@{host}:{}{}", self.user, self.port, self.remote_dir)
    }

    /// Whether two configurations describe the same sync job (what is synced
    /// where): changing any of it means a restart of watcher and sessions.
    pub fn same_job(&self, other: &Config) -> bool {
        self.watch_dir == other.watch_dir
            && self.host == other.host
            && self.port == other.port
            && self.remote_dir == other.remote_dir
            && self.user == other.user
            && self.password == other.password
            && self.tls == other.tls
            && self.ca_file == other.ca_file
            && self.active == other.active
            && self.timeout == other.timeout
            && self.recursive == other.recursive
            && self.parallel == other.parallel
    }
}

/// The PID file and state directory a run with these overrides would use
/// (for `ftpmonitor status`).
pub fn default_locations(pid_file: Option<&Path>, state_dir: Option<&Path>) -> (PathBuf, PathBuf) {
    let env = Env::from_process();
    let state = state_dir.map_or_else(|| env.default_state_dir(), |p| absolute(p, &env.cwd));
    let pid = pid_file.map_or_else(|| env.default_pid_file(&state), |p| absolute(p, &env.cwd));
    (pid, state)
}

/// What the process environment contributes, gathered once so that tests can
/// build one by hand.
#[derive(Clone, Debug, Default)]
struct Env {
    cwd: PathBuf,
    is_root: bool,
    home: Option<PathBuf>,
    xdg_state_home: Option<PathBuf>,
    xdg_runtime_dir: Option<PathBuf>,
    password: Option<OsString>,
    /// Every `FTPMONITOR_*` variable, to tell an option's environment twin
    /// from the option itself in an error.
    vars: HashMap<String, OsString>,
}

impl Env {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            is_root: crate::daemon::is_root(),
            home: var("HOME").or_else(|| var("USERPROFILE")),
            xdg_state_home: var("XDG_STATE_HOME").or_else(|| var("LOCALAPPDATA")).filter(|p| p.is_absolute()),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").filter(|p| p.is_absolute()),
            password: std::env::var_os("FTPMONITOR_PASSWORD"),
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
                .filter(|(k, _)| k.starts_with("FTPMONITOR_"))
                .collect(),
        }
    }

    fn user_state_home(&self) -> PathBuf {
        self.xdg_state_home
            .clone()
            .unwrap_or_else(|| self.home.clone().unwrap_or_else(|| self.cwd.clone()).join(".local/state"))
    }

    fn default_state_dir(&self) -> PathBuf {
        if self.is_root { PathBuf::from("/var/lib/ftpmonitor") } else { self.user_state_home().join("ftpmonitor") }
    }

    fn default_pid_file(&self, state_dir: &Path) -> PathBuf {
        if self.is_root {
            PathBuf::from("/var/run/ftpmonitor.pid")
        } else if let Some(run) = &self.xdg_runtime_dir {
            run.join("ftpmonitor.pid")
        } else {
            state_dir.join("ftpmonitor.pid")
        }
    }

    fn default_log_file(&self) -> PathBuf {
        if self.is_root {
            PathBuf::from("/var/log/ftpmonitor.log")
        } else {
            self.user_state_home().join("ftpmonitor/ftpmonitor.log")
        }
    }
}

fn absolute(p: &Path, base: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

fn check_watch_dir(dir: &Path, origin: &Origin) -> Result<PathBuf> {
    let shown = EscapedPath(dir);
    let meta = fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(format!("{origin}: watch directory {shown} does not exist: create it or fix the path"))
        } else {
            Error::usage(format!("{origin}: cannot access watch directory {shown}: {e}: check its permissions"))
        }
    })?;
    if !meta.is_dir() {
        return Err(Error::usage(format!(
            "{origin}: watch directory {shown} is not a directory: give the directory to watch"
        )));
    }
    fs::read_dir(dir).map_err(|e| {
        Error::usage(format!("{origin}: cannot read watch directory {shown}: {e}: run as a user who can read it"))
    })?;
    // Events arrive with the real path, so watch the real path.
    fs::canonicalize(dir).map_err(|e| Error::usage(format!("{origin}: cannot resolve watch directory {shown}: {e}")))
}

fn check_host(host: &str, port: u16, origin: &Origin) -> Result<()> {
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Error::usage(format!("{origin}: {host:?} is not a host name: give a name or an IP address")));
    }
    match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(_) => {
            Err(Error::usage(format!("{origin}: host {host:?} has no address: check the name, or give an IP address")))
        }
        Err(e) => Err(Error::usage(format!(
            "{origin}: cannot resolve host {host:?} ({e}): check the name and DNS, or give an IP address"
        ))),
    }
}

fn normalize_remote_dir(dir: &str, origin: &Origin) -> Result<String> {
    if dir.is_empty() {
        return Err(Error::usage(format!(
            "{origin}: is empty: give the directory on the server, such as /incoming (or . for the login directory)"
        )));
    }
    if dir.contains(['\r', '\n', '\0']) {
        return Err(Error::usage(format!(
            "{origin}: the remote directory contains a line break or NUL, which FTP cannot carry: rename it"
        )));
    }
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".into());
    }
    Ok(trimmed.to_string())
}

/// A login name goes into `USER name\r\n`: it must not be empty nor carry a
/// line break (which would end the command and start another).
fn check_user(user: &str, origin: &Origin) -> Result<()> {
    if user.is_empty() {
        return Err(Error::usage(format!(
            "{origin}: the login name is empty: give a name, or leave it out for anonymous"
        )));
    }
    if user.contains(['\r', '\n', '\0']) {
        return Err(Error::usage(format!(
            "{origin}: the login name contains a line break or NUL, which FTP cannot carry: fix the name"
        )));
    }
    Ok(())
}

/// The same for the password, whose value no message may show.
fn check_password(pw: Secret, origin: &Origin) -> Result<Secret> {
    if pw.expose().contains(['\r', '\n', '\0']) {
        return Err(Error::usage(format!(
            "{origin}: the password contains a line break or NUL, which FTP cannot carry (not shown here): \
             change the password"
        )));
    }
    Ok(pw)
}

/// A file ftpmonitor must read: it exists, is a regular file (not a
/// directory, which `open` would accept) and opens for reading.
fn check_readable_file(path: &Path, origin: &Origin, what: &str, fix: &str) -> Result<fs::File> {
    let shown = EscapedPath(path);
    let f =
        fs::File::open(path).map_err(|e| Error::usage(format!("{origin}: cannot read {what} {shown}: {e}: {fix}")))?;
    match f.metadata() {
        Ok(m) if m.is_dir() => Err(Error::usage(format!("{origin}: {what} {shown} is a directory: {fix}"))),
        Ok(_) => Ok(f),
        Err(e) => Err(Error::usage(format!("{origin}: cannot read {what} {shown}: {e}: {fix}"))),
    }
}

pub fn parse_port(s: &str) -> std::result::Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(u16::try_from(p).unwrap_or(21)),
        _ => Err(format!("{s:?} is not a port number: use 1 to 65535 (FTP and explicit FTPS listen on 21)")),
    }
}

/// `5`, `0.5` (seconds), `500ms`, `2s`, `1h`, `1h 30m`; `0` is allowed; at
/// most a year (longer ones would overflow the clock arithmetic).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
    let d = parse_duration_unbounded(s)?;
    if d > MAX {
        return Err(format!("{s:?} is too long: use at most a year"));
    }
    Ok(d)
}

fn parse_duration_unbounded(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative: use 0 or more, in seconds like 5 or 0.5, or 500ms, 2s, 1h"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a duration: use seconds like 5 or 0.5, or 500ms, 2s, 1h"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}): use seconds like 5 or 0.5, or 500ms, 2s, 1h"))
}

fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err(format!("{s:?} is too short: use at least 0.1 s (the default is 30 s)")),
        Err(e) => Err(e),
    }
}

/// `--poll`: at least a tenth of a second (each poll stats every file).
fn parse_poll(s: &str) -> std::result::Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err(format!("{s:?} is too short: use at least 0.1 s, e.g. 30s (each poll looks at every file)")),
        Err(e) => Err(e),
    }
}

fn parse_parallel(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of connections: use 1 to 64")),
    }
}

fn parse_percent(s: &str) -> std::result::Result<u8, String> {
    match s.trim().trim_end_matches('%').parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(format!("{s:?} is not a percentage: use 0 to 100")),
    }
}

fn parse_log_level(s: &str) -> std::result::Result<LevelFilter, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" | "warning" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(format!("{s:?} is not a level: use error, warn, info or debug")),
    }
}

fn read_password_file(path: &Path, origin: &Origin) -> Result<Secret> {
    const FIX: &str = "give a readable file whose first line is the password";
    let shown = EscapedPath(path);
    let f = check_readable_file(path, origin, "password file", FIX)?;
    let mut line = String::new();
    BufReader::new(f)
        .read_line(&mut line)
        .map_err(|e| Error::usage(format!("{origin}: cannot read password file {shown}: {e}: {FIX}")))?;
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        return Err(Error::usage(format!(
            "{origin}: password file {shown} is empty: write the password on its first line"
        )));
    }
    check_password(Secret::new(pw), origin)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct NetrcEntry {
    login: Option<String>,
    password: Option<String>,
}

/// The `machine HOST` entry of a netrc file (or `default`), preferring one
/// whose login matches `user` when a user is given.
fn netrc_lookup(path: &Path, host: &str, user: Option<&str>) -> Option<NetrcEntry> {
    let text = fs::read_to_string(path).ok()?;
    parse_netrc(&text, host, user)
}

fn parse_netrc(text: &str, host: &str, user: Option<&str>) -> Option<NetrcEntry> {
    let mut tokens = text.split_whitespace();
    let mut entries: Vec<(Option<String>, NetrcEntry)> = Vec::new();
    while let Some(tok) = tokens.next() {
        match tok {
            "machine" => entries.push((tokens.next().map(str::to_string), NetrcEntry::default())),
            "default" => entries.push((None, NetrcEntry::default())),
            "login" => {
                if let (Some(last), Some(v)) = (entries.last_mut(), tokens.next()) {
                    last.1.login = Some(v.to_string());
                }
            }
            "password" => {
                if let (Some(last), Some(v)) = (entries.last_mut(), tokens.next()) {
                    last.1.password = Some(v.to_string());
                }
            }
            "account" | "port" => {
                tokens.next();
            }
            // A macro definition runs to the next blank line; we never need one.
            "macdef" => break,
            _ => {}
        }
    }
    let fits = |e: &NetrcEntry| user.is_none_or(|u| e.login.as_deref() == Some(u));
    let machine = entries.iter().position(|(m, e)| m.as_deref() == Some(host) && fits(e));
    let default = entries.iter().position(|(m, e)| m.is_none() && fits(e));
    machine.or(default).map(|i| entries.swap_remove(i).1)
}

/// The config file: the same keys as the long options (`cooldown`,
/// `password-file`, ...) plus the four positionals (`watch-dir`, `host`,
/// `port`, `remote-dir`) and `password`. `snake_case` spellings are accepted
/// too (`max_delete`).
///
/// Read in two stages: toml parses the syntax into spanned keys and values,
/// then every key is converted here, so that each error names the key and
/// its line and says what to write instead, in our words. No message ever
/// quotes a `password` value: serde's and toml's would ("invalid type:
/// integer `123456`").
#[derive(Debug, Default)]
struct FileConfig {
    watch_dir: Option<PathBuf>,
    host: Option<String>,
    port: Option<u16>,
    remote_dir: Option<String>,

    foreground: Option<bool>,
    pid_file: Option<PathBuf>,
    log_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    run_as: Option<String>,
    log_level: Option<LevelFilter>,
    log_format: Option<crate::logging::LogFormat>,

    user: Option<String>,
    password: Option<Secret>,
    password_file: Option<PathBuf>,
    tls: Option<bool>,
    ca_file: Option<PathBuf>,
    active: Option<bool>,
    timeout: Option<Duration>,

    cooldown: Option<Duration>,
    no_recursive: Option<bool>,
    delete: Option<bool>,
    exclude: Option<Vec<String>>,
    include: Option<Vec<String>>,
    parallel: Option<usize>,
    rescan_interval: Option<Duration>,
    max_delete: Option<u8>,
    once: Option<bool>,
    dry_run: Option<bool>,
    publish_changing: Option<bool>,
    bwlimit: Option<crate::bwlimit::Timetable>,
    poll: Option<Duration>,

    /// For each key given: how it was written and its 1-based line.
    keys: HashMap<&'static str, (String, usize)>,
}

/// Every key the file may hold, in the kebab-case spelling.
const FILE_KEYS: &[&str] = &[
    "watch-dir",
    "host",
    "port",
    "remote-dir",
    "foreground",
    "pid-file",
    "log-file",
    "state-dir",
    "run-as",
    "log-level",
    "log-format",
    "user",
    "password",
    "password-file",
    "tls",
    "ca-file",
    "active",
    "timeout",
    "cooldown",
    "no-recursive",
    "delete",
    "exclude",
    "include",
    "parallel",
    "rescan-interval",
    "max-delete",
    "once",
    "dry-run",
    "publish-changing",
    "bwlimit",
    "poll",
];

/// What to write instead of a malformed `password` value. Says nothing of the
/// value itself.
const PASSWORD_FIX: &str = "the value must be a quoted string, digits too (it is not shown here): \
                            write password = \"...\", or better keep it in a --password-file";

type ParseError = (Option<usize>, String);

impl FileConfig {
    fn load(path: &Path, origin: &Origin) -> Result<Self> {
        let shown = EscapedPath(path);
        let bytes = fs::read(path)
            .map_err(|e| Error::usage(format!("{origin}: cannot read config file {shown}: {e}: check the path")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Error::usage(format!("config file {shown}, line {line}: not UTF-8 text: save the file as UTF-8"))
        })?;
        Self::parse(&text).map_err(|(line, msg)| {
            Error::usage(match line {
                Some(line) => format!("config file {shown}, line {line}: {msg}"),
                None => format!("config file {shown}: {msg}"),
            })
        })
    }

    /// Where `key` (kebab-case) was given, for an error about its value.
    fn origin(&self, key: &'static str, path: Option<&Path>) -> Origin {
        match (self.keys.get(key), path) {
            (Some((written, line)), Some(path)) => {
                Origin::File { path: path.to_path_buf(), line: *line, key: written.clone() }
            }
            _ => Origin::Default(key),
        }
    }

    /// Parses the text; an error carries the 1-based line and a one-line message.
    fn parse(text: &str) -> std::result::Result<Self, ParseError> {
        let doc = toml::de::DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let mut entries: Vec<_> = doc.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut cfg = Self::default();
        for (key, value) in entries {
            let line = line_of(text, key.span().start);
            let written: &str = key.get_ref();
            let shown = written.escape_debug().to_string();
            let canonical = written.replace('_', "-");
            let Some(&name) = FILE_KEYS.iter().find(|k| **k == canonical) else {
                return Err((Some(line), unknown_key(&shown, value.get_ref())));
            };
            if let Some((other, other_line)) = cfg.keys.get(name) {
                return Err((
                    Some(line),
                    format!("{shown}: given twice (also as {other} on line {other_line}): keep one of them"),
                ));
            }
            cfg.keys.insert(name, (shown.clone(), line));
            cfg.set(name, value.get_ref()).map_err(|msg| (Some(line), format!("{shown}: {msg}")))?;
        }
        Ok(cfg)
    }

    fn set(&mut self, name: &str, v: &DeValue<'_>) -> std::result::Result<(), String> {
        match name {
            "watch-dir" => self.watch_dir = Some(path_value(v)?),
            "host" => self.host = Some(string_value(v)?),
            "port" => self.port = Some(parse_port(&number_text(v, "21")?)?),
            "remote-dir" => self.remote_dir = Some(string_value(v)?),
            "foreground" => self.foreground = Some(bool_value(v)?),
            "pid-file" => self.pid_file = Some(path_value(v)?),
            "log-file" => self.log_file = Some(path_value(v)?),
            "state-dir" => self.state_dir = Some(path_value(v)?),
            "run-as" => self.run_as = Some(string_value(v)?),
            "log-level" => self.log_level = Some(parse_log_level(&string_value(v)?)?),
            "log-format" => self.log_format = Some(string_value(v)?.parse()?),
            "user" => self.user = Some(string_value(v)?),
            "password" => match v {
                DeValue::String(s) => self.password = Some(Secret::new(s.as_ref())),
                _ => return Err(PASSWORD_FIX.to_string()),
            },
            "password-file" => self.password_file = Some(path_value(v)?),
            "tls" => self.tls = Some(bool_value(v)?),
            "ca-file" => self.ca_file = Some(path_value(v)?),
            "active" => self.active = Some(bool_value(v)?),
            "timeout" => self.timeout = Some(parse_timeout(&number_text(v, "\"30s\"")?)?),
            "cooldown" => self.cooldown = Some(parse_duration(&number_text(v, "\"500ms\"")?)?),
            "no-recursive" => self.no_recursive = Some(bool_value(v)?),
            "delete" => self.delete = Some(bool_value(v)?),
            "exclude" => self.exclude = Some(glob_list(v)?),
            "include" => self.include = Some(glob_list(v)?),
            "parallel" => self.parallel = Some(parse_parallel(&number_text(v, "4")?)?),
            "rescan-interval" => self.rescan_interval = Some(parse_duration(&number_text(v, "\"1h\"")?)?),
            "max-delete" => self.max_delete = Some(parse_percent(&number_text(v, "50")?)?),
            "once" => self.once = Some(bool_value(v)?),
            "dry-run" => self.dry_run = Some(bool_value(v)?),
            "publish-changing" => self.publish_changing = Some(bool_value(v)?),
            "poll" => self.poll = Some(parse_poll(&number_text(v, "\"30s\"")?)?),
            "bwlimit" => self.bwlimit = Some(crate::bwlimit::Timetable::parse(&number_text(v, "\"10M\"")?)?),
            _ => return Err("not a key of the config file".to_string()),
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A TOML syntax error as one line. toml's own messages name tokens, never
/// values; an error on a `password` line says so and adds the fix.
fn syntax_error(text: &str, e: &toml::de::Error) -> ParseError {
    let span = e.span();
    let line = span.as_ref().map(|s| line_of(text, s.start));
    let msg = e.message().lines().map(str::trim).collect::<Vec<_>>().join(" ");
    let line_text = line.and_then(|n| text.lines().nth(n - 1)).unwrap_or("");
    let on_password = line_key(line_text).is_some_and(|k| k.replace('_', "-") == "password");
    let msg = if msg == "duplicate key" {
        let key = span.and_then(|s| text.get(s)).unwrap_or("").trim();
        format!("duplicate key {}: keep one of them", key.escape_debug())
    } else if on_password {
        format!("password: {msg}: {PASSWORD_FIX}")
    } else {
        format!("{msg} (TOML syntax: key = value, strings in quotes)")
    };
    (line, msg)
}

/// The key a `key = value` line starts with, quotes removed.
fn line_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    Some(key.trim().trim_matches(['"', '\'']))
}

fn unknown_key(shown: &str, v: &DeValue<'_>) -> String {
    if matches!(v, DeValue::Table(_)) {
        return format!(
            "unknown section or dotted key {shown}: the config file has no sections: write its keys at the top, \
             one `key = value` a line"
        );
    }
    let guess = FILE_KEYS.iter().copied().min_by_key(|k| edit_distance(k, &shown.replace('_', "-")));
    match guess.filter(|k| edit_distance(k, &shown.replace('_', "-")) <= 2) {
        Some(k) => format!("unknown key {shown}: did you mean {k}?"),
        None => format!(
            "unknown key {shown}: the keys are the long options without -- (cooldown, pid-file, ...) \
             and watch-dir, host, port, remote-dir, password"
        ),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn string_value(v: &DeValue<'_>) -> std::result::Result<String, String> {
    match v {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(format!("must be a quoted string, not {}: put the value in quotes", type_name(other))),
    }
}

fn path_value(v: &DeValue<'_>) -> std::result::Result<PathBuf, String> {
    match v {
        DeValue::String(s) if s.is_empty() => Err("is empty: give a path, in quotes".to_string()),
        DeValue::String(s) => Ok(PathBuf::from(s.as_ref())),
        other => Err(format!("must be a path in quotes, not {}", type_name(other))),
    }
}

fn bool_value(v: &DeValue<'_>) -> std::result::Result<bool, String> {
    match v {
        DeValue::Boolean(b) => Ok(*b),
        DeValue::String(s) if ["true", "false"].contains(&s.as_ref()) => {
            Err(format!("must be true or false without quotes: write {s}"))
        }
        other => Err(format!("must be true or false (without quotes), not {}", type_name(other))),
    }
}

/// A number, or a string such as `"500ms"`, as text for the parsers the
/// command line uses too (`example` shows what to write instead).
fn number_text(v: &DeValue<'_>, example: &str) -> std::result::Result<String, String> {
    match v {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            Ok(i64::from_str_radix(i.as_str(), i.radix()).map_or_else(|_| i.as_str().to_string(), |n| n.to_string()))
        }
        DeValue::Float(f) => Ok(f.as_str().replace('_', "")),
        other => Err(format!("must be a number or a quoted value like {example}, not {}", type_name(other))),
    }
}

fn glob_list(v: &DeValue<'_>) -> std::result::Result<Vec<String>, String> {
    let DeValue::Array(items) = v else {
        return Err(format!("must be a list of quoted globs, like exclude = [\"*.tmp\"], not {}", type_name(v)));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let DeValue::String(pat) = item.get_ref() else {
            return Err(format!("item {} must be a quoted glob, not {}", i + 1, type_name(item.get_ref())));
        };
        Glob::new(pat).map_err(|e| {
            format!("item {} {pat:?} is not a valid glob ({}): use *, ?, [abc] and ** for any depth", i + 1, e.kind())
        })?;
        out.push(pat.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cwd: &Path) -> Env {
        Env { cwd: cwd.to_path_buf(), home: Some(cwd.to_path_buf()), ..Env::default() }
    }

    fn args(watch: &Path) -> RunArgs {
        RunArgs {
            watch_dir: Some(watch.to_path_buf()),
            host: Some("127.0.0.1".into()),
            port: Some("2121".into()),
            remote_dir: Some("/up/".into()),
            ..RunArgs::default()
        }
    }

    #[test]
    fn cooldown_accepts_bare_seconds_fractions_and_units() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1e19").is_err());
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(parse_port("21"), Ok(21));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("ftp").is_err());
    }

    #[test]
    fn defaults_follow_the_user_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config::from_args_env(&args(tmp.path()), &env(tmp.path())).unwrap();
        assert_eq!(cfg.remote_dir, "/up");
        assert_eq!(cfg.cooldown, Duration::from_secs(5));
        assert_eq!(cfg.parallel, 4);
        assert_eq!(cfg.state_dir, tmp.path().join(".local/state/ftpmonitor"));
        assert_eq!(cfg.pid_file, cfg.state_dir.join("ftpmonitor.pid"));
        assert_eq!(cfg.user, "anonymous");
        let root = Env { is_root: true, ..env(tmp.path()) };
        let cfg = Config::from_args_env(&args(tmp.path()), &root).unwrap();
        assert_eq!(cfg.pid_file, Path::new("/var/run/ftpmonitor.pid"));
        assert_eq!(cfg.log_file.as_deref(), Some(Path::new("/var/log/ftpmonitor.log")));
        assert_eq!(cfg.state_dir, Path::new("/var/lib/ftpmonitor"));
    }

    #[test]
    fn password_sources_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".netrc"), "machine 127.0.0.1 login bob password fromnetrc\n").unwrap();
        std::fs::write(tmp.path().join("pw"), "fromfile\nsecond line\n").unwrap();
        let mut a = args(tmp.path());
        let cfg = Config::from_args_env(&a, &env(tmp.path())).unwrap();
        assert_eq!((cfg.user.as_str(), cfg.password.expose()), ("bob", "fromnetrc"));
        a.server.password_file = Some(tmp.path().join("pw"));
        let cfg = Config::from_args_env(&a, &env(tmp.path())).unwrap();
        assert_eq!(cfg.password.expose(), "fromfile");
        let e = Env { password: Some("fromenv".into()), ..env(tmp.path()) };
        let cfg = Config::from_args_env(&a, &e).unwrap();
        assert_eq!(cfg.password.expose(), "fromenv");
        assert_eq!(format!("{:?}", cfg.password), "***");
        assert!(!format!("{cfg:?}").contains("fromenv"));
    }

    #[test]
    fn config_file_errors_name_the_line() {
        let text = "host = \"x\"\nport = 21\ncooldown = \"fast\"\n";
        let (line, msg) = FileConfig::parse(text).unwrap_err();
        assert_eq!(line, Some(3));
        assert!(msg.contains("fast"), "{msg}");
        let (line, _) = FileConfig::parse("host = \"x\"\nprot = 21\n").unwrap_err();
        assert_eq!(line, Some(2));
        let (line, _) = FileConfig::parse("port = 70000\n").unwrap_err();
        assert_eq!(line, Some(1));
    }

    #[test]
    fn config_file_errors_name_the_key_and_the_fix() {
        let cases: &[(&str, usize, &[&str])] = &[
            ("host = \"x\"\n\nmax-delete = 101\n", 3, &["max-delete", "\"101\"", "percentage", "0 to 100"]),
            ("cooldown = true\n", 1, &["cooldown", "number", "\"500ms\""]),
            ("tls = \"yes\"\n", 1, &["tls", "true or false"]),
            ("prot = 21\n", 1, &["prot", "did you mean port"]),
            ("[server]\nhost = \"x\"\n", 1, &["server", "no sections"]),
            ("max_delete = 5\nmax-delete = 6\n", 2, &["max-delete", "twice", "line 1"]),
            ("cooldown = 1\ncooldown = 2\n", 2, &["duplicate key cooldown"]),
            ("exclude = \"*.tmp\"\n", 1, &["exclude", "list", "[\"*.tmp\"]"]),
            ("exclude = [\"ok\", \"[\"]\n", 1, &["exclude", "item 2", "glob"]),
            ("port = -21\n", 1, &["port", "-21", "1 to 65535"]),
            ("user = 7\n", 1, &["user", "quoted string"]),
            ("password = 123456\n", 1, &["password", "quoted string"]),
        ];
        for (text, line, words) in cases {
            let (at, msg) = FileConfig::parse(text).unwrap_err();
            assert_eq!(at, Some(*line), "{text:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
            for w in *words {
                assert!(msg.contains(w), "{text:?}: {msg:?} does not say {w:?}");
            }
        }
        assert!(!FileConfig::parse("password = 123456\n").unwrap_err().1.contains("123456"));
    }

    #[test]
    fn numbers_in_the_file_mean_what_toml_says() {
        let cfg =
            FileConfig::parse("port = 0x15\ncooldown = 1_5\nrescan-interval = 1.5e1\nmax-delete = \"7%\"\n").unwrap();
        assert_eq!(cfg.port, Some(21));
        assert_eq!(cfg.cooldown, Some(Duration::from_secs(15)));
        assert_eq!(cfg.rescan_interval, Some(Duration::from_secs(15)));
        assert_eq!(cfg.max_delete, Some(7));
    }

    #[test]
    fn command_line_overrides_the_file_and_file_paths_are_relative_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::create_dir(tmp.path().join("w")).unwrap();
        let file = etc.join("job.toml");
        std::fs::write(
            &file,
            "watch-dir = \"../w\"\nhost = \"localhost\"\nport = 21\nremote-dir = \"/in\"\ncooldown = 2\nstate-dir = \"state\"\nexclude = [\"*.tmp\"]\n",
        )
        .unwrap();
        let a = RunArgs {
            config: Some(file),
            sync: crate::cli::SyncArgs { cooldown: Some("500ms".into()), ..Default::default() },
            ..RunArgs::default()
        };
        let cfg = Config::from_args_env(&a, &env(tmp.path())).unwrap();
        assert_eq!(cfg.watch_dir, std::fs::canonicalize(tmp.path().join("w")).unwrap());
        assert_eq!(cfg.port, 21);
        assert_eq!(cfg.cooldown, Duration::from_millis(500));
        assert_eq!(cfg.state_dir, etc.join("state"));
        assert!(cfg.scope.excluded("deep/dir/x.tmp"));
    }

    #[test]
    fn netrc_prefers_the_machine_then_default() {
        let text = "machine a login u1 password p1\ndefault login anon password guest\n";
        assert_eq!(parse_netrc(text, "a", None).unwrap().password.as_deref(), Some("p1"));
        assert_eq!(parse_netrc(text, "b", None).unwrap().login.as_deref(), Some("anon"));
        assert_eq!(parse_netrc(text, "a", Some("other")), None);
    }

    /// Fuzzing the config file parser, bounded so that `cargo test` spends a few
    /// seconds on it: whatever the text, no panic, and an error is one line.
    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        /// Pieces TOML is made of, so that random text gets past the first byte.
        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("=".to_string()),
                Just("\n".to_string()),
                Just("\"".to_string()),
                Just("'".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just("{".to_string()),
                Just("}".to_string()),
                Just(",".to_string()),
                Just(".".to_string()),
                Just("#".to_string()),
                Just("\\".to_string()),
                Just("\"\"\"".to_string()),
                prop::sample::select(FILE_KEYS).prop_map(str::to_string),
                "[a-z_-]{1,8}",
                "-?[0-9_]{1,6}(\\.[0-9]+)?(e-?[0-9]+)?",
                "0x[0-9a-fA-F]{1,6}",
                "(true|false|inf|nan|1979-05-27(T07:32:00Z)?)",
                "[ \t]{1,2}",
                any::<char>().prop_map(String::from),
            ]
        }

        /// A password value in many shapes, each holding `MARK`.
        fn password_value() -> impl Strategy<Value = String> {
            (0usize..10, "[a-z0-9]{0,4}").prop_map(|(shape, pad)| {
                let v = format!("{pad}{MARK}{pad}");
                match shape {
                    0 => v,
                    1 => format!("\"{v}"),
                    2 => format!("'{v}"),
                    3 => format!("[\"{v}\"]"),
                    4 => format!("{{ x = \"{v}\" }}"),
                    5 => format!("\"{v}\" \"{v}\""),
                    6 => format!("\"\"\"{v}"),
                    7 => format!("\"{v}\\q\""),
                    8 => format!("\"{v}\"\npassword = \"{v}\""),
                    _ => format!("1{v}"),
                }
            })
        }

        const MARK: &str = "Zq7Xw9";

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 100, ..ProptestConfig::default() })]

            #[test]
            fn any_text_gives_a_config_or_a_one_line_error(parts in prop::collection::vec(fragment(), 0..40)) {
                let text: String = parts.concat();
                if let Err((line, msg)) = FileConfig::parse(&text) {
                    prop_assert!(!msg.is_empty());
                    prop_assert!(!msg.contains(['\n', '\r']), "{msg:?}");
                    prop_assert!(line.is_none_or(|l| l >= 1 && l <= text.lines().count().max(1) + 1), "{line:?}");
                }
            }

            #[test]
            fn no_error_quotes_a_password_value(
                before in prop::collection::vec(fragment(), 0..6),
                value in password_value(),
                after in prop::collection::vec(fragment(), 0..6),
            ) {
                let text = format!("{}\npassword = {value}\n{}", before.concat(), after.concat());
                if let Err((_, msg)) = FileConfig::parse(&text) {
                    prop_assert!(!msg.contains(MARK), "{text:?} -> {msg:?}");
                }
            }
        }
    }
}
