//! The job queue's port: jobs, their agent runs and processes, the queue park, and the
//! `JobStore` that keeps them durable.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;
use crate::{Role, Stage, WorkItemId};

/// Lifecycle of a queued agent job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a dispatch slot.
    Queued,
    /// Its agent process is running.
    Running,
    /// The agent finished successfully.
    Succeeded,
    /// The agent failed.
    Failed,
    /// Withdrawn (task stopped or moved on).
    Cancelled,
}

impl JobStatus {
    /// The spelling used in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
        .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

/// A job to enqueue: run `role` for the task's `stage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// The task.
    pub work_item_id: WorkItemId,
    /// The stage the job works for.
    pub stage: Stage,
    /// The role agent to run.
    pub role: Role,
    /// The task text handed to the agent.
    pub task_text: String,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Queue id (FIFO order).
    pub id: i64,
    /// The task.
    pub work_item_id: WorkItemId,
    /// The stage it works for.
    pub stage: Stage,
    /// The role agent.
    pub role: Role,
    /// Where it is in its lifecycle.
    pub status: JobStatus,
    /// Times it was started.
    pub attempts: u32,
    /// The task text for the agent.
    pub task_text: String,
    /// The run executing it, while running.
    pub run_id: Option<String>,
    /// Times it was requeued after a transient failure (a budget of its own).
    pub transient_attempts: u32,
}

/// An agent process, identified so that a reused pid is never mistaken for it: its pid
/// (also its process-group id) and its start time in clock ticks since the machine booted
/// (`/proc/<pid>/stat` field 22).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ProcessId {
    /// Pid and process-group id.
    pub pid: u32,
    /// Start time in clock ticks after boot; 0 when it could not be read.
    pub start_ticks: u64,
}

/// A running job as the reaper sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningJob {
    /// The job.
    pub job: Job,
    /// The boot that claimed it.
    pub boot_id: Option<String>,
    /// Its agent process, once started.
    pub process: Option<ProcessId>,
    /// Seconds since it was claimed.
    pub running_s: f64,
    /// The outcome journaled for its run (`succeeded`, `failed`, `timeout`…), if the run
    /// ended; `None` while it runs or if it never reached the journal.
    pub run_outcome: Option<RunOutcome>,
    /// The journaled failure reason of that run.
    pub run_reason: Option<String>,
}

/// How a running job goes back to the queue. Every variant clears the old run's traces
/// (pid, process start, boot, run id, start time): a queued job has none.
#[derive(Clone, Debug, PartialEq)]
pub enum Requeue {
    /// A transient failure: retry after `delay`, counting against the transient budget and
    /// giving back the attempt the claim took.
    Transient {
        /// Wait before it may be claimed again.
        delay: std::time::Duration,
    },
    /// The account's usage limit: wait until the queue unparks, giving back the attempt.
    Parked,
    /// Its run vanished (the reaper): claimable at once; the attempt stays counted.
    Lost,
}

/// The whole queue is parked (no claims) until a time, because the account's usage limit
/// was reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueuePark {
    /// RFC 3339 UTC time the queue resumes.
    pub until: String,
    /// The failure that parked it.
    pub reason: String,
}

/// What `GET /queue` shows of the store's side of the queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueOverview {
    /// Jobs per status.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Queued and running jobs, oldest first (at most 100).
    pub active: Vec<serde_json::Value>,
    /// The park, while one is in force.
    pub parked: Option<QueuePark>,
}

/// What is known when an agent process starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    /// Unique run id (also the log file's name).
    pub run_id: String,
    /// The job it executes.
    pub job_id: i64,
    /// The task.
    pub work_item_id: WorkItemId,
    /// The stage.
    pub stage: Stage,
    /// The role.
    pub role: Role,
    /// The model asked for, if any.
    pub model: Option<String>,
    /// Where its output goes.
    pub log_path: String,
    /// The boot that launches it.
    pub boot_id: String,
}

/// How an agent run ended, as journaled (`agent_runs.outcome`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// The agent succeeded and its work was published.
    Succeeded,
    /// The agent failed; the job ended (an attempt spent).
    #[default]
    Failed,
    /// The agent ran past its role's time budget and was stopped.
    Timeout,
    /// A transient API failure; the job went back to the queue.
    Transient,
    /// The account's usage limit; the queue was parked and the job requeued.
    UsageLimit,
    /// The agent's work could not be prepared for or published; not the agent's fault.
    Infrastructure,
    /// The run actor crashed before it reported.
    Crashed,
    /// The orchestrator restarted while it ran.
    Abandoned,
}

impl RunOutcome {
    /// Every outcome.
    pub const ALL: [RunOutcome; 8] = [
        Self::Succeeded,
        Self::Failed,
        Self::Timeout,
        Self::Transient,
        Self::UsageLimit,
        Self::Infrastructure,
        Self::Crashed,
        Self::Abandoned,
    ];

