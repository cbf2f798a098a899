//! `dispatch` — the job queue's only consumer. It claims queued jobs FIFO under
//! `max_concurrency` (the store skips paused tasks and allows one active job per task) and
//! starts one `run:<job>` actor per claimed job as its own supervised child. A tick catches
//! anything a missed wake-up left behind. At start, before its first claim, it kills what a
//! previous boot left running (by process group, identified by pid and start time) and
//! requeues those jobs. A circuit [`Breaker`] stops claims after too many transient failures
//! in a row; a queue parked on a usage limit is skipped by the store's claim.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::json;
use tracing::{error, info, warn};

use crate::describe::{Describe, Description};
use crate::ports::{Job, JobStore, Store};
use crate::resilience::{Breaker, RetryPolicy};
use crate::run::{RunActor, end_job, run_name};
use crate::workbench::{AgentRunner, Forge, ProcessControl};

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
    /// Agent processes as the OS sees them (the startup sweep).
    pub processes: Arc<dyn ProcessControl>,
    /// What happens to a failed run's job.
    pub retry: RetryPolicy,
    /// Transient failures in a row that stop claims (`ORCH_BREAKER_THRESHOLD`).
    pub breaker_threshold: u32,
    /// How long claims stay stopped (`ORCH_BREAKER_COOLDOWN_S`).
    pub breaker_cooldown: Duration,
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
    /// The previous boot's leftovers are dealt with; claims may start.
    recovered: bool,
    /// Stops claims after a streak of transient failures.
    breaker: Breaker,
}

/// Messages the dispatcher handles.
pub enum DispatchMsg {
    /// Task actors, the tick, run ends: look at the queue.
    Wake,
    /// Self, from the spawned claim: these jobs are now running and need run actors.
    Claimed(Result<Vec<Job>, String>),
    /// Anyone: reply with running jobs and counters.
    Describe(RpcReplyPort<Description>),
    /// Self, from the spawned startup sweep.
    Recovered(Result<u32, String>),
    /// A run actor: its run ended (transiently failed or not), for the breaker.
    RunEnded {
        /// The run failed transiently and its job went back to the queue.
        transient: bool,
    },
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
        let run_id = job.run_id.clone().unwrap_or_default();
        end_job(deps.jobs.as_ref(), &job, &run_id, false, reason).await;
    });
}

/// Kills every agent process a previous boot left running (by process group, and only if
/// the pid still belongs to the process that was started), then requeues those jobs.
/// Killing first means the requeued job can never run twice at once.
async fn recover(deps: &DispatchDeps) -> Result<u32, String> {
    let running = deps
        .jobs
        .running_jobs()
        .await
        .map_err(|e| format!("cannot list running jobs: {e}"))?;
    for left in running
        .iter()
        .filter(|r| r.boot_id.as_deref() != Some(deps.boot_id.as_str()))
    {
        if let Some(process) = left.process
            && deps.processes.kill_group(&process).await
        {
            warn!(
                job = left.job.id,
                pid = process.pid,
                "killed an agent a previous boot left running"
            );
        }
    }
    deps.jobs
        .requeue_stale_jobs(&deps.boot_id)
        .await
        .map_err(|e| format!("cannot requeue jobs of a previous boot: {e}"))
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
        Ok(DispatchState {
            running: BTreeMap::new(),
            claiming: false,
            again: false,
            claimed_total: 0,
            recovered: false,
            breaker: Breaker::new(self.deps.breaker_threshold, self.deps.breaker_cooldown),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(self.deps.tick, || DispatchMsg::Wake);
        let deps = self.deps.clone();
        tokio::spawn(async move {
            let _ = myself.cast(DispatchMsg::Recovered(recover(&deps).await));
        });
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
                if !state.recovered
                    || state.running.len() >= self.deps.max_concurrency
                    || state.breaker.is_open(Instant::now())
                {
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
            DispatchMsg::Recovered(result) => match result {
                Ok(requeued) => {
                    if requeued > 0 {
                        info!(requeued, "requeued jobs left running by a previous boot");
                    }
                    state.recovered = true;
                    let _ = myself.cast(DispatchMsg::Wake);
                }
                // Failing makes the supervisor restart us, which retries the sweep.
                Err(e) => return Err(e.into()),
            },
            DispatchMsg::RunEnded { transient } => {
                let now = Instant::now();
                if !transient {
                    state.breaker.record_other();
                } else if state.breaker.record_transient(now) {
                    warn!(
                        cooldown_s = self.deps.breaker_cooldown.as_secs(),
                        "circuit breaker opened: too many transient agent failures in a row; claims paused"
                    );
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
                        "recovered": state.recovered,
                        "breaker": state.breaker.view(Instant::now()),
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
