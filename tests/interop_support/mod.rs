//! Support for the interop suite: real FTP daemons unpacked by `tests/interop/setup.sh`,
//! the real `ftpmonitor` binary, a fault-injecting proxy, and checks on the files the
//! server wrote to its disk.
//!
//! Nothing here sleeps to synchronise: every wait polls a condition until a deadline and
//! panics with what it waited for, the daemon's log and the server's logs.

// Each scenario uses a different subset of the helpers.
#![allow(dead_code)]

pub mod faults;
pub mod ftpmonitor;
pub mod probe;
pub mod proxy;
pub mod servers;
pub mod tls;
pub mod toxics;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Deadline for anything that should happen "soon" (a daemon's start, a small upload).
/// Generous for a loaded 2-core CI machine; a passing test never waits for it.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Interval between two checks of a condition.
pub const POLL: Duration = Duration::from_millis(50);

/// The remote directory every scenario syncs into (below the FTP user's root).
pub const REMOTE_DIR: &str = "/drop";

/// Where setup.sh unpacked the servers: `$FTPMONITOR_INTEROP_DIR`, else
/// `<crate>/target/interop-servers`.
pub fn servers_dir() -> PathBuf {
    let dir = std::env::var_os("FTPMONITOR_INTEROP_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("interop-servers"), PathBuf::from);
    assert!(
        dir.join("pure-ftpd").is_dir() && dir.join("vsftpd").is_dir() && dir.join("proftpd-core").is_dir(),
        "the FTP servers are not unpacked in {}: run tests/interop/setup.sh (as root) first",
        dir.display()
    );
    dir
}

/// The server configuration templates: `tests/interop/`.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop")
}

/// Polls `cond` every [`POLL`] until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// A fresh temporary directory that the servers' unprivileged users can traverse.
/// With `FTPMONITOR_INTEROP_KEEP=1` it is kept after the test (see [`KeptDir`]).
pub fn temp_dir(prefix: &str) -> KeptDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("create a temp dir");
    set_mode(dir.path(), 0o755);
    KeptDir(Some(dir))
}

/// A temporary directory, removed on drop unless `FTPMONITOR_INTEROP_KEEP=1` is set
/// (then its path is printed, for looking at the logs of a failed test).
pub struct KeptDir(Option<tempfile::TempDir>);

impl KeptDir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("not dropped yet").path()
    }
}

impl Drop for KeptDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && std::env::var_os("FTPMONITOR_INTEROP_KEEP").is_some_and(|v| v == "1")
        {
            eprintln!("kept {}", dir.keep().display());
        }
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Writes `bytes` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent directories");
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// `len` bytes from /dev/urandom.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("read /dev/urandom");
    buf
}

/// Writes a file of `len` random bytes to `root/rel` without holding it in memory.
pub fn write_random_file(root: &Path, rel: &str, len: u64) -> PathBuf {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent directories");
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("create file"));
    let mut src = std::fs::File::open("/dev/urandom").expect("open /dev/urandom").take(len);
    let copied = std::io::copy(&mut src, &mut out).expect("copy random bytes");
    assert_eq!(copied, len);
    out.flush().expect("flush");
    path
}

/// Every regular file below `root`, as sorted relative paths with `/` separators.
/// Directories are walked, symlinks are not followed.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                walk(root, &path, out);
            } else if ft.is_file() {
                let rel = path.strip_prefix(root).expect("below root");
                out.push(rel.to_str().expect("test file names are UTF-8").to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Whether two files have the same bytes (compared in chunks: files can be 100 MiB).
pub fn same_contents(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if ma.len() != mb.len() {
        return false;
    }
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = match read_full(&mut ra, &mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        let m = match read_full(&mut rb, &mut bb) {
            Ok(m) => m,
            Err(_) => return false,
        };
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Why `remote` is not yet a byte-identical copy of the files of `local` (same relative
/// paths, same bytes, nothing else: no temporary or set-aside files either); `None` when
/// it is.
pub fn tree_difference(local: &Path, remote: &Path) -> Option<String> {
    let (want, have) = (files_under(local), files_under(remote));
    if want != have {
        let missing: Vec<_> = want.iter().filter(|f| !have.contains(f)).collect();
        let extra: Vec<_> = have.iter().filter(|f| !want.contains(f)).collect();
        return Some(format!("missing on the server: {missing:?}; extra on the server: {extra:?}"));
    }
    let differ: Vec<_> = want.iter().filter(|f| !same_contents(&local.join(f), &remote.join(f))).collect();
    if differ.is_empty() { None } else { Some(format!("files whose bytes differ on the server: {differ:?}")) }
}

/// Sizes of the files below `root`, for failure messages.
pub fn describe_tree(root: &Path) -> String {
    files_under(root)
        .iter()
        .map(|f| format!("{f} ({} B)", std::fs::metadata(root.join(f)).map_or(0, |m| m.len())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether diagnostics print whole logs and transcripts instead of their tails
/// (`FTPMONITOR_FAULT_FULL_LOGS=1`, to study a failure that only shows now and then).
pub fn full_logs() -> bool {
    std::env::var_os("FTPMONITOR_FAULT_FULL_LOGS").is_some_and(|v| v == "1")
}

/// The last `lines` lines of a text file (empty when it does not exist); every line
/// with [`full_logs`].
pub fn tail(path: &Path, lines: usize) -> String {
    let lines = if full_logs() { usize::MAX } else { lines };
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
