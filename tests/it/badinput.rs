//! Bad input, row by row: every malformed option, positional, config key and
//! environment twin, every conflict. Each row must end in exit 2 with one line on
//! stderr that contains the row's words (the option or key, for a config file its
//! line, and the fix), leave no PID file, show no password, and open no connection:
//! HOST:PORT is a listening socket that nobody accepts on, so a connection attempt
//! would be waiting in its backlog afterwards.
//!
//! Placeholders in a row: `{watch}` WATCH_DIR, `{tmp}` the sandbox, `{port}` the
//! sentinel's port, `{base}` a config file's first four lines (WATCH_DIR, HOST, PORT,
//! REMOTE_DIR: a bad line after it is line 5), and the fixtures below.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;

use crate::support::{PASSWORD, Test};

#[derive(Clone, Copy)]
struct Row {
    name: &'static str,
    /// `check` or `status` instead of a run.
    sub: Option<&'static str>,
    args: &'static [&'static str],
    /// The positionals, if not `{watch} 127.0.0.1 {port} /upload` (none with a config).
    pos: Option<&'static [&'static str]>,
    /// A config file, given with `--config`.
    config: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
    /// Leave `FTPMONITOR_PASSWORD` unset.
    no_env_password: bool,
    /// What the one line must contain (case-insensitive).
    words: &'static [&'static str],
    /// What it must not contain (secret values).
    hidden: &'static [&'static str],
}

const D: Row = Row {
    name: "",
    sub: None,
    args: &[],
    pos: None,
    config: None,
    env: &[],
    no_env_password: false,
    words: &[],
    hidden: &[],
};

const BASE: &str = "watch-dir = \"{watch}\"\nhost = \"127.0.0.1\"\nport = {port}\nremote-dir = \"/upload\"\n";