    /// The spelling used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Transient => "transient",
            Self::UsageLimit => "usage-limit",
            Self::Infrastructure => "infrastructure",
            Self::Crashed => "crashed",
            Self::Abandoned => "abandoned",
        }
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown run outcome {s:?}"))
    }
}

/// What is known when an agent process has ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFinish {
    /// Exit code (−9 when killed).
    pub exit_code: Option<i32>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Why it failed, for humans.
    pub reason: Option<String>,
    /// The CLI result's `subtype`.
    pub subtype: Option<String>,
    /// The CLI result's `is_error`.
    pub is_error: Option<bool>,
    /// Model turns.
    pub num_turns: Option<u64>,
    /// Wall time the CLI reported.
    pub duration_ms: Option<u64>,
    /// The CLI session id.
    pub session_id: Option<String>,
    /// The model that did the work.
    pub model: Option<String>,
    /// Input tokens (all models).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Cache-creation input tokens.
    pub cache_creation_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// One agent run as shown in the API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Role.
    pub role: String,
    /// Stage.
    pub stage: Stage,
    /// `running` until it ends, then its outcome.
    pub status: String,
    /// Exit code, once ended.
    pub exit_code: Option<i32>,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub finished_at: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Cache-creation tokens.
    pub cache_creation_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Failure reason.
    pub reason: Option<String>,
    /// The boot that launched it.
    pub launched_by: Option<String>,
    /// The later boot that took it over instead of launching it again, if one did.
    pub adopted_by: Option<String>,
}

/// The durable job queue and the journal of agent runs.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Enqueues a job; [`StoreError::Duplicate`] if the task already has an active one.
    async fn enqueue_job(&self, job: NewJob) -> Result<i64, StoreError>;

    /// Claims queued jobs in FIFO order — skipping paused tasks — until `max_running` jobs
    /// are running, marking each running under a fresh run id for this `boot_id`.
    async fn claim_jobs(&self, max_running: usize, boot_id: &str) -> Result<Vec<Job>, StoreError>;

    /// Ends running job `job_id` of run `run_id` with `status`; false (and nothing changed)
    /// if the job is no longer running that run — someone else already settled it, so only
    /// the caller that gets true may tell the task.
    async fn finish_job(
        &self,
        job_id: i64,
        run_id: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Records the process of a running job's run `run_id` (ignored if the job has moved on).
    async fn set_job_process(
        &self,
        job_id: i64,
        run_id: &str,
        process: ProcessId,
    ) -> Result<(), StoreError>;

    /// Puts running job `job_id` of run `run_id` back in the queue as `how` says, noting
    /// `reason`; false if the job is no longer running that run.
    async fn requeue_job(
        &self,
        job_id: i64,
        run_id: &str,
        how: Requeue,
        reason: &str,
    ) -> Result<bool, StoreError>;

    /// Every running job, with what the reaper needs to judge it.
    async fn running_jobs(&self) -> Result<Vec<RunningJob>, StoreError>;

    /// Parks the queue until `until_unix` (seconds since the epoch), or extends a park.
    async fn park_queue(&self, until_unix: i64, reason: &str) -> Result<(), StoreError>;

    /// The park in force, if any.
    async fn queue_park(&self) -> Result<Option<QueuePark>, StoreError>;

    /// Counts, active jobs and the park, for `GET /queue`.
    async fn queue_overview(&self) -> Result<QueueOverview, StoreError>;

    /// Cancels a task's queued job, if any; returns how many were cancelled.
    async fn cancel_queued_jobs(&self, id: &WorkItemId) -> Result<u32, StoreError>;

    /// Puts jobs left running by another boot back in the queue, clearing every trace of the
    /// old run. Returns how many.
    async fn requeue_stale_jobs(&self, boot_id: &str) -> Result<u32, StoreError>;

    /// Moves running job `job_id` of run `run_id`, left by another boot, under `boot_id`
    /// without relaunching it (same run, same attempt), and journals the adoption. False if
    /// the job no longer runs that run.
    async fn adopt_job(&self, job_id: i64, run_id: &str, boot_id: &str)
    -> Result<bool, StoreError>;

    /// The task's queued or running job, if any.
    async fn active_job(&self, id: &WorkItemId) -> Result<Option<Job>, StoreError>;

    /// The task's most recent job, whatever its status.
    async fn last_job(&self, id: &WorkItemId) -> Result<Option<Job>, StoreError>;

    /// Journals the start of an agent run.
    async fn start_run(&self, run: NewRun) -> Result<(), StoreError>;

    /// Journals the end of an agent run.
    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> Result<(), StoreError>;

    /// A task's runs, oldest first.
    async fn runs(&self, id: &WorkItemId) -> Result<Vec<RunRecord>, StoreError>;
}
