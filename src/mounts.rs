//! The mounts at and below the watch directory, so that an unmount or a
//! remount is noticed: inotify reports neither (notify drops `IN_UNMOUNT`
//! and `IN_IGNORED`), and the watches on an unmounted file system die
//! silently. On Linux the kernel wakes a `poll` on `/proc/self/mountinfo`
//! whenever the mount table changes (see `watcher::MountWatch`): the loop
//! then takes a new [`Snapshot`] and compares it with the last one. No
//! polling while nothing happens. Elsewhere the snapshot is always empty.

use std::path::{Path, PathBuf};

/// One mount: its id (new for every mount, also a remount at the same
/// place) and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mount {
    pub id: u64,
    pub point: PathBuf,
    /// The file system type (`ext4`, `nfs4`, `fuse.sshfs`, ...).
    pub fstype: String,
}

/// The mounts that decide what the watch directory shows: the one holding
/// it, and every one at or below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The mount the watch directory lies on (the last one mounted over the
    /// longest prefix of its path).
    pub holding: Option<Mount>,
    /// Mounts strictly below the watch directory, by mount point.
    pub below: Vec<Mount>,
}

impl Snapshot {
    /// The mount table as it is now, for `root` (absolute, canonical).
    pub fn take(root: &Path) -> Self {
        #[cfg(target_os = "linux")]
        {
            match std::fs::read_to_string("/proc/self/mountinfo") {
                Ok(text) => Self::parse(&text, root),
                Err(_) => Self::default(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = root;
            Self::default()
        }
    }

    /// Reads `mountinfo` text (proc(5): `id parent major:minor root point ...`).
    pub fn parse(text: &str, root: &Path) -> Self {
        let mut holding: Option<Mount> = None;
        let mut below = Vec::new();
        for line in text.lines() {
            let mut fields = line.split(' ');
            let (Some(id), Some(point)) = (fields.next().and_then(|f| f.parse().ok()), fields.nth(3)) else {
                continue;
            };
            // Optional fields end at "-"; the type follows.
            let fstype = fields.skip_while(|f| *f != "-").nth(1).map(unescape).unwrap_or_default();
            let point = PathBuf::from(unescape(point));
            if point != root && point.starts_with(root) {
                below.push(Mount { id, point, fstype });
            } else if root.starts_with(&point)
                && holding.as_ref().is_none_or(|h| point.as_os_str().len() >= h.point.as_os_str().len())
            {
                // Later lines are mounted over earlier ones at the same point.
                holding = Some(Mount { id, point, fstype });
            }
        }
        below.sort();
        Self { holding, below }
    }

    /// Whether the watch directory is itself a mount point.
    pub fn root_is_mount_point(&self, root: &Path) -> bool {
        self.holding.as_ref().is_some_and(|m| m.point == root)
    }

    /// Mount points below the root that `self` has and `now` has not.
    pub fn lost_in<'a>(&'a self, now: &'a Snapshot) -> impl Iterator<Item = &'a Path> + 'a {
        self.below.iter().filter(|m| !now.below.iter().any(|n| n.point == m.point)).map(|m| m.point.as_path())
    }
}

/// Whether a file system of this type is known to miss changes made from
/// elsewhere (other machines of a network file system, the remote side of a
/// FUSE mount): inotify sees only this machine's own writes there.
pub fn misses_remote_changes(fstype: &str) -> bool {
    let base = fstype.split('.').next().unwrap_or(fstype);
    matches!(
        base,
        "nfs"
            | "nfs4"
            | "cifs"
            | "smb3"
            | "smbfs"
            | "fuse"
            | "fuseblk"
            | "9p"
            | "afs"
            | "ceph"
            | "glusterfs"
            | "lustre"
            | "gfs2"
            | "ocfs2"
            | "vboxsf"
            | "virtiofs"
            | "davfs"
    )
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
40 27 0:40 / /srv rw - tmpfs tmpfs rw
41 40 0:41 / /srv/w rw - tmpfs tmpfs rw
42 41 0:42 / /srv/w/disk\\040one rw shared:7 - fuse.sshfs host:/x rw
43 40 0:43 / /srv/wx rw - tmpfs tmpfs rw
44 40 0:44 / /srv/w rw - nfs4 server:/export rw
";

    #[test]
    fn finds_the_mount_holding_the_root_and_those_below_it() {
        let s = Snapshot::parse(TABLE, Path::new("/srv/w"));
        // 44 was mounted over 41.
        assert_eq!(s.holding, Some(Mount { id: 44, point: "/srv/w".into(), fstype: "nfs4".into() }));
        assert_eq!(s.below, vec![Mount { id: 42, point: "/srv/w/disk one".into(), fstype: "fuse.sshfs".into() }]);
        assert!(s.root_is_mount_point(Path::new("/srv/w")));
        let plain = Snapshot::parse(TABLE, Path::new("/srv/other"));
        assert_eq!(plain.holding.map(|m| m.id), Some(40));
        assert!(plain.below.is_empty());
    }

    #[test]
    fn an_unmount_and_a_remount_change_the_snapshot() {
        let root = Path::new("/srv/w");
        let before = Snapshot::parse(TABLE, root);
        let unmounted: String = TABLE.lines().filter(|l| !l.starts_with("42 ")).map(|l| format!("{l}\n")).collect();
        let after = Snapshot::parse(&unmounted, root);
        assert_ne!(before, after);
        assert_eq!(before.lost_in(&after).collect::<Vec<_>>(), vec![Path::new("/srv/w/disk one")]);
        let remounted = unmounted.replace("44 40 0:44 / /srv/w ", "45 40 0:45 / /srv/w ");
        assert_ne!(Snapshot::parse(&remounted, root), after);
    }

    #[test]
    fn network_and_fuse_file_systems_are_known() {
        for t in ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse.rclone", "9p", "virtiofs"] {
            assert!(misses_remote_changes(t), "{t}");
        }
        for t in ["ext4", "xfs", "btrfs", "tmpfs", "zfs", "overlay"] {
            assert!(!misses_remote_changes(t), "{t}");
        }
    }

    #[test]
    fn octal_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape("/plain\\9"), "/plain\\9");
    }
}
