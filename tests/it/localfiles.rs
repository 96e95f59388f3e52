//! The files the daemon keeps on the local machine: the state directory and the journal
//! are owner-only, and a symbolic link planted where the journal or the log file goes is
//! never written through.

use std::os::unix::fs::{PermissionsExt, symlink};

use crate::support::{EXIT_USAGE, RELOADED, TIMEOUT, Test};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `t` with `--state-dir dir` instead of the sandbox's.
fn with_state_dir(t: Test, dir: &std::path::Path) -> Test {
    let (pid, log) = (t.pid_file_path(), t.log_path());
    t.no_standard_paths().arg("--pid-file").arg(pid).arg("--log-file").arg(log).arg("--state-dir").arg(dir)
}

#[test]
fn a_new_state_dir_and_the_journal_are_owner_only() {
    let t = Test::new();
    let state = t.tmp().join("fresh").join("state");
    let d = with_state_dir(t, &state).start();
    d.write("a.txt", b"a");
    d.wait_remote("a.txt", b"a");
    assert_eq!(mode(&state), 0o700, "state directory");
    for name in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"] {
        let path = state.join(name);
        if name == "journal.sqlite" || path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}

#[test]
fn a_journal_readable_by_others_is_made_owner_only() {
    let first = Test::new().start();
    first.write("a.txt", b"a");
    first.wait_remote("a.txt", b"a");
    first.signal(libc::SIGTERM);
    first.wait_exit(TIMEOUT);
    let journal = first.state_dir().join("journal.sqlite");
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();

    let d = first.again().start();
    d.write("b.txt", b"b");
    d.wait_remote("b.txt", b"b");
    assert_eq!(mode(&journal), 0o600);
}

#[test]
fn a_journal_planted_as_a_symlink_is_refused() {
    let t = Test::new();
    let target = t.outside_dir().join("victim");
    std::fs::write(&target, b"precious").unwrap();
    symlink(&target, t.state_dir().join("journal.sqlite")).unwrap();
    let out = t.run();
    out.assert_usage_error(&["journal.sqlite", "symbolic link"]);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious", "the journal was written through the link");
}

#[test]
fn a_log_file_swapped_for_a_symlink_at_rotation_is_not_written_through() {
    let d = Test::new().start();
    let target = d.outside_dir().join("victim");
    std::fs::write(&target, b"precious").unwrap();
    let rotated = d.tmp().join("ftpmonitor.log.1");
    std::fs::rename(d.log_path(), &rotated).unwrap();
    symlink(&target, d.log_path()).unwrap();

    d.signal(libc::SIGHUP);
    let rotated_log = || std::fs::read_to_string(&rotated).unwrap_or_default();
    d.wait_until("the reload is logged in the file still open", || rotated_log().contains(RELOADED));
    assert!(rotated_log().contains("cannot reopen the log file"), "no warning about the log file:\n{}", rotated_log());
    d.write("after.txt", b"after");
    d.wait_remote("after.txt", b"after");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious", "the log was written through the link");
    assert!(d.try_exit().is_none(), "the daemon died");
}

#[test]
fn the_state_dir_given_as_a_symlink_is_refused_before_the_login() {
    let t = Test::new();
    let real = t.outside_dir().join("real-state");
    std::fs::create_dir(&real).unwrap();
    let link = t.tmp().join("state-link");
    symlink(&real, &link).unwrap();
    let out = with_state_dir(t, &link).run();
    out.assert_exit(EXIT_USAGE);
    out.assert_one_line_error(&["--state-dir", "symbolic link"]);
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0, "something was written through the link");
}
