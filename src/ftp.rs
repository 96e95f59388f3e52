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
use std::io::{self, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use suppaftp::rustls::ClientConfig;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, RustlsConnector, RustlsFtpStream};

use crate::config::{ASIDE_SUFFIX, Config, TEMP_SUFFIX};
use crate::relpath::{Escaped, RelPath, join_remote};

/// Connect, greeting, control-reply and data timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How an operation failed, as far as the caller's policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The server is unreachable, hung up or timed out: reconnect and retry.
    Connection,
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
}

impl Failure {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// Whether the control connection can still be trusted afterwards.
    pub fn session_usable(&self) -> bool {
        !matches!(self.kind, Kind::Connection | Kind::Tls | Kind::Aborted)
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
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no answer within {} s", TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    }
}

fn is_tls_error(err: &FtpError) -> bool {
    match err {
        FtpError::SecureError(_) => true,
        FtpError::ConnectionError(e) => e
            .get_ref()
            .is_some_and(|inner| inner.is::<suppaftp::rustls::Error>()),
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
            // 421: the server closes the session; 425/426: the data connection
            // could not be opened or broke.
            Some(421 | 425 | 426) => Kind::Connection,
            Some(400..=499) => Kind::Transient,
            Some(500..=599) => Kind::Refused,
            Some(_) => Kind::Refused,
            None => Kind::Connection,
        }
    };
    Failure {
        kind,
        code,
        message: format!("{what}: {}", reply_text(err)),
    }
}

