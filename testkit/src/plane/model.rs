//! What the fake Plane holds (projects, states, labels, issues, comments, users) and how each
//! renders: the API v1 serializers for REST answers, the lighter and expanded shapes for
//! webhook payloads. Field lists follow the contract's reading of Plane's serializers.

use std::time::SystemTime;

use serde_json::{Value, json};

use super::pyjson::Py;

/// A fresh random UUID string, as Plane's ids are.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `2026-01-02T03:04:05.123456Z`, DRF's rendering of a timestamp.
pub fn now_iso() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// A Plane user, as `UserLiteSerializer` shows one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaneUser {
    /// Its UUID; comments it writes carry this as `actor`.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// The name shown in the UI.
    pub display_name: String,
}

impl PlaneUser {
    /// A user with a fresh id whose names and e-mail derive from `display_name`.
    pub fn named(display_name: &str) -> PlaneUser {
        PlaneUser {
            id: new_id(),
            first_name: display_name.to_string(),
            last_name: String::new(),
            email: format!("{display_name}@plane.test"),
            display_name: display_name.to_string(),
        }
    }

    /// The `UserLite` object, as in a webhook's `activity.actor` or expanded `assignees`.
    pub fn lite(&self) -> Py {
        Py::object([
            ("id", json!(self.id)),
            ("first_name", json!(self.first_name)),
            ("last_name", json!(self.last_name)),
            ("email", json!(self.email)),
            ("avatar", json!("")),
            ("avatar_url", Value::Null),
            ("display_name", json!(self.display_name)),
        ])
    }
}

/// A project.
#[derive(Clone, Debug)]
pub struct Project {
    /// Its UUID.
    pub id: String,
    /// The short key in issue identifiers, e.g. `ACME` in `ACME-12`.
    pub identifier: String,
    /// The last `sequence_id` handed out to an issue of this project.
    pub last_sequence: i64,
}

/// A workflow state of a project.
#[derive(Clone, Debug)]
pub struct StateRec {
    /// Its UUID.
    pub id: String,
    /// The project it belongs to.
    pub project: String,
    /// Its name, e.g. `In Review`.
    pub name: String,
    /// `backlog`, `unstarted`, `started`, `completed` or `cancelled`.
    pub group: String,
    /// Its colour, `#RRGGBB`.
    pub color: String,
    /// Its place on the board (a float in Plane).
    pub sequence: f64,
    /// Whether new issues land here.
    pub default: bool,
    /// When it was created.
    pub created_at: String,
}

impl StateRec {
    /// The API v1 `StateSerializer` object.
    pub fn api(&self, workspace: &str) -> Value {
        json!({
            "id": self.id, "name": self.name, "description": "", "color": self.color,
            "slug": self.name.to_lowercase().replace(' ', "-"), "sequence": self.sequence,
            "group": self.group, "is_triage": false, "default": self.default,
            "external_source": null, "external_id": null, "project": self.project,
            "workspace": workspace, "created_at": self.created_at,
            "updated_at": self.created_at, "created_by": null, "updated_by": null,
            "deleted_at": null,
        })
    }

    /// `StateLiteSerializer`: what `?expand=state` and webhook payloads show.
    pub fn lite(&self) -> Py {
        Py::object([
            ("id", json!(self.id)),
            ("name", json!(self.name)),
            ("color", json!(self.color)),
            ("group", json!(self.group)),
        ])
    }
}

/// A label of a project.
#[derive(Clone, Debug)]
pub struct LabelRec {
    /// Its UUID.
    pub id: String,
    /// The project it belongs to.
    pub project: String,
    /// Its name.
    pub name: String,
    /// Its colour.
    pub color: String,
    /// When it was created.
    pub created_at: String,
}

impl LabelRec {
    /// The API v1 `LabelSerializer` object.
    pub fn api(&self, workspace: &str) -> Value {
        json!({
            "id": self.id, "name": self.name, "description": "", "color": self.color,
            "sort_order": 65535.0, "parent": null, "project": self.project,
            "workspace": workspace, "external_source": null, "external_id": null,
            "created_at": self.created_at, "updated_at": self.created_at,
            "created_by": null, "updated_by": null, "deleted_at": null,
        })
    }

    /// `LabelLiteSerializer`, as in a webhook's `labels`.
    pub fn lite(&self) -> Py {
        Py::object([
            ("id", json!(self.id)),
            ("name", json!(self.name)),
            ("color", json!(self.color)),
        ])
    }
}

