//! The [`Reconcile`] port over the intake: re-evaluating a delivery that was never acted
//! on, reading a linked task's card on the board, listing the tasks waiting on Gitea's CI.
//! What a late trigger comes to is `domain::reconcile::judge`; acting on it is the intake's
//! own path (the task actor decides), journaled like any delivery.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::domain::reconcile::{Finding, Found, judge};
use orchestrator_actors::domain::statuses::HumanTrigger;
use orchestrator_actors::ports::{
    BoardCheck, Journaled, NewEvent, Reconcile, Redone, Settlement, TaskRecord,
};
use serde_json::{Value, json};

use super::payload::{self, PlaneDelivery};
use super::{Intake, signature};
use crate::plane::PlaneError;
use crate::plane::board::{self, PLANE};
use crate::store::SqliteStore;

/// The intake, as the reconciler sees it.
pub struct IntakeReconciler {
    /// The intake whose deliveries are re-evaluated.
    intake: Arc<Intake>,
    /// The store, for what the reconciler reads.
    store: Arc<SqliteStore>,
    /// The newest delivery when this boot began: one up to it without an outcome was left
    /// by an earlier boot.
    watermark: i64,
    /// A delivery of this boot without an outcome this long is no longer being acted on.
    stale_after: Duration,
}

impl IntakeReconciler {
    /// A reconciler's view over `intake`; deliveries of this boot left without an outcome
    /// for `stale_after` are taken up too.
    pub async fn new(
        intake: Arc<Intake>,
        store: Arc<SqliteStore>,
        stale_after: Duration,
    ) -> Result<Self, orchestrator_actors::ports::StoreError> {
        let watermark = store.last_event_id().await?;
        Ok(Self {
            intake,
            store,
            watermark,
            stale_after,
        })
    }
}

/// Whether `later` (RFC 3339, as Plane or SQLite write it) is at or after `than`; `None`
/// when either cannot be read.
fn at_or_after(later: &str, than: &str) -> Option<bool> {
    let parse = |t: &str| {
        let t = t.trim();
        let t = t
            .strip_suffix("+00:00")
            .map_or(t.to_string(), |t| format!("{t}Z"));
        humantime::parse_rfc3339_weak(&t).ok()
    };
    Some(parse(later)? >= parse(than)?)
}

/// Plane's state-change body for a transition found on the board, so that it is journaled
/// — and, should acting on it fail, re-read — like any delivery.
fn reconciled_body(project: &str, issue: &crate::plane::PlaneIssue) -> Value {
    json!({
        "event": "issue", "action": "updated",
        "data": {
            "id": issue.id, "project": project, "sequence_id": issue.sequence_id,
            "name": issue.name, "state": {"id": issue.state},
        },
        "activity": {"field": "state_id", "new_value": issue.state, "actor": null},
    })
}

impl IntakeReconciler {
    async fn settle(
        &self,
        id: i64,
        task: Option<WorkItemId>,
        outcome: String,
    ) -> Result<(), String> {
        self.intake
            .journal
            .settle_events(vec![Settlement {
                id,
                work_item_id: task,
                outcome,
                error: None,
            }])
            .await
            .map_err(|e| e.to_string())
    }

    /// Journals what re-evaluating delivery `id` came to.
    async fn conclude(&self, id: i64, redone: Redone) -> Redone {
        let (task, outcome, error) = match &redone {
            Redone::Acted { task, outcome } => {
                (task.clone(), format!("reconciled: {outcome}"), None)
            }
            Redone::Superseded { task, reason } => {
                (task.clone(), format!("superseded: {reason}"), None)
            }
            Redone::Failed { task, error } => (task.clone(), "failed".into(), Some(error.clone())),
        };
        let written = self
            .intake
            .journal
            .settle_events(vec![Settlement {
                id,
                work_item_id: task.clone(),
                outcome,
                error,
            }])
            .await;
        match written {
            Ok(()) => redone,
            Err(e) => Redone::Failed {
                task,
                error: format!("cannot journal the outcome: {e}"),
            },
        }
    }

