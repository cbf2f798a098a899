//! `run:<job>` — one per running job. It does its work as steps, each a message to itself:
//! **prepare** (load the task, make its worktree) → **spawned** (the agent process exists;
//! its pid goes to `dispatch` to journal) → **exited** (the agent's report) → **published**
//! (what a successful agent changed is committed and pushed). Each step's I/O runs in the one
//! future the actor owns at a time (held in its state, aborted when the actor ends, so a
//! stopped run leaves nothing running: dropping the agent's future kills its process group).
//!
//! The actor writes nothing itself: it *reports* to `dispatch`, the queue's only writer — the
//! run's start (asked, before the agent is spawned), its process, and how it ended. A panic in
//! a step becomes an actor failure, which `dispatch` sees as a supervision event. Preparing and
//! publishing are infrastructure: they are retried on their own budget, never spend an agent
//! attempt, and a failed push never throws away a finished agent's work — only the publish
//! step is repeated.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::actors::describe::{Describe, Description};
use crate::actors::dispatch::{DISPATCH, DispatchDeps, DispatchMsg};
use crate::domain::budget::{self, Spend};
use crate::domain::job_machine::RunEnd;
use crate::domain::pipeline::Role;
use crate::domain::resilience::FailureClass;
use crate::ports::workbench::{AgentReport, AgentRequest, PublishError, Workplace};
use crate::ports::{Job, NewRun, ProcessId, TaskRecord};

/// The registry name of the run actor of job `id`.
pub fn run_name(job_id: i64) -> String {
    format!("run:{job_id}")
}

/// How long a run waits for `dispatch` to journal its start.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a run actor starts with.
pub struct RunStart {
    /// The job it runs.
    pub job: Job,
    /// An earlier boot launched this run and its agent outlived that boot: take it over
    /// (its start is already journaled) instead of launching it again.
    pub adopted: bool,
    /// Its start is already journaled (by an earlier boot that died before the agent
    /// started, or that launched it): the run carries on as the same journal row.
    pub journaled: bool,
}

/// The run actor.
pub struct RunActor {
    deps: Arc<DispatchDeps>,
}

impl RunActor {
    /// A run actor working with `deps`.
    pub fn new(deps: Arc<DispatchDeps>) -> Self {
        Self { deps }
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Loading the task and making its worktree.
    Preparing,
    /// The agent runs.
    Running,
    /// Committing and pushing what the agent changed.
    Publishing,
    /// Waiting to try an infrastructure step again.
    Retrying,
    /// Reported to dispatch; stopping.
    Reported,
}

/// What the prepare step found.
pub struct Prepared {
    /// The task as stored.
    task: TaskRecord,
    /// Its worktree.
    workplace: Workplace,
    /// 1-based count of this role's runs on the task.
    attempt: u32,
    /// What is left under the task's cap (nano-dollars); `None` without a cap.
    budget_left_nano_usd: Option<u64>,
}

/// Why a prepare step failed.
pub struct PrepareError {
    /// The agent cannot run at all (the task is gone): a permanent failure.
    permanent: bool,
    /// What went wrong.
    reason: String,
}

/// The run's state.
pub struct RunState {
    /// The job it runs.
    job: Job,
    /// The role, parsed once.
    role: Role,
    /// The run's id.
    run_id: String,
    /// Taken over from an earlier boot.
    adopted: bool,
    /// Its start is journaled (at launch, or by the boot that launched it).
    journaled: bool,
    /// Where it stands.
    step: Step,
    /// The one piece of work in flight (a step's I/O or a retry's timer), aborted when the
    /// actor ends.
    work: Option<AbortOnDropHandle<()>>,
    /// The task, once prepared.
    task: Option<TaskRecord>,
    /// The agent's process, once spawned.
    process: Option<ProcessId>,
    /// The agent's report, once it exited successfully and its work awaits publishing.
    report: Option<AgentReport>,
    /// Infrastructure failures so far (preparing, journaling, publishing).
    infra_failures: u32,
    /// The last of them.
    last_infra_error: Option<String>,
}

/// Messages a run actor handles.
pub enum RunMsg {
    /// Anyone: reply with the job it runs and its step.
    Describe(RpcReplyPort<Description>),
    /// Self, at start and on a retry: prepare the worktree.
    Prepare,
    /// Self, from the prepare work.
    Prepared(Result<Prepared, PrepareError>),
    /// Self, from the agent work: the process exists.
    Spawned(ProcessId),
    /// Self, from the agent work: the agent ended.
    Exited(AgentReport),
    /// Self, after a success and on a retry: publish the agent's work.
    Publish,
    /// Self, from the publish work.
    Published(Result<(), PublishError>),
    /// Self, from owned work that panicked: fail the actor (a supervision event).
    WorkPanicked(String),
    /// Debug builds only: panic inside the handler (supervision tests).
    #[cfg(debug_assertions)]
    Crash(String),
}

impl Describe for RunMsg {
    const KIND: &'static str = "run";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        RunMsg::Describe(reply)
    }
}

