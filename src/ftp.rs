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

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use suppaftp::rustls::ClientConfig;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, RustlsConnector, RustlsFtpStream, Status};

use crate::config::{ASIDE_SUFFIX, Config, TEMP_SUFFIX};
use crate::relpath::{Escaped, RelPath, join_remote};

/// Connect, greeting, control-reply and data timeout, unless `--timeout` says.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a passive port asked for ahead of an upload is used (see
/// `Session::ready_port`): a server may close an unused one after a while.
const READY_PORT_TTL: Duration = Duration::from_secs(2);

/// The connect timeout for such a port (see `Session::store_raw`).
const KEPT_PORT_CONNECT: Duration = Duration::from_secs(3);

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
}

impl Failure {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, code: None, message: message.into(), partial: None }
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
            Escaped(&line).to_string()
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
    Failure { kind, code, message: format!("{what}: {}", reply_text(err)), partial: None }
}

/// How to reach and log in to the server; shared by all sessions.
#[derive(Clone)]
pub struct Connector {
    host: String,
    port: u16,
    user: String,
    password: crate::config::Secret,
    active: bool,
    /// TLS 1.3 and 1.2, and TLS 1.2 only (see [`Connector::tls12_only`]).
    tls: Option<(Arc<ClientConfig>, Arc<ClientConfig>)>,
    /// Set once a server refused the data connections of a TLS 1.3 session:
    /// proftpd, for one, does not count a TLS 1.3 resumption as reusing the
    /// control connection's session. Shared by all sessions of the job.
    tls12_only: Arc<std::sync::atomic::AtomicBool>,
    /// Connect, greeting, reply and data timeout.
    timeout: Duration,
    /// Set once a TLS 1.2 handshake failed: the switch above is never made again.
    tls12_broken: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the server refused a temporary name starting with a dot.
    visible_temp: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the server answered pipelined commands out of step: no
    /// session of this job pipelines again.
    pipeline_off: Arc<AtomicBool>,
    /// Set once a passive port asked for ahead of an upload could not be
    /// reached (see `Session::ready_port`).
    kept_ports_off: Arc<AtomicBool>,
    remote_dir: String,
    dirs: Arc<RemoteDirs>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub fn new(cfg: &Config) -> Result<Self, Failure> {
        let tls = if cfg.tls {
            Some((tls_config(cfg.ca_file.as_deref(), false)?, tls_config(cfg.ca_file.as_deref(), true)?))
        } else {
            None
        };
        Ok(Self {
            host: cfg.host.clone(),
            port: cfg.port,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            active: cfg.active,
            tls,
            remote_dir: cfg.remote_dir.clone(),
            dirs: Arc::new(RemoteDirs::default()),
            tls12_only: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            tls12_broken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            visible_temp: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            pipeline_off: Arc::new(AtomicBool::new(false)),
            kept_ports_off: Arc::new(AtomicBool::new(false)),
            timeout: cfg.timeout,
        })
    }

    /// Connects and logs in.
    pub fn connect(&self) -> Result<Session, Failure> {
        let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(self.host.as_str(), self.port))
            .map_err(|e| Failure::new(Kind::Connection, format!("cannot resolve {}: {e}", self.host)))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, self.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(tcp) = tcp else {
            let why = last.map_or_else(|| "no address".to_string(), |e| describe_io(&e));
            return Err(Failure::new(
                Kind::Connection,
                format!("cannot connect to {}:{}: {why}", self.host, self.port),
            ));
        };
        let conn_err = |e: io::Error| Failure::new(Kind::Connection, format!("connection to {}: {e}", self.host));
        tcp.set_read_timeout(Some(self.timeout)).map_err(conn_err)?;
        tcp.set_write_timeout(Some(self.timeout)).map_err(conn_err)?;
        tcp.set_nodelay(true).map_err(conn_err)?;

        let greeting = |e: FtpError| {
            let mut f = classify(&e, &format!("no FTP greeting from {}:{}", self.host, self.port));
            if f.kind != Kind::Tls {
                f.kind = Kind::Connection;
            }
            f
        };
        let timeout = self.timeout;
        let mut ftp =
            RustlsFtpStream::connect_with_stream(tcp).map_err(greeting)?.passive_stream_builder(move |addr| {
                let s = TcpStream::connect_timeout(&addr, timeout).map_err(FtpError::ConnectionError)?;
                s.set_read_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
                s.set_write_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;

                Ok(s)
            });
        let mut tickets = None;
        let tls12 = self.tls12_only.load(Ordering::Relaxed);
        if let Some((any, only12)) = &self.tls {
            let tls = if tls12 { only12 } else { any };
            // Each control connection gets its own session store: its data
            // connections must resume *its* TLS session (vsftpd's
            // require_ssl_reuse, proftpd, FileZilla Server), not another's.
            let store = Arc::new(SessionStore::default());
            let mut config = (**tls).clone();
            config.resumption = suppaftp::rustls::client::Resumption::store(store.clone());
            tickets = Some(store);
            ftp = ftp.into_secure(RustlsConnector::from(Arc::new(config)), &self.host).map_err(|e| {
                let mut f = classify(&e, &format!("TLS with {}", self.host));
                if is_tls_error(&e) || f.code.is_some() {
                    f.kind = Kind::Tls;
                }
                if tls12 && f.kind == Kind::Tls {
                    // The server does not speak TLS 1.2 with us (stock vsftpd
                    // offers only 3DES there): back to TLS 1.3, for good.
                    log::info!("{f}; TLS 1.2 does not work with this server, staying with TLS 1.3");
                    self.tls12_broken.store(true, Ordering::Relaxed);
                    self.tls12_only.store(false, Ordering::Relaxed);
                    f.kind = Kind::Connection;
                }
                f
            })?;
        }
        if let Err(e) = ftp.login(self.user.as_str(), self.password.expose()) {
            let mut f = classify(&e, &format!("login as {}", self.user));
            if f.code == Some(530) {
                f.kind = Kind::Login;
            }
            return Err(f);
        }
        ftp.transfer_type(FileType::Binary).map_err(|e| classify(&e, "TYPE I (binary mode)"))?;
        if self.active {
            ftp = ftp.active_mode(self.timeout);
        } else {
            ftp.set_mode(Mode::ExtendedPassive);
        }
        let features = Features::read(&mut ftp);
        if features.utf8 {
            let _ = ftp.opts("UTF8", Some("ON"));
        }
        // Pipelining writes to the control socket itself: plain text only.
        let pipelining = tickets.is_none()
            && !self.pipeline_off.load(Ordering::Relaxed)
            && ftp.get_welcome_msg().is_some_and(takes_pipelines);
        Ok(Session {
            ftp,
            epsv: !self.active,
            remote_dir: self.remote_dir.clone(),
            dirs: Arc::clone(&self.dirs),
            rename_over_refused: false,
            features,
            created: Vec::new(),
            tickets,
            tickets_on_data: None,
            tls12_only: Arc::clone(&self.tls12_only),
            tls12_broken: Arc::clone(&self.tls12_broken),
            tls12,
            pipelining,
            pipeline_off: Arc::clone(&self.pipeline_off),
            kept_ports_off: Arc::clone(&self.kept_ports_off),
            ready_port: None,
            jobs_waiting: None,
            broken: false,
            visible_temp: Arc::clone(&self.visible_temp),
            timeout: self.timeout,
        })
    }
}

