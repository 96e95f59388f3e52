//! Data connections and timeouts: active mode, the fallback from EPSV to PASV towards a server
//! behind NAT, and servers that stall (silent from the start, or in the middle of an upload).
//!
//! Each test puts an [`FtpProxy`] (or a listener that never answers) in front of the in-process
//! server, to see the commands on the wire and to make the server misbehave.

use std::io::Cursor;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, Mode};

use crate::support::{
    Behaviour, Daemon, EXIT_OK, FtpProxy, FtpServer, PASSWORD, PROXY_IP, READY, SERVER_UNAVAILABLE, STOPPED,
    ServerEvent, StallFirstUpload, StallState, TEMP_SUFFIX, TIMEOUT, Test, Transparent, USER, Verdict, is_store_verb,
    is_upload_line, temp_files_under,
};

/// A loopback address where nothing listens: a PASV reply that names it sends a client nowhere.
const NOWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// How long running uploads may go on after SIGTERM (README, "Signals").
const GRACE: Duration = Duration::from_secs(10);

/// A few times the `--timeout 1s` these tests give the daemon, far below its 30 s default: what
/// must happen "within a few seconds" of a stall.
const FEW_SECONDS: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `len` pseudo-random bytes, a function of `seed` (BLAKE3 in XOF mode).
fn random_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

/// The daemon's diagnostics and the commands the proxy saw, for a panic message.
fn context(d: &Daemon, proxy: &FtpProxy) -> String {
    format!(
        "{}\n--- proxy commands ---\n{:#?}\n--- proxy data connections ---\n{:#?}\n--- proxy problems ---\n{:#?}",
        d.diagnostics(),
        proxy.commands(),
        proxy.data_connections(),
        proxy.problems()
    )
}

/// The STORs the server recorded, by path.
fn stored_paths(server: &FtpServer) -> Vec<String> {
    server
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, .. } => Some(path),
            _ => None,
        })
        .collect()
}

/// Whether a data command (one that opens a data connection) has this verb.
fn is_data_verb(verb: &str) -> bool {
    matches!(verb, "STOR" | "APPE" | "RETR" | "LIST" | "NLST" | "MLSD")
}

/// Whether an upload command has this verb.
/// A suppaftp client through `proxy`, logged in, binary, with every read and write (control and
/// passive data connections) bounded by `timeout`.
fn client_through(proxy: &FtpProxy, timeout: Duration) -> FtpStream {
    let stream = FtpStream::connect((proxy.ip(), proxy.port())).expect("connect to the proxy");
    stream.get_ref().set_read_timeout(Some(timeout)).unwrap();
    stream.get_ref().set_write_timeout(Some(timeout)).unwrap();
    let mut ftp = stream.passive_stream_builder(move |addr| {
        let s = TcpStream::connect_timeout(&addr, timeout).map_err(FtpError::ConnectionError)?;
        s.set_read_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
        s.set_write_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
        Ok(s)
    });
    ftp.login(USER, PASSWORD).expect("log in through the proxy");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    ftp
}

// ---------------------------------------------------------------------------------------------
// Misbehaving servers
// ---------------------------------------------------------------------------------------------

/// A server behind NAT that does not understand EPSV: EPSV is answered `500` by the proxy, and
/// its `227` replies announce [`NOWHERE`] instead of the proxy's own address, where the data
/// connections are really taken.
struct NoEpsvBehindNat;

impl Behaviour for NoEpsvBehindNat {
    fn command(&self, verb: &str, _line: &str) -> Verdict {
        if verb == "EPSV" { Verdict::Answer("500 EPSV not understood".into()) } else { Verdict::Forward }
    }

    fn announced_ip(&self) -> Option<Ipv4Addr> {
        Some(NOWHERE)
    }
}

/// A "server" on 127.0.0.1 that accepts connections and never sends a byte. Dropping it closes
/// the connections and joins its thread.
struct SilentServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
            std::thread::Builder::new()
                .name(format!("silent-server-{port}"))
                .spawn(move || {
                    let mut held = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        match listener.accept() {
                            Ok((s, _)) => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                                held.push(s);
                            }
                            // WouldBlock, or a transient accept error: look again shortly.
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                    for s in held {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                })
                .expect("spawn the silent server")
        };
        SilentServer { port, stop, accepted, thread: Some(thread) }
    }

    fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks of the misbehaving servers themselves
