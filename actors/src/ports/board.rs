//! The tracker board port: where a task's card shows the pipeline's progress, and where
//! the roles leave their comments; also where the intake answers an issue it refused to
//! start (it has no task yet). Plane in production; the local tracker's board is the store
//! itself, so its adapter only logs.

use async_trait::async_trait;

use super::{Phase, TaskRecord, TrackerLink};
use crate::Stage;
use crate::domain::pipeline::Role;

/// The column a task's card should stand in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoardStatus {
    /// The analyst is at work.
    Analysis,
    /// The analysis waits for a human approve or reject.
    InReview,
    /// The architect is at work.
    Architecture,
    /// The developer is at work (or CI runs).
    Development,
    /// The reviewer is at work.
    Review,
    /// The tester is at work.
    Testing,
    /// Staging or production deploy.
    Deploying,
    /// The production deploy waits for a human's confirm-deploy.
    AwaitingDeploy,
    /// Merged and deployed.
    Done,
    /// Parked for a human.
    Blocked,
    /// Stopped for good.
    Cancelled,
}

/// The group of base statuses every Plane board has, to fall back on when a board lacks a
/// status of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseGroup {
    /// Work is under way.
    Started,
    /// Finished.
    Completed,
    /// Abandoned.
    Cancelled,
}

impl BoardStatus {
    /// Every status, in pipeline order.
    pub const ALL: [BoardStatus; 11] = [
        BoardStatus::Analysis,
        BoardStatus::InReview,
        BoardStatus::Architecture,
        BoardStatus::Development,
        BoardStatus::Review,
        BoardStatus::Testing,
        BoardStatus::Deploying,
        BoardStatus::AwaitingDeploy,
        BoardStatus::Done,
        BoardStatus::Blocked,
        BoardStatus::Cancelled,
    ];

    /// The logical key a project's status map uses (`analysis`, `in_review`, …).
    pub fn key(self) -> &'static str {
        match self {
            BoardStatus::Analysis => "analysis",
            BoardStatus::InReview => "in_review",
            BoardStatus::Architecture => "architecture",
            BoardStatus::Development => "development",
            BoardStatus::Review => "review",
            BoardStatus::Testing => "testing",
            BoardStatus::Deploying => "deploying",
            BoardStatus::AwaitingDeploy => "awaiting_deploy",
            BoardStatus::Done => "done",
            BoardStatus::Blocked => "blocked",
            BoardStatus::Cancelled => "cancelled",
        }
    }

    /// The status name a board uses unless its project says otherwise.
    pub fn default_name(self) -> &'static str {
        match self {
            BoardStatus::Analysis => "Analysis",
            BoardStatus::InReview => "In Review",
            BoardStatus::Architecture => "Architecture",
            BoardStatus::Development => "Development",
            BoardStatus::Review => "Review",
            BoardStatus::Testing => "Testing",
            BoardStatus::Deploying => "Deploying",
            BoardStatus::AwaitingDeploy => "Awaiting Deploy",
            BoardStatus::Done => "Done",
            BoardStatus::Blocked => "Blocked",
            BoardStatus::Cancelled => "Cancelled",
        }
    }

    /// The base group to fall back on when the board lacks this status.
    pub fn base(self) -> BaseGroup {
        match self {
            BoardStatus::Done => BaseGroup::Completed,
            BoardStatus::Cancelled => BaseGroup::Cancelled,
            _ => BaseGroup::Started,
        }
    }

    /// Where `task` stands on the board.
    pub fn of(task: &TaskRecord) -> BoardStatus {
        if task.phase == Phase::Blocked {
            return BoardStatus::Blocked;
        }
        match task.stage {
            Stage::Created | Stage::Analysis if task.phase == Phase::AwaitingApproval => {
                BoardStatus::InReview
            }
            Stage::Created | Stage::Analysis => BoardStatus::Analysis,
            Stage::Architecture => BoardStatus::Architecture,
            Stage::Development => BoardStatus::Development,
            Stage::Review => BoardStatus::Review,
            Stage::Testing => BoardStatus::Testing,
            Stage::Deploy if task.phase == Phase::AwaitingDeployConfirm => {
                BoardStatus::AwaitingDeploy
            }
            Stage::DeployStaging | Stage::Deploy => BoardStatus::Deploying,
            Stage::Done => BoardStatus::Done,
            Stage::Cancelled => BoardStatus::Cancelled,
        }
    }
}

/// The tracker board of a task.
#[async_trait]
pub trait Board: Send + Sync + 'static {
    /// Moves the task's card to `status`.
    async fn show(&self, task: &TaskRecord, status: BoardStatus) -> Result<(), String>;

    /// Comments on the task's card, as `author`'s bot account when it has one.
    async fn comment(
        &self,
        task: &TaskRecord,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String>;

    /// Moves the card of a tracker issue that has no task — a start the intake refused — to
    /// `status`.
    async fn show_issue(&self, issue: &TrackerLink, status: BoardStatus) -> Result<(), String>;

    /// Comments on the card of a tracker issue that has no task, as `author`'s bot account
    /// when it has one.
    async fn comment_issue(
        &self,
        issue: &TrackerLink,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String>;
}

/// The board of tasks that live only in the orchestrator (the local tracker): the store is
/// the board, so there is nothing to move; comments go to the log.
pub struct LocalBoard;

#[async_trait]
impl Board for LocalBoard {
    async fn show(&self, _task: &TaskRecord, _status: BoardStatus) -> Result<(), String> {
        Ok(())
    }

    async fn comment(
        &self,
        task: &TaskRecord,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String> {
        tracing::info!(task = %task.work_item_id, author = ?author, %text, "board comment");
        Ok(())
    }

    async fn show_issue(&self, _issue: &TrackerLink, _status: BoardStatus) -> Result<(), String> {
        Ok(())
    }

    async fn comment_issue(
        &self,
        issue: &TrackerLink,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String> {
        tracing::info!(tracker = %issue.tracker, issue = %issue.issue_ref, author = ?author, %text, "board comment");
        Ok(())
    }
}
