//! Plane's webhook bodies: the envelope `{event, action, webhook_id, workspace_id, data,
//! activity}`, of which an issue's state change is what the pipeline acts on.

use serde_json::Value;

/// A Plane delivery, as far as the pipeline cares.
#[derive(Clone, Debug, PartialEq)]
pub enum PlaneDelivery {
    /// An issue's state changed (`issue`/`updated` with `activity.field` `state` or
    /// `state_id`).
    StateChange {
        /// The Plane project id.
        project: String,
        /// The issue as the payload carries it.
        issue: IssueSnapshot,
        /// The new state's id.
        state_id: String,
        /// Who moved it.
        actor: Option<String>,
    },
    /// Anything else (other fields, comments, projects, cycles…).
    Other {
        /// `event.action` (or `event.action.field`), for the journal.
        kind: String,
        /// The Plane project id, when the payload has one.
        project: Option<String>,
        /// Who caused it.
        actor: Option<String>,
    },
}

/// An issue as a webhook shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueSnapshot {
    /// The issue id.
    pub id: String,
    /// The number in `PROJ-<n>`, when the payload carries it (`None`: read the issue).
    pub sequence_id: Option<i64>,
    /// Title, when the payload carries it (`None`: read the issue).
    pub name: Option<String>,
    /// The description as plain text, when the payload carries one (`None`: fetch it).
    pub description: Option<String>,
    /// Label names.
    pub labels: Vec<String>,
}

impl PlaneDelivery {
    /// The kind to journal.
    pub fn kind(&self) -> String {
        match self {
            PlaneDelivery::StateChange { .. } => "issue.updated.state".into(),
            PlaneDelivery::Other { kind, .. } => kind.clone(),
        }
    }

    /// The Plane project the delivery concerns.
    pub fn project(&self) -> Option<&str> {
        match self {
            PlaneDelivery::StateChange { project, .. } => Some(project),
            PlaneDelivery::Other { project, .. } => project.as_deref(),
        }
    }

