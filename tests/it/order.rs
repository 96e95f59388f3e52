//! `--order`: with several connections, the files of a directory are still
//! renamed into place in the order asked for.

use std::time::{Duration, UNIX_EPOCH};

use crate::support::Test;
use crate::support::control::subcommand;

#[test]
fn order_mtime_with_four_connections_renames_the_oldest_first() {
    let d = Test::new().args(["--order", "mtime", "--parallel", "4", "--log-level", "debug"]).start();
    // Paused, so that every file is ready before the first one starts.
    d.signal(libc::SIGUSR2);
    d.wait_until("status shows the pause", || subcommand(&d, &["status"]).1.contains("paused: yes"));
    // Written newest first: arrival order is the reverse of mtime order.
    let names: Vec<String> = (0..16).map(|i| format!("cam/shot{i:02}.jpg")).collect();
    for (i, n) in names.iter().enumerate() {
        let p = d.write(n, &vec![b'x'; 4096 + i]);
        let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000 - 60 * i as u64);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
    }
    for n in &names {
        d.wait_for_log(&format!("queued upload of {n}"));
    }
    d.signal(libc::SIGUSR2);
    let renamed_to = || d.renamed_to();
    d.wait_until_for(Duration::from_secs(60), "all 16 files published", || renamed_to().len() >= 16);
    let mut oldest_first = names.clone();
    oldest_first.reverse();
    assert_eq!(renamed_to(), oldest_first, "not renamed into place oldest first");
}

#[test]
fn check_reports_the_order() {
    let out = Test::new().subcommand("check").args(["--order", "size"]).run();
    out.assert_exit(0);
    let line = "order:           size (files of a directory published one after another)";
    assert!(out.stdout.contains(line), "no {line:?} in\n{}", out.stdout);
}
