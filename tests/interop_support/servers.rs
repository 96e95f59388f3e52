//! Real FTP daemons (pure-ftpd, vsftpd, proftpd) run from the directories setup.sh
//! unpacked them into, on 127.0.0.1, in the foreground, as root, each with a config
//! made from a template in `tests/interop/` and a fresh temporary directory:
//!
//! ```text
//! run/    config, password files, PID file, logs (server.out: the daemon's own output)
//! root/   the FTP user's root (chrooted); ftpmonitor syncs into root/drop
//! pki/    certificates, for the FTPS scenarios
//! ```
//!
//! Every daemon runs in its own process group; dropping the [`Server`] stops the group and
//! every descendant (the per-session processes), SIGKILL after a short grace: bounded,
//! nothing left behind.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::tls::Pki;
use super::{KeptDir, REMOTE_DIR, TIMEOUT, config_dir, servers_dir, set_mode, tail, temp_dir};

/// The three daemons of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PureFtpd,
    Vsftpd,
    Proftpd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PureFtpd => "pure-ftpd",
            Kind::Vsftpd => "vsftpd",
            Kind::Proftpd => "proftpd",
        }
    }
}

/// How a daemon is configured beyond the defaults (plain FTP, renames over existing files
/// allowed).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Explicit FTPS required on the control and data connections (and, for vsftpd and
    /// proftpd, TLS session reuse on the data connections).
    pub tls: bool,
    /// proftpd only: `AllowOverwrite off`, so RNTO onto an existing file is refused (550).
    pub refuse_rename_over: bool,
    /// Listen on `::1` instead of 127.0.0.1.
    pub ipv6: bool,
}

/// The system user vsftpd logs in (made by setup.sh): vsftpd only knows PAM users.
const VSFTPD_USER: &str = "ftpmon-test";
/// The virtual user of pure-ftpd and proftpd, mapped to uid/gid nobody.
const VIRTUAL_USER: &str = "ftpmon";
const NOBODY: (u32, u32) = (65534, 65534);

/// Passive port blocks: below Linux's ephemeral range (32768-60999), away from the
/// in-process server's 50000+ of tests/it.
const PASSIVE_FIRST: u16 = 21_000;
const PASSIVE_BLOCK: u16 = 20;
const PASSIVE_BLOCKS: usize = 450;
static PASSIVE_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// One running daemon.
pub struct Server {
    pub kind: Kind,
    pub options: Options,
    pub port: u16,
    pub passive: (u16, u16),
    pub user: String,
    pub password: String,
    /// The FTP user's root on this machine's disk.
    pub root: PathBuf,
    /// Config and logs.
    pub run: PathBuf,
    pub pki: Option<Pki>,
    child: Option<Child>,
    /// The daemon's command line, for [`Server::restart`].
    command: (std::ffi::OsString, Vec<std::ffi::OsString>),
    tmp: KeptDir,
}

/// A port nobody listens on right now (bind 127.0.0.1:0).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// A block of passive ports, each free when tried, distinct from the other blocks this
/// process took. The daemons pick one at random per transfer and try another when one is
/// taken meanwhile, so a late collision costs nothing.
fn passive_block() -> (u16, u16) {
    let start = (std::process::id() as usize).wrapping_mul(37) % PASSIVE_BLOCKS;
    for _ in 0..PASSIVE_BLOCKS {
        let n = PASSIVE_TAKEN.fetch_add(1, Ordering::Relaxed);
        let block = (start + n) % PASSIVE_BLOCKS;
        let first = PASSIVE_FIRST + u16::try_from(block).expect("small") * PASSIVE_BLOCK;
        let last = first + PASSIVE_BLOCK - 1;
        if (first..=last).all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return (first, last);
        }
    }
    panic!("no free block of passive ports in {PASSIVE_FIRST}..");
}

/// Fills `{{NAME}}` placeholders; panics on one left over.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(at) = out.find("{{") {
        let line = out[at..].lines().next().unwrap_or_default();
        panic!("template placeholder without a value: {line}");
    }
    out
}

fn read_template(name: &str) -> String {
    let path = config_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A SHA-512-crypt hash (`openssl passwd -6`): pure-pw would store argon2id, whose check
/// costs seconds per login.
fn crypt_sha512(password: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl passwd (tests/interop/setup.sh installs openssl)");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write the password");
    let out = child.wait_with_output().expect("openssl passwd");
    assert!(out.status.success(), "openssl passwd: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("ASCII hash").trim().to_owned()
}

/// uid and gid of a local user, from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn chown(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {} (the suite runs as root): {e}", path.display()));
}

