use super::*;

fn key(w: &str) -> JobKey {
    JobKey { watch_dir: w.into(), host: "h".into(), port: 21, remote_dir: "/r".into(), user: "u".into() }
}

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

#[test]
fn batches_survive_reopening_and_jobs_are_separate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(tmp.path(), &key("/a")).unwrap();
    let s = Synced { size: 3, mtime_ns: 42, hash: Some([7; 32]) };
    let mut b = Batch::default();
    b.dequeue(rel("again"));
    b.queue(rel("again"), Op::Upload);
    b.queue(rel("x/y"), Op::Upload);
    b.queue(rel("gone"), Op::Delete);
    j.apply(&mut b).unwrap();
    b.synced(rel("x/y"), s, true);
    j.apply(&mut b).unwrap();
    drop(j);

    let j = Journal::open(tmp.path(), &key("/a")).unwrap();
    assert_eq!(j.load_synced().unwrap().get(&rel("x/y")), Some(&s));
    let mut queue = j.load_queue().unwrap();
    queue.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(queue, vec![(rel("again"), Op::Upload, 0), (rel("gone"), Op::Delete, 0)]);
    let other = Journal::open(tmp.path(), &key("/b")).unwrap();
    assert!(other.load_synced().unwrap().is_empty());

    let st = read_status(tmp.path()).unwrap();
    let a = st.iter().find(|s| s.watch_dir == "/a").unwrap();
    assert_eq!((a.synced, a.pending), (1, 2));
    assert_eq!(a.last_upload_path.as_deref(), Some("x/y"));
}

#[test]
fn uploads_under_way_survive_a_restart_until_they_end() {
    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(tmp.path(), &key("/a")).unwrap();
    let mut b = Batch::default();
    b.upload_started(rel("big.bin"), 300, 7);
    b.upload_started(rel("quick.txt"), 1, 8);
    b.upload_ended(rel("quick.txt"));
    j.apply(&mut b).unwrap();
    drop(j);
    let mut j = Journal::open(tmp.path(), &key("/a")).unwrap();
    assert_eq!(j.load_uploads().unwrap(), vec![(rel("big.bin"), 300, 7)]);
    b.upload_ended(rel("big.bin"));
    j.apply(&mut b).unwrap();
    assert!(j.load_uploads().unwrap().is_empty());
}

#[test]
fn an_upload_tried_again_in_a_later_batch_leaves_no_row_once_it_ends() {
    // The first attempt's row is written; the second attempt starts and ends
    // within one batch: the row must still go (it stayed, and a restart
    // "resumed" a finished upload).
    let tmp = tempfile::tempdir().unwrap();
    let mut j = Journal::open(tmp.path(), &key("/a")).unwrap();
    let mut b = Batch::default();
    b.upload_started(rel("retried.bin"), 300, 7);
    j.apply(&mut b).unwrap();
    b.upload_started(rel("retried.bin"), 300, 7);
    b.upload_ended(rel("retried.bin"));
    j.apply(&mut b).unwrap();
    assert!(j.load_uploads().unwrap().is_empty(), "{:?}", j.load_uploads().unwrap());
}

#[cfg(unix)]
#[test]
fn the_journal_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let _j = Journal::open(tmp.path(), &key("/a")).unwrap();
    let mode = std::fs::metadata(tmp.path().join(FILE_NAME)).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}
