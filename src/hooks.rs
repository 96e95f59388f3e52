//! `--on-upload CMD` and `--on-failure CMD`: a program run after each
//! verified upload, or when a file's failure is first logged and when it is
//! given up. CMD is split like a shell command line (quotes, backslashes) but
//! run without a shell. What the program gets is in its environment:
//! `FTPMONITOR_EVENT` (`upload` or `failure`), `FTPMONITOR_PATH` (absolute
//! local path), `FTPMONITOR_RELPATH`, `FTPMONITOR_REMOTE_PATH`,
//! `FTPMONITOR_SIZE` and `FTPMONITOR_ERROR`; never the password.
//!
//! Hooks never hold syncing up: they run on two threads of their own, at
//! most two at a time, from a bounded queue (what does not fit is dropped,
//! and the log says so); each is killed, with everything it started, after
//! [`LIMIT`]. What they print goes to the log, escaped and capped.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::relpath::{Escaped, RelPath};

/// How long a hook may run.
pub const LIMIT: Duration = Duration::from_secs(60);
/// How many hooks run at once.
const AT_ONCE: usize = 2;
/// How many hook runs may wait.
const QUEUE: usize = 1000;
/// How much of a hook's output (each of stdout and stderr) reaches the log.
const SHOWN: usize = 4096;

/// A hook's command line, split.
pub type Argv = Vec<String>;

/// Splits `cmd` like a shell would split a simple command line, or says why
/// it cannot (for a one-line usage error).
pub fn parse(cmd: &str) -> Result<Argv, String> {
    match shlex::split(cmd) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        Some(_) => Err("is empty: give the program to run, e.g. \"/usr/local/bin/notify --upload\"".into()),
        None => Err(format!("{:?} has an unclosed quote or a trailing backslash", Escaped(cmd).to_string())),
    }
}

/// What happened to a file, for a hook.
#[derive(Debug, Clone)]
pub struct HookEvent {
    pub failed: bool,
    pub local: PathBuf,
    pub rel: RelPath,
    pub remote: String,
    pub size: Option<u64>,
    pub error: Option<String>,
}

struct Run {
    argv: Argv,
    event: HookEvent,
}

/// What every worker shares.
struct Shared {
    secret: String,
    limit: Duration,
    /// Shutdown: hooks still queued are not started.
    stopping: AtomicBool,
}

/// The hook runner. Dropping it lets the hooks queued and running finish
/// (each within [`LIMIT`]).
pub struct Hooks {
    on_upload: Option<Argv>,
    on_failure: Option<Argv>,
    tx: Option<SyncSender<Run>>,
    threads: Vec<JoinHandle<()>>,
    dropped: Arc<Mutex<(u64, Option<Instant>)>>,
    shared: Arc<Shared>,
}

impl Hooks {
    /// Starts the runner (no thread when there is no hook). `secret` is kept
    /// out of every hook's environment, whatever variable holds it.
    pub fn start(on_upload: Option<Argv>, on_failure: Option<Argv>, secret: &str) -> std::io::Result<Self> {
        Self::start_with_limit(on_upload, on_failure, secret, LIMIT)
    }

    fn start_with_limit(
        on_upload: Option<Argv>,
        on_failure: Option<Argv>,
        secret: &str,
        limit: Duration,
    ) -> std::io::Result<Self> {
        let mut hooks = Self {
            on_upload: None,
            on_failure: None,
            tx: None,
            threads: Vec::new(),
            dropped: Arc::new(Mutex::new((0, None))),
            shared: Arc::new(Shared { secret: secret.to_string(), limit, stopping: AtomicBool::new(false) }),
        };
        hooks.set_commands(on_upload, on_failure)?;
        Ok(hooks)
    }

