//! The vocabulary of [`decide`](super::decide): the events a task meets, the effects its
//! actor carries out, the decision that pairs an update with effects, and the project's
//! rules and limits that shape them.

use crate::Stage;
use crate::domain::gates::GateOutcome;
use crate::domain::pipeline::{GateKind, Role};
use crate::ports::TaskUpdate;
use crate::ports::merge_queue::Integration;

/// Per-project settings that change the flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectRules {
    /// The project has a staging stand (otherwise deploy-staging passes as N/A).
    pub has_staging: bool,
    /// A production deploy waits for an explicit confirm-deploy.
    pub confirm_deploy: bool,
    /// The project has no deploy stages: a green candidate is fast-forwarded at once.
    pub skip_deploy: bool,
    /// How long infrastructure trouble is retried before the task is blocked.
    pub limits: InfraLimits,
}

/// Bounds of the loops that retry infrastructure trouble: when one is spent, the task is
/// blocked with an `infrastructure:` reason and a human is alerted — never a silent loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfraLimits {
    /// Deferred evaluations of one gate in a row (`ORCH_GATE_DEFER_MAX`).
    pub gate_deferrals: u32,
    /// Checks of an outside merge that could not tell, in a row (`ORCH_MERGE_RETRY_MAX`).
    pub merge_retries: u32,
}

impl Default for InfraLimits {
    fn default() -> Self {
        Self {
            gate_deferrals: 20,
            merge_retries: 5,
        }
    }
}

/// The state of the task's latest job, as the actor found it on start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobSnapshot {
    /// No job for the current stage.
    None,
    /// A job for the current stage is queued or running.
    Active,
    /// The latest job for the current stage finished.
    Finished {
        /// The job.
        job_id: i64,
        /// Whether the agent succeeded.
        success: bool,
    },
}

/// Something that happened to the task.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The actor (re)started and loaded the task; `job` is what the queue says.
    Start {
        /// The current stage's job.
        job: JobSnapshot,
    },
    /// An agent job ended (from its run actor).
    JobFinished {
        /// The job.
        job_id: i64,
        /// The stage it worked for.
        stage: Stage,
        /// Whether the agent succeeded.
        success: bool,
        /// Why it failed, when it did.
        reason: String,
    },
    /// Infrastructure failed around the stage's agent run (its worktree could not be made,
    /// its work could not be published) and the run's own retries are spent.
    JobInfrastructure {
        /// The job.
        job_id: i64,
        /// The stage it worked for.
        stage: Stage,
        /// What failed.
        reason: String,
    },
    /// A gate evaluation came back.
    GateEvaluated {
        /// The stage whose gate it was.
        stage: Stage,
        /// The verdict.
        outcome: GateOutcome,
        /// Evaluations of this gate deferred in a row before this one.
        deferrals: u32,
    },
    /// The repository's merge queue says how the task's candidate went, or that `main`
    /// now holds it.
    Integrated(Integration),
    /// A human approved (the analysis gate).
    Approve,
    /// A human rejected the analysis, with a reason for the analyst.
    Reject {
        /// Why.
        reason: String,
    },
    /// A human confirmed the production deploy.
    ConfirmDeploy,
    /// A human paused the task.
    Pause,
    /// A human resumed it.
    Resume,
    /// A human retries a blocked task: its stage resumes with a fresh retry budget.
    Retry {
        /// Who.
        by: String,
        /// A note passed verbatim to the next agent run, if any.
        note: Option<String>,
    },
    /// The publish a retry asked for (of a blocked run's work) ended.
    Republished {
        /// The stage whose work it published.
        stage: Stage,
        /// Published, or why not.
        result: Result<(), String>,
    },
    /// A human stopped the task for good.
    Cancel {
        /// Why.
        reason: String,
    },
    /// A human merged the task's pull request into `main` on the forge, outside the deploy
    /// stage. It counts only once its merge commit is proven on `origin/main`.
    MergedOutside {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
    },
    /// Whether an outside merge's commit is on `origin/main`, as the forge found it.
    OutsideMergeChecked {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
        /// On `origin/main`, not on it, or why the forge could not tell.
        on_main: Result<bool, String>,
        /// Checks that could not tell, in a row, before this one.
        failures: u32,
    },
}

/// Work the actor must carry out, after saving the update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Queue an agent job for `stage`.
    Enqueue {
        /// The stage.
        stage: Stage,
        /// The role to run.
        role: Role,
        /// The text handed to the agent.
        task_text: String,
    },
    /// Evaluate the gate of `stage` (off the actor) and report back.
    EvaluateGate {
        /// The stage.
        stage: Stage,
        /// Its gate.
        gate: GateKind,
    },
    /// Evaluate the same gate again after a pause (infrastructure trouble).
    RetryGateLater {
        /// The stage.
        stage: Stage,
        /// Its gate.
        gate: GateKind,
    },
    /// Join the repository's merge queue (idempotent: a task already in it keeps its place).
    JoinMergeQueue,
    /// Leave the merge queue, giving up the lease if the task holds it (idempotent).
    LeaveMergeQueue,
    /// Ask the merge queue to fast-forward `main` to the task's deployed candidate.
    Merge,
    /// Check (off the actor) whether an outside merge's commit is on `origin/main`.
    CheckOutsideMerge {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
    },
    /// Check that again after the retry delay.
    RetryOutsideMergeCheckLater {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
    },
    /// Commit and push what the stage's agent left in the worktree (off the actor), then
    /// report back: a retry of work whose publishing failed, without running the agent again.
    Republish {
        /// The stage.
        stage: Stage,
        /// Its role, whose work it is.
        role: Role,
    },
    /// Withdraw the task's queued job.
    CancelJobs,
    /// A STOP: cancel the task's queued job and end its running one, its agent's process
    /// group killed and nothing of it published.
    StopWork {
        /// Why, as the human said.
        reason: String,
    },
    /// A stopped task: remove its worktree and delete its branch on the origin (never
    /// `main`), so nothing of its work stays there.
    DiscardWork,
    /// Let the dispatcher look at the queue (a job may have become claimable).
    WakeDispatch,
    /// The task reached `done` or `cancelled`: remove its worktree (its branch stays).
    RemoveWorktree,
    /// The task is terminal: stop the actor.
    Stop,
}

/// What to save and what to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The update to save first; `None` when the event changes nothing.
    pub update: Option<TaskUpdate>,
    /// Effects to run once the update is saved.
    pub effects: Vec<Effect>,
}

impl Decision {
    pub(super) fn nothing() -> Self {
        Self::default()
    }
}
