//! Every access to a path below WATCH_DIR goes through here, so that no
//! symbolic link is ever followed in any component of a path: not at its
//! name, not above it, and not when a directory is swapped for a link between
//! a look and an open. A daemon running as root must not upload `/etc/shadow`
//! because someone replaced `W/d` by a link to `/etc` while `d/shadow` was in
//! its cooldown.
//!
//! Paths are relative to the watch directory and resolved from it by the
//! kernel, one component at a time: on Linux with `openat2` and
//! `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH` (kernel 5.6+); elsewhere, or where
//! openat2 is missing or refused (an old kernel, a seccomp filter), with
//! `openat` and `O_NOFOLLOW | O_DIRECTORY` for each directory and `O_NOFOLLOW`
//! for the last name. Walks read each directory through its descriptor and
//! open what is below it relative to that descriptor, so a directory replaced
//! by a link in the middle of a walk is never entered. On Windows each
//! ancestor is checked with `symlink_metadata`, and an opened file is compared
//! with what was checked.
//!
//! The watch directory itself is opened anew, by its canonical path and never
//! through a link at its own name, for each operation: a descriptor kept open
//! would keep an unmounted disk busy (`umount` fails) and would hold on to a
//! watch directory that was replaced, so that the root checks saw the old one.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as sys;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as sys;

#[cfg(test)]
mod tests;

/// What a name is, seen without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// A socket, FIFO or device.
    Special,
}

/// What a look at a name found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: FileKind,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl Meta {
    /// The identity the uploader compares before and after reading.
    pub fn stamp(&self) -> Stamp {
        Stamp { len: self.len, mtime: self.modified }
    }
}

/// A file's identity for "did it change while we read it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self { len: meta.len(), mtime: meta.modified().ok() }
    }
}

/// Why a file was not opened for reading.
#[derive(Debug)]
pub enum OpenError {
    /// Not in the tree any more: missing, or something above it is no longer
    /// a directory of the tree (a link, a file).
    Gone,
    /// Not a regular file; never opened (a FIFO or a device has its say only
    /// in the race between the look and the open, and then without blocking).
    NotRegular(FileKind),
    Io(io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gone => f.write_str("it is gone"),
            Self::NotRegular(FileKind::Symlink) => f.write_str("it is now a symbolic link (never followed)"),
            Self::NotRegular(FileKind::Dir) => f.write_str("it is now a directory"),
            Self::NotRegular(_) => f.write_str("it is no longer a regular file"),
            Self::Io(e) => e.fmt(f),
        }
    }
}

/// One thing a walk found, by its path relative to the root (empty: the
/// root). Directories are not reported: they are entered.
#[derive(Debug)]
pub enum Found {
    /// A regular file.
    File(PathBuf, Meta),
    /// A symbolic link, socket, FIFO or device: never followed, opened or read.
    Skipped(PathBuf, FileKind),
    /// Could not be looked at; for a directory, what lies below it is unknown
    /// (not gone).
    Unreadable(PathBuf, io::Error),
}

/// How paths are resolved: by the kernel in one call where it can
/// (openat2), or component by component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// openat2 where the kernel has it, else the component walk by itself.
    Kernel,
    /// Always the component walk (only the tests ask for it).
    #[cfg_attr(not(test), allow(dead_code))]
    Components,
}

/// The watch directory, and every way to reach what lies below it.
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
    /// Windows has one way only.
    #[cfg_attr(windows, allow(dead_code))]
    resolve: Resolve,
}

