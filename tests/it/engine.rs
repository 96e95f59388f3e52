//! The sync engine: the journal across restarts, comparison by content, the first sync against
//! a populated server, renames and deletes with their guards, outages, crashes, `--once`,
//! `--dry-run` and `status`.
//!
//! Assertions look at the server: its files on disk, and the STOR / RNFR-RNTO / DELE events the
//! in-process server recorded ([`ServerEvent`]), not only at the daemon's log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::{
    Daemon, EXIT_NOT_RUNNING, EXIT_OK, EXIT_RUNTIME, HOLDING_ALL_DELETES, HOLDING_THESE_DELETES, ONCE_DONE,
    ONCE_FAILED, READY_ONCE, SAME_CONTENT, SERVER_BACK, SERVER_UNAVAILABLE, STOPPED, Sandbox, ServerEvent, TEMP_SUFFIX,
    TIMEOUT, Test, deleted, files_under, is_upload_line, renamed, temp_files_under, would_upload,
};
use crate::support::{FtpProxy, PROXY_IP, Transparent};

/// For what waits on back-off (outages, per-file retries) or moves a lot of data.
const PATIENCE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The absolute FTP path of `rel` (relative to REMOTE_DIR).
fn remote_path(d: &Daemon, rel: &str) -> String {
    format!("{}/{rel}", d.remote_dir().trim_end_matches('/'))
}

/// The absolute FTP path of the temporary name `rel` is stored under: `.NAME.ftpmonitor-part`.
fn temp_path(d: &Daemon, rel: &str) -> String {
    let full = remote_path(d, rel);
    let (dir, name) = full.rsplit_once('/').expect("an absolute path");
    format!("{dir}/.{name}{TEMP_SUFFIX}")
}

/// How many STORs in `events` wrote `rel`, under its temporary or its final name.
fn stores_of(d: &Daemon, events: &[ServerEvent], rel: &str) -> usize {
    let (tmp, fin) = (temp_path(d, rel), remote_path(d, rel));
    events.iter().filter(|e| matches!(e, ServerEvent::Stored { path, .. } if *path == tmp || *path == fin)).count()
}

/// The paths of every STOR in `events`.
fn stored_paths(events: &[ServerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// The paths of every DELE in `events`.
fn deleted_paths(events: &[ServerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Deleted { path } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// The renames in `events` other than the publication of a temporary upload.
fn user_renames(events: &[ServerEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Renamed { from, to } if !from.ends_with(TEMP_SUFFIX) => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

/// The log lines of `log` that report an upload (of anything).
fn upload_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" - uploaded ")).collect()
}

/// How many lines of `log` report the upload of exactly `rel`.
fn upload_count_in(log: &str, rel: &str) -> usize {
    log.lines().filter(|l| is_upload_line(l, rel)).count()
}

/// Every file under WATCH_DIR, by `/`-separated relative path.
fn local_files(s: &Sandbox) -> BTreeMap<String, Vec<u8>> {
    files_under(&s.watch_dir())
}

/// Wraps `cond` so that it runs at most once per `period` (false in between): for conditions
/// that read whole trees, polled by the 20 ms loop of `wait_until`.
fn every(period: Duration, mut cond: impl FnMut() -> bool) -> impl FnMut() -> bool {
    let mut last: Option<Instant> = None;
    move || {
        if last.is_some_and(|t| t.elapsed() < period) {
            return false;
        }
        last = Some(Instant::now());
        cond()
    }
}

/// Waits until REMOTE_DIR holds exactly the files of WATCH_DIR, byte for byte.
fn wait_in_sync(d: &Daemon, timeout: Duration) {
    d.wait_until_for(
        timeout,
        "the server holds exactly the local tree",
        every(Duration::from_millis(200), || d.remote_files() == local_files(d)),
    );
}

/// Waits until this run's log reports the upload of every file in `rels`.
fn wait_upload_lines<'a>(d: &Daemon, rels: impl IntoIterator<Item = &'a str>) {
    let rels: Vec<&str> = rels.into_iter().collect();
    d.wait_until("the log reports the upload of every file", || {
        let log = d.own_log();
        rels.iter().all(|r| upload_count_in(&log, r) > 0)
    });
}

/// Waits until this run's log contains `needle`.
fn wait_own_log(d: &Daemon, timeout: Duration, needle: &str) {
    d.wait_until_for(timeout, &format!("this run's log contains {needle:?}"), || d.own_log().contains(needle));
}

/// SIGTERM, then the process must exit 0 and log the stop.
fn stop(d: &Daemon) {
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(EXIT_OK), "exit status after SIGTERM: {status}\n{}", d.diagnostics());
    assert!(d.own_log().contains(STOPPED), "no {STOPPED:?} line after SIGTERM\n{}", d.diagnostics());
}

/// Sets the modification time of `path`.
fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// `len` pseudo-random bytes, a function of `seed` (BLAKE3 in XOF mode).
fn random_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed.as_bytes()).finalize_xof().fill(&mut out);
    out
}

/// Runs `ftpmonitor status --pid-file P --state-dir D [--json]` for the sandbox: (exit code,
/// stdout, stderr).
fn status(s: &Sandbox, json: bool) -> (Option<i32>, String, String) {
    crate::support::control::subcommand(s, if json { &["status", "--json"] } else { &["status"] })
}

