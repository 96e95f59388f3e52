//! Interop tests: the real `ftpmonitor` binary against real FTP daemons from Debian's
//! packages (pure-ftpd, vsftpd, proftpd), run from where `tests/interop/setup.sh`
//! unpacked them, each on its own ports with a config from `tests/interop/`.
//!
//! ```text
//! sudo tests/interop/setup.sh                 # once per machine; idempotent
//! cargo test --test interop -- --ignored      # as root: the daemons need it
//! ```
//!
//! Every test is `#[ignore]`d, so a plain `cargo test` lists them without running them.
//! Each test starts its own daemon and stops it (and its session processes) at the end.
//! The same scenarios run against every daemon; `tests/interop/RESULTS.md` has the
//! compatibility table they produced.

// Linux only: the daemons, /proc, process groups.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "interop_support/mod.rs"]
mod support;

#[path = "interop_support/scenarios.rs"]
mod scenarios;

/// One module per daemon, with one test per scenario.
macro_rules! scenarios_for {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            use crate::scenarios;
            use crate::support::servers::Kind;

            const KIND: Kind = $kind;

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn a_plain_ftp_tree_arrives_identical() {
                scenarios::plain_tree(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn b_ftps_required_tree_arrives_identical() {
                scenarios::ftps_tree(KIND, 4);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn b_ftps_required_tree_arrives_identical_over_one_connection() {
                scenarios::ftps_tree(KIND, 1);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn b_ftps_upload_ends_when_the_server_closes_the_data_connection() {
                scenarios::ftps_upload_ends_with_the_servers_close(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn b_ftps_wrong_ca_fails_at_start_naming_the_host() {
                scenarios::ftps_wrong_ca(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn c_changed_file_replaces_the_old_version() {
                scenarios::replace_existing(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn d_names_with_spaces_and_utf8() {
                scenarios::unicode_names(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn e_100_mib_file_arrives_identical() {
                scenarios::big_file(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn f_upload_survives_a_dropped_data_connection() {
                scenarios::dropped_data_connection(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn f_upload_resumes_after_a_dropped_data_connection() {
                scenarios::resume_sends_only_the_rest(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn i_ipv6_tree_arrives_identical() {
                scenarios::ipv6_tree(KIND, false);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn i_ipv6_active_tree_arrives_identical() {
                scenarios::ipv6_tree(KIND, true);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn j_drop_folder_hand_off_staged_with_modes_in_order() {
                scenarios::drop_folder(KIND);
            }

            #[test]
            #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
            fn compat_probe() {
                scenarios::compat_probe(KIND);
            }
        }
    )*};
}

scenarios_for! {
    pure_ftpd => Kind::PureFtpd,
    vsftpd => Kind::Vsftpd,
    proftpd => Kind::Proftpd,
}

/// g. Only proftpd can be set to refuse RNTO onto an existing file (`AllowOverwrite off`);
/// pure-ftpd (even with `--keepallfiles`) and vsftpd always rename over it.
mod proftpd_no_overwrite {
    use crate::scenarios;
    use crate::support::servers::Kind;

    #[test]
    #[ignore = "needs real FTP daemons: tests/interop/setup.sh, then cargo test --test interop -- --ignored"]
    fn g_changed_file_replaces_the_old_version_when_rename_over_is_refused() {
        scenarios::replace_when_rename_over_is_refused(Kind::Proftpd);
    }
}

// h. A server that answers LIST in Windows/DOS format: no Debian daemon does that, so it is
// not covered here; tests/it runs the in-process server variant.