const OPTIONS: &[Row] = &[
    Row { name: "negative cooldown", args: &["--cooldown", "-1"], words: &["--cooldown", "-1", "negative"], ..D },
    Row {
        name: "cooldown not a duration",
        args: &["--cooldown", "fast"],
        words: &["--cooldown", "fast", "500ms"],
        ..D
    },
    Row { name: "empty cooldown", args: &["--cooldown", ""], words: &["--cooldown", "duration"], ..D },
    Row { name: "cooldown overflows", args: &["--cooldown", "1e30"], words: &["--cooldown", "1e30"], ..D },
    Row { name: "cooldown too long", args: &["--cooldown", "400d"], words: &["--cooldown", "400d", "a year"], ..D },
    Row { name: "min-age not a duration", args: &["--min-age", "soon"], words: &["--min-age", "soon", "off"], ..D },
    Row { name: "negative max-age", args: &["--max-age", "-30d"], words: &["--max-age", "-30d", "negative"], ..D },
    Row { name: "max-age too long", args: &["--max-age", "40000d"], words: &["--max-age", "36500d"], ..D },
    Row {
        name: "min-age not below max-age",
        args: &["--min-age", "2h", "--max-age", "1h"],
        words: &["--min-age 2h", "--max-age 1h", "never", "lower --min-age"],
        ..D
    },
    Row {
        name: "min-age from the environment",
        env: &[("FTPMONITOR_MIN_AGE", "later")],
        words: &["FTPMONITOR_MIN_AGE", "later"],
        ..D
    },
    Row {
        name: "metrics address with a host name",
        args: &["--metrics-addr", "localhost:9190"],
        words: &["--metrics-addr", "localhost:9190", "127.0.0.1:9190"],
        ..D
    },
    Row { name: "negative timeout", args: &["--timeout", "-1s"], words: &["--timeout", "-1s", "negative"], ..D },
    Row { name: "timeout zero", args: &["--timeout", "0"], words: &["--timeout", "too short", "0.1"], ..D },
    Row { name: "timeout not a duration", args: &["--timeout", "abc"], words: &["--timeout", "abc"], ..D },
    Row { name: "timeout too long", args: &["--timeout", "400d"], words: &["--timeout", "a year"], ..D },
    Row { name: "negative rescan", args: &["--rescan-interval", "-5"], words: &["--rescan-interval", "-5"], ..D },
    Row { name: "rescan word", args: &["--rescan-interval", "soon"], words: &["--rescan-interval", "soon"], ..D },
    Row { name: "negative max-delete", args: &["--max-delete", "-1"], words: &["--max-delete", "-1", "0 to 100"], ..D },
    Row { name: "max-delete 101", args: &["--max-delete", "101"], words: &["--max-delete", "101", "0 to 100"], ..D },
    Row { name: "max-delete word", args: &["--max-delete", "half"], words: &["--max-delete", "half"], ..D },
    Row { name: "max-delete fraction", args: &["--max-delete", "50.5"], words: &["--max-delete", "50.5"], ..D },
    Row { name: "parallel 0", args: &["--parallel", "0"], words: &["--parallel", "0", "1 to 64"], ..D },
    Row { name: "parallel 65", args: &["--parallel", "65"], words: &["--parallel", "65", "1 to 64"], ..D },
    Row { name: "negative parallel", args: &["--parallel", "-2"], words: &["--parallel", "-2"], ..D },
    Row { name: "parallel word", args: &["--parallel", "many"], words: &["--parallel", "many"], ..D },
    Row { name: "parallel fraction", args: &["--parallel", "4.5"], words: &["--parallel", "4.5"], ..D },
    Row { name: "log level", args: &["--log-level", "loud"], words: &["--log-level", "loud", "warn"], ..D },
    Row { name: "log format", args: &["--log-format", "xml"], words: &["--log-format", "xml", "text or json"], ..D },
    Row { name: "exclude glob", args: &["--exclude", "["], words: &["--exclude", "glob"], ..D },
    Row { name: "exclude open group", args: &["--exclude", "{a,b"], words: &["--exclude", "{a,b", "glob"], ..D },
    Row { name: "order word", args: &["--order", "oldest"], words: &["--order", "oldest", "mtime"], ..D },
    Row { name: "last glob", args: &["--last", "*.[done"], words: &["--last", "*.[done", "glob"], ..D },
    Row {
        name: "password file missing while the environment has a password",
        args: &["--password-file", "{tmp}/no-such-password"],
        words: &["--password-file", "no-such-password"],
        ..D
    },
    Row {
        name: "password file missing",
        args: &["--password-file", "{tmp}/no-such-password"],
        no_env_password: true,
        words: &["--password-file", "no-such-password"],
        ..D
    },
    Row {
        name: "password file is a directory",
        args: &["--password-file", "{dir}"],
        words: &["--password-file", "directory"],
        ..D
    },
    Row {
        name: "password file empty",
        args: &["--password-file", "{empty}"],
        words: &["--password-file", "empty"],
        ..D
    },
    Row {
        name: "password file with a CR",
        args: &["--password-file", "{crpw}"],
        no_env_password: true,
        words: &["--password-file", "line break"],
        hidden: &["ab\rcd", "cd"],
        ..D
    },
    Row {
        name: "CA file missing",
        args: &["--tls", "--ca-file", "{tmp}/no-such-ca.pem"],
        words: &["--ca-file", "no-such-ca.pem"],
        ..D
    },
    Row {
        name: "CA file is a directory",
        args: &["--tls", "--ca-file", "{dir}"],
        words: &["--ca-file", "directory"],
        ..D
    },
    Row { name: "no such --run-as user", args: &["--run-as", "no-such-user-x"], words: &["--run-as"], ..D },
    Row {
        name: "PID file under a file",
        args: &["--pid-file", "{file}/x.pid"],
        words: &["--pid-file", "plain.txt", "not a directory"],
        ..D
    },
    Row {
        name: "PID file is a symlink",
        args: &["--pid-file", "{link}"],
        words: &["--pid-file", "symbolic link"],
        ..D
    },
    Row {
        name: "PID file is a directory",
        args: &["--pid-file", "{dir}"],
        words: &["--pid-file", "not a regular file"],
        ..D
    },
    Row {
        name: "log file under a file",
        args: &["--log-file", "{file}/x.log"],
        words: &["--log-file", "plain.txt", "not a directory"],
        ..D
    },
    Row {
        name: "log file is a symlink",
        args: &["--log-file", "{link}"],
        words: &["--log-file", "symbolic link"],
        ..D
    },
    Row { name: "log file is a directory", args: &["--log-file", "{dir}"], words: &["--log-file", "directory"], ..D },
    Row {
        name: "log file is a FIFO",
        args: &["--log-file", "{fifo}"],
        words: &["--log-file", "not a regular file"],
        ..D
    },
    Row {
        name: "state dir is a file",
        args: &["--state-dir", "{file}"],
        words: &["--state-dir", "plain.txt", "not a directory"],
        ..D
    },
    Row {
        name: "state dir under a file",
        args: &["--state-dir", "{file}/state"],
        words: &["--state-dir", "plain.txt", "not a directory"],
        ..D
    },
    Row {
        name: "state dir is a symlink",
        args: &["--state-dir", "{dirlink}"],
        words: &["--state-dir", "symbolic link"],
        ..D
    },
    Row {
        name: "config file missing",
        args: &["--config", "{tmp}/no-such.toml"],
        pos: Some(&[]),
        words: &["--config", "no-such.toml"],
        ..D
    },
    Row { name: "config file is a directory", args: &["--config", "{dir}"], words: &["--config", "directory"], ..D },
    Row {
        name: "config file not UTF-8",
        args: &["--config", "{latin1}"],
        words: &["latin1.toml", "line 2", "UTF-8"],
        ..D
    },
    Row { name: "empty path option", args: &["--state-dir", ""], words: &["--state-dir", "is empty"], ..D },
    Row { name: "no --password option", args: &["--password", "x"], words: &["--password", "--password-file"], ..D },
    Row { name: "no --password= option", args: &["--password=x"], words: &["--password", "--password-file"], ..D },
    Row { name: "unknown option", args: &["--no-such-option"], words: &["--no-such-option"], ..D },
    Row { name: "near miss option", args: &["--pid", "x"], words: &["'--pid'", "--pid-file"], ..D },
    Row { name: "unknown short option", args: &["-x"], words: &["-x"], ..D },
    Row { name: "value option takes the next word", args: &["--cooldown"], words: &["--cooldown", "duration"], ..D },
    Row { name: "flag with a value", args: &["--foreground=yes"], words: &["--foreground"], ..D },
    Row { name: "flag twice", args: &["--tls", "--tls"], words: &["--tls"], ..D },
    Row { name: "option twice", args: &["--cooldown", "1", "--cooldown", "2"], words: &["--cooldown"], ..D },
    Row { name: "empty login", args: &["--user", ""], words: &["--user", "empty"], ..D },
    Row { name: "login with CRLF", args: &["--user", "alice\r\nDELE x"], words: &["--user", "line break"], ..D },
    Row { name: "empty hook", args: &["--on-upload", " "], words: &["--on-upload", "empty", "program"], ..D },
    Row {
        name: "hook with an unclosed quote",
        args: &["--on-failure", "/bin/echo 'oops"],
        words: &["--on-failure", "unclosed quote"],
        ..D
    },
    Row {
        name: "hook program missing",
        args: &["--on-upload", "/nonexistent/notify --x"],
        words: &["--on-upload", "/nonexistent/notify", "not an executable file"],
        ..D
    },
    Row {
        name: "hook program not in PATH",
        args: &["--on-upload", "no-such-notifier-xyz"],
        words: &["--on-upload", "not found in PATH", "full path"],
        ..D
    },
];

