//! `run:<job>` — one per running job: prepares the task's worktree, runs the agent process
//! through the [`AgentRunner`](crate::workbench::AgentRunner), publishes what a successful
//! agent changed, journals the run and the job, tells the task actor by name, then stops.
//! The work runs in a spawned task, so the actor itself stays responsive to Describe.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tracing::{info, warn};

use crate::describe::{Describe, Description};
use crate::dispatch::DispatchDeps;
use crate::pipeline::Role;
use crate::ports::{Job, JobStatus, NewRun};
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

/// Carries out the job; returns (success, reason) for the task actor.
async fn execute(deps: &DispatchDeps, job: &Job) -> (bool, String) {
    let id = &job.work_item_id;
    let role: Role = match job.role.parse() {
        Ok(role) => role,
        Err(e) => return (false, format!("job {} names {e}", job.id)),
    };
    let task = match deps.store.load_task(id).await {
        Ok(Some(task)) => task,
        Ok(None) => return (false, format!("task {id} is not in the store")),
        Err(e) => return (false, format!("cannot load task {id}: {e}")),
    };
    let workplace = match deps.forge.prepare(&task).await {
        Ok(w) => w,
        Err(e) => return (false, format!("cannot prepare the worktree: {e}")),
    };
    let attempt = match deps.jobs.runs(id).await {
        Ok(runs) => runs.iter().filter(|r| r.role == job.role).count() as u32 + 1,
        Err(_) => job.attempts.max(1),
    };
    let run_id = job
        .run_id
        .clone()
        .unwrap_or_else(|| format!("run-{}-{}", job.id, job.attempts));
    let log_path = deps.runner.log_path(&run_id);
    let started = deps
        .jobs
        .start_run(NewRun {
            run_id: run_id.clone(),
            job_id: job.id,
            work_item_id: id.clone(),
            stage: job.stage,
            role: job.role.clone(),
            model: deps.runner.model(role),
            log_path: log_path.display().to_string(),
        })
        .await;
    if let Err(e) = started {
        return (false, format!("cannot journal run {run_id}: {e}"));
    }
    let report = deps
        .runner
        .run(AgentRequest {
            run_id: run_id.clone(),
            work_item_id: id.clone(),
            stage: job.stage,
            role,
            task_text: job.task_text.clone(),
            workplace,
            attempt,
        })
        .await;
    let (mut success, mut reason, mut finish) = (report.success, report.reason, report.finish);
    if success && let Err(e) = deps.forge.publish(&task, role).await {
        success = false;
        reason = format!("cannot publish the {role} agent's work: {e}");
        finish.outcome = "failed".into();
        finish.reason = Some(reason.clone());
    }
    if finish.outcome.is_empty() {
        finish.outcome = if success { "succeeded" } else { "failed" }.into();
    }
    if let Err(e) = deps.jobs.finish_run(&run_id, finish).await {
        warn!(run = %run_id, error = %e, "cannot journal the end of the run");
    }
    (success, reason)
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
            let (success, reason) = execute(&deps, &job).await;
            let status = if success {
                JobStatus::Succeeded
            } else {
                JobStatus::Failed
            };
            if let Err(e) = deps
                .jobs
                .finish_job(job.id, status, (!success).then_some(reason.as_str()))
                .await
            {
                warn!(job = job.id, error = %e, "cannot finish job");
            }
            info!(job = job.id, task = %job.work_item_id, role = %job.role, success, %reason, "run ended");
            if let Some(task) = ractor::registry::where_is(job.work_item_id.actor_name()) {
                let _ = task.send_message(TaskMsg::JobFinished {
                    job_id: job.id,
                    stage: job.stage,
                    success,
                    reason,
                });
            }
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
