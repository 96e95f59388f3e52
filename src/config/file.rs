//! The TOML config file (`--config`), read in two stages (see
//! [`FileConfig`]).

use super::*;

/// The config file: the same keys as the long options (`cooldown`,
/// `password-file`, ...) plus the four positionals (`watch-dir`, `host`,
/// `port`, `remote-dir`) and `password`. `snake_case` spellings are accepted
/// too (`max_delete`).
///
/// Read in two stages: toml parses the syntax into spanned keys and values,
/// then every key is converted here, so that each error names the key and
/// its line and says what to write instead, in our words. No message ever
/// quotes a `password` value: serde's and toml's would ("invalid type:
/// integer `123456`").
#[derive(Debug, Default)]
pub(super) struct FileConfig {
    pub(super) watch_dir: Option<PathBuf>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) remote_dir: Option<String>,

    pub(super) foreground: Option<bool>,
    pub(super) pid_file: Option<PathBuf>,
    pub(super) log_file: Option<PathBuf>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) run_as: Option<String>,
    pub(super) log_level: Option<LevelFilter>,
    pub(super) metrics_addr: Option<std::net::SocketAddr>,
    pub(super) log_format: Option<crate::logging::LogFormat>,

    pub(super) user: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) tls: Option<bool>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) active: Option<bool>,
    pub(super) timeout: Option<Duration>,

    pub(super) cooldown: Option<Duration>,
    pub(super) no_recursive: Option<bool>,
    pub(super) delete: Option<bool>,
    pub(super) exclude: Option<Vec<String>>,
    pub(super) include: Option<Vec<String>>,
    pub(super) last: Option<Vec<String>>,
    pub(super) order: Option<super::checks::Order>,
    pub(super) parallel: Option<usize>,
    pub(super) rescan_interval: Option<Duration>,
    pub(super) max_delete: Option<u8>,
    pub(super) once: Option<bool>,
    pub(super) dry_run: Option<bool>,
    pub(super) publish_changing: Option<bool>,
    pub(super) bwlimit: Option<crate::bwlimit::Timetable>,
    pub(super) poll: Option<Duration>,
    pub(super) remove_source: Option<bool>,
    pub(super) archive_dir: Option<PathBuf>,
    pub(super) temp_dir: Option<String>,
    pub(super) chmod: Option<u32>,
    pub(super) chmod_dirs: Option<u32>,
    pub(super) on_upload: Option<String>,
    pub(super) on_failure: Option<String>,
    /// `min-age` and `max-age`: `Some(None)` is an explicit "off".
    pub(super) min_age: Option<Option<Duration>>,
    pub(super) max_age: Option<Option<Duration>>,

    /// For each key given: how it was written and its 1-based line.
    pub(super) keys: HashMap<&'static str, (String, usize)>,
}

/// Every key the file may hold, in the kebab-case spelling.
pub(super) const FILE_KEYS: &[&str] = &[
    "watch-dir",
    "host",
    "port",
    "remote-dir",
    "foreground",
    "pid-file",
    "log-file",
    "state-dir",
    "run-as",
    "log-level",
    "metrics-addr",
    "log-format",
    "user",
    "password",
    "password-file",
    "tls",
    "ca-file",
    "active",
    "timeout",
    "cooldown",
    "no-recursive",
    "delete",
    "exclude",
    "include",
    "last",
    "order",
    "parallel",
    "rescan-interval",
    "max-delete",
    "once",
    "dry-run",
    "publish-changing",
    "bwlimit",
    "poll",
    "remove-source",
    "archive-dir",
    "temp-dir",
    "chmod",
    "chmod-dirs",
    "on-upload",
    "on-failure",
    "min-age",
    "max-age",
];

/// What to write instead of a malformed `password` value. Says nothing of the
/// value itself.
pub(super) const PASSWORD_FIX: &str = "the value must be a quoted string, digits too (it is not shown here): \
                            write password = \"...\", or better keep it in a --password-file";

type ParseError = (Option<usize>, String);

impl FileConfig {
    pub(super) fn load(path: &Path, origin: &Origin) -> Result<Self> {
        let shown = EscapedPath(path);
        let bytes = fs::read(path)
            .map_err(|e| Error::usage(format!("{origin}: cannot read config file {shown}: {e}: check the path")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Error::usage(format!("config file {shown}, line {line}: not UTF-8 text: save the file as UTF-8"))
        })?;
        Self::parse(&text).map_err(|(line, msg)| {
            Error::usage(match line {
                Some(line) => format!("config file {shown}, line {line}: {msg}"),
                None => format!("config file {shown}: {msg}"),
            })
        })
    }

    /// Where `key` (kebab-case) was given, for an error about its value.
    pub(super) fn origin(&self, key: &'static str, path: Option<&Path>) -> Origin {
        match (self.keys.get(key), path) {
            (Some((written, line)), Some(path)) => {
                Origin::File { path: path.to_path_buf(), line: *line, key: written.clone() }
            }
            _ => Origin::Default(key),
        }
    }

