//! The PID file: created without following a symlink, locked (`flock` on
//! Unix, `LockFileEx` on Windows, through std) for the whole life of the
//! process, so that a live holder means "already running" and a stale file
//! left by a crash is simply reused.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::relpath::EscapedPath;

#[cfg(unix)]
fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_error(_e: &io::Error) -> bool {
    false
}

/// A locked PID file. The lock lives as long as the open file description,
/// which survives the fork, so the daemon holds it until it exits.
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    /// Opens (never through a symlink) and locks `path`. A live holder is
    /// "already running"; a stale file is reused.
    pub fn acquire(path: &Path) -> Result<Self> {
        let shown = EscapedPath(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::runtime(format!(
                    "cannot create the directory of PID file {shown}: {e}: choose another --pid-file"
                ))
            })?;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o644).custom_flags(libc::O_NOFOLLOW);
        }
        let file = opts.open(path).map_err(|e| {
            if is_symlink_error(&e) {
                Error::runtime(format!(
                    "PID file {shown} is a symbolic link, which ftpmonitor never writes through: remove it"
                ))
            } else {
                Error::runtime(format!(
                    "cannot open PID file {shown}: {e}: run as root or choose a writable --pid-file"
                ))
            }
        })?;
        let meta = file.metadata().map_err(|e| Error::runtime(format!("PID file {shown}: {e}")))?;
        if !meta.is_file() {
            return Err(Error::runtime(format!(
                "PID file {shown} is not a regular file: remove it or choose another --pid-file"
            )));
        }
        match file.try_lock() {
            Ok(()) => Ok(Self { file, path: path.to_path_buf() }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = (&file).read_to_string(&mut text);
                let pid = text.trim();
                let pid = if pid.is_empty() { "unknown" } else { pid };
                Err(Error::runtime(format!(
                    "already running (pid {pid}): stop it first (kill {pid}), or give this instance a PID file other than {shown} (--pid-file)"
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::runtime(format!("cannot lock PID file {shown}: {e}"))),
        }
    }

    /// Writes this process's PID and a newline, replacing what was there.
    pub fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file, if the name still refers to our file.
    pub fn remove(self) {
        #[cfg(unix)]
        let ours = {
            use std::os::unix::fs::MetadataExt;
            match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            }
        };
        #[cfg(not(unix))]
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.is_file());
        drop(self.file);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("warning: cannot remove PID file {}: {e}", EscapedPath(&self.path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_with_the_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.pid");
        let mut first = PidFile::acquire(&path).unwrap();
        first.write_pid().unwrap();
        let err = PidFile::acquire(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("already running (pid {})", std::process::id())), "{err}");
        first.remove();
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn never_opens_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = tmp.path().join("link.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = PidFile::acquire(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
