//! Windows: no fork, no privilege drop; the process runs in the foreground
//! (the scheduled task or service starts it so) and keeps a locked PID file
//! so that `status` and a second instance behave as on Unix.

use std::path::Path;

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Readiness;

impl Readiness {
    pub fn none() -> Self {
        Self
    }
    pub fn ready(&mut self) {}
    pub fn failed(&mut self, _msg: &str) {}
}

pub enum Forked {
    Launcher(std::process::ExitCode),
    Daemon(Readiness),
}

pub fn daemonize(_state_dir: &Path, _log_hint: &str) -> Result<Forked> {
    Err(Error::usage("there is no background mode on Windows: run with --foreground (the scripts in windows/ do)"))
}

pub fn has_controlling_terminal() -> bool {
    false
}

pub fn is_root() -> bool {
    false
}

pub fn lookup_user(_user: &str) -> std::result::Result<(u32, u32), String> {
    Err("not available on Windows: run the task or service as that user".to_string())
}

pub fn drop_privileges(user: &str, _owned: &[&Path]) -> Result<()> {
    Err(Error::usage(format!("--run-as {user}: not available on Windows: run the task or service as that user")))
}

/// Nothing to tune: the arena setting is glibc's (see the Unix version).
pub fn one_malloc_arena() {}

/// Nothing to do: the Windows heap gives back what it frees.
pub fn give_back_free_memory() {}
