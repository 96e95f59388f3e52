//! `--log-format json`: one JSON object a line, in the log file and on stderr in the
//! foreground, with `ts`, `level`, `msg` and the fields that apply (`path`, `bytes`,
//! `ms`, `error`). Neither format shows the password or a raw control character.

use serde_json::{Map, Value};

use crate::support::{PASSWORD, SERVER_UNAVAILABLE, SKIPPING, Test};

/// Every line of `text` as a JSON object with a string `ts`, a known `level` and a
/// string `msg`; panics naming the first line that is not.
fn json_lines(text: &str, what: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}, line {}: not JSON ({e}): {line:?}\n--- {what} ---\n{text}", i + 1));
            let Value::Object(obj) = value else { panic!("{what}, line {}: not an object: {line:?}", i + 1) };
            let ts = obj.get("ts").and_then(Value::as_str).unwrap_or_else(|| panic!("{what}: no ts in {line:?}"));
            assert!(
                ts.len() >= 23 && ts.as_bytes()[10] == b'T' && ts[19..].starts_with('.'),
                "{what}: ts is not YYYY-MM-DDTHH:MM:SS.mmm+HH:MM: {line:?}"
            );
            let level = obj.get("level").and_then(Value::as_str).unwrap_or_default();
            assert!(
                ["error", "warn", "info", "debug", "trace"].contains(&level),
                "{what}: level {level:?} in {line:?}"
            );
            assert!(obj.get("msg").is_some_and(Value::is_string), "{what}: no msg in {line:?}");
            obj
        })
        .collect()
}

fn msg(obj: &Map<String, Value>) -> &str {
    obj["msg"].as_str().unwrap_or_default()
}

/// The bytes of `text` that are control characters other than the line ends.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars().filter(|c| c.is_control() && *c != '\n').collect()
}

#[test]
fn json_log_lines_parse_and_carry_path_bytes_ms_and_error() {
    let t = Test::new().args(["--log-format", "json", "--delete"]);
    t.write("a.txt", b"twelve bytes");
    // A name FTP cannot carry (skipped with a line naming it) and one that holds the password.
    t.write("bad\nname", b"x");
    t.write(&format!("{PASSWORD}.txt"), b"secret name");
    let d = t.start();
    d.wait_remote("a.txt", b"twelve bytes");
    d.wait_remote(&format!("{PASSWORD}.txt"), b"secret name");
    d.wait_for_upload_line("a.txt");
    std::fs::remove_file(d.watch_dir().join("a.txt")).unwrap();
    d.wait_for_log("deleted a.txt on the server");
    d.server().stop();
    d.write("b.txt", b"while the server is away");
    d.wait_for_log(SERVER_UNAVAILABLE);
    d.signal(libc::SIGTERM);
    d.wait_exit(crate::support::TIMEOUT);

    let log = d.log();
    let lines = json_lines(&log, "the log file");
    let upload = lines
        .iter()
        .find(|o| msg(o).starts_with("uploaded a.txt "))
        .unwrap_or_else(|| panic!("no upload line for a.txt:\n{log}"));
    assert_eq!(upload["path"], "a.txt", "the upload line's path: {upload:?}");
    assert_eq!(upload["bytes"], 12, "the upload line's bytes: {upload:?}");
    assert!(upload["ms"].is_u64(), "the upload line's ms is not a number: {upload:?}");
    assert_eq!(upload["level"], "info");

    let secret = lines
        .iter()
        .find(|o| msg(o).starts_with("uploaded ***.txt "))
        .unwrap_or_else(|| panic!("no masked upload line for the file named after the password:\n{log}"));
    assert_eq!(secret["path"], "***.txt", "the password reached the path field: {secret:?}");

    let deleted = lines.iter().find(|o| msg(o) == "deleted a.txt on the server").expect("a delete line");
    assert_eq!(deleted["path"], "a.txt", "the delete line's path: {deleted:?}");

    let down = lines
        .iter()
        .find(|o| msg(o).contains(SERVER_UNAVAILABLE))
        .unwrap_or_else(|| panic!("no line saying the server is unavailable:\n{log}"));
    assert_eq!(down["level"], "warn");
    assert!(down["error"].as_str().is_some_and(|e| !e.is_empty()), "the failure line has no error: {down:?}");

    let skipped = lines
        .iter()
        .find(|o| msg(o).contains(SKIPPING) && msg(o).contains("bad\\nname"))
        .unwrap_or_else(|| panic!("no line skipping the name with a line break, escaped:\n{log}"));
    assert_eq!(skipped["level"], "info");

    assert!(!log.contains(PASSWORD), "the password is in the log:\n{log}");
    assert!(!log.contains("bad\nname"), "a raw line break from a file name is in the log:\n{log}");
    for obj in &lines {
        for (key, value) in obj {
            if let Some(s) = value.as_str() {
                assert!(raw_controls(s).is_empty(), "{key} decodes to control characters: {obj:?}");
            }
        }
    }
    assert!(raw_controls(&log).is_empty(), "raw control characters in the log:\n{log:?}");

    // In the foreground the same lines go to stderr, for journald.
    let stderr = d.stderr();
    let on_stderr = json_lines(&stderr, "stderr");
    assert!(on_stderr.iter().any(|o| msg(o).starts_with("uploaded a.txt ")), "stderr has no upload line:\n{stderr}");
    assert!(!stderr.contains(PASSWORD), "the password is on stderr:\n{stderr}");
    assert!(raw_controls(&stderr).is_empty(), "raw control characters on stderr:\n{stderr:?}");
}

#[test]
fn the_text_format_escapes_control_characters_and_hides_the_password_too() {
    let t = Test::new().args(["--log-format", "text"]);
    t.write("bad\nname", b"x");
    t.write(&format!("{PASSWORD}.txt"), b"secret name");
    let d = t.start();
    d.wait_remote(&format!("{PASSWORD}.txt"), b"secret name");
    d.wait_for_log("uploaded ***.txt");
    d.wait_for_log("bad\\nname");
    let log = d.log();
    d.assert_log_well_formed();
    assert!(!log.contains(PASSWORD), "the password is in the log:\n{log}");
    assert!(raw_controls(&log).is_empty(), "raw control characters in the log:\n{log:?}");
    assert!(!log.contains('{'), "a text log line looks like JSON:\n{log}");
}

#[test]
fn log_format_json_from_the_config_file() {
    let t = Test::new().no_positionals();
    let config = t.tmp().join("job.toml");
    std::fs::write(
        &config,
        format!(
            "watch-dir = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nremote-dir = \"/upload\"\nlog-format = \"json\"\n",
            t.watch_dir().display(),
            t.server().port()
        ),
    )
    .unwrap();
    t.write("c.txt", b"from the config");
    let d = t.arg("--config").arg(&config).start();
    d.wait_remote("c.txt", b"from the config");
    d.wait_for_upload_line("c.txt");
    let lines = json_lines(&d.log(), "the log file");
    let upload = lines.iter().find(|o| msg(o).starts_with("uploaded c.txt ")).expect("an upload line");
    assert_eq!(upload["bytes"], 15);
}
