//! The service's JSON replies as tables for a person at a terminal. Pure: a reply in, text
//! out. Text from the service (titles, reasons) has its control characters replaced, so a
//! task title cannot move the cursor or recolour the terminal.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// A value as a cell: strings as they are (control characters made visible as `?`),
/// numbers and booleans as JSON writes them, absent as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// A dollar amount with cents and a little more, or `-`.
fn dollars(value: &Value) -> String {
    value
        .as_f64()
        .map_or("-".into(), |usd| format!("${usd:.4}"))
}

/// A borderless table: columns padded with spaces, no line wrapping.
fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    let text = table.to_string();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.strip_prefix(' ').unwrap_or(line).trim_end());
        out.push('\n');
    }
    out
}

/// Key/value lines, the keys aligned.
fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// `GET /tasks`: one row per task.
pub fn task_list(reply: &Value) -> String {
    let tasks = reply["tasks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if tasks.is_empty() {
        return "no tasks\n".into();
    }
    table(
        &[
            "ID", "STAGE", "PHASE", "PAUSED", "RETRIES", "REPO", "TITLE", "UPDATED",
        ],
        tasks.iter().map(|t| {
            vec![
                cell(&t["work_item_id"]),
                cell(&t["stage"]),
                cell(&t["phase"]),
                cell(&t["paused"]),
                cell(&t["developer_retries"]),
                cell(&t["repo"]),
                cell(&t["title"]),
                cell(&t["updated_at"]),
            ]
        }),
    )
}

