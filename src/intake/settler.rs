//! Journals what became of the deliveries acted on. The task that acted hands its outcome
//! over and ends; outcomes are written in batches — one store write for all that are
//! waiting — so a burst of deliveries costs the writer one job, not one each. A delivery
//! counts as in progress until its outcome is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orchestrator_actors::ports::{EventJournal, Settlement};
use tokio::sync::mpsc;
use tracing::warn;

/// Most outcomes written together.
const MAX_BATCH: usize = 256;

/// The queue of outcomes to journal.
pub struct Settler {
    /// Into the task that writes them.
    queue: mpsc::UnboundedSender<(Settlement, Acting)>,
    /// Deliveries accepted whose outcome is not written yet.
    in_progress: Arc<AtomicUsize>,
}

impl Settler {
    /// Starts the task that writes outcomes into `journal`, on the current runtime; it ends
    /// once the settler is dropped and the outcomes queued by then are written.
    pub fn start(journal: Arc<dyn EventJournal>) -> Self {
        let (queue, mut outcomes) = mpsc::unbounded_channel::<(Settlement, Acting)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while outcomes.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (settled, acting): (Vec<Settlement>, Vec<Acting>) = batch.drain(..).unzip();
                let ids: Vec<i64> = settled.iter().map(|s| s.id).collect();
                if let Err(e) = journal.settle_events(settled).await {
                    warn!(events = ?ids, error = %e, "cannot journal the outcomes of deliveries");
                }
                drop(acting);
            }
        });
        Self {
            queue,
            in_progress: Arc::default(),
        }
    }

    /// Counts a delivery as in progress until its outcome is written (or the returned guard
    /// is dropped without one, e.g. when acting on it panics).
    pub fn acting(&self) -> Acting {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        Acting(Arc::clone(&self.in_progress))
    }

    /// Queues the outcome of the delivery `acting` counts.
    pub fn settle(&self, settlement: Settlement, acting: Acting) {
        if let Err(mpsc::error::SendError((settlement, _))) = self.queue.send((settlement, acting))
        {
            warn!(
                event = settlement.id,
                "the outcome journal has stopped; outcome not recorded"
            );
        }
    }

    /// Deliveries accepted whose outcome is not written yet.
    pub fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::Relaxed)
    }
}

/// A delivery in progress; see [`Settler::acting`].
pub struct Acting(Arc<AtomicUsize>);

impl Drop for Acting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
