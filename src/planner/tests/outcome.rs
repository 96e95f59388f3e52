//! What each outcome changes (rules O1–O4).

use std::time::{Duration, SystemTime};

use super::{Fake, Fs, Given, H, Row, abs, at, rel, run};
use crate::event::{Change, Done};
use crate::ftp::{Failure, Kind};
use crate::journal::mtime_ns;
use crate::localfs::Stamp;
use crate::planner::outcome::racy_safe_mtime;
use crate::planner::retry::RELOG;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

/// The stamp of `a` as the rows give it (3 bytes, mtime 100).
fn stamp_a() -> Stamp {
    Stamp { len: 3, mtime: Some(at(100)) }
}

/// `a` uploading, as planned.
fn uploading() -> H {
    let mut h = Given::new().file("a", 3, 100).file("b", 1, 100).start();
    h.changed("a");
    assert_eq!(h.jobs(), ["upload a"]);
    h
}

#[test]
fn changing() {
    run(&[
        Row {
            rule: "O1 a copy that changed while it was read is not published: the file waits for its cooldown",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Changed, "a changed while it was read");
                assert!(h.jobs().is_empty(), "tried again before the cooldown");
                h.quiet();
            },
            then: &["upload a"],
        },
        Row {
            rule: "O1 without --publish-changing such a copy is never published, however often",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                for _ in 0..3 {
                    h.send("a");
                    h.fail("upload a", Kind::Changed, "changed");
                }
                h.quiet();
            },
            then: &["upload a"],
        },
        Row {
            rule: "O1 with --publish-changing the second such copy is published as read, at once",
            given: || Given::new().with(|r| r.publish_changing = true).file("a", 3, 100),
            when: |h| {
                for _ in 0..2 {
                    h.send("a");
                    h.fail("upload a", Kind::Changed, "changed");
                }
            },
            then: &["upload a (snapshot)"],
        },
    ]);

    // O1 the warning that it will not hold still comes at most every 10 minutes.
    let mut h = Given::new().file("a", 3, 100).start();
    let mut warned = Vec::new();
    for wait in [S, S, S, RELOG] {
        h.advance(wait);
        h.send("a");
        h.fail("upload a", Kind::Changed, "changed");
        warned.push(h.p.changed_streak[&rel("a")].warned.map(|t| t.duration_since(h.t0)));
    }
    assert_eq!(warned[0], None, "warned after the first attempt");
    assert!(warned[1].is_some());
    assert_eq!(warned[2], warned[1], "warned again within 10 minutes");
    assert!(warned[3] > warned[2], "not warned again after 10 minutes");
}

