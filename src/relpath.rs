//! Paths relative to the watch directory, the unit the whole sync engine
//! speaks in, and the escaping every file name gets before it reaches a log.

use std::borrow::Cow;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A path relative to WATCH_DIR, `/`-separated, valid UTF-8, never empty and
/// never containing `.` or `..` components. The remote path is
/// `REMOTE_DIR/<relpath>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

/// Why a local path cannot be carried to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadName {
    /// Not below the watch directory (or the watch directory itself).
    Outside,
    /// Not valid UTF-8: FTP commands are sent as UTF-8.
    NotUtf8(String),
    /// CR or LF: an FTP command line cannot carry them.
    LineBreak(String),
}

/// A relative path a walk joined (see [`RelPath::from_walked`]) as the
/// `/`-separated text the globs and the journal use: borrowed on Unix,
/// where the walk joins with `/`; `None` if it is not UTF-8.
pub fn walked_str(rel: &Path) -> Option<Cow<'_, str>> {
    let s = rel.to_str()?;
    if cfg!(windows) && s.contains('\\') { Some(Cow::Owned(s.replace('\\', "/"))) } else { Some(Cow::Borrowed(s)) }
}

impl RelPath {
    /// Builds the relative path of `path` below `root`.
    pub fn from_local(root: &Path, path: &Path) -> Result<Self, BadName> {
        let rel = path.strip_prefix(root).map_err(|_| BadName::Outside)?;
        let mut parts = Vec::new();
        for comp in rel.components() {
            match comp {
                Component::Normal(part) => match part.to_str() {
                    Some(s) => parts.push(s),
                    None => {
                        return Err(BadName::NotUtf8(rel.to_string_lossy().into_owned()));
                    }
                },
                _ => return Err(BadName::Outside),
            }
        }
        if parts.is_empty() {
            return Err(BadName::Outside);
        }
        let joined = parts.join("/");
        if joined.contains(['\r', '\n']) {
            return Err(BadName::LineBreak(joined));
        }
        Ok(Self(joined))
    }

    /// The path of something a walk found, relative to the watch directory
    /// as the walk joined it from the names it read ([`crate::localfs::Found`]);
    /// the same answers as [`RelPath::from_local`] gives for its absolute
    /// path, without a copy on Unix.
    pub fn from_walked(rel: PathBuf) -> Result<Self, BadName> {
        let joined = match rel.into_os_string().into_string() {
            Ok(s) if cfg!(windows) => s.replace('\\', "/"),
            Ok(s) => s,
            Err(os) => return Err(BadName::NotUtf8(os.to_string_lossy().into_owned())),
        };
        if joined.is_empty() || !joined.split('/').all(|c| !c.is_empty() && c != "." && c != "..") {
            return Err(BadName::Outside);
        }
        if joined.contains(['\r', '\n']) {
            return Err(BadName::LineBreak(joined));
        }
        Ok(Self(joined))
    }

    /// A range bound for ordered maps of paths; not a path itself.
    pub(crate) fn bound(s: String) -> Self {
        Self(s)
    }

    /// Checks a stored relative path (from the journal).
    pub fn parse(s: &str) -> Option<Self> {
        let ok =
            !s.is_empty() && !s.contains(['\r', '\n']) && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        ok.then(|| Self(s.to_string()))
    }

    /// `self` with the prefix `from` replaced by `to` (for a renamed
    /// directory); `None` if `self` is not below `from`.
    pub fn rebase(&self, from: &RelPath, to: &RelPath) -> Option<Self> {
        if !self.starts_with(from) {
            return None;
        }
        Some(Self(format!("{}{}", to.0, &self.0[from.0.len()..])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The local path below `root`.
    pub fn to_local(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for part in self.0.split('/') {
            p.push(part);
        }
        p
    }

    /// The path on the server below `remote_dir` (which has no trailing `/`,
    /// except when it is `/` itself).
    pub fn to_remote(&self, remote_dir: &str) -> String {
        join_remote(remote_dir, &self.0)
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent directory, `None` at the top level.
    pub fn parent(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(dir, _)| dir)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.0 == other.0 || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(&self.0).fmt(f)
    }
}

/// Joins a remote directory and a relative path with exactly one `/`.
pub fn join_remote(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{rel}")
    } else {
        format!("{dir}/{rel}")
    }
}

/// Displays a name with control characters, quotes and backslashes escaped
/// the way Rust's `escape_debug` does, so that no file name can put a line
/// break (a forged log line) or a terminal escape into the log.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.chars().all(|c| !c.is_control() && c != '\\') {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            if c.is_control() || c == '\\' {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// [`Escaped`] for a local path that may not be UTF-8.
pub struct EscapedPath<'a>(pub &'a Path);

impl fmt::Display for EscapedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(&self.0.to_string_lossy()).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walked_path_names_what_its_absolute_path_names() {
        let root = Path::new("/w");
        let mut walked: Vec<PathBuf> =
            ["a.txt", "a/b/c.txt", "bad\nname.txt", "cr\rhere/x", "", "é/ü.txt"].iter().map(PathBuf::from).collect();
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            walked.push(Path::new("dir").join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")));
        }
        for rel in walked {
            let expect = RelPath::from_local(root, &root.join(&rel));
            assert_eq!(RelPath::from_walked(rel.clone()), expect, "{}", rel.display());
            if let Ok(r) = &expect {
                assert_eq!(walked_str(&rel).as_deref(), Some(r.as_str()));
            }
        }
    }

    #[test]
    fn builds_relative_paths_with_slashes() {
        let rel = RelPath::from_local(Path::new("/w"), Path::new("/w/a/b/c.txt")).unwrap();
        assert_eq!(rel.as_str(), "a/b/c.txt");
        assert_eq!(rel.file_name(), "c.txt");
        assert_eq!(rel.parent(), Some("a/b"));
        assert_eq!(rel.to_remote("/up"), "/up/a/b/c.txt");
        assert_eq!(rel.to_remote("/"), "/a/b/c.txt");
        assert_eq!(rel.to_local(Path::new("/w")), Path::new("/w/a/b/c.txt"));
    }

    #[test]
    fn refuses_the_root_outside_paths_and_line_breaks() {
        let root = Path::new("/w");
        assert_eq!(RelPath::from_local(root, root), Err(BadName::Outside));
        assert_eq!(RelPath::from_local(root, Path::new("/x/y")), Err(BadName::Outside));
        assert!(matches!(RelPath::from_local(root, Path::new("/w/bad\nname")), Err(BadName::LineBreak(_))));
    }

    #[test]
    fn starts_with_respects_component_boundaries() {
        let a = RelPath::from_local(Path::new("/w"), Path::new("/w/a")).unwrap();
        let ab = RelPath::from_local(Path::new("/w"), Path::new("/w/a/b")).unwrap();
        let abc = RelPath::from_local(Path::new("/w"), Path::new("/w/abc")).unwrap();
        assert!(ab.starts_with(&a));
        assert!(a.starts_with(&a));
        assert!(!abc.starts_with(&a));
    }

    #[test]
    fn escaping_keeps_log_lines_whole() {
        assert_eq!(Escaped("plain é name").to_string(), "plain é name");
        assert_eq!(Escaped("bad\nname").to_string(), "bad\\nname");
        assert_eq!(Escaped("a\\b\x1b[2J").to_string(), "a\\\\b\\u{1b}[2J");
    }
}
