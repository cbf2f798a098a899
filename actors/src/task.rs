//! `task:<id>` — one actor per non-terminal task, the only writer of its task's stage. It is
//! spawned with its id only and reloads its state from the store in `pre_start`, so startup
//! recovery and a supervised restart take the same path. Each event goes through the pure
//! [`decide`]; the actor saves the decision and runs its effects off the handler (gates,
//! merges, queue writes), which report back by message.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, registry};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::describe::{Describe, Description};
use crate::gates::GateOutcome;
use crate::notice::{Notices, notices};
use crate::pipeline::GateKind;
use crate::ports::{
    Alert, Board, BoardStatus, JobStatus, JobStore, NewJob, Phase, Store, TaskRecord,
};
use crate::supervisor::{ChildLoader, ChildSpec};
use crate::task_machine::{
    Decision, Effect, Event, JobSnapshot, MergeResult, ProjectRules, decide, start_reads_job,
};
use crate::workbench::Forge;
use crate::{Stage, WorkItemId};

/// What every task actor works with.
pub struct TaskDeps {
    /// Tasks and their journal.
    pub store: Arc<dyn Store>,
    /// The job queue.
    pub jobs: Arc<dyn JobStore>,
    /// Branches, gates and merges.
    pub forge: Arc<dyn Forge>,
    /// The tracker board the task's card lives on.
    pub board: Arc<dyn Board>,
    /// Pause before re-evaluating a deferred gate or retrying a failed merge.
    pub retry_delay: Duration,
}

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
    /// The task's board updates, carried out one after another in order by a worker of
    /// this incarnation (so a slow tracker never holds the actor and never reorders moves).
    board: BoardQueue,
}

/// The queue of a task's board updates. Its worker is started by the first update, not
/// with the actor: most tasks at a boot wait on a human and never update their card, and a
/// worker per task (a spawned task and a channel) would cost every one of them memory.
struct BoardQueue {
    /// The board the worker updates.
    board: Arc<dyn Board>,
    /// The worker's queue, once started.
    worker: std::cell::OnceCell<tokio::sync::mpsc::UnboundedSender<Box<BoardJob>>>,
}

impl BoardQueue {
    fn new(board: Arc<dyn Board>) -> Self {
        Self {
            board,
            worker: std::cell::OnceCell::new(),
        }
    }

    /// Queues `job`, starting the worker on first use.
    fn send(
        &self,
        job: BoardJob,
    ) -> Result<(), tokio::sync::mpsc::error::SendError<Box<BoardJob>>> {
        self.worker
            .get_or_init(|| board_worker(self.board.clone()))
            .send(Box::new(job))
    }
}

/// One update of the task's card on its board.
enum BoardJob {
    /// Move the card.
    Show(TaskRecord, BoardStatus),
    /// Comment on it.
    Comment(TaskRecord, Option<crate::pipeline::Role>, String),
}

/// Carries out a task's board updates in order until its actor's incarnation ends.
/// Jobs travel boxed: a channel allocates its slots in blocks of 32, and 32 task records
/// inline would cost every task that ever updated its card some 9 KiB.
fn board_worker(board: Arc<dyn Board>) -> tokio::sync::mpsc::UnboundedSender<Box<BoardJob>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Box<BoardJob>>();
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            let (id, result) = match &*job {
                BoardJob::Show(task, status) => {
                    (&task.work_item_id, board.show(task, *status).await)
                }
                BoardJob::Comment(task, author, text) => {
                    (&task.work_item_id, board.comment(task, *author, text).await)
                }
            };
            if let Err(e) = result {
                warn!(task = %id, error = %e, "cannot update the tracker board");
            }
        }
    });
    tx
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
    /// The run actor of a job: the agent ended.
    JobFinished {
        /// The job.
        job_id: i64,
        /// The stage it worked for.
        stage: Stage,
        /// Whether it succeeded.
        success: bool,
        /// Why it failed.
        reason: String,
    },
    /// Self, from a spawned gate evaluation.
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
    /// Self, from a spawned merge.
    MergeFinished(MergeResult),
    /// Self, after a pause: merge again if still merging.
    Merge,
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
    /// Decides `event`, saves the decision and starts its effects. Returns whether the
    /// decision changed the task.
    async fn process(
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
                update.branch = Some(self.deps.forge.branch_name(&state.record));
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
            let reason = update.to.as_ref().map(|(_, reason)| reason.as_str());
            self.announce(state, notices(&before, &state.record, reason, &event));
        }
        for effect in effects {
            self.run_effect(myself, state, effect);
        }
        Ok(changed)
    }

    /// Hands what the world must hear about a saved decision to the board worker and the
    /// chat tracker; nothing here waits on I/O.
    fn announce(&self, state: &TaskState, notices: Notices) {
        let task = &state.record;
        // Comments first: whoever the card's move calls to look (a human asked to approve)
        // finds what they are to look at already there.
        for (author, text) in notices.comments {
            let _ = state
                .board
                .send(BoardJob::Comment(task.clone(), author, text));
        }
        if let Some(status) = notices.board {
            let _ = state.board.send(BoardJob::Show(task.clone(), status));
        }
        for (kind, text) in notices.alerts {
            info!(task = %task.work_item_id, ?kind, %text, "needs attention");
            crate::tracker::alert(Alert {
                work_item_id: task.work_item_id.clone(),
                kind,
                text,
            });
        }
        crate::tracker::refresh(task.work_item_id.clone());
    }

    /// Starts one effect; nothing here waits on I/O.
    fn run_effect(&self, myself: &ActorRef<TaskMsg>, state: &TaskState, effect: Effect) {
        let deps = self.deps.clone();
        let me = myself.clone();
        let task = state.record.clone();
        match effect {
            Effect::Enqueue {
                stage,
                role,
                task_text,
            } => {
                tokio::spawn(async move {
                    let job = NewJob {
                        work_item_id: task.work_item_id.clone(),
                        stage,
                        role: role.as_str().to_string(),
                        task_text,
                    };
                    match deps.jobs.enqueue_job(job).await {
                        Ok(_) => wake_dispatch(),
                        Err(e) => warn!(task = %task.work_item_id, error = %e, "cannot enqueue"),
                    }
                });
            }
            Effect::EvaluateGate { stage, gate } => {
                tokio::spawn(async move {
                    let outcome = deps.forge.evaluate_gate(&task, gate).await;
                    let _ = me.cast(TaskMsg::GateEvaluated { stage, outcome });
                });
            }
            Effect::RetryGateLater { stage, gate } => {
                tokio::spawn(async move {
                    tokio::time::sleep(deps.retry_delay).await;
                    let _ = me.cast(TaskMsg::EvaluateGate { stage, gate });
                });
            }
            Effect::Merge => {
                tokio::spawn(async move {
                    let result = deps.forge.merge(&task).await;
                    let _ = me.cast(TaskMsg::MergeFinished(result));
                });
            }
            Effect::RetryMergeLater => {
                tokio::spawn(async move {
                    tokio::time::sleep(deps.retry_delay).await;
                    let _ = me.cast(TaskMsg::Merge);
                });
            }
            Effect::CancelJobs => {
                tokio::spawn(async move {
                    if let Err(e) = deps.jobs.cancel_queued_jobs(&task.work_item_id).await {
                        warn!(task = %task.work_item_id, error = %e, "cannot cancel queued jobs");
                    }
                });
            }
            Effect::WakeDispatch => wake_dispatch(),
            Effect::Stop => myself.stop(Some(format!("task is {}", task.stage))),
        }
    }
}

