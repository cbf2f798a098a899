//! SIGTERM/SIGINT via signal-hook on a dedicated thread: the first signal starts a graceful
//! shutdown bounded by a deadline; a second signal, or the deadline, forces the exit.

use std::io;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Exit code when a second signal forces the exit.
pub const FORCED_BY_SIGNAL: i32 = 130;
/// Exit code when a graceful shutdown overran its budget.
pub const FORCED_BY_DEADLINE: i32 = 1;

/// Starts listening for termination signals. The returned token is cancelled on the first
/// one; the process exits on the second, or `grace` after the first.
pub fn install(grace: Duration) -> io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let cancel = token.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                received += 1;
                if received == 1 {
                    info!(signal, grace_s = grace.as_secs(), "shutting down");
                    cancel.cancel();
                    spawn_deadline(grace);
                } else {
                    error!(signal, "second signal: forcing exit");
                    std::process::exit(FORCED_BY_SIGNAL);
                }
            }
        })?;
    Ok(token)
}

fn spawn_deadline(grace: Duration) {
    let _ = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(grace);
            error!(
                grace_s = grace.as_secs(),
                "graceful shutdown overran its budget: forcing exit"
            );
            std::process::exit(FORCED_BY_DEADLINE);
        });
}
