//! `dispatch` — the job queue's owner and **only writer** of jobs and agent runs. Task actors
//! *ask* it to enqueue or cancel; run actors and the reaper *report* to it (a run's start,
//! its process, its end; a crash arrives as a supervision event; the reaper's verdicts as
//! messages). What becomes of a job is decided by the pure [`job_machine::decide`]; this
//! actor writes the decision, in the order it decides, and tells the task when a job ended.
//!
//! It claims queued jobs FIFO under `max_concurrency` (the store skips paused tasks and allows
//! one active job per task) and starts one `run:<job>` actor per claimed job as its own
//! supervised child. A tick catches anything a missed wake-up left behind. At start, before
//! its first claim, it **adopts** every run a previous boot left whose agent still runs (or
//! ended with its exit recorded) — the same run carries on, launched once — ends every other
//! agent of this service the runner finds, and requeues the jobs it did not adopt. A circuit [`Breaker`]
//! stops claims after too many transient failures in a row; a queue parked on a usage limit
//! is skipped by the store's claim; while the agent program cannot start, the queue is held
//! (`hold.rs`) and no attempt is spent; while the disk watchdog says a filesystem is
//! critically full, no new run starts either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, warn};

use crate::WorkItemId;
use crate::actors::describe::{Describe, Description};
use crate::actors::owned::report_to;
use crate::actors::reaper::Verdict;
use crate::domain::job_machine::{JobEvent, JobRules, RunEnd};
use crate::domain::resilience::{Breaker, RetryPolicy};
use crate::ports::workbench::{AgentRunner, Forge, ProcessControl, RunTrace};
use crate::ports::{Job, JobStore, NewJob, NewRun, ProcessId, Store, StoreError};

mod ask;
mod hold;
mod writes;

pub use ask::{cancel_queued, enqueue, stop_task};
use writes::{recover_previous_boot, text};

/// Registered name of the dispatcher.
pub const DISPATCH: &str = "dispatch";

/// How long a task waits for the dispatcher to enqueue or cancel its job.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Agent processes as the OS sees them (the startup sweep, a crashed run's agent).
    pub processes: Arc<dyn ProcessControl>,
    /// What happens to a failed run's job.
    pub retry: RetryPolicy,
    /// Claims a job gets before a lost or crashed run fails it.
    pub max_attempts: u32,
    /// Transient failures in a row that stop claims (`ORCH_BREAKER_THRESHOLD`).
    pub breaker_threshold: u32,
    /// How long claims stay stopped (`ORCH_BREAKER_COOLDOWN_S`).
    pub breaker_cooldown: Duration,
    /// Retries of a run's infrastructure steps (preparing the worktree, journaling the start,
    /// publishing) before the run reports an infrastructure failure
    /// (`ORCH_INFRA_RETRY_MAX`).
    pub infra_retries: u32,
    /// Pause between those retries (`ORCH_RETRY_DELAY_S`).
    pub infra_retry_delay: Duration,
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

    fn rules(&self) -> JobRules {
        JobRules {
            retry: self.deps.retry.clone(),
            max_attempts: self.deps.max_attempts,
        }
    }
}

/// One claimed job and its run actor.
struct Slot {
    /// The job as claimed.
    job: Job,
    /// Its agent's process, once reported.
    process: Option<ProcessId>,
    /// Its run's start is journaled.
    started: bool,
    /// Its end is decided (reported, crashed or reaped); the slot is freed once the run
    /// actor is gone.
    ended: bool,
    /// Taken over from a previous boot rather than launched by this one.
    adopted: bool,
}

/// Counters of what the dispatcher decided, for `GET /actors`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DispatchCounters {
    /// Jobs claimed since start.
    pub claimed: u64,
    /// Jobs ended (succeeded or failed).
    pub ended: u64,
    /// Jobs put back in the queue.
    pub requeued: u64,
    /// Run actors that crashed before reporting.
    pub crashed: u64,
    /// Runs a previous boot launched that this one took over instead of launching again.
    pub adopted: u64,
}