/// Tells the dispatcher to look at the queue, if it runs.
fn wake_dispatch() {
    if let Some(cell) = registry::where_is(crate::dispatch::DISPATCH) {
        let _ = cell.send_message(crate::dispatch::DispatchMsg::Wake);
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
        let rules = self.deps.forge.rules(&record.repo).unwrap_or_default();
        Ok(TaskState {
            record,
            rules,
            loaded_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            board: BoardQueue::new(self.deps.board.clone()),
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
                    }),
                    ..Description::default()
                });
            }
            TaskMsg::JobFinished {
                job_id,
                stage,
                success,
                reason,
            } => {
                let event = Event::JobFinished {
                    job_id,
                    stage,
                    success,
                    reason,
                };
                self.process(&myself, state, event).await?;
            }
            TaskMsg::GateEvaluated { stage, outcome } => {
                self.process(&myself, state, Event::GateEvaluated { stage, outcome })
                    .await?;
            }
            TaskMsg::EvaluateGate { stage, gate } => {
                if state.record.stage == stage && state.record.phase == Phase::Gating {
                    self.run_effect(&myself, state, Effect::EvaluateGate { stage, gate });
                }
            }
            TaskMsg::MergeFinished(result) => {
                self.process(&myself, state, Event::MergeFinished(result))
                    .await?;
            }
            TaskMsg::Merge => {
                if state.record.phase == Phase::Merging {
                    self.run_effect(&myself, state, Effect::Merge);
                }
            }
            TaskMsg::Recheck => {
                let stage = state.record.stage;
                if state.record.phase == Phase::Gating
                    && let Some(gate) = crate::pipeline::spec(stage).gate
                {
                    self.run_effect(&myself, state, Effect::EvaluateGate { stage, gate });
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
}

/// The child spec of the actor for task `id`.
pub fn task_spec(deps: Arc<TaskDeps>, id: WorkItemId) -> ChildSpec {
    ChildSpec::new(id.actor_name(), move || {
        (TaskActor::new(deps.clone()), id.clone())
    })
}

/// Loads one child spec per non-terminal task in the store: the `tasks` supervisor's children.
pub fn task_loader(deps: Arc<TaskDeps>) -> ChildLoader {
    Arc::new(move || {
        let deps = deps.clone();
        Box::pin(async move {
            let ids = deps
                .store
                .active_task_ids()
                .await
                .map_err(|e| format!("cannot list active tasks: {e}"))?;
            Ok(ids
                .into_iter()
                .map(|id| task_spec(deps.clone(), id))
                .collect())
        })
    })
}

/// Starts the actor of a task just created, under the `tasks` supervisor.
pub async fn spawn_task_actor(deps: Arc<TaskDeps>, id: WorkItemId) -> Result<(), String> {
    let tasks =
        registry::where_is(crate::tree::TASKS).ok_or("the tasks supervisor is not running")?;
    let spec = task_spec(deps, id.clone());
    match ractor::rpc::call(
        &tasks,
        |reply| crate::supervisor::SupervisorMsg::StartChild(spec, reply),
        Some(Duration::from_secs(10)),
    )
    .await
    {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(_) => Err(format!(
            "the tasks supervisor did not start task {id} in time"
        )),
        Err(e) => Err(format!("the tasks supervisor is unreachable: {e}")),
    }
}
