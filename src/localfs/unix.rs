//! Unix: everything through descriptors. On Linux a path below the root is
//! opened with one `openat2` call (`RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`);
//! without openat2 (other systems, kernels before 5.6, a seccomp filter that
//! answers ENOSYS or EPERM) one `openat(O_NOFOLLOW | O_DIRECTORY)` per
//! directory. The last name is always looked at with `fstatat(…,
//! AT_SYMLINK_NOFOLLOW)` and opened with `O_NOFOLLOW` relative to its
//! directory's descriptor.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::{FileKind, Found, Meta, OpenError, Resolve, Tree};

/// Down to this depth a walk keeps each directory open while it visits the
/// directories in it; deeper ones are opened from the root by their path
/// (following no link either), so that a deep tree cannot use up the
/// process's descriptors.
pub(super) const KEEP_OPEN_DEPTH: usize = 64;

/// How directories are opened that are only passed through: `O_PATH` where
/// there is one (no read permission needed, as for a path lookup).
#[cfg(any(target_os = "linux", target_os = "android"))]
const THROUGH: OFlags = OFlags::PATH;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const THROUGH: OFlags = OFlags::RDONLY;

/// Set once openat2 turned out to be unavailable: the component walk from
/// then on, without trying again.
#[cfg(target_os = "linux")]
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The watch directory, never through a link at its own name.
fn open_root(tree: &Tree, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::open(&tree.root, flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

/// Errors that, while resolving the directories above a name, mean that the
/// name is not in the tree: something is missing, or is a link or a file
/// where a directory was.
fn not_in_tree(e: Errno) -> bool {
    // FreeBSD and DragonFly report O_NOFOLLOW on a link as EMLINK.
    #[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
    if e == Errno::MLINK {
        return true;
    }
    e == Errno::NOENT || e == Errno::NOTDIR || e == Errno::LOOP
}

/// Opens the directory `rel` below `base` with `flags`, following no link in
/// any component.
fn open_dir_below(tree: &Tree, base: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut names = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .peekable();
    if names.peek().is_none() {
        return rustix::fs::openat(base, c".", flags, Mode::empty());
    }
    if let Some(opened) = openat2_below(tree, base, rel, flags) {
        return opened;
    }
    let mut fd: Option<OwnedFd> = None;
    while let Some(name) = names.next() {
        let step = if names.peek().is_some() {
            THROUGH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            flags
        };
        let at = fd.as_ref().map_or(base, AsFd::as_fd);
        fd = Some(rustix::fs::openat(at, name, step, Mode::empty())?);
    }
    fd.ok_or(Errno::INVAL)
}

/// The kernel's own no-links resolution, or `None` where it is unavailable.
#[cfg(target_os = "linux")]
fn openat2_below(tree: &Tree, base: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> Option<Result<OwnedFd, Errno>> {
    use std::sync::atomic::Ordering;

    use rustix::fs::ResolveFlags;
    if tree.resolve != Resolve::Kernel || NO_OPENAT2.load(Ordering::Relaxed) {
        return None;
    }
    match rustix::fs::openat2(base, rel, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH) {
        // ENOSYS: a kernel before 5.6; EPERM: a seccomp filter (older
        // container runtimes) refusing a system call it does not know.
        Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
            if !NO_OPENAT2.swap(true, Ordering::Relaxed) {
                log::info!(
                    "openat2 is not available ({e}); paths below the watch directory are opened one \
                     component at a time instead"
                );
            }
            None
        }
        other => Some(other),
    }
}

#[cfg(not(target_os = "linux"))]
fn openat2_below(tree: &Tree, _: BorrowedFd<'_>, _: &Path, _: OFlags) -> Option<Result<OwnedFd, Errno>> {
    let _component_walk_anyway = tree.resolve == Resolve::Components;
    None
}

/// The directory `parent` (relative) with the root's descriptor as a start.
fn open_parent(tree: &Tree, parent: &Path) -> Result<OwnedFd, Errno> {
    let root = open_root(tree, THROUGH)?;
    if parent.as_os_str().is_empty() { Ok(root) } else { open_dir_below(tree, root.as_fd(), parent, THROUGH) }
}

pub(super) fn lstat(tree: &Tree, rel: &Path) -> io::Result<Option<Meta>> {
    let (parent, name) = super::split(rel);
    let Some(name) = name else {
        return match rustix::fs::lstat(&tree.root) {
            Ok(st) => Ok(Some(meta_of(&st))),
            Err(e) if e == Errno::NOENT || e == Errno::NOTDIR => Ok(None),
            Err(e) => Err(e.into()),
        };
    };
    let dir = match open_parent(tree, parent) {
        Ok(dir) => dir,
        Err(e) if not_in_tree(e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(meta_of(&st))),
        Err(e) if e == Errno::NOENT => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn open_file(tree: &Tree, rel: &Path) -> Result<(File, Meta), OpenError> {
    let (parent, name) = super::split(rel);
    let Some(name) = name else {
        return Err(OpenError::NotRegular(FileKind::Dir));
    };
    let dir = open_parent(tree, parent)
        .map_err(|e| if not_in_tree(e) { OpenError::Gone } else { OpenError::Io(e.into()) })?;
    // Looked at first, so that a FIFO or a device is never opened at all.
    let looked = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| if e == Errno::NOENT { OpenError::Gone } else { OpenError::Io(e.into()) })?;
    let kind = meta_of(&looked).kind;
    if kind != FileKind::File {
        return Err(OpenError::NotRegular(kind));
    }
    // O_NONBLOCK: something swapped in since the look (a FIFO without a
    // writer) cannot block the open; O_NOCTTY: nor become our terminal.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(|e| {
        if e == Errno::NOENT {
            OpenError::Gone
        } else if not_in_tree(e) {
            // ELOOP (EMLINK): a link swapped in since the look.
            OpenError::NotRegular(FileKind::Symlink)
        } else {
            OpenError::Io(e.into())
        }
    })?;
    let meta = meta_of(&rustix::fs::fstat(&fd).map_err(|e| OpenError::Io(e.into()))?);
    if meta.kind != FileKind::File {
        return Err(OpenError::NotRegular(meta.kind));
    }
    let status = rustix::fs::fcntl_getfl(&fd).map_err(|e| OpenError::Io(e.into()))?;
    rustix::fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK).map_err(|e| OpenError::Io(e.into()))?;
    Ok((File::from(fd), meta))
}

