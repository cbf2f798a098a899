//! What a Plane delivery asks for. A state change on a project's board is routed by the
//! project's status names — only states that are on its board can trigger anything — to a
//! task start (QG-0, then the creation rule) or resume, or a human decision for the task's
//! actor. An issue refused a start is answered on its card through the [`Board`] port.
//!
//! [`Board`]: orchestrator_actors::ports::Board

use orchestrator_actors::actors::task::HumanAction;
use orchestrator_actors::domain::creation::{CreateError, Origin, TaskRequest};
use orchestrator_actors::domain::gates;
use orchestrator_actors::domain::statuses::HumanTrigger;
use orchestrator_actors::ports::{BoardStatus, Phase, TrackerLink};
use orchestrator_actors::{Stage, WorkItemId};
use tracing::info;

use super::payload::{IssueSnapshot, PlaneDelivery, html_to_text};
use super::{Acted, Intake};
use crate::config::projects::Project;
use crate::plane::board::{self, PLANE};

impl Intake {
    /// Why a Plane delivery needs no action, if it needs none.
    pub(super) fn plane_ignores(&self, d: &PlaneDelivery) -> Option<String> {
        let Some(project) = d.project() else {
            return Some(format!("{} names no project", d.kind()));
        };
        if self.projects.by_plane(project).is_none() {
            return Some(format!("Plane project {project} is not in the registry"));
        }
        if let Some(actor) = d.actor()
            && self.bots.is_ours(actor)
        {
            return Some(format!("caused by the orchestrator's own account {actor}"));
        }
        match d {
            PlaneDelivery::StateChange { .. } => None,
            PlaneDelivery::Other { kind, .. } => Some(format!("{kind} triggers nothing")),
        }
    }

    /// Acts on a state change; the task concerned and the outcome, in words.
    pub(super) async fn act_on_plane(&self, d: PlaneDelivery) -> Acted {
        let PlaneDelivery::StateChange {
            project,
            issue,
            state_id,
            ..
        } = d
        else {
            return (None, Ok("nothing to do".into()));
        };
        let (Some(plane), Some(registered)) = (&self.plane, self.projects.by_plane(&project))
        else {
            return (None, Ok("nothing to do".into()));
        };
        let states = match plane.states.get(&project).await {
            Ok(states) => states,
            Err(e) => return (None, Err(format!("cannot read the board's states: {e}"))),
        };
        let Some(trigger) = board::trigger(&registered.plane_states, &state_id, &states) else {
            let name = states
                .iter()
                .find(|s| s.id == state_id)
                .map_or("a state not on the board", |s| s.name.as_str());
            return (None, Ok(format!("ignored: {name} triggers nothing")));
        };
        let task = match self.links.linked_task(PLANE, &issue.id).await {
            Ok(task) => task,
            Err(e) => return (None, Err(e.to_string())),
        };
        let outcome = match (trigger, &task) {
            (HumanTrigger::Start, None) => return self.start(registered, &project, issue).await,
            (HumanTrigger::Start, Some(id)) => self.resume(id).await,
            (_, None) => Ok(format!(
                "ignored: issue {} has no task (move it to a start status first)",
                issue.id
            )),
            (HumanTrigger::Approve, Some(id)) => decided(id, HumanAction::Approve).await,
            (HumanTrigger::ConfirmDeploy, Some(id)) => {
                decided(id, HumanAction::ConfirmDeploy).await
            }
            (HumanTrigger::Stop, Some(id)) => {
                decided(id, HumanAction::Cancel("STOP on the Plane board".into())).await
            }
            (HumanTrigger::Reject, Some(id)) => {
                let reason = self.rejection_reason(&project, &issue.id).await;
                decided(id, HumanAction::Reject(reason)).await
            }
        };
        (task, outcome)
    }

    /// Resumes a task moved back to a start status: a blocked one is retried (its stage
    /// resumes with a fresh retry budget), a paused one resumed; anything else is a no-op.
    async fn resume(&self, id: &WorkItemId) -> Result<String, String> {
        match self.store.load_task(id).await.map_err(|e| e.to_string())? {
            // A cancelled task's issue moved to a start status again: a fresh task.
            Some(task) if task.stage == Stage::Cancelled => match self.creator.restart(&task).await
            {
                Ok(new) => Ok(format!(
                    "task {id} was cancelled: restarted as {}",
                    new.work_item_id
                )),
                Err(e) => Err(e.to_string()),
            },
            Some(task) if task.stage.is_terminal() => {
                Ok(format!("ignored: task {id} is already {}", task.stage))
            }
            Some(task) if task.phase == Phase::Blocked => {
                let retry = HumanAction::Retry {
                    by: "the Plane board".into(),
                    note: None,
                };
                decided(id, retry).await
            }
            Some(_) => decided(id, HumanAction::Resume).await,
            None => Err(format!("task {id} is linked but not in the store")),
        }
    }

