//! The first sync of a job against a server without MLSD that answers LIST in Windows / IIS
//! (DOS) format: the daemon must parse that listing and count the files already there as
//! synced.
//!
//! No Debian FTP daemon lists in DOS format, so [`DosProxy`] puts one in front of the
//! in-process server: a transparent FTP proxy on 127.0.0.2 that hides MLST/MLSD and rewrites
//! every LIST from `ls -l` format to `MM-DD-YY  HH:MMAM  <DIR>|SIZE  NAME`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use suppaftp::list::ListParser;
use suppaftp::{FtpStream, Mode};

use crate::support::{EXIT_OK, FtpServer, PASSWORD, ServerEvent, TEMP_SUFFIX, TIMEOUT, Test, USER, files_under};

/// Where the proxy listens: another loopback address, so that the client's data connections
/// (to the control peer's address, with EPSV) reach the proxy and not the server.
const PROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A bound for any socket read or write of the proxy, so no thread can hang for ever.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every thread of one proxy shares.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// A handle on every socket, to shut them all down (and so end every thread) on drop.
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Every command line a client sent, in order (PASS masked).
    commands: Mutex<Vec<String>>,
    /// What went wrong inside the proxy (a listing line it could not convert, a port it could
    /// not bind): the tests assert this stays empty.
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn track(&self, s: &TcpStream) {
        s.set_read_timeout(Some(IO_TIMEOUT)).ok();
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

    fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce(Arc<Shared>) + Send + 'static) {
        let shared = Arc::clone(self);
        match std::thread::Builder::new().name(name.to_owned()).spawn(move || f(shared)) {
            Ok(handle) => lock(&self.threads).push(handle),
            Err(e) => self.problem(format!("cannot spawn {name}: {e}")),
        }
    }
}

/// One control connection: the verb of the last command the client sent, so that a data
/// connection knows whether it carries a LIST.
#[derive(Default)]
struct Session {
    last_verb: Mutex<String>,
}

/// A transparent FTP proxy on `127.0.0.2:<port>` in front of an FTP server on
/// `127.0.0.1:<upstream>` that turns it into a server without MLSD whose LIST answers in
/// DOS format. Plain FTP only, passive data connections only (EPSV, and PASV with the
/// address rewritten to 127.0.0.2). Dropping it closes every connection and joins every thread.
struct DosProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl DosProxy {
    fn start(upstream: u16) -> DosProxy {
        let listener = TcpListener::bind((PROXY_IP, 0)).expect("bind 127.0.0.2:0 for the proxy");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared::default());
        shared.spawn(&format!("dos-proxy-{port}"), move |shared| {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                shared.spawn("dos-proxy-session", move |shared| control(&shared, client, upstream));
            }
        });
        DosProxy { port, shared }
    }

    fn port(&self) -> u16 {
        self.port
    }

    /// Every command line clients sent through the proxy.
    fn commands(&self) -> Vec<String> {
        lock(&self.shared.commands).clone()
    }

    /// How many commands with this verb clients sent.
    fn count(&self, verb: &str) -> usize {
        self.commands()
            .iter()
            .filter(|c| c.split_whitespace().next().is_some_and(|v| v.eq_ignore_ascii_case(verb)))
            .count()
    }

    fn problems(&self) -> Vec<String> {
        lock(&self.shared.problems).clone()
    }
}

