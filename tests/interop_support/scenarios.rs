//! The scenarios, each written once and run against every daemon by `tests/interop.rs`.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use crate::support::ftpmonitor::{Job, kill_forked};
use crate::support::probe;
use crate::support::proxy::FaultProxy;
use crate::support::servers::{Kind, Options, Server};
use crate::support::{
    REMOTE_DIR, TIMEOUT, describe_tree, files_under, random_bytes, same_contents, tree_difference, write_file,
    write_random_file,
};

const MIB: u64 = 1024 * 1024;

/// Panics unless the server holds a byte-identical copy of the job's watch directory.
fn assert_synced(job: &Job, server: &Server) {
    if let Some(diff) = tree_difference(&job.watch, &server.remote_root()) {
        panic!(
            "{}: the server's copy differs: {diff}\nserver holds: {}\n{}{}",
            server.kind.name(),
            describe_tree(&server.remote_root()),
            job.diagnostics(),
            server.logs()
        );
    }
}

/// Panics if the log has a warning or an error: a sync against a healthy server must not
/// need retries (they would hide a failure behind a slower success).
fn assert_clean_log(job: &Job, server: &Server) {
    let log = job.log();
    let bad: Vec<&str> = log.lines().filter(|l| l.contains(" - warning") || l.contains(" - error")).collect();
    assert!(
        bad.is_empty(),
        "{}: the sync succeeded, but after {} warning(s)/error(s), first: {}\n{}{}",
        server.kind.name(),
        bad.len(),
        bad[0],
        job.diagnostics(),
        server.logs()
    );
}

/// What the daemon logs at start when it sends an upload's follow-up commands together.
const PIPELINED: &str = "an upload's follow-up commands are sent together";

/// A small tree: text with LF and CRLF (a transfer in ASCII mode would change it), random
/// binary data, an empty file, three levels of directories.
fn small_tree(job: &Job) {
    write_file(&job.watch, "top.txt", b"line one\nline two\r\nno newline at the end");
    write_file(&job.watch, "binary.bin", &random_bytes(300_000));
    write_file(&job.watch, "empty.txt", b"");
    write_file(&job.watch, "a/sibling.bin", &random_bytes(70_000));
    write_file(&job.watch, "a/b/second.txt", b"second\n");
    write_file(&job.watch, "a/b/c/deep.txt", b"deep down\n");
}

/// a. Plain FTP: a few files in nested directories arrive byte-identical (`--once`), and
/// on servers with MFMT (pure-ftpd, proftpd; not vsftpd) with the local modification time.
pub fn plain_tree(kind: Kind) {
    let server = Server::start(kind, Options::default());
    let job = Job::new(&server);
    small_tree(&job);
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_620_284_889); // 2021-05-06 07:08:09 UTC
    for rel in files_under(&job.watch) {
        let file = std::fs::File::options().write(true).open(job.watch.join(&rel)).expect("open");
        file.set_modified(mtime).expect("set mtime");
    }
    job.once_ok(TIMEOUT, &server);
    assert_synced(&job, &server);
    assert_clean_log(&job, &server);
    assert_eq!(job.uploads("a/b/c/deep.txt"), 1, "{}", job.diagnostics());
    // All three read commands in order: each upload's follow-up commands went out together.
    assert!(job.log().contains(PIPELINED), "{}: no pipelining\n{}", kind.name(), job.diagnostics());
    let remote = server.remote_root();
    let kept: Vec<bool> = files_under(&remote)
        .iter()
        .map(|rel| std::fs::metadata(remote.join(rel)).and_then(|m| m.modified()).ok() == Some(mtime))
        .collect();
    match kind {
        Kind::PureFtpd | Kind::Proftpd => {
            assert!(kept.iter().all(|&k| k), "{}: MFMT did not preserve every mtime: {kept:?}", kind.name());
        }
        // no MFMT: the server's clock decides
        Kind::Vsftpd => assert!(kept.iter().all(|&k| !k), "vsftpd preserved an mtime without MFMT?"),
    }
}

