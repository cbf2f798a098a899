//! What the outside world must hear after a task actor saved a decision: where the card
//! goes on the tracker board, which comments the roles leave there, and which alerts need a
//! human. A pure function of the task before and after and the event, so every rule is
//! tested without a tracker or a chat.

use crate::Stage;
use crate::domain::gates::GateOutcome;
use crate::domain::pipeline::{self, Role};
use crate::domain::task_machine::Event;
use crate::ports::merge_queue::Integration;
use crate::ports::{AlertKind, BoardStatus, Phase, TaskRecord};

/// What to tell the outside world.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notices {
    /// Move the task's card to this status.
    pub board: Option<BoardStatus>,
    /// Comments for the card, each by a role's bot (or the orchestrator's own account).
    pub comments: Vec<(Option<Role>, String)>,
    /// Alerts, each with its text.
    pub alerts: Vec<(AlertKind, String)>,
}

/// What `event`, which turned `before` into `after` (a stage change journaled with
/// `reason`), means for the board and for humans.
pub fn notices(
    before: &TaskRecord,
    after: &TaskRecord,
    reason: Option<&str>,
    event: &Event,
) -> Notices {
    let mut out = Notices::default();
    let id = &after.work_item_id;
    let (was, is) = (BoardStatus::of(before), BoardStatus::of(after));
    if was != is || before.stage != after.stage {
        out.board = Some(is);
    }
    if before.stage != after.stage {
        // The role of the stage left speaks for the move.
        let author = pipeline::spec(before.stage).role;
        let reason = reason.unwrap_or("stage changed");
        out.comments.push((
            author,
            format!("{} → {}: {reason}", before.stage, after.stage),
        ));
    }
    if after.phase == Phase::Blocked && before.phase != Phase::Blocked {
        let reason = after
            .blocked_reason
            .as_deref()
            .unwrap_or("no reason recorded");
        out.comments.push((None, format!("Blocked: {reason}")));
        out.alerts
            .push((AlertKind::Blocked, format!("{id} is blocked: {reason}")));
    }
    if after.phase == Phase::AwaitingApproval && before.phase != Phase::AwaitingApproval {
        out.comments.push((
            Some(Role::Analyst),
            "The analysis is ready for review: move the card to Approved, or to Rejected with a comment saying why.".into(),
        ));
        out.alerts.push((
            AlertKind::ApprovalRequested,
            format!(
                "{id} \u{2014} the analysis is ready: move it to Approved, or Rejected with a comment saying why"
            ),
        ));
    }
    if after.phase == Phase::AwaitingDeployConfirm && before.phase != Phase::AwaitingDeployConfirm {
        out.alerts.push((
            AlertKind::ApprovalRequested,
            format!("{id} is ready for production: move it to Confirm Deploy to release it"),
        ));
    }
    match event {
        Event::JobFinished {
            success: false,
            stage,
            reason,
            ..
        } => out.alerts.push((
            AlertKind::AgentFailed,
            format!(
                "{id}: the {} agent failed: {reason}",
                pipeline::spec(*stage).role.map_or("stage", Role::as_str)
            ),
        )),
        Event::GateEvaluated {
            stage: stage @ (Stage::DeployStaging | Stage::Deploy),
            outcome: GateOutcome::Fail { reason, .. },
            ..
        } => out.alerts.push((
            AlertKind::DeployFailed,
            format!("{id}: {stage} failed: {reason}"),
        )),
        Event::Integrated(Integration::Conflict { files }) => out.alerts.push((
            AlertKind::DeployFailed,
            format!(
                "{id}: the branch does not merge into main: conflicts in {}",
                files.join(", ")
            ),
        )),
        _ => {}
    }
    out
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
            description: "d".into(),
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
    fn a_stage_change_moves_the_card_and_the_role_left_comments() {
        let before = task(Stage::Review, Phase::Gating);
        let after = task(Stage::Testing, Phase::Working);
        let event = Event::GateEvaluated {
            stage: Stage::Review,
            outcome: GateOutcome::Pass {
                reason: "ok".into(),
            },
            deferrals: 0,
        };
        let n = notices(&before, &after, Some("verdict APPROVED"), &event);
        assert_eq!(n.board, Some(BoardStatus::Testing));
        assert_eq!(
            n.comments,
            vec![(
                Some(Role::Reviewer),
                "review → testing: verdict APPROVED".into()
            )]
        );
        assert!(n.alerts.is_empty());
    }

    #[test]
    fn a_started_task_leaves_created_for_analysis_on_the_board() {
        let n = notices(
            &task(Stage::Created, Phase::Idle),
            &task(Stage::Analysis, Phase::Working),
            Some("pipeline started"),
            &Event::Start {
                job: crate::domain::task_machine::JobSnapshot::None,
            },
        );
        assert_eq!(n.board, Some(BoardStatus::Analysis));
    }

    #[test]
    fn approval_waits_and_blocks_alert_a_human() {
        let before = task(Stage::Analysis, Phase::Gating);
        let after = task(Stage::Analysis, Phase::AwaitingApproval);
        let n = notices(&before, &after, None, &Event::Approve);
        assert_eq!(n.board, Some(BoardStatus::InReview));
        assert_eq!(n.alerts.len(), 1);
        assert_eq!(n.alerts[0].0, AlertKind::ApprovalRequested);

        let mut blocked = task(Stage::Testing, Phase::Blocked);
        blocked.blocked_reason = Some("blocked after 3 failed rounds".into());
        let n = notices(
            &task(Stage::Testing, Phase::Gating),
            &blocked,
            None,
            &Event::Approve,
        );
        assert_eq!(n.board, Some(BoardStatus::Blocked));
        assert_eq!(n.alerts[0].0, AlertKind::Blocked);
        assert!(n.comments[0].1.contains("blocked after 3 failed rounds"));
    }

    #[test]
    fn failed_runs_and_deploys_alert_but_nothing_moves_within_a_stage() {
        let t = task(Stage::Development, Phase::Working);
        let n = notices(
            &t,
            &t,
            None,
            &Event::JobFinished {
                job_id: 1,
                stage: Stage::Development,
                success: false,
                reason: "exit 1".into(),
            },
        );
        assert_eq!(n.board, None);
        assert_eq!(n.alerts[0].0, AlertKind::AgentFailed);
        assert!(n.alerts[0].1.contains("developer agent failed: exit 1"));

        let d = task(Stage::Deploy, Phase::Gating);
        let n = notices(
            &d,
            &d,
            None,
            &Event::GateEvaluated {
                stage: Stage::Deploy,
                outcome: GateOutcome::Fail {
                    reason: "deploy_status FAILED".into(),
                    must_fix: None,
                    back_to: None,
                },
                deferrals: 0,
            },
        );
        assert_eq!(n.alerts[0].0, AlertKind::DeployFailed);
    }
}
