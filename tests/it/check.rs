//! `ftpmonitor check`: validates the configuration, tries the server the way a run would and
//! prints a report; exit 0 when a real run would work, 1 when it would not, 2 for bad usage.
//! It never forks, writes no PID file, opens no journal and leaves nothing on the server.

use crate::support::{EXIT_OK, EXIT_RUNTIME, Finished, PASSWORD, ServerEvent, TEMP_SUFFIX, Test, USER};

/// The name every probe file starts with.
const PROBE_PREFIX: &str = ".ftpmonitor-check-";

/// `ftpmonitor check [the usual options] WATCH HOST PORT REMOTE` for a fresh sandbox.
fn check() -> Test {
    Test::new().subcommand("check")
}

/// The first stdout line that starts with `prefix`; panics with the whole report otherwise.
fn line<'a>(out: &'a Finished, prefix: &str) -> &'a str {
    out.stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| {
        panic!("no stdout line starts with {prefix:?}\n{}", out.daemon.diagnostics());
    })
}

/// Whether the last path component of `path` is a probe (or a probe's temporary name).
fn is_probe(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.trim_start_matches('.').starts_with(PROBE_PREFIX.trim_start_matches('.'))
}

/// Panics if any file under the server root is a probe or a temporary upload.
fn assert_no_leftovers(out: &Finished) {
    let left: Vec<String> =
        out.server().remote_files().into_keys().filter(|p| is_probe(p) || p.ends_with(TEMP_SUFFIX)).collect();
    assert_eq!(left, Vec::<String>::new(), "check left files on the server\n{}", out.daemon.diagnostics());
}

#[test]
fn check_helpers_probe_names() {
    assert!(is_probe("/upload/.ftpmonitor-check-123"));
    assert!(is_probe("/upload/..ftpmonitor-check-123.ftpmonitor-part"));
    assert!(is_probe(".ftpmonitor-check-1"));
    assert!(!is_probe("/upload/ftpmonitor-check.txt"));
    assert!(!is_probe("/.ftpmonitor-check-1/a.txt"));
}

#[test]
fn check_argv_starts_with_the_subcommand_and_has_no_foreground() {
    let t = check();
    let argv: Vec<String> = t.command_line().iter().map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(argv.first().map(String::as_str), Some("check"), "{argv:?}");
    assert!(!argv.iter().any(|a| a == "--foreground"), "{argv:?}");
}

#[test]
fn check_against_a_working_server_reports_ok_and_leaves_nothing_behind() {
    let t = check().remote_dir("/fresh/inbox").create_remote_dir(false);
    t.write("a.txt", b"a local file the check must not upload");
    assert!(!t.server().root().join("fresh").exists());
    let out = t.run();
    out.assert_exit(EXIT_OK);

    line(&out, "configuration: ok");
    line(&out, &format!("server: logged in as {USER}"));
    let banner = line(&out, "  banner: ");
    assert!(banner.contains("ftpmonitor test server"), "the banner line does not show the greeting: {banner:?}");
    let features = line(&out, "  features: ");
    for word in ["MLSD", "SIZE", "REST STREAM", "UTF8"] {
        assert!(features.contains(word), "the features line does not name {word}: {features:?}");
    }
    // libunftp has no MFMT: the report says so instead of claiming it.
    assert!(features.contains("no MFMT"), "libunftp has no MFMT, the report claims it: {features:?}");
    let rtt = line(&out, "  round trip: ");
    assert!(rtt.contains(" ms"), "{rtt:?}");
    let upload = line(&out, "upload: probe stored in /fresh/inbox");
    assert!(upload.contains("(created if missing)"), "{upload:?}");
    line(&out, "replace: renaming over an existing file works");
    line(&out, "delete: probe removed");
    line(&out, "  data connections: passive (EPSV)");
    line(&out, "result: ok, a real run would work");
    assert!(!out.stdout.lines().any(|l| l.starts_with("problem:")), "{}", out.stdout);
    assert!(!out.stdout.contains(PASSWORD), "the report shows the password");

    // The remote directory was created, and the probe went through a real upload (under its
    // temporary name, renamed into place), was replaced and deleted.
    let inbox = out.server().root().join("fresh/inbox");
    assert!(inbox.is_dir(), "check did not create the remote directory\n{}", out.daemon.diagnostics());
    let events = out.server().events();
    assert!(
        events.contains(&ServerEvent::MadeDir { path: "/fresh/inbox".into() }),
        "no MKD /fresh/inbox recorded: {events:#?}"
    );
    let stored: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Stored { path, .. } if is_probe(path) => Some(path),
            _ => None,
        })
        .collect();
    assert!(!stored.is_empty(), "check stored no probe: {events:#?}");
    assert!(stored.iter().all(|p| p.starts_with("/fresh/inbox/")), "a probe was stored elsewhere: {events:#?}");
    assert!(
        stored.iter().all(|p| p.ends_with(TEMP_SUFFIX)),
        "a probe was stored under its final name, not uploaded like a file: {events:#?}"
    );
    let published: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Renamed { to, .. } if is_probe(to) => Some(to),
            _ => None,
        })
        .collect();
    assert!(published.len() >= 2, "the probe was not renamed into place twice (upload + replace): {events:#?}");
    let deleted = events.iter().find_map(|e| match e {
        ServerEvent::Deleted { path } if is_probe(path) => Some(path),
        _ => None,
    });
    assert_eq!(deleted, published.last().copied(), "the probe that was published is not the one deleted: {events:#?}");
    assert_eq!(
        events.iter().filter(|e| matches!(e, ServerEvent::Stored { path, .. } if !is_probe(path))).count(),
        0,
        "check uploaded something besides its probe: {events:#?}"
    );
    assert_no_leftovers(&out);
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0, "the remote directory is not empty");

    // Never forked, no PID file, no journal.
    assert!(out.status.code().is_some(), "{}", out.status);
    assert!(!out.pid_file_path().exists(), "check wrote a PID file");
    assert!(!out.state_dir().join("journal.sqlite").exists(), "check created the journal");
    assert_eq!(
        crate::support::proc::processes_mentioning(out.tmp()),
        Vec::<u32>::new(),
        "a process of this test still runs after check exited"
    );
}

