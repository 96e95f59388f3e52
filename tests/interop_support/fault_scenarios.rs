//! The fault scenarios of tests/faults.rs, each written once and run against the real
//! daemons. Every scenario:
//!
//! * draws its random points from one seed, printed first (`FTPMONITOR_FAULT_SEED=N`
//!   replays it);
//! * records every version each local file had, and runs a [`Checker`] on the server's
//!   disk from before the daemon starts until the end: a final name that ever holds bytes
//!   that were never a complete local version fails the test;
//! * ends with the remote tree byte-identical to the local one, no temporary name left,
//!   the daemon alive (and stopping with status 0 on SIGTERM), its log in readable lines
//!   that say what happened;
//! * prints one `RESULT | ...` line: what was injected, how often, what was lost.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::faults::{
    Checker, Tmpfs, Versions, assert_log_readable, bytes_from, difference, lines_with, mixed_size, result_line, seed,
    temp_names, within,
};
use crate::support::ftpmonitor::{Daemon, Job};
use crate::support::servers::{Kind, Options, Server};
use crate::support::toxics::{Bytes, On, Rng, Toxic, ToxicProxy};
use crate::support::{TIMEOUT, describe_tree, files_under};

const MIB: usize = 1 << 20;

/// Waits until the server's copy equals the watch directory (which also means: no
/// temporary name is left), within `timeout`.
fn settle(daemon: &mut Daemon, job: &Job, server: &Server, timeout: Duration) -> Duration {
    let start = Instant::now();
    let remote = server.remote_root();
    // Equal trees and nothing left to do: a redundant retry (an upload whose
    // success the reset hid) may still be under way when the trees first match.
    let _ = within(timeout, || {
        (difference(&job.watch, &remote).is_none() && job.journal_idle()) || daemon.exited().is_some()
    });
    if !job.journal_idle() {
        eprintln!("settle: after {:?} the journal still holds {:?}", start.elapsed(), job.journal_pending());
    }
    if let Some(diff) = difference(&job.watch, &remote) {
        let exited = daemon.exited().map_or_else(|| "is still running".to_string(), |s| format!("exited ({s})"));
        panic!(
            "the server's copy does not equal the watch directory after {:?} (ftpmonitor {exited}): {diff}\n{}{}",
            start.elapsed(),
            job.diagnostics(),
            server.logs()
        );
    }
    start.elapsed()
}

/// The end of every scenario: the trees are equal, no temporary name is left, the daemon
/// is alive, its log reads, SIGTERM stops it with 0, and the checker saw nothing wrong.
fn conclude(mut daemon: Daemon, job: &Job, server: &Server, checker: Checker, what: &str) -> (u64, u64) {
    let remote = server.remote_root();
    if let Some(diff) = difference(&job.watch, &remote) {
        panic!("{what}: {diff}\nserver holds: {}\n{}{}", describe_tree(&remote), job.diagnostics(), server.logs());
    }
    assert!(temp_names(&remote).is_empty(), "{what}: temporary names left: {:?}", temp_names(&remote));
    assert!(daemon.exited().is_none(), "{what}: the daemon is not running\n{}", job.diagnostics());
    let log = job.log();
    assert_log_readable(&log, what);
    let status = daemon.stop();
    assert!(status.success(), "{what}: ftpmonitor exited with {status} after SIGTERM\n{}", job.diagnostics());
    checker.finish()
}

/// A daemon that started and uploaded `start.txt`, so the faults hit a running sync.
fn started<'a>(job: &'a Job, server: &Server, versions: &Versions) -> Daemon<'a> {
    versions.write(&job.watch, "start.txt", b"started\n");
    let mut daemon = job.spawn_foreground();
    let remote = server.remote_root().join("start.txt");
    daemon.wait_until(TIMEOUT, server, "start.txt is on the server", || remote.exists());
    daemon
}

fn count_final(server: &Server, prefix: &str) -> usize {
    files_under(&server.remote_root())
        .iter()
        .filter(|f| f.starts_with(prefix) && !crate::support::faults::is_temp(f))
        .count()
}

