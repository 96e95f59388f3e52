//! The typed configuration: command line merged over the optional TOML file,
//! validated once, with absolute paths, `Duration`s and a [`Secret`] password.
//!
//! Every check that can fail before the daemon forks lives here, and every
//! failure is a one-line [`Error::Usage`] naming the thing and the fix. Nothing
//! here touches the network beyond resolving HOST, forks or logs.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use log::LevelFilter;
use serde::{Deserialize, Deserializer};

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::relpath::EscapedPath;

/// Names the tool gives its own temporary remote files; local files with these
/// names are never uploaded.
pub const TEMP_SUFFIX: &str = ".ftpmonitor-part";
pub const ASIDE_SUFFIX: &str = ".ftpmonitor-old";

/// Connect, greeting, control-reply and data timeout, unless `--timeout` says.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Excluded whatever the user says: editor swap, backup and lock files, and
/// the tool's own temporary names.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "**/*.swp",
    "**/*.swx",
    "**/*~",
    "**/.#*",
    "**/#*#",
    "**/.*.kate-swp",
    "**/.~lock.*#",
    "**/*.ftpmonitor-part",
    "**/*.ftpmonitor-old",
];

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

/// Paths matched against the path relative to WATCH_DIR.
#[derive(Clone, Debug)]
pub struct Excludes {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Excludes {
    pub fn new(user: &[String]) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        for pat in DEFAULT_EXCLUDES.iter().copied().map(str::to_string).chain(user.iter().cloned()) {
            let glob = Glob::new(&pat).map_err(|e| {
                Error::usage(format!(
                    "--exclude {pat:?} is not a valid glob ({}): use *, ?, [abc] and ** for any depth",
                    e.kind()
                ))
            })?;
            builder.add(glob);
            // A pattern without a slash matches a name at any depth, as in .gitignore.
            if !pat.contains('/') {
                builder.add(Glob::new(&format!("**/{pat}")).map_err(|e| Error::usage(e.to_string()))?);
            }
            patterns.push(pat);
        }
        let set = builder.build().map_err(|e| Error::usage(format!("--exclude patterns: {e}")))?;
        Ok(Self { set, patterns })
    }

    /// Whether `rel` or one of its parent directories is excluded (an
    /// excluded directory excludes everything below it).
    pub fn is_match(&self, rel: &str) -> bool {
        self.set.is_match(rel) || rel.match_indices('/').any(|(i, _)| self.set.is_match(&rel[..i]))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
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

    pub cooldown: Duration,
    pub recursive: bool,
    pub delete: bool,
    pub excludes: Excludes,
    pub parallel: usize,
    pub rescan_interval: Option<Duration>,
    pub max_delete: u8,
    pub once: bool,
    pub dry_run: bool,

    pub config_file: Option<PathBuf>,
}

impl Config {
    /// Merges `args` over the config file they name, validates and resolves.
    pub fn from_args(args: &RunArgs) -> Result<Self> {
        let env = Env::from_process();
        Self::from_args_env(args, &env)
    }