const CONFLICTS: &[Row] = &[
    Row { name: "CA file without --tls", args: &["--ca-file", "{file}"], words: &["--ca-file", "--tls"], ..D },
    Row {
        name: "remove-source with delete",
        args: &["--remove-source", "--delete"],
        words: &["--remove-source", "--delete", "exclude"],
        ..D
    },
    Row {
        name: "archive-dir with delete",
        args: &["--archive-dir", "{tmp}", "--delete"],
        words: &["--archive-dir", "--delete", "exclude"],
        ..D
    },
    Row {
        name: "remove-source with archive-dir",
        args: &["--remove-source", "--archive-dir", "{tmp}"],
        words: &["--remove-source", "--archive-dir", "exclude"],
        ..D
    },
    Row {
        name: "archive-dir inside WATCH_DIR",
        args: &["--archive-dir", "{watch}"],
        words: &["--archive-dir", "inside WATCH_DIR", "outside"],
        ..D
    },
    Row {
        name: "archive-dir missing",
        args: &["--archive-dir", "{tmp}/no-such-archive"],
        words: &["--archive-dir", "no-such-archive", "mkdir"],
        ..D
    },
    Row {
        name: "temp-dir is REMOTE_DIR",
        args: &["--temp-dir", "."],
        words: &["--temp-dir", "REMOTE_DIR itself", ".incoming"],
        ..D
    },
    Row {
        name: "temp-dir above REMOTE_DIR",
        args: &["--temp-dir", "/"],
        words: &["--temp-dir", "holds REMOTE_DIR", ".incoming"],
        ..D
    },
    Row { name: "temp-dir with ..", args: &["--temp-dir", "../stage"], words: &["--temp-dir", "..", "without"], ..D },
    Row { name: "temp-dir empty", args: &["--temp-dir", ""], words: &["--temp-dir", "empty"], ..D },
    Row { name: "chmod not octal", args: &["--chmod", "rw-r--r--"], words: &["--chmod", "octal", "644"], ..D },
    Row { name: "chmod digit 9", args: &["--chmod", "649"], words: &["--chmod", "octal"], ..D },
    Row { name: "chmod-dirs too long", args: &["--chmod-dirs", "07555"], words: &["--chmod-dirs", "octal"], ..D },
    Row {
        name: "chmod from the environment",
        env: &[("FTPMONITOR_CHMOD", "x")],
        words: &["FTPMONITOR_CHMOD", "octal"],
        ..D
    },
    Row {
        name: "check: negative cooldown",
        sub: Some("check"),
        args: &["--cooldown", "-1"],
        words: &["--cooldown"],
        ..D
    },
    Row {
        name: "check: port -21",
        sub: Some("check"),
        pos: Some(&["{watch}", "127.0.0.1", "-21", "/upload"]),
        words: &["PORT", "-21"],
        ..D
    },
    Row { name: "status: stray argument", sub: Some("status"), args: &["--json", "extra"], words: &["extra"], ..D },
    Row { name: "status: run option", sub: Some("status"), args: &["--cooldown", "1"], words: &["--cooldown"], ..D },
    Row { name: "status: missing value", sub: Some("status"), args: &["--pid-file"], words: &["--pid-file"], ..D },
];

