//! `ftpmonitor check`: validate the configuration and try the server the way a
//! real run would — log in (and negotiate TLS), create the remote directory,
//! upload a probe under a temporary name, check its size, rename it into place,
//! upload it again over itself, delete it — then print a short report: the
//! server's banner, the features found and used, the round-trip time, and one
//! line with the fix for each problem. Exit 0 when a real run would work, 1
//! otherwise. Never forks, never touches the journal.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ftp::{Connector, Kind, Session};
use crate::relpath::{Escaped, EscapedPath, RelPath};

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let cfg = Config::from_args(args)?;
    let mut problems: Vec<String> = Vec::new();
    println!("configuration: ok");
    println!("  watch directory: {}", EscapedPath(&cfg.watch_dir));
    println!("  server:          {}", cfg.target());
    println!("  PID file:        {}", EscapedPath(&cfg.pid_file));
    match &cfg.log_file {
        Some(p) => println!("  log file:        {}", EscapedPath(p)),
        None => println!("  log file:        (stderr only)"),
    }
    println!("  state directory: {}", EscapedPath(&cfg.state_dir));
    println!("  upload rate:     {}", cfg.bwlimit.describe());
    if let Some(addr) = cfg.metrics_addr {
        println!("  metrics:         http://{addr}/metrics");
    }
    match cfg.poll {
        Some(every) => println!("  watching:        by polling every {}", humantime::format_duration(every)),
        None => println!("  watching:        filesystem events (inotify)"),
    }
    let age = |d: std::time::Duration| humantime::format_duration(d).to_string();
    match (cfg.min_age, cfg.max_age) {
        (None, None) => {}
        (min, max) => {
            let mut parts = Vec::new();
            if let Some(min) = min {
                parts.push(format!("uploaded once modified {} ago", age(min)));
            }
            if let Some(max) = max {
                parts.push(format!("files modified more than {} ago left alone", age(max)));
            }
            println!("  file ages:       {}", parts.join("; "));
        }
    }
    let (exclude, include) = cfg.scope.patterns();
    let list = |v: &[String]| v.iter().map(|p| Escaped(p).to_string()).collect::<Vec<_>>().join(", ");
    if !include.is_empty() {
        println!("  included:        only {}", list(include));
    }
    if !exclude.is_empty() {
        println!("  excluded:        {} (and editor and temporary files)", list(exclude));
    }
    if let Some(order) = cfg.order {
        println!(
            "  order:           {} (files of a directory published one after another)",
            format!("{order:?}").to_lowercase()
        );
    }
    if !cfg.last.is_empty() {
        println!("  published last:  {} (after the other files of their directory)", list(cfg.last.patterns()));
    }
    if let Some(staging) = &cfg.temp_dir {
        println!("  staging:         {} (--temp-dir: temporary names go there, renamed into place)", Escaped(staging));
    }
    if cfg.chmod.is_some() || cfg.chmod_dirs.is_some() {
        println!(
            "  modes:           files {}, created directories {} (SITE CHMOD)",
            mode_text(cfg.chmod),
            mode_text(cfg.chmod_dirs)
        );
    }
    match &cfg.hand_off {
        Some(crate::config::HandOff::Remove) => {
            println!("  after upload:    the local file is deleted (--remove-source)")
        }
        Some(crate::config::HandOff::Archive(dir)) => {
            println!("  after upload:    the local file is moved to {} (--archive-dir)", EscapedPath(dir));
        }
        None => {}
    }
    for (name, hook) in [("on upload", &cfg.on_upload), ("on failure", &cfg.on_failure)] {
        if let Some(argv) = hook {
            let shown: Vec<String> = argv.iter().map(|a| Escaped(a).to_string()).collect();
            let label = format!("hook {name}:");
            println!(
                "  {label:<17}{} (run without a shell, killed after {} s)",
                shown.join(" "),
                crate::hooks::LIMIT.as_secs()
            );
        }
    }
    check_local_paths(&cfg, &mut problems);

    let connector = Connector::new(&cfg).map_err(|f| Error::usage(f.message))?;
    let started = Instant::now();
    let mut session = match connector.connect() {
        Ok(s) => s,
        Err(f) => {
            let fix = match f.kind {
                Kind::Login => "check --user and the password (FTPMONITOR_PASSWORD, --password-file, config, ~/.netrc)",
                Kind::Tls => "check the server's certificate and host name, or give its CA with --ca-file",
                _ => "check HOST and PORT, that the server runs, and that no firewall is in the way",
            };
            println!("server: FAILED: {f}");
            let what = match f.kind {
                Kind::Login => "cannot log in".to_string(),
                Kind::Tls => format!("TLS with {} failed", cfg.host),
                _ => format!("cannot reach {}:{}", cfg.host, cfg.port),
            };
            println!("problem: {what}: {fix}");
            println!("result: FAILED");
            return Ok(ExitCode::from(1));
        }
    };
    let tls = if cfg.tls { ", TLS on control and data connections" } else { "" };
    println!("server: logged in as {} in {} ms{tls}", cfg.user, started.elapsed().as_millis());
    if let Some(w) = session.welcome() {
        let first = w.lines().next().unwrap_or_default();
        // The text of the greeting, without its reply code.
        let text = first.get(3..).filter(|_| first.starts_with("220")).unwrap_or(first).trim_start_matches(['-', ' ']);
        println!("  banner:   {}", Escaped(text));
    }
    println!("  features: {}", describe_features(&session));
    println!("  round trip: {:.2} ms (median of 5 NOOPs)", round_trip(&mut session).as_secs_f64() * 1000.0);

    probe_upload(&cfg, &mut session, &mut problems)?;
    let mode = if cfg.active {
        "active (PORT)"
    } else if session.uses_epsv() {
        "passive (EPSV)"
    } else {
        "passive (PASV, connecting to the control address)"
    };
    println!("  data connections: {mode}");
    session.quit();

    for p in &problems {
        println!("problem: {p}");
    }
    if problems.iter().any(|p| !p.starts_with("warning")) {
        println!("result: FAILED");
        Ok(ExitCode::from(1))
    } else {
        println!("result: ok, a real run would work");
        Ok(ExitCode::SUCCESS)
    }
}