// ---------------------------------------------------------------------------------------------

#[test]
fn dataconn_proxy_refuses_epsv_and_announces_an_address_where_nothing_listens() {
    let server = FtpServer::start();
    std::fs::create_dir_all(server.root().join("upload")).unwrap();
    let proxy = FtpProxy::start(server.port(), NoEpsvBehindNat);
    let mut ftp = client_through(&proxy, TIMEOUT);

    ftp.set_mode(Mode::ExtendedPassive);
    let err = ftp.put_file("/upload/epsv.txt", &mut Cursor::new(b"x".to_vec())).expect_err("STOR after EPSV");
    assert!(err.to_string().contains("500"), "EPSV was not refused with 500: {err}");

    // PASV as announced: to 127.0.0.3, where nothing listens.
    ftp.set_mode(Mode::Passive);
    let err = ftp.put_file("/upload/announced.txt", &mut Cursor::new(b"x".to_vec())).expect_err("STOR to 127.0.0.3");
    assert!(matches!(err, FtpError::ConnectionError(_)), "not a connection error: {err:?}");

    // PASV with the NAT workaround: to the control connection's peer, the proxy.
    ftp.set_passive_nat_workaround(true);
    let bytes = random_bytes("through NAT", 100_000);
    ftp.put_file("/upload/nat.bin", &mut Cursor::new(bytes.clone())).expect("STOR with the NAT workaround");
    let _ = ftp.quit();

    assert_eq!(server.remote_file("upload/nat.bin"), Some(bytes));
    assert_eq!(server.remote_file("upload/epsv.txt"), None);
    assert_eq!(server.remote_file("upload/announced.txt"), None);
    assert_eq!(proxy.count("EPSV"), 1, "{:#?}", proxy.commands());
    let data = proxy.data_connections();
    let stores: Vec<_> = data.iter().filter(|c| c.verb.as_deref() == Some("STOR")).collect();
    assert_eq!(stores.len(), 1, "{data:#?}");
    assert_eq!(stores[0].at.ip(), PROXY_IP, "{data:#?}");
    assert_eq!(proxy.problems(), Vec::<String>::new());
}

