//! Running as a service: what systemd, launchd and Windows are told, checked against the
//! binary itself.
//!
//! - `Type=notify`: the daemon reports READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1 on
//!   the unix datagram socket named by `NOTIFY_SOCKET`, as systemd would hand it.
//! - Every service file's command line (the systemd units' `ExecStart=`, the launchd
//!   property lists' `ProgramArguments`, the Windows batch file's call) is run against the
//!   in-process server with the same options in the same order, each value that names a
//!   place swapped for this test's, plus `--once --dry-run`.
//! - The man pages and shell completions in the tree are what the clap definition
//!   generates now, and the Debian package's units (packaging/systemd/) are systemd/'s
//!   with ExecStart= at /usr/bin. After a change to `src/cli.rs` or a unit, rewrite them with
//!   `FTPMONITOR_REGENERATE=1 cargo test --test it service`.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};
use ftpmonitor::cli::Cli;

use crate::support::{Daemon, Finished, PASSWORD, POLL, READY, TIMEOUT, Test, USER};

/// A file of this repository.
fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read_repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------
// sd_notify

/// The socket systemd listens on for `Type=notify` services.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    received: Vec<(Instant, String)>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(POLL * 5)).expect("set a read timeout on the notify socket");
        NotifySocket { socket, path, received: Vec::new() }
    }

    /// Receives datagrams until one carries the line `assignment` (such as `READY=1`) and
    /// returns it; panics after [`TIMEOUT`] or when the daemon exits first.
    fn wait_for(&mut self, assignment: &str, d: &Daemon) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.received.push((Instant::now(), message.clone()));
                    if message.lines().any(|l| l == assignment) {
                        return message;
                    }
                    continue;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("receiving on the notify socket: {e}"),
            }
            let why = if let Some(status) = d.try_exit() {
                format!("ftpmonitor exited ({status})")
            } else if Instant::now() >= deadline {
                format!("timed out after {TIMEOUT:?}")
            } else {
                continue;
            };
            panic!(
                "{why} before sending {assignment} to NOTIFY_SOCKET; it sent {:?}\n{}",
                self.received.iter().map(|(_, m)| m).collect::<Vec<_>>(),
                d.diagnostics()
            );
        }
    }
}

#[test]
fn systemd_hears_ready_once_the_tree_is_watched_and_stopping_on_sigterm() {
    let t = Test::new();
    let mut notify = NotifySocket::bind(t.tmp());
    let d = t.env("NOTIFY_SOCKET", &notify.path).spawn();

    let ready = notify.wait_for("READY=1", &d);
    assert!(d.own_log().contains(READY), "READY=1 came before the log said {READY:?}\n{}", d.diagnostics());
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=") && l.len() > "STATUS=".len()),
        "READY=1 without a STATUS= line for `systemctl status`: {ready:?}"
    );
    // Ready means watching: a file written now is uploaded.
    d.write("after-ready.txt", b"after ready");
    d.wait_remote("after-ready.txt", b"after ready");

    d.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1", &d);
    let status = d.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "SIGTERM under systemd must exit 0\n{}", d.diagnostics());
}

#[test]
fn systemd_hears_ready_while_the_server_is_unreachable() {
    let t = Test::new();
    t.server().stop();
    let mut notify = NotifySocket::bind(t.tmp());
    let d = t.env("NOTIFY_SOCKET", &notify.path).spawn();
    // An unreachable server is retried, not fatal: systemd must not time the start out.
    notify.wait_for("READY=1", &d);
    assert!(d.try_exit().is_none(), "ftpmonitor exited after READY=1\n{}", d.diagnostics());
}

#[test]
fn sighup_is_reported_to_systemd_as_reloading_then_ready() {
    let t = Test::new();
    let mut notify = NotifySocket::bind(t.tmp());
    let d = t.env("NOTIFY_SOCKET", &notify.path).spawn();
    notify.wait_for("READY=1", &d);

    // What `systemctl reload` does through ExecReload=/bin/kill -HUP $MAINPID.
    d.signal(libc::SIGHUP);
    notify.wait_for("RELOADING=1", &d);
    notify.wait_for("READY=1", &d);
    assert!(d.try_exit().is_none(), "SIGHUP without a terminal must reload, not stop\n{}", d.diagnostics());
}

