//! What a crash (`kill -9`) in the middle of an upload leaves, and what the next start does
//! with it: the journal records every upload under way, so the restart resumes it (REST) if
//! the local file did not change, and no temporary name or old copy outlives it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::support::{
    Behaviour, Daemon, FtpProxy, Sandbox, ServerEvent, StallFirstUpload, StallState, TIMEOUT, Test, Verdict,
    temp_files_under,
};

const SIZE: usize = 32 * 1024 * 1024;
/// Where the proxy stalls the first upload.
const AFTER: usize = 8 * 1024 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i * 7 + i / 4096) % 251).unwrap()).collect()
}

/// The uploads the journal says are under way.
fn uploads_under_way(s: &Sandbox) -> Vec<String> {
    let path = s.state_dir().join("journal.sqlite");
    let Ok(conn) = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT path FROM uploads") else { return Vec::new() };
    stmt.query_map([], |r| r.get(0)).map(|rows| rows.flatten().collect()).unwrap_or_default()
}

/// A daemon through a proxy that stalls the first upload after [`AFTER`] bytes; killed
/// with SIGKILL once the journal records that upload. The stalled data connection is then
/// closed, so the server keeps the part it got under the temporary name.
fn killed_mid_upload(t: Test, behaviour_state: &Arc<StallState>, proxy: &FtpProxy) -> Daemon {
    let d = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string()).start();
    d.wait_until("the upload is stalled", || behaviour_state.held.load(Ordering::SeqCst));
    d.wait_until("the journal records the upload under way", || uploads_under_way(&d) == ["big.bin"]);
    d.signal(libc::SIGKILL);
    d.wait_exit(TIMEOUT);
    behaviour_state.release.store(true, Ordering::SeqCst);
    let part = d.remote_root().join(".big.bin.ftpmonitor-part");
    d.wait_until("the server holds the part it got", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() == AFTER as u64)
    });
    assert!(d.remote("big.bin").is_none(), "published although killed mid-upload\n{}", d.diagnostics());
    d
}

#[test]
fn a_restart_after_sigkill_resumes_the_upload_where_the_server_stopped() {
    let t = Test::new().args(["--parallel", "1"]);
    let state = Arc::new(StallState::default());
    let proxy = FtpProxy::start(t.server().port(), StallFirstUpload::new(AFTER, &state));
    let big = pattern(SIZE);
    t.write("big.bin", &big);
    let d = killed_mid_upload(t, &state, &proxy);

    let mark = d.server().event_mark();
    let d2 = d.again().start();
    d2.wait_remote("big.bin", &big);
    d2.wait_for_log(&format!("resuming big.bin at byte {AFTER} of {SIZE}"));
    let sent: Vec<u64> = d2
        .server()
        .events_since(mark)
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, bytes } if path.contains("big.bin") => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(SIZE - AFTER) as u64], "the restart sent the whole file again\n{}", d2.diagnostics());
    d2.wait_until("the journal records no upload under way", || uploads_under_way(&d2).is_empty());
    assert!(temp_files_under(d2.server().root()).is_empty(), "{}", d2.diagnostics());
}

#[test]
fn a_restart_after_sigkill_sends_a_file_changed_meanwhile_from_the_start() {
    let t = Test::new().args(["--parallel", "1"]);
    let state = Arc::new(StallState::default());
    let proxy = FtpProxy::start(t.server().port(), StallFirstUpload::new(AFTER, &state));
    t.write("big.bin", &pattern(SIZE));
    let d = killed_mid_upload(t, &state, &proxy);

    let changed: Vec<u8> = pattern(SIZE + 1).into_iter().rev().collect();
    d.write("big.bin", &changed);
    let d2 = d.again().start();
    d2.wait_remote("big.bin", &changed);
    assert!(!d2.log().contains("resuming big.bin"), "a changed file was resumed\n{}", d2.diagnostics());
    assert!(temp_files_under(d2.server().root()).is_empty(), "{}", d2.diagnostics());
}

#[test]
fn a_restart_after_sigkill_removes_the_temporary_file_of_a_file_deleted_meanwhile() {
    let t = Test::new().args(["--parallel", "1"]);
    let state = Arc::new(StallState::default());
    let proxy = FtpProxy::start(t.server().port(), StallFirstUpload::new(AFTER, &state));
    t.write("big.bin", &pattern(SIZE));
    let d = killed_mid_upload(t, &state, &proxy);

    std::fs::remove_file(d.watch_dir().join("big.bin")).unwrap();
    d.write("other.txt", b"other");
    let d2 = d.again().start();
    d2.wait_remote("other.txt", b"other");
    d2.wait_until("no temporary upload is left", || temp_files_under(d2.server().root()).is_empty());
    assert!(d2.remote("big.bin").is_none());
}

/// A server that refuses to rename over an existing file (as ProFTPD with
/// `AllowOverwrite off`), and holds the second rename of the rename-aside path (the new
/// copy into place) until the test lets it go, so that a crash can come between the two.
struct NoOverwrite {
    root: std::path::PathBuf,
    hold_second_rename: Arc<Mutex<bool>>,
    held: Arc<Mutex<bool>>,
}

impl Behaviour for NoOverwrite {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        let arg = line.split_once(' ').map_or("", |(_, a)| a);
        if verb == "RNTO" && self.root.join(arg.trim_start_matches('/')).exists() {
            return Verdict::Answer("553 Rename/move failure: file exists".into());
        }
        if verb == "RNFR" && arg.ends_with(".ftpmonitor-part") && *self.hold_second_rename.lock().unwrap() {
            // The old copy went aside already if there is one.
            let target = arg.replace("/.", "/").trim_end_matches(".ftpmonitor-part").to_owned();
            if self.root.join(format!("{target}.ftpmonitor-old").trim_start_matches('/')).exists() {
                *self.held.lock().unwrap() = true;
                while *self.hold_second_rename.lock().unwrap() {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        Verdict::Forward
    }
}

#[test]
fn a_crash_between_the_two_renames_of_the_rename_aside_path_leaves_no_old_copy() {
    let t = Test::new().args(["--parallel", "1"]);
    t.write("report.txt", b"version 1");
    let hold = Arc::new(Mutex::new(false));
    let held = Arc::new(Mutex::new(false));
    let proxy = FtpProxy::start(
        t.server().port(),
        NoOverwrite {
            root: t.server().root().to_path_buf(),
            hold_second_rename: Arc::clone(&hold),
            held: Arc::clone(&held),
        },
    );
    let d = t.host(&proxy.ip().to_string()).port_arg(&proxy.port().to_string()).start();
    d.wait_remote("report.txt", b"version 1");
    d.wait_for_upload_line("report.txt");

    *hold.lock().unwrap() = true;
    d.write("report.txt", b"version 2, published by the rename-aside path");
    d.wait_until("the old copy is aside and the new one waits", || *held.lock().unwrap());
    d.wait_until("the journal records the upload under way", || uploads_under_way(&d) == ["report.txt"]);
    d.signal(libc::SIGKILL);
    d.wait_exit(TIMEOUT);
    *hold.lock().unwrap() = false;
    assert!(d.remote("report.txt.ftpmonitor-old").is_some(), "{}", d.diagnostics());

    let d2 = d.again().start();
    d2.wait_remote("report.txt", b"version 2, published by the rename-aside path");
    d2.wait_until("no old copy is left aside", || d2.remote("report.txt.ftpmonitor-old").is_none());
    d2.wait_until("no temporary upload is left", || temp_files_under(d2.server().root()).is_empty());
}
