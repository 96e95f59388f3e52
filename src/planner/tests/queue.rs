//! The queue discipline: one job per path, the newer intent wins except over
//! a rename, paths changed while their job runs, the queue of large files,
//! and `--dry-run` (rules Q1–Q3).

use super::{Fake, Given, H, Row, abs, run};
use crate::event::Change;
use crate::planner::queue::LARGE;

#[test]
fn intent() {
    run(&[
        Row {
            rule: "Q1 a delete after a queued upload replaces it",
            given: || Given::new().delete().workers(1).synced("keep", 1, 100).journal("a", 1, 100).file("b", 1, 100),
            when: |h| {
                // One worker, two slots: "keep"'s and "b"'s jobs fill them, "a" waits queued.
                h.fs.put("keep", Fake::File { len: 2, mtime: 100 });
                h.touched("keep");
                h.touched("b");
                h.fs.put("a", Fake::File { len: 2, mtime: 100 });
                h.changed("a");
                assert_eq!(h.jobs(), ["upload keep", "upload b"]);
                h.fs.remove("a");
                h.changed("a");
                h.all_succeed();
            },
            then: &["delete a"],
        },
        Row {
            rule: "Q1 an upload after a queued delete replaces it",
            given: || Given::new().delete().workers(1).synced("keep", 1, 100).journal("a", 1, 100).file("b", 1, 100),
            when: |h| {
                h.fs.put("keep", Fake::File { len: 2, mtime: 100 });
                h.touched("keep");
                h.touched("b");
                h.changed("a");
                assert_eq!(h.jobs(), ["upload keep", "upload b"]);
                h.fs.put("a", Fake::File { len: 5, mtime: 100 });
                h.changed("a");
                h.all_succeed();
            },
            then: &["upload a"],
        },
        Row {
            rule: "Q1 a queued rename is not replaced: the path is looked at again once it is done",
            given: || Given::new().delete().workers(1).synced("keep", 1, 100).journal("a", 1, 100).file("c", 1, 100),
            when: |h| {
                h.fs.put("keep", Fake::File { len: 2, mtime: 100 });
                h.touched("keep");
                h.send("c");
                h.fs.remove("a");
                h.fs.put("b", Fake::File { len: 1, mtime: 100 });
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                h.fs.put("b", Fake::File { len: 7, mtime: 100 });
                h.changed("b");
                h.all_succeed();
                assert_eq!(h.jobs(), ["rename a -> b"]);
                h.succeed("rename a -> b");
                h.quiet();
            },
            then: &["upload b"],
        },
        Row {
            rule: "Q1 a path changed while its upload runs is looked at again when it ends",
            given: || Given::new().file("a", 1, 100),
            when: |h| {
                h.changed("a");
                assert_eq!(h.jobs(), ["upload a"]);
                h.fs.put("a", Fake::File { len: 2, mtime: 200 });
                h.changed("a");
                assert!(h.jobs().is_empty(), "a second job ran on a path whose job runs");
                h.succeed("upload a");
                h.quiet();
            },
            then: &["upload a"],
        },
        Row {
            rule: "Q1 a rename holds its old name: a new file there waits until the server moved the old one",
            given: || Given::deleting().file("b", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                assert_eq!(h.jobs(), ["rename a -> b"]);
                h.fs.put("a", Fake::File { len: 3, mtime: 300 });
                h.changed("a");
                assert!(h.jobs().is_empty(), "a new a went up before the rename moved the old one");
                h.succeed("rename a -> b");
                h.quiet();
            },
            then: &["upload a"],
        },
    ]);
}

#[test]
fn large() {
    run(&[
        Row {
            rule: "Q2 small files do not wait behind large ones while a connection is free",
            given: || {
                Given::new()
                    .workers(2)
                    .file("big1", LARGE, 100)
                    .file("big2", LARGE, 100)
                    .file("big3", LARGE, 100)
                    .file("small", 1, 100)
            },
            when: |h| {
                h.reconcile();
            },
            // Two connections: one large file at a time, the other connection for small ones.
            then: &["upload big1", "upload small"],
        },
        Row {
            rule: "Q2 large files use every connection but one",
            given: || {
                Given::new().workers(3).file("big1", LARGE, 100).file("big2", LARGE, 100).file("big3", LARGE, 100)
            },
            when: |h| {
                h.reconcile();
            },
            then: &["upload big1", "upload big2"],
        },
    ]);
}

#[test]
fn dry_run() {
    run(&[
        Row {
            rule: "Q3 --dry-run uploads, deletes and renames nothing",
            given: || {
                Given::new()
                    .with(|r| r.dry_run = true)
                    .delete()
                    .synced("keep", 1, 100)
                    .file("a", 1, 100)
                    .journal("gone", 1, 100)
            },
            when: |h| {
                h.reconcile();
                h.change(Change::Renamed { from: abs("keep"), to: abs("moved") });
            },
            then: &[],
        },
        Row {
            rule: "Q3 --dry-run still reads the listings",
            given: || Given::new().with(|r| r.dry_run = true).file("a", 1, 100),
            when: |h| {
                h.compare();
            },
            then: &["list /"],
        },
    ]);
}

/// The harness's fake tree answers as localfs would.
#[test]
fn the_fake_tree_follows_no_link() {
    let h: H = Given::new().put("d", Fake::Link).start();
    let scope = h.p.rules().selection.clone();
    assert!(matches!(h.fs.look("d/x", true, &scope), crate::planner::Local::Gone(_)));
}
