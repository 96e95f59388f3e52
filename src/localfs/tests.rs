//! Every test runs with both ways of resolving a path: the kernel's
//! (openat2, where there is one) and the component-by-component fallback.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;

const SECRET: &[u8] = b"secret outside the tree";

/// A watch directory `w` and, next to it, `outside` with a secret in it:
///
/// ```text
/// w/f.txt  w/d/g.txt  w/d/e/h.txt  w/empty/
/// w/link -> outside/secret.txt   w/dlink -> outside   w/fifo
/// ```
struct Fixture {
    _tmp: tempfile::TempDir,
    w: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let (w, outside) = (base.join("w"), base.join("outside"));
    std::fs::create_dir_all(w.join("d/e")).unwrap();
    std::fs::create_dir_all(w.join("empty")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::fs::write(outside.join("g.txt"), SECRET).unwrap();
    std::fs::write(w.join("f.txt"), b"f").unwrap();
    std::fs::write(w.join("d/g.txt"), b"g").unwrap();
    std::fs::write(w.join("d/e/h.txt"), b"h").unwrap();
    symlink(outside.join("secret.txt"), w.join("link")).unwrap();
    symlink(&outside, w.join("dlink")).unwrap();
    mkfifo(&w.join("fifo"));
    Fixture { _tmp: tmp, w, outside }
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::RUSR, 0).unwrap();
}

fn both(root: &Path) -> [Tree; 2] {
    [Tree::new(root), Tree::component_by_component(root)]
}

fn kind(tree: &Tree, rel: &str) -> Option<FileKind> {
    tree.lstat(Path::new(rel)).unwrap().map(|m| m.kind)
}

