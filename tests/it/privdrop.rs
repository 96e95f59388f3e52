//! `--run-as USER`: as root, the daemon hands its files to USER and drops
//! every privilege (real and effective uid and gid, supplementary groups)
//! before it starts its threads, and still syncs.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::{TIMEOUT, Test};

/// Whether the test runs as root; says so on stderr when it does not.
fn is_root(test: &str) -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        // CI runs the suite as root; elsewhere --run-as cannot be tried.
        eprintln!("{test} needs root: not run");
    }
    root
}

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
    if !is_root("run_as_drops_uid_gid_and_groups_and_still_syncs") {
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

    for path in [d.log_path(), d.state_dir(), d.state_dir().join("journal.sqlite")] {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{} is not handed to nobody", path.display());
    }
}

/// The PID file lies in a directory only root may write (as /var/run): the
/// user the daemon dropped to cannot unlink it when it stops. What is left
/// must name nobody, or logrotate's SIGHUP (and any `kill $(cat FILE)`) would
/// reach whatever process gets that PID next.
#[test]
fn run_as_stop_leaves_no_pid_file_naming_anyone() {
    if !is_root("run_as_stop_leaves_no_pid_file_naming_anyone") {
        return;
    }
    let t = Test::new().arg("--run-as").arg("nobody");
    for dir in [t.tmp().to_path_buf(), t.watch_dir()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let d = t.start();
    let pid = d.pid();
    assert_eq!(d.pid_file(), Some(pid));
    let meta = std::fs::metadata(d.pid_file_path()).unwrap();
    assert_eq!(meta.uid(), 0, "the PID file was handed to the unprivileged user, who could then rewrite it");

    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(TIMEOUT).success(), "{}", d.diagnostics());
    match std::fs::read(d.pid_file_path()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("{}: {e}", d.pid_file_path().display()),
        Ok(bytes) => assert!(
            bytes.is_empty(),
            "after the stop the PID file still says {:?}\n{}",
            String::from_utf8_lossy(&bytes),
            d.diagnostics()
        ),
    }
    assert!(!d.log().contains("cannot remove PID file"), "a warning for what is expected with --run-as\n{}", d.log());
}
