//! Tree comparison: the files of a tree on disk (the server's REMOTE_DIR, the
//! watch directory), by `/`-separated relative path, so that a test compares
//! the server with the local tree in one `assert_eq!`; the temporary uploads
//! left in a tree; and waiting until a file arrives on the server byte for
//! byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::contract;
use super::process::Daemon;

impl Daemon {
    /// The paths below REMOTE_DIR the server renamed files to, in order
    /// (each publish of an upload is one).
    pub fn renamed_to(&self) -> Vec<String> {
        let prefix = format!("{}/", self.remote_dir());
        self.server()
            .events()
            .into_iter()
            .filter_map(|e| match e {
                super::ServerEvent::Renamed { to, .. } => to.strip_prefix(&prefix).map(str::to_string),
                _ => None,
            })
            .collect()
    }

    /// The REMOTE_DIR argument (an absolute FTP path, e.g. `/upload`).
    pub fn remote_dir(&self) -> &str {
        &self.opts.remote_dir
    }

    /// REMOTE_DIR on the server's disk.
    pub fn remote_root(&self) -> PathBuf {
        self.server.root().join(self.opts.remote_dir.trim_start_matches('/'))
    }

    /// The bytes of `rel` (relative to REMOTE_DIR) on the server's disk.
    pub fn remote(&self, rel: &str) -> Option<Vec<u8>> {
        let path = self.remote_root().join(rel);
        if path.symlink_metadata().ok()?.is_file() { std::fs::read(path).ok() } else { None }
    }

    /// Every file under REMOTE_DIR on the server's disk, by `/`-separated relative path.
    pub fn remote_files(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(&self.remote_root())
    }

    /// Waits until `rel` (relative to REMOTE_DIR) holds exactly `bytes` on the server.
    pub fn wait_remote(&self, rel: &str, bytes: &[u8]) {
        self.wait_until(&format!("{rel:?} arrives on the server with its {} bytes", bytes.len()), || {
            self.remote(rel).as_deref() == Some(bytes)
        });
    }
}

/// Every regular file under `root` (symlinks not followed), keyed by `/`-separated relative path.
pub fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                walk(root, &path, out);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("walked path is under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if let Ok(bytes) = std::fs::read(&path) {
                    out.insert(rel, bytes);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Files under `root` (a server's tree on disk) whose name ends with the
/// temporary-upload suffix.
pub fn temp_files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(ft) if ft.is_dir() => dirs.push(path),
                Ok(_) if entry.file_name().to_string_lossy().ends_with(contract::TEMP_SUFFIX) => out.push(path),
                _ => {}
            }
        }
    }
    out
}
