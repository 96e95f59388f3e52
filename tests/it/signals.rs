//! SIGTERM/SIGINT stop, SIGHUP reloads (or hangs up with a terminal), SIGUSR1 reconciles.

use crate::support::{EXIT_OK, RELOADED, STOPPED, TIMEOUT, Test, proc};

fn assert_graceful_stop(sig: libc::c_int) {
    let d = Test::new().start();
    d.write("before-stop.txt", b"x");
    d.wait_remote("before-stop.txt", b"x");
    d.signal(sig);
    let status = d.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(EXIT_OK), "exit status after signal {sig}: {status}");
    assert!(!d.pid_file_path().exists(), "the PID file was not removed after signal {sig}");
    assert!(d.log().contains(STOPPED), "no {STOPPED:?} line\n{}", d.log());
}

#[test]
fn sigterm_exits_0_and_removes_the_pid_file() {
    assert_graceful_stop(libc::SIGTERM);
}

#[test]
fn sigint_exits_0_and_removes_the_pid_file() {
    assert_graceful_stop(libc::SIGINT);
}

#[test]
fn sighup_reopens_the_log_file() {
    // Foreground in a new session: no controlling terminal, so SIGHUP means reload.
    let d = Test::new().start();
    let pid = d.pid();
    let rotated = d.tmp().join("ftpmonitor.log.1");
    std::fs::rename(d.log_path(), &rotated).unwrap();

    d.signal(libc::SIGHUP);
    d.wait_until("a new log file exists", || d.log_path().exists());
    d.wait_for_log(RELOADED);

    d.write("after-hup.txt", b"after hup");
    d.wait_remote("after-hup.txt", b"after hup");
    d.wait_for_upload_line("after-hup.txt");

    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("after-hup.txt"), "the old log file still receives lines:\n{old}");
    assert_eq!(d.pid_file(), Some(pid), "the PID file changed on SIGHUP");
    assert!(proc::is_alive(pid), "SIGHUP stopped the daemon");
    assert!(d.try_exit().is_none(), "SIGHUP stopped the daemon");
}

#[test]
fn sighup_in_daemon_mode_reloads_instead_of_stopping() {
    let d = Test::new().daemonize().start();
    let pid = d.pid();
    d.signal(libc::SIGHUP);
    d.wait_for_log(RELOADED);
    d.write("still-alive.txt", b"yes");
    d.wait_remote("still-alive.txt", b"yes");
    assert!(proc::is_alive(pid));
    assert_eq!(d.pid_file(), Some(pid));
    assert!(!d.log().contains(STOPPED), "SIGHUP stopped the daemon\n{}", d.log());
}

#[test]
fn sighup_with_a_controlling_terminal_shuts_down() {
    let d = Test::new().controlling_tty(true).start();
    d.signal(libc::SIGHUP);
    let status = d.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(EXIT_OK), "{status}");
    assert!(d.log().contains(STOPPED), "no {STOPPED:?} line\n{}", d.log());
    assert!(!d.pid_file_path().exists());
}

#[test]
fn sigusr1_reconciles_the_whole_tree() {
    let d = Test::new().start();
    d.write("keep.txt", b"keep me");
    d.wait_remote("keep.txt", b"keep me");
    d.wait_for_upload_line("keep.txt");

    std::fs::remove_file(d.remote_root().join("keep.txt")).unwrap();
    d.signal(libc::SIGUSR1);
    d.wait_remote("keep.txt", b"keep me");
    assert!(d.try_exit().is_none(), "SIGUSR1 stopped the daemon");
}
