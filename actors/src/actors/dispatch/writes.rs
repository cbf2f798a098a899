//! How the dispatcher carries out what it decides: each job event goes through the pure
//! [`job_machine::decide`] and its decision is written in order (the run's journal, the park,
//! the job's change, the breaker); claims start run actors; the startup sweep kills what a
//! previous boot left running.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ractor::{Actor, ActorRef};
use tracing::{info, warn};

use super::{Dispatch, DispatchDeps, DispatchMsg, DispatchState, Slot};
use crate::actors::run::{RunActor, RunStart, run_name};
use crate::actors::task::TaskMsg;
use crate::domain::job_machine::{self, BreakerNote, JobChange, JobEvent, JobOutcome};
use crate::ports::workbench::RunTrace;
use crate::ports::{Job, StoreError};

/// Deals with what a previous boot left running, before the first claim: every run whose
/// agent is still running, or ended with its exit recorded, or never started, is returned to
/// be **adopted** (the same run carries on, launched once); every other agent of this service the runner
/// finds — one it cannot tie to a running job — is ended. The jobs not adopted are requeued
/// afterwards, so a requeued job can never run beside its old agent.
pub(super) async fn recover_previous_boot(
    deps: Arc<DispatchDeps>,
) -> Result<Vec<(Job, RunTrace)>, String> {
    let running = deps
        .jobs
        .running_jobs()
        .await
        .map_err(|e| format!("cannot list running jobs: {e}"))?;
    let mut adopt = Vec::new();
    // A dispatcher restarted within a boot finds this boot's runs still running: they are
    // the reaper's business, never strays.
    let mut keep = Vec::new();
    for left in running {
        let Some(run_id) = left.job.run_id.clone() else {
            continue;
        };
        if left.boot_id.as_deref() == Some(deps.boot_id.as_str()) {
            keep.push(run_id);
            continue;
        }
        match deps.runner.trace(&run_id) {
            trace @ (RunTrace::Running | RunTrace::Ended | RunTrace::Unstarted) => {
                keep.push(run_id);
                adopt.push((left.job, trace));
            }
            RunTrace::Gone => {}
        }
    }
    for ended in deps.runner.end_strays(&keep).await {
        warn!(%ended, "ended an agent a previous boot left running that no job can adopt");
    }
    Ok(adopt)
}

/// Tells the job's task actor (by name) that its job ended.
fn tell_task(job: &Job, outcome: JobOutcome) {
    if let Some(task) = ractor::registry::where_is(job.work_item_id.actor_name()) {
        let _ = task.send_message(TaskMsg::JobFinished {
            job_id: job.id,
            stage: job.stage,
            outcome,
        });
    }
}

/// A store error as the text a reply carries.
pub(super) fn text(e: StoreError) -> String {
    e.to_string()
}

impl Dispatch {
    /// Decides `event` for `job` (run `run_id`) and writes the decision.
    pub(super) async fn settle(
        &self,
        state: &mut DispatchState,
        job: &Job,
        run_id: &str,
        event: JobEvent,
    ) {
        let started = state.running.get(&job.id).is_none_or(|s| s.started);
        if let Some(slot) = state.running.get_mut(&job.id) {
            slot.ended = true;
        }
        let decision = job_machine::decide(job, event, &self.rules(), SystemTime::now());
        if let Some(finish) = decision.run.filter(|_| started)
            && let Err(e) = self.deps.jobs.finish_run(run_id, finish).await
        {
            warn!(run = %run_id, error = %e, "cannot journal the end of the run");
        }
        if let Some((until, reason)) = &decision.park
            && let Err(e) = self.deps.jobs.park_queue(*until, reason).await
        {
            warn!(job = job.id, error = %e, "cannot park the queue");
        }
        if let Some(reason) = decision.hold {
            self.hold(state, job, reason);
        }
        match decision.change {
            None => {}
            Some(JobChange::Finish { outcome }) => self.finish(state, job, run_id, outcome).await,
            Some(JobChange::Requeue { how, reason }) => {
                match self
                    .deps
                    .jobs
                    .requeue_job(job.id, run_id, how.clone(), &reason)
                    .await
                {
                    Ok(true) => {
                        info!(job = job.id, task = %job.work_item_id, ?how, %reason, "job requeued");
                        state.counters.requeued += 1;
                    }
                    Ok(false) => info!(job = job.id, "the job was already settled"),
                    Err(e) => {
                        warn!(job = job.id, error = %e, "cannot requeue the job; failing it");
                        let reason = format!("{reason}; and it could not be requeued: {e}");
                        self.finish(state, job, run_id, JobOutcome::Failed { reason })
                            .await;
                    }
                }
            }
        }
        match decision.breaker {
            Some(BreakerNote::Transient) if state.breaker.record_transient(Instant::now()) => {
                warn!(
                    cooldown_s = self.deps.breaker_cooldown.as_secs(),
                    "circuit breaker opened: too many transient agent failures in a row; claims paused"
                );
            }
            Some(BreakerNote::Transient) => {}
            Some(BreakerNote::Other) => state.breaker.record_other(),
            None => {}
        }
    }

