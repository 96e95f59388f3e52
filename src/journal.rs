//! The sync journal: an SQLite database in the state directory recording, per
//! job, what was uploaded (size, mtime, BLAKE3 fingerprint, remote path,
//! time) and the queue of pending work, so that a restart, a `kill -9` or a
//! reboot loses no change and re-sends nothing that is already there.
//!
//! One connection, owned by the main loop (opened after the fork, never shared
//! between threads). Changes are collected in a [`Batch`] and written in one
//! transaction per loop turn. WAL with `synchronous=NORMAL`: a crash never
//! corrupts the file and a power loss costs at most the last turns, which the
//! next start's reconcile finds again anyway. Several jobs (different watch
//! directories or servers) can share one state directory: every row carries
//! its job's id. Inspect it with `sqlite3 STATE_DIR/journal.sqlite`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::Config;
use crate::relpath::{EscapedPath, RelPath};

pub const FILE_NAME: &str = "journal.sqlite";
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    watch_dir   TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    remote_dir  TEXT NOT NULL,
    user        TEXT NOT NULL,
    started_at  INTEGER,
    pid         INTEGER,
    last_upload_at   INTEGER,
    last_upload_path TEXT,
    last_error_at    INTEGER,
    last_error       TEXT,
    UNIQUE (watch_dir, host, port, remote_dir, user)
);
-- What was last uploaded, per path relative to the watch directory.
CREATE TABLE IF NOT EXISTS files (
    job       INTEGER NOT NULL REFERENCES jobs(id),
    path      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    blake3    BLOB,
    remote    TEXT NOT NULL,
    synced_at INTEGER NOT NULL,
    PRIMARY KEY (job, path)
) WITHOUT ROWID;
-- Work not yet done: op is 'upload' or 'delete'.
CREATE TABLE IF NOT EXISTS queue (
    job        INTEGER NOT NULL REFERENCES jobs(id),
    path       TEXT NOT NULL,
    op         TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    queued_at  INTEGER NOT NULL,
    PRIMARY KEY (job, path)
) WITHOUT ROWID;
-- Uploads under way: after a crash the next start resumes each (REST) while
-- its local file is unchanged, and removes its temporary file otherwise.
CREATE TABLE IF NOT EXISTS uploads (
    job        INTEGER NOT NULL REFERENCES jobs(id),
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (job, path)
) WITHOUT ROWID;
-- Jobs paused by `ftpmonitor pause` (or SIGUSR2): no transfer starts, also
-- after a restart, until `ftpmonitor resume`.
CREATE TABLE IF NOT EXISTS pauses (
    job       INTEGER PRIMARY KEY REFERENCES jobs(id),
    paused_at INTEGER NOT NULL
);
-- --remove-source / --archive-dir: files uploaded (verified) whose local
-- copy is still to be removed or archived, as they were uploaded (size,
-- mtime, fingerprint). A restart finishes each while the file is unchanged.
CREATE TABLE IF NOT EXISTS handoffs (
    job       INTEGER NOT NULL REFERENCES jobs(id),
    path      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    blake3    BLOB NOT NULL,
    PRIMARY KEY (job, path)
) WITHOUT ROWID;
-- A row while the job's server is unreachable, since when (for `status`).
CREATE TABLE IF NOT EXISTS outages (
    job        INTEGER PRIMARY KEY REFERENCES jobs(id),
    down_since INTEGER NOT NULL
);
-- Remote directories this tool created (relative to the remote dir).
CREATE TABLE IF NOT EXISTS dirs (
    job  INTEGER NOT NULL REFERENCES jobs(id),
    path TEXT NOT NULL,
    PRIMARY KEY (job, path)
) WITHOUT ROWID;
";

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

/// What the journal knows about one synced file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: Option<[u8; 32]>,
}

/// A hand-off a run recorded: path, size, mtime (ns) and fingerprint of the
/// file as uploaded.
pub type PendingHandOff = (RelPath, u64, i64, [u8; 32]);

/// A pending operation as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upload,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Delete => "delete",
        }
    }
}

