//! What is synced: `--exclude` and `--include` globs over the path relative
//! to WATCH_DIR. Excludes win over includes; an excluded directory excludes
//! everything below it; with includes, a file is synced only if it (or a
//! directory above it) matches one, and a directory is walked only if
//! something below it can match. A glob without `/` matches a name at any
//! depth (as in .gitignore), one with `/` from WATCH_DIR down; `*` and `?`
//! stay within one directory level, `**` crosses levels.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Names the tool gives its own temporary remote files; local files with these
/// names are never uploaded.
pub const TEMP_SUFFIX: &str = ".ftpmonitor-part";
pub const ASIDE_SUFFIX: &str = ".ftpmonitor-old";

/// Excluded whatever the user says: editor swap, backup and lock files, and
/// the tool's own temporary names.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "**/*.swp",
    "**/*.swx",
    "**/*~",
    "**/.#*",
    "**/#*#",
    "**/.*.kate-swp",
    "**/.~lock.*#",
    "**/*.ftpmonitor-part",
    "**/*.ftpmonitor-old",
];

/// Why a path is not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Excluded,
    NotIncluded,
}

impl Out {
    /// For a `skipping NAME: ...` line.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Excluded => "excluded",
            Self::NotIncluded => "not matched by any --include",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scope {
    excludes: GlobSet,
    includes: Option<Includes>,
    /// The user's patterns, for telling whether a reload changed them.
    patterns: (Vec<String>, Vec<String>),
    /// A path (relative to WATCH_DIR) never synced, nor anything below it:
    /// the local twin of `--temp-dir` when it lies below REMOTE_DIR.
    reserved: Option<String>,
}

/// The `--include` globs, whole and split into path components (to tell
/// whether a directory can hold a match).
#[derive(Clone, Debug)]
struct Includes {
    set: GlobSet,
    /// Per glob, a matcher per component; `None` stands for `**`.
    parts: Vec<Vec<Option<GlobMatcher>>>,
}

/// `pat`, and `**/pat` for a glob without `/`, each compiled; `what` names
/// the option for an error.
fn globs(pat: &str, what: &str) -> Result<Vec<Glob>> {
    let bad = |e: globset::Error| {
        Error::usage(format!("{what} {pat:?} is not a valid glob ({}): use *, ?, [abc] and ** for any depth", e.kind()))
    };
    // `*` and `?` stay within one path component; `**` crosses them.
    let glob = |p: &str| GlobBuilder::new(p).literal_separator(true).build();
    let mut out = vec![glob(pat).map_err(bad)?];
    if !pat.contains('/') {
        out.push(glob(&format!("**/{pat}")).map_err(bad)?);
    }
    Ok(out)
}

impl Scope {
    pub fn new(exclude: &[String], include: &[String]) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for pat in DEFAULT_EXCLUDES.iter().copied().map(str::to_string).chain(exclude.iter().cloned()) {
            for g in globs(&pat, "--exclude")? {
                builder.add(g);
            }
        }
        let excludes = builder.build().map_err(|e| Error::usage(format!("--exclude patterns: {e}")))?;
        let includes = if include.is_empty() {
            None
        } else {
            let mut builder = GlobSetBuilder::new();
            let mut parts = Vec::new();
            for pat in include {
                for g in globs(pat, "--include")? {
                    let split = g
                        .glob()
                        .split('/')
                        .map(|c| {
                            if c == "**" {
                                Ok(None)
                            } else {
                                Glob::new(c).map(|g| Some(g.compile_matcher())).map_err(|e| {
                                    Error::usage(format!("--include {pat:?} is not a valid glob ({})", e.kind()))
                                })
                            }
                        })
                        .collect::<Result<Vec<_>>>()?;
                    parts.push(split);
                    builder.add(g);
                }
            }
            let set = builder.build().map_err(|e| Error::usage(format!("--include patterns: {e}")))?;
            Some(Includes { set, parts })
        };
        Ok(Self { excludes, includes, patterns: (exclude.to_vec(), include.to_vec()), reserved: None })
    }

    /// The same, with `rel` (a path relative to WATCH_DIR) and everything
    /// below it excluded (`None`: nothing besides the globs).
    pub fn reserve(mut self, rel: Option<String>) -> Self {
        self.reserved = rel;
        self
    }

    /// The path [`Scope::reserve`] excludes.
    pub fn reserved(&self) -> Option<&str> {
        self.reserved.as_deref()
    }

    /// Whether `set` matches `rel` or a directory above it.
    fn matches_here_or_above(set: &GlobSet, rel: &str) -> bool {
        set.is_match(rel) || rel.match_indices('/').any(|(i, _)| set.is_match(&rel[..i]))
    }

