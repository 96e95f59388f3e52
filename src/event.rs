//! What reaches the main loop, from every thread: filesystem changes,
//! signals and transfer outcomes. Kept free of notify and suppaftp types.

use std::time::Duration;

use crate::ftp::Failure;
use crate::relpath::RelPath;
use crate::watcher::Change;

#[derive(Debug)]
pub enum Event {
    Fs(Change),
    Signal(i32),
    Done(Outcome),
    /// A worker thread ended (after the job channel closed).
    WorkerExit,
}

/// One unit of remote work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Upload(RelPath),
    Delete(RelPath),
    Rename { from: RelPath, to: RelPath },
}

impl Job {
    /// The path whose state the job changes.
    pub fn path(&self) -> &RelPath {
        match self {
            Self::Upload(p) | Self::Delete(p) => p,
            Self::Rename { to, .. } => to,
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub job: Job,
    pub result: Result<Done, Failure>,
}

/// What a successful job did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub bytes: u64,
    pub elapsed: Duration,
}
