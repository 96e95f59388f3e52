//! Commands sent together: on a server known to read commands one after the other, an upload's
//! SIZE + MFMT and RNFR + RNTO each go out in one write (one round trip instead of two); a server
//! that answers such a pair out of step turns it off for good, and nothing is lost either way.
//!
//! The in-process server (libunftp) runs some commands in tasks of their own, so it must not get
//! pipelined commands: its greeting keeps the daemon from pipelining. Here a proxy in front of
//! it says it is pure-ftpd, adds MFMT to FEAT (and answers it), and passes commands on one at a
//! time, recording which ones the daemon sent together with the next.

use std::sync::Mutex;

use crate::support::{Behaviour, Daemon, Finished, FtpProxy, PROXY_IP, Test, Verdict, temp_files_under};

/// Pretends to be pure-ftpd with MFMT; `refuse_first_rnto` answers the first RNTO with 503,
/// after the server's reply to the RNFR before it, as a server that took RNTO first would.
struct PretendPureFtpd {
    refuse_first_rnto: bool,
    /// Refuses to store names that start with a dot, as `pure-ftpd -x` does.
    refuse_dot_names: bool,
    /// Turns the first STOR's final `226` into a `553`, as a server whose store failed late would:
    /// `Some(false)` until a STOR went by, `Some(true)` until its reply did.
    fail_first_store: Mutex<Option<bool>>,
    /// Points the first EPSV reply that follows an RNTO's at a port where nothing listens, as a
    /// firewall that never opened it would leave it.
    lose_first_kept_port: Mutex<bool>,
    last_reply_was_rnto: Mutex<bool>,
    /// Answers the EPSV of this number (1: the first) with `425`, a passing refusal.
    refuse_epsv: Option<usize>,
    epsvs: Mutex<usize>,
    /// Answers the first STOR with a `150` and a `425` in one segment, as a server that gives up
    /// at once.
    give_up_first_store: Mutex<bool>,
    refused: Mutex<bool>,
}

impl PretendPureFtpd {
    fn new(refuse_first_rnto: bool) -> Self {
        PretendPureFtpd {
            refuse_first_rnto,
            refuse_dot_names: false,
            fail_first_store: Mutex::new(None),
            lose_first_kept_port: Mutex::new(false),
            last_reply_was_rnto: Mutex::new(false),
            refuse_epsv: None,
            epsvs: Mutex::new(0),
            give_up_first_store: Mutex::new(false),
            refused: Mutex::new(false),
        }
    }
}

impl Behaviour for PretendPureFtpd {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        if verb == "STOR"
            && let Some(armed) = self.fail_first_store.lock().unwrap().as_mut()
        {
            *armed = true;
        }
        if verb == "EPSV" {
            let mut n = self.epsvs.lock().unwrap();
            *n += 1;
            if self.refuse_epsv == Some(*n) {
                return Verdict::Answer("425 No passive port free just now (test proxy)".into());
            }
        }
        if verb == "STOR" && std::mem::take(&mut *self.give_up_first_store.lock().unwrap()) {
            return Verdict::Answer(
                "150 Opening (test proxy)\r\n425 Gave up on the data connection (test proxy)".into(),
            );
        }
        match verb {
            "MFMT" => {
                let path = line.splitn(3, ' ').nth(2).unwrap_or_default();
                Verdict::Answer(format!("213 Modify=20210506070809; {path}"))
            }
            "STOR" if self.refuse_dot_names && line.rsplit('/').next().is_some_and(|name| name.starts_with('.')) => {
                Verdict::Answer("553 Prohibited file name (test proxy)".into())
            }
            "RNTO" if self.refuse_first_rnto => {
                let mut refused = self.refused.lock().unwrap();
                if *refused {
                    Verdict::Forward
                } else {
                    *refused = true;
                    Verdict::Answer("503 RNFR first (test proxy)".into())
                }
            }
            _ => Verdict::Forward,
        }
    }

    fn reply(&self, line: &str) -> Option<String> {
        let after_rnto = std::mem::replace(&mut *self.last_reply_was_rnto.lock().unwrap(), line.starts_with("250 "));
        if after_rnto && line.starts_with("229 ") && std::mem::take(&mut *self.lose_first_kept_port.lock().unwrap()) {
            return Some("229 Extended Passive mode OK (|||1|)\r\n".into());
        }
        if line.starts_with("220 ") {
            Some("220---------- Welcome to Pure-FTPd [privsep] ----------\r\n220 (ftpmonitor test proxy)\r\n".into())
        } else if line.starts_with("226 ") && self.fail_first_store.lock().unwrap().take_if(|armed| *armed).is_some() {
            Some("553 Could not store the file (test proxy)\r\n".into())
        } else if line.starts_with("211 ") {
            // The end of FEAT.
            Some(format!(" MFMT\r\n{line}"))
        } else {
            Some(line.to_owned())
        }
    }

    fn one_at_a_time(&self) -> bool {
        true
    }
}

