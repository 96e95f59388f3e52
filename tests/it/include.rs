//! `--include`: only matching paths are synced, excludes still win, and a directory is
//! walked only if something below it can match.

use crate::support::{SKIPPING, Test};

#[test]
fn a_customer_share_syncs_only_what_is_included() {
    let t = Test::new().args([
        "--include",
        "*.pdf",
        "--include",
        "reports/2024/*.csv",
        "--include",
        "shared",
        "--exclude",
        "*.tmp",
        "--exclude",
        "private",
    ]);
    t.write("offer.pdf", b"offer");
    t.write("notes.txt", b"not included");
    t.write("private/secret.pdf", b"excluded though it is a pdf");
    t.write("reports/2024/q1.csv", b"q1");
    t.write("reports/2023/q1.csv", b"last year");
    t.write("shared/anything.bin", b"all of shared");
    t.write("shared/draft.tmp", b"excluded in shared too");
    // Nothing below photos/ can match: it is never walked, so its link is never seen.
    std::fs::create_dir_all(t.watch_dir().join("photos")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", t.watch_dir().join("photos/link")).unwrap();
    let d = t.start();
    d.wait_remote("offer.pdf", b"offer");
    d.wait_remote("reports/2024/q1.csv", b"q1");
    d.wait_remote("shared/anything.bin", b"all of shared");
    // And by events, after the start.
    d.write("later/invoice.pdf", b"invoice");
    d.write("later/invoice.docx", b"not included");
    d.write("shared/new/deep.bin", b"new in shared");
    d.write("zz-barrier.pdf", b"barrier");
    d.wait_remote("later/invoice.pdf", b"invoice");
    d.wait_remote("shared/new/deep.bin", b"new in shared");
    d.wait_remote("zz-barrier.pdf", b"barrier");

    let names: Vec<String> = d.remote_files().into_keys().collect();
    assert_eq!(
        names,
        [
            "later/invoice.pdf",
            "offer.pdf",
            "reports/2024/q1.csv",
            "shared/anything.bin",
            "shared/new/deep.bin",
            "zz-barrier.pdf"
        ],
        "{}",
        d.diagnostics()
    );
    assert!(
        !d.log().lines().any(|l| l.contains(SKIPPING) && l.contains("photos")),
        "a directory that cannot hold an included file was walked\n{}",
        d.log()
    );
}