    /// A Plane state change, re-evaluated: the card must still stand where the delivery put
    /// it, and the judge must say the task still waits for it.
    async fn redo_plane(&self, d: PlaneDelivery, received_at: &str) -> Redone {
        let superseded =
            |task: Option<WorkItemId>, reason: String| Redone::Superseded { task, reason };
        let failed = |task: Option<WorkItemId>, error: String| Redone::Failed { task, error };
        if let Some(why) = self.intake.plane_ignores(&d) {
            return superseded(None, why);
        }
        let PlaneDelivery::StateChange {
            project,
            issue,
            state_id,
            ..
        } = &d
        else {
            return superseded(None, "nothing to act on".into());
        };
        let (Some(plane), Some(registered)) =
            (&self.intake.plane, self.intake.projects.by_plane(project))
        else {
            return superseded(None, "Plane is no longer configured for it".into());
        };
        let states = match plane.states.get(project).await {
            Ok(states) => states,
            Err(e) => return failed(None, format!("cannot read the board's states: {e}")),
        };
        let Some(trigger) = board::trigger(&registered.plane_states, state_id, &states) else {
            return superseded(None, "its status triggers nothing".into());
        };
        let now = match plane.client.get_issue(project, &issue.id).await {
            Ok(now) => now,
            Err(e) => return failed(None, format!("cannot read issue {}: {e}", issue.id)),
        };
        if &now.state != state_id {
            let name = states
                .iter()
                .find(|s| s.id == now.state)
                .map_or("another status", |s| s.name.as_str());
            return superseded(None, format!("the card has since moved to {name}"));
        }
        let task = match self.intake.links.linked_task(PLANE, &issue.id).await {
            Ok(task) => task,
            Err(e) => return failed(None, e.to_string()),
        };
        if let Some(id) = task.clone() {
            let record = match self.intake.store.load_task(&id).await {
                Ok(Some(record)) => record,
                Ok(None) => return failed(task, format!("task {id} is linked but not stored")),
                Err(e) => return failed(task, e.to_string()),
            };
            let after_task = at_or_after(received_at, &record.updated_at).unwrap_or(false);
            match judge(trigger, &record, Found::Delivery { after_task }) {
                Finding::Apply => {}
                Finding::InStep => {
                    return superseded(task, "the task is already where it asks".into());
                }
                Finding::Superseded(why) | Finding::Ambiguous(why) => return superseded(task, why),
            }
        } else if trigger != HumanTrigger::Start {
            return superseded(None, format!("issue {} has no task", issue.id));
        }
        match self.intake.act_on_plane(d).await {
            (task, Ok(outcome)) => Redone::Acted { task, outcome },
            (task, Err(error)) => Redone::Failed { task, error },
        }
    }

    /// A Gitea delivery, re-evaluated against the forge as it is now.
    async fn redo_gitea(&self, kind: &str, body: &[u8]) -> Redone {
        let event = match kind {
            "pull_request.merged" => "pull_request",
            other => other,
        };
        let delivery = payload::gitea_fields(body)
            .map_err(|e| e.to_string())
            .and_then(|fields| payload::gitea(event, &fields));
        let d = match delivery {
            Ok(d) => d,
            Err(e) => {
                return Redone::Superseded {
                    task: None,
                    reason: format!("its body cannot be read again: {e}"),
                };
            }
        };
        if let Some(why) = self.intake.gitea_ignores(&d) {
            return Redone::Superseded {
                task: None,
                reason: why,
            };
        }
        if matches!(d, payload::GiteaDelivery::Push { .. }) {
            // A branch head is news only when it comes: replaying it could undo a later push.
            return Redone::Superseded {
                task: None,
                reason:
                    "a missed push is not replayed; later pushes and the forge's own state stand"
                        .into(),
            };
        }
        // With no branches given, a status is traced through the forge's open PRs now.
        match self.intake.act_on_gitea(d, Vec::new()).await {
            (task, Ok(outcome)) => Redone::Acted { task, outcome },
            (task, Err(error)) => Redone::Failed { task, error },
        }
    }