#[test]
fn watchdog_is_pinged_at_half_its_interval() {
    let t = Test::new();
    let mut notify = NotifySocket::bind(t.tmp());
    // WatchdogSec=200ms. WATCHDOG_PID, when set, must name the daemon: leave it out.
    let d = t.env("NOTIFY_SOCKET", &notify.path).env("WATCHDOG_USEC", "200000").env_remove("WATCHDOG_PID").spawn();
    notify.wait_for("READY=1", &d);

    let mut pings = Vec::new();
    for _ in 0..11 {
        notify.wait_for("WATCHDOG=1", &d);
        pings.push(notify.received.last().expect("a ping was received").0);
    }
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    // Every 100 ms; the median leaves room for a loaded machine's stalls.
    assert!(median < Duration::from_millis(200), "WATCHDOG=1 every {median:?}, not at half of 200 ms: {gaps:?}");
    assert!(d.try_exit().is_none(), "ftpmonitor exited\n{}", d.diagnostics());
}

// ---------------------------------------------------------------------------------------
// Service command lines, run for real

/// Runs a service file's command line (`argv[0]` is the program) against this test's
/// server: the same options in the same order, each value that names a place swapped for
/// this test's, the job in a config file, plus `--once --dry-run`. Asserts exit 0.
fn run_service_command_line(what: &str, argv: &[String]) -> Finished {
    let (program, args) = argv.split_first().unwrap_or_else(|| panic!("{what}: empty command line"));
    assert!(
        program.ends_with("/ftpmonitor") || program.ends_with("\\ftpmonitor.exe"),
        "{what}: runs {program:?}, not ftpmonitor"
    );

    let t =
        Test::new().foreground(false).no_standard_paths().user(None).cooldown(None).password_env(None).no_positionals();
    t.write("service/hello.txt", b"hello");
    let etc = t.tmp().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("password"), format!("{PASSWORD}\n")).unwrap();
    let config = etc.join("ftpmonitor.toml");
    std::fs::write(
        &config,
        format!(
            "watch-dir = {:?}\nhost = \"127.0.0.1\"\nport = {}\nremote-dir = \"/upload\"\nuser = {USER:?}\n\
             password-file = \"password\"\n",
            t.watch_dir().to_str().unwrap(),
            t.server().port()
        ),
    )
    .unwrap();
    let (pid_file, state_dir, log_file) = (t.pid_file_path(), t.state_dir(), t.log_path());

    let command = Cli::command();
    let mut swapped: Vec<OsString> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let name = arg
            .strip_prefix("--")
            .filter(|n| !n.contains('='))
            .unwrap_or_else(|| panic!("{what}: {arg:?}: this test knows only long options with separate values"));
        let option = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name))
            .unwrap_or_else(|| panic!("{what}: ftpmonitor has no option --{name}"));
        swapped.push(arg.into());
        if !option.get_action().takes_values() {
            continue;
        }
        let value = iter.next().unwrap_or_else(|| panic!("{what}: --{name} without a value"));
        swapped.push(match name {
            "config" => config.clone().into(),
            "pid-file" => pid_file.clone().into(),
            "state-dir" => state_dir.clone().into(),
            "log-file" if value == "-" => "-".into(),
            "log-file" => log_file.clone().into(),
            _ => panic!("{what}: this test does not know what to put in place of --{name} {value}"),
        });
    }
    // As root, a command line that leaves them out would use the machine's own
    // /var/run/ftpmonitor.pid and /var/lib/ftpmonitor; as another user the test's
    // XDG_* directories already keep the defaults inside the sandbox.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        for (option, path) in [("--pid-file", &pid_file), ("--state-dir", &state_dir)] {
            if !args.iter().any(|a| a == option) {
                swapped.push(option.into());
                swapped.push(path.into());
            }
        }
    }

    let out = t.args(swapped).args(["--once", "--dry-run"]).run();
    out.assert_exit(0);
    let said = format!("{}{}", out.log(), out.stderr);
    assert!(said.contains("hello.txt"), "{what}: the dry run does not mention hello.txt\n{}", out.daemon.diagnostics());
    assert!(out.daemon.remote_files().is_empty(), "{what}: --dry-run changed the server\n{}", out.daemon.diagnostics());
    out
}