/// A value of the `status --json` object (nested ones as serde_json has them).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Nested(serde_json::Value),
}

/// Parses one JSON object strictly (serde_json: nothing but whitespace may follow it).
fn parse_json_object(text: &str) -> Result<BTreeMap<String, Json>, String> {
    let serde_json::Value::Object(map) = serde_json::from_str(text).map_err(|e| e.to_string())? else {
        return Err("not an object".to_string());
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => Json::Null,
                serde_json::Value::Bool(b) => Json::Bool(b),
                serde_json::Value::Number(n) => Json::Num(n.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) => Json::Str(s),
                nested => Json::Nested(nested),
            };
            (k, v)
        })
        .collect())
}

/// `status --json`, parsed; panics with the output if it is not one flat JSON object.
fn status_json(s: &Sandbox) -> (Option<i32>, BTreeMap<String, Json>) {
    let (code, stdout, stderr) = status(s, true);
    let obj = parse_json_object(stdout.trim())
        .unwrap_or_else(|e| panic!("status --json is not one JSON object ({e}):\n{stdout}\nstderr: {stderr}"));
    (code, obj)
}

fn names(map: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    map.keys().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Helper checks
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// 1-3: the journal across restarts, comparison by content
// ---------------------------------------------------------------------------------------------

/// A few files in nested directories, written into the sandbox's WATCH_DIR.
fn write_tree(s: &Sandbox, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let rel = match i % 3 {
            0 => format!("top-{i}.txt"),
            1 => format!("sub/file-{i}.bin"),
            _ => format!("sub/deeper/file-{i}.dat"),
        };
        let bytes = random_bytes(&rel, 100 + 37 * i);
        s.write(&rel, &bytes);
        files.insert(rel, bytes);
    }
    files
}

#[test]
fn restart_after_a_full_sync_uploads_nothing() {
    let t = Test::new();
    let files = write_tree(&t, 12);
    let d = t.start();
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, files.keys().map(String::as_str));
    stop(&d);

    let mark = d.server().event_mark();
    let d2 = d.again().start();
    let own = d2.own_log();
    assert!(
        own.contains("(12 files in the journal, 0 queued)"),
        "the second run does not start from a journal of 12 synced files with nothing queued\n{}",
        d2.diagnostics()
    );
    // A file written after the restart is a barrier: once it arrived, whatever the start-up
    // reconcile queued has been sent (or never will be).
    d2.write("sentinel.txt", b"sentinel");
    d2.wait_remote("sentinel.txt", b"sentinel");
    wait_upload_lines(&d2, ["sentinel.txt"]);

    let events = d2.server().events_since(mark);
    assert_eq!(
        stored_paths(&events),
        vec![temp_path(&d2, "sentinel.txt")],
        "the second run stored something besides the sentinel\n{}",
        d2.diagnostics()
    );
    let log = d2.own_log();
    let uploads = upload_lines(&log);
    assert_eq!(uploads.len(), 1, "the second run logged other uploads: {uploads:#?}");
    assert!(is_upload_line(uploads[0], "sentinel.txt"), "{uploads:#?}");
    assert_eq!(d2.remote_files(), local_files(&d2));
}

#[test]
fn changes_made_while_stopped_arrive_after_restart() {
    let t = Test::new();
    t.write("keep.txt", b"kept as is");
    t.write("grow.txt", b"v1");
    let same_size = t.write("same-size.txt", b"AAAA");
    let d = t.start();
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, ["keep.txt", "grow.txt", "same-size.txt"]);
    stop(&d);

    d.write("grow.txt", b"version 2, longer");
    // Same size, other bytes, and an mtime that certainly differs from the journal's.
    d.write("same-size.txt", b"BBBB");
    set_mtime(&same_size, SystemTime::now() + Duration::from_secs(10));
    d.write("new/dir/new.txt", b"created while stopped");

    let mark = d.server().event_mark();
    let d2 = d.again().start();
    d2.wait_remote("grow.txt", b"version 2, longer");
    d2.wait_remote("same-size.txt", b"BBBB");
    d2.wait_remote("new/dir/new.txt", b"created while stopped");
    wait_upload_lines(&d2, ["grow.txt", "same-size.txt", "new/dir/new.txt"]);
    let own = d2.own_log();
    assert!(own.contains("3 files in the journal, 3 queued"), "unexpected ready line\n{}", d2.diagnostics());

    let events = d2.server().events_since(mark);
    for rel in ["grow.txt", "same-size.txt", "new/dir/new.txt"] {
        assert_eq!(stores_of(&d2, &events, rel), 1, "{rel} was not stored exactly once\n{events:#?}");
    }
    assert_eq!(stores_of(&d2, &events, "keep.txt"), 0, "keep.txt did not change but was sent again");
    assert_eq!(stored_paths(&events).len(), 3, "unexpected STORs: {events:#?}");
    assert_eq!(d2.remote_files(), local_files(&d2));
}

