//! The raw control-reply reader: what pipelined commands and the
//! self-opened STOR data connection read instead of suppaftp's reader, and
//! the parser that splits replies off the bytes read.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use suppaftp::{FtpError, Status};

use super::{Failure, Kind, Session, describe_io};
use crate::relpath::Escaped;

/// One reply read by [`Session::pipeline`]: its code and its text as the
/// server sent it (every line, CRLF-separated).
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) code: u16,
    pub(super) text: Vec<u8>,
}

impl Reply {
    pub(super) fn is(&self, class: u16) -> bool {
        self.code / 100 == class
    }

    /// The reply as the error suppaftp would have given for it.
    pub(super) fn into_error(self) -> FtpError {
        FtpError::UnexpectedResponse(suppaftp::types::Response::new(Status::from(u32::from(self.code)), self.text))
    }
}

/// A reply's first line, for a message.
pub(super) fn reply_line(reply: &Reply) -> String {
    let text = String::from_utf8_lossy(&reply.text);
    crate::logging::redact(&Escaped(text.lines().next().unwrap_or_default().trim()).to_string())
}

/// The number a reply like `213 4096` gives, if it gives one.
pub(super) fn reply_number(text: &[u8]) -> Option<u64> {
    let line = text.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line.get(4..)?).ok()?.trim().parse().ok()
}

/// The longest reply line the raw reader takes. No reply to the commands
/// sent raw (EPSV, STOR, SIZE, MFMT, RNFR, RNTO) comes near it: a path of
/// 4096 bytes, quoted, is less than half of it.
pub(super) const MAX_REPLY_LINE: usize = 16 * 1024;

/// The longest reply, all its lines: suppaftp's own reader takes as much.
pub(super) const MAX_REPLY: usize = 256 * 1024;

/// Splits replies off the bytes of a control connection as they come: a
/// `ddd text` line, or a multi-line `ddd-text` ... `ddd text`.
///
/// Each byte is looked at once however the replies are cut into reads, and
/// a reply or line over [`MAX_REPLY`] or [`MAX_REPLY_LINE`] is an error as
/// soon as that much of it has come: a server cannot make the reader use
/// more memory or time than that.
#[derive(Debug, Default)]
pub(super) struct ReplySplitter {
    /// The bytes from the start of the reply being read on.
    buf: Vec<u8>,
    /// How much of `buf` was searched for a line end.
    scanned: usize,
    /// Where the line being read starts in `buf`.
    line_start: usize,
    /// The code of the multi-line reply being read.
    open: Option<u16>,
}

impl ReplySplitter {
    /// Adds bytes read from the connection.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes of an unfinished reply are held.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.buf.len()
    }

    /// Whether no byte of an unfinished reply is held.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next complete reply, if the bytes pushed hold one.
    pub(super) fn next_reply(&mut self) -> Result<Option<Reply>, String> {
        loop {
            // A CR at the end of the last read may be followed by its LF.
            let from = self.scanned.saturating_sub(1).max(self.line_start);
            let Some(cr) = self.buf[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p) else {
                self.scanned = self.buf.len();
                self.check_length(self.buf.len())?;
                return Ok(None);
            };
            let end = cr + 2;
            self.check_length(end)?;
            let line = &self.buf[self.line_start..end];
            let code = match self.open {
                None => {
                    let code = line
                        .get(..3)
                        .and_then(|d| std::str::from_utf8(d).ok())
                        .and_then(|d| d.parse::<u16>().ok())
                        .filter(|c| (100..600).contains(c))
                        .ok_or_else(|| format!("not an FTP reply: {}", shown(line)))?;
                    if line.get(3) == Some(&b'-') {
                        self.open = Some(code);
                        None
                    } else {
                        Some(code)
                    }
                }
                // Multi-line: up to a line that starts with the same code and a space.
                Some(code) => {
                    (line.starts_with(code.to_string().as_bytes()) && line.get(3) == Some(&b' ')).then_some(code)
                }
            };
            self.line_start = end;
            self.scanned = end;
            if let Some(code) = code {
                let text: Vec<u8> = self.buf.drain(..end).collect();
                (self.scanned, self.line_start, self.open) = (0, 0, None);
                return Ok(Some(Reply { code, text }));
            }
        }
    }

    /// Fails once the reply being read, up to `upto` in `buf`, or its line
    /// being read is longer than allowed.
    fn check_length(&self, upto: usize) -> Result<(), String> {
        if upto - self.line_start > MAX_REPLY_LINE {
            return Err(format!("the server sent a reply line longer than {} KiB", MAX_REPLY_LINE / 1024));
        }
        if upto > MAX_REPLY {
            return Err(format!("the server sent a reply longer than {} KiB", MAX_REPLY / 1024));
        }
        Ok(())
    }
}

/// A line that is no reply, for a message: its start only.
fn shown(line: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
    let more = if line.len() > SHOWN { "..." } else { "" };
    format!("{}{more}", Escaped(&text))
}

