//! Move mode's hand-offs on a thread of their own: checking that a file is
//! still the one uploaded means reading it whole (its fingerprint), and an
//! archive on another disk means copying it, which for a big file takes
//! long enough to hold up events and uploads if the loop did it. The loop
//! records the hand-off in the journal first, hands it here, and hears the
//! result as [`Event::HandedOff`]. A hand-off cut off by a stop or a crash
//! is finished at the next start from the journal.

use std::path::Path;
use std::sync::mpsc::{Sender, channel};

use log::info;

use crate::event::{Event, HandOffResult};
use crate::localfs::{HandedOff, Stamp, Tree};
use crate::relpath::{EscapedPath, RelPath};

/// One file to hand off: as uploaded, with its fingerprint.
struct Work {
    rel: RelPath,
    stamp: Stamp,
    hash: [u8; 32],
}

/// The hand-off thread's end of the loop.
pub struct HandOffs {
    tx: Option<Sender<Work>>,
}

impl HandOffs {
    /// Starts the thread: files of `tree` are removed, or moved to
    /// `archive`; results go to `events`.
    pub fn start(tree: Tree, archive: Option<Tree>, events: Sender<Event>) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Work>();
        std::thread::Builder::new().name("hand-off".to_string()).spawn(move || {
            for Work { rel, stamp, hash } in rx {
                // A panic must not lose the answer (`--once` waits for it).
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tree.hand_off(Path::new(rel.as_str()), stamp, &hash, archive.as_ref())
                }))
                .unwrap_or_else(|_| Err(std::io::Error::other("internal error in the hand-off")));
                match (&result, &archive) {
                    (Ok(HandedOff::Done), Some(to)) => {
                        info!("moved {rel} to the archive {} (uploaded)", EscapedPath(&to.root().join(rel.as_str())));
                    }
                    (Ok(HandedOff::Done), None) => info!("removed {rel} (uploaded)"),
                    _ => {}
                }
                let result: HandOffResult = result.map_err(|e| e.to_string());
                if events.send(Event::HandedOff { rel, stamp, hash, result }).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { tx: Some(tx) })
    }

    /// Hands a file to the thread; `false` if the thread is gone.
    pub fn submit(&self, rel: RelPath, stamp: Stamp, hash: [u8; 32]) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(Work { rel, stamp, hash }).is_ok())
    }

    /// No more hand-offs: the one under way finishes (or is cut off when
    /// the process exits, and finished at the next start).
    pub fn close(&mut self) {
        self.tx = None;
    }
}