    /// QG-0, then the task through the creation rule: `<prefix>-<sequence_id>`, linked to
    /// its issue. An issue refused either way goes to Blocked, with a comment saying why.
    async fn start(&self, project: &Project, plane_project: &str, issue: IssueSnapshot) -> Acted {
        let Some(plane) = &self.plane else {
            return (None, Ok("nothing to do".into()));
        };
        // The payload may lack the description, the title or the number: the API has the
        // whole issue.
        let (description, name, number) = match (
            issue.description.clone(),
            issue.name.clone(),
            issue.sequence_id,
        ) {
            (Some(description), Some(name), Some(number)) => (description, name, number),
            (description, name, number) => {
                let full = match plane.client.get_issue(plane_project, &issue.id).await {
                    Ok(full) => full,
                    Err(e) => {
                        return (None, Err(format!("cannot fetch issue {}: {e}", issue.id)));
                    }
                };
                let description = description.unwrap_or_else(|| {
                    full.description_stripped
                        .clone()
                        .filter(|t| !t.trim().is_empty())
                        .unwrap_or_else(|| html_to_text(&full.description_html))
                });
                (
                    description,
                    name.unwrap_or(full.name),
                    number.unwrap_or(full.sequence_id),
                )
            }
        };
        let link = TrackerLink {
            tracker: PLANE.into(),
            project_ref: plane_project.into(),
            issue_ref: issue.id.clone(),
        };
        if let Err(refusal) = gates::qg0(&name, &description, self.settings.qg0_title_max) {
            let shown = self.refuse(&link, &refusal.comment()).await;
            return (None, shown.map(|()| refusal.summary()));
        }
        let request = TaskRequest {
            repo: project.repo.clone(),
            title: name,
            description,
            labels: issue.labels.clone(),
            origin: Origin::Issue {
                link: link.clone(),
                number,
            },
        };
        match self.creator.create(request).await {
            Ok(task) => {
                let id = task.work_item_id;
                info!(task = %id, issue = %issue.id, "task created from Plane");
                (
                    Some(id.clone()),
                    Ok(format!("task {id} created and started")),
                )
            }
            Err(CreateError::Taken { id, what }) => {
                // Two deliveries raced, or the id belongs to another task: the guard holds.
                if let Ok(Some(existing)) = self.links.linked_task(PLANE, &issue.id).await {
                    return (Some(existing.clone()), self.resume(&existing).await);
                }
                let text =
                    format!("The task cannot start: work item id {id} is already taken ({what}).");
                let _ = self.refuse(&link, &text).await;
                (None, Err(format!("{id} is already taken: {what}")))
            }
            Err(CreateError::NotStarted { id, reason }) => (Some(id), Err(reason)),
            Err(refused) if refused.is_bad_request() => {
                let text = format!(
                    "The task was not started: {refused}.\nFix the issue and move it to a start status again."
                );
                let shown = self.refuse(&link, &text).await;
                (None, shown.map(|()| format!("refused: {refused}")))
            }
            Err(e) => (None, Err(e.to_string())),
        }
    }

    /// Moves an issue that gets no task to Blocked and says why in a comment, through the
    /// board; both are tried, the first failure is the answer.
    async fn refuse(&self, issue: &TrackerLink, text: &str) -> Result<(), String> {
        let moved = self.board.show_issue(issue, BoardStatus::Blocked).await;
        let commented = self.board.comment_issue(issue, None, text).await;
        moved.and(commented)
    }

    /// The latest comment on the issue by a human (not one of the orchestrator's accounts).
    async fn rejection_reason(&self, plane_project: &str, issue: &str) -> String {
        const NONE: &str = "rejected on the Plane board (no comment gave a reason)";
        let Some(plane) = &self.plane else {
            return NONE.into();
        };
        match plane.client.list_comments(plane_project, issue).await {
            Ok(comments) => comments
                .iter()
                .filter(|c| !c.actor.as_deref().is_some_and(|a| self.bots.is_ours(a)))
                .max_by(|a, b| a.created_at.cmp(&b.created_at))
                .map(|c| html_to_text(&c.comment_html))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| NONE.into()),
            Err(e) => {
                tracing::warn!(%issue, error = %e, "cannot read the rejection's comments");
                NONE.into()
            }
        }
    }
}

/// Hands a human decision to task `id`; the outcome in words.
async fn decided(id: &WorkItemId, action: HumanAction) -> Result<String, String> {
    let what = format!("{action:?}");
    let reply = super::tell_task(id, action).await?;
    Ok(if reply.changed {
        format!(
            "{what}: task {id} is now {} ({})",
            reply.stage,
            reply.phase.as_str()
        )
    } else {
        format!(
            "{what}: changed nothing for task {id} ({}, {})",
            reply.stage,
            reply.phase.as_str()
        )
    })
}
