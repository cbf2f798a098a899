//! `run:<job>` — one per running job: prepares the task's worktree, runs the agent process
//! through the [`AgentRunner`](crate::workbench::AgentRunner) (journaling its pid and start
//! time as soon as it exists), publishes what a successful agent changed, journals the run,
//! then settles the job by the retry plan of [`crate::resilience`]: a transient failure or a
//! usage limit goes back to the queue (the task is not told), anything else ends the job and
//! the task actor is told by name. The dispatcher hears of every end, for its breaker. The
//! work runs in a spawned task, so the actor itself stays responsive to Describe.

use std::sync::Arc;
use std::time::SystemTime;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tracing::{info, warn};

use crate::describe::{Describe, Description};
use crate::dispatch::{DISPATCH, DispatchDeps, DispatchMsg};
use crate::pipeline::Role;
use crate::ports::{Job, JobStatus, JobStore, NewRun, Requeue, RunFinish};
use crate::resilience::{FailureClass, Plan};
use crate::task::TaskMsg;
use crate::workbench::AgentRequest;

/// The registry name of the run actor of job `id`.
pub fn run_name(job_id: i64) -> String {
    format!("run:{job_id}")
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

/// Messages a run actor handles.
pub enum RunMsg {
    /// Anyone: reply with the job it runs.
    Describe(RpcReplyPort<Description>),
    /// Self, from the spawned work: everything is journaled; stop.
    Done,
}

impl Describe for RunMsg {
    const KIND: &'static str = "run";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        RunMsg::Describe(reply)
    }
}

/// How a run ended, for the job and the task.
struct RunEnd {
    success: bool,
    reason: String,
    class: FailureClass,
}

impl RunEnd {
    fn failed(reason: String) -> Self {
        Self {
            success: false,
            reason,
            class: FailureClass::Permanent,
        }
    }
}

/// Carries out the job: prepares the worktree, journals and runs the agent, publishes its
/// work, and journals the outcome under the retry plan's verdict for a failure.
async fn execute(deps: &DispatchDeps, job: &Job, run_id: &str) -> (RunEnd, Option<Plan>) {
    let (end, finish) = run_agent(deps, job, run_id).await;
    // A success needs no plan; a failure is retried, parked or final.
    let plan = (!end.success).then(|| {
        deps.retry
            .plan(&end.class, job.transient_attempts, SystemTime::now())
    });
    if let Some(mut finish) = finish {
        finish.outcome = match &plan {
            None => "succeeded",
            Some(Plan::Retry { .. }) => "transient",
            Some(Plan::Park { .. }) => "usage-limit",
            Some(Plan::Fail { .. }) if finish.outcome == "timeout" => "timeout",
            Some(Plan::Fail { .. }) => "failed",
        }
        .into();
        finish.reason = (!end.success).then(|| end.reason.clone());
        if let Err(e) = deps.jobs.finish_run(run_id, finish).await {
            warn!(run = %run_id, error = %e, "cannot journal the end of the run");
        }
    }
    (end, plan)
}

/// Runs the agent; the journal entry to close comes back with the end, when the run got
/// as far as being journaled.
async fn run_agent(deps: &DispatchDeps, job: &Job, run_id: &str) -> (RunEnd, Option<RunFinish>) {
    let id = &job.work_item_id;
    let role: Role = match job.role.parse() {
        Ok(role) => role,
        Err(e) => return (RunEnd::failed(format!("job {} names {e}", job.id)), None),
    };
    let task = match deps.store.load_task(id).await {
        Ok(Some(task)) => task,
        Ok(None) => {
            return (
                RunEnd::failed(format!("task {id} is not in the store")),
                None,
            );
        }
        Err(e) => return (RunEnd::failed(format!("cannot load task {id}: {e}")), None),
    };
    let workplace = match deps.forge.prepare(&task).await {
        Ok(w) => w,
        Err(e) => {
            return (
                RunEnd::failed(format!("cannot prepare the worktree: {e}")),
                None,
            );
        }
    };
    let attempt = match deps.jobs.runs(id).await {
        Ok(runs) => runs.iter().filter(|r| r.role == job.role).count() as u32 + 1,
        Err(_) => job.attempts.max(1),
    };
    let log_path = deps.runner.log_path(run_id);
    let started = deps
        .jobs
        .start_run(NewRun {
            run_id: run_id.to_string(),
            job_id: job.id,
            work_item_id: id.clone(),
            stage: job.stage,
            role: job.role.clone(),
            model: deps.runner.model(role),
            log_path: log_path.display().to_string(),
        })
        .await;
    if let Err(e) = started {
        return (
            RunEnd::failed(format!("cannot journal run {run_id}: {e}")),
            None,
        );
    }
    let (spawned, process) = tokio::sync::oneshot::channel();
    let journal_process = {
        let jobs = deps.jobs.clone();
        let (job_id, run_id) = (job.id, run_id.to_string());
        tokio::spawn(async move {
            if let Ok(process) = process.await
                && let Err(e) = jobs.set_job_process(job_id, &run_id, process).await
            {
                warn!(job = job_id, error = %e, "cannot journal the agent's process");
            }
        })
    };
    let report = deps
        .runner
        .run(
            AgentRequest {
                run_id: run_id.to_string(),
                work_item_id: id.clone(),
                stage: job.stage,
                role,
                task_text: job.task_text.clone(),
                workplace,
                attempt,
            },
            spawned,
        )
        .await;
    let _ = journal_process.await;
    let (mut success, mut reason, finish) = (report.success, report.reason, report.finish);
    let mut class = report.class;
    if success && let Err(e) = deps.forge.publish(&task, role).await {
        success = false;
        reason = format!("cannot publish the {role} agent's work: {e}");
        class = FailureClass::Permanent;
    }
    (
        RunEnd {
            success,
            reason,
            class,
        },
        Some(finish),
    )
}