#[test]
fn same_bytes_with_a_new_mtime_are_not_sent_again() {
    // One connection, so a re-upload queued before the sentinel would be done before it.
    let t = Test::new().args(["--parallel", "1", "--log-level", "debug"]);
    let d = t.start();
    let path = d.write("same.txt", b"same bytes, same size");
    d.wait_remote("same.txt", b"same bytes, same size");
    wait_upload_lines(&d, ["same.txt"]);

    // In the running daemon: a new mtime, then the same bytes written again.
    set_mtime(&path, SystemTime::now() + Duration::from_secs(3600));
    d.write("same.txt", b"same bytes, same size");
    d.write("sentinel-1.txt", b"1");
    d.wait_remote("sentinel-1.txt", b"1");
    wait_upload_lines(&d, ["sentinel-1.txt"]);
    wait_own_log(&d, TIMEOUT, SAME_CONTENT);
    assert_eq!(
        stores_of(&d, &d.server().events(), "same.txt"),
        1,
        "same.txt was stored again although its bytes did not change\n{}",
        d.diagnostics()
    );
    stop(&d);

    // Across a restart: another new mtime while the daemon was down.
    set_mtime(&path, SystemTime::now() + Duration::from_secs(7200));
    let d2 = d.again().start();
    d2.write("sentinel-2.txt", b"2");
    d2.wait_remote("sentinel-2.txt", b"2");
    wait_upload_lines(&d2, ["sentinel-2.txt"]);
    assert!(
        d2.own_log().contains(SAME_CONTENT),
        "the restart did not notice same.txt's new mtime with the same content\n{}",
        d2.diagnostics()
    );
    assert_eq!(
        stores_of(&d2, &d2.server().events(), "same.txt"),
        1,
        "same.txt was stored again after the restart although its bytes did not change\n{}",
        d2.diagnostics()
    );
    assert_eq!(upload_count_in(&d2.own_log(), "same.txt"), 0);
    assert_eq!(d2.remote("same.txt").as_deref(), Some(b"same bytes, same size".as_slice()));
}

// ---------------------------------------------------------------------------------------------
// 4: first sync against a populated server
// ---------------------------------------------------------------------------------------------

#[test]
fn first_run_against_a_populated_server_sends_only_what_differs() {
    let t = Test::new();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let remote_root = t.server().root().join("upload");
    let put_remote = |rel: &str, bytes: &[u8], mtime: SystemTime| {
        let path = remote_root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        set_mtime(&path, mtime);
    };
    // Already there: same bytes, the server's copy newer than the local file.
    for (rel, bytes) in [("same.txt", b"same content".as_slice()), ("dir/same.bin", b"\x00\x01same\xff".as_slice())] {
        let local = t.write(rel, bytes);
        set_mtime(&local, now - hour);
        put_remote(rel, bytes, now);
    }
    // Different size on the server.
    t.write("differs.txt", b"the new local version");
    put_remote("differs.txt", b"old", now);
    // Same size, but the server's copy is older than the local file.
    let older = t.write("dir/older.txt", b"local bytes!");
    set_mtime(&older, now);
    put_remote("dir/older.txt", b"remote bytes", now - 2 * hour);
    // Not on the server at all.
    t.write("missing.txt", b"only here");

    let d = t.start();
    for rel in ["differs.txt", "dir/older.txt", "missing.txt"] {
        d.wait_remote(rel, &std::fs::read(d.watch_dir().join(rel)).unwrap());
    }
    wait_upload_lines(&d, ["differs.txt", "dir/older.txt", "missing.txt"]);
    // Those uploads came out of both listings (top level and dir/), which also decided about
    // the matching files; a file written now is a barrier for anything queued later.
    d.write("sentinel.txt", b"s");
    d.wait_remote("sentinel.txt", b"s");

    let events = d.server().events();
    for rel in ["same.txt", "dir/same.bin"] {
        assert_eq!(stores_of(&d, &events, rel), 0, "{rel} matched the server's copy but was sent\n{events:#?}");
        assert_eq!(upload_count_in(&d.log(), rel), 0);
    }
    for rel in ["differs.txt", "dir/older.txt", "missing.txt"] {
        assert_eq!(stores_of(&d, &events, rel), 1, "{rel} was not stored exactly once\n{events:#?}");
    }
    assert_eq!(d.remote_files(), local_files(&d));
}

