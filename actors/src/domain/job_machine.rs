//! What becomes of a job, as a pure function: `decide(job, event, rules, now)` returns the
//! journal entry to close for its run, the change to write to the job, the park to impose
//! and what the breaker hears. `dispatch`, the queue's only writer, carries the decision
//! out; run actors and the reaper only *report* (a run's end, a crash, a verdict). Retry
//! planning ([`crate::domain::resilience`]) and the reaper's judgement ([`crate::actors::reaper::judge`])
//! feed in here, so every way a job ends is decided in one place and tested without actors.

use std::time::SystemTime;

use crate::actors::reaper::Verdict;
use crate::domain::resilience::{FailureClass, Plan, RetryPolicy};
use crate::ports::{Job, JobStatus, Requeue, RunFinish, RunOutcome};

/// How a run ended, as its run actor reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEnd {
    /// The agent succeeded and its work is published.
    Succeeded {
        /// What to journal about the run.
        finish: Box<RunFinish>,
    },
    /// The agent failed.
    Failed {
        /// What kind of failure (transient, usage limit, permanent).
        class: FailureClass,
        /// Why, for people.
        reason: String,
        /// What to journal about the run; `None` when it never reached the journal.
        finish: Option<Box<RunFinish>>,
    },
    /// The run could not do its work for infrastructure reasons (the worktree could not be
    /// prepared, or a finished run's work could not be published) and its own retry budget
    /// is spent. Not the agent's fault: no attempt is spent on it.
    Infrastructure {
        /// What failed, last.
        reason: String,
        /// What to journal about the run, when the agent ran.
        finish: Option<Box<RunFinish>>,
    },
}

/// Something that happened to a running job.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    /// Its run actor reported how the run ended.
    RunEnded(RunEnd),
    /// Its run actor failed (a panic, an error) before it reported.
    RunCrashed {
        /// The failure, as supervision reported it.
        error: String,
    },
    /// Its run actor could not be started.
    CannotStart {
        /// Why.
        reason: String,
    },
    /// The reaper judged it.
    Reaped(Verdict),
    /// Its task was stopped by a human: its agent's process group was killed and its work
    /// is not published.
    Stopped {
        /// Why, as the human said.
        reason: String,
    },
}

/// What the task is told when its job ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The agent did its work and the work is published.
    Succeeded,
    /// The agent failed: the stage's attempt is spent.
    Failed {
        /// Why.
        reason: String,
    },
    /// Infrastructure failed around the agent: nothing is spent, the task is blocked with an
    /// `infrastructure:` reason and a human is alerted.
    Infrastructure {
        /// What failed.
        reason: String,
    },
}

/// The change to write to the job.
#[derive(Clone, Debug, PartialEq)]
pub enum JobChange {
    /// End it; the task hears `outcome` if this write is the one that ended it.
    Finish {
        /// How it ended, for the task.
        outcome: JobOutcome,
    },
    /// Put it back in the queue.
    Requeue {
        /// How (the transient budget, the park, or a lost run).
        how: Requeue,
        /// Why, for the journal.
        reason: String,
    },
}

impl JobChange {
    /// The stored status and error of a finish.
    pub fn finish_status(outcome: &JobOutcome) -> (JobStatus, Option<String>) {
        match outcome {
            JobOutcome::Succeeded => (JobStatus::Succeeded, None),
            JobOutcome::Failed { reason } => (JobStatus::Failed, Some(reason.clone())),
            JobOutcome::Infrastructure { reason } => {
                (JobStatus::Failed, Some(format!("infrastructure: {reason}")))
            }
        }
    }
}

/// What the breaker hears about a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerNote {
    /// A transient failure (a streak of them opens the breaker).
    Transient,
    /// Anything else (closes the streak).
    Other,
}

/// What to do about one event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobDecision {
    /// Journal the run's end (its outcome and reason are set here).
    pub run: Option<RunFinish>,
    /// Park the whole queue until this time (seconds since the epoch), for this reason.
    pub park: Option<(i64, String)>,
    /// Hold the whole queue until the agent program can be started, for this reason.
    pub hold: Option<String>,
    /// The change to write to the job; `None` leaves it as it is.
    pub change: Option<JobChange>,
    /// For the breaker; `None` when the event says nothing about the agent.
    pub breaker: Option<BreakerNote>,
}

