//! The local forge's pull requests port.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;

/// A pull request of the local forge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// Its number.
    pub number: i64,
    /// The repository.
    pub repo: String,
    /// The branch it merges.
    pub head: String,
    /// The branch it merges into.
    pub base: String,
    /// Its title.
    pub title: String,
    /// `open`, `merged` or `closed`.
    pub state: String,
    /// RFC 3339 UTC creation time.
    pub created_at: String,
}

/// The local forge's pull requests: at most one open per repository and head branch.
#[async_trait]
pub trait PullRequestStore: Send + Sync + 'static {
    /// The open pull request of `head` in `repo`, created if there is none; true when it was
    /// created now. Never a second open one for the same branch.
    async fn ensure_pull_request(
        &self,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
    ) -> Result<(PullRequest, bool), StoreError>;

    /// Marks the open pull request of `head` in `repo` merged; false if there was none.
    async fn mark_pull_request_merged(&self, repo: &str, head: &str) -> Result<bool, StoreError>;

    /// The latest pull request of `head` in `repo`, whatever its state.
    async fn pull_request(&self, repo: &str, head: &str)
    -> Result<Option<PullRequest>, StoreError>;
}

/// A branch whose head is a given commit, and the task working on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchAt {
    /// The branch.
    pub branch: String,
    /// The newest task on that branch, if any.
    pub task: Option<crate::WorkItemId>,
}

/// The commit each branch was last seen at, so an event that names only a commit (a CI
/// status) can be traced to its branch and task — by the journal write of that event (see
/// [`super::NewEvent::commit`]), as a status arrives for every CI step.
#[async_trait]
pub trait BranchHeads: Send + Sync + 'static {
    /// Records that `branch` of `repo` is at `sha`.
    async fn record_branch_head(
        &self,
        repo: &str,
        branch: &str,
        sha: &str,
    ) -> Result<(), StoreError>;

    /// The task working on `branch` of `repo`, if any.
    async fn task_on_branch(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<crate::WorkItemId>, StoreError>;
}
