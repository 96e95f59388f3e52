//! A test's throw-away directories and its FTP server, shared by every process
//! the test starts, and the sweep that kills whatever it started when the test
//! ends (passing or not).
//!
//! Layout of a test's temporary directory (`Sandbox::tmp`):
//!
//! ```text
//! watch/            WATCH_DIR
//! state/            --state-dir
//! outside/          a sibling on the same filesystem (secrets, trees to move in)
//! home/, run/, xdg/ HOME, XDG_RUNTIME_DIR, XDG_*_HOME of the child
//! ftpmonitor.pid    --pid-file
//! ftpmonitor.log    --log-file
//! stdout.N stderr.N what the N-th process started here printed
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use super::contract;
use super::proc;
use super::server::FtpServer;

/// The directories and the FTP server one test works with. Shared by every process the
/// test starts (see [`Daemon::again`]); dropping the last handle kills every process whose
/// command line mentions the directory, stops the server and removes the files.
pub struct Sandbox {
    pub(super) dir: PathBuf,
    pub(super) server: FtpServer,
    pub(super) spawned: AtomicUsize,
    pub(super) _tmp: TempDir,
}

impl Sandbox {
    pub(super) fn new(ip: IpAddr) -> Sandbox {
        Sandbox::with_server(FtpServer::start_on(ip))
    }

    pub(super) fn with_server(server: FtpServer) -> Sandbox {
        let tmp = tempfile::Builder::new().prefix("ftpmonitor-it.").tempdir().expect("create the test's temp dir");
        let dir = tmp.path().canonicalize().expect("canonicalize the temp dir");
        for sub in ["watch", "state", "outside", "home", "run", "xdg"] {
            std::fs::create_dir(dir.join(sub)).expect("create a test directory");
        }
        Sandbox { dir, server, spawned: AtomicUsize::new(0), _tmp: tmp }
    }

    /// The test's private temporary directory.
    pub fn tmp(&self) -> &Path {
        &self.dir
    }

    /// WATCH_DIR.
    pub fn watch_dir(&self) -> PathBuf {
        self.dir.join("watch")
    }

    /// `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// A directory next to WATCH_DIR, on the same filesystem, that the daemon must not read.
    pub fn outside_dir(&self) -> PathBuf {
        self.dir.join("outside")
    }

    /// `--pid-file`.
    pub fn pid_file_path(&self) -> PathBuf {
        self.dir.join("ftpmonitor.pid")
    }

    /// `--log-file`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("ftpmonitor.log")
    }

    /// The FTP server.
    pub fn server(&self) -> &FtpServer {
        &self.server
    }

    /// Writes `bytes` to `rel` under WATCH_DIR, creating parent directories.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.watch_dir().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, bytes).expect("write a file into the watch dir");
        path
    }

    /// The PID file's content as a number, if the file exists and holds one.
    pub fn pid_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file_path()).ok()?.trim().parse().ok()
    }

    /// The log file, or "" while it does not exist.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// How many log lines report the upload of exactly `rel`.
    pub fn upload_count(&self, rel: &str) -> usize {
        self.log().lines().filter(|l| contract::is_upload_line(l, rel)).count()
    }

    /// Panics unless every line of the log starts with `YYYY-MM-DD HH:MM:SS - `.
    pub fn assert_log_well_formed(&self) {
        let log = self.log();
        for (i, line) in log.lines().enumerate() {
            assert!(
                contract::has_timestamp(line),
                "log line {} does not start with `YYYY-MM-DD HH:MM:SS - `: {line:?}\n--- log ---\n{log}",
                i + 1
            );
        }
    }

    pub(super) fn next_output_files(&self) -> (PathBuf, PathBuf) {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        (self.dir.join(format!("stdout.{n}")), self.dir.join(format!("stderr.{n}")))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A process that has only just been started may not show its argv in
        // /proc yet: sweep until none is left, for a bounded time.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            proc::kill_processes_mentioning(&self.dir);
            if proc::processes_mentioning(&self.dir).is_empty() || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub(super) fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}