fn context(d: &Daemon, proxy: &FtpProxy) -> String {
    format!(
        "{}\n--- proxy commands ---\n{:#?}\n--- sent together ---\n{:#?}\n--- proxy problems ---\n{:#?}",
        d.diagnostics(),
        proxy.commands(),
        proxy.sent_together(),
        proxy.problems()
    )
}

/// The files of the tests: 12 in three directories.
fn write_files(t: &Test) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in ["a", "b/c", "d"] {
        for i in 0..4 {
            let rel = format!("{dir}/file-{i}.txt");
            let body = format!("{rel}: {}\n", "x".repeat(100 * i)).into_bytes();
            t.write(&rel, &body);
            files.push((rel, body));
        }
    }
    files
}

fn verb(line: &str) -> String {
    line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
}

/// Runs `--once` over one connection through a [`PretendPureFtpd`] proxy and checks that every
/// file arrived, exactly once, and no temporary name is left.
fn run_through_proxy(behaviour: PretendPureFtpd) -> (Finished, FtpProxy, Vec<(String, Vec<u8>)>) {
    let t = Test::new().args(["--once", "--parallel", "1"]);
    let proxy = FtpProxy::start(t.server().port(), behaviour);
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    let files = write_files(&t);
    let done = t.run();
    let ctx = || context(&done.daemon, &proxy);
    assert!(done.status.success(), "--once failed\n{}", ctx());
    for (rel, body) in &files {
        assert_eq!(done.daemon.remote(rel).as_ref(), Some(body), "{rel}\n{}", ctx());
        assert_eq!(done.daemon.upload_count(rel), 1, "{rel} was not uploaded exactly once\n{}", ctx());
    }
    assert!(temp_files_under(done.server().root()).is_empty(), "temporary names left\n{}", ctx());
    (done, proxy, files)
}

#[test]
fn an_upload_sends_size_with_mfmt_and_rnfr_with_rnto_together_to_a_server_known_to_read_in_order() {
    let (done, proxy, files) = run_through_proxy(PretendPureFtpd::new(false));
    let ctx = || context(&done.daemon, &proxy);

    // Every upload: SIZE went out with MFMT behind it, RNFR with RNTO, and RNTO with the EPSV
    // that opens the next upload's data connection while more uploads were waiting.
    let commands = proxy.commands();
    let together = proxy.sent_together();
    for first in ["SIZE", "RNFR"] {
        let n = together.iter().filter(|c| verb(c) == first).count();
        assert_eq!(n, files.len(), "{first} sent together with the next command {n} times\n{}", ctx());
    }
    // Every rename but the last: no job was waiting then, so no port was asked for ahead.
    let n = together.iter().filter(|c| verb(c) == "RNTO").count();
    assert_eq!(n, files.len() - 1, "RNTO sent together with EPSV {n} times\n{}", ctx());
    let last_rnto = commands.iter().rev().find(|c| verb(c) == "RNTO").expect("an RNTO");
    assert!(!together.contains(last_rnto), "{}", ctx());
    for pair in commands.windows(2) {
        match verb(&pair[0]).as_str() {
            "SIZE" if together.contains(&pair[0]) => assert_eq!(verb(&pair[1]), "MFMT", "{}", ctx()),
            "RNFR" => assert_eq!(verb(&pair[1]), "RNTO", "{}", ctx()),
            "RNTO" if together.contains(&pair[0]) => assert_eq!(verb(&pair[1]), "EPSV", "{}", ctx()),
            _ => {}
        }
    }
    // Nothing else is pipelined (a STOR waits for its data connection's reply).
    assert!(
        together.iter().all(|c| matches!(verb(c).as_str(), "SIZE" | "RNFR" | "RNTO")),
        "other commands were sent together: {together:#?}\n{}",
        ctx()
    );
    // Most uploads used the port asked for with the previous rename: no EPSV of their own. (Not
    // all: a new directory's MKD comes in between, and the port is not kept for long.)
    let on_kept_port =
        commands.windows(3).filter(|w| verb(&w[0]) == "RNTO" && verb(&w[1]) == "EPSV" && verb(&w[2]) == "STOR").count();
    assert!(on_kept_port >= files.len() / 2, "{on_kept_port} uploads on a kept port\n{}", ctx());
    assert_eq!(done.daemon.upload_count("a/file-0.txt"), 1);
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
}