const POSITIONALS: &[Row] = &[
    Row {
        name: "port -21",
        pos: Some(&["{watch}", "127.0.0.1", "-21", "/upload"]),
        words: &["PORT", "-21", "1 to 65535"],
        ..D
    },
    Row { name: "port 0", pos: Some(&["{watch}", "127.0.0.1", "0", "/upload"]), words: &["PORT", "\"0\""], ..D },
    Row {
        name: "port 65536",
        pos: Some(&["{watch}", "127.0.0.1", "65536", "/upload"]),
        words: &["PORT", "65536"],
        ..D
    },
    Row { name: "port 21x", pos: Some(&["{watch}", "127.0.0.1", "21x", "/upload"]), words: &["PORT", "21x"], ..D },
    Row {
        name: "port empty",
        pos: Some(&["{watch}", "127.0.0.1", "", "/upload"]),
        words: &["PORT", "1 to 65535"],
        ..D
    },
    Row { name: "host empty", pos: Some(&["{watch}", "", "{port}", "/upload"]), words: &["HOST", "host name"], ..D },
    Row {
        name: "host with a space",
        pos: Some(&["{watch}", "bad host", "{port}", "/upload"]),
        words: &["HOST", "bad host"],
        ..D
    },
    Row {
        name: "host with a newline",
        pos: Some(&["{watch}", "a\nb", "{port}", "/upload"]),
        words: &["HOST", "a\\nb"],
        ..D
    },
    Row {
        name: "host does not resolve",
        pos: Some(&["{watch}", "nonexistent.invalid", "{port}", "/upload"]),
        words: &["HOST", "nonexistent.invalid"],
        ..D
    },
    Row {
        name: "watch dir missing",
        pos: Some(&["{tmp}/missing", "127.0.0.1", "{port}", "/upload"]),
        words: &["WATCH_DIR", "missing", "does not exist"],
        ..D
    },
    Row {
        name: "watch dir is a file",
        pos: Some(&["{file}", "127.0.0.1", "{port}", "/upload"]),
        words: &["WATCH_DIR", "not a directory"],
        ..D
    },
    Row {
        name: "watch dir empty",
        pos: Some(&["", "127.0.0.1", "{port}", "/upload"]),
        words: &["WATCH_DIR", "empty"],
        ..D
    },
    Row {
        name: "remote dir empty",
        pos: Some(&["{watch}", "127.0.0.1", "{port}", ""]),
        words: &["REMOTE_DIR", "empty"],
        ..D
    },
    Row {
        name: "remote dir with a newline",
        pos: Some(&["{watch}", "127.0.0.1", "{port}", "/a\nb"]),
        words: &["REMOTE_DIR", "line break"],
        ..D
    },
    Row {
        name: "five positionals",
        pos: Some(&["{watch}", "127.0.0.1", "{port}", "/upload", "extra"]),
        words: &["extra"],
        ..D
    },
    Row {
        name: "three positionals",
        pos: Some(&["{watch}", "127.0.0.1", "{port}"]),
        words: &["REMOTE_DIR", "required"],
        ..D
    },
    Row { name: "no positionals", pos: Some(&[]), words: &["WATCH_DIR", "required"], ..D },
];