/// Builds the rustls configuration: system roots plus `--ca-file`, ring only
/// (the test server's dependencies may enable a second provider).
fn tls_config(ca_file: Option<&Path>, tls12_only: bool) -> Result<Arc<ClientConfig>, Failure> {
    use suppaftp::rustls::RootCertStore;
    use suppaftp::rustls::pki_types::CertificateDer;
    use suppaftp::rustls::pki_types::pem::PemObject;

    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| Failure::new(Kind::Tls, format!("cannot read CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Failure::new(Kind::Tls, format!("CA file {} holds no certificate", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| Failure::new(Kind::Tls, format!("CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(suppaftp::rustls::crypto::ring::default_provider());
    let versions: &[&suppaftp::rustls::SupportedProtocolVersion] =
        if tls12_only { &[&suppaftp::rustls::version::TLS12] } else { suppaftp::rustls::DEFAULT_VERSIONS };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Failure::new(Kind::Tls, format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Remote directories known to exist, shared by all sessions of one job, so
/// that a directory is created once and two sessions never race on one MKD.
#[derive(Debug, Default)]
struct RemoteDirs(Mutex<HashSet<String>>);

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

impl Features {
    fn read(ftp: &mut RustlsFtpStream) -> Self {
        match ftp.feat() {
            Ok(map) => {
                let has = |k: &str| map.keys().any(|f| f.eq_ignore_ascii_case(k));
                Self {
                    mfmt: has("MFMT"),
                    size: has("SIZE"),
                    mlsd: has("MLST") || has("MLSD"),
                    utf8: has("UTF8"),
                    rest: map.iter().any(|(k, v)| {
                        k.eq_ignore_ascii_case("REST") && v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("STREAM"))
                    }),
                }
            }
            // No FEAT (RFC 959-only server): assume nothing.
            Err(_) => Self::default(),
        }
    }
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
    /// With TLS: this connection's session store.
    tickets: Option<Arc<SessionStore>>,
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
    /// The job's "kept ports do not work" switch (see [`Connector`]).
    kept_ports_off: Arc<AtomicBool>,
    /// How many jobs wait for a worker (see [`Session::expect_more_uploads`]).
    jobs_waiting: Option<Arc<std::sync::atomic::AtomicUsize>>,
    /// A connection-level error was ignored: drop the session after this job.
    broken: bool,
    /// The job's "no dot in temporary names" switch (see [`Connector`]).
    visible_temp: Arc<std::sync::atomic::AtomicBool>,
    timeout: Duration,
    /// Whether the server sends a TLS 1.3 ticket on upload data connections
    /// (`None`: not known yet).
    tickets_on_data: Option<bool>,
}

/// A TLS session store for one control connection and its data connections,
/// counting the TLS 1.3 tickets it receives.
///
/// A TLS 1.3 ticket resumes one connection only, and the server hands out a
/// new one on every resumed data connection. Listings read theirs; an upload
/// only writes, so after it [`absorb_tickets`] reads the ticket the server
/// sent, or the data connections would run out of tickets after two uploads
/// and servers that require session reuse would refuse the third.
#[derive(Debug)]
struct SessionStore {
    inner: suppaftp::rustls::client::ClientSessionMemoryCache,
    tls13_tickets: std::sync::atomic::AtomicUsize,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self {
            inner: suppaftp::rustls::client::ClientSessionMemoryCache::new(8),
            tls13_tickets: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl suppaftp::rustls::client::ClientSessionStore for SessionStore {
    fn set_kx_hint(
        &self,
        server_name: suppaftp::rustls::pki_types::ServerName<'static>,
        group: suppaftp::rustls::NamedGroup,
    ) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(
        &self,
        server_name: &suppaftp::rustls::pki_types::ServerName<'_>,
    ) -> Option<suppaftp::rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: suppaftp::rustls::pki_types::ServerName<'static>,
        value: suppaftp::rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &suppaftp::rustls::pki_types::ServerName<'_>,
    ) -> Option<suppaftp::rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &suppaftp::rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: suppaftp::rustls::pki_types::ServerName<'static>,
        value: suppaftp::rustls::client::Tls13ClientSessionValue,
    ) {
        self.tls13_tickets.fetch_add(1, Ordering::Relaxed);
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &suppaftp::rustls::pki_types::ServerName<'static>,
    ) -> Option<suppaftp::rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// After an upload over TLS 1.3, reads what the server sent on the data
/// connection (its new session ticket) before the connection is closed.
/// Waits up to `wait` for it; returns whether a ticket arrived.
fn absorb_tickets(
    stream: &mut suppaftp::rustls::StreamOwned<suppaftp::rustls::ClientConnection, TcpStream>,
    store: &SessionStore,
    wait: Duration,
    restore: Duration,
) -> bool {
    let before = store.tls13_tickets.load(Ordering::Relaxed);
    // Flushing completes the handshake, which an empty upload has not
    // started yet: only then is the protocol version known.
    let _ = std::io::Write::flush(stream);
    if stream.conn.protocol_version() != Some(suppaftp::rustls::ProtocolVersion::TLSv1_3) {
        return false;
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        if store.tls13_tickets.load(Ordering::Relaxed) > before {
            break;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).is_err() {
            break;
        }
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if stream.conn.process_new_packets().is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.sock.set_read_timeout(Some(restore));
    store.tls13_tickets.load(Ordering::Relaxed) > before
}

/// A file's identity for "did it change while we read it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self { len: meta.len(), mtime: meta.modified().ok() }
    }
}

/// Reads a file for upload, fingerprinting what it reads, and stops when
/// shutdown asks for it.
struct Abortable<'a, R> {
    inner: R,
    abort: &'a AtomicBool,
    hasher: blake3::Hasher,
    /// Reading the local file failed (not the server's fault).
    local_error: bool,
}

impl<R: Read> Read for Abortable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(io::Error::other("upload aborted for shutdown"));
        }
        let n = self.inner.read(buf).inspect_err(|_| self.local_error = true)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The temporary name an upload of `name` into `dir` uses.
/// Hidden (`.NAME.ftpmonitor-part`) unless the server refuses names that
/// start with a dot.
pub fn temp_name(dir: &str, name: &str, visible: bool) -> String {
    if visible {
        return join_remote(dir, &format!("{name}{TEMP_SUFFIX}"));
    }
    join_remote(dir, &format!(".{name}{TEMP_SUFFIX}"))
}

/// `YYYYMMDDHHMMSS` in UTC, for MFMT.
fn mfmt_time(t: SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dt = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Parses listing lines (MLSD, or Unix / Windows LIST) into entries; lines
/// that parse as none of them, and `.`/`..`, are left out.
///
/// The format follows the command: suppaftp's MLSD parser accepts any line
/// without `; ` (as a name), so LIST lines must never go through it.
pub fn parse_listing(lines: &[String], mlsd: bool) -> Vec<RemoteEntry> {
    use suppaftp::list::ListParser;
    lines
        .iter()
        .filter_map(|line| {
            let f = if mlsd {
                ListParser::parse_mlsd(line).ok()?
            } else {
                ListParser::parse_posix(line).or_else(|_| ListParser::parse_dos(line)).ok()?
            };
            let name = f.name().to_string();
            if name == "." || name == ".." || name.is_empty() {
                return None;
            }
            Some(RemoteEntry {
                name,
                is_file: f.is_file(),
                size: f.size() as u64,
                modified: Some(f.modified()),
                exact_time: mlsd,
            })
        })
        .collect()
}

/// Whether the server that sent `greeting` is one known to read commands
/// strictly one after the other, so that several can be sent at once:
/// pure-ftpd, vsftpd and ProFTPD, each tested by the interop suite. Others
/// get one command per round trip; libunftp, for one, runs RNFR in a task
/// of its own and can answer a pipelined RNTO before it.
fn takes_pipelines(greeting: &str) -> bool {
    ["Pure-FTPd", "vsFTPd", "ProFTPD"].iter().any(|name| greeting.contains(name))
}

/// One reply read by [`Session::pipeline`]: its code and its text as the
/// server sent it (every line, CRLF-separated).
#[derive(Debug)]
struct Reply {
    code: u16,
    text: Vec<u8>,
}

impl Reply {
    fn is(&self, class: u16) -> bool {
        self.code / 100 == class
    }

    /// The reply as the error suppaftp would have given for it.
    fn into_error(self) -> FtpError {
        FtpError::UnexpectedResponse(suppaftp::types::Response::new(Status::from(u32::from(self.code)), self.text))
    }
}

/// The outcome of SIZE (the size) and MFMT after an upload, each `None` when
/// it was not sent.
type Checks = (Option<Result<u64, FtpError>>, Option<Result<(), FtpError>>);

/// A reply's first line, for a message.
fn reply_line(reply: &Reply) -> String {
    let text = String::from_utf8_lossy(&reply.text);
    Escaped(text.lines().next().unwrap_or_default().trim()).to_string()
}

/// The number a reply like `213 4096` gives, if it gives one.
fn reply_number(text: &[u8]) -> Option<u64> {
    let line = text.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line.get(4..)?).ok()?.trim().parse().ok()
}

/// Splits complete replies off the front of `buf`: `ddd text` or a
/// multi-line `ddd-text` ... `ddd text`. Returns how many bytes they took.
fn parse_replies(buf: &[u8], want: usize, out: &mut Vec<Reply>) -> Result<usize, String> {
    let mut used = 0;
    while out.len() < want {
        let rest = &buf[used..];
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n").map(|p| p + 2) else { break };
        let first = &rest[..end];
        let code = first
            .get(..3)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| format!("not an FTP reply: {}", Escaped(&String::from_utf8_lossy(first))))?;
        let mut len = end;
        if first.get(3) == Some(&b'-') {
            // Multi-line: up to a line that starts with the same code and a space.
            let close = format!("{code} ");
            let mut found = false;
            while let Some(next) = rest[len..].windows(2).position(|w| w == b"\r\n").map(|p| len + p + 2) {
                let line = &rest[len..next];
                len = next;
                if line.starts_with(close.as_bytes()) {
                    found = true;
                    break;
                }
            }
            if !found {
                break;
            }
        }
        out.push(Reply { code, text: rest[..len].to_vec() });
        used += len;
    }
    Ok(used)
}

