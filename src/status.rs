//! `ftpmonitor status`: whether the daemon runs, from its PID file's lock.
//!
//! A live daemon holds an exclusive lock on its PID file; a readable file that
//! nobody locks is stale. Exit 0 when running, 3 when not (LSB).

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use crate::cli::StatusArgs;
use crate::config::default_locations;
use crate::error::Result;
use crate::relpath::EscapedPath;

pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    let (pid_file, _state) = default_locations(args.pid_file.as_deref(), args.state_dir.as_deref());
    let running = probe(&pid_file);
    let shown = EscapedPath(&pid_file).to_string();
    if args.json {
        let pid = running.map_or_else(|| "null".to_string(), |p| p.to_string());
        println!(
            "{{\"running\":{},\"pid\":{pid},\"pid_file\":{}}}",
            running.is_some(),
            json_string(&pid_file.to_string_lossy())
        );
    } else {
        match running {
            Some(pid) => println!("ftpmonitor is running (pid {pid}, PID file {shown})"),
            None => println!("ftpmonitor is not running (no live holder of {shown})"),
        }
    }
    Ok(if running.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The PID of the live daemon holding `path`'s lock, if any.
fn probe(path: &std::path::Path) -> Option<u32> {
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
