//! The atomic upload: the local file opened without following a link, sent
//! to a temporary name (resumed where the server supports it), checked, and
//! renamed over the final name.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use suppaftp::{FtpError, Status};

use super::names::temp_name;
use super::reply::reply_line;
use super::send::{SendError, Sent, Source};
use super::session::open_data;
use super::tls::close_upload;
use super::{Failure, Kind, Session, Uploaded, classify, describe_io};
use crate::config::TEMP_SUFFIX;
use crate::localfs::{FileKind, OpenError, Stamp, Tree};
use crate::relpath::{Escaped, RelPath};

/// How long a passive port asked for ahead of an upload is used (see
/// `Session::ready_port`): a server may close an unused one after a while.
const READY_PORT_TTL: Duration = Duration::from_secs(2);

/// How long the end of a TLS upload waits for the server to close the data
/// connection (see `close_upload`), as long as suppaftp waits for it.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The connect timeout for such a port (see `Session::store_raw`).
const KEPT_PORT_CONNECT: Duration = Duration::from_secs(3);

/// The longest pause between two looks at an upload's send queue (see
/// `wait_sent`).
#[cfg(target_os = "linux")]
const DRAIN_POLL_MAX: Duration = Duration::from_millis(20);

/// Names and paths longer than this get a hint when the server refuses them.
const LONG: usize = 200;

/// A refusal of the upload to the long name or path `target` says that it
/// is long: most servers answer "file not found" or "cannot create" then,
/// not "name too long". (The temporary name always fits in
/// [`super::NAME_MAX`] bytes: it is the final name or path the server does
/// not take.)
fn long_name_hint(mut f: Failure, target: &str) -> Failure {
    let name = target.rsplit('/').next().unwrap_or(target);
    if f.kind == Kind::Refused && matches!(f.code, Some(550 | 553)) && (name.len() > LONG || target.len() > LONG) {
        f.message = format!(
            "{}; the name is {} bytes long and the path {}: the server may not take names or paths that long",
            f.message,
            name.len(),
            target.len()
        );
    }
    f
}

