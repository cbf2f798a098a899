//! A human retries a blocked task: where it resumes, and with what.

use super::{Decision, Effect, first_line, gate_now, settle, work};
use crate::Stage;
use crate::domain::pipeline::{self, Role};
use crate::ports::{Phase, TaskRecord, TaskUpdate};

/// A human retries a blocked task: the stage resumes where it was blocked, with a fresh
/// retry budget (attempts and developer retries start over), the retry journaled with who
/// and the note, and the note handed to the next agent run verbatim. Infrastructure trouble
/// retries the step that failed — the gate, the merge queue, the publishing of work already
/// done — without launching an agent for work that is done.
pub(super) fn on_retry(task: &TaskRecord, by: &str, note: Option<String>) -> Decision {
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
        (Some(what), _) if what.starts_with("merge queue:") => {
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
