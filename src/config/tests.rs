use super::checks::*;
use super::file::*;
use super::*;

fn env(cwd: &Path) -> Env {
    Env { cwd: cwd.to_path_buf(), home: Some(cwd.to_path_buf()), ..Env::default() }
}

fn args(watch: &Path) -> RunArgs {
    RunArgs {
        watch_dir: Some(watch.to_path_buf()),
        host: Some("127.0.0.1".into()),
        port: Some("2121".into()),
        remote_dir: Some("/up/".into()),
        ..RunArgs::default()
    }
}

#[test]
fn cooldown_accepts_bare_seconds_fractions_and_units() {
    assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("fast").is_err());
    assert!(parse_duration("-1").is_err());
    assert!(parse_duration("1e19").is_err());
}

#[test]
fn ports_are_checked() {
    assert_eq!(parse_port("21"), Ok(21));
    assert!(parse_port("0").is_err());
    assert!(parse_port("65536").is_err());
    assert!(parse_port("ftp").is_err());
}

#[test]
fn defaults_follow_the_user_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config::from_args_env(&args(tmp.path()), &env(tmp.path())).unwrap();
    assert_eq!(cfg.remote_dir, "/up");
    assert_eq!(cfg.cooldown, Duration::from_secs(5));
    assert_eq!(cfg.parallel, 4);
    assert_eq!(cfg.state_dir, tmp.path().join(".local/state/ftpmonitor"));
    assert_eq!(cfg.pid_file, cfg.state_dir.join("ftpmonitor.pid"));
    assert_eq!(cfg.user, "anonymous");
    let root = Env { is_root: true, ..env(tmp.path()) };
    let cfg = Config::from_args_env(&args(tmp.path()), &root).unwrap();
    assert_eq!(cfg.pid_file, Path::new("/var/run/ftpmonitor.pid"));
    assert_eq!(cfg.log_file.as_deref(), Some(Path::new("/var/log/ftpmonitor.log")));
    assert_eq!(cfg.state_dir, Path::new("/var/lib/ftpmonitor"));
}

#[test]
fn password_sources_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".netrc"), "machine 127.0.0.1 login bob password fromnetrc\n").unwrap();
    std::fs::write(tmp.path().join("pw"), "fromfile\nsecond line\n").unwrap();
    let mut a = args(tmp.path());
    let cfg = Config::from_args_env(&a, &env(tmp.path())).unwrap();
    assert_eq!((cfg.user.as_str(), cfg.password.expose()), ("bob", "fromnetrc"));
    a.server.password_file = Some(tmp.path().join("pw"));
    let cfg = Config::from_args_env(&a, &env(tmp.path())).unwrap();
    assert_eq!(cfg.password.expose(), "fromfile");
    let e = Env { password: Some("fromenv".into()), ..env(tmp.path()) };
    let cfg = Config::from_args_env(&a, &e).unwrap();
    assert_eq!(cfg.password.expose(), "fromenv");
    assert_eq!(format!("{:?}", cfg.password), "***");
    assert!(!format!("{cfg:?}").contains("fromenv"));
}

#[test]
fn config_file_errors_name_the_line() {
    let text = "host = \"x\"\nport = 21\ncooldown = \"fast\"\n";
    let (line, msg) = FileConfig::parse(text).unwrap_err();
    assert_eq!(line, Some(3));
    assert!(msg.contains("fast"), "{msg}");
    let (line, _) = FileConfig::parse("host = \"x\"\nprot = 21\n").unwrap_err();
    assert_eq!(line, Some(2));
    let (line, _) = FileConfig::parse("port = 70000\n").unwrap_err();
    assert_eq!(line, Some(1));
}

