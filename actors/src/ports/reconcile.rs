//! The port the `reconciler` reaches the world through: the journal's deliveries that were
//! never acted on, the tasks linked to a tracker and the board's word on each, and the tasks
//! whose CI status may have been missed. The adapter gathers the facts and carries out what
//! [`crate::domain::reconcile::judge`] decides; the schedule, the retry budget, the counts
//! and the alerts are the actor's.

use async_trait::async_trait;

use crate::WorkItemId;

/// What re-evaluating a delivery came to; the adapter has journaled it unless it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redone {
    /// It still applied and was acted on; the outcome, in words.
    Acted {
        /// The task concerned, if any.
        task: Option<WorkItemId>,
        /// The outcome.
        outcome: String,
    },
    /// It no longer applies; settled `superseded` with this reason.
    Superseded {
        /// The task concerned, if any.
        task: Option<WorkItemId>,
        /// Why.
        reason: String,
    },
    /// It could not be re-evaluated now (a tracker or forge API failed); left for the next
    /// pass.
    Failed {
        /// The task concerned, if known.
        task: Option<WorkItemId>,
        /// Why.
        error: String,
    },
}

/// What the board's word on a linked task came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardCheck {
    /// The card stands where the task does, or in no triggering status.
    InStep,
    /// A transition the service missed was applied (and journaled as reconciled).
    Applied(String),
    /// The card asks for something the task has moved past; left alone.
    Superseded(String),
    /// It does not add up; left alone, to be reported.
    Ambiguous(String),
    /// The board could not be read now.
    Failed(String),
}

/// The reconciler's view of the world.
#[async_trait]
pub trait Reconcile: Send + Sync + 'static {
    /// The journal's deliveries that were accepted but never acted on: those whose acting
    /// failed, and those left without an outcome by an earlier boot (or long enough ago that
    /// nobody is acting on them any more). Oldest first.
    async fn pending_deliveries(&self) -> Result<Vec<i64>, String>;

    /// Re-evaluates delivery `id` against the task's and the board's current state: acted on
    /// if it still applies, settled `superseded` if it no longer does.
    async fn redo_delivery(&self, id: i64) -> Redone;

    /// Settles delivery `id` for good without acting on it (its retry budget is spent).
    async fn abandon_delivery(&self, id: i64, reason: &str) -> Result<(), String>;

    /// The non-terminal tasks linked to a tracker issue.
    async fn linked_tasks(&self) -> Result<Vec<WorkItemId>, String>;

    /// Reads the card of task `id` and applies a transition the service missed, when the
    /// judge says it applies.
    async fn check_board(&self, id: &WorkItemId) -> BoardCheck;

    /// The tasks waiting on a forge's CI (their gate reads the combined status when asked to
    /// re-check).
    async fn awaiting_ci(&self) -> Result<Vec<WorkItemId>, String>;
}
