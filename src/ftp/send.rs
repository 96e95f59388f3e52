//! Moving a file's bytes onto a data connection: the file read once, in
//! large chunks, each chunk written to the connection whole, and the BLAKE3
//! fingerprint of what was read computed beside the send.
//!
//! A big file is bound by the copy into the socket (and, with TLS, by the
//! encryption); hashing it in front of every write would add its time to
//! the transfer. So from [`BESIDE_FROM`] bytes on a second thread hashes
//! each chunk while this one writes it, and the chunks go round between
//! them in a small ring of buffers. Smaller files are hashed inline: a
//! thread would cost more than it saves. Large writes also matter for the
//! receiving side: over TLS each write of 64 KiB or more goes out as
//! full-size records, which the server decrypts and stores in a quarter of
//! the calls that 8 KiB writes would cost it.
//!
//! `--bwlimit`: each chunk is taken from the job's shared bucket
//! ([`Limiter`]) before it is written; the part of a resumed upload that is
//! only read for the fingerprint is not.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use crate::bwlimit::Limiter;

/// Bytes read from the file and written to the connection at a time.
pub(super) const CHUNK: usize = 256 * 1024;

/// Buffers in the ring between reading-and-sending and hashing: one being
/// filled, one being written and hashed, one spare for whichever side is
/// ahead.
const RING: usize = 3;

/// Files at least this big are hashed on a thread of their own.
pub(super) const BESIDE_FROM: u64 = 4 * CHUNK as u64;

/// How a send failed.
#[derive(Debug)]
pub(super) enum SendError {
    /// Reading the local file failed (not the server's fault).
    Local(io::Error),
    /// Writing to the data connection failed.
    Remote(io::Error),
    /// Shutdown asked for it to stop.
    Aborted,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(e) | Self::Remote(e) => e.fmt(f),
            Self::Aborted => f.write_str("upload aborted for shutdown"),
        }
    }
}

/// What a send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sent {
    /// Bytes read from the file, the skipped ones included.
    pub(super) total: u64,
    /// The BLAKE3 hash of all of them.
    pub(super) blake3: [u8; 32],
}

/// A file being read for an upload: from its start to its end (not to the
/// length it had when opened: the caller compares the two), every byte
/// fingerprinted once.
pub(super) struct Source<'a> {
    file: &'a File,
    /// The file's length as opened: it picks the buffer size and the way
    /// of hashing.
    len: u64,
    hasher: blake3::Hasher,
    read: u64,
    /// `--bwlimit`: what is written is taken from this bucket first.
    limiter: &'a Limiter,
}

impl<'a> Source<'a> {
    /// Starts reading `file` (of length `len` when opened) from its start,
    /// to be sent at the rate `limiter` allows.
    /// (Reads are positional: where an earlier attempt left the file's
    /// cursor does not matter.)
    pub(super) fn new(file: &'a File, len: u64, limiter: &'a Limiter) -> Result<Self, SendError> {
        Ok(Self { file, len, hasher: blake3::Hasher::new(), read: 0, limiter })
    }

