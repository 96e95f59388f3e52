//! `--run-as USER`: as root, the daemon hands its files to USER and drops
//! every privilege (real and effective uid and gid, supplementary groups)
//! before it starts its threads, and still syncs.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::Test;

/// uid and gid of `name` from the password database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam(3) with a valid C string; the fields are read at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() { None } else { Some(((*pw).pw_uid, (*pw).pw_gid)) }
    }
}

/// The numbers on a line of /proc/PID/status (`Uid:`, `Gid:`, `Groups:`).
fn status_ids(pid: u32, key: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in status"));
    line[key.len()..].split_whitespace().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn run_as_drops_uid_gid_and_groups_and_still_syncs() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // CI runs the suite as root; elsewhere --run-as cannot be tried.
        eprintln!("run_as test needs root: not run");
        return;
    }
    let (uid, gid) = user_ids("nobody").expect("a user named nobody");
    let t = Test::new().arg("--run-as").arg("nobody");
    // The unprivileged daemon must be able to reach and read the watch directory.
    for dir in [t.tmp().to_path_buf(), t.watch_dir()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    t.write("before.txt", b"written before the start\n");
    let d = t.start();
    let pid = d.pid();

    assert_eq!(status_ids(pid, "Uid:"), vec![uid; 4], "real, effective, saved and fs uid");
    assert_eq!(status_ids(pid, "Gid:"), vec![gid; 4], "real, effective, saved and fs gid");
    let groups = status_ids(pid, "Groups:");
    assert!(!groups.contains(&0), "root's group survived the drop: {groups:?}");

    d.wait_remote("before.txt", b"written before the start\n");
    d.write("after.txt", b"written while running as nobody\n");
    d.wait_remote("after.txt", b"written while running as nobody\n");

    for path in [d.log_path(), d.pid_file_path(), d.state_dir(), d.state_dir().join("journal.sqlite")] {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{} is not handed to nobody", path.display());
    }
}
