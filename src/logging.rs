//! The log: `<timestamp> - <message>` lines written by simplelog, or one
//! JSON object a line (`--log-format json`, which simplelog cannot write:
//! it has no key-values), into a file that SIGHUP reopens (for logrotate) and,
//! in the foreground, onto stderr too.
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
//! No line carries a raw control character: the message's are escaped (as
//! [`Escaped`](crate::relpath::Escaped) escapes file names), and JSON escapes
//! what is left.
//!
//! A JSON line holds `ts`, `level` and `msg`, then the record's key-values
//! (log's `kv`: `info!(path:% = rel, bytes = n; "...")`), numbers as numbers.
//! The text format shows the message alone: it already says the same.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger};
use time::macros::format_description;

use crate::relpath::EscapedPath;

/// How a log line is written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `YYYY-MM-DD HH:MM:SS - message`, in local time.
    #[default]
    Text,
    /// One JSON object a line: `ts`, `level`, `msg` and the record's fields.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{s:?} is not a log format: use text or json")),
        }
    }
}

/// Whether lines are written as JSON; set once the config is read.
static JSON: AtomicBool = AtomicBool::new(false);

/// From now on, lines are written in `format`.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

#[derive(Default)]
struct Destinations {
    file: Option<File>,
    path: Option<PathBuf>,
    stderr: bool,
    /// The part of a line written so far: a line may arrive in several
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

/// The local time offset, read once at start-up (`time` cannot read it once
/// threads exist); lines are in UTC without it.
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
    let line = escape_controls(&line.replace('\n', " | "));
    let Some(sink) = SINK.get() else {
        eprintln!("{line}");
        return;
    };
    match sink.0.try_lock() {
        Ok(mut d) => {
            let json = JSON.load(Ordering::Relaxed);
            if d.stderr {
                let shown = if json { format_line(true, log::Level::Error, &line, &[]) } else { format!("{line}\n") };
                let _ = io::stderr().write_all(shown.as_bytes());
            }
            if let Some(f) = d.file.as_mut() {
                let _ = f.write_all(format_line(json, log::Level::Error, &line, &[]).as_bytes());
            }
        }
        Err(_) => eprintln!("{line}"),
    }
}

/// A value of a record's key-value, as JSON will show it.
enum Field {
    Number(String),
    Bool(bool),
    Text(String),
}

/// The keys a line has of its own: a record's key-value of that name is left out.
const OWN_KEYS: [&str; 3] = ["ts", "level", "msg"];

/// One line, `\n` included, as JSON or text. `msg` and the fields are
/// already redacted and free of control characters.
fn format_line(json: bool, level: log::Level, msg: &str, fields: &[(String, Field)]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = LOCAL_OFFSET.get().map_or(now, |o| now.to_offset(*o));
    if !json {
        let stamp =
            now.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_default();
        return format!("{stamp} - {msg}\n");
    }
    let ts = now
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_default();
    let mut out = String::with_capacity(64 + msg.len());
    out.push_str("{\"ts\":");
    push_json_string(&mut out, &ts);
    out.push_str(",\"level\":");
    push_json_string(&mut out, &level.as_str().to_ascii_lowercase());
    out.push_str(",\"msg\":");
    push_json_string(&mut out, msg);
    for (key, value) in fields {
        if OWN_KEYS.contains(&key.as_str()) {
            continue;
        }
        out.push(',');
        push_json_string(&mut out, key);
        out.push(':');
        match value {
            Field::Number(n) => out.push_str(n),
            Field::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Field::Text(t) => push_json_string(&mut out, t),
        }
    }
    out.push_str("}\n");
    out
}

/// `s` as a JSON string literal: quotes, backslashes and every control
/// character escaped, so that the line holds none raw.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `text` with each control character written as Rust escapes it (`\n`,
/// `\u{1b}`): a message can neither break its line nor reach a terminal as
/// an escape sequence. Backslashes stay: escaped names already hold them.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().fold(String::with_capacity(text.len() + 8), |mut out, c| {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
        out
    })
}

/// Collects a record's key-values for a JSON line.
struct Fields(Vec<(String, Field)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: log::kv::Key<'kvs>, value: log::kv::Value<'kvs>) -> Result<(), log::kv::Error> {
        let field = if let Some(n) = value.to_u64() {
            Field::Number(n.to_string())
        } else if let Some(n) = value.to_i64() {
            Field::Number(n.to_string())
        } else if let Some(x) = value.to_f64().filter(|x| x.is_finite()) {
            Field::Number(x.to_string())
        } else if let Some(b) = value.to_bool() {
            Field::Bool(b)
        } else {
            Field::Text(escape_controls(&redact(&value.to_string())))
        };
        self.0.push((key.as_str().to_string(), field));
        Ok(())
    }
}

