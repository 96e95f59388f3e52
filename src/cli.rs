//! Command-line syntax: what the user typed, nothing more.
//!
//! Values stay close to the text they came from (strings, options) so that
//! `config.rs` can validate them once, merge them with a `--config` file and
//! turn them into typed values with error messages that name the fix. clap's
//! own errors exit with code 2, which is also our code for bad usage.
//!
//! Numeric options take values that start with `-` (`--cooldown -1`,
//! `--timeout -1s`, a PORT of `-21`), so that the error about them is ours,
//! naming the option and the range, rather than clap's "unexpected argument".

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ftpmonitor",
    version,
    about = "Watch a directory and keep it pushed to an FTP or FTPS server",
    long_about = "Watch a directory and keep it pushed to an FTP or FTPS server.\n\n\
        Runs as a classic daemon: validates its arguments, logs in once, forks into \
        the background and writes its PID file. Every file that changes is uploaded \
        under a temporary name and renamed into place once it has been quiet for the \
        cooldown.\n\n\
        The password comes from FTPMONITOR_PASSWORD, --password-file, the config file \
        or ~/.netrc, in that order; there is deliberately no --password option.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing buys nothing
pub enum Command {
    /// Validate the configuration, test the server, print a report and exit.
    Check(RunArgs),
    /// Tell whether the daemon runs, with its PID and what it has synced.
    Status(StatusArgs),
    /// Stop starting transfers (running ones finish); watching and queueing go on, also across a restart.
    Pause(ControlArgs),
    /// Start transfers again after `ftpmonitor pause`.
    Resume(ControlArgs),
}

/// The arguments of a normal run (and of `check`).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Directory to watch
    #[arg(value_name = "WATCH_DIR")]
    pub watch_dir: Option<PathBuf>,
    /// FTP server host name or address
    #[arg(value_name = "HOST")]
    pub host: Option<String>,
    /// FTP server port (21 for FTP and explicit FTPS)
    #[arg(value_name = "PORT", allow_negative_numbers = true)]
    pub port: Option<String>,
    /// Directory on the server that mirrors WATCH_DIR
    #[arg(value_name = "REMOTE_DIR")]
    pub remote_dir: Option<String>,

    /// TOML config file; command-line values override it
    #[arg(short = 'c', long, value_name = "FILE", env = "FTPMONITOR_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Daemon")]
