//! `--metrics-addr`: Prometheus text at /metrics, read with a real HTTP client (ureq).

use crate::support::{Daemon, Test};

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scrape(port: u16) -> String {
    let mut response = ureq::get(format!("http://127.0.0.1:{port}/metrics")).call().expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "content type {kind:?}");
    response.body_mut().read_to_string().expect("the body")
}

/// The value of the sample `name` (with its labels, as written), if the scrape has it.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn wait_sample(d: &Daemon, port: u16, name: &str, want: impl Fn(f64) -> bool) -> String {
    let mut last = String::new();
    d.wait_until(&format!("the scrape shows {name}"), || {
        last = scrape(port);
        sample(&last, name).is_some_and(&want)
    });
    last
}

#[test]
fn a_scrape_shows_uploads_bytes_failures_and_the_journal() {
    let port = free_port();
    let t = Test::new().args(["--metrics-addr", &port.to_string()]);
    // On the server, a directory where refused.txt must go: its uploads fail.
    std::fs::create_dir_all(t.server().root().join("upload/refused.txt/inside")).unwrap();
    t.write("refused.txt", b"cannot be published");
    t.write("a.txt", b"12345");
    t.write("sub/b.txt", b"1234567890");
    let d = t.start();
    d.wait_remote("a.txt", b"12345");
    d.wait_remote("sub/b.txt", b"1234567890");
    d.wait_for_log(&format!("metrics: http://127.0.0.1:{port}/metrics"));

    let text = wait_sample(&d, port, "ftpmonitor_files_synced", |v| v == 2.0);
    assert_eq!(sample(&text, "ftpmonitor_uploads_total"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "ftpmonitor_upload_bytes_total"), Some(15.0), "{text}");
    assert_eq!(sample(&text, "ftpmonitor_server_up"), Some(1.0), "{text}");
    assert!(sample(&text, "ftpmonitor_connections").is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "ftpmonitor_last_success_timestamp_seconds").is_some_and(|t| t > 1.7e9), "{text}");
    let text = wait_sample(&d, port, "ftpmonitor_failures_total{reason=\"server_refused\"}", |n| n >= 1.0);
    assert!(sample(&text, "ftpmonitor_pending_files").is_some_and(|n| n >= 1.0), "refused.txt is pending\n{text}");
    assert!(sample(&text, "ftpmonitor_oldest_pending_seconds").is_some(), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    match ureq::get(format!("http://127.0.0.1:{port}/other")).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        other => panic!("/other: {other:?}"),
    }
}

#[test]
fn a_port_in_use_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let done = Test::new().foreground(true).args(["--metrics-addr", &format!("127.0.0.1:{port}")]).run();
    done.assert_exit(1);
    let all = format!("{}{}", done.stderr, done.log());
    assert!(
        all.lines().any(|l| l.contains(&format!("--metrics-addr 127.0.0.1:{port}: cannot listen"))),
        "no line names the option and the address\n{all}"
    );
}
