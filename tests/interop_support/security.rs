//! Server-side security (issue 10, C.3), against the real daemons through the proxy of
//! toxics.rs: `--tls` refuses an untrusted or wrong-host certificate and a server that
//! refuses TLS, and never sends the login in clear (the proxy records every byte the
//! client sent on control connections); a hostile server (endless and oversized replies,
//! a PASV/EPSV reply naming another address, replies out of step, listings with `..`,
//! `/` and absolute paths in names) cannot crash the daemon, make it connect elsewhere (a
//! decoy listener must see no connection) or make it write outside REMOTE_DIR (everything
//! outside it on the server's disk must stay as it was, and no command that changes the
//! server may name a path outside it).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::faults::{
    Checker, Versions, assert_log_readable, bytes_from, difference, lines_with, result_line, seed,
};
use crate::support::ftpmonitor::{Job, kill_forked};
use crate::support::servers::{Kind, Options, Server};
use crate::support::toxics::{Rng, Script, ToxicProxy, Verdict};
use crate::support::{REMOTE_DIR, TIMEOUT, describe_tree};

/// Panics if the client's control bytes hold the login in clear.
fn assert_no_login_in_clear(bytes: &[u8], server: &Server, what: &str) {
    let text = String::from_utf8_lossy(bytes);
    for needle in ["USER ", "PASS ", "user ", "pass "] {
        assert!(
            !text.contains(needle),
            "{what}: {needle:?} crossed the wire in clear: {:?}",
            &text[..text.len().min(300)]
        );
    }
    assert!(
        !bytes.windows(server.password.len()).any(|w| w == server.password.as_bytes()),
        "{what}: the password crossed the wire in clear"
    );
}

/// The launcher against `host:port` must exit 1 before forking, with one line on stderr
/// that contains `needle`; nothing reaches the server's disk.
fn assert_refused(job: &Job, server: &Server, needles: &[&str], what: &str) -> String {
    crate::support::write_file(&job.watch, "secret.txt", b"must not be sent\n");
    let done = job.launch(TIMEOUT, server);
    let forked = kill_forked(job);
    assert_eq!(forked, None, "{what}: a daemon was left running\n{}", job.log());
    assert_eq!(done.status.code(), Some(1), "{what}: exit status {}; stderr:\n{}", done.status, done.stderr);
    let lines: Vec<&str> = done.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: want one line on stderr, got:\n{}", done.stderr);
    let lower = lines[0].to_lowercase();
    assert!(
        needles.iter().any(|n| lower.contains(n)),
        "{what}: the error does not say why ({needles:?}): {}",
        lines[0]
    );
    assert!(
        crate::support::files_under(&server.remote_root()).is_empty(),
        "{what}: files reached the server: {}",
        describe_tree(&server.root)
    );
    lines[0].to_owned()
}

/// A server that refuses `AUTH` (500, as a server without TLS does).
struct NoTls;
impl Script for NoTls {
    fn command(&self, line: &str) -> Verdict {
        if line.to_ascii_uppercase().starts_with("AUTH") {
            Verdict::Answer(vec!["500 This security scheme is not implemented".into()])
        } else {
            Verdict::Forward
        }
    }
}