/// Scenario 1: Connection drops at random points during 100 uploads of mixed sizes: data
/// connections reset after a random number of bytes (about a third of them, 35 at most),
/// control connections reset after a random number of bytes either way (15 at most).
pub fn drops_during_uploads(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--timeout", "5s"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    proxy.add(
        Toxic::LimitData { bytes: Bytes::Between(0, 3 << 20) }
            .named("data-reset")
            .on(On::Data)
            .toxicity(0.35)
            .times(25),
    );
    proxy.add(
        Toxic::LimitData { bytes: Bytes::Between(0, 8192) }
            .named("data-reset-early")
            .on(On::Data)
            .toxicity(0.15)
            .times(15),
    );
    proxy.add(
        Toxic::LimitData { bytes: Bytes::Between(0, 6000) }
            .named("control-reset-up")
            .on(On::Control)
            .toxicity(0.4)
            .times(8),
    );
    proxy.add(
        Toxic::LimitData { bytes: Bytes::Between(0, 6000) }
            .named("control-reset-down")
            .downstream()
            .on(On::Control)
            .toxicity(0.4)
            .times(7),
    );
    let mut total = 0;
    for wave in 0..4 {
        for i in 0..25 {
            let len = mixed_size(&mut rng);
            total += len;
            let rel = format!("d{}/w{wave}-{i:02}.bin", i % 5);
            versions.write(&job.watch, &rel, &bytes_from(&mut rng, len));
        }
        // the next wave once about half of this one arrived: uploads overlap the faults
        let want = wave * 25 + 12;
        daemon.wait_until(Duration::from_secs(120), &server, &format!("{want} files arrived"), || {
            count_final(&server, "d") >= want
        });
    }
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(300));
    let resets = proxy.stats().resets.load(Ordering::Relaxed);
    let log = job.log();
    let retried = lines_with(&log, &["retrying"]).len();
    // A data connection reset mid-upload is usually taken up again at once by the same
    // worker, from where the server's copy ends: the log says "resuming NAME at byte N".
    let resumed = lines_with(&log, &["resuming "]).len();
    for f in proxy.fired() {
        eprintln!("  {f}");
    }
    assert!(resets >= 10, "only {resets} connections were reset: the scenario tested little\n{}", job.diagnostics());
    assert!(retried + resumed > 0, "{resets} resets and no log line says a retry or a resume\n{log}");
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "drops during 100 uploads",
        kind.name(),
        &format!("{resets} connection resets at random byte counts (data and control)"),
        0,
        &format!(
            "100 files, {} MiB; synced {took:?} after the last wave; {retried} retry and {resumed} resume lines; checker: {looks} file states in {rounds} rounds; seed {seed}",
            total / MIB
        ),
    );
}

/// Scenario 2: The server killed (SIGKILL, every session process too) twice during a burst, after a
/// random number of files arrived, files written while it is down, then restarted.
pub fn server_killed_during_burst(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let mut server = Server::start(kind, Options::default());
    // a bandwidth toxic stretches the burst over seconds, so the kill lands mid-transfer
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 8 << 20 }.named("bandwidth").on(On::Data));
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--timeout", "5s"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    let mut kills = Vec::new();
    for round in 0..2 {
        for i in 0..80 {
            let len = mixed_size(&mut rng);
            versions.write(&job.watch, &format!("burst{round}/f{i:02}.bin"), &bytes_from(&mut rng, len));
        }
        let at = usize::try_from(rng.between(3, 60)).expect("small");
        daemon.wait_until(Duration::from_secs(120), &server, &format!("{at} files of burst {round} arrived"), || {
            count_final(&server, &format!("burst{round}/")) >= at
        });
        let before = lines_with(&job.log(), &["server unavailable"]).len();
        server.kill();
        let partial = temp_names(&server.remote_root()).len();
        kills.push(format!("after {at} files ({partial} temporary files on the disk)"));
        for i in 0..10 {
            versions.write(
                &job.watch,
                &format!("down{round}/g{i}.txt"),
                format!("written while down {i}\n").as_bytes(),
            );
        }
        daemon.wait_until(Duration::from_secs(60), &server, "the log says the server is unavailable", || {
            lines_with(&job.log(), &["server unavailable"]).len() > before
        });
        server.restart();
    }
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(300));
    let log = job.log();
    assert!(!lines_with(&log, &["server reachable again"]).is_empty(), "no line says the server is back\n{log}");
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "server killed during a burst",
        kind.name(),
        &format!("2 SIGKILLs of the server, then restarts: {}", kills.join("; ")),
        0,
        &format!(
            "181 files; synced {took:?} after the last restart; checker: {looks} file states in {rounds} rounds; seed {seed}"
        ),
    );
}