/// `record` as one line. The message and every text field are redacted
/// before JSON escapes them: a password holding a quote or a backslash
/// would no longer match once escaped.
fn render(record: &log::Record<'_>, json: bool) -> String {
    let msg = escape_controls(&redact(&record.args().to_string()));
    let mut fields = Fields(Vec::new());
    if json {
        // A source whose values cannot be visited only loses its fields.
        let _ = record.key_values().visit(&mut fields);
    }
    format_line(json, record.level(), &msg, &fields.0)
}

/// The crate's logger: filters by target and level; text lines go through
/// simplelog, JSON lines are formatted here; both reach the [`Sink`].
struct Logger {
    sink: Sink,
    text: Box<WriteLogger<Sink>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && metadata.target().starts_with("ftpmonitor")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if JSON.load(Ordering::Relaxed) {
            let line = render(record, true);
            // Best effort, like every log write: nowhere is left to report a failure.
            let _ = self.sink.clone().write_all(line.as_bytes());
            return;
        }
        // The message redacted and its control characters escaped, then
        // simplelog writes `<timestamp> - <message>`.
        let msg = escape_controls(&redact(&record.args().to_string()));
        self.text.log(
            &log::Record::builder().args(format_args!("{msg}")).level(record.level()).target(record.target()).build(),
        );
    }

    fn flush(&self) {
        let _ = self.sink.clone().flush();
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
        .set_time_format_custom(simplelog::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] -"))
        .set_max_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off);
    // Without a known offset the lines are in UTC, which is still correct.
    let _ = builder.set_time_offset_to_local();
    if let Ok(offset) = time::UtcOffset::current_local_offset() {
        let _ = LOCAL_OFFSET.set(offset);
    }
    let text = WriteLogger::new(LevelFilter::Trace, builder.build(), sink.clone());
    // Installed once: a second call (a test, the demo) keeps the first logger.
    let _ = log::set_boxed_logger(Box::new(Logger { sink: sink.clone(), text }));
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

    fn rendered(json: bool, args: std::fmt::Arguments<'_>, kvs: &[(&str, &str)]) -> String {
        let kvs: Vec<(&str, log::kv::Value<'_>)> = kvs.iter().map(|(k, v)| (*k, log::kv::Value::from(*v))).collect();
        let record = log::Record::builder().level(log::Level::Warn).args(args).key_values(&kvs).build();
        render(&record, json)
    }

    #[test]
    fn json_lines_hide_a_password_that_json_would_escape() {
        // A quote and a backslash: escaped, they no longer match the hidden value.
        hide("pw\"quo\\te-62");
        let line = rendered(true, format_args!("530 pw\"quo\\te-62 refused"), &[("error", "bad pw\"quo\\te-62")]);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["msg"], "530 *** refused", "{line}");
        assert_eq!(value["error"], "bad ***", "{line}");
        assert_eq!(value["level"], "warn");
        assert!(line.ends_with("}\n") && !line.contains("quo"), "{line}");
    }

    #[test]
    fn no_format_writes_a_raw_control_character() {
        for json in [false, true] {
            let line = rendered(json, format_args!("a\nforged line\x1b[2J"), &[("path", "x\ry\u{7f}")]);
            let body = line.strip_suffix('\n').unwrap();
            assert!(!body.chars().any(char::is_control), "json {json}: {line:?}");
            if json {
                // Escaped before JSON escapes it: the decoded text holds none either.
                let value: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(value["msg"], "a\\nforged line\\u{1b}[2J", "{value}");
                assert_eq!(value["path"], "x\\ry\\u{7f}", "{value}");
                assert!(value["ts"].as_str().unwrap().contains('T'), "{value}");
            } else {
                assert!(body.ends_with(" - a\\nforged line\\u{1b}[2J"), "{line:?}");
                assert!(body.len() > 22 && &body[19..22] == " - ", "{line:?}");
            }
        }
    }

    #[test]
    fn numbers_and_booleans_stay_json_numbers_and_booleans() {
        let kvs: [(&str, log::kv::Value<'_>); 4] =
            [("bytes", 12_u64.into()), ("ms", 7_u128.into()), ("delta", (-3_i64).into()), ("ok", true.into())];
        let record = log::Record::builder().level(log::Level::Info).args(format_args!("x")).key_values(&kvs).build();
        let value: serde_json::Value = serde_json::from_str(&render(&record, true)).unwrap();
        assert_eq!(value["bytes"], 12);
        assert_eq!(value["ms"], 7);
        assert_eq!(value["delta"], -3);
        assert_eq!(value["ok"], true);
        assert_eq!(value["level"], "info");
    }

    #[test]
    fn log_format_names() {
        assert_eq!(" JSON ".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("text or json"));
    }

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
