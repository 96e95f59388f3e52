//! The checks and parsers of single values: paths made absolute and
//! looked at, the host resolved, names a command line can carry, durations,
//! counts and levels, the password file and `~/.netrc`. Each failure names
//! the value, where it came from ([`Origin`]) and the fix.

use super::*;

pub(super) fn absolute(p: &Path, base: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

pub(super) fn check_watch_dir(dir: &Path, origin: &Origin) -> Result<PathBuf> {
    let shown = EscapedPath(dir);
    let meta = fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::usage(format!("{origin}: watch directory {shown} does not exist: create it or fix the path"))
        } else {
            Error::usage(format!("{origin}: cannot access watch directory {shown}: {e}: check its permissions"))
        }
    })?;
    if !meta.is_dir() {
        return Err(Error::usage(format!(
            "{origin}: watch directory {shown} is not a directory: give the directory to watch"
        )));
    }
    fs::read_dir(dir).map_err(|e| {
        Error::usage(format!("{origin}: cannot read watch directory {shown}: {e}: run as a user who can read it"))
    })?;
    // Events arrive with the real path, so watch the real path.
    fs::canonicalize(dir).map_err(|e| Error::usage(format!("{origin}: cannot resolve watch directory {shown}: {e}")))
}

pub(super) fn check_host(host: &str, port: u16, origin: &Origin) -> Result<()> {
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Error::usage(format!("{origin}: {host:?} is not a host name: give a name or an IP address")));
    }
    match (host, port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(_) => {
            Err(Error::usage(format!("{origin}: host {host:?} has no address: check the name, or give an IP address")))
        }
        Err(e) => Err(Error::usage(format!(
            "{origin}: cannot resolve host {host:?} ({e}): check the name and DNS, or give an IP address"
        ))),
    }
}

/// A value that goes into one FTP command line (`CWD dir`, `USER name`):
/// neither empty nor holding a line break (which would end the command and
/// start another) or a NUL. The errors say `if_empty`, or name `what` and
/// the `fix`.
fn check_command_text(value: &str, origin: &Origin, if_empty: &str, what: &str, fix: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::usage(format!("{origin}: {if_empty}")));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(Error::usage(format!(
            "{origin}: {what} contains a line break or NUL, which FTP cannot carry: {fix}"
        )));
    }
    Ok(())
}

pub(super) fn normalize_remote_dir(dir: &str, origin: &Origin) -> Result<String> {
    check_command_text(
        dir,
        origin,
        "is empty: give the directory on the server, such as /incoming (or . for the login directory)",
        "the remote directory",
        "rename it",
    )?;
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".into());
    }
    Ok(trimmed.to_string())
}

/// A login name goes into `USER name\r\n`: it must not be empty nor carry a
/// line break (which would end the command and start another).
pub(super) fn check_user(user: &str, origin: &Origin) -> Result<()> {
    check_command_text(
        user,
        origin,
        "the login name is empty: give a name, or leave it out for anonymous",
        "the login name",
        "fix the name",
    )
}

/// The same for the password, whose value no message may show.
pub(super) fn check_password(pw: Secret, origin: &Origin) -> Result<Secret> {
    if pw.expose().contains(['\r', '\n', '\0']) {
        return Err(Error::usage(format!(
            "{origin}: the password contains a line break or NUL, which FTP cannot carry (not shown here): \
             change the password"
        )));
    }
    Ok(pw)
}

/// A file ftpmonitor must read: it exists, is a regular file (not a
/// directory, which `open` would accept) and opens for reading.
pub(super) fn check_readable_file(path: &Path, origin: &Origin, what: &str, fix: &str) -> Result<fs::File> {
    let shown = EscapedPath(path);
    let f =
        fs::File::open(path).map_err(|e| Error::usage(format!("{origin}: cannot read {what} {shown}: {e}: {fix}")))?;
    match f.metadata() {
        Ok(m) if m.is_dir() => Err(Error::usage(format!("{origin}: {what} {shown} is a directory: {fix}"))),
        Ok(_) => Ok(f),
        Err(e) => Err(Error::usage(format!("{origin}: cannot read {what} {shown}: {e}: {fix}"))),
    }
}

pub fn parse_port(s: &str) -> std::result::Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(u16::try_from(p).unwrap_or(21)),
        _ => Err(format!("{s:?} is not a port number: use 1 to 65535 (FTP and explicit FTPS listen on 21)")),
    }
}

/// `5`, `0.5` (seconds), `500ms`, `2s`, `1h`, `1h 30m`; `0` is allowed; at
/// most a year (longer ones would overflow the clock arithmetic).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
    let d = parse_duration_unbounded(s)?;
    if d > MAX {
        return Err(format!("{s:?} is too long: use at most a year"));
    }
    Ok(d)
}