    /// Whether `rel` or one of its parent directories is excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let reserved = self
            .reserved
            .as_deref()
            .is_some_and(|r| rel.strip_prefix(r).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')));
        reserved || Self::matches_here_or_above(&self.excludes, rel)
    }

    /// [`Scope::excluded`] for `rel` in a directory whose own answer is
    /// known (`dir_excluded`): only `rel` itself is matched, not again every
    /// directory above it (a walk asks once per directory, not once per file).
    pub fn excluded_in(&self, rel: &str, dir_excluded: bool) -> bool {
        let reserved = self
            .reserved
            .as_deref()
            .is_some_and(|r| rel.strip_prefix(r).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')));
        dir_excluded || reserved || self.excludes.is_match(rel)
    }

    /// Whether a walk can answer for an entry with [`Scope::excluded_in`]
    /// alone: no includes, which need the whole path.
    pub fn excludes_only(&self) -> bool {
        self.includes.is_none()
    }

    /// Why the file `rel` is not synced, if it is not.
    pub fn file(&self, rel: &str) -> Option<Out> {
        if self.excluded(rel) {
            return Some(Out::Excluded);
        }
        match &self.includes {
            Some(i) if !Self::matches_here_or_above(&i.set, rel) => Some(Out::NotIncluded),
            _ => None,
        }
    }

    /// Why the directory `rel` is not walked, if it is not: excluded, or no
    /// include can match anything below it.
    pub fn dir(&self, rel: &str) -> Option<Out> {
        if self.excluded(rel) {
            return Some(Out::Excluded);
        }
        match &self.includes {
            Some(i) if !Self::matches_here_or_above(&i.set, rel) && !i.parts.iter().any(|p| may_lead_to(p, rel)) => {
                Some(Out::NotIncluded)
            }
            _ => None,
        }
    }

    /// Why `rel` (a file or a directory, not known which) is not synced, if
    /// neither would be.
    pub fn path(&self, rel: &str) -> Option<Out> {
        let file = self.file(rel)?;
        self.dir(rel).map(|_| file)
    }

    /// The user's excludes and includes.
    pub fn patterns(&self) -> &(Vec<String>, Vec<String>) {
        &self.patterns
    }
}

/// A list of globs matched against a file's path relative to WATCH_DIR, with
/// the syntax of `--exclude` (a glob without `/` matches a name at any
/// depth): `--last`.
#[derive(Clone, Debug)]
pub struct Globs {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Globs {
    /// `patterns` compiled; `what` names the option in an error.
    pub fn new(patterns: &[String], what: &str) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for pat in patterns {
            for g in globs(pat, what)? {
                builder.add(g);
            }
        }
        let set = builder.build().map_err(|e| Error::usage(format!("{what} patterns: {e}")))?;
        Ok(Self { set, patterns: patterns.to_vec() })
    }

