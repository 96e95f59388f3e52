//! A path that changes kind: a directory replaced by a file of the same name, and back.

use crate::support::{Daemon, Test};

fn remote_is_dir(d: &Daemon, rel: &str) -> bool {
    d.remote_root().join(rel).is_dir()
}

fn directory_replaced_by_a_file(remote_dir_existed: bool) {
    let t = Test::new().arg("--delete");
    if remote_dir_existed {
        // Made by someone else: the daemon's MKD finds it there.
        std::fs::create_dir_all(t.server().root().join("upload/d")).unwrap();
    }
    t.write("d/x.txt", b"inside the directory");
    t.write("keep.txt", b"keeps the watch directory from looking unmounted");
    let d = t.start();
    d.wait_remote("d/x.txt", b"inside the directory");
    d.wait_for_upload_line("d/x.txt");

    std::fs::remove_dir_all(d.watch_dir().join("d")).unwrap();
    d.write("d", b"now a file of that name");
    d.wait_remote("d", b"now a file of that name");
    assert!(!remote_is_dir(&d, "d"), "{}", d.diagnostics());
}

#[test]
fn with_delete_a_directory_replaced_by_a_file_is_replaced_on_the_server() {
    directory_replaced_by_a_file(false);
}

#[test]
fn with_delete_a_directory_the_server_had_replaced_by_a_file_is_replaced_on_the_server() {
    directory_replaced_by_a_file(true);
}

#[test]
fn with_delete_a_file_replaced_by_a_directory_is_replaced_on_the_server() {
    let t = Test::new().arg("--delete");
    t.write("d", b"a file first");
    t.write("keep.txt", b"keeps the watch directory from looking unmounted");
    let d = t.start();
    d.wait_remote("d", b"a file first");
    d.wait_for_upload_line("d");

    std::fs::remove_file(d.watch_dir().join("d")).unwrap();
    d.write("d/x.txt", b"now inside a directory");
    d.wait_remote("d/x.txt", b"now inside a directory");
}

#[test]
fn without_delete_a_directory_replaced_by_a_file_is_skipped_with_one_line() {
    let t = Test::new();
    t.write("d/x.txt", b"inside the directory");
    let d = t.start();
    d.wait_remote("d/x.txt", b"inside the directory");
    d.wait_for_upload_line("d/x.txt");

    std::fs::remove_dir_all(d.watch_dir().join("d")).unwrap();
    d.write("d", b"now a file of that name");
    d.wait_for_log("skipping d: the server has a directory of this name; --delete replaces it");
    d.write("after.txt", b"after");
    d.wait_remote("after.txt", b"after");
    assert_eq!(d.remote("d/x.txt").as_deref(), Some(&b"inside the directory"[..]), "{}", d.diagnostics());
    assert!(!d.log().contains("rename to /upload/d"), "the file was tried anyway\n{}", d.diagnostics());
}
