//! The watch directory itself: emptied, vanished, unmounted, remounted.

use crate::support::{HOLDING_ALL_DELETES, Test};

#[test]
fn once_exits_1_when_the_watch_directory_is_empty_while_the_journal_knows_files() {
    let t = Test::new();
    t.write("a.txt", b"a");
    let first = t.arg("--once").run();
    first.assert_exit(0);
    assert_eq!(first.daemon.remote("a.txt").as_deref(), Some(&b"a"[..]));

    // An unmounted disk leaves an empty mount point.
    std::fs::remove_file(first.watch_dir().join("a.txt")).unwrap();
    let again = first.daemon.again().arg("--delete").run();
    again.assert_exit(1);
    assert!(again.daemon.own_log().contains(HOLDING_ALL_DELETES), "{}", again.daemon.diagnostics());
    assert!(
        again.stderr.lines().any(|l| l.contains("error") && l.contains("watch directory")),
        "no error line names the watch directory on stderr:\n{}",
        again.stderr
    );
    assert_eq!(again.daemon.remote("a.txt").as_deref(), Some(&b"a"[..]), "a delete reached the server");
}
