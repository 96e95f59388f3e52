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
pub use checks::{Order, parse_duration};

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
    /// `--metrics-addr`: where `/metrics` is served.
    pub metrics_addr: Option<std::net::SocketAddr>,
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
    /// `--remove-source` or `--archive-dir`: what happens to a file once its
    /// upload is verified.
    pub hand_off: Option<HandOff>,
    /// `--last`: trigger files, published after the rest of their directory.
    pub last: crate::scope::Globs,
    /// `--order`, if given: files of a directory are published in this order.
    pub order: Option<checks::Order>,
    /// `--on-upload`, `--on-failure`: the hooks' command lines, split.
    pub on_upload: Option<crate::hooks::Argv>,
    pub on_failure: Option<crate::hooks::Argv>,
    /// `--temp-dir`: the remote directory uploads are stored in under
    /// temporary names (a full remote path, as REMOTE_DIR is written).
    pub temp_dir: Option<String>,
    /// `--chmod`, `--chmod-dirs`: modes set with SITE CHMOD.
    pub chmod: Option<u32>,
    pub chmod_dirs: Option<u32>,
    /// `--min-age`: a file is uploaded once its mtime is this old.
    pub min_age: Option<Duration>,
    /// `--max-age`: a file whose mtime is older is left alone.
    pub max_age: Option<Duration>,

    pub config_file: Option<PathBuf>,
    /// Where the local files' paths came from, for errors found at start-up.
    pub origins: Origins,
}