/// Parses `argv` (program first) with the binary's clap definition.
fn parse(what: &str, argv: &[String]) -> Cli {
    let mut line = vec!["ftpmonitor".to_string()];
    line.extend(argv.iter().skip(1).cloned());
    Cli::try_parse_from(&line).unwrap_or_else(|e| panic!("{what}: ftpmonitor rejects {line:?}:\n{e}"))
}

// ---------------------------------------------------------------------------------------
// systemd

/// The `Key=value` lines of `[section]` of a unit file, in order (a key may repeat).
fn unit_entries(text: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
        } else if current == section {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not Key=value: {line:?}"));
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    entries
}

struct Unit {
    file: &'static str,
    unit: Vec<(String, String)>,
    service: Vec<(String, String)>,
}

impl Unit {
    fn load(file: &'static str) -> Unit {
        let text = read_repo_file(file);
        Unit { file, unit: unit_entries(&text, "Unit"), service: unit_entries(&text, "Service") }
    }

    /// The last value of `key` in `[Service]` (later lines override earlier ones).
    fn get(&self, key: &str) -> &str {
        self.service
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{}: no {key}= in [Service]", self.file))
    }

    fn unit_get(&self, key: &str) -> Vec<&str> {
        self.unit.iter().filter(|(k, _)| k == key).flat_map(|(_, v)| v.split_whitespace()).collect()
    }

    /// `ExecStart=` split into words, with `%i` as for `ftpmonitor@scans.service`.
    fn exec_start(&self) -> Vec<String> {
        let line = self.get("ExecStart");
        assert!(!line.contains(['"', '\'', '\\', '$']), "{}: ExecStart= needs no quoting or variables", self.file);
        line.split_whitespace().map(|w| w.replace("%i", "scans")).collect()
    }

    /// The value of `--option` in `ExecStart=`.
    fn option(&self, option: &str) -> String {
        let words = self.exec_start();
        let at = words.iter().position(|w| w == option).unwrap_or_else(|| panic!("{}: no {option}", self.file));
        words.get(at + 1).cloned().unwrap_or_else(|| panic!("{}: {option} without a value", self.file))
    }
}

const UNITS: [&str; 2] = ["systemd/ftpmonitor.service", "systemd/ftpmonitor@.service"];

#[test]
fn systemd_units_run_the_daemon_as_a_notify_service() {
    for file in UNITS {
        let u = Unit::load(file);
        for (key, want) in [
            ("Type", "notify"),
            ("Restart", "always"),
            ("RestartSec", "10"),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
        ] {
            assert_eq!(u.get(key), want, "{file}: {key}=");
        }
        for key in ["After", "Wants"] {
            assert!(u.unit_get(key).contains(&"network-online.target"), "{file}: {key}= lacks network-online.target");
        }
        let user = u.get("User");
        assert!(!user.is_empty() && user != "root", "{file}: User={user} should be an unprivileged user");
        // sd_notify talks over AF_UNIX; the FTP connections need AF_INET and AF_INET6.
        let families: Vec<&str> = u.get("RestrictAddressFamilies").split_whitespace().collect();
        for family in ["AF_UNIX", "AF_INET", "AF_INET6"] {
            assert!(families.contains(&family), "{file}: RestrictAddressFamilies= lacks {family}");
        }

        let cli = parse(file, &u.exec_start());
        assert!(
            cli.command.is_none() && cli.run.daemon.foreground,
            "{file}: ExecStart= must run the daemon with --foreground"
        );
        assert_eq!(u.exec_start()[0], "/usr/local/bin/ftpmonitor", "{file}: ExecStart= program");
    }
}