    /// Parses the text; an error carries the 1-based line and a one-line message.
    pub(super) fn parse(text: &str) -> std::result::Result<Self, ParseError> {
        let doc = toml::de::DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let mut entries: Vec<_> = doc.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut cfg = Self::default();
        for (key, value) in entries {
            let line = line_of(text, key.span().start);
            let written: &str = key.get_ref();
            let shown = written.escape_debug().to_string();
            let canonical = written.replace('_', "-");
            let Some(&name) = FILE_KEYS.iter().find(|k| **k == canonical) else {
                return Err((Some(line), unknown_key(&shown, value.get_ref())));
            };
            if let Some((other, other_line)) = cfg.keys.get(name) {
                return Err((
                    Some(line),
                    format!("{shown}: given twice (also as {other} on line {other_line}): keep one of them"),
                ));
            }
            cfg.keys.insert(name, (shown.clone(), line));
            cfg.set(name, value.get_ref()).map_err(|msg| (Some(line), format!("{shown}: {msg}")))?;
        }
        Ok(cfg)
    }

    fn set(&mut self, name: &str, v: &DeValue<'_>) -> std::result::Result<(), String> {
        match name {
            "watch-dir" => self.watch_dir = Some(path_value(v)?),
            "host" => self.host = Some(string_value(v)?),
            "port" => self.port = Some(parse_port(&number_text(v, "21")?)?),
            "remote-dir" => self.remote_dir = Some(string_value(v)?),
            "foreground" => self.foreground = Some(bool_value(v)?),
            "pid-file" => self.pid_file = Some(path_value(v)?),
            "log-file" => self.log_file = Some(path_value(v)?),
            "state-dir" => self.state_dir = Some(path_value(v)?),
            "run-as" => self.run_as = Some(string_value(v)?),
            "log-level" => self.log_level = Some(parse_log_level(&string_value(v)?)?),
            "metrics-addr" => self.metrics_addr = Some(parse_listen_addr(&number_text(v, "\"127.0.0.1:9190\"")?)?),
            "log-format" => self.log_format = Some(string_value(v)?.parse()?),
            "user" => self.user = Some(string_value(v)?),
            "password" => match v {
                DeValue::String(s) => self.password = Some(Secret::new(s.as_ref())),
                _ => return Err(PASSWORD_FIX.to_string()),
            },
            "password-file" => self.password_file = Some(path_value(v)?),
            "tls" => self.tls = Some(bool_value(v)?),
            "ca-file" => self.ca_file = Some(path_value(v)?),
            "active" => self.active = Some(bool_value(v)?),
            "timeout" => self.timeout = Some(parse_timeout(&number_text(v, "\"30s\"")?)?),
            "cooldown" => self.cooldown = Some(parse_duration(&number_text(v, "\"500ms\"")?)?),
            "no-recursive" => self.no_recursive = Some(bool_value(v)?),
            "delete" => self.delete = Some(bool_value(v)?),
            "exclude" => self.exclude = Some(glob_list(v)?),
            "include" => self.include = Some(glob_list(v)?),
            "last" => self.last = Some(glob_list(v)?),
            "order" => self.order = Some(super::checks::parse_order(&string_value(v)?)?),
            "parallel" => self.parallel = Some(parse_parallel(&number_text(v, "4")?)?),
            "rescan-interval" => self.rescan_interval = Some(parse_duration(&number_text(v, "\"1h\"")?)?),
            "max-delete" => self.max_delete = Some(parse_percent(&number_text(v, "50")?)?),
            "once" => self.once = Some(bool_value(v)?),
            "dry-run" => self.dry_run = Some(bool_value(v)?),
            "publish-changing" => self.publish_changing = Some(bool_value(v)?),
            "poll" => self.poll = Some(parse_poll(&number_text(v, "\"30s\"")?)?),
            "min-age" => self.min_age = Some(parse_age(&number_text(v, "\"10m\"")?)?),
            "max-age" => self.max_age = Some(parse_age(&number_text(v, "\"30d\"")?)?),
            "bwlimit" => self.bwlimit = Some(crate::bwlimit::Timetable::parse(&number_text(v, "\"10M\"")?)?),
            "remove-source" => self.remove_source = Some(bool_value(v)?),
            "archive-dir" => self.archive_dir = Some(path_value(v)?),
            "temp-dir" => self.temp_dir = Some(string_value(v)?),
            "chmod" => self.chmod = Some(mode_value(v)?),
            "chmod-dirs" => self.chmod_dirs = Some(mode_value(v)?),
            "on-upload" => self.on_upload = Some(string_value(v)?),
            "on-failure" => self.on_failure = Some(string_value(v)?),
            _ => return Err("not a key of the config file".to_string()),
        }
        Ok(())
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A TOML syntax error as one line. toml's own messages name tokens, never
/// values; an error on a `password` line says so and adds the fix.
pub(super) fn syntax_error(text: &str, e: &toml::de::Error) -> ParseError {
    let span = e.span();
    let line = span.as_ref().map(|s| line_of(text, s.start));
    let msg = e.message().lines().map(str::trim).collect::<Vec<_>>().join(" ");
    let line_text = line.and_then(|n| text.lines().nth(n - 1)).unwrap_or("");
    let on_password = line_key(line_text).is_some_and(|k| k.replace('_', "-") == "password");
    let msg = if msg == "duplicate key" {
        let key = span.and_then(|s| text.get(s)).unwrap_or("").trim();
        format!("duplicate key {}: keep one of them", key.escape_debug())
    } else if on_password {
        format!("password: {msg}: {PASSWORD_FIX}")
    } else {
        format!("{msg} (TOML syntax: key = value, strings in quotes)")
    };
    (line, msg)
}

/// The key a `key = value` line starts with, quotes removed.
pub(super) fn line_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    Some(key.trim().trim_matches(['"', '\'']))
}

pub(super) fn unknown_key(shown: &str, v: &DeValue<'_>) -> String {
    if matches!(v, DeValue::Table(_)) {
        return format!(
            "unknown section or dotted key {shown}: the config file has no sections: write its keys at the top, \
             one `key = value` a line"
        );
    }
    let guess = FILE_KEYS.iter().copied().min_by_key(|k| edit_distance(k, &shown.replace('_', "-")));
    match guess.filter(|k| edit_distance(k, &shown.replace('_', "-")) <= 2) {
        Some(k) => format!("unknown key {shown}: did you mean {k}?"),
        None => format!(
            "unknown key {shown}: the keys are the long options without -- (cooldown, pid-file, ...) \
             and watch-dir, host, port, remote-dir, password"
        ),
    }
}

/// Levenshtein distance, for "did you mean".
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

pub(super) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

pub(super) fn string_value(v: &DeValue<'_>) -> std::result::Result<String, String> {
    match v {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(format!("must be a quoted string, not {}: put the value in quotes", type_name(other))),
    }
}

pub(super) fn path_value(v: &DeValue<'_>) -> std::result::Result<PathBuf, String> {
    match v {
        DeValue::String(s) if s.is_empty() => Err("is empty: give a path, in quotes".to_string()),
        DeValue::String(s) => Ok(PathBuf::from(s.as_ref())),
        other => Err(format!("must be a path in quotes, not {}", type_name(other))),
    }
}

pub(super) fn bool_value(v: &DeValue<'_>) -> std::result::Result<bool, String> {
    match v {
        DeValue::Boolean(b) => Ok(*b),
        DeValue::String(s) if ["true", "false"].contains(&s.as_ref()) => {
            Err(format!("must be true or false without quotes: write {s}"))
        }
        other => Err(format!("must be true or false (without quotes), not {}", type_name(other))),
    }
}

/// A number, or a string such as `"500ms"`, as text for the parsers the
/// command line uses too (`example` shows what to write instead).
pub(super) fn number_text(v: &DeValue<'_>, example: &str) -> std::result::Result<String, String> {
    match v {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            Ok(i64::from_str_radix(i.as_str(), i.radix()).map_or_else(|_| i.as_str().to_string(), |n| n.to_string()))
        }
        DeValue::Float(f) => Ok(f.as_str().replace('_', "")),
        other => Err(format!("must be a number or a quoted value like {example}, not {}", type_name(other))),
    }
}

/// A file mode: `"644"`, or unquoted `644` (its digits read as octal, as
/// chmod reads them) or `0o644`.
pub(super) fn mode_value(v: &DeValue<'_>) -> std::result::Result<u32, String> {
    match v {
        DeValue::String(s) => parse_mode(s),
        DeValue::Integer(i) if i.radix() == 8 => parse_mode(i.as_str()),
        DeValue::Integer(i) => parse_mode(i.as_str()),
        other => Err(format!("must be an octal mode like \"644\", not {}", type_name(other))),
    }
}

pub(super) fn glob_list(v: &DeValue<'_>) -> std::result::Result<Vec<String>, String> {
    let DeValue::Array(items) = v else {
        return Err(format!("must be a list of quoted globs, like exclude = [\"*.tmp\"], not {}", type_name(v)));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let DeValue::String(pat) = item.get_ref() else {
            return Err(format!("item {} must be a quoted glob, not {}", i + 1, type_name(item.get_ref())));
        };
        Glob::new(pat).map_err(|e| {
            format!("item {} {pat:?} is not a valid glob ({}): use *, ?, [abc] and ** for any depth", i + 1, e.kind())
        })?;
        out.push(pat.to_string());
    }
    Ok(out)
}
