//! What a task actor owns besides its record: gate evaluations, the merge, timed retries,
//! the worktree's removal and the board's ordered updates. Each is a future held in the
//! actor's state and aborted when the incarnation ends, so nothing stale outlives it.

use std::sync::Arc;

use ractor::registry;
use tokio_util::task::AbortOnDropHandle;
use tracing::warn;

use crate::ports::{Board, BoardStatus, TaskRecord};

/// Work a task actor started and owns: each is aborted when the incarnation ends (its state
/// is dropped, whether it stopped or failed), so nothing stale outlives it.
#[derive(Default)]
pub(super) struct SideWork {
    /// A gate evaluation in flight.
    pub(super) gate: Option<AbortOnDropHandle<()>>,
    /// The merge in flight.
    pub(super) merge: Option<AbortOnDropHandle<()>>,
    /// A timed retry (a deferred gate, a failed merge).
    pub(super) timer: Option<AbortOnDropHandle<()>>,
    /// The board's ordered updates, started on the first one.
    pub(super) board: Option<BoardWorker>,
    /// The worktree's removal, once the task is done or cancelled.
    pub(super) cleanup: Option<AbortOnDropHandle<()>>,
}

/// Carries out a task's board updates one after another, in order, so a slow tracker never
/// holds the actor and never reorders moves.
pub(super) struct BoardWorker {
    /// Where updates are queued.
    /// Jobs travel boxed: a channel allocates its slots in blocks of 32, and 32 task records
    /// inline would cost every task that ever updated its card some 9 KiB.
    pub(super) tx: tokio::sync::mpsc::UnboundedSender<Box<BoardJob>>,
    /// The worker.
    pub(super) worker: AbortOnDropHandle<()>,
}

/// One update of the task's card on its board.
pub(super) enum BoardJob {
    /// Move the card.
    Show(TaskRecord, BoardStatus),
    /// Comment on it.
    Comment(TaskRecord, Option<crate::domain::pipeline::Role>, String),
}

impl SideWork {
    /// What is running now, by name (`gate`, `merge`, `timer`, `cleanup`), for Describe.
    pub(super) fn in_flight(&self) -> Vec<&'static str> {
        [
            ("gate", &self.gate),
            ("merge", &self.merge),
            ("timer", &self.timer),
            ("cleanup", &self.cleanup),
        ]
        .into_iter()
        .filter(|(_, work)| work.as_ref().is_some_and(|w| !w.is_finished()))
        .map(|(name, _)| name)
        .collect()
    }
}

impl BoardWorker {
    pub(super) fn start(board: Arc<dyn Board>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Box<BoardJob>>();
        let worker = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let (id, result) = match &*job {
                    BoardJob::Show(task, status) => {
                        (&task.work_item_id, board.show(task, *status).await)
                    }
                    BoardJob::Comment(task, author, text) => {
                        (&task.work_item_id, board.comment(task, *author, text).await)
                    }
                };
                if let Err(e) = result {
                    warn!(task = %id, error = %e, "cannot update the tracker board");
                }
            }
        });
        Self {
            tx,
            worker: AbortOnDropHandle::new(worker),
        }
    }
}

/// Tells the dispatcher to look at the queue, if it runs.
pub(super) fn wake_dispatch() {
    if let Some(cell) = registry::where_is(crate::actors::dispatch::DISPATCH) {
        let _ = cell.send_message(crate::actors::dispatch::DispatchMsg::Wake);
    }
}
