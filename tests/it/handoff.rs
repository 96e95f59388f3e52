//! Move mode: `--remove-source` and `--archive-dir`. A file goes only once its
//! upload is verified and only as it was uploaded; the journal records the
//! hand-off, so a crash between the upload and the removal loses nothing and
//! hands nothing over twice.

use std::path::{Path, PathBuf};

use crate::support::{Daemon, ServerEvent, Test};

/// Renames into place on the server of `rel` (each a verified upload).
fn published(d: &Daemon, rel: &str) -> usize {
    let to = format!("/upload/{rel}");
    d.server().events().iter().filter(|e| matches!(e, ServerEvent::Renamed { to: t, .. } if *t == to)).count()
}

fn gone(p: &Path) -> bool {
    p.symlink_metadata().is_err()
}

fn archive_of(t: &Test) -> PathBuf {
    let dir = t.outside_dir().join("archive");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn remove_source_deletes_each_file_once_uploaded_and_the_directories_left_empty() {
    let d = Test::new().arg("--remove-source").start();
    let deep = d.write("scans/2024/page1.pdf", b"page one");
    let top = d.write("top.txt", b"top");
    d.wait_remote("scans/2024/page1.pdf", b"page one");
    d.wait_remote("top.txt", b"top");
    d.wait_until("the uploaded files are removed", || gone(&deep) && gone(&top));
    d.wait_until("the directories left empty are removed", || gone(&d.watch_dir().join("scans")));
    assert!(d.watch_dir().is_dir(), "WATCH_DIR itself was removed");
    d.wait_for_log("removed scans/2024/page1.pdf (uploaded)");
    assert_eq!(published(&d, "top.txt"), 1);
}

#[test]
fn archive_dir_keeps_the_relative_path() {
    let t = Test::new();
    let archive = archive_of(&t);
    let d = t.arg("--archive-dir").arg(&archive).start();
    let src = d.write("edi/in/order.xml", b"<order/>");
    d.wait_remote("edi/in/order.xml", b"<order/>");
    let kept = archive.join("edi/in/order.xml");
    d.wait_until("the file is in the archive", || std::fs::read(&kept).is_ok_and(|b| b == b"<order/>"));
    assert!(gone(&src), "the file is still in WATCH_DIR");
    d.wait_until("the directories left empty are removed", || gone(&d.watch_dir().join("edi")));
}

#[test]
fn archive_dir_on_another_file_system_is_copied_synced_and_then_removed() {
    let t = Test::new();
    let archive = t.outside_dir().join("tmpfs-archive");
    std::fs::create_dir_all(&archive).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&archive)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (needs root): cross-file-system archive not tested",
            archive.display()
        );
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(archive.clone());
    let d = t.arg("--archive-dir").arg(&archive).start();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let src = d.write("cam/shot.raw", &bytes);
    d.wait_remote("cam/shot.raw", &bytes);
    let kept = archive.join("cam/shot.raw");
    d.wait_until("the file is in the archive on the tmpfs", || std::fs::read(&kept).is_ok_and(|b| b == bytes));
    d.wait_until("the source is removed", || gone(&src));
    let left: Vec<_> = std::fs::read_dir(archive.join("cam")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "a temporary copy was left in the archive: {left:?}");
}

/// A first run whose hand-off of `data.txt` fails (its archive is gone), so
/// that the journal holds it as pending when the run ends.
fn pending_hand_off(t: Test, archive: &Path, bytes: &[u8]) -> Daemon {
    let d = t.arg("--archive-dir").arg(archive).start();
    std::fs::remove_dir(archive).unwrap();
    d.write("data.txt", bytes);
    d.wait_remote("data.txt", bytes);
    d.wait_for_log("warning: cannot hand off data.txt after its upload");
    d
}

#[test]
fn a_file_rewritten_between_its_upload_and_its_removal_is_sent_again_not_lost() {
    let t = Test::new();
    let archive = archive_of(&t);
    let d = pending_hand_off(t, &archive, b"version 1");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(crate::support::TIMEOUT).success());
    // Rewritten while the hand-off waits; the archive is back.
    d.write("data.txt", b"version 2, longer");
    std::fs::create_dir_all(&archive).unwrap();
    let d = d.again().start();
    d.wait_remote("data.txt", b"version 2, longer");
    d.wait_until("version 2 is in the archive", || {
        std::fs::read(archive.join("data.txt")).is_ok_and(|b| b == b"version 2, longer")
    });
    assert!(gone(&d.watch_dir().join("data.txt")));
    d.wait_for_log("data.txt changed since its upload: not removed; it is sent again");
    assert_eq!(published(&d, "data.txt"), 2, "{}", d.diagnostics());
}

