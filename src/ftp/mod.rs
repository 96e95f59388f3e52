//! A thin FTP client over suppaftp: one logged-in session with the settings
//! every transfer needs, and the few operations the sync engine uses.
//!
//! What suppaftp leaves to us and this module does: timeouts on the greeting,
//! control and data connections (suppaftp's `connect_timeout` bounds only the
//! TCP connect); binary transfers (suppaftp starts in ASCII, which rewrites LF
//! to CRLF); EPSV with a fallback to PASV; reply codes it does not know (it
//! maps them to 0: we read the three digits); atomic uploads under a temporary
//! name; and remote directories created as needed, once. It does not retry:
//! that is the caller's policy.
//!
//! The parts: `connect` makes a logged-in [`Session`]; `tls` sets up
//! rustls and ends upload data connections without losing TLS tickets; `reply` reads
//! and parses raw control replies; `pipeline` decides which servers get
//! several commands at once and falls back when they answer out of step;
//! `listing` parses MLSD and LIST lines; `session` holds the operations
//! and `upload` the atomic upload. This file holds the types the rest of
//! the crate uses.

mod connect;
#[cfg(test)]
mod fuzz;
mod listing;
mod names;
mod pipeline;
mod reply;
mod send;
mod session;
mod tls;
mod upload;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use suppaftp::{FtpError, RustlsFtpStream};

use crate::localfs::Stamp;
use crate::relpath::Escaped;

pub use connect::Connector;
pub use names::{NAME_MAX, leftover_temps, staged_name, temp_name};

/// How an operation failed, as far as the caller's policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The server is unreachable, hung up or timed out: reconnect and retry.
    Connection,
    /// A data connection could not be opened or broke (425/426); the
    /// control connection is fine: retry at once.
    Data,
    /// The server refused the login (530): fatal at start-up.
    Login,
    /// TLS negotiation or certificate verification failed: fatal at start-up.
    Tls,
    /// A temporary refusal (4xx): retry this file later.
    Transient,
    /// A permanent refusal (5xx) for this file: retry rarely.
    Refused,
    /// The local file could not be read.
    Local,
    /// The local file could not be read in the middle of an upload: as
    /// [`Kind::Local`], but the session must be dropped.
    LocalBroken,
    /// The local file is gone.
    Vanished,
    /// The local file changed while it was uploaded; nothing was published.
    Changed,
    /// Shutdown asked us to stop mid-transfer; nothing was published.
    Aborted,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    /// The server's reply code, when there was one.
    pub code: Option<u16>,
    pub message: String,
    /// An upload broke off after it started: the temporary file may hold
    /// this version's first bytes, so the next attempt can resume.
    pub partial: Option<Stamp>,
    /// The server said it has no room for the file (a full disk, a quota):
    /// a partial copy must not stay there, or it keeps the disk full.
    pub no_room: bool,
}

impl Failure {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, code: None, message: message.into(), partial: None, no_room: false }
    }

    /// Whether the control connection can still be trusted afterwards.
    pub fn session_usable(&self) -> bool {
        !matches!(self.kind, Kind::Connection | Kind::Tls | Kind::Aborted | Kind::LocalBroken)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The reply code of a suppaftp error, read from the reply text because
/// suppaftp maps codes it does not know to 0.
fn reply_code(err: &FtpError) -> Option<u16> {
    match err {
        FtpError::UnexpectedResponse(r) => {
            let digits = r.body.get(..3)?;
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        _ => None,
    }
}

fn reply_text(err: &FtpError) -> String {
    match err {
        FtpError::UnexpectedResponse(r) => {
            let text = String::from_utf8_lossy(&r.body);
            let line = text.lines().next().unwrap_or_default().trim().to_string();
            // A server may quote what it got (the password too): masked here,
            // where its text becomes our message for the log, the journal and status.
            crate::logging::redact(&Escaped(&line).to_string())
        }
        FtpError::ConnectionError(e) => describe_io(e),
        other => other.to_string(),
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out: no answer within --timeout".to_string(),
        _ => e.to_string(),
    }
}

fn is_tls_error(err: &FtpError) -> bool {
    match err {
        FtpError::SecureError(_) => true,
        FtpError::ConnectionError(e) => e.get_ref().is_some_and(|inner| inner.is::<suppaftp::rustls::Error>()),
        _ => false,
    }
}

/// Classifies an error of a command about a file; `what` says what was tried.
fn classify(err: &FtpError, what: &str) -> Failure {
    let code = reply_code(err);
    let kind = if is_tls_error(err) {
        Kind::Tls
    } else {
        match code {
            // 421: the server closes the session.
            Some(421) => Kind::Connection,
            Some(425 | 426) => Kind::Data,
            Some(400..=499) => Kind::Transient,
            Some(500..=599) => Kind::Refused,
            Some(_) => Kind::Refused,
            None => Kind::Connection,
        }
    };
    let text = reply_text(err);
    let no_room = says_no_room(code, &text);
    Failure { kind, code, message: format!("{what}: {text}"), partial: None, no_room }
}

/// Whether a reply says the server has no room to store a file: 452 and 552
/// say so by their code; 450 and 451 ("local error") only in their text,
/// worded by the servers tested as "Error during write to file"
/// (pure-ftpd), "Failure writing to local file" (vsftpd), "No space left on
/// device" or, on a full tmpfs, "Input/output error" (proftpd).
fn says_no_room(code: Option<u16>, text: &str) -> bool {
    match code {
        Some(452 | 552) => true,
        Some(450 | 451) => {
            let t = text.to_ascii_lowercase();
            ["writ", "space", "quota", "full", "input/output"].iter().any(|w| t.contains(w))
        }
        _ => false,
    }
}

/// Remote directories known to exist, shared by all sessions of one job, so
/// that a directory is created once and two sessions never race on one MKD.
#[derive(Debug, Default)]
struct RemoteDirs(Mutex<HashSet<String>>);

/// How uploads are published, from `--temp-dir`, `--chmod` and
/// `--chmod-dirs`; shared by all sessions of one job.
#[derive(Debug, Default)]
pub(crate) struct Publishing {
    /// The staging directory's full remote path.
    pub temp_dir: Option<String>,
    pub chmod: Option<u32>,
    pub chmod_dirs: Option<u32>,
    /// Set once the server refused SITE CHMOD (logged then): not tried again.
    pub chmod_refused: AtomicBool,
    /// Set once SITE CHMOD worked (for `check`).
    pub chmod_worked: AtomicBool,
}

/// What the server said it supports (FEAT), read once per session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub mfmt: bool,
    pub size: bool,
    pub mlsd: bool,
    pub utf8: bool,
    /// `REST STREAM`: an upload can continue at an offset.
    pub rest: bool,
}

/// A successful upload.
#[derive(Debug, Clone, Copy)]
pub struct Uploaded {
    pub bytes: u64,
    /// The local file as it was read (it did not change meanwhile).
    pub stamp: Stamp,
    pub blake3: [u8; 32],
}

/// One entry of a remote directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub name: String,
    pub is_file: bool,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// Whether `modified` is exact UTC to the second (MLSD), not a LIST
    /// time: whole minutes, in whatever time zone the server renders.
    pub exact_time: bool,
}