impl Session {
    /// Runs a data command, falling back once from EPSV to PASV (with the
    /// NAT workaround: connect to the control peer, not the announced
    /// address) when the server does not understand EPSV.
    fn with_data<T>(&mut self, mut op: impl FnMut(&mut RustlsFtpStream) -> Result<T, FtpError>) -> Result<T, FtpError> {
        // suppaftp asks for a passive port of its own: the one kept is closed.
        self.ready_port = None;
        match op(&mut self.ftp) {
            Err(e) if self.epsv && matches!(reply_code(&e), Some(500..=502)) => {
                log::debug!("server refused EPSV ({}); using PASV", reply_text(&e));
                self.epsv = false;
                self.ftp.set_mode(Mode::Passive);
                self.ftp.set_passive_nat_workaround(true);
                op(&mut self.ftp)
            }
            other => other,
        }
    }

    /// Sends `cmds` in one write and reads their replies, one per command,
    /// in order. Cuts the round trips of an upload's follow-up commands on
    /// servers that read commands one after the other (see
    /// [`takes_pipelines`]). Any trouble reading the replies leaves the
    /// session out of step with suppaftp's reader, so it is marked broken.
    fn pipeline(&mut self, cmds: &[String]) -> Result<Vec<Reply>, Failure> {
        self.send_raw(cmds)?;
        self.read_raw(cmds.len(), &cmds.join(", "))
    }

