//! What a change means: cooldown, new directories, moves, renames, deletes,
//! skipped names, scope and includes (rules C1–C7).

use std::time::Duration;

use super::{COOLDOWN, Fake, Given, H, Row, abs, run};
use crate::event::Change;
use crate::planner::MAX_WAIT;

const MS: Duration = Duration::from_millis(1);

#[test]
fn cooldown() {
    run(&[
        Row {
            rule: "C1 a changed file waits for the cooldown",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.touched("a");
                h.advance(COOLDOWN - MS);
            },
            then: &[],
        },
        Row {
            rule: "C1 a changed file is uploaded once it was quiet for the cooldown",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.touched("a");
                h.advance(COOLDOWN);
            },
            then: &["upload a"],
        },
        Row {
            rule: "C1 an event inside the cooldown is not dropped: it starts the cooldown again",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.touched("a");
                h.advance(COOLDOWN / 2);
                h.touched("a");
                h.advance(COOLDOWN / 2 + MS);
            },
            then: &[],
        },
        Row {
            rule: "C1 ... and the file goes up once it is quiet after the last event",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.touched("a");
                h.advance(COOLDOWN / 2);
                h.touched("a");
                h.advance(COOLDOWN);
            },
            then: &["upload a"],
        },
        Row {
            rule: "C2 a file that never goes quiet is uploaded after a minute anyway",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                let step = COOLDOWN / 2;
                let mut waited = Duration::ZERO;
                while waited < MAX_WAIT {
                    h.touched("a");
                    h.advance(step);
                    waited += step;
                }
            },
            then: &["upload a"],
        },
        Row {
            rule: "C1 a touched file whose bytes the journal has is not sent",
            given: || Given::new().synced("a", 3, 100),
            when: |h| {
                h.changed("a");
            },
            then: &[],
        },
    ]);
}

#[test]
fn new_directories() {
    run(&[
        Row {
            rule: "C3 a new directory is walked: files made before its watch existed go up",
            given: || Given::new().file("d/x", 1, 100).file("d/e/y", 2, 100),
            when: |h| {
                h.change(Change::DirAppeared(abs("d")));
                h.quiet();
            },
            then: &["upload d/e/y", "upload d/x"],
        },
        Row {
            rule: "C3 with --no-recursive only the top level is synced",
            given: || Given::new().with(|r| r.selection.recursive = false).file("top", 1, 100).file("d/x", 1, 100),
            when: |h| {
                h.change(Change::DirAppeared(abs("d")));
                h.touched("d/x");
                h.changed("top");
            },
            then: &["upload top"],
        },
    ]);
}

#[test]
fn moves() {
    run(&[
        Row {
            rule: "C4 a move into the tree is new files (a directory is walked)",
            given: || Given::new().file("in/a", 1, 100).file("in/b", 2, 100),
            when: |h| {
                h.change(Change::MovedIn(abs("in")));
                h.advance(super::super::changes::MOVE_PAIRING);
                h.quiet();
            },
            then: &["upload in/a", "upload in/b"],
        },
        Row {
            rule: "C4 a move out of the tree is a removal (with --delete, a delete)",
            given: || Given::deleting().journal("out", 1, 100),
            when: |h| {
                h.change(Change::MovedOut(abs("out")));
                h.advance(super::super::changes::MOVE_PAIRING);
                h.quiet();
            },
            then: &["delete out"],
        },
        Row {
            rule: "C4 the two halves of a rename are one rename, not a removal and a new file",
            given: || Given::deleting().file("new", 1, 100).journal("old", 1, 100),
            when: |h| {
                h.change(Change::MovedOut(abs("old")));
                h.change(Change::MovedIn(abs("new")));
                h.change(Change::Renamed { from: abs("old"), to: abs("new") });
                h.advance(super::super::changes::MOVE_PAIRING);
                h.quiet();
            },
            then: &["rename old -> new"],
        },
    ]);
}

