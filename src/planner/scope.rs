//! What this run syncs: the paths below WATCH_DIR that are neither excluded
//! nor (with `--no-recursive`) below the top level, and whose names FTP can
//! carry. Checked when a change arrives, when a walk reports a file, and
//! again when a job is handed to a worker (a job queued before SIGHUP added
//! an exclude, or left in the journal's queue, must not leave the machine).

use std::path::{Path, PathBuf};

use crate::config::Excludes;
use crate::relpath::{BadName, RelPath};

#[derive(Debug, Clone)]
pub struct Scope {
    /// WATCH_DIR (absolute, canonical): changes and walks name absolute paths.
    pub watch_dir: PathBuf,
    pub recursive: bool,
    pub excludes: Excludes,
}

/// Why a local path is not synced, for a log line; `None`: silently (outside
/// the tree, or below the top level with `--no-recursive`).
pub type Unsynced = Option<(String, &'static str)>;

impl Scope {
    /// The path below WATCH_DIR of `path`, if this run syncs it.
    pub fn rel(&self, path: &Path) -> Result<RelPath, Unsynced> {
        match RelPath::from_local(&self.watch_dir, path) {
            Ok(rel) if !self.recursive && rel.parent().is_some() => Err(None),
            Ok(rel) if self.excludes.is_match(rel.as_str()) => Err(Some((rel.to_string(), "excluded"))),
            Ok(rel) => Ok(rel),
            Err(BadName::Outside) => Err(None),
            Err(BadName::NotUtf8(name)) => {
                Err(Some((name, "name is not valid UTF-8, which FTP commands cannot carry")))
            }
            Err(BadName::LineBreak(name)) => Err(Some((name, "name contains a line break, which FTP cannot carry"))),
        }
    }

    /// Why `rel` is outside what this run syncs now, if it is.
    pub fn out_of_scope(&self, rel: &RelPath) -> Option<&'static str> {
        if !self.recursive && rel.parent().is_some() {
            Some("below the top level (--no-recursive) now; dropped from the queue")
        } else if self.excludes.is_match(rel.as_str()) {
            Some("excluded now; dropped from the queue")
        } else {
            None
        }
    }

    pub fn contains(&self, rel: &RelPath) -> bool {
        self.out_of_scope(rel).is_none()
    }

    /// Whether a walk of `dir` (`None`: WATCH_DIR) can find anything synced:
    /// with `--no-recursive`, nothing below a directory of the top level is.
    pub fn walks_into(&self, dir: Option<&RelPath>) -> bool {
        self.recursive || dir.is_none()
    }

    /// Whether a walk enters or reports the absolute `path` (excluded
    /// directories are not entered at all).
    pub fn keeps(&self, path: &Path) -> bool {
        !RelPath::from_local(&self.watch_dir, path).is_ok_and(|r| self.excludes.is_match(r.as_str()))
    }
}
