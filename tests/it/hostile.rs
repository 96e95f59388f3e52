//! A hostile or broken server: a reply line without end, a multi-line reply without end, a
//! listing without end. The daemon fails that one operation at once, with a line in the log
//! that says what the server did, in bounded memory, and goes on working.
//!
//! A proxy in front of the in-process server says it is pure-ftpd (so the daemon sends an
//! upload's SIZE through its own reply reader, not suppaftp's) and sends the endless reply or
//! listing once. The daemon's `--timeout` is far above the tests' deadline: the bound must come
//! from the reader's caps, not from a timeout.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::{
    Behaviour, Daemon, DataLink, FtpProxy, LISTING_TOO_LONG, PROXY_IP, REPLY_LINE_TOO_LONG, REPLY_TOO_LONG, Test,
    Verdict, proc,
};

/// The most memory the daemon may have used at its peak. Without the caps it takes whatever the
/// server sends (gigabytes, until the proxy stops).
const MEMORY_BOUND: u64 = 128 * 1024 * 1024;

/// What the proxy sends, once, instead of the server's answer.
enum Endless {
    /// The reply to the first SIZE: `start`, then `repeat` without end.
    SizeReply { start: &'static str, repeat: &'static str },
    /// The first listing's data: MLSD lines without end.
    Listing,
}

struct Hostile {
    what: Endless,
    sent: AtomicBool,
}

impl Hostile {
    fn new(what: Endless) -> Hostile {
        Hostile { what, sent: AtomicBool::new(false) }
    }
}

impl Behaviour for Hostile {
    fn command(&self, verb: &str, _line: &str) -> Verdict {
        match self.what {
            Endless::SizeReply { start, repeat } if verb == "SIZE" && !self.sent.swap(true, Ordering::SeqCst) => {
                Verdict::Endless { start: start.into(), repeat: repeat.into() }
            }
            _ => Verdict::Forward,
        }
    }

    fn reply(&self, line: &str) -> Option<String> {
        if line.starts_with("220 ") {
            Some("220---------- Welcome to Pure-FTPd [privsep] ----------\r\n220 (ftpmonitor test proxy)\r\n".into())
        } else {
            Some(line.to_owned())
        }
    }

    fn data(&self, link: &DataLink) {
        link.relay_upload();
        let (mut from_server, mut to_client) = (&link.server, &link.client);
        // The server writes (or closes) only once it has the command: then its verb is known.
        let mut first = [0u8; 8192];
        let n = from_server.read(&mut first).unwrap_or(0);
        let verb = link.verb();
        if matches!(self.what, Endless::Listing)
            && matches!(verb.as_str(), "MLSD" | "LIST")
            && !self.sent.swap(true, Ordering::SeqCst)
        {
            link.send_endless("", "type=file;size=1;modify=20200101000000; endless.txt\r\n");
            return;
        }
        if n > 0 && to_client.write_all(&first[..n]).is_ok() {
            let _ = std::io::copy(&mut from_server, &mut to_client);
        }
        let _ = to_client.shutdown(Shutdown::Write);
    }

    /// libunftp must get the commands the daemon sends together one at a time.
    fn one_at_a_time(&self) -> bool {
        true
    }
}

/// Starts the daemon behind a [`Hostile`] proxy with `a.txt` to upload; checks that `needle` is
/// logged, that `a.txt` and then `b.txt` arrive, that the daemon still runs and that its memory
/// stayed bounded.
fn survives(what: Endless, needle: &str) {
    let t = Test::new().args(["--timeout", "120s", "--parallel", "1", "--log-level", "debug"]);
    let proxy = FtpProxy::start(t.server().port(), Hostile::new(what));
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    t.write("a.txt", b"first\n");
    let d = t.start();
    let ctx = |d: &Daemon| format!("{}\n--- proxy commands ---\n{:#?}", d.diagnostics(), proxy.commands());
    d.wait_until(&format!("the log says {needle:?}"), || d.log().contains(needle));
    d.wait_remote("a.txt", b"first\n");
    d.write("b.txt", b"second\n");
    d.wait_remote("b.txt", b"second\n");
    assert!(d.try_exit().is_none(), "the daemon exited\n{}", ctx(&d));
    let peak = proc::peak_memory(d.pid()).expect("VmHWM of the daemon");
    assert!(peak < MEMORY_BOUND, "the daemon used {} MiB at its peak\n{}", peak >> 20, ctx(&d));
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx(&d));
}

#[test]
fn a_reply_line_without_end_fails_the_upload_at_once_and_the_daemon_goes_on() {
    survives(Endless::SizeReply { start: "213 ", repeat: "9" }, REPLY_LINE_TOO_LONG);
}

#[test]
fn a_multi_line_reply_without_end_fails_the_upload_at_once_and_the_daemon_goes_on() {
    survives(Endless::SizeReply { start: "213-Size follows\r\n", repeat: " 9999999999\r\n" }, REPLY_TOO_LONG);
}

#[test]
fn a_listing_without_end_is_refused_at_once_and_the_daemon_goes_on() {
    survives(Endless::Listing, LISTING_TOO_LONG);
}