/// `--tls`: an untrusted certificate (a CA that did not sign it), a certificate for
/// another host (the proxy on 127.0.0.2: the certificate names localhost and 127.0.0.1),
/// and a server that refuses AUTH TLS are all refused at start (exit 1, one line), and the
/// login never crosses the wire in clear; a good certificate through the same proxy syncs,
/// also without the login in clear.
pub fn tls_refusals(kind: Kind, test: &str) {
    let _ = seed(test);
    let server = Server::start(kind, Options { tls: true, ..Options::default() });
    let pki = server.pki.clone().expect("TLS");
    let mut seen = Vec::new();

    let proxy = ToxicProxy::start(server.port, 1);
    let job = Job::to(&server, "localhost", proxy.port).ca_file(&pki.wrong_ca);
    let line = assert_refused(&job, &server, &["certificate"], "untrusted certificate");
    assert_no_login_in_clear(&proxy.control_bytes(), &server, "untrusted certificate");
    assert!(proxy.control_bytes().starts_with(b"AUTH TLS\r\n"), "the client did not start with AUTH TLS");
    seen.push(format!("untrusted: {line}"));
    drop(proxy);

    let other = Ipv4Addr::new(127, 0, 0, 2);
    let proxy = ToxicProxy::with_script(other, server.port, 1, crate::support::toxics::Transparent);
    let job = Job::to(&server, "127.0.0.2", proxy.port);
    let line = assert_refused(&job, &server, &["certificate", "name"], "certificate for another host");
    assert_no_login_in_clear(&proxy.control_bytes(), &server, "certificate for another host");
    seen.push(format!("wrong host: {line}"));
    drop(proxy);

    let proxy = ToxicProxy::with_script(Ipv4Addr::LOCALHOST, server.port, 1, NoTls);
    let job = Job::to(&server, "localhost", proxy.port);
    let line = assert_refused(&job, &server, &["tls"], "AUTH TLS refused");
    assert_no_login_in_clear(&proxy.control_bytes(), &server, "AUTH TLS refused");
    seen.push(format!("AUTH refused: {line}"));
    drop(proxy);

    // the good case through the proxy (data connections go straight to the server: after
    // AUTH the proxy cannot read the EPSV replies)
    let proxy = ToxicProxy::start(server.port, 1);
    let job = Job::to(&server, "localhost", proxy.port);
    crate::support::write_file(&job.watch, "ok.txt", b"over TLS\n");
    job.once_ok(TIMEOUT, &server);
    assert!(difference(&job.watch, &server.remote_root()).is_none(), "the good TLS run did not sync");
    assert_no_login_in_clear(&proxy.control_bytes(), &server, "good certificate");
    for s in &seen {
        eprintln!("  {s}");
    }
    result_line(
        "--tls refusals",
        kind.name(),
        "untrusted CA; certificate of another host; AUTH TLS refused (500); and a good run, all through a recording proxy",
        0,
        "each refused: exit 1 with one line, nothing uploaded; no USER/PASS/password in clear in any of the four",
    );
}