pub(super) fn root_has_entries(tree: &Tree) -> io::Result<bool> {
    let mut dir = Dir::new(open_root(tree, OFlags::RDONLY)?)?;
    while let Some(entry) = dir.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A directory found by a walk, not entered yet.
struct Pending {
    /// The directory it was found in, still open; `None` below
    /// [`KEEP_OPEN_DEPTH`]: opened from the root by `rel`.
    parent: Option<Arc<Dir>>,
    name: OsString,
    rel: PathBuf,
    depth: usize,
}

pub(super) struct Walk {
    tree: Tree,
    recursive: bool,
    /// Where the walk begins, until it is looked at.
    start: Option<PathBuf>,
    /// The root, for directories reached by path.
    root: Option<Arc<OwnedFd>>,
    pending: Vec<Pending>,
    ready: VecDeque<Found>,
}

impl Walk {
    pub(super) fn new(tree: &Tree, start: &Path, recursive: bool) -> Self {
        Self {
            tree: tree.clone(),
            recursive,
            start: Some(start.to_path_buf()),
            root: None,
            pending: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    pub(super) fn next(&mut self, keep: &mut dyn FnMut(&Path, FileKind) -> bool) -> Option<Found> {
        loop {
            if let Some(found) = self.ready.pop_front() {
                return Some(found);
            }
            if let Some(start) = self.start.take() {
                self.begin(start, keep);
                continue;
            }
            let next = self.pending.pop()?;
            self.enter(next, keep);
        }
    }

    fn begin(&mut self, start: PathBuf, keep: &mut dyn FnMut(&Path, FileKind) -> bool) {
        let root = match open_root(&self.tree, THROUGH) {
            Ok(fd) => fd,
            Err(e) => {
                if start.as_os_str().is_empty() || !not_in_tree(e) {
                    self.ready.push_back(Found::Unreadable(start, e.into()));
                }
                return;
            }
        };
        let opened = open_dir_below(&self.tree, root.as_fd(), &start, OFlags::RDONLY);
        self.root = Some(Arc::new(root));
        match opened {
            Ok(fd) => self.read(fd, start, 0, keep),
            Err(e) if start.as_os_str().is_empty() => self.ready.push_back(Found::Unreadable(start, e.into())),
            Err(e) => {
                let looked = lstat(&self.tree, &start);
                self.unopened(start, looked, e);
            }
        }
    }

    fn enter(&mut self, dir: Pending, keep: &mut dyn FnMut(&Path, FileKind) -> bool) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let opened = match (&dir.parent, &self.root) {
            (Some(parent), _) => parent.fd().and_then(|fd| rustix::fs::openat(fd, &dir.name, flags, Mode::empty())),
            (None, Some(root)) => open_dir_below(&self.tree, root.as_fd(), &dir.rel, OFlags::RDONLY),
            (None, None) => Err(Errno::BADF),
        };
        match opened {
            Ok(fd) => self.read(fd, dir.rel, dir.depth, keep),
            Err(e) => {
                // Swapped for something else since it was listed?
                let looked = match &dir.parent {
                    Some(parent) => parent
                        .fd()
                        .and_then(|fd| rustix::fs::statat(fd, &dir.name, AtFlags::SYMLINK_NOFOLLOW))
                        .map(|st| Some(meta_of(&st)))
                        .or_else(|e| if e == Errno::NOENT { Ok(None) } else { Err(e.into()) }),
                    None => lstat(&self.tree, &dir.rel),
                };
                self.unopened(dir.rel, looked, e);
            }
        }
    }

    /// Reports a directory that could not be opened as what it is now.
    fn unopened(&mut self, rel: PathBuf, looked: io::Result<Option<Meta>>, e: Errno) {
        match looked {
            Ok(None) => {}
            Ok(Some(meta)) => match meta.kind {
                FileKind::File => self.ready.push_back(Found::File(rel, meta)),
                FileKind::Dir => self.ready.push_back(Found::Unreadable(rel, e.into())),
                kind => self.ready.push_back(Found::Skipped(rel, kind)),
            },
            Err(looked) => self.ready.push_back(Found::Unreadable(rel, looked)),
        }
    }

    /// Lists the directory `fd` (at `rel`): its files and what is skipped
    /// become ready, its directories pending.
    fn read(&mut self, fd: OwnedFd, rel: PathBuf, depth: usize, keep: &mut dyn FnMut(&Path, FileKind) -> bool) {
        let mut dir = match Dir::new(fd) {
            Ok(dir) => dir,
            Err(e) => {
                self.ready.push_back(Found::Unreadable(rel, e.into()));
                return;
            }
        };
        let mut entries = Vec::new();
        while let Some(entry) = dir.read() {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        entries.push((OsStr::from_bytes(name).to_os_string(), entry.file_type()));
                    }
                }
                Err(e) => {
                    // What was listed is reported; the rest is unknown.
                    self.ready.push_back(Found::Unreadable(rel.clone(), e.into()));
                    break;
                }
            }
        }
        let dir = Arc::new(dir);
        for (name, file_type) in entries {
            let child = rel.join(&name);
            // The kind from the directory entry; `None` where the file
            // system does not say (then it is looked at first).
            let listed = match file_type {
                FileType::Directory => Some(FileKind::Dir),
                FileType::Symlink => Some(FileKind::Symlink),
                FileType::RegularFile => Some(FileKind::File),
                FileType::Fifo | FileType::Socket | FileType::CharacterDevice | FileType::BlockDevice => {
                    Some(FileKind::Special)
                }
                _ => None,
            };
            if listed.is_some_and(|kind| !keep(&child, kind)) {
                continue;
            }
            let kind = match listed {
                Some(kind) if kind != FileKind::File => kind,
                // A regular file (its size and time are needed), or a file
                // system that does not say.
                _ => match dir.fd().and_then(|fd| rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW)) {
                    Ok(st) => {
                        let meta = meta_of(&st);
                        if listed.is_none() && !keep(&child, meta.kind) {
                            continue;
                        }
                        if meta.kind == FileKind::File {
                            self.ready.push_back(Found::File(child, meta));
                            continue;
                        }
                        meta.kind
                    }
                    Err(e) if e == Errno::NOENT => continue,
                    Err(e) => {
                        self.ready.push_back(Found::Unreadable(child, e.into()));
                        continue;
                    }
                },
            };
            match kind {
                FileKind::Dir if self.recursive => self.pending.push(Pending {
                    parent: (depth < KEEP_OPEN_DEPTH).then(|| Arc::clone(&dir)),
                    name,
                    rel: child,
                    depth: depth + 1,
                }),
                FileKind::Dir | FileKind::File => {}
                kind => self.ready.push_back(Found::Skipped(child, kind)),
            }
        }
    }
}

