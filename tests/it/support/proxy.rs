//! A transparent FTP proxy in front of the in-process server, for tests that need a server that
//! behaves differently on the wire. It records every command, and a [`Behaviour`] decides the
//! rest: answer a command itself instead of passing it on, rewrite or drop reply lines, announce
//! another address in `227` replies, and what happens on each passive data connection.
//!
//! Plain FTP only. On another loopback address than the server's (normally [`PROXY_IP`]) the
//! proxy also carries the passive data connections: when the server answers `229 (|||p|)` or
//! `227 (…,p1,p2)` the proxy listens on its own address at port `p` (before the client learns
//! the port) and relays what arrives there to the server's `127.0.0.1:p`. A client reaches it
//! with EPSV (which connects to the control connection's peer), or with PASV when it connects to
//! the announced address (the proxy's own unless the behaviour says otherwise) or, with the NAT
//! workaround, to the control peer. On 127.0.0.1 itself the proxy leaves data connections alone:
//! the client reaches the server's passive ports directly, and in active mode the server connects
//! to the client from 127.0.0.1, the control connection's peer address, which clients accept.
//!
//! Dropping the proxy closes every connection and joins every thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// Where a proxy normally listens: another loopback address than the server's, so that a
/// client's data connections to the control connection's peer reach the proxy, not the server.
pub const PROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A bound for any socket read or write of the proxy, so no thread can hang for ever.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What to do with a command from the client.
pub enum Verdict {
    /// Pass it on to the server.
    Forward,
    /// Do not pass it on; answer the client with this reply line (without CRLF), at once: after
    /// pipelined commands, before the server's replies to them.
    Answer(String),
    /// Do not pass it on; answer with `start`, then `repeat` again and again, without end: until
    /// the client hangs up (or [`ENDLESS_LIMIT`] bytes went out, so that a client that reads
    /// for ever cannot keep the proxy busy for ever).
    Endless { start: String, repeat: String },
}

/// The most bytes [`Verdict::Endless`] and [`DataLink::send_endless`] send.
pub const ENDLESS_LIMIT: u64 = 1 << 30;

/// How a proxy differs from a transparent one. Every method has the transparent default.
pub trait Behaviour: Send + Sync + 'static {
    /// A command line from the client: `verb` in upper case, `line` without its line end.
    fn command(&self, _verb: &str, _line: &str) -> Verdict {
        Verdict::Forward
    }

    /// A reply line from the server (with its line end, after the proxy rewrote a `227`) as the
    /// client gets it; `None` drops the line.
    fn reply(&self, line: &str) -> Option<String> {
        Some(line.to_owned())
    }

    /// The address announced in `227` replies instead of the server's (`None`: the proxy's own).
    /// Only used where the proxy carries data connections.
    fn announced_ip(&self) -> Option<Ipv4Addr> {
        None
    }

    /// The receive buffer (SO_RCVBUF) of the proxy's side of the client's data connections
    /// (`None`: the kernel's, which may grow to many megabytes). A small one makes a client's
    /// writes block soon once the proxy stops reading.
    fn data_receive_buffer(&self) -> Option<usize> {
        None
    }

    /// Carries one passive data connection; returns when it is done with it.
    fn data(&self, link: &DataLink) {
        link.relay();
    }

    /// Whether the proxy passes a command on only once the server has answered the one before
    /// (its final reply, not a `1xx`), so a server that runs commands concurrently (libunftp)
    /// still gets them one at a time when a client sends several together.
    fn one_at_a_time(&self) -> bool {
        false
    }
}

/// A proxy that changes nothing (it still records the commands).
pub struct Transparent;

impl Behaviour for Transparent {}

/// A data connection that reached the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataConn {
    /// The proxy's address the client connected to.
    pub at: SocketAddr,
    /// The verb of the command it carried (`None`: no byte moved either way).
    pub verb: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every thread of one proxy shares.