/// `--chmod` / `--chmod-dirs` for the report: the octal mode, or the server's.
fn mode_text(mode: Option<u32>) -> String {
    mode.map_or_else(|| "the server's".to_string(), |m| format!("{m:03o}"))
}

fn describe_features(session: &Session) -> String {
    let f = session.features();
    let yes_no =
        |b: bool, what: &str, without: &str| if b { what.to_string() } else { format!("no {what} ({without})") };
    [
        yes_no(f.mlsd, "MLSD", "LIST is parsed instead"),
        yes_no(f.mfmt, "MFMT", "remote modification times are the upload times"),
        yes_no(f.size, "SIZE", "uploads are not size-checked"),
        yes_no(f.rest, "REST STREAM", "broken-off uploads start over"),
        yes_no(f.utf8, "UTF8", "non-ASCII names may be mangled"),
        yes_no(
            session.pipelines(),
            "pipelining",
            "one command per round trip: plain FTP to pure-ftpd, vsftpd or ProFTPD sends an upload's checks together",
        ),
    ]
    .join(", ")
}

fn round_trip(session: &mut Session) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .filter_map(|_| {
            let t = Instant::now();
            session.noop().ok().map(|()| t.elapsed())
        })
        .collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Local files a run writes: each one that cannot be written is a problem.
fn check_local_paths(cfg: &Config, problems: &mut Vec<String>) {
    if let Err(e) = std::fs::create_dir_all(&cfg.state_dir) {
        problems.push(format!(
            "cannot create state directory {}: {e}: run as root or choose --state-dir",
            EscapedPath(&cfg.state_dir)
        ));
    }
    if let Some(log) = &cfg.log_file
        && let Err(e) = crate::logging::probe(log)
    {
        problems.push(e);
    }
    if let Some(dir) = cfg.pid_file.parent()
        && std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly())
    {
        problems
            .push(format!("the directory of PID file {} is read-only: choose --pid-file", EscapedPath(&cfg.pid_file)));
    }
}

