//! Usage and configuration errors: exit 2, one line on stderr naming what is wrong,
//! nothing started.

use crate::support::config_keys::{HOST, PORT, REMOTE_DIR, WATCH_DIR};
use crate::support::{PASSWORD, Test};

#[test]
fn missing_watch_dir_is_a_usage_error() {
    let t = Test::new();
    let missing = t.tmp().join("does-not-exist");
    let out = t.watch_arg(&missing).run();
    out.assert_usage_error(&[missing.to_str().unwrap()]);
}

#[test]
fn watch_dir_that_is_a_file_is_a_usage_error() {
    let t = Test::new();
    let file = t.outside_dir().join("plain.txt");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = t.watch_arg(&file).run();
    out.assert_usage_error(&[file.to_str().unwrap()]);
}

#[test]
fn port_zero_is_a_usage_error() {
    Test::new().port_arg("0").run().assert_usage_error(&["port", "0"]);
}

#[test]
fn port_above_65535_is_a_usage_error() {
    Test::new().port_arg("70000").run().assert_usage_error(&["port", "70000"]);
}

#[test]
fn port_that_is_not_a_number_is_a_usage_error() {
    Test::new().port_arg("abc").run().assert_usage_error(&["port", "abc"]);
}

#[test]
fn unresolvable_host_is_a_usage_error() {
    Test::new().host("nonexistent.invalid").run().assert_usage_error(&["nonexistent.invalid"]);
}

#[test]
fn missing_password_file_is_a_usage_error() {
    let t = Test::new().password_env(None);
    let missing = t.tmp().join("no-such-password-file");
    let out = t.arg("--password-file").arg(&missing).run();
    out.assert_usage_error(&[missing.to_str().unwrap()]);
}

#[test]
fn unreadable_password_file_is_a_usage_error() {
    // A directory cannot be read as a file, even by root (the tests may run as root, so
    // permission bits prove nothing).
    let t = Test::new().password_env(None);
    let dir = t.outside_dir();
    let out = t.arg("--password-file").arg(&dir).run();
    out.assert_usage_error(&[dir.to_str().unwrap()]);
}

#[test]
fn bad_cooldown_is_a_usage_error() {
    Test::new().cooldown(Some("fast")).run().assert_usage_error(&["cooldown", "fast"]);
}

#[test]
fn password_option_does_not_exist() {
    let out = Test::new().arg("--password").arg(PASSWORD).run();
    out.assert_usage_error(&["--password"]);
    assert!(!out.stderr.contains(PASSWORD), "the error echoes the password: {}", out.stderr);
}

fn config_file(t: &Test, port_line: &str) -> std::path::PathBuf {
    let path = t.tmp().join("config.toml");
    let text = format!(
        "{WATCH_DIR} = \"{}\"\n{HOST} = \"127.0.0.1\"\n{port_line}\n{REMOTE_DIR} = \"/upload\"\n",
        t.watch_dir().display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_value_in_config_file_names_file_and_line() {
    let t = Test::new();
    let config = config_file(&t, &format!("{PORT} = \"abc\""));
    let out = t.no_positionals().arg("--config").arg(&config).run();
    out.assert_usage_error(&["config.toml", "line 3"]);
}

#[test]
fn syntax_error_in_config_file_names_file_and_line() {
    let t = Test::new();
    let config = config_file(&t, &format!("{PORT} = = 21"));
    let out = t.no_positionals().arg("--config").arg(&config).run();
    out.assert_usage_error(&["config.toml", "line 3"]);
}

#[test]
fn config_file_supplies_the_four_values() {
    let t = Test::new();
    let port = t.server().port();
    let config = config_file(&t, &format!("{PORT} = {port}"));
    let d = t.no_positionals().arg("--config").arg(&config).start();
    d.write("from-config.txt", b"configured");
    d.wait_remote("from-config.txt", b"configured");
}
