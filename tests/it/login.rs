//! A refused login is fatal and reported before the process forks.

use crate::support::{EXIT_RUNTIME, Test, is_login_refused, proc};

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
