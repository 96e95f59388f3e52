//! notify at the edge: filesystem events become [`Change`]s on the main
//! loop's channel, and no other module knows notify.
//!
//! What notify does not do and the main loop must: walk a directory created or
//! moved in (notify adds watches for it but reports nothing inside it), and
//! rescan everything after an overflow. Access events are dropped here, except
//! a close after writing: the uploader's own reads must not trigger it again.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

pub use crate::event::Change;
use crate::event::Event;
use crate::localfs::{FileKind, Tree};

pub struct Watcher {
    /// inotify (or the OS's events), or notify's poll watcher with `--poll`.
    _inner: Box<dyn notify::Watcher + Send>,
    /// Tells the loop when the mount table changes (Linux).
    _mounts: Option<MountWatch>,
}

impl Watcher {
    /// Watches `root`; with `poll`, by looking at every file at that interval
    /// (network and FUSE file systems raise no events for other machines'
    /// writes).
    pub fn start(root: &Path, recursive: bool, poll: Option<Duration>, tx: Sender<Event>) -> notify::Result<Self> {
        let tree = Tree::new(root);
        let tx_mounts = tx.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            for change in translate(res, &tree) {
                // The loop has stopped: nothing left to tell.
                let _ = tx.send(Event::Fs(change));
            }
        };
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut inner: Box<dyn notify::Watcher + Send> = match poll {
            // Size and mtime are compared, not contents: a poll reads no file.
            Some(every) => Box::new(notify::PollWatcher::new(
                handler,
                config.with_poll_interval(every).with_compare_contents(false),
            )?),
            None => Box::new(RecommendedWatcher::new(handler, config)?),
        };
        let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        match inner.watch(root, mode) {
            // The directories watched before the limit stay watched; the
            // periodic rescan covers the rest.
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                log::warn!("warning: {}", watch_limit_reached(root, recursive));
            }
            other => other?,
        }
        let mounts = match MountWatch::start(&tx_mounts) {
            Ok(m) => m,
            Err(e) => {
                log::warn!(
                    "warning: cannot follow the mount table ({e}): an unmount of the watch directory is noticed at the next rescan"
                );
                None
            }
        };
        Ok(Self { _inner: inner, _mounts: mounts })
    }
}

/// A thread blocked in `poll` on `/proc/self/mountinfo`, which the kernel
/// wakes whenever the mount table changes; it sends [`Change::Mounts`].
/// Ends when dropped (its stop pipe closes).
struct MountWatch {
    stop: Option<std::io::PipeWriter>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MountWatch {
    #[cfg(target_os = "linux")]
    fn start(tx: &Sender<Event>) -> std::io::Result<Option<Self>> {
        use rustix::event::{PollFd, PollFlags};
        let table = std::fs::File::open("/proc/self/mountinfo")?;
        let (stop_rx, stop_tx) = std::io::pipe()?;
        let tx = tx.clone();
        let thread = std::thread::Builder::new().name("mounts".into()).spawn(move || {
            loop {
                let mut fds = [PollFd::new(&table, PollFlags::PRI), PollFd::new(&stop_rx, PollFlags::IN)];
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                }
                if !fds[1].revents().is_empty() {
                    return;
                }
                if fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR)
                    && tx.send(Event::Fs(Change::Mounts)).is_err()
                {
                    return;
                }
            }
        })?;
        Ok(Some(Self { stop: Some(stop_tx), thread: Some(thread) }))
    }

    #[cfg(not(target_os = "linux"))]
    fn start(_tx: &Sender<Event>) -> std::io::Result<Option<Self>> {
        Ok(None)
    }
}

impl Drop for MountWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The line for a start that ran out of inotify watches: how many the
/// tree needs (one per directory), the limit now, and a value to raise it to.
fn watch_limit_reached(root: &Path, recursive: bool) -> String {
    let mut dirs = 1;
    Tree::new(root)
        .walk(Path::new(""), recursive, |_, kind| {
            dirs += usize::from(kind == FileKind::Dir);
            true
        })
        .for_each(drop);
    let limit: Option<u64> =
        std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").ok().and_then(|s| s.trim().parse().ok());
    let raise_to = limit.map_or(524_288, |l| (l + dirs as u64).next_power_of_two().max(524_288));
    format!(
        "the system's limit of inotify watches{} is reached: the watch directory holds {dirs} directories and \
         each needs one; those not watched raise no events, and their changes are found by the periodic rescan \
         (--rescan-interval); raise the limit above {dirs} plus what other programs use, such as \
         `sysctl fs.inotify.max_user_watches={raise_to}` (persist it in /etc/sysctl.d/), and restart ftpmonitor",
        limit.map(|l| format!(" (fs.inotify.max_user_watches = {l})")).unwrap_or_default()
    )
}