#[test]
fn renames() {
    run(&[
        Row {
            rule: "C5 with --delete a rename of a synced file is one remote rename",
            given: || Given::deleting().file("b", 1, 100).journal("a", 1, 100),
            when: |h| h.change(Change::Renamed { from: abs("a"), to: abs("b") }),
            then: &["rename a -> b"],
        },
        Row {
            rule: "C5 a directory rename is one remote rename too",
            given: || Given::deleting().file("e/x", 1, 100).journal("d/x", 1, 100),
            when: |h| h.change(Change::Renamed { from: abs("d"), to: abs("e") }),
            then: &["rename d -> e"],
        },
        Row {
            rule: "C5 without --delete a rename uploads the new name and leaves the old one",
            given: || Given::new().synced("keep", 1, 100).file("b", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                h.quiet();
            },
            then: &["upload b"],
        },
        Row {
            rule: "C5 a rename of a file in its cooldown is a delete plus an upload",
            given: || Given::deleting().file("b", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.touched("a");
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                h.quiet();
            },
            then: &["delete a", "upload b"],
        },
        Row {
            rule: "C5 a rename of a file the server does not have is an upload",
            given: || Given::deleting().file("b", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                h.quiet();
            },
            then: &["upload b"],
        },
        Row {
            rule: "C5 a rename onto a synced name is a delete plus an upload",
            given: || Given::deleting().synced("b", 9, 50).journal("a", 1, 100),
            when: |h| {
                h.fs.put("b", Fake::File { len: 1, mtime: 100 });
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                h.quiet();
            },
            then: &["delete a", "upload b"],
        },
        Row {
            rule: "C6 a rename to an excluded name is the removal of the old one",
            given: || Given::new().delete().exclude("*.tmp").synced("keep", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a"), to: abs("a.tmp") });
                h.quiet();
            },
            then: &["delete a"],
        },
        Row {
            rule: "C6 a rename from an excluded name is a new file",
            given: || Given::new().delete().exclude("*.tmp").synced("keep", 1, 100).file("a", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a.tmp"), to: abs("a") });
                h.quiet();
            },
            then: &["upload a"],
        },
    ]);
}

#[test]
fn deletes() {
    run(&[
        Row {
            rule: "C5 without --delete a removal changes nothing on the server",
            given: || Given::new().synced("keep", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.changed("a");
            },
            then: &[],
        },
        Row {
            rule: "C5 with --delete a removed file is deleted",
            given: || Given::deleting().journal("a", 1, 100),
            when: |h| {
                h.changed("a");
            },
            then: &["delete a"],
        },
        Row {
            rule: "C5 with --delete a removed directory deletes every file synced below it",
            given: || Given::deleting().journal("d/a", 1, 100).journal("d/e/b", 1, 100),
            when: |h| {
                h.changed("d");
            },
            then: &["delete d/a", "delete d/e/b"],
        },
        Row {
            rule: "C6 a directory swapped for a link is gone: what was below it is deleted, nothing is followed",
            given: || Given::deleting().journal("d/a", 1, 100).put("d", Fake::Link),
            when: |h| {
                h.changed("d/a");
            },
            then: &["delete d/a"],
        },
    ]);
}

