//! IPv6: the in-process server on `::1`, a proxy on `::1` in front of it to see and change the
//! commands. PASV cannot name an IPv6 address, so on an IPv6 control connection the daemon
//! never sends it; and only a refusal of EPSV itself changes how data connections are opened,
//! not a refusal of the command that follows it (a `501` to MLSD, say).
//!
//! (libunftp has no EPRT, so `--active` over IPv6 runs in the interop suite only.)

use crate::support::{Behaviour, EXIT_OK, FtpProxy, Test, Transparent, Verdict, temp_files_under};

/// Answers one verb with a refusal of its own; the rest passes unchanged.
struct Refuse {
    verb: &'static str,
    reply: &'static str,
}

impl Behaviour for Refuse {
    fn command(&self, verb: &str, _line: &str) -> Verdict {
        if verb == self.verb { Verdict::Answer(self.reply.into()) } else { Verdict::Forward }
    }
}

/// A `--once` run of three files through `proxy` (made for the test's server): its result, the
/// files, and the run's diagnostics with the proxy's commands.
fn once_through(t: Test, start: impl FnOnce(u16) -> FtpProxy) -> (crate::support::Finished, FtpProxy) {
    let proxy = start(t.server().port());
    let t = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string()).args(["--once"]);
    t.write("a.txt", b"a\n");
    t.write("d/b.bin", b"\x00\xff b\r\n");
    t.write("d/e/c.txt", b"c\n");
    (t.run(), proxy)
}

fn context(done: &crate::support::Finished, proxy: &FtpProxy) -> String {
    format!("{}\n--- proxy commands ---\n{:#?}", done.daemon.diagnostics(), proxy.commands())
}

fn assert_all_arrived(done: &crate::support::Finished, proxy: &FtpProxy) {
    let ctx = || context(done, proxy);
    assert_eq!(done.status.code(), Some(EXIT_OK), "{}", ctx());
    for (rel, bytes) in [("a.txt", &b"a\n"[..]), ("d/b.bin", b"\x00\xff b\r\n"), ("d/e/c.txt", b"c\n")] {
        assert_eq!(done.daemon.remote(rel).as_deref(), Some(bytes), "{rel}\n{}", ctx());
    }
    assert!(temp_files_under(done.server().root()).is_empty(), "{}", ctx());
}

#[test]
fn files_arrive_over_ipv6_by_epsv_and_pasv_is_never_sent() {
    let (done, proxy) = once_through(Test::ipv6(), |port| FtpProxy::start_v6(port, Transparent));
    assert_all_arrived(&done, &proxy);
    assert!(proxy.count("EPSV") >= 3, "{}", context(&done, &proxy));
    assert_eq!(proxy.count("PASV"), 0, "{}", context(&done, &proxy));
}

#[test]
fn a_refused_mlsd_over_ipv6_changes_nothing_but_the_listing_command() {
    let refuse = || Refuse { verb: "MLSD", reply: "501 Not this time (test proxy)" };
    let (done, proxy) = once_through(Test::ipv6(), |port| FtpProxy::start_v6(port, refuse()));
    assert_all_arrived(&done, &proxy);
    let ctx = || context(&done, &proxy);
    assert_eq!(proxy.count("PASV"), 0, "{}", ctx());
    // The listing was made with LIST instead, over EPSV.
    assert!(proxy.count("LIST") >= 1, "{}", ctx());
}

#[test]
fn a_refused_mlsd_over_ipv4_does_not_switch_to_pasv_either() {
    let refuse = || Refuse { verb: "MLSD", reply: "501 Not this time (test proxy)" };
    let (done, proxy) = once_through(Test::new(), |port| FtpProxy::start(port, refuse()));
    assert_all_arrived(&done, &proxy);
    assert_eq!(proxy.count("PASV"), 0, "{}", context(&done, &proxy));
}

#[test]
fn a_server_refusing_epsv_over_ipv6_is_never_sent_pasv_and_the_log_says_what_to_do() {
    let t = Test::ipv6();
    let proxy =
        FtpProxy::start_v6(t.server().port(), Refuse { verb: "EPSV", reply: "500 Unknown command (test proxy)" });
    let t = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string());
    t.write("a.txt", b"a\n");
    let d = t.start();
    let ctx = || format!("{}\n--- proxy commands ---\n{:#?}", d.diagnostics(), proxy.commands());
    d.wait_for_log("PASV cannot carry the IPv6 address");
    // The listing's EPSV, the upload's, and the upload's again after a back-off.
    d.wait_until("the upload was tried again", || proxy.count("EPSV") >= 3);
    assert_eq!(proxy.count("PASV"), 0, "{}", ctx());
    let log = d.log();
    let says = log.lines().filter(|l| l.contains("PASV cannot carry the IPv6 address")).count();
    assert_eq!(says, 1, "the log does not say once why no data connection can be opened\n{}", ctx());
    assert!(log.contains("--active"), "{}", ctx());
    assert!(d.try_exit().is_none(), "{}", ctx());
}
