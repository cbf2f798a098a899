//! The port housekeeping works through: the worktrees directory, the runs directory and the
//! webhook journal's retention.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use super::TaskRecord;

/// The files of one agent run (`<run>.log`, `.out`, `.pid`, `.exit`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFiles {
    /// The run.
    pub run_id: String,
    /// Since its newest file was last written.
    pub age: Duration,
}

/// What housekeeping reads and removes.
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// The names of the directories in the worktrees directory (a task's id each).
    async fn worktrees(&self) -> Result<Vec<String>, String>;

    /// Removes `task`'s worktree (its branch stays).
    async fn remove_worktree(&self, task: &TaskRecord) -> Result<(), String>;

    /// Every run with files in the runs directory.
    async fn run_files(&self) -> Result<Vec<RunFiles>, String>;

    /// The runs that must keep their files: those whose job is running and those whose task
    /// is not finished.
    async fn live_runs(&self) -> Result<HashSet<String>, String>;

    /// Removes run `run_id`'s files; how many.
    async fn remove_run_files(&self, run_id: &str) -> Result<u32, String>;

    /// Removes the webhook deliveries received more than `older_than` ago whose outcome is
    /// settled, with their bodies, and the body dictionaries nothing kept needs any more;
    /// how many deliveries.
    async fn prune_events(&self, older_than: Duration) -> Result<u64, String>;
}
