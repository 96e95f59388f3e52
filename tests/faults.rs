//! The fault-injection and server-side security suite (issue 10, C): the real
//! `ftpmonitor` binary against the real pure-ftpd, vsftpd and proftpd of the interop suite
//! (tests/interop.rs), through a fault-injecting proxy (tests/interop_support/toxics.rs),
//! while things go wrong. RELIABILITY.md has the results.
//!
//! ```text
//! sudo tests/interop/setup.sh                       # once per machine
//! cargo test --test faults -- --ignored --test-threads=1   # as root (the daemons, mount); as .ci/run
//! FTPMONITOR_FAULT_SEED=N cargo test --test faults -- --ignored --exact NAME   # replay
//! ```
//!
//! Every test prints its seed first and one `RESULT | ...` line at the end (run with
//! `--nocapture` to see them).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "interop_support/mod.rs"]
mod support;

#[path = "interop_support/fault_scenarios.rs"]
mod fault_scenarios;

#[path = "interop_support/security.rs"]
mod security;

/// Both kinds of scenario, for the macro.
mod all {
    pub use crate::fault_scenarios::*;
    pub use crate::security::*;
}

/// One test per scenario and server, named `<server>::<scenario>`.
macro_rules! fault_tests {
    ($module:ident => $kind:expr; $($scenario:ident),* $(,)?) => {
        mod $module {
            use crate::support::servers::Kind;

            const KIND: Kind = $kind;

            $(
                #[test]
                #[ignore = "needs real FTP daemons and root: tests/interop/setup.sh, then cargo test --test faults -- --ignored"]
                fn $scenario() {
                    crate::all::$scenario(KIND, concat!(stringify!($module), "::", stringify!($scenario)));
                }
            )*
        }
    };
}

fault_tests! {
    pure_ftpd => Kind::PureFtpd;
    drops_during_uploads,
    server_killed_during_burst,
    server_stalled,
    daemon_killed_during_sync,
    changed_while_uploading,
    directory_renamed_while_uploading,
    overflow_while_stopped,
    disk_full_on_one_file,
    permission_denied_directory,
    watch_dir_replaced_by_a_file,
    slow_link_shorter_timeout,
    connections_refused_for_a_while,
    tls_refusals,
    hostile_listing,
    passive_reply_naming_another_address,
    hostile_replies,
}

fault_tests! {
    vsftpd => Kind::Vsftpd;
    drops_during_uploads,
    server_killed_during_burst,
    server_stalled,
    changed_while_uploading,
    disk_full_on_one_file,
    permission_denied_directory,
    slow_link_shorter_timeout,
    connections_refused_for_a_while,
    tls_refusals,
    hostile_listing,
    hostile_replies,
}

fault_tests! {
    proftpd => Kind::Proftpd;
    drops_during_uploads,
    server_killed_during_burst,
    server_stalled,
    changed_while_uploading,
    disk_full_on_one_file,
    permission_denied_directory,
    slow_link_shorter_timeout,
    connections_refused_for_a_while,
    tls_refusals,
    hostile_listing,
    hostile_replies,
}
