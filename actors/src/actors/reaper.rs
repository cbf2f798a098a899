//! `reaper` — the job queue's safety net. Every tick it compares the jobs the store says are
//! running (under this boot) with the live `run:<job>` actors and agent processes:
//!
//! - a run whose actor is alive is left alone, unless it has been running past the
//!   **backstop** (longer than any role's timeout plus the grace period): then its process
//!   group is killed, its actor stopped, and the job failed;
//! - a job whose actor is gone but whose run outcome was journaled is **finalized** from that
//!   outcome (the actor died between journaling and settling);
//! - a job with neither actor nor outcome for `grace_ticks` ticks in a row is **requeued**
//!   (the claim's attempt stays counted) or, once out of attempts, failed.
//!
//! Each verdict comes from [`judge`], a pure function; the sweep itself runs in work the
//! actor owns, off its handler. The reaper writes nothing: it kills what must not keep
//! running and *reports* each verdict to `dispatch`, the queue's only writer, which turns it
//! into a change (the store guards every change by job and run id, so a run that ends while
//! it is being reaped is never settled twice).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tracing::{info, warn};

use tokio_util::task::AbortOnDropHandle;

use crate::actors::describe::{Describe, Description};
use crate::actors::dispatch::{DISPATCH, DispatchMsg};
use crate::actors::owned::report_to;
use crate::actors::run::run_name;
use crate::ports::workbench::ProcessControl;
use crate::ports::{JobStore, RunOutcome, RunningJob};

/// Registered name of the reaper.
pub const REAPER: &str = "reaper";

/// What the reaper works with.
pub struct ReaperDeps {
    /// The queue.
    pub jobs: Arc<dyn JobStore>,
    /// Agent processes as the OS sees them.
    pub processes: Arc<dyn ProcessControl>,
    /// This boot; jobs of other boots are the dispatcher's startup sweep's business.
    pub boot_id: String,
    /// Interval between sweeps (`ORCH_REAPER_TICK_S`).
    pub tick: Duration,
    /// Sweeps a job may look orphaned before it is requeued (`ORCH_REAPER_GRACE_TICKS`).
    pub grace_ticks: u32,
    /// Longest a run may take, whatever it is doing.
    pub backstop: Duration,
    /// Claims a job gets before a lost run fails it instead of requeueing it.
    pub max_attempts: u32,
}

/// What to do with one running job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its run is alive and within bounds, or it has not looked orphaned long enough.
    Leave,
    /// Past the backstop: kill its process group, stop its actor, fail it.
    Kill {
        /// The failure reason.
        reason: String,
    },
    /// Its actor is gone but the run's outcome was journaled: settle the job with it.
    Finalize {
        /// Whether the run succeeded.
        success: bool,
        /// The failure reason (empty on success).
        reason: String,
    },
    /// Orphaned for the whole grace period: back to the queue.
    Requeue,
    /// Orphaned for the whole grace period and out of attempts.
    Fail {
        /// The failure reason.
        reason: String,
    },
}

/// Judges one running job. `misses` is how many sweeps in a row (this one included) found
/// it without an actor and without an outcome.
pub fn judge(
    running: &RunningJob,
    actor_alive: bool,
    misses: u32,
    deps_backstop: Duration,
    grace_ticks: u32,
    max_attempts: u32,
) -> Verdict {
    if running.running_s > deps_backstop.as_secs_f64() {
        return Verdict::Kill {
            reason: format!(
                "the run exceeded the backstop of {} s (running for {:.0} s) and was killed",
                deps_backstop.as_secs(),
                running.running_s
            ),
        };
    }
    if actor_alive {
        return Verdict::Leave;
    }
    if let Some(outcome) = running.run_outcome {
        let success = outcome == RunOutcome::Succeeded;
        let reason = if success {
            String::new()
        } else {
            running
                .run_reason
                .clone()
                .unwrap_or_else(|| format!("the run ended with outcome {outcome}"))
        };
        return Verdict::Finalize { success, reason };
    }
    if misses < grace_ticks {
        return Verdict::Leave;
    }
    if running.job.attempts >= max_attempts {
        return Verdict::Fail {
            reason: format!(
                "its run vanished without an outcome, and the job is out of attempts ({} of {max_attempts})",
                running.job.attempts
            ),
        };
    }
    Verdict::Requeue
}