impl Drop for DosProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then end every connection; data listeners see `stop`.
        let _ = TcpStream::connect_timeout(&SocketAddr::from((PROXY_IP, self.port)), Duration::from_secs(1));
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
fn control(shared: &Arc<Shared>, client: TcpStream, upstream: u16) {
    shared.track(&client);
    let server = match TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, upstream)), IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            shared.problem(format!("cannot reach the server on 127.0.0.1:{upstream}: {e}"));
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

    // Server to client, on a thread of its own: replies, with FEAT, EPSV and PASV rewritten.
    {
        let session = Arc::clone(&session);
        let client_writer = Arc::clone(&client_writer);
        shared.spawn("dos-proxy-replies", move |shared| {
            let mut reader = BufReader::new(server_reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let Some(out) = rewrite_reply(&shared, &session, &line) else { continue };
                if lock(&client_writer).write_all(&out).is_err() {
                    break;
                }
            }
            let _ = lock(&client_writer).shutdown(Shutdown::Write);
        });
    }

    // Client to server, here: commands; MLSD and MLST are refused without asking the server.
    let mut reader = BufReader::new(client_reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let verb = text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let shown = if verb == "PASS" { "PASS ****".to_owned() } else { text.trim_end().to_owned() };
        lock(&shared.commands).push(shown);
        // Before the command goes on: its data connection looks at it when the server answers.
        *lock(&session.last_verb) = verb.clone();
        if verb == "MLSD" || verb == "MLST" {
            if lock(&client_writer).write_all(b"500 Unknown command\r\n").is_err() {
                break;
            }
            continue;
        }
        if server_writer.write_all(&line).is_err() {
            break;
        }
    }
    let _ = server_writer.shutdown(Shutdown::Write);
}

/// One reply line from the server as the client gets it (`None`: dropped).
fn rewrite_reply(shared: &Arc<Shared>, session: &Arc<Session>, line: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(line);
    // A FEAT feature line (indented by one space): hide MLST and MLSD.
    if text.starts_with(' ') {
        let feature = text.trim_start().to_ascii_uppercase();
        if feature.starts_with("MLST") || feature.starts_with("MLSD") {
            return None;
        }
    }
    if text.starts_with("229 ") {
        // `229 Entering Extended Passive Mode (|||p|)`: unchanged; the client connects to
        // 127.0.0.2:p, the server listens on 127.0.0.1:p.
        let port = text.split("(|||").nth(1).and_then(|r| r.split('|').next()).and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(p) => open_data(shared, session, p),
            None => shared.problem(format!("cannot parse {text:?}")),
        }
    }
    if text.starts_with("227 ") {
        // `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`: the address becomes 127.0.0.2.
        let inside = text.split('(').nth(1).and_then(|r| r.split(')').next());
        let numbers: Option<Vec<u16>> =
            inside.and_then(|s| s.split(',').map(|n| n.trim().parse().ok()).collect::<Option<Vec<u16>>>());
        match numbers {
            Some(n) if n.len() == 6 => {
                open_data(shared, session, n[4] * 256 + n[5]);
                let rewritten = text.replacen(inside.unwrap_or_default(), &format!("127,0,0,2,{},{}", n[4], n[5]), 1);
                return Some(rewritten.into_bytes());
            }
            _ => shared.problem(format!("cannot parse {text:?}")),
        }
    }
    Some(line.to_vec())
}

/// Listens on 127.0.0.2:`port` (before the client learns the port) for one data connection,
/// and relays it to the server's 127.0.0.1:`port`.
fn open_data(shared: &Arc<Shared>, session: &Arc<Session>, port: u16) {
    let listener = match TcpListener::bind((PROXY_IP, port)) {
        Ok(l) => l,
        Err(e) => {
            shared.problem(format!("cannot listen on 127.0.0.2:{port} for a data connection: {e}"));
            return;
        }
    };
    let session = Arc::clone(session);
    shared.spawn("dos-proxy-data", move |shared| {
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
                    shared.problem(format!("accept on 127.0.0.2:{port}: {e}"));
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
        let server = match TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), IO_TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                shared.problem(format!("cannot reach the server's data port 127.0.0.1:{port}: {e}"));
                return;
            }
        };
        shared.track(&server);
        data(&shared, &session, client, server);
    });
}