#[test]
fn skipped() {
    run(&[
        Row {
            rule: "C6 a symbolic link is never uploaded",
            given: || Given::new().put("l", Fake::Link),
            when: |h| {
                h.changed("l");
            },
            then: &[],
        },
        Row {
            rule: "C6 a FIFO is never uploaded",
            given: || Given::new().put("p", Fake::Fifo),
            when: |h| {
                h.changed("p");
            },
            then: &[],
        },
        Row {
            rule: "C6 an unreadable path is skipped",
            given: || Given::new().put("u", Fake::Unreadable),
            when: |h| {
                h.changed("u");
            },
            then: &[],
        },
        Row {
            rule: "C6 an excluded path is skipped (editor files are excluded by default)",
            given: || Given::new().exclude("*.log").file("a.log", 1, 100).file(".a.swp", 1, 100),
            when: |h| {
                h.touched("a.log");
                h.changed(".a.swp");
            },
            then: &[],
        },
        Row {
            rule: "C6 a name with a line break is skipped",
            given: || Given::new().file("a\nb", 1, 100),
            when: |h| {
                h.changed("a\nb");
            },
            then: &[],
        },
        Row {
            rule: "C6 a walk skips links and special files, and enters no excluded directory",
            given: || {
                Given::new().exclude("cache").file("d/a", 1, 100).put("d/l", Fake::Link).put("d/p", Fake::Fifo).file(
                    "d/cache/x",
                    1,
                    100,
                )
            },
            when: |h| {
                h.change(Change::DirAppeared(abs("d")));
                h.quiet();
            },
            then: &["upload d/a"],
        },
    ]);
}

#[test]
fn scope_at_dispatch() {
    run(&[
        Row {
            rule: "C6 an upload queued before an exclude was added (SIGHUP) never leaves",
            given: || Given::new().file("a.log", 1, 100).file("b", 1, 100),
            when: |h| {
                h.touched("a.log");
                h.changed("b");
                h.exclude_now("*.log");
            },
            then: &["upload b"],
        },
        Row {
            rule: "C6 a rename queued before its new name was excluded becomes the delete of the old name",
            given: || Given::deleting().file("b.log", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a"), to: abs("b.log") });
                h.exclude_now("*.log");
            },
            then: &["delete a"],
        },
        Row {
            rule: "C6 a rename queued before its old name was excluded becomes the upload of the new name",
            given: || Given::deleting().file("b", 1, 100).journal("a.log", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a.log"), to: abs("b") });
                h.exclude_now("*.log");
            },
            then: &["upload b"],
        },
    ]);
}

#[test]
fn includes() {
    run(&[
        Row {
            rule: "C7 with --include only matching files are synced",
            given: || Given::new().globs(&[], &["*.pdf"]).file("a.pdf", 1, 100).file("a.txt", 1, 100),
            when: |h| {
                h.touched("a.pdf");
                h.changed("a.txt");
            },
            then: &["upload a.pdf"],
        },
        Row {
            rule: "C7 a matching directory includes everything below it",
            given: || Given::new().globs(&[], &["scans"]).file("scans/2026/x.tif", 1, 100).file("other/y", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &["upload scans/2026/x.tif"],
        },
        Row {
            rule: "C7 excludes win over includes",
            given: || Given::new().globs(&["*.tmp"], &["scans"]).file("scans/x.tmp", 1, 100).file("scans/y", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &["upload scans/y"],
        },
        Row {
            rule: "C7 a directory nothing below which can match is not walked",
            given: || {
                Given::new()
                    .globs(&[], &["in/*.pdf"])
                    .file("in/a.pdf", 1, 100)
                    .file("out/b.pdf", 1, 100)
                    .put("out", Fake::Unreadable)
            },
            when: |h| {
                h.reconcile();
                assert!(!h.p.skipped.iter().any(|s| s.starts_with("/w/out")), "an unmatchable directory was read");
            },
            then: &["upload in/a.pdf"],
        },
        Row {
            rule: "C7 an upload queued before an --include was added (SIGHUP) that it does not match never leaves",
            given: || Given::new().file("a.pdf", 1, 100).file("a.txt", 1, 100),
            when: |h| {
                h.reconcile();
                h.globs_now(&[], &["*.pdf"]);
            },
            then: &["upload a.pdf"],
        },
    ]);
}

/// The harness itself: `H::jobs` hands out what a worker would get, once.
#[test]
fn jobs_are_handed_out_once() {
    let mut h: H = Given::new().file("a", 1, 100).start();
    h.changed("a");
    assert_eq!(h.jobs(), ["upload a"]);
    assert!(h.jobs().is_empty());
}