#[test]
fn kill_9_between_the_upload_and_the_removal_finishes_the_removal_without_a_second_upload() {
    let t = Test::new();
    let archive = archive_of(&t);
    let d = pending_hand_off(t, &archive, b"handed over once");
    d.signal(libc::SIGKILL);
    d.wait_exit(crate::support::TIMEOUT);
    std::fs::create_dir_all(&archive).unwrap();
    let d = d.again().start();
    d.wait_until("the pending hand-off is finished", || {
        std::fs::read(archive.join("data.txt")).is_ok_and(|b| b == b"handed over once")
    });
    assert!(gone(&d.watch_dir().join("data.txt")));
    // A barrier: once it is on the server, a second upload of data.txt would have shown.
    d.write("barrier.txt", b"b");
    d.wait_remote("barrier.txt", b"b");
    assert_eq!(published(&d, "data.txt"), 1, "data.txt was handed over twice\n{}", d.diagnostics());
    let stored = d
        .server()
        .events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::Stored { path, .. } if path.contains("data.txt")))
        .count();
    assert_eq!(stored, 1, "data.txt was sent twice\n{}", d.diagnostics());
}

/// An ext4 image mounted on a loop device; unmounted and removed on drop.
struct Loop {
    mount: PathBuf,
    image: PathBuf,
}

impl Loop {
    /// `None` (with a line saying why) where loop mounts are not available
    /// (not root, no loop devices, no e2fsprogs).
    fn mount(t: &Test) -> Option<Loop> {
        let mount = t.outside_dir().join("loop-archive");
        let image = t.outside_dir().join("archive.img");
        std::fs::create_dir_all(&mount).unwrap();
        let made = std::fs::File::create(&image).and_then(|f| f.set_len(32 << 20)).is_ok()
            && run(std::process::Command::new("mkfs.ext4").arg("-q").arg(&image))
            && run(std::process::Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount));
        if !made {
            eprintln!("SKIPPED: cannot mount an ext4 image on a loop device (needs root and e2fsprogs)");
            return None;
        }
        Some(Loop { mount, image })
    }

    /// Freezes the file system (`fsfreeze`): every write to it blocks until
    /// the guard is dropped. Declared after the daemon, the guard thaws
    /// before the daemon is stopped, also when the test fails: a process
    /// blocked on a frozen disk cannot be killed.
    fn freeze(&self) -> Option<Frozen<'_>> {
        if !run(std::process::Command::new("fsfreeze").arg("--freeze").arg(&self.mount)) {
            eprintln!("SKIPPED: fsfreeze --freeze does not work here");
            return None;
        }
        Some(Frozen(self))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

struct Frozen<'a>(&'a Loop);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("fsfreeze").arg("--unfreeze").arg(&self.0.mount).status();
    }
}

fn run(cmd: &mut std::process::Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

#[test]
fn a_hand_off_that_hangs_on_its_archive_disk_holds_up_no_other_upload() {
    let t = Test::new();
    let Some(disk) = Loop::mount(&t) else { return };
    let d = t.arg("--archive-dir").arg(&disk.mount).start();
    let Some(frozen) = disk.freeze() else { return };
    d.write("big-scan.tif", b"the first file, whose archive copy hangs");
    d.wait_remote("big-scan.tif", b"the first file, whose archive copy hangs");
    // Its hand-off now copies it to the frozen disk and waits there; the
    // loop must go on without it.
    d.write("next.txt", b"uploaded meanwhile");
    d.wait_remote("next.txt", b"uploaded meanwhile");
    assert!(d.watch_dir().join("big-scan.tif").exists(), "the source went before its archive copy");
    drop(frozen);
    for (rel, body) in
        [("big-scan.tif", &b"the first file, whose archive copy hangs"[..]), ("next.txt", b"uploaded meanwhile")]
    {
        let kept = disk.mount.join(rel);
        d.wait_until(&format!("{rel} is in the archive"), || std::fs::read(&kept).is_ok_and(|b| b == body));
        d.wait_until(&format!("{rel} left WATCH_DIR"), || gone(&d.watch_dir().join(rel)));
    }
}
