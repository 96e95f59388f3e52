//! What `/proc` and a few syscalls say about a process (Linux).

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Fields of `/proc/<pid>/stat` the tests look at.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

/// Parses `/proc/<pid>/stat`; `None` when the process does not exist.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgrp, session })
}

/// Whether `pid` is a running process (a zombie counts as gone).
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(raw, 0) } == 0;
    exists && stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Sends `sig` to `pid`; panics when that fails.
pub fn signal(pid: u32, sig: libc::c_int) {
    let raw = i32::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: plain kill(2) on a pid we started.
    let rc = unsafe { libc::kill(raw, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
}

/// The session id of the test process itself.
pub fn own_session() -> i32 {
    // SAFETY: getsid(0) has no preconditions.
    unsafe { libc::getsid(0) }
}

/// The process group of the test process itself.
pub fn own_pgrp() -> i32 {
    // SAFETY: getpgrp has no preconditions.
    unsafe { libc::getpgrp() }
}

/// The raw NUL-separated `/proc/<pid>/cmdline`.
pub fn cmdline(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// The working directory of `pid`.
pub fn cwd(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Where file descriptor `fd` of `pid` points.
pub fn fd_target(pid: u32, fd: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// The `Umask:` line of `/proc/<pid>/status`, as a number.
pub fn umask(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
}

/// The peak resident memory (`VmHWM:` of `/proc/<pid>/status`) of a process, in bytes.
pub fn peak_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// A pid that no process has right now (for stale PID files).
pub fn unused_pid() -> u32 {
    (999_999..).find(|&pid| stat(pid).is_none() && !is_alive(pid)).expect("some pid is free")
}

/// Every process (other than this one) whose command line mentions `dir/`: whatever a
/// test started in its own temporary directory, forked daemons included.
pub fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let mut needle = dir.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && is_alive(pid))
        .filter(|&pid| cmdline(pid).windows(needle.len()).any(|w| w == needle.as_slice()))
        .collect();
    pids.sort_unstable();
    pids
}

/// SIGKILLs every process [`processes_mentioning`] `dir`.
pub fn kill_processes_mentioning(dir: &Path) {
    for pid in processes_mentioning(dir) {
        if let Ok(raw) = i32::try_from(pid) {
            // SAFETY: kill(2) on a process whose argv names our private temp dir.
            unsafe { libc::kill(raw, libc::SIGKILL) };
        }
    }
}

/// Whether some process holds a lock on `path`, either a `flock` or a POSIX record lock
/// (tested by trying to take one without blocking, and releasing it at once).
pub fn is_locked(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    let fd = file.as_raw_fd();
    // SAFETY: flock on an fd we own; the lock, if taken, goes away with the fd.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return true;
    }
    // SAFETY: as above.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    // SAFETY: a zeroed flock struct is valid; we fill in the fields F_SETLK reads.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl(F_SETLK) with a valid struct flock on an fd we own; released on close.
    unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) != 0 }
}

/// A new pseudo-terminal: (master, slave). The slave is opened without becoming anyone's
/// controlling terminal.
pub fn open_pty() -> std::io::Result<(OwnedFd, std::fs::File)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    // SAFETY: posix_openpt has no preconditions; the fd is owned right after the check.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    if master < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `master` is a fresh fd that nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: grantpt/unlockpt/ptsname_r act on our open master fd; ptsname_r writes at
    // most `buf.len()` bytes, NUL included, into `buf`.
    let ok = unsafe {
        libc::grantpt(master.as_raw_fd()) == 0
            && libc::unlockpt(master.as_raw_fd()) == 0
            && libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) == 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ptsname_r succeeded, so `buf` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    let slave = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).open(name)?;
    Ok((master, slave))
}
