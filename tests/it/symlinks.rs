//! Symbolic links anywhere in a path are never followed: a directory link moved into the tree,
//! a directory swapped for a link during its cooldown or while the daemon was stopped, and FIFOs
//! (or links to them) that a worker must never block on.
//!
//! Each test plants a secret outside WATCH_DIR that a followed link would expose, and asserts
//! on what the server holds, not only on the log.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crate::support::{Behaviour, Daemon, DataLink, FtpProxy, PROXY_IP, SKIPPING, TIMEOUT, Test, escaped};

const SECRET: &[u8] = b"TOP-SECRET-behind-a-link-7d1e";

/// Waits until some log line says it skipped `name` (escaped) for a reason containing `why`.
fn wait_for_skip(d: &Daemon, name: &str, why: &str) {
    let shown = escaped(name);
    d.wait_until(&format!("a log line contains {SKIPPING:?}, {shown:?} and {why:?}"), || {
        d.log().lines().any(|l| l.contains(&format!("{SKIPPING} {shown}: ")) && l.contains(why))
    });
}

/// Panics if any file on the server holds [`SECRET`].
fn assert_secret_not_uploaded(d: &Daemon) {
    for (name, bytes) in d.server().remote_files() {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET),
            "the secret from outside WATCH_DIR was uploaded as {name}\n{}",
            d.diagnostics()
        );
    }
}

/// `outside/secret.txt` holds the secret.
fn plant_secret(t: &Test) {
    std::fs::write(t.outside_dir().join("secret.txt"), SECRET).unwrap();
}

#[test]
fn a_directory_link_moved_into_the_tree_uploads_nothing_from_outside() {
    // One connection: what was queued first is stored first.
    let t = Test::new().args(["--parallel", "1"]);
    plant_secret(&t);
    let d = t.start();

    symlink(d.outside_dir(), d.watch_dir().join("tmp")).unwrap();
    std::fs::rename(d.watch_dir().join("tmp"), d.watch_dir().join("dirlink")).unwrap();
    // Written after the move: queued after anything the move queued.
    d.write("after.txt", b"after");
    d.wait_remote("after.txt", b"after");
    wait_for_skip(&d, "dirlink", "symbolic link");

    assert_secret_not_uploaded(&d);
    assert!(
        d.server().remote_files().keys().all(|k| !k.contains("dirlink")),
        "something below the link was uploaded\n{}",
        d.diagnostics()
    );
}

#[test]
fn a_directory_swapped_for_a_link_during_the_cooldown_never_exposes_the_link_target() {
    // A cooldown long enough that the swap certainly happens inside it.
    let t = Test::new().args(["--parallel", "1"]).cooldown(Some("2s"));
    plant_secret(&t);
    t.write("d/keep.txt", b"keep");
    let d = t.start();
    d.wait_remote("d/keep.txt", b"keep");

    d.write("d/secret.txt", b"the version inside the tree");
    let w = d.watch_dir();
    std::fs::rename(w.join("d"), w.join("d2")).unwrap();
    symlink(d.outside_dir(), w.join("d")).unwrap();
    d.write("after.txt", b"after");

    d.wait_remote("d2/secret.txt", b"the version inside the tree");
    d.wait_remote("after.txt", b"after");
    wait_for_skip(&d, "d", "symbolic link");
    assert_secret_not_uploaded(&d);
}

/// The op the journal's queue holds for `rel`, if any.
fn queued_op(d: &Daemon, rel: &str) -> Option<String> {
    let path = d.state_dir().join("journal.sqlite");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT op FROM queue WHERE path = ?1", [rel], |r| r.get(0)).ok()
}

#[test]
fn a_link_below_a_path_queued_in_the_journal_is_not_followed_at_restart() {
    // A cooldown that never ends during the first run: d/secret.txt stays queued.
    let t = Test::new().cooldown(Some("1h"));
    plant_secret(&t);
    t.write("keep.txt", b"keep");
    let d = t.start();
    d.wait_remote("keep.txt", b"keep");
    d.write("d/secret.txt", b"the version inside the tree");
    d.wait_until("the journal queues d/secret.txt", || queued_op(&d, "d/secret.txt").is_some());
    d.signal(libc::SIGKILL);
    d.wait_exit(TIMEOUT);

    // While the daemon is down, d becomes a link to a directory outside.
    let w = d.watch_dir();
    std::fs::rename(w.join("d"), w.join("d2")).unwrap();
    symlink(d.outside_dir(), w.join("d")).unwrap();

    let d2 = d.again().cooldown(Some("0.2s")).args(["--parallel", "1"]).start();
    assert!(
        d2.own_log().contains("resuming"),
        "the restart did not resume the journal's queue (the test proves nothing)\n{}",
        d2.diagnostics()
    );
    // Queued after everything the start planned.
    d2.write("after.txt", b"after");
    d2.wait_remote("after.txt", b"after");
    d2.wait_remote("d2/secret.txt", b"the version inside the tree");
    wait_for_skip(&d2, "d", "symbolic link");
    assert_secret_not_uploaded(&d2);
}

