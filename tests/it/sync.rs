//! What arrives on the server, and when.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::Duration;

use crate::support::{Behaviour, FtpProxy, PROXY_IP, Test, Verdict};

fn names(d: &crate::support::Daemon) -> BTreeSet<String> {
    d.remote_files().into_keys().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn new_file_arrives_byte_for_byte() {
    let d = Test::new().start();
    // LF, NUL, 0xFF and CRLF: an ASCII-mode transfer would rewrite them.
    let bytes = b"a\nb\n\x00\xff\r\n".to_vec();
    d.write("data.bin", &bytes);
    d.wait_remote("data.bin", &bytes);
    d.wait_for_upload_line("data.bin");
    d.assert_log_well_formed();
}

#[test]
fn files_present_before_start_are_uploaded() {
    let t = Test::new();
    t.write("early.txt", b"early");
    t.write("nested/deeper/early.bin", b"\x00\x01\x02");
    let d = t.start();
    d.wait_remote("early.txt", b"early");
    d.wait_remote("nested/deeper/early.bin", b"\x00\x01\x02");
}

#[test]
fn file_in_a_fresh_mkdir_p_tree_arrives() {
    let d = Test::new().start();
    let dir = d.watch_dir().join("a/b/c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deep.txt"), b"deep").unwrap();
    d.wait_remote("a/b/c/deep.txt", b"deep");
    d.wait_for_upload_line("a/b/c/deep.txt");
}

#[test]
fn tree_moved_into_the_watch_dir_arrives_entirely() {
    let d = Test::new().start();
    let src = d.outside_dir().join("tree");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("top.txt"), b"top").unwrap();
    std::fs::write(src.join("sub/mid.txt"), b"mid").unwrap();
    std::fs::write(src.join("sub/deeper/bottom.bin"), b"\xffbottom").unwrap();

    std::fs::rename(&src, d.watch_dir().join("tree")).unwrap();

    d.wait_remote("tree/top.txt", b"top");
    d.wait_remote("tree/sub/mid.txt", b"mid");
    d.wait_remote("tree/sub/deeper/bottom.bin", b"\xffbottom");
    d.wait_until("no temporary upload names are left on the server", || {
        names(&d) == set(&["tree/top.txt", "tree/sub/mid.txt", "tree/sub/deeper/bottom.bin"])
    });
}

#[test]
fn cooldown_waits_until_the_file_is_quiet() {
    // One connection: a duplicate upload of growing.log, queued before the sentinel, would
    // finish (and be logged) before the sentinel's.
    let d = Test::new().cooldown(Some("2s")).args(["--parallel", "1"]).start();
    let path = d.watch_dir().join("growing.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let mut content = Vec::new();
    // 15 writes 200 ms apart: 3 s of activity, longer than the 2 s cooldown, yet never
    // 2 s of quiet. The writer's own pace is the observation period.
    for i in 0..15 {
        let line = format!("line {i}\n");
        file.write_all(line.as_bytes()).unwrap();
        content.extend_from_slice(line.as_bytes());
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            d.remote("growing.log"),
            None,
            "uploaded while it still changed (after {} writes)\n{}",
            i + 1,
            d.diagnostics()
        );
    }
    drop(file);

    d.wait_remote("growing.log", &content);
    d.wait_for_upload_line("growing.log");
    // A file written after it, and uploaded after its own cooldown, gives a duplicate
    // upload of growing.log time to show up.
    d.write("sentinel.txt", b"s");
    d.wait_for_upload_line("sentinel.txt");
    assert_eq!(d.upload_count("growing.log"), 1, "growing.log was uploaded more than once\n{}", d.log());
}

#[test]
fn no_recursive_syncs_the_top_level_only() {
    let t = Test::new().arg("--no-recursive");
    t.write("sub/before.txt", b"sub before");
    t.write("top-before.txt", b"top before");
    let d = t.start();
    d.wait_remote("top-before.txt", b"top before");

    d.write("sub/after.txt", b"sub after");
    d.write("top-after.txt", b"top after");
    d.wait_remote("top-after.txt", b"top after");

    assert_eq!(
        names(&d),
        set(&["top-before.txt", "top-after.txt"]),
        "--no-recursive uploaded a file from a subdirectory"
    );
}

#[test]
fn changed_file_is_uploaded_again() {
    let d = Test::new().start();
    d.write("doc.txt", b"version 1");
    d.wait_remote("doc.txt", b"version 1");
    d.write("doc.txt", b"version 2, longer");
    d.wait_remote("doc.txt", b"version 2, longer");
    d.write("doc.txt", b"v3");
    d.wait_remote("doc.txt", b"v3");
}