struct Shared {
    ip: Ipv4Addr,
    upstream: u16,
    behaviour: Box<dyn Behaviour>,
    stop: AtomicBool,
    /// A handle on every socket, to shut them all down (and so end every thread) on drop.
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Every command line a client sent, in order (PASS masked).
    commands: Mutex<Vec<String>>,
    /// Every command line that arrived together with the next one, in the same read, so the
    /// client sent the next one before it had the reply to this one.
    sent_together: Mutex<Vec<String>>,
    /// Every data connection the proxy accepted, in order.
    data: Mutex<Vec<(SocketAddr, Arc<OnceLock<String>>)>>,
    /// What went wrong inside the proxy: the tests assert this stays empty.
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn track(&self, s: &TcpStream) {
        s.set_read_timeout(Some(IO_TIMEOUT)).ok();
        // Replies go out line by line: no Nagle delay behind an unacknowledged one.
        s.set_nodelay(true).ok();
        s.set_write_timeout(Some(IO_TIMEOUT)).ok();
        if let Ok(clone) = s.try_clone() {
            lock(&self.sockets).push(clone);
        }
        // Drop sets `stop` before it shuts the tracked sockets down: a socket tracked after
        // that is shut down here, so no thread blocks on it.
        if self.stop.load(Ordering::SeqCst) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn problem(&self, what: String) {
        lock(&self.problems).push(what);
    }

    fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new().name(name.to_owned()).spawn(f) {
            Ok(handle) => lock(&self.threads).push(handle),
            Err(e) => self.problem(format!("cannot spawn {name}: {e}")),
        }
    }
}

/// One control connection: the verb of the last command the client sent, so that a data
/// connection knows which command it belongs to.
#[derive(Default)]
struct Session {
    last_verb: Mutex<String>,
    /// Final replies (greeting included) the server sent so far, for [`Behaviour::one_at_a_time`].
    finals: Mutex<usize>,
    answered: std::sync::Condvar,
}

/// The verb a data connection carries: the last command of its control connection when data
/// first moves. A client sends the command before it writes, and the server writes only once it
/// got the command, which the proxy noted before it passed it on.
#[derive(Clone)]
struct VerbNote {
    verb: Arc<OnceLock<String>>,
    session: Arc<Session>,
}

impl VerbNote {
    fn get(&self) -> String {
        self.verb.get_or_init(|| lock(&self.session.last_verb).clone()).clone()
    }
}

/// One passive data connection: the client's side and the server's, both tracked (shut down
/// when the proxy is dropped).
pub struct DataLink {
    pub client: TcpStream,
    pub server: TcpStream,
    note: VerbNote,
    shared: Arc<Shared>,
}

impl DataLink {
    /// The verb of the command this connection carries. Ask once data moves (see above).
    pub fn verb(&self) -> String {
        self.note.get()
    }

    /// Whether the proxy is being dropped: a thread that holds a connection on purpose waits
    /// for this.
    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Notes something that went wrong (see [`FtpProxy::problems`]).
    pub fn problem(&self, what: String) {
        self.shared.problem(what);
    }

    /// Runs `f` on a thread of the proxy (joined when the proxy is dropped).
    pub fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) {
        self.shared.spawn(name, f);
    }

    /// Relays the server's side to the client on a thread of its own, as it comes; each side
    /// learns of the other's end. Returns at once.
    pub fn relay_download(&self) {
        self.relay_one_way(&self.server, &self.client, "proxy-download");
    }

    /// Relays the client's side to the server on a thread of its own. Returns at once.
    pub fn relay_upload(&self) {
        self.relay_one_way(&self.client, &self.server, "proxy-upload");
    }

    /// Sends `start` and then `repeat` again and again to the client (see [`Verdict::Endless`]),
    /// here; then closes the client's side.
    pub fn send_endless(&self, start: &str, repeat: &str) {
        send_endless(&self.client, start, repeat, &self.shared.stop);
        let _ = self.client.shutdown(Shutdown::Both);
    }

    /// Relays both ways, unchanged, until both sides are done.
    pub fn relay(&self) {
        self.relay_upload();
        pump(&self.server, &self.client, &self.note);
    }

    fn relay_one_way(&self, from: &TcpStream, to: &TcpStream, name: &str) {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            self.problem("cannot clone a data socket".into());
            return;
        };
        let note = self.note.clone();
        self.spawn(name, move || pump(&from, &to, &note));
    }
}