#[test]
fn check_with_a_wrong_password_exits_1() {
    let out = check().password_env(Some("wrong-pass")).run();
    out.assert_exit(EXIT_RUNTIME);
    line(&out, "configuration: ok");
    line(&out, "server: FAILED");
    let problem = line(&out, "problem: cannot log in");
    assert!(problem.contains("--user"), "the fix does not mention --user: {problem:?}");
    line(&out, "result: FAILED");
    assert!(!out.stdout.contains("wrong-pass") && !out.stderr.contains("wrong-pass"), "the password is echoed");
    assert_eq!(out.server().events(), Vec::<ServerEvent>::new(), "a refused check changed the server");
    assert!(!out.pid_file_path().exists());
}

#[test]
fn check_with_the_server_down_exits_1_naming_the_address() {
    let t = check();
    let port = t.server().port();
    t.server().stop();
    let out = t.run();
    out.assert_exit(EXIT_RUNTIME);
    let address = format!("127.0.0.1:{port}");
    let failed = line(&out, "server: FAILED");
    assert!(failed.contains(&address), "the failure does not name {address}: {failed:?}");
    let problem = line(&out, "problem: ");
    assert!(problem.contains("HOST and PORT"), "the fix does not point at HOST and PORT: {problem:?}");
    line(&out, "result: FAILED");
    assert!(!out.stdout.contains("result: ok"), "{}", out.stdout);
}

#[test]
fn check_with_port_0_is_a_usage_error() {
    let out = check().port_arg("0").run();
    out.assert_usage_error(&["port", "0"]);
    assert!(!out.stdout.contains("result: ok"), "{}", out.stdout);
}

#[test]
fn check_with_a_remote_dir_that_cannot_be_created_exits_1() {
    // A plain file where the remote directory should be: MKD fails, and so does every STOR in it.
    let t = check().create_remote_dir(false);
    std::fs::write(t.server().root().join("upload"), b"a file, not a directory").unwrap();
    let out = t.run();
    out.assert_exit(EXIT_RUNTIME);
    line(&out, &format!("server: logged in as {USER}"));
    let problem = line(&out, "problem: cannot upload into");
    assert!(problem.contains("/upload"), "the problem does not name the remote directory: {problem:?}");
    line(&out, "result: FAILED");
    assert!(!out.stdout.lines().any(|l| l.starts_with("upload: ")), "{}", out.stdout);
    assert_eq!(
        out.server().remote_file("upload").as_deref(),
        Some(b"a file, not a directory".as_slice()),
        "check changed the file in the way"
    );
    assert_no_leftovers(&out);
}

#[test]
fn check_names_the_hooks() {
    let out = check().args(["--on-upload", "/bin/echo 'sent file'", "--on-failure", "/bin/true"]).run();
    out.assert_exit(EXIT_OK);
    let up = line(&out, "  hook on upload:");
    assert!(up.contains("/bin/echo sent file") || up.contains("/bin/echo \"sent file\""), "{up}");
    assert!(up.contains("without a shell") && up.contains("60 s"), "{up}");
    line(&out, "  hook on failure: /bin/true");
}