const CONFIG: &[Row] = &[
    Row {
        name: "chmod as a word",
        config: Some("{base}chmod = \"rw\""),
        words: &["job.toml", "line 5", "chmod", "644"],
        ..D
    },
    Row {
        name: "chmod as a list",
        config: Some("{base}chmod-dirs = [755]"),
        words: &["job.toml", "line 5", "chmod-dirs", "644"],
        ..D
    },
    Row {
        name: "max-age word",
        config: Some("{base}max-age = \"old\""),
        words: &["job.toml", "line 5", "max-age", "old", "30d"],
        ..D
    },
    Row {
        name: "cooldown word",
        config: Some("{base}cooldown = \"fast\""),
        words: &["job.toml", "line 5", "cooldown", "fast"],
        ..D
    },
    Row {
        name: "cooldown negative",
        config: Some("{base}cooldown = -1"),
        words: &["line 5", "cooldown", "negative"],
        ..D
    },
    Row { name: "cooldown bool", config: Some("{base}cooldown = true"), words: &["line 5", "cooldown", "number"], ..D },
    Row { name: "cooldown list", config: Some("{base}cooldown = [1]"), words: &["line 5", "cooldown", "a list"], ..D },
    Row {
        name: "cooldown date",
        config: Some("{base}cooldown = 1979-05-27"),
        words: &["line 5", "cooldown", "a date"],
        ..D
    },
    Row {
        name: "max-delete 101",
        config: Some("{base}max-delete = 101"),
        words: &["line 5", "max-delete", "\"101\"", "0 to 100"],
        ..D
    },
    Row {
        name: "max_delete word",
        config: Some("{base}max_delete = \"half\""),
        words: &["line 5", "max_delete", "half"],
        ..D
    },
    Row { name: "parallel 0", config: Some("{base}parallel = 0"), words: &["line 5", "parallel", "1 to 64"], ..D },
    Row {
        name: "parallel word",
        config: Some("{base}parallel = \"many\""),
        words: &["line 5", "parallel", "many"],
        ..D
    },
    Row { name: "timeout 0", config: Some("{base}timeout = \"0\""), words: &["line 5", "timeout", "too short"], ..D },
    Row {
        name: "rescan negative",
        config: Some("{base}rescan-interval = -5"),
        words: &["line 5", "rescan-interval", "-5"],
        ..D
    },
    Row {
        name: "log level word",
        config: Some("{base}log-level = \"loud\""),
        words: &["line 5", "log-level", "loud"],
        ..D
    },
    Row {
        name: "log level number",
        config: Some("{base}log-level = 3"),
        words: &["line 5", "log-level", "quoted"],
        ..D
    },
    Row {
        name: "log format word",
        config: Some("{base}log-format = \"xml\""),
        words: &["line 5", "log-format", "xml", "text or json"],
        ..D
    },
    Row {
        name: "tls as a string",
        config: Some("{base}tls = \"yes\""),
        words: &["line 5", "tls", "true or false"],
        ..D
    },
    Row {
        name: "delete as a number",
        config: Some("{base}delete = 1"),
        words: &["line 5", "delete", "true or false"],
        ..D
    },
    Row {
        name: "once quoted",
        config: Some("{base}once = \"true\""),
        words: &["line 5", "once", "without quotes"],
        ..D
    },
    Row {
        name: "foreground word",
        config: Some("{base}foreground = \"yes\""),
        words: &["line 5", "foreground", "true or false"],
        ..D
    },
    Row {
        name: "exclude a string",
        config: Some("{base}exclude = \"*.tmp\""),
        words: &["line 5", "exclude", "list"],
        ..D
    },
    Row {
        name: "exclude bad glob",
        config: Some("{base}exclude = [\"ok\", \"[\"]"),
        words: &["line 5", "exclude", "item 2", "glob"],
        ..D
    },
    Row { name: "exclude a number", config: Some("{base}exclude = [1]"), words: &["line 5", "exclude", "item 1"], ..D },
    Row {
        name: "order a word",
        config: Some("{base}order = \"random\""),
        words: &["line 5", "order", "arrival, mtime, name or size"],
        ..D
    },
    Row { name: "order a number", config: Some("{base}order = 1"), words: &["line 5", "order"], ..D },
    Row { name: "last a string", config: Some("{base}last = \"*.done\""), words: &["line 5", "last", "list"], ..D },
    Row {
        name: "last bad glob",
        config: Some("{base}last = [\"*.ok\", \"{a,b\"]"),
        words: &["line 5", "last", "item 2", "glob"],
        ..D
    },
    Row { name: "user a number", config: Some("{base}user = 42"), words: &["line 5", "user", "quoted"], ..D },
    Row { name: "user empty", config: Some("{base}user = \"\""), words: &["line 5", "user", "empty"], ..D },
    Row {
        name: "run-as unknown",
        config: Some("{base}run-as = \"no-such-user-x\""),
        words: &["line 5", "run-as"],
        ..D
    },
    Row {
        name: "pid-file under a file",
        config: Some("{base}pid-file = \"{file}/x.pid\""),
        words: &["line 5", "pid-file", "not a directory"],
        ..D
    },
    Row {
        name: "log-file a directory",
        config: Some("{base}log-file = \"{dir}\""),
        words: &["line 5", "log-file", "directory"],
        ..D
    },
    Row {
        name: "state-dir a file",
        config: Some("{base}state-dir = \"{file}\""),
        words: &["line 5", "state-dir", "not a directory"],
        ..D
    },
    Row {
        name: "password-file missing",
        config: Some("{base}password-file = \"{tmp}/no-such-password\""),
        words: &["line 5", "password-file", "no-such-password"],
        ..D
    },
    Row {
        name: "ca-file without tls",
        config: Some("{base}ca-file = \"{file}\""),
        words: &["line 5", "ca-file", "--tls"],
        ..D
    },
    Row { name: "path empty", config: Some("{base}state-dir = \"\""), words: &["line 5", "state-dir", "empty"], ..D },
    Row { name: "unknown key", config: Some("{base}prot = 21"), words: &["line 5", "prot", "did you mean port"], ..D },
    Row {
        name: "unknown far key",
        config: Some("{base}colour = \"red\""),
        words: &["line 5", "colour", "long options"],
        ..D
    },
    Row {
        name: "a section",
        config: Some("{base}[server]\nhost = \"x\""),
        words: &["line 5", "server", "no sections"],
        ..D
    },
    Row { name: "a dotted key", config: Some("{base}a.b = 1"), words: &["line 5", "dotted"], ..D },
    Row { name: "syntax: two =", config: Some("{base}cooldown = = 1"), words: &["line 5", "toml"], ..D },
    Row { name: "syntax: open string", config: Some("{base}user = \"abc"), words: &["line 5", "toml"], ..D },
    Row { name: "syntax: bare word", config: Some("{base}user = alice"), words: &["line 5", "quoted"], ..D },
    Row { name: "duplicate key", config: Some("{base}host = \"x\""), words: &["line 5", "duplicate key host"], ..D },
    Row {
        name: "duplicate through the other spelling",
        config: Some("{base}remote_dir = \"/x\""),
        words: &["line 5", "remote_dir", "twice", "line 4"],
        ..D
    },
    Row {
        name: "port 0",
        config: Some("watch-dir = \"{watch}\"\nhost = \"127.0.0.1\"\nport = 0\nremote-dir = \"/upload\"\n"),
        words: &["line 3", "port", "1 to 65535"],
        ..D
    },
    Row {
        name: "port word",
        config: Some("watch-dir = \"{watch}\"\nhost = \"127.0.0.1\"\nport = \"ftp\"\nremote-dir = \"/upload\"\n"),
        words: &["line 3", "port", "ftp"],
        ..D
    },
    Row {
        name: "port fraction",
        config: Some("watch-dir = \"{watch}\"\nhost = \"127.0.0.1\"\nport = 21.5\nremote-dir = \"/upload\"\n"),
        words: &["line 3", "port", "21.5"],
        ..D
    },
    Row {
        name: "watch-dir missing",
        config: Some("watch-dir = \"{tmp}/missing\"\nhost = \"127.0.0.1\"\nport = {port}\nremote-dir = \"/upload\"\n"),
        words: &["line 1", "watch-dir", "does not exist"],
        ..D
    },
    Row {
        name: "watch-dir a number",
        config: Some("watch-dir = 5\nhost = \"127.0.0.1\"\nport = {port}\nremote-dir = \"/upload\"\n"),
        words: &["line 1", "watch-dir", "path"],
        ..D
    },
    Row {
        name: "host a number",
        config: Some("watch-dir = \"{watch}\"\nhost = 127\nport = {port}\nremote-dir = \"/upload\"\n"),
        words: &["line 2", "host", "quoted"],
        ..D
    },
    Row {
        name: "host does not resolve",
        config: Some(
            "watch-dir = \"{watch}\"\nhost = \"nonexistent.invalid\"\nport = {port}\nremote-dir = \"/upload\"\n",
        ),
        words: &["line 2", "host", "nonexistent.invalid"],
        ..D
    },
    Row {
        name: "remote-dir a list",
        config: Some("watch-dir = \"{watch}\"\nhost = \"127.0.0.1\"\nport = {port}\nremote-dir = [\"a\"]\n"),
        words: &["line 4", "remote-dir", "a list"],
        ..D
    },
    Row {
        name: "password a number",
        config: Some("{base}password = 123456"),
        no_env_password: true,
        words: &["line 5", "password", "quoted"],
        hidden: &["123456"],
        ..D
    },
    Row {
        name: "password with a newline",
        config: Some("{base}password = \"pw-part1\\npw-part2\""),
        no_env_password: true,
        words: &["line 5", "password", "line break"],
        hidden: &["pw-part1", "pw-part2"],
        ..D
    },
    Row {
        name: "password twice",
        config: Some("{base}password = \"pw-first\"\npassword = \"pw-second\""),
        words: &["line 6", "password"],
        hidden: &["pw-first", "pw-second"],
        ..D
    },
    Row { name: "empty config file", config: Some(""), words: &["WATCH_DIR", "required"], ..D },
    Row {
        name: "hook not a string",
        config: Some("{base}on-upload = 1"),
        words: &["line 5", "on-upload", "quoted string"],
        ..D
    },
    Row {
        name: "hook program missing in the config",
        config: Some("{base}on-failure = \"/nonexistent/alert\""),
        words: &["line 5", "on-failure", "not an executable file"],
        ..D
    },
];