    /// Ends the job; the task hears of it only if this write ended it.
    pub(super) async fn finish(
        &self,
        state: &mut DispatchState,
        job: &Job,
        run_id: &str,
        outcome: JobOutcome,
    ) {
        let (status, error) = JobChange::finish_status(&outcome);
        match self
            .deps
            .jobs
            .finish_job(job.id, run_id, status, error.as_deref())
            .await
        {
            Ok(true) => {
                info!(job = job.id, task = %job.work_item_id, role = %job.role, ?outcome, "job ended");
                state.counters.ended += 1;
                tell_task(job, outcome);
            }
            Ok(false) => info!(job = job.id, "the job was already settled"),
            Err(e) => warn!(job = job.id, error = %e, "cannot end the job"),
        }
    }

    /// Claims what the free slots allow and starts a run actor for each.
    pub(super) async fn claim(&self, myself: &ActorRef<DispatchMsg>, state: &mut DispatchState) {
        if state.hold.is_some() {
            self.probe(myself, state);
            return;
        }
        if state.disk.is_some() {
            return;
        }
        if !state.recovered
            || state.running.len() >= self.deps.max_concurrency
            || state.breaker.is_open(Instant::now())
        {
            return;
        }
        // Ended runs whose actor is still stopping hold their slot in memory but no longer
        // count as running in the store.
        let stopping = state.running.values().filter(|s| s.ended).count();
        let limit = self.deps.max_concurrency - stopping;
        let claimed = match self.deps.jobs.claim_jobs(limit, &self.deps.boot_id).await {
            Ok(claimed) => claimed,
            Err(e) => {
                warn!(error = %e, "claiming jobs failed; will retry on the next tick");
                return;
            }
        };
        for job in claimed {
            state.counters.claimed += 1;
            info!(job = job.id, task = %job.work_item_id, role = %job.role, stage = %job.stage, "starting run");
            self.start_run(myself, state, job, None).await;
        }
    }

    /// Starts the run actor of `job` — a fresh claim, or a run a previous boot left (`taken`:
    /// what that boot left of it) — as a supervised child, holding its slot.
    pub(super) async fn start_run(
        &self,
        myself: &ActorRef<DispatchMsg>,
        state: &mut DispatchState,
        job: Job,
        taken: Option<RunTrace>,
    ) {
        let adopted = taken.is_some();
        let run_id = job.run_id.clone().unwrap_or_default();
        state.running.insert(
            job.id,
            Slot {
                job: job.clone(),
                process: None,
                // An adopted run's start was journaled by the boot that launched it.
                started: matches!(taken, Some(RunTrace::Running | RunTrace::Ended)),
                ended: false,
                adopted,
            },
        );
        let spawned = Actor::spawn_linked(
            Some(run_name(job.id)),
            RunActor::new(self.deps.clone()),
            RunStart {
                job: job.clone(),
                // An agent to take over; one that never started is launched now, its start
                // journaled (again, or for the first time if the boot died before that).
                adopted: matches!(taken, Some(RunTrace::Running | RunTrace::Ended)),
                journaled: matches!(taken, Some(RunTrace::Running | RunTrace::Ended)),
            },
            myself.get_cell(),
        )
        .await;
        if let Err(e) = spawned {
            state.running.remove(&job.id);
            let reason = format!("cannot start the run: {e}");
            self.settle(state, &job, &run_id, JobEvent::CannotStart { reason })
                .await;
        }
    }

    /// Takes over the runs a previous boot left that the startup sweep found adoptable,
    /// then requeues that boot's other jobs and starts claiming.
    pub(super) async fn adopt_and_requeue(
        &self,
        myself: &ActorRef<DispatchMsg>,
        state: &mut DispatchState,
        adopt: Vec<(Job, RunTrace)>,
    ) -> Result<(), String> {
        for (job, trace) in adopt {
            let run_id = job.run_id.clone().unwrap_or_default();
            match self
                .deps
                .jobs
                .adopt_job(job.id, &run_id, &self.deps.boot_id)
                .await
            {
                Ok(true) => {
                    info!(job = job.id, task = %job.work_item_id, role = %job.role, run = %run_id, "adopted a run a previous boot left running");
                    state.counters.adopted += 1;
                    self.start_run(myself, state, job, Some(trace)).await;
                }
                Ok(false) => {}
                // Requeued below; its agent, still alive, is ended before the job's next
                // agent may start in that worktree.
                Err(e) => {
                    warn!(job = job.id, error = %e, "cannot adopt the run; requeueing its job")
                }
            }
        }
        let requeued = self
            .deps
            .jobs
            .requeue_stale_jobs(&self.deps.boot_id)
            .await
            .map_err(|e| format!("cannot requeue jobs of a previous boot: {e}"))?;
        if requeued > 0 {
            info!(requeued, "requeued jobs left running by a previous boot");
        }
        state.recovered = true;
        self.claim(myself, state).await;
        Ok(())
    }
}