fn random_password() -> String {
    super::random_bytes(12).iter().map(|b| format!("{b:02x}")).collect()
}

impl Server {
    /// Starts a daemon of `kind` and waits until it greets; panics with its output if it
    /// does not within [`TIMEOUT`].
    pub fn start(kind: Kind, options: Options) -> Server {
        assert!(
            !options.refuse_rename_over || kind == Kind::Proftpd,
            "only proftpd can be told to refuse renames over existing files"
        );
        let servers = servers_dir();
        let tmp = temp_dir(&format!("ftpmonitor-interop-{}.", kind.name()));
        let base = tmp.path().canonicalize().expect("canonicalize the temp dir");
        let run = base.join("run");
        let root = base.join("root");
        for d in [&run, &root] {
            std::fs::create_dir(d).expect("create a server dir");
            set_mode(d, 0o755);
        }
        let pki = options.tls.then(|| {
            let pki = Pki::create(&base.join("pki"));
            set_mode(&base.join("pki"), 0o755);
            for f in [&pki.cert, &pki.key] {
                set_mode(f, 0o644);
            }
            pki
        });
        let port = free_port();
        let passive = passive_block();
        let address = if options.ipv6 { "::1" } else { "127.0.0.1" };
        let mut vars = vec![
            ("ADDRESS", address.to_owned()),
            ("PORT", port.to_string()),
            ("PASV_MIN", passive.0.to_string()),
            ("PASV_MAX", passive.1.to_string()),
            ("RUN", run.display().to_string()),
            ("ROOT", root.display().to_string()),
        ];
        if let Some(pki) = &pki {
            vars.push(("CERT", pki.cert.display().to_string()));
            vars.push(("KEY", pki.key.display().to_string()));
        }
        let with_tls = |name: &str| {
            let mut text = read_template(&format!("{name}.conf"));
            if options.tls {
                text.push('\n');
                text.push_str(&read_template(&format!("{name}-tls.conf")));
            }
            text
        };

        let (user, password, cmd) = match kind {
            Kind::PureFtpd => {
                let password = random_password();
                chown(&root, NOBODY);
                // PureDB: user:hash:uid:gid:gecos:home/./ (the "/./" chroots there)
                let line = format!(
                    "{VIRTUAL_USER}:{}:{}:{}::{}/./::::::::::::\n",
                    crypt_sha512(&password),
                    NOBODY.0,
                    NOBODY.1,
                    root.display()
                );
                let passwd = run.join("pureftpd.passwd");
                std::fs::write(&passwd, line).expect("write pureftpd.passwd");
                set_mode(&passwd, 0o600);
                let pure_pw = servers.join("pure-ftpd/usr/bin/pure-pw");
                let out = Command::new(&pure_pw)
                    .arg("mkdb")
                    .arg(run.join("pureftpd.pdb"))
                    .arg("-f")
                    .arg(&passwd)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap_or_else(|e| panic!("run {}: {e}", pure_pw.display()));
                assert!(out.status.success(), "pure-pw mkdb: {}", String::from_utf8_lossy(&out.stderr));
                let flags = render(&with_tls("pure-ftpd"), &vars);
                std::fs::write(run.join("pure-ftpd.flags"), &flags).expect("write the flags");
                let mut cmd = Command::new(servers.join("pure-ftpd/usr/sbin/pure-ftpd"));
                for line in flags.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    // "-X value": flag and value are two arguments; values hold no spaces
                    cmd.args(line.splitn(2, ' '));
                }
                (VIRTUAL_USER.to_owned(), password, cmd)
            }
            Kind::Vsftpd => {
                let file = servers.join("vsftpd-user");
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("read {} (made by tests/interop/setup.sh): {e}", file.display()));
                let password = text
                    .trim()
                    .strip_prefix(&format!("{VSFTPD_USER}:"))
                    .unwrap_or_else(|| panic!("{} does not hold {VSFTPD_USER}:PASSWORD", file.display()))
                    .to_owned();
                let ids = lookup_user(VSFTPD_USER)
                    .unwrap_or_else(|| panic!("no local user {VSFTPD_USER}: run tests/interop/setup.sh"));
                chown(&root, ids);
                let empty = run.join("empty");
                std::fs::create_dir(&empty).expect("create secure_chroot_dir");
                // One listener only: IPv4 (listen=YES) or IPv6 (listen_ipv6=YES).
                let listen = if options.ipv6 {
                    "listen=NO\nlisten_ipv6=YES\nlisten_address6=::1"
                } else {
                    "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1"
                };
                vars.push(("LISTEN", listen.to_owned()));
                set_mode(&empty, 0o755);
                let conf = run.join("vsftpd.conf");
                std::fs::write(&conf, render(&with_tls("vsftpd"), &vars)).expect("write vsftpd.conf");
                set_mode(&conf, 0o600);
                let mut cmd = Command::new(servers.join("vsftpd/usr/sbin/vsftpd"));
                cmd.arg(&conf);
                (VSFTPD_USER.to_owned(), password, cmd)
            }
            Kind::Proftpd => {
                let password = random_password();
                chown(&root, NOBODY);
                let passwd = run.join("ftpd.passwd");
                let group = run.join("ftpd.group");
                std::fs::write(
                    &passwd,
                    format!(
                        "{VIRTUAL_USER}:{}:{}:{}::{}:/bin/false\n",
                        crypt_sha512(&password),
                        NOBODY.0,
                        NOBODY.1,
                        root.display()
                    ),
                )
                .expect("write ftpd.passwd");
                std::fs::write(&group, format!("{VIRTUAL_USER}:x:{}:\n", NOBODY.1)).expect("write ftpd.group");
                set_mode(&passwd, 0o600);
                set_mode(&group, 0o600);
                vars.push(("USE_IPV6", if options.ipv6 { "on" } else { "off" }.to_owned()));
                vars.push(("ALLOW_OVERWRITE", if options.refuse_rename_over { "off" } else { "on" }.to_owned()));
                vars.push(("MODULE_PATH", servers.join("proftpd-mod-crypto/usr/lib/proftpd").display().to_string()));
                let conf = run.join("proftpd.conf");
                std::fs::write(&conf, render(&with_tls("proftpd"), &vars)).expect("write proftpd.conf");
                let mut cmd = Command::new(servers.join("proftpd-core/usr/sbin/proftpd"));
                cmd.args(["-n", "-q", "-c"]).arg(&conf);
                (VIRTUAL_USER.to_owned(), password, cmd)
            }
        };

        let command = (cmd.get_program().to_owned(), cmd.get_args().map(ToOwned::to_owned).collect());
        let mut server =
            Server { kind, options, port, passive, user, password, root, run, pki, child: None, command, tmp };
        server.spawn();
        server.wait_ready();
        server
    }

    /// Starts the daemon's process (its output appended to `run/server.out`).
    fn spawn(&mut self) {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.run.join("server.out"))
            .expect("open server.out");
        let err = out.try_clone().expect("dup server.out");
        let mut cmd = Command::new(&self.command.0);
        cmd.args(&self.command.1).current_dir(&self.run).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("start {}: {e}", self.kind.name())));
    }

    /// Kills the daemon and every session process with SIGKILL at once, as a crash or
    /// an OOM kill would; files on its disk stay as they are.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let leader = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = self.processes(leader);
            if let Ok(pgid) = i32::try_from(leader) {
                // SAFETY: the group was created for the daemon (process_group(0)).
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            for &pid in &procs {
                if let Ok(pid) = i32::try_from(pid) {
                    // SAFETY: kill(2) on processes of the daemon this test started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let exited = !matches!(child.try_wait(), Ok(None));
            if exited && self.processes(leader).is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "{} processes {procs:?} survived SIGKILL", self.kind.name());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again (same config, ports and disk) after [`Server::kill`] or
    /// [`Server::stop`], and waits until it greets.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: {} still runs", self.kind.name());
        self.spawn();
        self.wait_ready();
    }

    /// Waits until the daemon sends its 220 greeting.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        let ip: IpAddr = if self.options.ipv6 { Ipv6Addr::LOCALHOST.into() } else { Ipv4Addr::LOCALHOST.into() };
        let addr = SocketAddr::from((ip, self.port));
        let mut last = String::new();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited at start ({status}):\n{}", self.kind.name(), self.logs());
            }
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(&s);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if line.starts_with("220 ") => {
                                let _ = (&s).write_all(b"QUIT\r\n");
                                return;
                            }
                            Ok(_) => last.clone_from(&line),
                        }
                    }
                }
                Err(e) => last = e.to_string(),
            }
            assert!(
                Instant::now() < deadline,
                "{} did not greet on port {} within {TIMEOUT:?} (last: {last}):\n{}",
                self.kind.name(),
                self.port,
                self.logs()
            );
            std::thread::sleep(super::POLL);
        }
    }

    /// Where ftpmonitor's REMOTE_DIR lands on disk.
    pub fn remote_root(&self) -> PathBuf {
        self.root.join(REMOTE_DIR.trim_start_matches('/'))
    }

    /// The host name ftpmonitor must use: the certificate's name for FTPS.
    pub fn host(&self) -> &'static str {
        match (self.options.tls, self.options.ipv6) {
            (true, _) => "localhost",
            (false, true) => "::1",
            (false, false) => "127.0.0.1",
        }
    }

    /// The test's temporary directory (the server's files are below it).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// The tails of the daemon's logs, for failure messages.
    pub fn logs(&self) -> String {
        let files: &[&str] = match self.kind {
            Kind::PureFtpd => &["server.out", "xferlog"],
            Kind::Vsftpd => &["server.out", "vsftpd.log", "xferlog"],
            Kind::Proftpd => &["server.out", "proftpd.log", "tls.log", "commands.log", "xferlog"],
        };
        let mut out = String::new();
        for f in files {
            let path = self.run.join(f);
            if path.exists() {
                out.push_str(&format!("--- {} {f} (tail) ---\n{}\n", self.kind.name(), tail(&path, 40)));
            }
        }
        out
    }

    /// The bytes of each upload (STOR/APPE, complete or not) of a file named `name`, in
    /// the order of the daemon's transfer log: pure-ftpd's `clf` log (`"PUT /path" 200
    /// BYTES`), else the classic xferlog of vsftpd and proftpd (bytes in field 8, the
    /// file in field 9, direction `i` in field 12).
    pub fn transfer_log(&self, name: &str) -> Vec<u64> {
        let text = std::fs::read_to_string(self.run.join("xferlog")).unwrap_or_default();
        let suffix = format!("/{name}");
        text.lines()
            .filter_map(|line| match self.kind {
                Kind::PureFtpd => {
                    let path = line.split("\"PUT ").nth(1)?.split('"').next()?;
                    let bytes = line.split_whitespace().last()?.parse().ok()?;
                    path.ends_with(&suffix).then_some(bytes)
                }
                Kind::Vsftpd | Kind::Proftpd => {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    (f.len() > 11 && f[8].ends_with(&suffix) && f[11] == "i").then(|| f[7].parse().ok())?
                }
            })
            .collect()
    }

    /// The processes of this daemon: its process group, its descendants, and whatever
    /// runs with its root directory or working directory in this server's temporary
    /// directory (session processes that called setsid and chrooted into `root/`).
    fn processes(&self, leader: u32) -> BTreeSet<u32> {
        let base = self.tmp.path().canonicalize().unwrap_or_else(|_| self.tmp.path().to_owned());
        let inside = |pid: u32| {
            ["root", "cwd"].iter().any(|link| {
                std::fs::read_link(format!("/proc/{pid}/{link}")).is_ok_and(|target| target.starts_with(&base))
            })
        };
        let mut table = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
                let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() < 3 || f[0] == "Z" || f[0] == "X" {
                    continue;
                }
                let (Ok(ppid), Ok(pgrp)) = (f[1].parse::<u32>(), f[2].parse::<u32>()) else { continue };
                table.push((pid, ppid, pgrp));
            }
        }
        let mut set: BTreeSet<u32> = table.iter().filter(|t| t.2 == leader || inside(t.0)).map(|t| t.0).collect();
        if table.iter().any(|t| t.0 == leader) {
            set.insert(leader);
        }
        loop {
            let more: Vec<u32> =
                table.iter().filter(|t| set.contains(&t.1) && !set.contains(&t.0)).map(|t| t.0).collect();
            if more.is_empty() {
                break;
            }
            set.extend(more);
        }
        set.remove(&std::process::id());
        set
    }

    /// Stops the daemon and its session processes: SIGTERM, then SIGKILL after 5 s;
    /// returns within about 12 s whatever happens.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let leader = child.id();
        let signal_all = |set: &BTreeSet<u32>, sig: libc::c_int| {
            for &pid in set {
                if let Ok(pid) = i32::try_from(pid) {
                    // SAFETY: kill(2) on processes of the daemon this test started.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        };
        // Sessions of clients that quit end on their own within milliseconds; their parent
        // reaps them only while it lives, so let them go first (up to 2 s).
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.processes(leader).iter().any(|&p| p != leader) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (sig, grace) in [(libc::SIGTERM, Duration::from_secs(5)), (libc::SIGKILL, Duration::from_secs(5))] {
            let procs = self.processes(leader);
            if let Ok(pgid) = i32::try_from(leader) {
                // SAFETY: the group was created for the daemon (process_group(0)).
                unsafe { libc::kill(-pgid, sig) };
            }
            signal_all(&procs, sig);
            let deadline = Instant::now() + grace;
            loop {
                let exited = !matches!(child.try_wait(), Ok(None));
                if exited && self.processes(leader).is_empty() {
                    return;
                }
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let left = self.processes(leader);
        eprintln!("warning: {} processes {left:?} survived SIGKILL", self.kind.name());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