impl Tree {
    /// `root` is the watch directory's canonical path (as in the config).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), resolve: Resolve::Kernel }
    }

    /// A tree that never uses openat2: the fallback, for its tests.
    #[cfg(test)]
    pub(crate) fn component_by_component(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), resolve: Resolve::Components }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` relative to the root, if it lies below it (or is it: empty).
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root).ok()
    }

    /// What `rel` is, following no link in any component; `None` if it is not
    /// in the tree: missing, or below something that is not a directory of
    /// the tree (a link, a file). The empty path is the root itself, looked
    /// at without following a link at its name.
    pub fn lstat(&self, rel: &Path) -> io::Result<Option<Meta>> {
        check_relative(rel)?;
        sys::lstat(self, rel)
    }

    /// Opens the regular file `rel` for reading, following no link in any
    /// component. A FIFO, device or socket is never opened (and nothing
    /// blocks even if one is swapped in at the last moment). The metadata is
    /// that of the opened file.
    pub fn open_file(&self, rel: &Path) -> Result<(File, Meta), OpenError> {
        check_relative(rel).map_err(OpenError::Io)?;
        sys::open_file(self, rel)
    }

    /// Walks `start` (relative; empty for the root): the start itself if it
    /// is not a directory, else what lies below it, read through directory
    /// descriptors. With `recursive` false only the start's own entries.
    /// Every path it reports is relative to the root, as the walk joined it
    /// from the names it read (empty: the root itself). `keep` sees each
    /// entry's path and kind before it is reported or entered: false leaves
    /// it out silently (excludes, includes).
    pub fn walk<F: FnMut(&Path, FileKind) -> bool>(&self, start: &Path, recursive: bool, keep: F) -> Walk<F> {
        match check_relative(start) {
            Ok(()) => Walk { inner: Some(sys::Walk::new(self, start, recursive)), failed: None, keep },
            Err(e) => Walk { inner: None, failed: Some(Found::Unreadable(start.to_path_buf(), e)), keep },
        }
    }

    /// [`Tree::walk`] for a whole tree at once (a reconcile, a rescan), on up
    /// to `threads` threads where the system has them: the same entries, in
    /// chunks, each directory's entries together, in no particular order.
    /// `keep` gets a `C` of its own on each thread, for what it caches.
    pub fn walk_all<C, K>(&self, start: &Path, recursive: bool, threads: usize, keep: K) -> Vec<Vec<Found>>
    where
        C: Default,
        K: Fn(&Path, FileKind, &mut C) -> bool + Sync,
    {
        if let Err(e) = check_relative(start) {
            return vec![vec![Found::Unreadable(start.to_path_buf(), e)]];
        }
        #[cfg(unix)]
        return sys::walk_parallel(self, start, recursive, threads, &keep);
        #[cfg(not(unix))]
        {
            let _one_thread = threads;
            let mut cache = C::default();
            vec![self.walk(start, recursive, |p, kind| keep(p, kind, &mut cache)).collect()]
        }
    }

    /// Whether the watch directory is a directory (not a link to one).
    pub fn root_is_dir(&self) -> bool {
        matches!(self.lstat(Path::new("")), Ok(Some(Meta { kind: FileKind::Dir, .. })))
    }

    /// Whether the watch directory (a directory, not a link) has any entry.
    pub fn root_has_entries(&self) -> io::Result<bool> {
        sys::root_has_entries(self)
    }
}

/// What [`Tree::hand_off`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandedOff {
    /// Removed, or moved to the archive.
    Done,
    /// Not the bytes that were uploaded any more (or not a file): left alone.
    Changed,
    /// Not there any more.
    Gone,
}

impl Tree {
    /// `--remove-source` / `--archive-dir`: removes the file `rel`, or moves
    /// it to the same relative path below `archive` (another file system:
    /// copied, synced to disk, then removed), but only while it is still the
    /// file that was uploaded: the same stamp before and after reading it,
    /// the same fingerprint, and the same file (device and inode) at its
    /// name when it goes. Directories left empty are removed, up to the
    /// root (kept). No link is followed here or in the archive.
    pub fn hand_off(
        &self,
        rel: &Path,
        expect: Stamp,
        hash: &[u8; 32],
        archive: Option<&Tree>,
    ) -> io::Result<HandedOff> {
        check_relative(rel)?;
        let (file, meta) = match self.open_file(rel) {
            Ok(opened) => opened,
            Err(OpenError::Gone) => return Ok(HandedOff::Gone),
            Err(OpenError::NotRegular(_)) => return Ok(HandedOff::Changed),
            Err(OpenError::Io(e)) => return Err(e),
        };
        if meta.stamp() != expect {
            return Ok(HandedOff::Changed);
        }
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut &file, &mut hasher)?;
        if hasher.finalize().as_bytes() != hash || Stamp::of(&file.metadata()?) != expect {
            return Ok(HandedOff::Changed);
        }
        let went = match archive {
            Some(to) => sys::archive(self, rel, &file, to)?,
            None => sys::remove_if_same(self, rel, &file)?,
        };
        if !went {
            return Ok(HandedOff::Changed);
        }
        sys::remove_empty_parents(self, rel);
        Ok(HandedOff::Done)
    }
}

/// The iterator [`Tree::walk`] returns.
pub struct Walk<F> {
    /// `None` for a start that is no plain relative path.
    inner: Option<sys::Walk>,
    /// Why such a start cannot be walked: the only thing reported.
    failed: Option<Found>,
    keep: F,
}

impl<F: FnMut(&Path, FileKind) -> bool> Iterator for Walk<F> {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        if let Some(found) = self.failed.take() {
            return Some(found);
        }
        self.inner.as_mut()?.next(&mut self.keep)
    }
}

/// Only plain names below the root: no `..`, no absolute path.
fn check_relative(rel: &Path) -> io::Result<()> {
    if rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a path below the watch directory", crate::relpath::EscapedPath(rel)),
        ))
    }
}

/// The parent and the last name of a relative path (`None`: the root).
fn split(rel: &Path) -> (&Path, Option<&std::ffi::OsStr>) {
    match rel.file_name() {
        Some(name) => (rel.parent().unwrap_or(Path::new("")), Some(name)),
        None => (Path::new(""), None),
    }
}