    pub fn is_match(&self, rel: &str) -> bool {
        !self.patterns.is_empty() && self.set.is_match(rel)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl Default for Globs {
    fn default() -> Self {
        Self { set: GlobSet::empty(), patterns: Vec::new() }
    }
}

/// Whether a path below the directory `dir` can match the glob split into
/// `parts`: each of `dir`'s components matches the glob's component at its
/// place (until a `**`, which matches any depth).
fn may_lead_to(parts: &[Option<GlobMatcher>], dir: &str) -> bool {
    for (i, comp) in dir.split('/').enumerate() {
        match parts.get(i) {
            None => return false,
            Some(None) => return true,
            Some(Some(m)) if !m.is_match(comp) => return false,
            Some(Some(_)) => {}
        }
    }
    // The glob goes deeper than `dir`.
    parts.len() > dir.split('/').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_path_and_everything_below_it_are_excluded_but_not_its_neighbours() {
        let s = Scope::new(&[], &[]).unwrap().reserve(Some(".incoming".into()));
        for rel in [".incoming", ".incoming/a.txt", ".incoming/d/b.txt"] {
            assert_eq!(s.file(rel), Some(Out::Excluded), "{rel}");
            assert_eq!(s.dir(rel), Some(Out::Excluded), "{rel}");
        }
        for rel in [".incoming2", "a/.incoming", "x.txt"] {
            assert_eq!(s.file(rel), None, "{rel}");
        }
        assert_eq!(Scope::new(&[], &[]).unwrap().file(".incoming/a.txt"), None);
    }

    #[test]
    fn excluded_in_a_directory_answers_as_excluded_does() {
        let sc = scope(&["build", "cache/**", "*.tmp", "logs/old"], &[]).reserve(Some("stage/in".to_string()));
        let paths = [
            "a.txt",
            "build",
            "build/x.o",
            "src/build/deep/y.o",
            "cache/a",
            "cachex/a",
            "d/e/f.tmp",
            "d/e/f.tmpx",
            "logs/old/a",
            "x/logs/old/a",
            "stage/in",
            "stage/in/a",
            "stage/inner/a",
            "d/.f.swp",
            "d/e/report.ftpmonitor-part",
            "d/e/ok",
        ];
        for rel in paths {
            let dir_excluded = rel.rsplit_once('/').is_some_and(|(dir, _)| sc.excluded(dir));
            assert_eq!(sc.excluded_in(rel, dir_excluded), sc.excluded(rel), "{rel}");
        }
        assert!(sc.excludes_only() && !scope(&[], &["*.pdf"]).excludes_only());
    }

    fn scope(exclude: &[&str], include: &[&str]) -> Scope {
        let s = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        Scope::new(&s(exclude), &s(include)).unwrap()
    }

    #[test]
    fn default_excludes_cover_editor_files_and_our_temp_names() {
        let sc = scope(&[], &[]);
        for name in ["a/.report.txt.swp", "notes.txt~", ".#lock", "x/.f.ftpmonitor-part", "#auto#"] {
            assert_eq!(sc.file(name), Some(Out::Excluded), "{name}");
        }
        assert_eq!(sc.file("a/report.txt"), None);
        let sc = scope(&["build", "cache/**"], &[]);
        assert!(sc.excluded("build/x.o") && sc.excluded("src/build/deep/y.o") && sc.excluded("cache/a"));
        assert!(!sc.excluded("builder/x.o"));
    }

    /// Excludes `*.tmp`, `private`, `reports/drafts`; includes `*.pdf`,
    /// `reports/2024/*.csv`, `shared` (a directory: everything below it).
    #[test]
    fn include_and_exclude_precedence() {
        let sc = scope(&["*.tmp", "private", "reports/drafts"], &["*.pdf", "reports/2024/*.csv", "shared"]);
        use Out::{Excluded as E, NotIncluded as N};
        let files: &[(&str, Option<Out>)] = &[
            ("a.pdf", None),
            ("deep/down/b.pdf", None),
            ("a.txt", Some(N)),
            ("a.pdf.tmp", Some(E)),
            ("x.tmp", Some(E)),
            ("private/c.pdf", Some(E)),
            ("deep/private/c.pdf", Some(E)),
            ("reports/2024/q1.csv", None),
            ("reports/2024/q1.xlsx", Some(N)),
            ("reports/2023/q1.csv", Some(N)),
            ("reports/2024/sub/q1.csv", Some(N)),
            ("reports/drafts/d.pdf", Some(E)),
            ("reports/summary.pdf", None),
            ("shared/anything.bin", None),
            ("shared/deep/er/file", None),
            ("shared/x.tmp", Some(E)),
            ("other/shared/file", None),
            ("sharedness/file", Some(N)),
            ("report.swp", Some(E)),
            (".f.ftpmonitor-part", Some(E)),
        ];
        for (path, want) in files {
            assert_eq!(sc.file(path), *want, "file {path}");
        }
        let dirs: &[(&str, Option<Out>)] = &[
            ("reports", None),
            ("reports/2024", None),
            ("reports/2023", None),
            ("reports/drafts", Some(E)),
            ("private", Some(E)),
            ("shared", None),
            ("anything", None),
        ];
        for (path, want) in dirs {
            assert_eq!(sc.dir(path), *want, "dir {path}");
        }
    }

    #[test]
    fn a_directory_is_walked_only_if_something_below_it_can_match() {
        let sc = scope(&[], &["reports/2024/*.csv", "inbox/**"]);
        use Out::NotIncluded as N;
        for (dir, want) in [
            ("reports", None),
            ("reports/2024", None),
            ("reports/2023", Some(N)),
            ("reports/2024/sub", Some(N)),
            ("inbox", None),
            ("inbox/a/b/c", None),
            ("photos", Some(N)),
        ] {
            assert_eq!(sc.dir(dir), want, "{dir}");
        }
        assert_eq!(sc.file("inbox/a/b/c/x"), None);
        assert_eq!(sc.file("photos/x.csv"), Some(N));
        assert_eq!(sc.path("reports"), None, "kind unknown: a directory that may hold matches");
        assert_eq!(sc.path("photos"), Some(N));
    }

    #[test]
    fn a_bad_include_names_the_option() {
        let e = Scope::new(&[], &["[oops".into()]).unwrap_err().to_string();
        assert!(e.contains("--include") && e.contains("[oops"), "{e}");
    }
}