    /// Who caused it.
    pub fn actor(&self) -> Option<&str> {
        match self {
            PlaneDelivery::StateChange { actor, .. } | PlaneDelivery::Other { actor, .. } => {
                actor.as_deref()
            }
        }
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn required<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    str_at(v, path).ok_or_else(|| format!("{} is missing or not a string", path.join(".")))
}

/// Reads a Plane webhook body (the envelope `{event, action, webhook_id, workspace_id, data,
/// activity}`).
pub fn plane(body: &Value) -> Result<PlaneDelivery, String> {
    let event = required(body, &["event"])?;
    let action = required(body, &["action"])?;
    let actor = str_at(body, &["activity", "actor", "id"]).map(str::to_string);
    let field = str_at(body, &["activity", "field"]);
    let data = body.get("data").ok_or("data is missing")?;
    let project = str_at(data, &["project"]).map(str::to_string);
    if event == "issue" && action == "updated" && matches!(field, Some("state" | "state_id")) {
        let project = required(body, &["data", "project"])?.to_string();
        // The webhook's `data.state` is an object; `activity.new_value` is the raw id.
        let state_id = str_at(data, &["state", "id"])
            .or_else(|| data.get("state").and_then(Value::as_str))
            .or_else(|| str_at(body, &["activity", "new_value"]))
            .ok_or("data.state.id is missing")?
            .to_string();
        let description = match (
            data.get("description_stripped").and_then(Value::as_str),
            data.get("description_html").and_then(Value::as_str),
        ) {
            (Some(text), _) => Some(text.trim().to_string()),
            (None, Some(html)) => Some(html_to_text(html)),
            (None, None) => None,
        };
        let issue = IssueSnapshot {
            id: required(body, &["data", "id"])?.to_string(),
            // Plane's payloads have left these out; the issue itself is read for them then.
            sequence_id: data.get("sequence_id").and_then(Value::as_i64),
            name: str_at(data, &["name"]).map(str::to_string),
            description,
            labels: data
                .get("labels")
                .and_then(Value::as_array)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|l| l.get("name").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        };
        return Ok(PlaneDelivery::StateChange {
            project,
            issue,
            state_id,
            actor,
        });
    }
    let kind = match field {
        Some(field) => format!("{event}.{action}.{field}"),
        None => format!("{event}.{action}"),
    };
    Ok(PlaneDelivery::Other {
        kind,
        project,
        actor,
    })
}

/// Plain text of a bit of Plane HTML: tags dropped, entities of the usual five decoded,
/// paragraphs and breaks as new lines.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        if ["p", "br", "div", "li", "h1", "h2", "h3"].iter().any(|t| {
            tag == *t || tag.starts_with(&format!("{t} ")) || tag.starts_with(&format!("{t}/"))
        }) && !out.ends_with('\n')
            && !out.is_empty()
        {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plane_update(field: &str, with_description: bool) -> Value {
        let mut data = json!({
            "id": "issue-1", "project": "proj-1", "sequence_id": 42, "name": "Add <b>login</b>",
            "state": {"id": "st-2", "name": "In Progress", "color": "#F59E0B", "group": "started"},
            "labels": [{"id": "l1", "name": "Bug", "color": "#f00"}],
        });
        if with_description {
            data["description_html"] = json!("<p>Users need to log in &amp; out.</p><p>Soon.</p>");
        }
        json!({"event": "issue", "action": "updated", "webhook_id": "w", "workspace_id": "ws",
               "data": data,
               "activity": {"field": field, "new_value": "st-2", "old_value": "st-1",
                            "actor": {"id": "user-9", "display_name": "ann"}}})
    }

    #[test]
    fn a_state_change_is_read_from_either_field_name() {
        for field in ["state", "state_id"] {
            let d = plane(&plane_update(field, true)).unwrap();
            let PlaneDelivery::StateChange {
                project,
                issue,
                state_id,
                actor,
            } = d
            else {
                panic!("{field}: not a state change");
            };
            assert_eq!((project.as_str(), state_id.as_str()), ("proj-1", "st-2"));
            assert_eq!(actor.as_deref(), Some("user-9"));
            assert_eq!(issue.sequence_id, Some(42));
            assert_eq!(issue.name.as_deref(), Some("Add <b>login</b>"));
            assert_eq!(issue.labels, vec!["Bug"]);
            assert_eq!(
                issue.description.as_deref(),
                Some("Users need to log in & out.\nSoon.")
            );
        }
    }

    #[test]
    fn a_payload_without_a_description_asks_for_a_fetch() {
        let PlaneDelivery::StateChange { issue, .. } =
            plane(&plane_update("state", false)).unwrap()
        else {
            panic!()
        };
        assert_eq!(issue.description, None);
    }

    #[test]
    fn other_fields_and_events_are_not_state_changes() {
        let d = plane(&plane_update("priority", true)).unwrap();
        assert_eq!(d.kind(), "issue.updated.priority");
        assert_eq!(d.project(), Some("proj-1"));
        let comment = json!({"event": "issue_comment", "action": "created", "data": {"project": "p"},
                             "activity": {"field": null, "actor": {"id": "bot"}}});
        assert_eq!(plane(&comment).unwrap().kind(), "issue_comment.created");
        assert_eq!(plane(&comment).unwrap().actor(), Some("bot"));
    }

    #[test]
    fn a_state_change_without_name_or_number_is_taken_and_completed_later() {
        let mut body = plane_update("state", true);
        let data = body["data"].as_object_mut().unwrap();
        data.remove("sequence_id");
        data.remove("name");
        let PlaneDelivery::StateChange { issue, .. } = plane(&body).unwrap() else {
            panic!("not a state change");
        };
        assert_eq!((issue.sequence_id, issue.name), (None, None));
    }

    #[test]
    fn a_broken_state_change_names_the_missing_field() {
        let mut body = plane_update("state", true);
        body["data"].as_object_mut().unwrap().remove("id");
        assert!(plane(&body).unwrap_err().contains("data.id is missing"));
        assert!(
            plane(&json!({"action": "x"}))
                .unwrap_err()
                .contains("event")
        );
    }

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            html_to_text("<p>a &lt;1m&gt;</p><p>b<br/>c</p>"),
            "a <1m>\nb\nc"
        );
        assert_eq!(html_to_text("  "), "");
        assert_eq!(html_to_text("<p></p>"), "");
    }
}
