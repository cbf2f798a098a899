//! What the reconciler makes of a human trigger it finds late — a delivery journaled but
//! never acted on, or a card standing in a triggering status the service never heard of —
//! given the task as it stands now. A trigger is applied only when it fits the task's phase
//! and is newer than the task's last change; a trigger the task has moved past is
//! superseded, never replayed (a stale Approved must not pass a later gate); anything that
//! does not add up is left alone and reported (fail closed).

use crate::domain::statuses::HumanTrigger;
use crate::ports::{Phase, TaskRecord};

/// Where a late trigger was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A journaled delivery that was never acted on; `after_task` says whether it was
    /// received after the task's last change.
    Delivery {
        /// Received at or after the task's last change.
        after_task: bool,
    },
    /// The card's current status on the board; `after_task` says whether the issue was last
    /// changed after the task was (`None`: the tracker did not say when).
    Board {
        /// Changed at or after the task's last change, when known.
        after_task: Option<bool>,
    },
}

/// What to do with a late trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Hand it to the task: it is what a human asked for and the task is waiting for it.
    Apply,
    /// Nothing was missed: the task is already where the trigger would take it.
    InStep,
    /// The task has moved past it; settle it with this reason and change nothing.
    Superseded(String),
    /// It does not add up; leave the task alone and report this.
    Ambiguous(String),
}

/// The phase a trigger acts in, if only one.
fn waits_in(trigger: HumanTrigger) -> Option<Phase> {
    match trigger {
        HumanTrigger::Approve | HumanTrigger::Reject => Some(Phase::AwaitingApproval),
        HumanTrigger::ConfirmDeploy => Some(Phase::AwaitingDeployConfirm),
        HumanTrigger::Start | HumanTrigger::Stop => None,
    }
}

/// Judges `trigger`, found late as `found`, against `task` as it stands now.
pub fn judge(trigger: HumanTrigger, task: &TaskRecord, found: Found) -> Finding {
    let now = format!("{} ({})", task.stage, task.phase.as_str());
    if task.stage.is_terminal() {
        return Finding::Superseded(format!(
            "task {} is already {}",
            task.work_item_id, task.stage
        ));
    }
    let fresh = match found {
        Found::Delivery { after_task } => Some(after_task),
        Found::Board { after_task } => after_task,
    };
    match (trigger, waits_in(trigger)) {
        // A start status means "go on": in step unless the task is paused or blocked (then it
        // resumes, or is retried).
        (HumanTrigger::Start, _) if !task.paused && task.phase != Phase::Blocked => Finding::InStep,
        (HumanTrigger::Start | HumanTrigger::Stop, _) => match (fresh, found) {
            (Some(true), _) => Finding::Apply,
            // A delivery is the human's word even when the task changed since: a STOP or a
            // resume still means what it said.
            (_, Found::Delivery { .. }) => Finding::Apply,
            (Some(false), Found::Board { .. }) => Finding::Superseded(format!(
                "the card was moved before the task's last change; task is {now}"
            )),
            (None, Found::Board { .. }) => Finding::Ambiguous(format!(
                "the card asks for {trigger:?} but the tracker does not say when it moved; task is {now}"
            )),
        },
        (_, Some(phase)) if task.phase == phase => match fresh {
            Some(true) => Finding::Apply,
            Some(false) => Finding::Superseded(format!(
                "{trigger:?} came before the task's last change; task is {now} again"
            )),
            None => Finding::Ambiguous(format!(
                "the card asks for {trigger:?} but the tracker does not say when it moved; task is {now}"
            )),
        },
        (_, _) => match found {
            Found::Board {
                after_task: Some(true),
            } => Finding::Ambiguous(format!(
                "the card was moved to {trigger:?} while task is {now}"
            )),
            _ => Finding::Superseded(format!("task is {now}; {trigger:?} no longer applies")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stage;
    use crate::domain::ids::WorkItemId;

    fn task(stage: Stage, phase: Phase, paused: bool) -> TaskRecord {
        TaskRecord {
            work_item_id: WorkItemId::parse("ACME-1").unwrap(),
            repo: "acme/app".into(),
            title: "t".into(),
            description: "d".into(),
            stage,
            paused,
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

    const LATE: Found = Found::Delivery { after_task: true };
    const STALE: Found = Found::Delivery { after_task: false };

    #[test]
    fn a_trigger_the_task_waits_for_is_applied() {
        let waiting = task(Stage::Analysis, Phase::AwaitingApproval, false);
        assert_eq!(judge(HumanTrigger::Approve, &waiting, LATE), Finding::Apply);
        assert_eq!(judge(HumanTrigger::Reject, &waiting, LATE), Finding::Apply);
        let deploy = task(Stage::Deploy, Phase::AwaitingDeployConfirm, false);
        assert_eq!(
            judge(
                HumanTrigger::ConfirmDeploy,
                &deploy,
                Found::Board {
                    after_task: Some(true)
                }
            ),
            Finding::Apply
        );
    }

    #[test]
    fn a_stale_approve_is_superseded_and_never_passes_a_later_gate() {
        let later = task(Stage::Development, Phase::Working, false);
        assert!(matches!(
            judge(HumanTrigger::Approve, &later, LATE),
            Finding::Superseded(_)
        ));
        // Back in awaiting approval after a rollback: an Approve from before does not count.
        let again = task(Stage::Analysis, Phase::AwaitingApproval, false);
        assert!(matches!(
            judge(HumanTrigger::Approve, &again, STALE),
            Finding::Superseded(_)
        ));
        let done = task(Stage::Done, Phase::Idle, false);
        assert!(matches!(
            judge(HumanTrigger::Stop, &done, LATE),
            Finding::Superseded(_)
        ));
    }

    #[test]
    fn the_board_fails_closed_when_it_does_not_add_up() {
        let working = task(Stage::Development, Phase::Working, false);
        let moved_after = Found::Board {
            after_task: Some(true),
        };
        assert!(matches!(
            judge(HumanTrigger::ConfirmDeploy, &working, moved_after),
            Finding::Ambiguous(_)
        ));
        let waiting = task(Stage::Analysis, Phase::AwaitingApproval, false);
        assert!(matches!(
            judge(
                HumanTrigger::Approve,
                &waiting,
                Found::Board { after_task: None }
            ),
            Finding::Ambiguous(_)
        ));
        // A card left in Approved after the task moved on is old news, not a finding.
        assert!(matches!(
            judge(
                HumanTrigger::Approve,
                &working,
                Found::Board {
                    after_task: Some(false)
                }
            ),
            Finding::Superseded(_)
        ));
    }

    #[test]
    fn start_resumes_only_a_paused_or_blocked_task_and_stop_always_stops() {
        let running = task(Stage::Analysis, Phase::Working, false);
        assert_eq!(judge(HumanTrigger::Start, &running, LATE), Finding::InStep);
        let paused = task(Stage::Analysis, Phase::Working, true);
        assert_eq!(judge(HumanTrigger::Start, &paused, STALE), Finding::Apply);
        // A blocked task's card moved back to a start status after it blocked: a retry.
        let blocked = task(Stage::Testing, Phase::Blocked, false);
        assert_eq!(judge(HumanTrigger::Start, &blocked, STALE), Finding::Apply);
        assert_eq!(judge(HumanTrigger::Stop, &running, STALE), Finding::Apply);
        assert!(matches!(
            judge(
                HumanTrigger::Stop,
                &running,
                Found::Board {
                    after_task: Some(false)
                }
            ),
            Finding::Superseded(_)
        ));
    }
}
