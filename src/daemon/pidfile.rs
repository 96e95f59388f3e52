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

/// How often `acquire` starts again when the file it locked turned out to be
/// no longer the one at the path (another instance unlinked it as it
/// stopped). Each round needs another instance to stop in between, so a few
/// are plenty.
const ATTEMPTS: usize = 8;

/// A locked PID file. The lock lives as long as the open file description,
/// which survives the fork, so the daemon holds it until it exits.
///
/// Two rules make the lock mean "the one instance": the file is unlinked
/// only while its lock is still held, and a lock counts only if the locked
/// file is still the file at the path (same device and inode) once it is
/// held. Without the first, a starting instance could lock the old file in
/// the moment between unlock and unlink and then see it vanish; without the
/// second, one that opened the file just before a stopping instance
/// unlinked it would lock a file nobody else can find any more. Either way a
/// third instance would create a new file and run alongside.
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    /// Opens (never through a symlink) and locks `path`. A live holder is
    /// "already running"; a stale file is reused.
    pub fn acquire(path: &Path) -> Result<Self> {
        Self::acquire_with(path, None)
    }

    /// `acquire`, with the first attempt on `first`, a file already opened
    /// (for tests that play two instances in one process).
    fn acquire_with(path: &Path, mut first: Option<File>) -> Result<Self> {
        let shown = EscapedPath(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::runtime(format!(
                    "cannot create the directory of PID file {shown}: {e}: choose another --pid-file"
                ))
            })?;
        }
        for _ in 0..ATTEMPTS {
            let file = match first.take() {
                Some(f) => f,
                None => open(path)?,
            };
            match file.try_lock() {
                Ok(()) if is_at(&file, path) => return Ok(Self { file, path: path.to_path_buf() }),
                // The file was unlinked by an instance that stopped after we
                // opened it: the name belongs to a new file, or to none.
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) if !is_at(&file, path) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = (&file).read_to_string(&mut text);
                    let pid = text.trim();
                    let pid = if pid.is_empty() { "unknown" } else { pid };
                    return Err(Error::runtime(format!(
                        "already running (pid {pid}): stop it first (kill {pid}), or give this instance a PID file other than {shown} (--pid-file)"
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::runtime(format!("cannot lock PID file {shown}: {e}")));
                }
            }
        }
        Err(Error::runtime(format!(
            "PID file {shown} was replaced {ATTEMPTS} times while this instance tried to lock it: \
             other instances keep starting and stopping on it; stop them, then start one"
        )))
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

    /// Removes the file, if the name still refers to our file, and only then
    /// lets go of the lock.
    pub fn remove(self) {
        self.remove_with(|| {});
    }

    /// `remove`, calling `between` after the unlink and before the unlock:
    /// the moment another instance starting now may jump in (for tests).
    ///
    /// After `--run-as` the daemon may no longer be allowed to unlink the
    /// file (`/var/run` is root's). Then it empties the file through the
    /// descriptor it still has open for writing: an empty, unlocked file
    /// names nobody, so neither `status` nor logrotate's `pkill -F FILE -L`
    /// (which wants the file locked) can mistake a later owner of the PID
    /// for the daemon.
    fn remove_with(self, between: impl FnOnce()) {
        if is_at(&self.file, &self.path)
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            let shown = EscapedPath(&self.path);
            match self.file.set_len(0) {
                Ok(()) => log::debug!("PID file {shown} emptied, as it cannot be removed: {e}"),
                Err(e2) => log::warn!("warning: cannot remove PID file {shown} ({e}) nor empty it ({e2}): remove it"),
            }
        }
        between();
        drop(self.file);
    }
}

/// Opens or creates the PID file, never through a symlink, and checks that
/// it is a regular file.
fn open(path: &Path) -> Result<File> {
    let shown = EscapedPath(path);
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
            Error::runtime(format!("cannot open PID file {shown}: {e}: run as root or choose a writable --pid-file"))
        }
    })?;
    let meta = file.metadata().map_err(|e| Error::runtime(format!("PID file {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::runtime(format!(
            "PID file {shown} is not a regular file: remove it or choose another --pid-file"
        )));
    }
    Ok(file)
}

/// Whether `file` is the file now at `path` (same device and inode; the
/// path's last component not followed).
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Windows has no inode numbers through std; a regular file at the path is
/// taken to be ours.
#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that took `x.pid` in a new directory and wrote its PID.
    fn running_daemon() -> (tempfile::TempDir, PathBuf, PidFile) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.pid");
        let mut pid_file = PidFile::acquire(&path).unwrap();
        pid_file.write_pid().unwrap();
        (tmp, path, pid_file)
    }

    fn assert_a_third_is_refused(path: &Path) {
        let err = PidFile::acquire(path).unwrap_err().to_string();
        assert!(err.contains("already running"), "a third instance won the lock too: {err}");
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_with_the_pid() {
        let (_tmp, path, first) = running_daemon();
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

    /// Two daemons, played by two handles in this process (flock locks
    /// belong to open file descriptions): one stops while the other
    /// starts, at the moment between the stopping one's unlink and unlock.
    /// Whoever wins must hold the file at the path, so a third is refused.
    #[cfg(unix)]
    #[test]
    fn a_start_during_a_stop_leaves_one_holder_of_the_file_at_the_path() {
        let (_tmp, path, stopping) = running_daemon();
        let mut started = None;
        stopping.remove_with(|| started = Some(PidFile::acquire(&path).unwrap()));
        let started = started.unwrap();
        assert!(is_at(&started.file, &path), "the new holder's file is no longer at the path");
        assert_a_third_is_refused(&path);
    }

    /// A starting daemon opened the file just before the running one
    /// unlinked it and exited: the lock it then wins is on a file nobody
    /// else will ever open, so it must retry on the file at the path.
    #[cfg(unix)]
    #[test]
    fn a_lock_won_on_a_file_unlinked_meanwhile_is_retried_on_the_path() {
        let (_tmp, path, running) = running_daemon();
        let opened_early = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        running.remove();
        let starting = PidFile::acquire_with(&path, Some(opened_early)).unwrap();
        assert!(is_at(&starting.file, &path), "the lock was kept on an unlinked file");
        assert_a_third_is_refused(&path);
    }

    /// A starting daemon opened the file, then found it locked by one that
    /// has already unlinked it and is about to exit: that is no live holder
    /// of the PID file, so the start goes on with a new file.
    #[cfg(unix)]
    #[test]
    fn a_holder_that_already_unlinked_the_file_does_not_count_as_running() {
        let (_tmp, path, stopping) = running_daemon();
        let opened_early = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut started = None;
        stopping.remove_with(|| started = Some(PidFile::acquire_with(&path, Some(opened_early))));
        let started = started.unwrap().unwrap();
        assert!(is_at(&started.file, &path));
    }
}
