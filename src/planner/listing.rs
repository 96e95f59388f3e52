//! The first sync of a job (an empty journal) against a server that may
//! already hold the files, and the repair on SIGUSR1: the tree is compared
//! with one remote listing per local directory, listed from the top down (a
//! directory missing on the server has nothing below it, so a first push
//! into an empty remote directory costs one listing). A remote file with the
//! same size and a modification time no older than the local one counts as
//! synced; everything else is uploaded, whatever the journal says. Listings
//! also show temporary uploads and old copies renamed aside that a crash
//! left behind: they are removed (or renamed back).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use log::{debug, info};

use super::{Planner, Root, Tally};
use crate::config::ASIDE_SUFFIX;
use crate::event::Job;
use crate::ftp::RemoteEntry;
use crate::journal::{Op, Synced, mtime_ns};
use crate::localfs::{Found, Stamp};
use crate::relpath::RelPath;

/// How much newer than the local file a LIST time must be for the remote
/// file to count as synced: LIST shows the server's local time (anything from
/// UTC-12 to UTC+14) in whole minutes, so a copy older than the local file
/// can look up to 14 hours newer. (Dates older than half a year show no time
/// of day and read as midnight: older than they are, which is the safe side.)
pub const LIST_TIME_SLACK: Duration = Duration::from_secs(15 * 3600);

/// A remote file counts as synced when its mtime is no older than the local
/// one: to the second with MLSD (UTC), by [`LIST_TIME_SLACK`] with LIST.
pub fn remote_not_older(remote: &RemoteEntry, local: Option<SystemTime>) -> bool {
    let slack = if remote.exact_time { Duration::ZERO } else { LIST_TIME_SLACK };
    match (remote.modified, local.and_then(|l| l.checked_add(slack))) {
        (Some(r), Some(l)) => {
            let secs = |t: SystemTime| mtime_ns(Some(t)) / 1_000_000_000;
            secs(r) >= secs(l)
        }
        _ => false,
    }
}

/// The comparison under way: the listings awaited and what they decide.
#[derive(Debug, Default)]
pub(super) struct Listings {
    /// Files waiting for the listing of their directory, by the listing's
    /// job key; an empty list for a directory listed only to learn which of
    /// its subdirectories exist.
    awaiting: HashMap<String, Vec<(RelPath, Stamp)>>,
    /// The local subdirectories to list, or to take as missing, once a
    /// directory's listing (by its job key) shows whether they exist.
    children: HashMap<String, Vec<RelPath>>,
}

impl Listings {
    pub fn is_empty(&self) -> bool {
        self.awaiting.is_empty()
    }

    /// The files waiting for a listing.
    pub fn paths(&self) -> impl Iterator<Item = &RelPath> + '_ {
        self.awaiting.values().flatten().map(|(rel, _)| rel)
    }

    /// Plans the listings for `files`: one per directory that holds files,
    /// each reached from its parent's listing. Returns the number of files
    /// and of directories.
    fn start(&mut self, files: Vec<(RelPath, Stamp)>) -> (usize, usize) {
        let mut by_dir: HashMap<Option<RelPath>, Vec<(RelPath, Stamp)>> = HashMap::new();
        for (rel, stamp) in files {
            let dir = rel.parent().and_then(RelPath::parse);
            by_dir.entry(dir).or_default().push((rel, stamp));
        }
        let counts = (by_dir.values().map(Vec::len).sum::<usize>(), by_dir.len());
        let dirs: Vec<Option<RelPath>> = by_dir.keys().cloned().collect();
        for (dir, files) in by_dir {
            self.awaiting.insert(Job::List(dir).key(), files);
        }
        for mut dir in dirs {
            while let Some(d) = dir {
                let parent = d.parent().and_then(RelPath::parse);
                let parent_key = Job::List(parent.clone()).key();
                let known = self.awaiting.contains_key(&parent_key);
                self.awaiting.entry(parent_key.clone()).or_default();
                let siblings = self.children.entry(parent_key).or_default();
                if !siblings.contains(&d) {
                    siblings.push(d);
                }
                if known {
                    break;
                }
                dir = parent;
            }
        }
        counts
    }

    /// The files a listing (by its job key) decides, if it was awaited.
    fn take(&mut self, key: &str) -> Option<Vec<(RelPath, Stamp)>> {
        self.awaiting.remove(key)
    }

    fn take_children(&mut self, key: &str) -> Vec<RelPath> {
        self.children.remove(key).unwrap_or_default()
    }

    /// Every file still waiting for a listing (the server is unreachable).
    fn drain_files(&mut self) -> Vec<RelPath> {
        self.children.clear();
        self.awaiting.drain().flat_map(|(_, files)| files.into_iter().map(|(rel, _)| rel)).collect()
    }
}

