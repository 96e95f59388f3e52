//! Running out of inotify watches: one warning naming the sysctl, how many
//! directories need a watch and what to raise the limit to; the daemon keeps
//! syncing what it watches, and the periodic rescan finds the rest. The limit
//! is lowered in a user namespace of the daemon's own
//! (`/proc/sys/user/max_inotify_watches`), so nothing else on the machine is
//! touched.

use crate::support::Test;

/// `unshare` into a new user namespace (root mapped to root), a limit of
/// `watches` inotify watches there, then the binary.
fn with_watch_limit(watches: u32) -> Vec<String> {
    vec![
        "unshare".into(),
        "--user".into(),
        "--map-root-user".into(),
        "sh".into(),
        "-c".into(),
        format!("echo {watches} > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\""),
    ]
}

/// Whether a user namespace with its own inotify limit can be made here.
fn namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", "echo 5 > /proc/sys/user/max_inotify_watches"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn too_few_inotify_watches_give_one_clear_line_and_the_rescan_syncs_the_rest() {
    if !namespaces_work() {
        eprintln!("SKIPPED: cannot make a user namespace with its own inotify limit here");
        return;
    }
    let t = Test::new().wrapper(with_watch_limit(4)).args(["--rescan-interval", "2s"]);
    // WATCH_DIR and 11 directories below it: 12 watches needed, 4 allowed.
    for i in 0..11 {
        t.write(&format!("d{i:02}/old.txt"), b"there before the start");
    }
    let d = t.start();
    d.wait_for_log("the watch directory holds 12 directories and each needs one");
    d.wait_for_log("sysctl fs.inotify.max_user_watches=");
    for i in 0..11 {
        d.wait_remote(&format!("d{i:02}/old.txt"), b"there before the start");
    }
    // A file written later in every directory: those with a watch raise an
    // event, the others are found by the rescan; all of them arrive.
    for i in 0..11 {
        d.write(&format!("d{i:02}/new.txt"), b"written while running");
    }
    for i in 0..11 {
        d.wait_remote(&format!("d{i:02}/new.txt"), b"written while running");
    }
    assert!(d.try_exit().is_none(), "the daemon stopped\n{}", d.diagnostics());
    assert_eq!(d.log().matches("limit of inotify watches").count(), 1, "{}", d.log());
}