    /// Reads and fingerprints the first `n` bytes without sending them:
    /// the part the server holds from an earlier attempt. Done before the
    /// data connection is opened, which would sit idle meanwhile.
    pub(super) fn skip(&mut self, n: u64, abort: &AtomicBool) -> Result<(), SendError> {
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(CHUNK).clamp(8 * 1024, CHUNK)];
        while self.read < n {
            if abort.load(Ordering::Relaxed) {
                return Err(SendError::Aborted);
            }
            let want = usize::try_from(n - self.read).unwrap_or(CHUNK).min(buf.len());
            let got = fill(self.file, self.read, &mut buf[..want]).map_err(SendError::Local)?;
            if got == 0 {
                break;
            }
            self.hasher.update(&buf[..got]);
            self.read += got as u64;
        }
        Ok(())
    }

    /// Writes the rest of the file to `out`; `abort` is looked at before
    /// every chunk.
    pub(super) fn send(self, out: &mut dyn Write, abort: &AtomicBool) -> Result<Sent, SendError> {
        if self.len >= BESIDE_FROM {
            return self.send_hashing_beside(out, abort);
        }
        self.send_hashing_inline(out, abort)
    }

    fn send_hashing_inline(mut self, out: &mut dyn Write, abort: &AtomicBool) -> Result<Sent, SendError> {
        // A buffer the size of a small file (plus one byte, to see its end in
        // the same read): no large allocation per small file.
        let left = self.len.saturating_sub(self.read).saturating_add(1);
        let mut buf = vec![0u8; usize::try_from(left).unwrap_or(CHUNK).clamp(8 * 1024, CHUNK)];
        loop {
            if abort.load(Ordering::Relaxed) {
                return Err(SendError::Aborted);
            }
            let n = fill(self.file, self.read, &mut buf).map_err(SendError::Local)?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            self.limiter.take(n, abort);
            out.write_all(&buf[..n]).map_err(SendError::Remote)?;
            self.read += n as u64;
            if n < buf.len() {
                // `fill` stops short only at the end of the file.
                break;
            }
        }
        Ok(Sent { total: self.read, blake3: *self.hasher.finalize().as_bytes() })
    }

    /// The send with the hashing on a scoped thread: this thread reads a
    /// chunk, hands it to the hasher and writes it while the hasher works;
    /// a buffer comes back once hashed and is filled again. Without a
    /// thread (none can be started), inline.
    fn send_hashing_beside(self, out: &mut dyn Write, abort: &AtomicBool) -> Result<Sent, SendError> {
        let (to_hash, chunks) = mpsc::sync_channel::<Arc<Vec<u8>>>(RING);
        let (give_back, hashed) = mpsc::channel::<Arc<Vec<u8>>>();
        let (file, mut read, limiter) = (self.file, self.read, self.limiter);
        let sent = std::thread::scope(|scope| {
            let mut hasher = self.hasher.clone();
            let started = std::thread::Builder::new().name("upload-hash".to_string()).spawn_scoped(scope, move || {
                for chunk in chunks {
                    hasher.update(&chunk);
                    // The sender may have given up: then the buffer just goes.
                    let _ = give_back.send(chunk);
                }
                *hasher.finalize().as_bytes()
            });
            let Ok(thread) = started else { return Ok(None) };
            let stopped = || SendError::Local(io::Error::other("the hashing thread stopped"));
            let mut made = 0;
            let pumped = (|| {
                loop {
                    if abort.load(Ordering::Relaxed) {
                        return Err(SendError::Aborted);
                    }
                    let mut buf = if made < RING {
                        made += 1;
                        vec![0u8; CHUNK]
                    } else {
                        // The hasher holds the others; it gives each back once done.
                        let mut back = Arc::try_unwrap(hashed.recv().map_err(|_| stopped())?).unwrap_or_default();
                        back.resize(CHUNK, 0);
                        back
                    };
                    let n = fill(file, read, &mut buf).map_err(SendError::Local)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    let chunk = Arc::new(buf);
                    to_hash.send(Arc::clone(&chunk)).map_err(|_| stopped())?;
                    limiter.take(n, abort);
                    out.write_all(&chunk).map_err(SendError::Remote)?;
                    read += n as u64;
                }
            })();
            drop(to_hash);
            let hash = thread.join();
            pumped?;
            Ok(Some(Sent { total: read, blake3: hash.map_err(|_| stopped())? }))
        })?;
        match sent {
            Some(sent) => Ok(sent),
            None => {
                log::debug!("cannot start a thread to hash beside the upload; hashing inline");
                self.send_hashing_inline(out, abort)
            }
        }
    }
}