pub(super) fn parse_duration_unbounded(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative: use 0 or more, in seconds like 5 or 0.5, or 500ms, 2s, 1h"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a duration: use seconds like 5 or 0.5, or 500ms, 2s, 1h"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}): use seconds like 5 or 0.5, or 500ms, 2s, 1h"))
}

pub(super) fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err(format!("{s:?} is too short: use at least 0.1 s (the default is 30 s)")),
        Err(e) => Err(e),
    }
}

/// `--poll`: at least a tenth of a second (each poll stats every file).
pub(super) fn parse_poll(s: &str) -> std::result::Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d >= Duration::from_millis(100) => Ok(d),
        Ok(_) => Err(format!("{s:?} is too short: use at least 0.1 s, e.g. 30s (each poll looks at every file)")),
        Err(e) => Err(e),
    }
}

/// `--min-age`, `--max-age`: a duration up to a century, or `off` (or 0)
/// for none.
pub(super) fn parse_age(s: &str) -> std::result::Result<Option<Duration>, String> {
    const MAX: Duration = Duration::from_secs(36_500 * 24 * 3600);
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let d = parse_duration_unbounded(s).map_err(|e| format!("{e}, 30d, or off"))?;
    if d > MAX {
        return Err(format!("{s:?} is too long: use at most 36500d, or off"));
    }
    Ok((!d.is_zero()).then_some(d))
}

pub(super) fn parse_parallel(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of connections: use 1 to 64")),
    }
}

pub(super) fn parse_percent(s: &str) -> std::result::Result<u8, String> {
    match s.trim().trim_end_matches('%').parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(format!("{s:?} is not a percentage: use 0 to 100")),
    }
}

/// `--order`: the order ready files are sent and published in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The order in which files went quiet.
    Arrival,
    /// Oldest modification time first.
    Mtime,
    /// By name.
    Name,
    /// Smallest first.
    Size,
}

/// `--metrics-addr`: `ADDR:PORT`, or a port alone for the loopback address.
pub(super) fn parse_listen_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    let t = s.trim();
    let port_only = t.strip_prefix(':').unwrap_or(t);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    t.parse().map_err(|_| format!("{s:?} is not an address to listen on: use ADDR:PORT such as 127.0.0.1:9190 or [::1]:9190, or a port alone (loopback)"))
}

/// `--chmod`, `--chmod-dirs`: an octal mode such as `644` or `0640`.
pub(super) fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(m),
        _ => Err(format!("{s:?} is not a file mode: give three or four octal digits, such as 644 or 0640")),
    }
}

/// `--temp-dir`: the staging directory's full remote path (relative to
/// REMOTE_DIR unless absolute) and, when it lies below REMOTE_DIR, its path
/// relative to REMOTE_DIR (WATCH_DIR's twin of it is then not synced).
pub(super) fn check_temp_dir(dir: &str, remote_dir: &str, origin: &Origin) -> Result<(String, Option<String>)> {
    let dir = normalize_remote_dir(dir, origin)?;
    if dir.split('/').any(|c| c == "..") {
        return Err(Error::usage(format!(
            "{origin}: has a .. component, which servers resolve each their own way: give the staging \
             directory without .., absolute or relative to REMOTE_DIR"
        )));
    }
    let absolute = dir.starts_with('/');
    let parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let full = if absolute {
        format!("/{}", parts.join("/"))
    } else if parts.is_empty() {
        remote_dir.to_string()
    } else {
        crate::relpath::join_remote(remote_dir, &parts.join("/"))
    };
    // Compared without empty and `.` components (REMOTE_DIR may be written
    // `/a/./b` or `/a//b`; a relative one is relative to the login directory).
    let tidy = |p: &str| {
        let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        if p.starts_with('/') { format!("/{}", parts.join("/")) } else { parts.join("/") }
    };
    let (full_cmp, remote_cmp) = (tidy(&full), tidy(remote_dir));
    if full_cmp == remote_cmp {
        return Err(Error::usage(format!(
            "{origin}: is REMOTE_DIR itself, where temporary names already go by default: give a directory \
             beside or below it, such as .incoming, or leave --temp-dir out"
        )));
    }
    let below = match remote_cmp.as_str() {
        "" => (!full_cmp.starts_with('/')).then_some(full_cmp.as_str()),
        "/" => full_cmp.strip_prefix('/'),
        r => full_cmp.strip_prefix(&format!("{r}/")),
    };
    if remote_cmp.starts_with(&format!("{full_cmp}/")) || (full_cmp == "/" && remote_cmp.starts_with('/')) {
        return Err(Error::usage(format!(
            "{origin}: holds REMOTE_DIR: the staging directory must not be above the files it is for; \
             give a directory beside or below REMOTE_DIR, such as .incoming"
        )));
    }
    Ok((full.clone(), below.map(str::to_string)))
}

pub(super) fn parse_order(s: &str) -> std::result::Result<Order, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "arrival" => Ok(Order::Arrival),
        "mtime" => Ok(Order::Mtime),
        "name" => Ok(Order::Name),
        "size" => Ok(Order::Size),
        _ => Err(format!("{s:?} is not an order: use arrival, mtime, name or size")),
    }
}