/// Holds every upload's data connection before its first byte reaches the server while the gate
/// is closed; counts the uploads it held.
#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    held: AtomicUsize,
}

struct GatedUploads(Arc<Gate>);

impl Behaviour for GatedUploads {
    fn data_receive_buffer(&self) -> Option<usize> {
        Some(64 * 1024)
    }

    fn data(&self, link: &DataLink) {
        link.relay_download();
        let (mut from_client, mut to_server) = (&link.client, &link.server);
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = true;
        loop {
            let n = match from_client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The client wrote: it sent the command this connection belongs to.
            if std::mem::take(&mut first) && matches!(link.verb().as_str(), "STOR" | "APPE") {
                let mut counted = false;
                while self.0.closed.load(Ordering::SeqCst) && !link.stopping() {
                    if !std::mem::replace(&mut counted, true) {
                        self.0.held.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// Rewrites `rel` with other bytes of the same size and an mtime far from the journal's, so
/// that the next start asks a worker to compare its bytes with the journal's fingerprint.
fn rewrite_same_size(t: &Daemon, rel: &str, bytes: &[u8]) {
    let path = t.watch_dir().join(rel);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    std::fs::write(&path, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)).unwrap();
}

#[test]
fn a_fifo_or_a_link_to_one_never_blocks_a_worker() {
    let gate = Arc::new(Gate::default());
    let t = Test::new();
    let proxy = FtpProxy::start(t.server().port(), GatedUploads(Arc::clone(&gate)));
    // One connection: a worker blocked on a FIFO would hold everything back.
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string()).args(["--parallel", "1"]);
    t.write("f1.txt", b"1111");
    t.write("f2.txt", b"2222");
    let d = t.start();
    d.wait_remote("f1.txt", b"1111");
    d.wait_remote("f2.txt", b"2222");
    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);

    // Same sizes, new mtimes: the next start queues content comparisons for f1 and f2, behind
    // a big file (big ones go first on a single connection) whose upload the gate holds.
    rewrite_same_size(&d, "f1.txt", b"3333");
    rewrite_same_size(&d, "f2.txt", b"4444");
    d.write("big.bin", &vec![7u8; 9 * 1024 * 1024]);
    gate.closed.store(true, Ordering::SeqCst);
    let d2 = d.again().start();
    d2.wait_until("the gate holds the upload of big.bin", || gate.held.load(Ordering::SeqCst) > 0);

    // While the comparisons wait: f1 becomes a FIFO, f2 a link to one outside.
    let w = d2.watch_dir();
    std::fs::remove_file(w.join("f1.txt")).unwrap();
    mkfifo(&w.join("f1.txt"));
    mkfifo(&d2.outside_dir().join("fifo"));
    std::fs::remove_file(w.join("f2.txt")).unwrap();
    symlink(d2.outside_dir().join("fifo"), w.join("f2.txt")).unwrap();
    gate.closed.store(false, Ordering::SeqCst);

    d2.write("after.txt", b"after");
    d2.wait_remote("big.bin", &vec![7u8; 9 * 1024 * 1024]);
    d2.wait_remote("after.txt", b"after");
    wait_for_skip(&d2, "f1.txt", "not a regular file");
    wait_for_skip(&d2, "f2.txt", "symbolic link");
    assert_eq!(d2.remote("f1.txt").as_deref(), Some(b"1111".as_slice()), "f1.txt changed on the server");
    assert_eq!(d2.remote("f2.txt").as_deref(), Some(b"2222".as_slice()), "f2.txt changed on the server");
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}

#[test]
fn a_directory_swapped_for_a_link_while_its_upload_waits_never_exposes_the_link_target() {
    let gate = Arc::new(Gate::default());
    let t = Test::new();
    plant_secret(&t);
    let proxy = FtpProxy::start(t.server().port(), GatedUploads(Arc::clone(&gate)));
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string()).args(["--parallel", "1"]);
    t.write("keep.txt", b"keep");
    let d = t.start();
    d.wait_remote("keep.txt", b"keep");
    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);

    // The next start plans d/secret.txt, a regular file then, behind a big file whose upload
    // the gate holds (big ones go first on a single connection).
    d.write("d/secret.txt", b"the version inside the tree");
    d.write("big.bin", &vec![7u8; 9 * 1024 * 1024]);
    gate.closed.store(true, Ordering::SeqCst);
    let d2 = d.again().start();
    d2.wait_until("the gate holds the upload of big.bin", || gate.held.load(Ordering::SeqCst) > 0);

    // While the upload of d/secret.txt waits, d becomes a link to the secrets.
    let w = d2.watch_dir();
    std::fs::rename(w.join("d"), w.join("d2")).unwrap();
    symlink(d2.outside_dir(), w.join("d")).unwrap();
    gate.closed.store(false, Ordering::SeqCst);

    d2.write("after.txt", b"after");
    d2.wait_remote("big.bin", &vec![7u8; 9 * 1024 * 1024]);
    d2.wait_remote("after.txt", b"after");
    d2.wait_remote("d2/secret.txt", b"the version inside the tree");
    wait_for_skip(&d2, "d", "symbolic link");
    assert_secret_not_uploaded(&d2);
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}
