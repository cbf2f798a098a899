//! The Plane side of the tracker board: which of a project's Plane states a status name of
//! the domain ([`StatusNames`]: triggers and pipeline columns) is, and [`PlaneBoard`], the
//! [`Board`] port for tasks (and refused issues) that came from Plane. What a status means is
//! the domain's (`orchestrator_actors::domain::statuses`); this module only maps state ids and names
//! to it. Tasks without a Plane link are on the local tracker: no-op.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_actors::Role;
use orchestrator_actors::domain::statuses::{HumanTrigger, StatusNames};
use orchestrator_actors::ports::{
    BaseGroup, Board, BoardStatus, LocalBoard, TaskRecord, TrackerLink, TrackerLinks,
};

use crate::config::projects::Projects;
use crate::intake::BotAccounts;
use crate::plane::{PlaneClient, PlaneState, StateGroup, StatesCache};
use crate::telegram::render::escape;

/// The tracker name in task links.
pub const PLANE: &str = "plane";

/// What moving a card to the state `state_id` asks for — only if that state is on the
/// project's board (`states`) under a trigger's name. A status the board lacks can never
/// trigger anything (fail-closed), whatever a payload claims its name is.
pub fn trigger(names: &StatusNames, state_id: &str, states: &[PlaneState]) -> Option<HumanTrigger> {
    let state = states.iter().find(|s| s.id == state_id)?;
    names.trigger(&state.name)
}

/// The state a card in `status` goes to: the board's own status of that name, else the first
/// (by position) state of the status's base group that steers nothing — a plain one (not
/// another pipeline column) when the board has one.
pub fn resolve<'s>(
    names: &StatusNames,
    status: BoardStatus,
    states: &'s [PlaneState],
) -> Option<&'s PlaneState> {
    let name = names.column(status);
    if let Some(state) = states.iter().find(|s| s.name == name) {
        return Some(state);
    }
    let group = match status.base() {
        BaseGroup::Started => StateGroup::Started,
        BaseGroup::Completed => StateGroup::Completed,
        BaseGroup::Cancelled => StateGroup::Cancelled,
    };
    // Prefer a plain base status (not another pipeline column) so the card does not claim a
    // stage it is not in; never a status that steers tasks.
    let candidates = || {
        states
            .iter()
            .filter(move |s| s.group == group && !names.is_trigger(&s.name))
    };
    candidates()
        .filter(|s| !names.is_column(&s.name))
        .min_by(|a, b| a.sequence.total_cmp(&b.sequence))
        .or_else(|| candidates().min_by(|a, b| a.sequence.total_cmp(&b.sequence)))
}

/// The board of tasks: Plane for those linked to a Plane issue, the local tracker otherwise.
pub struct PlaneBoard {
    /// The Plane API.
    client: Arc<PlaneClient>,
    /// Each project's states, cached.
    states: Arc<StatesCache>,
    /// Which issue a task came from.
    links: Arc<dyn TrackerLinks>,
    /// The project registry: each Plane project's status names.
    projects: Arc<Projects>,
    /// The orchestrator's own accounts, learned from what Plane says wrote a comment.
    bots: Arc<BotAccounts>,
}

impl PlaneBoard {
    /// A board over `client` for the Plane projects of `projects`.
    pub fn new(
        client: Arc<PlaneClient>,
        states: Arc<StatesCache>,
        links: Arc<dyn TrackerLinks>,
        projects: Arc<Projects>,
        bots: Arc<BotAccounts>,
    ) -> Self {
        Self {
            client,
            states,
            links,
            projects,
            bots,
        }
    }

    /// The Plane issue of `task`, if it came from Plane.
    async fn issue_of(&self, task: &TaskRecord) -> Result<Option<TrackerLink>, String> {
        let link = self
            .links
            .task_link(&task.work_item_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(link.filter(|l| l.tracker == PLANE))
    }
}

#[async_trait]
impl Board for PlaneBoard {
    async fn show(&self, task: &TaskRecord, status: BoardStatus) -> Result<(), String> {
        match self.issue_of(task).await? {
            Some(issue) => self.show_issue(&issue, status).await,
            None => LocalBoard.show(task, status).await,
        }
    }