/// The dispatcher's bookkeeping.
pub struct DispatchState {
    /// Claimed jobs by id, until their run actor is gone.
    running: BTreeMap<i64, Slot>,
    /// What it did.
    counters: DispatchCounters,
    /// The previous boot's leftovers are dealt with; claims may start.
    recovered: bool,
    /// The startup sweep, while it kills a previous boot's agents.
    recovering: Option<AbortOnDropHandle<()>>,
    /// Kills of crashed runs' agents, by job; the job is settled once its agent is gone.
    kills: BTreeMap<i64, AbortOnDropHandle<()>>,
    /// Enqueue writes in flight: each task's enqueue is independent of every other's, so a
    /// burst of them (10,000 new tasks at a boot) shares the store's group commit instead of
    /// waiting for each other; a task waits for its own.
    enqueues: JoinSet<()>,
    /// Stops claims after a streak of transient failures.
    breaker: Breaker,
    /// Set while the agent program cannot start: no claims.
    hold: Option<hold::Hold>,
    /// Set while a filesystem is critically full (the disk watchdog says why): no claims.
    disk: Option<String>,
}

/// Messages the dispatcher handles.
pub enum DispatchMsg {
    /// Task actors, the tick, run ends: look at the queue.
    Wake,
    /// A task actor: enqueue this job; replies with its id (an error names why not).
    /// `None` when the task already has an active job.
    Enqueue(NewJob, RpcReplyPort<Result<Option<i64>, String>>),
    /// A task actor: withdraw the task's queued job; replies with how many were withdrawn.
    CancelQueued(WorkItemId, RpcReplyPort<Result<u32, String>>),
    /// A task actor, on a STOP: cancel the task's queued job and stop its running one — its
    /// run ends (nothing is published) and its agent's process group is killed (SIGTERM,
    /// then SIGKILL after the grace). Replies with how many jobs it cancelled or stopped.
    StopTask(WorkItemId, String, RpcReplyPort<Result<u32, String>>),
    /// Self, from the owned kill of a stopped run's agent.
    StoppedRunKilled {
        /// The job.
        job_id: i64,
        /// Why it was stopped.
        reason: String,
    },
    /// A run actor, before it spawns its agent: journal the run's start.
    RunStarting(NewRun, RpcReplyPort<Result<(), String>>),
    /// A run actor: its agent process exists; journal it.
    RunSpawned {
        /// The job.
        job_id: i64,
        /// The run.
        run_id: String,
        /// The agent's process.
        process: ProcessId,
    },
    /// A run actor: how its run ended.
    RunEnded {
        /// The job as the run knew it.
        job: Job,
        /// The run.
        run_id: String,
        /// How it ended.
        end: RunEnd,
    },
    /// The reaper: its verdict on a running job (whatever it had to kill is killed).
    Reaped {
        /// The job as the reaper read it.
        job: Job,
        /// The verdict.
        verdict: Verdict,
    },
    /// Self, from the owned startup sweep: the previous boot's runs to adopt (its other
    /// agents are ended).
    Recovered(Result<Vec<(Job, RunTrace)>, String>),
    /// Self, from an owned kill: the agent of a crashed run is gone; settle its job.
    CrashedRunKilled {
        /// The job.
        job_id: i64,
        /// The crash.
        error: String,
    },
    /// Self, from the owned probe while the queue is held: whether the agent program can
    /// start now.
    AgentProbed(Result<(), String>),
    /// The disk watchdog, after each reading: why no new agent run may start (a filesystem
    /// is critically full), or `None` when they may.
    Disk(Option<String>),
    /// Anyone: reply with running jobs and counters.
    Describe(RpcReplyPort<Description>),
}