/// Scenario 3: The server stalled beyond `--timeout` (2 s): every connection, control and data,
/// open and new, passes nothing for 12 s in the middle of uploads, then flows again.
pub fn server_stalled(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 2 << 20 }.named("bandwidth").on(On::Data));
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--timeout", "2s"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    versions.write(&job.watch, "big.bin", &bytes_from(&mut rng, 8 * MIB));
    for i in 0..30 {
        let len = mixed_size(&mut rng).min(MIB);
        versions.write(&job.watch, &format!("s/f{i:02}.bin"), &bytes_from(&mut rng, len));
    }
    let before = proxy.stats().upload_bytes.load(Ordering::Relaxed);
    let at = rng.between(256 << 10, 4 << 20);
    daemon.wait_until(Duration::from_secs(60), &server, "uploads are under way", || {
        proxy.stats().upload_bytes.load(Ordering::Relaxed) >= before + at
    });
    let up = proxy.add(Toxic::Stall.named("stall-up"));
    let down = proxy.add(Toxic::Stall.named("stall-down").downstream());
    let stalled = Instant::now();
    let noticed = within(Duration::from_secs(30), || !lines_with(&job.log(), &["timed out"]).is_empty());
    // the stall lasts 6 times --timeout in all
    std::thread::sleep(Duration::from_secs(12).saturating_sub(stalled.elapsed()));
    proxy.remove(up);
    proxy.remove(down);
    let noticed =
        noticed.unwrap_or_else(|| panic!("no log line says a timeout in 30 s of stall\n{}", job.diagnostics()));
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(180));
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "server stalled beyond --timeout",
        kind.name(),
        "every connection stalled 12 s (--timeout 2s) after a random number of upload bytes",
        0,
        &format!(
            "32 files; the first 'timed out' line {noticed:?} into the stall; synced {took:?} after it ended; checker: {looks} file states in {rounds} rounds; seed {seed}"
        ),
    );
}

/// Scenario 4: `kill -9` of ftpmonitor at a random moment of a long sync, 20 times, with files
/// changed, added and deleted between the rounds; then a last start that must finish it.
pub fn daemon_killed_during_sync(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 6 << 20 }.named("bandwidth").on(On::Data));
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--delete", "--timeout", "5s"]);
    let versions = Versions::new();
    let mut names = Vec::new();
    for i in 0..150 {
        let len = if i % 30 == 0 { 6 * MIB } else { mixed_size(&mut rng) };
        let rel = format!("t{}/f{i:03}.bin", i % 6);
        versions.write(&job.watch, &rel, &bytes_from(&mut rng, len));
        names.push(rel);
    }
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut killed_at = Vec::new();
    for round in 0..20 {
        let mut daemon = job.spawn_foreground();
        let wait = Duration::from_millis(rng.between(100, 3000));
        std::thread::sleep(wait);
        if let Some(status) = daemon.exited() {
            panic!("round {round}: ftpmonitor exited by itself ({status})\n{}", job.diagnostics());
        }
        daemon.kill9();
        killed_at.push(wait.as_millis());
        // between rounds: a few files rewritten, one added, one deleted
        for _ in 0..3 {
            let rel = &names[usize::try_from(rng.between(0, names.len() as u64 - 1)).expect("small")];
            if job.watch.join(rel).exists() {
                let len = mixed_size(&mut rng);
                versions.write(&job.watch, rel, &bytes_from(&mut rng, len));
            }
        }
        let rel = format!("t{}/new{round:02}.bin", round % 6);
        let len = mixed_size(&mut rng);
        versions.write(&job.watch, &rel, &bytes_from(&mut rng, len));
        names.push(rel);
        let victim = &names[usize::try_from(rng.between(0, names.len() as u64 - 1)).expect("small")];
        let _ = std::fs::remove_file(job.watch.join(victim));
    }
    let mut daemon = job.spawn_foreground();
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(300));
    let log = job.log();
    let resumed = lines_with(&log, &["resuming"]).len();
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "kill -9 of ftpmonitor during a long sync",
        kind.name(),
        &format!("20 SIGKILLs at random moments (ms after start: {killed_at:?}), changes between rounds"),
        0,
        &format!(
            "{} files at the end; the last start synced in {took:?}; {resumed} 'resuming' lines; checker: {looks} file states in {rounds} rounds; seed {seed}",
            files_under(&job.watch).len()
        ),
    );
}

