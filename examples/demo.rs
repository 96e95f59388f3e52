//! See ftpmonitor work without an FTP server of your own:
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! The demo starts an FTP server inside this process (libunftp over a temporary
//! directory, user `demo` / password `demo`). It runs the real daemon in the
//! foreground on a second temporary directory and drops a few files into it. It
//! then waits until the server's directory holds the same bytes, prints what
//! arrived and stops the daemon with SIGTERM, as a service manager would.
//! Everything it creates is removed at the end.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use ftpmonitor::cli::Cli;
use libunftp::ServerBuilder;
use libunftp::options::{ActivePassiveMode, Shutdown};
use tempfile::TempDir;
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};
use unftp_sbe_fs::Filesystem;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The embedded server's only account.
const USER: &str = "demo";
const PASSWORD: &str = "demo";
/// Where the daemon mirrors the watch directory on the server.
const REMOTE_DIR: &str = "/incoming";
/// How long any one step may take before the demo gives up.
const TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    ftpmonitor::logging::init(log::LevelFilter::Info);
    // SAFETY: nothing has started a thread yet (the logger spawns none), so
    // no other thread can read or write the environment concurrently. The
    // daemon reads the password from here, as it would in production.
    unsafe { std::env::set_var("FTPMONITOR_PASSWORD", PASSWORD) };

    match demo() {
        Ok(()) => {
            println!("demo: done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<()> {
    let server = DemoServer::start()?;
    println!(
        "demo: FTP server listening on 127.0.0.1:{} (user {USER:?}, password {PASSWORD:?}), files stored in {}",
        server.port,
        server.root.path().display()
    );

    let work = tempfile::Builder::new().prefix("ftpmonitor-demo.").tempdir()?;
    let watch = work.path().join("watch");
    std::fs::create_dir(&watch)?;
    let pid_file = work.path().join("ftpmonitor.pid");
    let state_dir = work.path().join("state");
    let args: Vec<String> = vec![
        "ftpmonitor".into(),
        "--foreground".into(),
        "--log-file".into(),
        "-".into(),
        "--cooldown".into(),
        "0.5".into(),
        "--pid-file".into(),
        path_arg(&pid_file)?,
        "--state-dir".into(),
        path_arg(&state_dir)?,
        "--user".into(),
        USER.into(),
        path_arg(&watch)?,
        "127.0.0.1".into(),
        server.port.to_string(),
        REMOTE_DIR.into(),
    ];
    println!("demo: starting the daemon: FTPMONITOR_PASSWORD={PASSWORD} {}", args.join(" "));
    let cli = Cli::try_parse_from(&args)?;
    let monitor = std::thread::Builder::new().name("ftpmonitor".into()).spawn(move || ftpmonitor::app::run(cli))?;

    wait_for("the daemon to write its PID file", || {
        if monitor.is_finished() {
            return Err("the daemon exited during start-up (see its log above)".into());
        }
        Ok(std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok()))
    })
    .map(|pid| println!("demo: daemon ready, PID file says {pid}"))?;

    let remote_root = server.root.path().join(REMOTE_DIR.trim_start_matches('/'));

    println!("demo: dropping three files into {}", watch.display());
    std::fs::write(watch.join("hello.txt"), "Hello from ftpmonitor!\nThis file was uploaded to the FTP server.\n")?;
    let binary: Vec<u8> = (0..=255u8).cycle().take(64 * 1024 + 7).collect();
    std::fs::write(watch.join("data.bin"), &binary)?;
    let nested = watch.join("reports").join("2026").join("11");
    std::fs::create_dir_all(&nested)?;
    std::fs::write(nested.join("summary.csv"), "day,files\n2026-11-01,3\n2026-11-02,5\n")?;
    println!("demo: waiting for the server to hold identical copies (cooldown 0.5 s)");
    wait_in_sync(&watch, &remote_root, &monitor)?;
    println!("demo: all three files arrived");

    println!("demo: appending a line to hello.txt");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(watch.join("hello.txt"))?;
        f.write_all(b"A second line, added after the first upload.\n")?;
    }
    wait_in_sync(&watch, &remote_root, &monitor)?;

    println!("demo: server side, under {REMOTE_DIR}:");
    for (rel, bytes) in files_under(&remote_root)? {
        println!("demo:   {rel:<32} {:>6} bytes", bytes.len());
    }
    println!("demo: every file matches the watch directory byte for byte");

    println!("demo: sending SIGTERM to stop the daemon cleanly");
    // SAFETY: kill(2) with our own PID and a valid signal number has no
    // memory-safety preconditions; the daemon's signal-hook handler turns it
    // into an orderly stop.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    if rc != 0 {
        return Err(format!("kill(SIGTERM): {}", std::io::Error::last_os_error()).into());
    }
    wait_for("the daemon to stop", || Ok(monitor.is_finished().then_some(())))?;
    let code = monitor.join().map_err(|_| "the daemon's thread panicked")?;
    if code != ExitCode::SUCCESS {
        return Err(format!("the daemon stopped with {code:?}, expected success").into());
    }
    println!("demo: daemon stopped with exit status 0");

    server.stop()?;
    println!("demo: FTP server stopped");
    Ok(())
}

