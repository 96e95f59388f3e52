//! Signals are only recorded: a thread forwards each one to the main loop as
//! [`crate::event::Event::Signal`], which decides what it means. Unix has
//! TERM, INT, HUP and USR1; Windows has Ctrl-C (INT) and Ctrl-Break (TERM).

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

pub use imp::*;