#[test]
fn first_sync_lists_from_the_top_and_nothing_below_a_directory_missing_on_the_server() {
    let t = Test::new().arg("--once");
    let proxy = FtpProxy::start(t.server().port(), Transparent);
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    let now = SystemTime::now();
    let remote = t.server().root().join("upload/deep/er/est/same.txt");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    std::fs::write(&remote, b"same bytes").unwrap();
    set_mtime(&remote, now);
    let local = t.write("deep/er/est/same.txt", b"same bytes");
    set_mtime(&local, now - Duration::from_secs(3600));
    for rel in ["deep/er/new.txt", "new/a/b/c/f1.txt", "new/a/x.txt", "new2/y.txt", "top.txt"] {
        t.write(rel, rel.as_bytes());
    }

    let done = t.run();
    let listings: Vec<String> =
        proxy.commands().into_iter().filter(|c| c.starts_with("MLSD") || c.starts_with("LIST")).collect();
    let ctx = || format!("{}\n--- listings ---\n{listings:#?}", done.daemon.diagnostics());
    assert_eq!(done.status.code(), Some(EXIT_OK), "{}", ctx());
    assert_eq!(done.daemon.remote_files(), local_files(&done.daemon), "{}", ctx());
    let events = done.server().events();
    assert_eq!(stores_of(&done.daemon, &events, "deep/er/est/same.txt"), 0, "{}", ctx());
    // The directories on the path to the one that exists, each once; none of the missing ones.
    let mut listed: Vec<String> =
        listings.iter().map(|c| c.split_once(' ').map_or("", |(_, p)| p).to_string()).collect();
    listed.sort();
    assert_eq!(listed, ["/upload", "/upload/deep", "/upload/deep/er", "/upload/deep/er/est"], "{}", ctx());
    assert_eq!(proxy.problems(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// 5: renames and deletes
// ---------------------------------------------------------------------------------------------

#[test]
fn with_delete_a_file_rename_is_one_server_rename() {
    let d = Test::new().arg("--delete").start();
    d.write("a.txt", b"content of a");
    d.write("other.txt", b"other");
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, ["a.txt", "other.txt"]);

    let mark = d.server().event_mark();
    std::fs::rename(d.watch_dir().join("a.txt"), d.watch_dir().join("b.txt")).unwrap();
    d.wait_until("b.txt replaced a.txt on the server", || {
        d.remote("b.txt").as_deref() == Some(b"content of a".as_slice()) && d.remote("a.txt").is_none()
    });
    let events = d.server().events_since(mark);
    assert_eq!(
        stored_paths(&events),
        Vec::<String>::new(),
        "the rename sent the content again\n{events:#?}\n{}",
        d.diagnostics()
    );
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "the rename deleted something\n{events:#?}");
    assert_eq!(user_renames(&events), vec![(remote_path(&d, "a.txt"), remote_path(&d, "b.txt"))]);
    wait_own_log(&d, TIMEOUT, &renamed("a.txt", "b.txt"));
    assert_eq!(d.remote_files(), local_files(&d));
}

#[test]
fn with_delete_a_directory_rename_is_one_server_rename() {
    let d = Test::new().arg("--delete").start();
    d.write("dir/x.txt", b"x in dir");
    d.write("dir/sub/y.bin", b"\x00y\xff");
    d.write("top.txt", b"top");
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, ["dir/x.txt", "dir/sub/y.bin", "top.txt"]);

    let mark = d.server().event_mark();
    std::fs::rename(d.watch_dir().join("dir"), d.watch_dir().join("moved")).unwrap();
    d.wait_until("moved/ replaced dir/ on the server", || {
        let names = names(&d.remote_files());
        names.contains("moved/x.txt")
            && names.contains("moved/sub/y.bin")
            && !names.iter().any(|n| n.starts_with("dir/"))
    });
    let events = d.server().events_since(mark);
    assert_eq!(
        stored_paths(&events),
        Vec::<String>::new(),
        "the rename sent the contents again\n{events:#?}\n{}",
        d.diagnostics()
    );
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "the rename deleted something\n{events:#?}");
    assert_eq!(user_renames(&events), vec![(remote_path(&d, "dir"), remote_path(&d, "moved"))]);
    wait_own_log(&d, TIMEOUT, &renamed("dir", "moved"));
    assert_eq!(d.remote_files(), local_files(&d));
    assert!(!d.remote_root().join("dir").exists(), "the old directory is still on the server");
}

#[test]
fn with_delete_a_local_delete_deletes_the_remote_file() {
    let d = Test::new().arg("--delete").start();
    d.write("doomed.txt", b"doomed");
    d.write("kept.txt", b"kept");
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, ["doomed.txt", "kept.txt"]);

    let mark = d.server().event_mark();
    std::fs::remove_file(d.watch_dir().join("doomed.txt")).unwrap();
    d.wait_until("doomed.txt is gone from the server", || d.remote("doomed.txt").is_none());
    wait_own_log(&d, TIMEOUT, &deleted("doomed.txt"));
    let events = d.server().events_since(mark);
    assert_eq!(deleted_paths(&events), vec![remote_path(&d, "doomed.txt")]);
    assert_eq!(d.remote("kept.txt").as_deref(), Some(b"kept".as_slice()));
}

#[test]
fn without_delete_nothing_is_deleted_or_renamed_remotely() {
    let d = Test::new().start();
    d.write("removed.txt", b"removed locally");
    d.write("old-name.txt", b"renamed locally");
    d.write("dir/inner.txt", b"inner");
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, ["removed.txt", "old-name.txt", "dir/inner.txt"]);

    std::fs::remove_file(d.watch_dir().join("removed.txt")).unwrap();
    std::fs::rename(d.watch_dir().join("old-name.txt"), d.watch_dir().join("new-name.txt")).unwrap();
    std::fs::remove_dir_all(d.watch_dir().join("dir")).unwrap();
    // The renamed file is a new file to upload; it is also the barrier for the rest.
    d.wait_remote("new-name.txt", b"renamed locally");
    d.write("sentinel.txt", b"s");
    d.wait_remote("sentinel.txt", b"s");

    let events = d.server().events();
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "a delete reached the server\n{events:#?}");
    assert_eq!(user_renames(&events), Vec::<(String, String)>::new(), "a rename reached the server");
    assert_eq!(d.remote("removed.txt").as_deref(), Some(b"removed locally".as_slice()));
    assert_eq!(d.remote("old-name.txt").as_deref(), Some(b"renamed locally".as_slice()));
    assert_eq!(d.remote("dir/inner.txt").as_deref(), Some(b"inner".as_slice()));
}

// ---------------------------------------------------------------------------------------------
// 6-8: outages, crashes, failures
// ---------------------------------------------------------------------------------------------

