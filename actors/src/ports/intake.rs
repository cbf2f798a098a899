//! Ports of the webhook intake: the journal of inbound deliveries (with replay detection) and
//! the links between tasks and the tracker issues they came from.

use std::time::Duration;

use async_trait::async_trait;

use super::{BranchAt, NewTask, StoreError, TaskRecord};
use crate::WorkItemId;

/// An inbound delivery to journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Who sent it: `plane` or `gitea`.
    pub source: String,
    /// What it is, e.g. `issue.updated`, `status`.
    pub kind: String,
    /// The sender's delivery id, when it gave one.
    pub delivery_id: Option<String>,
    /// Hex digest of the raw body, the key of its replays: its HMAC-SHA256 under the
    /// source's webhook secret when deliveries are signed, else its SHA-256.
    pub body_hash: String,
    /// The raw body as received.
    pub payload: Vec<u8>,
    /// The repository or project it concerns, when it names one the registry knows.
    /// Deliveries of one source, kind and scope are near copies of one another (a Gitea
    /// `status` repeats the whole repository), so the journal keeps their bodies compressed
    /// against an earlier one of theirs.
    pub scope: Option<String>,
    /// Its outcome when it is known before it is journaled (a delivery nobody acts on), so
    /// that it is settled in the same write.
    pub settled: Option<String>,
    /// The commit it is about, when acting on it needs that commit's branches (a Gitea
    /// `status` names only a sha): the journal write looks them up in the same transaction,
    /// so acting reads nothing more.
    pub commit: Option<CommitRef>,
}

/// A commit of a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRef {
    /// The registry's repository.
    pub repo: String,
    /// The commit.
    pub sha: String,
}

/// What journaling a delivery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Journaled {
    /// A new delivery, journaled under `id`.
    New {
        /// Its id in the journal.
        id: i64,
        /// The branches whose recorded head is the delivery's [`NewEvent::commit`], each
        /// with the newest task working on it, by name; empty without a commit (and as the
        /// [`ActInWrite`] left them).
        branches: Vec<BranchAt>,
        /// Whether the [`ActInWrite`] acted, its outcome journaled with the delivery.
        acted: bool,
        /// The task the act asked to re-check its gate ([`ActedInWrite::recheck`]): the
        /// write has committed by the time the caller reads this, so the caller tells it.
        recheck: Option<WorkItemId>,
    },
    /// The same delivery id was seen before, or the same body within the window.
    Duplicate,
}

/// Acting on a delivery inside the write that journals it, given the branches that write
/// found at its commit (taking what it uses): what it decided, or `None` to act after the
/// write instead. It runs on the store's one writer thread before the commit, so it only
/// decides — no I/O and no message: a task is told ([`ActedInWrite::recheck`]) by the caller,
/// once the write has committed. It runs only for a delivery that is new and not already
/// settled.
pub type ActInWrite = Box<dyn FnOnce(&mut Vec<BranchAt>) -> Option<ActedInWrite> + Send>;

/// What an [`ActInWrite`] decided, journaled with the delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActedInWrite {
    /// The task concerned, if any.
    pub task: Option<WorkItemId>,
    /// The outcome, in words.
    pub outcome: String,
    /// The task to tell to re-check its gate once the write has committed; handed back in
    /// [`Journaled::New`] (never told should the commit fail).
    pub recheck: Option<WorkItemId>,
}

/// What became of a journaled delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The delivery's id in the journal.
    pub id: i64,
    /// The task it concerned, if any.
    pub work_item_id: Option<WorkItemId>,
    /// Its outcome, in words.
    pub outcome: String,
    /// Why it could not be handled, when it could not.
    pub error: Option<String>,
}

/// The journal of inbound deliveries.
#[async_trait]
pub trait EventJournal: Send + Sync + 'static {
    /// Journals `event` unless it repeats an earlier delivery: the same delivery id ever, or
    /// the same body from the same source within `window`; a new delivery is acted on by
    /// `act`, when given, in the same write.
    async fn journal_event(
        &self,
        event: NewEvent,
        act: Option<ActInWrite>,
        window: Duration,
    ) -> Result<Journaled, StoreError>;

    /// Records what became of journaled deliveries, all in one write.
    async fn settle_events(&self, settled: Vec<Settlement>) -> Result<(), StoreError>;

    /// The raw body of journaled event `id`, byte for byte as it was received.
    async fn event_body(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Where a task came from on a tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerLink {
    /// The tracker: `plane`.
    pub tracker: String,
    /// The tracker's project id.
    pub project_ref: String,
    /// The tracker's issue id.
    pub issue_ref: String,
}

/// Tasks created from tracker issues.
#[async_trait]
pub trait TrackerLinks: Send + Sync + 'static {
    /// Creates `task` linked to its issue, atomically. [`StoreError::Duplicate`] when the id
    /// is taken or the issue already has a task — the uniqueness guard of tracker ids.
    async fn create_linked_task(
        &self,
        task: NewTask,
        link: TrackerLink,
    ) -> Result<TaskRecord, StoreError>;

    /// The task created from `issue_ref` on `tracker`, if any.
    async fn linked_task(
        &self,
        tracker: &str,
        issue_ref: &str,
    ) -> Result<Option<WorkItemId>, StoreError>;

    /// The issue task `id` came from, if it came from a tracker.
    async fn task_link(&self, id: &WorkItemId) -> Result<Option<TrackerLink>, StoreError>;
}
