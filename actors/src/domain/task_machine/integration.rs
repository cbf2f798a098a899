//! What the merge queue's news means for a task in it.

use super::{
    Decision, Effect, ProjectRules, block_on_infrastructure, in_merge_queue, rollback, settle, work,
};
use crate::Stage;
use crate::domain::pipeline::{Labels, Role};
use crate::ports::merge_queue::Integration;
use crate::ports::{Phase, TaskRecord, TaskUpdate};

/// What the merge queue's news means for the task.
pub(super) fn on_integration(
    task: &TaskRecord,
    rules: &ProjectRules,
    news: Integration,
) -> Decision {
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
pub(super) fn merge_now(task: &TaskRecord, reason: Option<String>) -> Decision {
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
