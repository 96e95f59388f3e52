//! Checks of the support code itself, independent of the binary under test.

use std::io::Cursor;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, Status};

use super::*;

fn login(server: &FtpServer, password: &str) -> Result<FtpStream, FtpError> {
    let mut ftp = FtpStream::connect(("127.0.0.1", server.port()))?;
    ftp.login(USER, password)?;
    Ok(ftp)
}

#[test]
fn support_server_accepts_login() {
    let server = FtpServer::start();
    let mut ftp = login(&server, PASSWORD).expect("alice logs in");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    let bytes = b"a\nb\n\x00\xff\r\n".to_vec();
    ftp.mkdir("dir").expect("MKD dir");
    ftp.put_file("dir/file.bin", &mut Cursor::new(bytes.clone())).expect("STOR dir/file.bin");
    ftp.rename("dir/file.bin", "dir/renamed.bin").expect("RNFR/RNTO");
    ftp.quit().expect("QUIT");

    assert_eq!(server.remote_file("dir/renamed.bin"), Some(bytes.clone()));
    assert_eq!(server.remote_file("/dir/renamed.bin"), Some(bytes.clone()));
    assert_eq!(server.remote_file("dir/file.bin"), None);
    assert_eq!(server.remote_file("dir"), None, "a directory is not a file");
    let files = server.remote_files();
    assert_eq!(files.into_iter().collect::<Vec<_>>(), vec![("dir/renamed.bin".to_owned(), bytes)]);
}

#[test]
fn support_server_records_changes_across_restarts() {
    let server = FtpServer::start();
    let mut ftp = login(&server, PASSWORD).expect("alice logs in");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    ftp.mkdir("/d").expect("MKD /d");
    ftp.put_file("/d/a.bin", &mut Cursor::new(b"abc".to_vec())).expect("STOR /d/a.bin");
    ftp.rename("/d/a.bin", "/d/b.bin").expect("RNFR/RNTO");
    let mark = server.event_mark();
    ftp.rm("/d/b.bin").expect("DELE /d/b.bin");
    ftp.rmdir("/d").expect("RMD /d");
    // A refused command is not an event.
    assert!(ftp.rm("/missing").is_err());
    let _ = ftp.quit();
    assert_eq!(
        server.events(),
        vec![
            ServerEvent::MadeDir { path: "/d".into() },
            ServerEvent::Stored { path: "/d/a.bin".into(), bytes: 3 },
            ServerEvent::Renamed { from: "/d/a.bin".into(), to: "/d/b.bin".into() },
            ServerEvent::Deleted { path: "/d/b.bin".into() },
            ServerEvent::RemovedDir { path: "/d".into() },
        ]
    );
    assert_eq!(server.events_since(mark).len(), 2);

    server.stop();
    server.restart();
    let mut ftp = login(&server, PASSWORD).expect("login after restart");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    ftp.put_file("/c.bin", &mut Cursor::new(b"c".to_vec())).expect("STOR /c.bin");
    let _ = ftp.quit();
    assert_eq!(server.events().last(), Some(&ServerEvent::Stored { path: "/c.bin".into(), bytes: 1 }));
    assert_eq!(server.events().len(), 6, "events before the restart are kept");
}

#[test]
fn support_server_rejects_wrong_credentials_with_530() {
    let server = FtpServer::start();
    for (user, password) in [(USER, "wrong"), ("bob", PASSWORD), (USER, "")] {
        let mut ftp = FtpStream::connect(("127.0.0.1", server.port())).expect("connect");
        match ftp.login(user, password) {
            Err(FtpError::UnexpectedResponse(resp)) => {
                assert_eq!(resp.status, Status::NotLoggedIn, "{user}/{password}");
            }
            other => panic!("{user}/{password}: expected 530, got {other:?}"),
        }
    }
}

