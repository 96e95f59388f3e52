//! The password never shows: not in an error about the config file (whatever is wrong
//! with its `password` value), not on stderr, not in the log after a SIGHUP reload.

use std::path::{Path, PathBuf};

use crate::support::{PASSWORD, Sandbox, Test};

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