    /// Applies a transition found on the board: journaled first, then acted on like a
    /// delivery, then settled.
    async fn apply_found(
        &self,
        task: &TaskRecord,
        project: &str,
        issue: &crate::plane::PlaneIssue,
    ) -> BoardCheck {
        let body = reconciled_body(project, issue);
        let Ok(d) = payload::plane(&body) else {
            return BoardCheck::Failed("cannot shape the reconciled transition".into());
        };
        let bytes = body.to_string().into_bytes();
        let event = NewEvent {
            source: PLANE.into(),
            kind: "issue.updated.state.reconciled".into(),
            delivery_id: Some(format!(
                "reconciled:{}:{}:{}",
                issue.id, issue.state, task.updated_at
            )),
            body_hash: signature::body_hash(&bytes),
            payload: bytes,
            scope: Some(project.to_string()),
            settled: None,
            commit: None,
        };
        let id = match self
            .intake
            .journal
            .journal_event(event, None, self.intake.settings.dedup_window)
            .await
        {
            Ok(Journaled::New { id, .. }) => id,
            // Found and journaled before: its delivery is the pending one, if any.
            Ok(Journaled::Duplicate) => return BoardCheck::InStep,
            Err(e) => return BoardCheck::Failed(format!("cannot journal the transition: {e}")),
        };
        let (acted_task, outcome) = self.intake.act_on_plane(d).await;
        match outcome {
            Ok(outcome) => {
                let written = self
                    .settle(id, acted_task, format!("reconciled: {outcome}"))
                    .await;
                match written {
                    Ok(()) => BoardCheck::Applied(outcome),
                    Err(e) => BoardCheck::Failed(format!("cannot journal the outcome: {e}")),
                }
            }
            Err(error) => {
                let _ = self
                    .intake
                    .journal
                    .settle_events(vec![Settlement {
                        id,
                        work_item_id: acted_task,
                        outcome: "failed".into(),
                        error: Some(error.clone()),
                    }])
                    .await;
                BoardCheck::Failed(error)
            }
        }
    }
}

#[async_trait]
impl Reconcile for IntakeReconciler {
    async fn pending_deliveries(&self) -> Result<Vec<i64>, String> {
        let before = SystemTime::now()
            .checked_sub(self.stale_after)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let before = humantime::format_rfc3339_millis(before).to_string();
        self.store
            .unsettled_events(self.watermark, before)
            .await
            .map_err(|e| e.to_string())
    }