pub(super) fn parse_log_level(s: &str) -> std::result::Result<LevelFilter, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" | "warning" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(format!("{s:?} is not a level: use error, warn, info or debug")),
    }
}

pub(super) fn read_password_file(path: &Path, origin: &Origin) -> Result<Secret> {
    const FIX: &str = "give a readable file whose first line is the password";
    let shown = EscapedPath(path);
    let f = check_readable_file(path, origin, "password file", FIX)?;
    let mut line = String::new();
    BufReader::new(f)
        .read_line(&mut line)
        .map_err(|e| Error::usage(format!("{origin}: cannot read password file {shown}: {e}: {FIX}")))?;
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        return Err(Error::usage(format!(
            "{origin}: password file {shown} is empty: write the password on its first line"
        )));
    }
    check_password(Secret::new(pw), origin)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct NetrcEntry {
    pub(super) login: Option<String>,
    pub(super) password: Option<String>,
}

/// The `machine HOST` entry of a netrc file (or `default`), preferring one
/// whose login matches `user` when a user is given.
pub(super) fn netrc_lookup(path: &Path, host: &str, user: Option<&str>) -> Option<NetrcEntry> {
    let text = fs::read_to_string(path).ok()?;
    parse_netrc(&text, host, user)
}

pub(super) fn parse_netrc(text: &str, host: &str, user: Option<&str>) -> Option<NetrcEntry> {
    let mut tokens = text.split_whitespace();
    let mut entries: Vec<(Option<String>, NetrcEntry)> = Vec::new();
    while let Some(tok) = tokens.next() {
        match tok {
            "machine" => entries.push((tokens.next().map(str::to_string), NetrcEntry::default())),
            "default" => entries.push((None, NetrcEntry::default())),
            "login" => {
                if let (Some(last), Some(v)) = (entries.last_mut(), tokens.next()) {
                    last.1.login = Some(v.to_string());
                }
            }
            "password" => {
                if let (Some(last), Some(v)) = (entries.last_mut(), tokens.next()) {
                    last.1.password = Some(v.to_string());
                }
            }
            "account" | "port" => {
                tokens.next();
            }
            // A macro definition runs to the next blank line; we never need one.
            "macdef" => break,
            _ => {}
        }
    }
    let fits = |e: &NetrcEntry| user.is_none_or(|u| e.login.as_deref() == Some(u));
    let machine = entries.iter().position(|(m, e)| m.as_deref() == Some(host) && fits(e));
    let default = entries.iter().position(|(m, e)| m.is_none() && fits(e));
    machine.or(default).map(|i| entries.swap_remove(i).1)
}

/// A hook's command line (`--on-upload`, `--on-failure`): split like a
/// shell line, its program an executable file (a bare name is looked up in
/// `PATH`, as the hook will be run).
pub(super) fn parse_hook(cmd: &str, path_var: Option<&std::ffi::OsStr>) -> std::result::Result<Vec<String>, String> {
    let argv = crate::hooks::parse(cmd)?;
    let program = Path::new(&argv[0]);
    let found = if argv[0].contains('/') {
        Some(program.to_path_buf())
    } else {
        path_var.and_then(|p| std::env::split_paths(p).map(|d| d.join(program)).find(|c| is_executable(c)))
    };
    match found {
        Some(p) if is_executable(&p) => Ok(argv),
        Some(p) => Err(format!("{} is not an executable file: give the path of the program to run", EscapedPath(&p))),
        None => {
            Err(format!("{} is not found in PATH: give the program's full path", crate::relpath::Escaped(&argv[0])))
        }
    }
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = fs::metadata(p) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    meta.is_file()
}

/// `--archive-dir`: an existing directory (not a link to one), outside
/// WATCH_DIR (`watch_dir` is canonical); returns its canonical path.
pub(super) fn check_archive_dir(dir: &Path, watch_dir: &Path, origin: &Origin) -> Result<PathBuf> {
    let shown = EscapedPath(dir);
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::usage(format!(
                "{origin}: {shown} is a symbolic link (never followed): give the directory it points to"
            )));
        }
        Ok(_) => return Err(Error::usage(format!("{origin}: {shown} is not a directory: give a directory"))),
        Err(e) => {
            return Err(Error::usage(format!(
                "{origin}: {shown}: {e}: create the archive directory first (mkdir -p), or give another"
            )));
        }
    }
    let canonical = fs::canonicalize(dir).map_err(|e| Error::usage(format!("{origin}: {shown}: {e}")))?;
    if canonical.starts_with(watch_dir) {
        return Err(Error::usage(format!(
            "{origin}: {shown} is inside WATCH_DIR {}: give an archive directory outside it",
            EscapedPath(watch_dir)
        )));
    }
    Ok(canonical)
}
