//! `task:<id>` — one actor per non-terminal task, the only writer of its task's stage. It is
//! spawned with its id only and reloads its state from the store in `pre_start`, so startup
//! recovery and a supervised restart take the same path. Each event goes through the pure
//! [`decide`]; the actor saves the decision and carries out its effects. The queue belongs to
//! `dispatch`: the actor *asks* it to enqueue or cancel (with a timeout). Side-work — gate
//! evaluations, the merge, timed retries, the board's ordered updates — runs in futures the
//! actor owns (held in its state and aborted when the incarnation ends), so a stopped or
//! restarted task never has a stale effect still running; they report back by message.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::actors::describe::{Describe, Description};
use crate::domain::gates::GateOutcome;
use crate::domain::job_machine::JobOutcome;
use crate::domain::notice::{Notices, notices};
use crate::domain::pipeline::GateKind;
use crate::domain::task_machine::{
    Decision, Effect, Event, InfraLimits, JobSnapshot, ProjectRules, decide, start_reads_job,
};
use crate::ports::workbench::Forge;
use crate::ports::{Alert, Board, JobStatus, JobStore, Phase, Store, TaskRecord};
use crate::{Stage, WorkItemId};

mod effects;
mod side_work;
mod start;

use side_work::{BoardJob, BoardWorker, SideWork};
pub use start::{RestartError, TaskCreator, spawn_task_actor, task_loader, task_spec};

/// What every task actor works with.
pub struct TaskDeps {
    /// Tasks and their journal.
    pub store: Arc<dyn Store>,
    /// The job queue, read (its writer is `dispatch`).
    pub jobs: Arc<dyn JobStore>,
    /// Branches, gates and merges.
    pub forge: Arc<dyn Forge>,
    /// The project registry: each task's rules.
    pub projects: Arc<crate::domain::projects::Projects>,
    /// The tracker board the task's card lives on.
    pub board: Arc<dyn Board>,
    /// Pause before re-evaluating a deferred gate or retrying a failed merge.
    pub retry_delay: Duration,
    /// How often infrastructure trouble is retried before the task is blocked.
    pub limits: InfraLimits,
}

/// How long a deliberately stopped task waits for a merge in flight before ending it, and
/// for its board updates to be delivered.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The task actor.
pub struct TaskActor {
    deps: Arc<TaskDeps>,
}

impl TaskActor {
    /// A task actor working with `deps`.
    pub fn new(deps: Arc<TaskDeps>) -> Self {
        Self { deps }
    }
}

/// The task's in-memory state, rebuilt from the store on every start.
pub struct TaskState {
    /// The task as last loaded or decided.
    record: TaskRecord,
    /// Its project's rules.
    rules: ProjectRules,
    /// When this incarnation loaded it (RFC 3339).
    loaded_at: String,
    /// Deferrals (or merge errors) in a row in the current stage and phase.
    infra_streak: u32,
    /// The side-work this incarnation owns.
    work: SideWork,
}

/// A human decision about a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HumanAction {
    /// Approve the analysis.
    Approve,
    /// Reject the analysis, with a reason for the analyst.
    Reject(String),
    /// Confirm the production deploy.
    ConfirmDeploy,
    /// Start no new work.
    Pause,
    /// Continue where it stopped.
    Resume,
    /// Stop the task for good.
    Cancel(String),
    /// Retry a blocked task: who, and a note for its next agent run.
    Retry {
        /// Who.
        by: String,
        /// The note, passed verbatim.
        note: Option<String>,
    },
    /// The task's pull request was merged on the forge by a human.
    MergedOutside {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
    },
}

/// The task's state after a human action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanReply {
    /// The task.
    pub work_item_id: WorkItemId,
    /// False when the action changed nothing (a replay, or the wrong moment).
    pub changed: bool,
    /// Stage afterwards.
    pub stage: Stage,
    /// Phase afterwards.
    pub phase: Phase,
    /// Paused afterwards.
    pub paused: bool,
}