#[test]
fn server_stopped_and_restarted_mid_run_loses_and_duplicates_nothing() {
    let d = Test::new().start();
    d.write("before.txt", b"before the outage");
    d.wait_remote("before.txt", b"before the outage");
    let mark = d.server().event_mark();

    d.server().stop();
    let during: Vec<String> = (0..6).map(|i| format!("during/file-{i}.txt")).collect();
    for rel in &during {
        d.write(rel, format!("written while the server was down: {rel}").as_bytes());
    }
    d.write("before.txt", b"changed during the outage");
    wait_own_log(&d, TIMEOUT, SERVER_UNAVAILABLE);
    d.server().restart();

    wait_in_sync(&d, PATIENCE);
    wait_own_log(&d, PATIENCE, SERVER_BACK);
    let events = d.server().events_since(mark);
    for rel in during.iter().map(String::as_str).chain(["before.txt"]) {
        assert_eq!(stores_of(&d, &events, rel), 1, "{rel} was not stored exactly once\n{events:#?}");
    }
    assert_eq!(
        names(&d.server().remote_files()),
        names(&local_files(&d)).iter().map(|n| format!("upload/{n}")).collect(),
        "the server holds other files than the local tree (temporary or duplicate names?)"
    );
}

#[test]
fn sigkill_mid_upload_then_restart_completes_the_file_and_leaves_no_temporary() {
    const SIZE: usize = 200 * 1024 * 1024;
    let t = Test::new();
    t.write("small.txt", b"small");
    let (len, hash) = {
        let big = random_bytes("big.bin", SIZE);
        t.write("big.bin", &big);
        (big.len() as u64, blake3::hash(&big))
    };
    let d = t.start();
    let part = d.remote_root().join(format!(".big.bin{TEMP_SUFFIX}"));
    let final_path = d.remote_root().join("big.bin");
    d.wait_until_for(PATIENCE, "the upload of big.bin is in progress (its temporary name exists)", || part.exists());
    d.signal(libc::SIGKILL);
    d.wait_exit(TIMEOUT);
    let partial = std::fs::metadata(&part).map_or(0, |m| m.len());
    assert!(partial < len, "the whole of big.bin had been stored before the kill: make it bigger\n{}", d.diagnostics());
    assert!(
        !final_path.exists(),
        "big.bin exists under its final name although its upload was killed\n{}",
        d.diagnostics()
    );

    let d2 = d.again().start();
    d2.wait_until_for(
        PATIENCE,
        "big.bin arrives complete under its final name",
        every(Duration::from_millis(500), || {
            std::fs::metadata(&final_path).is_ok_and(|m| m.len() == len)
                && std::fs::read(&final_path).is_ok_and(|b| blake3::hash(&b) == hash)
        }),
    );
    d2.wait_remote("small.txt", b"small");
    d2.wait_until("no temporary upload is left on the server", || temp_files_under(d2.server().root()).is_empty());
    assert!(temp_files_under(d2.server().root()).is_empty());
}

#[test]
fn a_file_refused_by_the_server_does_not_hold_the_others_back() {
    let d = Test::new().args(["--log-level", "debug"]).start();
    // A directory on the server where blocked.txt should go: the final rename must fail.
    let blocker = d.remote_root().join("blocked.txt");
    std::fs::create_dir_all(&blocker).unwrap();
    std::fs::write(blocker.join("keep.txt"), b"server data").unwrap();
    let blocker_intact =
        || blocker.is_dir() && std::fs::read(blocker.join("keep.txt")).is_ok_and(|b| b == b"server data");

    d.write("blocked.txt", b"cannot be stored");
    let others: Vec<String> = (0..5).map(|i| format!("ok-{i}.txt")).chain(["sub/ok.txt".to_owned()]).collect();
    for rel in &others {
        d.write(rel, rel.as_bytes());
    }
    for rel in &others {
        d.wait_remote(rel, rel.as_bytes());
    }
    let attempt_line = |n: u32| {
        let needle = format!("(attempt {n})");
        d.own_log().lines().any(|l| l.contains("blocked.txt") && l.contains(&needle))
    };
    d.wait_until_for(PATIENCE, "blocked.txt failed twice, or the server's directory was touched", || {
        (attempt_line(1) && attempt_line(2)) || !blocker_intact()
    });
    assert!(blocker_intact(), "the server's directory blocked.txt was moved, replaced or changed\n{}", d.diagnostics());
    assert!(attempt_line(1) && attempt_line(2));
    let aside = d.remote_root().join("blocked.txt.ftpmonitor-old");
    assert!(!aside.exists(), "the server's directory was renamed aside to {}", aside.display());
    assert_eq!(
        d.server().remote_files().keys().filter(|k| k.starts_with("upload/blocked.txt")).collect::<Vec<_>>(),
        vec!["upload/blocked.txt/keep.txt"],
    );
}

// ---------------------------------------------------------------------------------------------
// 9: a burst
// ---------------------------------------------------------------------------------------------

