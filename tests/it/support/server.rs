//! An in-process FTP server (libunftp + the unftp-sbe-fs filesystem backend) over a fresh
//! temporary directory, so tests can look at what arrived straight on disk.
//!
//! Each server runs on its own thread with its own tokio runtime, on a port found by binding
//! `127.0.0.1:0`, with its own block of passive ports so parallel tests do not fight over them.
//! `stop`/`restart` keep the port and the files, for tests of an unreachable server.
//!
//! [`FtpServer::start_tls`] requires explicit FTPS on the control and the data connections
//! (libunftp's rustls, TLS 1.2 and 1.3, session IDs and tickets), with the test-only
//! certificate of `src/ftp/testdata` (for `localhost` and 127.0.0.1, signed by [`TEST_CA`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use libunftp::ServerBuilder;
use libunftp::notification::{DataEvent, DataListener, EventMeta};
use libunftp::options::{ActivePassiveMode, FtpsRequired, Shutdown};
use tempfile::TempDir;
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};
use unftp_sbe_fs::Filesystem;

use super::TIMEOUT;
use super::trees::files_under;

/// The only account the test server knows.
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "s3cret-pass";

/// The CA that signed the FTPS test server's certificate (`--ca-file`).
pub const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ftp/testdata/ca.pem");
const TEST_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ftp/testdata/server.pem");
const TEST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ftp/testdata/server.key");

const PASSIVE_FIRST: u16 = 50_000;
const PASSIVE_BLOCKS: u16 = 200;
const PASSIVE_BLOCK: u16 = 50;
static NEXT_PASSIVE_BLOCK: AtomicU16 = AtomicU16::new(0);

/// Accepts `alice` / `s3cret-pass` and nothing else (libunftp answers 530).
#[derive(Debug)]
struct OneUser;

#[async_trait]
impl Authenticator for OneUser {
    async fn authenticate(&self, username: &str, creds: &Credentials) -> Result<Principal, AuthenticationError> {
        if username != USER {
            return Err(AuthenticationError::BadUser);
        }
        match creds.password.as_deref() {
            Some(PASSWORD) => Ok(Principal { username: username.to_owned() }),
            _ => Err(AuthenticationError::BadPassword),
        }
    }
}

/// A change a client made on the server, as libunftp reports it once the command succeeded
/// (before its reply is sent). Paths are absolute FTP paths, `/`-separated, as the client gave
/// them (the daemon sends absolute paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A STOR (or APPE) finished: `bytes` were written to `path`.
    Stored { path: String, bytes: u64 },
    /// A DELE succeeded.
    Deleted { path: String },
    /// An RNFR/RNTO pair succeeded (file or directory).
    Renamed { from: String, to: String },
    /// An MKD succeeded.
    MadeDir { path: String },
    /// An RMD succeeded.
    RemovedDir { path: String },
}

/// Records every [`ServerEvent`], across stops and restarts of the server.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<ServerEvent>>);

/// The listener handed to libunftp: forwards to the shared [`Recorder`].
#[derive(Debug)]
struct RecordingListener(Arc<Recorder>);

#[async_trait]
impl DataListener for RecordingListener {
    async fn receive_data_event(&self, e: DataEvent, _: EventMeta) {
        let event = match e {
            DataEvent::Put { path, bytes } => ServerEvent::Stored { path, bytes },
            DataEvent::Deleted { path } => ServerEvent::Deleted { path },
            DataEvent::Renamed { from, to } => ServerEvent::Renamed { from, to },
            DataEvent::MadeDir { path } => ServerEvent::MadeDir { path },
            DataEvent::RemovedDir { path } => ServerEvent::RemovedDir { path },
            DataEvent::Got { .. } => return,
        };
        self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }
}

struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// A running (or stopped) in-process FTP server. Dropping it shuts it down.
pub struct FtpServer {
    root: TempDir,
    ip: IpAddr,
    port: u16,
    passive: RangeInclusive<u16>,
    running: Mutex<Option<Running>>,
    recorder: Arc<Recorder>,
    /// FTPS required on control and data connections.
    tls: bool,
}

impl FtpServer {
    /// Starts a server over a new empty temporary directory and returns once it accepts
    /// TCP connections.
    pub fn start() -> FtpServer {
        FtpServer::start_on(Ipv4Addr::LOCALHOST.into())
    }

    /// [`FtpServer::start`] on another loopback address (`::1`: IPv6).
    pub fn start_on(ip: IpAddr) -> FtpServer {
        FtpServer::start_with(ip, false)
    }

    /// [`FtpServer::start`] requiring FTPS on control and data connections.
    pub fn start_tls() -> FtpServer {
        FtpServer::start_with(Ipv4Addr::LOCALHOST.into(), true)
    }