#[test]
fn config_file_errors_name_the_key_and_the_fix() {
    let cases: &[(&str, usize, &[&str])] = &[
        ("host = \"x\"\n\nmax-delete = 101\n", 3, &["max-delete", "\"101\"", "percentage", "0 to 100"]),
        ("cooldown = true\n", 1, &["cooldown", "number", "\"500ms\""]),
        ("tls = \"yes\"\n", 1, &["tls", "true or false"]),
        ("prot = 21\n", 1, &["prot", "did you mean port"]),
        ("[server]\nhost = \"x\"\n", 1, &["server", "no sections"]),
        ("max_delete = 5\nmax-delete = 6\n", 2, &["max-delete", "twice", "line 1"]),
        ("cooldown = 1\ncooldown = 2\n", 2, &["duplicate key cooldown"]),
        ("exclude = \"*.tmp\"\n", 1, &["exclude", "list", "[\"*.tmp\"]"]),
        ("exclude = [\"ok\", \"[\"]\n", 1, &["exclude", "item 2", "glob"]),
        ("port = -21\n", 1, &["port", "-21", "1 to 65535"]),
        ("user = 7\n", 1, &["user", "quoted string"]),
        ("password = 123456\n", 1, &["password", "quoted string"]),
    ];
    for (text, line, words) in cases {
        let (at, msg) = FileConfig::parse(text).unwrap_err();
        assert_eq!(at, Some(*line), "{text:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
        for w in *words {
            assert!(msg.contains(w), "{text:?}: {msg:?} does not say {w:?}");
        }
    }
    assert!(!FileConfig::parse("password = 123456\n").unwrap_err().1.contains("123456"));
}

#[test]
fn numbers_in_the_file_mean_what_toml_says() {
    let cfg = FileConfig::parse("port = 0x15\ncooldown = 1_5\nrescan-interval = 1.5e1\nmax-delete = \"7%\"\n").unwrap();
    assert_eq!(cfg.port, Some(21));
    assert_eq!(cfg.cooldown, Some(Duration::from_secs(15)));
    assert_eq!(cfg.rescan_interval, Some(Duration::from_secs(15)));
    assert_eq!(cfg.max_delete, Some(7));
}

#[test]
fn command_line_overrides_the_file_and_file_paths_are_relative_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::create_dir(tmp.path().join("w")).unwrap();
    let file = etc.join("job.toml");
    std::fs::write(
        &file,
        "watch-dir = \"../w\"\nhost = \"localhost\"\nport = 21\nremote-dir = \"/in\"\ncooldown = 2\nstate-dir = \"state\"\nexclude = [\"*.tmp\"]\n",
    )
    .unwrap();
    let a = RunArgs {
        config: Some(file),
        sync: crate::cli::SyncArgs { cooldown: Some("500ms".into()), ..Default::default() },
        ..RunArgs::default()
    };
    let cfg = Config::from_args_env(&a, &env(tmp.path())).unwrap();
    assert_eq!(cfg.watch_dir, std::fs::canonicalize(tmp.path().join("w")).unwrap());
    assert_eq!(cfg.port, 21);
    assert_eq!(cfg.cooldown, Duration::from_millis(500));
    assert_eq!(cfg.state_dir, etc.join("state"));
    assert!(cfg.scope.excluded("deep/dir/x.tmp"));
}

#[test]
fn netrc_prefers_the_machine_then_default() {
    let text = "machine a login u1 password p1\ndefault login anon password guest\n";
    assert_eq!(parse_netrc(text, "a", None).unwrap().password.as_deref(), Some("p1"));
    assert_eq!(parse_netrc(text, "b", None).unwrap().login.as_deref(), Some("anon"));
    assert_eq!(parse_netrc(text, "a", Some("other")), None);
}

/// Fuzzing the config file parser, bounded so that `cargo test` spends a few
/// seconds on it: whatever the text, no panic, and an error is one line.
mod fuzz {
    use super::super::*;
    use proptest::prelude::*;

    /// Pieces TOML is made of, so that random text gets past the first byte.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            13 => prop::sample::select(&["=", "\n", "\"", "'", "[", "]", "{", "}", ",", ".", "#", "\\", "\"\"\""][..])
                .prop_map(str::to_string),
            1 => prop::sample::select(FILE_KEYS).prop_map(str::to_string),
            1 => "[a-z_-]{1,8}",
            1 => "-?[0-9_]{1,6}(\\.[0-9]+)?(e-?[0-9]+)?",
            1 => "0x[0-9a-fA-F]{1,6}",
            1 => "(true|false|inf|nan|1979-05-27(T07:32:00Z)?)",
            1 => "[ \t]{1,2}",
            1 => any::<char>().prop_map(String::from),
        ]
    }

    /// A password value in many shapes, each holding `MARK`.
    fn password_value() -> impl Strategy<Value = String> {
        (0usize..10, "[a-z0-9]{0,4}").prop_map(|(shape, pad)| {
            let v = format!("{pad}{MARK}{pad}");
            match shape {
                0 => v,
                1 => format!("\"{v}"),
                2 => format!("'{v}"),
                3 => format!("[\"{v}\"]"),
                4 => format!("{{ x = \"{v}\" }}"),
                5 => format!("\"{v}\" \"{v}\""),
                6 => format!("\"\"\"{v}"),
                7 => format!("\"{v}\\q\""),
                8 => format!("\"{v}\"\npassword = \"{v}\""),
                _ => format!("1{v}"),
            }
        })
    }

    const MARK: &str = "Zq7Xw9";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 100, ..ProptestConfig::default() })]

        #[test]
        fn any_text_gives_a_config_or_a_one_line_error(parts in prop::collection::vec(fragment(), 0..40)) {
            let text: String = parts.concat();
            if let Err((line, msg)) = FileConfig::parse(&text) {
                prop_assert!(!msg.is_empty());
                prop_assert!(!msg.contains(['\n', '\r']), "{msg:?}");
                prop_assert!(line.is_none_or(|l| l >= 1 && l <= text.lines().count().max(1) + 1), "{line:?}");
            }
        }

        #[test]
        fn no_error_quotes_a_password_value(
            before in prop::collection::vec(fragment(), 0..6),
            value in password_value(),
            after in prop::collection::vec(fragment(), 0..6),
        ) {
            let text = format!("{}\npassword = {value}\n{}", before.concat(), after.concat());
            if let Err((_, msg)) = FileConfig::parse(&text) {
                prop_assert!(!msg.contains(MARK), "{text:?} -> {msg:?}");
            }
        }
    }
}

