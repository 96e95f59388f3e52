//! A fault-injecting TCP proxy for FTP in front of a real server, with faults named as
//! toxiproxy names them: `limit_data` (reset after N bytes), `timeout` with 0 (stall:
//! nothing passes, sockets stay open), `bandwidth`, `latency`; and, for the whole proxy,
//! refusing new connections for a while.
//!
//! ftpmonitor connects to the proxy's control port. The proxy relays the control
//! connection and rewrites every PASV (227) and EPSV (229) reply so that it names a port
//! of the proxy's own, which relays the data connection to the port the server announced:
//! the toxics reach data connections too. After `AUTH TLS` is accepted (234) the control
//! connection is relayed byte for byte (it can no longer be read); the proxy still records
//! every byte the client sent, so a test can assert that no `USER` or `PASS` ever crossed
//! in clear. A [`Script`] can make the proxy a hostile server: answer commands itself,
//! rewrite or add replies, announce another address, rewrite listings.
//!
//! Loopback only. Every socket read has a short timeout, every stall and every delay looks
//! at the stop flag, and dropping the proxy closes every connection and joins every thread
//! it started, so nothing outlives a test.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a blocked read looks at the stop flag, the toxics and its connection's cut.
const TICK: Duration = Duration::from_millis(50);
/// A connection idle this long is closed by the proxy (no test waits that long).
const IDLE: Duration = Duration::from_secs(120);
/// The most client bytes of control connections kept for [`ToxicProxy::control_bytes`].
const RECORD_LIMIT: usize = 16 << 20;
/// The most bytes an endless reply sends (a client that reads for ever cannot keep the
/// proxy busy for ever).
pub const ENDLESS_LIMIT: u64 = 1 << 30;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A small seeded generator (SplitMix64): every random point of a scenario comes from one
/// seed, printed by the test, so that a failure can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo + 1) }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A generator of its own, drawn from this one.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// A byte count, fixed or drawn (per connection) from the proxy's generator.
#[derive(Debug, Clone, Copy)]
pub enum Bytes {
    Exactly(u64),
    Between(u64, u64),
}

/// What a toxic does to the bytes of a connection, in one direction.
#[derive(Debug, Clone, Copy)]
pub enum Toxic {
    /// toxiproxy `limit_data`: once `bytes` passed, the connection is reset (TCP RST to
    /// both sides), like a network failure. On a control connection's upstream the cut
    /// falls before the command line it would split: a command is one TCP segment, which
    /// arrives whole or not at all, and proftpd executes the part of a line it has when
    /// the connection ends (a `STOR` or `RNTO` of a name cut short, found by
    /// drops_during_uploads: RELIABILITY.md).
    LimitData { bytes: Bytes },
    /// toxiproxy `timeout` with timeout 0: while the toxic is in place nothing passes and
    /// nothing is read; both sockets stay open.
    Stall,
    /// toxiproxy `bandwidth`: at most this many bytes per second.
    Bandwidth { bytes_per_sec: u64 },
    /// toxiproxy `latency`: every chunk is held `delay` plus up to `jitter`.
    Latency { delay: Duration, jitter: Duration },
}

/// toxiproxy's streams: upstream is client to server (an upload's payload, commands),
/// downstream server to client (replies, listings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Upstream,
    Downstream,
}

/// Which connections a toxic applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    Control,
    Data,
    Both,
}

/// A toxic in place: what, where, on which share of the connections (`toxicity`, drawn
/// when a connection first meets the toxic), and how many times at most it may fire
/// (`LimitData` only; `None`: every time).
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub toxic: Toxic,
    pub stream: Stream,
    pub on: On,
    pub toxicity: f64,
    pub budget: Option<u32>,
}

impl Toxic {
    /// This toxic, named `name`, upstream, on every connection.
    pub fn named(self, name: &str) -> Spec {
        Spec { name: name.to_owned(), toxic: self, stream: Stream::Upstream, on: On::Both, toxicity: 1.0, budget: None }
    }
}

impl Spec {
    pub fn downstream(mut self) -> Spec {
        self.stream = Stream::Downstream;
        self
    }

    pub fn on(mut self, on: On) -> Spec {
        self.on = on;
        self
    }