/// b. Explicit FTPS, required by the server on control and data connections (vsftpd and
/// proftpd also require TLS session reuse on the data connections), with `parallel`
/// connections (`--parallel`; ftpmonitor's default is 4).
///
/// 30 files: more uploads than the TLS 1.3 tickets one handshake leaves a client (OpenSSL
/// sends two), so every data connection must find a session to resume all along.
pub fn ftps_tree(kind: Kind, parallel: u32) {
    let server = Server::start(kind, Options { tls: true, ..Options::default() });
    let job = Job::new(&server).args(&["--parallel", &parallel.to_string()]);
    small_tree(&job);
    for i in 0..24 {
        write_file(&job.watch, &format!("many/file-{i:02}.txt"), format!("file {i}\n").as_bytes());
    }
    job.once_ok(TIMEOUT, &server);
    assert_synced(&job, &server);
    assert_clean_log(&job, &server);
    // Never over TLS: pipelining writes to the control socket itself.
    assert!(!job.log().contains(PIPELINED), "pipelined over TLS\n{}", job.diagnostics());
}

/// The journal's BLAKE3 fingerprint of every file of `job`'s watch directory, beside the
/// one of its bytes; panics naming the first that differs.
fn assert_journal_fingerprints(job: &Job, server: &Server) {
    let path = job.work.join("state").join("journal.sqlite");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    for rel in files_under(&job.watch) {
        let bytes = std::fs::read(job.watch.join(&rel)).expect("read a local file");
        let journaled: Option<Vec<u8>> =
            conn.query_row("SELECT blake3 FROM files WHERE path = ?1", [&rel], |r| r.get(0)).ok();
        assert_eq!(
            journaled.as_deref(),
            Some(blake3::hash(&bytes).as_bytes().as_slice()),
            "{}: the journal's fingerprint of {rel} ({} bytes) is not the one of its bytes\n{}",
            server.kind.name(),
            bytes.len(),
            job.diagnostics()
        );
    }
}

/// b''. FTPS, one connection: every upload's TLS data connection ends when the server
/// closes it (after our close_notify and FIN), not when a wait for a TLS 1.3 ticket runs
/// out; small files and one of 6 MiB (hashed beside the send), each journaled with the
/// fingerprint of its bytes.
pub fn ftps_upload_ends_with_the_servers_close(kind: Kind) {
    let server = Server::start(kind, Options { tls: true, ..Options::default() });
    let job = Job::new(&server).args(&["--parallel", "1", "--log-level", "debug"]);
    for i in 0..8 {
        write_file(&job.watch, &format!("f-{i}.txt"), format!("file {i}\n").as_bytes());
    }
    write_random_file(&job.watch, "big.bin", 6 * MIB + 11);
    let files = files_under(&job.watch).len();
    let done = job.once_ok(TIMEOUT, &server);
    assert_synced(&job, &server);
    assert_clean_log(&job, &server);
    assert_journal_fingerprints(&job, &server);
    let log = job.log();
    let ends: Vec<&str> = log.lines().filter(|l| l.contains("the TLS data connection of")).collect();
    eprintln!("{}: {files} files over FTPS on one connection in {:?}; {ends:#?}", kind.name(), done.elapsed);
    // proftpd refuses the third TLS 1.3 data connection (no ticket left to resume) and the
    // job goes on with TLS 1.2 (RESULTS.md): that upload has two data connections.
    assert!(ends.len() >= files, "{}: one line per upload expected\n{}", kind.name(), job.diagnostics());
    assert!(
        ends.iter().all(|l| l.ends_with("; the server closed it")),
        "{}: a data connection was not closed by the server: {ends:#?}",
        kind.name()
    );
}

/// b'. FTPS with a CA that did not sign the server's certificate: the launcher exits 1
/// before forking, with one line on stderr that names the host.
pub fn ftps_wrong_ca(kind: Kind) {
    let server = Server::start(kind, Options { tls: true, ..Options::default() });
    let wrong = server.pki.as_ref().expect("TLS").wrong_ca.clone();
    let job = Job::new(&server).ca_file(&wrong);
    write_file(&job.watch, "secret.txt", b"must not be sent to an unverified server");
    let done = job.launch(TIMEOUT, &server);
    let forked = kill_forked(&job);
    let lines: Vec<&str> = done.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(done.status.code(), Some(1), "exit status {}; stderr:\n{}\n{}", done.status, done.stderr, job.log());
    assert_eq!(forked, None, "a daemon was left running after a TLS failure\n{}", job.log());
    assert_eq!(lines.len(), 1, "want exactly one line on stderr, got:\n{}", done.stderr);
    assert!(lines[0].contains("localhost"), "the error does not name the host: {}", lines[0]);
    assert!(
        lines[0].to_lowercase().contains("certificate") || lines[0].contains("TLS"),
        "the error does not say what is wrong with TLS: {}",
        lines[0]
    );
    eprintln!("{}: {}", kind.name(), lines[0]);
    assert!(files_under(&server.remote_root()).is_empty(), "files reached the server: {}", describe_tree(&server.root));
}