/// Scenario 5: A file rewritten (same size, other size), truncated or deleted while it uploads
/// (data connections slowed to 1 MiB/s), twice each, at a random point of the upload.
pub fn changed_while_uploading(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 1 << 20 }.named("bandwidth").on(On::Data));
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--delete", "--parallel", "2"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    let remote = server.remote_root();
    let mut mid = 0;
    let actions = ["rewrite-same-size", "rewrite-longer", "truncate", "delete"];
    for n in 0..2 {
        for action in actions {
            let rel = format!("{action}-{n}.bin");
            let len = usize::try_from(rng.between(2 * MIB as u64, 3 * MIB as u64)).expect("fits");
            versions.write(&job.watch, &rel, &bytes_from(&mut rng, len));
            let temp = remote.join(format!(".{rel}.ftpmonitor-part"));
            let point = rng.between(64 << 10, len as u64 * 3 / 4);
            daemon.wait_until(Duration::from_secs(60), &server, &format!("{rel} is being uploaded"), || {
                std::fs::metadata(&temp).is_ok_and(|m| m.len() >= point) || remote.join(&rel).exists()
            });
            if !remote.join(&rel).exists() {
                mid += 1;
            }
            match action {
                "rewrite-same-size" => versions.rewrite_in_place(&job.watch, &rel, &bytes_from(&mut rng, len)),
                "rewrite-longer" => versions.write(&job.watch, &rel, &bytes_from(&mut rng, len + 1000)),
                "truncate" => versions.truncate(&job.watch, &rel, rng.between(0, point)),
                _ => std::fs::remove_file(job.watch.join(&rel)).expect("delete"),
            }
        }
    }
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(180));
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "file rewritten, truncated or deleted while it uploads",
        kind.name(),
        &format!(
            "8 changes (2 each of: {}) at a random byte of the upload; {mid} hit the upload in flight",
            actions.join(", ")
        ),
        0,
        &format!("synced {took:?} after the last change; checker: {looks} file states in {rounds} rounds; seed {seed}"),
    );
}

