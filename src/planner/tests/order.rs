//! `--order`: the files of a directory are published one after another, in
//! the order asked for (rule K2).

use super::{Given, Row, run};
use crate::config::Order;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn one_directory_in_order() {
    run(&[
        Row {
            rule: "K2 --order name: one file of a directory at a time, first by name; directories in parallel",
            given: || {
                Given::new()
                    .with(|r| r.order = Some(Order::Name))
                    .workers(4)
                    .file("d/c", 1, 100)
                    .file("d/a", 1, 100)
                    .file("d/b", 1, 100)
                    .file("e/x", 1, 100)
            },
            when: |h| {
                for f in ["d/c", "d/b", "e/x", "d/a"] {
                    h.touched(f);
                }
                h.quiet();
                assert_eq!(sorted(h.jobs()), ["upload d/a", "upload e/x"]);
                h.succeed("upload d/a");
                assert_eq!(h.jobs(), ["upload d/b"]);
                h.succeed("upload d/b");
            },
            then: &["upload d/c"],
        },
        Row {
            rule: "K2 --order mtime: the oldest first, even if it went quiet last",
            given: || {
                Given::new()
                    .with(|r| r.order = Some(Order::Mtime))
                    .workers(4)
                    .file("d/new", 1, 300)
                    .file("d/old", 1, 100)
            },
            when: |h| {
                h.touched("d/new");
                h.touched("d/old");
                h.quiet();
                assert_eq!(h.jobs(), ["upload d/old"]);
                h.succeed("upload d/old");
            },
            then: &["upload d/new"],
        },
        Row {
            rule: "K2 without --order the ready files of a directory go over all connections at once",
            given: || Given::new().workers(4).file("d/a", 1, 300).file("d/b", 1, 100),
            when: |h| {
                h.touched("d/a");
                h.touched("d/b");
                h.quiet();
                assert_eq!(sorted(h.jobs()), ["upload d/a", "upload d/b"]);
                h.all_succeed();
            },
            then: &[],
        },
    ]);
}
