//! The classic daemon life cycle: fork, new session, PID file, single instance.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{
    EXIT_NOT_RUNNING, EXIT_RUNTIME, RELOADED, STOPPED, Sandbox, TIMEOUT, Test, already_running, poll_until, proc,
};

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
fn a_second_instance_is_refused_before_it_connects_to_the_server() {
    let first = Test::new().start();
    let pid = first.pid();
    // A "server" that takes connections into its backlog and never greets: a login
    // attempt would wait for --timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let started = std::time::Instant::now();
    let out = first.again().port_arg(&port).args(["--timeout", "30s"]).run();
    out.assert_exit(EXIT_RUNTIME);
    out.assert_one_line_error(&[&already_running(pid)]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "it waited for the server first");
    assert!(silent.accept().is_err(), "the refused instance connected to the server");
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

/// The PID file the logrotate snippet's stanza for the root default log signals.
const DEFAULT_PID_FILE: &str = "/var/run/ftpmonitor.pid";

/// The `postrotate` script of the stanza of `systemd/ftpmonitor.logrotate` that rotates
/// `/var/log/ftpmonitor.log`, with the default PID file swapped for `pid_file`.
fn postrotate_for_default_log(pid_file: &Path) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("systemd/ftpmonitor.logrotate");
    let text = std::fs::read_to_string(&path).unwrap();
    let stanza = text
        .split_inclusive('}')
        .find(|s| s.lines().any(|l| l.trim().starts_with("/var/log/ftpmonitor.log") && l.trim().ends_with('{')))
        .expect("a stanza for /var/log/ftpmonitor.log");
    let script = stanza.split("postrotate").nth(1).and_then(|s| s.split("endscript").next()).expect("postrotate");
    assert!(script.contains(DEFAULT_PID_FILE), "the postrotate script does not read {DEFAULT_PID_FILE}: {script}");
    script.replace(DEFAULT_PID_FILE, pid_file.to_str().unwrap())
}

/// Runs `script` with sh, as logrotate does; returns its exit code.
fn run_script(script: &str) -> Option<i32> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(poll_until(TIMEOUT, || child.try_wait().unwrap().is_some()), "the postrotate script hangs");
    child.wait().unwrap().code()
}

/// `ftpmonitor status --pid-file P --state-dir D`: its exit code.
fn status_code(s: &Sandbox) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftpmonitor"))
        .arg("status")
        .arg("--pid-file")
        .arg(s.pid_file_path())
        .arg("--state-dir")
        .arg(s.state_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(poll_until(TIMEOUT, || child.try_wait().unwrap().is_some()), "status hangs");
    child.wait().unwrap().code()
}

/// A PID file left by a crash (or by a user who could not unlink it) names a process that
/// is not ftpmonitor once the PID is reused: neither logrotate's postrotate script nor
/// `status` may take it for the daemon. Only a PID file that is still locked counts.
#[test]
fn logrotate_and_status_ignore_a_pid_file_nobody_holds() {
    let d = Test::new().start();
    let script = postrotate_for_default_log(&d.pid_file_path());

    // The live daemon holds its file: it gets the SIGHUP and reopens its log.
    run_script(&script);
    d.wait_for_log(RELOADED);
    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);

    // A stranger now has a PID that a stale file names; SIGHUP would end it.
    let mut stranger = Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().unwrap();
    let stale = [format!("{}\n", stranger.id()), String::new()];
    for content in &stale {
        std::fs::write(d.pid_file_path(), content).unwrap();
        run_script(&script);
        assert_eq!(status_code(&d), Some(EXIT_NOT_RUNNING), "status with an unlocked PID file saying {content:?}");
    }
    // Still alive after a round trip through a daemon that did get its SIGHUP: a signal
    // sent to the stranger would have arrived by now.
    let again = d.again().start();
    run_script(&postrotate_for_default_log(&again.pid_file_path()));
    again.wait_until("the restarted daemon logs a second reload", || again.own_log().contains(RELOADED));
    let status = stranger.try_wait().unwrap();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert_eq!(status, None, "the postrotate script signalled a process named by a stale PID file");
}