pub struct DaemonArgs {
    /// Do not fork; log lines also go to stderr (systemd, launchd, containers)
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// PID file [default: /var/run/ftpmonitor.pid as root, else $XDG_RUNTIME_DIR/ftpmonitor.pid]
    #[arg(long, value_name = "PATH", env = "FTPMONITOR_PID_FILE")]
    pub pid_file: Option<PathBuf>,
    /// Log file, `-` for stderr only [default: /var/log/ftpmonitor.log as root, else $XDG_STATE_HOME/ftpmonitor/ftpmonitor.log]
    #[arg(long, value_name = "PATH", env = "FTPMONITOR_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Working directory and sync journal [default: /var/lib/ftpmonitor as root, else $XDG_STATE_HOME/ftpmonitor]
    #[arg(long, value_name = "DIR", env = "FTPMONITOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// After the PID and log files exist, drop root privileges to USER
    #[arg(long, value_name = "USER", env = "FTPMONITOR_RUN_AS")]
    pub run_as: Option<String>,
    /// error, warn, info or debug [default: info]
    #[arg(long, value_name = "LEVEL", env = "FTPMONITOR_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (a port alone listens on loopback) [default: off]
    #[arg(long, value_name = "ADDR:PORT", env = "FTPMONITOR_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// text (`<timestamp> - <message>`) or json (one object a line: ts, level, msg, and path, bytes, ms or error
    /// where they apply) [default: text]
    #[arg(long, value_name = "FORMAT", env = "FTPMONITOR_LOG_FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// FTP login [default: anonymous, or the login ~/.netrc gives for HOST]
    #[arg(long, value_name = "NAME", env = "FTPMONITOR_USER")]
    pub user: Option<String>,
    /// File whose first line is the password
    #[arg(long, value_name = "FILE", env = "FTPMONITOR_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Explicit FTPS (AUTH TLS); the certificate is verified
    #[arg(long)]
    pub tls: bool,
    /// Extra CA certificate(s), PEM, trusted for --tls
    #[arg(long, value_name = "FILE", env = "FTPMONITOR_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Active mode (PORT) instead of passive (EPSV, falling back to PASV)
    #[arg(long)]
    pub active: bool,
    /// Connect, reply and data timeout: a server silent this long is given up and retried [default: 30s]
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_TIMEOUT", allow_hyphen_values = true)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Sync")]
pub struct SyncArgs {
    /// Quiet period before a changed file is uploaded: 5, 0.5, 500ms, 2s [default: 5]
    #[arg(long, value_name = "SECS", env = "FTPMONITOR_COOLDOWN", allow_hyphen_values = true)]
    pub cooldown: Option<String>,
    /// Watch and sync the top level only
    #[arg(long)]
    pub no_recursive: bool,
    /// Propagate local deletions and renames to the server
    #[arg(long)]
    pub delete: bool,
    /// Skip paths matching GLOB (relative to WATCH_DIR); repeatable
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Sync only paths matching GLOB (excludes still win); repeatable [default: everything]
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// FTP connections used for transfers [default: 4]
    #[arg(long, value_name = "N", env = "FTPMONITOR_PARALLEL", allow_hyphen_values = true)]
    pub parallel: Option<String>,
    /// Safety reconcile period, 0 turns it off [default: 1h]
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_RESCAN_INTERVAL", allow_hyphen_values = true)]
    pub rescan_interval: Option<String>,
    /// With --delete, hold a reconcile that would delete more than this share of synced files [default: 50]
    #[arg(long, value_name = "PERCENT", env = "FTPMONITOR_MAX_DELETE", allow_hyphen_values = true)]
    pub max_delete: Option<String>,
    /// Reconcile the whole tree once, then exit
    #[arg(long)]
    pub once: bool,
    /// Log what would be done, change nothing remotely
    #[arg(long)]
    pub dry_run: bool,
    /// Publish a copy of a file that never holds still (a growing log) even if it changed while it was read
    #[arg(long)]
    pub publish_changing: bool,
    /// Total upload rate over all connections: 500k, 10M, off, or a timetable "08:00,512k 18:00,10M 23:00,off" (local time) [default: off]
    #[arg(long, value_name = "RATE", env = "FTPMONITOR_BWLIMIT", allow_hyphen_values = true)]
    pub bwlimit: Option<String>,
    /// Watch by polling at this interval instead of inotify (NFS, SMB, FUSE: other machines' writes raise no events)
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_POLL", allow_hyphen_values = true)]
    pub poll: Option<String>,
    /// Delete each local file once its upload is verified (move mode; conflicts with --delete)
    #[arg(long)]
    pub remove_source: bool,
    /// Move each local file to DIR (same path relative to WATCH_DIR) once its upload is verified; DIR outside WATCH_DIR
    #[arg(long, value_name = "DIR", env = "FTPMONITOR_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Remote directory to store uploads in under temporary names, renamed into place from there (absolute, or relative to REMOTE_DIR) [default: beside the final name]
    #[arg(long, value_name = "REMOTE_PATH", env = "FTPMONITOR_TEMP_DIR")]
    pub temp_dir: Option<String>,
    /// Octal mode (644) set with SITE CHMOD on each uploaded file before it is renamed into place [default: the server's]
    #[arg(long, value_name = "MODE", env = "FTPMONITOR_CHMOD")]
    pub chmod: Option<String>,
    /// Octal mode (755) set with SITE CHMOD on each remote directory the tool creates [default: the server's]
    #[arg(long, value_name = "MODE", env = "FTPMONITOR_CHMOD_DIRS")]
    pub chmod_dirs: Option<String>,
    /// Order ready files are sent and published in, per directory: arrival, mtime, name, size [default: arrival, with no order kept between connections]
    #[arg(long, value_name = "ORDER", env = "FTPMONITOR_ORDER")]
    pub order: Option<String>,
    /// Publish files matching GLOB (*.done, *.ok) only after every other pending file of their directory; repeatable
    #[arg(long, value_name = "GLOB")]
    pub last: Vec<String>,
    /// Program run (no shell) after each verified upload; the file is in FTPMONITOR_PATH, _RELPATH, _REMOTE_PATH, _SIZE
    #[arg(long, value_name = "CMD", env = "FTPMONITOR_ON_UPLOAD", allow_hyphen_values = true)]
    pub on_upload: Option<String>,
    /// Program run (no shell) when a file's failure is first logged and when it is given up; FTPMONITOR_ERROR says why
    #[arg(long, value_name = "CMD", env = "FTPMONITOR_ON_FAILURE", allow_hyphen_values = true)]
    pub on_failure: Option<String>,
    /// Upload a file only once its mtime is DUR old (writers that pause without closing): 30s, 10m, off [default: off]
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_MIN_AGE", allow_hyphen_values = true)]
    pub min_age: Option<String>,
    /// Leave files whose mtime is older than DUR alone (the first sync of an old folder): 30d, off [default: off]
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_MAX_AGE", allow_hyphen_values = true)]
    pub max_age: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// PID file of the daemon to ask about
    #[arg(long, value_name = "PATH", env = "FTPMONITOR_PID_FILE")]
    pub pid_file: Option<PathBuf>,
    /// State directory of the daemon to ask about
    #[arg(long, value_name = "DIR", env = "FTPMONITOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if an operation has been pending longer than DUR (for Nagios, Icinga, ExecCondition): 15m, 1h
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub max_pending_age: Option<String>,
}