/// With a foreground daemon: writes each version of `note.txt` in turn and waits until the
/// server holds it; then nothing else may be on the server, SIGTERM must stop the daemon
/// with status 0, and the log must show one upload per version.
fn replace_with_daemon(server: &Server, versions: &[&[u8]]) {
    let job = Job::new(server);
    let remote = server.remote_root().join("note.txt");
    write_file(&job.watch, "note.txt", versions[0]);
    let mut daemon = job.spawn_foreground();
    for (i, v) in versions.iter().enumerate() {
        if i > 0 {
            write_file(&job.watch, "note.txt", v);
        }
        let local = job.watch.join("note.txt");
        daemon.wait_until(TIMEOUT, server, &format!("the server holds version {}", i + 1), || {
            same_contents(&local, &remote)
        });
    }
    // once the last version is there, nothing else may be left (no .ftpmonitor-part/-old)
    daemon.wait_until(TIMEOUT, server, "no temporary or set-aside file is left", || {
        tree_difference(&job.watch, &server.remote_root()).is_none()
    });
    let status = daemon.stop();
    assert!(status.success(), "ftpmonitor exited with {status} after SIGTERM\n{}", job.diagnostics());
    assert_eq!(job.uploads("note.txt"), versions.len(), "{}", job.diagnostics());
}

/// c. A changed file replaces the older version on the server (renamed over it).
pub fn replace_existing(kind: Kind) {
    let server = Server::start(kind, Options::default());
    replace_with_daemon(&server, &[b"version 1\n", b"version 2, longer than the first\n"]);
}

/// g. The same against a server that refuses RNTO onto an existing file (proftpd with
/// `AllowOverwrite off`): ftpmonitor renames the old file aside first, then deletes it.
pub fn replace_when_rename_over_is_refused(kind: Kind) {
    let server = Server::start(kind, Options { refuse_rename_over: true, ..Options::default() });
    replace_with_daemon(&server, &[b"version 1\n", b"version 2, longer than the first\n", b"v3\n"]);
    // the server did refuse (proftpd's command log: command, reply code)
    let commands = std::fs::read_to_string(server.run.join("commands.log")).unwrap_or_default();
    assert!(
        commands.contains("\"RNTO /drop/note.txt\" 550")
            && commands.contains("\"DELE /drop/note.txt.ftpmonitor-old\" 250"),
        "the server never refused a rename over note.txt, or the old file was not set aside and deleted:\n{commands}"
    );
}

/// d. Names with spaces and non-ASCII characters, in file and directory names.
pub fn unicode_names(kind: Kind) {
    let server = Server::start(kind, Options::default());
    let job = Job::new(&server);
    write_file(&job.watch, "a b.txt", b"space\n");
    write_file(&job.watch, "é中.txt", "é中\n".as_bytes());
    write_file(&job.watch, "dir with space/inner file.txt", b"inner\n");
    write_file(&job.watch, "dir with space/ü/ß.bin", &random_bytes(5000));
    job.once_ok(TIMEOUT, &server);
    assert_synced(&job, &server);
    assert_clean_log(&job, &server);
}

/// e. A 100 MiB file of random bytes arrives identical.
pub fn big_file(kind: Kind) {
    let server = Server::start(kind, Options::default());
    let job = Job::new(&server);
    write_random_file(&job.watch, "big.bin", 100 * MIB);
    write_file(&job.watch, "small.txt", b"next to a big one\n");
    let done = job.once_ok(Duration::from_secs(600), &server);
    eprintln!("{}: 100 MiB uploaded in {:?}", kind.name(), done.elapsed);
    assert_synced(&job, &server);
    assert_clean_log(&job, &server);
}

