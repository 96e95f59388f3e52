//! `--last GLOB`: a trigger file is published only after every other pending
//! file of its directory, so a receiver waiting for it never sees it before
//! the data.

use std::time::Duration;

use crate::support::Test;

#[test]
fn trigger_file_is_renamed_into_place_after_every_data_file_of_its_directory() {
    let d = Test::new().cooldown(Some("2s")).args(["--last", "*.done", "--parallel", "4"]).start();
    // The trigger is written first: its cooldown ends before the data's.
    d.write("edi/out/batch.done", b"");
    let names: Vec<String> = (0..200).map(|i| format!("edi/out/order{i:03}.xml")).collect();
    for n in &names {
        d.write(n, n.as_bytes());
    }
    let renamed_to = || d.renamed_to();
    d.wait_until_for(Duration::from_secs(60), "all 201 files published", || renamed_to().len() >= 201);
    let order = renamed_to();
    let done_at = order.iter().position(|p| p == "edi/out/batch.done").expect("the trigger was published");
    for n in &names {
        let at = order.iter().position(|p| p == n).unwrap_or_else(|| panic!("{n} was not published"));
        assert!(at < done_at, "{n} was renamed into place after the trigger (at {at}, the trigger at {done_at})");
    }
    d.wait_for_log("edi/out/batch.done waits for the other files of its directory (--last)");
}

#[test]
fn check_reports_the_trigger_globs() {
    let out = Test::new().subcommand("check").args(["--last", "*.done", "--last", "*.md5"]).run();
    out.assert_exit(0);
    let line = "published last:  *.done, *.md5 (after the other files of their directory)";
    assert!(out.stdout.contains(line), "no {line:?} in\n{}", out.stdout);
}
