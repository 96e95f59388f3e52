//! TLS: the rustls configuration, and a session store per control
//! connection that counts the TLS 1.3 tickets its data connections need.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use suppaftp::rustls::ClientConfig;

use super::{Failure, Kind};

/// Builds the rustls configuration: system roots plus `--ca-file`, ring only
/// (the test server's dependencies may enable a second provider).
pub(super) fn tls_config(ca_file: Option<&Path>, tls12_only: bool) -> Result<Arc<ClientConfig>, Failure> {
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
    let provider = Arc::new(suppaftp::rustls::crypto::ring::default_provider());
    let versions: &[&suppaftp::rustls::SupportedProtocolVersion] =
        if tls12_only { &[&suppaftp::rustls::version::TLS12] } else { suppaftp::rustls::DEFAULT_VERSIONS };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Failure::new(Kind::Tls, format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS session store for one control connection and its data connections,
/// counting the TLS 1.3 tickets it receives.
///
/// A TLS 1.3 ticket resumes one connection only, and the server hands out a
/// new one on every resumed data connection. Listings read theirs; an upload
/// only writes, so after it [`absorb_tickets`] reads the ticket the server
/// sent, or the data connections would run out of tickets after two uploads
/// and servers that require session reuse would refuse the third.
#[derive(Debug)]
pub(super) struct SessionStore {
    inner: suppaftp::rustls::client::ClientSessionMemoryCache,
    tls13_tickets: std::sync::atomic::AtomicUsize,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self {
            inner: suppaftp::rustls::client::ClientSessionMemoryCache::new(8),
            tls13_tickets: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl suppaftp::rustls::client::ClientSessionStore for SessionStore {
    fn set_kx_hint(
        &self,
        server_name: suppaftp::rustls::pki_types::ServerName<'static>,
        group: suppaftp::rustls::NamedGroup,
    ) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(
        &self,
        server_name: &suppaftp::rustls::pki_types::ServerName<'_>,
    ) -> Option<suppaftp::rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: suppaftp::rustls::pki_types::ServerName<'static>,
        value: suppaftp::rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &suppaftp::rustls::pki_types::ServerName<'_>,
    ) -> Option<suppaftp::rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &suppaftp::rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: suppaftp::rustls::pki_types::ServerName<'static>,
        value: suppaftp::rustls::client::Tls13ClientSessionValue,
    ) {
        self.tls13_tickets.fetch_add(1, Ordering::Relaxed);
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &suppaftp::rustls::pki_types::ServerName<'static>,
    ) -> Option<suppaftp::rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// After an upload over TLS 1.3, reads what the server sent on the data
/// connection (its new session ticket) before the connection is closed.
/// Waits up to `wait` for it; returns whether a ticket arrived.
pub(super) fn absorb_tickets(
    stream: &mut suppaftp::rustls::StreamOwned<suppaftp::rustls::ClientConnection, TcpStream>,
    store: &SessionStore,
    wait: Duration,
    restore: Duration,
) -> bool {
    let before = store.tls13_tickets.load(Ordering::Relaxed);
    // Flushing completes the handshake, which an empty upload has not
    // started yet: only then is the protocol version known.
    let _ = std::io::Write::flush(stream);
    if stream.conn.protocol_version() != Some(suppaftp::rustls::ProtocolVersion::TLSv1_3) {
        return false;
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        if store.tls13_tickets.load(Ordering::Relaxed) > before {
            break;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).is_err() {
            break;
        }
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if stream.conn.process_new_packets().is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.sock.set_read_timeout(Some(restore));
    store.tls13_tickets.load(Ordering::Relaxed) > before
}
