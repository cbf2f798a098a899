//! What a Plane delivery asks for. A state change on a project's board is routed by the
//! project's status map — only states that are on its board can trigger anything — to a
//! task start (QG-0 first) or resume, or a human decision for the task's actor.

use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::{BoardStatus, NewTask, StoreError, TrackerLink};
use orchestrator_actors::task::{HumanAction, spawn_task_actor};
use tracing::info;

use super::payload::{IssueSnapshot, PlaneDelivery, html_to_text};
use super::{Acted, Intake};
use crate::board::{StatusMap, Trigger, comment_html};
use crate::projects::Project;

/// The tracker name in task links.
pub(crate) const PLANE: &str = "plane";

impl Intake {
    /// Why a Plane delivery needs no action, if it needs none.
    pub(super) fn plane_ignores(&self, d: &PlaneDelivery) -> Option<String> {
        let Some(project) = d.project() else {
            return Some(format!("{} names no project", d.kind()));
        };
        if !self.by_plane.contains_key(project) {
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
        let (Some(plane), Some(registered)) = (&self.plane, self.by_plane.get(&project)) else {
            return (None, Ok("nothing to do".into()));
        };
        let states = match plane.states.get(&project).await {
            Ok(states) => states,
            Err(e) => return (None, Err(format!("cannot read the board's states: {e}"))),
        };
        let Some(trigger) = StatusMap::of(registered).trigger(&state_id, &states) else {
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
            (Trigger::Start, None) => return self.start(registered, &project, issue).await,
            (Trigger::Start, Some(id)) => self.resume(id).await,
            (_, None) => Ok(format!(
                "ignored: issue {} has no task (move it to a start status first)",
                issue.id
            )),
            (Trigger::Approve, Some(id)) => decided(id, HumanAction::Approve).await,
            (Trigger::ConfirmDeploy, Some(id)) => decided(id, HumanAction::ConfirmDeploy).await,
            (Trigger::Stop, Some(id)) => {
                decided(id, HumanAction::Cancel("STOP on the Plane board".into())).await
            }
            (Trigger::Reject, Some(id)) => {
                let reason = self.rejection_reason(&project, &issue.id).await;
                decided(id, HumanAction::Reject(reason)).await
            }
        };
        (task, outcome)
    }

    /// Resumes a task moved back to a start status (a no-op unless it was paused).
    async fn resume(&self, id: &WorkItemId) -> Result<String, String> {
        match self.store.load_task(id).await.map_err(|e| e.to_string())? {
            Some(task) if task.stage.is_terminal() => {
                Ok(format!("ignored: task {id} is already {}", task.stage))
            }
            Some(_) => decided(id, HumanAction::Resume).await,
            None => Err(format!("task {id} is linked but not in the store")),
        }
    }

    /// QG-0, then the task: `<prefix>-<sequence_id>`, linked to its issue.
    async fn start(&self, project: &Project, plane_project: &str, issue: IssueSnapshot) -> Acted {
        let Some(plane) = &self.plane else {
            return (None, Ok("nothing to do".into()));
        };
        let description = match issue.description.clone() {
            Some(text) => text,
            // The payload may lack it: the API has the whole issue.
            None => match plane.client.get_issue(plane_project, &issue.id).await {
                Ok(full) => full
                    .description_stripped
                    .clone()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| html_to_text(&full.description_html)),
                Err(e) => return (None, Err(format!("cannot fetch issue {}: {e}", issue.id))),
            },
        };
        let problems = qg0(&issue.name, &description, self.settings.qg0_title_max);
        if !problems.is_empty() {
            let text = format!(
                "QG-0 failed, the task was not started:\n{}\nFix the issue and move it to a start status again.",
                problems
                    .iter()
                    .map(|p| format!("- {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let blocked = self
                .show_on_plane(
                    project,
                    plane_project,
                    &issue.id,
                    BoardStatus::Blocked,
                    &text,
                )
                .await;
            return (
                None,
                blocked.map(|()| format!("QG-0 failed: {}", problems.join("; "))),
            );
        }
        let id = match WorkItemId::parse(&format!("{}-{}", project.prefix, issue.sequence_id)) {
            Ok(id) => id,
            Err(e) => return (None, Err(format!("cannot name the task: {e}"))),
        };
        let task = NewTask {
            work_item_id: id.clone(),
            repo: project.repo.clone(),
            title: issue.name.trim().to_string(),
            description,
            labels: issue.labels.clone(),
        };
        let link = TrackerLink {
            tracker: PLANE.into(),
            project_ref: plane_project.into(),
            issue_ref: issue.id.clone(),
        };
        match self.links.create_linked_task(task, link).await {
            Ok(_) => {}
            Err(StoreError::Duplicate(what)) => {
                // Two deliveries raced, or the id belongs to another task: the guard holds.
                if let Ok(Some(existing)) = self.links.linked_task(PLANE, &issue.id).await {
                    return (Some(existing.clone()), self.resume(&existing).await);
                }
                let text =
                    format!("The task cannot start: work item id {id} is already taken ({what}).");
                let _ = self
                    .show_on_plane(
                        project,
                        plane_project,
                        &issue.id,
                        BoardStatus::Blocked,
                        &text,
                    )
                    .await;
                return (None, Err(format!("{id} is already taken: {what}")));
            }
            Err(e) => return (None, Err(format!("cannot create task {id}: {e}"))),
        }
        info!(task = %id, issue = %issue.id, "task created from Plane");
        let started = spawn_task_actor(self.task_deps.clone(), id.clone()).await;
        (
            Some(id.clone()),
            started.map(|()| format!("task {id} created and started")),
        )
    }

    /// Moves an issue that has no task to `status` and explains why in a comment.
    async fn show_on_plane(
        &self,
        project: &Project,
        plane_project: &str,
        issue: &str,
        status: BoardStatus,
        text: &str,
    ) -> Result<(), String> {
        let Some(plane) = &self.plane else {
            return Ok(());
        };
        let states = plane
            .states
            .get(plane_project)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(state) = StatusMap::of(project).resolve(status, &states) {
            plane
                .client
                .set_issue_state(plane_project, issue, &state.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        let comment = plane
            .client
            .create_comment(plane_project, issue, &comment_html(text), None)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(actor) = &comment.actor {
            self.bots.learn(actor);
        }
        Ok(())
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

/// QG-0: what keeps an issue from starting (empty when it may start).
pub fn qg0(title: &str, description: &str, title_max: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let title = title.trim();
    if title.is_empty() {
        problems.push("the title is empty".to_string());
    }
    let chars = title.chars().count();
    if chars > title_max {
        problems.push(format!(
            "the title is {chars} characters long; at most {title_max} are allowed"
        ));
    }
    if description.trim().is_empty() {
        problems.push("the description is empty: say what is wanted and why".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::qg0;

    #[test]
    fn qg0_lists_every_problem() {
        assert!(qg0("Add login", "Users need it.", 200).is_empty());
        let long = "x".repeat(201);
        let problems = qg0(&long, "  ", 200);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("201 characters"));
        assert!(problems[1].contains("description is empty"));
        assert_eq!(qg0("", "d", 200), vec!["the title is empty"]);
        // Characters, not bytes: 200 Cyrillic letters pass.
        assert!(qg0(&"я".repeat(200), "d", 200).is_empty());
    }
}
