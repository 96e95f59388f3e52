//! What every fault scenario (tests/faults.rs) needs besides the proxy: seeds that are
//! printed so that a run can be replayed, a record of every version each local file had,
//! a checker that watches the server's disk during the whole run and flags any final name
//! that ever holds bytes that were never a complete local version, and the checks at the
//! end (the trees are equal, no temporary name is left, the daemon lives, its log reads).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::toxics::Rng;
use super::{files_under, tree_difference};

/// The suffixes of ftpmonitor's own remote names (temporary uploads, old copies set aside).
pub const TEMP_SUFFIXES: [&str; 2] = [".ftpmonitor-part", ".ftpmonitor-old"];

/// Whether a remote file name is one of ftpmonitor's temporary names.
pub fn is_temp(rel: &str) -> bool {
    TEMP_SUFFIXES.iter().any(|s| rel.ends_with(s))
}

/// Whether a remote file name is a server's own temporary name: pure-ftpd receives every
/// upload into `.pureftpd-upload.*` next to the target and renames it when the upload
/// ends (the target here is ftpmonitor's temporary name).
pub fn is_server_temp(rel: &str) -> bool {
    rel.rsplit('/').next().is_some_and(|n| n.starts_with(".pureftpd-upload."))
}

/// The seed of a scenario: `FTPMONITOR_FAULT_SEED` if set, else drawn from the clock;
/// printed with the command that replays the run.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("FTPMONITOR_FAULT_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| {
        let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    eprintln!(
        "{test}: seed {seed} (replay: FTPMONITOR_FAULT_SEED={seed} cargo test --test faults -- --ignored --exact {test})"
    );
    seed
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Every version each local file had, as fingerprints: what the checker accepts under a
/// final name on the server. A version is recorded before it is written, so the checker
/// can never see bytes before they are known.
#[derive(Default)]
pub struct Versions {
    map: Mutex<HashMap<String, HashSet<[u8; 32]>>>,
}

impl Versions {
    pub fn new() -> Arc<Versions> {
        Arc::new(Versions::default())
    }

    pub fn record(&self, rel: &str, bytes: &[u8]) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).entry(rel.to_owned()).or_default().insert(hash(bytes));
    }

    /// Records `bytes` as a version of `rel`, then writes them to `root/rel` (parents
    /// created).
    pub fn write(&self, root: &Path, rel: &str, bytes: &[u8]) {
        self.record(rel, bytes);
        super::write_file(root, rel, bytes);
    }

    /// Writes `bytes` into `root/rel` in place (no truncation first), then cuts the file
    /// to their length: the file's inode stays, as with an editor that saves in place.
    pub fn rewrite_in_place(&self, root: &Path, rel: &str, bytes: &[u8]) {
        use std::io::Write;
        self.record(rel, bytes);
        let mut f = std::fs::OpenOptions::new().write(true).open(root.join(rel)).expect("open for rewrite");
        f.write_all(bytes).expect("rewrite");
        f.set_len(bytes.len() as u64).expect("cut to length");
    }

    /// Truncates `root/rel` to `len` bytes, recording what is left.
    pub fn truncate(&self, root: &Path, rel: &str, len: u64) {
        let path = root.join(rel);
        let bytes = std::fs::read(&path).expect("read before truncating");
        let len = len.min(bytes.len() as u64);
        self.record(rel, &bytes[..usize::try_from(len).expect("fits")]);
        std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(len)).expect("truncate");
    }

    /// After `root/from` (a file or directory) was renamed to `root/to`: every version
    /// known below `from` is also a version below `to`.
    pub fn renamed(&self, from: &str, to: &str) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let below = format!("{from}/");
        let moved: Vec<(String, HashSet<[u8; 32]>)> = map
            .iter()
            .filter(|(k, _)| *k == from || k.starts_with(&below))
            .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
            .collect();
        for (k, v) in moved {
            map.entry(k).or_default().extend(v);
        }
    }

    fn knows(&self, rel: &str, h: &[u8; 32]) -> bool {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).get(rel).is_some_and(|s| s.contains(h))
    }

    /// Versions recorded, in all.
    pub fn count(&self) -> usize {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).values().map(HashSet::len).sum()
    }
}

/// Watches the server's copy of REMOTE_DIR during a run: every final name (not a
/// temporary one), each time its inode, size or mtime changes, must hold a complete
/// version of the local file of that name.
pub struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    violations: Arc<Mutex<Vec<String>>>,
    /// (file states looked at, rounds)
    looks: Arc<AtomicU64>,
    rounds: Arc<AtomicU64>,
}

