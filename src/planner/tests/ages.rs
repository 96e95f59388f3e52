//! `--min-age` and `--max-age` (rules G1–G4). The wall clock starts at
//! `NOW` and moves with the harness's monotonic clock.

use std::time::Duration;

use super::{Given, NOW, Row, remote, run};
use crate::planner::Ages;

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const DAY: u64 = 86_400;

fn min_age(secs: u64) -> Given {
    Given::new().ages(Ages { min: Some(Duration::from_secs(secs)), max: None })
}

fn max_age(days: u64) -> Given {
    Given::new().ages(Ages { min: None, max: Some(Duration::from_secs(days * DAY)) })
}

#[test]
fn min_age_waits() {
    run(&[
        Row {
            rule: "G1 a file modified less than --min-age ago waits until it is that old",
            // Modified 2 s before the event; after the 1 s cooldown it is 3 s old.
            given: || min_age(10).file("a", 3, NOW - 2),
            when: |h| {
                h.changed("a");
                assert!(h.jobs().is_empty(), "uploaded before it was 10 s old");
                h.advance(6 * S + 900 * MS);
                assert!(h.jobs().is_empty(), "uploaded 0.1 s before it was 10 s old");
                h.advance(200 * MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "G1 a file already older than --min-age goes after its cooldown",
            given: || min_age(10).file("a", 3, NOW - 60),
            when: |h| h.changed("a"),
            then: &["upload a"],
        },
        Row {
            rule: "G1 a write during the wait starts it again from the new mtime",
            given: || min_age(10).file("a", 3, NOW - 2),
            when: |h| {
                h.changed("a");
                h.advance(5 * S);
                // Written again at NOW + 6 (the writer paused, then went on).
                h.fs.put("a", super::Fake::File { len: 5, mtime: NOW + 6 });
                h.changed("a");
                h.advance(7 * S);
                assert!(h.jobs().is_empty(), "uploaded less than 10 s after the last write");
                h.advance(3 * S);
            },
            then: &["upload a"],
        },
        Row {
            rule: "G1 a young file removed during its wait is not uploaded, and nothing waits for it",
            given: || min_age(10).file("a", 3, NOW),
            when: |h| {
                h.changed("a");
                h.fs.remove("a");
                h.advance(10 * S);
                assert!(h.p.is_done(), "still waiting for a file that is gone");
            },
            then: &[],
        },
        Row {
            rule: "G1 an mtime in the future counts as old enough once the file held still for --min-age",
            given: || min_age(10).file("a", 3, NOW + 3600),
            when: |h| {
                h.changed("a");
                h.advance(9 * S);
                assert!(h.jobs().is_empty(), "uploaded before it held still for 10 s");
                h.advance(S + 2 * MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "G1 reconciles wait too",
            given: || min_age(10).file("a", 3, NOW - 5).file("b", 1, NOW - 600),
            when: |h| {
                assert_eq!(h.reconcile(), 1);
                assert_eq!(h.jobs(), ["upload b"]);
                h.advance(5 * S + MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "G1 --once leaves a young file for a later run and does not wait for it",
            given: || min_age(10).with(|r| r.once = true).file("a", 3, NOW).file("b", 1, NOW - 600),
            when: |h| {
                assert_eq!(h.reconcile(), 1);
                assert_eq!(h.jobs(), ["upload b"]);
                h.succeed("upload b");
                assert!(h.p.is_done(), "--once waits for a young file");
            },
            then: &[],
        },
    ]);
}

#[test]
fn max_age_leaves_old_files() {
    run(&[
        Row {
            rule: "G2 a file modified more than --max-age ago is left alone",
            given: || max_age(30).file("old", 3, NOW - 31 * DAY).file("new", 1, NOW - 29 * DAY),
            when: |h| assert_eq!(h.reconcile(), 1),
            then: &["upload new"],
        },
        Row {
            rule: "G2 an event on an old file (cp -p) does not upload it either",
            given: || max_age(30).file("old", 3, NOW - 31 * DAY),
            when: |h| h.changed("old"),
            then: &[],
        },
        Row {
            rule: "G2 first sync against the server: old files missing there stay missing",
            given: || max_age(30).file("old", 3, NOW - 31 * DAY).file("new", 1, NOW - DAY),
            when: |h| h.list_top(vec![remote("other", 1, NOW)]),
            then: &["upload new"],
        },
        Row {
            rule: "G2 an old file is not gone: with --delete its copy on the server stays",
            given: || max_age(30).delete().synced("keep", 1, NOW).synced("old", 3, NOW - 40 * DAY),
            when: |h| {
                h.fs.put("old", super::Fake::File { len: 4, mtime: NOW - 31 * DAY });
                h.changed("old");
                assert_eq!(h.reconcile(), 0);
            },
            then: &[],
        },
    ]);
}

#[test]
fn reload() {
    let mut h = max_age(30).synced("keep", 1, NOW).file("old", 3, NOW - 31 * DAY).start();
    assert_eq!(h.reconcile(), 0);
    let mut rules = h.p.rules().clone();
    rules.ages.max = Some(Duration::from_secs(60 * DAY));
    assert!(h.p.set_rules(rules, super::COOLDOWN), "G3 raising --max-age (SIGHUP) must reconcile");
    assert_eq!(h.reconcile(), 1, "G3 a file within the new --max-age is queued");
    assert_eq!(h.jobs(), ["upload old"]);
    let same = h.p.rules().clone();
    assert!(!h.p.set_rules(same, super::COOLDOWN), "G3 the same ages need no reconcile");
}
