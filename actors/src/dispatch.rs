//! `dispatch` — the job queue's only consumer. It claims queued jobs FIFO under
//! `max_concurrency` (the store skips paused tasks and allows one active job per task) and
//! starts one `run:<job>` actor per claimed job as its own supervised child. A tick catches
//! anything a missed wake-up left behind; jobs a previous boot left running are requeued at
//! start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::json;
use tracing::{error, info, warn};

use crate::describe::{Describe, Description};
use crate::ports::{Job, JobStatus, JobStore, Store};
use crate::run::{RunActor, run_name};
use crate::task::TaskMsg;
use crate::workbench::{AgentRunner, Forge};

/// Registered name of the dispatcher.
pub const DISPATCH: &str = "dispatch";

/// What the dispatcher and its run actors work with.
pub struct DispatchDeps {
    /// Tasks (read by runs).
    pub store: Arc<dyn Store>,
    /// The queue.
    pub jobs: Arc<dyn JobStore>,
    /// Worktrees and publishing.
    pub forge: Arc<dyn Forge>,
    /// Agent processes.
    pub runner: Arc<dyn AgentRunner>,
    /// Jobs running at once (`ORCH_MAX_CONCURRENCY`).
    pub max_concurrency: usize,
    /// This process's boot id; a job claimed under another one is from a previous boot.
    pub boot_id: String,
    /// Interval of the safety-net claim.
    pub tick: Duration,
}

/// The dispatcher actor.
pub struct Dispatch {
    deps: Arc<DispatchDeps>,
}

impl Dispatch {
    /// A dispatcher working with `deps`.
    pub fn new(deps: Arc<DispatchDeps>) -> Self {
        Self { deps }
    }
}

/// The dispatcher's bookkeeping.
pub struct DispatchState {
    /// Running jobs by id, with their task.
    running: BTreeMap<i64, Job>,
    /// A claim is in flight; wake-ups meanwhile only set `again`.
    claiming: bool,
    /// Claim again when the current claim returns.
    again: bool,
    /// Jobs claimed since start.
    claimed_total: u64,
}

/// Messages the dispatcher handles.
pub enum DispatchMsg {
    /// Task actors, the tick, run ends: look at the queue.
    Wake,
    /// Self, from the spawned claim: these jobs are now running and need run actors.
    Claimed(Result<Vec<Job>, String>),
    /// Anyone: reply with running jobs and counters.
    Describe(RpcReplyPort<Description>),
}

impl Describe for DispatchMsg {
    const KIND: &'static str = "dispatch";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        DispatchMsg::Describe(reply)
    }
}

/// Marks a job failed and tells its task, for a run that could not even start.
fn fail_job(deps: Arc<DispatchDeps>, job: Job, reason: String) {
    tokio::spawn(async move {
        if let Err(e) = deps
            .jobs
            .finish_job(job.id, JobStatus::Failed, Some(&reason))
            .await
        {
            error!(job = job.id, error = %e, "cannot mark job failed");
        }
        if let Some(task) = ractor::registry::where_is(job.work_item_id.actor_name()) {
            let _ = task.send_message(TaskMsg::JobFinished {
                job_id: job.id,
                stage: job.stage,
                success: false,
                reason,
            });
        }
    });
}

impl Actor for Dispatch {
    type Msg = DispatchMsg;
    type State = DispatchState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let requeued = self
            .deps
            .jobs
            .requeue_stale_jobs(&self.deps.boot_id)
            .await
            .map_err(|e| format!("cannot requeue jobs of a previous boot: {e}"))?;
        if requeued > 0 {
            info!(requeued, "requeued jobs left running by a previous boot");
        }
        Ok(DispatchState {
            running: BTreeMap::new(),
            claiming: false,
            again: false,
            claimed_total: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(self.deps.tick, || DispatchMsg::Wake);
        let _ = myself.cast(DispatchMsg::Wake);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatchMsg::Wake => {
                if state.claiming {
                    state.again = true;
                    return Ok(());
                }
                if state.running.len() >= self.deps.max_concurrency {
                    return Ok(());
                }
                state.claiming = true;
                let deps = self.deps.clone();
                tokio::spawn(async move {
                    let claimed = deps
                        .jobs
                        .claim_jobs(deps.max_concurrency, &deps.boot_id)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = myself.cast(DispatchMsg::Claimed(claimed));
                });
            }
            DispatchMsg::Claimed(claimed) => {
                state.claiming = false;
                match claimed {
                    Err(e) => {
                        warn!(error = %e, "claiming jobs failed; will retry on the next tick")
                    }
                    Ok(jobs) => {
                        for job in jobs {
                            state.claimed_total += 1;
                            info!(job = job.id, task = %job.work_item_id, role = %job.role, stage = %job.stage, "starting run");
                            state.running.insert(job.id, job.clone());
                            let deps = self.deps.clone();
                            let supervisor = myself.get_cell();
                            let me = myself.clone();
                            tokio::spawn(async move {
                                let name = run_name(job.id);
                                if let Err(e) = Actor::spawn_linked(
                                    Some(name),
                                    RunActor::new(deps.clone()),
                                    job.clone(),
                                    supervisor,
                                )
                                .await
                                {
                                    fail_job(
                                        deps,
                                        job.clone(),
                                        format!("cannot start the run: {e}"),
                                    );
                                    let _ = me.cast(DispatchMsg::Wake);
                                }
                            });
                        }
                    }
                }
                if std::mem::take(&mut state.again) {
                    let _ = myself.cast(DispatchMsg::Wake);
                }
            }
            DispatchMsg::Describe(reply) => {
                let running: Vec<_> = state
                    .running
                    .values()
                    .map(|j| json!({"job": j.id, "task": j.work_item_id, "role": j.role, "stage": j.stage}))
                    .collect();
                let _ = reply.send(Description {
                    details: json!({
                        "max_concurrency": self.deps.max_concurrency,
                        "running": running,
                        "claimed_total": state.claimed_total,
                        "boot_id": self.deps.boot_id,
                    }),
                    ..Description::default()
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return Ok(()),
        };
        let job_id = cell
            .get_name()
            .and_then(|n| n.strip_prefix("run:").and_then(|id| id.parse::<i64>().ok()));
        if let Some(job) = job_id.and_then(|id| state.running.remove(&id))
            && let Some(err) = failure
        {
            // A run actor that panicked never reported: the job must not stay running.
            error!(job = job.id, error = %err, "run actor failed");
            fail_job(self.deps.clone(), job, format!("the run failed: {err}"));
        }
        let _ = myself.cast(DispatchMsg::Wake);
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Running agents are left to finish; the next boot requeues what did not.
        myself
            .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(1)))
            .await;
        Ok(())
    }
}
