//! `ftpmonitor pause` / `resume` and SIGUSR2: no transfer starts while paused, changes are
//! still taken and queued (in the journal), and nothing is lost when it resumes.

use crate::support::control::subcommand;
use crate::support::{Daemon, Sandbox, TIMEOUT, Test};

fn queued(s: &Sandbox) -> i64 {
    let path = s.state_dir().join("journal.sqlite");
    let Ok(conn) = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM queue", [], |r| r.get(0)).unwrap_or(0)
}

fn status_says_paused(d: &Daemon) -> (bool, bool) {
    let (_, text, _) = subcommand(d, &["status"]);
    let (_, json, _) = subcommand(d, &["status", "--json"]);
    (text.contains("paused: yes"), json.contains("\"paused\":true"))
}

fn burst(d: &Daemon, n: usize) {
    for i in 0..n {
        d.write(&format!("burst/f{i:03}.txt"), format!("file {i}").as_bytes());
    }
}

fn wait_burst(d: &Daemon, n: usize) {
    for i in 0..n {
        d.wait_remote(&format!("burst/f{i:03}.txt"), format!("file {i}").as_bytes());
    }
}

#[test]
fn pause_queues_a_burst_without_sending_it_and_resume_sends_all_of_it() {
    let d = Test::new().start();
    d.write("before.txt", b"before");
    d.wait_remote("before.txt", b"before");

    let (code, out, err) = subcommand(&d, &["pause"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("paused"), "{out}");
    assert_eq!(status_says_paused(&d), (true, true));
    let (code, out, _) = subcommand(&d, &["pause"]);
    assert_eq!((code, out.contains("already paused")), (Some(0), true), "{out}");

    burst(&d, 50);
    d.wait_until("the whole burst is in the journal's queue", || queued(&d) == 50);
    assert!(d.remote("burst/f000.txt").is_none(), "a file went up while paused\n{}", d.diagnostics());

    // A restart keeps the pause (a maintenance window outlives a crash).
    d.signal(libc::SIGKILL);
    d.wait_exit(TIMEOUT);
    let d = d.again().start();
    d.wait_for_log("paused: no transfer starts until ftpmonitor resume");
    assert!(d.remote("burst/f000.txt").is_none(), "a file went up while paused\n{}", d.diagnostics());

    let (code, out, err) = subcommand(&d, &["resume"]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_burst(&d, 50);
    assert_eq!(status_says_paused(&d), (false, false));
}

#[test]
fn sigusr2_toggles_the_pause() {
    let d = Test::new().start();
    d.signal(libc::SIGUSR2);
    d.wait_until("status shows the pause", || status_says_paused(&d) == (true, true));
    burst(&d, 5);
    d.wait_until("the burst is queued", || queued(&d) == 5);
    assert!(d.remote("burst/f000.txt").is_none());
    d.signal(libc::SIGUSR2);
    wait_burst(&d, 5);
}

#[test]
fn pause_without_a_running_daemon_exits_3() {
    let t = Test::new();
    let (code, _, err) = subcommand(&t, &["pause"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn once_refuses_to_run_a_paused_job() {
    let d = Test::new().start();
    assert_eq!(subcommand(&d, &["pause"]).0, Some(0));
    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);
    let out = d.again().arg("--once").run();
    out.assert_exit(1);
    assert!(out.stderr.contains("paused"), "{}", out.stderr);
}
