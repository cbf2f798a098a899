//! The parts of Plane's API v1 objects the orchestrator reads. Fields it does not use are
//! ignored, so newer Plane versions that add fields still decode.

use serde::{Deserialize, Deserializer};

/// The group a state belongs to; Plane's board semantics hang off it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateGroup {
    /// Not yet planned.
    Backlog,
    /// Planned, not started.
    Unstarted,
    /// Work in progress.
    Started,
    /// Finished; Plane stamps `completed_at`.
    Completed,
    /// Dropped.
    Cancelled,
    /// Intake triage (filtered out of the API list, kept for completeness).
    Triage,
    /// A group this client does not know, from a newer Plane.
    #[serde(other)]
    Other,
}

/// A workflow state of a project.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PlaneState {
    /// Its UUID, what an issue's `state` holds.
    pub id: String,
    /// Its name on the board, e.g. `In Review`.
    pub name: String,
    /// Its group.
    pub group: StateGroup,
    /// Its place on the board (Plane stores a float); a board that omits it sorts such
    /// states first rather than becoming unreadable.
    #[serde(default)]
    pub sequence: f64,
}

/// A label of a project.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PlaneLabel {
    /// Its UUID, what an issue's `labels` holds.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its colour, `#RRGGBB`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub color: String,
}

/// A work item as API v1 returns it (without `?expand`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PlaneIssue {
    /// Its UUID.
    pub id: String,
    /// Its title.
    pub name: String,
    /// Its description as HTML.
    #[serde(default, deserialize_with = "null_as_default")]
    pub description_html: String,
    /// Its description as plain text. API v1's `IssueSerializer` excludes this field (only
    /// webhook payloads carry it), so it is usually `None` here.
    #[serde(default)]
    pub description_stripped: Option<String>,
    /// The UUID of its state.
    pub state: String,
    /// The number in `PROJ-123`.
    pub sequence_id: i64,
    /// The UUIDs of its labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The UUID of its project.
    pub project: String,
    /// When it last changed, ISO 8601 (the reconciler compares it with the task's last
    /// change); `None` when Plane leaves it out.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A comment on a work item.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PlaneComment {
    /// Its UUID.
    pub id: String,
    /// Its body as HTML.
    #[serde(default, deserialize_with = "null_as_default")]
    pub comment_html: String,
    /// The UUID of the user who wrote it; compare with the bots' ids to skip our own.
    #[serde(default)]
    pub actor: Option<String>,
    /// When it was written, ISO 8601 (empty when Plane leaves it out: such a comment sorts
    /// oldest).
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
}

/// Plane sends `null` for empty text fields on some objects; read it as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn issue_decodes_from_the_api_shape_with_nulls_and_extra_fields() {
        let issue: PlaneIssue = serde_json::from_value(json!({
            "id": "i1", "name": "Login", "description_html": null, "state": "s1",
            "sequence_id": 7, "labels": ["l1"], "project": "p1", "priority": "none",
            "assignees": [], "type_id": null,
        }))
        .unwrap();
        assert_eq!(issue.description_html, "");
        assert_eq!(issue.description_stripped, None);
        assert_eq!(issue.labels, vec!["l1".to_string()]);
    }

    #[test]
    fn a_state_without_a_sequence_still_decodes_and_a_missing_name_is_named() {
        let state: PlaneState = serde_json::from_value(json!({
            "id": "s", "name": "In Progress", "group": "started",
        }))
        .unwrap();
        assert_eq!(state.sequence, 0.0);
        let missing = serde_json::from_value::<PlaneState>(json!({"id": "s", "group": "started"}))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("`name`"), "{missing}");
    }

    #[test]
    fn unknown_state_groups_do_not_break_decoding() {
        let state: PlaneState = serde_json::from_value(json!({
            "id": "s", "name": "Odd", "group": "someday", "sequence": 15000.0,
        }))
        .unwrap();
        assert_eq!(state.group, StateGroup::Other);
    }
}