#[test]
fn dataconn_proxy_stalls_the_first_upload_only() {
    let server = FtpServer::start();
    std::fs::create_dir_all(server.root().join("upload")).unwrap();
    let state = Arc::new(StallState::default());
    let proxy = FtpProxy::start(server.port(), StallFirstUpload::new(1000, &state));
    let bytes = random_bytes("stalled", 4 * 1024 * 1024);

    let mut ftp = client_through(&proxy, Duration::from_millis(500));
    let started = Instant::now();
    let err = ftp.put_file("/upload/a.bin", &mut Cursor::new(bytes.clone())).expect_err("a stalled STOR");
    assert!(matches!(err, FtpError::ConnectionError(_)), "not a timeout: {err:?}");
    assert!(started.elapsed() < FEW_SECONDS, "the stalled STOR took {:?} to fail", started.elapsed());
    assert!(state.held.load(Ordering::SeqCst));
    drop(ftp);

    let mut ftp = client_through(&proxy, TIMEOUT);
    ftp.put_file("/upload/b.bin", &mut Cursor::new(bytes.clone())).expect("the second STOR");
    let _ = ftp.quit();
    assert_eq!(server.remote_file("upload/b.bin"), Some(bytes));
    assert_eq!(proxy.problems(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Active mode
// ---------------------------------------------------------------------------------------------

#[test]
fn active_mode_uploads_over_port_and_never_asks_for_passive() {
    let t = Test::new().arg("--active");
    // On 127.0.0.1, the proxy only relays the control connection: the server connects back to
    // the daemon's PORT address from 127.0.0.1, the control connection's peer, as a client in
    // active mode requires.
    let proxy = FtpProxy::start_on(Ipv4Addr::LOCALHOST, t.server().port(), Transparent);
    let t = t.port_arg(&proxy.port().to_string());
    let big = random_bytes("active big", 1024 * 1024 + 7);
    t.write("big.bin", &big);
    let d = t.start();
    d.wait_remote("big.bin", &big);
    let text = b"line one\nline two\r\nno final newline \x00\xff".to_vec();
    d.write("sub/later.txt", &text);
    d.wait_remote("sub/later.txt", &text);
    d.wait_for_upload_line("big.bin");
    d.wait_for_upload_line("sub/later.txt");
    let ctx = || context(&d, &proxy);

    let commands = proxy.commands();
    let verbs = proxy.verbs();
    let passive = verbs.iter().filter(|v| *v == "EPSV" || *v == "PASV").count();
    assert_eq!(passive, 0, "the daemon asked for passive mode with --active\n{}", ctx());
    let ports: Vec<&String> = commands
        .iter()
        .filter(|c| {
            let verb = c.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            verb == "PORT" || verb == "EPRT"
        })
        .collect();
    let data_commands = verbs.iter().filter(|v| is_data_verb(v)).count();
    assert!(proxy.count("STOR") >= 2, "fewer than two STORs\n{}", ctx());
    assert!(
        ports.len() >= data_commands,
        "{} PORT/EPRT for {data_commands} data commands: not every data connection was active\n{}",
        ports.len(),
        ctx()
    );
    for port in &ports {
        // PORT 127,0,0,1,p1,p2 or EPRT |1|127.0.0.1|p|: the daemon's side of the control
        // connection, which the server can reach.
        let arg = port.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            arg.starts_with("127,0,0,1,") || arg.starts_with("|1|127.0.0.1|"),
            "{port:?} does not name the daemon's address 127.0.0.1\n{}",
            ctx()
        );
    }
    assert!(proxy.data_connections().is_empty());
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
    let stored = stored_paths(d.server());
    for name in ["/upload/.big.bin", "/upload/sub/.later.txt"] {
        assert!(stored.contains(&format!("{name}{TEMP_SUFFIX}")), "no STOR of {name}{TEMP_SUFFIX}\n{}", ctx());
    }
}

/// A server in active mode that accepts the first upload's data connection and never reads
/// from it: the proxy answers the PORT before it (and anything before it) itself, connects to
/// the daemon's address and holds that connection, unread, until it is dropped. Data commands
/// other than a STOR get a `425` until then (the daemon asks again at once, with a new PORT);
/// afterwards everything passes unchanged to the server.
#[derive(Default)]
struct NeverReadFirstActiveUpload {
    /// The address of the last PORT answered here.
    port: std::sync::Mutex<Option<SocketAddr>>,
    /// The upload's data connection, held until the proxy is dropped.
    held: std::sync::Mutex<Option<TcpStream>>,
}

impl Behaviour for NeverReadFirstActiveUpload {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        if self.held.lock().unwrap().is_some() {
            return Verdict::Forward;
        }
        if verb == "PORT" {
            let n: Vec<u16> =
                line.split_whitespace().nth(1).unwrap_or_default().split(',').filter_map(|n| n.parse().ok()).collect();
            assert_eq!(n.len(), 6, "{line}");
            let ip = Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
            *self.port.lock().unwrap() = Some(SocketAddr::from((ip, n[4] * 256 + n[5])));
            return Verdict::Answer("200 PORT command successful (test proxy)".into());
        }
        if is_data_verb(verb) {
            let Some(addr) = self.port.lock().unwrap().take() else { return Verdict::Forward };
            if verb != "STOR" {
                return Verdict::Answer("425 Cannot open the data connection just now (test proxy)".into());
            }
            let data = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to the daemon's PORT address");
            *self.held.lock().unwrap() = Some(data);
            return Verdict::Answer("150 Opening BINARY mode data connection (test proxy)".into());
        }
        Verdict::Forward
    }
}

#[test]
fn an_active_upload_the_server_never_reads_is_given_up_after_the_timeout_and_sent_again() {
    // Far more than the socket buffers of both sides hold: the daemon blocks in a write.
    const SIZE: usize = 32 * 1024 * 1024;
    let behaviour = Arc::new(NeverReadFirstActiveUpload::default());
    let t = Test::new().args(["--active", "--timeout", "1s", "--log-level", "debug"]);
    let proxy = FtpProxy::start_on(Ipv4Addr::LOCALHOST, t.server().port(), Shared(Arc::clone(&behaviour)));
    let t = t.port_arg(&proxy.port().to_string());
    let d = t.start();
    let bytes = random_bytes("never read", SIZE);
    d.write("never-read.bin", &bytes);
    let ctx = || context(&d, &proxy);
    d.wait_until_for(TIMEOUT, "never-read.bin arrives", || d.remote("never-read.bin").as_deref() == Some(&bytes[..]));
    assert!(behaviour.held.lock().unwrap().is_some(), "no upload was held: the test proves nothing\n{}", ctx());
    assert!(
        d.own_log().lines().any(|l| l.contains("never-read.bin") && l.contains("timed out")),
        "no log line says the upload of never-read.bin timed out\n{}",
        ctx()
    );
    d.write("later.txt", b"later");
    d.wait_remote("later.txt", b"later");
    assert!(d.try_exit().is_none(), "{}", ctx());
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
}

/// A behaviour the test keeps a handle on.
struct Shared<B>(Arc<B>);

impl<B: Behaviour> Behaviour for Shared<B> {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        self.0.command(verb, line)
    }
}