/// Messages a task actor handles.
pub enum TaskMsg {
    /// Anyone (`GET /actors`, `GET /tasks/{id}`): reply with the task's live state.
    Describe(RpcReplyPort<Description>),
    /// `dispatch`: the task's job ended.
    JobFinished {
        /// The job.
        job_id: i64,
        /// The stage it worked for.
        stage: Stage,
        /// How it ended.
        outcome: JobOutcome,
    },
    /// Self, from the owned gate evaluation.
    GateEvaluated {
        /// The stage.
        stage: Stage,
        /// The verdict.
        outcome: GateOutcome,
    },
    /// Self, after a pause: evaluate the gate again if still gating that stage.
    EvaluateGate {
        /// The stage.
        stage: Stage,
        /// Its gate.
        gate: GateKind,
    },
    /// Self, from the owned publish a retry asked for.
    Republished {
        /// The stage.
        stage: Stage,
        /// Published, or why not.
        result: Result<(), String>,
    },
    /// The merge queue: how the task's candidate went, or that `main` holds it.
    Integrated(crate::ports::merge_queue::Integration),
    /// Self, after a pause: ask the merge queue again (join, or fast-forward).
    AskQueue,
    /// Self, from the owned check of an outside merge: whether its commit is on main.
    OutsideMergeChecked {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
        /// What the forge found.
        on_main: Result<bool, String>,
    },
    /// Self, after a pause: check an outside merge again.
    CheckOutsideMerge {
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
    },
    /// The webhook intake: something the current gate looks at changed (a CI status);
    /// evaluate it again if the task is gating.
    Recheck,
    /// The operator API: a human decision; replies with the state afterwards.
    Human(HumanAction, RpcReplyPort<HumanReply>),
    /// Debug builds only: panic inside the handler (supervision tests).
    #[cfg(debug_assertions)]
    Crash(String),
    /// Debug builds only: block the handler this long (introspection tests).
    #[cfg(debug_assertions)]
    Stall(Duration),
}

impl Describe for TaskMsg {
    const KIND: &'static str = "task";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        TaskMsg::Describe(reply)
    }
}

impl TaskActor {
    /// Decides `event`, saves the decision and carries out its effects. Returns whether the
    /// decision changed the task. The work is boxed: every live actor's own future is as
    /// large as the largest future it awaits inline, and 10,000 idle actors would each hold
    /// room for a decision's store write and RPCs they are not making.
    async fn process(
        &self,
        myself: &ActorRef<TaskMsg>,
        state: &mut TaskState,
        event: Event,
    ) -> Result<bool, ActorProcessingErr> {
        Box::pin(self.decide_and_apply(myself, state, event)).await
    }

    /// [`Self::process`], unboxed.
    async fn decide_and_apply(
        &self,
        myself: &ActorRef<TaskMsg>,
        state: &mut TaskState,
        event: Event,
    ) -> Result<bool, ActorProcessingErr> {
        let Decision { update, effects } = decide(&state.record, &state.rules, event.clone());
        let changed = update.is_some();
        if let Some(mut update) = update {
            let before = state.record.clone();
            if update.branch.is_none() {
                update.branch = Some(crate::domain::branch::of(&state.record));
            }
            let id = state.record.work_item_id.clone();
            let saved = self
                .deps
                .store
                .update_task(&id, state.record.stage, update.clone())
                .await
                .map_err(|e| format!("cannot save task {id}: {e}"))?;
            if !saved {
                // Someone else moved the task: trust the store, drop this decision.
                warn!(task = %id, "task changed under its actor; reloading");
                if let Some(fresh) = self.deps.store.load_task(&id).await? {
                    state.record = fresh;
                }
                return Ok(false);
            }
            if let Some((to, reason)) = &update.to {
                info!(task = %id, from = %state.record.stage, to = %to, %reason, "stage changed");
            }
            update.apply_to(&mut state.record);
            if (before.stage, before.phase) != (state.record.stage, state.record.phase) {
                state.infra_streak = 0;
            }
            let reason = update.to.as_ref().map(|(_, reason)| reason.as_str());
            self.announce(state, notices(&before, &state.record, reason, &event));
        }
        for effect in effects {
            self.carry_out(myself, state, effect).await?;
        }
        Ok(changed)
    }

