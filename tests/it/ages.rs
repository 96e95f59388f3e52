//! `--min-age` and `--max-age`: a writer that pauses longer than the cooldown
//! without closing its file is not published half-written, and the first sync of
//! an old folder leaves its old files alone.

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::support::{ServerEvent, Test};

const DAY: Duration = Duration::from_secs(86_400);

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// STORs the server took (under any name: uploads go to a temporary name first).
fn stores(d: &crate::support::Daemon) -> usize {
    d.server().events().iter().filter(|e| matches!(e, ServerEvent::Stored { .. })).count()
}

#[test]
fn a_writer_pausing_longer_than_the_cooldown_is_published_once_whole() {
    let t = Test::new().cooldown(Some("1")).args(["--min-age", "6s", "--log-level", "debug"]);
    let d = t.start();
    let path = d.watch_dir().join("scan.pdf");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"first half, ").unwrap();
    f.sync_all().unwrap();
    let first_write = std::time::Instant::now();
    // The cooldown (1 s) ends during the writer's pause: the file is not old enough.
    d.wait_until("the cooldown of scan.pdf ends (it waits, or it is uploaded)", || {
        d.log().contains("scan.pdf: modified less than --min-age ago; uploading it in") || stores(&d) > 0
    });
    assert_eq!(stores(&d), 0, "the first half was uploaded\n{}", d.diagnostics());
    // The writer's pause is the workload (3 s from its first write, three
    // cooldowns, well inside --min-age however late the line above was
    // seen), not a synchronisation.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(first_write.elapsed()));
    f.write_all(b"second half").unwrap();
    drop(f);
    d.wait_remote("scan.pdf", b"first half, second half");
    assert_eq!(stores(&d), 1, "uploaded more than once (a half-written copy went first)\n{}", d.diagnostics());
    assert_eq!(d.upload_count("scan.pdf"), 1, "{}", d.log());
}

#[test]
fn the_first_sync_of_an_old_folder_leaves_files_older_than_max_age_alone() {
    let t = Test::new().args(["--max-age", "30d", "--once"]);
    let old = t.write("archive/2019.csv", b"old");
    set_mtime(&old, SystemTime::now() - 400 * DAY);
    let month = t.write("archive/last-month.csv", b"31 days");
    set_mtime(&month, SystemTime::now() - 31 * DAY);
    let recent = t.write("archive/last-week.csv", b"7 days");
    set_mtime(&recent, SystemTime::now() - 7 * DAY);
    t.write("today.csv", b"today");
    let done = t.run();
    done.assert_exit(0);
    let names: Vec<String> = done.server().remote_files().into_keys().collect();
    assert_eq!(names, ["upload/archive/last-week.csv", "upload/today.csv"], "{}", done.log());
    assert!(
        done.log().contains("2 files older than --max-age 30days left alone"),
        "no line says how many files were left alone\n{}",
        done.log()
    );
}

#[test]
fn once_leaves_a_young_file_for_a_later_run() {
    let t = Test::new().args(["--min-age", "1h", "--once"]);
    let settled = t.write("settled.txt", b"written yesterday");
    set_mtime(&settled, SystemTime::now() - DAY);
    t.write("fresh.txt", b"still being written");
    let done = t.run();
    done.assert_exit(0);
    let names: Vec<String> = done.server().remote_files().into_keys().collect();
    assert_eq!(names, ["upload/settled.txt"], "{}", done.log());
    assert!(
        done.log().lines().any(|l| l.contains("fresh.txt") && l.contains("left for a later run")),
        "the young file is not named in the log\n{}",
        done.log()
    );
}
