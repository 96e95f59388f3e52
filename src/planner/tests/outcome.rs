//! What each outcome changes (rules O1–O4).

use std::time::{Duration, SystemTime};

use super::{Fake, Given, H, Row, abs, at, rel, run};
use crate::event::{Change, Done};
use crate::ftp::Kind;
use crate::journal::mtime_ns;
use crate::localfs::Stamp;
use crate::planner::outcome::racy_safe_mtime;
use crate::planner::retry::RELOG;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

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
