//! The notification port: the live tracker card of a task (a view model built from the store
//! by [`crate::domain::card::build`]), the alerts a human must act on, where they are delivered
//! ([`Notifier`]) and where a card's chat message id is remembered ([`CardStore`]).

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{Phase, StoreError};
use crate::{Stage, WorkItemId};

/// Nano-dollars in one US dollar: costs are kept as whole nano-dollars so that totals are
/// exact sums of the rows.
pub const NANOS_PER_USD: f64 = 1e9;

/// A chat message id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MessageId(pub i64);

/// Where a task stands, as a human reading the card needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum CardState {
    /// Nothing in flight yet; the task decides its next step.
    Idle,
    /// An agent job is queued or running.
    Working,
    /// The stage's gate is being evaluated.
    Gating,
    /// Waiting in the merge queue, or its candidate is being built and tested.
    InMergeQueue,
    /// The branch is being merged.
    Merging,
    /// Waiting for a human approve or reject after analysis.
    AwaitingApproval,
    /// Waiting for a human to confirm the production deploy.
    AwaitingDeployConfirm,
    /// Parked until a human steps in.
    Blocked {
        /// Why, as the task recorded it.
        reason: String,
    },
    /// Paused by a human.
    Paused,
    /// Finished and merged.
    Done,
    /// Abandoned.
    Cancelled,
}

impl CardState {
    /// The state of a task at `stage` in `phase`: terminal stages win, then a block, then a
    /// pause, then the phase itself.
    pub fn of(stage: Stage, phase: Phase, paused: bool, blocked_reason: Option<&str>) -> Self {
        match (stage, phase) {
            (Stage::Done, _) => CardState::Done,
            (Stage::Cancelled, _) => CardState::Cancelled,
            (_, Phase::Blocked) => CardState::Blocked {
                reason: blocked_reason.unwrap_or("no reason recorded").to_string(),
            },
            _ if paused => CardState::Paused,
            (_, Phase::Idle) => CardState::Idle,
            (_, Phase::Working) => CardState::Working,
            (_, Phase::Gating) => CardState::Gating,
            (_, Phase::Queued) => CardState::InMergeQueue,
            (_, Phase::Merging) => CardState::Merging,
            (_, Phase::AwaitingApproval) => CardState::AwaitingApproval,
            (_, Phase::AwaitingDeployConfirm) => CardState::AwaitingDeployConfirm,
        }
    }
}

/// Where one pipeline stage of the task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowStatus {
    /// The task is at this stage and its agent job waits for a slot (or a retry).
    Queued,
    /// Its agent is running.
    Running,
    /// Its gate is being evaluated.
    Gating,
    /// The task is at this stage waiting for a human.
    Waiting,
    /// The task is at this stage, blocked.
    Blocked,
    /// The task is at this stage, paused.
    Paused,
    /// The task went past it.
    Passed,
    /// It ran, and the task was sent back before it (or its last run failed).
    Failed,
    /// The task went past it without running it (e.g. architecture for a bug).
    Skipped,
    /// The task was cancelled while here.
    Cancelled,
}

impl RowStatus {
    /// The lower-case spelling shown on the card.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Queued => "queued",
            RowStatus::Running => "running",
            RowStatus::Gating => "gating",
            RowStatus::Waiting => "waiting",
            RowStatus::Blocked => "blocked",
            RowStatus::Paused => "paused",
            RowStatus::Passed => "passed",
            RowStatus::Failed => "failed",
            RowStatus::Skipped => "skipped",
            RowStatus::Cancelled => "cancelled",
        }
    }
}

/// One pipeline stage the task reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageRow {
    /// The stage.
    pub stage: Stage,
    /// Where it stands.
    pub status: RowStatus,
    /// Agent runs of this stage so far (0 when it never ran).
    pub attempt: u32,
    /// Input tokens of those runs.
    pub input_tokens: u64,
    /// Output tokens of those runs.
    pub output_tokens: u64,
    /// Cost of those runs in nano-dollars.
    pub cost_nanos: u64,
    /// The model of the latest run.
    pub model: Option<String>,
}

/// Sums over every run of the task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CardTotals {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in nano-dollars.
    pub cost_nanos: u64,
}

/// The live tracker card of one task: everything its chat message shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Card {
    /// The task.
    pub work_item_id: WorkItemId,
    /// Its title.
    pub title: String,
    /// Its current stage.
    pub stage: Stage,
    /// Where it stands within the stage.
    pub state: CardState,
    /// One row per pipeline stage reached, in pipeline order.
    pub rows: Vec<StageRow>,
    /// Sums over every run.
    pub totals: CardTotals,
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// Analysis passed; a human must approve or reject.
    ApprovalRequested,
    /// A deploy failed.
    DeployFailed,
    /// An agent run failed for good.
    AgentFailed,
    /// The task is parked until a human steps in.
    Blocked,
    /// The reconciler found something about the task it cannot make sense of.
    Unreconciled,
    /// The agent program cannot be started: the queue is held.
    AgentUnavailable,
}

impl AlertKind {
    /// The spelling shown in the alert.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ApprovalRequested => "approval requested",
            AlertKind::DeployFailed => "deploy failed",
            AlertKind::AgentFailed => "agent failed",
            AlertKind::Blocked => "blocked",
            AlertKind::Unreconciled => "cannot reconcile",
            AlertKind::AgentUnavailable => "agent cannot start",
        }
    }
}

/// A separate, notifying message a human should act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The task.
    pub work_item_id: WorkItemId,
    /// What it is about.
    pub kind: AlertKind,
    /// What happened, in words a human can act on.
    pub text: String,
}

/// A message about the service as a whole, not one task (a filesystem filling up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// What it is about, in a word or two (`disk`).
    pub topic: String,
    /// What happened, in words a human can act on.
    pub text: String,
}

/// Why a delivery did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The edit would not change the message (the chat already shows it).
    #[error("message is not modified")]
    NotModified,
    /// The message to edit is gone (deleted by a human, or too old).
    #[error("message not found")]
    NotFound,
    /// Flood control: try again after this long.
    #[error("rate limited; retry after {} s", .0.as_secs())]
    RetryAfter(Duration),
    /// Anything else, with the service's description.
    #[error("delivery failed: {0}")]
    Failed(String),
}

/// Where cards and alerts are shown (a Telegram chat, or the log).
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Posts a new card message; returns its id.
    async fn send_card(&self, card: &Card) -> Result<MessageId, NotifyError>;
    /// Replaces the content of card message `id`.
    async fn edit_card(&self, id: MessageId, card: &Card) -> Result<(), NotifyError>;
    /// Deletes message `id`.
    async fn delete_message(&self, id: MessageId) -> Result<(), NotifyError>;
    /// Posts an alert as a separate, notifying message.
    async fn send_alert(&self, alert: &Alert) -> Result<(), NotifyError>;

    /// Posts a notifying message about the service as a whole.
    async fn send_notice(&self, notice: &Notice) -> Result<(), NotifyError>;
}

/// Remembers which chat message is each task's card, so a restart keeps editing it.
#[async_trait]
pub trait CardStore: Send + Sync + 'static {
    /// The message id of the task's card, if one was sent.
    async fn card_message(&self, id: &WorkItemId) -> Result<Option<i64>, StoreError>;
    /// Points the task's card at message `message_id`.
    async fn save_card_message(&self, id: &WorkItemId, message_id: i64) -> Result<(), StoreError>;
}
