//! SIGINT and SIGTERM become a cancellation request ([`crate::cancel`]); a
//! second signal, when stopping takes too long for the user, exits at once.

use crate::cancel::{self, Signal};
use crate::error::Error;

/// Starts listening (inside the runtime). A listener that cannot be
/// installed leaves the default action (the process ends at once).
pub fn listen() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM: a signal ends archgate without reports");
        return;
    };
    tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                _ = int.recv() => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
            };
            if cancel::requested().is_some() {
                let status = Error::Cancelled(got).exit_status();
                eprintln!("error: {} again: exiting now", got.name());
                std::process::exit(status.code().into());
            }
            cancel::request(got);
        }
    });
}