#[test]
fn a_burst_of_2000_files_in_several_directories_all_arrive() {
    // A cooldown long enough that no write of the test, however slow a loaded machine
    // makes it, straddles it (a file sent before its write ended is rightly sent again).
    let d = Test::new().cooldown(Some("2s")).start();
    let mut expected = BTreeMap::new();
    for dir in 0..10 {
        for i in 0..200 {
            let rel = format!("burst-{dir}/f-{i:03}.bin");
            let bytes = random_bytes(&rel, 64 + (dir * 200 + i) % 1500);
            d.write(&rel, &bytes);
            expected.insert(rel, bytes);
        }
    }
    assert_eq!(expected.len(), 2000);
    d.wait_until_for(
        PATIENCE * 2,
        "all 2000 files arrive with their bytes",
        every(Duration::from_secs(1), || d.remote_files() == expected),
    );
    let events = d.server().events();
    let stores = stored_paths(&events);
    assert_eq!(stores.len(), 2000, "{} STORs for 2000 files: some were sent more than once", stores.len());
}

// ---------------------------------------------------------------------------------------------
// 10: delete guards
// ---------------------------------------------------------------------------------------------

/// Lets `period` pass. Only for observing that something does NOT happen, where no log line or
/// server event can serve as a barrier; `period` is a few times the delay the daemon would need.
fn observe(period: Duration) {
    std::thread::sleep(period);
}

#[test]
fn a_vanished_watch_directory_deletes_nothing() {
    let d = Test::new().arg("--delete").cooldown(Some("1s")).start();
    let files = write_tree(&d, 6);
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, files.keys().map(String::as_str));

    std::fs::remove_dir_all(d.watch_dir()).unwrap();
    wait_own_log(&d, TIMEOUT, HOLDING_ALL_DELETES);
    // Every removal event's cooldown (1 s) expires while the directory is gone.
    observe(Duration::from_secs(4));
    assert_eq!(deleted_paths(&d.server().events()), Vec::<String>::new(), "deletes reached the server");

    // The directory comes back at once, as a disk mounted again, with the same bytes (new
    // mtimes) and one new file: nothing is deleted, nothing is sent again but the new file.
    let mark = d.server().event_mark();
    let staged = d.outside_dir().join("remounted");
    for (rel, bytes) in &files {
        let path = staged.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(staged.join("sentinel.txt"), b"back").unwrap();
    std::fs::rename(&staged, d.watch_dir()).unwrap();
    d.wait_remote("sentinel.txt", b"back");
    wait_own_log(&d, TIMEOUT, "is back");

    let events = d.server().events();
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "deletes reached the server\n{}", d.diagnostics());
    assert_eq!(stored_paths(&d.server().events_since(mark)), vec![temp_path(&d, "sentinel.txt")]);
    for (rel, bytes) in &files {
        assert_eq!(d.remote(rel).as_ref(), Some(bytes), "{rel} is no longer on the server\n{}", d.diagnostics());
    }
}

#[test]
fn deletes_held_for_a_vanished_watch_directory_stay_held_when_it_reappears() {
    // The daemon logs that it holds all deletes "until it is back". Here the directory comes
    // back within the cooldown, with one new file only: the removals queued before it vanished
    // must not reach the server while the daemon still holds them, and once it sees the
    // directory back, its reconcile would delete all 6 synced files: more than --max-delete 50.
    let d = Test::new().arg("--delete").cooldown(Some("1s")).start();
    let files = write_tree(&d, 6);
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, files.keys().map(String::as_str));

    std::fs::remove_dir_all(d.watch_dir()).unwrap();
    wait_own_log(&d, TIMEOUT, HOLDING_ALL_DELETES);
    std::fs::create_dir(d.watch_dir()).unwrap();
    d.write("sentinel.txt", b"back");
    d.wait_remote("sentinel.txt", b"back");
    wait_own_log(&d, TIMEOUT, "is back");

    let events = d.server().events();
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "deletes reached the server\n{}", d.diagnostics());
    for (rel, bytes) in &files {
        assert_eq!(d.remote(rel).as_ref(), Some(bytes), "{rel} is no longer on the server\n{}", d.diagnostics());
    }
}

#[test]
fn max_delete_holds_a_mass_delete_made_while_stopped() {
    let t = Test::new().arg("--delete");
    let files: Vec<String> = (0..10).map(|i| format!("f-{i}.txt")).collect();
    for rel in &files {
        t.write(rel, rel.as_bytes());
    }
    let d = t.start();
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, files.iter().map(String::as_str));
    stop(&d);

    // 6 of 10 synced files: more than the default --max-delete 50.
    for rel in &files[..6] {
        std::fs::remove_file(d.watch_dir().join(rel)).unwrap();
    }
    let mark = d.server().event_mark();
    let d2 = d.again().start();
    wait_own_log(&d2, TIMEOUT, HOLDING_THESE_DELETES);
    d2.write("sentinel.txt", b"s");
    d2.wait_remote("sentinel.txt", b"s");
    let events = d2.server().events_since(mark);
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "held deletes reached the server\n{}", d2.diagnostics());
    for rel in &files {
        assert_eq!(d2.remote(rel).as_deref(), Some(rel.as_bytes()), "{rel} was deleted on the server");
    }
    stop(&d2);

    // The operator raises the limit: now the deletes go through.
    let d3 = d2.again().args(["--max-delete", "100"]).start();
    d3.wait_until("the 6 deleted files are gone from the server", || {
        files[..6].iter().all(|rel| d3.remote(rel).is_none())
    });
    for rel in &files[..6] {
        wait_own_log(&d3, TIMEOUT, &deleted(rel));
    }
    assert_eq!(d3.remote_files(), local_files(&d3));
}

