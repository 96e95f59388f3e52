//! `--last`: trigger files wait for the rest of their directory (rule K1).

use super::{Given, Row, run};
use crate::ftp::Kind;

fn last() -> Given {
    Given::new().with(|r| r.last = crate::scope::Globs::new(&["*.done".to_string()], "--last").unwrap())
}

#[test]
fn trigger_waits() {
    run(&[
        Row {
            rule: "K1 a trigger quiet first waits for the data files cooling down in its directory",
            given: || last().workers(4).file("d/batch.done", 0, 100).file("d/a", 1, 100).file("d/b", 1, 100),
            when: |h| {
                h.changed("d/batch.done");
                h.touched("d/a");
                h.touched("d/b");
                assert!(h.jobs().is_empty(), "the trigger went before its data");
                h.quiet();
                assert_eq!(h.jobs(), ["upload d/a", "upload d/b"]);
                h.succeed("upload d/a");
                assert!(h.jobs().is_empty(), "the trigger went while d/b runs");
                h.succeed("upload d/b");
            },
            then: &["upload d/batch.done"],
        },
        Row {
            rule: "K1 a trigger waits for a data file's retry, and does not wait for other directories",
            given: || {
                last()
                    .workers(4)
                    .file("d/batch.done", 0, 100)
                    .file("d/a", 1, 100)
                    .file("e/x", 1, 100)
                    .file("e/x.done", 0, 100)
            },
            when: |h| {
                h.touched("d/a");
                h.touched("e/x");
                h.quiet();
                assert_eq!(h.jobs(), ["upload d/a", "upload e/x"]);
                h.touched("d/batch.done");
                h.fail("upload d/a", Kind::Transient, "451 try later");
                h.advance(std::time::Duration::from_millis(900));
                let jobs = h.jobs();
                assert!(jobs.is_empty(), "the trigger went while its data file waits for a retry: {jobs:?}");
                h.succeed("upload e/x");
                h.changed("e/x.done");
                // The retry of d/a is due by now too; d's trigger still waits.
                assert_eq!(h.jobs(), ["upload e/x.done", "upload d/a"]);
                h.succeed("upload e/x.done");
                assert!(h.jobs().is_empty(), "the trigger went while its data file runs");
                h.succeed("upload d/a");
            },
            then: &["upload d/batch.done"],
        },
        Row {
            rule: "K1 triggers do not wait for one another, nor for files below their directory",
            given: || last().workers(4).file("a.done", 0, 100).file("b.done", 0, 100).file("sub/c", 1, 100),
            when: |h| {
                h.touched("sub/c");
                h.changed("a.done");
                h.changed("b.done");
            },
            then: &["upload sub/c", "upload a.done", "upload b.done"],
        },
        Row {
            rule: "K1 --once: a trigger whose data file failed for good is not published",
            given: || last().with(|r| r.once = true).workers(4).file("d/batch.done", 0, 100).file("d/a", 1, 100),
            when: |h| {
                h.touched("d/batch.done");
                h.touched("d/a");
                h.quiet();
                assert_eq!(h.jobs(), ["upload d/a"]);
                for _ in 0..5 {
                    h.fail("upload d/a", Kind::Transient, "451 try later");
                    h.advance(std::time::Duration::from_secs(60));
                    h.jobs();
                }
                assert!(
                    h.p.failed_for_good().iter().any(|(n, _)| n.contains("batch.done")),
                    "{:?}",
                    h.p.failed_for_good()
                );
                assert!(h.p.is_done());
            },
            then: &[],
        },
    ]);
}