#[test]
fn systemd_units_keep_their_files_in_the_directories_systemd_makes_for_them() {
    for file in UNITS {
        let u = Unit::load(file);
        let instance = |s: &str| s.replace("%i", "scans");
        let runtime = instance(u.get("RuntimeDirectory"));
        let state = instance(u.get("StateDirectory"));
        let logs = instance(u.get("LogsDirectory"));
        // ProtectSystem=strict leaves only these writable for the service.
        let pid_file = u.option("--pid-file");
        assert!(
            pid_file.starts_with(&format!("/run/{runtime}/")),
            "{file}: --pid-file {pid_file} not in RuntimeDirectory="
        );
        assert_eq!(u.option("--state-dir"), format!("/var/lib/{state}"), "{file}: --state-dir is not StateDirectory=");
        let log_file = u.option("--log-file");
        assert!(
            log_file.starts_with(&format!("/var/log/{logs}/")),
            "{file}: --log-file {log_file} not in LogsDirectory="
        );
        // Instances share /run/ftpmonitor; stopping one must not remove it under the others.
        assert_eq!(u.get("RuntimeDirectoryPreserve"), "yes", "{file}: RuntimeDirectoryPreserve=");
        assert!(u.option("--config").starts_with("/etc/ftpmonitor/"), "{file}: config outside /etc/ftpmonitor");

        if file.contains('@') {
            // One PID file, journal, log and config per instance.
            for option in ["--config", "--pid-file", "--state-dir", "--log-file"] {
                assert!(u.option(option).contains("scans"), "{file}: {option} is shared by all instances");
            }
        }
    }
}

#[test]
fn logrotate_rotates_every_unit_log_and_tells_the_daemon() {
    let text = read_repo_file("systemd/ftpmonitor.logrotate");
    // Stanzas: `PATTERN... {` ... `}`.
    let mut stanzas: Vec<(Vec<String>, String)> = Vec::new();
    let mut current: Option<(Vec<String>, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match &mut current {
            None if trimmed.ends_with('{') => {
                let patterns = trimmed.trim_end_matches('{').split_whitespace().map(str::to_string).collect();
                current = Some((patterns, String::new()));
            }
            None => panic!("ftpmonitor.logrotate: unexpected line outside a stanza: {line:?}"),
            Some(_) if trimmed == "}" => stanzas.extend(current.take()),
            Some((_, body)) => {
                body.push_str(trimmed);
                body.push('\n');
            }
        }
    }
    assert!(current.is_none(), "ftpmonitor.logrotate: unclosed stanza");

    let mut logs: Vec<String> = UNITS.iter().map(|f| Unit::load(f).option("--log-file")).collect();
    logs.push("/var/log/ftpmonitor.log".to_string()); // the root default, without systemd
    for log in logs {
        let (_, body) = stanzas
            .iter()
            .find(|(patterns, _)| {
                patterns.iter().any(|p| globset::Glob::new(p).unwrap().compile_matcher().is_match(&log))
            })
            .unwrap_or_else(|| panic!("ftpmonitor.logrotate does not rotate {log}"));
        let script = body.split("postrotate").nth(1).unwrap_or_else(|| panic!("no postrotate script for {log}"));
        assert!(
            script.contains("HUP") || script.contains("reload"),
            "the postrotate script for {log} does not make ftpmonitor reopen its log"
        );
        assert!(body.contains("delaycompress"), "{log}: lines written before the SIGHUP land in the rotated file");
    }
}

#[test]
fn systemd_unit_command_line_runs() {
    run_service_command_line("systemd/ftpmonitor.service", &Unit::load(UNITS[0]).exec_start());
}

#[test]
fn systemd_template_unit_command_line_runs() {
    run_service_command_line("systemd/ftpmonitor@.service", &Unit::load(UNITS[1]).exec_start());
}

// ---------------------------------------------------------------------------------------
// launchd