/// Copies `from` to `to` until `from` ends, noting the verb once data moves; then ends `to`.
fn pump(mut from: &TcpStream, mut to: &TcpStream, note: &VerbNote) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        note.get();
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Writes `start`, then `repeat` again and again, to `to`, until a write fails, `stop` is set or
/// [`ENDLESS_LIMIT`] bytes went out.
fn send_endless(mut to: &TcpStream, start: &str, repeat: &str, stop: &AtomicBool) {
    if to.write_all(start.as_bytes()).is_err() || repeat.is_empty() {
        return;
    }
    let mut chunk = Vec::with_capacity(64 * 1024 + repeat.len());
    while chunk.len() < 64 * 1024 {
        chunk.extend_from_slice(repeat.as_bytes());
    }
    let mut sent = 0;
    while sent < ENDLESS_LIMIT && !stop.load(Ordering::SeqCst) {
        if to.write_all(&chunk).is_err() {
            return;
        }
        sent += chunk.len() as u64;
    }
}

/// A transparent FTP proxy on `ip:<port>` in front of the FTP server on `127.0.0.1:<upstream>`,
/// changed by a [`Behaviour`]. Dropping it closes every connection and joins every thread.
pub struct FtpProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl FtpProxy {
    /// A proxy on [`PROXY_IP`], carrying the passive data connections.
    pub fn start(upstream: u16, behaviour: impl Behaviour) -> FtpProxy {
        FtpProxy::start_on(PROXY_IP, upstream, behaviour)
    }

    /// A proxy on `ip` (on 127.0.0.1: for the control connection only).
    pub fn start_on(ip: Ipv4Addr, upstream: u16, behaviour: impl Behaviour) -> FtpProxy {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0 for the proxy: {e}"));
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared {
            ip,
            upstream,
            behaviour: Box::new(behaviour),
            stop: AtomicBool::new(false),
            sockets: Mutex::default(),
            threads: Mutex::default(),
            commands: Mutex::default(),
            sent_together: Mutex::default(),
            data: Mutex::default(),
            problems: Mutex::default(),
        });
        let inner = Arc::clone(&shared);
        shared.spawn(&format!("ftp-proxy-{port}"), move || {
            for client in listener.incoming() {
                if inner.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let session = Arc::clone(&inner);
                inner.spawn("ftp-proxy-session", move || control(&session, client));
            }
        });
        FtpProxy { port, shared }
    }

    /// The address clients connect to.
    pub fn ip(&self) -> Ipv4Addr {
        self.shared.ip
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every command line clients sent through the proxy (PASS masked), answered here or not.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.shared.commands).clone()
    }

    /// The command lines a client sent together with the next one (see [`Shared`]).
    pub fn sent_together(&self) -> Vec<String> {
        lock(&self.shared.sent_together).clone()
    }

    /// The verbs of [`FtpProxy::commands`], in upper case.
    pub fn verbs(&self) -> Vec<String> {
        self.commands().iter().map(|c| c.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()).collect()
    }

    /// How many commands with this verb clients sent.
    pub fn count(&self, verb: &str) -> usize {
        self.verbs().iter().filter(|v| v.eq_ignore_ascii_case(verb)).count()
    }

    /// Every data connection that reached the proxy, in order.
    pub fn data_connections(&self) -> Vec<DataConn> {
        lock(&self.shared.data).iter().map(|(at, verb)| DataConn { at: *at, verb: verb.get().cloned() }).collect()
    }

    /// What went wrong inside the proxy (a reply it could not parse, a port it could not bind).
    pub fn problems(&self) -> Vec<String> {
        lock(&self.shared.problems).clone()
    }
}

