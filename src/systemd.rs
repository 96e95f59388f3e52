//! Telling systemd how we are (`Type=notify`): READY=1 once the tree is
//! watched and the server logged in to (or being retried), STOPPING=1 on
//! shutdown, RELOADING=1 around a SIGHUP reload, and WATCHDOG=1 pings at half
//! the `WatchdogSec=` interval. Without `NOTIFY_SOCKET` every call is a no-op;
//! on other systems too.

use std::time::Duration;

#[cfg(unix)]
mod imp {
    use sd_notify::NotifyState;

    fn send(states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            log::debug!("cannot notify systemd: {e}");
        }
    }

    pub fn ready(status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn reloading() {
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            send(&[NotifyState::Reloading, now]);
        } else {
            send(&[NotifyState::Reloading]);
        }
    }

    pub fn stopping() {
        send(&[NotifyState::Stopping]);
    }

    pub fn watchdog() {
        send(&[NotifyState::Watchdog]);
    }

    pub fn watchdog_interval() -> Option<std::time::Duration> {
        sd_notify::watchdog_enabled()
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn ready(_status: &str) {}
    pub fn reloading() {}
    pub fn stopping() {}
    pub fn watchdog() {}
    pub fn watchdog_interval() -> Option<std::time::Duration> {
        None
    }
}

pub use imp::{ready, reloading, stopping, watchdog};

/// How often to ping the watchdog: half its interval, if one is set.
pub fn watchdog_every() -> Option<Duration> {
    imp::watchdog_interval().map(|d| d / 2).filter(|d| !d.is_zero())
}
