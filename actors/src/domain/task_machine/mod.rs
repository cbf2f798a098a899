//! What a task does next, as a pure function: `decide(task, project, event)` returns the
//! update to save (a stage change is journaled with its reason) and the effects to run. The
//! task actor only executes decisions, so every pipeline rule — gates, rollbacks, human waits,
//! retries, idempotency — is tested here without actors, processes or git.

use crate::Stage;
use crate::domain::budget::{self, Spend};
use crate::domain::gates::GateOutcome;
use crate::domain::pipeline::{self, Labels, MAX_DEVELOPER_RETRIES, Role};
use crate::ports::{Phase, TaskRecord, TaskUpdate};

/// How many times one stage's own role is relaunched after a failed run or a failed gate of
/// its own artifacts before the task is parked.
pub const MAX_STAGE_ATTEMPTS: u32 = 3;

mod events;
mod integration;
mod retry;

pub use events::{Decision, Effect, Event, InfraLimits, JobSnapshot, ProjectRules};

use integration::{merge_now, on_integration};
use retry::on_retry;

/// Decides what `event` means for `task`. A decision that would save the task exactly as it
/// stands saves nothing (its `update` is `None`), so nobody is told of a change that did not
/// happen — a restart that resumes its gate or its job re-renders and re-sends nothing; its
/// effects still run.
pub fn decide(task: &TaskRecord, rules: &ProjectRules, event: Event) -> Decision {
    decide_spending(task, rules, &Spend::default(), event)
}

/// [`decide`] for a task whose agent runs cost `spend` so far. Before any agent run is
/// queued the spend is held against the task's cap ([`budget::cap`]): at or over it, nothing
/// is queued and the task waits in [`Phase::AwaitingBudget`] — its stage, attempts and note
/// saved as decided, so raising the cap launches exactly the run that was due.
pub fn decide_spending(
    task: &TaskRecord,
    rules: &ProjectRules,
    spend: &Spend,
    event: Event,
) -> Decision {
    let mut decision = decide_event(task, rules, event);
    hold_for_budget(task, rules, spend, &mut decision);
    if decision
        .update
        .as_ref()
        .is_some_and(|u| *u == TaskUpdate::keep(task))
    {
        decision.update = None;
    }
    // Whatever takes a task out of the merge queue's window (a rollback, a block, a stop,
    // done) gives its place or its lease up, so a repository's queue never wedges on it.
    if let Some(update) = &decision.update {
        let mut after = task.clone();
        update.apply_to(&mut after);
        if in_merge_queue(task)
            && !in_merge_queue(&after)
            && !decision.effects.contains(&Effect::LeaveMergeQueue)
        {
            decision.effects.insert(0, Effect::LeaveMergeQueue);
        }
    }
    decision
}

/// The irreversible step `task` is in, if any: a STOP waits for it to end.
pub fn irreversible(task: &TaskRecord) -> Option<&'static str> {
    match (task.stage, task.phase) {
        (Stage::Deploy, Phase::Merging) => Some("the fast-forward of main"),
        (Stage::Deploy, Phase::Working) => Some("the production deploy"),
        _ => None,
    }
}

/// Whether `task` is in its repository's merge queue: waiting in it or holding its lease
/// from a green test report until `main` holds its candidate (deploy stages included).
pub fn in_merge_queue(task: &TaskRecord) -> bool {
    match (task.stage, task.phase) {
        (_, Phase::Blocked) => false,
        (Stage::Testing, Phase::Queued) => true,
        (Stage::DeployStaging | Stage::Deploy, _) => true,
        _ => false,
    }
}

/// Whether [`Event::Start`] looks at the job snapshot for `task`: only a task that was at
/// work on its stage asks where its job stands; every other start is decided from the task
/// alone, so its actor need not read the queue to start.
pub fn start_reads_job(task: &TaskRecord) -> bool {
    task.stage != Stage::Created && task.phase == Phase::Working
}

/// Whether `decision` queues an agent run.
pub fn launches(decision: &Decision) -> bool {
    decision
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Enqueue { .. }))
}