// ---------------------------------------------------------------------------------------------
// 11: --once
// ---------------------------------------------------------------------------------------------

#[test]
fn once_exits_0_when_everything_is_synced() {
    let t = Test::new().arg("--once");
    let files = write_tree(&t, 7);
    let out = t.run_for(PATIENCE);
    out.assert_exit(EXIT_OK);
    let d = &out.daemon;
    let log = d.own_log();
    assert!(log.contains(READY_ONCE), "no {READY_ONCE:?} line\n{}", d.diagnostics());
    assert!(log.contains(ONCE_DONE), "no {ONCE_DONE:?} line\n{}", d.diagnostics());
    assert_eq!(d.remote_files(), files, "the server does not hold everything after --once\n{}", d.diagnostics());
    assert!(!d.pid_file_path().exists(), "--once left its PID file behind");

    // A second --once has nothing to do.
    let mark = d.server().event_mark();
    let again = d.again().run_for(PATIENCE);
    again.assert_exit(EXIT_OK);
    assert_eq!(stored_paths(&d.server().events_since(mark)), Vec::<String>::new());
}

#[test]
fn once_exits_1_when_the_server_is_unreachable() {
    let t = Test::new().arg("--once");
    t.write("a.txt", b"a");
    t.write("sub/b.txt", b"b");
    t.server().stop();
    let started = Instant::now();
    // run_for panics if it takes longer: the retries are bounded.
    let out = t.run_for(Duration::from_secs(60));
    let took = started.elapsed();
    out.assert_exit(EXIT_RUNTIME);
    let text = format!("{}\n{}", out.stderr, out.daemon.own_log());
    assert!(text.contains(ONCE_FAILED), "no {ONCE_FAILED:?} after {took:?}\n{}", out.daemon.diagnostics());
    let failed_line = text.lines().find(|l| l.contains(ONCE_FAILED)).unwrap();
    for rel in ["a.txt", "sub/b.txt"] {
        assert!(failed_line.contains(rel), "the failure line does not name {rel}: {failed_line}");
    }
    assert!(
        out.stderr.contains(SERVER_UNAVAILABLE) || out.stderr.to_lowercase().contains("connect"),
        "stderr does not say the server was unreachable\n{}",
        out.stderr
    );
}

#[test]
fn once_exits_1_when_one_file_cannot_be_stored() {
    let t = Test::new().arg("--once");
    // A plain file on the server where the local directory sub/ must go.
    std::fs::create_dir_all(t.server().root().join("upload")).unwrap();
    std::fs::write(t.server().root().join("upload/sub"), b"a file, not a directory").unwrap();
    t.write("sub/x.txt", b"x");
    t.write("ok.txt", b"ok");
    t.write("other/ok.txt", b"other ok");
    let out = t.run_for(PATIENCE);
    out.assert_exit(EXIT_RUNTIME);
    let d = &out.daemon;
    let log = d.own_log();
    let failed_line = log.lines().find(|l| l.contains(ONCE_FAILED)).unwrap_or_else(|| {
        panic!("no {ONCE_FAILED:?} line\n{}", d.diagnostics());
    });
    assert!(failed_line.contains("sub/x.txt"), "the failure line does not name sub/x.txt: {failed_line}");
    assert!(!failed_line.contains("ok.txt"), "the failure line names a file that was stored: {failed_line}");
    assert!(out.stderr.contains(ONCE_FAILED), "stderr does not report the failure\n{}", out.stderr);
    assert_eq!(d.remote("ok.txt").as_deref(), Some(b"ok".as_slice()));
    assert_eq!(d.remote("other/ok.txt").as_deref(), Some(b"other ok".as_slice()));
    assert_eq!(d.remote("sub").as_deref(), Some(b"a file, not a directory".as_slice()));
}

// ---------------------------------------------------------------------------------------------
// 12: status
// ---------------------------------------------------------------------------------------------

const STATUS_KEYS: [&str; 12] = [
    "running",
    "pid",
    "pid_file",
    "watch_dir",
    "target",
    "since",
    "synced",
    "pending",
    "last_upload",
    "last_upload_at",
    "last_error",
    "last_error_at",
];

