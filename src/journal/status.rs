//! The journal as `ftpmonitor status`, `pause` and `resume` read it: read
//! only, without creating or changing anything.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::Journal;
use crate::relpath::EscapedPath;

/// At most this many failing files are named.
pub const FAILING_SHOWN: usize = 10;

/// A file whose last attempt failed, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Failing {
    pub path: String,
    pub error: String,
}

/// A read-only view for `ftpmonitor status`.
#[derive(Debug, Default, Clone)]
pub struct JobStatus {
    /// The job's row in the journal.
    pub id: i64,
    pub watch_dir: String,
    pub target: String,
    pub started_at: Option<i64>,
    pub pid: Option<i64>,
    pub synced: i64,
    pub pending: i64,
    pub last_upload_at: Option<i64>,
    pub last_upload_path: Option<String>,
    pub last_error_at: Option<i64>,
    pub last_error: Option<String>,
    pub paused: bool,
    /// When the oldest pending operation was queued (seconds since the epoch).
    pub oldest_pending_at: Option<i64>,
    /// Since when the server is unreachable, as the daemon last wrote.
    pub server_down_since: Option<i64>,
    /// Files whose last attempt failed: how many, and the first
    /// [`FAILING_SHOWN`] of them, oldest first.
    pub failing_count: i64,
    pub failing: Vec<Failing>,
}

/// Reads every job's status from the journal in `state_dir`, without
/// creating or changing anything.
pub fn read_status(state_dir: &Path) -> Result<Vec<JobStatus>, String> {
    let path = Journal::path_in(state_dir);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {}: {e}", EscapedPath(&path)))?;
    let _ = conn.busy_timeout(Duration::from_secs(2));
    let q = || -> rusqlite::Result<Vec<JobStatus>> {
        let mut stmt = conn.prepare(
            "SELECT id, watch_dir, host, port, remote_dir, user, started_at, pid,
                    last_upload_at, last_upload_path, last_error_at, last_error,
                    (SELECT count(*) FROM files f WHERE f.job = jobs.id),
                    (SELECT count(*) FROM queue q WHERE q.job = jobs.id),
                    EXISTS (SELECT 1 FROM pauses p WHERE p.job = jobs.id),
                    (SELECT min(queued_at) FROM queue q WHERE q.job = jobs.id),
                    (SELECT count(*) FROM queue q WHERE q.job = jobs.id AND q.last_error IS NOT NULL)
             FROM jobs ORDER BY started_at DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            let host: String = r.get(2)?;
            let port: i64 = r.get(3)?;
            let remote: String = r.get(4)?;
            let user: String = r.get(5)?;
            Ok(JobStatus {
                watch_dir: r.get(1)?,
                target: format!("ftp://{user}@{host}:{port}{remote}"),
                started_at: r.get(6)?,
                pid: r.get(7)?,
                last_upload_at: r.get(8)?,
                last_upload_path: r.get(9)?,
                last_error_at: r.get(10)?,
                last_error: r.get(11)?,
                synced: r.get(12)?,
                pending: r.get(13)?,
                paused: r.get(14)?,
                oldest_pending_at: r.get(15)?,
                server_down_since: None,
                failing_count: r.get(16)?,
                failing: Vec::new(),
                id: r.get(0)?,
            })
        })?;
        let mut jobs: Vec<JobStatus> = rows.collect::<rusqlite::Result<_>>()?;
        let mut failing = conn.prepare(
            "SELECT path, last_error FROM queue WHERE job = ?1 AND last_error IS NOT NULL
             ORDER BY queued_at, path LIMIT ?2",
        )?;
        // A daemon older than the outages table wrote none: its server's state is unknown.
        let mut outage = conn.prepare("SELECT down_since FROM outages WHERE job = ?1").ok();
        for j in &mut jobs {
            if let Some(q) = outage.as_mut() {
                j.server_down_since = q.query_row(params![j.id], |r| r.get(0)).optional()?;
            }
            if j.failing_count > 0 {
                let shown = i64::try_from(FAILING_SHOWN).unwrap_or(i64::MAX);
                j.failing = failing
                    .query_map(params![j.id, shown], |r| Ok(Failing { path: r.get(0)?, error: r.get(1)? }))?
                    .collect::<rusqlite::Result<_>>()?;
            }
        }
        Ok(jobs)
    };
    q().optional_ok().map_err(|e| format!("cannot read {}: {e}", EscapedPath(&path)))
}

trait OptionalOk<T> {
    fn optional_ok(self) -> rusqlite::Result<T>;
}

impl<T: Default> OptionalOk<T> for rusqlite::Result<T> {
    /// A journal created by a daemon that has not written its schema yet
    /// reads as empty.
    fn optional_ok(self) -> rusqlite::Result<T> {
        match self {
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => Ok(T::default()),
            other => other.optional().map(Option::unwrap_or_default),
        }
    }
}