impl Drop for FtpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then end every connection; data listeners see `stop`.
        let _ = TcpStream::connect_timeout(&SocketAddr::from((self.shared.ip, self.port)), Duration::from_secs(1));
        loop {
            for s in lock(&self.shared.sockets).drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
            let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads).drain(..).collect();
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

/// Relays one control connection, both ways, line by line.
fn control(shared: &Arc<Shared>, client: TcpStream) {
    shared.track(&client);
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, shared.upstream));
    let server = match TcpStream::connect_timeout(&upstream, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            shared.problem(format!("cannot reach the server on {upstream}: {e}"));
            return;
        }
    };
    shared.track(&server);
    let session = Arc::new(Session::default());
    let (Ok(client_reader), Ok(server_reader), Ok(mut server_writer)) =
        (client.try_clone(), server.try_clone(), server.try_clone())
    else {
        shared.problem("cannot clone a control socket".into());
        return;
    };
    let client_writer = Arc::new(Mutex::new(client));

    // Server to client, on a thread of its own: the replies.
    {
        let session = Arc::clone(&session);
        let client_writer = Arc::clone(&client_writer);
        let inner = Arc::clone(shared);
        shared.spawn("ftp-proxy-replies", move || {
            let mut reader = BufReader::new(server_reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let last = is_final_reply(&line);
                if let Some(out) = on_reply(&inner, &session, &line)
                    && lock(&client_writer).write_all(&out).is_err()
                {
                    break;
                }
                // Counted once the client has it: an answer of the proxy's own goes out after.
                if last {
                    *lock(&session.finals) += 1;
                    session.answered.notify_all();
                }
            }
            let _ = lock(&client_writer).shutdown(Shutdown::Write);
        });
    }

    // Client to server, here: the commands.
    let mut reader = BufReader::new(client_reader);
    let mut line = Vec::new();
    let mut forwarded = 0;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Bytes behind this line came in the same read: sent before its reply could exist.
        let together = !reader.buffer().is_empty();
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let verb = text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let shown = if verb == "PASS" { "PASS ****".to_owned() } else { text.to_owned() };
        if together {
            lock(&shared.sent_together).push(shown.clone());
        }
        lock(&shared.commands).push(shown.clone());
        // Before the command goes on: its data connection looks at it when data moves.
        *lock(&session.last_verb) = verb.clone();
        match shared.behaviour.command(&verb, text) {
            Verdict::Forward => {
                wait_for_replies(shared, &session, forwarded, &shown);
                forwarded += 1;
                if server_writer.write_all(&line).is_err() {
                    break;
                }
            }
            Verdict::Answer(reply) => {
                wait_for_replies(shared, &session, forwarded, &shown);
                if lock(&client_writer).write_all(format!("{reply}\r\n").as_bytes()).is_err() {
                    break;
                }
            }
            Verdict::Endless { start, repeat } => {
                wait_for_replies(shared, &session, forwarded, &shown);
                send_endless(&lock(&client_writer), &start, &repeat, &shared.stop);
                break;
            }
        }
    }
    let _ = server_writer.shutdown(Shutdown::Write);
}

/// With [`Behaviour::one_at_a_time`]: waits until the server answered the greeting and all
/// `forwarded` commands, before `shown` goes on or is answered by the proxy.
fn wait_for_replies(shared: &Shared, session: &Session, forwarded: usize, shown: &str) {
    if !shared.behaviour.one_at_a_time() {
        return;
    }
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut finals = lock(&session.finals);
    while *finals < forwarded + 1 && !shared.stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            drop(finals);
            shared.problem(format!("no reply from the server before {shown:?}"));
            return;
        }
        finals = match session.answered.wait_timeout(finals, left.min(Duration::from_millis(100))) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// Whether `line` ends a reply: `ddd text`, not a `1xx` preliminary one nor a line of a
/// multi-line reply other than the last.
fn is_final_reply(line: &[u8]) -> bool {
    line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && line[3] == b' ' && line[0] != b'1'
}

