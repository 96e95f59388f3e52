//! ftpmonitor: watch a directory and keep it pushed to an FTP or FTPS server.
//!
//! The binary is a thin `main.rs`; everything lives here so that the demo
//! example can run the real daemon in-process.

pub mod app;
pub mod bwlimit;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod debounce;
pub mod error;
pub mod event;
pub mod ftp;
pub mod journal;
pub mod localfs;
pub mod logging;
pub mod mounts;
pub mod pause;
pub mod planner;
pub mod relpath;
pub mod scope;
pub mod signals;
pub mod status;
pub mod systemd;
pub mod transfer;
pub mod watcher;
