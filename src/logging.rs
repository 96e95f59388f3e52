//! The log: `<timestamp> - <message>` lines through simplelog, into a file that
//! SIGHUP reopens (for logrotate) and, in the foreground, onto stderr too.
//!
//! One logger is installed for the life of the process, writing into a
//! [`Sink`] whose destinations are switched as the process moves from
//! start-up (stderr only) to running (file, plus stderr in the foreground).
//! Only this crate's records pass: suppaftp traces every command it sends,
//! `PASS` included, so its records never reach the log.
//!
//! The last line of defence for the password: every line written (log file
//! and stderr), the one-line error before exit and panic messages pass
//! through [`redact`], which masks the values given to [`hide`]. A server
//! that quotes the password back in a refusal cannot get it into the log.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger, format_description};

use crate::relpath::EscapedPath;

#[derive(Default)]
struct Destinations {
    file: Option<File>,
    path: Option<PathBuf>,
    stderr: bool,
    /// The part of a line written so far: simplelog writes a line in several
    /// pieces, and a progress bar must be cleared only for whole lines.
    line: Vec<u8>,
    progress: Option<indicatif::ProgressBar>,
}

/// Where log lines go; cheap to clone, shared with the logger.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Destinations>>);

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Destinations> {
        // A panic while logging must not silence the log for good.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut d = self.lock();
        d.line.extend_from_slice(buf);
        if !buf.ends_with(b"\n") {
            return Ok(buf.len());
        }
        let line = redact_bytes(&std::mem::take(&mut d.line));
        if d.stderr {
            // Best effort: a closed stderr must not stop the file log.
            match &d.progress {
                Some(bar) => bar.suspend(|| io::stderr().write_all(&line)).unwrap_or(()),
                None => io::stderr().write_all(&line).unwrap_or(()),
            }
        }
        if let Some(f) = d.file.as_mut() {
            f.write_all(&line)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut d = self.lock();
        if let Some(f) = d.file.as_mut() {
            f.flush()?;
        }
        Ok(())
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// The local time offset, read once at start-up (as simplelog does), for
/// the panic hook's time stamps.
static LOCAL_OFFSET: OnceLock<time::UtcOffset> = OnceLock::new();

/// The local time's offset from UTC read at start-up, in seconds.
pub fn local_offset_secs() -> i32 {
    LOCAL_OFFSET.get().map_or(0, |o| o.whole_seconds())
}

/// Values no line may show (the password).
static HIDDEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Shorter values are not masked: masking every `ab` would garble the log
/// more than a two-letter password is worth hiding.
const MIN_HIDDEN: usize = 4;

/// From now on, `secret` is masked as `***` wherever a line would show it.
pub fn hide(secret: &str) {
    if secret.len() < MIN_HIDDEN {
        return;
    }
    let mut hidden = HIDDEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !hidden.iter().any(|h| h == secret) {
        hidden.push(secret.to_string());
    }
}

/// `text` with every hidden value masked.
pub fn redact(text: &str) -> String {
    String::from_utf8_lossy(&redact_bytes(text.as_bytes())).into_owned()
}

fn redact_bytes(text: &[u8]) -> Vec<u8> {
    let hidden = HIDDEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    mask(text, &hidden)
}

fn mask(text: &[u8], hidden: &[String]) -> Vec<u8> {
    let mut out = text.to_vec();
    for secret in hidden {
        out = replace_all(&out, secret.as_bytes(), b"***");
    }
    out
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Panics are written to stderr and, once the daemon has forked (stderr is
/// then /dev/null), to the log file: redacted, and without waiting for a
/// lock the panicking thread may hold.
fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    let thread = std::thread::current();
    let text = format!("error: panic in thread {}: {info}; please report this", thread.name().unwrap_or("unnamed"));
    // Never block here: the panicking thread may hold the lock. Without it,
    // the message cannot be checked, so it is withheld.
    let line = match HIDDEN.try_lock() {
        Ok(hidden) => String::from_utf8_lossy(&mask(text.as_bytes(), &hidden)).into_owned(),
        Err(_) => {
            "error: panic (message withheld: it could not be checked for the password); please report this".to_string()
        }
    };
    let line = line.replace('\n', " | ");
    let Some(sink) = SINK.get() else {
        eprintln!("{line}");
        return;
    };
    match sink.0.try_lock() {
        Ok(mut d) => {
            if d.stderr {
                let _ = writeln!(io::stderr(), "{line}");
            }
            if let Some(f) = d.file.as_mut() {
                let now = time::OffsetDateTime::now_utc();
                let now = LOCAL_OFFSET.get().map_or(now, |o| now.to_offset(*o));
                let stamp = now
                    .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
                    .unwrap_or_default();
                let _ = writeln!(f, "{stamp} - {line}");
            }
        }
        Err(_) => eprintln!("{line}"),
    }
}

/// Installs the logger, writing to stderr, before anything else runs. Must be
/// called while the process has one thread (the local time offset is read
/// here, and `time` refuses to read it once threads exist).
pub fn init(level: LevelFilter) {
    let sink = SINK.get_or_init(|| {
        let sink = Sink::default();
        sink.lock().stderr = true;
        sink
    });
    let mut builder = ConfigBuilder::new();
    builder
        .set_time_format_custom(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] -"))
        .set_max_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .add_filter_allow_str("ftpmonitor");
    // Without a known offset the lines are in UTC, which is still correct.
    let _ = builder.set_time_offset_to_local();
    if let Ok(offset) = time::UtcOffset::current_local_offset() {
        let _ = LOCAL_OFFSET.set(offset);
    }
    let _ = WriteLogger::init(LevelFilter::Trace, builder.build(), sink.clone());
    log::set_max_level(level);
    std::panic::set_hook(Box::new(on_panic));
}

pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // File names are in the log: not for every local user to read. A
        // planted symlink is never followed, and a FIFO must not block the
        // start (O_NONBLOCK changes nothing for a regular file).
        opts.mode(0o640).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let ft = file.metadata()?.file_type();
        if ft.is_fifo() || ft.is_socket() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
    }
    Ok(file)
}

/// An error opening the log file `path`, in words that name the fix.
pub fn describe(path: &Path, e: &io::Error) -> String {
    let shown = EscapedPath(path);
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
        return format!("log file {shown} is a symbolic link, which ftpmonitor never writes through: remove it");
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return format!("log file {shown} is a directory: give a file name (or - for stderr only)");
        }
        Ok(m) if !m.is_file() && !m.is_symlink() && !is_device(&m) => {
            return format!("log file {shown} is not a regular file (a FIFO or socket): give a file name");
        }
        _ => {}
    }
    let blocker = path.ancestors().skip(1).find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
    if let Some(file) = blocker {
        return format!(
            "cannot create log file {shown}: {} is not a directory: choose another --log-file",
            EscapedPath(file)
        );
    }
    format!("cannot open log file {shown}: {e}: fix --log-file or the directory's permissions")
}