/// The knobs the job machine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRules {
    /// How failed runs are retried.
    pub retry: RetryPolicy,
    /// Claims a job gets before a lost or crashed run fails it instead of requeueing it.
    pub max_attempts: u32,
}

/// Decides what `event` means for running job `job` at wall-clock time `now`.
pub fn decide(job: &Job, event: JobEvent, rules: &JobRules, now: SystemTime) -> JobDecision {
    match event {
        JobEvent::RunEnded(RunEnd::Succeeded { mut finish }) => {
            finish.outcome = RunOutcome::Succeeded;
            finish.reason = None;
            JobDecision {
                run: Some(*finish),
                change: Some(finish_with(JobOutcome::Succeeded)),
                breaker: Some(BreakerNote::Other),
                ..JobDecision::default()
            }
        }
        JobEvent::RunEnded(RunEnd::Failed {
            class,
            reason,
            finish,
        }) => failed(job, class, reason, finish, rules, now),
        JobEvent::RunEnded(RunEnd::Infrastructure { reason, finish }) => JobDecision {
            run: finish.map(|mut f| {
                f.outcome = RunOutcome::Infrastructure;
                f.reason = Some(reason.clone());
                *f
            }),
            change: Some(finish_with(JobOutcome::Infrastructure { reason })),
            breaker: None,
            ..JobDecision::default()
        },
        JobEvent::RunCrashed { error } => {
            let reason = format!("the run crashed: {error}");
            let run = Some(RunFinish {
                outcome: RunOutcome::Crashed,
                reason: Some(reason.clone()),
                ..RunFinish::default()
            });
            let change = if job.attempts >= rules.max_attempts {
                finish_with(JobOutcome::Failed {
                    reason: format!(
                        "{reason}, and the job is out of attempts ({} of {})",
                        job.attempts, rules.max_attempts
                    ),
                })
            } else {
                JobChange::Requeue {
                    how: Requeue::Lost,
                    reason,
                }
            };
            JobDecision {
                run,
                change: Some(change),
                breaker: Some(BreakerNote::Other),
                ..JobDecision::default()
            }
        }
        JobEvent::CannotStart { reason } => JobDecision {
            change: Some(finish_with(JobOutcome::Failed { reason })),
            ..JobDecision::default()
        },
        JobEvent::Reaped(verdict) => reaped(verdict),
        JobEvent::Stopped { reason } => {
            let reason = format!("stopped: {reason}; its agent was killed and nothing published");
            JobDecision {
                run: Some(RunFinish {
                    outcome: RunOutcome::Failed,
                    reason: Some(reason.clone()),
                    ..RunFinish::default()
                }),
                change: Some(finish_with(JobOutcome::Failed { reason })),
                ..JobDecision::default()
            }
        }
    }
}

fn finish_with(outcome: JobOutcome) -> JobChange {
    JobChange::Finish { outcome }
}

/// A failed agent: retried on the transient budget, parked on a usage limit, else ended.
fn failed(
    job: &Job,
    class: FailureClass,
    reason: String,
    finish: Option<Box<RunFinish>>,
    rules: &JobRules,
    now: SystemTime,
) -> JobDecision {
    let breaker = Some(if matches!(class, FailureClass::Transient { .. }) {
        BreakerNote::Transient
    } else {
        BreakerNote::Other
    });
    let plan = rules.retry.plan(&class, job.transient_attempts, now);
    let timed_out = finish
        .as_ref()
        .is_some_and(|f| f.outcome == RunOutcome::Timeout);
    let journal = |outcome: RunOutcome| {
        finish.clone().map(|mut f| {
            f.outcome = outcome;
            f.reason = Some(reason.clone());
            *f
        })
    };
    match plan {
        Plan::Retry { delay } => JobDecision {
            run: journal(RunOutcome::Transient),
            change: Some(JobChange::Requeue {
                how: Requeue::Transient { delay },
                reason: reason.clone(),
            }),
            breaker,
            ..JobDecision::default()
        },
        Plan::Park { until_unix } => JobDecision {
            run: journal(RunOutcome::UsageLimit),
            park: Some((until_unix, reason.clone())),
            change: Some(JobChange::Requeue {
                how: Requeue::Parked,
                reason: reason.clone(),
            }),
            breaker,
            ..JobDecision::default()
        },
        // Not the agent's doing and no word on the API: the attempt is given back and the
        // breaker hears nothing.
        Plan::Hold => JobDecision {
            run: journal(RunOutcome::Infrastructure),
            hold: Some(reason.clone()),
            change: Some(JobChange::Requeue {
                how: Requeue::Parked,
                reason: reason.clone(),
            }),
            ..JobDecision::default()
        },
        Plan::Fail { exhausted } => {
            let told = if exhausted {
                format!(
                    "{reason} (transient failures exhausted the retry budget of {})",
                    rules.retry.transient_budget
                )
            } else {
                reason.clone()
            };
            JobDecision {
                run: journal(if timed_out {
                    RunOutcome::Timeout
                } else {
                    RunOutcome::Failed
                }),
                change: Some(finish_with(JobOutcome::Failed { reason: told })),
                breaker,
                ..JobDecision::default()
            }
        }
    }
}