#[test]
fn status_while_running_and_after_the_stop() {
    let t = Test::new();
    let files = write_tree(&t, 5);
    let d = t.start();
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, files.keys().map(String::as_str));
    let pid = d.pid();

    // The journal is written in batches: wait until it shows all five.
    d.wait_until("status --json shows 5 synced and nothing pending", || {
        let (_, obj) = status_json(&d);
        obj.get("synced") == Some(&Json::Num(5.0)) && obj.get("pending") == Some(&Json::Num(0.0))
    });
    let (code, obj) = status_json(&d);
    assert_eq!(code, Some(EXIT_OK), "status --json of a running daemon: {obj:?}");
    for key in STATUS_KEYS {
        assert!(obj.contains_key(key), "status --json lacks {key:?}: {obj:?}");
    }
    assert_eq!(obj["running"], Json::Bool(true));
    assert_eq!(obj["pid"], Json::Num(f64::from(pid)));
    assert_eq!(obj["pid_file"], Json::Str(d.pid_file_path().to_string_lossy().into_owned()));
    assert_eq!(obj["watch_dir"], Json::Str(d.watch_dir().to_string_lossy().into_owned()));
    assert!(matches!(&obj["last_upload"], Json::Str(p) if files.contains_key(p)), "{obj:?}");
    assert!(matches!(obj["since"], Json::Str(_)), "{obj:?}");

    let (code, text, stderr) = status(&d, false);
    assert_eq!(code, Some(EXIT_OK), "status of a running daemon:\n{text}\n{stderr}");
    assert!(text.contains("running") && !text.contains("not running"), "{text}");
    assert!(text.contains(&pid.to_string()), "status does not show pid {pid}:\n{text}");
    assert!(text.contains("synced: 5"), "status does not show 5 synced files:\n{text}");

    stop(&d);
    let (code, text, stderr) = status(&d, false);
    assert_eq!(code, Some(EXIT_NOT_RUNNING), "status of a stopped daemon:\n{text}\n{stderr}");
    assert!(text.contains("not running"), "{text}");
    assert!(text.contains("synced: 5"), "status does not show 5 synced files:\n{text}");
    let (code, obj) = status_json(&d);
    assert_eq!(code, Some(EXIT_NOT_RUNNING));
    assert_eq!(obj["running"], Json::Bool(false));
    assert_eq!(obj["pid"], Json::Null);
    assert_eq!(obj["synced"], Json::Num(5.0));
    assert_eq!(obj["pending"], Json::Num(0.0));
    // What status says is what the server holds.
    assert_eq!(d.remote_files().len(), 5);
}

// ---------------------------------------------------------------------------------------------
// 13: --dry-run
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_changes_nothing_on_the_server() {
    let t = Test::new().args(["--dry-run", "--delete"]);
    t.write("a.txt", b"a");
    t.write("sub/b.txt", b"b");
    let d = t.start();
    wait_own_log(&d, TIMEOUT, &would_upload("a.txt"));
    wait_own_log(&d, TIMEOUT, &would_upload("sub/b.txt"));
    d.write("new.txt", b"new");
    wait_own_log(&d, TIMEOUT, &would_upload("new.txt"));
    std::fs::remove_file(d.watch_dir().join("a.txt")).unwrap();
    d.write("later.txt", b"later");
    wait_own_log(&d, TIMEOUT, &would_upload("later.txt"));
    stop(&d);

    let events = d.server().events();
    assert_eq!(events, Vec::<ServerEvent>::new(), "a dry run changed the server");
    assert_eq!(
        std::fs::read_dir(d.remote_root()).unwrap().count(),
        0,
        "a dry run created something in the remote directory"
    );
    assert!(upload_lines(&d.log()).is_empty(), "a dry run logged an upload\n{}", d.log());

    // --once --dry-run: exit 0, still nothing.
    let out = d.again().arg("--once").run_for(PATIENCE);
    out.assert_exit(EXIT_OK);
    assert!(out.daemon.own_log().contains(&would_upload("new.txt")), "{}", out.daemon.diagnostics());
    assert_eq!(d.server().events(), Vec::<ServerEvent>::new(), "a --once dry run changed the server");
}

/// The op the journal's queue holds for `rel`, if any.
fn queued_op(s: &Sandbox, rel: &str) -> Option<String> {
    let path = s.state_dir().join("journal.sqlite");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT op FROM queue WHERE path = ?1", [rel], |r| r.get(0)).ok()
}

#[test]
fn with_delete_a_file_recreated_before_its_delete_ran_is_uploaded_not_deleted() {
    let d = Test::new().arg("--delete").start();
    d.write("a.txt", b"first version");
    // Another file keeps the watch directory from looking unmounted.
    d.write("keep.txt", b"keep");
    wait_in_sync(&d, TIMEOUT);
    wait_upload_lines(&d, ["a.txt", "keep.txt"]);

    // With the server down nothing runs: the delete waits in the queue.
    d.server().stop();
    std::fs::remove_file(d.watch_dir().join("a.txt")).unwrap();
    d.wait_until("the delete of a.txt is queued", || queued_op(&d, "a.txt").as_deref() == Some("delete"));
    d.write("a.txt", b"second version, written back");
    d.wait_until("the upload of a.txt replaced the queued delete", || {
        queued_op(&d, "a.txt").as_deref() == Some("upload")
    });

    let mark = d.server().event_mark();
    d.server().restart();
    d.wait_remote("a.txt", b"second version, written back");
    let events = d.server().events_since(mark);
    assert_eq!(deleted_paths(&events), Vec::<String>::new(), "the stale delete ran\n{}", d.diagnostics());
}

#[test]
fn an_excluded_directory_excludes_what_is_below_it() {
    let d = Test::new().args(["--exclude", "build"]).start();
    // The directory first, so that the file below it arrives as an event of
    // its own (not only through the walk of a new directory).
    std::fs::create_dir_all(d.watch_dir().join("build/deep")).unwrap();
    d.write("zz-first.txt", b"first");
    d.wait_remote("zz-first.txt", b"first");
    d.write("build/deep/x.o", b"object");
    d.write("src/y.c", b"int main;");
    d.wait_remote("src/y.c", b"int main;");
    // A barrier written after the excluded file: once it arrived, the excluded
    // file's events have been handled.
    d.write("zz-barrier.txt", b"barrier");
    d.wait_remote("zz-barrier.txt", b"barrier");
    assert!(
        !names(&d.remote_files()).iter().any(|n| n.starts_with("build/")),
        "a file below an excluded directory was uploaded\n{}",
        d.diagnostics()
    );
}