/// Scenario 6: A directory renamed while its files upload (and its new name renamed again into a
/// new parent), with `--delete`.
pub fn directory_renamed_while_uploading(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 2 << 20 }.named("bandwidth").on(On::Data));
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--delete"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    for i in 0..16 {
        let len = usize::try_from(rng.between(256 << 10, 1536 << 10)).expect("fits");
        versions.write(&job.watch, &format!("batch/f{i:02}.bin"), &bytes_from(&mut rng, len));
    }
    let first = usize::try_from(rng.between(1, 6)).expect("small");
    daemon.wait_until(Duration::from_secs(60), &server, &format!("{first} files of batch/ arrived"), || {
        count_final(&server, "batch/") >= first
    });
    std::fs::rename(job.watch.join("batch"), job.watch.join("moved")).expect("rename batch");
    versions.renamed("batch", "moved");
    let second = first + usize::try_from(rng.between(1, 5)).expect("small");
    daemon.wait_until(Duration::from_secs(60), &server, &format!("{second} files arrived"), || {
        count_final(&server, "batch/") + count_final(&server, "moved/") >= second
    });
    std::fs::create_dir(job.watch.join("outer")).expect("mkdir outer");
    std::fs::rename(job.watch.join("moved"), job.watch.join("outer/inner")).expect("rename moved");
    versions.renamed("moved", "outer/inner");
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(180));
    let log = job.log();
    let renames = lines_with(&log, &[" - renamed "]).len();
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "directory renamed while its files upload",
        kind.name(),
        &format!("batch/ (16 files) renamed after {first} arrived, renamed again into a new parent after {second}"),
        0,
        &format!(
            "synced {took:?} after the second rename; {renames} remote renames; checker: {looks} file states in {rounds} rounds; seed {seed}"
        ),
    );
}

/// Scenario 7: 50,000 files created while ftpmonitor is stopped (SIGSTOP): the inotify queue
/// overflows; after SIGCONT everything arrives, and files created afterwards in an old and
/// in a new directory still arrive (the watches survive the overflow).
pub fn overflow_while_stopped(kind: Kind, test: &str) {
    let seed = seed(test);
    let server = Server::start(kind, Options::default());
    let job = Job::new(&server);
    let versions = Versions::new();
    for d in 0..20 {
        versions.write(&job.watch, &format!("d{d:02}/first.txt"), format!("first {d}\n").as_bytes());
    }
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    settle(&mut daemon, &job, &server, TIMEOUT);
    daemon.signal(libc::SIGSTOP);
    let made = Instant::now();
    for i in 0..50_000 {
        versions.write(&job.watch, &format!("d{:02}/n{i:05}.txt", i % 20), format!("file {i} of {seed}\n").as_bytes());
    }
    let made = made.elapsed();
    daemon.signal(libc::SIGCONT);
    daemon.wait_until(Duration::from_secs(60), &server, "the log reports the overflow", || {
        !lines_with(&job.log(), &["overflow"]).is_empty()
    });
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(600));
    // After the overflow: the watches must still work, in an old and in a new directory.
    versions.write(&job.watch, "d00/after.txt", b"after the overflow\n");
    versions.write(&job.watch, "fresh/after.txt", b"new directory after the overflow\n");
    let remote = server.remote_root();
    let arrived = within(Duration::from_secs(60), || {
        remote.join("d00/after.txt").exists() && remote.join("fresh/after.txt").exists()
    });
    assert!(
        arrived.is_some(),
        "A3 (issue 10, the lead's fix): after an inotify overflow the watches are not rebuilt: files created \
         afterwards did not arrive within 60 s (d00/after.txt: {}, fresh/after.txt: {})\n{}",
        remote.join("d00/after.txt").exists(),
        remote.join("fresh/after.txt").exists(),
        job.diagnostics()
    );
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "50,000 files while SIGSTOPped (inotify overflow)",
        kind.name(),
        &format!("SIGSTOP, 50,000 files in 20 directories ({made:?}), SIGCONT"),
        0,
        &format!(
            "synced {took:?} after SIGCONT; new files after it arrived in {arrived:?}; checker: {looks} file states in {rounds} rounds"
        ),
    );
}

