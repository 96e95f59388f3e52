//! Health for monitoring systems: `status --max-pending-age` (exit 0, 1 or 3) and the
//! `status --json` fields `oldest_pending_age_s`, `server_up` and `failing_files`.

use serde_json::Value;

use crate::support::control::subcommand;
use crate::support::{Daemon, TIMEOUT, Test};

fn status_json(d: &Daemon) -> Value {
    let (_, out, err) = subcommand(d, &["status", "--json"]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}\n{err}"))
}

#[test]
fn max_pending_age_fails_the_check_while_something_waits_too_long() {
    let d = Test::new().start();
    d.write("before.txt", b"before");
    d.wait_remote("before.txt", b"before");
    d.wait_until("status shows nothing pending", || status_json(&d)["pending"] == 0);
    let (code, out, err) = subcommand(&d, &["status", "--max-pending-age", "1s"]);
    assert_eq!(code, Some(0), "nothing pends, yet the check failed:\n{out}{err}");
    assert!(out.starts_with("OK: "), "the first line is not the verdict:\n{out}");
    assert_eq!(status_json(&d)["oldest_pending_age_s"], Value::Null);

    // A forgotten pause: the file waits, and the check notices.
    let (code, out, err) = subcommand(&d, &["pause"]);
    assert_eq!(code, Some(0), "{out}{err}");
    d.write("stuck.txt", b"waits");
    d.wait_until("the file has been pending for 2 s", || {
        status_json(&d)["oldest_pending_age_s"].as_u64().is_some_and(|age| age >= 2)
    });
    let (code, out, err) = subcommand(&d, &["status", "--max-pending-age", "1s"]);
    assert_eq!(code, Some(1), "a file pending for 2 s passed --max-pending-age 1s:\n{out}{err}");
    assert!(out.starts_with("CHECK FAILED: ") && out.contains("longer than --max-pending-age 1s"), "{out}");
    assert!(out.contains("pending: 1 files, the oldest for"), "{out}");
    let (code, out, err) = subcommand(&d, &["status", "--max-pending-age", "1h", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");

    let (code, _, _) = subcommand(&d, &["resume"]);
    assert_eq!(code, Some(0));
    d.wait_remote("stuck.txt", b"waits");
    d.wait_until("status shows nothing pending", || status_json(&d)["oldest_pending_age_s"].is_null());

    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);
    let (code, out, err) = subcommand(&d, &["status", "--max-pending-age", "1h"]);
    assert_eq!(code, Some(3), "a stopped daemon must exit 3:\n{out}{err}");
    let (code, _, err) = subcommand(&d, &["status", "--max-pending-age", "soon"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--max-pending-age") && err.contains("soon"), "{err}");
}

#[test]
fn status_says_whether_the_server_is_up_and_which_files_fail() {
    let t = Test::new();
    // On the server, a directory where clash.txt must go: its uploads fail, the others do not.
    std::fs::create_dir_all(t.server().root().join("upload/clash.txt/inside")).unwrap();
    t.write("clash.txt", b"cannot be published");
    t.write("fine.txt", b"fine");
    let d = t.start();
    d.wait_remote("fine.txt", b"fine");
    d.wait_until("status counts clash.txt as failing", || status_json(&d)["failing_files"]["count"] == 1);
    let s = status_json(&d);
    assert_eq!(s["server_up"], true, "{s}");
    assert_eq!(s["failing_files"]["first"][0]["path"], "clash.txt", "{s}");
    assert!(s["failing_files"]["first"][0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{s}");
    let (_, text, _) = subcommand(&d, &["status"]);
    assert!(text.contains("failing: 1 files") && text.contains("  clash.txt: "), "{text}");
    assert!(text.contains("server: up"), "{text}");

    d.server().stop();
    d.write("during.txt", b"written while the server is down");
    d.wait_until("status says the server is down", || status_json(&d)["server_up"] == false);
    let (_, text, _) = subcommand(&d, &["status"]);
    assert!(text.contains("server: unreachable since"), "{text}");

    d.server().restart();
    d.wait_remote("during.txt", b"written while the server is down");
    d.wait_until("status says the server is up again", || status_json(&d)["server_up"] == true);
}
