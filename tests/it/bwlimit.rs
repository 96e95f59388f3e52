//! `--bwlimit`: the total upload rate holds within 10 %, and a timetable changes it live,
//! also for a transfer in flight.

use std::time::Duration;

use crate::support::{Daemon, Test, is_upload_line};

const MIB: usize = 1024 * 1024;

/// How long the upload of `rel` took, from its log line (`uploaded REL (SIZE, N ms)`).
fn upload_ms(d: &Daemon, rel: &str) -> u64 {
    d.wait_until_for(Duration::from_secs(60), &format!("the upload of {rel} is logged"), || d.upload_count(rel) > 0);
    let log = d.log();
    let line = log.lines().find(|l| is_upload_line(l, rel)).unwrap();
    let ms = line.rsplit_once(", ").and_then(|(_, t)| t.strip_suffix(" ms)")).unwrap();
    ms.parse().unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

fn timed_upload(rate: &str, size: usize) -> Duration {
    let t = Test::new().args(["--parallel", "1", "--bwlimit", rate]);
    let bytes = pattern(size);
    t.write("big.bin", &bytes);
    let d = t.start();
    let took = Duration::from_millis(upload_ms(&d, "big.bin"));
    assert_eq!(d.remote("big.bin").as_deref(), Some(&bytes[..]));
    took
}

fn assert_within(took: Duration, want: Duration, tolerance: f64) {
    let ratio = took.as_secs_f64() / want.as_secs_f64();
    eprintln!("measured: {took:?} where the limit gives {want:?} ({ratio:.3})");
    assert!(
        (1.0 - tolerance..=1.0 + tolerance).contains(&ratio),
        "took {took:?}, {ratio:.3} of the {want:?} the limit gives"
    );
}

/// The local time of day in seconds, as the daemon sees it.
fn local_second_of_day() -> u32 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let t: libc::time_t = now.try_into().unwrap();
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r writes only into `tm`.
    assert!(!unsafe { libc::localtime_r(&t, &mut tm) }.is_null());
    u32::try_from(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec).unwrap()
}

fn hhmmss(second: u32) -> String {
    let s = second % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A config file for the sandbox's server, with `extra` lines.
fn config_with(t: &crate::support::Sandbox, extra: &str) -> std::path::PathBuf {
    let config = t.tmp().join("job.toml");
    let job = format!(
        "watch-dir = {:?}\nhost = \"127.0.0.1\"\nport = {}\nremote-dir = \"/upload\"\ncooldown = 0\n{extra}",
        t.watch_dir().display().to_string(),
        t.server().port()
    );
    std::fs::write(&config, job).unwrap();
    config
}

#[test]
fn the_rate_holds_within_ten_percent_over_a_30_s_transfer() {
    assert_within(timed_upload("1M", 30 * MIB), Duration::from_secs(30), 0.10);
}

#[test]
fn the_rate_holds_within_ten_percent_at_a_higher_rate() {
    assert_within(timed_upload("4M", 30 * MIB), Duration::from_secs_f64(7.5), 0.10);
}

#[test]
fn sighup_lifts_the_limit_of_a_transfer_in_flight() {
    let t = Test::new().args(["--parallel", "1"]).no_positionals().cooldown(None);
    let config = config_with(&t, "bwlimit = \"1M\"\n");
    let bytes = pattern(20 * MIB);
    t.write("big.bin", &bytes);
    let d = t.arg("--config").arg(&config).start();
    let part = d.remote_root().join(".big.bin.ftpmonitor-part");
    d.wait_until("the upload runs", || std::fs::metadata(&part).is_ok_and(|m| m.len() > 0));
    config_with(&d, "bwlimit = \"off\"\n");
    d.signal(libc::SIGHUP);
    d.wait_for_log("upload rate: no limit");
    // At 1 MiB/s it would take 20 s.
    let took = Duration::from_millis(upload_ms(&d, "big.bin"));
    assert!(took < Duration::from_secs(10), "SIGHUP did not lift the limit of the transfer in flight: {took:?}");
    assert_eq!(d.remote("big.bin").as_deref(), Some(&bytes[..]));
}

#[test]
fn a_timetable_boundary_changes_the_rate_of_a_transfer_in_flight() {
    let t = Test::new().args(["--parallel", "1"]).no_positionals().cooldown(None);
    let config = config_with(&t, "bwlimit = \"1M\"\n");
    let bytes = pattern(30 * MIB);
    t.write("big.bin", &bytes);
    let d = t.arg("--config").arg(&config).start();
    let part = d.remote_root().join(".big.bin.ftpmonitor-part");
    d.wait_until("the upload runs", || std::fs::metadata(&part).is_ok_and(|m| m.len() > 0));
    // Now a timetable: 1 MiB/s until 2 s from now, 24 MiB/s after; the boundary
    // comes while the upload runs.
    let now = local_second_of_day();
    config_with(&d, &format!("bwlimit = \"{},1M {},24M\"\n", hhmmss(now + 86_400 - 60), hhmmss(now + 2)));
    d.signal(libc::SIGHUP);
    d.wait_for_log(crate::support::RELOADED);
    d.wait_until("the rate changes at the boundary", || d.log().contains("upload rate: 24.0 MiB/s"));
    let at_change = std::fs::metadata(&part).map_or(0, |m| m.len());
    assert!(
        at_change > 0 && at_change < bytes.len() as u64,
        "the upload was not in flight at the boundary ({at_change} bytes on the server)\n{}",
        d.diagnostics()
    );
    let took = Duration::from_millis(upload_ms(&d, "big.bin"));
    // A few MiB at 1 MiB/s, the rest at 24 MiB/s. At 1 MiB/s throughout: 30 s.
    assert!(took < Duration::from_secs(15), "the new rate did not reach the transfer in flight: {took:?}");
    assert_eq!(d.remote("big.bin").as_deref(), Some(&bytes[..]));
}

#[test]
fn check_reports_rate_watching_and_scope_and_a_bad_rate_is_a_usage_error() {
    let out = Test::new()
        .subcommand("check")
        .args(["--bwlimit", "08:00,512k 18:00,off", "--poll", "30s", "--include", "*.pdf", "--exclude", "drafts"])
        .run();
    out.assert_exit(0);
    for line in [
        "upload rate:     from 08:00 512.0 KiB/s, from 18:00 no limit",
        "watching:        by polling every 30s",
        "included:        only *.pdf",
        "excluded:        drafts",
    ] {
        assert!(out.stdout.contains(line), "no {line:?} in\n{}", out.stdout);
    }
    let bad = Test::new().args(["--bwlimit", "8:00,1M"]).run();
    bad.assert_usage_error(&["--bwlimit", "not a time of day"]);
}