/// A path as a command-line argument (the temporary directories are UTF-8 in practice).
fn path_arg(p: &Path) -> Result<String> {
    p.to_str().map(str::to_owned).ok_or_else(|| format!("path is not UTF-8: {}", p.display()).into())
}

/// Polls `check` until it yields a value, fails, or [`TIMEOUT`] passes.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {}s waiting for {what}", TIMEOUT.as_secs()).into());
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until the files under `remote` are exactly the files under `local`,
/// byte for byte (so no upload is still under its temporary name either).
fn wait_in_sync(local: &Path, remote: &Path, monitor: &JoinHandle<ExitCode>) -> Result<()> {
    wait_for("the server to hold the same files as the watch directory", || {
        if monitor.is_finished() {
            return Err("the daemon stopped unexpectedly (see its log above)".into());
        }
        let want = files_under(local)?;
        let have = if remote.is_dir() { files_under(remote)? } else { BTreeMap::new() };
        Ok((want == have).then_some(()))
    })
}

/// Every regular file under `root`, keyed by its `/`-separated relative path.
fn files_under(root: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                // A file can vanish between listing and reading (a rename in
                // progress on the server); the next poll sees the new state.
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        out.insert(rel, bytes);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

/// Accepts `demo` / `demo` and nothing else.
#[derive(Debug)]
struct DemoUser;

#[async_trait]
impl Authenticator for DemoUser {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> std::result::Result<Principal, AuthenticationError> {
        if username != USER {
            return Err(AuthenticationError::BadUser);
        }
        match creds.password.as_deref() {
            Some(PASSWORD) => Ok(Principal { username: username.to_owned() }),
            _ => Err(AuthenticationError::BadPassword),
        }
    }
}

/// The embedded FTP server: its own thread and tokio runtime, files in a temporary directory.
struct DemoServer {
    root: TempDir,
    port: u16,
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<std::result::Result<(), String>>,
}

impl DemoServer {
    /// Starts the server and returns once it accepts TCP connections.
    fn start() -> Result<Self> {
        let root = tempfile::Builder::new().prefix("ftpmonitor-demo-server.").tempdir()?;
        // Fail here, with a proper error, if the backend cannot open the root.
        Filesystem::new(root.path())?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let storage_root: Arc<PathBuf> = Arc::new(root.path().to_path_buf());
        let (shutdown, on_shutdown) = tokio::sync::oneshot::channel::<()>();

        let thread = std::thread::Builder::new().name("ftp-server".into()).spawn(
            move || -> std::result::Result<(), String> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("tokio runtime: {e}"))?;
                let server = ServerBuilder::with_authenticator(
                    Box::new(move || {
                        // Opened once successfully above; the generator has no way
                        // to report an error, and the directory outlives the server.
                        Filesystem::new(storage_root.as_path())
                            .unwrap_or_else(|e| panic!("cannot open {}: {e}", storage_root.display()))
                    }),
                    Arc::new(DemoUser),
                )
                .greeting("ftpmonitor demo server")
                .passive_ports(50000..=50100)
                .active_passive_mode(ActivePassiveMode::ActiveAndPassive)
                .shutdown_indicator(async move {
                    let _ = on_shutdown.await;
                    Shutdown::new().grace_period(Duration::from_millis(500))
                })
                .build()
                .map_err(|e| format!("building the FTP server: {e}"))?;
                let result = rt.block_on(server.listen(addr.to_string()));
                rt.shutdown_timeout(Duration::from_secs(1));
                result.map_err(|e| format!("FTP server on {addr}: {e}"))
            },
        )?;

        let listening = wait_for("the FTP server to accept connections", || {
            if thread.is_finished() {
                return Ok(Some(false));
            }
            Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok().map(|_| true))
        })?;
        if !listening {
            return Err(match thread.join() {
                Ok(Err(e)) => e.into(),
                Ok(Ok(())) => "the FTP server stopped during start-up".into(),
                Err(_) => "the FTP server thread panicked during start-up".into(),
            });
        }
        Ok(Self { root, port, shutdown, thread })
    }

    /// Stops listening, closes the sessions and waits for the server's thread.
    fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        wait_for("the FTP server to stop", || Ok(self.thread.is_finished().then_some(())))?;
        match self.thread.join() {
            Ok(result) => result.map_err(Into::into),
            Err(_) => Err("the FTP server thread panicked".into()),
        }
    }
}
