//! What this run syncs: the paths below WATCH_DIR that the globs of
//! [`crate::scope`] let through (`--exclude`, `--include`), not below the top
//! level with `--no-recursive`, and whose names FTP can carry. Checked when
//! a change arrives, when a walk reports or enters something, when a path is
//! planned, and again when a job is handed to a worker (a job queued before
//! SIGHUP added an exclude, or left in the journal's queue, must not leave
//! the machine).

use std::path::{Path, PathBuf};

use crate::localfs::FileKind;
use crate::relpath::{BadName, RelPath, walked_str};
use crate::scope::{Out, Scope};

#[derive(Debug, Clone)]
pub struct Selection {
    /// WATCH_DIR (absolute, canonical): changes and walks name absolute paths.
    pub watch_dir: PathBuf,
    pub recursive: bool,
    pub globs: Scope,
}

/// Why a local path is not synced, for a log line; `None`: silently (outside
/// the tree, below the top level with `--no-recursive`, or not included:
/// most of a tree may not be, and that is not worth a line each).
pub type Unsynced = Option<(String, &'static str)>;

impl Selection {
    /// The path below WATCH_DIR of `path` (a file or a directory), if this
    /// run syncs it.
    pub fn rel(&self, path: &Path) -> Result<RelPath, Unsynced> {
        self.rel_with(RelPath::from_local(&self.watch_dir, path), |rel| self.globs.path(rel.as_str()))
    }

    /// [`Selection::rel`] for what a walk found (`rel` relative to WATCH_DIR,
    /// as the walk joined it), reported directory by directory: `last` is
    /// the cache of [`Selection::keeps_walked`]. No copy of the path is made.
    pub fn rel_walked(&self, rel: PathBuf, last: &mut Option<(String, bool)>) -> Result<RelPath, Unsynced> {
        if !self.globs.excludes_only() {
            return self.rel_with(RelPath::from_walked(rel), |rel| self.globs.path(rel.as_str()));
        }
        self.rel_with(RelPath::from_walked(rel), |rel| {
            let dir_excluded = self.dir_excluded(rel.as_str(), last);
            self.globs.excluded_in(rel.as_str(), dir_excluded).then_some(Out::Excluded)
        })
    }

    fn rel_with(
        &self,
        rel: Result<RelPath, BadName>,
        out: impl FnOnce(&RelPath) -> Option<Out>,
    ) -> Result<RelPath, Unsynced> {
        match rel {
            Ok(rel) if !self.recursive && rel.parent().is_some() => Err(None),
            Ok(rel) => match out(&rel) {
                Some(Out::Excluded) => Err(Some((rel.to_string(), Out::Excluded.reason()))),
                Some(Out::NotIncluded) => Err(None),
                None => Ok(rel),
            },
            Err(BadName::Outside) => Err(None),
            Err(BadName::NotUtf8(name)) => {
                Err(Some((name, "name is not valid UTF-8, which FTP commands cannot carry")))
            }
            Err(BadName::LineBreak(name)) => Err(Some((name, "name contains a line break, which FTP cannot carry"))),
        }
    }

    /// Why the file `rel` (or with `file` false, a path that may be a
    /// directory) is outside what this run syncs now, if it is.
    pub fn out_of_scope(&self, rel: &RelPath, file: bool) -> Option<&'static str> {
        if !self.recursive && rel.parent().is_some() {
            return Some("below the top level (--no-recursive) now; dropped from the queue");
        }
        let out = if file { self.globs.file(rel.as_str()) } else { self.globs.path(rel.as_str()) };
        match out? {
            Out::Excluded => Some("excluded now; dropped from the queue"),
            Out::NotIncluded => Some("not matched by any --include now; dropped from the queue"),
        }
    }

    /// Whether the file `rel` (a journal entry) is still synced.
    pub fn contains(&self, rel: &RelPath) -> bool {
        self.out_of_scope(rel, true).is_none()
    }

    /// Whether a walk of `dir` (`None`: WATCH_DIR) can find anything synced:
    /// with `--no-recursive`, nothing below a directory of the top level is.
    pub fn walks_into(&self, dir: Option<&RelPath>) -> bool {
        self.recursive || dir.is_none()
    }

    /// Whether a walk reports or enters the absolute `path` of this `kind`:
    /// left out silently are what is excluded, what is not included, and a
    /// directory below which nothing can be included. Walks ask
    /// [`Selection::keeps_walked`]; this is the path-by-path answer the tests
    /// hold it to.
    #[cfg(test)]
    pub fn keeps(&self, path: &Path, kind: FileKind) -> bool {
        RelPath::from_local(&self.watch_dir, path).map_or(true, |r| {
            if kind == FileKind::Dir {
                self.globs.dir(r.as_str()).is_none()
            } else {
                self.globs.file(r.as_str()).is_none()
            }
        })
    }

    /// [`Selection::keeps`] for a walk, which gives `rel` relative to
    /// WATCH_DIR and reports a directory's entries one after the other:
    /// `last` remembers the last parent directory asked about and whether it
    /// is excluded, so that each file matches its own name against the
    /// excludes, not every directory above it again. The same answers as
    /// `keeps` gives for the absolute path.
    pub fn keeps_walked(&self, rel: &Path, kind: FileKind, last: &mut Option<(String, bool)>) -> bool {
        let Some(rel) = walked_str(rel) else { return true };
        if rel.is_empty() || rel.contains(['\r', '\n']) {
            return true;
        }
        if kind == FileKind::Dir {
            return self.globs.dir(&rel).is_none();
        }
        if !self.globs.excludes_only() {
            return self.globs.file(&rel).is_none();
        }
        let dir_excluded = self.dir_excluded(&rel, last);
        !self.globs.excluded_in(&rel, dir_excluded)
    }

    /// Whether the directory holding `rel` is excluded, asked of the globs
    /// once per directory: `last` holds the last one's answer.
    fn dir_excluded(&self, rel: &str, last: &mut Option<(String, bool)>) -> bool {
        let Some((dir, _)) = rel.rsplit_once('/') else { return false };
        match last {
            Some((p, excluded)) if p == dir => *excluded,
            _ => {
                let excluded = self.globs.excluded(dir);
                *last = Some((dir.to_string(), excluded));
                excluded
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_keeps_and_names_what_the_path_by_path_checks_do() {
        let s = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let sel = Selection {
            watch_dir: PathBuf::from("/w"),
            recursive: true,
            globs: Scope::new(&s(&["build", "logs/old", "*.tmp"]), &[]).unwrap(),
        };
        // In a walk's order: a directory, then its entries.
        let walk = [
            ("/w/a.txt", FileKind::File),
            ("/w/build", FileKind::Dir),
            ("/w/build/x.o", FileKind::File),
            ("/w/build/y.o", FileKind::File),
            ("/w/logs", FileKind::Dir),
            ("/w/logs/new.txt", FileKind::File),
            ("/w/logs/old", FileKind::Dir),
            ("/w/logs/old/a.txt", FileKind::File),
            ("/w/logs/old/b.tmp", FileKind::File),
            ("/w/src/build/z.o", FileKind::File),
            ("/w/src/ok.rs", FileKind::File),
            ("/w/src/.ok.rs.swp", FileKind::File),
            ("/w/src/line\nbreak.tmp", FileKind::File),
            ("/w/build\r", FileKind::Dir),
        ];
        let (mut kept, mut named) = (None, None);
        for (path, kind) in walk {
            let p = Path::new(path);
            // A walk names what it found relative to the watch directory.
            let walked = p.strip_prefix("/w").unwrap();
            assert_eq!(sel.keeps_walked(walked, kind, &mut kept), sel.keeps(p, kind), "{path}");
            if kind == FileKind::File {
                assert_eq!(sel.rel_walked(walked.to_path_buf(), &mut named), sel.rel(p), "{path}");
            }
        }
    }
}