    async fn redo_delivery(&self, id: i64) -> Redone {
        let head = match self.store.journaled_event(id).await {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Redone::Failed {
                    task: None,
                    error: format!("delivery {id} is not in the journal"),
                };
            }
            Err(e) => {
                return Redone::Failed {
                    task: None,
                    error: e.to_string(),
                };
            }
        };
        let body = match self.intake.journal.event_body(id).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                let gone = Redone::Superseded {
                    task: None,
                    reason: "its body is no longer journaled".into(),
                };
                return self.conclude(id, gone).await;
            }
            Err(e) => {
                return Redone::Failed {
                    task: None,
                    error: e.to_string(),
                };
            }
        };
        let redone = match head.source.as_str() {
            "plane" => match serde_json::from_slice::<Value>(&body)
                .map_err(|e| e.to_string())
                .and_then(|json| payload::plane(&json))
            {
                Ok(d) => self.redo_plane(d, &head.received_at).await,
                Err(e) => Redone::Superseded {
                    task: None,
                    reason: format!("its body cannot be read again: {e}"),
                },
            },
            "gitea" => self.redo_gitea(&head.kind, &body).await,
            other => Redone::Superseded {
                task: None,
                reason: format!("deliveries from {other} are not re-evaluated"),
            },
        };
        self.conclude(id, redone).await
    }

    async fn abandon_delivery(&self, id: i64, reason: &str) -> Result<(), String> {
        // Its error stays: it was never acted on (GET /metrics counts it `failed`).
        self.intake
            .journal
            .settle_events(vec![Settlement {
                id,
                work_item_id: None,
                outcome: reason.to_string(),
                error: Some(reason.to_string()),
            }])
            .await
            .map_err(|e| e.to_string())
    }

    async fn linked_tasks(&self) -> Result<Vec<WorkItemId>, String> {
        if self.intake.plane.is_none() {
            return Ok(Vec::new());
        }
        self.store
            .linked_active_tasks(PLANE)
            .await
            .map_err(|e| e.to_string())
    }

    async fn check_board(&self, id: &WorkItemId) -> BoardCheck {
        let Some(plane) = &self.intake.plane else {
            return BoardCheck::InStep;
        };
        let link = match self.intake.links.task_link(id).await {
            Ok(Some(link)) if link.tracker == PLANE => link,
            Ok(_) => return BoardCheck::InStep,
            Err(e) => return BoardCheck::Failed(e.to_string()),
        };
        let project = &link.project_ref;
        let Some(registered) = self.intake.projects.by_plane(project) else {
            return BoardCheck::Ambiguous(format!(
                "its issue is in Plane project {project}, which is not in the registry"
            ));
        };
        let states = match plane.states.get(project).await {
            Ok(states) => states,
            Err(e) => return BoardCheck::Failed(format!("cannot read the board's states: {e}")),
        };
        let issue = match plane.client.get_issue(project, &link.issue_ref).await {
            Ok(issue) => issue,
            Err(PlaneError::Status { status: 404, .. }) => {
                return BoardCheck::Ambiguous(format!(
                    "its issue {} is no longer on the board",
                    link.issue_ref
                ));
            }
            Err(e) => return BoardCheck::Failed(format!("cannot read its issue: {e}")),
        };
        let Some(trigger) = board::trigger(&registered.plane_states, &issue.state, &states) else {
            return BoardCheck::InStep;
        };
        let task = match self.intake.store.load_task(id).await {
            Ok(Some(task)) => task,
            Ok(None) => return BoardCheck::InStep,
            Err(e) => return BoardCheck::Failed(e.to_string()),
        };
        let after_task = issue
            .updated_at
            .as_deref()
            .and_then(|at| at_or_after(at, &task.updated_at));
        match judge(trigger, &task, Found::Board { after_task }) {
            Finding::Apply => self.apply_found(&task, project, &issue).await,
            Finding::InStep => BoardCheck::InStep,
            Finding::Superseded(why) => BoardCheck::Superseded(why),
            Finding::Ambiguous(why) => BoardCheck::Ambiguous(why),
        }
    }

    async fn awaiting_ci(&self) -> Result<Vec<WorkItemId>, String> {
        if self.intake.gitea.is_none() {
            return Ok(Vec::new());
        }
        let gating = self.store.gating_tasks().await.map_err(|e| e.to_string())?;
        Ok(gating
            .into_iter()
            .filter(|(_, repo)| {
                self.intake
                    .projects
                    .get(repo)
                    .is_some_and(|p| p.gitea_repo.is_some())
            })
            .map(|(id, _)| id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::payload::IssueSnapshot;

    #[test]
    fn times_compare_across_plane_and_sqlite_spellings() {
        assert_eq!(
            at_or_after("2026-01-02T10:00:00.123456Z", "2026-01-02T09:59:59.999Z"),
            Some(true)
        );
        assert_eq!(
            at_or_after("2026-01-02T10:00:00+00:00", "2026-01-02T10:00:01.000Z"),
            Some(false)
        );
        assert_eq!(at_or_after("yesterday", "2026-01-02T10:00:01.000Z"), None);
    }

    #[test]
    fn a_reconciled_transition_reads_back_as_a_state_change() {
        let issue: crate::plane::PlaneIssue = serde_json::from_value(json!({
            "id": "i1", "name": "Login", "state": "s2", "sequence_id": 7, "project": "p1",
        }))
        .unwrap();
        let d = payload::plane(&reconciled_body("p1", &issue)).unwrap();
        let PlaneDelivery::StateChange {
            project,
            issue: IssueSnapshot { id, .. },
            state_id,
            ..
        } = d
        else {
            panic!("not a state change");
        };
        assert_eq!(
            (project.as_str(), id.as_str(), state_id.as_str()),
            ("p1", "i1", "s2")
        );
    }
}