/// Which daemon `pause` and `resume` talk to.
#[derive(Debug, Clone, Args)]
pub struct ControlArgs {
    /// PID file of the daemon
    #[arg(long, value_name = "PATH", env = "FTPMONITOR_PID_FILE")]
    pub pid_file: Option<PathBuf>,
    /// State directory of the daemon
    #[arg(long, value_name = "DIR", env = "FTPMONITOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Prints a clap error as one line (help and version as they are) and
/// returns the exit code: 0 for help and version, 2 for bad usage.
pub fn report(e: &clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return std::process::ExitCode::SUCCESS;
    }
    let argv: Vec<String> = std::env::args().collect();
    eprintln!("ftpmonitor: error: {}", one_line(e, &argv, |k| std::env::var_os(k)));
    std::process::ExitCode::from(2)
}

/// A clap error as one line that names the option and the fix: clap's first
/// line, plus its tip if it has one, except where clap's words mislead.
fn one_line(e: &clap::Error, argv: &[String], env: impl Fn(&str) -> Option<std::ffi::OsString>) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    if let Some(a) = context(ContextKind::InvalidArg)
        && a.starts_with("--password")
        && !a.starts_with("--password-file")
    {
        return "there is no --password option (every user can read a command line): \
                use FTPMONITOR_PASSWORD, --password-file, the config file or ~/.netrc"
            .to_string();
    }
    if e.kind() == ErrorKind::ArgumentConflict
        && let Some(extra) = context(ContextKind::InvalidSubcommand)
    {
        // clap calls a fifth positional a subcommand.
        return format!(
            "unexpected argument {extra:?}: ftpmonitor takes four values, WATCH_DIR HOST PORT REMOTE_DIR, \
             after the options (check and status come first): quote a value that holds spaces"
        );
    }
    if e.kind() == ErrorKind::InvalidValue
        && context(ContextKind::InvalidValue) == Some("")
        && let Some(arg) = context(ContextKind::InvalidArg)
    {
        // An empty environment twin reads as an empty value of its option.
        let long = arg.split_whitespace().next().unwrap_or(arg);
        let twin = <Cli as clap::CommandFactory>::command()
            .get_arguments()
            .chain(<Cli as clap::CommandFactory>::command().get_subcommands().flat_map(clap::Command::get_arguments))
            .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == long))
            .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()));
        if let Some(var) = twin
            && env(&var).is_some_and(|v| v.is_empty())
            && !argv.iter().any(|a| a == long || a.starts_with(&format!("{long}=")))
        {
            return format!("{var} is set but empty: unset it, or give it a value");
        }
        return format!("{long} is empty: give it a value (see ftpmonitor --help)");
    }
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad usage").trim_start_matches("error: ");
    match lines.find(|l| l.starts_with("tip:")) {
        Some(tip) => format!("{first}; {tip} (see ftpmonitor --help)"),
        None => format!("{first} (see ftpmonitor --help)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn positionals_and_subcommands_coexist() {
        let cli = Cli::try_parse_from(["ftpmonitor", "/w", "h", "21", "/r"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.host.as_deref(), Some("h"));
        let cli = Cli::try_parse_from(["ftpmonitor", "check", "/w", "h", "21", "/r"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check(_))));
        let cli = Cli::try_parse_from(["ftpmonitor", "status", "--json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Status(StatusArgs { json: true, .. }))));
    }

    #[test]
    fn negative_numbers_reach_our_own_checks() {
        let cli = Cli::try_parse_from([
            "ftpmonitor",
            "--cooldown",
            "-1",
            "--timeout",
            "-1s",
            "--rescan-interval",
            "-5",
            "--max-delete",
            "-1",
            "--parallel",
            "-2",
            "/w",
            "h",
            "-21",
            "/r",
        ])
        .unwrap();
        let r = &cli.run;
        assert_eq!(r.sync.cooldown.as_deref(), Some("-1"));
        assert_eq!(r.server.timeout.as_deref(), Some("-1s"));
        assert_eq!(r.sync.rescan_interval.as_deref(), Some("-5"));
        assert_eq!(r.sync.max_delete.as_deref(), Some("-1"));
        assert_eq!(r.sync.parallel.as_deref(), Some("-2"));
        assert_eq!(r.port.as_deref(), Some("-21"));
        assert_eq!(r.remote_dir.as_deref(), Some("/r"));
        let cli = Cli::try_parse_from(["ftpmonitor", "check", "/w", "h", "-21", "/r"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check(RunArgs { port: Some(ref p), .. })) if p == "-21"));
    }

    fn error_line(argv: &[&str], env: &[(&str, &str)]) -> String {
        let e = Cli::try_parse_from(argv).unwrap_err();
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_string()).collect();
        one_line(&e, &argv, |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).into()))
    }

    #[test]
    fn clap_errors_become_one_line_that_names_the_fix() {
        let five = error_line(&["ftpmonitor", "/w", "h", "21", "/r", "extra"], &[]);
        assert!(five.contains("\"extra\"") && five.contains("four values"), "{five}");
        let similar = error_line(&["ftpmonitor", "--pid", "x"], &[]);
        assert!(similar.contains("'--pid'") && similar.contains("--pid-file"), "{similar}");
        let empty = error_line(&["ftpmonitor", "--state-dir", "", "/w"], &[]);
        assert!(empty.contains("--state-dir is empty"), "{empty}");
        let pw = error_line(&["ftpmonitor", "--password=s3cret", "/w"], &[]);
        assert!(pw.contains("no --password option") && !pw.contains("s3cret"), "{pw}");
        for line in [five, similar, empty, pw] {
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn there_is_no_password_option() {
        let err = Cli::try_parse_from(["ftpmonitor", "--password", "x", "/w", "h", "21", "/r"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
