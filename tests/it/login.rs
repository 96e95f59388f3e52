//! A refused login is fatal and reported before the process forks.

use crate::support::{EXIT_RUNTIME, FtpProxy, PROXY_IP, Test, Transparent, is_login_refused, proc};

#[test]
fn wrong_password_exits_1_before_forking() {
    // Without --foreground: a binary that forked first would have its launcher exit 0.
    let out = Test::new().daemonize().password_env(Some("wrong-pass")).run();
    out.assert_exit(EXIT_RUNTIME);
    out.assert_one_line_error(&[]);
    assert!(is_login_refused(&out.stderr), "stderr does not say the login was refused: {:?}", out.stderr);
    assert!(!out.stderr.contains("wrong-pass"), "the error echoes the password: {:?}", out.stderr);
    assert!(!out.pid_file_path().exists(), "a refused login left a PID file behind");
    assert_eq!(
        proc::processes_mentioning(out.tmp()),
        Vec::<u32>::new(),
        "a process of this test still runs after the refused login"
    );
}

#[test]
fn unknown_user_exits_1() {
    let out = Test::new().user(Some("mallory")).run();
    out.assert_exit(EXIT_RUNTIME);
    assert!(is_login_refused(&out.stderr), "stderr does not say the login was refused: {:?}", out.stderr);
    assert!(!out.pid_file_path().exists());
}

/// `--once` logs in only when it has something to send: a run again over an unchanged tree
/// opens no connection to the server. Without the deferred login the second run sends USER.
#[test]
fn a_once_run_over_an_unchanged_tree_opens_no_connection() {
    let t = Test::new().args(["--once"]);
    let proxy = FtpProxy::start(t.server().port(), Transparent);
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    t.write("a/one.txt", b"one\n");
    t.write("two.txt", b"two\n");
    let first = t.run();
    first.assert_exit(0);
    assert_eq!(first.daemon.remote("a/one.txt").as_deref(), Some(&b"one\n"[..]), "{}", first.daemon.diagnostics());
    let logins = proxy.count("USER");
    assert!(logins >= 1, "the first run did not log in through the proxy: {:?}", proxy.commands());

    let again = first.daemon.again().run();
    again.assert_exit(0);
    assert_eq!(
        proxy.count("USER"),
        logins,
        "a run with nothing to do logged in: {:?}\n{}",
        proxy.commands(),
        again.daemon.diagnostics()
    );

    // Something to do again: the login comes back, and the file goes up.
    first.daemon.write("two.txt", b"two, changed\n");
    let third = first.daemon.again().run();
    third.assert_exit(0);
    assert!(proxy.count("USER") > logins, "a run with a changed file did not log in");
    assert_eq!(
        third.daemon.remote("two.txt").as_deref(),
        Some(&b"two, changed\n"[..]),
        "{}",
        third.daemon.diagnostics()
    );
}

/// The login `--once` defers is still the pre-flight one: refused, it ends the run at once
/// with exit 1 and the same clear error, without the five attempts a lost server gets.
#[test]
fn a_once_run_with_work_and_a_refused_login_exits_1_at_once() {
    let t = Test::new().args(["--once"]).password_env(Some("wrong-pass"));
    t.write("a.txt", b"a\n");
    let started = std::time::Instant::now();
    let out = t.run();
    out.assert_exit(EXIT_RUNTIME);
    assert!(is_login_refused(&out.stderr), "stderr does not say the login was refused: {:?}", out.stderr);
    assert!(!out.stderr.contains("wrong-pass"), "the error echoes the password: {:?}", out.stderr);
    assert!(!out.stderr.contains("done:"), "a refused login is followed by a summary of success: {:?}", out.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a refused login was retried: the run took {:?}",
        started.elapsed()
    );
    assert!(!out.pid_file_path().exists(), "a refused login left a PID file behind");
    assert_eq!(out.daemon.remote("a.txt"), None);
}