#[test]
fn failures() {
    run(&[
        Row {
            rule: "O2 a failed upload is retried after 1 s",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Transient, "451 try later");
                h.advance(S - MS);
                assert!(h.jobs().is_empty(), "retried before its back-off");
                h.advance(MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "O2 the back-off doubles: 2 s after the second failure",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Transient, "451 try later");
                h.advance(S);
                h.jobs();
                h.fail("upload a", Kind::Transient, "451 try later");
                h.advance(2 * S - MS);
                assert!(h.jobs().is_empty(), "retried before its back-off");
                h.advance(MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "O2 jitter spreads the delay from 75 % (the random source gives 0) ...",
            given: || Given::new().random(&[0]).file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Refused, "553 no");
                h.advance(S * 3 / 4 - MS);
                assert!(h.jobs().is_empty());
                h.advance(MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "O2 ... to 125 % (it gives 999)",
            given: || Given::new().random(&[999]).file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Refused, "553 no");
                h.advance(S * 1249 / 1000);
                assert!(h.jobs().is_empty());
                h.advance(MS);
            },
            then: &["upload a"],
        },
        Row {
            rule: "O2 one failing file never blocks the others",
            given: || Given::new().file("a", 3, 100).file("b", 1, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Refused, "553 no");
                h.advance(S);
                h.jobs();
                // Its second failure: 2 s before a's next attempt.
                h.fail("upload a", Kind::Refused, "553 no");
                h.changed("b");
            },
            then: &["upload b"],
        },
        Row {
            rule: "O2 a file that cannot be read is skipped until it changes again",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fail("upload a", Kind::Local, "a: permission denied");
                h.advance(RELOG);
            },
            then: &[],
        },
        Row {
            rule: "O2 a file that vanished while it was sent is looked at again (with --delete: deleted)",
            given: || Given::deleting().journal("a", 1, 50).file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.fs.remove("a");
                h.fail("upload a", Kind::Vanished, "a is gone");
            },
            then: &["delete a"],
        },
        Row {
            rule: "O2 a copy broken off is resumed (REST) from what the server kept ...",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.finish("upload a", Err(Failure { partial: Some(stamp_a()), ..Failure::new(Kind::Transient, "426") }));
                h.advance(S);
            },
            then: &["upload a (resume)"],
        },
        Row {
            rule: "O2 ... but a file the server has no room for (a full disk, a quota) starts over, and the \
                   temporary copy that fills its disk is removed at once (also when the failed session could not)",
            given: || Given::new().file("a", 3, 100),
            when: |h| {
                h.send("a");
                h.finish("upload a", Err(Failure { partial: Some(stamp_a()), ..Failure::new(Kind::Transient, "426") }));
                h.advance(S);
                assert_eq!(h.jobs(), ["upload a (resume)"]);
                let full = Failure { code: Some(452), no_room: true, ..Failure::new(Kind::Transient, "452 disk full") };
                h.finish("upload a (resume)", Err(full));
                assert_eq!(h.jobs(), ["remove temp a"], "the partial copy stays and keeps the disk full");
                h.succeed("remove temp a");
                h.advance(2 * S);
            },
            then: &["upload a"],
        },
        Row {
            rule: "O3 a rename the server refuses becomes an upload of the new name and a delete of the old",
            given: || Given::deleting().file("b", 1, 100).journal("a", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("a"), to: abs("b") });
                h.jobs();
                h.fail("rename a -> b", Kind::Refused, "550 rename refused");
                h.quiet();
            },
            then: &["delete a", "upload b"],
        },
    ]);

    // O2 --once gives a file 5 attempts, then reports it.
    let mut h = Given::new().with(|r| r.once = true).file("a", 3, 100).start();
    h.changed("a");
    for attempt in 1..=5 {
        assert_eq!(h.jobs(), ["upload a"], "attempt {attempt}");
        h.fail("upload a", Kind::Refused, "553 no");
        h.advance(Duration::from_secs(60));
    }
    assert!(h.jobs().is_empty());
    assert_eq!(h.p.failed_for_good(), [("a".to_string(), "553 no".to_string())]);
    assert!(h.p.is_done());
}

#[test]
fn server_down() {
    // O2 a lost connection: the job goes back first in line and the whole
    // server backs off; then one job at a time probes it.
    let mut h = uploading();
    h.changed("b");
    assert_eq!(h.jobs(), ["upload b"]);
    h.fail("upload a", Kind::Connection, "connection refused");
    h.fail("upload b", Kind::Connection, "connection refused");
    assert!(h.jobs().is_empty(), "a job started while the server backs off");
    h.advance(S);
    assert_eq!(h.jobs(), ["upload b"], "not one probe");
    h.succeed("upload b");
    assert_eq!(h.jobs(), ["upload a"], "the server is back: everything goes");

    // O2 the server's back-off doubles to at most a minute.
    let mut h = uploading();
    let mut waits = Vec::new();
    for _ in 0..8 {
        h.fail("upload a", Kind::Connection, "connection refused");
        let start = h.now;
        while h.jobs().is_empty() {
            h.advance(Duration::from_millis(250));
        }
        waits.push(h.now.duration_since(start).as_secs());
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);

    // O2 --once: a server unreachable 5 times in a row gives up everything.
    let mut h =
        Given::new().with(|r| r.once = true).workers(1).file("a", 3, 100).file("b", 1, 100).file("c", 1, 100).start();
    h.reconcile();
    assert_eq!(h.jobs(), ["upload a", "upload b"]);
    h.fail("upload b", Kind::Connection, "timed out");
    for _ in 0..4 {
        h.advance(Duration::from_secs(60));
        h.fail("upload a", Kind::Connection, "timed out");
        h.advance(Duration::from_secs(60));
        h.jobs();
    }
    let failed: Vec<&str> = h.p.failed_for_good().iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, ["a", "b", "c"]);
    assert!(h.p.is_done());
}

