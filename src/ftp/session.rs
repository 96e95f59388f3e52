//! The session's operations other than the upload itself: data commands
//! with the EPSV fallback, remote directories, publishing a temporary file
//! under its final name, delete, rename, list, and the session's state.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use suppaftp::{FtpError, ImplFtpStream, Mode, RustlsFtpStream, Status, TlsStream, TransferStream};

use super::listing::{is_too_large, read_listing};
use super::names::{aside_name, is_temp_name, staged_name, temp_name};
use super::{Failure, Features, Kind, RemoteEntry, Session, classify, reply_code, reply_text};
use crate::relpath::{Escaped, RelPath, join_remote};

impl Session {
    /// Runs a data command, falling back once from EPSV to PASV when the
    /// server refuses EPSV itself (see [`Session::epsv_refused`]); a refusal
    /// of the data command (MLSD, say) changes nothing.
    pub(super) fn with_data<T>(
        &mut self,
        mut op: impl FnMut(&mut RustlsFtpStream) -> Result<T, FtpError>,
    ) -> Result<T, FtpError> {
        // suppaftp asks for a passive port of its own: the one kept is closed.
        self.ready_port = None;
        self.data_opened.store(false, Ordering::Relaxed);
        match op(&mut self.ftp) {
            Err(e)
                if self.epsv
                    && !self.data_opened.load(Ordering::Relaxed)
                    && matches!(reply_code(&e), Some(500..=502)) =>
            {
                if self.epsv_refused(&reply_text(&e)) {
                    op(&mut self.ftp)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// The server refused EPSV itself (500-502; `why` says how): PASV from
    /// now on, with the NAT workaround (connect to the control peer, not the
    /// address announced). Not on an IPv6 connection, though: PASV cannot
    /// name an IPv6 address, so nothing changes and the job logs once what
    /// to do instead. Returns whether PASV is used now.
    pub(super) fn epsv_refused(&mut self, why: &str) -> bool {
        let ipv6 = self.ftp.get_ref().peer_addr().is_ok_and(|a| a.ip().to_canonical().is_ipv6());
        if ipv6 {
            if !self.no_pasv_logged.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "warning: the server refuses EPSV ({why}), and PASV cannot carry the IPv6 address of this \
                     connection: no data connection can be opened; use --active, or connect over IPv4"
                );
            }
            return false;
        }
        log::debug!("server refused EPSV ({why}); using PASV");
        self.epsv = false;
        self.ftp.set_mode(Mode::Passive);
        self.ftp.set_passive_nat_workaround(true);
        true
    }

    pub(super) fn remote(&self, rel: &str) -> String {
        join_remote(&self.remote_dir, rel)
    }

    /// The staging directory (`--temp-dir`), if uploads go through one.
    pub fn staging(&self) -> Option<&str> {
        self.publishing.temp_dir.as_deref()
    }

    /// Where the upload of `rel`, whose directory on the server is `dir`, is
    /// stored until it is renamed into place: in the staging directory, or
    /// beside the final name (hidden unless `visible`).
    pub(super) fn temp_path(&self, rel: &RelPath, dir: &str, visible: bool) -> String {
        match self.staging() {
            Some(staging) => staged_name(staging, &self.remote(rel.as_str())),
            None => temp_name(dir, rel.file_name(), visible),
        }
    }

    /// Makes sure the staging directory exists. It is not one of the
    /// directories the sync created (those follow the local tree).
    pub(super) fn ensure_staging(&mut self) -> Result<(), Failure> {
        let Some(staging) = self.publishing.temp_dir.clone() else {
            return Ok(());
        };
        let created = self.created.len();
        let r = self.ensure_dir(&staging);
        self.created.truncate(created);
        r
    }

    /// Sets `mode` on the remote `path` with SITE CHMOD, unless the server
    /// refused that before. A refusal is logged once and not an error: the
    /// file or directory keeps the server's mode.
    pub(super) fn site_chmod(&mut self, path: &str, mode: u32) -> Result<(), Failure> {
        if self.publishing.chmod_refused.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.ftp.site(format!("CHMOD {mode:03o} {path}")) {
            Ok(_) => {
                self.publishing.chmod_worked.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let f = classify(&e, &format!("SITE CHMOD {mode:03o} {}", Escaped(path)));
                if !f.session_usable() {
                    return Err(f);
                }
                if f.kind == Kind::Transient {
                    // "Try later": this file keeps the server's mode, the next one is tried.
                    log::warn!("warning: {f}: {} keeps the mode the server gave it", Escaped(path));
                    return Ok(());
                }
                if !self.publishing.chmod_refused.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "warning: the server refuses SITE CHMOD ({f}): files and directories keep the modes the \
                         server gives them; --chmod and --chmod-dirs are not tried again until a restart"
                    );
                }
                Ok(())
            }
        }
    }