/// Scenario 8: The server's disk full on one file: REMOTE_DIR is a 6 MiB tmpfs, one file of 10 MiB
/// cannot fit. The other files (also those written after the failure) must arrive, the
/// log must name the file and the server's refusal; once the disk grows, it arrives too.
pub fn disk_full_on_one_file(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let disk = Tmpfs::mount(&server.remote_root(), "6m");
    let owner = std::fs::metadata(&server.root).expect("stat the server root");
    std::os::unix::fs::chown(
        &disk.path,
        Some(std::os::unix::fs::MetadataExt::uid(&owner)),
        Some(std::os::unix::fs::MetadataExt::gid(&owner)),
    )
    .expect("chown the tmpfs");
    // a transparent proxy: its transcript shows the server's replies if the test fails
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    let job = Job::to(&server, "127.0.0.1", proxy.port);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    for i in 0..5 {
        versions.write(&job.watch, &format!("small/a{i}.bin"), &bytes_from(&mut rng, 20_000));
    }
    versions.write(&job.watch, "big.bin", &bytes_from(&mut rng, 10 * MIB));
    for i in 0..5 {
        versions.write(&job.watch, &format!("small/b{i}.bin"), &bytes_from(&mut rng, 20_000));
    }
    daemon.wait_until(Duration::from_secs(60), &server, "a warning names big.bin", || {
        lines_with(&job.log(), &["warning"]).iter().any(|l| l.contains("big.bin"))
    });
    // files written after the failure still fit and must arrive
    for i in 0..5 {
        versions.write(&job.watch, &format!("later/c{i}.bin"), &bytes_from(&mut rng, 20_000));
    }
    let remote = server.remote_root();
    daemon.wait_until(Duration::from_secs(120), &server, "every file but big.bin arrived", || {
        files_under(&job.watch).iter().filter(|f| *f != "big.bin").all(|f| remote.join(f).exists())
    });
    let warning =
        lines_with(&job.log(), &["warning"]).into_iter().find(|l| l.contains("big.bin")).unwrap_or_default().to_owned();
    disk.resize("64m");
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(400));
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    drop(disk);
    result_line(
        "server's disk full on one file",
        kind.name(),
        "REMOTE_DIR on a 6 MiB tmpfs, one 10 MiB file among 15 small ones; then the disk grown to 64 MiB",
        0,
        &format!(
            "the log said: {warning:?}; big.bin arrived {took:?} after the disk grew; checker: {looks} file states in {rounds} rounds; seed {seed}"
        ),
    );
}

/// Scenario 9: A directory on the server the FTP user may not write (owned by root, 0755): its files
/// fail with a warning each, the others arrive; once the permissions are fixed, they arrive.
pub fn permission_denied_directory(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let locked = server.remote_root().join("locked");
    std::fs::create_dir_all(&locked).expect("create the locked directory");
    let owner = std::fs::metadata(&server.root).expect("stat the server root");
    let (uid, gid) = (std::os::unix::fs::MetadataExt::uid(&owner), std::os::unix::fs::MetadataExt::gid(&owner));
    std::os::unix::fs::chown(server.remote_root(), Some(uid), Some(gid)).expect("chown drop");
    std::os::unix::fs::chown(&locked, Some(0), Some(0)).expect("chown locked to root");
    crate::support::set_mode(&locked, 0o755);
    // a transparent proxy: its command log shows the temporary names used
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    let job = Job::to(&server, "127.0.0.1", proxy.port);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    for i in 0..4 {
        versions.write(&job.watch, &format!("locked/l{i}.bin"), &bytes_from(&mut rng, 5000));
        versions.write(&job.watch, &format!("open/o{i}.bin"), &bytes_from(&mut rng, 5000));
    }
    let remote = server.remote_root();
    daemon.wait_until(
        Duration::from_secs(60),
        &server,
        "the open files arrived and warnings name the locked ones",
        || {
            (0..4).all(|i| remote.join(format!("open/o{i}.bin")).exists())
                && (0..4).all(|i| {
                    lines_with(&job.log(), &["warning"])
                        .iter()
                        .any(|l| l.contains("locked/") && l.contains(&format!("l{i}.bin")))
                })
        },
    );
    let warnings = lines_with(&job.log(), &["warning"]).len();
    // Uploads elsewhere still use hidden temporary names (`.NAME.ftpmonitor-part`): a
    // refusal in one directory is no reason to show half-written files everywhere.
    versions.write(&job.watch, "open/after.bin", b"written after the refusals\n");
    daemon.wait_until(TIMEOUT, &server, "open/after.bin arrived", || remote.join("open/after.bin").exists());
    let stors: Vec<String> =
        proxy.commands().into_iter().filter(|c| c.starts_with("STOR ") && c.contains("after.bin")).collect();
    assert!(
        stors.iter().all(|c| c.ends_with("/open/.after.bin.ftpmonitor-part")),
        "after a permission-denied directory, uploads elsewhere use visible temporary names: {stors:?}\n{}",
        job.diagnostics()
    );
    std::os::unix::fs::chown(&locked, Some(uid), Some(gid)).expect("chown locked back");
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(120));
    let first = lines_with(&job.log(), &["warning"])
        .into_iter()
        .find(|l| l.contains("locked/") && l.contains("l0.bin"))
        .unwrap_or_default()
        .to_owned();
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "permission-denied directory on the server",
        kind.name(),
        "REMOTE_DIR/locked owned by root (0755): 4 files there, 5 elsewhere; then chowned to the FTP user",
        0,
        &format!(
            "{warnings} warning lines before the fix, e.g. {first:?}; the locked files arrived {took:?} after it; checker: {looks} file states in {rounds} rounds"
        ),
    );
}

