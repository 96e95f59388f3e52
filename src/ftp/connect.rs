//! Connecting: the TCP connect with a timeout, the greeting, TLS before the
//! login, binary mode, the data-connection mode and the server's features.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use suppaftp::rustls::ClientConfig;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, RustlsConnector, RustlsFtpStream};

use super::pipeline::takes_pipelines;
use super::tls::tls_configs;
use super::{Failure, Features, Kind, Publishing, RemoteDirs, Session, classify, describe_io, is_tls_error};
use crate::config::Config;

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
    /// Set once the server refused EPSV on an IPv6 connection (see
    /// `Session::epsv_refused`), so that it is logged once.
    no_pasv_logged: Arc<AtomicBool>,
    remote_dir: String,
    dirs: Arc<RemoteDirs>,
    publishing: Arc<Publishing>,
    /// `--bwlimit`: the bucket every session's uploads take their bytes from.
    limiter: crate::bwlimit::Limiter,
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
        let tls = if cfg.tls { Some(tls_configs(cfg.ca_file.as_deref())?) } else { None };
        Ok(Self {
            host: cfg.host.clone(),
            port: cfg.port,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            active: cfg.active,
            tls,
            remote_dir: cfg.remote_dir.clone(),
            dirs: Arc::new(RemoteDirs::default()),
            publishing: Arc::new(Publishing {
                temp_dir: cfg.temp_dir.clone(),
                chmod: cfg.chmod,
                chmod_dirs: cfg.chmod_dirs,
                ..Publishing::default()
            }),
            limiter: crate::bwlimit::Limiter::default(),
            tls12_only: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            tls12_broken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            visible_temp: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            pipeline_off: Arc::new(AtomicBool::new(false)),
            kept_ports_off: Arc::new(AtomicBool::new(false)),
            no_pasv_logged: Arc::new(AtomicBool::new(false)),
            timeout: cfg.timeout,
        })
    }

    /// The upload rate limit shared by every session of the job.
    pub fn limiter(&self) -> &crate::bwlimit::Limiter {
        &self.limiter
    }

    /// Connects and logs in.
    pub fn connect(&self) -> Result<Session, Failure> {
        let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(self.host.as_str(), self.port))
            .map_err(|e| Failure::new(Kind::Connection, format!("cannot resolve {}: {e}", self.host)))?
            .collect();
        let timeout = self.timeout;
        let shown = format!("{}:{}", self.host, self.port);
        let data_opened = Arc::new(AtomicBool::new(false));
        let opened = Arc::clone(&data_opened);
        let mut ftp = connect_first(&addrs, &shown, timeout)?.passive_stream_builder(move |addr| {
            // EPSV (or PASV) was answered: what fails from here on is not that command.
            opened.store(true, Ordering::Relaxed);
            let s = TcpStream::connect_timeout(&addr, timeout).map_err(FtpError::ConnectionError)?;
            s.set_read_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
            s.set_write_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
            s.set_nodelay(true).map_err(FtpError::ConnectionError)?;

            Ok(s)
        });
        let mut tls_on = false;
        let tls12 = self.tls12_only.load(Ordering::Relaxed);
        if let Some((any, only12)) = &self.tls {
            let tls = if tls12 { only12 } else { any };
            // Each control connection gets its own session store: its data
            // connections must resume *its* TLS session (vsftpd's
            // require_ssl_reuse, proftpd, FileZilla Server), not another's.
            let store = Arc::new(suppaftp::rustls::client::ClientSessionMemoryCache::new(8));
            let mut config = (**tls).clone();
            config.resumption = suppaftp::rustls::client::Resumption::store(store);
            tls_on = true;
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
        let pipelining =
            !tls_on && !self.pipeline_off.load(Ordering::Relaxed) && ftp.get_welcome_msg().is_some_and(takes_pipelines);
        let peer_ip = ftp.get_ref().peer_addr().ok().map(|a| a.ip());
        Ok(Session {
            ftp,
            peer_ip,
            epsv: !self.active,
            remote_dir: self.remote_dir.clone(),
            dirs: Arc::clone(&self.dirs),
            rename_over_refused: false,
            features,
            created: Vec::new(),
            tls: tls_on,
            data_opened,
            no_pasv_logged: Arc::clone(&self.no_pasv_logged),
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
            publishing: Arc::clone(&self.publishing),
            timeout: self.timeout,
            limiter: self.limiter.clone(),
        })
    }
}