/// A work item.
#[derive(Clone, Debug, PartialEq)]
pub struct IssueRec {
    /// Its UUID.
    pub id: String,
    /// The project's UUID.
    pub project: String,
    /// The number in `ACME-12`, counted per project from 1.
    pub sequence_id: i64,
    /// Its title.
    pub name: String,
    /// Its description as HTML.
    pub description_html: String,
    /// The UUID of its state.
    pub state: String,
    /// The UUIDs of its labels.
    pub labels: Vec<String>,
    /// `urgent`, `high`, `medium`, `low` or `none`.
    pub priority: String,
    /// Set when it entered a `completed` state, cleared when it left.
    pub completed_at: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

impl IssueRec {
    /// The description with its tags dropped, as Plane stores `description_stripped`.
    pub fn description_stripped(&self) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in self.description_html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    }

    /// The API v1 `IssueSerializer` object: `state` a UUID (or `state_lite` when expanded),
    /// `labels` UUIDs, and no `description_json`/`description_stripped`, which it excludes.
    pub fn api(&self, workspace: &str, state_lite: Option<Value>) -> Value {
        json!({
            "id": self.id, "type_id": null, "created_at": self.created_at,
            "updated_at": self.updated_at, "deleted_at": null, "point": null,
            "name": self.name, "description_html": self.description_html,
            "description_binary": null, "priority": self.priority, "start_date": null,
            "target_date": null, "sequence_id": self.sequence_id, "sort_order": 65535.0,
            "completed_at": self.completed_at, "archived_at": null, "is_draft": false,
            "external_source": null, "external_id": null, "created_by": null,
            "updated_by": null, "project": self.project, "workspace": workspace,
            "parent": null, "state": state_lite.unwrap_or_else(|| json!(self.state)),
            "estimate_point": null, "type": null, "labels": self.labels, "assignees": [],
        })
    }

    /// `IssueExpandSerializer` with labels and assignees expanded: a webhook's `data`.
    pub fn expanded(&self, workspace: &str, state: Py, labels: Vec<Py>) -> Py {
        let mut pairs: Vec<(String, Py)> = vec![
            ("id".to_string(), json!(self.id).into()),
            ("state".to_string(), state),
            ("labels".to_string(), Py::List(labels)),
        ];
        let rest = [
            ("assignees", json!([])),
            ("description", json!({})),
            ("created_at", json!(self.created_at)),
            ("updated_at", json!(self.updated_at)),
            ("deleted_at", Value::Null),
            ("point", Value::Null),
            ("name", json!(self.name)),
            ("description_html", json!(self.description_html)),
            ("description_stripped", json!(self.description_stripped())),
            ("description_binary", Value::Null),
            ("priority", json!(self.priority)),
            ("start_date", Value::Null),
            ("target_date", Value::Null),
            ("sequence_id", json!(self.sequence_id)),
            ("sort_order", json!(65535.0)),
            ("completed_at", json!(self.completed_at)),
            ("archived_at", Value::Null),
            ("is_draft", json!(false)),
            ("external_source", Value::Null),
            ("external_id", Value::Null),
            ("created_by", Value::Null),
            ("updated_by", Value::Null),
            ("project", json!(self.project)),
            ("workspace", json!(workspace)),
            ("parent", Value::Null),
            ("estimate_point", Value::Null),
            ("type", Value::Null),
        ];
        pairs.extend(rest.into_iter().map(|(k, v)| (k.to_string(), Py::Value(v))));
        Py::Object(pairs)
    }
}

/// A comment on a work item.
#[derive(Clone, Debug, PartialEq)]
pub struct CommentRec {
    /// Its UUID.
    pub id: String,
    /// The issue's UUID.
    pub issue: String,
    /// The project's UUID.
    pub project: String,
    /// The UUID of the user who wrote it.
    pub actor: String,
    /// Its body as HTML.
    pub comment_html: String,
    /// When it was written.
    pub created_at: String,
}

impl CommentRec {
    /// The API v1 `IssueCommentSerializer` object, which is also a comment webhook's `data`.
    pub fn api(&self, workspace: &str) -> Py {
        Py::object([
            ("id", json!(self.id)),
            ("comment_html", json!(self.comment_html)),
            ("description", json!({})),
            ("attachments", json!([])),
            ("issue", json!(self.issue)),
            ("actor", json!(self.actor)),
            ("access", json!("INTERNAL")),
            ("external_source", Value::Null),
            ("external_id", Value::Null),
            ("edited_at", Value::Null),
            ("parent", Value::Null),
            ("project", json!(self.project)),
            ("workspace", json!(workspace)),
            ("created_at", json!(self.created_at)),
            ("updated_at", json!(self.created_at)),
            ("created_by", json!(self.actor)),
            ("updated_by", json!(self.actor)),
            ("deleted_at", Value::Null),
        ])
    }
}
