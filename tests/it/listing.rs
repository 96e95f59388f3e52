//! The first sync of a job against a server without MLSD that answers LIST in Windows / IIS
//! (DOS) format: the daemon must parse that listing and count the files already there as
//! synced.
//!
//! No Debian FTP daemon lists in DOS format, so [`dos_proxy`] puts one in front of the
//! in-process server: a transparent FTP proxy on 127.0.0.2 that hides MLST/MLSD and rewrites
//! every LIST from `ls -l` format to `MM-DD-YY  HH:MMAM  <DIR>|SIZE  NAME`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use suppaftp::list::ListParser;
use suppaftp::{FtpStream, Mode};

use crate::support::{
    Behaviour, DataLink, EXIT_OK, FtpProxy, FtpServer, PASSWORD, PROXY_IP, ServerEvent, TEMP_SUFFIX, TIMEOUT, Test,
    USER, Verdict, files_under,
};

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// What makes the in-process server, behind an [`FtpProxy`], a server without MLSD whose LIST
/// answers in DOS format.
struct Dos;

impl Behaviour for Dos {
    /// MLSD and MLST are refused without asking the server.
    fn command(&self, verb: &str, _line: &str) -> Verdict {
        if verb == "MLSD" || verb == "MLST" { Verdict::Answer("500 Unknown command".into()) } else { Verdict::Forward }
    }

    /// A FEAT feature line (indented by one space): MLST and MLSD are hidden.
    fn reply(&self, line: &str) -> Option<String> {
        if line.starts_with(' ') {
            let feature = line.trim_start().to_ascii_uppercase();
            if feature.starts_with("MLST") || feature.starts_with("MLSD") {
                return None;
            }
        }
        Some(line.to_owned())
    }

    /// The server's answer to a LIST is converted to DOS format; the rest passes unchanged.
    fn data(&self, link: &DataLink) {
        link.relay_upload();
        let (mut from_server, mut to_client) = (&link.server, &link.client);
        let mut first = [0u8; 8192];
        let n = from_server.read(&mut first).unwrap_or(0);
        if n > 0 && link.verb() == "LIST" {
            let mut unix = first[..n].to_vec();
            if let Err(e) = from_server.read_to_end(&mut unix) {
                link.problem(format!("reading a LIST from the server: {e}"));
            }
            let year = time::OffsetDateTime::now_utc().year();
            let mut dos = String::new();
            for line in String::from_utf8_lossy(&unix).lines().filter(|l| !l.trim().is_empty()) {
                match unix_to_dos(line, year) {
                    Some(d) => {
                        dos.push_str(&d);
                        dos.push_str("\r\n");
                    }
                    None => link.problem(format!("cannot convert the LIST line {line:?}")),
                }
            }
            let _ = to_client.write_all(dos.as_bytes());
        } else if n > 0 && to_client.write_all(&first[..n]).is_ok() {
            let _ = std::io::copy(&mut from_server, &mut to_client);
        }
        let _ = to_client.shutdown(Shutdown::Write);
    }
}

/// A transparent FTP proxy on `127.0.0.2:<port>` in front of an FTP server on
/// `127.0.0.1:<upstream>` that turns it into a server without MLSD whose LIST answers in
/// DOS format (EPSV, and PASV with the address rewritten to 127.0.0.2).
fn dos_proxy(upstream: u16) -> FtpProxy {
    FtpProxy::start(upstream, Dos)
}

