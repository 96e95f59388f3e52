//! `--temp-dir REMOTE_PATH`: uploads are stored under temporary names in a
//! staging directory and renamed from there into place, so a receiver that
//! scans the whole of REMOTE_DIR never sees a temporary name. `--chmod` and
//! `--chmod-dirs` on a server without SITE CHMOD (libunftp answers 502): one
//! warning, no further tries, uploads go on. (The modes themselves are checked
//! on the disks of pure-ftpd, vsftpd and ProFTPD in `tests/interop.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{Behaviour, Daemon, FtpProxy, ServerEvent, TEMP_SUFFIX, Test, Transparent, Verdict};

/// Every STOR's path and every rename's (from, to), as the server saw them.
fn stores_and_renames(d: &Daemon) -> (Vec<String>, Vec<(String, String)>) {
    let (mut stored, mut renamed) = (Vec::new(), Vec::new());
    for e in d.server().events() {
        match e {
            ServerEvent::Stored { path, .. } => stored.push(path),
            ServerEvent::Renamed { from, to } => renamed.push((from, to)),
            _ => {}
        }
    }
    (stored, renamed)
}

/// Files with the given bodies, in two directories with a name in common.
fn write_tree(d: &Daemon) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in ["a", "b/deep"] {
        for i in 0..10 {
            let rel = format!("{dir}/report{i}.csv");
            let body = format!("{rel}\n").into_bytes();
            d.write(&rel, &body);
            files.push((rel, body));
        }
    }
    files
}

#[test]
fn temp_dir_below_remote_dir_keeps_every_temporary_name_out_of_the_files_receivers_see() {
    let d = Test::new().cooldown(Some("0.2")).args(["--temp-dir", ".incoming", "--parallel", "4"]).start();
    // WATCH_DIR's twin of the staging directory is not synced (written
    // first: it would be on the server before the tree).
    d.write(".incoming/stray.txt", b"not for the server");
    // (The line names the directory, or the file when its event comes first.)
    d.wait_for_log("skipping .incoming");
    let files = write_tree(&d);
    for (rel, body) in &files {
        d.wait_remote(rel, body);
    }
    let (stored, renamed) = stores_and_renames(&d);
    let staging = "/upload/.incoming/";
    for path in &stored {
        assert!(path.starts_with(staging) && path.ends_with(TEMP_SUFFIX), "STOR outside the staging directory: {path}");
    }
    assert_eq!(stored.len(), files.len(), "one STOR per file: {stored:?}");
    for (rel, _) in &files {
        let to = format!("/upload/{rel}");
        let from: Vec<&String> = renamed.iter().filter(|(_, t)| *t == to).map(|(f, _)| f).collect();
        assert_eq!(from.len(), 1, "{rel} renamed into place {} times", from.len());
        assert!(from[0].starts_with(staging), "{rel} renamed from {} (not the staging directory)", from[0]);
    }
    // a/reportN.csv and b/deep/reportN.csv had staged names of their own.
    let mut names = stored.clone();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), stored.len(), "two files shared a staged name: {stored:?}");
    let left = crate::support::files_under(&d.remote_root().join(".incoming"));
    assert!(left.is_empty(), "left in the staging directory: {:?}", left.keys());
    assert!(d.remote(".incoming/stray.txt").is_none(), "WATCH_DIR/.incoming was uploaded into the staging directory");
    assert!(
        !d.server().events().iter().any(|e| matches!(e, ServerEvent::MadeDir { path } if path.contains("stray"))),
        "a directory was made for the reserved path"
    );
}

#[test]
fn temp_dir_outside_remote_dir_is_created_and_renamed_from() {
    let d = Test::new().cooldown(Some("0.2")).args(["--temp-dir", "/staging/ftpmonitor"]).start();
    d.write("x/y.txt", b"why");
    d.wait_remote("x/y.txt", b"why");
    let (stored, renamed) = stores_and_renames(&d);
    assert!(stored.iter().all(|p| p.starts_with("/staging/ftpmonitor/y.txt~")), "{stored:?}");
    assert!(
        renamed.iter().any(|(f, t)| f.starts_with("/staging/ftpmonitor/") && t == "/upload/x/y.txt"),
        "{renamed:?}"
    );
    assert!(d.server().root().join("staging/ftpmonitor").is_dir());
}

#[test]
fn check_reports_the_rename_from_the_staging_directory() {
    let out = Test::new().subcommand("check").args(["--temp-dir", ".incoming"]).run();
    out.assert_exit(0);
    for want in ["  staging:         /upload/.incoming", "renamed from there into /upload"] {
        assert!(out.stdout.contains(want), "no {want:?} in\n{}", out.stdout);
    }
}

#[test]
fn a_server_without_site_chmod_gets_one_warning_and_no_further_tries() {
    let t = Test::new().cooldown(Some("0.2")).args(["--chmod", "640", "--chmod-dirs", "750", "--parallel", "2"]);
    let proxy = FtpProxy::start(t.server().port(), Transparent);
    let d = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string()).start();
    for i in 0..6 {
        d.write(&format!("d{i}/f.txt"), b"mode");
    }
    for i in 0..6 {
        d.wait_remote(&format!("d{i}/f.txt"), b"mode");
    }
    d.wait_for_log("the server refuses SITE CHMOD");
    let tries: Vec<String> =
        proxy.commands().into_iter().filter(|c| c.to_ascii_uppercase().starts_with("SITE CHMOD")).collect();
    assert_eq!(tries.len(), 1, "SITE CHMOD sent {} times: {tries:?}", tries.len());
    assert_eq!(d.log().matches("refuses SITE CHMOD").count(), 1, "more than one warning\n{}", d.log());
}

#[test]
fn check_reports_that_site_chmod_is_refused() {
    let out = Test::new().subcommand("check").args(["--chmod", "644"]).run();
    out.assert_exit(0);
    for want in
        ["  modes:           files 644, created directories the server's", "warning: the server refuses SITE CHMOD"]
    {
        assert!(out.stdout.contains(want), "no {want:?} in\n{}", out.stdout);
    }
}

/// Answers the first SITE CHMOD with a 450 ("try later") and the others with
/// a 200, as a server with SITE CHMOD that is briefly busy would.
#[derive(Default)]
struct BusyOnce(AtomicUsize);

impl Behaviour for BusyOnce {
    fn command(&self, _verb: &str, line: &str) -> Verdict {
        if !line.to_ascii_uppercase().starts_with("SITE CHMOD") {
            return Verdict::Forward;
        }
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            Verdict::Answer("450 Busy, try later".into())
        } else {
            Verdict::Answer("200 SITE CHMOD command successful".into())
        }
    }
}

#[test]
fn a_temporary_refusal_of_site_chmod_is_a_warning_for_that_file_and_the_next_one_is_tried() {
    let t = Test::new().cooldown(Some("0.2")).args(["--chmod", "640", "--parallel", "1"]);
    let proxy = FtpProxy::start(t.server().port(), BusyOnce::default());
    let d = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string()).start();
    for i in 0..4 {
        d.write(&format!("f{i}.txt"), b"mode");
    }
    for i in 0..4 {
        d.wait_remote(&format!("f{i}.txt"), b"mode");
    }
    let tries = proxy.commands().iter().filter(|c| c.to_ascii_uppercase().starts_with("SITE CHMOD")).count();
    assert_eq!(tries, 4, "a 450 switched --chmod off: {:?}", proxy.commands());
    assert_eq!(d.log().matches("450 Busy, try later").count(), 1, "{}", d.log());
    assert!(!d.log().contains("refuses SITE CHMOD"), "a 450 was taken for a refusal\n{}", d.log());
}