/// What the threads of [`walk_parallel`] share: the directories found and not
/// read yet, and how many are being read (the walk is over when none is
/// left and none is being read).
struct Shared {
    pending: Vec<Pending>,
    busy: usize,
}

/// A walk of `start` on `threads` threads at once (this one among them):
/// each reads the next directory not read yet, so that the system calls of
/// a big tree (a stat per file) run side by side. The same entries as
/// [`Walk`] finds, in chunks (each directory's entries together, in no
/// particular order of directories); each thread has its own `C` for
/// `keep`. Should a helper thread fail, the start is reported unreadable as
/// well (what it would have found is unknown, not gone); a failure on the
/// calling thread goes on up, as in [`Walk`].
pub(super) fn walk_parallel<C, K>(
    tree: &Tree,
    start: &Path,
    recursive: bool,
    threads: usize,
    keep: &K,
) -> Vec<Vec<Found>>
where
    C: Default,
    K: Fn(&Path, FileKind, &mut C) -> bool + Sync,
{
    let mut first = Walk::new(tree, start, recursive);
    let mut cache = C::default();
    let mut chunks = Vec::new();
    if let Some(start) = first.start.take() {
        first.begin(start, &mut |p: &Path, k: FileKind| keep(p, k, &mut cache));
    }
    chunks.push(Vec::from(std::mem::take(&mut first.ready)));
    if first.pending.is_empty() {
        return chunks;
    }
    let shared = Mutex::new(Shared { pending: std::mem::take(&mut first.pending), busy: 0 });
    let wake = Condvar::new();
    let root = first.root.take();
    let failed = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads.max(1))
            .map_while(|_| {
                let root = root.clone();
                let (shared, wake) = (&shared, &wake);
                // Fewer threads if the system will not give more.
                std::thread::Builder::new()
                    .name("walk".into())
                    .spawn_scoped(s, move || walk_some(tree, recursive, root, shared, wake, keep))
                    .ok()
            })
            .collect();
        chunks.push(walk_some(tree, recursive, root.clone(), &shared, &wake, keep));
        let mut failed = false;
        for h in helpers {
            match h.join() {
                Ok(found) => chunks.push(found),
                Err(_) => failed = true,
            }
        }
        failed
    });
    if failed {
        chunks.push(vec![Found::Unreadable(start.to_path_buf(), io::Error::other("a thread of the walk failed"))]);
    }
    chunks
}

