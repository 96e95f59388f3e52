//! Pipelining: which servers get several commands in one write, the
//! follow-up checks of an upload sent together, and the fallback to one
//! command at a time once a server answers out of step.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use suppaftp::FtpError;

use super::reply::{Reply, reply_number};
use super::{Failure, Session};
use crate::relpath::Escaped;

/// Whether the server that sent `greeting` is one known to read commands
/// strictly one after the other, so that several can be sent at once:
/// pure-ftpd, vsftpd and ProFTPD, each tested by the interop suite. Others
/// get one command per round trip; libunftp, for one, runs RNFR in a task
/// of its own and can answer a pipelined RNTO before it.
pub(super) fn takes_pipelines(greeting: &str) -> bool {
    ["Pure-FTPd", "vsFTPd", "ProFTPD"].iter().any(|name| greeting.contains(name))
}

/// The outcome of SIZE (the size) and MFMT after an upload, each `None` when
/// it was not sent.
pub(super) type Checks = (Option<Result<u64, FtpError>>, Option<Result<(), FtpError>>);

impl Session {
    /// Sends `cmds` in one write and reads their replies, one per command,
    /// in order. Cuts the round trips of an upload's follow-up commands on
    /// servers that read commands one after the other (see
    /// [`takes_pipelines`]). Any trouble reading the replies leaves the
    /// session out of step with suppaftp's reader, so it is marked broken.
    pub(super) fn pipeline(&mut self, cmds: &[String]) -> Result<Vec<Reply>, Failure> {
        self.send_raw(cmds)?;
        self.read_raw(cmds.len(), &cmds.join(", "))
    }

    /// SIZE and MFMT of a fresh upload, both about the temporary file, in
    /// one round trip where the session pipelines (`None`: send them one by
    /// one).
    pub(super) fn pipelined_checks(&mut self, tmp: &str, mtime: Option<&str>) -> Result<Option<Checks>, Failure> {
        if !self.pipelines() || (!self.features.size && mtime.is_none()) {
            return Ok(None);
        }
        let mut cmds = Vec::with_capacity(2);
        if self.features.size {
            cmds.push(format!("SIZE {tmp}"));
        }
        if let Some(ts) = mtime {
            cmds.push(format!("MFMT {ts} {tmp}"));
        }
        let mut replies = self.pipeline(&cmds)?.into_iter();
        let size = if self.features.size {
            match replies.next() {
                Some(r) if r.is(2) => match reply_number(&r.text) {
                    Some(n) => Some(Ok(n)),
                    // Not a size: not SIZE's reply.
                    None => return Ok(self.out_of_step(&[&r])),
                },
                Some(r) => Some(Err(r.into_error())),
                None => return Ok(self.out_of_step(&[])),
            }
        } else {
            None
        };
        let mfmt = replies.next().map(|r| if r.is(2) { Ok(()) } else { Err(r.into_error()) });
        Ok(Some((size, mfmt)))
    }

    /// The server answered a pipeline in a way that only makes sense if it
    /// did not take the commands in order: no session of this job pipelines
    /// again, and the caller sends the commands again one at a time.
    pub(super) fn out_of_step<T>(&mut self, replies: &[&Reply]) -> Option<T> {
        if !self.pipeline_off.swap(true, Ordering::Relaxed) {
            let said: Vec<String> =
                replies.iter().map(|r| Escaped(String::from_utf8_lossy(&r.text).trim_end()).to_string()).collect();
            log::info!(
                "the server answered commands sent together out of step ({}); sending them one at a time from now on",
                said.join(" / ")
            );
        }
        None
    }

    /// Gives the session the count of jobs waiting for a worker: a rename
    /// asks for the next upload's port only while there is work waiting, so a
    /// single upload now and then leaves no unused listener on the server.
    pub fn expect_more_uploads(&mut self, waiting: Arc<std::sync::atomic::AtomicUsize>) {
        self.jobs_waiting = Some(waiting);
    }

    /// Whether this session sends commands in pipelines.
    pub fn pipelines(&self) -> bool {
        self.pipelining && !self.pipeline_off.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_servers_known_to_read_commands_in_order_get_them_together() {
        assert!(takes_pipelines("---------- Welcome to Pure-FTPd [privsep] [TLS] ----------"));
        assert!(takes_pipelines("(vsFTPd 3.0.3)"));
        assert!(takes_pipelines("ProFTPD Server (Debian) [::ffff:127.0.0.1]"));
        assert!(!takes_pipelines("Welcome to unFTP"));
        assert!(!takes_pipelines("FileZilla Server 1.8.0"));
    }
}
