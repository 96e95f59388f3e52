//! The password never shows: not in an error about the config file (whatever is wrong
//! with its `password` value), not on stderr, not in the log after a SIGHUP reload, not
//! when a server quotes it back, not in `status` (text or JSON), not in the journal.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{
    Behaviour, EXIT_RUNTIME, FtpProxy, PASSWORD, PROXY_IP, Sandbox, TIMEOUT, Test, Verdict, is_login_refused,
    poll_until,
};

/// The warning a SIGHUP logs when the new configuration is invalid.
const KEPT_OLD: &str = "keeping the old configuration";

/// Malformed `password` values, each with the strings that would give the value away
/// (the text itself, and any other spelling toml could print it in).
const MALFORMED: &[(&str, &[&str])] = &[
    ("123456", &["123456"]),
    ("-98765", &["98765"]),
    ("0x5ec7e7", &["5ec7e7", "6211559"]),
    ("31415.9265", &["31415", "9265"]),
    ("2.5e7", &["2.5e7", "25000000"]),
    ("true", &["true"]),
    ("1979-05-27T07:32:00Z", &["1979", "07:32"]),
    ("[\"pw-in-list-77\"]", &["pw-in-list-77"]),
    ("{ p = \"pw-in-table-88\" }", &["pw-in-table-88"]),
    ("pw-bare-word-99", &["pw-bare-word-99"]),
    ("\"pw-unclosed-66", &["pw-unclosed-66"]),
    ("\"pw-bad-escape\\q55\"", &["pw-bad-escape", "q55"]),
    ("'pw-literal-44' trailing", &["pw-literal-44", "trailing"]),
];

/// A config file naming everything but the password, plus `password_line`.
fn write_config(t: &Sandbox, path: &Path, password_line: &str) {
    let text = format!(
        "watch-dir = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nremote-dir = \"/upload\"\n{password_line}\n",
        t.watch_dir().display(),
        t.server().port()
    );
    std::fs::write(path, text).unwrap();
}

fn config_path(t: &Sandbox) -> PathBuf {
    t.tmp().join("job.toml")
}

fn assert_hidden(text: &str, tokens: &[&str], what: &str) {
    for token in tokens {
        assert!(!text.contains(token), "{what} shows {token:?} from the password value:\n{text}");
    }
}

#[test]
fn a_malformed_password_value_is_never_echoed_on_stderr() {
    for (value, tokens) in MALFORMED {
        let t = Test::new().password_env(None).no_positionals();
        let config = config_path(&t);
        write_config(&t, &config, &format!("password = {value}"));
        let out = t.arg("--config").arg(&config).run();
        out.assert_usage_error(&["job.toml", "line 5", "password", "quote"]);
        assert_hidden(&out.stderr, tokens, &format!("the error for password = {value}"));
    }
}

#[test]
fn a_password_given_twice_is_not_echoed() {
    let t = Test::new().password_env(None).no_positionals();
    let config = config_path(&t);
    write_config(&t, &config, "password = \"pw-first-11\"\npassword = 22334455");
    let out = t.arg("--config").arg(&config).run();
    out.assert_usage_error(&["job.toml", "line 6", "password"]);
    assert_hidden(&out.stderr, &["pw-first-11", "22334455"], "the error for a duplicate password");
}

#[test]
fn a_malformed_password_after_sighup_is_not_echoed_in_the_log() {
    let t = Test::new().password_env(None).no_positionals();
    let config = config_path(&t);
    write_config(&t, &config, &format!("password = \"{PASSWORD}\""));
    let d = t.arg("--config").arg(&config).start();
    d.write("first.txt", b"1");
    d.wait_remote("first.txt", b"1");

    for (n, (value, tokens)) in MALFORMED.iter().enumerate() {
        write_config(&d, &config, &format!("password = {value}"));
        d.signal(libc::SIGHUP);
        d.wait_until(&format!("SIGHUP number {} is refused", n + 1), || d.log().matches(KEPT_OLD).count() > n);
        let log = d.log();
        let line = log.lines().filter(|l| l.contains(KEPT_OLD)).nth(n).unwrap();
        assert!(line.contains("password"), "the warning does not name the key: {line}");
        assert_hidden(&log, tokens, &format!("the log after a reload with password = {value}"));
    }
    // The old configuration (and password) still works.
    d.write("second.txt", b"2");
    d.wait_remote("second.txt", b"2");
    assert!(!d.log().contains(PASSWORD), "the log shows the password");
}

