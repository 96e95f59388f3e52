//! The first sync against the server's listings (rules L1–L3).

use std::time::Duration;

use super::{Given, H, Row, at, remote, remote_dir, run};
use crate::ftp::{Failure, Kind, RemoteEntry};
use crate::planner::listing::{LIST_TIME_SLACK, remote_not_older};

/// A remote file as LIST shows it: whole minutes, the server's time zone.
fn list_entry(name: &str, size: u64, mtime: u64) -> RemoteEntry {
    RemoteEntry { exact_time: false, ..remote(name, size, mtime) }
}

const T: u64 = 1_700_000_000;
const HOUR: u64 = 3600;

#[test]
fn first_sync() {
    // The local file `a` (3 bytes, modified at T) and the listing of REMOTE_DIR.
    let table: Vec<(&str, Vec<RemoteEntry>, &[&str])> = vec![
        ("L1 same size and the same mtime (MLSD): synced, not sent", vec![remote("a", 3, T)], &[]),
        ("L1 a remote copy newer than the local file counts as synced", vec![remote("a", 3, T + 60)], &[]),
        ("L1 a remote copy a second older is sent again", vec![remote("a", 3, T - 1)], &["upload a"]),
        ("L1 another size is sent", vec![remote("a", 4, T)], &["upload a"]),
        ("L1 a file missing on the server is sent", vec![remote("b", 3, T)], &["upload a"]),
        ("L1 a directory of the file's name is no copy of it", vec![remote_dir("a")], &["upload a"]),
        (
            "L1 LIST: a time up to 15 hours newer may be an older copy in a zone east of UTC: sent",
            vec![list_entry("a", 3, T + 14 * HOUR)],
            &["upload a"],
        ),
        ("L1 LIST: 15 hours newer or more counts as synced", vec![list_entry("a", 3, T + 15 * HOUR)], &[]),
    ];
    for (rule, listing, then) in table {
        let mut h = Given::new().file("a", 3, T).start();
        h.list_top(listing);
        assert_eq!(h.jobs(), then, "rule: {rule}");
    }
    run(&[
        Row {
            rule: "L1 a file that counts as synced is in the journal from then on",
            given: || Given::new().file("a", 3, T).file("b", 1, T),
            when: |h| {
                h.list_top(vec![remote("a", 3, T)]);
                assert_eq!(h.journal(), ["a"]);
            },
            then: &["upload b"],
        },
        Row {
            rule: "L1 SIGUSR1: a file the journal knows but the server lost is sent again",
            given: || Given::new().synced("a", 3, T).synced("b", 3, T),
            when: |h| h.list_top(vec![remote("a", 3, T)]),
            then: &["upload b"],
        },
    ]);
}

#[test]
fn remote_times() {
    let t = at(T);
    let mlsd = |secs: u64| remote("f", 1, secs);
    let table: &[(&str, RemoteEntry, bool)] = &[
        ("MLSD, same second (the local file has nanoseconds)", mlsd(T), true),
        ("MLSD, newer", mlsd(T + 5), true),
        ("MLSD, a second older", mlsd(T - 1), false),
        ("no time at all", RemoteEntry { modified: None, ..mlsd(T) }, false),
        ("LIST, 14 hours newer", list_entry("f", 1, T + 14 * HOUR), false),
        ("LIST, the slack exactly", list_entry("f", 1, T + LIST_TIME_SLACK.as_secs()), true),
    ];
    for (what, entry, synced) in table {
        assert_eq!(remote_not_older(entry, Some(t + Duration::from_millis(400))), *synced, "{what}");
    }
    assert!(!remote_not_older(&mlsd(T), None), "no local time");
}

/// Listings go from the top down. Sibling directories are listed in no set
/// order, so these compare sets.
#[test]
fn top_down() {
    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }
    let given = || Given::new().workers(4).file("top", 1, T).file("a/x", 1, T).file("a/b/y", 1, T).file("c/z", 1, T);

    // L2 only the top is listed first.
    let mut h: H = given().start();
    assert_eq!(h.compare(), 4);
    assert_eq!(h.jobs(), ["list /"]);
    // L2 a directory the server has is listed; one it does not have is not,
    // nor anything below it: its files are all sent.
    h.listed("list /", vec![remote("top", 1, T), remote_dir("a")]);
    assert_eq!(sorted(h.jobs()), ["list a", "upload c/z"]);
    h.listed("list a", vec![remote("x", 1, T)]);
    assert_eq!(h.jobs(), ["upload a/b/y"]);

    // L2 a listing that failed (not "missing") tells nothing: below it is listed anyway.
    let mut h: H = given().start();
    h.compare();
    h.jobs();
    h.finish("list /", Err(Failure::new(Kind::Transient, "450 busy")));
    assert_eq!(sorted(h.jobs()), ["list a", "list c", "upload top"]);

    // L2 a 550 (no such directory) means nothing below it is there.
    let mut h: H = given().start();
    h.compare();
    h.jobs();
    h.finish("list /", Err(Failure { code: Some(550), ..Failure::new(Kind::Refused, "550 no such directory") }));
    assert_eq!(sorted(h.jobs()), ["upload a/b/y", "upload a/x", "upload c/z", "upload top"]);

    // L2 LIST may hide dot-names: a hidden directory is listed anyway.
    let mut h: H = Given::new().file(".hidden/x", 1, T).start();
    h.list_top(vec![]);
    assert_eq!(h.jobs(), ["list .hidden"]);

    // A comparison under way is not started twice.
    let mut h: H = given().start();
    assert_eq!(h.compare(), 4);
    assert_eq!(h.compare(), 0);
}

#[test]
fn leftovers() {
    // The local file `a` (3 bytes, modified at T), with or without --delete,
    // and the listing of REMOTE_DIR.
    let a = || remote("a", 3, T);
    let table: Vec<(&str, bool, Vec<RemoteEntry>, &[&str])> = vec![
        (
            "L3 a temporary upload left by a crash is removed",
            false,
            vec![a(), remote(".gone.ftpmonitor-part", 2, T)],
            &["remove temp .gone.ftpmonitor-part"],
        ),
        (
            "L3 the temporary upload of a file being sent is kept (it may resume)",
            false,
            vec![remote(".a.ftpmonitor-part", 2, T)],
            &["upload a"],
        ),
        (
            "L3 an old copy a crash left renamed aside is renamed back (without --delete the server keeps what it had)",
            false,
            vec![a(), remote("b.ftpmonitor-old", 2, T)],
            &["aside b restore"],
        ),
        (
            "L3 with --delete an old copy renamed aside of a file gone locally is dropped",
            true,
            vec![a(), remote("b.ftpmonitor-old", 2, T)],
            &["aside b drop"],
        ),
    ];
    for (rule, delete, listing, then) in table {
        let given = Given::new().file("a", 3, T);
        let mut h = if delete { given.delete() } else { given }.start();
        h.list_top(listing);
        assert_eq!(h.jobs(), then, "rule: {rule}");
    }
}