/// What a walk reported, by path relative to the root.
fn walked(tree: &Tree, start: &str, recursive: bool, mut keep: impl FnMut(&Path) -> bool) -> BTreeMap<String, String> {
    tree.walk(Path::new(start), recursive, |p, _| keep(p))
        .map(|found| {
            let (path, what) = match found {
                Found::File(p, m) => (p, format!("file {}", m.len)),
                Found::Skipped(p, k) => (p, format!("{k:?}")),
                Found::Unreadable(p, e) => (p, format!("unreadable: {e}")),
            };
            // Paths come relative to the root.
            assert!(path.is_relative(), "{}", path.display());
            (path.to_string_lossy().into_owned(), what)
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| ((*a).to_string(), (*b).to_string())).collect()
}

#[test]
fn lstat_follows_no_link_in_any_component() {
    let fx = fixture();
    for tree in both(&fx.w) {
        assert_eq!(kind(&tree, ""), Some(FileKind::Dir));
        assert_eq!(kind(&tree, "f.txt"), Some(FileKind::File));
        assert_eq!(kind(&tree, "d"), Some(FileKind::Dir));
        assert_eq!(kind(&tree, "d/e/h.txt"), Some(FileKind::File));
        assert_eq!(kind(&tree, "link"), Some(FileKind::Symlink));
        assert_eq!(kind(&tree, "dlink"), Some(FileKind::Symlink));
        assert_eq!(kind(&tree, "fifo"), Some(FileKind::Special));
        // Below a link, below a file, missing: not in the tree.
        assert_eq!(kind(&tree, "dlink/secret.txt"), None);
        assert_eq!(kind(&tree, "f.txt/x"), None);
        assert_eq!(kind(&tree, "missing"), None);
        assert_eq!(kind(&tree, "missing/x"), None);
        assert_eq!(tree.lstat(Path::new("d/e/h.txt")).unwrap().unwrap().len, 1);
        let err = tree.lstat(Path::new("../outside/secret.txt")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn a_link_anywhere_in_the_path_is_refused_by_open() {
    let fx = fixture();
    // d/sub -> outside: a link at the end of a longer parent; alias -> d: a
    // relative link that stays inside the tree; dlink/inner: a link in the
    // middle of the parent.
    symlink(&fx.outside, fx.w.join("d/sub")).unwrap();
    symlink("d", fx.w.join("alias")).unwrap();
    std::fs::create_dir(fx.outside.join("inner")).unwrap();
    std::fs::write(fx.outside.join("inner/secret.txt"), SECRET).unwrap();
    for tree in both(&fx.w) {
        let (mut file, meta) = tree.open_file(Path::new("d/e/h.txt")).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!((bytes.as_slice(), meta.kind, meta.len), (b"h".as_slice(), FileKind::File, 1));

        let open = |rel: &str| tree.open_file(Path::new(rel)).map(|_| ()).unwrap_err();
        assert!(matches!(open("link"), OpenError::NotRegular(FileKind::Symlink)));
        assert!(matches!(open("dlink/secret.txt"), OpenError::Gone));
        assert!(matches!(open("d/sub/g.txt"), OpenError::Gone));
        assert!(matches!(open("dlink/inner/secret.txt"), OpenError::Gone));
        assert!(matches!(open("alias/g.txt"), OpenError::Gone));
        assert!(matches!(open("alias/e/h.txt"), OpenError::Gone));
        for rel in ["dlink/inner/secret.txt", "alias/g.txt", "alias/e/h.txt", "d/sub/inner/secret.txt"] {
            assert_eq!(kind(&tree, rel), None, "{rel}");
        }
        assert!(matches!(open("d"), OpenError::NotRegular(FileKind::Dir)));
        assert!(matches!(open("missing.txt"), OpenError::Gone));
        assert!(matches!(open("f.txt/x"), OpenError::Gone));
        assert!(matches!(open("../outside/secret.txt"), OpenError::Io(_)));
    }
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let fx = fixture();
    mkfifo(&fx.outside.join("fifo"));
    symlink(fx.outside.join("fifo"), fx.w.join("fifo-link")).unwrap();
    for tree in both(&fx.w) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fifo = tree.open_file(Path::new("fifo")).map(|_| ()).unwrap_err();
            let link = tree.open_file(Path::new("fifo-link")).map(|_| ()).unwrap_err();
            let _ = tx.send((fifo, link));
        });
        // A blocked open would leave this thread behind; the test fails first.
        let (fifo, link) = rx.recv_timeout(Duration::from_secs(10)).expect("open_file blocked on a FIFO");
        assert!(matches!(fifo, OpenError::NotRegular(FileKind::Special)), "{fifo:?}");
        assert!(matches!(link, OpenError::NotRegular(FileKind::Symlink)), "{link:?}");
    }
}

#[test]
fn an_opened_file_reads_without_o_nonblock() {
    let fx = fixture();
    let (file, _) = Tree::new(&fx.w).open_file(Path::new("f.txt")).unwrap();
    let flags = rustix::fs::fcntl_getfl(&file).unwrap();
    assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
}

#[test]
fn a_walk_reports_files_and_skips_links_and_specials_without_entering_them() {
    let fx = fixture();
    let expected = map(&[
        ("f.txt", "file 1"),
        ("d/g.txt", "file 1"),
        ("d/e/h.txt", "file 1"),
        ("link", "Symlink"),
        ("dlink", "Symlink"),
        ("fifo", "Special"),
    ]);
    for tree in both(&fx.w) {
        assert_eq!(walked(&tree, "", true, |_| true), expected);
        // Top level only.
        assert_eq!(
            walked(&tree, "", false, |_| true),
            map(&[("f.txt", "file 1"), ("link", "Symlink"), ("dlink", "Symlink"), ("fifo", "Special")])
        );
        // From a subdirectory.
        assert_eq!(walked(&tree, "d", true, |_| true), map(&[("d/g.txt", "file 1"), ("d/e/h.txt", "file 1")]));
    }
}

#[test]
fn a_walk_of_a_link_reports_the_link_and_a_walk_below_one_finds_nothing() {
    let fx = fixture();
    for tree in both(&fx.w) {
        assert_eq!(walked(&tree, "dlink", true, |_| true), map(&[("dlink", "Symlink")]));
        assert_eq!(walked(&tree, "dlink/sub", true, |_| true), map(&[]));
        assert_eq!(walked(&tree, "f.txt", true, |_| true), map(&[("f.txt", "file 1")]));
        assert_eq!(walked(&tree, "missing", true, |_| true), map(&[]));
        assert_eq!(walked(&tree, "empty", true, |_| true), map(&[]));
    }
}

#[test]
fn a_walk_leaves_out_what_keep_refuses_before_entering_it() {
    let fx = fixture();
    for tree in both(&fx.w) {
        let mut asked = Vec::new();
        // keep is asked with paths relative to the root.
        let d = Path::new("d");
        let found = walked(&tree, "", true, |p| {
            asked.push(p.to_path_buf());
            p != d && p.file_name() != Some(std::ffi::OsStr::new("fifo"))
        });
        assert_eq!(found, map(&[("f.txt", "file 1"), ("link", "Symlink"), ("dlink", "Symlink")]));
        assert!(asked.iter().any(|p| p == d), "never asked about d: {asked:?}");
        assert!(!asked.iter().any(|p| p.starts_with(d) && p != d), "asked about what is below d: {asked:?}");
    }
}

#[test]
fn a_directory_swapped_for_a_link_in_the_middle_of_a_walk_is_not_entered() {
    let fx = fixture();
    for (i, tree) in both(&fx.w).into_iter().enumerate() {
        let d = fx.w.join("d");
        let moved = fx.w.join(format!("d-moved-{i}"));
        // The walk has listed the root and asks about d before it enters
        // it: that is when d becomes a link to the secrets.
        let found = walked(&tree, "", true, |p| {
            if p == Path::new("d") {
                std::fs::rename(&d, &moved).unwrap();
                symlink(&fx.outside, &d).unwrap();
            }
            true
        });
        assert_eq!(found.get("d").map(String::as_str), Some("Symlink"), "{found:?}");
        assert!(!found.keys().any(|k| k.starts_with("d/")), "entered the link: {found:?}");
        // Back for the next round.
        std::fs::remove_file(&d).unwrap();
        std::fs::rename(&moved, &d).unwrap();
    }
}

#[test]
fn deep_trees_are_walked_without_running_out_of_descriptors_and_links_deep_down_are_not_entered() {
    let fx = fixture();
    let depth = 2 * super::unix::KEEP_OPEN_DEPTH + 10;
    let mut rel = PathBuf::new();
    for i in 0..depth {
        rel.push(format!("n{i}"));
        std::fs::create_dir(fx.w.join(&rel)).unwrap();
        std::fs::write(fx.w.join(&rel).join("x"), b"x").unwrap();
    }
    // A link to the secrets far below the directories kept open.
    symlink(&fx.outside, fx.w.join(&rel).join("deep-link")).unwrap();
    for tree in both(&fx.w) {
        let found = walked(&tree, "n0", true, |_| true);
        assert_eq!(found.values().filter(|v| *v == "file 1").count(), depth, "{found:?}");
        let link = rel.join("deep-link").to_string_lossy().into_owned();
        assert_eq!(found.get(&link).map(String::as_str), Some("Symlink"));
        assert!(!found.keys().any(|k| k.contains("secret")), "{found:?}");
        assert_eq!(kind(&tree, &rel.join("x").to_string_lossy()), Some(FileKind::File));
    }
}

#[test]
fn an_unreadable_directory_is_reported_as_such() {
    if unsafe { libc::geteuid() } == 0 {
        // Permissions do not stop root.
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture();
    std::fs::set_permissions(fx.w.join("d/e"), std::fs::Permissions::from_mode(0o000)).unwrap();
    for tree in both(&fx.w) {
        let found = walked(&tree, "d", true, |_| true);
        assert!(found.get("d/e").is_some_and(|v| v.starts_with("unreadable")), "{found:?}");
        assert_eq!(found.get("d/g.txt").map(String::as_str), Some("file 1"));
    }
    std::fs::set_permissions(fx.w.join("d/e"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_root_is_never_looked_at_through_a_link() {
    let fx = fixture();
    let empty = fx.w.join("empty");
    let via_link = fx.w.parent().unwrap().join("w-link");
    symlink(&fx.w, &via_link).unwrap();
    for tree in both(&fx.w) {
        assert!(tree.root_is_dir());
        assert!(tree.root_has_entries().unwrap());
    }
    for tree in both(&empty) {
        assert!(!tree.root_has_entries().unwrap());
    }
    for tree in both(&via_link) {
        assert!(!tree.root_is_dir());
        assert!(tree.root_has_entries().is_err());
        assert!(matches!(tree.open_file(Path::new("f.txt")), Err(OpenError::Gone)));
        assert_eq!(tree.lstat(Path::new("f.txt")).unwrap(), None);
        let found = walked(&tree, "", true, |_| true);
        assert!(found.len() == 1 && found.values().all(|v| v.starts_with("unreadable")), "{found:?}");
    }
}

#[test]
fn metadata_matches_what_std_reports_to_the_nanosecond() {
    let fx = fixture();
    let path = fx.w.join("f.txt");
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    for t in [
        SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
        SystemTime::UNIX_EPOCH - Duration::new(1, 500_000_000),
    ] {
        file.set_modified(t).unwrap();
        let std_meta = std::fs::symlink_metadata(&path).unwrap();
        let std_stamp = crate::localfs::Stamp::of(&std_meta);
        for tree in both(&fx.w) {
            let looked = tree.lstat(Path::new("f.txt")).unwrap().unwrap();
            assert_eq!(looked.stamp(), std_stamp);
            assert_eq!(looked.modified, Some(t));
            let walked: Vec<_> = tree
                .walk(Path::new(""), false, |p, _| p == Path::new("f.txt"))
                .filter_map(|f| if let Found::File(_, m) = f { Some(m.stamp()) } else { None })
                .collect();
            assert_eq!(walked, vec![std_stamp]);
            assert_eq!(tree.open_file(Path::new("f.txt")).unwrap().1.stamp(), std_stamp);
        }
    }
}

/// What `walk_all` reported, as [`walked`] gives it, and whether each
/// directory's entries came together in one chunk.
fn walked_all(tree: &Tree, start: &str, threads: usize, skip: &str) -> (BTreeMap<String, String>, bool) {
    let chunks = tree.walk_all(Path::new(start), true, threads, |p, _, asked: &mut usize| {
        *asked += 1;
        !p.starts_with(skip) || skip.is_empty()
    });
    let mut together = true;
    let mut dirs_seen = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for chunk in chunks {
        let mut last: Option<PathBuf> = None;
        for found in chunk {
            let (path, what) = match found {
                Found::File(p, m) => (p, format!("file {}", m.len)),
                Found::Skipped(p, k) => (p, format!("{k:?}")),
                Found::Unreadable(p, e) => (p, format!("unreadable: {e}")),
            };
            let dir = path.parent().map(Path::to_path_buf);
            if dir != last {
                together &= dirs_seen.insert(dir.clone());
                last = dir;
            }
            out.insert(path.to_string_lossy().into_owned(), what);
        }
    }
    (out, together)
}

#[test]
fn a_walk_on_several_threads_finds_what_a_walk_on_one_does() {
    let fx = fixture();
    for a in 0..6 {
        for b in 0..5 {
            let dir = fx.w.join(format!("t{a}/u{b}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..7 {
                std::fs::write(dir.join(format!("f{f}")), vec![b'x'; f]).unwrap();
            }
        }
        std::fs::write(fx.w.join(format!("t{a}/top")), b"top").unwrap();
    }
    symlink(&fx.outside, fx.w.join("t1/u1/escape")).unwrap();
    for tree in both(&fx.w) {
        for (start, skip) in [("", ""), ("", "t2"), ("t3", ""), ("f.txt", ""), ("missing", ""), ("dlink", "")] {
            let one = walked(&tree, start, true, |p| skip.is_empty() || !p.starts_with(skip));
            for threads in [1, 2, 4] {
                let (all, together) = walked_all(&tree, start, threads, skip);
                assert_eq!(all, one, "start {start:?}, skip {skip:?}, {threads} threads");
                assert!(together, "a directory's entries were split, {threads} threads");
            }
        }
        let (all, _) = walked_all(&tree, "", 2, "");
        assert_eq!(all.get("t1/u1/escape").map(String::as_str), Some("Symlink"));
        assert_eq!(all.len(), 6 * (5 * 7 + 1) + 7);
    }
}