/// Everything on the server's disk outside REMOTE_DIR: path -> (size, mtime, inode, hash).
fn outside_snapshot(server: &Server) -> BTreeMap<String, (u64, i64, u64, [u8; 32])> {
    fn walk(root: &Path, dir: &Path, skip: &Path, out: &mut BTreeMap<String, (u64, i64, u64, [u8; 32])>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            let rel = p.strip_prefix(root).expect("below").display().to_string();
            let h =
                if m.is_file() { *blake3::hash(&std::fs::read(&p).unwrap_or_default()).as_bytes() } else { [0; 32] };
            out.insert(rel, (m.len(), m.mtime(), m.ino(), h));
            if m.is_dir() {
                walk(root, &p, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&server.root, &server.root, &server.remote_root(), &mut out);
    out
}

/// Files outside REMOTE_DIR that a client honouring hostile names could touch.
fn plant_sentinels(server: &Server) {
    for rel in [
        "victim.txt",
        "escape.txt",
        "x.ftpmonitor-part",
        ".victim.txt.ftpmonitor-part",
        "victim.txt.ftpmonitor-old",
        "y.ftpmonitor-old",
        "outside/inner.txt",
        "outside/.inner.txt.ftpmonitor-part",
    ] {
        crate::support::write_file(&server.root, rel, format!("sentinel {rel}\n").as_bytes());
    }
}

/// `path` (absolute, or relative to the login directory `/`) with `.` and `..` resolved.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The commands that change the server and name a path outside REMOTE_DIR.
fn writes_outside(commands: &[String]) -> Vec<String> {
    commands
        .iter()
        .filter(|c| {
            let mut words = c.splitn(2, ' ');
            let verb = words.next().unwrap_or_default().to_ascii_uppercase();
            let rest = words.next().unwrap_or_default();
            let path = match verb.as_str() {
                "STOR" | "APPE" | "DELE" | "RNFR" | "RNTO" | "MKD" | "RMD" => rest,
                // MFMT time path; SITE CHMOD mode path
                "MFMT" => rest.split_once(' ').map_or("", |(_, p)| p),
                "SITE" => rest.splitn(3, ' ').nth(2).unwrap_or(""),
                _ => return false,
            };
            let p = normalize(path);
            p != REMOTE_DIR && !p.starts_with(&format!("{REMOTE_DIR}/"))
        })
        .cloned()
        .collect()
}

/// The hostile server of the listing scenario: every MLSD/LIST listing gets entries named
/// `..`, `.`, with `/`, absolute paths and look-alikes of ftpmonitor's own temporary names.
struct EvilListing;

const EVIL_NAMES: [(&str, bool); 14] = [
    ("..", true),
    (".", true),
    ("../outside", true),
    ("/", true),
    ("..", false),
    ("../escape.txt", false),
    ("/etc/passwd", false),
    ("../x.ftpmonitor-part", false),
    ("../.victim.txt.ftpmonitor-part", false),
    ("../victim.txt.ftpmonitor-old", false),
    ("sub/../../y.ftpmonitor-old", false),
    ("/victim.txt.ftpmonitor-old", false),
    ("..ftpmonitor-old", false),
    ("...ftpmonitor-part", false),
];

impl Script for EvilListing {
    fn rewrites_listing(&self, verb: &str) -> bool {
        matches!(verb, "MLSD" | "LIST")
    }

    fn listing(&self, verb: &str, mut data: Vec<u8>) -> Vec<u8> {
        for (name, dir) in EVIL_NAMES {
            let line = if verb == "MLSD" {
                format!("type={};size=3;modify=20200101000000;perm=adfrw; {name}\r\n", if dir { "dir" } else { "file" })
            } else {
                format!(
                    "{}rwxr-xr-x    1 ftp      ftp             3 Jan 01  2020 {name}\r\n",
                    if dir { "d" } else { "-" }
                )
            };
            data.extend_from_slice(line.as_bytes());
        }
        data
    }
}

/// A listing with `..`, `/`, absolute paths and look-alikes of temporary names: first
/// sync (an empty journal compares with the listings), SIGUSR1 (again, with a journal),
/// and with `--delete` (old copies set aside are removed, not restored): nothing outside
/// REMOTE_DIR changes, no command that changes the server names a path outside it.
pub fn hostile_listing(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    plant_sentinels(&server);
    let before = outside_snapshot(&server);
    let proxy = ToxicProxy::with_script(Ipv4Addr::LOCALHOST, server.port, seed, EvilListing);
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--delete"]);
    let versions = Versions::new();
    for rel in ["victim.txt", "escape.txt", "sub/y.txt", "outside/inner.txt", "a.bin"] {
        versions.write(&job.watch, rel, &bytes_from(&mut rng, 1000));
    }
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = job.spawn_foreground();
    let remote = server.remote_root();
    daemon.wait_until(TIMEOUT, &server, "the first sync is done", || difference(&job.watch, &remote).is_none());
    let listings =
        |p: &ToxicProxy| p.commands().iter().filter(|c| c.starts_with("MLSD") || c.starts_with("LIST")).count();
    let first = listings(&proxy);
    daemon.signal(libc::SIGUSR1);
    daemon.wait_until(TIMEOUT, &server, "SIGUSR1 listed the server again", || listings(&proxy) >= first + 2);
    // quiet: no command for 2 s (what the listings queued has run)
    let mut last = proxy.commands().len();
    daemon.wait_until(TIMEOUT, &server, "the daemon is quiet", || {
        std::thread::sleep(Duration::from_secs(2));
        let now = proxy.commands().len();
        std::mem::replace(&mut last, now) == now
    });
    versions.write(&job.watch, "after.txt", b"after the hostile listings\n");
    daemon.wait_until(TIMEOUT, &server, "a later file arrives", || difference(&job.watch, &remote).is_none());
    assert!(daemon.exited().is_none(), "the daemon died\n{}", job.diagnostics());
    assert_log_readable(&job.log(), test);
    let after = outside_snapshot(&server);
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| format!("changed or gone: {k}"))
        .chain(after.keys().filter(|k| !before.contains_key(*k)).map(|k| format!("new: {k}")))
        .collect();
    assert!(changed.is_empty(), "outside REMOTE_DIR on the server's disk: {changed:?}\n{}", job.diagnostics());
    let bad = writes_outside(&proxy.commands());
    assert!(bad.is_empty(), "commands that change the server outside {REMOTE_DIR}: {bad:?}");
    let commands = proxy.commands().len();
    assert!(daemon.stop().success(), "ftpmonitor did not stop cleanly\n{}", job.diagnostics());
    let (looks, _) = checker.finish();
    result_line(
        "hostile listings (.., /, absolute paths, temp-name look-alikes)",
        kind.name(),
        &format!(
            "{} hostile entries in each of {} listings (first sync, SIGUSR1, --delete)",
            EVIL_NAMES.len(),
            listings(&proxy)
        ),
        0,
        &format!(
            "{} files outside REMOTE_DIR unchanged; 0 of {commands} commands wrote outside it; checker: {looks} file states",
            before.len()
        ),
    );
}

/// A server whose PASV and EPSV replies name another address (127.0.0.5, where a decoy
/// listens on the very port announced). `refuse_epsv` makes the server refuse EPSV, so
/// that PASV is used.
struct Redirect {
    refuse_epsv: bool,
    decoys: Mutex<Vec<TcpListener>>,
}

const DECOY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

impl Script for Redirect {
    fn command(&self, line: &str) -> Verdict {
        if self.refuse_epsv && line.to_ascii_uppercase().starts_with("EPSV") {
            Verdict::Answer(vec!["500 EPSV not understood".into()])
        } else {
            Verdict::Forward
        }
    }

    fn announce(&self, passive: bool, _ip: Ipv4Addr, port: u16) -> String {
        if let Ok(l) = TcpListener::bind((DECOY, port)) {
            let _ = l.set_nonblocking(true);
            self.decoys.lock().expect("lock").push(l);
        }
        if passive {
            format!("227 Entering Passive Mode (127,0,0,5,{},{}).\r\n", port / 256, port % 256)
        } else {
            format!("229 Entering Extended Passive Mode (|1|127.0.0.5|{port}|)\r\n")
        }
    }
}

impl Redirect {
    /// Connections that reached a decoy.
    fn hits(&self) -> usize {
        self.decoys.lock().expect("lock").iter().filter(|l| l.accept().is_ok()).count()
    }
}

/// PASV/EPSV replies that name another address: the daemon connects to the control
/// connection's peer only (no decoy sees a connection), and the files arrive.
pub fn passive_reply_naming_another_address(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let mut hits = Vec::new();
    for refuse_epsv in [false, true] {
        let script = Arc::new(Redirect { refuse_epsv, decoys: Mutex::new(Vec::new()) });
        let proxy = ToxicProxy::with_script(Ipv4Addr::LOCALHOST, server.port, seed, SharedScript(Arc::clone(&script)));
        let job = Job::to(&server, "127.0.0.1", proxy.port);
        for i in 0..5 {
            crate::support::write_file(
                &job.watch,
                &format!("r{}/f{i}.bin", u8::from(refuse_epsv)),
                &bytes_from(&mut rng, 70_000),
            );
        }
        let done = job.once(Duration::from_secs(120), &server);
        let n = script.hits();
        assert_eq!(
            n,
            0,
            "{n} connection(s) reached the decoy at {DECOY} (refuse EPSV: {refuse_epsv})\n{}",
            job.diagnostics()
        );
        assert!(
            done.status.success(),
            "--once failed (refuse EPSV: {refuse_epsv})\n{}{}",
            job.diagnostics(),
            server.logs()
        );
        let announced = script.decoys.lock().expect("lock").len();
        assert!(announced >= 5, "only {announced} passive replies were rewritten");
        hits.push(format!("{} {} replies, 0 decoy connections", announced, if refuse_epsv { "PASV" } else { "EPSV" }));
        assert_log_readable(&job.log(), test);
    }
    result_line(
        "PASV/EPSV naming another address",
        kind.name(),
        &format!("passive replies naming {DECOY} (a decoy listening on the port): {}", hits.join("; ")),
        0,
        "all files arrived through the control connection's peer",
    );
}

/// Wraps a shared script (so the test keeps a handle on it).
struct SharedScript<S>(Arc<S>);
impl<S: Script> Script for SharedScript<S> {
    fn command(&self, line: &str) -> Verdict {
        self.0.command(line)
    }
    fn reply(&self, line: &str, last: &str) -> Vec<String> {
        self.0.reply(line, last)
    }
    fn announce(&self, passive: bool, ip: Ipv4Addr, port: u16) -> String {
        self.0.announce(passive, ip, port)
    }
    fn listing(&self, verb: &str, data: Vec<u8>) -> Vec<u8> {
        self.0.listing(verb, data)
    }
    fn rewrites_listing(&self, verb: &str) -> bool {
        self.0.rewrites_listing(verb)
    }
}

/// A server that misbehaves once in each of several ways: an endless multi-line reply to
/// the first SIZE, a 4 MiB reply line to the first MFMT (or the second SIZE), an extra
/// reply after the first reply to RNTO (out of step), an early final reply to the first
/// STOR of a later file (before its data).
struct Misbehave {
    size: AtomicU32,
    mfmt: AtomicBool,
    rnto: AtomicBool,
    stor: AtomicU32,
    early: AtomicBool,
}

impl Script for Misbehave {
    fn command(&self, line: &str) -> Verdict {
        let verb = line.split(' ').next().unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "SIZE" => match self.size.fetch_add(1, Ordering::SeqCst) {
                0 => Verdict::Endless { start: "213-here it comes\r\n".into(), repeat: " and more\r\n".into() },
                3 => Verdict::Answer(vec![format!("213 {}", "9".repeat(4 << 20))]),
                _ => Verdict::Forward,
            },
            "MFMT" if !self.mfmt.swap(true, Ordering::SeqCst) => {
                Verdict::Answer(vec![format!("213 {}", "x".repeat(4 << 20))])
            }
            _ => Verdict::Forward,
        }
    }

    fn reply(&self, line: &str, last: &str) -> Vec<String> {
        let up = last.to_ascii_uppercase();
        if up.starts_with("RNTO") && line.starts_with("250 ") && !self.rnto.swap(true, Ordering::SeqCst) {
            return vec![line.to_owned(), "226 Transfer complete (an extra reply)\r\n".into()];
        }
        if up.starts_with("STOR")
            && line.starts_with("150")
            && self.stor.fetch_add(1, Ordering::SeqCst) == 6
            && !self.early.swap(true, Ordering::SeqCst)
        {
            return vec![line.to_owned(), "226 Done (before any data)\r\n".into()];
        }
        vec![line.to_owned()]
    }
}