#[test]
fn success() {
    // O4 a verified upload: the journal has its size, mtime and fingerprint.
    let mut h = uploading();
    h.succeed("upload a");
    let s = h.p.synced[&rel("a")];
    assert_eq!((s.size, s.mtime_ns, s.hash), (3, mtime_ns(Some(at(100))), Some([1; 32])));
    assert_eq!(h.p.uploaded(), (1, 3));
    h.changed("a");
    assert!(h.jobs().is_empty(), "sent again though nothing changed");

    // O4 an mtime as recent as the read is not trusted: the next look compares fingerprints.
    let mut h = Given::new().file("a", 3, 2_000_000_000).start();
    h.send("a");
    h.succeed("upload a");
    assert_eq!(h.p.synced[&rel("a")].mtime_ns, 0);
    h.changed("a");
    assert_eq!(h.jobs(), ["upload a (compare)"]);
    h.finish("upload a (compare)", Ok(Done::Unchanged(Stamp { len: 3, mtime: Some(at(2_000_000_000)) })));
    assert_eq!(h.p.uploaded(), (1, 3), "a file found unchanged was counted as uploaded");

    run(&[
        Row {
            rule: "O4 a delete removes the remote directory the tool created, once empty",
            given: || Given::deleting().journal("d/a", 1, 100).created_dir("/r/d"),
            when: |h| {
                h.send("d/a");
                h.succeed("delete d/a");
            },
            then: &["rmdir /r/d"],
        },
        Row {
            rule: "O4 ... but not one it did not create",
            given: || Given::deleting().journal("d/a", 1, 100),
            when: |h| {
                h.send("d/a");
                h.succeed("delete d/a");
            },
            then: &[],
        },
        Row {
            rule: "O4 ... nor one that still exists locally",
            given: || Given::deleting().journal("d/a", 1, 100).created_dir("/r/d").put("d", Fake::Dir),
            when: |h| {
                h.send("d/a");
                h.succeed("delete d/a");
            },
            then: &[],
        },
        Row {
            rule: "O4 a rename moves what the journal knows: nothing is sent again",
            given: || Given::deleting().file("e/x", 1, 100).journal("d/x", 1, 100),
            when: |h| {
                h.change(Change::Renamed { from: abs("d"), to: abs("e") });
                h.jobs();
                h.succeed("rename d -> e");
                assert_eq!(h.journal(), ["e/x", "keep"]);
                h.quiet();
            },
            then: &[],
        },
    ]);
}

fn ns_none() -> i64 {
    mtime_ns(None)
}

#[test]
fn racy_mtime() {
    let now = at(2_000_000_000);
    let ns = |t: SystemTime| mtime_ns(Some(t));
    let table: &[(&str, Stamp, Duration, i64)] = &[
        ("modified during the read", Stamp { len: 1, mtime: Some(now - MS) }, S, 0),
        ("an hour old", Stamp { len: 1, mtime: Some(now - 3600 * S) }, S, ns(now - 3600 * S)),
        ("whole seconds: two seconds count as during the read", Stamp { len: 1, mtime: Some(now - S) }, MS, 0),
        ("no mtime", Stamp { len: 1, mtime: None }, S, ns_none()),
    ];
    for (what, stamp, elapsed, want) in table {
        assert_eq!(racy_safe_mtime(*stamp, *elapsed, now), *want, "{what}");
    }
}

#[test]
fn hook_notices() {
    use crate::planner::Notice;
    // O5: the hooks hear of a verified upload, of a file's first failure
    // (not of each retry), of a local failure and of a --once give-up.
    let mut h = Given::new().file("a", 3, 100).file("b", 1, 100).file("d", 4, 100).start();
    h.send("a");
    h.succeed("upload a");
    assert_eq!(h.p.take_notices(), [Notice::Uploaded { rel: rel("a"), size: 3 }]);
    h.send("b");
    h.fail("upload b", Kind::Refused, "550 no");
    let first = h.p.take_notices();
    assert_eq!(first, [Notice::Failed { rel: rel("b"), size: Some(1), error: "550 no".into() }]);
    h.advance(2 * S);
    assert_eq!(h.jobs(), ["upload b"]);
    h.fail("upload b", Kind::Refused, "550 no");
    assert!(h.p.take_notices().is_empty(), "told again on a retry");
    h.send("d");
    h.fail("upload d", Kind::Local, "d: permission denied");
    assert!(matches!(h.p.take_notices()[..], [Notice::Failed { .. }]), "a local failure is not told");

    let mut h = Given::new().with(|r| r.once = true).file("c", 2, 100).start();
    h.send("c");
    let mut told = Vec::new();
    for _ in 0..5 {
        h.fail("upload c", Kind::Transient, "451 later");
        told.extend(h.p.take_notices());
        h.advance(400 * S);
        h.jobs();
    }
    assert_eq!(told.len(), 2, "first failure and the give-up: {told:?}");
}