    /// Writes `cmds` to the control connection in one write (see
    /// [`Session::pipeline`]).
    fn send_raw(&mut self, cmds: &[String]) -> Result<(), Failure> {
        let mut wire = Vec::new();
        for cmd in cmds {
            if cmd.contains(['\r', '\n']) {
                return Err(Failure::new(Kind::Refused, format!("{}: a name with a line break", Escaped(cmd))));
            }
            wire.extend_from_slice(cmd.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        let result = {
            let socket = self.ftp.get_ref();
            let mut socket: &TcpStream = &socket;
            socket.write_all(&wire)
        };
        result.map_err(|e| {
            self.broken = true;
            Failure::new(Kind::Connection, format!("{}: {}", cmds.join(", "), describe_io(&e)))
        })
    }

    /// Reads `n` replies from the control connection, for commands written
    /// by [`Session::send_raw`]; `what` names them for an error.
    fn read_raw(&mut self, n: usize, what: &str) -> Result<Vec<Reply>, Failure> {
        let mut out = Vec::with_capacity(n);
        let result = {
            let socket = self.ftp.get_ref();
            let mut socket: &TcpStream = &socket;
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 4096];
            let mut used = 0;
            (|| {
                while out.len() < n {
                    let got = socket.read(&mut chunk)?;
                    if got == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
                    }
                    buf.extend_from_slice(&chunk[..got]);
                    used += parse_replies(&buf[used..], n, &mut out)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                if used < buf.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "more replies than commands"));
                }
                Ok(())
            })()
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.broken = true;
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) && !out.is_empty() {
                    // Some replies came, not all: something on the way may
                    // have lost a command that was not the first of a write.
                    let got: Vec<&Reply> = out.iter().collect();
                    self.out_of_step::<()>(&got);
                }
                Err(Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e))))
            }
        }
    }

    /// One reply (see [`Session::read_raw`]).
    fn read_one(&mut self, what: &str) -> Result<Reply, Failure> {
        self.read_raw(1, what)?.pop().ok_or_else(|| Failure::new(Kind::Connection, format!("{what}: no reply")))
    }

    /// The reply to an EPSV sent on its own.
    fn read_epsv(&mut self) -> Result<Reply, Failure> {
        self.pipeline(&["EPSV".to_string()])?.pop().ok_or_else(|| Failure::new(Kind::Connection, "EPSV: no reply"))
    }

    /// Reads at least one reply, and every other complete one that came with
    /// it (a STOR's 150 and, when the server gives up at once, its final
    /// reply in the same segment).
    fn read_some(&mut self, what: &str) -> Result<Vec<Reply>, Failure> {
        let mut out = Vec::new();
        let result = {
            let socket = self.ftp.get_ref();
            let mut socket: &TcpStream = &socket;
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 4096];
            let mut used = 0;
            (|| {
                loop {
                    used += parse_replies(&buf[used..], usize::MAX, &mut out)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    if !out.is_empty() && used == buf.len() {
                        return Ok(());
                    }
                    let got = socket.read(&mut chunk)?;
                    if got == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
                    }
                    buf.extend_from_slice(&chunk[..got]);
                }
            })()
        };
        result.map(|()| out).map_err(|e| {
            self.broken = true;
            Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e)))
        })
    }

    /// Where a `229 Entering Extended Passive Mode (|||port|)` reply says to
    /// connect: that port at the control connection's peer.
    fn epsv_address(&self, reply: &Reply) -> Option<SocketAddr> {
        if reply.code != 229 {
            return None;
        }
        let text = String::from_utf8_lossy(&reply.text);
        let inner = text.split_once('(')?.1.split_once(')')?.0;
        let delim = inner.chars().next()?;
        let port: u16 = inner.split(delim).nth(3)?.parse().ok()?;
        let peer = self.ftp.get_ref().peer_addr().ok()?;
        Some(SocketAddr::new(peer.ip(), port))
    }

    /// STOR over a data connection this module opens itself, on a session
    /// that pipelines: to the passive port `ready` (asked for together with
    /// the previous upload's rename) or one asked for now. suppaftp always
    /// sends its own EPSV first, which would cost that round trip back.
    fn store_raw(&mut self, remote: &str, reader: &mut impl Read, ready: Option<SocketAddr>) -> Result<u64, Failure> {
        let what = format!("STOR {}", Escaped(remote));
        let addr = match ready {
            Some(addr) => addr,
            None => {
                let reply = self.read_epsv()?;
                match self.epsv_address(&reply) {
                    Some(addr) => addr,
                    None if matches!(reply.code, 500..=502) => {
                        // Not understood after all: the next try takes
                        // suppaftp's way, with its fallback to PASV.
                        self.epsv = false;
                        self.ftp.set_mode(Mode::Passive);
                        self.ftp.set_passive_nat_workaround(true);
                        return Err(Failure {
                            kind: Kind::Data,
                            code: Some(425),
                            message: format!("{what}: EPSV not understood; using PASV"),
                            partial: None,
                        });
                    }
                    None if reply.code == 229 => {
                        self.broken = true;
                        return Err(Failure::new(
                            Kind::Connection,
                            format!("EPSV: cannot read {}", reply_line(&reply)),
                        ));
                    }
                    None => return Err(classify(&reply.into_error(), "EPSV")),
                }
            }
        };
        let data_failed = |e: io::Error| Failure {
            kind: Kind::Data,
            code: Some(425),
            message: format!("{what}: cannot open the data connection: {}", describe_io(&e)),
            partial: None,
        };
        // A kept port gets a short connect timeout: a firewall that opens
        // passive ports by reading the server's replies (Linux's FTP
        // conntrack helper) only sees a 229 at the start of a segment, and
        // one behind the rename's replies may never be opened.
        let connect_timeout = if ready.is_some() { self.timeout.min(KEPT_PORT_CONNECT) } else { self.timeout };
        let mut data = match TcpStream::connect_timeout(&addr, connect_timeout) {
            Ok(data) => data,
            Err(e) => {
                if ready.is_some() && !self.kept_ports_off.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "a passive port asked for ahead of an upload could not be reached ({}); asking for each \
                         upload's port on its own from now on",
                        describe_io(&e)
                    );
                }
                return Err(data_failed(e));
            }
        };
        data.set_write_timeout(Some(self.timeout)).map_err(data_failed)?;
        self.send_raw(&[format!("STOR {remote}")])?;
        let mut replies = self.read_some(&what)?.into_iter();
        let (Some(prelim), gave_up, rest) = (replies.next(), replies.next(), replies.next()) else {
            return Err(Failure::new(Kind::Connection, format!("{what}: no reply")));
        };
        if rest.is_some() || (!prelim.is(1) && gave_up.is_some()) {
            self.broken = true;
            return Err(Failure::new(Kind::Connection, format!("{what}: more replies than expected")));
        }
        if !prelim.is(1) {
            return Err(classify(&prelim.into_error(), &what));
        }
        if let Some(done) = gave_up {
            // The final reply came before the data: the server gave up.
            return Err(classify(&done.into_error(), &what));
        }
        let sent = match io::copy(reader, &mut data) {
            Ok(n) => n,
            Err(e) => {
                // The server's final reply comes at its own pace: this
                // session is out of step now.
                self.broken = true;
                return Err(Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e))));
            }
        };
        drop(data);
        let done = self.read_one(&what)?;
        if done.is(2) { Ok(sent) } else { Err(classify(&done.into_error(), &what)) }
    }

    /// SIZE and MFMT of a fresh upload, both about the temporary file, in
    /// one round trip where the session pipelines (`None`: send them one by
    /// one).
    fn pipelined_checks(&mut self, tmp: &str, mtime: Option<&str>) -> Result<Option<Checks>, Failure> {
        if !self.pipelines() || (!self.features.size && mtime.is_none()) {
            return Ok(None);
        }
        let mut cmds = Vec::with_capacity(2);
        if self.features.size {
            cmds.push(format!("SIZE {tmp}"));
        }
        if let Some(ts) = mtime {
            cmds.push(format!("MFMT {ts} {tmp}"));
        }
        let mut replies = self.pipeline(&cmds)?.into_iter();
        let size = if self.features.size {
            match replies.next() {
                Some(r) if r.is(2) => match reply_number(&r.text) {
                    Some(n) => Some(Ok(n)),
                    // Not a size: not SIZE's reply.
                    None => return Ok(self.out_of_step(&[&r])),
                },
                Some(r) => Some(Err(r.into_error())),
                None => return Ok(self.out_of_step(&[])),
            }
        } else {
            None
        };
        let mfmt = replies.next().map(|r| if r.is(2) { Ok(()) } else { Err(r.into_error()) });
        Ok(Some((size, mfmt)))
    }

    /// The server answered a pipeline in a way that only makes sense if it
    /// did not take the commands in order: no session of this job pipelines
    /// again, and the caller sends the commands again one at a time.
    fn out_of_step<T>(&mut self, replies: &[&Reply]) -> Option<T> {
        if !self.pipeline_off.swap(true, Ordering::Relaxed) {
            let said: Vec<String> =
                replies.iter().map(|r| Escaped(String::from_utf8_lossy(&r.text).trim_end()).to_string()).collect();
            log::info!(
                "the server answered commands sent together out of step ({}); sending them one at a time from now on",
                said.join(" / ")
            );
        }
        None
    }

    /// Gives the session the count of jobs waiting for a worker: a rename
    /// asks for the next upload's port only while there is work waiting, so a
    /// single upload now and then leaves no unused listener on the server.
    pub fn expect_more_uploads(&mut self, waiting: Arc<std::sync::atomic::AtomicUsize>) {
        self.jobs_waiting = Some(waiting);
    }

    /// Whether this session sends commands in pipelines.
    pub fn pipelines(&self) -> bool {
        self.pipelining && !self.pipeline_off.load(Ordering::Relaxed)
    }

    fn remote(&self, rel: &str) -> String {
        join_remote(&self.remote_dir, rel)
    }

    /// Makes sure the remote directory `dir` (absolute or relative to the
    /// login directory) exists, creating missing parents.
    pub fn ensure_dir(&mut self, dir: &str) -> Result<(), Failure> {
        if dir.is_empty() || dir == "/" {
            return Ok(());
        }
        let dirs = Arc::clone(&self.dirs);
        let mut known = dirs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(dir) {
            return Ok(());
        }
        let mut prefix = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() || dir.starts_with('/') {
                prefix.push('/');
            }
            prefix.push_str(part);
            if known.contains(&prefix) {
                continue;
            }
            match self.ftp.mkdir(&prefix) {
                Ok(()) => {
                    log::debug!("created remote directory {}", Escaped(&prefix));
                    self.created.push(prefix.clone());
                }
                Err(e) => {
                    let f = classify(&e, &format!("MKD {}", Escaped(&prefix)));
                    if f.kind == Kind::Connection || f.kind == Kind::Transient {
                        return Err(f);
                    }
                    // Most servers answer 550 for "exists"; a real refusal
                    // shows up at the STOR that follows.
                }
            }
            known.insert(prefix.clone());
        }
        Ok(())
    }

    fn forget_dir(&self, dir: &str) {
        let mut known = self.dirs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|d| !(d == dir || d.starts_with(&format!("{dir}/"))));
    }

    /// Uploads `local` to `rel`: to a temporary name in the target directory,
    /// then renamed over the final name, so readers never see a partial file.
    /// Before the rename the local file must be unchanged and, where the
    /// server has SIZE, the remote size must match; MFMT sets the remote
    /// mtime where the server has it.
    ///
    /// `resume` is the local file's stamp at an earlier attempt that broke
    /// off: if the file is still exactly that, the server supports REST and
    /// SIZE, the transfer continues where the temporary file ends.
    pub fn upload(
        &mut self,
        local: &Path,
        rel: &RelPath,
        abort: &AtomicBool,
        resume: Option<Stamp>,
        snapshot: bool,
    ) -> Result<Uploaded, Failure> {
        let final_path = self.remote(rel.as_str());
        let dir = rel.parent().map_or_else(|| self.remote_dir.clone(), |p| self.remote(p));
        let mut tmp = temp_name(&dir, rel.file_name(), self.visible_temp.load(Ordering::Relaxed));

        let mut ready = self.ready_port.take().filter(|(_, at)| at.elapsed() < READY_PORT_TTL).map(|(addr, _)| addr);
        let file = open_regular(local)?;
        let before = file
            .metadata()
            .map(|m| Stamp::of(&m))
            .map_err(|e| Failure::new(Kind::Local, format!("cannot read {rel}: {e}")))?;

        let created = self.created.len();
        self.ensure_dir(&dir)?;
        if self.created.len() != created {
            // A directory was made in between: ask for a port again rather
            // than count on every server keeping its listener across MKD.
            ready = None;
        }
        let offset = if resume == Some(before) { self.resume_offset(&tmp, before.len) } else { 0 };
        if offset > 0 {
            log::info!("resuming {rel} at byte {offset} of {}", before.len);
        }
        let stored = match self.store(&tmp, &file, before.len, abort, offset, ready) {
            Err(f) if f.code == Some(553) || (f.code == Some(550) && f.kind == Kind::Refused) => {
                // The directory may have been removed behind our back.
                self.forget_dir(&dir);
                self.ensure_dir(&dir)?;
                match self.store(&tmp, &file, before.len, abort, 0, None) {
                    // Some servers refuse names that start with a dot
                    // (pure-ftpd -x): use a visible temporary name then.
                    Err(f) if f.code == Some(553) && tmp != temp_name(&dir, rel.file_name(), true) => {
                        if !self.visible_temp.swap(true, Ordering::Relaxed) {
                            log::info!(
                                "the server refuses the temporary name {} ({f}); temporary uploads are named \
                                 NAME{TEMP_SUFFIX} from now on",
                                Escaped(&tmp)
                            );
                        }
                        tmp = temp_name(&dir, rel.file_name(), true);
                        self.store(&tmp, &file, before.len, abort, 0, None)
                    }
                    other => other,
                }
            }
            other => other,
        };
        let (bytes, blake3) = stored.map_err(|mut f| {
            if matches!(f.kind, Kind::Connection | Kind::Data | Kind::Transient) && self.features.rest {
                // Keep what arrived: the next attempt can continue from it.
                f.partial = Some(before);
            } else {
                self.discard(&tmp, &f);
            }
            f
        })?;

        let after = std::fs::symlink_metadata(local).map(|m| Stamp::of(&m)).ok();
        if (after != Some(before) || bytes != before.len) && !snapshot {
            let r = self.ftp.rm(&tmp).map(drop);
            self.note(r);
            return Err(Failure::new(Kind::Changed, format!("{rel} changed while it was uploaded")));
        }
        let mtime = before.mtime.filter(|_| self.features.mfmt).map(mfmt_time);
        let (size, mfmt) = match self.pipelined_checks(&tmp, mtime.as_deref())? {
            Some(replies) => replies,
            None => {
                let size = self.features.size.then(|| self.ftp.size(&tmp).map(|n| n as u64));
                let mfmt = mtime
                    .as_ref()
                    .map(|ts| self.ftp.custom_command(format!("MFMT {ts} {tmp}"), &[Status::File]).map(drop));
                (size, mfmt)
            }
        };
        match size {
            None => {}
            Some(Ok(n)) if n == bytes => {}
            Some(Ok(n)) => {
                let r = self.ftp.rm(&tmp).map(drop);
                self.note(r);
                return Err(Failure::new(
                    Kind::Transient,
                    format!("{rel}: the server holds {n} bytes after sending {bytes}; sending it again"),
                ));
            }
            Some(Err(e)) => {
                let f = classify(&e, "SIZE");
                if !f.session_usable() {
                    return Err(f);
                }
                // SIZE advertised but refused for this file: rely on the 226.
                log::debug!("{f}");
            }
        }
        if let Some(Err(e)) = mfmt {
            let f = classify(&e, "MFMT");
            if !f.session_usable() {
                return Err(f);
            }
            log::debug!("{f}; not setting modification times on this server");
            self.features.mfmt = false;
        }
        self.publish(&tmp, &final_path).inspect_err(|f| self.discard(&tmp, f))?;
        Ok(Uploaded { bytes, stamp: before, blake3 })
    }

    /// Removes a temporary file after a failure, if the session still works.
    fn discard(&mut self, tmp: &str, f: &Failure) {
        if f.session_usable() {
            let r = self.ftp.rm(tmp).map(drop);
            self.note(r);
        }
    }

    /// Deletes a temporary upload left by a crash, if there is one.
    pub fn remove_temp(&mut self, rel: &RelPath) -> Result<(), Failure> {
        let dir = rel.parent().map_or_else(|| self.remote_dir.clone(), |p| self.remote(p));
        for visible in [false, true] {
            let tmp = temp_name(&dir, rel.file_name(), visible);
            match self.ftp.rm(&tmp) {
                Ok(()) => {}
                Err(e) if reply_code(&e) == Some(550) || reply_code(&e) == Some(553) => {}
                Err(e) => return Err(classify(&e, &format!("DELE {}", Escaped(&tmp)))),
            }
        }
        Ok(())
    }

    /// Removes an (empty) remote directory given by its full remote path.
    pub fn remove_dir(&mut self, remote: &str) -> Result<(), Failure> {
        match self.ftp.rmdir(remote) {
            Ok(()) => {
                self.forget_dir(remote);
                Ok(())
            }
            Err(e) => Err(classify(&e, &format!("RMD {}", Escaped(remote)))),
        }
    }

    /// The remote directories this session created since the last call.
    pub fn take_created(&mut self) -> Vec<String> {
        std::mem::take(&mut self.created)
    }

    pub fn features(&self) -> Features {
        self.features
    }

    /// Remembers that a command whose outcome does not matter failed at the
    /// connection level: its reply may still arrive and would be taken for
    /// the next command's, so the session must not be used again.
    fn note(&mut self, r: Result<(), FtpError>) {
        if let Err(e) = r
            && reply_code(&e).is_none()
        {
            self.broken = true;
        }
    }

    /// Whether the session must be dropped (see [`Session::note`]).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether data connections use EPSV (else PASV or active mode).
    pub fn uses_epsv(&self) -> bool {
        self.epsv
    }

    /// Whether the server refused a rename over an existing file, so that
    /// old files are renamed aside first.
    pub fn renames_aside(&self) -> bool {
        self.rename_over_refused
    }

    /// How many bytes of a broken-off upload the server holds under `tmp`,
    /// if the upload can continue from there (0: start over).
    fn resume_offset(&mut self, tmp: &str, len: u64) -> u64 {
        if !(self.features.rest && self.features.size) {
            return 0;
        }
        match self.ftp.size(tmp) {
            Ok(n) if (n as u64) < len => n as u64,
            _ => 0,
        }
    }

    /// Sends `file` to `remote` from byte `offset` on (REST + STOR); returns
    /// the whole file's length as sent and its fingerprint.
    fn store(
        &mut self,
        remote: &str,
        file: &File,
        len: u64,
        abort: &AtomicBool,
        offset: u64,
        ready: Option<SocketAddr>,
    ) -> Result<(u64, [u8; 32]), Failure> {
        // From the start, also when an earlier attempt of this upload read the
        // file already (a STOR refused after its data, tried again).
        std::io::Seek::rewind(&mut &*file)
            .map_err(|e| Failure::new(Kind::Local, format!("cannot read the file again: {e}")))?;
        // A buffer the size of a small file: no large allocation per file.
        let capacity = usize::try_from(len.saturating_add(1)).unwrap_or(usize::MAX).clamp(8 * 1024, 256 * 1024);
        let mut reader = Abortable {
            inner: BufReader::with_capacity(capacity, file),
            abort,
            hasher: blake3::Hasher::new(),
            local_error: false,
        };
        if self.pipelines() && self.epsv && offset == 0 {
            return match self.store_raw(remote, &mut reader, ready) {
                Ok(n) => Ok((n, *reader.hasher.finalize().as_bytes())),
                Err(_) if abort.load(Ordering::Relaxed) => {
                    Err(Failure::new(Kind::Aborted, "upload aborted for shutdown"))
                }
                Err(f) if reader.local_error => Err(Failure::new(Kind::LocalBroken, format!("reading the file: {f}"))),
                Err(f) => Err(f),
            };
        }
        let mut first_try = true;
        let tickets = self.tickets.clone();
        let timeout = self.timeout;
        let mut tickets_on_data = self.tickets_on_data;
        let result = self.with_data(|ftp| {
            if !std::mem::take(&mut first_try) {
                // The EPSV fallback runs the transfer a second time.
                std::io::Seek::rewind(&mut reader.inner).map_err(FtpError::ConnectionError)?;
                reader.hasher.reset();
            }
            if offset > 0 {
                // The fingerprint covers the whole file: read the part the
                // server already holds through the hasher.
                io::copy(&mut (&mut reader).take(offset), &mut io::sink()).map_err(FtpError::ConnectionError)?;
                ftp.resume_transfer(usize::try_from(offset).unwrap_or(0))?;
            }
            let mut upload = ftp.put_with_stream(remote)?;
            let sent = io::copy(&mut reader, &mut upload).map_err(FtpError::ConnectionError)?;
            if let (Some(store), suppaftp::DataStream::Ssl(tls)) = (&tickets, upload.get_mut()) {
                // Once known to come, a ticket is waited for as long as it
                // takes; the first time only briefly, as some servers send none.
                let wait = match tickets_on_data {
                    Some(false) => Duration::ZERO,
                    Some(true) => Duration::from_secs(2),
                    None => Duration::from_secs(1),
                };
                let got = absorb_tickets(suppaftp::TlsStream::mut_ref(tls.as_mut()), store, wait, timeout);
                if tickets_on_data.is_none() {
                    tickets_on_data = Some(got);
                }
            }
            upload.finish()?;
            Ok(sent)
        });
        self.tickets_on_data = tickets_on_data;
        match result {
            Ok(n) => Ok((n + offset, *reader.hasher.finalize().as_bytes())),
            Err(e) if abort.load(Ordering::Relaxed) => {
                let _ = e;
                Err(Failure::new(Kind::Aborted, "upload aborted for shutdown"))
            }
            // The local disk failed, not the server: this file only, and the
            // half-sent data connection leaves the session unusable.
            Err(e) if reader.local_error => Err(Failure::new(Kind::LocalBroken, format!("reading the file: {e}"))),
            Err(e) => {
                let mut f = classify(&e, &format!("STOR {}", Escaped(remote)));
                if self.tickets.is_some()
                    && !self.tls12
                    && !self.tls12_broken.load(Ordering::Relaxed)
                    && matches!(f.code, Some(425 | 522))
                {
                    if !self.tls12_only.swap(true, Ordering::Relaxed) {
                        log::info!(
                            "the server refused a TLS data connection ({f}); reconnecting with TLS 1.2, whose \
                             session reuse more servers accept"
                        );
                    }
                    f.kind = Kind::Connection;
                }
                Err(f)
            }
        }
    }

    /// Renames `tmp` over `target`. Servers that refuse to rename over an
    /// existing file get the old file renamed aside first and deleted after:
    /// the final name is missing for one round trip at most.
    fn publish(&mut self, tmp: &str, target: &str) -> Result<(), Failure> {
        if !self.rename_over_refused && self.pipelines() {
            // With EPSV: the next upload's passive port in the same round trip.
            let mut cmds = vec![format!("RNFR {tmp}"), format!("RNTO {target}")];
            let more = self.jobs_waiting.as_ref().is_some_and(|n| n.load(Ordering::Relaxed) > 0);
            if more && self.epsv && !self.kept_ports_off.load(Ordering::Relaxed) {
                cmds.push("EPSV".to_string());
            }
            let mut replies = self.pipeline(&cmds)?.into_iter();
            let (Some(from), Some(to)) = (replies.next(), replies.next()) else {
                self.broken = true;
                return Err(Failure::new(Kind::Connection, "RNFR/RNTO: replies lost"));
            };
            if let Some(epsv) = replies.next() {
                self.ready_port = self.epsv_address(&epsv).map(|addr| (addr, std::time::Instant::now()));
            }
            match (from.code, to.code) {
                (350, 200..=299) => return Ok(()),
                // RNFR done, RNTO refused (503 would mean RNTO came first).
                (350, code) if code != 503 => {
                    let f = classify(&to.into_error(), &format!("rename to {}", Escaped(target)));
                    if f.kind != Kind::Refused {
                        return Err(f);
                    }
                    log::debug!("{f}; trying to rename the old file aside");
                    return self.publish_aside(tmp, target);
                }
                // RNFR refused, and so RNTO out of sequence.
                (400..=502 | 504..=599, 503) => {
                    return Err(classify(&from.into_error(), &format!("rename to {}", Escaped(target))));
                }
                // Anything else means the server did not take the two in
                // order: rename one command at a time (RNFR first, which also
                // replaces any rename it still has pending).
                _ => {
                    self.out_of_step::<()>(&[&from, &to]);
                }
            }
        }
        if !self.rename_over_refused {
            match self.ftp.rename(tmp, target) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let f = classify(&e, &format!("rename to {}", Escaped(target)));
                    if f.kind != Kind::Refused {
                        return Err(f);
                    }
                    log::debug!("{f}; trying to rename the old file aside");
                }
            }
        }
        self.publish_aside(tmp, target)
    }

    /// Renames the file at `target` aside, `tmp` to `target`, and deletes
    /// the old file (see [`Session::publish`]).
    fn publish_aside(&mut self, tmp: &str, target: &str) -> Result<(), Failure> {
        let aside = format!("{target}{ASIDE_SUFFIX}");
        // Only a file is renamed aside, never a directory that has the name.
        let moved_aside = self.is_remote_file(target) && self.ftp.rename(target, &aside).is_ok();
        match self.ftp.rename(tmp, target) {
            Ok(()) => {
                if moved_aside {
                    self.rename_over_refused = true;
                    let r = self.ftp.rm(&aside).map(drop);
                    self.note(r);
                }
                Ok(())
            }
            Err(e) => {
                if moved_aside {
                    let r = self.ftp.rename(aside.as_str(), target).map(drop);
                    self.note(r);
                }
                Err(classify(&e, &format!("rename to {}", Escaped(target))))
            }
        }
    }

    /// Whether `path` is a regular file on the server: MLST where the server
    /// has it; else SIZE answers and CWD into it fails.
    fn is_remote_file(&mut self, path: &str) -> bool {
        if self.features.mlsd {
            return self
                .ftp
                .mlst(Some(path))
                .ok()
                .and_then(|line| suppaftp::list::ListParser::parse_mlst(line.trim()).ok())
                .is_some_and(|f| f.is_file());
        }
        if self.ftp.size(path).is_err() {
            return false;
        }
        match self.ftp.pwd() {
            Ok(here) => {
                if self.ftp.cwd(path).is_ok() {
                    let r = self.ftp.cwd(&here).map(drop);
                    self.note(r);
                    false
                } else {
                    true
                }
            }
            Err(_) => false,
        }
    }

    /// Deletes the remote file `rel`; a file that is already gone is fine.
    pub fn delete(&mut self, rel: &RelPath) -> Result<(), Failure> {
        match self.ftp.rm(self.remote(rel.as_str())) {
            Ok(()) => Ok(()),
            Err(e) if reply_code(&e) == Some(550) => Ok(()),
            Err(e) => Err(classify(&e, &format!("DELE {rel}"))),
        }
    }

    /// Renames the remote `from` to `to` (files or directories).
    pub fn rename(&mut self, from: &RelPath, to: &RelPath) -> Result<(), Failure> {
        if let Some(dir) = to.parent() {
            let dir = self.remote(dir);
            self.ensure_dir(&dir)?;
        }
        let (from_r, to_r) = (self.remote(from.as_str()), self.remote(to.as_str()));
        self.ftp.rename(&from_r, &to_r).map_err(|e| classify(&e, &format!("rename {from} to {to}")))?;
        self.forget_dir(&from_r);
        Ok(())
    }

    /// Lists a remote directory (MLSD where the server has it, else LIST).
    pub fn list(&mut self, rel: Option<&RelPath>) -> Result<Vec<RemoteEntry>, Failure> {
        let dir = rel.map_or_else(|| self.remote_dir.clone(), |r| self.remote(r.as_str()));
        let shown = Escaped(&dir).to_string();
        if self.features.mlsd {
            match self.with_data(|ftp| ftp.mlsd(Some(&dir))) {
                Ok(lines) => return Ok(parse_listing(&lines, true)),
                Err(e) if matches!(reply_code(&e), Some(500..=502)) => self.features.mlsd = false,
                Err(e) => return Err(classify(&e, &format!("MLSD {shown}"))),
            }
        }
        let lines = self.with_data(|ftp| ftp.list(Some(&dir))).map_err(|e| classify(&e, &format!("LIST {shown}")))?;
        Ok(parse_listing(&lines, false))
    }

    /// A cheap round trip to check the session is alive.
    pub fn noop(&mut self) -> Result<(), Failure> {
        self.ftp.noop().map_err(|e| classify(&e, "NOOP"))
    }

    pub fn welcome(&self) -> Option<&str> {
        self.ftp.get_welcome_msg()
    }

    /// Says goodbye; errors do not matter any more.
    pub fn quit(mut self) {
        let _ = self.ftp.quit();
    }
}