impl Describe for DispatchMsg {
    const KIND: &'static str = "dispatch";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        DispatchMsg::Describe(reply)
    }
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
            counters: DispatchCounters::default(),
            recovered: false,
            recovering: None,
            kills: BTreeMap::new(),
            enqueues: JoinSet::new(),
            breaker: Breaker::new(self.deps.breaker_threshold, self.deps.breaker_cooldown),
            hold: None,
            disk: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(self.deps.tick, || DispatchMsg::Wake);
        let deps = self.deps.clone();
        state.recovering = Some(report_to(&myself, async move {
            DispatchMsg::Recovered(recover_previous_boot(deps).await)
        }));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatchMsg::Wake => self.claim(&myself, state).await,
            DispatchMsg::Enqueue(job, reply) => {
                let jobs = self.deps.jobs.clone();
                let me = myself.clone();
                while state.enqueues.try_join_next().is_some() {}
                state.enqueues.spawn(async move {
                    let what = format!("{} for task {}", job.role, job.work_item_id);
                    let result = match jobs.enqueue_job(job).await {
                        Ok(id) => Ok(Some(id)),
                        Err(StoreError::Duplicate(_)) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = &result {
                        warn!(job = %what, error = %e, "cannot enqueue");
                    }
                    let _ = reply.send(result);
                    let _ = me.cast(DispatchMsg::Wake);
                });
            }
            DispatchMsg::CancelQueued(id, reply) => {
                let _ = reply.send(self.deps.jobs.cancel_queued_jobs(&id).await.map_err(text));
            }
            DispatchMsg::StopTask(id, reason, reply) => {
                let queued = self.deps.jobs.cancel_queued_jobs(&id).await.map_err(text);
                let mut stopped = 0;
                let running: Vec<i64> = state
                    .running
                    .iter()
                    .filter(|(_, slot)| slot.job.work_item_id == id && !slot.ended)
                    .map(|(job_id, _)| *job_id)
                    .collect();
                for job_id in running {
                    stopped += 1;
                    let Some(slot) = state.running.get_mut(&job_id) else {
                        continue;
                    };
                    slot.ended = true;
                    let process = slot.process;
                    // The run ends first: nothing more of it is published.
                    if let Some(run) = ractor::registry::where_is(format!("run:{job_id}")) {
                        run.stop(Some("its task was stopped".into()));
                    }
                    let processes = self.deps.processes.clone();
                    let reason = reason.clone();
                    state.kills.insert(
                        job_id,
                        report_to(&myself, async move {
                            if let Some(process) = process {
                                processes.kill_group(&process).await;
                            }
                            DispatchMsg::StoppedRunKilled { job_id, reason }
                        }),
                    );
                    warn!(job = job_id, task = %id, "stopping the task's running agent");
                }
                let _ = reply.send(queued.map(|n| n + stopped));
            }
            DispatchMsg::StoppedRunKilled { job_id, reason } => {
                state.kills.remove(&job_id);
                if let Some(job) = state.running.get(&job_id).map(|s| s.job.clone()) {
                    let run_id = job.run_id.clone().unwrap_or_default();
                    self.settle(state, &job, &run_id, JobEvent::Stopped { reason })
                        .await;
                    state.running.remove(&job_id);
                }
                self.claim(&myself, state).await;
            }
            DispatchMsg::RunStarting(run, reply) => {
                let job_id = run.job_id;
                let result = self.deps.jobs.start_run(run).await.map_err(text);
                if result.is_ok()
                    && let Some(slot) = state.running.get_mut(&job_id)
                {
                    slot.started = true;
                }
                let _ = reply.send(result);
            }
            DispatchMsg::RunSpawned {
                job_id,
                run_id,
                process,
            } => {
                if let Some(slot) = state.running.get_mut(&job_id) {
                    slot.process = Some(process);
                }
                if let Err(e) = self
                    .deps
                    .jobs
                    .set_job_process(job_id, &run_id, process)
                    .await
                {
                    warn!(job = job_id, error = %e, "cannot journal the agent's process");
                }
            }
            DispatchMsg::RunEnded { job, run_id, end } => {
                self.settle(state, &job, &run_id, JobEvent::RunEnded(end))
                    .await;
                self.claim(&myself, state).await;
            }
            DispatchMsg::Reaped { job, verdict } => {
                let run_id = job.run_id.clone().unwrap_or_default();
                self.settle(state, &job, &run_id, JobEvent::Reaped(verdict))
                    .await;
            }
            DispatchMsg::Recovered(result) => {
                state.recovering = None;
                match result {
                    Ok(adopt) => self.adopt_and_requeue(&myself, state, adopt).await?,
                    // Failing makes the supervisor restart us, which retries the sweep.
                    Err(e) => return Err(e.into()),
                }
            }
            DispatchMsg::CrashedRunKilled { job_id, error } => {
                state.kills.remove(&job_id);
                if let Some(job) = state.running.get(&job_id).map(|s| s.job.clone()) {
                    let run_id = job.run_id.clone().unwrap_or_default();
                    self.settle(state, &job, &run_id, JobEvent::RunCrashed { error })
                        .await;
                    state.running.remove(&job_id);
                }
                self.claim(&myself, state).await;
            }
            DispatchMsg::Disk(pause) => {
                let resumed = state.disk.is_some() && pause.is_none();
                if pause.is_some() && state.disk.is_none() {
                    warn!(reason = ?pause, "a filesystem is critically full; no new agent run starts");
                }
                state.disk = pause;
                if resumed {
                    tracing::info!("the disk has room again; claims resume");
                    self.claim(&myself, state).await;
                }
            }
            DispatchMsg::AgentProbed(result) => {
                if self.probed(state, result) {
                    self.claim(&myself, state).await;
                }
            }
            DispatchMsg::Describe(reply) => {
                let running: Vec<_> = state
                    .running
                    .values()
                    .map(|s| {
                        let j = &s.job;
                        json!({"job": j.id, "task": j.work_item_id, "role": j.role, "stage": j.stage,
                               "pid": s.process.map(|p| p.pid), "ended": s.ended, "adopted": s.adopted})
                    })
                    .collect();
                let _ = reply.send(Description {
                    details: json!({
                        "max_concurrency": self.deps.max_concurrency,
                        "running": running,
                        "claimed_total": state.counters.claimed,
                        "counters": state.counters,
                        "boot_id": self.deps.boot_id,
                        "recovered": state.recovered,
                        "breaker": state.breaker.view(Instant::now()),
                        "agent_hold": state.hold.as_ref().map(|h| json!({"reason": h.reason, "since": h.since})),
                        "disk_pause": state.disk,
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
        let Some(job_id) = job_id else {
            return Ok(());
        };
        match (state.running.get(&job_id), failure) {
            // A run that failed before its end was decided: its agent must be gone before
            // the job goes back to the queue, so it can never run twice at once.
            (Some(slot), Some(error)) if !slot.ended => {
                error!(job = job_id, %error, "run actor failed");
                state.counters.crashed += 1;
                let process = slot.process;
                let processes = self.deps.processes.clone();
                let me = myself.clone();
                let kill = tokio::spawn(async move {
                    if let Some(process) = process {
                        processes.kill_group(&process).await;
                    }
                    let _ = me.cast(DispatchMsg::CrashedRunKilled { job_id, error });
                });
                if let Some(slot) = state.running.get_mut(&job_id) {
                    slot.ended = true;
                }
                state.kills.insert(job_id, AbortOnDropHandle::new(kill));
            }
            // Its slot is held until the crashed run's job is settled.
            _ if state.kills.contains_key(&job_id) => {}
            // A run stopped before it reported (the reaper's backstop, a shutdown): the
            // reaper settles its job from what is journaled.
            _ => {
                state.running.remove(&job_id);
                self.claim(&myself, state).await;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.recovering = None;
        state.kills.clear();
        // Each run ends its own work as it stops: its agent is left running under its shim for
        // the next boot to adopt (`ORCH_SHUTDOWN_AGENTS=adopt`) or its group is killed and the
        // next boot requeues the job (`stop`).
        myself
            .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
            .await;
        Ok(())
    }
}