    /// Tries SITE CHMOD on `path` (for `check`): whether the server took it.
    pub fn try_chmod(&mut self, path: &str, mode: u32) -> Result<bool, Failure> {
        self.site_chmod(path, mode)?;
        Ok(self.chmod_works() == Some(true))
    }

    /// Whether SITE CHMOD worked (`Some(true)`), was refused, or was not tried.
    pub fn chmod_works(&self) -> Option<bool> {
        if self.publishing.chmod_refused.load(Ordering::Relaxed) {
            Some(false)
        } else {
            self.publishing.chmod_worked.load(Ordering::Relaxed).then_some(true)
        }
    }

    /// Makes sure the remote directory `dir` (absolute or relative to the
    /// login directory) exists, creating missing parents.
    pub fn ensure_dir(&mut self, dir: &str) -> Result<(), Failure> {
        if dir.is_empty() || dir == "/" {
            return Ok(());
        }
        let dirs = Arc::clone(&self.dirs);
        let mut known = dirs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(dir) {
            return Ok(());
        }
        let mut prefix = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() || dir.starts_with('/') {
                prefix.push('/');
            }
            prefix.push_str(part);
            if known.contains(&prefix) {
                continue;
            }
            match self.ftp.mkdir(&prefix) {
                Ok(()) => {
                    log::debug!("created remote directory {}", Escaped(&prefix));
                    self.created.push(prefix.clone());
                    if let Some(mode) = self.publishing.chmod_dirs {
                        self.site_chmod(&prefix, mode)?;
                    }
                }
                Err(e) => {
                    let f = classify(&e, &format!("MKD {}", Escaped(&prefix)));
                    if f.kind == Kind::Connection || f.kind == Kind::Transient {
                        return Err(f);
                    }
                    // Most servers answer 550 for "exists"; a real refusal
                    // shows up at the STOR that follows.
                }
            }
            known.insert(prefix.clone());
        }
        Ok(())
    }

    pub(super) fn forget_dir(&self, dir: &str) {
        let mut known = self.dirs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|d| !(d == dir || d.starts_with(&format!("{dir}/"))));
    }

    /// Removes a temporary file after a failure, if the session still works.
    pub(super) fn discard(&mut self, tmp: &str, f: &Failure) {
        if f.session_usable() {
            let r = self.ftp.rm(tmp).map(drop);
            self.note(r);
        }
    }

    /// Deletes a temporary upload left by a crash, if there is one: `rel`'s
    /// temporary uploads, or `rel` itself when it is a temporary name (as
    /// [`super::leftover_temps`] gives them; no file the tool syncs has one).
    pub fn remove_temp(&mut self, rel: &RelPath) -> Result<(), Failure> {
        let dir = rel.parent().map_or_else(|| self.remote_dir.clone(), |p| self.remote(p));
        let temps = if is_temp_name(rel.file_name()) {
            vec![self.remote(rel.as_str())]
        } else {
            // Both names beside the file (an earlier run may have had no
            // --temp-dir) and the staged one.
            let mut temps = [false, true].map(|visible| temp_name(&dir, rel.file_name(), visible)).to_vec();
            if let Some(staging) = self.staging() {
                temps.push(staged_name(staging, &self.remote(rel.as_str())));
            }
            temps
        };
        for tmp in temps {
            match self.ftp.rm(&tmp) {
                Ok(()) => {}
                Err(e) if reply_code(&e) == Some(550) || reply_code(&e) == Some(553) => {}
                Err(e) => return Err(classify(&e, &format!("DELE {}", Escaped(&tmp)))),
            }
        }
        Ok(())
    }

    /// Cleans up `rel`'s old copy renamed aside by an upload that a crash cut
    /// off between its two renames (see [`Session::publish_aside`]): dropped if
    /// `rel` is on the server (the new copy got there), else renamed back to
    /// `rel` when `restore` (the old copy is the only one). No aside: nothing.
    pub fn remove_aside(&mut self, rel: &RelPath, restore: bool) -> Result<(), Failure> {
        let target = self.remote(rel.as_str());
        let aside = aside_name(&target);
        if restore && !self.is_remote_file(&target) {
            match self.ftp.rename(&aside, &target) {
                Ok(()) => {
                    log::info!("restored {rel} on the server from the copy a crash left renamed aside");
                    return Ok(());
                }
                // No aside, or (a new copy arrived meanwhile) it cannot go over it.
                Err(e) if matches!(reply_code(&e), Some(450 | 550 | 553)) => {}
                Err(e) => return Err(classify(&e, &format!("rename {} back", Escaped(&aside)))),
            }
        }
        match self.ftp.rm(&aside) {
            Ok(()) => {
                log::info!("removed {} left on the server by a crash", Escaped(&aside));
                Ok(())
            }
            Err(e) if matches!(reply_code(&e), Some(450 | 550 | 553)) => Ok(()),
            Err(e) => Err(classify(&e, &format!("DELE {}", Escaped(&aside)))),
        }
    }

    /// Removes an (empty) remote directory given by its full remote path.
    pub fn remove_dir(&mut self, remote: &str) -> Result<(), Failure> {
        match self.ftp.rmdir(remote) {
            Ok(()) => {
                self.forget_dir(remote);
                Ok(())
            }
            Err(e) => Err(classify(&e, &format!("RMD {}", Escaped(remote)))),
        }
    }

    /// The remote directories this session created since the last call.
    pub fn take_created(&mut self) -> Vec<String> {
        std::mem::take(&mut self.created)
    }

    pub fn features(&self) -> Features {
        self.features
    }

    /// Remembers that a command whose outcome does not matter failed at the
    /// connection level: its reply may still arrive and would be taken for
    /// the next command's, so the session must not be used again.
    pub(super) fn note(&mut self, r: Result<(), FtpError>) {
        if let Err(e) = r
            && reply_code(&e).is_none()
        {
            self.broken = true;
        }
    }

    /// Whether the session must be dropped (see [`Session::note`]).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether data connections use EPSV (else PASV or active mode).
    pub fn uses_epsv(&self) -> bool {
        self.epsv
    }

    /// Whether the server refused a rename over an existing file, so that
    /// old files are renamed aside first.
    pub fn renames_aside(&self) -> bool {
        self.rename_over_refused
    }

    /// Renames `tmp` over `target`. Servers that refuse to rename over an
    /// existing file get the old file renamed aside first and deleted after:
    /// the final name is missing for one round trip at most.
    pub(super) fn publish(&mut self, tmp: &str, target: &str) -> Result<(), Failure> {
        if !self.rename_over_refused && self.pipelines() {
            // With EPSV: the next upload's passive port in the same round trip.
            let mut cmds = vec![format!("RNFR {tmp}"), format!("RNTO {target}")];
            let more = self.jobs_waiting.as_ref().is_some_and(|n| n.load(Ordering::Relaxed) > 0);
            if more && self.epsv && !self.kept_ports_off.load(Ordering::Relaxed) {
                cmds.push("EPSV".to_string());
            }
            let mut replies = self.pipeline(&cmds)?.into_iter();
            let (Some(from), Some(to)) = (replies.next(), replies.next()) else {
                self.broken = true;
                return Err(Failure::new(Kind::Connection, "RNFR/RNTO: replies lost"));
            };
            if let Some(epsv) = replies.next() {
                self.ready_port = self.epsv_address(&epsv).map(|addr| (addr, std::time::Instant::now()));
                if self.ready_port.is_none() && !(epsv.is(4) || epsv.is(5)) {
                    // Not EPSV's reply (an extra one came after RNTO's): out of step.
                    let _ = self.out_of_step_reply("EPSV", &epsv);
                }
            }
            match (from.code, to.code) {
                (350, 200..=299) => return Ok(()),
                // RNFR done, RNTO refused (503 would mean RNTO came first).
                (350, code) if code != 503 => {
                    let f = classify(&to.into_error(), &format!("rename to {}", Escaped(target)));
                    if f.kind != Kind::Refused {
                        return Err(f);
                    }
                    log::debug!("{f}; trying to rename the old file aside");
                    return self.publish_aside(tmp, target);
                }
                // RNFR refused, and so RNTO out of sequence.
                (400..=502 | 504..=599, 503) => {
                    return Err(classify(&from.into_error(), &format!("rename to {}", Escaped(target))));
                }
                // Anything else means the server did not take the two in
                // order: rename one command at a time (RNFR first, which also
                // replaces any rename it still has pending).
                _ => {
                    self.out_of_step::<()>(&[&from, &to]);
                }
            }
        }
        if !self.rename_over_refused {
            match self.ftp.rename(tmp, target) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let f = classify(&e, &format!("rename to {}", Escaped(target)));
                    if f.kind != Kind::Refused {
                        return Err(f);
                    }
                    log::debug!("{f}; trying to rename the old file aside");
                }
            }
        }
        self.publish_aside(tmp, target)
    }

    /// Renames the file at `target` aside, `tmp` to `target`, and deletes
    /// the old file (see [`Session::publish`]).
    fn publish_aside(&mut self, tmp: &str, target: &str) -> Result<(), Failure> {
        let aside = aside_name(target);
        // Only a file is renamed aside, never a directory that has the name. An
        // old aside left by a crash is stale (the target exists) and goes first.
        let moved_aside = self.is_remote_file(target)
            && (self.ftp.rename(target, &aside).is_ok()
                || (self.ftp.rm(&aside).is_ok() && self.ftp.rename(target, &aside).is_ok()));
        match self.ftp.rename(tmp, target) {
            Ok(()) => {
                if moved_aside {
                    self.rename_over_refused = true;
                    let r = self.ftp.rm(&aside).map(drop);
                    self.note(r);
                }
                Ok(())
            }
            Err(e) => {
                if moved_aside {
                    let r = self.ftp.rename(aside.as_str(), target).map(drop);
                    self.note(r);
                }
                Err(classify(&e, &format!("rename to {}", Escaped(target))))
            }
        }
    }

    /// Whether `path` is a regular file on the server: MLST where the server
    /// has it; else SIZE answers and CWD into it fails.
    fn is_remote_file(&mut self, path: &str) -> bool {
        if self.features.mlsd {
            return self
                .ftp
                .mlst(Some(path))
                .ok()
                .and_then(|line| suppaftp::list::ListParser::parse_mlst(line.trim()).ok())
                .is_some_and(|f| f.is_file());
        }
        if self.ftp.size(path).is_err() {
            return false;
        }
        match self.ftp.pwd() {
            Ok(here) => {
                if self.ftp.cwd(path).is_ok() {
                    let r = self.ftp.cwd(&here).map(drop);
                    self.note(r);
                    false
                } else {
                    true
                }
            }
            Err(_) => false,
        }
    }

    /// Deletes the remote file `rel`; a file that is already gone is fine.
    pub fn delete(&mut self, rel: &RelPath) -> Result<(), Failure> {
        match self.ftp.rm(self.remote(rel.as_str())) {
            Ok(()) => Ok(()),
            Err(e) if reply_code(&e) == Some(550) => Ok(()),
            Err(e) => Err(classify(&e, &format!("DELE {rel}"))),
        }
    }

    /// Renames the remote `from` to `to` (files or directories).
    pub fn rename(&mut self, from: &RelPath, to: &RelPath) -> Result<(), Failure> {
        if let Some(dir) = to.parent() {
            let dir = self.remote(dir);
            self.ensure_dir(&dir)?;
        }
        let (from_r, to_r) = (self.remote(from.as_str()), self.remote(to.as_str()));
        self.ftp.rename(&from_r, &to_r).map_err(|e| classify(&e, &format!("rename {from} to {to}")))?;
        self.forget_dir(&from_r);
        Ok(())
    }

    /// Lists a remote directory (MLSD where the server has it, else LIST).
    pub fn list(&mut self, rel: Option<&RelPath>) -> Result<Vec<RemoteEntry>, Failure> {
        let dir = rel.map_or_else(|| self.remote_dir.clone(), |r| self.remote(r.as_str()));
        let shown = Escaped(&dir).to_string();
        if self.features.mlsd {
            match self.listing("MLSD", &dir, true) {
                Ok(entries) => return Ok(entries),
                // MLSD itself refused (not an EPSV before it): LIST then.
                Err(e)
                    if matches!(reply_code(&e), Some(500..=502))
                        && (!self.epsv || self.data_opened.load(Ordering::Relaxed)) =>
                {
                    self.features.mlsd = false;
                }
                Err(e) => return Err(self.listing_failed(&e, &format!("MLSD {shown}"))),
            }
        }
        self.listing("LIST", &dir, false).map_err(|e| self.listing_failed(&e, &format!("LIST {shown}")))
    }

    /// Runs `verb dir` (MLSD or LIST) and reads the listing within the
    /// bounds of [`read_listing`] (suppaftp's own listings read any amount).
    fn listing(&mut self, verb: &str, dir: &str, mlsd: bool) -> Result<Vec<RemoteEntry>, FtpError> {
        let timeout = self.timeout;
        self.with_data(|ftp| {
            let mut data = open_data(ftp, format!("{verb} {dir}"), timeout)?;
            // On an error, dropping `data` closes it and reads the final reply.
            let entries = read_listing(&mut data, mlsd).map_err(FtpError::ConnectionError)?;
            data.finish()?;
            Ok(entries)
        })
    }

    /// The failure of a listing: one past the bounds is refused (the caller
    /// goes on without it), and the session is not used again, as the
    /// server may still be sending.
    fn listing_failed(&mut self, e: &FtpError, what: &str) -> Failure {
        match e {
            FtpError::ConnectionError(io) if is_too_large(io) => {
                self.broken = true;
                let f =
                    Failure::new(Kind::Refused, format!("{what}: the server sent a listing with {io}; not using it"));
                log::warn!("warning: {f}");
                f
            }
            _ => classify(e, what),
        }
    }

    /// A cheap round trip to check the session is alive.
    pub fn noop(&mut self) -> Result<(), Failure> {
        self.ftp.noop().map_err(|e| classify(&e, "NOOP"))
    }

    pub fn welcome(&self) -> Option<&str> {
        self.ftp.get_welcome_msg()
    }

    /// Says goodbye; errors do not matter any more.
    pub fn quit(mut self) {
        let _ = self.ftp.quit();
    }
}

/// Sends the data command `cmd` (STOR, MLSD, LIST) through suppaftp and
/// returns its data connection, with the read and write timeouts every data
/// connection must have. Passive ones get theirs where they are made (the
/// stream builder in `connect`), but suppaftp sets none on the one it
/// accepts in active mode: a server that never reads would hang a worker.
pub(super) fn open_data<T: TlsStream>(
    ftp: &mut ImplFtpStream<T>,
    cmd: String,
    timeout: Duration,
) -> Result<TransferStream<T>, FtpError> {
    let (_, data) = ftp.custom_data_command(cmd, &[Status::AboutToSend, Status::AlreadyOpen])?;
    let socket = data.get_ref().get_ref();
    socket.set_read_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
    socket.set_write_timeout(Some(timeout)).map_err(FtpError::ConnectionError)?;
    socket.set_nodelay(true).map_err(FtpError::ConnectionError)?;
    Ok(data)
}