/// Turns a decision that would queue a run past the cap into the budget wait.
fn hold_for_budget(task: &TaskRecord, rules: &ProjectRules, spend: &Spend, d: &mut Decision) {
    if !launches(d) {
        return;
    }
    let mut update = d.update.take().unwrap_or_else(|| TaskUpdate::keep(task));
    let mut after = task.clone();
    update.apply_to(&mut after);
    match budget::cap(&after, rules) {
        Some(cap) if spend.total() >= cap => {
            update.phase = Phase::AwaitingBudget;
            update.blocked_reason = Some(budget::waiting_reason(spend, cap));
            d.effects.retain(|e| !matches!(e, Effect::Enqueue { .. }));
        }
        _ => {}
    }
    d.update = Some(update);
}

fn decide_event(task: &TaskRecord, rules: &ProjectRules, event: Event) -> Decision {
    if task.stage.is_terminal() {
        return Decision {
            update: None,
            effects: vec![Effect::Stop],
        };
    }
    match event {
        Event::Start { job } => on_start(task, job),
        Event::JobFinished {
            job_id: _,
            stage,
            success,
            reason,
        } => {
            if stage != task.stage || task.phase != Phase::Working {
                return Decision::nothing(); // late or replayed
            }
            if success {
                gate_now(task)
            } else {
                retry_own_role(
                    task,
                    &format!("the {} agent failed: {reason}", role_name(task.stage)),
                )
            }
        }
        Event::JobInfrastructure { stage, reason, .. } => {
            if stage != task.stage || task.phase != Phase::Working {
                return Decision::nothing();
            }
            block_on_infrastructure(task, &reason)
        }
        Event::GateEvaluated {
            stage,
            outcome,
            deferrals,
        } => {
            if stage != task.stage || task.phase != Phase::Gating {
                return Decision::nothing();
            }
            if let GateOutcome::Defer { reason } = &outcome
                && deferrals >= rules.limits.gate_deferrals
            {
                return block_on_infrastructure(
                    task,
                    &format!(
                        "the {stage} gate could not be evaluated {} times in a row; last: {reason}",
                        deferrals + 1
                    ),
                );
            }
            on_gate(task, rules, outcome)
        }
        Event::Integrated(news) => on_integration(task, rules, news),
        Event::Approve => {
            if task.stage == Stage::Analysis && task.phase == Phase::AwaitingApproval {
                advance(task, rules, "analysis approved")
            } else {
                Decision::nothing()
            }
        }
        Event::Reject { reason } => {
            if task.stage == Stage::Analysis && task.phase == Phase::AwaitingApproval {
                let mut u = TaskUpdate::keep(task);
                u.stage_attempts = task.stage_attempts + 1;
                u.note = Some(format!("The analysis was rejected: {reason}"));
                work(task, u, Stage::Analysis, Role::Analyst)
            } else {
                Decision::nothing()
            }
        }
        Event::ConfirmDeploy => {
            if task.stage == Stage::Deploy && task.phase == Phase::AwaitingDeployConfirm {
                launch(task)
            } else {
                Decision::nothing()
            }
        }
        Event::Pause => {
            if task.paused {
                return Decision::nothing();
            }
            let mut u = TaskUpdate::keep(task);
            u.paused = true;
            settle(u)
        }
        Event::Resume => {
            if !task.paused {
                return Decision::nothing();
            }
            let mut u = TaskUpdate::keep(task);
            u.paused = false;
            Decision {
                update: Some(u),
                effects: vec![Effect::WakeDispatch],
            }
        }
        Event::MergedOutside { sha, by } => {
            // In deploy the orchestrator merges itself; its own merge comes back this way.
            if task.stage == Stage::Deploy || task.stage.is_terminal() {
                return Decision::nothing();
            }
            // A forge's word that a pull request merged is not proof: its commit must be on
            // origin/main before the task is done.
            Decision {
                update: None,
                effects: vec![Effect::CheckOutsideMerge { sha, by }],
            }
        }
        Event::OutsideMergeChecked {
            sha,
            by,
            on_main,
            failures,
        } => {
            if task.stage == Stage::Deploy || task.stage.is_terminal() {
                return Decision::nothing();
            }
            match on_main {
                Ok(true) => {}
                // Merged somewhere else (another base, a rewritten history): ignored.
                Ok(false) => return Decision::nothing(),
                Err(message) if failures >= rules.limits.merge_retries => {
                    return block_on_infrastructure(
                        task,
                        &format!(
                            "cannot check whether {by}'s merge {sha} is on main ({} tries); last: {message}",
                            failures + 1
                        ),
                    );
                }
                Err(_) => {
                    return Decision {
                        update: None,
                        effects: vec![Effect::RetryOutsideMergeCheckLater { sha, by }],
                    };
                }
            }
            let mut u = TaskUpdate::keep(task);
            u.to = Some((
                Stage::Done,
                format!("merged outside the pipeline by {by} as {sha}"),
            ));
            u.phase = Phase::Idle;
            u.note = None;
            Decision {
                update: Some(u),
                effects: vec![Effect::CancelJobs, Effect::RemoveWorktree, Effect::Stop],
            }
        }
        Event::Retry { by, note } => on_retry(task, &by, note),
        Event::Republished { stage, result } => {
            if stage != task.stage || task.phase != Phase::Gating {
                return Decision::nothing();
            }
            match result {
                Ok(()) => gate_now(task),
                Err(reason) => block_on_infrastructure(
                    task,
                    &format!("the {stage} agent's work still cannot be published: {reason}"),
                ),
            }
        }
        Event::Cancel { reason } if irreversible(task).is_some() => {
            let what = irreversible(task).unwrap_or_default();
            let mut u = TaskUpdate::keep(task);
            u.to = Some((
                task.stage,
                format!("STOP requested ({reason}); deferred until {what} ends"),
            ));
            Decision {
                update: Some(u),
                effects: vec![Effect::DeferStop { reason }],
            }
        }
        Event::SetBudget { cap_nano_usd } => {
            let mut u = TaskUpdate::keep(task);
            u.budget_nano_usd = Some(cap_nano_usd);
            if task.phase != Phase::AwaitingBudget {
                return settle(u);
            }
            // The run that was due: launched if the new cap leaves room (the hold above
            // keeps the task waiting, with its reason restated, if it does not).
            u.blocked_reason = None;
            relaunch_with(task, u)
        }
        Event::Cancel { reason } => {
            let mut u = TaskUpdate::keep(task);
            u.to = Some((Stage::Cancelled, format!("stopped: {reason}")));
            u.phase = Phase::Idle;
            Decision {
                update: Some(u),
                effects: vec![
                    Effect::StopWork {
                        reason: reason.clone(),
                    },
                    Effect::DiscardWork {
                        why: format!(
                            "Stopped: {reason}. The orchestrator closed this pull request and deleted its branch."
                        ),
                    },
                    Effect::Stop,
                ],
            }
        }
    }
}

