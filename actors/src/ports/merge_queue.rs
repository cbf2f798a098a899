//! The merge queue's ports: what it journals ([`MergeQueueStore`]) and what it tells the
//! task that holds or held its lease ([`Integration`]). The forge's side — building a
//! candidate, testing a commit, fast-forwarding `main` — is on
//! [`crate::ports::workbench::Forge`].

use async_trait::async_trait;
use serde::Serialize;

use crate::WorkItemId;
use crate::ports::StoreError;

/// Where a task stands in its repository's merge queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryState {
    /// Waiting for the lease.
    Waiting,
    /// Holding the lease: its candidate is being built.
    Building,
    /// Holding the lease: CI runs on its candidate.
    Testing,
    /// Holding the lease: its candidate passed; the task deploys it.
    Deploying,
    /// Holding the lease: `main` is being fast-forwarded to its candidate.
    Merging,
    /// `main` holds its candidate; the row stays until the task leaves the queue.
    Merged,
}

impl EntryState {
    /// Every state.
    pub const ALL: [EntryState; 6] = [
        EntryState::Waiting,
        EntryState::Building,
        EntryState::Testing,
        EntryState::Deploying,
        EntryState::Merging,
        EntryState::Merged,
    ];

    /// The spelling in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Waiting => "waiting",
            EntryState::Building => "building",
            EntryState::Testing => "testing",
            EntryState::Deploying => "deploying",
            EntryState::Merging => "merging",
            EntryState::Merged => "merged",
        }
    }

    /// Whether an entry in this state holds its repository's lease.
    pub fn holds_lease(self) -> bool {
        !matches!(self, EntryState::Waiting | EntryState::Merged)
    }
}

impl std::str::FromStr for EntryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryState::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown merge-queue state {s:?}"))
    }
}

/// One task in a repository's merge queue, as journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueEntry {
    /// The task.
    pub work_item_id: WorkItemId,
    /// Its repository.
    pub repo: String,
    /// Arrival order within the repository (smaller first).
    pub seq: i64,
    /// Where it stands.
    pub state: EntryState,
    /// The commit it tests, deploys and merges (once built).
    pub candidate: Option<String>,
    /// The `main` the candidate was built on.
    pub base: Option<String>,
    /// Its task passed its deploy stages and asked for the fast-forward.
    pub ready: bool,
    /// When it joined (RFC 3339).
    pub joined_at: String,
}

/// Who froze a repository's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeKind {
    /// An operator.
    Operator,
    /// The runaway guard: `main` itself tested red.
    MainRed,
}

impl FreezeKind {
    /// The spelling in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FreezeKind::Operator => "operator",
            FreezeKind::MainRed => "main-red",
        }
    }
}

/// A frozen queue: it grants no lease until thawed; nobody waiting is dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Freeze {
    /// Who froze it.
    pub kind: FreezeKind,
    /// Who, by name (`merge-queue` for the runaway guard).
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when (RFC 3339).
    pub at: String,
}

/// A repository's queue-wide state, as journaled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepoQueueState {
    /// The repository.
    pub repo: String,
    /// Its freeze, if frozen.
    pub frozen: Option<Freeze>,
    /// The last `main` commit seen green.
    pub last_green_main: Option<String>,
}

/// What the merge queue journals. Its only writer is the `merge-queue` actor.
#[async_trait]
pub trait MergeQueueStore: Send + Sync + 'static {
    /// Every entry (all repositories, by repository and arrival) and every repository's state.
    async fn load_merge_queue(&self) -> Result<(Vec<QueueEntry>, Vec<RepoQueueState>), StoreError>;
    /// Inserts or replaces an entry.
    async fn save_queue_entry(&self, entry: &QueueEntry) -> Result<(), StoreError>;
    /// Removes a task's entry (absent is fine).
    async fn remove_queue_entry(&self, id: &WorkItemId) -> Result<(), StoreError>;
    /// Inserts or replaces a repository's state.
    async fn save_repo_queue(&self, state: &RepoQueueState) -> Result<(), StoreError>;
    /// Appends to the queue's journal: `what` happened in `repo` (to `task`), decided by `by`.
    async fn journal_queue(
        &self,
        repo: &str,
        task: Option<&WorkItemId>,
        what: &str,
        by: &str,
        detail: &str,
    ) -> Result<(), StoreError>;
}

/// What the merge queue tells a task about its candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integration {
    /// Its candidate passed CI: deploy it (or, without deploy stages, it is merged next).
    CandidateGreen {
        /// The candidate.
        sha: String,
    },
    /// Its candidate passed CI in a batch whose top (`top`) deploys it with the others: wait
    /// for the fast-forward, deploying nothing itself.
    BatchedGreen {
        /// Its own candidate (inside the batch's top).
        sha: String,
        /// The batch's top task, which deploys.
        top: crate::WorkItemId,
    },
    /// Its candidate is red while `main` alone is green: the change breaks `main`.
    CandidateRed {
        /// The failing output (a bounded tail).
        output: String,
    },
    /// Its branch does not merge into the current `main`; the worktree now has `main`
    /// merged in, conflicts in place.
    Conflict {
        /// The conflicted paths.
        files: Vec<String>,
    },
    /// Infrastructure failed around its candidate past the retry budget.
    Infrastructure {
        /// What failed.
        reason: String,
    },
    /// `main` now holds its candidate.
    Merged {
        /// The candidate, now on `main`.
        sha: String,
    },
}

/// How building a candidate went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CandidateBuild {
    /// Built and pushed as the branch's head (the task's worktree moved to it).
    Built {
        /// The candidate.
        sha: String,
        /// The `main` it was built on (its first parent).
        base: String,
    },
    /// The branch does not merge into `main`.
    Conflict {
        /// The conflicted paths.
        files: Vec<String>,
    },
}

/// How a fast-forward of `main` went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastForward {
    /// `origin/main` contains the candidate.
    Merged,
    /// `main` moved away from the candidate's base: rebuild and re-test.
    MainMoved {
        /// Where `main` is now.
        main: String,
    },
}