/// Scenario 10: The watch directory replaced by a file, then restored (with `--delete`): nothing is
/// deleted on the server meanwhile, the log says so, and what changed while it was away
/// (and afterwards) arrives.
pub fn watch_dir_replaced_by_a_file(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let job = Job::new(&server).args(&["--delete"]);
    let versions = Versions::new();
    for i in 0..10 {
        versions.write(&job.watch, &format!("keep/k{i}.bin"), &bytes_from(&mut rng, 3000));
    }
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    settle(&mut daemon, &job, &server, TIMEOUT);
    let away = job.watch.with_extension("away");
    std::fs::rename(&job.watch, &away).expect("move the watch directory away");
    std::fs::write(&job.watch, b"a file where the watch directory was\n").expect("write the file");
    daemon.wait_until(Duration::from_secs(30), &server, "the log says the watch directory is missing", || {
        !lines_with(&job.log(), &["missing or empty"]).is_empty()
    });
    // meanwhile, in the directory that is away: a change, a new file
    versions.write(&away, "keep/k0.bin", b"changed while away\n");
    versions.write(&away, "new/while-away.txt", b"new while away\n");
    // two root checks (5 s apart): the server keeps everything
    let held = lines_with(&job.log(), &["missing or empty"]).len();
    std::thread::sleep(Duration::from_secs(11));
    let remote = server.remote_root();
    let kept = (0..10).filter(|i| remote.join(format!("keep/k{i}.bin")).exists()).count();
    assert_eq!(
        kept,
        10,
        "files were deleted on the server while the watch directory was a file\n{}",
        job.diagnostics()
    );
    std::fs::remove_file(&job.watch).expect("remove the file");
    std::fs::rename(&away, &job.watch).expect("restore the watch directory");
    daemon.wait_until(Duration::from_secs(30), &server, "the log says the watch directory is back", || {
        !lines_with(&job.log(), &["is back"]).is_empty()
    });
    settle(&mut daemon, &job, &server, TIMEOUT);
    // and it is watched again
    versions.write(&job.watch, "keep/after.txt", b"after the restore\n");
    let took = settle(&mut daemon, &job, &server, TIMEOUT);
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "watch directory replaced by a file, then restored",
        kind.name(),
        "WATCH_DIR moved away and a file put in its place for 11 s (with --delete), then restored",
        0,
        &format!(
            "{held} hold line(s); 0 files deleted on the server; a file written after the restore arrived in {took:?}; checker: {looks} file states in {rounds} rounds"
        ),
    );
}