/// Kept in step with [`start_reads_job`]: `job` is looked at only where it says so.
fn on_start(task: &TaskRecord, job: JobSnapshot) -> Decision {
    match (task.stage, task.phase) {
        (_, Phase::Blocked | Phase::AwaitingApproval | Phase::AwaitingDeployConfirm) => {
            Decision::nothing()
        }
        (Stage::Created, _) => {
            let mut u = TaskUpdate::keep(task);
            u.to = Some((Stage::Analysis, "pipeline started".into()));
            u.stage_attempts = 1;
            work(task, u, Stage::Analysis, Role::Analyst)
        }
        (_, Phase::Gating) => gate_now(task),
        (_, Phase::Merging) => Decision {
            update: None,
            effects: vec![Effect::Merge],
        },
        (_, Phase::Queued) => Decision {
            update: None,
            effects: vec![Effect::JoinMergeQueue],
        },
        (_, Phase::Working) => match job {
            // A paused task's job is never claimed: nothing to wake the dispatcher for
            // (resuming it does).
            JobSnapshot::Active if task.paused => Decision::nothing(),
            JobSnapshot::Active => Decision {
                update: None,
                effects: vec![Effect::WakeDispatch],
            },
            JobSnapshot::Finished { success: true, .. } => gate_now(task),
            JobSnapshot::Finished { success: false, .. } => {
                retry_own_role(task, &format!("the {} agent failed", role_name(task.stage)))
            }
            JobSnapshot::None => relaunch_same(task),
        },
        // The cap may have changed while nobody listened: the due run is held again, or
        // launched.
        (_, Phase::Idle | Phase::AwaitingBudget) => relaunch_same(task),
    }
}

