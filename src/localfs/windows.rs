//! Windows: no `openat`, so each ancestor of a path is checked with
//! `symlink_metadata` (a symbolic link or junction is a reparse point that
//! `is_symlink` reports), the file is opened without following a reparse
//! point at its name, and what was opened is compared with what was checked;
//! the ancestors are checked again after the open. A swap between the checks
//! and the open is caught by the comparison, or by the second check.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{FileKind, Found, Meta, OpenError, Tree};

/// `FILE_FLAG_OPEN_REPARSE_POINT`: open a link itself, never its target.
const OPEN_REPARSE_POINT: u32 = 0x0020_0000;
/// `FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE`: never stand in
/// the way of the programs that write the files.
const SHARE_ALL: u32 = 0x7;

fn kind_of(meta: &std::fs::Metadata) -> FileKind {
    let t = meta.file_type();
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Special
    }
}

fn meta_of(meta: &std::fs::Metadata) -> Meta {
    Meta { kind: kind_of(meta), len: meta.len(), modified: meta.modified().ok() }
}

fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

/// Whether every directory above `rel` is a directory of the tree (not a
/// link, not a file); the root itself is not looked through a link either.
fn ancestors_ok(tree: &Tree, rel: &Path) -> io::Result<bool> {
    let mut path = tree.root.clone();
    let check = |p: &Path| match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(kind_of(&m) == FileKind::Dir),
        Err(e) if gone(&e) => Ok(false),
        Err(e) => Err(e),
    };
    if !check(&path)? {
        return Ok(false);
    }
    let (parent, _) = super::split(rel);
    for part in parent.components() {
        path.push(part);
        if !check(&path)? {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(super) fn lstat(tree: &Tree, rel: &Path) -> io::Result<Option<Meta>> {
    if rel.as_os_str().is_empty() {
        return match std::fs::symlink_metadata(&tree.root) {
            Ok(m) => Ok(Some(meta_of(&m))),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        };
    }
    if !ancestors_ok(tree, rel)? {
        return Ok(None);
    }
    match std::fs::symlink_metadata(tree.root.join(rel)) {
        Ok(m) => Ok(Some(meta_of(&m))),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn open_file(tree: &Tree, rel: &Path) -> Result<(File, Meta), OpenError> {
    let checked = match lstat(tree, rel) {
        Ok(Some(m)) if m.kind == FileKind::File => m,
        Ok(Some(m)) => return Err(OpenError::NotRegular(m.kind)),
        Ok(None) => return Err(OpenError::Gone),
        Err(e) => return Err(OpenError::Io(e)),
    };
    let path = tree.root.join(rel);
    let file = OpenOptions::new()
        .read(true)
        .share_mode(SHARE_ALL)
        .custom_flags(OPEN_REPARSE_POINT)
        .open(&path)
        .map_err(|e| if gone(&e) { OpenError::Gone } else { OpenError::Io(e) })?;
    let opened = file.metadata().map_err(OpenError::Io)?;
    let meta = meta_of(&opened);
    if meta.kind != FileKind::File {
        return Err(OpenError::NotRegular(meta.kind));
    }
    // The same file as checked: same size, times and attributes (the file
    // index needs an API std does not offer on stable Rust).
    let again =
        std::fs::symlink_metadata(&path).map_err(|e| if gone(&e) { OpenError::Gone } else { OpenError::Io(e) })?;
    let same = again.len() == opened.len()
        && again.creation_time() == opened.creation_time()
        && again.last_write_time() == opened.last_write_time()
        && again.file_attributes() == opened.file_attributes()
        && checked.len == meta.len
        && checked.modified == meta.modified;
    if !same || !ancestors_ok(tree, rel).map_err(OpenError::Io)? {
        return Err(OpenError::Gone);
    }
    Ok((file, meta))
}

pub(super) fn root_has_entries(tree: &Tree) -> io::Result<bool> {
    let m = std::fs::symlink_metadata(&tree.root)?;
    if kind_of(&m) != FileKind::Dir {
        return Err(io::Error::new(io::ErrorKind::NotADirectory, "the watch directory is not a directory"));
    }
    Ok(std::fs::read_dir(&tree.root)?.next().is_some())
}

pub(super) struct Walk {
    tree: Tree,
    recursive: bool,
    start: Option<PathBuf>,
    pending: Vec<PathBuf>,
    ready: VecDeque<Found>,
}

impl Walk {
    pub(super) fn new(tree: &Tree, start: &Path, recursive: bool) -> Self {
        Self {
            tree: tree.clone(),
            recursive,
            start: Some(start.to_path_buf()),
            pending: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    pub(super) fn next(&mut self, keep: &mut dyn FnMut(&Path, FileKind) -> bool) -> Option<Found> {
        loop {
            if let Some(found) = self.ready.pop_front() {
                return Some(found);
            }
            let (rel, first) = match self.start.take() {
                Some(start) => (start, true),
                None => (self.pending.pop()?, false),
            };
            self.visit(rel, first, keep);
        }
    }

    /// Reads the directory `rel` if it still is one (checked right before).
    fn visit(&mut self, rel: PathBuf, first: bool, keep: &mut dyn FnMut(&Path, FileKind) -> bool) {
        match lstat(&self.tree, &rel) {
            Ok(None) if first && rel.as_os_str().is_empty() => {
                self.ready.push_back(Found::Unreadable(rel, io::ErrorKind::NotFound.into()));
                return;
            }
            Ok(None) => return,
            Ok(Some(m)) if m.kind == FileKind::Dir => {}
            Ok(Some(m)) if m.kind == FileKind::File => {
                self.ready.push_back(Found::File(rel, m));
                return;
            }
            Ok(Some(m)) => {
                self.ready.push_back(Found::Skipped(rel, m.kind));
                return;
            }
            Err(e) => {
                self.ready.push_back(Found::Unreadable(rel, e));
                return;
            }
        }
        let entries = match std::fs::read_dir(self.tree.root.join(&rel)) {
            Ok(entries) => entries,
            Err(e) => {
                self.ready.push_back(Found::Unreadable(rel, e));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.ready.push_back(Found::Unreadable(rel.clone(), e));
                    break;
                }
            };
            let child = rel.join(entry.file_name());
            // From the directory listing itself: nothing is followed.
            match entry.metadata() {
                Ok(m) if !keep(&child, kind_of(&m)) => {}
                Ok(m) => match kind_of(&m) {
                    FileKind::File => self.ready.push_back(Found::File(child, meta_of(&m))),
                    FileKind::Dir if self.recursive => self.pending.push(child),
                    FileKind::Dir => {}
                    kind => self.ready.push_back(Found::Skipped(child, kind)),
                },
                Err(e) if gone(&e) => {}
                Err(e) => self.ready.push_back(Found::Unreadable(child, e)),
            }
        }
    }
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "--remove-source and --archive-dir need a Unix system")
}

pub(super) fn remove_if_same(_: &Tree, _: &Path, _: &File) -> io::Result<bool> {
    Err(unsupported())
}

pub(super) fn archive(_: &Tree, _: &Path, _: &File, _: &Tree) -> io::Result<bool> {
    Err(unsupported())
}

pub(super) fn remove_empty_parents(_: &Tree, _: &Path) {}
