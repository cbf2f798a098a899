//! The fake's data: every project, state, label, issue and comment, behind one lock, with
//! the lookups and the one mutation (a state change) that both the REST handlers and the
//! test helpers share.

use super::model::{CommentRec, IssueRec, LabelRec, Project, StateRec, new_id, now_iso};
use super::pyjson::Py;

/// The states of [`super::PlaneFake::default_board`], in board order, with their groups.
pub const DEFAULT_BOARD: [(&str, &str); 19] = [
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("To Analyse", "unstarted"),
    ("In Progress", "started"),
    ("Analysis", "started"),
    ("In Review", "started"),
    ("Architecture", "started"),
    ("Development", "started"),
    ("Review", "started"),
    ("Testing", "started"),
    ("Deploying", "started"),
    ("Approved", "started"),
    ("Rejected", "started"),
    ("Confirm Deploy", "started"),
    ("Blocked", "started"),
    ("Needs Input", "started"),
    ("STOP", "cancelled"),
    ("Done", "completed"),
    ("Cancelled", "cancelled"),
];

/// Plane's default colour for a state group.
fn group_color(group: &str) -> &'static str {
    match group {
        "backlog" => "#A3A3A3",
        "unstarted" => "#3A3A3A",
        "started" => "#F59E0B",
        "completed" => "#16A34A",
        "cancelled" => "#EF4444",
        _ => "#60646C",
    }
}

/// Everything the fake Plane holds.
#[derive(Debug, Default)]
pub struct Board {
    /// Projects, in creation order.
    pub projects: Vec<Project>,
    /// States of every project, in creation order.
    pub states: Vec<StateRec>,
    /// Labels of every project.
    pub labels: Vec<LabelRec>,
    /// Issues of every project.
    pub issues: Vec<IssueRec>,
    /// Comments on every issue, oldest first.
    pub comments: Vec<CommentRec>,
}

impl Board {
    /// The project with this id.
    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    /// A new project keyed `identifier`; its id.
    pub fn add_project(&mut self, identifier: &str) -> String {
        let id = new_id();
        self.projects.push(Project {
            id: id.clone(),
            identifier: identifier.to_string(),
            last_sequence: 0,
        });
        id
    }

    /// A new state at the end of the project's board; its id. The first state of a project
    /// is its default, where new issues land.
    pub fn add_state(&mut self, project: &str, name: &str, group: &str) -> String {
        let existing = self.states.iter().filter(|s| s.project == project).count();
        let id = new_id();
        self.states.push(StateRec {
            id: id.clone(),
            project: project.to_string(),
            name: name.to_string(),
            group: group.to_string(),
            color: group_color(group).to_string(),
            // Plane spaces new states 15000 apart on the board.
            sequence: 15000.0 * (existing as f64 + 1.0),
            default: existing == 0,
            created_at: now_iso(),
        });
        id
    }

    /// The state with this id, in any project.
    pub fn state(&self, id: &str) -> Option<&StateRec> {
        self.states.iter().find(|s| s.id == id)
    }

    /// The state of `project` named `name`.
    pub fn state_named(&self, project: &str, name: &str) -> Option<&StateRec> {
        self.states
            .iter()
            .find(|s| s.project == project && s.name == name)
    }

    /// The states of `project`, in board order.
    pub fn states_of(&self, project: &str) -> Vec<&StateRec> {
        let mut states: Vec<&StateRec> = self
            .states
            .iter()
            .filter(|s| s.project == project)
            .collect();
        states.sort_by(|a, b| a.sequence.total_cmp(&b.sequence));
        states
    }

    /// The issue with this id, in any project.
    pub fn issue(&self, id: &str) -> Option<&IssueRec> {
        self.issues.iter().find(|i| i.id == id)
    }

    /// The issue with this id, if it belongs to `project`.
    pub fn issue_in(&self, project: &str, id: &str) -> Option<&IssueRec> {
        self.issue(id).filter(|i| i.project == project)
    }

    /// A mutable handle on the issue with this id.
    pub fn issue_mut(&mut self, id: &str) -> Option<&mut IssueRec> {
        self.issues.iter_mut().find(|i| i.id == id)
    }

    /// A new issue in the project's default state; `None` when the project is unknown or has
    /// no states yet.
    pub fn add_issue(
        &mut self,
        project: &str,
        name: &str,
        description_html: &str,
        labels: &[&str],
    ) -> Option<IssueRec> {
        let state = self
            .states_of(project)
            .iter()
            .find(|s| s.default)
            .map(|s| s.id.clone())?;
        let record = self.projects.iter_mut().find(|p| p.id == project)?;
        record.last_sequence += 1;
        let now = now_iso();
        let issue = IssueRec {
            id: new_id(),
            project: project.to_string(),
            sequence_id: record.last_sequence,
            name: name.to_string(),
            description_html: description_html.to_string(),
            state,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            priority: "none".to_string(),
            completed_at: None,
            created_at: now.clone(),
            updated_at: now,
        };
        self.issues.push(issue.clone());
        Some(issue)
    }

    /// Moves an issue to a state, keeping `completed_at` in step with the state's group as
    /// `Issue._sync_completed_at` does; the previous state id.
    pub fn set_state(&mut self, issue: &str, state: &str) -> Option<String> {
        let completed = self.state(state)?.group == "completed";
        let issue = self.issue_mut(issue)?;
        let now = now_iso();
        issue.completed_at = match (completed, issue.completed_at.take()) {
            (true, Some(at)) => Some(at),
            (true, None) => Some(now.clone()),
            (false, _) => None,
        };
        issue.updated_at = now;
        Some(std::mem::replace(&mut issue.state, state.to_string()))
    }

    /// The webhook `data` of an issue: `IssueExpandSerializer` with state and labels inlined.
    pub fn expanded(&self, issue: &IssueRec, workspace: &str) -> Py {
        let state = self
            .state(&issue.state)
            .map_or(Py::Value(serde_json::Value::Null), StateRec::lite);
        let labels = issue
            .labels
            .iter()
            .filter_map(|id| self.labels.iter().find(|l| &l.id == id))
            .map(LabelRec::lite)
            .collect();
        issue.expanded(workspace, state, labels)
    }
}