/// Opens a regular file without following a symlink at its name.
fn open_regular(path: &Path) -> Result<File, Failure> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let shown = crate::relpath::EscapedPath(path);
    let file = opts.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Failure::new(Kind::Vanished, format!("{shown} is gone")),
        _ => Failure::new(Kind::Local, format!("cannot read {shown}: {e}")),
    })?;
    let meta = file.metadata().map_err(|e| Failure::new(Kind::Local, format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Failure::new(Kind::Vanished, format!("{shown} is no longer a regular file")));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(replies: &[Reply]) -> Vec<u16> {
        replies.iter().map(|r| r.code).collect()
    }

    #[test]
    fn replies_are_split_in_order_whole_and_multi_line() {
        let wire = b"213 4096\r\n213-Modify=1;\r\n  more\r\n213 UTIME OK\r\n350 ready\r\n";
        let mut out = Vec::new();
        let used = parse_replies(wire, 3, &mut out).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(codes(&out), [213, 213, 350]);
        assert_eq!(reply_number(&out[0].text), Some(4096));
        assert_eq!(out[1].text, b"213-Modify=1;\r\n  more\r\n213 UTIME OK\r\n");
        assert_eq!(reply_number(&out[1].text), None);
    }

    #[test]
    fn a_reply_cut_between_reads_waits_for_its_end() {
        let mut out = Vec::new();
        let first = b"350 ready\r\n250-renamed\r\n";
        let used = parse_replies(first, 2, &mut out).unwrap();
        assert_eq!((used, codes(&out)), (11, vec![350]));
        let mut wire = first[used..].to_vec();
        wire.extend_from_slice(b"250 done\r\n");
        let used = parse_replies(&wire, 2, &mut out).unwrap();
        assert_eq!((used, codes(&out)), (wire.len(), vec![350, 250]));
    }

    #[test]
    fn only_as_many_replies_as_commands_are_taken() {
        let mut out = Vec::new();
        let used = parse_replies(b"213 1\r\n213 2\r\n", 1, &mut out).unwrap();
        assert_eq!((used, codes(&out)), (7, vec![213]));
    }

    #[test]
    fn a_line_that_is_no_reply_is_an_error() {
        assert!(parse_replies(b"hello\r\n", 1, &mut Vec::new()).is_err());
        assert!(parse_replies(b"999 no\r\n", 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn only_servers_known_to_read_commands_in_order_get_them_together() {
        assert!(takes_pipelines("---------- Welcome to Pure-FTPd [privsep] [TLS] ----------"));
        assert!(takes_pipelines("(vsFTPd 3.0.3)"));
        assert!(takes_pipelines("ProFTPD Server (Debian) [::ffff:127.0.0.1]"));
        assert!(!takes_pipelines("Welcome to unFTP"));
        assert!(!takes_pipelines("FileZilla Server 1.8.0"));
    }
}
