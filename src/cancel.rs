//! Cancellation of the whole process: a GitLab cancel or job timeout sends
//! SIGTERM, a terminal Ctrl-C sends SIGINT. The CLI's signal listener calls
//! [`request`]; the library only observes the request, at the points where
//! stopping needs care:
//!
//! - a sandboxed command (`verify::runner`) kills its bubblewrap and reaps it;
//! - an unpack (`verify::unpack`) stops reading its layer, so its staging
//!   directory is removed by the unpack itself, and [`settle`] waits for that;
//! - a download (`verify::cache`) stops and its temporary file is removed.
//!
//! Everything else is simply dropped after [`GRACE`] (nothing is published
//! half: tags are written last). The run then fails with
//! [`Error::Cancelled`], kind `cancelled`, exit 130 (SIGINT) or 143 (SIGTERM).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

pub use crate::error::Signal;
use crate::error::{Error, Result};

/// How long the cooperative points get to stop before the rest is dropped.
pub const GRACE: Duration = Duration::from_secs(5);

fn state() -> &'static watch::Sender<Option<Signal>> {
    static STATE: OnceLock<watch::Sender<Option<Signal>>> = OnceLock::new();
    STATE.get_or_init(|| watch::Sender::new(None))
}

/// Asks everything to stop; the first signal is the one reported.
pub fn request(signal: Signal) {
    state().send_if_modified(|s| {
        let first = s.is_none();
        if first {
            *s = Some(signal);
        }
        first
    });
}

/// The signal, once cancellation was requested.
pub fn requested() -> Option<Signal> {
    *state().borrow()
}

/// `Err(Error::Cancelled)` once cancellation was requested.
pub fn check() -> Result<()> {
    requested().map_or(Ok(()), |s| Err(Error::Cancelled(s)))
}

/// Resolves when cancellation is requested (at once if it already was).
pub async fn cancelled() -> Signal {
    let mut rx = state().subscribe();
    match rx.wait_for(Option::is_some).await {
        Ok(s) => s.expect("waited for Some"),
        // The sender is a static: it is never dropped.
        Err(_) => std::future::pending().await,
    }
}

/// [`cancelled`], then [`GRACE`] for the cooperative points to finish.
pub async fn cancelled_after_grace() -> Signal {
    let signal = cancelled().await;
    tokio::time::sleep(GRACE).await;
    signal
}

static BUSY: AtomicUsize = AtomicUsize::new(0);

/// Held by blocking work that cleans up after itself on cancellation (an
/// unpack removing its staging directory); [`settle`] waits until none is held.
pub struct Busy(());

impl Busy {
    /// Marks blocking work as running until the guard is dropped.
    pub fn start() -> Busy {
        BUSY.fetch_add(1, Ordering::SeqCst);
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits (at most [`GRACE`]) until no [`Busy`] work runs any more, so that
/// its staging is gone before the process exits.
pub async fn settle() {
    let deadline = tokio::time::Instant::now() + GRACE;
    while BUSY.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signal_names_are_the_ones_in_the_message() {
        assert_eq!(Signal::Interrupt.name(), "SIGINT");
        assert_eq!(
            Error::Cancelled(Signal::Terminate).to_string(),
            "cancelled by SIGTERM"
        );
    }
}