/// One reply line from the server as the client gets it (`None`: dropped).
fn on_reply(shared: &Arc<Shared>, session: &Arc<Session>, line: &[u8]) -> Option<Vec<u8>> {
    let mut text = String::from_utf8_lossy(line).into_owned();
    let original = text.clone();
    let carries_data = shared.ip != Ipv4Addr::LOCALHOST;
    if carries_data && text.starts_with("229 ") {
        // `229 Entering Extended Passive Mode (|||p|)`: unchanged; the client connects to
        // <proxy>:p, the server listens on 127.0.0.1:p.
        let port = text.split("(|||").nth(1).and_then(|r| r.split('|').next()).and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(p) => open_data(shared, session, p),
            None => shared.problem(format!("cannot parse {text:?}")),
        }
    }
    if carries_data && text.starts_with("227 ") {
        // `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`: the proxy listens on its own address
        // and announces the one the behaviour wants.
        let inside = text.split('(').nth(1).and_then(|r| r.split(')').next()).map(str::to_owned);
        let numbers: Option<Vec<u16>> =
            inside.as_deref().and_then(|s| s.split(',').map(|n| n.trim().parse().ok()).collect());
        match (inside, numbers) {
            (Some(inside), Some(n)) if n.len() == 6 => {
                open_data(shared, session, n[4] * 256 + n[5]);
                let ip = shared.behaviour.announced_ip().unwrap_or(shared.ip).to_string().replace('.', ",");
                text = text.replacen(&inside, &format!("{ip},{},{}", n[4], n[5]), 1);
            }
            _ => shared.problem(format!("cannot parse {text:?}")),
        }
    }
    let out = shared.behaviour.reply(&text)?;
    // Unchanged lines go out as they came, byte for byte.
    Some(if out == original { line.to_vec() } else { out.into_bytes() })
}

/// Listens on <proxy>:`port` (before the client learns the port) for one data connection, and
/// hands it, with a connection to the server's 127.0.0.1:`port`, to the behaviour.
fn open_data(shared: &Arc<Shared>, session: &Arc<Session>, port: u16) {
    let listener = match TcpListener::bind((shared.ip, port)) {
        Ok(l) => l,
        Err(e) => {
            shared.problem(format!("cannot listen on {}:{port} for a data connection: {e}", shared.ip));
            return;
        }
    };
    if let Some(size) = shared.behaviour.data_receive_buffer()
        && let Err(e) = set_receive_buffer(&listener, size)
    {
        shared.problem(format!("cannot set SO_RCVBUF on {}:{port}: {e}", shared.ip));
    }
    let session = Arc::clone(session);
    let inner = Arc::clone(shared);
    shared.spawn("ftp-proxy-data", move || {
        let shared = inner;
        // Non-blocking, so that a client that never connects, or the proxy's drop, ends the wait.
        if listener.set_nonblocking(true).is_err() {
            shared.problem("set_nonblocking on a data listener".into());
            return;
        }
        let deadline = Instant::now() + TIMEOUT;
        let client = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if shared.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    shared.problem(format!("accept on {}:{port}: {e}", shared.ip));
                    return;
                }
            }
        };
        drop(listener);
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = client.set_nonblocking(false);
        shared.track(&client);
        let at = client.local_addr().unwrap_or_else(|_| SocketAddr::from((shared.ip, port)));
        let verb = Arc::new(OnceLock::new());
        lock(&shared.data).push((at, Arc::clone(&verb)));
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let server = match TcpStream::connect_timeout(&upstream, IO_TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                shared.problem(format!("cannot reach the server's data port {upstream}: {e}"));
                return;
            }
        };
        shared.track(&server);
        let link = DataLink { client, server, note: VerbNote { verb, session }, shared: Arc::clone(&shared) };
        shared.behaviour.data(&link);
    });
}

/// Sets SO_RCVBUF on `listener`, which the connections it accepts inherit (and with it, no
/// automatic growth of their receive buffers).
fn set_receive_buffer(listener: &TcpListener, size: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(size).map_err(std::io::Error::other)?;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).map_err(std::io::Error::other)?;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
