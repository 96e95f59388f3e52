//! Every string and number the tests expect from the binary, in one place.
//!
//! Exit codes and option names are fixed by SPEC.md; the log phrases are the contract
//! agreed with the author of `src/` and matched as substrings.

/// Clean exit, including a shutdown by signal.
pub const EXIT_OK: i32 = 0;
/// Runtime failure: login refused, already running.
pub const EXIT_RUNTIME: i32 = 1;
/// Bad usage or configuration.
pub const EXIT_USAGE: i32 = 2;

/// Logged once the daemon has logged in (or started retrying) and watches the tree.
pub const READY: &str = "ready: watching";
/// Logged on a graceful shutdown.
pub const STOPPED: &str = "stopped";
/// Logged when SIGHUP reopened the log (and reloaded the config).
pub const RELOADED: &str = "reloaded";
/// Logged, with the escaped name, for a symlink or a name FTP cannot carry.
pub const SKIPPING: &str = "skipping";

/// `ftpmonitor status`: the daemon does not run (LSB).
pub const EXIT_NOT_RUNNING: i32 = 3;

/// The ready line of a `--once` run.
pub const READY_ONCE: &str = "ready: syncing";
/// Logged when a `--once` run synced everything (exit 0).
pub const ONCE_DONE: &str = "done:";
/// Logged (and on stderr in the foreground) when a `--once` run gives up on some files (exit 1).
pub const ONCE_FAILED: &str = "could not be synced";
/// Logged at debug level when a file's mtime changed but its bytes did not.
pub const SAME_CONTENT: &str = "same content, new mtime";
/// Logged when the watch directory vanished or turned empty: no delete reaches the server.
pub const HOLDING_ALL_DELETES: &str = "holding all deletes";
/// Logged when a reconcile would delete more than `--max-delete` percent of the synced files.
pub const HOLDING_THESE_DELETES: &str = "holding these deletes";
/// Logged when the server cannot be reached (global back-off).
pub const SERVER_UNAVAILABLE: &str = "server unavailable";
/// Logged when the server answers again after an outage.
pub const SERVER_BACK: &str = "server reachable again";
/// Logged when a server's reply has a line longer than the client takes (16 KiB).
pub const REPLY_LINE_TOO_LONG: &str = "the server sent a reply line longer than 16 KiB";
/// Logged when a server's reply is longer than the client takes (256 KiB).
pub const REPLY_TOO_LONG: &str = "the server sent a reply longer than 256 KiB";
/// Logged when a server's listing has more lines than the client takes.
pub const LISTING_TOO_LONG: &str = "the server sent a listing with more than 500000 lines";
/// The suffix of the temporary name a file is stored under: `.NAME.ftpmonitor-part`.
pub const TEMP_SUFFIX: &str = ".ftpmonitor-part";

/// Logged by `--dry-run` instead of the upload of `rel`.
pub fn would_upload(rel: &str) -> String {
    format!("dry run: would upload {rel}")
}

/// Logged after a rename was propagated (`--delete`) as one RNFR/RNTO.
pub fn renamed(from: &str, to: &str) -> String {
    format!("renamed {from} to {to} on the server")
}

/// Logged after a local delete was propagated (`--delete`).
pub fn deleted(rel: &str) -> String {
    format!("deleted {rel} on the server")
}

/// Names in the TOML config file (`--config`).
pub mod config_keys {
    pub const WATCH_DIR: &str = "watch_dir";
    pub const HOST: &str = "host";
    pub const PORT: &str = "port";
    pub const REMOTE_DIR: &str = "remote_dir";
}

/// The phrase logged after `rel` (relative to WATCH_DIR, `/`-separated, escaped) arrived.
pub fn uploaded(rel: &str) -> String {
    format!("uploaded {rel}")
}

/// Whether `line` reports the upload of exactly `rel` (not of `rel.bak` or `relx`).
pub fn is_upload_line(line: &str, rel: &str) -> bool {
    let needle = uploaded(rel);
    line.match_indices(&needle)
        .any(|(at, _)| line[at + needle.len()..].chars().next().is_none_or(|c| c.is_whitespace() || ",;:)".contains(c)))
}

/// What stderr says when another live process holds the PID file.
pub fn already_running(pid: u32) -> String {
    format!("already running (pid {pid})")
}

/// Whether a message on stderr tells the operator that the server refused the login.
pub fn is_login_refused(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("login") && ["refused", "rejected", "denied", "530"].iter().any(|w| s.contains(w))
}

/// How a file name shows up in the log: escaped like `str::escape_debug`, so a name with a
/// newline cannot forge a log line.
pub fn escaped(name: &str) -> String {
    name.escape_debug().to_string()
}

/// Whether `line` starts with `YYYY-MM-DD HH:MM:SS - `.
pub fn has_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    if b.len() < 22 {
        return false;
    }
    b[..22].iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 | 19 | 21 => c == b' ',
        13 | 16 => c == b':',
        20 => c == b'-',
        _ => c.is_ascii_digit(),
    })
}
