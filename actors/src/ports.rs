//! Ports: the traits through which actors reach the world. Adapters implement them in the
//! service crate (SQLite) or here for tests ([`crate::memory_store`]).

use async_trait::async_trait;
use serde::Serialize;

use crate::{Stage, WorkItemId};

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
}
