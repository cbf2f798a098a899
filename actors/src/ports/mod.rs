//! Ports: the traits through which actors reach the world. Adapters implement them in the
//! service crate (SQLite) or, for tests, in [`crate::fakes`].

use async_trait::async_trait;
use serde::Serialize;

use crate::{Stage, WorkItemId};

mod board;
mod disk;
mod forge;
mod housekeeping;
mod intake;
pub mod merge_queue;
mod notify;
mod queue;
mod reconcile;
pub mod workbench;

pub use board::{BaseGroup, Board, BoardStatus, LocalBoard};
pub use disk::{DiskProbe, FsReading};
pub use forge::{BranchAt, BranchHeads, PullRequest, PullRequestStore};
pub use housekeeping::{Housekeeping, RunFiles};
pub use intake::{
    ActInWrite, ActedInWrite, CommitRef, EventJournal, Journaled, NewEvent, Settlement,
    TrackerLink, TrackerLinks,
};
pub use notify::{
    Alert, AlertKind, Card, CardState, CardStore, CardTotals, MessageId, NANOS_PER_USD, Notice,
    Notifier, NotifyError, RowStatus, StageRow,
};
pub use queue::{
    Job, JobStatus, JobStore, NewJob, NewRun, ProcessId, QueueOverview, QueuePark, Requeue,
    RunFinish, RunOutcome, RunRecord, RunningJob,
};
pub use reconcile::{BoardCheck, Reconcile, Redone};

/// A task as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskRecord {
    /// The tracker's id of the work item; unique.
    pub work_item_id: WorkItemId,
    /// The repository the work lands in (e.g. `owner/name`).
    pub repo: String,
    /// One-line title from the tracker.
    pub title: String,
    /// Free-text description from the tracker.
    pub description: String,
    /// Current pipeline stage; written only by the task's actor.
    pub stage: Stage,
    /// A paused task starts no new work until resumed.
    pub paused: bool,
    /// Tracker labels (`Bug`, `autoApprove`, `autoDeploy`, …).
    pub labels: Vec<String>,
    /// The task's git branch, once cut.
    pub branch: Option<String>,
    /// Where the task stands within its stage.
    pub phase: Phase,
    /// Why the task is parked, when `phase` is [`Phase::Blocked`].
    pub blocked_reason: Option<String>,
    /// Times the task was sent back to development.
    pub developer_retries: u32,
    /// Agent runs of the current stage since the task entered it.
    pub stage_attempts: u32,
    /// What the next agent must be told (must-fix findings, a rejection reason).
    pub note: Option<String>,
    /// RFC 3339 UTC creation time.
    pub created_at: String,
    /// RFC 3339 UTC time of the last change.
    pub updated_at: String,
}

/// What is needed to create a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    /// The tracker's id; must not exist yet.
    pub work_item_id: WorkItemId,
    /// Target repository.
    pub repo: String,
    /// One-line title.
    pub title: String,
    /// Free-text description.
    pub description: String,
    /// Tracker labels.
    pub labels: Vec<String>,
}

/// Where a task stands within its stage; persisted so a restarted actor resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing in flight: the actor decides the next step on start.
    Idle,
    /// An agent job for the stage is queued or running.
    Working,
    /// The stage's gate is being evaluated.
    Gating,
    /// Analysis passed its gate; waiting for a human approve or reject.
    AwaitingApproval,
    /// Waiting for an explicit confirm-deploy before the production deploy.
    AwaitingDeployConfirm,
    /// Testing passed: waiting in the repository's merge queue, or holding its lease while
    /// its candidate (the branch merged into the current `main`) is built and tested.
    Queued,
    /// `main` is being fast-forwarded to the tested (and deployed) candidate.
    Merging,
    /// Parked: nothing more is launched (see `blocked_reason`).
    Blocked,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 8] = [
        Phase::Idle,
        Phase::Working,
        Phase::Gating,
        Phase::AwaitingApproval,
        Phase::AwaitingDeployConfirm,
        Phase::Queued,
        Phase::Merging,
        Phase::Blocked,
    ];

    /// The spelling used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Working => "working",
            Phase::Gating => "gating",
            Phase::AwaitingApproval => "awaiting-approval",
            Phase::AwaitingDeployConfirm => "awaiting-deploy-confirm",
            Phase::Queued => "queued",
            Phase::Merging => "merging",
            Phase::Blocked => "blocked",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown phase {s:?}"))
    }
}