/// One logged-in control connection.
pub struct Session {
    ftp: RustlsFtpStream,
    epsv: bool,
    remote_dir: String,
    dirs: Arc<RemoteDirs>,
    rename_over_refused: bool,
    features: Features,
    /// Remote directories this session created since the caller last took them.
    created: Vec<String>,
    /// Whether the session uses TLS.
    tls: bool,
    /// The job's "TLS 1.2 only" switch (see [`Connector`]).
    tls12_only: Arc<std::sync::atomic::AtomicBool>,
    tls12_broken: Arc<std::sync::atomic::AtomicBool>,
    /// Whether this session was made with TLS 1.2 only.
    tls12: bool,
    /// Whether commands are sent together (see [`Session::pipeline`]).
    pipelining: bool,
    /// The job's "pipelining failed" switch (see [`Connector`]).
    pipeline_off: Arc<AtomicBool>,
    /// A passive port the server opened for the next upload, asked for
    /// together with the previous upload's rename, and when. Dropped by any
    /// other data command (the server closes it then, and another session
    /// may get the same port number) and after [`READY_PORT_TTL`].
    ready_port: Option<(SocketAddr, std::time::Instant)>,
    /// The control connection's peer: EPSV's data connections go there.
    peer_ip: Option<std::net::IpAddr>,
    /// The job's "kept ports do not work" switch (see [`Connector`]).
    kept_ports_off: Arc<AtomicBool>,
    /// How many jobs wait for a worker (see [`Session::expect_more_uploads`]).
    jobs_waiting: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// A connection-level error was ignored: drop the session after this job.
    broken: bool,
    /// The job's "no dot in temporary names" switch (see [`Connector`]).
    visible_temp: Arc<std::sync::atomic::AtomicBool>,
    /// `--temp-dir`, `--chmod`, `--chmod-dirs` (see [`Publishing`]).
    publishing: Arc<Publishing>,
    timeout: Duration,
    /// `--bwlimit` (see [`crate::bwlimit`]).
    limiter: crate::bwlimit::Limiter,
    /// Set by the passive stream builder when EPSV (or PASV) was answered
    /// and suppaftp connects: a 500-502 before that is the refusal of EPSV
    /// itself, one after it the data command's (see `Session::with_data`).
    data_opened: Arc<AtomicBool>,
    /// The job's "EPSV refused on IPv6 was logged" switch (see [`Connector`]).
    no_pasv_logged: Arc<AtomicBool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_read_from_the_code_or_from_the_words_of_a_local_error() {
        // what pure-ftpd, vsftpd and proftpd answer when the disk fills up (tests/faults.rs)
        for (code, text) in [
            (451, "451-Error during write to file"),
            (451, "451 Failure writing to local file."),
            (451, "451 Transfer aborted. Input/output error"),
            (452, "452 Transfer aborted. No space left on device"),
            (552, "552 Quota exceeded"),
        ] {
            assert!(says_no_room(Some(code), text), "{text}");
        }
        // a broken data connection, or another refusal, keeps the partial copy
        for (code, text) in [
            (451, "451-Error during read from data connection"),
            (426, "426 Failure reading network stream."),
            (550, "550 Permission denied"),
        ] {
            assert!(!says_no_room(Some(code), text), "{text}");
        }
    }
}