    pub fn toxicity(mut self, p: f64) -> Spec {
        self.toxicity = p;
        self
    }

    pub fn times(mut self, n: u32) -> Spec {
        self.budget = Some(n);
        self
    }
}

/// What the proxy does with a command line from the client.
pub enum Verdict {
    Forward,
    /// Do not pass it on; answer with these lines (without line ends).
    Answer(Vec<String>),
    /// Do not pass it on; answer with `start`, then `repeat` without end (up to
    /// [`ENDLESS_LIMIT`] bytes, or until the client hangs up).
    Endless {
        start: String,
        repeat: String,
    },
}

/// How a hostile server differs from the real one behind the proxy. Every method has the
/// transparent default.
pub trait Script: Send + Sync + 'static {
    /// A command line from the client (without its line end).
    fn command(&self, _line: &str) -> Verdict {
        Verdict::Forward
    }

    /// A reply line from the server (with its line end), after the 227/229 rewrite; `last`
    /// is the client's last command. The lines returned go to the client instead.
    fn reply(&self, line: &str, _last: &str) -> Vec<String> {
        vec![line.to_owned()]
    }

    /// The 227 or 229 reply that announces the proxy's data port `port` (the default is
    /// what a well-behaved server in the proxy's place would say).
    fn announce(&self, passive: bool, ip: Ipv4Addr, port: u16) -> String {
        if passive {
            let o = ip.octets();
            format!(
                "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                o[0],
                o[1],
                o[2],
                o[3],
                port / 256,
                port % 256
            )
        } else {
            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
        }
    }

    /// The whole server-to-client stream of a data connection that carried `verb`
    /// (`LIST`, `MLSD`, ...): what the client gets instead.
    fn listing(&self, _verb: &str, data: Vec<u8>) -> Vec<u8> {
        data
    }

    /// Whether [`Script::listing`] wants the data of `verb` (it is then collected whole
    /// before it is passed on).
    fn rewrites_listing(&self, _verb: &str) -> bool {
        false
    }
}

/// A proxy that changes nothing (toxics aside).
pub struct Transparent;
impl Script for Transparent {}

/// What the proxy counted.
#[derive(Debug, Default)]
pub struct Stats {
    pub control_connections: AtomicU32,
    pub data_connections: AtomicU32,
    /// Connections reset by a `LimitData` toxic.
    pub resets: AtomicU32,
    /// Connections the proxy refused (while refusing: closed at once with a reset).
    pub refused: AtomicU32,
    /// Bytes clients sent on data connections.
    pub upload_bytes: AtomicU64,
}

/// One connection's view of one toxic.
#[derive(Debug, Clone, Copy)]
struct Bound {
    applies: bool,
    /// `LimitData`: the byte count at which it fires.
    threshold: u64,
}

/// A relayed connection: both sockets, and whether a toxic cut it.
struct Link {
    id: u64,
    data: bool,
    cut: AtomicBool,
    client: TcpStream,
    server: TcpStream,
    /// Bytes that passed, per stream.
    passed: [AtomicU64; 2],
    bound: Mutex<HashMap<u64, Bound>>,
}

struct Shared {
    ip: Ipv4Addr,
    upstream: SocketAddr,
    script: Box<dyn Script>,
    stop: AtomicBool,
    toxics: Mutex<Vec<(u64, Spec)>>,
    next_id: AtomicU64,
    rng: Mutex<Rng>,
    refuse_until: Mutex<Option<Instant>>,
    links: Mutex<HashMap<u64, Arc<Link>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    control_bytes: Mutex<Vec<u8>>,
    commands: Mutex<Vec<String>>,
    /// Commands and replies in clear, `#conn > command` and `#conn < reply`.
    transcript: Mutex<Vec<String>>,
    fired: Mutex<Vec<String>>,
    stats: Stats,
}

