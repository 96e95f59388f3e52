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
    Escaped(text.lines().next().unwrap_or_default().trim()).to_string()
}

/// The number a reply like `213 4096` gives, if it gives one.
pub(super) fn reply_number(text: &[u8]) -> Option<u64> {
    let line = text.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line.get(4..)?).ok()?.trim().parse().ok()
}

/// Splits complete replies off the front of `buf`: `ddd text` or a
/// multi-line `ddd-text` ... `ddd text`. Returns how many bytes they took.
pub(super) fn parse_replies(buf: &[u8], want: usize, out: &mut Vec<Reply>) -> Result<usize, String> {
    let mut used = 0;
    while out.len() < want {
        let rest = &buf[used..];
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n").map(|p| p + 2) else { break };
        let first = &rest[..end];
        let code = first
            .get(..3)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| format!("not an FTP reply: {}", Escaped(&String::from_utf8_lossy(first))))?;
        let mut len = end;
        if first.get(3) == Some(&b'-') {
            // Multi-line: up to a line that starts with the same code and a space.
            let close = format!("{code} ");
            let mut found = false;
            while let Some(next) = rest[len..].windows(2).position(|w| w == b"\r\n").map(|p| len + p + 2) {
                let line = &rest[len..next];
                len = next;
                if line.starts_with(close.as_bytes()) {
                    found = true;
                    break;
                }
            }
            if !found {
                break;
            }
        }
        out.push(Reply { code, text: rest[..len].to_vec() });
        used += len;
    }
    Ok(used)
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
            let mut socket: &TcpStream = &socket;
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 4096];
            let mut used = 0;
            (|| {
                while out.len() < n {
                    let got = socket.read(&mut chunk)?;
                    if got == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
                    }
                    buf.extend_from_slice(&chunk[..got]);
                    used += parse_replies(&buf[used..], n, &mut out)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                if used < buf.len() {
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
    /// reply in the same segment).
    pub(super) fn read_some(&mut self, what: &str) -> Result<Vec<Reply>, Failure> {
        let mut out = Vec::new();
        let result = {
            let socket = self.ftp.get_ref();
            let mut socket: &TcpStream = &socket;
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 4096];
            let mut used = 0;
            (|| {
                loop {
                    used += parse_replies(&buf[used..], usize::MAX, &mut out)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    if !out.is_empty() && used == buf.len() {
                        return Ok(());
                    }
                    let got = socket.read(&mut chunk)?;
                    if got == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
                    }
                    buf.extend_from_slice(&chunk[..got]);
                }
            })()
        };
        result.map(|()| out).map_err(|e| {
            self.broken = true;
            Failure::new(Kind::Connection, format!("{what}: {}", describe_io(&e)))
        })
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
        let peer = self.ftp.get_ref().peer_addr().ok()?;
        Some(SocketAddr::new(peer.ip(), port))
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
}
