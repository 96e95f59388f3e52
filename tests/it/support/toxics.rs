//! Faults a [`FtpProxy`](super::FtpProxy) can inject, as [`Behaviour`]s to reuse across tests.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::proxy::{Behaviour, DataLink};

/// Whether a data connection's verb sends a file to the server.
pub fn is_store_verb(verb: &str) -> bool {
    matches!(verb, "STOR" | "APPE")
}

/// What [`StallFirstUpload`] did, and the switch that ends its stall.
#[derive(Default)]
pub struct StallState {
    /// Set once the first upload's data connection was picked to stall.
    pub picked: AtomicBool,
    /// Set once that connection carried its bytes and is held.
    pub held: AtomicBool,
    /// Set by the test: the held connection is closed on both sides (the server then ends
    /// the STOR with what it got).
    pub release: AtomicBool,
}

/// A server that stalls in the middle of the first upload: the first data connection of a
/// STOR (or APPE) gets `after` bytes through to the server; then the proxy neither reads nor
/// writes nor closes either side until it is dropped, or [`StallState::release`] is set.
/// Everything else passes unchanged.
///
/// Its receive buffers are small: a client that sends more than its own send buffer holds
/// (at most 4 MiB by default on Linux) past the stall blocks in a write.
pub struct StallFirstUpload {
    after: usize,
    state: Arc<StallState>,
}

impl StallFirstUpload {
    pub fn new(after: usize, state: &Arc<StallState>) -> StallFirstUpload {
        StallFirstUpload { after, state: Arc::clone(state) }
    }
}

impl Behaviour for StallFirstUpload {
    fn data_receive_buffer(&self) -> Option<usize> {
        Some(64 * 1024)
    }

    fn data(&self, link: &DataLink) {
        link.relay_download();
        let (mut from_client, mut to_server) = (&link.client, &link.server);
        let mut buf = vec![0u8; 64 * 1024];
        let mut stall: Option<bool> = None;
        let mut forwarded = 0;
        loop {
            let n = match from_client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // The client wrote: it sent the command this connection belongs to.
            let stall = *stall
                .get_or_insert_with(|| is_store_verb(&link.verb()) && !self.state.picked.swap(true, Ordering::SeqCst));
            let chunk = if stall { &buf[..n.min(self.after - forwarded)] } else { &buf[..n] };
            if to_server.write_all(chunk).is_err() {
                break;
            }
            forwarded += chunk.len();
            if stall && forwarded >= self.after {
                self.state.held.store(true, Ordering::SeqCst);
                // Silent, both sockets open, until the proxy is dropped or the test releases it.
                while !link.stopping() && !self.state.release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = link.client.shutdown(Shutdown::Both);
                let _ = link.server.shutdown(Shutdown::Both);
                return;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    }
}