/// Settles the job in the store as `plan` says (`None`: it succeeded) and tells whoever
/// must know: the task when the job ended, the dispatcher always (its breaker counts
/// transient failures).
async fn settle(deps: &DispatchDeps, job: &Job, run_id: &str, end: RunEnd, plan: Option<Plan>) {
    let transient = !end.success && matches!(end.class, FailureClass::Transient { .. });
    let how = match plan {
        None => {
            end_job(deps.jobs.as_ref(), job, run_id, true, String::new()).await;
            None
        }
        Some(Plan::Retry { delay }) => Some(Requeue::Transient { delay }),
        Some(Plan::Park { until_unix }) => {
            if let Err(e) = deps.jobs.park_queue(until_unix, &end.reason).await {
                warn!(job = job.id, error = %e, "cannot park the queue");
            }
            Some(Requeue::Parked)
        }
        Some(Plan::Fail { exhausted }) => {
            let reason = if exhausted {
                format!(
                    "{} (transient failures exhausted the retry budget of {})",
                    end.reason, deps.retry.transient_budget
                )
            } else {
                end.reason.clone()
            };
            end_job(deps.jobs.as_ref(), job, run_id, false, reason).await;
            None
        }
    };
    if let Some(how) = how {
        info!(job = job.id, task = %job.work_item_id, ?how, reason = %end.reason, "run failed on the API's limits; job requeued");
        if let Err(e) = deps
            .jobs
            .requeue_job(job.id, run_id, how, &end.reason)
            .await
        {
            warn!(job = job.id, error = %e, "cannot requeue the job; failing it");
            let reason = format!("{}; and it could not be requeued: {e}", end.reason);
            end_job(deps.jobs.as_ref(), job, run_id, false, reason).await;
        }
    }
    if let Some(dispatch) = ractor::registry::where_is(DISPATCH) {
        let _ = dispatch.send_message(DispatchMsg::RunEnded { transient });
    }
}

/// Ends running job `job` of run `run_id` and, if this call is the one that ended it, tells
/// its task. Returns whether it ended the job.
pub(crate) async fn end_job(
    jobs: &dyn JobStore,
    job: &Job,
    run_id: &str,
    success: bool,
    reason: String,
) -> bool {
    let status = if success {
        JobStatus::Succeeded
    } else {
        JobStatus::Failed
    };
    let error = (!success).then_some(reason.as_str());
    match jobs.finish_job(job.id, run_id, status, error).await {
        Ok(true) => {
            info!(job = job.id, task = %job.work_item_id, role = %job.role, success, %reason, "job ended");
            notify_task(job, success, reason);
            true
        }
        Ok(false) => {
            info!(job = job.id, "the job was already settled elsewhere");
            false
        }
        Err(e) => {
            warn!(job = job.id, error = %e, "cannot end the job");
            false
        }
    }
}

/// Tells the job's task actor (by name) that its job ended.
fn notify_task(job: &Job, success: bool, reason: String) {
    if let Some(task) = ractor::registry::where_is(job.work_item_id.actor_name()) {
        let _ = task.send_message(TaskMsg::JobFinished {
            job_id: job.id,
            stage: job.stage,
            success,
            reason,
        });
    }
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = Job;
    type Arguments = Job;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        job: Job,
    ) -> Result<Job, ActorProcessingErr> {
        Ok(job)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        job: &mut Job,
    ) -> Result<(), ActorProcessingErr> {
        let deps = self.deps.clone();
        let job = job.clone();
        tokio::spawn(async move {
            let run_id = job
                .run_id
                .clone()
                .unwrap_or_else(|| format!("run-{}-{}", job.id, job.attempts));
            let (end, plan) = execute(&deps, &job, &run_id).await;
            settle(&deps, &job, &run_id, end, plan).await;
            let _ = myself.cast(RunMsg::Done);
        });
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        job: &mut Job,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RunMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    details: json!({
                        "job": job.id,
                        "task": job.work_item_id,
                        "stage": job.stage,
                        "role": job.role,
                        "run_id": job.run_id,
                        "attempt": job.attempts,
                    }),
                    ..Description::default()
                });
            }
            RunMsg::Done => myself.stop(Some("run ended".into())),
        }
        Ok(())
    }
}
