//! Windows: no fork, no privilege drop; the process runs in the foreground
//! (the scheduled task or service starts it so) and keeps a locked PID file
//! so that `status` and a second instance behave as on Unix.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::relpath::EscapedPath;

#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    pub fn acquire(path: &Path) -> Result<Self> {
        let shown = EscapedPath(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::runtime(format!("cannot create the directory of PID file {shown}: {e}")))?;
        }
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(|e| {
                Error::runtime(format!("cannot open PID file {shown}: {e}: choose a writable --pid-file"))
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { file, path: path.to_path_buf() }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = (&file).read_to_string(&mut text);
                let pid = text.trim();
                Err(Error::runtime(format!(
                    "already running (pid {pid}): stop it first, or give this instance a PID file other than {shown} (--pid-file)"
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::runtime(format!("cannot lock PID file {shown}: {e}"))),
        }
    }

    pub fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn remove(self) {
        let path = self.path.clone();
        drop(self.file);
        let _ = std::fs::remove_file(path);
    }
}

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

pub fn drop_privileges(user: &str, _owned: &[&Path]) -> Result<()> {
    Err(Error::usage(format!("--run-as {user}: not available on Windows: run the task or service as that user")))
}