/// One thread of [`walk_parallel`]: reads directories until none is left.
fn walk_some<C, K>(
    tree: &Tree,
    recursive: bool,
    root: Option<Arc<OwnedFd>>,
    shared: &Mutex<Shared>,
    wake: &Condvar,
    keep: &K,
) -> Vec<Found>
where
    C: Default,
    K: Fn(&Path, FileKind, &mut C) -> bool + Sync,
{
    /// Counts a directory as read even if reading it failed badly, so that
    /// the other threads do not wait for it for ever.
    struct Reading<'a>(&'a Mutex<Shared>, &'a Condvar);
    impl Drop for Reading<'_> {
        fn drop(&mut self) {
            let mut shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            shared.busy -= 1;
            self.1.notify_all();
        }
    }
    let mut walk =
        Walk { tree: tree.clone(), recursive, start: None, root, pending: Vec::new(), ready: VecDeque::new() };
    let mut cache = C::default();
    let mut found = Vec::new();
    loop {
        let dir = {
            let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(dir) = s.pending.pop() {
                    s.busy += 1;
                    break dir;
                }
                if s.busy == 0 {
                    return found;
                }
                s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let reading = Reading(shared, wake);
        walk.enter(dir, &mut |p: &Path, k: FileKind| keep(p, k, &mut cache));
        found.extend(walk.ready.drain(..));
        if !walk.pending.is_empty() {
            shared.lock().unwrap_or_else(PoisonError::into_inner).pending.append(&mut walk.pending);
        }
        drop(reading);
    }
}

fn kind_of(file_type: FileType) -> FileKind {
    match file_type {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Special,
    }
}

