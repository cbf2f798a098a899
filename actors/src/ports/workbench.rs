//! Ports through which a task's work gets done: the [`Forge`] (the task's branch and
//! worktree, its gates, the merge into `main`) and the [`AgentRunner`] (one agent process).
//! Adapters live in the service crate (local git forge, Claude Code CLI or the dry-run agent).

use std::path::PathBuf;

use async_trait::async_trait;

use crate::domain::gates::GateOutcome;
use crate::domain::pipeline::{GateKind, Role};
use crate::domain::resilience::FailureClass;
use crate::domain::task_machine::MergeResult;
use crate::ports::{ProcessId, RunFinish, TaskRecord};
use crate::{Stage, WorkItemId};

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
    async fn publish(&self, task: &TaskRecord, role: Role) -> Result<(), String>;

    /// Evaluates a gate for the task (artifacts: worktree first, then `origin/main`).
    async fn evaluate_gate(&self, task: &TaskRecord, gate: GateKind) -> GateOutcome;

    /// Merges the task's branch into `main` and confirms it landed.
    async fn merge(&self, task: &TaskRecord) -> MergeResult;

    /// Removes the task's worktree (and the repository's record of it), keeping its branch
    /// locally and on the origin. Idempotent: a task without a worktree is `Ok`.
    async fn remove_worktree(&self, task: &TaskRecord) -> Result<(), String>;
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
}

/// Runs one agent process to its end (or its timeout).
#[async_trait]
pub trait AgentRunner: Send + Sync + 'static {
    /// The model `role` would run with, for the run journal.
    fn model(&self, role: Role) -> Option<String>;

    /// Where the run's log goes.
    fn log_path(&self, run_id: &str) -> PathBuf;

    /// Runs the agent; never fails — a failure is a report with `success: false`. The
    /// process is announced on `spawned` as soon as it exists, so it can be journaled (and
    /// found by the reaper, or killed after a restart) while it runs.
    async fn run(&self, request: AgentRequest, spawned: SpawnNotice) -> AgentReport;
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
