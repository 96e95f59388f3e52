//! TLS: the rustls configuration, and the end of an upload's data
//! connection, which must keep the TLS 1.3 ticket the server sent on it.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use suppaftp::rustls::ClientConfig;

use super::{Failure, Kind};

/// Builds the rustls configurations, TLS 1.3 and 1.2 and TLS 1.2 only (see
/// `Connector::tls12_only`): system roots plus `--ca-file`, read once and
/// shared by both, ring only (the test server's dependencies may enable a
/// second provider).
pub(super) fn tls_configs(ca_file: Option<&Path>) -> Result<(Arc<ClientConfig>, Arc<ClientConfig>), Failure> {
    use suppaftp::rustls::RootCertStore;
    use suppaftp::rustls::pki_types::CertificateDer;
    use suppaftp::rustls::pki_types::pem::PemObject;

    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| Failure::new(Kind::Tls, format!("cannot read CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Failure::new(Kind::Tls, format!("CA file {} holds no certificate", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| Failure::new(Kind::Tls, format!("CA file {}: {e}", path.display())))?;
        }
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(suppaftp::rustls::crypto::ring::default_provider());
    let config = |versions: &[&'static suppaftp::rustls::SupportedProtocolVersion]| {
        ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|e| Failure::new(Kind::Tls, format!("TLS set-up: {e}")))
            .map(|b| Arc::new(b.with_root_certificates(Arc::clone(&roots)).with_no_client_auth()))
    };
    Ok((config(suppaftp::rustls::DEFAULT_VERSIONS)?, config(&[&suppaftp::rustls::version::TLS12])?))
}

/// Ends an upload's TLS data connection in the order that loses nothing:
/// what is left of the data and a `close_notify` go out, our half of the
/// TCP connection is shut, and everything the server sends until it closes
/// its half is read through rustls.
///
/// A TLS 1.3 ticket resumes one connection only, and a server that hands
/// out tickets sends a fresh one on every resumed data connection, right
/// after the handshake. Listings read theirs; an upload only writes, so
/// without this its ticket would be lost, the data connections would run
/// out of tickets after two uploads, and servers that require session reuse
/// (vsftpd's `require_ssl_reuse`) would refuse the third. The server closes
/// the data connection once it has all of the file, so the ticket (if one
/// comes at all) is in hand by then: there is no time to guess, and a
/// server that sends none costs no wait. A server that does not close
/// within `wait` is left to the final reply on the control connection.
pub(super) fn close_upload(
    stream: &mut suppaftp::rustls::StreamOwned<suppaftp::rustls::ClientConnection, TcpStream>,
    wait: Duration,
    restore: Duration,
) -> UploadEnd {
    use std::io::Write as _;
    let mut end = UploadEnd { handshake: None, closed_by_server: false };
    // Flushing also completes the handshake, which an empty upload has
    // not started yet.
    if stream.flush().is_err() {
        return end;
    }
    end.handshake = stream.conn.handshake_kind();
    stream.conn.send_close_notify();
    while stream.conn.wants_write() {
        if !matches!(stream.conn.write_tls(&mut stream.sock), Ok(n) if n > 0) {
            return end;
        }
    }
    if stream.sock.shutdown(std::net::Shutdown::Write).is_err() || stream.sock.set_read_timeout(Some(wait)).is_err() {
        return end;
    }
    // Until the server's EOF or close_notify; an error or `wait` running
    // out ends it too.
    loop {
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) => {
                end.closed_by_server = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
        match stream.conn.process_new_packets() {
            Ok(state) if state.peer_has_closed() => {
                end.closed_by_server = true;
                break;
            }
            Ok(_) if !stream.conn.wants_write() => {}
            _ => break,
        }
    }
    let _ = stream.sock.set_read_timeout(Some(restore));
    end
}

/// How the end of an upload's TLS data connection went (see
/// [`close_upload`]), for the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct UploadEnd {
    /// How the connection's handshake went (`None`: it never completed).
    pub(super) handshake: Option<suppaftp::rustls::HandshakeKind>,
    /// The server closed the connection (EOF or close_notify) within the
    /// wait: nothing was left to chance.
    pub(super) closed_by_server: bool,
}