/// The field types of `struct stat` differ between systems.
#[allow(clippy::unnecessary_cast, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn meta_of(st: &Stat) -> Meta {
    Meta {
        kind: kind_of(FileType::from_raw_mode(st.st_mode as _)),
        len: st.st_size as u64,
        modified: system_time(st.st_mtime as i64, st.st_mtime_nsec as u32),
    }
}

/// The time `secs` seconds and `nanos` nanoseconds after the epoch, as
/// `std::fs::Metadata::modified` would give it for the same file.
fn system_time(secs: i64, nanos: u32) -> Option<SystemTime> {
    let whole = match u64::try_from(secs) {
        Ok(after) => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
    };
    whole?.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Whether `name` in `dir` is still the opened `file` (same device and
/// inode), looked at without following a link.
fn same_file(dir: &OwnedFd, name: &OsStr, file: &File) -> Result<bool, Errno> {
    let now = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(e) if e == Errno::NOENT => return Ok(false),
        Err(e) => return Err(e),
    };
    let opened = rustix::fs::fstat(file)?;
    Ok(now.st_dev == opened.st_dev && now.st_ino == opened.st_ino)
}

/// The parent's descriptor and the last name of `rel`.
fn parent_and_name<'a>(tree: &Tree, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
    let (parent, name) = super::split(rel);
    let name = name.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the watch directory itself"))?;
    Ok((open_parent(tree, parent)?, name))
}

pub(super) fn remove_if_same(tree: &Tree, rel: &Path, file: &File) -> io::Result<bool> {
    let (dir, name) = parent_and_name(tree, rel)?;
    if !same_file(&dir, name, file)? {
        return Ok(false);
    }
    rustix::fs::unlinkat(&dir, name, AtFlags::empty())?;
    Ok(true)
}

/// The directory `rel` below the root of `tree`, created where missing,
/// following no link (a link in the way is an error), opened for reading.
fn make_dirs(tree: &Tree, rel: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = open_root(tree, OFlags::RDONLY)?;
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        fd = match rustix::fs::openat(&fd, name, flags, Mode::empty()) {
            Ok(next) => next,
            Err(e) if e == Errno::NOENT => {
                match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(e) if e == Errno::EXIST => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::openat(&fd, name, flags, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(fd)
}

pub(super) fn archive(tree: &Tree, rel: &Path, file: &File, to: &Tree) -> io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let (src, name) = parent_and_name(tree, rel)?;
    if !same_file(&src, name, file)? {
        return Ok(false);
    }
    let dst = make_dirs(to, rel.parent().unwrap_or(Path::new("")))?;
    match rustix::fs::renameat(&src, name, &dst, name) {
        Ok(()) => return Ok(true),
        Err(e) if e == Errno::XDEV => {}
        Err(e) => return Err(e.into()),
    }
    // Another file system: a copy under a temporary name, on disk before it
    // takes the final name, and only then the original goes.
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".ftpmonitor-archive");
    let _ = rustix::fs::unlinkat(&dst, tmp.as_os_str(), AtFlags::empty());
    let st = rustix::fs::fstat(file)?;
    let out = rustix::fs::openat(
        &dst,
        tmp.as_os_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(st.st_mode & 0o7777),
    )?;
    let mut out = File::from(out);
    let mut from = file;
    let copied = (|| {
        from.seek(SeekFrom::Start(0))?;
        io::copy(&mut from, &mut out)?;
        if let Ok(modified) = file.metadata().and_then(|m| m.modified()) {
            let _ = out.set_modified(modified);
        }
        out.sync_all()
    })();
    if let Err(e) = copied {
        let _ = rustix::fs::unlinkat(&dst, tmp.as_os_str(), AtFlags::empty());
        return Err(e);
    }
    rustix::fs::renameat(&dst, tmp.as_os_str(), &dst, name)?;
    rustix::fs::fsync(&dst)?;
    // Rewritten in place meanwhile? The archived copy stays; so does the file.
    if same_file(&src, name, file)? && meta_of(&rustix::fs::fstat(file)?) == meta_of(&st) {
        rustix::fs::unlinkat(&src, name, AtFlags::empty())?;
    }
    Ok(true)
}

pub(super) fn remove_empty_parents(tree: &Tree, rel: &Path) {
    let mut dir = rel.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        let Ok((parent, name)) = parent_and_name(tree, d) else { return };
        if rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).is_err() {
            return;
        }
        dir = d.parent();
    }
}