/// One `ls -l` line as libunftp writes it (`-rw-r--r-- 1 0 0 1234 Nov 24 21:58 name`, or
/// `... Nov 24  2025 name` for another year than `this_year`, both in UTC) in the DOS format of
/// IIS: `11-24-26  09:58PM                 1234 name` or `11-24-26  09:58PM       <DIR>          sub`.
/// The date and minute are kept (a year-only date becomes midnight). `None` for what is neither
/// a file nor a directory, or does not parse.
fn unix_to_dos(line: &str, this_year: i32) -> Option<String> {
    // The first eight fields, then the name (which may hold spaces).
    let mut fields = Vec::with_capacity(8);
    let mut rest = line.trim_end_matches(['\r', '\n']);
    for _ in 0..8 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.strip_prefix(' ').unwrap_or(rest.trim_start());
    if name.is_empty() {
        return None;
    }
    let is_dir = match fields[0].chars().next()? {
        'd' => true,
        '-' => false,
        _ => return None,
    };
    let size: u64 = fields[4].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m.eq_ignore_ascii_case(fields[5]))?
        + 1;
    let day: u32 = fields[6].parse().ok()?;
    let (year, hour, minute) = match fields[7].split_once(':') {
        Some((h, m)) => (this_year, h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None => (fields[7].parse::<i32>().ok()?, 0, 0),
    };
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let (hour12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    let when = format!("{month:02}-{day:02}-{:02}  {hour12:02}:{minute:02}{ampm}", year.rem_euclid(100));
    Some(if is_dir { format!("{when}       <DIR>          {name}") } else { format!("{when} {size:>20} {name}") })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Sets the modification time of `path`.
fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

fn unix_time(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn at(date: time::Date, h: u8, m: u8, s: u8) -> SystemTime {
    let secs = date.with_hms(h, m, s).unwrap().assume_utc().unix_timestamp();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

/// Logs in through the proxy with suppaftp.
/// The paths the server recorded STORs for, in order.
fn stored_paths(d: &crate::support::Daemon) -> Vec<String> {
    d.server()
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, .. } => Some(path),
            _ => None,
        })
        .collect()
}

fn login_through(proxy: &FtpProxy) -> FtpStream {
    let mut ftp = FtpStream::connect((PROXY_IP, proxy.port())).expect("connect to the proxy");
    ftp.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
    ftp.login(USER, PASSWORD).expect("log in through the proxy");
    ftp
}

/// A LIST through the proxy: every line must be DOS format, not Unix; name -> (is dir, size,
/// mtime in unix seconds).
fn dos_listing(ftp: &mut FtpStream, dir: &str) -> BTreeMap<String, (bool, usize, i64)> {
    let lines = ftp.list(Some(dir)).expect("LIST through the proxy");
    assert!(!lines.is_empty(), "an empty listing proves nothing");
    let mut out = BTreeMap::new();
    for line in &lines {
        assert!(ListParser::parse_posix(line).is_err(), "the proxy passed a Unix line through: {line:?}");
        let f = ListParser::parse_dos(line).unwrap_or_else(|e| panic!("not a DOS line ({e}): {line:?}"));
        out.insert(f.name().to_owned(), (f.is_directory(), f.size(), unix_time(f.modified())));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Checks of the proxy itself
// ---------------------------------------------------------------------------------------------

#[test]
fn listing_helpers_unix_to_dos() {
    let unix = |kind: &str, size: u64, date: &str, name: &str| {
        format!("{kind}rw-r--r-- {:>12} {:>12} {:>12} {size:#14} {date:>12} {name}", 1, 0, 0)
    };
    assert_eq!(
        unix_to_dos(&unix("-", 1234, "Nov 24 21:58", "name.txt"), 2026).as_deref(),
        Some("11-24-26  09:58PM                 1234 name.txt")
    );
    assert_eq!(
        unix_to_dos(&unix("d", 4096, "Nov 24 09:15", "sub"), 2026).as_deref(),
        Some("11-24-26  09:15AM       <DIR>          sub")
    );
    assert_eq!(
        unix_to_dos(&unix("-", 0, "Jan 02 2020", "with  two spaces.txt"), 2026).as_deref(),
        Some("01-02-20  12:00AM                    0 with  two spaces.txt")
    );
    assert_eq!(
        unix_to_dos(&unix("-", 5, "Mar 04 12:07", "noon"), 2026).as_deref(),
        Some("03-04-26  12:07PM                    5 noon")
    );
    assert_eq!(unix_to_dos(&unix("l", 5, "Mar 04 12:07", "link -> x"), 2026), None);
    assert_eq!(unix_to_dos("total 0", 2026), None);
    // What suppaftp makes of it: the same date and minute, size and kind.
    let f = ListParser::parse_dos("11-24-26  09:58PM                 1234 name.txt").unwrap();
    assert_eq!((f.name(), f.size(), f.is_file()), ("name.txt", 1234, true));
    let expected = at(time::Date::from_calendar_date(2026, time::Month::November, 24).unwrap(), 21, 58, 0);
    assert_eq!(f.modified(), expected);
    let d = ListParser::parse_dos("11-24-26  09:15PM       <DIR>          sub").unwrap();
    assert!(d.is_directory() && d.name() == "sub");
}

#[test]
fn listing_proxy_hides_mlsd_and_serves_dos_listings() {
    let server = FtpServer::start();
    let upload = server.root().join("upload");
    std::fs::create_dir_all(upload.join("sub")).unwrap();
    std::fs::write(upload.join("a.txt"), b"hello").unwrap();
    std::fs::write(upload.join("with space.txt"), b"1234567").unwrap();
    std::fs::write(upload.join("old.bin"), b"xyz").unwrap();
    // This year: listed with its minute; another year: with the year only (midnight).
    let this_year = time::OffsetDateTime::now_utc().year();
    let recent = at(time::Date::from_calendar_date(this_year, time::Month::January, 2).unwrap(), 13, 45, 30);
    let old = at(time::Date::from_calendar_date(2020, time::Month::March, 4).unwrap(), 5, 6, 7);
    set_mtime(&upload.join("a.txt"), recent);
    set_mtime(&upload.join("with space.txt"), recent);
    set_mtime(&upload.join("old.bin"), old);

    let proxy = dos_proxy(server.port());
    let mut ftp = login_through(&proxy);
    let feat = ftp.feat().expect("FEAT through the proxy");
    assert!(feat.keys().any(|k| k.eq_ignore_ascii_case("SIZE")), "FEAT did not come through: {feat:?}");
    assert!(
        !feat.keys().any(|k| k.eq_ignore_ascii_case("MLST") || k.eq_ignore_ascii_case("MLSD")),
        "the proxy still advertises MLST/MLSD: {feat:?}"
    );

    let recent_min = unix_time(recent) - 30;
    let old_day = unix_time(at(time::Date::from_calendar_date(2020, time::Month::March, 4).unwrap(), 0, 0, 0));
    let expected = BTreeMap::from([
        ("a.txt".to_owned(), (false, 5, recent_min)),
        ("with space.txt".to_owned(), (false, 7, recent_min)),
        ("old.bin".to_owned(), (false, 3, old_day)),
    ]);
    for mode in [Mode::ExtendedPassive, Mode::Passive] {
        // PASV: suppaftp connects to the address in the 227, which must be the proxy's.
        ftp.set_mode(mode);
        let listing = dos_listing(&mut ftp, "/upload");
        let files: BTreeMap<String, (bool, usize, i64)> =
            listing.iter().filter(|(_, v)| !v.0).map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(files, expected, "{mode:?}");
        assert!(listing.get("sub").is_some_and(|v| v.0), "{mode:?}: sub is not a <DIR>: {listing:?}");
    }
    // Uploads pass through unchanged.
    ftp.set_mode(Mode::ExtendedPassive);
    ftp.put_file("/upload/put.txt", &mut &b"through the proxy"[..]).expect("STOR through the proxy");
    assert_eq!(server.remote_file("upload/put.txt").as_deref(), Some(b"through the proxy".as_slice()));
    // MLSD is refused by the proxy.
    let err = ftp.mlsd(Some("/upload")).expect_err("MLSD through the proxy");
    assert!(err.to_string().contains("500") || err.to_string().contains("Unknown"), "{err}");
    let _ = ftp.quit();

    assert_eq!(proxy.count("LIST"), 2, "{:#?}", proxy.commands());
    assert_eq!(proxy.count("MLSD"), 1, "{:#?}", proxy.commands());
    assert_eq!(proxy.problems(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// The daemon against a DOS-listing server
// ---------------------------------------------------------------------------------------------

#[test]
fn first_sync_against_a_dos_listing_server_uploads_only_what_differs() {
    let t = Test::new().arg("--once");
    let proxy = dos_proxy(t.server().port());
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());

    // The local files are two days old: a LIST time (whole minutes, in the server's time zone)
    // of a remote copy written now is newer by more than any time zone's offset.
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    let remote_root = t.server().root().join("upload");
    let put_remote = |rel: &str, bytes: &[u8]| {
        let path = remote_root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    };
    let same = [
        ("same.txt", b"identical bytes".as_slice()),
        ("with space.txt", b"also identical".as_slice()),
        ("sub/same.bin", b"\x00\x01same\xff".as_slice()),
    ];
    for (rel, bytes) in same {
        let local = t.write(rel, bytes);
        set_mtime(&local, two_days_ago);
        put_remote(rel, bytes);
    }
    let differs = t.write("differs.txt", b"the new local version");
    set_mtime(&differs, two_days_ago);
    put_remote("differs.txt", b"old");

    let out = t.run();
    let d = &out.daemon;
    let context = || format!("{}\n--- proxy commands ---\n{:#?}", d.diagnostics(), proxy.commands());
    assert_eq!(out.status.code(), Some(EXIT_OK), "exit status {}\n{}", out.status, context());
    assert_eq!(proxy.problems(), Vec::<String>::new(), "{}", context());

    // The daemon listed (both directories) with LIST, never with MLSD/MLST.
    assert!(proxy.count("LIST") >= 2, "fewer than two LISTs through the proxy\n{}", context());
    assert_eq!(proxy.count("MLSD") + proxy.count("MLST"), 0, "{}", context());

    let stored = stored_paths(d);
    assert_eq!(stored, vec![format!("/upload/.differs.txt{TEMP_SUFFIX}")], "{}", context());
    let log = d.own_log();
    for (rel, _) in same {
        assert_eq!(
            log.lines().filter(|l| crate::support::is_upload_line(l, rel)).count(),
            0,
            "{rel} is on the server already but was uploaded\n{}",
            context()
        );
    }
    assert_eq!(log.lines().filter(|l| crate::support::is_upload_line(l, "differs.txt")).count(), 1, "{}", context());
    assert_eq!(d.remote_files(), files_under(&d.watch_dir()), "{}", context());
}

#[test]
fn a_list_time_in_a_zone_ahead_of_utc_does_not_hide_a_newer_local_file() {
    let t = Test::new().arg("--once");
    let proxy = dos_proxy(t.server().port());
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    // The remote copy was written two hours ago by a server on UTC+3, whose LIST shows its local
    // time: an hour from now. The local file, of the same size, changed an hour ago.
    let now = SystemTime::now();
    let remote = t.server().root().join("upload/report.txt");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    std::fs::write(&remote, b"version 1").unwrap();
    set_mtime(&remote, now + Duration::from_secs(3600));
    let local = t.write("report.txt", b"version 2");
    set_mtime(&local, now - Duration::from_secs(3600));

    let out = t.run();
    let d = &out.daemon;
    let context = || format!("{}\n--- proxy commands ---\n{:#?}", d.diagnostics(), proxy.commands());
    assert_eq!(out.status.code(), Some(EXIT_OK), "exit status {}\n{}", out.status, context());
    assert_eq!(proxy.count("MLSD") + proxy.count("MLST"), 0, "{}", context());
    assert_eq!(d.remote("report.txt").as_deref(), Some(b"version 2".as_slice()), "{}", context());
}

/// Refuses the first four EPSVs (a listing's attempts) with 425, and drops dot-names from MLSD
/// listings as a LIST without `-a` would.
struct FlakyAndHiding {
    refused: std::sync::atomic::AtomicUsize,
}

impl Behaviour for FlakyAndHiding {
    fn command(&self, verb: &str, _line: &str) -> Verdict {
        use std::sync::atomic::Ordering;
        if verb == "EPSV" && self.refused.fetch_add(1, Ordering::SeqCst) < 4 {
            return Verdict::Answer("425 No free passive port (test proxy)".into());
        }
        Verdict::Forward
    }

    fn data(&self, link: &DataLink) {
        link.relay_upload();
        let (mut from_server, mut to_client) = (&link.server, &link.client);
        let mut first = [0u8; 8192];
        let n = from_server.read(&mut first).unwrap_or(0);
        if n > 0 && link.verb() == "MLSD" {
            let mut all = first[..n].to_vec();
            let _ = from_server.read_to_end(&mut all);
            let text = String::from_utf8_lossy(&all).into_owned();
            let kept: String = text
                .split_inclusive('\n')
                .filter(|l| !l.split_once("; ").is_some_and(|(_, name)| name.starts_with('.')))
                .collect();
            let _ = to_client.write_all(kept.as_bytes());
        } else if n > 0 && to_client.write_all(&first[..n]).is_ok() {
            let _ = std::io::copy(&mut from_server, &mut to_client);
        }
        let _ = to_client.shutdown(Shutdown::Write);
    }
}

#[test]
fn a_failed_listing_and_a_hidden_directory_do_not_make_what_is_below_them_count_as_missing() {
    let t = Test::new().args(["--once", "--parallel", "1"]);
    let proxy = FtpProxy::start(t.server().port(), FlakyAndHiding { refused: Default::default() });
    let t = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string());
    // On the server already, newer than the local copies: below the root, whose listing fails
    // (four 425s), and in a dot-named directory the root's listing does not show.
    let now = SystemTime::now();
    for rel in ["sub/same.txt", ".config/same.txt"] {
        let remote = t.server().root().join("upload").join(rel);
        std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
        std::fs::write(&remote, rel.as_bytes()).unwrap();
        set_mtime(&remote, now);
        let local = t.write(rel, rel.as_bytes());
        set_mtime(&local, now - Duration::from_secs(3600));
    }
    t.write("sub/new.txt", b"new");

    let out = t.run();
    let d = &out.daemon;
    let context = || format!("{}\n--- proxy commands ---\n{:#?}", d.diagnostics(), proxy.commands());
    assert_eq!(out.status.code(), Some(EXIT_OK), "exit status {}\n{}", out.status, context());
    assert_eq!(d.remote("sub/new.txt").as_deref(), Some(b"new".as_slice()), "{}", context());
    let stored = stored_paths(d);
    assert_eq!(stored, vec![format!("/upload/sub/.new.txt{TEMP_SUFFIX}")], "{}", context());
}
