//! What a server does with the commands ftpmonitor relies on, asked directly with
//! suppaftp (the client library ftpmonitor uses) and checked on the server's disk:
//! FEAT, MFMT, MLSD, SIZE, resume (REST+STOR, APPE), RNTO onto an existing file, and for
//! FTPS whether the server insists on TLS session reuse on data connections.
//! The `compat_probe` tests print one table row per server for tests/interop/RESULTS.md.

use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use suppaftp::rustls::ClientConfig;
use suppaftp::rustls::RootCertStore;
use suppaftp::rustls::client::Resumption;
use suppaftp::rustls::pki_types::CertificateDer;
use suppaftp::rustls::pki_types::pem::PemObject;
use suppaftp::types::FileType;
use suppaftp::{FtpError, RustlsConnector, RustlsFtpStream, Status};

use super::servers::Server;

const T: Duration = Duration::from_secs(20);

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), T).expect("connect");
    s.set_read_timeout(Some(T)).expect("timeout");
    s.set_write_timeout(Some(T)).expect("timeout");
    s
}

/// A plain-FTP session, logged in, binary, passive (EPSV).
pub fn plain_session(server: &Server) -> RustlsFtpStream {
    let mut ftp = RustlsFtpStream::connect_with_stream(tcp(server.port)).expect("greeting");
    ftp.login(server.user.as_str(), server.password.as_str()).expect("login");
    ftp.transfer_type(FileType::Binary).expect("TYPE I");
    ftp.set_mode(suppaftp::Mode::ExtendedPassive);
    ftp
}

fn tls_config(ca: &Path, resumption: bool) -> Arc<ClientConfig> {
    tls_config_versions(ca, resumption, false)
}

/// `tls12_only`: offer TLS 1.2 only.
fn tls_config_versions(ca: &Path, resumption: bool, tls12_only: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(suppaftp::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&suppaftp::rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut config = builder.expect("TLS versions").with_root_certificates(roots).with_no_client_auth();
    if !resumption {
        config.resumption = Resumption::disabled();
    }
    Arc::new(config)
}

/// An FTPS session (AUTH TLS, PROT P); `resumption: false` makes every data connection a
/// full handshake, which servers requiring session reuse refuse.
pub fn tls_session(server: &Server, resumption: bool) -> Result<RustlsFtpStream, FtpError> {
    let pki = server.pki.as_ref().expect("a TLS server");
    tls_session_with(server, tls_config(&pki.ca, resumption))
}

/// An FTPS session with the given client configuration (and so its session cache).
pub fn tls_session_with(server: &Server, config: Arc<ClientConfig>) -> Result<RustlsFtpStream, FtpError> {
    let ftp = RustlsFtpStream::connect_with_stream(tcp(server.port))?;
    let mut ftp = ftp.into_secure(RustlsConnector::from(config), "localhost")?;
    ftp.login(server.user.as_str(), server.password.as_str())?;
    ftp.transfer_type(FileType::Binary)?;
    ftp.set_mode(suppaftp::Mode::ExtendedPassive);
    Ok(ftp)
}

fn short(e: &FtpError) -> String {
    match e {
        FtpError::UnexpectedResponse(r) => {
            String::from_utf8_lossy(&r.body).lines().next().unwrap_or_default().trim().to_owned()
        }
        other => other.to_string().lines().next().unwrap_or_default().to_owned(),
    }
}

fn put(ftp: &mut RustlsFtpStream, name: &str, bytes: &[u8]) -> Result<u64, FtpError> {
    ftp.put_file(name, &mut Cursor::new(bytes.to_vec()))
}

/// One row of the compatibility table.
#[derive(Debug, Default)]
pub struct Row {
    pub feat: Vec<String>,
    pub size: String,
    pub mfmt: String,
    pub mlsd: String,
    pub rest_stor: String,
    pub appe: String,
    pub rename_over: String,
    pub utf8_names: String,
}

/// Asks a plain-FTP server; files go to `probe/` below its root.
pub fn probe_plain(server: &Server) -> Row {
    let mut ftp = plain_session(server);
    let dir = server.root.join("probe");
    ftp.mkdir("probe").expect("MKD probe");
    ftp.cwd("probe").expect("CWD probe");
    let mut row = Row::default();
    let feat = ftp.feat().expect("FEAT");
    let mut keys: Vec<String> = feat.keys().map(|k| k.to_uppercase()).collect();
    keys.sort();
    row.feat = keys;
    let has = |k: &str| row.feat.iter().any(|f| f == k);

    put(&mut ftp, "c.txt", b"0123456789").expect("STOR c.txt");
    row.size = match ftp.size("c.txt") {
        Ok(10) => "yes".into(),
        Ok(n) => format!("wrong ({n})"),
        Err(e) => format!("no ({})", short(&e)),
    };

    // MFMT: does the file's mtime on disk change?
    row.mfmt = match ftp.custom_command("MFMT 20200102030405 c.txt", &[Status::File]) {
        Ok(_) => {
            let mtime = std::fs::metadata(dir.join("c.txt")).and_then(|m| m.modified()).expect("mtime");
            let want = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_934_245);
            if mtime == want { "yes".into() } else { format!("answered, mtime {mtime:?}") }
        }
        Err(e) => format!("no ({})", short(&e)),
    };

    row.mlsd = match ftp.mlsd(None) {
        Ok(lines) if lines.iter().any(|l| l.ends_with(" c.txt")) => {
            format!("yes{}", if has("MLSD") { "" } else { " (FEAT lists only MLST)" })
        }
        Ok(lines) => format!("odd ({} lines)", lines.len()),
        Err(e) => format!("no ({})", short(&e)),
    };

    // REST 4 + STOR: resume at offset 4
    ftp.resume_transfer(4).expect("REST");
    row.rest_stor = match put(&mut ftp, "c.txt", b"xyz") {
        Ok(_) => match std::fs::read(dir.join("c.txt")).unwrap_or_default().as_slice() {
            b"0123xyz" => "yes (truncates at the offset)".into(),
            b"0123xyz789" => "yes (writes in place, no truncation)".into(),
            other => format!("odd: {:?}", String::from_utf8_lossy(other)),
        },
        Err(e) => format!("no ({})", short(&e)),
    };
    put(&mut ftp, "d.txt", b"0123").expect("STOR d.txt");
    row.appe = match ftp.append_file("d.txt", &mut Cursor::new(b"ABC".to_vec())) {
        Ok(_) => match std::fs::read(dir.join("d.txt")).unwrap_or_default().as_slice() {
            b"0123ABC" => "yes".into(),
            other => format!("odd: {:?}", String::from_utf8_lossy(other)),
        },
        Err(e) => format!("no ({})", short(&e)),
    };

    put(&mut ftp, "old.txt", b"old").expect("STOR old.txt");
    put(&mut ftp, "new.txt", b"new").expect("STOR new.txt");
    row.rename_over = match ftp.rename("new.txt", "old.txt") {
        Ok(()) => match std::fs::read(dir.join("old.txt")).unwrap_or_default().as_slice() {
            b"new" => "yes".into(),
            other => format!("odd: {:?}", String::from_utf8_lossy(other)),
        },
        Err(e) => format!("refused ({})", short(&e)),
    };

    row.utf8_names = match put(&mut ftp, "é中 x.txt", b"u") {
        Ok(_) if dir.join("é中 x.txt").is_file() => "yes (bytes kept)".into(),
        Ok(_) => "stored under another name".into(),
        Err(e) => format!("no ({})", short(&e)),
    };
    let _ = ftp.quit();
    row
}