/// Relays one data connection; the server's answer to a LIST is converted to DOS format.
fn data(shared: &Arc<Shared>, session: &Session, client: TcpStream, server: TcpStream) {
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        shared.problem("cannot clone a data socket".into());
        return;
    };
    shared.spawn("dos-proxy-upload", move |_| {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let mut first = [0u8; 8192];
    let n = from_server.read(&mut first).unwrap_or(0);
    // The server sends nothing before it got the command, which the proxy noted before it
    // passed it on: the verb is the one this connection belongs to.
    if *lock(&session.last_verb) == "LIST" {
        let mut unix = first[..n].to_vec();
        if let Err(e) = from_server.read_to_end(&mut unix) {
            shared.problem(format!("reading a LIST from the server: {e}"));
        }
        let year = time::OffsetDateTime::now_utc().year();
        let mut dos = String::new();
        for line in String::from_utf8_lossy(&unix).lines().filter(|l| !l.trim().is_empty()) {
            match unix_to_dos(line, year) {
                Some(d) => {
                    dos.push_str(&d);
                    dos.push_str("\r\n");
                }
                None => shared.problem(format!("cannot convert the LIST line {line:?}")),
            }
        }
        let _ = to_client.write_all(dos.as_bytes());
    } else if n > 0 && to_client.write_all(&first[..n]).is_ok() {
        let _ = std::io::copy(&mut from_server, &mut to_client);
    }
    let _ = to_client.shutdown(Shutdown::Write);
}

/// One `ls -l` line as libunftp writes it (`-rw-r--r-- 1 0 0 1234 Nov 24 21:58 name`, or
/// `... Nov 24  2025 name` for another year than `this_year`, both in UTC) in the DOS format of
/// IIS: `11-24-26  09:58PM                 1234 name` or `11-24-26  09:58PM       <DIR>          sub`.
/// The date and minute are kept (a year-only date becomes midnight). `None` for what is neither
/// a file nor a directory, or does not parse.
fn unix_to_dos(line: &str, this_year: i32) -> Option<String> {
    // The first eight fields, then the name (which may hold spaces).
    let mut fields = Vec::with_capacity(8);
    let mut rest = line.trim_end_matches(['\r', '\n']);
    for _ in 0..8 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.strip_prefix(' ').unwrap_or(rest.trim_start());
    if name.is_empty() {
        return None;
    }
    let is_dir = match fields[0].chars().next()? {
        'd' => true,
        '-' => false,
        _ => return None,
    };
    let size: u64 = fields[4].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m.eq_ignore_ascii_case(fields[5]))?
        + 1;
    let day: u32 = fields[6].parse().ok()?;
    let (year, hour, minute) = match fields[7].split_once(':') {
        Some((h, m)) => (this_year, h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None => (fields[7].parse::<i32>().ok()?, 0, 0),
    };
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let (hour12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    let when = format!("{month:02}-{day:02}-{:02}  {hour12:02}:{minute:02}{ampm}", year.rem_euclid(100));
    Some(if is_dir { format!("{when}       <DIR>          {name}") } else { format!("{when} {size:>20} {name}") })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Sets the modification time of `path`.
fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

fn unix_time(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn at(date: time::Date, h: u8, m: u8, s: u8) -> SystemTime {
    let secs = date.with_hms(h, m, s).unwrap().assume_utc().unix_timestamp();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

/// Logs in through the proxy with suppaftp.
fn login_through(proxy: &DosProxy) -> FtpStream {
    let mut ftp = FtpStream::connect((PROXY_IP, proxy.port())).expect("connect to the proxy");
    ftp.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
    ftp.login(USER, PASSWORD).expect("log in through the proxy");
    ftp
}

/// A LIST through the proxy: every line must be DOS format, not Unix; name -> (is dir, size,
/// mtime in unix seconds).
fn dos_listing(ftp: &mut FtpStream, dir: &str) -> BTreeMap<String, (bool, usize, i64)> {
    let lines = ftp.list(Some(dir)).expect("LIST through the proxy");
    assert!(!lines.is_empty(), "an empty listing proves nothing");
    let mut out = BTreeMap::new();
    for line in &lines {
        assert!(ListParser::parse_posix(line).is_err(), "the proxy passed a Unix line through: {line:?}");
        let f = ListParser::parse_dos(line).unwrap_or_else(|e| panic!("not a DOS line ({e}): {line:?}"));
        out.insert(f.name().to_owned(), (f.is_directory(), f.size(), unix_time(f.modified())));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Checks of the proxy itself
// ---------------------------------------------------------------------------------------------

#[test]
fn listing_helpers_unix_to_dos() {
    let unix = |kind: &str, size: u64, date: &str, name: &str| {
        format!("{kind}rw-r--r-- {:>12} {:>12} {:>12} {size:#14} {date:>12} {name}", 1, 0, 0)
    };
    assert_eq!(
        unix_to_dos(&unix("-", 1234, "Nov 24 21:58", "name.txt"), 2026).as_deref(),
        Some("11-24-26  09:58PM                 1234 name.txt")
    );
    assert_eq!(
        unix_to_dos(&unix("d", 4096, "Nov 24 09:15", "sub"), 2026).as_deref(),
        Some("11-24-26  09:15AM       <DIR>          sub")
    );
    assert_eq!(
        unix_to_dos(&unix("-", 0, "Jan 02 2020", "with  two spaces.txt"), 2026).as_deref(),
        Some("01-02-20  12:00AM                    0 with  two spaces.txt")
    );
    assert_eq!(
        unix_to_dos(&unix("-", 5, "Mar 04 12:07", "noon"), 2026).as_deref(),
        Some("03-04-26  12:07PM                    5 noon")
    );
    assert_eq!(unix_to_dos(&unix("l", 5, "Mar 04 12:07", "link -> x"), 2026), None);
    assert_eq!(unix_to_dos("total 0", 2026), None);
    // What suppaftp makes of it: the same date and minute, size and kind.
    let f = ListParser::parse_dos("11-24-26  09:58PM                 1234 name.txt").unwrap();
    assert_eq!((f.name(), f.size(), f.is_file()), ("name.txt", 1234, true));
    let expected = at(time::Date::from_calendar_date(2026, time::Month::November, 24).unwrap(), 21, 58, 0);
    assert_eq!(f.modified(), expected);
    let d = ListParser::parse_dos("11-24-26  09:15PM       <DIR>          sub").unwrap();
    assert!(d.is_directory() && d.name() == "sub");
}

#[test]
fn listing_proxy_hides_mlsd_and_serves_dos_listings() {
    let server = FtpServer::start();
    let upload = server.root().join("upload");
    std::fs::create_dir_all(upload.join("sub")).unwrap();
    std::fs::write(upload.join("a.txt"), b"hello").unwrap();
    std::fs::write(upload.join("with space.txt"), b"1234567").unwrap();
    std::fs::write(upload.join("old.bin"), b"xyz").unwrap();
    // This year: listed with its minute; another year: with the year only (midnight).
    let this_year = time::OffsetDateTime::now_utc().year();
    let recent = at(time::Date::from_calendar_date(this_year, time::Month::January, 2).unwrap(), 13, 45, 30);
    let old = at(time::Date::from_calendar_date(2020, time::Month::March, 4).unwrap(), 5, 6, 7);
    set_mtime(&upload.join("a.txt"), recent);
    set_mtime(&upload.join("with space.txt"), recent);
    set_mtime(&upload.join("old.bin"), old);

    let proxy = DosProxy::start(server.port());
    let mut ftp = login_through(&proxy);
    let feat = ftp.feat().expect("FEAT through the proxy");
    assert!(feat.keys().any(|k| k.eq_ignore_ascii_case("SIZE")), "FEAT did not come through: {feat:?}");
    assert!(
        !feat.keys().any(|k| k.eq_ignore_ascii_case("MLST") || k.eq_ignore_ascii_case("MLSD")),
        "the proxy still advertises MLST/MLSD: {feat:?}"
    );

    let recent_min = unix_time(recent) - 30;
    let old_day = unix_time(at(time::Date::from_calendar_date(2020, time::Month::March, 4).unwrap(), 0, 0, 0));
    let expected = BTreeMap::from([
        ("a.txt".to_owned(), (false, 5, recent_min)),
        ("with space.txt".to_owned(), (false, 7, recent_min)),
        ("old.bin".to_owned(), (false, 3, old_day)),
    ]);
    for mode in [Mode::ExtendedPassive, Mode::Passive] {
        // PASV: suppaftp connects to the address in the 227, which must be the proxy's.
        ftp.set_mode(mode);
        let listing = dos_listing(&mut ftp, "/upload");
        let files: BTreeMap<String, (bool, usize, i64)> =
            listing.iter().filter(|(_, v)| !v.0).map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(files, expected, "{mode:?}");
        assert!(listing.get("sub").is_some_and(|v| v.0), "{mode:?}: sub is not a <DIR>: {listing:?}");
    }
    // Uploads pass through unchanged.
    ftp.set_mode(Mode::ExtendedPassive);
    ftp.put_file("/upload/put.txt", &mut &b"through the proxy"[..]).expect("STOR through the proxy");
    assert_eq!(server.remote_file("upload/put.txt").as_deref(), Some(b"through the proxy".as_slice()));
    // MLSD is refused by the proxy.
    let err = ftp.mlsd(Some("/upload")).expect_err("MLSD through the proxy");
    assert!(err.to_string().contains("500") || err.to_string().contains("Unknown"), "{err}");
    let _ = ftp.quit();

    assert_eq!(proxy.count("LIST"), 2, "{:#?}", proxy.commands());
    assert_eq!(proxy.count("MLSD"), 1, "{:#?}", proxy.commands());
    assert_eq!(proxy.problems(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// The daemon against a DOS-listing server
// ---------------------------------------------------------------------------------------------

#[test]
fn first_sync_against_a_dos_listing_server_uploads_only_what_differs() {
    let t = Test::new().arg("--once");
    let proxy = DosProxy::start(t.server().port());
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());

    // The local files are two hours old: the listing's minute precision cannot make a remote
    // copy written now look older.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    let remote_root = t.server().root().join("upload");
    let put_remote = |rel: &str, bytes: &[u8]| {
        let path = remote_root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    };
    let same = [
        ("same.txt", b"identical bytes".as_slice()),
        ("with space.txt", b"also identical".as_slice()),
        ("sub/same.bin", b"\x00\x01same\xff".as_slice()),
    ];
    for (rel, bytes) in same {
        let local = t.write(rel, bytes);
        set_mtime(&local, two_hours_ago);
        put_remote(rel, bytes);
    }
    let differs = t.write("differs.txt", b"the new local version");
    set_mtime(&differs, two_hours_ago);
    put_remote("differs.txt", b"old");

    let out = t.run();
    let d = &out.daemon;
    let context = || format!("{}\n--- proxy commands ---\n{:#?}", d.diagnostics(), proxy.commands());
    assert_eq!(out.status.code(), Some(EXIT_OK), "exit status {}\n{}", out.status, context());
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", context());

    // The daemon listed (both directories) with LIST, never with MLSD/MLST.
    assert!(proxy.count("LIST") >= 2, "fewer than two LISTs through the proxy\n{}", context());
    assert_eq!(proxy.count("MLSD") + proxy.count("MLST"), 0, "{}", context());

    let stored: Vec<String> = d
        .server()
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec![format!("/upload/.differs.txt{TEMP_SUFFIX}")], "{}", context());
    let log = d.own_log();
    for (rel, _) in same {
        assert_eq!(
            log.lines().filter(|l| crate::support::is_upload_line(l, rel)).count(),
            0,
            "{rel} is on the server already but was uploaded\n{}",
            context()
        );
    }
    assert_eq!(log.lines().filter(|l| crate::support::is_upload_line(l, "differs.txt")).count(), 1, "{}", context());
    assert_eq!(d.remote_files(), files_under(&d.watch_dir()), "{}", context());
}