/// Re-enqueues the current stage's role without counting an attempt (recovery).
fn relaunch_same(task: &TaskRecord) -> Decision {
    let mut u = TaskUpdate::keep(task);
    if task.phase == Phase::AwaitingBudget {
        u.blocked_reason = None;
    }
    relaunch_with(task, u)
}

/// Re-enqueues the current stage's role with `u`, counting no attempt.
fn relaunch_with(task: &TaskRecord, mut u: TaskUpdate) -> Decision {
    let Some(role) = pipeline::spec(task.stage).role else {
        return Decision::nothing();
    };
    u.stage_attempts = task.stage_attempts.max(1);
    work(task, u, task.stage, role)
}

fn gate_now(task: &TaskRecord) -> Decision {
    let Some(gate) = pipeline::spec(task.stage).gate else {
        return Decision::nothing();
    };
    let mut u = TaskUpdate::keep(task);
    u.phase = Phase::Gating;
    Decision {
        update: Some(u),
        effects: vec![Effect::EvaluateGate {
            stage: task.stage,
            gate,
        }],
    }
}

fn on_gate(task: &TaskRecord, rules: &ProjectRules, outcome: GateOutcome) -> Decision {
    match outcome {
        GateOutcome::Pass { reason } => match task.stage {
            Stage::Analysis if !Labels::new(&task.labels).auto_approve() => {
                let mut u = TaskUpdate::keep(task);
                u.phase = Phase::AwaitingApproval;
                u.note = None;
                settle(u)
            }
            // Green tests: the task joins its repository's merge queue, whose candidate is
            // what gets deployed and merged.
            Stage::Testing => {
                let mut u = TaskUpdate::keep(task);
                u.phase = Phase::Queued;
                u.note = None;
                Decision {
                    update: Some(u),
                    effects: vec![Effect::JoinMergeQueue],
                }
            }
            Stage::Deploy => merge_now(task, None),
            _ => advance(task, rules, &reason),
        },
        GateOutcome::Fail { .. } => {
            let target = outcome.rollback_target(task.stage);
            let GateOutcome::Fail {
                reason, must_fix, ..
            } = outcome
            else {
                unreachable!("matched Fail above")
            };
            let findings = match must_fix {
                Some(findings) if !findings.trim().is_empty() => format!("{reason}\n\n{findings}"),
                _ => reason,
            };
            match target {
                // The stage's own role produced bad artifacts: run it again.
                Some(stage) if stage == task.stage => retry_own_role(task, &findings),
                Some(Stage::Development) => rollback(task, &findings),
                // Earlier than development (the architect's requirements conflict): hand the
                // findings back to that stage's role.
                Some(stage) => send_back(task, stage, &findings),
                None => Decision::nothing(),
            }
        }
        GateOutcome::Defer { .. } => match pipeline::spec(task.stage).gate {
            Some(gate) => Decision {
                update: None,
                effects: vec![Effect::RetryGateLater {
                    stage: task.stage,
                    gate,
                }],
            },
            None => Decision::nothing(),
        },
    }
}

/// Infrastructure trouble outlasted its retries: park the task for a human, spending nothing
/// (no attempt, no developer retry). The reason starts with `infrastructure:`.
fn block_on_infrastructure(task: &TaskRecord, what: &str) -> Decision {
    let mut u = TaskUpdate::keep(task);
    u.phase = Phase::Blocked;
    u.blocked_reason = Some(format!("infrastructure: {}", first_line(what)));
    settle(u)
}

/// Sends the task back to an earlier stage whose role must rework its output.
fn send_back(task: &TaskRecord, stage: Stage, findings: &str) -> Decision {
    let Some(role) = pipeline::spec(stage).role else {
        return Decision::nothing();
    };
    let mut u = TaskUpdate::keep(task);
    u.to = Some((stage, first_line(findings).to_string()));
    u.stage_attempts = 1;
    u.note = Some(findings.to_string());
    work(task, u, stage, role)
}