/// Move mode: what becomes of a local file once its upload is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandOff {
    /// `--remove-source`: deleted.
    Remove,
    /// `--archive-dir DIR` (canonical, outside WATCH_DIR): moved there.
    Archive(PathBuf),
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
        let order =
            match &y.order {
                Some(o) => Some(checks::parse_order(o).map_err(|e| {
                    Error::usage(format!("{}: {e}", cli("--order", Some("FTPMONITOR_ORDER"), o.as_ref())))
                })?),
                None => file.order,
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
        let age = |given: &Option<String>,
                   option: &'static str,
                   env: &'static str,
                   from_file: Option<Option<Duration>>| match given {
            Some(a) => parse_age(a).map_err(|e| Error::usage(format!("{}: {e}", cli(option, Some(env), a.as_ref())))),
            None => Ok(from_file.flatten()),
        };
        let min_age = age(&y.min_age, "--min-age", "FTPMONITOR_MIN_AGE", file.min_age)?;
        let max_age = age(&y.max_age, "--max-age", "FTPMONITOR_MAX_AGE", file.max_age)?;
        if let (Some(min), Some(max)) = (min_age, max_age)
            && min >= max
        {
            return Err(Error::usage(format!(
                "--min-age {} is not less than --max-age {}: no file could ever be uploaded (it would never be old enough yet young enough); lower --min-age or \
                 raise --max-age",
                humantime::format_duration(min),
                humantime::format_duration(max)
            )));
        }
        let metrics_addr = match &d.metrics_addr {
            Some(a) => Some(parse_listen_addr(a).map_err(|e| {
                Error::usage(format!("{}: {e}", cli("--metrics-addr", Some("FTPMONITOR_METRICS_ADDR"), a.as_ref())))
            })?),
            None => file.metrics_addr,
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
        let temp_dir = match text_of(&y.temp_dir, "--temp-dir", Some("FTPMONITOR_TEMP_DIR"))
            .or_else(|| file.temp_dir.clone().map(|t| (t, from_file("temp-dir"))))
        {
            Some((t, origin)) => Some(check_temp_dir(&t, &remote_dir, &origin)?),
            None => None,
        };
        // WATCH_DIR's twin of a staging directory below REMOTE_DIR is not
        // synced: its files would be uploaded among the temporary names.
        let scope = Scope::new(&exclude, &include)?.reserve(temp_dir.as_ref().and_then(|(_, inside)| inside.clone()));
        let temp_dir = temp_dir.map(|(full, _)| full);
        let mode = |given: &Option<String>, flag: &'static str, var: &'static str, in_file: Option<u32>| match given {
            Some(m) => {
                parse_mode(m).map(Some).map_err(|e| Error::usage(format!("{}: {e}", cli(flag, Some(var), m.as_ref()))))
            }
            None => Ok(in_file),
        };
        let chmod = mode(&y.chmod, "--chmod", "FTPMONITOR_CHMOD", file.chmod)?;
        let chmod_dirs = mode(&y.chmod_dirs, "--chmod-dirs", "FTPMONITOR_CHMOD_DIRS", file.chmod_dirs)?;
        let mut last = file.last.clone().unwrap_or_default();
        last.extend(y.last.iter().cloned());
        let last = crate::scope::Globs::new(&last, "--last")?;

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
        let hook = |given: &Option<String>,
                    flag: &'static str,
                    var: &'static str,
                    in_file: &Option<String>,
                    key: &'static str|
         -> Result<Option<crate::hooks::Argv>> {
            let Some((cmd, origin)) =
                text_of(given, flag, Some(var)).or_else(|| in_file.clone().map(|c| (c, from_file(key))))
            else {
                return Ok(None);
            };
            parse_hook(&cmd, env.path.as_deref()).map(Some).map_err(|e| Error::usage(format!("{origin}: {e}")))
        };
        let remove_source = if y.remove_source {
            Some(Origin::Cli("--remove-source"))
        } else {
            file.remove_source.filter(|r| *r).map(|_| from_file("remove-source"))
        };
        let archive_dir =
            path_of(&y.archive_dir, "--archive-dir", Some("FTPMONITOR_ARCHIVE_DIR"), &file.archive_dir, "archive-dir")?;
        let delete = y.delete || file.delete.unwrap_or(false);
        let hand_off = match (remove_source, archive_dir) {
            (Some(r), Some((_, a))) => {
                return Err(Error::usage(format!(
                    "{r} and {a} exclude one another: keep --remove-source to delete uploaded files, or \
                     --archive-dir to move them away"
                )));
            }
            (Some(origin), None) if delete => {
                return Err(Error::usage(format!(
                    "{origin} and --delete exclude one another: a file handed off would be deleted on the server \
                     too; leave out one of them"
                )));
            }
            (None, Some((_, origin))) if delete => {
                return Err(Error::usage(format!(
                    "{origin} and --delete exclude one another: a file moved to the archive would be deleted on \
                     the server too; leave out one of them"
                )));
            }
            (Some(_), None) => Some(HandOff::Remove),
            (None, Some((dir, origin))) => Some(HandOff::Archive(check_archive_dir(&dir, &watch_dir, &origin)?)),
            (None, None) => None,
        };
        let on_upload = hook(&y.on_upload, "--on-upload", "FTPMONITOR_ON_UPLOAD", &file.on_upload, "on-upload")?;
        let on_failure = hook(&y.on_failure, "--on-failure", "FTPMONITOR_ON_FAILURE", &file.on_failure, "on-failure")?;

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
            metrics_addr,
            log_format,
            cooldown,
            recursive: !(y.no_recursive || file.no_recursive.unwrap_or(false)),
            delete,
            scope,
            parallel,
            rescan_interval: (!rescan_interval.is_zero()).then_some(rescan_interval),
            max_delete,
            once,
            dry_run: y.dry_run || file.dry_run.unwrap_or(false),
            publish_changing: y.publish_changing || file.publish_changing.unwrap_or(false),
            bwlimit,
            poll,
            hand_off,
            last,
            order,
            on_upload,
            on_failure,
            temp_dir,
            chmod,
            chmod_dirs,
            min_age,
            max_age,
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
            && self.temp_dir == other.temp_dir
            && self.chmod == other.chmod
            && self.chmod_dirs == other.chmod_dirs
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
    /// `PATH`, where a hook's bare program name is looked up.
    path: Option<OsString>,
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
            path: std::env::var_os("PATH"),
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

mod checks;
mod file;
#[cfg(test)]
mod tests;

use checks::*;
use file::*;