#[test]
fn support_server_passive_and_active_data_connections() {
    let server = FtpServer::start();
    std::fs::write(server.root().join("seen.txt"), b"x").expect("write");
    let mut ftp = login(&server, PASSWORD).expect("login");
    for mode in [suppaftp::Mode::Passive, suppaftp::Mode::ExtendedPassive, suppaftp::Mode::Active] {
        ftp.set_mode(mode);
        let names = ftp.nlst(None).expect("NLST");
        assert!(names.iter().any(|n| n.ends_with("seen.txt")), "{mode:?}: {names:?}");
    }
}

#[test]
fn support_server_stop_and_restart_keep_port_and_files() {
    let server = FtpServer::start();
    let port = server.port();
    std::fs::write(server.root().join("kept.txt"), b"kept").expect("write");
    // A logged-in session must not keep the server from stopping.
    let _session = login(&server, PASSWORD).expect("login");
    server.stop();
    assert!(!server.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "a stopped server refuses connections");
    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    let mut ftp = login(&server, PASSWORD).expect("login after restart");
    assert_eq!(ftp.size("kept.txt").expect("SIZE"), 4);
}

#[test]
fn support_servers_get_distinct_ports_and_roots() {
    let a = FtpServer::start();
    let b = FtpServer::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.root(), b.root());
}

#[test]
fn support_timestamp_shape() {
    assert!(has_timestamp("2026-11-24 21:50:03 - uploaded a.txt"));
    assert!(has_timestamp("2026-11-24 21:50:03 - "));
    assert!(!has_timestamp("name"));
    assert!(!has_timestamp("2026-11-24 21:50:03 uploaded a.txt"));
    assert!(!has_timestamp("21:50:03 [INFO] uploaded a.txt"));
    assert!(!has_timestamp("2026-11-24T21:50:03 - uploaded"));
}

#[test]
fn support_upload_line_matcher() {
    let line = "2026-11-24 21:50:03 - uploaded a/b.txt (12 B)";
    assert!(is_upload_line(line, "a/b.txt"));
    assert!(is_upload_line("2026-11-24 21:50:03 - uploaded a/b.txt", "a/b.txt"));
    assert!(!is_upload_line(line, "a/b.tx"));
    assert!(!is_upload_line(line, "b.txt"));
    assert!(!is_upload_line("… - uploaded a/b.txt.bak", "a/b.txt"));
    assert_eq!(escaped("bad\nname"), "bad\\nname");
    assert!(is_login_refused("error: login refused by 127.0.0.1:21: 530 Authentication failed"));
    assert!(!is_login_refused("error: cannot connect"));
}

#[test]
#[should_panic(expected = "waiting until the impossible happens")]
fn support_wait_until_names_what_it_waited_for() {
    wait_until(Duration::from_millis(50), "the impossible happens", || false);
}

#[test]
fn support_test_builder_command_line() {
    let t = Test::new();
    let argv: Vec<String> = t.command_line().iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let port = t.server().port().to_string();
    let tail: Vec<&str> = argv[argv.len() - 4..].iter().map(String::as_str).collect();
    assert_eq!(tail, [t.watch_dir().to_str().expect("utf-8"), "127.0.0.1", port.as_str(), "/upload"]);
    for flag in ["--foreground", "--pid-file", "--log-file", "--state-dir", "--user", "--cooldown"] {
        assert!(argv.iter().any(|a| a == flag), "{flag} missing in {argv:?}");
    }
    assert!(!argv.iter().any(|a| a.contains(PASSWORD)), "the password is never on the command line");
    let argv: Vec<_> = t.daemonize().command_line();
    assert!(!argv.iter().any(|a| a == "--foreground"));
}

#[test]
#[ignore = "flaky under load: the sandbox sweep sometimes misses the just-spawned process \
            (2 of ~12 full runs); cause not found yet, run with --ignored"]
fn support_sandbox_kills_what_it_started() {
    let t = Test::new();
    let tmp = t.tmp().to_path_buf();
    let mut child = std::process::Command::new("sleep")
        .arg0(tmp.join("marker"))
        .arg("1000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sleep");
    drop(t);
    // Bounded: a sandbox that failed to kill it must fail the test, not hang it.
    let mut status = None;
    wait_until(TIMEOUT, "the sandbox killed the process it started", || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let status = status.expect("exited");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL), "{status}");
}
