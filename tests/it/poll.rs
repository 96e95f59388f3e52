//! `--poll`: watching by polling, for file systems where other machines' writes raise no
//! events (NFS, SMB, FUSE). With it the daemon holds no inotify instance, so every change
//! it finds was found by polling.

use crate::support::{Daemon, Test};

/// How many inotify instances the process holds.
fn inotify_instances(d: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:inotify"))
        .count()
}

#[test]
fn changes_are_found_by_polling_without_any_inotify_watch() {
    let events = Test::new().start();
    assert_eq!(inotify_instances(&events), 1, "the check below would prove nothing");

    let t = Test::new().args(["--poll", "300ms", "--delete"]);
    t.write("keep.txt", b"keeps the watch directory from looking unmounted");
    let d = t.start();
    assert_eq!(inotify_instances(&d), 0, "--poll still watches with inotify");
    d.write("a.txt", b"new");
    d.wait_remote("a.txt", b"new");
    d.write("a.txt", b"changed, same directory");
    d.wait_remote("a.txt", b"changed, same directory");
    d.write("deep/er/b.txt", b"in a new directory");
    d.wait_remote("deep/er/b.txt", b"in a new directory");
    std::fs::remove_file(d.watch_dir().join("a.txt")).unwrap();
    d.wait_until("a.txt is deleted on the server", || d.remote("a.txt").is_none());
}

#[test]
fn a_poll_interval_below_a_tenth_of_a_second_is_a_usage_error() {
    Test::new().args(["--poll", "10ms"]).run().assert_usage_error(&["--poll", "too short"]);
}

#[test]
fn a_file_written_again_within_the_same_second_is_not_missed() {
    let t = Test::new().args(["--poll", "300ms"]);
    let d = t.start();
    let path = d.write("same.txt", b"aaaa");
    d.wait_remote("same.txt", b"aaaa");
    // The same size and the same whole second of mtime: the poll watcher, which keeps
    // mtimes in seconds and ignores sizes, reports nothing.
    let first = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, b"bbbb").unwrap();
    let secs = first.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let same_second = std::time::UNIX_EPOCH + std::time::Duration::new(secs, 999_000_000);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(same_second).unwrap();
    d.wait_remote("same.txt", b"bbbb");
}