/// `GET /tasks/{id}`: the task, its journal, its runs and what they cost.
pub fn task(reply: &Value) -> String {
    let mut out = fields(&[
        ("task", cell(&reply["work_item_id"])),
        ("title", cell(&reply["title"])),
        ("repo", cell(&reply["repo"])),
        ("stage", cell(&reply["stage"])),
        ("phase", cell(&reply["phase"])),
        ("paused", cell(&reply["paused"])),
        ("blocked", cell(&reply["blocked_reason"])),
        (
            "waiting for",
            match &reply["waiting"] {
                Value::Null => "-".into(),
                w => format!("{} — {}", cell(&w["waiting_for"]), cell(&w["action"])),
            },
        ),
        ("branch", cell(&reply["branch"])),
        ("labels", {
            let labels: Vec<String> = reply["labels"]
                .as_array()
                .map(|l| l.iter().map(cell).collect())
                .unwrap_or_default();
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(", ")
            }
        }),
        ("retries", cell(&reply["developer_retries"])),
        (
            "pull request",
            match &reply["pull_request"] {
                Value::Null => "-".into(),
                pr => format!("#{} ({})", cell(&pr["number"]), cell(&pr["state"])),
            },
        ),
        ("cost", dollars(&reply["usage_total"]["cost_usd"])),
        ("created", cell(&reply["created_at"])),
        ("updated", cell(&reply["updated_at"])),
    ]);
    let transitions = reply["transitions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    out.push_str("\ntransitions\n");
    out.push_str(&table(
        &["AT", "FROM", "TO", "REASON"],
        transitions.iter().map(|t| {
            vec![
                cell(&t["at"]),
                cell(&t["from"]),
                cell(&t["to"]),
                cell(&t["reason"]),
            ]
        }),
    ));
    let runs = reply["runs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    out.push_str("\nruns\n");
    if runs.is_empty() {
        out.push_str("none yet\n");
    } else {
        out.push_str(&table(
            &[
                "STARTED", "STAGE", "ROLE", "MODEL", "STATUS", "EXIT", "IN", "OUT", "COST",
            ],
            runs.iter().map(|r| {
                vec![
                    cell(&r["started_at"]),
                    cell(&r["stage"]),
                    cell(&r["role"]),
                    cell(&r["model"]),
                    cell(&r["status"]),
                    cell(&r["exit_code"]),
                    cell(&r["input_tokens"]),
                    cell(&r["output_tokens"]),
                    dollars(&r["cost_usd"]),
                ]
            }),
        ));
    }
    out
}

/// `GET /status`: the active tasks and the webhooks in progress.
pub fn status(reply: &Value) -> String {
    let active = reply["active_tasks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut out = if active.is_empty() {
        "no active tasks\n".to_string()
    } else {
        table(
            &["ID", "STAGE", "PAUSED", "REPO", "TITLE"],
            active.iter().map(|t| {
                vec![
                    cell(&t["work_item_id"]),
                    cell(&t["stage"]),
                    cell(&t["paused"]),
                    cell(&t["repo"]),
                    cell(&t["title"]),
                ]
            }),
        )
    };
    out.push_str(&format!(
        "\nwebhook deliveries in progress: {}\n",
        cell(&reply["webhooks_in_progress"])
    ));
    out
}

/// `GET /queue`: counts, the park, the breaker and the active jobs.
pub fn queue(reply: &Value) -> String {
    let counts: Vec<String> = reply["counts"]
        .as_object()
        .map(|c| c.iter().map(|(k, v)| format!("{k} {}", cell(v))).collect())
        .unwrap_or_default();
    let parked = match &reply["parked"] {
        Value::Null => "no".to_string(),
        park => format!("until {} ({})", cell(&park["until"]), cell(&park["reason"])),
    };
    let breaker = &reply["breaker"];
    let mut out = fields(&[
        (
            "jobs",
            if counts.is_empty() {
                "none".into()
            } else {
                counts.join(", ")
            },
        ),
        ("parked", parked),
        (
            "breaker",
            format!(
                "{} ({} transient in a row of {}; opened {} times)",
                cell(&breaker["state"]),
                cell(&breaker["consecutive_transient"]),
                cell(&breaker["threshold"]),
                cell(&breaker["opened_total"]),
            ),
        ),
    ]);
    let jobs = reply["jobs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    out.push('\n');
    if jobs.is_empty() {
        out.push_str("no queued or running jobs\n");
    } else {
        out.push_str(&table(
            &[
                "JOB",
                "TASK",
                "STAGE",
                "ROLE",
                "STATUS",
                "ATTEMPTS",
                "CLAIMABLE AT",
                "PID",
            ],
            jobs.iter().map(|j| {
                vec![
                    cell(&j["job"]),
                    cell(&j["task"]),
                    cell(&j["stage"]),
                    cell(&j["role"]),
                    cell(&j["status"]),
                    cell(&j["attempts"]),
                    cell(&j["available_at"]),
                    cell(&j["pid"]),
                ]
            }),
        ));
    }
    let merge_queues = reply["merge_queues"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if !merge_queues.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "REPO",
                "MERGE QUEUE",
                "HOLDING",
                "WAITING",
                "FROZEN",
                "LAST GREEN MAIN",
            ],
            merge_queues.iter().map(|q| {
                let list = |v: &Value| {
                    v.as_array()
                        .map(|ids| ids.iter().map(cell).collect::<Vec<_>>().join(" "))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "-".into())
                };
                let frozen = match &q["frozen"] {
                    Value::Null => "no".to_string(),
                    f => format!(
                        "{} by {}: {}",
                        cell(&f["at"]),
                        cell(&f["by"]),
                        cell(&f["reason"])
                    ),
                };
                vec![
                    cell(&q["repo"]),
                    cell(&q["state"]),
                    list(&q["batch"]),
                    list(&q["waiting"]),
                    frozen,
                    cell(&q["last_green_main"]),
                ]
            }),
        ));
    }
    out
}

