//! The Plane side of the tracker: each project's map between its board's status names and
//! the orchestrator's logical keys (which statuses a human uses to steer a task, and which
//! column each pipeline stage shows in), and [`PlaneBoard`], the [`Board`] port for tasks
//! that came from Plane. Tasks without a Plane link are on the local tracker: no-op.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_actors::Role;
use orchestrator_actors::ports::{
    BaseGroup, Board, BoardStatus, LocalBoard, TaskRecord, TrackerLinks,
};

use crate::intake::BotAccounts;
use crate::plane::{PlaneClient, PlaneState, StateGroup, StatesCache};
use crate::projects::Project;
use crate::telegram::render::escape;

/// What a human moving a card to a status asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Start the task (QG-0 first), or resume it.
    Start,
    /// Approve the analysis.
    Approve,
    /// Reject the analysis (the reason is the latest human comment).
    Reject,
    /// Release the production deploy.
    ConfirmDeploy,
    /// Stop the task.
    Stop,
}

/// The statuses that steer a task: logical key, default name, meaning.
pub const TRIGGERS: [(&str, &str, Trigger); 6] = [
    ("to_analyse", "To Analyse", Trigger::Start),
    ("in_progress", "In Progress", Trigger::Start),
    ("approved", "Approved", Trigger::Approve),
    ("rejected", "Rejected", Trigger::Reject),
    ("confirm_deploy", "Confirm Deploy", Trigger::ConfirmDeploy),
    ("stop", "STOP", Trigger::Stop),
];

/// Every logical key a project's `plane_states` may rename.
pub const STATUS_KEYS: [&str; 17] = [
    "to_analyse",
    "in_progress",
    "approved",
    "rejected",
    "confirm_deploy",
    "stop",
    "analysis",
    "in_review",
    "architecture",
    "development",
    "review",
    "testing",
    "deploying",
    "awaiting_deploy",
    "done",
    "blocked",
    "cancelled",
];

/// One project's status names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusMap {
    /// Names that differ from the defaults, by logical key.
    overrides: BTreeMap<String, String>,
}

impl StatusMap {
    /// The map of `project`.
    pub fn of(project: &Project) -> Self {
        Self {
            overrides: project.plane_states.clone(),
        }
    }

    fn name<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.overrides.get(key).map_or(default, String::as_str)
    }

    /// What moving a card to the state `state_id` asks for — only if that state is on the
    /// project's board (`states`) under a trigger's name. A status the board lacks can never
    /// trigger anything (fail-closed), whatever a payload claims its name is.
    pub fn trigger(&self, state_id: &str, states: &[PlaneState]) -> Option<Trigger> {
        let state = states.iter().find(|s| s.id == state_id)?;
        TRIGGERS
            .iter()
            .find(|(key, default, _)| self.name(key, default) == state.name)
            .map(|(_, _, trigger)| *trigger)
    }

    /// Whether `name` steers tasks on this board (never a fallback column).
    fn is_trigger_name(&self, name: &str) -> bool {
        TRIGGERS
            .iter()
            .any(|(key, default, _)| self.name(key, default) == name)
    }

    /// The state a card in `status` goes to: the board's own status of that name, else the
    /// first (by position) state of the status's base group that steers nothing — a plain
    /// one (not another pipeline column) when the board has one.
    pub fn resolve<'s>(
        &self,
        status: BoardStatus,
        states: &'s [PlaneState],
    ) -> Option<&'s PlaneState> {
        let name = self.name(status.key(), status.default_name());
        if let Some(state) = states.iter().find(|s| s.name == name) {
            return Some(state);
        }
        let group = match status.base() {
            BaseGroup::Started => StateGroup::Started,
            BaseGroup::Completed => StateGroup::Completed,
            BaseGroup::Cancelled => StateGroup::Cancelled,
        };
        // Prefer a plain base status (not another pipeline column) so the card does not
        // claim a stage it is not in; never a status that steers tasks.
        let is_column = |name: &str| {
            BoardStatus::ALL
                .iter()
                .any(|b| self.name(b.key(), b.default_name()) == name)
        };
        let candidates = || {
            states
                .iter()
                .filter(move |s| s.group == group && !self.is_trigger_name(&s.name))
        };
        candidates()
            .filter(|s| !is_column(&s.name))
            .min_by(|a, b| a.sequence.total_cmp(&b.sequence))
            .or_else(|| candidates().min_by(|a, b| a.sequence.total_cmp(&b.sequence)))
    }
}

