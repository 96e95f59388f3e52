//! The log: `<timestamp> - <message>` lines through simplelog, into a file that
//! SIGHUP reopens (for logrotate) and, in the foreground, onto stderr too.
//!
//! One logger is installed for the life of the process, writing into a
//! [`Sink`] whose destinations are switched as the process moves from
//! start-up (stderr only) to running (file, plus stderr in the foreground).
//! Only this crate's records pass: suppaftp traces every command it sends,
//! `PASS` included, so its records never reach the log.

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
        let line = std::mem::take(&mut d.line);
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
    let _ = WriteLogger::init(LevelFilter::Trace, builder.build(), sink.clone());
    log::set_max_level(level);
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