/// Changes collected during one loop turn, written in one transaction.
/// For each path (and directory) only the last change counts: a path queued
/// again after it was dequeued in the same turn stays queued.
#[derive(Debug, Default)]
pub struct Batch {
    /// `Some`: synced in this state; `None`: no longer on the server.
    files: HashMap<RelPath, Option<Synced>>,
    /// `Some`: queued for this operation; `None`: done.
    queue: HashMap<RelPath, Option<Op>>,
    failed: Vec<(RelPath, u32, String)>,
    /// `true`: created by the tool; `false`: removed.
    dirs: HashMap<String, bool>,
    /// `Some`: an upload of this local state started; `None`: it ended.
    uploads: HashMap<RelPath, Option<(u64, i64)>>,
    /// `Some`: the local file is to be handed off (removed or archived) in
    /// this state; `None`: that is done, or dropped.
    handoffs: HashMap<RelPath, Option<(u64, i64, [u8; 32])>>,
    last_upload: Option<RelPath>,
    last_error: Option<String>,
    /// `Some(false)`: the server became unreachable; `Some(true)`: it is back.
    server_up: Option<bool>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.queue.is_empty()
            && self.failed.is_empty()
            && self.dirs.is_empty()
            && self.uploads.is_empty()
            && self.handoffs.is_empty()
            && self.last_upload.is_none()
            && self.last_error.is_none()
            && self.server_up.is_none()
    }

    /// `rel` was uploaded in this state (and leaves the queue).
    pub fn synced(&mut self, rel: RelPath, s: Synced, uploaded: bool) {
        if uploaded {
            self.last_upload = Some(rel.clone());
        }
        self.queue.insert(rel.clone(), None);
        self.files.insert(rel, Some(s));
    }

    /// `rel` is no longer on the server (deleted or renamed away).
    pub fn forget(&mut self, rel: RelPath) {
        self.queue.insert(rel.clone(), None);
        self.files.insert(rel, None);
    }

    pub fn queue(&mut self, rel: RelPath, op: Op) {
        self.queue.insert(rel, Some(op));
    }

    pub fn dequeue(&mut self, rel: RelPath) {
        self.queue.insert(rel, None);
    }

    pub fn failed(&mut self, rel: RelPath, attempts: u32, error: String) {
        self.last_error = Some(format!("{rel}: {error}"));
        self.failed.push((rel, attempts, error));
    }

    pub fn error(&mut self, error: String) {
        self.last_error = Some(error);
    }

    /// The server became unreachable (`false`) or is reachable again.
    pub fn server(&mut self, up: bool) {
        self.server_up = Some(up);
    }

    /// An upload of `rel` as it is now (`size`, `mtime_ns`) started.
    pub fn upload_started(&mut self, rel: RelPath, size: u64, mtime_ns: i64) {
        self.uploads.insert(rel, Some((size, mtime_ns)));
    }

    /// The upload of `rel` ended (done, or nothing of it worth resuming).
    /// Its row goes, if an earlier batch wrote one (the journal knows).
    pub fn upload_ended(&mut self, rel: RelPath) {
        self.uploads.insert(rel, None);
    }

    /// The local file `rel` (`size`, `mtime_ns`, `hash`) is to be removed
    /// or archived (`Some`), or that is over (`None`).
    pub fn handoff(&mut self, rel: RelPath, state: Option<(u64, i64, [u8; 32])>) {
        self.handoffs.insert(rel, state);
    }

    /// Whether the batch holds a hand-off not yet written.
    pub fn has_handoffs(&self) -> bool {
        self.handoffs.values().any(Option::is_some)
    }

    pub fn dir_created(&mut self, dir: String) {
        self.dirs.insert(dir, true);
    }

    pub fn dir_removed(&mut self, dir: String) {
        self.dirs.insert(dir, false);
    }
}

/// The identity of a job: what is synced where.
#[derive(Debug, Clone)]
pub struct JobKey {
    pub watch_dir: String,
    pub host: String,
    pub port: u16,
    pub remote_dir: String,
    pub user: String,
}

