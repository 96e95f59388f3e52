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

/// A tmpfs mounted at a path for as long as the guard lives (unmounted on drop, lazily,
/// whatever the test did), or `None` where this machine does not let the test mount.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "ftpmonitor-test"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("note: cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN): mount test skipped");
        }
        ok.then(|| Mount(at.to_path_buf()))
    }

    fn unmount(self) {
        let ok = std::process::Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        assert!(ok, "umount {}", self.0.display());
        std::mem::forget(self);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn an_unmount_and_remount_of_the_watch_directory_is_noticed_and_synced() {
    let t = Test::new().arg("--delete");
    let Some(disk) = Mount::tmpfs(&t.watch_dir()) else { return };
    t.write("a.txt", b"on the first disk");
    let d = t.start();
    d.wait_remote("a.txt", b"on the first disk");
    d.wait_for_upload_line("a.txt");

    disk.unmount();
    d.wait_for_log(HOLDING_ALL_DELETES);
    let Some(_disk) = Mount::tmpfs(&d.watch_dir()) else { return };
    d.write("a.txt", b"on the first disk");
    d.write("b.txt", b"on the disk mounted again");
    d.wait_remote("b.txt", b"on the disk mounted again");
    // Watched again: a change after the remount arrives by its own event.
    d.write("c.txt", b"written after the remount");
    d.wait_remote("c.txt", b"written after the remount");
    assert_eq!(d.remote("a.txt").as_deref(), Some(&b"on the first disk"[..]), "{}", d.diagnostics());
}

#[test]
fn an_unmounted_disk_below_the_watch_directory_deletes_nothing_and_is_synced_when_back() {
    let t = Test::new().arg("--delete");
    let Some(disk) = Mount::tmpfs(&t.watch_dir().join("disk")) else { return };
    t.write("disk/x.txt", b"on the disk");
    t.write("disk/y.txt", b"also on the disk");
    t.write("keep.txt", b"on the watch directory's own file system");
    let d = t.start();
    d.wait_remote("disk/x.txt", b"on the disk");
    d.wait_remote("disk/y.txt", b"also on the disk");
    d.wait_for_upload_line("disk/y.txt");

    disk.unmount();
    d.wait_for_log("disk was unmounted");
    // A reconcile now must not take the disk's files for deleted.
    d.signal(libc::SIGUSR1);
    d.write("barrier.txt", b"after the reconcile");
    d.wait_remote("barrier.txt", b"after the reconcile");
    assert_eq!(d.remote("disk/x.txt").as_deref(), Some(&b"on the disk"[..]), "{}", d.diagnostics());

    let Some(_disk) = Mount::tmpfs(&d.watch_dir().join("disk")) else { return };
    d.write("disk/x.txt", b"on the disk");
    d.write("disk/y.txt", b"also on the disk");
    d.write("disk/z.txt", b"new on the disk mounted again");
    d.wait_remote("disk/z.txt", b"new on the disk mounted again");
}

#[test]
fn after_an_event_queue_overflow_new_directories_are_watched_again() {
    let d = Test::new().start();
    d.write("first.txt", b"first");
    d.wait_remote("first.txt", b"first");
    d.signal(libc::SIGSTOP);
    // More events than the kernel queues (fs.inotify.max_queued_events, 16384 by default:
    // each rewrite is an open, a write and a close), then a directory whose creation is
    // lost with the rest.
    for i in 0..7000 {
        d.write("busy.txt", format!("version {i}").as_bytes());
    }
    std::fs::create_dir(d.watch_dir().join("late-dir")).unwrap();
    d.signal(libc::SIGCONT);
    d.wait_for_log("event queue overflow");
    d.wait_remote("busy.txt", b"version 6999");
    d.write("late-dir/late.txt", b"written into a directory created during the overflow");
    d.wait_remote("late-dir/late.txt", b"written into a directory created during the overflow");
}
