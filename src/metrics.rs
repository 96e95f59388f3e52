//! `--metrics-addr`: Prometheus metrics (the OpenMetrics text format, by
//! prometheus-client) at `/metrics`, served by tiny_http on a thread of its
//! own that sleeps in `accept` while nobody scrapes.
//!
//! The counters (uploads, bytes, failures by reason) are atomics the loop
//! adds to as outcomes arrive; the connections are counted by the workers.
//! What the journal knows (files synced, pending, the oldest pending, the
//! last success, the server's state) is read at each scrape through a
//! read-only connection of the scrape's own, as `ftpmonitor status` reads
//! it: a scrape never waits for the loop, and the loop never for a scrape.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::event::{Done, Outcome};
use crate::ftp::Kind;
use crate::journal::{now_secs, read_status};

/// What the loop counts, shared with the scrape thread (clones share the values).
#[derive(Clone, Default)]
pub struct Counters {
    uploads: Counter,
    upload_bytes: Counter,
    failures: Family<Vec<(String, String)>, Counter>,
}

impl Counters {
    /// Counts a finished job.
    pub fn outcome(&self, outcome: &Outcome) {
        match &outcome.result {
            Ok(Done::Uploaded(u)) => {
                self.uploads.inc();
                self.upload_bytes.inc_by(u.bytes);
            }
            Ok(_) => {}
            // Shutdown is not a failure.
            Err(f) if f.kind == Kind::Aborted => {}
            Err(f) => {
                self.failures.get_or_create(&vec![("reason".to_string(), reason(f.kind).to_string())]).inc();
            }
        }
    }
}

/// The `reason` label of a failure.
fn reason(kind: Kind) -> &'static str {
    match kind {
        Kind::Connection => "connection",
        Kind::Data => "data_connection",
        Kind::Login => "login",
        Kind::Tls => "tls",
        Kind::Transient => "server_temporary",
        Kind::Refused => "server_refused",
        Kind::Local | Kind::LocalBroken => "local_read",
        Kind::Vanished => "local_gone",
        Kind::Changed => "changed_while_read",
        Kind::Aborted => "aborted",
    }
}

/// What the scrape thread needs.
pub struct Source {
    pub counters: Counters,
    /// Sessions logged in now (the workers count them).
    pub connected: Arc<AtomicUsize>,
    pub state_dir: PathBuf,
    /// The job's row in the journal.
    pub job: i64,
}

/// Listens on `addr` and serves `/metrics` from a thread of its own until
/// the process exits.
pub fn serve(addr: SocketAddr, source: Source) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    std::thread::Builder::new()
        .name("metrics".to_string())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" || request.url().starts_with("/metrics?") {
                    let body = source.scrape();
                    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                    match tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()) {
                        Ok(h) => tiny_http::Response::from_string(body).with_header(h),
                        Err(()) => tiny_http::Response::from_string(body),
                    }
                } else {
                    tiny_http::Response::from_string("ftpmonitor: metrics are at /metrics\n").with_status_code(404)
                };
                // A scraper that went away is its own business.
                let _ = request.respond(response);
            }
        })
        .map_err(|e| format!("--metrics-addr {addr}: cannot start its thread: {e}"))?;
    Ok(bound)
}

impl Source {
    /// The metrics now, as OpenMetrics text.
    fn scrape(&self) -> String {
        let mut registry = Registry::with_prefix("ftpmonitor");
        registry.register("uploads", "Files uploaded and verified", self.counters.uploads.clone());
        registry.register("upload_bytes", "Bytes of files uploaded and verified", self.counters.upload_bytes.clone());
        registry.register("failures", "Failed operations, by reason", self.counters.failures.clone());
        let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
            let g: Gauge = Gauge::default();
            g.set(value);
            registry.register(name, help, g);
        };
        let connected = i64::try_from(self.connected.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        gauge(&mut registry, "connections", "FTP sessions logged in now", connected);
        // What the journal knows; left out if it cannot be read now.
        let job = read_status(&self.state_dir).ok().and_then(|jobs| jobs.into_iter().find(|j| j.id == self.job));
        if let Some(j) = job {
            let now = now_secs();
            gauge(&mut registry, "files_synced", "Files the journal knows on the server", j.synced);
            gauge(&mut registry, "pending_files", "Operations queued, cooling down or retrying", j.pending);
            let oldest = j.oldest_pending_at.map_or(0, |t| (now - t).max(0));
            gauge(&mut registry, "oldest_pending_seconds", "How long the oldest pending operation has waited", oldest);
            gauge(
                &mut registry,
                "last_success_timestamp_seconds",
                "When the last upload was verified (Unix time), 0 if none yet",
                j.last_upload_at.unwrap_or(0),
            );
            gauge(
                &mut registry,
                "server_up",
                "1 while the server is reachable",
                i64::from(j.server_down_since.is_none()),
            );
        }
        let mut out = String::new();
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