/// `GET /actors`: the tree, one actor a line, indented by depth.
pub fn actors(reply: &Value) -> String {
    fn walk(node: &Value, depth: usize, out: &mut String) {
        let mut line = format!(
            "{}{} [{}]",
            "  ".repeat(depth),
            cell(&node["name"]),
            cell(&node["status"])
        );
        if node["restarts"].as_u64().unwrap_or(0) > 0 {
            line.push_str(&format!(" restarts {}", node["restarts"]));
        }
        if let Some(error) = node["error"].as_str() {
            line.push_str(&format!(" error: {}", cell(&Value::from(error))));
        }
        let children = node["children"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let count = node["child_count"].as_u64().unwrap_or(0) as usize;
        if count > children.len() {
            line.push_str(&format!(" ({count} children)"));
        }
        out.push_str(&line);
        out.push('\n');
        for child in children {
            walk(child, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(reply, 0, &mut out);
    out
}

/// An operator action's reply: whether it changed anything, and where the task stands.
pub fn action(action: &str, reply: &Value) -> String {
    let changed = if reply["changed"] == Value::Bool(true) {
        "done"
    } else {
        "changed nothing (a replay, or not the moment for it)"
    };
    format!(
        "{} {action}: {changed}; now {} / {}{}\n",
        cell(&reply["work_item_id"]),
        cell(&reply["stage"]),
        cell(&reply["phase"]),
        if reply["paused"] == Value::Bool(true) {
            " (paused)"
        } else {
            ""
        },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_task_list_is_one_aligned_row_per_task_with_control_characters_defused() {
        let reply = json!({"tasks": [
            {"work_item_id": "ACME-001", "stage": "analysis", "phase": "awaiting-approval",
             "paused": false, "developer_retries": 0, "repo": "acme/app",
             "title": "Export\u{1b}[31m CSV", "updated_at": "2026-12-03T10:00:00Z"},
            {"work_item_id": "ACME-002", "stage": "done", "phase": "idle", "paused": true,
             "developer_retries": 2, "repo": "acme/app", "title": "Fix", "updated_at": "t"},
        ]});
        let text = task_list(&reply);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[1].starts_with("ACME-001") && lines[2].starts_with("ACME-002"));
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(lines[1].contains("Export?[31m CSV"));
        // Aligned: the stage column starts at the same place on every line.
        let at = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(at(lines[1], "analysis"), at(lines[2], "done"));
        assert!(lines[2].contains("yes") && lines[1].contains("no"));
        assert_eq!(task_list(&json!({"tasks": []})), "no tasks\n");
    }

    #[test]
    fn a_task_shows_its_journal_runs_and_cost() {
        let reply = json!({
            "work_item_id": "ACME-001", "title": "T", "repo": "acme/app", "stage": "review",
            "phase": "working", "paused": false, "blocked_reason": null, "labels": ["Bug"],
            "usage_total": {"cost_usd": 1.25},
            "transitions": [{"at": "t1", "from": null, "to": "created", "reason": "created"}],
            "runs": [{"started_at": "t2", "stage": "analysis", "role": "analyst",
                      "model": "opus", "status": "succeeded", "exit_code": 0,
                      "input_tokens": 10, "output_tokens": 5, "cost_usd": 1.25}],
        });
        let text = task(&reply);
        assert!(text.contains("cost          $1.2500"), "{text}");
        assert!(text.contains("labels        Bug"), "{text}");
        assert!(
            text.contains("analyst") && text.contains("succeeded"),
            "{text}"
        );
        assert!(text.contains("created"), "{text}");
    }

    #[test]
    fn the_queue_names_its_park_and_breaker() {
        let reply = json!({
            "counts": {"done": 3, "queued": 1}, "parked": {"until": "T", "reason": "usage"},
            "breaker": {"state": "open", "consecutive_transient": 5, "threshold": 5,
                        "opened_total": 1},
            "jobs": [{"job": 7, "task": "ACME-001", "stage": "review", "role": "reviewer",
                      "status": "queued", "attempts": 1, "available_at": "T", "pid": null}],
        });
        let text = queue(&reply);
        assert!(text.contains("done 3, queued 1"), "{text}");
        assert!(text.contains("until T (usage)"), "{text}");
        assert!(
            text.contains("open (5 transient in a row of 5; opened 1 times)"),
            "{text}"
        );
        assert!(
            text.contains("ACME-001") && text.contains("reviewer"),
            "{text}"
        );
        let reply = json!({"counts": {}, "parked": null, "breaker": {}, "jobs": [],
            "merge_queues": [{"repo": "acme/app", "state": "frozen", "batch": [],
                "waiting": ["ACME-2", "ACME-3"], "last_green_main": "abc",
                "frozen": {"at": "T", "by": "ops", "reason": "release"}}]});
        let text = queue(&reply);
        assert!(text.contains("acme/app"), "{text}");
        assert!(text.contains("ACME-2 ACME-3"), "{text}");
        assert!(text.contains("T by ops: release"), "{text}");
    }

    #[test]
    fn an_action_says_whether_it_changed_anything() {
        let reply = json!({"work_item_id": "ACME-001", "changed": false, "stage": "analysis",
                           "phase": "awaiting-approval", "paused": true});
        assert_eq!(
            action("approve", &reply),
            "ACME-001 approve: changed nothing (a replay, or not the moment for it); \
             now analysis / awaiting-approval (paused)\n"
        );
    }

    #[test]
    fn the_actor_tree_is_indented_by_depth() {
        let reply = json!({"name": "root", "status": "running", "restarts": 0, "child_count": 1,
            "children": [{"name": "tasks", "status": "running", "restarts": 2, "child_count": 40,
                          "children": []}]});
        assert_eq!(
            actors(&reply),
            "root [running]\n  tasks [running] restarts 2 (40 children)\n"
        );
    }
}