/// Runs `work` as the actor's one owned future; a panic in it comes back as
/// [`RunMsg::WorkPanicked`].
fn own<F>(myself: &ActorRef<RunMsg>, work: F) -> AbortOnDropHandle<()>
where
    F: Future<Output = RunMsg> + Send + 'static,
{
    let me = myself.clone();
    AbortOnDropHandle::new(tokio::spawn(async move {
        let msg = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
            Ok(msg) => msg,
            Err(panic) => RunMsg::WorkPanicked(panic_text(panic.as_ref())),
        };
        let _ = me.cast(msg);
    }))
}

/// The text of a panic's payload.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Loads the task and makes its worktree.
async fn prepare(deps: Arc<DispatchDeps>, job: Job, role: Role) -> Result<Prepared, PrepareError> {
    let id = &job.work_item_id;
    let infra = |reason: String| PrepareError {
        permanent: false,
        reason,
    };
    let task = match deps.store.load_task(id).await {
        Ok(Some(task)) => task,
        Ok(None) => {
            return Err(PrepareError {
                permanent: true,
                reason: format!("task {id} is not in the store"),
            });
        }
        Err(e) => return Err(infra(format!("cannot load task {id}: {e}"))),
    };
    let workplace = deps
        .forge
        .prepare(&task)
        .await
        .map_err(|e| infra(format!("cannot prepare the worktree: {e}")))?;
    let runs = deps.jobs.runs(id).await;
    let attempt = match &runs {
        Ok(runs) => runs.iter().filter(|r| r.role == role.as_str()).count() as u32 + 1,
        Err(_) => job.attempts.max(1),
    };
    // What the agent may spend: the cap less what the task's runs cost so far. The task
    // holds its runs at the cap before queuing one; a job's own retry that finds nothing
    // left is not launched (the task then waits for budget).
    let rules = deps.projects.rules(&task.repo).unwrap_or_default();
    let budget_left_nano_usd = match budget::cap(&task, &rules) {
        None => None,
        Some(cap) => {
            let runs =
                runs.map_err(|e| infra(format!("cannot read the spend of task {id}: {e}")))?;
            let spend = Spend::of(&runs);
            match cap.checked_sub(spend.total()).filter(|left| *left > 0) {
                Some(left) => Some(left),
                None => {
                    return Err(PrepareError {
                        permanent: true,
                        reason: budget::waiting_reason(&spend, cap),
                    });
                }
            }
        }
    };
    Ok(Prepared {
        task,
        workplace,
        attempt,
        budget_left_nano_usd,
    })
}

/// Runs the agent, announcing its process to the actor as soon as it exists.
async fn run_agent(
    deps: Arc<DispatchDeps>,
    myself: ActorRef<RunMsg>,
    request: AgentRequest,
) -> RunMsg {
    let (spawned, process) = tokio::sync::oneshot::channel();
    let announce = async {
        if let Ok(process) = process.await {
            let _ = myself.cast(RunMsg::Spawned(process));
        }
    };
    let (report, ()) = futures::join!(deps.runner.run(request, spawned), announce);
    RunMsg::Exited(report)
}