// ---------------------------------------------------------------------------------------------
// EPSV refused: PASV to the control connection's peer
// ---------------------------------------------------------------------------------------------

#[test]
fn a_server_refusing_epsv_gets_pasv_connections_to_its_control_address_not_the_announced_one() {
    // One connection: each session asks for EPSV once, then keeps to PASV.
    let t = Test::new().args(["--parallel", "1"]);
    let proxy = FtpProxy::start(t.server().port(), NoEpsvBehindNat);
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    let first = random_bytes("first through NAT", 300_000);
    t.write("first.bin", &first);
    let d = t.start();
    d.wait_remote("first.bin", &first);
    d.write("dir/second.txt", b"second, after the switch to PASV");
    d.wait_remote("dir/second.txt", b"second, after the switch to PASV");
    d.wait_for_upload_line("first.bin");
    d.wait_for_upload_line("dir/second.txt");
    // Every PASV so far had its data connection (accepted before the command that uses it).
    d.wait_until("every PASV's data connection reached the proxy", || {
        proxy.data_connections().len() == proxy.count("PASV")
    });
    let ctx = || context(&d, &proxy);

    let verbs = proxy.verbs();
    let first_epsv = verbs.iter().position(|v| v == "EPSV");
    let first_pasv = verbs.iter().position(|v| v == "PASV");
    assert!(
        first_epsv.is_some() && first_pasv.is_some() && first_epsv < first_pasv,
        "the daemon did not try EPSV first, then PASV\n{}",
        ctx()
    );
    assert_eq!(
        proxy.count("EPSV"),
        proxy.count("USER"),
        "a session asked for EPSV again after the server refused it\n{}",
        ctx()
    );

    let data = proxy.data_connections();
    let stores = data.iter().filter(|c| c.verb.as_deref().is_some_and(is_store_verb)).count();
    assert!(stores >= 2, "fewer than two uploads over PASV data connections\n{}", ctx());
    for conn in &data {
        assert_eq!(conn.at.ip(), PROXY_IP, "a data connection arrived elsewhere than 127.0.0.2\n{}", ctx());
        // The premise: the announced address leads nowhere.
        let nowhere = SocketAddr::from((NOWHERE, conn.at.port()));
        assert!(
            TcpStream::connect_timeout(&nowhere, Duration::from_secs(1)).is_err(),
            "something listens on {nowhere}: the test proves nothing"
        );
    }
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
}

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn a_silent_server_is_given_up_after_the_timeout_and_the_daemon_starts_anyway() {
    let silent = SilentServer::start();
    let t = Test::new().args(["--timeout", "1s"]).port_arg(&silent.port().to_string());
    // Work for the server, so that the daemon keeps trying to reach it.
    t.write("pending.txt", b"waits for a server that answers");
    let started = Instant::now();
    let d = t.spawn();
    let warning = || {
        let text = format!("{}\n{}", d.stderr(), d.own_log());
        text.lines().find(|l| l.contains("starting anyway")).map(str::to_owned)
    };
    d.wait_until_for(FEW_SECONDS, "the daemon warns that it starts anyway", || warning().is_some());
    let line = warning().unwrap_or_default().to_lowercase();
    assert!(
        line.contains("warning") && (line.contains("greeting") || line.contains("timed out")),
        "the warning does not say the server did not answer in time: {line}"
    );
    d.wait_ready();
    assert!(
        started.elapsed() < FEW_SECONDS,
        "{READY:?} came {:?} after the start with --timeout 1s\n{}",
        started.elapsed(),
        d.diagnostics()
    );
    assert!(silent.accepted() >= 1);

    // It goes on trying, and gives each attempt up in time.
    d.wait_until_for(FEW_SECONDS, "the log reports the server unavailable", || {
        d.own_log().contains(SERVER_UNAVAILABLE)
    });
    d.wait_until_for(FEW_SECONDS, "the daemon connects to the silent server again", || silent.accepted() >= 2);

    d.signal(libc::SIGTERM);
    let status = d.wait_exit(GRACE);
    assert_eq!(status.code(), Some(EXIT_OK), "exit status after SIGTERM: {status}\n{}", d.diagnostics());
    let log = d.own_log();
    assert!(log.contains(STOPPED), "no {STOPPED:?} line after SIGTERM\n{}", d.diagnostics());
}