/// The reaper actor.
pub struct Reaper {
    deps: Arc<ReaperDeps>,
}

impl Reaper {
    /// A reaper working with `deps`.
    pub fn new(deps: Arc<ReaperDeps>) -> Self {
        Self { deps }
    }
}

/// Counters of what the reaper did, for `GET /queue`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReaperCounters {
    /// Sweeps completed.
    pub sweeps: u64,
    /// Jobs settled from a journaled outcome.
    pub finalized: u64,
    /// Orphaned jobs put back in the queue.
    pub requeued: u64,
    /// Orphaned jobs failed for want of attempts.
    pub failed: u64,
    /// Runs killed at the backstop.
    pub killed: u64,
    /// The last sweep's error, if it failed.
    pub last_error: Option<String>,
}

/// The reaper's bookkeeping.
pub struct ReaperState {
    /// Consecutive orphaned sightings per job.
    misses: BTreeMap<i64, u32>,
    /// The sweep in progress, owned: it ends with the actor.
    sweeping: Option<AbortOnDropHandle<()>>,
    counters: ReaperCounters,
}

/// Messages the reaper handles.
pub enum ReaperMsg {
    /// The interval: sweep.
    Tick,
    /// Self, from the spawned sweep.
    Swept {
        /// Updated orphan sightings.
        misses: BTreeMap<i64, u32>,
        /// What it did, or why it could not look.
        done: Result<ReaperCounters, String>,
    },
    /// Anyone: reply with counters.
    Describe(RpcReplyPort<Description>),
}

impl Describe for ReaperMsg {
    const KIND: &'static str = "reaper";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        ReaperMsg::Describe(reply)
    }
}

/// One sweep over the running jobs; returns the new orphan sightings and what it did.
async fn sweep(
    deps: &ReaperDeps,
    mut misses: BTreeMap<i64, u32>,
) -> (BTreeMap<i64, u32>, Result<ReaperCounters, String>) {
    let running = match deps.jobs.running_jobs().await {
        Ok(running) => running,
        Err(e) => return (misses, Err(format!("cannot list running jobs: {e}"))),
    };
    let mut done = ReaperCounters::default();
    let mine: Vec<_> = running
        .into_iter()
        .filter(|r| r.boot_id.as_deref() == Some(deps.boot_id.as_str()))
        .collect();
    misses.retain(|id, _| mine.iter().any(|r| r.job.id == *id));
    for r in mine {
        let job = &r.job;
        let actor = ractor::registry::where_is(run_name(job.id));
        let orphaned = actor.is_none() && r.run_outcome.is_none();
        let seen = if orphaned {
            let n = misses.entry(job.id).or_insert(0);
            *n += 1;
            *n
        } else {
            misses.remove(&job.id);
            0
        };
        let verdict = judge(
            &r,
            actor.is_some(),
            seen,
            deps.backstop,
            deps.grace_ticks,
            deps.max_attempts,
        );
        // Whatever is not left alone or settled from its outcome must not keep running;
        // `kill_group` only touches the process if it still is the one that was started.
        if matches!(
            verdict,
            Verdict::Kill { .. } | Verdict::Requeue | Verdict::Fail { .. }
        ) && let Some(process) = r.process
        {
            deps.processes.kill_group(&process).await;
        }
        match &verdict {
            Verdict::Leave => continue,
            Verdict::Kill { reason } => {
                if let Some(actor) = actor {
                    actor.stop(Some("killed by the reaper's backstop".into()));
                }
                warn!(job = job.id, task = %job.work_item_id, %reason, "reaper killed a run");
                done.killed += 1;
            }
            Verdict::Finalize { .. } => done.finalized += 1,
            Verdict::Requeue => {
                info!(job = job.id, task = %job.work_item_id, "reaper found an orphaned job; requeueing it");
                done.requeued += 1;
                misses.remove(&job.id);
            }
            Verdict::Fail { .. } => {
                done.failed += 1;
                misses.remove(&job.id);
            }
        }
        match ractor::registry::where_is(DISPATCH) {
            Some(dispatch) => {
                let _ = dispatch.send_message(DispatchMsg::Reaped {
                    job: job.clone(),
                    verdict,
                });
            }
            None => warn!(
                job = job.id,
                "dispatch is not running; the verdict waits for the next sweep"
            ),
        }
    }
    (misses, Ok(done))
}

