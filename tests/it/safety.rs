//! What must never leave the machine or reach the log.

use std::os::unix::fs::symlink;

use crate::support::{Daemon, PASSWORD, SKIPPING, TIMEOUT, Test, escaped, proc};

/// Waits until some log line says it skipped `name` (escaped).
fn wait_for_skip(d: &Daemon, name: &str) {
    let shown = escaped(name);
    d.wait_until(&format!("a log line contains {SKIPPING:?} and {shown:?}"), || {
        d.log().lines().any(|l| l.contains(SKIPPING) && l.contains(&shown))
    });
}

#[test]
fn symlinks_are_never_followed() {
    const SECRET: &[u8] = b"TOP-SECRET-4f2a9c";
    let t = Test::new();
    let secret = t.outside_dir().join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    symlink(&secret, t.watch_dir().join("early-link.txt")).unwrap();
    symlink(t.outside_dir(), t.watch_dir().join("dir-link")).unwrap();
    let d = t.start();

    symlink(&secret, d.watch_dir().join("late-link.txt")).unwrap();
    d.write("after.txt", b"after");
    d.wait_remote("after.txt", b"after");
    for name in ["early-link.txt", "dir-link", "late-link.txt"] {
        wait_for_skip(&d, name);
    }

    let remote = d.server().remote_files();
    for (name, bytes) in &remote {
        assert!(!name.contains("link"), "a symlink was uploaded: {name}");
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET),
            "the secret behind a symlink was uploaded as {name}"
        );
    }
}

#[test]
fn names_with_newline_or_cr_are_skipped_and_logged_escaped() {
    let t = Test::new();
    t.write("early\nbad", b"early bad");
    let d = t.start();
    d.write("bad\nname", b"bad");
    d.write("cr\rname", b"cr");
    d.write("after.txt", b"after");
    d.wait_remote("after.txt", b"after");
    for name in ["early\nbad", "bad\nname", "cr\rname"] {
        wait_for_skip(&d, name);
    }

    for name in d.server().remote_files().keys() {
        assert!(
            !name.contains(['\n', '\r']) && !name.contains("bad") && !name.contains("cr"),
            "a name FTP cannot carry was uploaded: {name:?}"
        );
    }
    d.assert_log_well_formed();
}

fn assert_no_password_anywhere(d: &Daemon) {
    let pid = d.pid();
    let cmdline = proc::cmdline(pid);
    assert!(
        !cmdline.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()),
        "the password is in /proc/{pid}/cmdline"
    );
    assert!(!d.log().contains(PASSWORD), "the password is in the log");
    assert!(!d.stderr().contains(PASSWORD), "the password is on stderr");
    assert!(!d.stdout().contains(PASSWORD), "the password is on stdout");
}

#[test]
fn password_from_env_never_shows_even_at_debug_level() {
    let d = Test::new().args(["--log-level", "debug"]).start();
    d.write("a.txt", b"a");
    d.wait_remote("a.txt", b"a");
    d.wait_for_upload_line("a.txt");
    assert_no_password_anywhere(&d);

    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);
    assert!(!d.log().contains(PASSWORD), "the password is in the log");
    assert!(!d.stderr().contains(PASSWORD), "the password is on stderr");
}

#[test]
fn password_from_file_never_shows() {
    let t = Test::new().password_env(None);
    let file = t.outside_dir().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let d = t.arg("--password-file").arg(&file).start();
    d.write("b.txt", b"b");
    d.wait_remote("b.txt", b"b");
    assert_no_password_anywhere(&d);
}