#[test]
fn metrics_addresses_take_a_port_alone_or_an_address() {
    assert_eq!(parse_listen_addr("9190"), Ok("127.0.0.1:9190".parse().unwrap()));
    assert_eq!(parse_listen_addr(":9190"), Ok("127.0.0.1:9190".parse().unwrap()));
    assert_eq!(parse_listen_addr("0.0.0.0:9190"), Ok("0.0.0.0:9190".parse().unwrap()));
    assert_eq!(parse_listen_addr("[::1]:9190"), Ok("[::1]:9190".parse().unwrap()));
    for bad in ["", "localhost:9190", "70000", "1.2.3.4"] {
        let e = parse_listen_addr(bad).unwrap_err();
        assert!(e.contains("ADDR:PORT"), "{bad}: {e}");
    }
}

#[test]
fn modes_are_octal_digits() {
    assert_eq!(parse_mode("644"), Ok(0o644));
    assert_eq!(parse_mode("0640"), Ok(0o640));
    assert_eq!(parse_mode("0o755"), Ok(0o755));
    assert_eq!(parse_mode("2775"), Ok(0o2775));
    for bad in ["", "8", "649", "rw-r--r--", "07555", "-644", "+644", " "] {
        assert!(parse_mode(bad).unwrap_err().contains("644"), "{bad:?}");
    }
}

#[test]
fn a_config_file_mode_is_read_as_chmod_reads_it() {
    for (text, mode) in [("chmod = 644", 0o644), ("chmod = \"0640\"", 0o640), ("chmod = 0o600", 0o600)] {
        let f = FileConfig::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(f.chmod, Some(mode), "{text}");
    }
    assert!(FileConfig::parse("chmod-dirs = 0o17777").is_err());
}

#[test]
fn the_staging_directory_is_placed_against_remote_dir() {
    let origin = Origin::Cli("--temp-dir");
    let ok = |dir: &str, remote: &str| check_temp_dir(dir, remote, &origin).unwrap();
    assert_eq!(ok(".incoming", "/up"), ("/up/.incoming".into(), Some(".incoming".into())));
    assert_eq!(ok("./a/b/", "/up"), ("/up/a/b".into(), Some("a/b".into())));
    assert_eq!(ok("/up/.incoming", "/up"), ("/up/.incoming".into(), Some(".incoming".into())));
    assert_eq!(ok("/stage", "/up"), ("/stage".into(), None));
    assert_eq!(ok("/upstage", "/up"), ("/upstage".into(), None));
    assert_eq!(ok("/stage", "/"), ("/stage".into(), Some("stage".into())));
    assert_eq!(ok("stage", "."), ("./stage".into(), Some("stage".into())));
    assert_eq!(ok("/a/b/.stage", "/a/./b"), ("/a/b/.stage".into(), Some(".stage".into())));
    assert_eq!(ok("/a/b/.stage", "/a//b"), ("/a/b/.stage".into(), Some(".stage".into())));
    assert_eq!(ok("sub/stage", "up"), ("up/sub/stage".into(), Some("sub/stage".into())));
    for (dir, remote, words) in [
        (".", "/up", "REMOTE_DIR itself"),
        ("/up/", "/up", "REMOTE_DIR itself"),
        ("/", "/up", "holds REMOTE_DIR"),
        ("/a", "/a/b", "holds REMOTE_DIR"),
        ("/a/b", "/a/./b", "REMOTE_DIR itself"),
        ("../x", "/up", ".."),
        ("x/../../y", "/up", ".."),
    ] {
        let e = check_temp_dir(dir, remote, &origin).unwrap_err().to_string();
        assert!(e.contains(words) && e.contains("--temp-dir"), "{dir} in {remote}: {e}");
    }
}