    fn from_args_env(args: &RunArgs, env: &Env) -> Result<Self> {
        let (file, config_file) = match &args.config {
            Some(path) => {
                let path = absolute(path, &env.cwd);
                (FileConfig::load(&path)?, Some(path))
            }
            None => (FileConfig::default(), None),
        };
        // Relative paths in the config file are relative to the file itself.
        let file_base =
            config_file.as_deref().and_then(Path::parent).map_or_else(|| env.cwd.clone(), Path::to_path_buf);
        let from_file = |p: &Option<PathBuf>| p.as_ref().map(|p| absolute(p, &file_base));
        let from_cli = |p: &Option<PathBuf>| p.as_ref().map(|p| absolute(p, &env.cwd));

        let watch_dir = from_cli(&args.watch_dir).or_else(|| from_file(&file.watch_dir));
        let host = args.host.clone().or(file.host.clone());
        let port = match &args.port {
            Some(p) => Some(parse_port(p).map_err(Error::usage)?),
            None => file.port,
        };
        let remote_dir = args.remote_dir.clone().or(file.remote_dir.clone());
        let (Some(watch_dir), Some(host), Some(port), Some(remote_dir)) = (watch_dir, host, port, remote_dir) else {
            return Err(Error::usage(
                "WATCH_DIR, HOST, PORT and REMOTE_DIR are required: give all four on the command \
                 line (ftpmonitor /watch ftp.example.com 21 /incoming) or in --config FILE",
            ));
        };
        let watch_dir = check_watch_dir(&watch_dir)?;
        check_host(&host, port)?;
        let remote_dir = normalize_remote_dir(&remote_dir)?;

        let d = &args.daemon;
        let s = &args.server;
        let y = &args.sync;
        let root = env.is_root;

        let state_dir =
            from_cli(&d.state_dir).or_else(|| from_file(&file.state_dir)).unwrap_or_else(|| env.default_state_dir());
        let pid_file = from_cli(&d.pid_file)
            .or_else(|| from_file(&file.pid_file))
            .unwrap_or_else(|| env.default_pid_file(&state_dir));
        let log_file = match d.log_file.as_ref().or(file.log_file.as_ref()) {
            Some(p) if p.as_os_str() == "-" => None,
            Some(_) => from_cli(&d.log_file).or_else(|| from_file(&file.log_file)),
            None => Some(env.default_log_file()),
        };
        let log_level = match &d.log_level {
            Some(l) => parse_log_level(l).map_err(|e| Error::usage(format!("--log-level: {e}")))?,
            None => file.log_level.unwrap_or(LevelFilter::Info),
        };

        let user_given = s.user.clone().or(file.user.clone());
        let netrc = env.home.as_ref().map(|h| h.join(".netrc"));
        let netrc_entry = netrc.as_deref().and_then(|p| netrc_lookup(p, &host, user_given.as_deref()));
        let user = user_given
            .or_else(|| netrc_entry.as_ref().and_then(|e| e.login.clone()))
            .unwrap_or_else(|| "anonymous".to_string());
        let password_file = from_cli(&s.password_file).or_else(|| from_file(&file.password_file));
        let (password, password_source) = if let Some(pw) = &env.password {
            (Secret::new(pw.clone()), PasswordSource::Environment)
        } else if let Some(path) = &password_file {
            (read_password_file(path)?, PasswordSource::File)
        } else if let Some(pw) = &file.password {
            (Secret::new(pw.clone()), PasswordSource::Config)
        } else if let Some(pw) = netrc_entry.and_then(|e| e.password) {
            (Secret::new(pw), PasswordSource::Netrc)
        } else if user == "anonymous" || user == "ftp" {
            (Secret::new("anonymous@"), PasswordSource::Anonymous)
        } else {
            (Secret::default(), PasswordSource::None)
        };

        let tls = s.tls || file.tls.unwrap_or(false);
        let ca_file = from_cli(&s.ca_file).or_else(|| from_file(&file.ca_file));
        if let Some(ca) = &ca_file {
            if let Err(e) = fs::File::open(ca) {
                return Err(Error::usage(format!(
                    "cannot read CA file {}: {e}: give a readable PEM file to --ca-file",
                    EscapedPath(ca)
                )));
            }
            if !tls {
                return Err(Error::usage("--ca-file only applies to FTPS: add --tls"));
            }
        }

        let cooldown = match &y.cooldown {
            Some(c) => parse_duration(c).map_err(|e| Error::usage(format!("--cooldown: {e}")))?,
            None => file.cooldown.unwrap_or(Duration::from_secs(5)),
        };
        let rescan_interval = match &y.rescan_interval {
            Some(c) => parse_duration(c).map_err(|e| Error::usage(format!("--rescan-interval: {e}")))?,
            None => file.rescan_interval.unwrap_or(Duration::from_secs(3600)),
        };
        let timeout = match &s.timeout {
            Some(t) => parse_timeout(t).map_err(|e| Error::usage(format!("--timeout: {e}")))?,
            None => file.timeout.unwrap_or(TIMEOUT),
        };
        let parallel = match &y.parallel {
            Some(p) => parse_parallel(p).map_err(|e| Error::usage(format!("--parallel: {e}")))?,
            None => file.parallel.unwrap_or(4),
        };
        let max_delete = match &y.max_delete {
            Some(p) => parse_percent(p).map_err(|e| Error::usage(format!("--max-delete: {e}")))?,
            None => file.max_delete.unwrap_or(50),
        };
        let mut exclude = file.exclude.clone().unwrap_or_default();
        exclude.extend(y.exclude.iter().cloned());
        let excludes = Excludes::new(&exclude)?;

        let once = y.once || file.once.unwrap_or(false);
        let run_as = d.run_as.clone().or(file.run_as.clone());
        if run_as.is_some() && !root {
            return Err(Error::usage("--run-as needs root: start ftpmonitor as root, or leave --run-as out"));
        }

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
            cooldown,
            recursive: !(y.no_recursive || file.no_recursive.unwrap_or(false)),
            delete: y.delete || file.delete.unwrap_or(false),
            excludes,
            parallel,
            rescan_interval: (!rescan_interval.is_zero()).then_some(rescan_interval),
            max_delete,
            once,
            dry_run: y.dry_run || file.dry_run.unwrap_or(false),
            config_file,
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
    password: Option<String>,
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
            password: std::env::var("FTPMONITOR_PASSWORD").ok(),
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

fn check_watch_dir(dir: &Path) -> Result<PathBuf> {
    let shown = EscapedPath(dir);
    let meta = fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(format!("watch directory {shown} does not exist: create it or fix the path"))
        } else {
            Error::usage(format!("cannot access watch directory {shown}: {e}: check its permissions"))
        }
    })?;
    if !meta.is_dir() {
        return Err(Error::usage(format!("watch directory {shown} is not a directory: give the directory to watch")));
    }
    fs::read_dir(dir).map_err(|e| {
        Error::usage(format!("cannot read watch directory {shown}: {e}: run as a user who can read it"))
    })?;
    // Events arrive with the real path, so watch the real path.
    fs::canonicalize(dir).map_err(|e| Error::usage(format!("cannot resolve watch directory {shown}: {e}")))
}

