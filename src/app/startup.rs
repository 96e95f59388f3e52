//! Start-up in the daemon's order (SPEC §2): validate, make ready and check
//! every local file the daemon keeps, take the PID file, log in once while
//! errors still reach the terminal, fork, write the PID, drop privileges,
//! and only then start the loop's threads ([`App::start`]).

use std::path::Path;
use std::process::ExitCode;

use log::{debug, error, info, warn};

use super::App;
use crate::cli::RunArgs;
use crate::config::Config;
use crate::daemon::{self, Forked, PidFile, Readiness};
use crate::error::{Error, Result};
use crate::ftp::{Connector, Kind, Session};
use crate::journal::Journal;
use crate::logging;
use crate::relpath::EscapedPath;

pub(super) fn run_daemon(args: RunArgs) -> Result<ExitCode> {
    let cfg = Config::from_args(&args)?;
    logging::hide(cfg.password.expose());
    logging::set_level(cfg.log_level);
    logging::set_format(cfg.log_format);
    prepare_local_files(&cfg)?;
    if let Some(log) = &cfg.log_file {
        // From here on warnings (an unreachable server at start-up) reach the
        // log file as well as the terminal.
        logging::redirect(Some(log), true)
            .map_err(|e| Error::usage(format!("{}: {}", cfg.origins.log_file, logging::describe(log, &e))))?;
    }
    let connector = Connector::new(&cfg).map_err(|f| Error::usage(f.message))?;
    // Taken before the login: a second instance says "already running" at
    // once, without a connection to the server (or a wait for a silent one).
    let mut pid_file = PidFile::acquire(&cfg.pid_file)?;
    // `--once` logs in only once it has a job to hand out (see
    // `App::dispatch`): a run that finds nothing changed opens no connection.
    let session = if cfg.once {
        None
    } else {
        match preflight_login(&cfg, &connector) {
            Ok(session) => session,
            Err(e) => {
                // A refused login leaves no PID file behind.
                pid_file.remove();
                return Err(e);
            }
        }
    };
    let mut readiness = if cfg.foreground {
        std::env::set_current_dir(&cfg.state_dir).map_err(|e| {
            Error::runtime(format!("cannot enter state directory {}: {e}", EscapedPath(&cfg.state_dir)))
        })?;
        Readiness::none()
    } else {
        let hint = cfg.log_file.as_deref().map_or_else(|| "the log".to_string(), |p| EscapedPath(p).to_string());
        match daemon::daemonize(&cfg.state_dir, &hint)? {
            Forked::Launcher(code) => return Ok(code),
            Forked::Daemon(r) => r,
        }
    };
    // From here on we are the daemon: errors go to the log and the launcher.
    let result = (|| -> Result<ExitCode> {
        pid_file
            .write_pid()
            .map_err(|e| Error::runtime(format!("cannot write PID file {}: {e}", EscapedPath(pid_file.path()))))?;
        logging::redirect(cfg.log_file.as_deref(), cfg.foreground).map_err(|e| {
            Error::runtime(format!("cannot open log file: {e}: fix --log-file or its directory's permissions"))
        })?;
        #[cfg(unix)]
        if let Some(user) = &cfg.run_as {
            // The PID file stays root's: the user must not be able to make
            // it name another process (logrotate signals what it names).
            let mut owned: Vec<std::path::PathBuf> = vec![cfg.state_dir.clone()];
            owned.extend(cfg.log_file.clone());
            let journal = Journal::path_in(&cfg.state_dir);
            for suffix in ["", "-wal", "-shm"] {
                let p = std::path::PathBuf::from(format!("{}{suffix}", journal.display()));
                if p.exists() {
                    owned.push(p);
                }
            }
            let owned: Vec<&Path> = owned.iter().map(std::path::PathBuf::as_path).collect();
            daemon::drop_privileges(user, &owned)?;
            info!("running as user {user}");
        }
        let mut app = App::start(cfg, args, connector, session)?;
        readiness.ready();
        crate::systemd::ready(&format!("watching {}", EscapedPath(&app.cfg.watch_dir)));
        Ok(app.run())
    })();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            error!("error: {e}");
            readiness.failed(&logging::redact(&e.to_string()));
            e.exit_code()
        }
    };
    pid_file.remove();
    Ok(code)
}

/// Makes ready, and checks, every local file the daemon will keep, before
/// the pre-flight login: a wrong path is a usage error (exit 2) on the
/// terminal, and no server sees a connection for a run that cannot start.
/// The PID file itself is only looked at here (not created): it is taken
/// right before the login, and removed again if the login is refused.
fn prepare_local_files(cfg: &Config) -> Result<()> {
    create_state_dir(&cfg.state_dir, &cfg.origins.state_dir)?;
    protect_journal(&cfg.state_dir)?;
    check_pid_file_place(&cfg.pid_file, &cfg.origins.pid_file)?;
    if let Some(log) = &cfg.log_file {
        logging::probe(log).map_err(|e| Error::usage(format!("{}: {e}", cfg.origins.log_file)))?;
    }
    Ok(())
}