impl Shared {
    fn spawn(self: &Arc<Self>, f: impl FnOnce(Arc<Shared>) + Send + 'static) {
        let sh = Arc::clone(self);
        let handle = std::thread::spawn(move || f(sh));
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn link(&self, data: bool, client: TcpStream, server: TcpStream) -> Arc<Link> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        for s in [&client, &server] {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(TICK));
            let _ = s.set_write_timeout(Some(IDLE));
        }
        let link = Arc::new(Link {
            id,
            data,
            cut: AtomicBool::new(false),
            client,
            server,
            passed: [AtomicU64::new(0), AtomicU64::new(0)],
            bound: Mutex::new(HashMap::new()),
        });
        lock(&self.links).insert(id, Arc::clone(&link));
        link
    }

    fn unlink(&self, link: &Link) {
        lock(&self.links).remove(&link.id);
    }

    /// The toxics that apply to `link` in `stream` now, with this link's binding of each.
    fn active(&self, link: &Link, stream: Stream) -> Vec<(u64, Spec, Bound)> {
        let toxics = lock(&self.toxics).clone();
        let mut bound = lock(&link.bound);
        let mut out = Vec::new();
        for (id, spec) in toxics {
            let kind_ok = match spec.on {
                On::Both => true,
                On::Data => link.data,
                On::Control => !link.data,
            };
            if !kind_ok || spec.stream != stream {
                continue;
            }
            let b = *bound.entry(id).or_insert_with(|| {
                let mut rng = lock(&self.rng);
                let applies = rng.chance(spec.toxicity);
                let threshold = match spec.toxic {
                    Toxic::LimitData { bytes: Bytes::Exactly(n) } => n,
                    Toxic::LimitData { bytes: Bytes::Between(lo, hi) } => rng.between(lo, hi),
                    _ => 0,
                };
                Bound { applies, threshold }
            });
            if b.applies {
                out.push((id, spec, b));
            }
        }
        out
    }

    /// Takes one firing from the budget of toxic `id`; false when it is used up.
    fn take_budget(&self, id: u64) -> bool {
        let mut toxics = lock(&self.toxics);
        let Some((_, spec)) = toxics.iter_mut().find(|(i, _)| *i == id) else { return false };
        match spec.budget.as_mut() {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    fn stalled(&self, link: &Link, stream: Stream) -> bool {
        self.active(link, stream).iter().any(|(_, s, _)| matches!(s.toxic, Toxic::Stall))
    }
}

/// The receive buffer of the proxy's side of data connections.
const DATA_RCVBUF: usize = 128 * 1024;

fn set_receive_buffer(l: &TcpListener, bytes: usize) {
    let n = libc::c_int::try_from(bytes).expect("small");
    // SAFETY: setsockopt on a socket we own, with a valid int and its size.
    unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&n).cast(),
            u32::try_from(std::mem::size_of::<libc::c_int>()).expect("small"),
        );
    }
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

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Cuts a link: both sockets reset (once every handle is closed, which the pumps do as
/// soon as they see the cut).
fn cut(link: &Link) {
    reset_on_close(&link.client);
    reset_on_close(&link.server);
    link.cut.store(true, Ordering::SeqCst);
    let _ = link.client.shutdown(std::net::Shutdown::Read);
    let _ = link.server.shutdown(std::net::Shutdown::Read);
}

/// Sleeps `d` in ticks; false if the proxy stops or the link is cut meanwhile.
fn nap(sh: &Shared, link: &Link, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if sh.stopping() || link.cut.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(TICK));
    }
    true
}