#[test]
fn hand_off() {
    // O6: move mode hands a file off only after its verified upload, in the
    // state uploaded; one changed meanwhile is sent again; the journal forgets
    // what went; a start in move mode is no first sync by listings.
    let mut h = Given::new().with(|r| r.hand_off = true).file("a", 3, 100).file("b", 1, 100).start();
    assert!(!h.p.first_sync(), "move mode compared the tree with the server's listings");
    h.send("a");
    assert!(h.handed.is_empty(), "handed off before the upload ended");
    h.fail("upload a", Kind::Transient, "451 later");
    assert!(h.handed.is_empty(), "handed off after a failed upload");
    h.advance(2 * S);
    assert_eq!(h.jobs(), ["upload a"]);
    h.succeed("upload a");
    assert_eq!(h.handed, ["a"]);
    assert!(!h.fs.entries.contains_key("a"), "a was not removed");
    assert_eq!(h.p.synced_count(), 0, "the journal still holds a file handed off");

    // b is rewritten between its upload and its hand-off: sent again.
    h.send("b");
    h.fs.put("b", Fake::File { len: 2, mtime: 101 });
    h.succeed("upload b");
    assert_eq!(h.handed, ["a", "b"]);
    assert!(h.fs.entries.contains_key("b"), "the rewritten b was removed");
    h.quiet();
    assert_eq!(h.jobs(), ["upload b"]);
    h.succeed("upload b");
    assert!(!h.fs.entries.contains_key("b"), "the new b was not handed off");
}

#[test]
fn failed_hand_off_is_tried_again_after_a_minute_then_less_often() {
    // O6: a hand-off that fails (the archive disk away) is tried again on a
    // timer, not only at the next reconcile: after 1 min, then 2 min, ...
    let mut h = Given::new().with(|r| r.hand_off = true).file("a", 3, 100).start();
    h.handoff_error = Some("archive disk gone".into());
    h.send("a");
    h.succeed("upload a");
    assert_eq!(h.handed, ["a"]);
    h.advance(59 * S);
    assert_eq!(h.handed, ["a"], "tried again before a minute passed");
    h.advance(S);
    assert_eq!(h.handed, ["a", "a"], "not tried again after a minute");
    h.advance(119 * S);
    assert_eq!(h.handed.len(), 2, "the wait did not double");
    h.advance(S);
    assert_eq!(h.handed.len(), 3, "not tried again after two more minutes");
    h.handoff_error = None;
    h.advance(4 * 60 * S);
    assert_eq!(h.handed.len(), 4);
    assert!(!h.fs.entries.contains_key("a"), "a was not removed once the hand-off worked");
    assert!(h.p.next_deadline().is_none_or(|d| d > h.now + 3600 * S), "a retry is still scheduled");
}

#[test]
fn an_answer_about_an_older_hand_off_changes_nothing() {
    // O6: with hand-offs on their own thread, the answer about a version
    // uploaded before may come after a newer version's upload: it must not
    // clear the newer hand-off (its journal row) nor send the file again.
    let mut h = Given::new().with(|r| r.hand_off = true).file("a", 3, 100).start();
    h.handoff_error = Some("archive disk gone".into());
    h.send("a");
    h.succeed("upload a");
    let old = (Fs::meta(3, 100).stamp(), [0u8; 32]);
    h.fs.put("a", Fake::File { len: 4, mtime: 101 });
    h.touched("a");
    h.quiet();
    assert_eq!(h.jobs(), ["upload a"]);
    h.succeed("upload a");
    assert_eq!(h.handed, ["a", "a"]);
    h.p.handed_off(rel("a"), old, Ok(crate::localfs::HandedOff::Changed), h.now);
    assert!(h.p.batch_mut().has_handoffs(), "the stale answer cleared the newer hand-off's journal row");
    h.quiet();
    assert!(h.jobs().is_empty(), "the stale answer sent the file again");
    h.handoff_error = None;
    h.advance(61 * S);
    assert!(!h.fs.entries.contains_key("a"), "the newer version's hand-off was lost");
}
