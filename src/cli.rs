//! Command-line syntax: what the user typed, nothing more.
//!
//! Values stay close to the text they came from (strings, options) so that
//! `config.rs` can validate them once, merge them with a `--config` file and
//! turn them into typed values with error messages that name the fix. clap's
//! own errors exit with code 2, which is also our code for bad usage.

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
    #[arg(value_name = "PORT")]
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
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_TIMEOUT")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Sync")]
pub struct SyncArgs {
    /// Quiet period before a changed file is uploaded: 5, 0.5, 500ms, 2s [default: 5]
    #[arg(long, value_name = "SECS", env = "FTPMONITOR_COOLDOWN")]
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
    /// FTP connections used for transfers [default: 4]
    #[arg(long, value_name = "N", env = "FTPMONITOR_PARALLEL")]
    pub parallel: Option<String>,
    /// Safety reconcile period, 0 turns it off [default: 1h]
    #[arg(long, value_name = "DUR", env = "FTPMONITOR_RESCAN_INTERVAL")]
    pub rescan_interval: Option<String>,
    /// With --delete, hold a reconcile that would delete more than this share of synced files [default: 50]
    #[arg(long, value_name = "PERCENT", env = "FTPMONITOR_MAX_DELETE")]
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
}

/// Prints a clap error as one line (help and version as they are) and
/// returns the exit code: 0 for help and version, 2 for bad usage.
pub fn report(e: &clap::Error) -> std::process::ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return std::process::ExitCode::SUCCESS;
    }
    let password = matches!(
        e.get(ContextKind::InvalidArg),
        Some(ContextValue::String(a)) if a.starts_with("--password") && !a.starts_with("--password-file")
    );
    if password {
        eprintln!(
            "ftpmonitor: error: there is no --password option (every user can read a command line): \
             use FTPMONITOR_PASSWORD, --password-file, the config file or ~/.netrc"
        );
    } else {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("bad usage").trim_start_matches("error: ");
        eprintln!("ftpmonitor: error: {first} (see ftpmonitor --help)");
    }
    std::process::ExitCode::from(2)
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
    fn there_is_no_password_option() {
        let err = Cli::try_parse_from(["ftpmonitor", "--password", "x", "/w", "h", "21", "/r"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