/// Connects to the first of `addrs` (the addresses of `shown`, a host and
/// port) that greets: an address that refuses the connection, or accepts it
/// and then sends no greeting (or not a 220) within `timeout`, is passed
/// over for the next, as a host name with IPv6 and IPv4 addresses may have
/// a server on one only. The control connection gets `timeout` for reads
/// and writes.
fn connect_first(addrs: &[SocketAddr], shown: &str, timeout: Duration) -> Result<RustlsFtpStream, Failure> {
    let mut last = None;
    for addr in addrs {
        let tcp = match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => tcp,
            Err(e) => {
                last = Some(Failure::new(Kind::Connection, format!("cannot connect to {shown}: {}", describe_io(&e))));
                continue;
            }
        };
        let conn_err = |e: io::Error| Failure::new(Kind::Connection, format!("connection to {shown}: {e}"));
        tcp.set_read_timeout(Some(timeout)).map_err(conn_err)?;
        tcp.set_write_timeout(Some(timeout)).map_err(conn_err)?;
        tcp.set_nodelay(true).map_err(conn_err)?;
        match RustlsFtpStream::connect_with_stream(tcp) {
            Ok(ftp) => return Ok(ftp),
            Err(e) => {
                let mut f = classify(&e, &format!("no FTP greeting from {shown}"));
                if f.kind != Kind::Tls {
                    f.kind = Kind::Connection;
                }
                if addrs.len() > 1 {
                    log::debug!("{f} (at {addr}); trying the next address");
                }
                last = Some(f);
            }
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(Kind::Connection, format!("cannot connect to {shown}: no address"))))
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

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread::JoinHandle;

    use super::*;

    /// A one-connection server on 127.0.0.1 that sends `greeting` (nothing when empty) and then
    /// waits until the client hangs up.
    fn serve(greeting: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(greeting.as_bytes());
            let _ = s.read(&mut [0u8; 64]);
        });
        (addr, thread)
    }

    /// An address where nothing listens.
    fn nowhere() -> SocketAddr {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap()
    }

    #[test]
    fn the_first_address_that_greets_is_taken_after_a_refusal_a_421_and_silence() {
        let (busy, busy_thread) = serve("421 Too many connections\r\n");
        let (silent, silent_thread) = serve("");
        let (good, good_thread) = serve("220 ready\r\n");
        let ftp = connect_first(&[nowhere(), busy, silent, good], "host:21", Duration::from_millis(300)).unwrap();
        assert_eq!(ftp.get_welcome_msg(), Some("220 ready"));
        drop(ftp);
        for t in [busy_thread, silent_thread, good_thread] {
            t.join().unwrap();
        }
    }

    #[test]
    fn when_no_address_greets_the_last_failure_is_told() {
        let (busy, busy_thread) = serve("421 Too many connections\r\n");
        let f = connect_first(&[nowhere(), busy], "host:21", Duration::from_millis(300)).err().unwrap();
        assert_eq!(f.kind, Kind::Connection);
        assert!(f.message.starts_with("no FTP greeting from host:21: 421 Too many connections"), "{f}");
        busy_thread.join().unwrap();
        let f = connect_first(&[nowhere()], "host:21", Duration::from_millis(300)).err().unwrap();
        assert!(f.message.starts_with("cannot connect to host:21: "), "{f}");
    }
}