#[test]
fn a_server_answering_commands_sent_together_out_of_step_gets_them_one_at_a_time_and_loses_nothing() {
    let (done, proxy, _files) = run_through_proxy(PretendPureFtpd::new(true));
    let ctx = || context(&done.daemon, &proxy);
    assert!(done.daemon.log().contains("out of step"), "the switch was not logged\n{}", ctx());

    // Only the first rename went out as a pair; every later one waited for RNFR's reply.
    let together = proxy.sent_together();
    let rnfr_pairs = together.iter().filter(|c| verb(c) == "RNFR").count();
    assert_eq!(rnfr_pairs, 1, "{}", ctx());
    // The first upload's SIZE (with MFMT), RNFR (with RNTO) and RNTO (with EPSV) were sent together;
    // nothing after.
    let commands = proxy.commands();
    let first_rnto = commands.iter().position(|c| verb(c) == "RNTO").expect("an RNTO");
    assert_eq!(together.len(), 3, "commands were still sent together after the switch: {together:#?}\n{}", ctx());
    assert!(together.iter().all(|c| commands[..=first_rnto].contains(c)), "{}", ctx());
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
}

#[test]
fn a_refused_temporary_name_on_a_pipelining_session_falls_back_to_a_visible_one() {
    let behaviour = PretendPureFtpd { refuse_dot_names: true, ..PretendPureFtpd::new(false) };
    let (done, proxy, files) = run_through_proxy(behaviour);
    let ctx = || context(&done.daemon, &proxy);
    assert!(done.daemon.log().contains("refuses the temporary name"), "{}", ctx());
    let stors: Vec<String> = proxy.commands().into_iter().filter(|c| verb(c) == "STOR").collect();
    // The first file's STOR refused twice (the second time after making sure its directory
    // exists), then every file under a visible temporary name. (The in-process server keeps the
    // data connection of a STOR the proxy refused for the next STOR, so that file's first
    // visible upload arrives empty: the size check catches it and it is sent again.)
    let dotted: Vec<&String> =
        stors.iter().filter(|c| c.rsplit('/').next().is_some_and(|n| n.starts_with('.'))).collect();
    assert_eq!(dotted.len(), 2, "{stors:#?}\n{}", ctx());
    assert_eq!(dotted[0], dotted[1], "{}", ctx());
    assert!(stors.len() - dotted.len() >= files.len(), "{stors:#?}\n{}", ctx());
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", ctx());
}

#[test]
fn a_store_refused_after_its_data_is_sent_again_from_the_first_byte() {
    let behaviour = PretendPureFtpd { fail_first_store: Mutex::new(Some(false)), ..PretendPureFtpd::new(false) };
    let (done, proxy, files) = run_through_proxy(behaviour);
    let ctx = || context(&done.daemon, &proxy);
    // The refused file went again at once, whole: not taken for a file that changed meanwhile.
    assert!(!done.daemon.log().contains("changed while"), "{}", ctx());
    let stors = proxy.commands().iter().filter(|c| verb(c) == "STOR").count();
    assert_eq!(stors, files.len() + 1, "{}", ctx());
}

#[test]
fn a_port_asked_for_ahead_that_cannot_be_reached_is_not_asked_for_again() {
    let behaviour = PretendPureFtpd { lose_first_kept_port: Mutex::new(true), ..PretendPureFtpd::new(false) };
    let (done, proxy, _files) = run_through_proxy(behaviour);
    let ctx = || context(&done.daemon, &proxy);
    assert!(done.daemon.log().contains("could not be reached"), "{}", ctx());
    // The first rename asked for the next upload's port; none after it did.
    let with_epsv = proxy.sent_together().iter().filter(|c| verb(c) == "RNTO").count();
    assert_eq!(with_epsv, 1, "{}", ctx());
}

#[test]
fn a_passing_refusal_of_epsv_before_an_upload_does_not_switch_to_pasv() {
    // The first EPSV is the listing's; the second, the first upload's own.
    let behaviour = PretendPureFtpd { refuse_epsv: Some(2), ..PretendPureFtpd::new(false) };
    let (done, proxy, _files) = run_through_proxy(behaviour);
    let ctx = || context(&done.daemon, &proxy);
    assert!(proxy.count("EPSV") > 2, "{}", ctx());
    assert_eq!(proxy.count("PASV"), 0, "{}", ctx());
}

#[test]
fn a_store_given_up_right_after_its_150_is_tried_again_on_the_same_connection() {
    let behaviour = PretendPureFtpd { give_up_first_store: Mutex::new(true), ..PretendPureFtpd::new(false) };
    let (done, proxy, _files) = run_through_proxy(behaviour);
    let ctx = || context(&done.daemon, &proxy);
    // Both replies were read: the session stayed in step and was kept (one login).
    assert_eq!(proxy.count("USER"), 1, "{}", ctx());
}