/// A server that quotes the password back in its replies (some do, in a "530 Login
/// incorrect" or a refusal).
struct EchoesThePassword {
    /// Also refuse every STOR, quoting the password.
    refuse_stor: bool,
}

impl Behaviour for EchoesThePassword {
    fn command(&self, verb: &str, _line: &str) -> Verdict {
        match verb {
            "PASS" if !self.refuse_stor => {
                Verdict::Answer(format!("530 Login incorrect: password {PASSWORD} rejected"))
            }
            "STOR" if self.refuse_stor => Verdict::Answer(format!("553 Not allowed for the password {PASSWORD}")),
            _ => Verdict::Forward,
        }
    }
}

#[test]
fn a_refusal_that_quotes_the_password_does_not_show_it() {
    let t = Test::new();
    let proxy = FtpProxy::start(t.server().port(), EchoesThePassword { refuse_stor: false });
    let out = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string()).run();
    out.assert_exit(EXIT_RUNTIME);
    out.assert_one_line_error(&[]);
    assert!(is_login_refused(&out.stderr), "{}", out.stderr);
    assert!(!out.stderr.contains(PASSWORD), "stderr shows the password: {}", out.stderr);
    assert!(!out.log().contains(PASSWORD), "the log shows the password:\n{}", out.log());
}

/// Runs `ftpmonitor status [--json]` for the sandbox; returns stdout.
fn status_output(s: &Sandbox, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpmonitor"));
    cmd.arg("status").arg("--pid-file").arg(s.pid_file_path()).arg("--state-dir").arg(s.state_dir());
    if json {
        cmd.arg("--json");
    }
    let mut child = cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    assert!(poll_until(TIMEOUT, || child.try_wait().unwrap().is_some()), "status hangs");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    out
}

/// Every byte the journal holds (the database and its WAL and shared-memory files).
fn journal_bytes(s: &Sandbox) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"] {
        all.extend(std::fs::read(s.state_dir().join(name)).unwrap_or_default());
    }
    assert!(!all.is_empty(), "no journal in {}", s.state_dir().display());
    all
}

#[test]
fn status_and_the_journal_never_hold_the_password() {
    let t = Test::new().password_env(None).no_positionals();
    let config = config_path(&t);
    write_config(&t, &config, &format!("password = \"{PASSWORD}\""));
    let d = t.arg("--config").arg(&config).start();
    d.write("kept.txt", b"kept");
    d.wait_remote("kept.txt", b"kept");
    d.wait_for_upload_line("kept.txt");
    for json in [false, true] {
        let out = status_output(&d, json);
        assert!(out.contains("kept.txt"), "status (json: {json}) does not show the last upload:\n{out}");
        assert!(!out.contains(PASSWORD), "status (json: {json}) shows the password:\n{out}");
    }
    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);
    let bytes = journal_bytes(&d);
    assert!(!bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "the journal holds the password");
}

/// The log masks it (the logger redacts every line); `status` and the journal get the
/// server's text as the last error, masked where server replies become error messages.
#[test]
fn a_server_quoting_the_password_in_upload_errors_gets_it_nowhere() {
    let t = Test::new();
    let proxy = FtpProxy::start(t.server().port(), EchoesThePassword { refuse_stor: true });
    let d = t.host(&PROXY_IP.to_string()).port_arg(&proxy.port().to_string()).start();
    d.write("refused.txt", b"refused");
    d.wait_until("the refusal is logged", || d.log().contains("553"));
    d.wait_until("status shows an error", || {
        status_output(&d, false).contains("last error: 553") || status_output(&d, false).contains("553")
    });
    assert!(!d.log().contains(PASSWORD), "the log shows the password:\n{}", d.log());
    for json in [false, true] {
        let out = status_output(&d, json);
        assert!(!out.contains(PASSWORD), "status (json: {json}) shows the password:\n{out}");
    }
    d.signal(libc::SIGTERM);
    d.wait_exit(TIMEOUT);
    let bytes = journal_bytes(&d);
    assert!(!bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "the journal holds the password");
}