/// `YYYYMMDDHHMMSS` in UTC, for MFMT.
fn mfmt_time(t: SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dt = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

impl Session {
    /// Uploads `rel` of `tree` (opened without following a link in any
    /// component) to `rel` below REMOTE_DIR: to a temporary name in the target directory,
    /// then renamed over the final name, so readers never see a partial file.
    /// Before the rename the local file must be unchanged and, where the
    /// server has SIZE, the remote size must match; MFMT sets the remote
    /// mtime where the server has it.
    ///
    /// `resume` is the local file's stamp at an earlier attempt that broke
    /// off: if the file is still exactly that, the server supports REST and
    /// SIZE, the transfer continues where the temporary file ends.
    pub fn upload(
        &mut self,
        tree: &Tree,
        rel: &RelPath,
        abort: &AtomicBool,
        resume: Option<Stamp>,
        snapshot: bool,
    ) -> Result<Uploaded, Failure> {
        let final_path = self.remote(rel.as_str());
        let dir = rel.parent().map_or_else(|| self.remote_dir.clone(), |p| self.remote(p));
        let mut tmp = self.temp_path(rel, &dir, self.visible_temp.load(Ordering::Relaxed));

        let mut ready = self.ready_port.take().filter(|(_, at)| at.elapsed() < READY_PORT_TTL).map(|(addr, _)| addr);
        let (file, before) = open_regular(tree, rel)?;

        let created = self.created.len();
        self.ensure_staging()?;
        self.ensure_dir(&dir)?;
        if self.created.len() != created {
            // A directory was made in between: ask for a port again rather
            // than count on every server keeping its listener across MKD.
            ready = None;
        }
        let offset = if resume == Some(before) { self.resume_offset(&tmp, before.len) } else { 0 };
        if offset > 0 {
            log::info!("resuming {rel} at byte {offset} of {}", before.len);
        }
        let stored = match self.store(&tmp, &file, before.len, abort, offset, ready) {
            Err(f) if f.code == Some(553) || (f.code == Some(550) && f.kind == Kind::Refused) => {
                // The directory may have been removed behind our back.
                self.forget_dir(&dir);
                if let Some(staging) = self.staging().map(str::to_string) {
                    self.forget_dir(&staging);
                    self.ensure_staging()?;
                }
                self.ensure_dir(&dir)?;
                match self.store(&tmp, &file, before.len, abort, 0, None) {
                    // Some servers refuse names that start with a dot
                    // (pure-ftpd -x): use a visible temporary name then.
                    Err(f)
                        if f.code == Some(553)
                            && self.staging().is_none()
                            && tmp != temp_name(&dir, rel.file_name(), true) =>
                    {
                        let hidden = std::mem::replace(&mut tmp, temp_name(&dir, rel.file_name(), true));
                        let r = self.store(&tmp, &file, before.len, abort, 0, None);
                        // Only if the visible name is taken was it the dot that
                        // the server refused (a 553 also says "permission
                        // denied"): hidden names stay the rule otherwise.
                        if r.is_ok() && !self.visible_temp.swap(true, Ordering::Relaxed) {
                            log::info!(
                                "the server refuses the temporary name {} ({f}) and takes {}; temporary uploads \
                                 are named NAME{TEMP_SUFFIX} from now on",
                                Escaped(&hidden),
                                Escaped(&tmp)
                            );
                        }
                        r
                    }
                    other => other,
                }
            }
            other => other,
        };
        let (bytes, blake3) = stored.map_err(|mut f| {
            if f.no_room {
                // What arrived fills the server's disk: it goes, and the file
                // is sent from the start once there is room.
                f.message = format!("{}: the server has no room for {rel} (a full disk or a quota)", f.message);
                self.discard(&tmp, &f);
            } else if matches!(f.kind, Kind::Connection | Kind::Data | Kind::Transient) && self.features.rest {
                // Keep what arrived: the next attempt can continue from it.
                f.partial = Some(before);
            } else {
                self.discard(&tmp, &f);
            }
            long_name_hint(f, &final_path)
        })?;

        // Still the same regular file of the tree (not one behind a link)?
        // Asked by name, not of the open file: a file deleted or replaced
        // while it was read is not published (a delete meanwhile would
        // otherwise leave the old copy on the server with --delete; the
        // fault suite's "changed while uploading" scenario catches that).
        let after = tree.lstat(Path::new(rel.as_str())).ok().flatten().filter(|m| m.kind == FileKind::File);
        let after = after.map(|m| m.stamp());
        if (after != Some(before) || bytes != before.len) && !snapshot {
            let r = self.ftp.rm(&tmp).map(drop);
            self.note(r);
            return Err(Failure::new(Kind::Changed, format!("{rel} changed while it was uploaded")));
        }
        let mtime = before.mtime.filter(|_| self.features.mfmt).map(mfmt_time);
        let (size, mfmt) = match self.pipelined_checks(&tmp, mtime.as_deref())? {
            Some(replies) => replies,
            None => {
                let size = self.features.size.then(|| self.ftp.size(&tmp).map(|n| n as u64));
                let mfmt = mtime
                    .as_ref()
                    .map(|ts| self.ftp.custom_command(format!("MFMT {ts} {tmp}"), &[Status::File]).map(drop));
                (size, mfmt)
            }
        };
        match size {
            None => {}
            Some(Ok(n)) if n == bytes => {}
            Some(Ok(n)) => {
                let r = self.ftp.rm(&tmp).map(drop);
                self.note(r);
                return Err(Failure::new(
                    Kind::Transient,
                    format!("{rel}: the server holds {n} bytes after sending {bytes}; sending it again"),
                ));
            }
            Some(Err(e)) => {
                let f = classify(&e, "SIZE");
                if !f.session_usable() {
                    return Err(f);
                }
                // SIZE advertised but refused for this file: rely on the 226.
                log::debug!("{f}");
            }
        }
        if let Some(Err(e)) = mfmt {
            let f = classify(&e, "MFMT");
            if !f.session_usable() {
                return Err(f);
            }
            log::debug!("{f}; not setting modification times on this server");
            self.features.mfmt = false;
        }
        if let Some(mode) = self.publishing.chmod {
            // Before the rename: the file appears with its final mode.
            self.site_chmod(&tmp, mode).inspect_err(|f| self.discard(&tmp, f))?;
        }
        self.publish(&tmp, &final_path)
            .inspect_err(|f| self.discard(&tmp, f))
            .map_err(|f| long_name_hint(f, &final_path))?;
        Ok(Uploaded { bytes, stamp: before, blake3 })
    }

    /// How many bytes of a broken-off upload the server holds under `tmp`,
    /// if the upload can continue from there (0: start over).
    fn resume_offset(&mut self, tmp: &str, len: u64) -> u64 {
        if !(self.features.rest && self.features.size) {
            return 0;
        }
        match self.ftp.size(tmp) {
            Ok(n) if (n as u64) < len => n as u64,
            _ => 0,
        }
    }

    /// Sends `file` to `remote` from byte `offset` on (REST + STOR); returns
    /// the whole file's length as sent and its fingerprint.
    fn store(
        &mut self,
        remote: &str,
        file: &File,
        len: u64,
        abort: &AtomicBool,
        offset: u64,
        ready: Option<SocketAddr>,
    ) -> Result<(u64, [u8; 32]), Failure> {
        // Read from the start, also when an earlier attempt of this upload
        // read the file already (a STOR refused after its data, tried again).
        let limiter = self.limiter.clone();
        if self.pipelines() && self.epsv && offset == 0 {
            let source = Source::new(file, len, &limiter)
                .map_err(|e| Failure::new(Kind::Local, format!("cannot read the file again: {e}")))?;
            return self.store_raw(remote, source, abort, ready).map(|sent| (sent.total, sent.blake3));
        }
        let timeout = self.timeout;
        // How the send failed, when it was not the server's reply.
        let mut send_failed = None;
        let result = self.with_data(|ftp| {
            // Run again by the EPSV fallback: from the start again.
            let mut source = Source::new(file, len, &limiter).map_err(|e| stash(&mut send_failed, e))?;
            if offset > 0 {
                // The fingerprint covers the whole file: the part the server
                // already holds is read through it first (not taken from
                // the --bwlimit bucket: it does not go out).
                source.skip(offset, abort).map_err(|e| stash(&mut send_failed, e))?;
                ftp.resume_transfer(usize::try_from(offset).unwrap_or(0))?;
            }
            let mut upload = open_data(ftp, format!("STOR {remote}"), timeout)?;
            let sent = match source.send(&mut upload, abort) {
                Ok(sent) => sent,
                // The data connection broke while sending: the server may
                // have closed it and said why (a full disk), which tells
                // more than a broken pipe.
                Err(e @ SendError::Remote(_)) => {
                    let broke = stash(&mut send_failed, e);
                    return Err(match upload.finish() {
                        Err(reply @ FtpError::UnexpectedResponse(_)) => reply,
                        _ => broke,
                    });
                }
                Err(e) => return Err(stash(&mut send_failed, e)),
            };
            if let suppaftp::DataStream::Ssl(tls) = upload.get_mut() {
                let end = close_upload(suppaftp::TlsStream::mut_ref(tls.as_mut()), CLOSE_WAIT, timeout);
                log::debug!("the TLS data connection of {} had {end}", Escaped(remote));
            }
            wait_sent(upload.get_ref().get_ref(), timeout).map_err(FtpError::ConnectionError)?;
            upload.finish()?;
            Ok(sent)
        });
        match (result, send_failed) {
            (Ok(sent), _) => Ok((sent.total, sent.blake3)),
            // Reading the local file failed or shutdown came: this file
            // only, and a half-sent data connection leaves the session
            // unusable.
            (Err(_), Some(e @ (SendError::Local(_) | SendError::Aborted))) => Err(send_failure(e, "reading")),
            (Err(e), _) => {
                let mut f = classify(&e, &format!("STOR {}", Escaped(remote)));
                if self.tls
                    && !self.tls12
                    && !self.tls12_broken.load(Ordering::Relaxed)
                    && matches!(f.code, Some(425 | 522))
                {
                    if !self.tls12_only.swap(true, Ordering::Relaxed) {
                        log::info!(
                            "the server refused a TLS data connection ({f}); reconnecting with TLS 1.2, whose \
                             session reuse more servers accept"
                        );
                    }
                    f.kind = Kind::Connection;
                }
                Err(f)
            }
        }
    }

    /// STOR over a data connection this module opens itself, on a session
    /// that pipelines: to the passive port `ready` (asked for together with
    /// the previous upload's rename) or one asked for now. suppaftp always
    /// sends its own EPSV first, which would cost that round trip back.
    fn store_raw(
        &mut self,
        remote: &str,
        source: Source<'_>,
        abort: &AtomicBool,
        ready: Option<SocketAddr>,
    ) -> Result<Sent, Failure> {
        let what = format!("STOR {}", Escaped(remote));
        let addr = match ready {
            Some(addr) => addr,
            None => {
                let reply = self.read_epsv()?;
                match self.epsv_address(&reply) {
                    Some(addr) => addr,
                    None if matches!(reply.code, 500..=502) => {
                        if !self.epsv_refused(&reply_line(&reply)) {
                            return Err(classify(&reply.into_error(), "EPSV"));
                        }
                        // The next try takes suppaftp's way, with PASV.
                        return Err(Failure {
                            kind: Kind::Data,
                            code: Some(425),
                            message: format!("{what}: EPSV not understood; using PASV"),
                            partial: None,
                            no_room: false,
                        });
                    }
                    None if reply.code == 229 => {
                        self.broken = true;
                        return Err(Failure::new(
                            Kind::Connection,
                            format!("EPSV: cannot read {}", reply_line(&reply)),
                        ));
                    }
                    None if reply.is(4) || reply.is(5) => return Err(classify(&reply.into_error(), "EPSV")),
                    None => return Err(self.out_of_step_reply("EPSV", &reply)),
                }
            }
        };
        let data_failed = |e: io::Error| Failure {
            kind: Kind::Data,
            code: Some(425),
            message: format!("{what}: cannot open the data connection: {}", describe_io(&e)),
            partial: None,
            no_room: false,
        };
        // A kept port gets a short connect timeout: a firewall that opens
        // passive ports by reading the server's replies (Linux's FTP
        // conntrack helper) only sees a 229 at the start of a segment, and
        // one behind the rename's replies may never be opened.
        let connect_timeout = if ready.is_some() { self.timeout.min(KEPT_PORT_CONNECT) } else { self.timeout };
        let mut data = match TcpStream::connect_timeout(&addr, connect_timeout) {
            Ok(data) => data,
            Err(e) => {
                if ready.is_some() && !self.kept_ports_off.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "a passive port asked for ahead of an upload could not be reached ({}); asking for each \
                         upload's port on its own from now on",
                        describe_io(&e)
                    );
                }
                return Err(data_failed(e));
            }
        };
        data.set_write_timeout(Some(self.timeout)).map_err(data_failed)?;
        data.set_nodelay(true).map_err(data_failed)?;
        self.send_raw(&[format!("STOR {remote}")])?;
        let mut replies = self.read_some(&what, 2)?.into_iter();
        let (Some(prelim), gave_up) = (replies.next(), replies.next()) else {
            return Err(Failure::new(Kind::Connection, format!("{what}: no reply")));
        };
        if !prelim.is(1) && gave_up.is_some() {
            self.broken = true;
            return Err(Failure::new(Kind::Connection, format!("{what}: more replies than expected")));
        }
        if prelim.is(2) || prelim.is(3) {
            return Err(self.out_of_step_reply(&what, &prelim));
        }
        if !prelim.is(1) {
            return Err(classify(&prelim.into_error(), &what));
        }
        if let Some(done) = gave_up {
            if !(done.is(4) || done.is(5)) {
                // "Done" before any data: whatever the server sends once the
                // data connection closes would be taken for the next
                // command's reply.
                return Err(self.out_of_step_reply(&format!("{what} (before any data)"), &done));
            }
            // The final reply came before the data: the server gave up.
            return Err(classify(&done.into_error(), &what));
        }
        let sent = match source.send(&mut data, abort) {
            Ok(sent) => sent,
            Err(SendError::Remote(e)) => {
                drop(data);
                return Err(self.why_the_server_stopped(&what, &e));
            }
            Err(e) => {
                // The server's final reply comes at its own pace: this
                // session is out of step now.
                self.broken = true;
                return Err(send_failure(e, &what));
            }
        };
        if let Err(e) = wait_sent(&data, self.timeout) {
            self.broken = true;
            return Err(Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e))));
        }
        drop(data);
        let done = self.read_one(&what)?;
        if done.is(2) { Ok(sent) } else { Err(classify(&done.into_error(), &what)) }
    }
}

