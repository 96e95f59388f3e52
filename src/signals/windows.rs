//! Windows: Ctrl-C and Ctrl-Break (signal-hook maps them to SIGINT and
//! SIGTERM) set flags that a small thread forwards to the main loop. There is
//! no SIGHUP or SIGUSR1: `HUP` and `USR1` are never delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::event::Event;

pub const INT: i32 = SIGINT;
pub const TERM: i32 = SIGTERM;
pub const HUP: i32 = -1;
pub const USR1: i32 = -2;
pub const USR2: i32 = -3;

pub struct SignalThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    pub fn start(tx: Sender<Event>) -> std::io::Result<Self> {
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGINT, Arc::clone(&int))?;
        signal_hook::flag::register(SIGTERM, Arc::clone(&term))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("signals".into()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                for (flag, sig) in [(&int, SIGINT), (&term, SIGTERM)] {
                    if flag.swap(false, Ordering::Relaxed) && tx.send(Event::Signal(sig)).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for SignalThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "Ctrl-Break",
        SIGINT => "Ctrl-C",
        _ => "signal",
    }
}