/// Leaves the current stage for the next one the labels allow.
fn advance(task: &TaskRecord, rules: &ProjectRules, reason: &str) -> Decision {
    let labels = Labels::new(&task.labels);
    let Some(next) = pipeline::next_stage(task.stage, &labels) else {
        return Decision::nothing();
    };
    let mut u = TaskUpdate::keep(task);
    u.to = Some((next, reason.to_string()));
    u.note = None;
    u.stage_attempts = 0;
    if next == Stage::Deploy && rules.confirm_deploy && !labels.auto_deploy() {
        u.phase = Phase::AwaitingDeployConfirm;
        return settle(u);
    }
    let Some(role) = pipeline::spec(next).role else {
        u.phase = Phase::Idle;
        return settle(u);
    };
    u.stage_attempts = 1;
    work(task, u, next, role)
}

/// Launches the current stage's role (after a human wait).
fn launch(task: &TaskRecord) -> Decision {
    let Some(role) = pipeline::spec(task.stage).role else {
        return Decision::nothing();
    };
    let mut u = TaskUpdate::keep(task);
    u.stage_attempts = task.stage_attempts + 1;
    u.note = None;
    work(task, u, task.stage, role)
}

/// A real red verdict: back to development with the findings, or parked after the last retry.
fn rollback(task: &TaskRecord, must_fix: &str) -> Decision {
    let mut u = TaskUpdate::keep(task);
    u.developer_retries = task.developer_retries + 1;
    if u.developer_retries >= MAX_DEVELOPER_RETRIES {
        u.phase = Phase::Blocked;
        u.blocked_reason = Some(format!(
            "blocked after {} failed rounds; last, at {}: {}",
            u.developer_retries,
            task.stage,
            first_line(must_fix)
        ));
        u.note = Some(must_fix.to_string());
        return settle(u);
    }
    if task.stage != Stage::Development {
        u.to = Some((
            Stage::Development,
            format!("rolled back from {}: {}", task.stage, first_line(must_fix)),
        ));
    }
    u.stage_attempts = 1;
    u.note = Some(must_fix.to_string());
    work(task, u, Stage::Development, Role::Developer)
}

/// The stage's own role failed (its run, or its own artifacts): relaunch it, or park.
fn retry_own_role(task: &TaskRecord, reason: &str) -> Decision {
    let role = pipeline::spec(task.stage).role;
    let mut u = TaskUpdate::keep(task);
    if task.stage_attempts >= MAX_STAGE_ATTEMPTS {
        u.phase = Phase::Blocked;
        u.blocked_reason = Some(format!(
            "blocked at {} after {} attempts: {}",
            task.stage,
            task.stage_attempts,
            first_line(reason)
        ));
        return settle(u);
    }
    let Some(role) = role else {
        return Decision::nothing();
    };
    u.stage_attempts = task.stage_attempts + 1;
    u.note = Some(reason.to_string());
    work(task, u, task.stage, role)
}

fn role_name(stage: Stage) -> &'static str {
    pipeline::spec(stage).role.map_or("stage", Role::as_str)
}

/// Saves `u` with the task at work in `stage`, and queues `role` with the note `u` carries.
fn work(task: &TaskRecord, mut u: TaskUpdate, stage: Stage, role: Role) -> Decision {
    u.phase = Phase::Working;
    let task_text = task_text(task, role, u.note.as_deref());
    Decision {
        update: Some(u),
        effects: vec![Effect::Enqueue {
            stage,
            role,
            task_text,
        }],
    }
}

/// Saves `u` with nothing to launch (a human wait, a pause, a parked task).
fn settle(u: TaskUpdate) -> Decision {
    Decision {
        update: Some(u),
        effects: Vec::new(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The text handed to an agent: the task, where its artifacts go, and anything it must fix.
pub fn task_text(task: &TaskRecord, role: Role, note: Option<&str>) -> String {
    let mut text = format!(
        "{title}\n\nYou are the {role} for work item {id}.\nRepository: {repo}\nArtifacts: {dir}/\n\n{description}\n",
        role = role.as_str(),
        id = task.work_item_id,
        title = task.title,
        repo = task.repo,
        dir = crate::domain::artifacts::work_item_dir(&task.work_item_id),
        description = task.description,
    );
    if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
        text.push_str("\nMust fix before anything else:\n");
        text.push_str(note);
        text.push('\n');
    }
    text
}