/// A 16 MiB file through a proxy that resets the first upload data connection after
/// `cut_after` bytes, with `--once` and one connection: the run must end with the file on
/// the server, complete. With `expect_resume`, the retry must also continue where the
/// broken upload stopped: fewer bytes cross the proxy than the file plus half of what
/// went before the cut, and the server's transfer log shows the last upload of the
/// temporary file carrying less than the whole file.
fn upload_through_cut(kind: Kind, cut_after: u64, expect_resume: bool) {
    let size = 16 * MIB;
    let server = Server::start(kind, Options::default());
    let proxy = FaultProxy::start(server.port, cut_after, 1);
    let job = Job::to(&server, "127.0.0.1", proxy.port).args(&["--parallel", "1"]);
    write_random_file(&job.watch, "payload.bin", size);
    job.once_ok(Duration::from_secs(300), &server);
    assert_synced(&job, &server);
    let stats = proxy.stats();
    let cuts = stats.cuts.load(Ordering::Relaxed);
    assert_eq!(cuts, 1, "the proxy did not cut the upload\n{}", job.diagnostics());
    let sent = stats.upload_bytes.load(Ordering::Relaxed);
    let transfers = server.transfer_log(".payload.bin.ftpmonitor-part");
    let summary = format!(
        "{}: {size} B file, data connection reset after {cut_after} B; {sent} B sent on data connections in all; \
         the server's transfer log for the temporary file (bytes per STOR/APPE): {transfers:?}",
        kind.name()
    );
    eprintln!("{summary}\n{}", job.log());
    if expect_resume {
        assert!(
            sent < size + cut_after / 2 && transfers.last().is_some_and(|&b| b < size),
            "{summary}: the upload started over instead of resuming\n{}{}",
            job.diagnostics(),
            server.logs()
        );
    }
}

/// f. A data connection reset in the middle of an upload: the file still arrives, complete.
pub fn dropped_data_connection(kind: Kind) {
    upload_through_cut(kind, 3 * MIB, false);
}

/// f'. After such a reset, the upload resumes (REST+STOR) instead of starting over.
pub fn resume_sends_only_the_rest(kind: Kind) {
    upload_through_cut(kind, 12 * MIB, true);
}

/// The compatibility-table row for RESULTS.md (printed; run with --nocapture).
pub fn compat_probe(kind: Kind) {
    let plain = Server::start(kind, Options::default());
    let row = probe::probe_plain(&plain);
    drop(plain);
    let tls = Server::start(kind, Options { tls: true, ..Options::default() });
    let (with, without) = probe::probe_tls_reuse(&tls);
    let shared = probe::probe_shared_session_cache(&tls);
    let own13 = probe::probe_uploads_own_cache(&tls, 6, false);
    let own12 = probe::probe_uploads_own_cache(&tls, 6, true);
    println!(
        "{}: 6 uploads on one FTPS connection with its own session cache: TLS 1.2 or 1.3: {own13:?}; TLS 1.2 only: {own12:?}",
        kind.name()
    );
    let reuse = match &without {
        Ok(()) => "not required".to_owned(),
        Err(e) => format!("required (without reuse: {e})"),
    };
    println!(
        "| {} | FTPS with reuse: {} | TLS reuse: {reuse} | REST+STOR: {} | APPE: {} | MFMT: {} | MLSD: {} | SIZE: {} \
         | RNTO over existing: {} | UTF-8 names: {} | data conn. with another control conn.'s ticket: {} |\nFEAT: {}",
        kind.name(),
        with.as_ref().map_or_else(|e| format!("FAILED ({e})"), |()| "ok".to_owned()),
        row.rest_stor,
        row.appe,
        row.mfmt,
        row.mlsd,
        row.size,
        row.rename_over,
        row.utf8_names,
        shared.as_ref().map_or_else(|e| format!("refused ({e})"), |()| "accepted".to_owned()),
        row.feat.join(" ")
    );
    assert!(with.is_ok(), "{}: an FTPS upload with TLS session reuse failed: {with:?}\n{}", kind.name(), tls.logs());
}

/// i. Over IPv6 (`::1`), plain FTP, with `--once`: passive (EPSV; PASV cannot carry an IPv6
/// address) or `--active` (EPRT), the small tree arrives identical, without a warning.
pub fn ipv6_tree(kind: Kind, active: bool) {
    let server = Server::start(kind, Options { ipv6: true, ..Options::default() });
    let job = Job::new(&server);
    let job = if active { job.args(&["--active"]) } else { job };
    small_tree(&job);
    write_file(&job.watch, "a b/é.txt", "é\n".as_bytes());
    job.once_ok(TIMEOUT, &server);
    assert_synced(&job, &server);
    assert_clean_log(&job, &server);
}

