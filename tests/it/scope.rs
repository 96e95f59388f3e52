//! What is out of scope (excluded, or below the top level with `--no-recursive`) never
//! leaves the machine, however the job for it was queued: from the journal's queue after a
//! restart, from a retry, or before SIGHUP added the exclude.

use crate::support::{Behaviour, Daemon, FtpProxy, RELOADED, Sandbox, ServerEvent, TIMEOUT, Test, Verdict};

/// The op the journal's queue holds for `rel`, if any.
fn queued(s: &Sandbox, rel: &str) -> Option<String> {
    let path = s.state_dir().join("journal.sqlite");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("SELECT op FROM queue WHERE path = ?1", [rel], |r| r.get(0)).ok()
}

/// Every path the server stored, as it recorded them.
fn stored(d: &Daemon) -> Vec<String> {
    d.server()
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, .. } => Some(path),
            _ => None,
        })
        .collect()
}

/// A daemon is killed with files still in their cooldown (so in the journal's queue only),
/// and the next run has an exclude or `--no-recursive` that leaves them out.
fn queued_then_restarted_with(extra: &[&str]) {
    let d = Test::new().cooldown(Some("60s")).start();
    d.write("secret.key", b"private key");
    d.write("sub/deep.txt", b"below the top level");
    d.write("plain.txt", b"plain");
    for rel in ["secret.key", "sub/deep.txt", "plain.txt"] {
        d.wait_until(&format!("{rel} is in the journal's queue"), || queued(&d, rel).is_some());
    }
    d.signal(libc::SIGKILL);
    d.wait_exit(TIMEOUT);
    assert!(d.remote_files().is_empty(), "something was uploaded during the cooldown\n{}", d.diagnostics());

    let out = d.again().cooldown(Some("0")).args(["--once"]).args(extra).run();
    out.assert_exit(0);
    assert_eq!(out.daemon.remote("plain.txt").as_deref(), Some(&b"plain"[..]), "{}", out.daemon.diagnostics());
    let stored = stored(&out.daemon);
    for rel in ["secret.key", "sub/deep.txt"] {
        assert!(
            !stored.iter().any(|p| p.contains(rel)),
            "{rel}, queued before the restart, was uploaded although it is out of scope now\n{}",
            out.daemon.diagnostics()
        );
    }
}

#[test]
fn a_queued_path_excluded_at_the_next_start_is_not_uploaded() {
    queued_then_restarted_with(&["--exclude", "*.key", "--exclude", "sub"]);
}

#[test]
fn a_queued_path_below_the_top_level_is_not_uploaded_with_no_recursive() {
    queued_then_restarted_with(&["--exclude", "*.key", "--no-recursive"]);
}

/// A config file with the four values (the server at `host`:`port`) and `extra` lines.
fn write_config(t: &Sandbox, host: &str, port: u16, extra: &str) -> std::path::PathBuf {
    let path = t.tmp().join("job.toml");
    let text = format!(
        "watch-dir = {:?}\nhost = {host:?}\nport = {port}\nremote-dir = \"/upload\"\n{extra}",
        t.watch_dir().display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_path_excluded_by_sighup_during_its_cooldown_is_not_uploaded() {
    let t = Test::new().cooldown(None).no_positionals().args(["--parallel", "1"]);
    let config = write_config(&t, "127.0.0.1", t.server().port(), "cooldown = \"3s\"\n");
    let d = t.arg("--config").arg(&config).start();
    d.write("secret.key", b"private key");
    d.wait_until("secret.key is in the journal's queue", || queued(&d, "secret.key").is_some());

    write_config(&d, "127.0.0.1", d.server().port(), "cooldown = \"3s\"\nexclude = [\"*.key\"]\n");
    d.signal(libc::SIGHUP);
    d.wait_for_log(RELOADED);
    // Written after the reload with the same cooldown: its upload comes after secret.key's
    // cooldown ended, and with one connection after anything planned before it.
    d.write("barrier.txt", b"barrier");
    d.wait_remote("barrier.txt", b"barrier");
    assert!(
        !stored(&d).iter().any(|p| p.contains("secret.key")),
        "secret.key was uploaded after SIGHUP excluded it\n{}",
        d.diagnostics()
    );
}

/// Refuses every STOR of a name containing "secret" (a temporary refusal: retried).
struct RefuseSecrets;

impl Behaviour for RefuseSecrets {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        if verb == "STOR" && line.contains("secret") {
            Verdict::Answer("451 not now".to_owned())
        } else {
            Verdict::Forward
        }
    }
}

#[test]
fn a_retry_of_a_path_excluded_by_sighup_is_not_uploaded() {
    let t = Test::new().cooldown(None).no_positionals().args(["--parallel", "1"]);
    let proxy = FtpProxy::start(t.server().port(), RefuseSecrets);
    let host = proxy.ip().to_string();
    let config = write_config(&t, &host, proxy.port(), "cooldown = \"0.2s\"\n");
    let d = t.arg("--config").arg(&config).start();
    d.write("secret.key", b"private key");
    d.wait_until("the server refused secret.key once", || {
        proxy.commands().iter().any(|c| c.starts_with("STOR") && c.contains("secret"))
    });
    write_config(&d, &host, proxy.port(), "cooldown = \"0.2s\"\nexclude = [\"*.key\"]\n");
    d.signal(libc::SIGHUP);
    d.wait_for_log(RELOADED);
    // Its retry (after about a second) is dropped, and says so.
    d.wait_for_log("skipping secret.key: excluded now");
    let refused = proxy.commands().iter().filter(|c| c.starts_with("STOR") && c.contains("secret")).count();
    d.write("barrier.txt", b"barrier");
    d.wait_remote("barrier.txt", b"barrier");
    let after = proxy.commands().iter().filter(|c| c.starts_with("STOR") && c.contains("secret")).count();
    assert_eq!(refused, after, "secret.key was sent again after SIGHUP excluded it\n{}", d.diagnostics());
    assert!(proxy.problems().is_empty(), "{:?}", proxy.problems());
}
