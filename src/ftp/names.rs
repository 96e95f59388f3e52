//! The names the tool gives its own remote files: the temporary name an
//! upload is stored under (`.NAME.ftpmonitor-part`, or `NAME.ftpmonitor-part`
//! on servers that refuse names starting with a dot), and the name an old
//! file is renamed aside to (`NAME.ftpmonitor-old`).
//!
//! Each fits in [`NAME_MAX`] bytes whatever NAME is: a NAME too long for it
//! keeps its first bytes and gets `~` and a hash of the whole NAME in place
//! of the rest, so that the same final name always gives the same temporary
//! name and a temporary upload left by a crash is found again.

use std::collections::HashSet;

use super::RemoteEntry;
use crate::config::{ASIDE_SUFFIX, TEMP_SUFFIX};
use crate::relpath::join_remote;

/// The longest file name the file systems of most servers take, in bytes.
pub const NAME_MAX: usize = 255;

/// Hex digits of the hash that stands for the part of a long name cut off:
/// 64 bits, so that two long names with the same first bytes in one
/// directory do not share a temporary name.
const HASH_HEX: usize = 16;

/// `before` + `name` + `after`, with `name` shortened so that the whole
/// fits in [`NAME_MAX`] bytes (see the module's documentation).
fn affixed(before: &str, name: &str, after: &str) -> String {
    let room = NAME_MAX - before.len() - after.len();
    if name.len() <= room {
        return format!("{before}{name}{after}");
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let mut keep = room - 1 - HASH_HEX;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{before}{}~{}{after}", &name[..keep], &hash[..HASH_HEX])
}

/// The file name of the temporary upload of the file `name`: hidden, or
/// `visible` for servers that refuse names starting with a dot.
fn temp_file_name(name: &str, visible: bool) -> String {
    affixed(if visible { "" } else { "." }, name, TEMP_SUFFIX)
}

/// The temporary name an upload of `name` into `dir` uses (see
/// [`temp_file_name`]).
pub fn temp_name(dir: &str, name: &str, visible: bool) -> String {
    join_remote(dir, &temp_file_name(name, visible))
}

/// The temporary name of the upload to the remote path `target` in the
/// staging directory `staging` (`--temp-dir`): `NAME~HASH.ftpmonitor-part`,
/// the hash standing for the whole final path, since the files of every
/// directory (and of every job that shares the staging directory) meet
/// there. Never hidden: receivers do not look there.
pub fn staged_name(staging: &str, target: &str) -> String {
    let name = target.rsplit('/').next().unwrap_or(target);
    let hash = blake3::hash(target.as_bytes()).to_hex();
    join_remote(staging, &affixed("", name, &format!("~{}{TEMP_SUFFIX}", &hash[..HASH_HEX])))
}

/// The name the file at the remote path `target` is renamed aside to while
/// a new version takes its place.
pub(super) fn aside_name(target: &str) -> String {
    match target.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{}", affixed("", name, ASIDE_SUFFIX)),
        None => affixed("", target, ASIDE_SUFFIX),
    }
}

/// Whether `name` is one of the tool's temporary names.
pub(super) fn is_temp_name(name: &str) -> bool {
    name.ends_with(TEMP_SUFFIX)
}

/// The temporary uploads left by a crash in one directory's `listing`:
/// those that belong to none of the files in `sending` (the final names, in
/// that directory, of the files being sent now, whose temporary uploads may
/// be resumed). Each is the temporary file's own name: give it, with its
/// directory, to [`super::Session::remove_temp`] (which also takes a final
/// name, and then removes that file's temporary uploads).
pub fn leftover_temps<'a>(listing: &'a [RemoteEntry], sending: &HashSet<String>) -> Vec<&'a str> {
    let owned: HashSet<String> =
        sending.iter().flat_map(|name| [temp_file_name(name, false), temp_file_name(name, true)]).collect();
    listing.iter().map(|e| e.name.as_str()).filter(|name| is_temp_name(name) && !owned.contains(*name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> RemoteEntry {
        RemoteEntry { name: name.to_string(), is_file: true, size: 0, modified: None, exact_time: false }
    }

    #[test]
    fn a_short_name_keeps_the_names_it_always_had() {
        assert_eq!(temp_name("/up/d", "a.txt", false), "/up/d/.a.txt.ftpmonitor-part");
        assert_eq!(temp_name("/up/d", "a.txt", true), "/up/d/a.txt.ftpmonitor-part");
        assert_eq!(aside_name("/up/d/a.txt"), "/up/d/a.txt.ftpmonitor-old");
        let longest = "n".repeat(NAME_MAX - ".".len() - TEMP_SUFFIX.len());
        assert_eq!(temp_file_name(&longest, false), format!(".{longest}{TEMP_SUFFIX}"));
    }

    #[test]
    fn a_long_name_is_cut_between_characters_to_fit_and_stays_apart_from_its_neighbours() {
        for name in ["n".repeat(250), "é".repeat(127), format!("{}.txt", "x".repeat(251)), "日本".repeat(42)] {
            for visible in [false, true] {
                let temp = temp_file_name(&name, visible);
                assert!(temp.len() <= NAME_MAX, "{} bytes: {temp}", temp.len());
                assert!(temp.len() > NAME_MAX - 4, "cut more than a character short: {temp}");
                assert!(is_temp_name(&temp) && temp.starts_with('.') != visible);
                assert_eq!(temp, temp_file_name(&name, visible), "not stable");
            }
            let aside = aside_name(&format!("/up/{name}"));
            assert!(aside.len() - "/up/".len() <= NAME_MAX && aside.ends_with(ASIDE_SUFFIX), "{aside}");
        }
        let (a, b) = (format!("{}a", "n".repeat(250)), format!("{}b", "n".repeat(250)));
        assert_ne!(temp_file_name(&a, false), temp_file_name(&b, false));
    }

    #[test]
    fn staged_names_stay_apart_across_directories_and_fit() {
        let a = staged_name("/stage", "a/report.csv");
        let b = staged_name("/stage", "b/report.csv");
        assert!(a.starts_with("/stage/report.csv~") && a.ends_with(TEMP_SUFFIX), "{a}");
        assert_ne!(a, b, "two directories' files share a staged name");
        // Two jobs (REMOTE_DIRs) sharing one staging directory.
        assert_ne!(staged_name("/stage", "/up1/a.txt"), staged_name("/stage", "/up2/a.txt"));
        assert_eq!(a, staged_name("/stage", "a/report.csv"), "not stable");
        assert!(is_temp_name(&a));
        let long = staged_name("/stage", &format!("d/{}", "n".repeat(250)));
        assert!(long.len() - "/stage/".len() <= NAME_MAX, "{long}");
    }

    #[test]
    fn leftovers_are_the_temporary_names_no_file_being_sent_owns() {
        let long = "n".repeat(250);
        let gone = "g".repeat(250);
        let listing = [
            entry("a.txt"),
            entry(".a.txt.ftpmonitor-part"),
            entry("b.txt.ftpmonitor-part"),
            entry(&temp_file_name(&long, false)),
            entry(&temp_file_name(&gone, false)),
            entry(&temp_file_name(&gone, true)),
            entry(".c.txt.ftpmonitor-part"),
        ];
        let sending: HashSet<String> = ["a.txt", "b.txt", long.as_str()].into_iter().map(String::from).collect();
        let left = leftover_temps(&listing, &sending);
        assert_eq!(
            left,
            [temp_file_name(&gone, false).as_str(), temp_file_name(&gone, true).as_str(), ".c.txt.ftpmonitor-part"]
        );
    }
}