/// How to reach and log in to the server; shared by all sessions.
#[derive(Clone)]
pub struct Connector {
    host: String,
    port: u16,
    user: String,
    password: crate::config::Secret,
    active: bool,
    tls: Option<Arc<ClientConfig>>,
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
            Some(tls_config(cfg.ca_file.as_deref())?)
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
        })
    }

    /// Connects and logs in.
    pub fn connect(&self) -> Result<Session, Failure> {
        let addrs: Vec<SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(&(self.host.as_str(), self.port))
                .map_err(|e| {
                    Failure::new(
                        Kind::Connection,
                        format!("cannot resolve {}: {e}", self.host),
                    )
                })?
                .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, TIMEOUT) {
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
        let conn_err = |e: io::Error| {
            Failure::new(
                Kind::Connection,
                format!("connection to {}: {e}", self.host),
            )
        };
        tcp.set_read_timeout(Some(TIMEOUT)).map_err(conn_err)?;
        tcp.set_write_timeout(Some(TIMEOUT)).map_err(conn_err)?;
        tcp.set_nodelay(true).map_err(conn_err)?;

        let greeting = |e: FtpError| {
            let mut f = classify(
                &e,
                &format!("no FTP greeting from {}:{}", self.host, self.port),
            );
            if f.kind != Kind::Tls {
                f.kind = Kind::Connection;
            }
            f
        };
        let mut ftp = RustlsFtpStream::connect_with_stream(tcp)
            .map_err(greeting)?
            .passive_stream_builder(|addr| {
                let s = TcpStream::connect_timeout(&addr, TIMEOUT)
                    .map_err(FtpError::ConnectionError)?;
                s.set_read_timeout(Some(TIMEOUT))
                    .map_err(FtpError::ConnectionError)?;
                s.set_write_timeout(Some(TIMEOUT))
                    .map_err(FtpError::ConnectionError)?;
                s.set_nodelay(true).map_err(FtpError::ConnectionError)?;
                Ok(s)
            });
        if let Some(tls) = &self.tls {
            ftp = ftp
                .into_secure(RustlsConnector::from(Arc::clone(tls)), &self.host)
                .map_err(|e| {
                    let mut f = classify(&e, &format!("TLS with {}", self.host));
                    if is_tls_error(&e) || f.code.is_some() {
                        f.kind = Kind::Tls;
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
        ftp.transfer_type(FileType::Binary)
            .map_err(|e| classify(&e, "TYPE I (binary mode)"))?;
        if self.active {
            ftp = ftp.active_mode(TIMEOUT);
        } else {
            ftp.set_mode(Mode::ExtendedPassive);
        }
        Ok(Session {
            ftp,
            epsv: !self.active,
            remote_dir: self.remote_dir.clone(),
            dirs: Arc::clone(&self.dirs),
            rename_over_refused: false,
        })
    }
}

/// Builds the rustls configuration: system roots plus `--ca-file`, ring only
/// (the test server's dependencies may enable a second provider).
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, Failure> {
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
            .map_err(|e| {
                Failure::new(
                    Kind::Tls,
                    format!("cannot read CA file {}: {e}", path.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(Failure::new(
                Kind::Tls,
                format!("CA file {} holds no certificate", path.display()),
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| Failure::new(Kind::Tls, format!("CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(suppaftp::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(Kind::Tls, format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Remote directories known to exist, shared by all sessions of one job, so
/// that a directory is created once and two sessions never race on one MKD.
#[derive(Debug, Default)]
struct RemoteDirs(Mutex<HashSet<String>>);

/// One logged-in control connection.
pub struct Session {
    ftp: RustlsFtpStream,
    epsv: bool,
    remote_dir: String,
    dirs: Arc<RemoteDirs>,
    rename_over_refused: bool,
}

/// A file's identity for "did it change while we read it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

/// Reads a file but stops when shutdown asks for it.
struct Abortable<'a, R> {
    inner: R,
    abort: &'a AtomicBool,
}

impl<R: Read> Read for Abortable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(io::Error::other("upload aborted for shutdown"));
        }
        self.inner.read(buf)
    }
}

impl Session {
    /// Runs a data command, falling back once from EPSV to PASV (with the
    /// NAT workaround: connect to the control peer, not the announced
    /// address) when the server does not understand EPSV.
    fn with_data<T>(
        &mut self,
        mut op: impl FnMut(&mut RustlsFtpStream) -> Result<T, FtpError>,
    ) -> Result<T, FtpError> {
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
        let mut known = dirs
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(dir) {
            return Ok(());
        }
        let mut prefix = String::new();
        for (i, part) in dir.split('/').enumerate() {
            if i > 0 || dir.starts_with('/') {
                prefix.push('/');
            }
            if part.is_empty() {
                continue;
            }
            prefix.push_str(part);
            if known.contains(&prefix) {
                continue;
            }
            match self.ftp.mkdir(&prefix) {
                Ok(()) => log::debug!("created remote directory {}", Escaped(&prefix)),
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
        let mut known = self
            .dirs
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|d| !(d == dir || d.starts_with(&format!("{dir}/"))));
    }

    /// Uploads `local` to `rel`: to a temporary name in the target directory,
    /// then renamed over the final name, so readers never see a partial file.
    /// Returns the bytes sent.
    pub fn upload(
        &mut self,
        local: &Path,
        rel: &RelPath,
        abort: &AtomicBool,
    ) -> Result<u64, Failure> {
        let final_path = self.remote(rel.as_str());
        let dir = rel
            .parent()
            .map_or_else(|| self.remote_dir.clone(), |p| self.remote(p));
        let tmp = join_remote(&dir, &format!(".{}{TEMP_SUFFIX}", rel.file_name()));

        let file = open_regular(local)?;
        let before = file
            .metadata()
            .map(|m| Stamp::of(&m))
            .map_err(|e| Failure::new(Kind::Local, format!("cannot read {rel}: {e}")))?;

        self.ensure_dir(&dir)?;
        let sent = match self.store(&tmp, &file, abort) {
            Err(f) if f.code == Some(553) || (f.code == Some(550) && f.kind == Kind::Refused) => {
                // The directory may have been removed behind our back.
                self.forget_dir(&dir);
                self.ensure_dir(&dir)?;
                self.store(&tmp, &file, abort)
            }
            other => other,
        };
        let sent = sent.inspect_err(|f| {
            if f.session_usable() {
                let _ = self.ftp.rm(&tmp);
            }
        })?;

        let after = std::fs::symlink_metadata(local).map(|m| Stamp::of(&m)).ok();
        if after != Some(before) {
            let _ = self.ftp.rm(&tmp);
            return Err(Failure::new(
                Kind::Changed,
                format!("{rel} changed while it was uploaded"),
            ));
        }
        self.publish(&tmp, &final_path).inspect_err(|f| {
            if f.session_usable() {
                let _ = self.ftp.rm(&tmp);
            }
        })?;
        Ok(sent)
    }

    fn store(&mut self, remote: &str, file: &File, abort: &AtomicBool) -> Result<u64, Failure> {
        let mut reader = Abortable {
            inner: BufReader::with_capacity(256 * 1024, file),
            abort,
        };
        let result = self.with_data(|ftp| {
            std::io::Seek::rewind(&mut reader.inner).map_err(FtpError::ConnectionError)?;
            ftp.put_file(remote, &mut reader)
        });
        result.map_err(|e| {
            if abort.load(Ordering::Relaxed) {
                Failure::new(Kind::Aborted, "upload aborted for shutdown")
            } else {
                classify(&e, &format!("STOR {}", Escaped(remote)))
            }
        })
    }

    /// Renames `tmp` over `target`. Servers that refuse to rename over an
    /// existing file get the old file renamed aside first and deleted after:
    /// the final name is missing for one round trip at most.
    fn publish(&mut self, tmp: &str, target: &str) -> Result<(), Failure> {
        if !self.rename_over_refused {
            match self.ftp.rename(tmp, target) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let f = classify(&e, &format!("rename to {}", Escaped(target)));
                    if f.kind != Kind::Refused {
                        return Err(f);
                    }
                    log::debug!("{f}; renaming the old file aside");
                }
            }
        }
        let aside = format!("{target}{ASIDE_SUFFIX}");
        let moved_aside = self.ftp.rename(target, &aside).is_ok();
        match self.ftp.rename(tmp, target) {
            Ok(()) => {
                if moved_aside {
                    self.rename_over_refused = true;
                    let _ = self.ftp.rm(&aside);
                }
                Ok(())
            }
            Err(e) => {
                if moved_aside {
                    let _ = self.ftp.rename(aside.as_str(), target);
                }
                Err(classify(&e, &format!("rename to {}", Escaped(target))))
            }
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
        self.ftp
            .rename(&from_r, &to_r)
            .map_err(|e| classify(&e, &format!("rename {from} to {to}")))?;
        self.forget_dir(&from_r);
        Ok(())
    }

    /// Lists a remote directory (MLSD, else LIST), as raw lines.
    pub fn list(&mut self, rel: Option<&RelPath>) -> Result<Vec<String>, Failure> {
        let dir = rel.map_or_else(|| self.remote_dir.clone(), |r| self.remote(r.as_str()));
        let shown = Escaped(&dir).to_string();
        match self.with_data(|ftp| ftp.mlsd(Some(&dir))) {
            Ok(lines) => Ok(lines),
            Err(e) if matches!(reply_code(&e), Some(500..=502)) => self
                .with_data(|ftp| ftp.list(Some(&dir)))
                .map_err(|e| classify(&e, &format!("LIST {shown}"))),
            Err(e) => Err(classify(&e, &format!("MLSD {shown}"))),
        }
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
    let meta = file
        .metadata()
        .map_err(|e| Failure::new(Kind::Local, format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Failure::new(
            Kind::Vanished,
            format!("{shown} is no longer a regular file"),
        ));
    }
    Ok(file)
}