    /// Hands what the world must hear about a saved decision to the board worker and the
    /// chat tracker; nothing here waits on I/O.
    fn announce(&self, state: &mut TaskState, notices: Notices) {
        let task = &state.record;
        let mut board = Vec::new();
        // Comments first: whoever the card's move calls to look (a human asked to approve)
        // finds what they are to look at already there.
        for (author, text) in notices.comments {
            board.push(BoardJob::Comment(task.clone(), author, text));
        }
        if let Some(status) = notices.board {
            board.push(BoardJob::Show(task.clone(), status));
        }
        for (kind, text) in notices.alerts {
            info!(task = %task.work_item_id, ?kind, %text, "needs attention");
            crate::actors::tracker::alert(Alert {
                work_item_id: task.work_item_id.clone(),
                kind,
                text,
            });
        }
        crate::actors::tracker::refresh(task.work_item_id.clone());
        if !board.is_empty() {
            let worker = state
                .work
                .board
                .get_or_insert_with(|| BoardWorker::start(self.deps.board.clone()));
            for job in board {
                let _ = worker.tx.send(Box::new(job));
            }
        }
    }
}

/// What the queue says about the task's current stage — asked only when the start is
/// decided by it ([`start_reads_job`]); any other start reads nothing from the queue.
async fn job_snapshot(
    jobs: &dyn JobStore,
    task: &TaskRecord,
) -> Result<JobSnapshot, ActorProcessingErr> {
    if !start_reads_job(task) {
        return Ok(JobSnapshot::None);
    }
    let id = &task.work_item_id;
    if let Some(active) = jobs.active_job(id).await?
        && active.stage == task.stage
    {
        return Ok(JobSnapshot::Active);
    }
    Ok(match jobs.last_job(id).await? {
        Some(job) if job.stage == task.stage && job.status == JobStatus::Succeeded => {
            JobSnapshot::Finished {
                job_id: job.id,
                success: true,
            }
        }
        Some(job) if job.stage == task.stage && job.status == JobStatus::Failed => {
            JobSnapshot::Finished {
                job_id: job.id,
                success: false,
            }
        }
        _ => JobSnapshot::None,
    })
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = WorkItemId;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        id: WorkItemId,
    ) -> Result<Self::State, ActorProcessingErr> {
        let record = self
            .deps
            .store
            .load_task(&id)
            .await
            .map_err(|e| format!("cannot load task {id}: {e}"))?
            .ok_or_else(|| format!("task {id} is not in the store"))?;
        if record.stage.is_terminal() {
            return Err(format!(
                "task {id} is {}: terminal tasks have no actor",
                record.stage
            )
            .into());
        }
        let mut rules = self.deps.projects.rules(&record.repo).unwrap_or_default();
        rules.limits = self.deps.limits;
        Ok(TaskState {
            record,
            rules,
            loaded_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            infra_streak: 0,
            work: SideWork::default(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let job = job_snapshot(&*self.deps.jobs, &state.record).await?;
        self.process(&myself, state, Event::Start { job }).await?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TaskMsg::Describe(reply) => {
                let r = &state.record;
                let _ = reply.send(Description {
                    details: json!({
                        "work_item_id": r.work_item_id,
                        "repo": r.repo,
                        "title": r.title,
                        "stage": r.stage,
                        "phase": r.phase,
                        "paused": r.paused,
                        "developer_retries": r.developer_retries,
                        "loaded_at": state.loaded_at,
                        "infra_streak": state.infra_streak,
                        "in_flight": state.work.in_flight(),
                    }),
                    ..Description::default()
                });
            }
            TaskMsg::JobFinished {
                job_id,
                stage,
                outcome,
            } => {
                let event = match outcome {
                    JobOutcome::Succeeded => Event::JobFinished {
                        job_id,
                        stage,
                        success: true,
                        reason: String::new(),
                    },
                    JobOutcome::Failed { reason } => Event::JobFinished {
                        job_id,
                        stage,
                        success: false,
                        reason,
                    },
                    JobOutcome::Infrastructure { reason } => Event::JobInfrastructure {
                        job_id,
                        stage,
                        reason,
                    },
                };
                self.process(&myself, state, event).await?;
            }
            TaskMsg::GateEvaluated { stage, outcome } => {
                state.work.gate = None;
                let deferrals = state.infra_streak;
                let event = Event::GateEvaluated {
                    stage,
                    outcome,
                    deferrals,
                };
                self.process(&myself, state, event).await?;
            }
            TaskMsg::EvaluateGate { stage, gate } => {
                state.work.timer = None;
                if state.record.stage == stage && state.record.phase == Phase::Gating {
                    self.run_effect(&myself, state, Effect::EvaluateGate { stage, gate })
                        .await?;
                }
            }
            TaskMsg::Republished { stage, result } => {
                state.work.gate = None;
                self.process(&myself, state, Event::Republished { stage, result })
                    .await?;
            }
            TaskMsg::Integrated(news) => {
                self.process(&myself, state, Event::Integrated(news))
                    .await?;
            }
            TaskMsg::OutsideMergeChecked { sha, by, on_main } => {
                state.work.merge = None;
                if on_main == Ok(false) {
                    warn!(task = %state.record.work_item_id, %sha, %by, "a pull request merged outside the pipeline is not on origin/main; ignored");
                }
                let failures = state.infra_streak;
                let event = Event::OutsideMergeChecked {
                    sha,
                    by,
                    on_main,
                    failures,
                };
                self.process(&myself, state, event).await?;
            }
            TaskMsg::CheckOutsideMerge { sha, by } => {
                state.work.timer = None;
                self.run_effect(&myself, state, Effect::CheckOutsideMerge { sha, by })
                    .await?;
            }
            TaskMsg::AskQueue => {
                state.work.timer = None;
                match state.record.phase {
                    Phase::Merging => self.run_effect(&myself, state, Effect::Merge).await?,
                    Phase::Queued => {
                        self.run_effect(&myself, state, Effect::JoinMergeQueue)
                            .await?
                    }
                    _ => {}
                }
            }
            TaskMsg::Recheck => {
                let stage = state.record.stage;
                if state.record.phase == Phase::Gating
                    && state.work.gate.is_none()
                    && let Some(gate) = crate::domain::pipeline::spec(stage).gate
                {
                    self.run_effect(&myself, state, Effect::EvaluateGate { stage, gate })
                        .await?;
                }
            }
            TaskMsg::Human(action, reply) => {
                let event = match action {
                    HumanAction::Approve => Event::Approve,
                    HumanAction::Reject(reason) => Event::Reject { reason },
                    HumanAction::ConfirmDeploy => Event::ConfirmDeploy,
                    HumanAction::Pause => Event::Pause,
                    HumanAction::Resume => Event::Resume,
                    HumanAction::Cancel(reason) => Event::Cancel { reason },
                    HumanAction::Retry { by, note } => Event::Retry { by, note },
                    HumanAction::MergedOutside { sha, by } => Event::MergedOutside { sha, by },
                };
                let changed = self.process(&myself, state, event).await?;
                let r = &state.record;
                let _ = reply.send(HumanReply {
                    work_item_id: r.work_item_id.clone(),
                    changed,
                    stage: r.stage,
                    phase: r.phase,
                    paused: r.paused,
                });
            }
            #[cfg(debug_assertions)]
            TaskMsg::Crash(reason) => {
                panic!(
                    "task {} crashed on request: {reason}",
                    state.record.work_item_id
                )
            }
            #[cfg(debug_assertions)]
            TaskMsg::Stall(duration) => tokio::time::sleep(duration).await,
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A deliberate stop: a merge in flight is given a short while to finish (a merge
        // interrupted halfway is redone by the next incarnation, but finishing is cleaner),
        // a finished task's worktree is removed, and the board hears the last of this
        // incarnation's updates. Then everything ends.
        let work = &mut state.work;
        work.gate = None;
        work.timer = None;
        if let Some(merge) = work.merge.as_mut()
            && tokio::time::timeout(STOP_GRACE, merge).await.is_err()
        {
            warn!(task = %state.record.work_item_id, "the merge in flight did not end in time; ending it");
        }
        work.merge = None;
        if let Some(cleanup) = work.cleanup.as_mut()
            && tokio::time::timeout(STOP_GRACE, cleanup).await.is_err()
        {
            warn!(task = %state.record.work_item_id, "the worktree's removal did not end in time");
        }
        if let Some(BoardWorker { tx, mut worker }) = work.board.take() {
            drop(tx);
            if tokio::time::timeout(STOP_GRACE, &mut worker).await.is_err() {
                warn!(task = %state.record.work_item_id, "board updates were still pending at stop");
            }
        }
        Ok(())
    }
}
