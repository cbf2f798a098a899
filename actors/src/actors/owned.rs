//! Work an actor owns: spawned off its handler, held in its state, aborted when the handle
//! drops — so it ends with the actor, whether it stopped or failed.

use ractor::{ActorRef, Message};
use tokio_util::task::AbortOnDropHandle;

/// Spawns `work` as owned work: it ends when the returned handle is dropped.
pub fn owned(work: impl Future<Output = ()> + Send + 'static) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(work))
}

/// Spawns `work` as owned work and sends the message it ends with to `to` (an actor's
/// sweep, pass or probe that reports back to the actor itself).
pub fn report_to<M: Message>(
    to: &ActorRef<M>,
    work: impl Future<Output = M> + Send + 'static,
) -> AbortOnDropHandle<()> {
    let to = to.clone();
    owned(async move {
        let _ = to.cast(work.await);
    })
}
