//! `ftpmonitor status`: whether the daemon runs (from its PID file's lock),
//! since when, and what it has synced (from the journal), as text or as one
//! JSON object. Exit 0 when it runs, 3 when it does not (LSB); with
//! `--max-pending-age DUR`, 1 when it runs but an operation has waited
//! longer than DUR (a check for Nagios, Icinga or systemd's `ExecCondition`).
//!
//! Reads only: a non-root user can ask as long as the files are readable.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use crate::cli::StatusArgs;
use crate::config::{default_locations, parse_duration};
use crate::error::{Error, Result};
use crate::journal::{JobStatus, now_secs, read_status};
use crate::relpath::{Escaped, EscapedPath};

pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let max_pending_age = match &args.max_pending_age {
        Some(d) => Some(parse_duration(d).map_err(|e| Error::usage(format!("--max-pending-age: {e}")))?.as_secs()),
        None => None,
    };
    let (pid_file, state_dir) = default_locations(args.pid_file.as_deref(), args.state_dir.as_deref());
    let running = probe(&pid_file);
    let (jobs, journal_error) = match read_status(&state_dir) {
        Ok(jobs) => (jobs, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    // The job of the running daemon, else the most recently started one.
    let job = jobs.iter().find(|j| running.is_some() && j.pid == running.map(i64::from)).or_else(|| jobs.first());
    let now = now_secs();
    let waited = job.and_then(|j| j.pending_age(now));
    // Nagios and Icinga show the first line: with a limit, it is the verdict.
    let too_old = match max_pending_age {
        Some(max) if running.is_some() => Some((max, waited.is_some_and(|age| age > max))),
        _ => None,
    };
    if args.json {
        println!("{}", json(running, &pid_file.to_string_lossy(), job, journal_error.as_deref(), now));
    } else {
        match too_old {
            Some((max, true)) => println!(
                "CHECK FAILED: an operation has been pending for {}, longer than --max-pending-age {}",
                human_secs(waited.unwrap_or(0)),
                human_secs(max)
            ),
            Some((max, false)) => {
                println!("OK: nothing has been pending longer than --max-pending-age {}", human_secs(max))
            }
            None => {}
        }
        print_text(running, &EscapedPath(&pid_file).to_string(), job, journal_error.as_deref(), now);
    }
    Ok(match (running, too_old) {
        (None, _) => ExitCode::from(3),
        (Some(_), Some((_, true))) => ExitCode::from(1),
        (Some(_), _) => ExitCode::SUCCESS,
    })
}

fn human_secs(secs: u64) -> humantime::FormattedDuration {
    humantime::format_duration(std::time::Duration::from_secs(secs))
}

impl JobStatus {
    /// How long the oldest pending operation has waited, in seconds.
    fn pending_age(&self, now: i64) -> Option<u64> {
        self.oldest_pending_at.map(|t| u64::try_from(now - t).unwrap_or(0))
    }
}

fn print_text(running: Option<u32>, pid_file: &str, job: Option<&JobStatus>, journal_error: Option<&str>, now: i64) {
    match running {
        Some(pid) => println!("ftpmonitor is running (pid {pid}, PID file {pid_file})"),
        None => println!("ftpmonitor is not running (no live holder of {pid_file})"),
    }
    if let Some(e) = journal_error {
        println!("journal: {e}");
    }
    let Some(j) = job else {
        println!("journal: no job recorded yet");
        return;
    };
    println!("job: {} -> {}", Escaped(&j.watch_dir), Escaped(&j.target));
    if let Some(t) = j.started_at {
        println!("since: {}", format_time(t));
    }
    if j.paused {
        println!("paused: yes (no transfer starts until ftpmonitor resume)");
    }
    println!("synced: {} files", j.synced);
    match j.pending_age(now) {
        Some(age) => println!("pending: {} files, the oldest for {}", j.pending, human_secs(age)),
        None => println!("pending: {} files", j.pending),
    }
    if running.is_some() {
        match j.server_down_since {
            Some(t) => println!("server: unreachable since {}", format_time(t)),
            None => println!("server: up"),
        }
    }
    if j.failing_count > 0 {
        println!("failing: {} files", j.failing_count);
        for f in &j.failing {
            println!("  {}: {}", Escaped(&f.path), Escaped(&f.error));
        }
        if j.failing_count > j.failing.len() as i64 {
            println!("  ...");
        }
    }
    match (&j.last_upload_path, j.last_upload_at) {
        (Some(p), Some(t)) => println!("last upload: {} at {}", Escaped(p), format_time(t)),
        _ => println!("last upload: none"),
    }
    match (&j.last_error, j.last_error_at) {
        (Some(e), Some(t)) => println!("last error: {} at {}", Escaped(e), format_time(t)),
        _ => println!("last error: none"),
    }
}

fn json(
    running: Option<u32>,
    pid_file: &str,
    job: Option<&JobStatus>,
    journal_error: Option<&str>,
    now: i64,
) -> String {
    let opt_num = |v: Option<i64>| v.map_or_else(|| "null".to_string(), |n| n.to_string());
    let opt_str = |v: Option<&str>| v.map_or_else(|| "null".to_string(), json_string);
    let opt_time = |v: Option<i64>| v.map_or_else(|| "null".to_string(), |t| json_string(&format_time(t)));
    let mut out = format!(
        "{{\"running\":{},\"pid\":{},\"pid_file\":{}",
        running.is_some(),
        opt_num(running.map(i64::from)),
        json_string(pid_file)
    );
    match job {
        Some(j) => out.push_str(&format!(
            ",\"watch_dir\":{},\"target\":{},\"since\":{},\"synced\":{},\"pending\":{},\
             \"last_upload\":{},\"last_upload_at\":{},\"last_error\":{},\"last_error_at\":{}",
            json_string(&j.watch_dir),
            json_string(&j.target),
            opt_time(j.started_at),
            j.synced,
            j.pending,
            opt_str(j.last_upload_path.as_deref()),
            opt_time(j.last_upload_at),
            opt_str(j.last_error.as_deref()),
            opt_time(j.last_error_at),
        )),
        None => out.push_str(
            ",\"watch_dir\":null,\"target\":null,\"since\":null,\"synced\":0,\"pending\":0,\
             \"last_upload\":null,\"last_upload_at\":null,\"last_error\":null,\"last_error_at\":null",
        ),
    }
    out.push_str(&format!(",\"paused\":{}", job.is_some_and(|j| j.paused)));
    let age = job.and_then(|j| j.pending_age(now));
    out.push_str(&format!(",\"oldest_pending_age_s\":{}", age.map_or_else(|| "null".to_string(), |a| a.to_string())));
    // Known only while it runs.
    let up = match (running, job) {
        (Some(_), Some(j)) => j.server_down_since.is_none().to_string(),
        (Some(_), None) => "null".to_string(),
        (None, _) => "null".to_string(),
    };
    out.push_str(&format!(",\"server_up\":{up}"));
    let (count, first) = job.map_or((0, &[][..]), |j| (j.failing_count, &j.failing[..]));
    let first: Vec<String> = first
        .iter()
        .map(|f| format!("{{\"path\":{},\"error\":{}}}", json_string(&f.path), json_string(&f.error)))
        .collect();
    out.push_str(&format!(",\"failing_files\":{{\"count\":{count},\"first\":[{}]}}", first.join(",")));
    if let Some(e) = journal_error {
        out.push_str(&format!(",\"journal_error\":{}", json_string(e)));
    }
    out.push('}');
    out
}

/// RFC 3339 in UTC.
fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// The PID of the live daemon holding `path`'s lock, if any.
pub(crate) fn probe(path: &std::path::Path) -> Option<u32> {
    let mut file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            text.trim().parse().ok()
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_object_with_escaped_strings() {
        let j = JobStatus {
            watch_dir: "/w/a\"b".into(),
            target: "ftp://u@h:21/r".into(),
            started_at: Some(0),
            synced: 3,
            pending: 1,
            last_error: Some("x\ny".into()),
            last_error_at: Some(60),
            oldest_pending_at: Some(40),
            failing_count: 12,
            failing: vec![crate::journal::Failing { path: "a\"b".into(), error: "550 no".into() }],
            ..JobStatus::default()
        };
        let s = json(Some(42), "/run/x.pid", Some(&j), None, 100);
        assert!(s.starts_with("{\"running\":true,\"pid\":42,"), "{s}");
        assert!(s.contains("\"watch_dir\":\"/w/a\\\"b\""), "{s}");
        assert!(s.contains("\"last_error\":\"x\\u000ay\""), "{s}");
        assert!(s.contains("\"since\":\"1970-01-01T00:00:00Z\""), "{s}");
        assert!(s.contains("\"oldest_pending_age_s\":60,\"server_up\":true,"), "{s}");
        assert!(
            s.contains("\"failing_files\":{\"count\":12,\"first\":[{\"path\":\"a\\\"b\",\"error\":\"550 no\"}]}"),
            "{s}"
        );
        assert!(!s.contains('\n'));
        let stopped = json(None, "/run/x.pid", Some(&j), None, 100);
        assert!(stopped.contains("\"server_up\":null"), "{stopped}");
    }
}