/// Scenario 11: A slow link, and a `--timeout` (2 s) shorter than the time the bytes
/// buffered on the way take to drain (data connections at 1 MiB/s, three 6 MiB files):
/// the server is never silent, so no upload may time out, each goes up in one attempt.
pub fn slow_link_shorter_timeout(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 1 << 20 }.named("bandwidth").on(On::Data));
    let job =
        Job::to(&server, "127.0.0.1", proxy.port).args(&["--timeout", "2s", "--parallel", "3", "--log-level", "debug"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    for i in 0..3 {
        versions.write(&job.watch, &format!("slow/f{i}.bin"), &bytes_from(&mut rng, 6 * MIB));
    }
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(120));
    let log = job.log();
    // (a session lost this way is replaced at debug level: hence --log-level debug)
    let given_up = lines_with(&log, &[" - warning", " - error", "timed out", "session lost", "resuming"]);
    let sent = proxy.stats().upload_bytes.load(Ordering::Relaxed);
    assert!(
        given_up.is_empty() && sent < (18 * MIB + MIB / 4) as u64,
        "uploads that made progress were given up ({} MiB sent for 18): {given_up:#?}\n{}",
        sent >> 20,
        job.diagnostics()
    );
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "slow link, --timeout shorter than the buffers' drain time",
        kind.name(),
        "data connections at 1 MiB/s, --timeout 2s, three 6 MiB files in parallel",
        0,
        &format!(
            "synced in {took:?}, {} MiB sent in all, no warning; checker: {looks} file states in {rounds} rounds",
            sent >> 20
        ),
    );
}

/// Scenario 12: The network refuses new connections for 6 s (every open one reset
/// first), twice, during a burst, with 20-60 ms of latency on every control reply.
pub fn connections_refused_for_a_while(kind: Kind, test: &str) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let server = Server::start(kind, Options::default());
    let proxy = ToxicProxy::start(server.port, rng.next_u64());
    proxy.add(
        Toxic::Latency { delay: Duration::from_millis(20), jitter: Duration::from_millis(40) }
            .named("latency")
            .downstream()
            .on(On::Control),
    );
    proxy.add(Toxic::Bandwidth { bytes_per_sec: 8 << 20 }.named("bandwidth").on(On::Data));
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--timeout", "5s"]);
    let versions = Versions::new();
    let checker = Checker::start(&server.remote_root(), &versions);
    let mut daemon = started(&job, &server, &versions);
    let mut cut = Vec::new();
    for round in 0..2 {
        for i in 0..40 {
            let len = mixed_size(&mut rng);
            versions.write(&job.watch, &format!("r{round}/f{i:02}.bin"), &bytes_from(&mut rng, len));
        }
        let at = usize::try_from(rng.between(2, 30)).expect("small");
        daemon.wait_until(Duration::from_secs(120), &server, &format!("{at} files of round {round} arrived"), || {
            count_final(&server, &format!("r{round}/")) >= at
        });
        let before = lines_with(&job.log(), &["server unavailable"]).len();
        proxy.refuse_for(Duration::from_secs(6));
        cut.push(format!("after {at} files: {} connections reset", proxy.reset_all()));
        for i in 0..5 {
            versions.write(&job.watch, &format!("refused{round}/g{i}.txt"), format!("while refused {i}\n").as_bytes());
        }
        daemon.wait_until(Duration::from_secs(30), &server, "the log says the server is unavailable", || {
            lines_with(&job.log(), &["server unavailable"]).len() > before
        });
    }
    let took = settle(&mut daemon, &job, &server, Duration::from_secs(180));
    daemon.wait_until(Duration::from_secs(30), &server, "two lines say the server is back", || {
        lines_with(&job.log(), &["server reachable again"]).len() >= 2
    });
    let log = job.log();
    let back: Vec<&str> =
        lines_with(&log, &["server reachable again after "]).iter().filter_map(|l| l.split(" after ").nth(1)).collect();
    let unavailable = lines_with(&log, &["server unavailable"]).len();
    let (looks, rounds) = conclude(daemon, &job, &server, checker, test);
    result_line(
        "connections refused for a while",
        kind.name(),
        &format!(
            "2 × (every connection reset, new ones refused for 6 s): {}; 20-60 ms latency on replies",
            cut.join("; ")
        ),
        0,
        &format!(
            "91 files; synced {took:?} after the last refusal began; log: {unavailable} × server unavailable, back after {}; checker: {looks} file states in {rounds} rounds; seed {seed}",
            back.join(", ")
        ),
    );
}
