//! Ports through which a task's work gets done: the [`Forge`] (the task's branch and
//! worktree, its gates, the merge into `main`) and the [`AgentRunner`] (one agent process).
//! Adapters live in the service crate (local git forge, Claude Code CLI or the dry-run agent).

use std::path::PathBuf;

use async_trait::async_trait;

use crate::domain::gates::{CiOutcome, GateOutcome};
use crate::domain::pipeline::{GateKind, Role};
use crate::domain::resilience::FailureClass;
use crate::ports::merge_queue::{CandidateBuild, FastForward};
use crate::ports::{ProcessId, RunFinish, TaskRecord};
use crate::{Stage, WorkItemId};

/// Why an agent's work was not published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Infrastructure trouble (git, the origin, the disk): retried on the run's own budget,
    /// never an attempt.
    Infrastructure(String),
    /// The work itself cannot be published as it is (it still holds merge-conflict markers):
    /// the agent's run failed, and the reason goes to its next run.
    Rejected(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Infrastructure(reason) | PublishError::Rejected(reason) => {
                f.write_str(reason)
            }
        }
    }
}

impl From<String> for PublishError {
    fn from(reason: String) -> Self {
        PublishError::Infrastructure(reason)
    }
}

impl From<&str> for PublishError {
    fn from(reason: &str) -> Self {
        PublishError::Infrastructure(reason.to_string())
    }
}

/// A task's prepared place of work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workplace {
    /// The task's branch.
    pub branch: String,
    /// Its git worktree (the agent's working directory).
    pub worktree: PathBuf,
    /// `docs/work-items/<ID>/` inside the worktree.
    pub artifacts_dir: PathBuf,
}

/// The task's repository host: branches, worktrees, gates and merges.
#[async_trait]
pub trait Forge: Send + Sync + 'static {
    /// Makes sure the task's branch ([`crate::domain::branch::of`], cut from fresh `origin/main`)
    /// and worktree exist.
    async fn prepare(&self, task: &TaskRecord) -> Result<Workplace, String>;

    /// After a successful agent run: commits what the agent changed and pushes the branch.
    async fn publish(&self, task: &TaskRecord, role: Role) -> Result<(), PublishError>;

    /// Evaluates a gate for the task (artifacts: worktree first, then `origin/main`).
    async fn evaluate_gate(&self, task: &TaskRecord, gate: GateKind) -> GateOutcome;

    /// Whether commit `sha` is on the task's repository's `origin/main` (fetched now): the
    /// proof a merge made outside the pipeline must give before it counts.
    async fn is_on_main(&self, task: &TaskRecord, sha: &str) -> Result<bool, String>;

    /// Removes the task's worktree (and the repository's record of it), keeping its branch
    /// locally and on the origin. Idempotent: a task without a worktree is `Ok`.
    async fn remove_worktree(&self, task: &TaskRecord) -> Result<(), String>;

    /// Builds the task's merge candidate in the orchestrator's clone (never in the task's
    /// worktree): the commit that merging its branch into `onto` (the current `origin/main`
    /// when `None`) makes, first parent `onto`, its message naming the task. It is not
    /// published (except where CI must see it pushed: Gitea); a conflict is an answer, not an
    /// error.
    async fn build_candidate(
        &self,
        task: &TaskRecord,
        onto: Option<&str>,
    ) -> Result<CandidateBuild, String>;

    /// Publishes a green `candidate` as the task's branch head (a fast-forward of the branch,
    /// never forced) and moves the task's worktree to it, so its deploy works on exactly it.
    /// Idempotent.
    async fn publish_candidate(&self, task: &TaskRecord, candidate: &str) -> Result<(), String>;

    /// Whether `repo`'s candidates may be stacked and tested as a batch.
    fn batches(&self, _repo: &str) -> bool {
        true
    }

    /// Runs the repository's CI on exactly commit `sha` (local: the test command in a clean
    /// throwaway checkout; Gitea: the commit's combined status, awaited).
    async fn test_commit(&self, repo: &str, sha: &str) -> CiOutcome;

    /// Where `origin/main` of `repo` is now (fetched).
    async fn main_head(&self, repo: &str) -> Result<String, String>;

    /// Fast-forwards `main` to `candidate` (local: a plain push; Gitea: the pull request's
    /// fast-forward-only merge) and confirms `origin/main` contains it. Never forced.
    async fn fast_forward_main(
        &self,
        task: &TaskRecord,
        candidate: &str,
    ) -> Result<FastForward, String>;

    /// Deletes the task's branch on the origin (never `main`); a branch already gone is `Ok`.
    async fn delete_branch(&self, task: &TaskRecord) -> Result<(), String>;

    /// Merges the latest `origin/main` into the task's worktree without committing, leaving
    /// any conflicts in place for the developer to resolve.
    async fn merge_main_into_worktree(&self, task: &TaskRecord) -> Result<(), String>;
}