    async fn comment(
        &self,
        task: &TaskRecord,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String> {
        match self.issue_of(task).await? {
            Some(issue) => self.comment_issue(&issue, author, text).await,
            None => LocalBoard.comment(task, author, text).await,
        }
    }

    async fn show_issue(&self, issue: &TrackerLink, status: BoardStatus) -> Result<(), String> {
        if issue.tracker != PLANE {
            return LocalBoard.show_issue(issue, status).await;
        }
        let project = &issue.project_ref;
        let states = self.states.get(project).await.map_err(|e| e.to_string())?;
        let plain = StatusNames::default();
        let names = self
            .projects
            .by_plane(project)
            .map_or(&plain, |p| &p.plane_states);
        let Some(state) = resolve(names, status, &states) else {
            return Err(format!(
                "the board of Plane project {project} has no status for {} and no {:?} base status to fall back on",
                status.default_name(),
                status.base()
            ));
        };
        self.client
            .set_issue_state(project, &issue.issue_ref, &state.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn comment_issue(
        &self,
        issue: &TrackerLink,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String> {
        if issue.tracker != PLANE {
            return LocalBoard.comment_issue(issue, author, text).await;
        }
        let comment = self
            .client
            .create_comment(
                &issue.project_ref,
                &issue.issue_ref,
                &comment_html(text),
                author,
            )
            .await
            .map_err(|e| e.to_string())?;
        // Plane echoes these comments back as webhooks: their author must be known as ours.
        if let Some(actor) = &comment.actor {
            self.bots.learn(actor);
        }
        Ok(())
    }
}

/// A plain-text comment as Plane's `comment_html`: escaped, one paragraph per line.
pub fn comment_html(text: &str) -> String {
    text.lines()
        .map(|line| format!("<p>{}</p>", escape(line)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, name: &str, group: &str, sequence: f64) -> PlaneState {
        PlaneState {
            id: id.into(),
            name: name.into(),
            group: serde_json::from_value(serde_json::json!(group)).unwrap(),
            sequence,
        }
    }

    fn board(without: &[&str]) -> Vec<PlaneState> {
        [
            ("s1", "Backlog", "backlog"),
            ("s2", "In Progress", "started"),
            ("s3", "Analysis", "started"),
            ("s4", "Approved", "started"),
            ("s5", "Confirm Deploy", "started"),
            ("s6", "Working", "started"),
            ("s7", "Done", "completed"),
            ("s8", "Cancelled", "cancelled"),
            ("s9", "STOP", "cancelled"),
        ]
        .iter()
        .enumerate()
        .filter(|(_, (_, name, _))| !without.contains(name))
        .map(|(i, (id, name, group))| state(id, name, group, i as f64))
        .collect()
    }

    #[test]
    fn triggers_come_only_from_states_on_the_board() {
        let map = StatusNames::default();
        let states = board(&[]);
        assert_eq!(trigger(&map, "s2", &states), Some(HumanTrigger::Start));
        assert_eq!(trigger(&map, "s4", &states), Some(HumanTrigger::Approve));
        assert_eq!(
            trigger(&map, "s5", &states),
            Some(HumanTrigger::ConfirmDeploy)
        );
        assert_eq!(trigger(&map, "s9", &states), Some(HumanTrigger::Stop));
        assert_eq!(trigger(&map, "s3", &states), None);
        // A board without Confirm Deploy: no id on it can release a deploy.
        let states = board(&["Confirm Deploy"]);
        assert!(
            states
                .iter()
                .all(|s| trigger(&map, &s.id, &states) != Some(HumanTrigger::ConfirmDeploy))
        );
        assert_eq!(trigger(&map, "s5", &states), None);
    }

    #[test]
    fn a_project_may_rename_its_statuses() {
        let project: crate::config::projects::Project = serde_json::from_str(
            r#"{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t",
                "plane_states":{"approved":"Ship it","done":"Released"}}"#,
        )
        .unwrap();
        let map = &project.plane_states;
        let states = vec![
            state("x", "Ship it", "started", 1.0),
            state("y", "Approved", "started", 2.0),
            state("z", "Released", "completed", 3.0),
        ];
        assert_eq!(trigger(map, "x", &states), Some(HumanTrigger::Approve));
        assert_eq!(trigger(map, "y", &states), None);
        assert_eq!(resolve(map, BoardStatus::Done, &states).unwrap().id, "z");
    }

    #[test]
    fn a_missing_status_degrades_to_a_base_status_that_steers_nothing() {
        let map = &StatusNames::default();
        let states = board(&[]);
        assert_eq!(
            resolve(map, BoardStatus::Analysis, &states).unwrap().id,
            "s3"
        );
        // No "Testing": the first started state that is not a trigger ("In Progress",
        // "Approved" and "Confirm Deploy" steer tasks and are never a fallback).
        assert_eq!(
            resolve(map, BoardStatus::Testing, &states).unwrap().name,
            "Working"
        );
        assert_eq!(resolve(map, BoardStatus::Done, &states).unwrap().id, "s7");
        let states = board(&["Cancelled"]);
        assert!(
            resolve(map, BoardStatus::Cancelled, &states).is_none(),
            "STOP is a trigger"
        );
    }

    #[test]
    fn comments_are_escaped_html_paragraphs() {
        assert_eq!(
            comment_html("a <b> & c\nnext"),
            "<p>a &lt;b&gt; &amp; c</p><p>next</p>"
        );
    }
}