/// `file`'s top-level dictionary, after checking what every ftpmonitor job needs.
fn launchd_job(file: &str) -> plist::Dictionary {
    let value = plist::Value::from_file(repo_path(file)).unwrap_or_else(|e| panic!("{file}: not a property list: {e}"));
    let dict = value.into_dictionary().unwrap_or_else(|| panic!("{file}: not a dictionary"));
    let label = dict.get("Label").and_then(plist::Value::as_string).unwrap_or_else(|| panic!("{file}: no Label"));
    assert_eq!(Path::new(file).file_stem().unwrap().to_str(), Some(label), "{file}: Label and file name differ");
    for key in ["RunAtLoad", "KeepAlive"] {
        assert_eq!(dict.get(key).and_then(plist::Value::as_boolean), Some(true), "{file}: {key} must be true");
    }
    for key in ["StandardOutPath", "StandardErrorPath"] {
        let path = dict.get(key).and_then(plist::Value::as_string).unwrap_or_else(|| panic!("{file}: no {key}"));
        assert!(path.starts_with('/') && path.ends_with(".log"), "{file}: {key} {path:?} is not an absolute .log path");
    }
    dict
}

fn program_arguments(file: &str, dict: &plist::Dictionary) -> Vec<String> {
    let args: Vec<String> = dict
        .get("ProgramArguments")
        .and_then(plist::Value::as_array)
        .unwrap_or_else(|| panic!("{file}: no ProgramArguments array"))
        .iter()
        .map(|v| v.as_string().unwrap_or_else(|| panic!("{file}: ProgramArguments holds a non-string")).to_string())
        .collect();
    let cli = parse(file, &args);
    assert!(cli.command.is_none() && cli.run.daemon.foreground, "{file}: launchd needs --foreground");
    assert!(cli.run.config.as_deref().is_some_and(Path::is_absolute), "{file}: --config needs an absolute path");
    args
}

#[test]
fn launchd_agent_plist_runs() {
    let file = "launchd/org.ftpmonitor.agent.plist";
    let dict = launchd_job(file);
    let args = program_arguments(file, &dict);
    // launchd expands no ~ or $HOME: the README has the user replace /Users/YOU.
    assert!(args.iter().any(|a| a.starts_with("/Users/YOU/")), "{file}: the /Users/YOU placeholder is gone");
    run_service_command_line(file, &args);
}

#[test]
fn launchd_daemon_plist_runs() {
    let file = "launchd/org.ftpmonitor.daemon.plist";
    let dict = launchd_job(file);
    assert!(!dict.contains_key("UserName"), "{file}: runs as root; --run-as drops privileges");
    run_service_command_line(file, &program_arguments(file, &dict));
}

// ---------------------------------------------------------------------------------------
// Windows

/// Expands `%NAME%` and `%~dp0` in a batch file line the way cmd.exe would for a user
/// `you` with the batch file in `C:\Users\you\AppData\Local\Programs\ftpmonitor\`.
fn expand_batch(line: &str, vars: &[(String, String)]) -> String {
    let mut out = line.replace("%~dp0", r"C:\Users\you\AppData\Local\Programs\ftpmonitor\");
    let known = [("APPDATA", r"C:\Users\you\AppData\Roaming"), ("LOCALAPPDATA", r"C:\Users\you\AppData\Local")];
    for (name, value) in vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(known) {
        out = out.replace(&format!("%{name}%"), value);
    }
    out
}

/// Splits a cmd.exe command line into words: spaces separate, double quotes group.
fn batch_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            ' ' | '\t' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            _ => {
                word.push(c);
                any = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quotes in {line:?}");
    if any {
        words.push(word);
    }
    words
}

/// The command line ftpmonitor.bat runs ftpmonitor.exe with, expanded.
fn batch_command_line() -> Vec<String> {
    let file = "windows/ftpmonitor.bat";
    let bytes = std::fs::read(repo_path(file)).unwrap();
    let text = String::from_utf8(bytes).expect("ftpmonitor.bat is UTF-8 (ASCII)");
    // cmd.exe misreads labels and `goto` in files with bare LF line ends.
    assert!(
        text.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
        "{file} must have CRLF line ends (windows/.gitattributes: eol=crlf)"
    );
    assert!(text.lines().next().is_some_and(|l| l.trim() == "@echo off"), "{file}: first line should be @echo off");
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut runs = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(assignment) = line.strip_prefix("set \"").and_then(|l| l.strip_suffix('"')) {
            let (name, value) = assignment.split_once('=').unwrap();
            let value = expand_batch(value, &vars);
            vars.push((name.to_string(), value));
            continue;
        }
        let words = batch_words(&expand_batch(line, &vars));
        if words.first().is_some_and(|w| w.to_ascii_lowercase().ends_with("\\ftpmonitor.exe")) {
            runs.push(words);
        }
    }
    assert_eq!(runs.len(), 1, "{file}: expected one line that runs ftpmonitor.exe, found {runs:?}");
    runs.remove(0)
}