/// One upload on a fresh FTPS connection with TLS session resumption (what ftpmonitor
/// does) and one without (every data connection a full handshake): the second fails on
/// servers that require session reuse. The errors are the servers' replies.
pub fn probe_tls_reuse(server: &Server) -> (Result<(), String>, Result<(), String>) {
    let with = tls_session(server, true)
        .and_then(|mut ftp| {
            let r = put(&mut ftp, "reuse.txt", b"with reuse").map(|_| ());
            let _ = ftp.quit();
            r
        })
        .map_err(|e| short(&e));
    let without = tls_session(server, false)
        .and_then(|mut ftp| {
            let r = put(&mut ftp, "noreuse.txt", b"without reuse").map(|_| ());
            let _ = ftp.quit();
            r
        })
        .map_err(|e| short(&e));
    (with, without)
}

/// Two control connections that share one rustls `ClientConfig` (so one session cache, as
/// ftpmonitor's sessions do): A logs in, then B, then A uploads. rustls offers A's data
/// connection the newest ticket for the host name, which B's handshake left. `Ok` when the
/// server accepts that data connection.
pub fn probe_shared_session_cache(server: &Server) -> Result<(), String> {
    let pki = server.pki.as_ref().expect("a TLS server");
    let config = tls_config(&pki.ca, true);
    let mut a = tls_session_with(server, Arc::clone(&config)).map_err(|e| short(&e))?;
    let mut b = tls_session_with(server, config).map_err(|e| short(&e))?;
    let r = put(&mut a, "shared-a.txt", b"a").map(|_| ()).map_err(|e| short(&e));
    let _ = a.quit();
    let _ = b.quit();
    r
}

/// One control connection with its own session cache (nobody else's tickets) uploads
/// `n` small files in a row; how many data connections the server accepted, and the
/// first refusal.
pub fn probe_uploads_own_cache(server: &Server, n: usize, tls12_only: bool) -> (usize, Option<String>) {
    let pki = server.pki.as_ref().expect("a TLS server");
    let mut ftp = match tls_session_with(server, tls_config_versions(&pki.ca, true, tls12_only)) {
        Ok(ftp) => ftp,
        Err(e) => return (0, Some(short(&e))),
    };
    let mut ok = 0;
    let mut first_err = None;
    for i in 0..n {
        match put(&mut ftp, &format!("own-{i}.txt"), b"x") {
            Ok(_) => ok += 1,
            Err(e) => {
                first_err.get_or_insert_with(|| format!("upload {}: {}", i + 1, short(&e)));
            }
        }
    }
    let _ = ftp.quit();
    (ok, first_err)
}
