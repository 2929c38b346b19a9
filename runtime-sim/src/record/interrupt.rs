//! Ctrl-C as a request to stop training cleanly.
//!
//! [`Interrupt::install`] registers a process-wide Ctrl-C (SIGINT) handler through the
//! `ctrlc` crate. The first Ctrl-C only sets a flag that the training loop polls between
//! batches ([`Interrupt::requested`]): the loop then finishes the batch, writes the weights
//! and the run record (marked `interrupted`) and exits normally. A second Ctrl-C, for a loop
//! that does not get to poll, ends the process at once with status 130 (128 + SIGINT, the
//! shell convention); outputs are written atomically, so it leaves no partial file.
//!
//! The `ctrlc` crate allows one handler per process, so the handler and its flag are created
//! once and every later [`Interrupt::install`] returns the same flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::RecordError;

/// The process-wide flag behind the installed handler, once there is one. The lock makes
/// "check, then install" one step, so two threads cannot both try to install.
static INSTALLED: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);

/// A stop request flag, set by Ctrl-C (or by [`Interrupt::request`]).
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// A flag with no handler behind it, for loops run without a terminal (and for tests).
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// The flag set by the process's Ctrl-C handler, installing the handler on first use.
    pub fn install() -> Result<Interrupt, RecordError> {
        // A panic elsewhere while holding the lock leaves the slot consistent; keep using it.
        let mut slot = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flag) = slot.as_ref() {
            return Ok(Interrupt { flag: flag.clone() });
        }
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        ctrlc::set_handler(move || {
            // `swap` tells a first request from a repeated one.
            if handler_flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .map_err(|e| RecordError::Interrupt(e.to_string()))?;
        *slot = Some(flag.clone());
        Ok(Interrupt { flag })
    }

    /// Whether a stop has been requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Requests a stop, as Ctrl-C does.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Withdraws a request (for example after an interrupted evaluation was handled).
    pub fn clear(&self) {
        self.flag.store(false, Ordering::SeqCst);
    }
}