#[test]
fn windows_batch_file_runs_ftpmonitor_in_the_foreground() {
    let argv = batch_command_line();
    let cli = parse("windows/ftpmonitor.bat", &argv);
    assert!(cli.command.is_none() && cli.run.daemon.foreground, "ftpmonitor.bat must pass --foreground: {argv:?}");
    assert_eq!(
        cli.run.config.as_deref().and_then(Path::to_str),
        Some(r"C:\Users\you\AppData\Roaming\ftpmonitor\ftpmonitor.toml"),
        "ftpmonitor.bat: config file"
    );

    let ps1 = read_repo_file("windows/install.ps1");
    for needle in [
        "Register-ScheduledTask",
        "New-ScheduledTaskTrigger -AtLogOn",
        "Unregister-ScheduledTask",
        "[switch]$Uninstall",
        "'ftpmonitor.bat'",
        r"'ftpmonitor\ftpmonitor.toml'",
    ] {
        assert!(ps1.contains(needle), "windows/install.ps1 lacks {needle:?}");
    }
}

#[test]
fn windows_batch_command_line_runs() {
    run_service_command_line("windows/ftpmonitor.bat", &batch_command_line());
}

// ---------------------------------------------------------------------------------------
// Man pages and shell completions

/// Sections of ftpmonitor(8) that clap knows nothing about: (title, [(tag, text)]).
const MAN_SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "EXIT STATUS",
        &[
            ("0", "Clean exit, also after a stop by SIGTERM or SIGINT."),
            (
                "1",
                "Runtime failure: login refused, TLS failure, already running, or --once with files that \
                 could not be synced.",
            ),
            ("2", "Bad usage or configuration; restarting does not help."),
            ("3", "ftpmonitor status: the daemon does not run."),
        ],
    ),
    (
        "SIGNALS",
        &[
            (
                "SIGTERM, SIGINT",
                "Graceful stop: running uploads may finish for 10 s, then are aborted (nothing partial is \
                 published); the PID file is removed.",
            ),
            (
                "SIGHUP",
                "Reload the config file (an invalid one is logged and the old one kept) and reopen the log \
                 file, for logrotate. In --foreground with a controlling terminal: hang-up, a graceful stop.",
            ),
            ("SIGUSR1", "Reconcile the whole tree with the server now."),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            ("FTPMONITOR_PASSWORD", "The FTP password; preferred over --password-file, the config file and ~/.netrc."),
            ("FTPMONITOR_*", "Every value option, such as FTPMONITOR_COOLDOWN=2s; the command line wins."),
            (
                "NOTIFY_SOCKET, WATCHDOG_USEC",
                "Set by systemd for Type=notify: READY=1 once the tree is watched, RELOADING=1 around a reload, \
                 STOPPING=1, and WATCHDOG=1 at half the watchdog interval.",
            ),
        ],
    ),
    (
        "FILES",
        &[
            ("/var/run/ftpmonitor.pid", "PID file as root; others: $XDG_RUNTIME_DIR/ftpmonitor.pid."),
            ("/var/log/ftpmonitor.log", "Log as root; others: ~/.local/state/ftpmonitor/ftpmonitor.log."),
            (
                "/var/lib/ftpmonitor/",
                "State dir and sync journal (journal.sqlite) as root; others: ~/.local/state/ftpmonitor/.",
            ),
            (
                "/etc/ftpmonitor/NAME.toml",
                "Config file of ftpmonitor.service (NAME ftpmonitor) or ftpmonitor@NAME.service.",
            ),
            (
                "/run/ftpmonitor/, /var/lib/ftpmonitor/, /var/log/ftpmonitor/",
                "PID files, state and logs of the systemd units.",
            ),
            ("/etc/logrotate.d/ftpmonitor", "Rotates the logs and sends SIGHUP."),
        ],
    ),
    (
        "SEE ALSO",
        &[(
            "",
            "systemctl(1), systemd.service(5), systemd.exec(5), logrotate(8), launchctl(1), launchd.plist(5), \
             and README.md of the source tree.",
        )],
    ),
];

