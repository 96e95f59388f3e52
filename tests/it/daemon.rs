//! The classic daemon life cycle: fork, new session, PID file, single instance.

use std::path::Path;

use crate::support::{EXIT_RUNTIME, STOPPED, TIMEOUT, Test, already_running, proc};

#[test]
fn daemon_mode_detaches_syncs_and_stops_on_sigterm() {
    let d = Test::new().daemonize().start();
    let pid = d.pid();
    assert_ne!(pid, d.child_pid(), "the PID file names the launcher, not the daemon");
    assert!(d.try_exit().is_some_and(|s| s.success()));

    let stat = proc::stat(pid).expect("the daemon runs");
    assert_ne!(stat.session, proc::own_session(), "the daemon did not start a new session");
    assert_ne!(stat.pgrp, proc::own_pgrp(), "the daemon stayed in our process group");
    assert_ne!(u32::try_from(stat.ppid).ok(), Some(std::process::id()), "the daemon is still our child");
    assert_eq!(
        proc::cwd(pid).as_deref(),
        Some(d.state_dir().as_path()),
        "the daemon's working directory is the state dir"
    );
    assert_eq!(proc::umask(pid), Some(0o002), "umask");
    for fd in 0..3 {
        assert_eq!(proc::fd_target(pid, fd).as_deref(), Some(Path::new("/dev/null")), "fd {fd} of the daemon");
    }
    assert_eq!(
        std::fs::read_to_string(d.pid_file_path()).unwrap(),
        format!("{pid}\n"),
        "the PID file holds the pid and a newline"
    );
    assert!(proc::is_locked(&d.pid_file_path()), "the daemon holds no lock on its PID file");

    d.write("hello.txt", b"hello from a daemon\n");
    d.wait_remote("hello.txt", b"hello from a daemon\n");

    d.signal(libc::SIGTERM);
    d.wait_gone(TIMEOUT);
    assert!(!d.pid_file_path().exists(), "the PID file was not removed on SIGTERM");
    assert!(d.log().contains(STOPPED), "no {STOPPED:?} line\n{}", d.log());
}

#[test]
fn foreground_does_not_fork_and_locks_its_pid_file() {
    let d = Test::new().start();
    assert_eq!(d.pid_file(), Some(d.child_pid()));
    assert!(d.try_exit().is_none(), "the foreground process exited");
    assert!(proc::is_locked(&d.pid_file_path()), "no lock on the PID file");
}

#[test]
fn second_instance_is_refused_while_the_first_runs() {
    let first = Test::new().start();
    let pid = first.pid();
    for foreground in [false, true] {
        let out = first.again().foreground(foreground).run();
        out.assert_exit(EXIT_RUNTIME);
        out.assert_one_line_error(&[&already_running(pid)]);
        assert_eq!(first.pid_file(), Some(pid), "the refused instance (foreground: {foreground}) touched the PID file");
        assert!(proc::is_alive(pid), "the first instance died");
    }
    assert_eq!(proc::processes_mentioning(first.tmp()), vec![pid], "a refused instance left a process behind");
}

#[test]
fn stale_pid_file_is_replaced() {
    let t = Test::new().daemonize();
    let stale = proc::unused_pid();
    std::fs::write(t.pid_file_path(), format!("{stale}\n")).unwrap();
    let d = t.start();
    let pid = d.pid();
    assert_ne!(pid, stale);
    assert!(proc::is_alive(pid));
    assert_eq!(std::fs::read_to_string(d.pid_file_path()).unwrap(), format!("{pid}\n"));
    d.write("after-stale.txt", b"ok");
    d.wait_remote("after-stale.txt", b"ok");
}