/// Waits until every byte written to `socket` has reached the peer (the
/// kernel's send queue is empty), giving up only after `timeout` without
/// progress. On a slow link the last megabytes of an upload are still on
/// their way after the last write, and the server's final reply comes only
/// after them: the wait for that reply must not count their time as the
/// server's silence. A connection reset by the peer ends the wait (its
/// queue never empties). Linux (SIOCOUTQ) only; elsewhere it returns at once.
#[cfg(target_os = "linux")]
fn wait_sent(socket: &TcpStream, timeout: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) on a TCP socket this session owns
        // writes one int.
        let r = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        (r == 0).then_some(n)
    };
    let Some(mut last) = queued() else { return Ok(()) };
    let mut progress = std::time::Instant::now();
    // On a fast link the queue empties within a millisecond or two: look
    // again soon, then less often (a fixed 20 ms cost every upload bigger
    // than the send buffer that much: a tree of mixed sizes took twice as
    // long as curl's).
    let mut pause = Duration::from_micros(250);
    while last > 0 {
        std::thread::sleep(pause);
        pause = (pause * 2).min(DRAIN_POLL_MAX);
        if socket.take_error().map_or(true, |e| e.is_some()) {
            // Reset by the peer (a server that refused the upload and
            // closed the data connection unread): what is still queued
            // never leaves, and the reply says why.
            return Ok(());
        }
        let Some(n) = queued() else { return Ok(()) };
        if n < last {
            progress = std::time::Instant::now();
        } else if progress.elapsed() >= timeout {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the data stopped moving"));
        }
        last = n;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn wait_sent(_socket: &TcpStream, _timeout: Duration) -> io::Result<()> {
    Ok(())
}

impl Session {
    /// The failure of an upload whose data connection broke while sending
    /// (`e`): the server's reply if it sent one (it may have stopped reading
    /// because its disk is full, and said so), else a lost connection.
    fn why_the_server_stopped(&mut self, what: &str, e: &io::Error) -> Failure {
        match self.read_some(what, 3) {
            Ok(replies) => {
                if replies.len() > 1 {
                    // e.g. pure-ftpd's "451 Logout." after the reason: it hangs up.
                    self.broken = true;
                }
                match replies.into_iter().next() {
                    Some(r) if !r.is(2) => {
                        let mut f = classify(&r.into_error(), what);
                        if f.kind == Kind::Refused && !f.no_room {
                            // A refusal after the data had started: the
                            // server may take it another time.
                            f.kind = Kind::Transient;
                        }
                        f
                    }
                    _ => Failure::new(Kind::Transient, format!("{what}: {}", describe_io(e))),
                }
            }
            Err(_) => Failure::new(Kind::Connection, format!("{what}: {}", describe_io(e))),
        }
    }
}

/// Keeps how a send failed for the caller of a suppaftp closure, which only
/// carries `FtpError`s.
fn stash(slot: &mut Option<SendError>, e: SendError) -> FtpError {
    let io = match &e {
        SendError::Local(io) | SendError::Remote(io) => io::Error::new(io.kind(), e.to_string()),
        SendError::Aborted => io::Error::other(e.to_string()),
    };
    *slot = Some(e);
    FtpError::ConnectionError(io)
}

/// The failure of a send that broke off for a reason of its own (the data
/// connection's, the local file's, shutdown); `what` names the command.
fn send_failure(e: SendError, what: &str) -> Failure {
    match e {
        SendError::Aborted => Failure::new(Kind::Aborted, "upload aborted for shutdown"),
        SendError::Local(e) => Failure::new(Kind::LocalBroken, format!("reading the file: {e}")),
        SendError::Remote(e) => Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e))),
    }
}

