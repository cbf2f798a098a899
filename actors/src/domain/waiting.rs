//! One vocabulary for people: what a task that is not moving on its own waits for, and what
//! action unblocks it — the same words in `GET /tasks/{id}`, the CLI and the dashboard.

use serde::Serialize;

use crate::Stage;
use crate::ports::{Phase, TaskRecord};

/// What a task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitingFor {
    /// A human approves or rejects its analysis.
    Approval,
    /// A human confirms the production deploy.
    DeployConfirmation,
    /// Its turn in the repository's merge queue (or its candidate's CI).
    MergeQueue,
    /// A human retries it after infrastructure trouble.
    Infrastructure,
    /// A human looks at why it is blocked and retries it.
    Human,
    /// A human resumes it.
    Resume,
}

/// What it waits for, and what unblocks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// What.
    pub waiting_for: WaitingFor,
    /// The action that unblocks it, in words with its route.
    pub action: String,
}

/// What `task` waits for, if it waits on anything but its own work.
pub fn of(task: &TaskRecord) -> Option<Waiting> {
    if task.stage.is_terminal() || task.stage == Stage::Created {
        return None;
    }
    let id = &task.work_item_id;
    let (waiting_for, action) = match task.phase {
        Phase::Blocked => {
            let infra = task
                .blocked_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("infrastructure:"));
            let what = if infra {
                WaitingFor::Infrastructure
            } else {
                WaitingFor::Human
            };
            (
                what,
                format!(
                    "retry it once the cause is fixed: POST /tasks/{id}/retry (optional note), or stop it"
                ),
            )
        }
        _ if task.paused => (
            WaitingFor::Resume,
            format!("resume it: POST /tasks/{id}/resume"),
        ),
        Phase::AwaitingApproval => (
            WaitingFor::Approval,
            format!(
                "approve it (POST /tasks/{id}/approve) or reject it with a reason (POST /tasks/{id}/reject)"
            ),
        ),
        Phase::AwaitingDeployConfirm => (
            WaitingFor::DeployConfirmation,
            format!("confirm the deploy: POST /tasks/{id}/confirm-deploy"),
        ),
        Phase::Queued => (
            WaitingFor::MergeQueue,
            format!(
                "nothing: it moves when the merge queue of {} reaches it (GET /queue; a frozen queue is released with POST /repos/{}/merge-queue/unfreeze)",
                task.repo, task.repo
            ),
        ),
        Phase::Idle | Phase::Working | Phase::Gating | Phase::Merging => return None,
    };
    Some(Waiting {
        waiting_for,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkItemId;

    fn task(stage: Stage, phase: Phase) -> TaskRecord {
        TaskRecord {
            work_item_id: WorkItemId::parse("ACME-7").unwrap(),
            repo: "acme/app".into(),
            title: "t".into(),
            description: String::new(),
            stage,
            paused: false,
            labels: vec![],
            branch: None,
            phase,
            blocked_reason: None,
            developer_retries: 0,
            stage_attempts: 1,
            note: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn each_wait_names_what_unblocks_it() {
        let w = of(&task(Stage::Analysis, Phase::AwaitingApproval)).unwrap();
        assert_eq!(w.waiting_for, WaitingFor::Approval);
        assert!(w.action.contains("/tasks/ACME-7/approve"));
        let w = of(&task(Stage::Deploy, Phase::AwaitingDeployConfirm)).unwrap();
        assert_eq!(w.waiting_for, WaitingFor::DeployConfirmation);
        let w = of(&task(Stage::Testing, Phase::Queued)).unwrap();
        assert_eq!(w.waiting_for, WaitingFor::MergeQueue);
        assert!(w.action.contains("merge-queue/unfreeze"));
        let mut blocked = task(Stage::Testing, Phase::Blocked);
        blocked.blocked_reason = Some("infrastructure: git push failed".into());
        assert_eq!(
            of(&blocked).unwrap().waiting_for,
            WaitingFor::Infrastructure
        );
        blocked.blocked_reason = Some("blocked after 3 failed rounds".into());
        let w = of(&blocked).unwrap();
        assert_eq!(w.waiting_for, WaitingFor::Human);
        assert!(w.action.contains("/retry"));
        let mut paused = task(Stage::Review, Phase::Working);
        paused.paused = true;
        assert_eq!(of(&paused).unwrap().waiting_for, WaitingFor::Resume);
        assert_eq!(of(&task(Stage::Review, Phase::Working)), None);
        assert_eq!(of(&task(Stage::Done, Phase::Idle)), None);
    }
}
