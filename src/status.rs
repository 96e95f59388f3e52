//! `ftpmonitor status`: whether the daemon runs (from its PID file's lock),
//! since when, and what it has synced (from the journal), as text or as one
//! JSON object. Exit 0 when it runs, 3 when it does not (LSB).
//!
//! Reads only: a non-root user can ask as long as the files are readable.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use crate::cli::StatusArgs;
use crate::config::default_locations;
use crate::error::Result;
use crate::journal::{JobStatus, read_status};
use crate::relpath::{Escaped, EscapedPath};

pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let (pid_file, state_dir) = default_locations(args.pid_file.as_deref(), args.state_dir.as_deref());
    let running = probe(&pid_file);
    let (jobs, journal_error) = match read_status(&state_dir) {
        Ok(jobs) => (jobs, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    // The job of the running daemon, else the most recently started one.
    let job = jobs.iter().find(|j| running.is_some() && j.pid == running.map(i64::from)).or_else(|| jobs.first());
    if args.json {
        println!("{}", json(running, &pid_file.to_string_lossy(), job, journal_error.as_deref()));
    } else {
        print_text(running, &EscapedPath(&pid_file).to_string(), job, journal_error.as_deref());
    }
    Ok(if running.is_some() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn print_text(running: Option<u32>, pid_file: &str, job: Option<&JobStatus>, journal_error: Option<&str>) {
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
    println!("pending: {} files", j.pending);
    match (&j.last_upload_path, j.last_upload_at) {
        (Some(p), Some(t)) => println!("last upload: {} at {}", Escaped(p), format_time(t)),
        _ => println!("last upload: none"),
    }
    match (&j.last_error, j.last_error_at) {
        (Some(e), Some(t)) => println!("last error: {} at {}", Escaped(e), format_time(t)),
        _ => println!("last error: none"),
    }
}

fn json(running: Option<u32>, pid_file: &str, job: Option<&JobStatus>, journal_error: Option<&str>) -> String {
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
            ..JobStatus::default()
        };
        let s = json(Some(42), "/run/x.pid", Some(&j), None);
        assert!(s.starts_with("{\"running\":true,\"pid\":42,"), "{s}");
        assert!(s.contains("\"watch_dir\":\"/w/a\\\"b\""), "{s}");
        assert!(s.contains("\"last_error\":\"x\\u000ay\""), "{s}");
        assert!(s.contains("\"since\":\"1970-01-01T00:00:00Z\""), "{s}");
        assert!(!s.contains('\n'));
    }
}