impl RunActor {
    /// Tells dispatch how the run ended and stops.
    fn report(&self, myself: &ActorRef<RunMsg>, state: &mut RunState, end: RunEnd) {
        state.step = Step::Reported;
        state.work = None;
        match ractor::registry::where_is(DISPATCH) {
            Some(dispatch) => {
                let _ = dispatch.send_message(DispatchMsg::RunEnded {
                    job: state.job.clone(),
                    run_id: state.run_id.clone(),
                    end,
                });
            }
            // The reaper finds the job without a run actor and requeues it.
            None => warn!(
                job = state.job.id,
                "dispatch is not running; the run's end is left to the reaper"
            ),
        }
        myself.stop(Some("run ended".into()));
    }

    /// An infrastructure step failed: try again after the retry delay, or, with the budget
    /// spent, report it.
    fn infra_failed(
        &self,
        myself: &ActorRef<RunMsg>,
        state: &mut RunState,
        reason: String,
        again: fn() -> RunMsg,
    ) {
        state.infra_failures += 1;
        warn!(job = state.job.id, task = %state.job.work_item_id, failures = state.infra_failures, %reason, "infrastructure trouble in a run");
        if state.infra_failures > self.deps.infra_retries {
            let finish = state.report.as_ref().map(|r| Box::new(r.finish.clone()));
            let reason = format!("{reason} (gave up after {} tries)", state.infra_failures);
            self.report(myself, state, RunEnd::Infrastructure { reason, finish });
            return;
        }
        state.last_infra_error = Some(reason);
        state.step = Step::Retrying;
        let me = myself.clone();
        let delay = self.deps.infra_retry_delay;
        state.work = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(again());
        })));
    }

    /// Asks dispatch to journal the run's start; the intent is on record before the agent
    /// process exists.
    async fn journal_start(&self, state: &RunState) -> Result<(), String> {
        let dispatch = ractor::registry::where_is(DISPATCH).ok_or("dispatch is not running")?;
        let run = NewRun {
            run_id: state.run_id.clone(),
            job_id: state.job.id,
            work_item_id: state.job.work_item_id.clone(),
            stage: state.job.stage,
            role: state.role,
            model: self.deps.runner.model(state.role),
            boot_id: self.deps.boot_id.clone(),
            log_path: self
                .deps
                .runner
                .log_path(&state.run_id)
                .display()
                .to_string(),
        };
        match ractor::rpc::call(
            &dispatch,
            |reply| DispatchMsg::RunStarting(run, reply),
            Some(JOURNAL_TIMEOUT),
        )
        .await
        {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            Ok(_) => Err(format!(
                "dispatch did not journal the run within {} s",
                JOURNAL_TIMEOUT.as_secs()
            )),
            Err(e) => Err(format!("dispatch is unreachable: {e}")),
        }
    }
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = RunStart;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        RunStart {
            job,
            adopted,
            journaled,
        }: RunStart,
    ) -> Result<RunState, ActorProcessingErr> {
        let role = job.role;
        let run_id = job
            .run_id
            .clone()
            .unwrap_or_else(|| format!("run-{}-{}", job.id, job.attempts));
        Ok(RunState {
            job,
            role,
            run_id,
            adopted,
            journaled,
            step: Step::Preparing,
            work: None,
            task: None,
            process: None,
            report: None,
            infra_failures: 0,
            last_infra_error: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(RunMsg::Prepare)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        if state.step == Step::Reported && !matches!(msg, RunMsg::Describe(_)) {
            return Ok(());
        }
        match msg {
            RunMsg::Describe(reply) => {
                let job = &state.job;
                let _ = reply.send(Description {
                    details: json!({
                        "job": job.id,
                        "task": job.work_item_id,
                        "stage": job.stage,
                        "role": job.role,
                        "run_id": state.run_id,
                        "adopted": state.adopted,
                        "attempt": job.attempts,
                        "step": state.step,
                        "pid": state.process.map(|p| p.pid),
                        "infra_failures": state.infra_failures,
                        "last_infra_error": state.last_infra_error,
                    }),
                    ..Description::default()
                });
            }
            RunMsg::Prepare => {
                state.step = Step::Preparing;
                let work = prepare(self.deps.clone(), state.job.clone(), state.role);
                state.work = Some(own(&myself, work.map(RunMsg::Prepared)));
            }
            RunMsg::Prepared(Err(e)) if e.permanent => {
                let end = RunEnd::Failed {
                    class: FailureClass::Permanent,
                    reason: e.reason,
                    finish: None,
                };
                self.report(&myself, state, end);
            }
            RunMsg::Prepared(Err(e)) => {
                self.infra_failed(&myself, state, e.reason, || RunMsg::Prepare)
            }
            RunMsg::Prepared(Ok(prepared)) => {
                if !state.journaled {
                    if let Err(e) = self.journal_start(state).await {
                        let reason = format!("cannot journal run {}: {e}", state.run_id);
                        self.infra_failed(&myself, state, reason, || RunMsg::Prepare);
                        return Ok(());
                    }
                    state.journaled = true;
                }
                let request = AgentRequest {
                    run_id: state.run_id.clone(),
                    work_item_id: state.job.work_item_id.clone(),
                    stage: state.job.stage,
                    role: state.role,
                    task_text: state.job.task_text.clone(),
                    workplace: prepared.workplace,
                    attempt: prepared.attempt,
                    adopted: state.adopted,
                    budget_left_nano_usd: prepared.budget_left_nano_usd,
                };
                state.task = Some(prepared.task);
                state.step = Step::Running;
                let work = run_agent(self.deps.clone(), myself.clone(), request);
                state.work = Some(own(&myself, work));
            }
            RunMsg::Spawned(process) => {
                state.process = Some(process);
                if let Some(dispatch) = ractor::registry::where_is(DISPATCH) {
                    let _ = dispatch.send_message(DispatchMsg::RunSpawned {
                        job_id: state.job.id,
                        run_id: state.run_id.clone(),
                        process,
                    });
                }
            }
            RunMsg::Exited(report) => {
                state.work = None;
                if report.infrastructure {
                    self.infra_failed(&myself, state, report.reason, || RunMsg::Prepare);
                } else if report.success {
                    info!(job = state.job.id, task = %state.job.work_item_id, role = %state.role, "agent succeeded; publishing its work");
                    state.report = Some(report);
                    myself.cast(RunMsg::Publish)?;
                } else {
                    let end = RunEnd::Failed {
                        class: report.class,
                        reason: report.reason,
                        finish: Some(Box::new(report.finish)),
                    };
                    self.report(&myself, state, end);
                }
            }
            RunMsg::Publish => {
                let Some(task) = state.task.clone() else {
                    return Err("publish asked for before the task was prepared".into());
                };
                state.step = Step::Publishing;
                let (deps, role) = (self.deps.clone(), state.role);
                let work = async move { RunMsg::Published(deps.forge.publish(&task, role).await) };
                state.work = Some(own(&myself, work));
            }
            RunMsg::Published(Ok(())) => {
                let finish = Box::new(state.report.take().map(|r| r.finish).unwrap_or_default());
                self.report(&myself, state, RunEnd::Succeeded { finish });
            }
            RunMsg::Published(Err(PublishError::Rejected(reason))) => {
                // The work itself is wrong: the agent's run failed, with the reason.
                let mut finish = state.report.take().map(|r| r.finish).unwrap_or_default();
                finish.reason = Some(reason.clone());
                let end = RunEnd::Failed {
                    class: FailureClass::Permanent,
                    reason,
                    finish: Some(Box::new(finish)),
                };
                self.report(&myself, state, end);
            }
            RunMsg::Published(Err(PublishError::Infrastructure(e))) => {
                let reason = format!("cannot publish the {} agent's work: {e}", state.role);
                self.infra_failed(&myself, state, reason, || RunMsg::Publish);
            }
            RunMsg::WorkPanicked(panic) => {
                return Err(format!("run {} panicked: {panic}", state.run_id).into());
            }
            #[cfg(debug_assertions)]
            RunMsg::Crash(reason) => panic!("run {} crashed on request: {reason}", state.run_id),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        // Ending the work ends the agent: its future's drop kills the process group.
        state.work = None;
        Ok(())
    }
}