const ENV_TWINS: &[Row] = &[
    Row {
        name: "FTPMONITOR_COOLDOWN",
        env: &[("FTPMONITOR_COOLDOWN", "-1")],
        words: &["FTPMONITOR_COOLDOWN", "negative"],
        ..D
    },
    Row {
        name: "FTPMONITOR_PARALLEL",
        env: &[("FTPMONITOR_PARALLEL", "0")],
        words: &["FTPMONITOR_PARALLEL", "1 to 64"],
        ..D
    },
    Row {
        name: "FTPMONITOR_MAX_DELETE",
        env: &[("FTPMONITOR_MAX_DELETE", "101")],
        words: &["FTPMONITOR_MAX_DELETE", "101"],
        ..D
    },
    Row {
        name: "FTPMONITOR_TIMEOUT",
        env: &[("FTPMONITOR_TIMEOUT", "soon")],
        words: &["FTPMONITOR_TIMEOUT", "soon"],
        ..D
    },
    Row {
        name: "FTPMONITOR_RESCAN_INTERVAL",
        env: &[("FTPMONITOR_RESCAN_INTERVAL", "-5")],
        words: &["FTPMONITOR_RESCAN_INTERVAL", "-5"],
        ..D
    },
    Row {
        name: "FTPMONITOR_LOG_LEVEL",
        env: &[("FTPMONITOR_LOG_LEVEL", "loud")],
        words: &["FTPMONITOR_LOG_LEVEL", "loud"],
        ..D
    },
    Row {
        name: "FTPMONITOR_PASSWORD_FILE",
        env: &[("FTPMONITOR_PASSWORD_FILE", "{tmp}/no-such-password")],
        words: &["FTPMONITOR_PASSWORD_FILE", "no-such-password"],
        ..D
    },
    Row {
        name: "FTPMONITOR_CONFIG",
        env: &[("FTPMONITOR_CONFIG", "{tmp}/no-such.toml")],
        pos: Some(&[]),
        words: &["FTPMONITOR_CONFIG", "no-such.toml"],
        ..D
    },
    Row {
        name: "FTPMONITOR_RUN_AS",
        env: &[("FTPMONITOR_RUN_AS", "no-such-user-x")],
        words: &["FTPMONITOR_RUN_AS"],
        ..D
    },
    Row {
        name: "FTPMONITOR_STATE_DIR",
        env: &[("FTPMONITOR_STATE_DIR", "{file}")],
        words: &["FTPMONITOR_STATE_DIR", "not a directory"],
        ..D
    },
    Row {
        name: "FTPMONITOR_PID_FILE",
        env: &[("FTPMONITOR_PID_FILE", "{file}/x.pid")],
        words: &["FTPMONITOR_PID_FILE", "not a directory"],
        ..D
    },
    Row {
        name: "FTPMONITOR_LOG_FILE",
        env: &[("FTPMONITOR_LOG_FILE", "{dir}")],
        words: &["FTPMONITOR_LOG_FILE", "directory"],
        ..D
    },
    Row {
        name: "FTPMONITOR_CA_FILE",
        env: &[("FTPMONITOR_CA_FILE", "{file}")],
        words: &["FTPMONITOR_CA_FILE", "--tls"],
        ..D
    },
    Row {
        name: "FTPMONITOR_USER",
        env: &[("FTPMONITOR_USER", "alice\nbob")],
        words: &["FTPMONITOR_USER", "line break"],
        ..D
    },
    Row {
        name: "empty FTPMONITOR_STATE_DIR",
        env: &[("FTPMONITOR_STATE_DIR", "")],
        words: &["FTPMONITOR_STATE_DIR", "empty"],
        ..D
    },
    Row {
        name: "empty FTPMONITOR_COOLDOWN",
        env: &[("FTPMONITOR_COOLDOWN", "")],
        words: &["FTPMONITOR_COOLDOWN"],
        ..D
    },
    Row {
        name: "FTPMONITOR_ON_UPLOAD",
        env: &[("FTPMONITOR_ON_UPLOAD", "/nonexistent/notify")],
        words: &["FTPMONITOR_ON_UPLOAD", "not an executable file"],
        ..D
    },
    Row {
        name: "FTPMONITOR_PASSWORD with a newline",
        env: &[("FTPMONITOR_PASSWORD", "pw-env-1\npw-env-2")],
        words: &["FTPMONITOR_PASSWORD", "line break"],
        hidden: &["pw-env-1", "pw-env-2"],
        ..D
    },
];