/// The state directory: created owner-only (it holds the journal of every
/// file name synced), never a symbolic link (the journal must not be written
/// wherever a planted link points).
fn create_state_dir(dir: &Path, origin: &crate::config::Origin) -> Result<()> {
    let shown = EscapedPath(dir);
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::usage(format!(
            "{origin}: state directory {shown} is a symbolic link, which ftpmonitor does not follow: \
             give the directory it points to"
        ))),
        Ok(m) if !m.is_dir() => Err(Error::usage(format!(
            "{origin}: state directory {shown} is not a directory: remove the file or choose another --state-dir"
        ))),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir).map_err(|e| {
                Error::usage(format!(
                    "{origin}: cannot create state directory {shown}: {}: create it, or choose another --state-dir",
                    why_not_created(dir, &e)
                ))
            })
        }
        Err(e) => Err(Error::usage(format!(
            "{origin}: cannot use state directory {shown}: {e}: fix its permissions or choose another --state-dir"
        ))),
    }
}

/// The journal's files are never symbolic links, and are owner-only even
/// when an older version (or a restore) left them readable by others.
fn protect_journal(state_dir: &Path) -> Result<()> {
    let main = Journal::path_in(state_dir);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", main.display()));
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        let shown = EscapedPath(&path);
        if meta.file_type().is_symlink() {
            return Err(Error::usage(format!(
                "journal file {shown} is a symbolic link, which ftpmonitor never writes through: remove it"
            )));
        }
        if !meta.is_file() {
            return Err(Error::usage(format!(
                "journal file {shown} is not a regular file: remove it or choose another --state-dir"
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                    Error::usage(format!("cannot make journal file {shown} owner-only: {e}: fix its owner"))
                })?;
            }
        }
    }
    Ok(())
}

/// The PID file's directory exists (or is created) and is a directory; the
/// file, if there, is a regular file and not a symbolic link. Opening and
/// locking it happen in `PidFile::acquire`, which checks all this again.
fn check_pid_file_place(path: &Path, origin: &crate::config::Origin) -> Result<()> {
    let shown = EscapedPath(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::usage(format!(
                    "{origin}: PID file {shown} cannot be created: {} is not a directory: choose another --pid-file",
                    EscapedPath(dir)
                )));
            }
            Err(_) => std::fs::create_dir_all(dir).map_err(|e| {
                Error::usage(format!(
                    "{origin}: cannot create the directory of PID file {shown}: {}: choose another --pid-file",
                    why_not_created(dir, &e)
                ))
            })?,
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::usage(format!(
            "{origin}: PID file {shown} is a symbolic link, which ftpmonitor never writes through: remove it"
        ))),
        Ok(m) if !m.is_file() => Err(Error::usage(format!(
            "{origin}: PID file {shown} is not a regular file: remove it or choose another --pid-file"
        ))),
        _ => Ok(()),
    }
}

/// Why `create_dir_all(dir)` failed, in words: "File exists" for a path
/// through a plain file says little; name the file instead.
fn why_not_created(dir: &Path, e: &std::io::Error) -> String {
    let blocker = dir.ancestors().skip(1).find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
    match blocker {
        Some(file) => format!("{} is not a directory", EscapedPath(file)),
        None if dir.is_file() => format!("{} is a file", EscapedPath(dir)),
        None => e.to_string(),
    }
}

/// Logs in once while errors still reach the terminal: a refused login or a
/// TLS failure stops here; an unreachable server only warns.
/// The session is kept for the first transfer worker.
pub(super) fn preflight_login(cfg: &Config, connector: &Connector) -> Result<Option<Session>> {
    match connector.connect() {
        Ok(session) => {
            if session.pipelines() {
                info!(
                    "logged in to {}; the server reads commands in order, so an upload's follow-up commands \
                     are sent together",
                    cfg.target()
                );
            } else {
                debug!("logged in to {}", cfg.target());
            }
            Ok(Some(session))
        }
        Err(f) if f.kind == Kind::Login => Err(Error::runtime(format!(
            "login refused by {}:{} for user {:?} ({}): check --user and the password \
             (FTPMONITOR_PASSWORD, --password-file, the config file or ~/.netrc)",
            cfg.host, cfg.port, cfg.user, f.message
        ))),
        Err(f) if f.kind == Kind::Tls => Err(Error::runtime(format!(
            "TLS with {} failed: {}: check the server's certificate and host name, or give its CA with --ca-file",
            cfg.host,
            f.message.strip_prefix(&format!("TLS with {}: ", cfg.host)).unwrap_or(&f.message)
        ))),
        Err(f) => {
            warn!("warning: {f}; starting anyway and retrying until the server answers");
            Ok(None)
        }
    }
}
