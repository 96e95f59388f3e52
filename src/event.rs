//! What reaches the main loop, from every thread: filesystem changes,
//! signals and transfer outcomes. Kept free of notify and suppaftp types.

use std::path::PathBuf;
use std::time::Duration;

use crate::ftp::{Failure, RemoteEntry, Uploaded};
use crate::localfs::Stamp;
use crate::relpath::{Escaped, RelPath};

/// A filesystem change, with absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created, written or closed after writing: upload it after the cooldown.
    Touched(PathBuf),
    /// A directory appeared (created or moved in): walk it now.
    DirAppeared(PathBuf),
    /// Deleted or moved out of the tree.
    Removed(PathBuf),
    /// Moved within the tree.
    Renamed { from: PathBuf, to: PathBuf },
    /// Moved away from this name: a move out of the tree, unless a
    /// [`Change::Renamed`] for it follows at once.
    MovedOut(PathBuf),
    /// Moved to this name: a move into the tree, unless a
    /// [`Change::Renamed`] for it follows at once.
    MovedIn(PathBuf),
    /// Events were lost (queue overflow): reconcile the whole tree.
    Rescan,
    /// The mount table changed (somewhere): the loop looks whether the mounts
    /// at or below the watch directory did.
    Mounts,
    /// A watch error, already phrased for the log.
    Error(String),
}

/// What a hand-off did (see [`crate::localfs::Tree::hand_off`]), or why it failed.
pub type HandOffResult = Result<crate::localfs::HandedOff, String>;

#[derive(Debug)]
pub enum Event {
    Fs(Change),
    Signal(i32),
    Done(Outcome),
    /// Move mode: the hand-off thread removed or archived a file, or not.
    HandedOff {
        rel: RelPath,
        stamp: crate::localfs::Stamp,
        hash: [u8; 32],
        result: HandOffResult,
    },
    /// A worker thread ended (after the job channel closed).
    WorkerExit,
}

/// One unit of remote work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// `resume`: the file's stamp at an attempt that broke off.
    Upload {
        rel: RelPath,
        /// The local file as planned (the journal records it while the upload runs).
        stamp: Stamp,
        resume: Option<Stamp>,
        /// Publish what was read even if the file changed meanwhile (it
        /// never goes quiet; see the engine's `changed_streak`).
        snapshot: bool,
        /// The fingerprint the server's copy has, when only the mtime moved:
        /// the worker hashes the file first and sends nothing if it matches.
        known: Option<[u8; 32]>,
    },
    Delete(RelPath),
    Rename {
        from: RelPath,
        to: RelPath,
    },
    /// List a remote directory (`None`: REMOTE_DIR itself).
    List(Option<RelPath>),
    /// Delete the temporary upload of this path left by a crash.
    RemoveTemp(RelPath),
    /// Clean up the old copy of this path that an upload renamed aside
    /// (servers that refuse to rename over a file) and a crash left behind:
    /// dropped if the path is on the server, else renamed back when `restore`.
    RemoveAside {
        rel: RelPath,
        restore: bool,
    },
    /// Remove an empty remote directory (full remote path).
    RemoveDir(String),
}

impl Job {
    /// What the job works on: at most one job per key is in flight.
    pub fn key(&self) -> String {
        match self {
            Self::Upload { rel, .. } | Self::Delete(rel) | Self::Rename { to: rel, .. } => rel.as_str().to_string(),
            Self::List(dir) => format!("\0list\0{}", dir.as_ref().map_or("", RelPath::as_str)),
            Self::RemoveTemp(rel) => format!("\0temp\0{}", rel.as_str()),
            Self::RemoveAside { rel, .. } => format!("\0aside\0{}", rel.as_str()),
            Self::RemoveDir(dir) => format!("\0rmd\0{dir}"),
        }
    }

    /// The synced path the job changes, for file jobs.
    pub fn path(&self) -> Option<&RelPath> {
        match self {
            Self::Upload { rel, .. } | Self::Delete(rel) | Self::Rename { to: rel, .. } => Some(rel),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub job: Job,
    pub result: Result<Done, Failure>,
    pub elapsed: Duration,
    /// Remote directories created on the way (full remote paths).
    pub created_dirs: Vec<String>,
}

/// What a successful job produced.
#[derive(Debug)]
pub enum Done {
    Uploaded(Uploaded),
    /// The file's bytes are those the server has (only its mtime moved).
    Unchanged(Stamp),
    Listed(Vec<RemoteEntry>),
    Ok,
}

impl Job {
    /// The job for a log line: `a/b.txt`, `a -> b`, `listing of d`.
    pub fn name(&self) -> String {
        match self {
            Self::Upload { rel, .. } | Self::Delete(rel) => rel.to_string(),
            Self::Rename { from, to } => format!("{from} -> {to}"),
            Self::List(dir) => {
                format!("listing of {}", dir.as_ref().map_or_else(|| "/".to_string(), ToString::to_string))
            }
            Self::RemoveTemp(rel) => format!("temporary upload of {rel}"),
            Self::RemoveAside { rel, .. } => format!("old copy of {rel} renamed aside"),
            Self::RemoveDir(dir) => Escaped(dir).to_string(),
        }
    }

    /// A file job, for a debug line about a decision: `upload of a/b.txt`.
    pub fn what(&self) -> String {
        match self {
            Self::Upload { rel, .. } => format!("upload of {rel}"),
            Self::Delete(rel) => format!("delete of {rel}"),
            Self::Rename { from, to } => format!("rename of {from} to {to}"),
            other => other.name(),
        }
    }
}