/// Endless and oversized replies and replies out of step from a real server's session:
/// the daemon survives in bounded memory, says what the server did, and every file
/// arrives intact.
pub fn hostile_replies(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let script = Misbehave {
        size: AtomicU32::new(0),
        mfmt: AtomicBool::new(false),
        rnto: AtomicBool::new(false),
        stor: AtomicU32::new(0),
        early: AtomicBool::new(false),
    };
    let proxy = ToxicProxy::with_script(Ipv4Addr::LOCALHOST, server.port, seed, script);
    // A session that fails this way is replaced silently (at debug level), as one the
    // server closed while idle would be.
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--parallel", "2", "--log-level", "debug"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = job.spawn_foreground();
    for i in 0..20 {
        let len = usize::try_from(rng.between(0, 200_000)).expect("fits");
        versions.write(&job.watch, &format!("h/f{i:02}.bin"), &bytes_from(&mut rng, len));
    }
    let remote = server.remote_root();
    daemon.wait_until(Duration::from_secs(180), &server, "every file arrived", || {
        difference(&job.watch, &remote).is_none()
    });
    let peak = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    assert!(peak < 128 * 1024, "the daemon's memory peaked at {peak} KiB\n{}", job.diagnostics());
    let log = job.log();
    assert_log_readable(&log, test);
    // A positive reply reported as a command's failure: the session was out of step and
    // took another command's reply (the one injected too early aside).
    let mismatched: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" - warning") && !l.contains("before any data"))
        .filter(|l| {
            l.match_indices(": ").any(|(i, _)| {
                let b = l.as_bytes();
                b.len() > i + 5
                    && matches!(b[i + 2], b'1'..=b'3')
                    && b[i + 3].is_ascii_digit()
                    && b[i + 4].is_ascii_digit()
                    && matches!(b[i + 5], b' ' | b'-')
            })
        })
        .collect();
    assert!(mismatched.is_empty(), "replies taken for other commands' (out of step): {mismatched:#?}\n{log}");
    let said = lines_with(&log, &["longer than", "out of step", "more replies than", "before any data"]);
    assert!(!said.is_empty(), "no log line says what the server did\n{log}");
    assert!(daemon.stop().success(), "ftpmonitor did not stop cleanly\n{}", job.diagnostics());
    let (looks, rounds) = checker.finish();
    for l in &said {
        eprintln!("  {l}");
    }
    result_line(
        "hostile replies (endless, oversized, out of step)",
        kind.name(),
        "endless multi-line reply to SIZE; 4 MiB reply lines to MFMT and SIZE; an extra reply after RNTO; a final reply before STOR's data",
        0,
        &format!(
            "20 files; memory peak {} MiB; {} log lines about it; checker: {looks} file states in {rounds} rounds",
            peak / 1024,
            said.len()
        ),
    );
}
