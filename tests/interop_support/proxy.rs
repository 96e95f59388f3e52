//! A fault-injecting FTP proxy for plain FTP: ftpmonitor connects to it instead of the
//! server. The control connection is passed through, except that every PASV (227) and
//! EPSV (229) reply is rewritten to announce a port of the proxy's own, which forwards the
//! data connection to the port the server announced. The proxy counts the bytes clients
//! send on data connections (uploads) and can cut one upload's data connection after N
//! bytes with a TCP reset on both sides, like a network failure mid-transfer.
//!
//! Every socket has a read timeout, so no pump thread outlives an idle minute; dropping
//! the proxy stops accepting.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a pump waits for bytes before it gives up on an idle connection.
const IDLE: Duration = Duration::from_secs(90);
/// Read timeout of the pumps: how often they look at the stop and cut flags.
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes clients sent on data connections (upload payload, all attempts).
    pub upload_bytes: AtomicU64,
    /// Data connections opened through the proxy.
    pub data_connections: AtomicU32,
    /// Data connections the proxy cut.
    pub cuts: AtomicU32,
    /// Control connections accepted.
    pub control_connections: AtomicU32,
}

struct Shared {
    upstream: SocketAddr,
    stop: AtomicBool,
    /// Cut a data connection once it carried more than this many bytes from the client.
    cut_after: u64,
    /// How many more data connections to cut.
    cuts_left: AtomicU32,
    stats: Stats,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy for the FTP server at 127.0.0.1:`server_port` that cuts the first `cuts`
    /// upload data connections that carry more than `cut_after` bytes.
    pub fn start(server_port: u16, cut_after: u64, cuts: u32) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, server_port)),
            stop: AtomicBool::new(false),
            cut_after,
            cuts_left: AtomicU32::new(cuts),
            stats: Stats::default(),
        });
        let sh = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let sh = Arc::clone(&sh);
                std::thread::spawn(move || control(&sh, client));
            }
        });
        FaultProxy { port, shared, accept: Some(accept) }
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // wake the accept loop
        let _ = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)), TICK);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Copies `from` to `to` until EOF, an error, stop or an idle [`IDLE`]; then half-closes
/// `to` (a clean EOF passes on as one).
fn pump(sh: &Shared, mut from: TcpStream, mut to: TcpStream) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                last = Instant::now();
            }
            Err(e) if is_timeout(&e) => {
                if sh.stop.load(Ordering::Relaxed) || last.elapsed() >= IDLE {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// One control connection: client -> server verbatim; server -> client line by line with
/// PASV/EPSV replies rewritten.
fn control(sh: &Arc<Shared>, client: TcpStream) {
    sh.stats.control_connections.fetch_add(1, Ordering::Relaxed);
    let Ok(server) = TcpStream::connect_timeout(&sh.upstream, Duration::from_secs(10)) else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { return };
    let up = {
        let sh = Arc::clone(sh);
        std::thread::spawn(move || pump(&sh, c2, s2))
    };
    let _ = server.set_read_timeout(Some(TICK));
    let mut reader = BufReader::new(&server);
    let mut out = &client;
    let mut line = Vec::new();
    let mut last = Instant::now();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) if !line.ends_with(b"\n") => continue,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line).into_owned();
                let reply = rewrite(sh, &text).unwrap_or(text);
                if out.write_all(reply.as_bytes()).is_err() {
                    break;
                }
                line.clear();
                last = Instant::now();
            }
            Err(e) if is_timeout(&e) => {
                // read_until keeps what it read so far in `line`
                if sh.stop.load(Ordering::Relaxed) || last.elapsed() >= IDLE {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// The rewritten reply for a 227/229 line, with a proxy listener ready behind it.
fn rewrite(sh: &Arc<Shared>, line: &str) -> Option<String> {
    let server_port = if line.starts_with("229") {
        // 229 Entering Extended Passive Mode (|||port|)
        let inner = &line[line.find("(|||")? + 4..];
        inner[..inner.find('|')?].parse::<u16>().ok()?
    } else if line.starts_with("227") {
        // 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)
        let start = line.find('(')? + 1;
        let end = start + line[start..].find(')')?;
        let nums: Vec<u16> = line[start..end].split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
        if nums.len() != 6 {
            return None;
        }
        nums[4] * 256 + nums[5]
    } else {
        return None;
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    let port = listener.local_addr().ok()?.port();
    let sh = Arc::clone(sh);
    std::thread::spawn(move || data(&sh, &listener, server_port));
    Some(if line.starts_with("229") {
        format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
    } else {
        format!("227 Entering Passive Mode (127,0,0,1,{},{}).\r\n", port / 256, port % 256)
    })
}

/// Sets SO_LINGER to 0: closing the socket then sends a TCP reset.
fn reset_on_close(s: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a valid struct linger and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            u32::try_from(std::mem::size_of::<libc::linger>()).expect("small"),
        );
    }
}

/// One data connection: accept the client (within 30 s), connect to the server's passive
/// port, pump both ways; client -> server counted, and cut once if armed.
fn data(sh: &Arc<Shared>, listener: &TcpListener, server_port: u16) {
    let _ = listener.set_nonblocking(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if is_timeout(&e) && Instant::now() < deadline && !sh.stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    };
    let _ = client.set_nonblocking(false);
    let Ok(server) =
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, server_port)), Duration::from_secs(10))
    else {
        return;
    };
    sh.stats.data_connections.fetch_add(1, Ordering::Relaxed);
    let cut = Arc::new(AtomicBool::new(false));
    // server -> client (listings, downloads); stays quiet for uploads
    let down = {
        let (Ok(from), Ok(to)) = (server.try_clone(), client.try_clone()) else { return };
        let cut = Arc::clone(&cut);
        let sh = Arc::clone(sh);
        std::thread::spawn(move || {
            let mut from = from;
            let mut to = to;
            let _ = from.set_read_timeout(Some(TICK));
            let mut buf = vec![0u8; 64 * 1024];
            let mut last = Instant::now();
            loop {
                if cut.load(Ordering::Relaxed) {
                    return;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        last = Instant::now();
                    }
                    Err(e) if is_timeout(&e) => {
                        if sh.stop.load(Ordering::Relaxed) || last.elapsed() >= IDLE {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if !cut.load(Ordering::Relaxed) {
                let _ = to.shutdown(Shutdown::Write);
            }
        })
    };
    // client -> server (uploads), counted and maybe cut
    let mut from = &client;
    let mut to = &server;
    let _ = client.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent: u64 = 0;
    let mut last = Instant::now();
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => {
                let mut n = n;
                let over = sent + n as u64 > sh.cut_after;
                let arm =
                    over && sh.cuts_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1)).is_ok();
                if arm {
                    n = usize::try_from(sh.cut_after.saturating_sub(sent)).unwrap_or(n).min(n);
                }
                if n > 0 && to.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n as u64;
                sh.stats.upload_bytes.fetch_add(n as u64, Ordering::Relaxed);
                last = Instant::now();
                if arm {
                    // a network failure: both sides get a reset, nobody a clean EOF
                    sh.stats.cuts.fetch_add(1, Ordering::Relaxed);
                    reset_on_close(&client);
                    reset_on_close(&server);
                    cut.store(true, Ordering::Relaxed);
                    let _ = down.join();
                    return; // dropping the last handles of both sockets sends the resets
                }
            }
            Err(e) if is_timeout(&e) => {
                if sh.stop.load(Ordering::Relaxed) || last.elapsed() >= IDLE {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = down.join();
}