#[test]
fn touched_but_unchanged_file_is_not_uploaded_again() {
    // One connection, so a re-upload of same.txt would be logged before the sentinel's.
    let d = Test::new().args(["--parallel", "1"]).start();
    let path = d.write("same.txt", b"same bytes");
    d.wait_remote("same.txt", b"same bytes");
    d.wait_for_upload_line("same.txt");

    // New mtime, same content; then rewrite the same bytes.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
    d.write("same.txt", b"same bytes");
    d.write("sentinel.txt", b"s");
    d.wait_for_upload_line("sentinel.txt");
    assert_eq!(
        d.upload_count("same.txt"),
        1,
        "same.txt was uploaded again although its bytes did not change\n{}",
        d.log()
    );
}

#[test]
fn missing_remote_dir_is_created() {
    let d = Test::new().remote_dir("/deep/incoming").create_remote_dir(false).start();
    d.write("x/y.txt", b"y");
    d.wait_remote("x/y.txt", b"y");
    assert!(d.server().root().join("deep/incoming/x").is_dir());
}

#[test]
fn server_down_at_start_is_retried() {
    let t = Test::new();
    t.server().stop();
    t.write("early.txt", b"early");
    // An unreachable server is not fatal: the daemon starts and keeps retrying.
    let d = t.start();
    d.write("late.txt", b"late");
    d.server().restart();
    let patience = Duration::from_secs(60);
    d.wait_until_for(patience, "early.txt arrives after the server came up", || {
        d.remote("early.txt").as_deref() == Some(b"early".as_slice())
    });
    d.wait_until_for(patience, "late.txt arrives after the server came up", || {
        d.remote("late.txt").as_deref() == Some(b"late".as_slice())
    });
}

#[test]
fn files_with_names_of_250_and_255_bytes_arrive() {
    let t = Test::new();
    // ASCII, and two-byte characters (so a name cut short must be cut between characters).
    let names = ["n".repeat(250), "é".repeat(125), format!("{}.txt", "x".repeat(251))];
    for (i, name) in names.iter().enumerate() {
        t.write(name, format!("file {i}\n").as_bytes());
    }
    let d = t.start();
    for (i, name) in names.iter().enumerate() {
        d.wait_remote(name, format!("file {i}\n").as_bytes());
    }
    assert!(crate::support::temp_files_under(d.server().root()).is_empty(), "{}", d.diagnostics());
}

#[test]
fn temporary_uploads_of_long_names_left_by_a_crash_are_removed() {
    let t = Test::new();
    let (kept, gone) = ("k".repeat(250), "g".repeat(250));
    t.write(&kept, b"kept\n");
    let remote = t.server().root().join("upload");
    std::fs::create_dir_all(&remote).unwrap();
    // What a crash leaves: the shortened temporary names of a file still there and of one gone.
    for name in [&kept, &gone] {
        let temp = ftpmonitor::ftp::temp_name("", name, false);
        assert!(temp.len() <= ftpmonitor::ftp::NAME_MAX, "{temp}");
        std::fs::write(remote.join(&temp), b"half").unwrap();
    }
    let d = t.start();
    d.wait_remote(&kept, b"kept\n");
    d.wait_until("no temporary name is left on the server", || {
        crate::support::temp_files_under(d.server().root()).is_empty()
    });
    assert_eq!(names(&d), set(&[&kept]), "{}", d.diagnostics());
}

/// Refuses to store or rename to names longer than 200 bytes, the way libunftp and most servers
/// do: not "name too long" but "file not found".
struct ShortNamesOnly;

impl Behaviour for ShortNamesOnly {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        let name = line.rsplit('/').next().unwrap_or_default();
        if matches!(verb, "STOR" | "RNTO") && name.len() > 200 {
            Verdict::Answer("550 File not found (test proxy)".into())
        } else {
            Verdict::Forward
        }
    }
}

#[test]
fn a_name_the_server_refuses_anyway_is_reported_once_saying_it_is_long() {
    let t = Test::new();
    let proxy = FtpProxy::start(t.server().port(), ShortNamesOnly);
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    let long = "n".repeat(230);
    t.write(&long, b"long\n");
    let d = t.start();
    let hint = "the name is 230 bytes long";
    d.wait_for_log(hint);
    // Tried again (with back-off), without a second warning.
    d.wait_until("the upload was tried again", || proxy.count("STOR") >= 3);
    d.write("short.txt", b"short\n");
    d.wait_remote("short.txt", b"short\n");
    let warnings = d.log().lines().filter(|l| l.contains(hint)).count();
    assert_eq!(warnings, 1, "{}", d.diagnostics());
    assert!(d.try_exit().is_none(), "{}", d.diagnostics());
}