/// The board of tasks: Plane for those linked to a Plane issue, the local tracker otherwise.
pub struct PlaneBoard {
    /// The Plane API.
    client: Arc<PlaneClient>,
    /// Each project's states, cached.
    states: Arc<StatesCache>,
    /// Which issue a task came from.
    links: Arc<dyn TrackerLinks>,
    /// Status maps by Plane project id.
    maps: BTreeMap<String, StatusMap>,
    /// The orchestrator's own accounts, learned from what Plane says wrote a comment.
    bots: Arc<BotAccounts>,
}

impl PlaneBoard {
    /// A board over `client` for `projects`.
    pub fn new(
        client: Arc<PlaneClient>,
        states: Arc<StatesCache>,
        links: Arc<dyn TrackerLinks>,
        projects: &[Project],
        bots: Arc<BotAccounts>,
    ) -> Self {
        Self {
            client,
            states,
            links,
            maps: projects
                .iter()
                .filter_map(|p| Some((p.plane_project_id.clone()?, StatusMap::of(p))))
                .collect(),
            bots,
        }
    }

    /// The Plane project and issue of `task`, if it came from Plane.
    async fn issue_of(&self, task: &TaskRecord) -> Result<Option<(String, String)>, String> {
        let link = self
            .links
            .task_link(&task.work_item_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(link
            .filter(|l| l.tracker == "plane")
            .map(|l| (l.project_ref, l.issue_ref)))
    }
}

#[async_trait]
impl Board for PlaneBoard {
    async fn show(&self, task: &TaskRecord, status: BoardStatus) -> Result<(), String> {
        let Some((project, issue)) = self.issue_of(task).await? else {
            return LocalBoard.show(task, status).await;
        };
        let states = self.states.get(&project).await.map_err(|e| e.to_string())?;
        let map = self.maps.get(&project).cloned().unwrap_or_default();
        let Some(state) = map.resolve(status, &states) else {
            return Err(format!(
                "the board of Plane project {project} has no status for {} and no {:?} base status to fall back on",
                status.default_name(),
                status.base()
            ));
        };
        self.client
            .set_issue_state(&project, &issue, &state.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn comment(
        &self,
        task: &TaskRecord,
        author: Option<Role>,
        text: &str,
    ) -> Result<(), String> {
        let Some((project, issue)) = self.issue_of(task).await? else {
            return LocalBoard.comment(task, author, text).await;
        };
        let comment = self
            .client
            .create_comment(&project, &issue, &comment_html(text), author)
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
        let map = StatusMap::default();
        let states = board(&[]);
        assert_eq!(map.trigger("s2", &states), Some(Trigger::Start));
        assert_eq!(map.trigger("s4", &states), Some(Trigger::Approve));
        assert_eq!(map.trigger("s5", &states), Some(Trigger::ConfirmDeploy));
        assert_eq!(map.trigger("s9", &states), Some(Trigger::Stop));
        assert_eq!(map.trigger("s3", &states), None);
        // A board without Confirm Deploy: no id on it can release a deploy.
        let states = board(&["Confirm Deploy"]);
        assert!(
            states
                .iter()
                .all(|s| map.trigger(&s.id, &states) != Some(Trigger::ConfirmDeploy))
        );
        assert_eq!(map.trigger("s5", &states), None);
    }

    #[test]
    fn a_project_may_rename_its_statuses() {
        let project: Project = serde_json::from_str(
            r#"{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t",
                "plane_states":{"approved":"Ship it","done":"Released"}}"#,
        )
        .unwrap();
        let map = StatusMap::of(&project);
        let states = vec![
            state("x", "Ship it", "started", 1.0),
            state("y", "Approved", "started", 2.0),
            state("z", "Released", "completed", 3.0),
        ];
        assert_eq!(map.trigger("x", &states), Some(Trigger::Approve));
        assert_eq!(map.trigger("y", &states), None);
        assert_eq!(map.resolve(BoardStatus::Done, &states).unwrap().id, "z");
    }

    #[test]
    fn a_missing_status_degrades_to_a_base_status_that_steers_nothing() {
        let map = StatusMap::default();
        let states = board(&[]);
        assert_eq!(
            map.resolve(BoardStatus::Analysis, &states).unwrap().id,
            "s3"
        );
        // No "Testing": the first started state that is not a trigger ("In Progress",
        // "Approved" and "Confirm Deploy" steer tasks and are never a fallback).
        assert_eq!(
            map.resolve(BoardStatus::Testing, &states).unwrap().name,
            "Working"
        );
        assert_eq!(map.resolve(BoardStatus::Done, &states).unwrap().id, "s7");
        let states = board(&["Cancelled"]);
        assert!(
            map.resolve(BoardStatus::Cancelled, &states).is_none(),
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