/// Options whose standard value the builder would add, with their environment twins and
/// config keys: a row that sets one itself gets no standard value for it.
const STANDARD: &[(&str, &str, &str)] = &[
    ("--pid-file", "FTPMONITOR_PID_FILE", "pid-file"),
    ("--log-file", "FTPMONITOR_LOG_FILE", "log-file"),
    ("--state-dir", "FTPMONITOR_STATE_DIR", "state-dir"),
    ("--cooldown", "FTPMONITOR_COOLDOWN", "cooldown"),
    ("--user", "FTPMONITOR_USER", "user"),
];

/// Files the rows refer to, under the sandbox's `outside/`.
fn fixtures(t: &Test) -> Vec<(&'static str, PathBuf)> {
    let out = t.outside_dir();
    let file = out.join("plain.txt");
    std::fs::write(&file, "plain").unwrap();
    std::fs::write(out.join("empty"), "").unwrap();
    std::fs::create_dir(out.join("dir")).unwrap();
    std::os::unix::fs::symlink(&file, out.join("link")).unwrap();
    std::os::unix::fs::symlink(out.join("dir"), out.join("dirlink")).unwrap();
    let fifo = std::ffi::CString::new(out.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::write(out.join("crpw"), "ab\rcd\n").unwrap();
    std::fs::write(out.join("latin1.toml"), b"# ok\nuser = \"caf\xe9\"\n").unwrap();
    vec![
        ("{file}", file),
        ("{empty}", out.join("empty")),
        ("{dirlink}", out.join("dirlink")),
        ("{dir}", out.join("dir")),
        ("{link}", out.join("link")),
        ("{fifo}", out.join("fifo")),
        ("{crpw}", out.join("crpw")),
        ("{latin1}", out.join("latin1.toml")),
    ]
}

fn run_row(row: &Row) {
    let sentinel = TcpListener::bind("127.0.0.1:0").unwrap();
    sentinel.set_nonblocking(true).unwrap();
    let port = sentinel.local_addr().unwrap().port().to_string();
    let t = Test::new();
    let fixtures = fixtures(&t);
    let tmp = t.tmp().to_str().unwrap().to_owned();
    let watch = t.watch_dir().to_str().unwrap().to_owned();
    let subst = |s: &str| {
        let mut s = s.replace("{base}", BASE);
        for (name, path) in &fixtures {
            s = s.replace(name, path.to_str().unwrap());
        }
        s.replace("{watch}", &watch).replace("{tmp}", &tmp).replace("{port}", &port)
    };
    let sets = |opt: &str, var: &str, key: &str| {
        row.args.iter().any(|a| a.starts_with(opt))
            || row.env.iter().any(|(k, _)| *k == var)
            || row.config.is_some_and(|c| c.contains(key) || c.contains(&key.replace('-', "_")))
    };

    let mut t = t.no_positionals().no_standard_paths().cooldown(None).user(None);
    let standard_pid = t.pid_file_path();
    if row.sub == Some("status") {
        t = t.subcommand("status");
    } else {
        if let Some(sub) = row.sub {
            t = t.subcommand(sub);
        }
        for (opt, var, key) in STANDARD {
            if sets(opt, var, key) {
                continue;
            }
            let value = match *opt {
                "--pid-file" => standard_pid.clone().into_os_string(),
                "--log-file" => t.log_path().into_os_string(),
                "--state-dir" => t.state_dir().into_os_string(),
                "--cooldown" => "0.2s".into(),
                _ => crate::support::USER.into(),
            };
            t = t.arg(opt).arg(value);
        }
    }
    if row.no_env_password {
        t = t.password_env(None);
    }
    for (k, v) in row.env {
        t = t.env(k, subst(v));
    }
    if let Some(text) = row.config {
        let path = t.tmp().join("job.toml");
        std::fs::write(&path, subst(text)).unwrap();
        t = t.arg("--config").arg(path);
    }
    for a in row.args {
        t = t.arg(subst(a));
    }
    let default_pos: &[&str] = if row.config.is_some() || row.sub == Some("status") {
        &[]
    } else {
        &["{watch}", "127.0.0.1", "{port}", "/upload"]
    };
    for p in row.pos.unwrap_or(default_pos) {
        t = t.arg(subst(p));
    }

    let out = t.run();
    out.assert_usage_error(row.words);
    assert!(!out.stderr.contains(PASSWORD), "the error shows the password: {}", out.stderr);
    for h in row.hidden {
        assert!(!out.stderr.contains(h), "the error shows {h:?}: {}", out.stderr);
    }
    assert!(!standard_pid.exists(), "a PID file was left at {}", standard_pid.display());
    match sentinel.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the binary connected to the server (from {peer}) before reporting: {}", out.stderr),
        Err(e) => panic!("accept on the sentinel: {e}"),
    }
}

fn run_rows(rows: &[Row]) {
    let mut failures = Vec::new();
    for row in rows {
        if let Err(e) = std::panic::catch_unwind(|| run_row(row)) {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("[{}] {}", row.name, why.lines().take(3).collect::<Vec<_>>().join(" | ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn the_table_has_at_least_80_rows() {
    let n = OPTIONS.len() + CONFLICTS.len() + POSITIONALS.len() + CONFIG.len() + ENV_TWINS.len();
    assert!(n >= 80, "only {n} rows");
}

#[test]
fn bad_options() {
    run_rows(OPTIONS);
}

#[test]
fn bad_positionals() {
    run_rows(POSITIONALS);
}

#[test]
fn bad_config_keys() {
    run_rows(CONFIG);
}

#[test]
fn bad_environment_twins() {
    run_rows(ENV_TWINS);
}

#[test]
fn conflicts_and_subcommands() {
    run_rows(CONFLICTS);
}