    /// New command lines (SIGHUP); the threads start with the first hook.
    pub fn set_commands(&mut self, on_upload: Option<Argv>, on_failure: Option<Argv>) -> std::io::Result<()> {
        if self.tx.is_none() && (on_upload.is_some() || on_failure.is_some()) {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Run>(QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..AT_ONCE {
                let (rx, shared) = (Arc::clone(&rx), Arc::clone(&self.shared));
                self.threads
                    .push(std::thread::Builder::new().name(format!("hook-{i}")).spawn(move || worker(&rx, &shared))?);
            }
            self.tx = Some(tx);
        }
        self.on_upload = on_upload;
        self.on_failure = on_failure;
        Ok(())
    }

    /// A verified upload.
    pub fn uploaded(&self, event: HookEvent) {
        if let Some(argv) = &self.on_upload {
            self.queue(argv.clone(), event);
        }
    }

    /// A failure first logged, or given up.
    pub fn failed(&self, event: HookEvent) {
        if let Some(argv) = &self.on_failure {
            self.queue(argv.clone(), event);
        }
    }

    fn queue(&self, argv: Argv, event: HookEvent) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(run) | TrySendError::Disconnected(run)) = tx.try_send(Run { argv, event }) {
            let mut d = self.dropped.lock().unwrap_or_else(PoisonError::into_inner);
            d.0 += 1;
            if d.1.is_none_or(|t| t.elapsed() >= Duration::from_secs(600)) {
                warn!(
                    "warning: {} hook runs wait already; not running the hook for {} ({} dropped so far)",
                    QUEUE, run.event.rel, d.0
                );
                d.1 = Some(Instant::now());
            }
        }
    }
}

impl Hooks {
    /// Shutdown: the hooks still queued are not started (each is logged);
    /// those running finish, each within [`LIMIT`], when the runner drops.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(rx: &Mutex<Receiver<Run>>, shared: &Shared) {
    loop {
        let run = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            rx.recv()
        };
        let Ok(run) = run else { return };
        if shared.stopping.load(Ordering::SeqCst) {
            info!("stopping: not running the hook for {}", run.event.rel);
            continue;
        }
        // A panic here must not end the worker: the next hook still runs.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&run, shared)));
    }
}

/// Runs one hook to its end, or kills it after its limit; logs what it said.
fn execute(run: &Run, shared: &Shared) {
    let secret = shared.secret.as_str();
    let e = &run.event;
    let name = if e.failed { "on-failure" } else { "on-upload" };
    let what = format!("hook {name} for {}", e.rel);
    let mut cmd = Command::new(&run.argv[0]);
    cmd.args(&run.argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, value) in std::env::vars_os() {
        let holds_secret = !secret.is_empty() && value.to_string_lossy().contains(secret);
        if holds_secret || key.to_string_lossy().starts_with("FTPMONITOR_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("FTPMONITOR_EVENT", if e.failed { "failure" } else { "upload" })
        .env("FTPMONITOR_PATH", &e.local)
        .env("FTPMONITOR_RELPATH", e.rel.as_str())
        .env("FTPMONITOR_REMOTE_PATH", &e.remote)
        .env("FTPMONITOR_SIZE", e.size.map(|s| s.to_string()).unwrap_or_default())
        .env("FTPMONITOR_ERROR", e.error.as_deref().unwrap_or_default());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            warn!("warning: {what}: cannot run {}: {err}", Escaped(&run.argv[0]));
            return;
        }
    };
    let out = child.stdout.take().map(|s| std::thread::spawn(move || capped(s)));
    let err = child.stderr.take().map(|s| std::thread::spawn(move || capped(s)));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= shared.limit => {
                kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => {
                warn!("warning: {what}: {err}");
                kill_group(&mut child);
                break None;
            }
        }
    };
    for (stream, handle) in [("stdout", out), ("stderr", err)] {
        if let Some((text, more)) = handle.and_then(|h| h.join().ok()) {
            show(&what, stream, &text, more);
        }
    }
    match status {
        Some(s) if s.success() => info!("{what}: done in {} ms", started.elapsed().as_millis()),
        Some(s) => warn!("warning: {what}: exited with {s}"),
        None => warn!("warning: {what}: killed after {} s", shared.limit.as_secs()),
    }
}