/// Writes `bytes` to `stream` of `link` through the toxics; false when the link is done
/// (cut, stopped, or the peer is gone).
fn deliver(sh: &Shared, link: &Link, stream: Stream, mut bytes: &[u8]) -> bool {
    let idx = usize::from(stream == Stream::Downstream);
    let to = if stream == Stream::Upstream { &link.server } else { &link.client };
    while !bytes.is_empty() {
        while sh.stalled(link, stream) {
            if !nap(sh, link, TICK) {
                return false;
            }
        }
        let active = sh.active(link, stream);
        let mut n = bytes.len();
        let mut rate = None;
        for (id, spec, b) in &active {
            match spec.toxic {
                Toxic::Latency { delay, jitter } => {
                    let extra = lock(&sh.rng).between(0, u64::try_from(jitter.as_millis()).unwrap_or(0));
                    if !nap(sh, link, delay + Duration::from_millis(extra)) {
                        return false;
                    }
                }
                Toxic::Bandwidth { bytes_per_sec } => {
                    rate = Some(rate.map_or(bytes_per_sec, |r: u64| r.min(bytes_per_sec)))
                }
                Toxic::LimitData { .. } => {
                    let passed = link.passed[idx].load(Ordering::Relaxed);
                    if passed + n as u64 >= b.threshold && sh.take_budget(*id) {
                        let keep = usize::try_from(b.threshold.saturating_sub(passed)).unwrap_or(n).min(n);
                        // Control upstream: `bytes` is one command line (in clear), which
                        // passes whole or not at all (see `Toxic::LimitData`).
                        let keep = if stream == Stream::Upstream && !link.data && keep < n { 0 } else { keep };
                        let _ = (&*to).write_all(&bytes[..keep]);
                        link.passed[idx].fetch_add(keep as u64, Ordering::Relaxed);
                        sh.stats.resets.fetch_add(1, Ordering::Relaxed);
                        lock(&sh.fired).push(format!(
                            "{}: {} connection reset after {} bytes {}",
                            spec.name,
                            if link.data { "data" } else { "control" },
                            passed + keep as u64,
                            if stream == Stream::Upstream { "upstream" } else { "downstream" }
                        ));
                        cut(link);
                        return false;
                    }
                }
                Toxic::Stall => {}
            }
        }
        if let Some(rate) = rate {
            // slices of a tenth of a second
            n = n.min(usize::try_from((rate / 10).max(1)).unwrap_or(n));
            if !nap(sh, link, Duration::from_secs_f64(n as f64 / rate.max(1) as f64)) {
                return false;
            }
        }
        if (&*to).write_all(&bytes[..n]).is_err() {
            return false;
        }
        link.passed[idx].fetch_add(n as u64, Ordering::Relaxed);
        if link.data && stream == Stream::Upstream {
            sh.stats.upload_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        bytes = &bytes[n..];
    }
    true
}

/// Reads a chunk from the side of `link` that feeds `stream`: `Ok(None)` at EOF or when
/// the link is done, `Err(())` never (errors end the link too).
fn receive(sh: &Shared, link: &Link, stream: Stream, buf: &mut [u8]) -> Option<usize> {
    let mut from = if stream == Stream::Upstream { &link.client } else { &link.server };
    let mut idle = Instant::now();
    loop {
        if sh.stopping() || link.cut.load(Ordering::Relaxed) {
            return None;
        }
        // A stall reads nothing: the sender's buffers fill and it blocks, as behind a
        // dead route.
        if sh.stalled(link, stream) {
            std::thread::sleep(TICK);
            idle = Instant::now();
            continue;
        }
        match from.read(buf) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e) if is_timeout(&e) => {
                if idle.elapsed() >= IDLE {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

/// Ends one direction: passes the EOF on (unless the link was cut).
fn finish(link: &Link, stream: Stream) {
    if !link.cut.load(Ordering::Relaxed) {
        let to = if stream == Stream::Upstream { &link.server } else { &link.client };
        let _ = to.shutdown(std::net::Shutdown::Write);
    }
}

/// A relayed plain byte stream in one direction.
fn pump(sh: &Shared, link: &Link, stream: Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = receive(sh, link, stream, &mut buf) {
        if !deliver(sh, link, stream, &buf[..n]) {
            break;
        }
    }
    finish(link, stream);
}

/// Per control connection: the state its two directions share.
#[derive(Default)]
struct Control {
    /// `AUTH` was accepted: both directions are opaque from here on.
    tls: AtomicBool,
    /// The client's last command line.
    last: Mutex<String>,
    /// The verb of the next data connection's command, for the data connection the last
    /// 227/229 announced.
    next_data: Mutex<Option<Arc<OnceLock<String>>>>,
}

const DATA_VERBS: [&str; 7] = ["STOR", "APPE", "RETR", "LIST", "MLSD", "NLST", "STOU"];

/// Client to server on a control connection: recorded, parsed while in clear, answered by
/// the script where it says so.
fn control_up(sh: &Arc<Shared>, link: &Link, ctl: &Control) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    'outer: while let Some(n) = receive(sh, link, Stream::Upstream, &mut buf) {
        {
            let mut rec = lock(&sh.control_bytes);
            let room = RECORD_LIMIT.saturating_sub(rec.len()).min(n);
            rec.extend_from_slice(&buf[..room]);
        }
        if ctl.tls.load(Ordering::SeqCst) {
            if !deliver(sh, link, Stream::Upstream, &buf[..n]) {
                break;
            }
            continue;
        }
        line.extend_from_slice(&buf[..n]);
        while let Some(end) = line.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = line.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_owned();
            let verb = text.split(' ').next().unwrap_or_default().to_ascii_uppercase();
            let shown = if verb == "PASS" { "PASS ****".to_owned() } else { text.clone() };
            lock(&sh.transcript).push(format!("#{} > {shown}", link.id));
            lock(&sh.commands).push(shown);
            lock(&ctl.last).clone_from(&text);
            if DATA_VERBS.contains(&verb.as_str())
                && let Some(slot) = lock(&ctl.next_data).take()
            {
                let _ = slot.set(verb.clone());
            }
            match sh.script.command(&text) {
                Verdict::Forward => {
                    if !deliver(sh, link, Stream::Upstream, &raw) {
                        break 'outer;
                    }
                }
                Verdict::Answer(lines) => {
                    let out: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
                    if (&link.client).write_all(out.as_bytes()).is_err() {
                        break 'outer;
                    }
                }
                Verdict::Endless { start, repeat } => {
                    let mut sent = 0u64;
                    let mut c = &link.client;
                    if c.write_all(start.as_bytes()).is_err() {
                        break 'outer;
                    }
                    while sent < ENDLESS_LIMIT && !sh.stopping() && c.write_all(repeat.as_bytes()).is_ok() {
                        sent += repeat.len() as u64;
                    }
                    break 'outer;
                }
            }
            if ctl.tls.load(Ordering::SeqCst) {
                // anything after AUTH in this read is the TLS handshake
                if !line.is_empty() && !deliver(sh, link, Stream::Upstream, &std::mem::take(&mut line)) {
                    break 'outer;
                }
                continue 'outer;
            }
        }
    }
    finish(link, Stream::Upstream);
}

/// Server to client on a control connection: line by line while in clear, with the
/// 227/229 replies rewritten and the script's say.
fn control_down(sh: &Arc<Shared>, link: &Link, ctl: &Control) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::new();
    'outer: while let Some(n) = receive(sh, link, Stream::Downstream, &mut buf) {
        if ctl.tls.load(Ordering::SeqCst) {
            if !deliver(sh, link, Stream::Downstream, &buf[..n]) {
                break;
            }
            continue;
        }
        line.extend_from_slice(&buf[..n]);
        while let Some(end) = line.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = line.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw).into_owned();
            let last = lock(&ctl.last).clone();
            {
                let mut t = lock(&sh.transcript);
                if t.len() < 100_000 {
                    let shown: String = text.trim_end().chars().take(200).collect();
                    t.push(format!("#{} < {shown}", link.id));
                }
            }
            let text = rewrite_passive(sh, ctl, &text).unwrap_or(text);
            let out: String = sh.script.reply(&text, &last).concat();
            if text.starts_with("234") && last.to_ascii_uppercase().starts_with("AUTH") {
                ctl.tls.store(true, Ordering::SeqCst);
            }
            if !deliver(sh, link, Stream::Downstream, out.as_bytes()) {
                break 'outer;
            }
            if ctl.tls.load(Ordering::SeqCst) && !line.is_empty() {
                if !deliver(sh, link, Stream::Downstream, &std::mem::take(&mut line)) {
                    break 'outer;
                }
                continue 'outer;
            }
        }
    }
    finish(link, Stream::Downstream);
}