impl Checker {
    pub fn start(remote: &Path, versions: &Arc<Versions>) -> Checker {
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let looks = Arc::new(AtomicU64::new(0));
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, violations, looks, rounds) =
                (Arc::clone(&stop), Arc::clone(&violations), Arc::clone(&looks), Arc::clone(&rounds));
            let remote = remote.to_path_buf();
            let versions = Arc::clone(versions);
            std::thread::spawn(move || {
                let mut seen: HashMap<String, (u64, u64, i64, i64)> = HashMap::new();
                let mut last = false;
                loop {
                    // one more round after the stop, so the final state is looked at too
                    if stop.load(Ordering::SeqCst) {
                        last = true;
                    }
                    check_once(&remote, &versions, &mut seen, &violations, &looks);
                    rounds.fetch_add(1, Ordering::Relaxed);
                    if last {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Checker { stop, thread: Some(thread), violations, looks, rounds }
    }

    /// Stops the checker; panics with every violation it saw. Returns (file states
    /// looked at, rounds).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the checker thread panicked");
        }
        let v = self.violations.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert!(
            v.is_empty(),
            "the server showed {} file state(s) under a final name that were never a complete local version:\n{}",
            v.len(),
            v.join("\n")
        );
        (self.looks.load(Ordering::Relaxed), self.rounds.load(Ordering::Relaxed))
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn check_once(
    remote: &Path,
    versions: &Versions,
    seen: &mut HashMap<String, (u64, u64, i64, i64)>,
    violations: &Mutex<Vec<String>>,
    looks: &AtomicU64,
) {
    for rel in files_under(remote) {
        if is_temp(&rel) || is_server_temp(&rel) {
            continue;
        }
        let path = remote.join(&rel);
        let key_of = |m: &std::fs::Metadata| (m.ino(), m.len(), m.mtime(), m.mtime_nsec());
        // A cheap look first; the bytes are read only from a file state not seen before.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if seen.get(&rel) == Some(&key_of(&m)) => continue,
            Ok(_) => {}
            Err(_) => continue,
        }
        // Opened once: the inode read is the one whose metadata is recorded.
        let Ok(mut f) = std::fs::File::open(&path) else { continue };
        let Ok(meta) = f.metadata() else { continue };
        let key = key_of(&meta);
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        if std::io::Read::read_to_end(&mut f, &mut bytes).is_err() {
            continue;
        }
        looks.fetch_add(1, Ordering::Relaxed);
        let h = hash(&bytes);
        if !versions.knows(&rel, &h) {
            violations.lock().unwrap_or_else(PoisonError::into_inner).push(format!(
                "  {rel}: {} bytes (inode {}) that were never a complete version of the local file",
                bytes.len(),
                meta.ino()
            ));
        }
        seen.insert(rel, key);
    }
}

/// The remote names that are ftpmonitor's temporary names.
pub fn temp_names(remote: &Path) -> Vec<String> {
    files_under(remote).into_iter().filter(|f| is_temp(f)).collect()
}

/// Panics unless every line of the log reads: a `YYYY-MM-DD HH:MM:SS - ` timestamp, no
/// control characters, no panic, at most 1000 bytes.
pub fn assert_log_readable(log: &str, what: &str) {
    for (i, line) in log.lines().enumerate() {
        let b = line.as_bytes();
        let stamped = b.len() >= 22
            && b[..22].iter().enumerate().all(|(i, &c)| match i {
                4 | 7 | 20 => c == b'-',
                10 | 19 | 21 => c == b' ',
                13 | 16 => c == b':',
                _ => c.is_ascii_digit(),
            });
        assert!(stamped, "{what}: log line {} has no timestamp: {line:?}", i + 1);
        assert!(!line.chars().any(char::is_control), "{what}: log line {} has control characters: {line:?}", i + 1);
        assert!(line.len() <= 1000, "{what}: log line {} is {} bytes long: {:?}...", i + 1, line.len(), &line[..200]);
        assert!(!line.contains("panicked"), "{what}: the daemon panicked: {line}");
    }
}

/// The log lines that contain any of `needles`.
pub fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines().filter(|l| needles.iter().any(|n| l.contains(n))).collect()
}

/// Sizes for "mixed" files: many tiny, some small, a few of megabytes.
pub fn mixed_size(rng: &mut Rng) -> usize {
    let size = match rng.between(0, 99) {
        0..=9 => rng.between(0, 1),
        10..=44 => rng.between(2, 4096),
        45..=79 => rng.between(4097, 256 * 1024),
        80..=94 => rng.between(256 * 1024, 2 << 20),
        _ => rng.between(2 << 20, 6 << 20),
    };
    usize::try_from(size).expect("fits")
}

/// `len` bytes from the generator (fast, reproducible from the seed).
pub fn bytes_from(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Why `remote` is not a byte-identical copy of `local` (nothing else, no temporary
/// name); `None` when it is. As [`tree_difference`], but cheap for 50,000 small files:
/// sizes first, then files read whole up to 16 MiB (chunked above).
pub fn difference(local: &Path, remote: &Path) -> Option<String> {
    let (want, have) = (files_under(local), files_under(remote));
    if want != have {
        return tree_difference(local, remote);
    }
    let differ: Vec<&String> = want
        .iter()
        .filter(|f| {
            let (a, b) = (local.join(f), remote.join(f));
            match (std::fs::metadata(&a), std::fs::metadata(&b)) {
                (Ok(ma), Ok(mb)) if ma.len() != mb.len() => true,
                (Ok(ma), Ok(_)) if ma.len() <= 16 << 20 => std::fs::read(&a).ok() != std::fs::read(&b).ok(),
                (Ok(_), Ok(_)) => !super::same_contents(&a, &b),
                _ => true,
            }
        })
        .collect();
    if differ.is_empty() { None } else { Some(format!("files whose bytes differ on the server: {differ:?}")) }
}

/// One line of the results: printed as `RESULT | scenario | server | injected | lost |
/// ...`, collected for RELIABILITY.md.
pub fn result_line(scenario: &str, server: &str, injected: &str, lost: usize, extra: &str) {
    eprintln!("RESULT | {scenario} | {server} | {injected} | lost {lost} | {extra}");
}

/// A tmpfs mounted at a path for a test (the server's disk, to fill it); unmounted
/// (lazily, so a process still inside cannot keep it) on drop.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("create the mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs at {} failed (the disk-full scenario needs root and mount(2)): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path: path.to_owned() }
    }

    /// Grows (or shrinks) the file system.
    pub fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount {}: {}", self.path.display(), String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// Waits (polling) until `cond`, for at most `timeout`; the time it took, or `None`.
pub fn within(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    super::poll_until(timeout, &mut cond).then(|| start.elapsed())
}
