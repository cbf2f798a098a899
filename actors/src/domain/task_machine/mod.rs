//! What a task does next, as a pure function: `decide(task, project, event)` returns the
//! update to save (a stage change is journaled with its reason) and the effects to run. The
//! task actor only executes decisions, so every pipeline rule — gates, rollbacks, human waits,
//! retries, idempotency — is tested here without actors, processes or git.

use crate::Stage;
use crate::domain::gates::GateOutcome;
use crate::domain::pipeline::{self, Labels, MAX_DEVELOPER_RETRIES, Role};
use crate::ports::{Phase, TaskRecord, TaskUpdate};

/// How many times one stage's own role is relaunched after a failed run or a failed gate of
/// its own artifacts before the task is parked.
pub const MAX_STAGE_ATTEMPTS: u32 = 3;

mod events;

pub use events::{Decision, Effect, Event, InfraLimits, JobSnapshot, ProjectRules};

use crate::ports::merge_queue::Integration;

/// Decides what `event` means for `task`. A decision that would save the task exactly as it
/// stands saves nothing (its `update` is `None`), so nobody is told of a change that did not
/// happen — a restart that resumes its gate or its job re-renders and re-sends nothing; its
/// effects still run.
pub fn decide(task: &TaskRecord, rules: &ProjectRules, event: Event) -> Decision {
    let mut decision = decide_event(task, rules, event);
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
        Event::Cancel { reason } => {
            let mut u = TaskUpdate::keep(task);
            u.to = Some((Stage::Cancelled, format!("stopped: {reason}")));
            u.phase = Phase::Idle;
            Decision {
                update: Some(u),
                effects: vec![
                    Effect::StopWork { reason },
                    Effect::DiscardWork,
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
        (_, Phase::Idle) => relaunch_same(task),
    }
}

/// Re-enqueues the current stage's role without counting an attempt (recovery).
fn relaunch_same(task: &TaskRecord) -> Decision {
    let Some(role) = pipeline::spec(task.stage).role else {
        return Decision::nothing();
    };
    let mut u = TaskUpdate::keep(task);
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

/// A human retries a blocked task: the stage resumes where it was blocked, with a fresh
/// retry budget (attempts and developer retries start over), the retry journaled with who
/// and the note, and the note handed to the next agent run verbatim. Infrastructure trouble
/// retries the step that failed — the gate, the merge queue, the publishing of work already
/// done — without launching an agent for work that is done.
fn on_retry(task: &TaskRecord, by: &str, note: Option<String>) -> Decision {
    if task.phase != Phase::Blocked {
        return Decision::nothing();
    }
    let reason = task.blocked_reason.clone().unwrap_or_default();
    let mut u = TaskUpdate::keep(task);
    u.to = Some((
        task.stage,
        match &note {
            Some(note) => format!("retried by {by}: {}", first_line(note)),
            None => format!("retried by {by}"),
        },
    ));
    u.blocked_reason = None;
    u.developer_retries = 0;
    u.stage_attempts = 1;
    if let Some(note) = &note {
        u.note = Some(note.clone());
    }
    let role = pipeline::spec(task.stage).role;
    let infra = reason.strip_prefix("infrastructure: ");
    match (infra, role) {
        (Some(what), _) if what.starts_with("merge queue:") || task.stage == Stage::Testing => {
            // The queue builds and tests the candidate again; a deployed one merges.
            if task.stage == Stage::Testing {
                u.phase = Phase::Queued;
                Decision {
                    update: Some(u),
                    effects: vec![Effect::JoinMergeQueue],
                }
            } else {
                u.phase = Phase::Merging;
                Decision {
                    update: Some(u),
                    effects: vec![Effect::Merge],
                }
            }
        }
        (Some(what), _) if what.contains(" gate could not be evaluated") => {
            let mut decision = gate_now(task);
            if let Some(update) = decision.update.as_mut() {
                update.to = u.to;
                update.blocked_reason = None;
                update.developer_retries = 0;
                update.stage_attempts = 1;
                update.note = u.note;
            }
            decision
        }
        // The run's work could not be published: publish it now, then the gate.
        (Some(_), Some(role)) => {
            u.phase = Phase::Gating;
            Decision {
                update: Some(u),
                effects: vec![Effect::Republish {
                    stage: task.stage,
                    role,
                }],
            }
        }
        // The stage's role ran out of attempts (or rounds): it runs again, with the note.
        // Red verdicts ran out of rounds: the developer gets them again, with the note first.
        (None, Some(_)) if reason.starts_with("blocked after ") => {
            let findings = task.note.clone().unwrap_or_default();
            u.note = Some(match &note {
                Some(note) => format!("{note}\n\n{findings}"),
                None => findings,
            });
            if task.stage != Stage::Development {
                u.to = Some((
                    Stage::Development,
                    match &note {
                        Some(note) => format!("retried by {by}: {}", first_line(note)),
                        None => format!("retried by {by}"),
                    },
                ));
            }
            work(task, u, Stage::Development, Role::Developer)
        }
        // The stage's own role ran out of attempts: it runs again (without a new note, the
        // last findings stand).
        (_, Some(role)) => work(task, u, task.stage, role),
        (_, None) => {
            u.phase = Phase::Idle;
            settle(u)
        }
    }
}

/// What the merge queue's news means for the task.
fn on_integration(task: &TaskRecord, rules: &ProjectRules, news: Integration) -> Decision {
    let queued = task.stage == Stage::Testing && task.phase == Phase::Queued;
    match news {
        Integration::CandidateGreen { sha } if queued => {
            let reason = format!("merge candidate {} passed CI", short(&sha));
            let labels = Labels::new(&task.labels);
            if rules.has_staging {
                let mut u = TaskUpdate::keep(task);
                u.to = Some((Stage::DeployStaging, reason));
                u.note = None;
                u.stage_attempts = 1;
                return work(task, u, Stage::DeployStaging, Role::Deployer);
            }
            if rules.skip_deploy {
                return merge_now(task, Some(reason));
            }
            let mut u = TaskUpdate::keep(task);
            u.to = Some((Stage::Deploy, reason));
            u.note = None;
            u.stage_attempts = 0;
            if rules.confirm_deploy && !labels.auto_deploy() {
                u.phase = Phase::AwaitingDeployConfirm;
                return settle(u);
            }
            u.stage_attempts = 1;
            work(task, u, Stage::Deploy, Role::Deployer)
        }
        Integration::BatchedGreen { sha, top } if queued => merge_now(
            task,
            Some(format!(
                "merge candidate {} passed CI in a batch; {top} deploys the batch",
                short(&sha)
            )),
        ),
        Integration::CandidateRed { output } if queued => rollback(
            task,
            &format!(
                "the merge candidate (this branch merged into the current main) fails CI, while main alone passes. The failing output:\n\n```\n{}\n```",
                output.trim_end()
            ),
        ),
        Integration::Conflict { files } if queued => rollback(
            task,
            &format!(
                "the branch does not merge into the current main: conflicts in {}. The latest main is merged into your worktree with the conflicts in place: resolve every one (no conflict marker may remain), keep both sides' intent, and run the tests.",
                files.join(", ")
            ),
        ),
        Integration::Infrastructure { reason } if in_merge_queue(task) => {
            block_on_infrastructure(task, &format!("merge queue: {reason}"))
        }
        Integration::Merged { sha } if task.phase == Phase::Merging => {
            let mut u = TaskUpdate::keep(task);
            u.to = Some((
                Stage::Done,
                format!("main fast-forwarded to the tested candidate {sha}"),
            ));
            u.phase = Phase::Idle;
            u.note = None;
            Decision {
                update: Some(u),
                effects: vec![Effect::RemoveWorktree, Effect::Stop],
            }
        }
        // Late or replayed news, or news for a moment that has passed.
        _ => Decision::nothing(),
    }
}

/// The candidate is deployed (or needs no deploy): ask the queue to fast-forward `main`.
fn merge_now(task: &TaskRecord, reason: Option<String>) -> Decision {
    let mut u = TaskUpdate::keep(task);
    if let Some(reason) = reason {
        u.to = Some((Stage::Deploy, reason));
        u.stage_attempts = 0;
        u.note = None;
    }
    u.phase = Phase::Merging;
    Decision {
        update: Some(u),
        effects: vec![Effect::Merge],
    }
}

/// The first 12 characters of a commit id.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
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