/// Splits up to `want` complete replies off the front of `buf` (see
/// [`ReplySplitter`]). Returns how many bytes they took.
#[cfg(test)]
pub(super) fn parse_replies(buf: &[u8], want: usize, out: &mut Vec<Reply>) -> Result<usize, String> {
    let mut splitter = ReplySplitter::default();
    splitter.push(buf);
    let mut taken = 0;
    while taken < want {
        let Some(reply) = splitter.next_reply()? else { break };
        out.push(reply);
        taken += 1;
    }
    Ok(buf.len() - splitter.buf.len())
}

/// The replies of one exchange, read from the control connection.
struct Replies<'a> {
    socket: &'a TcpStream,
    splitter: ReplySplitter,
    chunk: [u8; 4096],
}

impl<'a> Replies<'a> {
    fn new(socket: &'a TcpStream) -> Self {
        Self { socket, splitter: ReplySplitter::default(), chunk: [0; 4096] }
    }

    /// One read from the connection: the end of the stream is an error (a
    /// reply is still missing).
    fn fill(&mut self) -> io::Result<()> {
        let mut socket = self.socket;
        let got = socket.read(&mut self.chunk)?;
        if got == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        self.splitter.push(&self.chunk[..got]);
        Ok(())
    }

    /// The next complete reply read, if one is; a malformed one is an error.
    fn next(&mut self) -> io::Result<Option<Reply>> {
        self.splitter.next_reply().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Nothing read is left over.
    fn is_empty(&self) -> bool {
        self.splitter.is_empty()
    }
}

impl Session {
    /// Writes `cmds` to the control connection in one write (see
    /// [`Session::pipeline`]).
    pub(super) fn send_raw(&mut self, cmds: &[String]) -> Result<(), Failure> {
        let mut wire = Vec::new();
        for cmd in cmds {
            if cmd.contains(['\r', '\n']) {
                return Err(Failure::new(Kind::Refused, format!("{}: a name with a line break", Escaped(cmd))));
            }
            wire.extend_from_slice(cmd.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        let result = {
            let socket = self.ftp.get_ref();
            let mut socket: &TcpStream = &socket;
            socket.write_all(&wire)
        };
        result.map_err(|e| {
            self.broken = true;
            Failure::new(Kind::Connection, format!("{}: {}", cmds.join(", "), describe_io(&e)))
        })
    }

    /// Reads `n` replies from the control connection, for commands written
    /// by [`Session::send_raw`]; `what` names them for an error.
    pub(super) fn read_raw(&mut self, n: usize, what: &str) -> Result<Vec<Reply>, Failure> {
        let mut out = Vec::with_capacity(n);
        let result = {
            let socket = self.ftp.get_ref();
            let mut replies = Replies::new(&socket);
            (|| {
                while out.len() < n {
                    replies.fill()?;
                    while out.len() < n {
                        match replies.next()? {
                            Some(reply) => out.push(reply),
                            None => break,
                        }
                    }
                }
                if !replies.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "more replies than commands"));
                }
                Ok(())
            })()
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.broken = true;
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) && !out.is_empty() {
                    // Some replies came, not all: something on the way may
                    // have lost a command that was not the first of a write.
                    let got: Vec<&Reply> = out.iter().collect();
                    self.out_of_step::<()>(&got);
                }
                Err(Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e))))
            }
        }
    }

    /// One reply (see [`Session::read_raw`]).
    pub(super) fn read_one(&mut self, what: &str) -> Result<Reply, Failure> {
        self.read_raw(1, what)?.pop().ok_or_else(|| Failure::new(Kind::Connection, format!("{what}: no reply")))
    }

    /// The reply to an EPSV sent on its own.
    pub(super) fn read_epsv(&mut self) -> Result<Reply, Failure> {
        self.pipeline(&["EPSV".to_string()])?.pop().ok_or_else(|| Failure::new(Kind::Connection, "EPSV: no reply"))
    }

    /// Reads at least one reply, and every other complete one that came with
    /// it (a STOR's 150 and, when the server gives up at once, its final
    /// reply in the same segment), at most `max`.
    pub(super) fn read_some(&mut self, what: &str, max: usize) -> Result<Vec<Reply>, Failure> {
        let mut out = Vec::new();
        let result = {
            let socket = self.ftp.get_ref();
            let mut replies = Replies::new(&socket);
            (|| {
                loop {
                    while let Some(reply) = replies.next()? {
                        if out.len() == max {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, "more replies than expected"));
                        }
                        out.push(reply);
                    }
                    if !out.is_empty() && replies.is_empty() {
                        return Ok(());
                    }
                    replies.fill()?;
                }
            })()
        };
        result.map(|()| out).map_err(|e| {
            self.broken = true;
            Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e)))
        })
    }

    /// A positive reply where another one was due (a 2xx to STOR, a 226 to
    /// EPSV): it belongs to another command, every reply after it would be
    /// taken for the wrong command's, so the session is given up.
    pub(super) fn out_of_step_reply(&mut self, what: &str, reply: &Reply) -> Failure {
        self.broken = true;
        Failure::new(
            Kind::Connection,
            format!("{what}: the server answered {}: replies out of step", reply_line(reply)),
        )
    }

    /// Where a `229 Entering Extended Passive Mode (|||port|)` reply says to
    /// connect: that port at the control connection's peer.
    pub(super) fn epsv_address(&self, reply: &Reply) -> Option<SocketAddr> {
        if reply.code != 229 {
            return None;
        }
        let text = String::from_utf8_lossy(&reply.text);
        let inner = text.split_once('(')?.1.split_once(')')?.0;
        let delim = inner.chars().next()?;
        let port: u16 = inner.split(delim).nth(3)?.parse().ok()?;
        let ip = match self.peer_ip {
            Some(ip) => ip,
            None => self.ftp.get_ref().peer_addr().ok()?.ip(),
        };
        Some(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(replies: &[Reply]) -> Vec<u16> {
        replies.iter().map(|r| r.code).collect()
    }

    #[test]
    fn replies_are_split_in_order_whole_and_multi_line() {
        let wire = b"213 4096\r\n213-Modify=1;\r\n  more\r\n213 UTIME OK\r\n350 ready\r\n";
        let mut out = Vec::new();
        let used = parse_replies(wire, 3, &mut out).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(codes(&out), [213, 213, 350]);
        assert_eq!(reply_number(&out[0].text), Some(4096));
        assert_eq!(out[1].text, b"213-Modify=1;\r\n  more\r\n213 UTIME OK\r\n");
        assert_eq!(reply_number(&out[1].text), None);
    }

    #[test]
    fn a_reply_cut_between_reads_waits_for_its_end() {
        let mut out = Vec::new();
        let first = b"350 ready\r\n250-renamed\r\n";
        let used = parse_replies(first, 2, &mut out).unwrap();
        assert_eq!((used, codes(&out)), (11, vec![350]));
        let mut wire = first[used..].to_vec();
        wire.extend_from_slice(b"250 done\r\n");
        let used = parse_replies(&wire, 2, &mut out).unwrap();
        assert_eq!((used, codes(&out)), (wire.len(), vec![350, 250]));
    }

    #[test]
    fn only_as_many_replies_as_commands_are_taken() {
        let mut out = Vec::new();
        let used = parse_replies(b"213 1\r\n213 2\r\n", 1, &mut out).unwrap();
        assert_eq!((used, codes(&out)), (7, vec![213]));
    }

    #[test]
    fn a_line_that_is_no_reply_is_an_error() {
        assert!(parse_replies(b"hello\r\n", 1, &mut Vec::new()).is_err());
        assert!(parse_replies(b"999 no\r\n", 1, &mut Vec::new()).is_err());
    }

    #[test]
    fn replies_fed_a_byte_at_a_time_come_out_whole_with_a_crlf_cut_in_two() {
        let wire = b"213 4096\r\n213-Modify=1;\r\n  more\r\n213 UTIME OK\r\n350 ready\r\n";
        let mut splitter = ReplySplitter::default();
        let mut out = Vec::new();
        for byte in wire {
            splitter.push(std::slice::from_ref(byte));
            while let Some(reply) = splitter.next_reply().unwrap() {
                out.push(reply);
            }
        }
        assert_eq!(codes(&out), [213, 213, 350]);
        assert_eq!(out[1].text, b"213-Modify=1;\r\n  more\r\n213 UTIME OK\r\n");
        assert!(splitter.is_empty());
    }

    #[test]
    fn a_line_of_the_longest_length_is_taken_and_one_byte_more_is_not_even_before_its_end() {
        let text = "9".repeat(MAX_REPLY_LINE - "213 \r\n".len());
        let mut out = Vec::new();
        assert_eq!(parse_replies(format!("213 {text}\r\n").as_bytes(), 1, &mut out), Ok(MAX_REPLY_LINE));
        let e = parse_replies(format!("213 {text}9\r\n").as_bytes(), 1, &mut Vec::new()).unwrap_err();
        assert!(e.contains("reply line longer than 16 KiB"), "{e}");
        // No line end yet: the error comes as soon as the line is too long.
        let e = parse_replies(format!("213 {text}999").as_bytes(), 1, &mut Vec::new()).unwrap_err();
        assert!(e.contains("reply line longer than 16 KiB"), "{e}");
    }

    #[test]
    fn a_multi_line_reply_longer_than_the_longest_is_an_error_before_its_end() {
        let mut wire = b"213-start\r\n".to_vec();
        while wire.len() <= MAX_REPLY {
            wire.extend_from_slice(b" more\r\n");
        }
        let e = parse_replies(&wire, 1, &mut Vec::new()).unwrap_err();
        assert!(e.contains("reply longer than 256 KiB"), "{e}");
    }

    #[test]
    fn a_line_that_is_no_reply_is_shown_shortened() {
        let e = parse_replies(format!("{}\r\n", "x".repeat(1000)).as_bytes(), 1, &mut Vec::new()).unwrap_err();
        assert!(e.len() < 300 && e.ends_with("..."), "{e}");
    }
}