/// Kills the hook and whatever it started (its own process group).
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on the process group this hook leads (spawned with process_group(0)).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        return;
    }
    let _ = child.kill();
}

/// Reads a stream to its end, keeping the first [`SHOWN`] bytes; returns
/// them and how many more there were.
fn capped(mut r: impl Read) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut more = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return (kept, more),
            Ok(n) => {
                let room = SHOWN.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                more += (n - room) as u64;
            }
        }
    }
}

fn show(what: &str, stream: &str, text: &[u8], more: u64) {
    let text = String::from_utf8_lossy(text);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        info!("{what} ({stream}): {}", Escaped(line));
    }
    if more > 0 {
        info!("{what} ({stream}): ... {more} more bytes not shown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(dir: &std::path::Path, rel: &str) -> HookEvent {
        let rel = RelPath::parse(rel).unwrap();
        HookEvent {
            failed: false,
            local: rel.to_local(dir),
            remote: format!("/upload/{}", rel.as_str()),
            rel,
            size: Some(5),
            error: None,
        }
    }

    fn sh(script: String) -> Option<Argv> {
        Some(vec!["/bin/sh".into(), "-c".into(), script])
    }

    #[test]
    fn a_hook_gets_the_file_in_its_environment_and_never_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        // SAFETY (test): set before any hook thread starts; read by the child only.
        unsafe { std::env::set_var("SOME_APP_TOKEN", "pw-9f8e7d") };
        let hooks = Hooks::start(sh(format!("env > {}", out.display())), None, "pw-9f8e7d").unwrap();
        hooks.uploaded(event(dir.path(), "a/b.txt"));
        drop(hooks);
        let env = std::fs::read_to_string(&out).unwrap();
        for want in [
            "FTPMONITOR_EVENT=upload",
            "FTPMONITOR_RELPATH=a/b.txt",
            "FTPMONITOR_REMOTE_PATH=/upload/a/b.txt",
            "FTPMONITOR_SIZE=5",
        ] {
            assert!(env.lines().any(|l| l == want), "no {want} in\n{env}");
        }
        assert!(env.contains(&format!("FTPMONITOR_PATH={}", dir.path().join("a/b.txt").display())));
        assert!(!env.contains("pw-9f8e7d"), "the password reached the hook:\n{env}");
    }

    #[test]
    fn a_hook_that_hangs_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let hooks = Hooks::start_with_limit(sh(script), None, "", Duration::from_millis(500)).unwrap();
        let started = Instant::now();
        hooks.uploaded(event(dir.path(), "x"));
        drop(hooks);
        assert!(started.elapsed() < Duration::from_secs(10), "the hung hook was not killed");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let gone = (0..100).any(|_| {
            let alive = std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
                && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| s.contains(") Z "));
            if alive {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the hook's own child outlived it");
    }

    #[test]
    fn at_most_two_hooks_run_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        // Each run notes how many run beside it.
        let script = format!(
            "touch {d}/run.$FTPMONITOR_RELPATH; ls {d} | grep -c '^run\\.' >> {d}/counts; sleep 0.2; rm {d}/run.$FTPMONITOR_RELPATH"
        );
        let hooks = Hooks::start(sh(script), None, "").unwrap();
        for i in 0..6 {
            hooks.uploaded(event(dir.path(), &format!("f{i}")));
        }
        drop(hooks);
        let counts = std::fs::read_to_string(dir.path().join("counts")).unwrap();
        let counts: Vec<u32> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(counts.len(), 6, "{counts:?}");
        assert!(counts.iter().all(|c| *c <= 2), "more than two at once: {counts:?}");
        assert!(counts.contains(&2), "never two at once: {counts:?}");
    }

    #[test]
    fn commands_split_like_a_shell_but_bad_quoting_is_an_error() {
        assert_eq!(parse("/bin/echo 'a b' c\\ d").unwrap(), ["/bin/echo", "a b", "c d"]);
        assert!(parse("notify \"unclosed").unwrap_err().contains("unclosed quote"));
        assert!(parse("   ").unwrap_err().contains("empty"));
    }
}