fn check_host(host: &str, port: u16) -> Result<()> {
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Error::usage(format!("HOST {host:?} is not a host name: give a name or an IP address")));
    }
    match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(_) => Err(Error::usage(format!("host {host:?} has no address: check the name, or give an IP address"))),
        Err(e) => Err(Error::usage(format!(
            "cannot resolve host {host:?} ({e}): check the name and DNS, or give an IP address"
        ))),
    }
}

fn normalize_remote_dir(dir: &str) -> Result<String> {
    if dir.contains(['\r', '\n']) {
        return Err(Error::usage("REMOTE_DIR contains a line break: FTP cannot carry it"));
    }
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(if dir.starts_with('/') { "/".into() } else { String::new() });
    }
    Ok(trimmed.to_string())
}

pub fn parse_port(s: &str) -> std::result::Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(u16::try_from(p).unwrap_or(21)),
        _ => Err(format!("PORT {s:?} is not a port number: use 1 to 65535 (FTP and explicit FTPS listen on 21)")),
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

fn read_password_file(path: &Path) -> Result<Secret> {
    let f = fs::File::open(path).map_err(|e| {
        Error::usage(format!(
            "cannot read password file {}: {e}: check the path and that ftpmonitor may read it",
            EscapedPath(path)
        ))
    })?;
    let mut line = String::new();
    BufReader::new(f)
        .read_line(&mut line)
        .map_err(|e| Error::usage(format!("cannot read password file {}: {e}", EscapedPath(path))))?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
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
/// `port`, `remote-dir`) and `password`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(alias = "watch_dir")]
    watch_dir: Option<PathBuf>,
    host: Option<String>,
    #[serde(default, deserialize_with = "de_port")]
    port: Option<u16>,
    #[serde(alias = "remote_dir")]
    remote_dir: Option<String>,

    foreground: Option<bool>,
    #[serde(alias = "pid_file")]
    pid_file: Option<PathBuf>,
    #[serde(alias = "log_file")]
    log_file: Option<PathBuf>,
    #[serde(alias = "state_dir")]
    state_dir: Option<PathBuf>,
    #[serde(alias = "run_as")]
    run_as: Option<String>,
    #[serde(default, alias = "log_level", deserialize_with = "de_log_level")]
    log_level: Option<LevelFilter>,

    user: Option<String>,
    password: Option<String>,
    #[serde(alias = "password_file")]
    password_file: Option<PathBuf>,
    tls: Option<bool>,
    #[serde(alias = "ca_file")]
    ca_file: Option<PathBuf>,
    active: Option<bool>,
    #[serde(default, deserialize_with = "de_timeout")]
    timeout: Option<Duration>,

    #[serde(default, deserialize_with = "de_duration")]
    cooldown: Option<Duration>,
    #[serde(alias = "no_recursive")]
    no_recursive: Option<bool>,
    delete: Option<bool>,
    exclude: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_parallel")]
    parallel: Option<usize>,
    #[serde(default, alias = "rescan_interval", deserialize_with = "de_duration")]
    rescan_interval: Option<Duration>,
    #[serde(default, alias = "max_delete", deserialize_with = "de_percent")]
    max_delete: Option<u8>,
    once: Option<bool>,
    #[serde(alias = "dry_run")]
    dry_run: Option<bool>,
}

