//! Daemon discipline behind one API: the locked PID file, forking with a
//! readiness report to the launcher, privilege drop. Unix does all of it;
//! on Windows the process always runs in the foreground (the service
//! scripts start it that way) and only the PID file remains.

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

pub use imp::*;

mod pidfile;
pub use pidfile::PidFile;