/// Uploads a probe the way a run uploads a file, twice (the second time over
/// the first), and deletes it.
fn probe_upload(cfg: &Config, session: &mut Session, problems: &mut Vec<String>) -> Result<()> {
    let probe_dir = std::env::temp_dir().join(format!("ftpmonitor-check-{}", std::process::id()));
    std::fs::create_dir_all(&probe_dir)
        .map_err(|e| Error::runtime(format!("cannot create {}: {e}", EscapedPath(&probe_dir))))?;
    let name = format!(".ftpmonitor-check-{}", std::process::id());
    let local = probe_dir.join(&name);
    let result = (|| {
        std::fs::write(&local, b"ftpmonitor check\n")
            .map_err(|e| Error::runtime(format!("cannot write a probe file in {}: {e}", EscapedPath(&probe_dir))))?;
        let rel = RelPath::from_local(&probe_dir, &local).map_err(|_| Error::runtime("bad probe file name"))?;
        let tree = crate::localfs::Tree::new(probe_dir.clone());
        let abort = AtomicBool::new(false);
        let t = Instant::now();
        match (session.upload(&tree, &rel, &abort, None, false), &cfg.temp_dir) {
            (Ok(_), None) => println!(
                "upload: probe stored in {} (created if missing) under a temporary name, checked and renamed into place in {} ms",
                Escaped(&cfg.remote_dir),
                t.elapsed().as_millis()
            ),
            (Ok(_), Some(staging)) => println!(
                "upload: probe stored in {} (--temp-dir, created if missing) under a temporary name, checked and \
                 renamed from there into {} in {} ms",
                Escaped(staging),
                Escaped(&cfg.remote_dir),
                t.elapsed().as_millis()
            ),
            (Err(f), None) => {
                problems.push(format!(
                    "cannot upload into {}: {f}: check that {} may create files and directories there",
                    Escaped(&cfg.remote_dir),
                    cfg.user
                ));
                return Ok(());
            }
            (Err(f), Some(staging)) => {
                problems.push(format!(
                    "cannot upload into {} through --temp-dir {}: {f}: check that {} may create files there and \
                     that the staging directory is on the same server disk as REMOTE_DIR (a rename cannot cross disks)",
                    Escaped(&cfg.remote_dir),
                    Escaped(staging),
                    cfg.user
                ));
                return Ok(());
            }
        }
        match (session.chmod_works(), cfg.chmod, cfg.chmod_dirs) {
            (_, None, None) => {}
            (Some(true), file, dir) => {
                println!(
                    "chmod: SITE CHMOD works: files get mode {}, directories the tool creates {}",
                    mode_text(file),
                    mode_text(dir)
                );
            }
            (Some(false), _, _) => problems.push(
                "warning: the server refuses SITE CHMOD: uploaded files and created directories keep the modes the \
                 server gives them; set the server's umask instead, or leave out --chmod and --chmod-dirs"
                    .to_string(),
            ),
            (None, None, Some(mode)) => {
                // The probe created no directory: try the mode on the probe itself.
                let probe = crate::relpath::join_remote(&cfg.remote_dir, &name);
                match session.try_chmod(&probe, mode) {
                    Ok(true) => println!("chmod: SITE CHMOD works: directories the tool creates get mode {mode:03o}"),
                    Ok(false) => problems.push(
                        "warning: the server refuses SITE CHMOD: directories the tool creates keep the mode the \
                         server gives them; leave out --chmod-dirs"
                            .to_string(),
                    ),
                    Err(f) => problems.push(format!("SITE CHMOD: {f}")),
                }
            }
            (None, Some(_), _) => {}
        }
        std::fs::write(&local, b"ftpmonitor check, second version\n")
            .map_err(|e| Error::runtime(format!("cannot rewrite the probe file: {e}")))?;
        match session.upload(&tree, &rel, &abort, None, false) {
            Ok(_) if session.renames_aside() => println!(
                "replace: the server refuses to rename over an existing file; old files are renamed aside first"
            ),
            Ok(_) => println!("replace: renaming over an existing file works"),
            Err(f) => problems.push(format!(
                "cannot replace an existing file: {f}: the account needs the right to overwrite or rename"
            )),
        }
        match session.delete(&rel) {
            Ok(()) => println!("delete: probe removed"),
            Err(f) => problems.push(format!(
                "warning: cannot delete the probe ({f}): --delete would not work; remove {name} by hand"
            )),
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&probe_dir);
    result
}