/// The reaper's verdict as a change.
fn reaped(verdict: Verdict) -> JobDecision {
    let change = match verdict {
        Verdict::Leave => None,
        Verdict::Kill { reason } | Verdict::Fail { reason } => {
            Some(finish_with(JobOutcome::Failed { reason }))
        }
        Verdict::Finalize { success: true, .. } => Some(finish_with(JobOutcome::Succeeded)),
        Verdict::Finalize {
            success: false,
            reason,
        } => Some(finish_with(JobOutcome::Failed { reason })),
        Verdict::Requeue => Some(JobChange::Requeue {
            how: Requeue::Lost,
            reason: "its run vanished without an outcome; requeued by the reaper".into(),
        }),
    };
    JobDecision {
        change,
        ..JobDecision::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Stage, WorkItemId};

    fn job(attempts: u32, transient_attempts: u32) -> Job {
        Job {
            id: 3,
            work_item_id: WorkItemId::parse("J-3").unwrap(),
            stage: Stage::Development,
            role: crate::Role::Developer,
            status: JobStatus::Running,
            attempts,
            task_text: String::new(),
            run_id: Some("run-3-1".into()),
            transient_attempts,
        }
    }

    fn rules() -> JobRules {
        JobRules {
            retry: RetryPolicy {
                transient_budget: 2,
                ..RetryPolicy::default()
            },
            max_attempts: 3,
        }
    }

    fn failed_with(class: FailureClass, outcome: RunOutcome) -> JobEvent {
        JobEvent::RunEnded(RunEnd::Failed {
            class,
            reason: "boom".into(),
            finish: Some(Box::new(RunFinish {
                outcome,
                ..RunFinish::default()
            })),
        })
    }

    #[test]
    fn a_success_ends_the_job_and_journals_the_run() {
        let d = decide(
            &job(1, 0),
            JobEvent::RunEnded(RunEnd::Succeeded {
                finish: Box::default(),
            }),
            &rules(),
            SystemTime::now(),
        );
        assert_eq!(d.run.unwrap().outcome, RunOutcome::Succeeded);
        assert_eq!(
            d.change,
            Some(JobChange::Finish {
                outcome: JobOutcome::Succeeded
            })
        );
        assert_eq!(d.breaker, Some(BreakerNote::Other));
    }

    #[test]
    fn a_transient_failure_is_requeued_until_its_budget_is_spent() {
        let class = FailureClass::Transient {
            retry_after: Some(Duration::from_secs(7)),
        };
        let d = decide(
            &job(1, 0),
            failed_with(class.clone(), RunOutcome::Failed),
            &rules(),
            SystemTime::now(),
        );
        assert_eq!(d.run.unwrap().outcome, RunOutcome::Transient);
        assert!(matches!(
            d.change,
            Some(JobChange::Requeue { how: Requeue::Transient { delay }, .. }) if delay == Duration::from_secs(7)
        ));
        assert_eq!(d.breaker, Some(BreakerNote::Transient));
        let spent = decide(
            &job(1, 2),
            failed_with(class, RunOutcome::Failed),
            &rules(),
            SystemTime::now(),
        );
        assert!(matches!(
            spent.change,
            Some(JobChange::Finish { outcome: JobOutcome::Failed { reason } })
                if reason.contains("exhausted the retry budget of 2")
        ));
    }

    #[test]
    fn a_usage_limit_parks_the_queue_and_requeues() {
        let now = SystemTime::now();
        let class = FailureClass::UsageLimit {
            resets_at: now + Duration::from_secs(600),
        };
        let d = decide(
            &job(1, 0),
            failed_with(class, RunOutcome::Failed),
            &rules(),
            now,
        );
        assert!(d.park.is_some());
        assert!(matches!(
            d.change,
            Some(JobChange::Requeue {
                how: Requeue::Parked,
                ..
            })
        ));
        assert_eq!(d.run.unwrap().outcome, RunOutcome::UsageLimit);
    }

    #[test]
    fn an_agent_that_cannot_start_holds_the_queue_and_spends_no_attempt() {
        // Even the last attempt: nothing the agent did.
        let d = decide(
            &job(3, 0),
            failed_with(FailureClass::AgentUnavailable, RunOutcome::Failed),
            &rules(),
            SystemTime::now(),
        );
        assert_eq!(d.hold.as_deref(), Some("boom"));
        assert!(matches!(
            d.change,
            Some(JobChange::Requeue {
                how: Requeue::Parked,
                ..
            })
        ));
        assert_eq!(d.breaker, None);
        assert_eq!(d.park, None);
        assert_eq!(d.run.unwrap().outcome, RunOutcome::Infrastructure);
    }

    #[test]
    fn a_permanent_failure_ends_the_job_and_keeps_a_timeout_visible() {
        let d = decide(
            &job(1, 0),
            failed_with(FailureClass::Permanent, RunOutcome::Timeout),
            &rules(),
            SystemTime::now(),
        );
        assert_eq!(d.run.unwrap().outcome, RunOutcome::Timeout);
        assert_eq!(
            d.change,
            Some(JobChange::Finish {
                outcome: JobOutcome::Failed {
                    reason: "boom".into()
                }
            })
        );
    }

    #[test]
    fn infrastructure_ends_the_job_without_blaming_the_agent() {
        let d = decide(
            &job(1, 0),
            JobEvent::RunEnded(RunEnd::Infrastructure {
                reason: "push failed".into(),
                finish: Some(Box::default()),
            }),
            &rules(),
            SystemTime::now(),
        );
        assert_eq!(d.breaker, None);
        assert_eq!(d.run.unwrap().outcome, RunOutcome::Infrastructure);
        let Some(JobChange::Finish { outcome }) = d.change else {
            panic!("expected a finish")
        };
        assert_eq!(
            JobChange::finish_status(&outcome),
            (
                JobStatus::Failed,
                Some("infrastructure: push failed".into())
            )
        );
    }

    #[test]
    fn a_crashed_run_is_retried_with_its_attempt_counted_until_attempts_run_out() {
        let crash = || JobEvent::RunCrashed {
            error: "panicked".into(),
        };
        let d = decide(&job(1, 0), crash(), &rules(), SystemTime::now());
        assert!(matches!(
            d.change,
            Some(JobChange::Requeue {
                how: Requeue::Lost,
                ..
            })
        ));
        assert_eq!(d.run.unwrap().outcome, RunOutcome::Crashed);
        let spent = decide(&job(3, 0), crash(), &rules(), SystemTime::now());
        assert!(matches!(
            spent.change,
            Some(JobChange::Finish { outcome: JobOutcome::Failed { reason } })
                if reason.contains("out of attempts (3 of 3)")
        ));
    }

    #[test]
    fn the_reapers_verdicts_become_changes() {
        let at = SystemTime::now();
        let reap = |v| decide(&job(1, 0), JobEvent::Reaped(v), &rules(), at).change;
        assert_eq!(reap(Verdict::Leave), None);
        assert!(matches!(
            reap(Verdict::Requeue),
            Some(JobChange::Requeue {
                how: Requeue::Lost,
                ..
            })
        ));
        assert_eq!(
            reap(Verdict::Finalize {
                success: true,
                reason: String::new()
            }),
            Some(JobChange::Finish {
                outcome: JobOutcome::Succeeded
            })
        );
        assert!(matches!(
            reap(Verdict::Kill { reason: "backstop".into() }),
            Some(JobChange::Finish { outcome: JobOutcome::Failed { reason } }) if reason == "backstop"
        ));
    }
}
