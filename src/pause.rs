//! `ftpmonitor pause` and `ftpmonitor resume`: for maintenance windows on the
//! server. The daemon's pause is a toggle (SIGUSR2, for scripts); these
//! commands read the state it keeps in the journal, send the signal only when
//! the state must change, and wait until the journal shows the new one. One at
//! a time per state directory (a lock file), so two of them cannot toggle twice.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::ControlArgs;
use crate::config::default_locations;
use crate::error::{Error, Result};
use crate::journal::read_status;
use crate::relpath::EscapedPath;

/// How long the daemon may take to take a pause or resume on.
const WAIT: Duration = Duration::from_secs(10);

pub fn run(args: &ControlArgs, pause: bool) -> Result<ExitCode> {
    let (pid_file, state_dir) = default_locations(args.pid_file.as_deref(), args.state_dir.as_deref());
    let what = if pause { "pause" } else { "resume" };
    let Some(pid) = crate::status::probe(&pid_file) else {
        eprintln!(
            "ftpmonitor: error: not running (no live holder of {}): nothing to {what}; give the daemon's --pid-file",
            EscapedPath(&pid_file)
        );
        return Ok(ExitCode::from(3));
    };
    let lock_path = state_dir.join("pause.lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| {
        Error::runtime(format!("cannot open {}: {e}: run as the daemon's user", EscapedPath(&lock_path)))
    })?;
    lock.lock().map_err(|e| Error::runtime(format!("cannot lock {}: {e}", EscapedPath(&lock_path))))?;
    let paused = || -> Result<bool> {
        let jobs = read_status(&state_dir).map_err(Error::runtime)?;
        let job = jobs.iter().find(|j| j.pid == Some(i64::from(pid))).ok_or_else(|| {
            Error::runtime(format!(
                "the journal in {} has no job of pid {pid}: give the daemon's --state-dir",
                EscapedPath(&state_dir)
            ))
        })?;
        Ok(job.paused)
    };
    if paused()? == pause {
        println!("ftpmonitor (pid {pid}) is already {}", if pause { "paused" } else { "running transfers" });
        return Ok(ExitCode::SUCCESS);
    }
    toggle(pid)?;
    let deadline = Instant::now() + WAIT;
    while paused()? != pause {
        if Instant::now() >= deadline {
            return Err(Error::runtime(format!(
                "ftpmonitor (pid {pid}) did not {what} within {} s: see its log",
                WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if pause {
        println!("paused ftpmonitor (pid {pid}): no new transfer starts; `ftpmonitor resume` starts them again");
    } else {
        println!("resumed ftpmonitor (pid {pid}): transfers start again");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn toggle(pid: u32) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| Error::runtime(format!("pid {pid} is out of range")))?;
    // SAFETY: kill(2) with a pid read from the locked PID file and a valid signal.
    if unsafe { libc::kill(raw, libc::SIGUSR2) } == 0 {
        Ok(())
    } else {
        Err(Error::runtime(format!(
            "cannot signal pid {pid}: {}: run as the daemon's user or root",
            std::io::Error::last_os_error()
        )))
    }
}

#[cfg(not(unix))]
fn toggle(_pid: u32) -> Result<()> {
    Err(Error::runtime("pause and resume need Unix signals: stop and start the scheduled task instead"))
}
