//! Runs a short subcommand of the binary (`status`, `pause`, `resume`) against a sandbox's
//! PID file and state directory, with the sandbox's environment, and returns its output.

use std::process::{Command, Stdio};

use super::{Sandbox, TIMEOUT, poll_until};

/// `ftpmonitor ARGS... --pid-file P --state-dir D`: the exit code, stdout and stderr.
pub fn subcommand(s: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftpmonitor"));
    cmd.args(args).arg("--pid-file").arg(s.pid_file_path()).arg("--state-dir").arg(s.state_dir());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FTPMONITOR_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", s.tmp().join("home"))
        .env("XDG_RUNTIME_DIR", s.tmp().join("run"))
        .env("XDG_STATE_HOME", s.tmp().join("xdg").join("state"))
        .current_dir(s.tmp())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn an ftpmonitor subcommand");
    // A few lines of output: they fit in the pipes, so polling for the exit cannot deadlock.
    if !poll_until(TIMEOUT, || child.try_wait().expect("try_wait").is_some()) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`ftpmonitor {}` did not exit within {TIMEOUT:?}", args.join(" "));
    }
    let out = child.wait_with_output().expect("subcommand output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