/// For a 227/229 reply: a proxy listener for the data connection, and the reply that
/// announces it.
fn rewrite_passive(sh: &Arc<Shared>, ctl: &Control, line: &str) -> Option<String> {
    let passive = line.starts_with("227");
    let server_port = if line.starts_with("229") {
        let inner = line.split_once('(')?.1.split_once(')')?.0;
        let delim = inner.chars().next()?;
        inner.split(delim).nth(3)?.parse::<u16>().ok()?
    } else if passive {
        let inner = line.split_once('(')?.1.split_once(')')?.0;
        let nums: Vec<u16> = inner.split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
        if nums.len() != 6 {
            return None;
        }
        nums[4] * 256 + nums[5]
    } else {
        return None;
    };
    let listener = TcpListener::bind((sh.ip, 0)).ok()?;
    // A small receive buffer (inherited by the accepted socket): what the proxy has not
    // passed on yet stays in the client's send queue, as behind a real bottleneck,
    // instead of megabytes acknowledged at once into the proxy's buffer.
    set_receive_buffer(&listener, DATA_RCVBUF);
    let port = listener.local_addr().ok()?.port();
    let verb = Arc::new(OnceLock::new());
    *lock(&ctl.next_data) = Some(Arc::clone(&verb));
    let target = SocketAddr::new(sh.upstream.ip(), server_port);
    sh.spawn(move |sh| data(&sh, &listener, target, &verb));
    Some(sh.script.announce(passive, sh.ip, port))
}