impl JobKey {
    pub fn of(cfg: &Config) -> Self {
        Self {
            watch_dir: cfg.watch_dir.to_string_lossy().into_owned(),
            host: cfg.host.clone(),
            port: cfg.port,
            remote_dir: cfg.remote_dir.clone(),
            user: cfg.user.clone(),
        }
    }
}

pub struct Journal {
    conn: Connection,
    job: i64,
    path: PathBuf,
    /// The paths with a row in `uploads`: an upload that ends deletes its
    /// row only if there is one (most start and end within one batch).
    upload_rows: std::collections::HashSet<RelPath>,
}

impl Journal {
    /// The job's row (for readers of their own, such as the metrics).
    pub fn job_id(&self) -> i64 {
        self.job
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Nanoseconds since the epoch, the journal's mtime unit.
pub fn mtime_ns(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Journal {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// Opens (creating if needed, owner-only) the journal in `state_dir` and
    /// registers this process as the job's runner.
    pub fn open(state_dir: &Path, key: &JobKey) -> Result<Self, JournalError> {
        let path = Self::path_in(state_dir);
        let err = |source| JournalError { path: EscapedPath(&path).to_string(), source };
        // SQLite gives the -wal and -shm files the main file's permissions,
        // so creating it owner-only covers all three.
        if !path.exists() {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            if let Err(e) = opts.open(&path)
                && e.kind() != std::io::ErrorKind::AlreadyExists
            {
                return Err(err(rusqlite::Error::InvalidPath(path.clone())));
            }
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        // The journal is read whole into memory at start; the page cache
        // only serves the B-tree pages of writes: 512 KiB, not SQLite's 2 MiB.
        conn.pragma_update(None, "cache_size", -512).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
            params![SCHEMA_VERSION.to_string()],
        )
        .map_err(err)?;
        conn.execute(
            "INSERT OR IGNORE INTO jobs (watch_dir, host, port, remote_dir, user) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key.watch_dir, key.host, key.port, key.remote_dir, key.user],
        )
        .map_err(err)?;
        let job: i64 = conn
            .query_row(
                "SELECT id FROM jobs WHERE watch_dir = ?1 AND host = ?2 AND port = ?3 AND remote_dir = ?4 AND user = ?5",
                params![key.watch_dir, key.host, key.port, key.remote_dir, key.user],
                |r| r.get(0),
            )
            .map_err(err)?;
        conn.execute(
            "UPDATE jobs SET started_at = ?1, pid = ?2 WHERE id = ?3",
            params![now_secs(), std::process::id(), job],
        )
        .map_err(err)?;
        // A new run knows nothing of the server yet.
        conn.execute("DELETE FROM outages WHERE job = ?1", params![job]).map_err(err)?;
        let mut journal = Self { conn, job, path, upload_rows: std::collections::HashSet::new() };
        journal.upload_rows = journal.load_uploads()?.into_iter().map(|(rel, _, _)| rel).collect();
        Ok(journal)
    }

    fn err(&self, source: rusqlite::Error) -> JournalError {
        JournalError { path: EscapedPath(&self.path).to_string(), source }
    }

    /// The rows of `sql` (the job is `?1`) whose first column is a path
    /// that can be synced, with the rest of each row as `rest` reads it.
    fn path_rows<T>(
        &self,
        sql: &str,
        rest: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<(RelPath, T)>, JournalError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![self.job], |r| {
                // Checked where SQLite keeps it: one copy of each path.
                let path = r.get_ref(0)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok((RelPath::parse(path), rest(r)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            if let (Some(rel), value) = row.map_err(|e| self.err(e))? {
                out.push((rel, value));
            }
        }
        Ok(out)
    }

    /// Everything the journal knows was synced. The rows come in the order
    /// of the table's key, so the map is built from sorted input.
    pub fn load_synced(&self) -> Result<BTreeMap<RelPath, Synced>, JournalError> {
        let rows =
            self.path_rows("SELECT path, size, mtime_ns, blake3 FROM files WHERE job = ?1 ORDER BY path", |r| {
                // The fingerprint read in place: any other length than 32 is none.
                let hash = r.get_ref(3)?.as_blob_or_null().ok().flatten().and_then(|h| <[u8; 32]>::try_from(h).ok());
                Ok(Synced { size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0), mtime_ns: r.get(2)?, hash })
            })?;
        Ok(rows.into_iter().collect())
    }

    /// The queue left by the previous run.
    pub fn load_queue(&self) -> Result<Vec<(RelPath, Op, u32)>, JournalError> {
        let rows = self.path_rows("SELECT path, op, attempts FROM queue WHERE job = ?1 ORDER BY queued_at", |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, u32>(2)?))
        })?;
        Ok(rows
            .into_iter()
            .map(|(rel, (op, attempts))| (rel, if op == "delete" { Op::Delete } else { Op::Upload }, attempts))
            .collect())
    }

    /// Uploads a previous run left under way: path, size and mtime (ns) of the
    /// local file when each started.
    pub fn load_uploads(&self) -> Result<Vec<(RelPath, u64, i64)>, JournalError> {
        let rows = self.path_rows("SELECT path, size, mtime_ns FROM uploads WHERE job = ?1", |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })?;
        Ok(rows.into_iter().map(|(rel, (size, mtime_ns))| (rel, u64::try_from(size).unwrap_or(0), mtime_ns)).collect())
    }