impl Planner {
    /// Compares the tree (`found`, a walk of it; `root`, a look at the watch
    /// directory first) with the server's listings. Used for the first sync
    /// of a job (empty journal), so that an already-populated server is not
    /// sent everything again, and on SIGUSR1, to repair a server that lost
    /// files behind our back. Returns how many files are compared.
    pub fn compare_with_server(
        &mut self,
        why: &str,
        root: Root,
        found: impl IntoIterator<Item = Found>,
        now: std::time::Instant,
    ) -> usize {
        if !self.root_ok(root) {
            self.hold_for_root(now);
            return 0;
        }
        let files = self.files_of(found).files;
        if files.is_empty() {
            return 0;
        }
        if !self.listings.is_empty() {
            info!("{why}: a comparison with the server's listings is still running; not starting another");
            return 0;
        }
        self.listings_begin();
        let (n, dirs) = self.listings.start(files);
        info!("{why}: comparing {n} files with the server's listing of up to {dirs} directories");
        self.enqueue(Job::List(None));
        n
    }

    /// A directory's listing is in (`entries`), or failed: `missing` when the
    /// server said the directory is not there (550), so nothing below it is.
    pub(super) fn on_listing(&mut self, job: &Job, entries: Option<Vec<RemoteEntry>>, missing: bool) {
        let Some(files) = self.listings.take(&job.key()) else {
            return;
        };
        let listed = entries.is_some();
        let entries = entries.unwrap_or_default();
        let by_name: HashMap<&str, &RemoteEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
        let mut matched = 0;
        let mut local_names = HashSet::new();
        let mut to_plan = Vec::new();
        for (rel, stamp) in files {
            local_names.insert(rel.file_name().to_string());
            let same = by_name
                .get(rel.file_name())
                .is_some_and(|e| e.is_file && e.size == stamp.len && remote_not_older(e, stamp.mtime));
            let known = self.synced.get(&rel).is_some_and(|s| s.size == stamp.len);
            if same && !known {
                let s = Synced { size: stamp.len, mtime_ns: mtime_ns(stamp.mtime), hash: None };
                self.synced.insert(rel.clone(), s);
                self.batch.synced(rel, s, false);
                matched += 1;
            } else if same {
                matched += 1;
            } else {
                to_plan.push((rel, stamp));
            }
        }
        let queued = to_plan.len();
        for (rel, stamp) in to_plan {
            // Missing or different on the server: send it, whatever the journal says.
            self.batch.queue(rel.clone(), Op::Upload);
            self.queue_upload(rel, stamp, None);
        }
        self.tallies.push(Tally::Queued(queued as u64));
        if let Job::List(dir) = job {
            self.clean_leftovers(dir.as_ref(), &entries, &local_names);
        }
        if matched > 0 {
            debug!("listing: {matched} files already on the server, {queued} to upload");
        }
        // The subdirectories: listed where they exist, all missing below a
        // directory that is missing. A listing that failed otherwise tells
        // nothing, and LIST may hide dot-names: those are listed anyway.
        for child in self.listings.take_children(&job.key()) {
            let shown = entries.iter().any(|e| !e.is_file && e.name == child.file_name());
            let unsure = !missing && (!listed || child.file_name().starts_with('.'));
            if shown || unsure {
                self.enqueue(Job::List(Some(child)));
            } else {
                self.on_listing(&Job::List(Some(child)), None, true);
            }
        }
        if self.listings.is_empty() {
            self.listings_end();
        }
    }

    /// Temporary uploads left by a crash in the listed directory `dir`,
    /// whose file is not being sent now, and old copies a crash left renamed
    /// aside.
    fn clean_leftovers(&mut self, dir: Option<&RelPath>, entries: &[RemoteEntry], local_names: &HashSet<String>) {
        let rel_of =
            |name: &str| RelPath::parse(&dir.map_or_else(|| name.to_string(), |d| format!("{}/{name}", d.as_str())));
        for name in crate::ftp::leftover_temps(entries, local_names) {
            if let Some(rel) = rel_of(name) {
                self.enqueue(Job::RemoveTemp(rel));
            }
        }
        for e in entries {
            if let Some(name) = e.name.strip_suffix(ASIDE_SUFFIX)
                && let Some(rel) = rel_of(name)
            {
                let restore = local_names.contains(name) || !self.rules.delete;
                self.enqueue(Job::RemoveAside { rel, restore });
            }
        }
    }

    /// `--once` with the server unreachable: the listings awaited, and the
    /// files waiting for them, cannot be synced.
    pub(super) fn listings_given_up(&mut self, why: &str) {
        for rel in self.listings.drain_files() {
            self.failed_for_good.push((rel.to_string(), why.to_string()));
        }
    }

    /// A listing given up (`--once`): its files, and those of the
    /// directories below it, cannot be synced.
    pub(super) fn listing_given_up(&mut self, key: &str, why: &str) {
        if let Some(files) = self.listings.take(key) {
            for (rel, _) in files {
                self.failed_for_good.push((rel.to_string(), why.to_string()));
            }
        }
        for child in self.listings.take_children(key) {
            self.listing_given_up(&Job::List(Some(child)).key(), why);
        }
    }
}