/// The mutable part of a task that its actor decides, saved as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskUpdate {
    /// A stage change and its reason, journaled with the update.
    pub to: Option<(Stage, String)>,
    /// New phase.
    pub phase: Phase,
    /// New paused flag.
    pub paused: bool,
    /// New branch.
    pub branch: Option<String>,
    /// New blocked reason.
    pub blocked_reason: Option<String>,
    /// New retry count.
    pub developer_retries: u32,
    /// New attempt count of the (possibly new) stage.
    pub stage_attempts: u32,
    /// New note for the next agent.
    pub note: Option<String>,
}

impl TaskUpdate {
    /// An update that keeps everything as `task` has it.
    pub fn keep(task: &TaskRecord) -> Self {
        Self {
            to: None,
            phase: task.phase,
            paused: task.paused,
            branch: task.branch.clone(),
            blocked_reason: task.blocked_reason.clone(),
            developer_retries: task.developer_retries,
            stage_attempts: task.stage_attempts,
            note: task.note.clone(),
        }
    }

    /// Applies the update to an in-memory record (what the store will hold afterwards,
    /// timestamps aside).
    pub fn apply_to(&self, task: &mut TaskRecord) {
        if let Some((to, _)) = &self.to {
            task.stage = *to;
        }
        task.phase = self.phase;
        task.paused = self.paused;
        task.branch = self.branch.clone();
        task.blocked_reason = self.blocked_reason.clone();
        task.developer_retries = self.developer_retries;
        task.stage_attempts = self.stage_attempts;
        task.note = self.note.clone();
    }
}

/// One entry of the append-only stage journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The stage left; `None` for the entry that created the task.
    pub from: Option<Stage>,
    /// The stage entered.
    pub to: Stage,
    /// Why, in words a human can act on.
    pub reason: String,
    /// RFC 3339 UTC time it was journaled.
    pub at: String,
}

/// A store failure, naming what was involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A unique key already exists.
    #[error("{0} already exists")]
    Duplicate(String),
    /// The thing asked for is not in the store.
    #[error("{0} not found")]
    NotFound(String),
    /// A row holds a value this build cannot interpret (e.g. an unknown stage).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store was closed during shutdown.
    #[error("store is closed")]
    Closed,
    /// Any other failure of the backend, with its message.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// The durable journal of tasks and their stage history.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a task in [`Stage::Created`] and journals its first transition (`from: None`).
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord, StoreError>;

    /// Loads one task, or `None` if it does not exist.
    async fn load_task(&self, id: &WorkItemId) -> Result<Option<TaskRecord>, StoreError>;

    /// Ids of every task whose stage is not terminal, oldest first.
    async fn active_task_ids(&self) -> Result<Vec<WorkItemId>, StoreError>;

    /// Every task, oldest first.
    async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError>;

    /// The stage journal of one task, oldest first (empty for an unknown task).
    async fn transitions(&self, id: &WorkItemId) -> Result<Vec<Transition>, StoreError>;

    /// Moves a task from `from` to `to` and journals it, atomically — but only if the task is
    /// still at `from`. Returns `Ok(false)` and changes nothing when it is not (a duplicate or
    /// late decision), and [`StoreError::NotFound`] for an unknown task.
    async fn record_transition(
        &self,
        id: &WorkItemId,
        from: Stage,
        to: Stage,
        reason: &str,
    ) -> Result<bool, StoreError>;

    /// Saves a task actor's decision atomically — its fields and, when `update.to` is set, the
    /// stage change with its journal entry — but only if the task is still at `expected`.
    /// Returns `Ok(false)` and changes nothing otherwise; [`StoreError::NotFound`] for an
    /// unknown task.
    async fn update_task(
        &self,
        id: &WorkItemId,
        expected: Stage,
        update: TaskUpdate,
    ) -> Result<bool, StoreError>;

    /// Starts `task` afresh in place of the cancelled task `old`, atomically: the new task
    /// is created (its journal says whose restart it is), `old`'s journal says what replaced
    /// it, and the tracker issue `old` came from is linked to the new task.
    /// [`StoreError::Duplicate`] when the new id is taken (`old` was restarted already);
    /// [`StoreError::NotFound`] for an unknown `old`. The caller checks `old` is cancelled.
    async fn restart_task(&self, old: &WorkItemId, task: NewTask)
    -> Result<TaskRecord, StoreError>;

    /// Creates a task whose id is the next one for `prefix` (`PREFIX-001`, …). Ids are never
    /// reused, even if a task were removed.
    async fn create_numbered_task(
        &self,
        prefix: &str,
        task: NewTaskFields,
    ) -> Result<TaskRecord, StoreError>;
}

/// A task to create under a generated id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTaskFields {
    /// Target repository.
    pub repo: String,
    /// One-line title.
    pub title: String,
    /// Free-text description.
    pub description: String,
    /// Tracker labels.
    pub labels: Vec<String>,
}