/// j. A drop folder handed over: `--remove-source --last '*.done' --temp-dir .incoming
/// --order name --chmod 640 --chmod-dirs 750 --on-upload HOOK` over one connection. Every
/// file arrives with mode 640 in directories of mode 750 (SITE CHMOD, checked on the
/// server's disk), no temporary name is ever left in REMOTE_DIR (uploads go to the staging
/// directory), the files of a directory are published in name order with the trigger
/// last, each local file is removed once uploaded, and the hook hears of each upload.
pub fn drop_folder(kind: Kind) {
    use std::os::unix::fs::PermissionsExt;

    let server = Server::start(kind, Options::default());
    let job = Job::new(&server);
    let hook = job.work.join("hook.sh");
    let heard = job.work.join("heard.txt");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s %s %s %s\\n' \"$FTPMONITOR_EVENT\" \"$FTPMONITOR_RELPATH\" \"$FTPMONITOR_REMOTE_PATH\" \
             \"$FTPMONITOR_SIZE\" >> {}\n",
            heard.display()
        ),
    )
    .expect("write the hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod the hook");
    let hook_arg = hook.to_str().expect("UTF-8 path").to_owned();
    let job = job.args(&[
        "--remove-source",
        "--last",
        "*.done",
        "--temp-dir",
        ".incoming",
        "--order",
        "name",
        "--chmod",
        "640",
        "--chmod-dirs",
        "750",
        "--parallel",
        "1",
        "--on-upload",
        &hook_arg,
    ]);
    // The trigger first: it is the oldest file, and still goes last.
    let mut files: Vec<(String, Vec<u8>)> = vec![("edi/out/batch.done".into(), b"".to_vec())];
    for i in (0..30).rev() {
        let rel = format!("edi/out/order{i:03}.xml");
        files.push((rel.clone(), format!("<order n=\"{i}\"/>\n").into_bytes()));
    }
    files.push(("scans/page1.pdf".into(), random_bytes(50_000)));
    for (rel, body) in &files {
        write_file(&job.watch, rel, body);
    }
    let mut daemon = job.spawn_foreground();
    let remote = server.remote_root();
    let arrived = || files.iter().all(|(rel, body)| std::fs::read(remote.join(rel)).ok().as_ref() == Some(body));
    daemon.wait_until(TIMEOUT, &server, "every file is on the server", arrived);
    let handed_over = || files_under(&job.watch).is_empty() && !job.watch.join("edi").exists();
    daemon.wait_until(TIMEOUT, &server, "every local file and directory is removed", handed_over);
    let heard_all = || std::fs::read_to_string(&heard).is_ok_and(|t| t.lines().count() >= files.len());
    daemon.wait_until(TIMEOUT, &server, "the hook heard of every upload", heard_all);
    let name = kind.name();

    // Nothing but the files, and the staging directory empty.
    let mut on_server = files_under(&remote);
    on_server.sort();
    let mut want: Vec<String> = files.iter().map(|(rel, _)| rel.clone()).collect();
    want.sort();
    assert_eq!(on_server, want, "{name}: the server holds other files than those handed over\n{}", job.diagnostics());
    assert!(remote.join(".incoming").is_dir(), "{name}: no staging directory");

    // Modes on the server's disk.
    let mode = |rel: &str| {
        std::fs::metadata(remote.join(rel))
            .map_or_else(|e| e.to_string(), |m| format!("{:o}", m.permissions().mode() & 0o7777))
    };
    for (rel, _) in &files {
        assert_eq!(mode(rel), "640", "{name}: {rel}\n{}", job.diagnostics());
    }
    for dir in ["edi", "edi/out", "scans"] {
        assert_eq!(mode(dir), "750", "{name}: directory {dir}\n{}", job.diagnostics());
    }

    // Publish order, from the log (one connection: the order of the lines is the server's).
    let log = job.log();
    let at = |rel: &str| {
        log.find(&format!(" - uploaded {rel} ("))
            .unwrap_or_else(|| panic!("{name}: no upload of {rel} in the log\n{}", job.diagnostics()))
    };
    let orders: Vec<usize> = (0..30).map(|i| at(&format!("edi/out/order{i:03}.xml"))).collect();
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "{name}: not published in name order\n{}", job.diagnostics());
    assert!(at("edi/out/batch.done") > orders[29], "{name}: the trigger was published before the data");

    let heard = std::fs::read_to_string(&heard).unwrap_or_default();
    for (rel, body) in &files {
        let line = format!("upload {rel} {REMOTE_DIR}/{rel} {}", body.len());
        assert!(heard.lines().any(|l| l == line), "{name}: the hook never heard {line:?}; it heard:\n{heard}");
    }
    assert_clean_log(&job, &server);
    drop(daemon);
}