/// Explains an error, with the fix for the limit an operator can raise.
pub fn describe_error(e: &notify::Error) -> String {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => format!(
            "the system's limit of inotify watches is reached{}: some directories are not watched \
             (changes there are found by the periodic rescan); raise it with \
             `sysctl fs.inotify.max_user_watches=524288` (persist in /etc/sysctl.d/)",
            e.paths.first().map(|p| format!(" at {}", crate::relpath::EscapedPath(p))).unwrap_or_default()
        ),
        _ => format!("watch error: {e}"),
    }
}

fn translate(res: notify::Result<notify::Event>, tree: &Tree) -> Vec<Change> {
    let ev = match res {
        Ok(ev) => ev,
        Err(e) => return vec![Change::Error(describe_error(&e))],
    };
    if ev.need_rescan() {
        return vec![Change::Rescan];
    }
    let mut paths = ev.paths.into_iter();
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => paths.map(Change::Touched).collect(),
        EventKind::Access(_) => Vec::new(),
        EventKind::Create(CreateKind::Folder) => paths.map(Change::DirAppeared).collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => match (paths.next(), paths.next()) {
            (Some(from), Some(to)) => vec![Change::Renamed { from, to }],
            (Some(p), None) | (None, Some(p)) => vec![Change::Touched(p)],
            (None, None) => Vec::new(),
        },
        // A move inside the tree arrives as `From`, `To`, then `Both`; a move
        // out as a lone `From`, a move in as a lone `To`. The loop pairs them.
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => paths.map(Change::MovedOut).collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => paths.map(Change::MovedIn).collect(),
        EventKind::Modify(ModifyKind::Name(_)) => paths.map(|p| appeared(tree, p)).collect(),
        EventKind::Remove(_) => paths.map(Change::Removed).collect(),
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            paths.map(Change::Touched).collect()
        }
    }
}

/// Something moved in under this name: a directory is walked, a file (or a
/// link, even to a directory) waits. Looked at without following a link in
/// any component.
fn appeared(tree: &Tree, p: PathBuf) -> Change {
    let dir =
        tree.relative(&p).is_some_and(|rel| tree.lstat(rel).is_ok_and(|m| m.is_some_and(|m| m.kind == FileKind::Dir)));
    if dir { Change::DirAppeared(p) } else { Change::Touched(p) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, Flag};

    fn translate_w(res: notify::Result<notify::Event>) -> Vec<Change> {
        translate(res, &Tree::new("/w"))
    }

    fn ev(kind: EventKind, paths: &[&str]) -> notify::Result<notify::Event> {
        let mut e = notify::Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        Ok(e)
    }

    #[test]
    fn reads_and_opens_are_ignored_but_a_close_after_write_counts() {
        assert!(translate_w(ev(EventKind::Access(AccessKind::Open(AccessMode::Any)), &["/w/a"])).is_empty());
        assert!(translate_w(ev(EventKind::Access(AccessKind::Close(AccessMode::Read)), &["/w/a"])).is_empty());
        assert_eq!(
            translate_w(ev(EventKind::Access(AccessKind::Close(AccessMode::Write)), &["/w/a"])),
            vec![Change::Touched("/w/a".into())]
        );
        assert_eq!(
            translate_w(ev(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &["/w/a"])),
            vec![Change::Touched("/w/a".into())]
        );
    }

    #[test]
    fn folders_renames_and_overflow() {
        assert_eq!(
            translate_w(ev(EventKind::Create(CreateKind::Folder), &["/w/d"])),
            vec![Change::DirAppeared("/w/d".into())]
        );
        assert_eq!(
            translate_w(ev(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/w/a", "/w/b"])),
            vec![Change::Renamed { from: "/w/a".into(), to: "/w/b".into() }]
        );
        assert_eq!(
            translate_w(ev(EventKind::Modify(ModifyKind::Name(RenameMode::From)), &["/w/a"])),
            vec![Change::MovedOut("/w/a".into())]
        );
        let overflow = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(translate_w(Ok(overflow)), vec![Change::Rescan]);
    }
}