fn refusing(sh: &Shared) -> bool {
    lock(&sh.refuse_until).is_some_and(|t| Instant::now() < t)
}

/// One data connection: accepted within 30 s, relayed through the toxics (and through the
/// script's listing rewrite).
fn data(sh: &Arc<Shared>, listener: &TcpListener, target: SocketAddr, verb: &Arc<OnceLock<String>>) {
    let _ = listener.set_nonblocking(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if is_timeout(&e) && Instant::now() < deadline && !sh.stopping() => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    };
    if refusing(sh) {
        sh.stats.refused.fetch_add(1, Ordering::Relaxed);
        reset_on_close(&client);
        return;
    }
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(10)) else {
        reset_on_close(&client);
        return;
    };
    sh.stats.data_connections.fetch_add(1, Ordering::Relaxed);
    let link = sh.link(true, client, server);
    std::thread::scope(|scope| {
        scope.spawn(|| pump(sh, &link, Stream::Upstream));
        // The client sends the command on the control connection before the server
        // writes here: by the first byte downstream, the verb is known.
        let mut buf = vec![0u8; 64 * 1024];
        let mut collected: Option<Vec<u8>> = None;
        let mut first = true;
        while let Some(n) = receive(sh, &link, Stream::Downstream, &mut buf) {
            if std::mem::take(&mut first) && sh.script.rewrites_listing(verb.get().map_or("", String::as_str)) {
                collected = Some(Vec::new());
            }
            match collected.as_mut() {
                Some(all) => all.extend_from_slice(&buf[..n]),
                None => {
                    if !deliver(sh, &link, Stream::Downstream, &buf[..n]) {
                        break;
                    }
                }
            }
        }
        if let Some(all) = collected {
            let out = sh.script.listing(verb.get().map_or("", String::as_str), all);
            let _ = deliver(sh, &link, Stream::Downstream, &out);
        }
        finish(&link, Stream::Downstream);
    });
    sh.unlink(&link);
}

/// One control connection.
fn control(sh: &Arc<Shared>, client: TcpStream) {
    sh.stats.control_connections.fetch_add(1, Ordering::Relaxed);
    let Ok(server) = TcpStream::connect_timeout(&sh.upstream, Duration::from_secs(10)) else {
        reset_on_close(&client);
        return;
    };
    let link = sh.link(false, client, server);
    let ctl = Control::default();
    std::thread::scope(|scope| {
        scope.spawn(|| control_up(sh, &link, &ctl));
        control_down(sh, &link, &ctl);
    });
    sh.unlink(&link);
}

/// The proxy. See the module's documentation.
pub struct ToxicProxy {
    pub ip: Ipv4Addr,
    pub port: u16,
    shared: Arc<Shared>,
}

impl ToxicProxy {
    /// A transparent proxy on 127.0.0.1 for the server at 127.0.0.1:`server_port`; `seed`
    /// feeds every random choice of the toxics.
    pub fn start(server_port: u16, seed: u64) -> ToxicProxy {
        ToxicProxy::with_script(Ipv4Addr::LOCALHOST, server_port, seed, Transparent)
    }

