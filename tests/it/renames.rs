//! A propagated rename (`--delete`) holds both of its names: nothing else runs on either
//! name while the rename waits or runs, and what changed under either name meanwhile is
//! looked at again once it is done.

use std::sync::{Arc, Condvar, Mutex};

use crate::support::{Behaviour, Daemon, FtpProxy, TIMEOUT, Test, Verdict};

/// Holds the commands `hold` picks until [`Gate::open`] (or [`TIMEOUT`], so nothing hangs).
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    hold: fn(&str) -> bool,
}

impl Gate {
    fn new(hold: fn(&str) -> bool) -> Arc<Gate> {
        Arc::new(Gate { open: Mutex::new(false), opened: Condvar::new(), hold })
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

struct Gated(Arc<Gate>);

impl Behaviour for Gated {
    fn command(&self, _verb: &str, line: &str) -> Verdict {
        if (self.0.hold)(line) {
            let open = self.0.open.lock().unwrap();
            drop(self.0.opened.wait_timeout_while(open, TIMEOUT, |open| !*open).unwrap());
        }
        Verdict::Forward
    }
}

/// A daemon with `--delete` and `args`, through a proxy that holds what `gate` picks.
fn start_gated(gate: &Arc<Gate>, args: &[&str]) -> (Daemon, FtpProxy) {
    let t = Test::new().args(["--delete", "--log-level", "debug"]).args(args);
    let proxy = FtpProxy::start(t.server().port(), Gated(Arc::clone(gate)));
    t.write("a.txt", b"old a");
    t.write("keep.txt", b"keeps the watch directory from looking unmounted");
    let d = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string()).start();
    d.wait_remote("a.txt", b"old a");
    d.wait_for_upload_line("a.txt");
    (d, proxy)
}

#[test]
fn a_queued_rename_whose_target_changes_still_removes_the_old_name() {
    let gate = Gate::new(|line| line.starts_with("STOR") && line.contains("blocker"));
    let (d, proxy) = start_gated(&gate, &["--parallel", "1"]);
    // One connection, held in a STOR, and a second job waiting for it: the rename that
    // follows stays queued.
    d.write("blocker1.txt", b"1");
    d.write("blocker2.txt", b"2");
    d.wait_until("a blocker's STOR is held", || proxy.commands().iter().any(|c| c.contains("blocker")));
    std::fs::rename(d.watch_dir().join("a.txt"), d.watch_dir().join("b.txt")).unwrap();
    d.wait_for_log("queued rename of a.txt to b.txt");
    d.write("b.txt", b"new b, written while the rename waited");
    d.wait_for_log("upload of b.txt");
    gate.open();

    d.wait_remote("b.txt", b"new b, written while the rename waited");
    d.wait_until("a.txt is gone from the server", || d.remote("a.txt").is_none());
    d.wait_remote("blocker2.txt", b"2");
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}

#[test]
fn a_source_written_again_while_its_rename_runs_is_uploaded_after_it() {
    let gate = Gate::new(|line| line == "RNFR /upload/a.txt");
    let (d, proxy) = start_gated(&gate, &["--parallel", "2"]);
    std::fs::rename(d.watch_dir().join("a.txt"), d.watch_dir().join("b.txt")).unwrap();
    d.wait_until("the rename's RNFR is held", || proxy.commands().iter().any(|c| c == "RNFR /upload/a.txt"));
    d.write("a.txt", b"a new a.txt, written while the rename ran");
    // Either it was uploaded at once, beside the rename (the defect), or it waits for it.
    d.wait_until("the new a.txt was uploaded or waits for the rename", || {
        d.upload_count("a.txt") >= 2 || d.log().contains("upload of a.txt waits")
    });
    gate.open();

    d.wait_remote("b.txt", b"old a");
    d.wait_remote("a.txt", b"a new a.txt, written while the rename ran");
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}
