//! A file that never holds still: a copy that changed while it was read is never published
//! under the final name (a receiver would process a torn file), unless `--publish-changing`
//! asks for such snapshots.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::{Daemon, TIMEOUT, Test};

const SIZE: usize = 32 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// Rewrites `path` in place, again and again, each version all one byte value, one chunk
/// at a time with short pauses, so that a read during a rewrite sees two versions.
fn rewriter(path: std::path::PathBuf, stop: Arc<AtomicBool>, last: Arc<AtomicUsize>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut version = 1u8;
        while !stop.load(Ordering::SeqCst) {
            version = version.wrapping_add(1).max(1);
            let chunk = vec![version; CHUNK];
            f.seek(SeekFrom::Start(0)).unwrap();
            for _ in 0..SIZE / CHUNK {
                f.write_all(&chunk).unwrap();
                // Shapes the load (a slow writer); nothing waits on it.
                std::thread::sleep(Duration::from_millis(2));
            }
            last.store(usize::from(version), Ordering::SeqCst);
        }
    })
}

/// Watches the server's copy (`path`) until `stop`: returns every content seen under the
/// final name that was not one whole version (all bytes the same, the full size), and
/// whether the final name appeared at all.
fn checker(path: &std::path::Path, stop: &AtomicBool) -> (Vec<String>, bool) {
    let mut torn = Vec::new();
    let mut seen = false;
    let mut last_stamp = None;
    while !stop.load(Ordering::SeqCst) {
        let stamp = std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
        if stamp.is_some() && stamp != last_stamp {
            last_stamp = stamp;
            if let Ok(bytes) = std::fs::read(path) {
                seen = true;
                let whole = bytes.len() == SIZE && bytes.iter().all(|b| *b == bytes[0]);
                if !whole {
                    let values: std::collections::BTreeSet<u8> = bytes.iter().copied().collect();
                    torn.push(format!("{} bytes, values {values:?}", bytes.len()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (torn, seen)
}

/// Runs a rewriter on `rel` for as long as `until` takes to hold (at most [`TIMEOUT`]),
/// watching the server meanwhile; then lets the file settle.
fn while_rewritten(d: &Daemon, rel: &str, until: impl FnMut() -> bool) -> (Vec<String>, bool, u8) {
    let stop_writer = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicUsize::new(0));
    let writer = rewriter(d.watch_dir().join(rel), Arc::clone(&stop_writer), Arc::clone(&last));
    let stop_checker = Arc::new(AtomicBool::new(false));
    let remote = d.remote_root().join(rel);
    let (torn, seen) = std::thread::scope(|s| {
        // Stops both threads however this ends (a timed-out wait panics).
        let _stop = StopOnDrop(vec![Arc::clone(&stop_writer), Arc::clone(&stop_checker)]);
        let check = s.spawn(|| checker(&remote, &stop_checker));
        d.wait_until("the condition of the run", until);
        stop_writer.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        stop_checker.store(true, Ordering::SeqCst);
        check.join().unwrap()
    });
    (torn, seen, u8::try_from(last.load(Ordering::SeqCst)).unwrap())
}

struct StopOnDrop(Vec<Arc<AtomicBool>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for flag in &self.0 {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_copy_that_changed_while_it_was_read_is_never_published() {
    let t = Test::new().cooldown(Some("0")).args(["--parallel", "1", "--log-level", "debug"]);
    t.write("busy.bin", &vec![1u8; SIZE]);
    let d = t.start();
    let log = || d.log();
    // Until it was tried four times, or (the defect) published anyway.
    let (torn, _, last) = while_rewritten(&d, "busy.bin", || {
        log().matches("busy.bin changed while it was uploaded").count() >= 4
            || d.remote_root().join("busy.bin").exists()
    });
    assert!(torn.is_empty(), "the final name held a torn copy: {torn:?}\n{}", d.diagnostics());
    assert!(
        d.log().contains("warning: busy.bin keeps changing while it is read"),
        "no warning names the file that will not hold still\n{}",
        d.diagnostics()
    );
    // Once it holds still, its last version arrives.
    let want = vec![last; SIZE];
    d.wait_until_for(TIMEOUT, "the settled version arrives", || d.remote("busy.bin").as_deref() == Some(&want[..]));
}

#[test]
fn publish_changing_publishes_a_snapshot_of_a_file_that_never_holds_still() {
    let t = Test::new().cooldown(Some("0")).args(["--parallel", "1", "--publish-changing"]);
    t.write("growing.bin", &vec![1u8; SIZE]);
    let d = t.start();
    let (_, seen, last) = while_rewritten(&d, "growing.bin", || d.remote_root().join("growing.bin").exists());
    assert!(seen || d.remote("growing.bin").is_some(), "{}", d.diagnostics());
    let want = vec![last; SIZE];
    d.wait_until_for(TIMEOUT, "the settled version arrives", || d.remote("growing.bin").as_deref() == Some(&want[..]));
}
