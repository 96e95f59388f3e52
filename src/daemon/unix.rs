//! Daemon discipline: the PID file, locked before the fork and for the whole
//! life of the process, and the fork itself with a readiness pipe so that the
//! launching shell learns whether the daemon really started.
//!
//! Order (as in OpenBSD's daemons and FreeBSD's pidfile(3)): lock the PID file
//! while errors still reach the terminal, fork, write the PID, and only then
//! start threads. `daemonize` forks, calls `setsid`, forks again, changes to
//! the state directory, sets the umask and points the standard streams at
//! /dev/null; we do not hand it the PID file because its lock check runs in
//! the grandchild, after the launcher has already exited 0.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::relpath::EscapedPath;

/// The grandchild's side of the readiness pipe: reports to the launcher
/// whether start-up worked.
#[derive(Debug)]
pub struct Readiness(Option<io::PipeWriter>);

impl Readiness {
    /// In the foreground there is nobody to tell.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn ready(&mut self) {
        if let Some(mut w) = self.0.take() {
            let _ = w.write_all(b"ready\n");
        }
    }

    pub fn failed(&mut self, msg: &str) {
        if let Some(mut w) = self.0.take() {
            let _ = w.write_all(msg.as_bytes());
        }
    }
}

/// What `daemonize` returned in this process.
pub enum Forked {
    /// The launcher: exit with this code once the daemon has reported.
    Launcher(std::process::ExitCode),
    /// The daemon.
    Daemon(Readiness),
}

/// Forks into the background. The launcher waits until the daemon reports
/// ready (exit 0) or a start-up error (printed, exit 1).
pub fn daemonize(state_dir: &Path, log_hint: &str) -> Result<Forked> {
    let (mut reader, writer) =
        io::pipe().map_err(|e| Error::runtime(format!("cannot create a pipe to start the daemon: {e}")))?;
    let outcome = daemonize::Daemonize::new()
        .working_directory(state_dir)
        .umask(0o002)
        .stdout(daemonize::Stdio::devnull())
        .stderr(daemonize::Stdio::devnull())
        .execute();
    match outcome {
        daemonize::Outcome::Parent(Ok(_)) => {
            drop(writer);
            let mut report = String::new();
            let _ = reader.read_to_string(&mut report);
            if report == "ready\n" {
                Ok(Forked::Launcher(std::process::ExitCode::SUCCESS))
            } else if report.is_empty() {
                eprintln!("error: the daemon exited during start-up without saying why: see {log_hint}");
                Ok(Forked::Launcher(std::process::ExitCode::from(1)))
            } else {
                eprintln!("error: {}", report.trim_end());
                Ok(Forked::Launcher(std::process::ExitCode::from(1)))
            }
        }
        daemonize::Outcome::Parent(Err(e)) => Err(Error::runtime(format!("cannot fork into the background: {e}"))),
        daemonize::Outcome::Child(Ok(_)) => {
            drop(reader);
            Ok(Forked::Daemon(Readiness(Some(writer))))
        }
        daemonize::Outcome::Child(Err(e)) => {
            let mut r = Readiness(Some(writer));
            r.failed(&format!(
                "cannot become a daemon: {e}: check that the state directory {} is usable",
                EscapedPath(state_dir)
            ));
            std::process::exit(1);
        }
    }
}

/// Whether this process has a controlling terminal (then SIGHUP in the
/// foreground means the terminal went away).
pub fn has_controlling_terminal() -> bool {
    // SAFETY: open(2) with a constant NUL-terminated path; the descriptor is
    // closed right away.
    unsafe {
        let fd = libc::open(c"/dev/tty".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::close(fd);
            true
        } else {
            false
        }
    }
}

/// The uid and gid of `user`, from the password database (`getpwnam_r`,
/// safe while other threads run: a SIGHUP reload checks `--run-as` again).
pub fn lookup_user(user: &str) -> std::result::Result<(libc::uid_t, libc::gid_t), String> {
    use std::ffi::CString;
    let name = CString::new(user).map_err(|_| format!("{user:?} is not a user name (it holds a NUL)"))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; the strings it stores
        // in `pw` point into `buf`, which outlives the reads below.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!("cannot look up user {user:?}: {}", io::Error::from_raw_os_error(rc)));
        }
        if found.is_null() {
            return Err(format!("there is no user {user:?}: create it (useradd --system {user}) or name another"));
        }
        return Ok((pw.pw_uid, pw.pw_gid));
    }
}

/// Drops root privileges to `user`: the files the daemon keeps writing are
/// handed to that user first, then the supplementary groups are replaced by
/// the user's own (daemonize's privilege drop leaves root's in place), then
/// the group and user ids are set, real and effective.
pub fn drop_privileges(user: &str, owned: &[&Path]) -> Result<()> {
    use std::ffi::CString;
    let (uid, gid) = lookup_user(user).map_err(|e| Error::usage(format!("--run-as: {e}")))?;
    let name = CString::new(user).map_err(|_| Error::usage(format!("--run-as {user:?}: not a user name")))?;
    for path in owned {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| {
            Error::runtime(format!("--run-as {user}: cannot hand {} to {user}: {e}", EscapedPath(path)))
        })?;
    }
    // SAFETY: plain system calls on ids; each result is checked.
    let ok = unsafe {
        libc::initgroups(name.as_ptr(), gid) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
            && libc::getuid() == uid
            && libc::geteuid() == uid
            && libc::getegid() == gid
    };
    if ok {
        Ok(())
    } else {
        Err(Error::runtime(format!(
            "--run-as {user}: cannot switch to uid {uid} gid {gid}: {}",
            io::Error::last_os_error()
        )))
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// One malloc arena for the whole process, set before any thread starts.
/// glibc gives each thread that allocates an arena of its own (up to eight
/// per core), and each keeps what its thread freed: our threads (workers,
/// watcher, hooks, hand-off, metrics) allocate little and briefly, so their
/// arenas held mostly fragments (about 3 MiB of the resident memory after
/// syncing 20,000 files, `bench/run.py --only memory`). At our allocation
/// rate the one arena's lock is never contended for long.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the free pages of the heap to the system (glibc keeps what a
/// burst of work freed in the middle of the heap otherwise). Called once
/// each time the loop goes idle after work: it costs a walk of the heap.
pub fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