#[cfg(unix)]
fn is_device(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() || m.file_type().is_block_device()
}

#[cfg(not(unix))]
fn is_device(_m: &std::fs::Metadata) -> bool {
    false
}

/// Checks, before forking, that the log file can be opened, so that a bad
/// `--log-file` is reported on the terminal.
pub fn probe(path: &Path) -> Result<(), String> {
    open(path).map(drop).map_err(|e| describe(path, &e))
}

/// Sends the log to `file` (if any) and to stderr if `stderr`.
pub fn redirect(file: Option<&Path>, stderr: bool) -> io::Result<()> {
    let Some(sink) = SINK.get() else {
        return Ok(());
    };
    let opened = file.map(open).transpose()?;
    let mut d = sink.lock();
    d.file = opened;
    d.path = file.map(Path::to_path_buf);
    d.stderr = stderr;
    Ok(())
}

/// Reopens the log file under its name (after logrotate moved it away).
pub fn reopen() -> io::Result<()> {
    let Some(sink) = SINK.get() else {
        return Ok(());
    };
    let path = sink.lock().path.clone();
    if let Some(path) = path {
        let f = open(&path)?;
        sink.lock().file = Some(f);
    }
    Ok(())
}

/// Routes stderr log lines around a progress bar while one is shown.
pub fn set_progress(bar: Option<indicatif::ProgressBar>) {
    if let Some(sink) = SINK.get() {
        sink.lock().progress = bar;
    }
}

/// A byte count for a log line: `12 B`, `4.0 KiB`, `512.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_values_are_masked_wherever_they_appear() {
        hide("pw-unit-test-81");
        hide("ab");
        assert_eq!(redact("530 pw-unit-test-81 is wrong (pw-unit-test-81)"), "530 *** is wrong (***)");
        assert_eq!(redact("ab stays: too short to hide"), "ab stays: too short to hide");
        assert_eq!(replace_all(b"aaa", b"aa", b"x"), b"xa");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(512 * 1024 * 1024), "512.0 MiB");
    }
}