impl Actor for Reaper {
    type Msg = ReaperMsg;
    type State = ReaperState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ReaperState {
            misses: BTreeMap::new(),
            sweeping: None,
            counters: ReaperCounters::default(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(self.deps.tick, || ReaperMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReaperMsg::Tick => {
                if state.sweeping.is_some() {
                    return Ok(());
                }
                let deps = self.deps.clone();
                let misses = state.misses.clone();
                state.sweeping = Some(report_to(&myself, async move {
                    let (misses, done) = sweep(&deps, misses).await;
                    ReaperMsg::Swept { misses, done }
                }));
            }
            ReaperMsg::Swept { misses, done } => {
                state.sweeping = None;
                state.misses = misses;
                let c = &mut state.counters;
                c.sweeps += 1;
                match done {
                    Ok(d) => {
                        c.finalized += d.finalized;
                        c.requeued += d.requeued;
                        c.failed += d.failed;
                        c.killed += d.killed;
                        c.last_error = None;
                    }
                    Err(e) => {
                        warn!(error = %e, "reaper sweep failed; will retry on the next tick");
                        c.last_error = Some(e);
                    }
                }
            }
            ReaperMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    details: json!({
                        "tick_s": self.deps.tick.as_secs_f64(),
                        "grace_ticks": self.deps.grace_ticks,
                        "backstop_s": self.deps.backstop.as_secs(),
                        "watching": state.misses,
                        "counters": state.counters,
                    }),
                    ..Description::default()
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Job, JobStatus};
    use crate::{Stage, WorkItemId};

    fn running(attempts: u32, running_s: f64, outcome: Option<RunOutcome>) -> RunningJob {
        RunningJob {
            job: Job {
                id: 7,
                work_item_id: WorkItemId::parse("ORCH-7").unwrap(),
                stage: Stage::Analysis,
                role: crate::Role::Analyst,
                status: JobStatus::Running,
                attempts,
                task_text: String::new(),
                run_id: Some("run-7-1-b".into()),
                transient_attempts: 0,
            },
            boot_id: Some("b".into()),
            process: None,
            running_s,
            run_outcome: outcome,
            run_reason: outcome
                .filter(|o| *o != RunOutcome::Succeeded)
                .map(|o| format!("{o}!")),
        }
    }

    const BACKSTOP: Duration = Duration::from_secs(100);

    #[test]
    fn a_live_run_is_left_alone_until_the_backstop() {
        let r = running(1, 50.0, None);
        assert_eq!(judge(&r, true, 0, BACKSTOP, 3, 3), Verdict::Leave);
        let r = running(1, 100.5, None);
        assert!(matches!(
            judge(&r, true, 0, BACKSTOP, 3, 3),
            Verdict::Kill { reason } if reason.contains("backstop of 100 s")
        ));
    }

    #[test]
    fn a_journaled_outcome_finalizes_a_job_whose_actor_is_gone() {
        let ok = running(1, 5.0, Some(RunOutcome::Succeeded));
        assert_eq!(
            judge(&ok, false, 0, BACKSTOP, 3, 3),
            Verdict::Finalize {
                success: true,
                reason: String::new()
            }
        );
        let bad = running(1, 5.0, Some(RunOutcome::Failed));
        assert_eq!(
            judge(&bad, false, 0, BACKSTOP, 3, 3),
            Verdict::Finalize {
                success: false,
                reason: "failed!".into()
            }
        );
    }

    #[test]
    fn an_orphan_is_requeued_after_the_grace_ticks_or_failed_out_of_attempts() {
        let r = running(1, 5.0, None);
        assert_eq!(judge(&r, false, 1, BACKSTOP, 3, 3), Verdict::Leave);
        assert_eq!(judge(&r, false, 2, BACKSTOP, 3, 3), Verdict::Leave);
        assert_eq!(judge(&r, false, 3, BACKSTOP, 3, 3), Verdict::Requeue);
        let spent = running(3, 5.0, None);
        assert!(matches!(
            judge(&spent, false, 3, BACKSTOP, 3, 3),
            Verdict::Fail { reason } if reason.contains("out of attempts (3 of 3)")
        ));
    }
}