impl std::fmt::Display for UploadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use suppaftp::rustls::HandshakeKind;
        f.write_str(match self.handshake {
            Some(HandshakeKind::Resumed) => "resumed the session",
            Some(HandshakeKind::Full) => "a full handshake",
            Some(HandshakeKind::FullWithHelloRetryRequest) => "a full handshake after a retry request",
            None => "no complete handshake",
        })?;
        f.write_str(if self.closed_by_server {
            "; the server closed it"
        } else {
            "; the server had not closed it when the wait ended"
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener};
    use std::thread::JoinHandle;
    use std::time::Instant;

    use suppaftp::rustls::pki_types::pem::PemObject;
    use suppaftp::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use suppaftp::rustls::{ClientConnection, HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

    use super::*;

    const CERT: &str = include_str!("testdata/server.pem");
    const KEY: &str = include_str!("testdata/server.key");

    /// A TLS 1.3 server that sends `tickets` tickets after every handshake.
    fn server_config(tickets: usize) -> Arc<ServerConfig> {
        let certs = CertificateDer::pem_slice_iter(CERT.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(suppaftp::rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&suppaftp::rustls::version::TLS13])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        config.send_tls13_tickets = tickets;
        Arc::new(config)
    }

    /// Takes `n` connections one after the other. The first is greeted with
    /// a line (a control connection: the client reads its tickets with it);
    /// on every one the server reads until the client's close_notify or EOF,
    /// then closes. Returns the bytes received on each.
    fn serve(config: Arc<ServerConfig>, n: usize) -> (SocketAddr, JoinHandle<Vec<usize>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            (0..n)
                .map(|i| {
                    let (tcp, _) = listener.accept().unwrap();
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut tls = StreamOwned::new(ServerConnection::new(Arc::clone(&config)).unwrap(), tcp);
                    if i == 0 {
                        tls.write_all(b"220 hello\r\n").unwrap();
                    }
                    let mut got = Vec::new();
                    let _ = tls.read_to_end(&mut got);
                    tls.conn.send_close_notify();
                    let _ = tls.conn.write_tls(&mut tls.sock);
                    got.len()
                })
                .collect()
        });
        (addr, thread)
    }

    /// The client side of one control connection's TLS: its own session store.
    fn client_config(dir: &Path) -> Arc<ClientConfig> {
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, include_str!("testdata/ca.pem")).unwrap();
        let mut config = (*tls_configs(Some(&ca)).unwrap().0).clone();
        let store = Arc::new(suppaftp::rustls::client::ClientSessionMemoryCache::new(8));
        config.resumption = suppaftp::rustls::client::Resumption::store(store);
        Arc::new(config)
    }

    fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
        let name = ServerName::try_from("localhost").unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        StreamOwned::new(ClientConnection::new(Arc::clone(config), name).unwrap(), tcp)
    }

    #[test]
    fn an_upload_to_a_server_that_sends_no_ticket_ends_when_the_server_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, server) = serve(server_config(0), 1);
        let mut data = connect(&client_config(dir.path()), addr);
        data.write_all(&[7u8; 4096]).unwrap();
        let started = Instant::now();
        let end = close_upload(&mut data, Duration::from_secs(10), Duration::from_secs(10));
        // It waited for the server's close, not for a ticket until `wait` ran out.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(end, UploadEnd { handshake: Some(HandshakeKind::Full), closed_by_server: true });
        assert_eq!(server.join().unwrap(), vec![4096]);
    }

    #[test]
    fn every_upload_data_connection_resumes_with_the_ticket_of_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        // One ticket per handshake: each upload must keep the one it got.
        let (addr, server) = serve(server_config(1), 5);
        let config = client_config(dir.path());
        let mut control = connect(&config, addr);
        let mut line = [0u8; 11];
        control.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"220 hello\r\n");
        close_upload(&mut control, Duration::from_secs(10), Duration::from_secs(10));
        let kinds: Vec<_> = (0..4)
            .map(|_| {
                let mut data = connect(&config, addr);
                data.write_all(&[1u8; 10_000]).unwrap();
                close_upload(&mut data, Duration::from_secs(10), Duration::from_secs(10)).handshake
            })
            .collect();
        assert_eq!(kinds, vec![Some(HandshakeKind::Resumed); 4]);
        assert_eq!(server.join().unwrap(), vec![0, 10_000, 10_000, 10_000, 10_000]);
    }
}
