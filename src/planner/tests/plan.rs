//! What a quiet path needs, the reconcile and its guards, old kinds in the
//! way, and what a crash left (rules P1–P6).

use std::path::PathBuf;

use super::{Fake, Given, H, Row, abs, rel, run};
use crate::event::Change;
use crate::journal::mtime_ns;
use crate::mounts::{Mount, Snapshot};
use crate::planner::{Local, Root};

#[test]
fn by_content() {
    run(&[
        Row {
            rule: "P1 size and mtime as in the journal: nothing is read or sent",
            given: || Given::new().synced("a", 3, 100),
            when: |h| {
                h.changed("a");
            },
            then: &[],
        },
        Row {
            rule: "P1 same size, new mtime: the worker compares fingerprints first",
            given: || Given::new().journal("a", 3, 100).file("a", 3, 200),
            when: |h| {
                h.changed("a");
            },
            then: &["upload a (compare)"],
        },
        Row {
            rule: "P1 another size: uploaded",
            given: || Given::new().journal("a", 3, 100).file("a", 4, 100),
            when: |h| {
                h.changed("a");
            },
            then: &["upload a"],
        },
        Row {
            rule: "P1 a new file: uploaded",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.changed("a");
            },
            then: &["upload a"],
        },
    ]);
}

#[test]
fn reconcile() {
    run(&[
        Row {
            rule: "P2 a restart with nothing changed sends nothing",
            given: || Given::new().delete().synced("a", 1, 100).synced("d/b", 2, 100),
            when: |h| assert_eq!(h.reconcile(), 0),
            then: &[],
        },
        Row {
            rule: "P2 what is new or changed while the daemon was down is queued",
            given: || Given::new().synced("a", 1, 100).journal("b", 2, 100).file("b", 3, 100).file("c", 1, 100),
            when: |h| assert_eq!(h.reconcile(), 2),
            then: &["upload b", "upload c"],
        },
        Row {
            rule: "P2 with --delete what is gone is deleted",
            given: || Given::new().delete().synced("a", 1, 100).synced("b", 1, 100).journal("c", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &["delete c"],
        },
        Row {
            rule: "P2 without --delete what is gone stays on the server",
            given: || Given::new().synced("a", 1, 100).journal("c", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &[],
        },
        Row {
            rule: "P2 the files below an unreadable directory are not gone",
            given: || Given::new().delete().synced("a", 1, 100).journal("u/x", 1, 100).put("u", Fake::Unreadable),
            when: |h| {
                h.reconcile();
            },
            then: &[],
        },
        Row {
            rule: "P2 an overflow watches the tree anew and reconciles it",
            given: || Given::new().file("a", 1, 100),
            when: |h| {
                h.change(Change::Rescan);
                assert_eq!(h.rescans, [crate::planner::Rescan::Overflow]);
            },
            then: &["upload a"],
        },
        Row {
            rule: "P3 deleting half of the synced files is within --max-delete 50",
            given: || Given::new().delete().synced("a", 1, 100).journal("b", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &["delete b"],
        },
        Row {
            rule: "P3 deleting more than --max-delete percent holds every delete",
            given: || Given::new().delete().synced("a", 1, 100).journal("b", 1, 100).journal("c", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &[],
        },
        Row {
            rule: "P3 --max-delete 100 lets them all go",
            given: || {
                Given::new().delete().max_delete(100).synced("a", 1, 100).journal("b", 1, 100).journal("c", 1, 100)
            },
            when: |h| {
                h.reconcile();
            },
            then: &["delete b", "delete c"],
        },
        Row {
            rule: "P2 a synced file that is excluded now is not deleted as gone",
            given: || Given::new().delete().exclude("*.log").synced("a", 1, 100).journal("b.log", 1, 100),
            when: |h| {
                h.reconcile();
            },
            then: &[],
        },
    ]);
}

#[test]
fn root_guard() {
    run(&[
        Row {
            rule: "P4 an empty watch directory while files are synced deletes nothing",
            given: || Given::new().delete().journal("a", 1, 100).journal("b", 1, 100),
            when: |h| {
                h.changed("a");
                h.reconcile();
            },
            then: &[],
        },
        Row {
            rule: "P4 a watch directory that vanished deletes nothing",
            given: || Given::new().delete().synced("a", 1, 100).journal("b", 1, 100),
            when: |h| {
                h.fs.root_gone = true;
                h.touched("");
                h.changed("b");
            },
            then: &[],
        },
        Row {
            rule: "P4 deletes queued before the watch directory vanished are dropped",
            given: || Given::new().delete().synced("a", 1, 100).journal("b", 1, 100),
            when: |h| {
                h.changed("b");
                h.fs.root_gone = true;
                h.touched("");
            },
            then: &[],
        },
        Row {
            rule: "P4 once the watch directory is back it is reconciled, and removals seen meanwhile wait for that",
            given: || Given::new().delete().max_delete(100).synced("a", 1, 100).journal("b", 1, 100),
            when: |h| {
                h.fs.root_gone = true;
                h.touched("");
                h.changed("b");
                h.fs.root_gone = false;
                h.advance(crate::planner::root::ROOT_RECHECK);
                assert_eq!(h.rescans, [crate::planner::Rescan::RootBack]);
                assert!(!h.p.root_held());
            },
            then: &["delete b"],
        },
        Row {
            rule: "P4 an empty watch directory is fine while the journal knows nothing",
            given: || Given::new().delete(),
            when: |h| {
                assert!(h.p.root_ok(Root::Empty));
                assert_eq!(h.reconcile(), 0);
            },
            then: &[],
        },
    ]);
}

#[test]
fn mounts() {
    let snapshot = |below: &[(u64, &str)]| Snapshot {
        holding: Some(Mount { id: 1, point: PathBuf::from(super::WATCH), fstype: "ext4".into() }),
        below: below.iter().map(|(id, p)| Mount { id: *id, point: abs(p), fstype: "tmpfs".into() }).collect(),
    };
    let mut h: H = Given::new().delete().synced("a", 1, 100).journal("disk/x", 1, 100).start();
    h.p.mounts_changed(snapshot(&[(7, "disk")]), h.now);
    // P4 the disk below the watch directory is unmounted: its files are not gone.
    h.p.mounts_changed(snapshot(&[]), h.now);
    h.changed("disk/x");
    assert_eq!(h.reconcile(), 0);
    assert!(h.jobs().is_empty(), "a file of an unmounted disk was deleted");
    // Mounted again: a file really gone from it is deleted.
    h.p.mounts_changed(snapshot(&[(8, "disk")]), h.now);
    h.reconcile();
    assert_eq!(h.jobs(), ["delete disk/x"]);

    // P4 the watch directory's own disk is unmounted: every delete is held.
    let mut h: H = Given::new().delete().max_delete(100).synced("a", 1, 100).journal("b", 1, 100).start();
    h.p.mounts_changed(snapshot(&[]), h.now);
    h.p.mounts_changed(Snapshot { holding: None, below: Vec::new() }, h.now);
    assert!(h.p.root_held());
    h.changed("b");
    assert!(h.jobs().is_empty(), "a delete went out while the watch directory's disk was away");
}

#[test]
fn kind_changes() {
    run(&[
        Row {
            rule: "P5 a file where the server has a directory: with --delete its files go first",
            given: || Given::new().delete().journal("d/x", 1, 100).file("d", 5, 100),
            when: |h| {
                h.changed("d");
            },
            then: &["delete d/x"],
        },
        Row {
            rule: "P5 ... then the empty directory, then the file",
            given: || Given::new().delete().journal("d/x", 1, 100).file("d", 5, 100),
            when: |h| {
                h.send("d");
                h.succeed("delete d/x");
                h.jobs();
                h.succeed("rmdir /r/d");
            },
            then: &["upload d"],
        },
        Row {
            rule: "P5 a directory where the server has a file: with --delete the file goes first",
            given: || Given::new().delete().journal("d", 5, 100).file("d/x", 1, 100),
            when: |h| {
                h.changed("d/x");
            },
            then: &["delete d"],
        },
        Row {
            rule: "P5 without --delete the path cannot be published and is skipped",
            given: || Given::new().journal("d/x", 1, 100).file("d", 5, 100),
            when: |h| {
                h.changed("d");
            },
            then: &[],
        },
    ]);
}

#[test]
fn crash_leftovers() {
    let mut h: H = Given::new().workers(4).file("same", 10, 100).file("changed", 11, 200).start();
    let upload = |h: &mut H, path: &str, len: u64, mtime: u64| {
        let local = h.fs.look(path, false, &h.p.rules().selection.clone());
        h.p.resume_upload(rel(path), len, mtime_ns(Some(super::at(mtime))), &local);
    };
    // P6 an upload under way: the file did not change, changed, or is gone.
    upload(&mut h, "same", 10, 100);
    upload(&mut h, "changed", 10, 100);
    upload(&mut h, "gone", 10, 100);
    h.reconcile();
    assert_eq!(
        h.jobs(),
        [
            "aside same restore",
            "aside changed restore",
            "aside gone restore",
            "remove temp gone",
            "upload changed",
            "upload same (resume)",
        ]
    );

    // P6 the journal's queue is planned again; a path gone has its temporary file removed.
    let mut h: H = Given::deleting().file("a", 1, 100).journal("b", 1, 100).start();
    let scope = h.p.rules().selection.clone();
    let leftovers = ["a", "b"].map(|p| (rel(p), h.fs.look(p, true, &scope))).into();
    h.p.resume_leftovers(leftovers, h.now);
    assert_eq!(h.jobs(), ["upload a", "remove temp b", "delete b"]);
    // With --delete an old copy renamed aside of a file gone is dropped, not restored.
    let local = h.fs.look("b", false, &scope);
    assert!(matches!(local, Local::Gone(_)));
    h.p.resume_upload(rel("b"), 1, 0, &local);
    assert_eq!(h.jobs(), ["aside b drop"]);
}

/// A change of the options, as SIGHUP makes it.
type Edit = fn(&mut crate::planner::Rules);

#[test]
fn reload() {
    // P2 SIGHUP reconciles only when what is synced or deleted changed.
    let table: &[(&str, Edit, bool)] = &[
        ("a new exclude", |r| r.selection.globs = super::globs(&["*.log"], &[]), true),
        ("a new include", |r| r.selection.globs = super::globs(&[], &["*.pdf"]), true),
        ("--delete turned on", |r| r.delete = true, true),
        ("another --max-delete", |r| r.max_delete = 10, true),
        ("--publish-changing", |r| r.publish_changing = true, false),
        ("nothing", |_| {}, false),
    ];
    for (what, change, rescan) in table {
        let mut h: H = Given::new().start();
        let mut rules = h.p.rules().clone();
        change(&mut rules);
        assert_eq!(h.p.set_rules(rules, super::COOLDOWN), *rescan, "{what}");
    }
}