/// Reads from byte `at` on until `buf` is full or the file ends; returns
/// how much was read.
fn fill(file: &File, at: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match read_at(file, &mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, at)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_file(file: &File, len: u64, skip: u64, out: &mut dyn Write, abort: &AtomicBool) -> Result<Sent, SendError> {
        let unlimited = Limiter::default();
        let mut source = Source::new(file, len, &unlimited)?;
        source.skip(skip, abort)?;
        source.send(out, abort)
    }

    /// A connection that records the size of every write.
    #[derive(Default)]
    struct Recorder {
        data: Vec<u8>,
        writes: Vec<usize>,
        fail_after: Option<usize>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.fail_after.is_some_and(|n| self.data.len() >= n) {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
            }
            self.data.extend_from_slice(buf);
            self.writes.push(buf.len());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn file_of(len: usize) -> (tempfile::TempDir, File, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        (dir, File::open(&path).unwrap(), content)
    }

    #[test]
    fn every_size_arrives_whole_with_its_fingerprint_also_when_resumed() {
        let no = AtomicBool::new(false);
        for len in [0, 1, 4096, CHUNK - 1, CHUNK, CHUNK + 1, BESIDE_FROM as usize - 1, 3 * CHUNK + 17, 7 * CHUNK] {
            let (_dir, file, content) = file_of(len);
            for skip in [0, 1, len / 2, CHUNK, len] {
                let skip = skip.min(len);
                let mut out = Recorder::default();
                let sent = send_file(&file, len as u64, skip as u64, &mut out, &no).unwrap();
                assert_eq!(sent.total, len as u64, "len {len} skip {skip}");
                assert_eq!(sent.blake3, *blake3::hash(&content).as_bytes(), "len {len} skip {skip}");
                assert!(out.data == content[skip..], "len {len} skip {skip}: wrong bytes sent");
            }
        }
    }

    #[test]
    fn a_big_file_goes_out_in_writes_of_a_whole_chunk() {
        let no = AtomicBool::new(false);
        let len = 4 * CHUNK + 100;
        let (_dir, file, _) = file_of(len);
        let mut out = Recorder::default();
        send_file(&file, len as u64, 0, &mut out, &no).unwrap();
        assert_eq!(out.writes, vec![CHUNK, CHUNK, CHUNK, CHUNK, 100]);
        // A small one in a single write.
        let (_dir, file, _) = file_of(5000);
        let mut out = Recorder::default();
        send_file(&file, 5000, 0, &mut out, &no).unwrap();
        assert_eq!(out.writes, vec![5000]);
    }

    #[test]
    fn a_file_that_grew_since_it_was_opened_is_read_to_its_end() {
        let no = AtomicBool::new(false);
        for len in [10, 2 * BESIDE_FROM as usize] {
            let (_dir, file, content) = file_of(len);
            // The length given is what the caller saw: smaller than the file.
            let mut out = Recorder::default();
            let sent = send_file(&file, (len / 2) as u64, 0, &mut out, &no).unwrap();
            assert_eq!(sent.total, len as u64);
            assert!(out.data == content);
        }
    }

    #[test]
    fn a_broken_connection_and_an_abort_stop_the_send() {
        let no = AtomicBool::new(false);
        for len in [5000, 3 * BESIDE_FROM as usize] {
            let (_dir, file, _) = file_of(len);
            for after in [0, 1] {
                let mut out = Recorder { fail_after: Some(after), ..Recorder::default() };
                let sent = send_file(&file, len as u64, 0, &mut out, &no);
                if after == 0 || len > CHUNK {
                    assert!(matches!(sent, Err(SendError::Remote(_))), "{len} {after}");
                }
            }
            let yes = AtomicBool::new(true);
            let mut out = Recorder::default();
            assert!(matches!(send_file(&file, len as u64, 0, &mut out, &yes), Err(SendError::Aborted)));
            assert!(out.data.is_empty());
        }
    }

    #[test]
    fn what_is_written_is_taken_from_the_bwlimit_bucket_inline_and_beside() {
        // 2 MiB/s with a burst of 512 KiB: never faster than that (a loaded
        // machine may make it slower), on both ways of hashing.
        let no = AtomicBool::new(false);
        let limiter = Limiter::default();
        for len in [BESIDE_FROM as usize - 24 * 1024, 2 * BESIDE_FROM as usize] {
            limiter.set(Some(2 * 1024 * 1024));
            let (_dir, file, content) = file_of(len);
            let started = std::time::Instant::now();
            let mut out = Recorder::default();
            let sent = Source::new(&file, len as u64, &limiter).unwrap().send(&mut out, &no).unwrap();
            let took = started.elapsed().as_secs_f64();
            let least = (len - 512 * 1024) as f64 / (2.0 * 1024.0 * 1024.0) * 0.95;
            assert!(took >= least, "{len} B at 2 MiB/s took {took:.3} s, under {least:.3} s");
            assert!(out.data == content);
            assert_eq!(sent.blake3, *blake3::hash(&content).as_bytes());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_read_error_is_the_local_files_fault() {
        // A directory opened as a file: every read fails (EISDIR).
        let dir = tempfile::tempdir().unwrap();
        let file = File::open(dir.path()).unwrap();
        let no = AtomicBool::new(false);
        for len in [10, BESIDE_FROM] {
            let mut out = Recorder::default();
            assert!(matches!(send_file(&file, len, 0, &mut out, &no), Err(SendError::Local(_))));
        }
    }
}