    /// A proxy on the loopback address `ip` with a script.
    pub fn with_script(ip: Ipv4Addr, server_port: u16, seed: u64, script: impl Script) -> ToxicProxy {
        assert!(ip.is_loopback(), "the proxy listens on loopback only");
        let listener = TcpListener::bind((ip, 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            ip,
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, server_port)),
            script: Box::new(script),
            stop: AtomicBool::new(false),
            toxics: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            rng: Mutex::new(Rng::new(seed)),
            refuse_until: Mutex::new(None),
            links: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            control_bytes: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
            transcript: Mutex::new(Vec::new()),
            fired: Mutex::new(Vec::new()),
            stats: Stats::default(),
        });
        let addr = SocketAddr::from((ip, port));
        shared.spawn(move |sh| accept_loop(&sh, listener, addr));
        ToxicProxy { ip, port, shared }
    }

    /// Puts a toxic in place (also on connections already open); returns its id.
    pub fn add(&self, spec: Spec) -> u64 {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.toxics).push((id, spec));
        id
    }

    pub fn remove(&self, id: u64) {
        lock(&self.shared.toxics).retain(|(i, _)| *i != id);
    }

    /// Removes every toxic.
    pub fn clear(&self) {
        lock(&self.shared.toxics).clear();
    }

    /// Refuses new connections (control: the listening socket is closed, so connects get
    /// a reset from the kernel; data: reset at once) for `d`.
    pub fn refuse_for(&self, d: Duration) {
        *lock(&self.shared.refuse_until) = Some(Instant::now() + d);
    }

    /// Resets every connection open now.
    pub fn reset_all(&self) -> usize {
        let links: Vec<Arc<Link>> = lock(&self.shared.links).values().cloned().collect();
        for l in &links {
            cut(l);
        }
        links.len()
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Every byte clients sent on control connections, in the order received (per
    /// connection; connections interleave), up to 16 MiB.
    pub fn control_bytes(&self) -> Vec<u8> {
        lock(&self.shared.control_bytes).clone()
    }

    /// The command lines clients sent in clear (`PASS` masked).
    pub fn commands(&self) -> Vec<String> {
        lock(&self.shared.commands).clone()
    }

    /// The commands and replies that crossed in clear (replies cut at 200 characters, at
    /// most 100,000 lines), for failure messages.
    pub fn transcript(&self) -> Vec<String> {
        lock(&self.shared.transcript).clone()
    }

    /// What the `LimitData` toxics did, one line each.
    pub fn fired(&self) -> Vec<String> {
        lock(&self.shared.fired).clone()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.links).len()
    }
}

fn accept_loop(sh: &Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let _ = listener.set_nonblocking(true);
    let mut listener = Some(listener);
    while !sh.stopping() {
        if refusing(sh) {
            if listener.take().is_some() {
                eprintln!("toxic proxy {addr}: refusing new connections");
            }
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let Some(l) = listener.as_ref() else {
            // refusing ended: listen again on the same port
            match TcpListener::bind(addr) {
                Ok(l) => {
                    let _ = l.set_nonblocking(true);
                    listener = Some(l);
                    eprintln!("toxic proxy {addr}: accepting connections again");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                sh.spawn(move |sh| control(&sh, client));
            }
            Err(e) if is_timeout(&e) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

impl Drop for ToxicProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let t = self.transcript();
            let shown = if super::full_logs() { t.len() } else { 100 };
            eprintln!(
                "--- toxic proxy {}:{} transcript (last {shown} of {} lines) ---\n{}",
                self.ip,
                self.port,
                t.len(),
                t[t.len().saturating_sub(shown)..].join("\n")
            );
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        for link in lock(&self.shared.links).values() {
            let _ = link.client.shutdown(std::net::Shutdown::Both);
            let _ = link.server.shutdown(std::net::Shutdown::Both);
        }
        // Threads can start threads (a data listener per 227/229): join until none is left.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let batch: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.shared.threads));
            if batch.is_empty() {
                break;
            }
            for t in batch {
                let _ = t.join();
            }
            assert!(Instant::now() < deadline, "the toxic proxy's threads did not end within 20 s");
        }
    }
}