#[test]
fn an_upload_stalled_mid_transfer_is_given_up_after_the_timeout_and_sent_again() {
    // Far more than the daemon's send buffer and the proxy's receive buffer hold: the daemon
    // blocks in a write to the data connection, and must give that up.
    const SIZE: usize = 16 * 1024 * 1024;
    const AFTER: usize = 256 * 1024;
    let state = Arc::new(StallState::default());
    // Debug: a worker whose kept-open session fails retries on a new one at once, and says so
    // at debug level only.
    let t = Test::new().args(["--timeout", "1s", "--log-level", "debug"]);
    let proxy = FtpProxy::start(t.server().port(), StallFirstUpload::new(AFTER, &state));
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    let bytes = random_bytes("stalled.bin", SIZE);
    t.write("stalled.bin", &bytes);
    let d = t.start();
    let final_path = d.remote_root().join("stalled.bin");

    // Until it arrives, stalled.bin must never show up under its final name with other bytes.
    let mut wrong: Vec<String> = Vec::new();
    let arrived = crate::support::poll_until(TIMEOUT, || match std::fs::metadata(&final_path) {
        Ok(m) if m.len() == SIZE as u64 => match std::fs::read(&final_path) {
            Ok(b) if b == bytes => true,
            Ok(_) => {
                wrong.push(format!("{SIZE} bytes, but not the file's"));
                false
            }
            Err(_) => false,
        },
        Ok(m) => {
            wrong.push(format!("{} of {SIZE} bytes", m.len()));
            false
        }
        Err(_) => false,
    });
    wrong.dedup();
    let ctx = || context(&d, &proxy);
    assert!(wrong.is_empty(), "stalled.bin was seen under its final name with {wrong:?}\n{}", ctx());
    assert!(arrived, "stalled.bin did not arrive complete within {TIMEOUT:?}\n{}", ctx());

    // The proxy did stall the first upload, which the daemon gave up and sent again.
    assert!(state.held.load(Ordering::SeqCst), "the proxy never stalled an upload: the test proves nothing\n{}", ctx());
    let stores = proxy.data_connections().iter().filter(|c| c.verb.as_deref().is_some_and(is_store_verb)).count();
    assert!(stores >= 2, "{stores} upload data connections: no second attempt\n{}", ctx());
    let log = d.own_log();
    assert!(
        log.lines().any(|l| l.contains("stalled.bin") && l.to_lowercase().contains("timed out")),
        "no log line says the upload of stalled.bin timed out\n{}",
        ctx()
    );
    d.wait_for_upload_line("stalled.bin");
    assert_eq!(
        d.own_log().lines().filter(|l| is_upload_line(l, "stalled.bin")).count(),
        1,
        "stalled.bin was not reported uploaded exactly once\n{}",
        ctx()
    );
    d.wait_until("no temporary upload is left on the server", || temp_files_under(d.server().root()).is_empty());
    assert_eq!(d.remote("stalled.bin").as_deref(), Some(bytes.as_slice()));
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
}