impl FileConfig {
    fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| {
            Error::usage(format!(
                "cannot read config file {}: {e}: check the path given to --config",
                EscapedPath(path)
            ))
        })?;
        Self::parse(&text).map_err(|(line, msg)| {
            Error::usage(match line {
                Some(line) => format!("config file {}, line {line}: {msg}", EscapedPath(path)),
                None => format!("config file {}: {msg}", EscapedPath(path)),
            })
        })
    }

    /// Parses the text; an error carries the 1-based line and a one-line message.
    fn parse(text: &str) -> std::result::Result<Self, (Option<usize>, String)> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let line = e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().lines().collect::<Vec<_>>().join(" ");
            (line, msg)
        })
    }
}

/// A number (seconds) or a string such as `"500ms"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Int(i64),
    Float(f64),
    Str(String),
}

impl NumOrStr {
    fn text(self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Str(s) => s,
        }
    }
}

fn de_with<'de, D, T>(
    d: D,
    parse: fn(&str) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    let v = NumOrStr::deserialize(d)?;
    parse(&v.text()).map(Some).map_err(serde::de::Error::custom)
}

fn de_port<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u16>, D::Error> {
    de_with(d, parse_port)
}
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    de_with(d, parse_duration)
}
fn de_timeout<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    de_with(d, parse_timeout)
}
fn de_parallel<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<usize>, D::Error> {
    de_with(d, parse_parallel)
}
fn de_percent<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u8>, D::Error> {
    de_with(d, parse_percent)
}
fn de_log_level<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<LevelFilter>, D::Error> {
    de_with(d, parse_log_level)
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
        assert!(cfg.excludes.is_match("deep/dir/x.tmp"));
    }

    #[test]
    fn default_excludes_cover_editor_files_and_our_temp_names() {
        let ex = Excludes::new(&[]).unwrap();
        for name in ["a/.report.txt.swp", "notes.txt~", ".#lock", "x/.f.ftpmonitor-part", "#auto#"] {
            assert!(ex.is_match(name), "{name}");
        }
        assert!(!ex.is_match("a/report.txt"));
        let ex = Excludes::new(&["build".to_string(), "cache/**".to_string()]).unwrap();
        assert!(ex.is_match("build/x.o") && ex.is_match("src/build/deep/y.o") && ex.is_match("cache/a"));
        assert!(!ex.is_match("builder/x.o"));
    }

    #[test]
    fn netrc_prefers_the_machine_then_default() {
        let text = "machine a login u1 password p1\ndefault login anon password guest\n";
        assert_eq!(parse_netrc(text, "a", None).unwrap().password.as_deref(), Some("p1"));
        assert_eq!(parse_netrc(text, "b", None).unwrap().login.as_deref(), Some("anon"));
        assert_eq!(parse_netrc(text, "a", Some("other")), None);
    }
}