    fn start_with(ip: IpAddr, tls: bool) -> FtpServer {
        let root = tempfile::Builder::new()
            .prefix("ftpmonitor-it-server.")
            .tempdir()
            .expect("create the server's root directory");
        let port = {
            let probe = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
            probe.local_addr().expect("local_addr").port()
        };
        let block = NEXT_PASSIVE_BLOCK.fetch_add(1, Ordering::Relaxed) % PASSIVE_BLOCKS;
        let first = PASSIVE_FIRST + block * PASSIVE_BLOCK;
        let server = FtpServer {
            root,
            ip,
            port,
            passive: first..=first + PASSIVE_BLOCK - 1,
            running: Mutex::new(None),
            recorder: Arc::default(),
            tls,
        };
        server.restart();
        server
    }

    /// The control port on [`FtpServer::ip`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: 127.0.0.1 unless started with
    /// [`FtpServer::start_on`].
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The server-side filesystem root: `/` for FTP clients.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Whether the server requires FTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the server currently listens.
    pub fn is_running(&self) -> bool {
        self.running.lock().expect("server lock").is_some()
    }

    /// The bytes of `rel` (relative to the server root, `/`-separated), read straight from disk.
    pub fn remote_file(&self, rel: &str) -> Option<Vec<u8>> {
        let path = self.root().join(rel.trim_start_matches('/'));
        if path.symlink_metadata().ok()?.is_file() { std::fs::read(path).ok() } else { None }
    }

    /// Every regular file under the server root, keyed by its `/`-separated relative path.
    pub fn remote_files(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(self.root())
    }

    /// Every change clients made so far (STOR, DELE, RNFR/RNTO, MKD, RMD), in order.
    pub fn events(&self) -> Vec<ServerEvent> {
        self.recorder.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How many events were recorded so far: a mark for [`FtpServer::events_since`].
    pub fn event_mark(&self) -> usize {
        self.recorder.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// The events recorded after `mark` (see [`FtpServer::event_mark`]).
    pub fn events_since(&self, mark: usize) -> Vec<ServerEvent> {
        self.events().into_iter().skip(mark).collect()
    }

    /// Stops listening and drops every session. Files stay. Idempotent.
    pub fn stop(&self) {
        let running = self.running.lock().expect("server lock").take();
        if let Some(running) = running {
            let _ = running.shutdown.send(());
            let _ = running.thread.join();
        }
        // The listener is closed once the thread is gone; make sure of it so that a
        // following restart or a "server down" test sees a refused connection.
        let deadline = Instant::now() + TIMEOUT;
        while accepts(self.ip, self.port) {
            assert!(
                Instant::now() < deadline,
                "FTP server on port {} still accepts connections after stop()",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (Re)starts the server on the same port and root; returns once it accepts connections.
    /// A no-op when it is already running.
    pub fn restart(&self) {
        let mut guard = self.running.lock().expect("server lock");
        if guard.is_some() {
            return;
        }
        let (shutdown, on_shutdown) = tokio::sync::oneshot::channel::<()>();
        let (failed_tx, failed_rx) = mpsc::channel::<String>();
        let root: Arc<PathBuf> = Arc::new(self.root().to_path_buf());
        let passive = self.passive.clone();
        let recorder = Arc::clone(&self.recorder);
        let addr = SocketAddr::from((self.ip, self.port));
        let tls = self.tls;
        let thread = std::thread::Builder::new()
            .name(format!("ftp-server-{}", self.port))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = failed_tx.send(format!("tokio runtime: {e}"));
                        return;
                    }
                };
                let storage_root = Arc::clone(&root);
                let builder = ServerBuilder::with_authenticator(
                    Box::new(move || Filesystem::new(storage_root.as_path()).expect("open the server root")),
                    Arc::new(OneUser),
                )
                .greeting("ftpmonitor test server")
                .notify_data(RecordingListener(recorder))
                .passive_ports(passive)
                .active_passive_mode(ActivePassiveMode::ActiveAndPassive)
                .shutdown_indicator(async move {
                    let _ = on_shutdown.await;
                    Shutdown::new().grace_period(Duration::from_millis(500))
                });
                let builder = if tls {
                    builder.ftps(TEST_CERT, TEST_KEY).ftps_required(FtpsRequired::All, FtpsRequired::All)
                } else {
                    builder
                };
                let built = builder.build();
                let server = match built {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = failed_tx.send(format!("build: {e}"));
                        return;
                    }
                };
                // Err after a shutdown only means the grace period ran out with sessions open.
                let result = rt.block_on(server.listen(addr.to_string()));
                if let Err(e) = result {
                    let _ = failed_tx.send(format!("listen on {addr}: {e}"));
                }
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn the FTP server thread");

        let deadline = Instant::now() + TIMEOUT;
        loop {
            if accepts(self.ip, self.port) {
                break;
            }
            if thread.is_finished() {
                let why = failed_rx.try_recv().unwrap_or_else(|_| "thread ended".to_owned());
                let _ = thread.join();
                panic!("FTP server on port {} failed to start: {why}", self.port);
            }
            assert!(
                Instant::now() < deadline,
                "FTP server on port {} did not accept connections within {TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        *guard = Some(Running { shutdown, thread });
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        let running = match self.running.get_mut() {
            Ok(r) => r.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(running) = running {
            let _ = running.shutdown.send(());
            let _ = running.thread.join();
        }
    }
}

fn accepts(ip: IpAddr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(500)).is_ok()
}
