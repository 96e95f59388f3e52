//! `ftpmonitor check`: validate the configuration and try the server the way a
//! real run would (log in, create the remote directory, upload a probe under a
//! temporary name, rename it into place, delete it), then print a short
//! report. Exit 0 when a real run would work, 1 otherwise. Never forks.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ftp::{Connector, Kind};
use crate::relpath::{EscapedPath, RelPath};

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let cfg = Config::from_args(args)?;
    println!("configuration: ok");
    println!("  watch directory: {}", EscapedPath(&cfg.watch_dir));
    println!("  server:          {}", cfg.target());
    println!("  PID file:        {}", EscapedPath(&cfg.pid_file));
    match &cfg.log_file {
        Some(p) => println!("  log file:        {}", EscapedPath(p)),
        None => println!("  log file:        (stderr only)"),
    }
    println!("  state directory: {}", EscapedPath(&cfg.state_dir));

    let connector = Connector::new(&cfg).map_err(|f| Error::usage(f.message))?;
    let started = Instant::now();
    let mut session = match connector.connect() {
        Ok(s) => s,
        Err(f) => {
            let fix = match f.kind {
                Kind::Login => "check --user and the password",
                Kind::Tls => "check the certificate, or give its CA with --ca-file",
                _ => "check HOST and PORT, and that the server runs and a firewall lets you through",
            };
            println!("server: FAILED: {f}: {fix}");
            return Ok(ExitCode::from(1));
        }
    };
    println!("server: logged in as {} in {} ms", cfg.user, started.elapsed().as_millis());
    if let Some(w) = session.welcome() {
        println!("  banner: {}", crate::relpath::Escaped(w.lines().next().unwrap_or_default()));
    }

    let probe_dir = tempfile_dir()?;
    let name = format!(".ftpmonitor-check-{}", std::process::id());
    let local = probe_dir.join(&name);
    std::fs::write(&local, b"ftpmonitor check\n")
        .map_err(|e| Error::runtime(format!("cannot write a probe file in {}: {e}", EscapedPath(&probe_dir))))?;
    let rel = RelPath::from_local(&probe_dir, &local).map_err(|_| Error::runtime("probe file name"))?;
    let abort = AtomicBool::new(false);
    let t = Instant::now();
    let result = session.upload(&local, &rel, &abort, None);
    let _ = std::fs::remove_dir_all(&probe_dir);
    let ok = match result {
        Ok(_) => {
            println!(
                "upload: probe stored under a temporary name and renamed into place in {} ms",
                t.elapsed().as_millis()
            );
            match session.delete(&rel) {
                Ok(()) => println!("delete: probe removed"),
                Err(f) => {
                    println!("delete: FAILED: {f}: --delete would not work; remove {name} by hand")
                }
            }
            true
        }
        Err(f) => {
            println!("upload: FAILED: {f}: check that {} may write to {}", cfg.user, cfg.remote_dir);
            false
        }
    };
    session.quit();
    if ok {
        println!("result: ok, a real run would work");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("result: FAILED");
        Ok(ExitCode::from(1))
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ftpmonitor-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::runtime(format!("cannot create {}: {e}", EscapedPath(&dir))))?;
    Ok(dir)
}
