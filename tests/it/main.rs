//! Integration tests: the real `ftpmonitor` binary against an in-process FTP server.
//!
//! One test binary, one module per area; `support` holds the server, the `Test` builder
//! and the log-message contract. Every test has its own server, ports and directories, so
//! they run in parallel.

// Linux only: the tests read /proc and use inotify through the binary.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod ages;
mod badinput;
mod bwlimit;
mod changing;
mod check;
mod cli;
mod crash;
mod daemon;
mod dataconn;
mod engine;
mod handoff;
mod health;
mod hooks;
mod hostile;
mod include;
mod ipv6;
mod kinds;
mod last;
mod listing;
mod localfiles;
mod logformat;
mod login;
mod metrics;
mod order;
mod pause;
mod pipeline;
mod poll;
mod privdrop;
mod renames;
mod root;
mod safety;
mod scope;
mod secrets;
mod sending;
mod service;
mod signals;
mod staging;
mod symlinks;
mod sync;
mod watches;