fn man_sections() -> Vec<u8> {
    let mut roff = Roff::new();
    for (title, items) in MAN_SECTIONS {
        roff.control("SH", [*title]);
        for (tag, text) in *items {
            if tag.is_empty() {
                roff.text([roman(*text)]);
            } else {
                roff.control("TP", []).text([bold(*tag)]).text([roman(*text)]);
            }
        }
    }
    // Each rendering starts with the same apostrophe preamble; the page has it once.
    let preamble = Roff::new().render();
    roff.render().strip_prefix(&preamble).expect("roff output starts with its preamble").as_bytes().to_vec()
}

fn man_page(command: clap::Command, extra: Option<&[u8]>) -> Vec<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).section("8").render(&mut page).expect("render a man page");
    let Some(extra) = extra else {
        return page;
    };
    let at = page.windows(12).position(|w| w == b".SH VERSION\n").unwrap_or(page.len());
    page.splice(at..at, extra.iter().copied());
    page
}

/// Every generated file: (path in the repository, content).
fn generated_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    files.push(("man/man8/ftpmonitor.8".to_string(), man_page(command.clone(), Some(&man_sections()))));
    for sub in command.get_subcommands() {
        let name = sub.get_display_name().expect("subcommands have display names after build()");
        files.push((format!("man/man8/{name}.8"), man_page(sub.clone(), None)));
    }
    for (shell, name) in
        [(Shell::Bash, "ftpmonitor.bash"), (Shell::Zsh, "_ftpmonitor"), (Shell::Fish, "ftpmonitor.fish")]
    {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ftpmonitor", &mut script);
        files.push((format!("completions/{name}"), script));
    }
    // The Debian package's units (Cargo.toml, [package.metadata.deb]): the
    // repository's, with the binary where the package puts it.
    for unit in UNITS {
        let text = read_repo_file(unit).replace("/usr/local/bin/ftpmonitor", "/usr/bin/ftpmonitor");
        files.push((unit.replacen("systemd/", "packaging/systemd/", 1), text.into_bytes()));
    }
    files
}

#[test]
fn man_pages_and_completions_match_the_clap_definition() {
    let regenerate = std::env::var_os("FTPMONITOR_REGENERATE").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (rel, content) in generated_files() {
        let path = repo_path(&rel);
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap_or_else(|e| panic!("cannot write {rel}: {e}"));
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what src/cli.rs and systemd/ generate now; regenerate them with\n    \
         FTPMONITOR_REGENERATE=1 cargo test --test it service\nand commit the result"
    );
}

#[test]
fn man_page_is_section_8_and_documents_signals_and_files() {
    let page = read_repo_file("man/man8/ftpmonitor.8");
    assert!(page.lines().any(|l| l.starts_with(".TH ftpmonitor 8")), "ftpmonitor.8 is not in section 8");
    for section in ["SYNOPSIS", "OPTIONS", "EXIT STATUS", "SIGNALS", "FILES"] {
        assert!(
            page.contains(&format!(".SH {section}\n")) || page.contains(&format!(".SH \"{section}\"\n")),
            "no {section}"
        );
    }
    for option in ["foreground", "pid\\-file", "run\\-as"] {
        assert!(page.contains(&format!("\\-\\-{option}")), "ftpmonitor.8 does not document --{option}");
    }
    let bash = read_repo_file("completions/ftpmonitor.bash");
    assert!(bash.contains("--pid-file") && bash.contains("complete "), "the bash completion misses options");
}
