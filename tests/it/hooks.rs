//! `--on-upload` and `--on-failure`: the real binary runs the hooks, with the
//! file in their environment and their output in the log, and a hook that
//! fails or hangs never holds syncing up.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Behaviour, FtpProxy, PASSWORD, Test, Verdict};

/// Refuses every STOR of a name containing "refused" for good (550).
struct RefuseSome;

impl Behaviour for RefuseSome {
    fn command(&self, verb: &str, line: &str) -> Verdict {
        if verb == "STOR" && line.contains("refused") {
            Verdict::Answer("550 refused by the test".to_owned())
        } else {
            Verdict::Forward
        }
    }
}

/// An executable shell script in the sandbox, outside the watch directory.
fn script(t: &Test, name: &str, body: &str) -> PathBuf {
    let dir = t.outside_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The environment a hook run wrote (see `recorder`), by event and relpath.
fn recorded(out: &Path, event: &str, rel: &str) -> Option<String> {
    std::fs::read_to_string(out.join(format!("{event}.{}", rel.replace('/', "_")))).ok()
}

/// A hook that writes its whole environment to OUT/EVENT.RELPATH and says hello.
fn recorder(t: &Test) -> (PathBuf, PathBuf) {
    let out = t.outside_dir().join("hook-out");
    std::fs::create_dir_all(&out).unwrap();
    let body = format!(
        "f={}/\"$FTPMONITOR_EVENT.$(printf %s \"$FTPMONITOR_RELPATH\" | tr / _)\"\n\
         env > \"$f.part\" && mv \"$f.part\" \"$f\"\necho \"hello from the hook for $FTPMONITOR_RELPATH\"",
        out.display()
    );
    (script(t, "record.sh", &body), out)
}

fn has_line(env: &str, want: &str) -> bool {
    env.lines().any(|l| l == want)
}

#[test]
fn hooks_get_the_file_in_their_environment_and_their_output_reaches_the_log() {
    let t = Test::new().args(["--parallel", "1"]);
    let proxy = FtpProxy::start(t.server().port(), RefuseSome);
    let (hook, out) = recorder(&t);
    let host = proxy.ip().to_string();
    let port = proxy.port().to_string();
    let d = t.host(&host).port_arg(&port).arg("--on-upload").arg(&hook).arg("--on-failure").arg(&hook).start();
    d.write("a/b.txt", b"hello");
    d.write("refused.txt", b"never accepted");
    d.wait_until("the upload hook ran for a/b.txt", || recorded(&out, "upload", "a/b.txt").is_some());
    let env = recorded(&out, "upload", "a/b.txt").unwrap();
    let local = d.watch_dir().join("a/b.txt");
    for want in [
        "FTPMONITOR_EVENT=upload".to_owned(),
        format!("FTPMONITOR_PATH={}", local.display()),
        "FTPMONITOR_RELPATH=a/b.txt".to_owned(),
        "FTPMONITOR_REMOTE_PATH=/upload/a/b.txt".to_owned(),
        "FTPMONITOR_SIZE=5".to_owned(),
        "FTPMONITOR_ERROR=".to_owned(),
    ] {
        assert!(has_line(&env, &want), "no {want} in the hook's environment:\n{env}");
    }
    assert!(!env.contains(PASSWORD), "the password reached the hook's environment:\n{env}");
    d.wait_for_log("hook on-upload for a/b.txt (stdout): hello from the hook for a/b.txt");

    d.wait_until("the failure hook ran for refused.txt", || recorded(&out, "failure", "refused.txt").is_some());
    let env = recorded(&out, "failure", "refused.txt").unwrap();
    for want in [
        "FTPMONITOR_EVENT=failure".to_owned(),
        format!("FTPMONITOR_PATH={}", d.watch_dir().join("refused.txt").display()),
        "FTPMONITOR_RELPATH=refused.txt".to_owned(),
        "FTPMONITOR_REMOTE_PATH=/upload/refused.txt".to_owned(),
        "FTPMONITOR_SIZE=14".to_owned(),
    ] {
        assert!(has_line(&env, &want), "no {want} in the failure hook's environment:\n{env}");
    }
    let error = env.lines().find_map(|l| l.strip_prefix("FTPMONITOR_ERROR=")).unwrap_or_default();
    assert!(error.contains("550"), "FTPMONITOR_ERROR does not say why: {error:?}\n{env}");
    // Only the first failure is told, not every retry.
    d.wait_until("refused.txt was tried three times", || {
        proxy.commands().iter().filter(|c| c.starts_with("STOR") && c.contains("refused")).count() >= 3
    });
    d.wait_for_log("hook on-failure for refused.txt: done");
    let runs = d.own_log().matches("hook on-failure for refused.txt: done").count();
    assert_eq!(runs, 1, "the failure hook ran for every retry\n{}", d.diagnostics());
}

#[test]
fn a_hook_that_exits_1_is_logged_and_syncing_goes_on() {
    let t = Test::new();
    let hook = script(&t, "fail.sh", "echo 'cannot notify' >&2; exit 1");
    let d = t.arg("--on-upload").arg(&hook).start();
    d.write("one.txt", b"1");
    d.wait_for_log("warning: hook on-upload for one.txt: exited with exit status: 1");
    d.wait_for_log("hook on-upload for one.txt (stderr): cannot notify");
    d.write("two.txt", b"2");
    d.wait_remote("two.txt", b"2");
    d.wait_for_log("warning: hook on-upload for two.txt: exited with exit status: 1");
}

#[test]
fn a_hung_hook_is_killed_after_60_s_while_syncing_goes_on() {
    let t = Test::new();
    let pids = t.outside_dir().join("pids");
    let hook = script(
        &t,
        "hang.sh",
        &format!("case $FTPMONITOR_RELPATH in h1.txt|h2.txt) sleep 1000 & echo $! >> {}; wait;; esac", pids.display()),
    );
    let d = t.arg("--on-upload").arg(&hook).start();
    // Two hang, filling both places; the third waits for one (and then ends at once).
    for name in ["h1.txt", "h2.txt", "h3.txt"] {
        d.write(name, name.as_bytes());
        d.wait_remote(name, name.as_bytes());
    }
    d.wait_until("both hooks hang", || std::fs::read_to_string(&pids).is_ok_and(|p| p.lines().count() == 2));
    // Syncing goes on meanwhile.
    for i in 0..5 {
        let name = format!("later{i}.txt");
        d.write(&name, b"later");
        d.wait_remote(&name, b"later");
    }
    assert!(!d.own_log().contains("killed after"), "a hook was killed early\n{}", d.diagnostics());
    d.wait_until_for(Duration::from_secs(90), "the hung hooks are killed after 60 s", || {
        d.own_log().matches(": killed after 60 s").count() >= 2
    });
    for pid in std::fs::read_to_string(&pids).unwrap().lines().take(2) {
        d.wait_until("the hook's own child is gone with it", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
    }
}