    /// Hand-offs a previous run left to do: path, size, mtime (ns), fingerprint.
    pub fn load_handoffs(&self) -> Result<Vec<PendingHandOff>, JournalError> {
        let rows = self.path_rows("SELECT path, size, mtime_ns, blake3 FROM handoffs WHERE job = ?1", |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(rel, (size, mtime_ns, hash))| {
                Some((rel, u64::try_from(size).unwrap_or(0), mtime_ns, <[u8; 32]>::try_from(hash.as_slice()).ok()?))
            })
            .collect())
    }

    /// Whether the job is paused.
    pub fn paused(&self) -> Result<bool, JournalError> {
        self.conn
            .query_row("SELECT 1 FROM pauses WHERE job = ?1", params![self.job], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }

    /// Records a pause or its end at once (`status` and `pause`/`resume` read it).
    pub fn set_paused(&mut self, paused: bool) -> Result<(), JournalError> {
        let r = if paused {
            self.conn.execute(
                "INSERT OR REPLACE INTO pauses (job, paused_at) VALUES (?1, ?2)",
                params![self.job, now_secs()],
            )
        } else {
            self.conn.execute("DELETE FROM pauses WHERE job = ?1", params![self.job])
        };
        r.map(drop).map_err(|e| self.err(e))
    }

    /// Remote directories this tool created.
    pub fn load_dirs(&self) -> Result<Vec<String>, JournalError> {
        let mut stmt = self.conn.prepare("SELECT path FROM dirs WHERE job = ?1").map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![self.job], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Writes a batch in one transaction.
    pub fn apply(&mut self, batch: &mut Batch) -> Result<(), JournalError> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_secs();
        let job = self.job;
        let b = &*batch;
        let shown = EscapedPath(&self.path).to_string();
        // Rows of `uploads` written (true) or deleted, applied to
        // `upload_rows` once the transaction commits.
        let mut written: Vec<(RelPath, bool)> = Vec::new();
        let upload_rows = &self.upload_rows;
        let tx = self.conn.transaction().map_err(|e| JournalError { path: shown.clone(), source: e })?;
        let res = (|| -> rusqlite::Result<()> {
            {
                let mut q = tx.prepare_cached(
                    "INSERT INTO queue (job, path, op, queued_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (job, path) DO UPDATE SET op = excluded.op",
                )?;
                let mut d = tx.prepare_cached("DELETE FROM queue WHERE job = ?1 AND path = ?2")?;
                for (rel, op) in &b.queue {
                    match op {
                        Some(op) => q.execute(params![job, rel.as_str(), op.as_str(), now])?,
                        None => d.execute(params![job, rel.as_str()])?,
                    };
                }
                let mut f =
                    tx.prepare_cached("UPDATE queue SET attempts = ?3, last_error = ?4 WHERE job = ?1 AND path = ?2")?;
                for (rel, attempts, error) in &b.failed {
                    f.execute(params![job, rel.as_str(), attempts, error])?;
                }
                let mut s = tx.prepare_cached(
                    "INSERT OR REPLACE INTO files (job, path, size, mtime_ns, blake3, remote, synced_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let mut r = tx.prepare_cached("DELETE FROM files WHERE job = ?1 AND path = ?2")?;
                for (rel, syn) in &b.files {
                    match syn {
                        Some(syn) => s.execute(params![
                            job,
                            rel.as_str(),
                            i64::try_from(syn.size).unwrap_or(i64::MAX),
                            syn.mtime_ns,
                            syn.hash.as_ref().map(<[u8; 32]>::as_slice),
                            rel.as_str(),
                            now
                        ])?,
                        None => r.execute(params![job, rel.as_str()])?,
                    };
                }
                let mut us = tx.prepare_cached(
                    "INSERT OR REPLACE INTO uploads (job, path, size, mtime_ns, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let mut ue = tx.prepare_cached("DELETE FROM uploads WHERE job = ?1 AND path = ?2")?;
                for (rel, started) in &b.uploads {
                    match started {
                        Some((size, mtime_ns)) => {
                            us.execute(params![
                                job,
                                rel.as_str(),
                                i64::try_from(*size).unwrap_or(i64::MAX),
                                mtime_ns,
                                now
                            ])?;
                            written.push((rel.clone(), true));
                        }
                        None if upload_rows.contains(rel) => {
                            ue.execute(params![job, rel.as_str()])?;
                            written.push((rel.clone(), false));
                        }
                        None => {}
                    }
                }
                let mut hs = tx.prepare_cached(
                    "INSERT OR REPLACE INTO handoffs (job, path, size, mtime_ns, blake3) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let mut he = tx.prepare_cached("DELETE FROM handoffs WHERE job = ?1 AND path = ?2")?;
                for (rel, state) in &b.handoffs {
                    match state {
                        Some((size, mtime_ns, hash)) => hs.execute(params![
                            job,
                            rel.as_str(),
                            i64::try_from(*size).unwrap_or(i64::MAX),
                            mtime_ns,
                            hash.as_slice()
                        ])?,
                        None => he.execute(params![job, rel.as_str()])?,
                    };
                }
                let mut dc = tx.prepare_cached("INSERT OR IGNORE INTO dirs (job, path) VALUES (?1, ?2)")?;
                let mut dr = tx.prepare_cached("DELETE FROM dirs WHERE job = ?1 AND path = ?2")?;
                for (dir, created) in &b.dirs {
                    if *created {
                        dc.execute(params![job, dir])?;
                    } else {
                        dr.execute(params![job, dir])?;
                    }
                }
            }
            if let Some(rel) = &b.last_upload {
                tx.execute(
                    "UPDATE jobs SET last_upload_at = ?2, last_upload_path = ?3 WHERE id = ?1",
                    params![job, now, rel.as_str()],
                )?;
            }
            match b.server_up {
                Some(false) => {
                    tx.execute("INSERT OR IGNORE INTO outages (job, down_since) VALUES (?1, ?2)", params![job, now])?;
                }
                Some(true) => {
                    tx.execute("DELETE FROM outages WHERE job = ?1", params![job])?;
                }
                None => {}
            }
            if let Some(e) = &b.last_error {
                tx.execute("UPDATE jobs SET last_error_at = ?2, last_error = ?3 WHERE id = ?1", params![job, now, e])?;
            }
            Ok(())
        })();
        // On failure the batch is kept and written with the next one.
        res.and_then(|()| tx.commit()).map_err(|e| JournalError { path: shown, source: e })?;
        for (rel, row) in written {
            if row {
                self.upload_rows.insert(rel);
            } else {
                self.upload_rows.remove(&rel);
            }
        }
        *batch = Batch::default();
        Ok(())
    }

    /// Marks the job as stopped (for `status`).
    pub fn stopped(&mut self) {
        let _ = self.conn.execute("UPDATE jobs SET pid = NULL WHERE id = ?1", params![self.job]);
    }
}

mod status;
#[cfg(test)]
mod tests;

pub use status::{Failing, JobStatus, read_status};