/// Opens the regular file `rel` of `tree` without following a link in any
/// component (see `localfs`), with its stamp as opened. Gone, or no longer
/// a regular file (a link, a FIFO, a directory): the engine looks again.
fn open_regular(tree: &Tree, rel: &RelPath) -> Result<(File, Stamp), Failure> {
    match tree.open_file(Path::new(rel.as_str())) {
        Ok((file, meta)) => Ok((file, meta.stamp())),
        Err(OpenError::Gone) => Err(Failure::new(Kind::Vanished, format!("{rel} is gone"))),
        Err(e @ OpenError::NotRegular(_)) => Err(Failure::new(Kind::Vanished, format!("{rel} is not uploaded: {e}"))),
        Err(OpenError::Io(e)) => Err(Failure::new(Kind::Local, format!("cannot read {rel}: {e}"))),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    /// A peer that stops reading with bytes still on their way, and then
    /// closes (a server that refused the STOR after its 150): the reset
    /// leaves those bytes counted in the send queue for good. The wait ends
    /// at the reset, not after the whole timeout; the reply says why.
    #[test]
    fn the_wait_for_the_last_bytes_ends_when_the_peer_resets_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut queued = 0;
        while queued < 64 << 20 {
            match client.write(&chunk) {
                Ok(n) => queued += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        client.set_nonblocking(false).unwrap();
        // Closed with unread data: the kernel answers with a reset.
        drop(server);
        let start = Instant::now();
        assert!(wait_sent(&client, Duration::from_secs(5)).is_ok());
        assert!(start.elapsed() < Duration::from_secs(2), "waited {:?} after the reset", start.elapsed());
    }
}