/// One agent run to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRequest {
    /// The run's id (names its log).
    pub run_id: String,
    /// The task.
    pub work_item_id: WorkItemId,
    /// The stage the run works for.
    pub stage: Stage,
    /// The role.
    pub role: Role,
    /// The text handed to the agent.
    pub task_text: String,
    /// Where it runs.
    pub workplace: Workplace,
    /// 1-based count of this role's runs on this task.
    pub attempt: u32,
    /// An earlier boot launched this very run and left it running (or ended, its exit
    /// recorded): take it over instead of launching it again.
    pub adopted: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentReport {
    /// Exit 0 and a result that is not an error.
    pub success: bool,
    /// Why it failed (empty on success).
    pub reason: String,
    /// What kind of failure it was (ignored on success): transient ones are retried on a
    /// budget of their own, a usage limit parks the queue, the rest count as attempts.
    pub class: FailureClass,
    /// The model asked for.
    pub model: Option<String>,
    /// Where its output went.
    pub log_path: String,
    /// What to journal about it.
    pub finish: RunFinish,
    /// The agent could not be run for reasons outside it (its worktree held, its files
    /// unwritable): retried as infrastructure, never an attempt.
    pub infrastructure: bool,
}

impl AgentReport {
    /// A run that never started for an infrastructure `reason`.
    pub fn infrastructure(reason: String, log_path: PathBuf) -> Self {
        Self {
            success: false,
            reason,
            class: FailureClass::Permanent,
            model: None,
            log_path: log_path.display().to_string(),
            finish: RunFinish::default(),
            infrastructure: true,
        }
    }
}

/// What an earlier boot left of a run, as the runner finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunTrace {
    /// Its agent (or the agent's supervisor) still runs: adopt it.
    Running,
    /// Its agent ended while no boot watched, and how it ended is recorded: adopt it.
    Ended,
    /// Its start was journaled but its agent never started (the boot died in between):
    /// launch it now, as the same run.
    Unstarted,
    /// Nothing verifiable is left of it.
    Gone,
}

/// Runs one agent process to its end (or its timeout).
#[async_trait]
pub trait AgentRunner: Send + Sync + 'static {
    /// The model `role` would run with, for the run journal.
    fn model(&self, role: Role) -> Option<String>;

    /// Where the run's log goes.
    fn log_path(&self, run_id: &str) -> PathBuf;

    /// Runs the agent — or, for an adopted request, takes over the run an earlier boot
    /// launched — to its end; never fails: a failure is a report with `success: false`. The
    /// process is announced on `spawned` as soon as it runs, so it can be journaled (and
    /// found by the reaper) while it runs. A new agent never starts in a worktree where an
    /// earlier one still lives.
    async fn run(&self, request: AgentRequest, spawned: SpawnNotice) -> AgentReport;

    /// Whether the agent program can be started now, or why not. Dispatch asks while it
    /// holds the queue after a run found the program unable to start.
    async fn available(&self) -> Result<(), String> {
        Ok(())
    }

    /// What an earlier boot left of run `run_id`. Runners whose agents cannot outlive the
    /// service leave nothing.
    fn trace(&self, _run_id: &str) -> RunTrace {
        RunTrace::Gone
    }

    /// Ends every agent of this service whose run is not in `keep` (left by an earlier boot
    /// and not adoptable); returns a description of each run it ended.
    async fn end_strays(&self, _keep: &[String]) -> Vec<String> {
        Vec::new()
    }
}

/// Where a runner announces the agent process it started.
pub type SpawnNotice = tokio::sync::oneshot::Sender<ProcessId>;

/// The operating system's view of agent processes, for the reaper and the startup sweep.
#[async_trait]
pub trait ProcessControl: Send + Sync + 'static {
    /// Whether `process` still runs: its pid exists, is not a zombie, and started at the
    /// recorded time (a reused pid is another process).
    fn is_alive(&self, process: &ProcessId) -> bool;

    /// Stops `process`'s whole process group — SIGTERM, a grace period, then SIGKILL — but
    /// only if it is still that process. Returns whether anything was signalled.
    async fn kill_group(&self, process: &ProcessId) -> bool;
}
