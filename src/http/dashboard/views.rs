//! What the dashboard's pages show, as plain data built by pure functions from what the
//! store and the actors answered: cards in stage columns, a task's rows, the queue's
//! sections, the actor tree's rows. The templates only lay these out (and escape them).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use orchestrator_actors::Stage;
use orchestrator_actors::actors::describe::ActorNode;
use orchestrator_actors::domain::waiting::{self, WaitingFor};
use orchestrator_actors::ports::{Phase, RunRecord, TaskRecord, Transition};
use serde_json::Value;

use crate::store::TaskSpend;

/// Cards shown per stage column; the rest are counted ("and N more"), so the board stays
/// small at any number of tasks. The newest changes come first.
pub(super) const CARDS_PER_COLUMN: usize = 50;

/// One task on the board.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Card {
    /// Its work-item id.
    pub id: String,
    /// Its one-line title.
    pub title: String,
    /// Its repository.
    pub repo: String,
    /// Its phase within the stage (`working`, `awaiting-approval`, …).
    pub phase: &'static str,
    /// What it waits for, in words; empty once finished.
    pub waits_for: String,
    /// Paused by the operator.
    pub paused: bool,
    /// Times it went back to development.
    pub developer_retries: u32,
    /// Agent runs of its current stage.
    pub stage_attempts: u32,
    /// Agent runs journaled for it.
    pub runs: u64,
    /// What its runs cost, as `$0.1234`.
    pub cost: String,
    /// How long ago it was created (`<1m`, `5m`, `3h`, `2d`).
    pub age: String,
    /// Its page.
    pub href: String,
}

/// One stage's column.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Column {
    /// The stage's name.
    pub stage: &'static str,
    /// The cards shown, most recently changed first.
    pub cards: Vec<Card>,
    /// Tasks in the stage.
    pub total: usize,
    /// Tasks in the stage not shown as cards.
    pub hidden: usize,
}

/// The board's live part.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct BoardLive {
    /// One column per stage, in pipeline order, terminal ones last.
    pub columns: Vec<Column>,
    /// Tasks in all.
    pub total: usize,
    /// Tasks not finished.
    pub active: usize,
}

/// What a task waits for, in words a person acts on: a wait on someone or something else as
/// `domain::waiting` names it (the vocabulary of `GET /tasks/{id}` and the CLI), otherwise
/// the work of its own it is doing; empty once it is finished.
pub(super) fn waits_for(task: &TaskRecord) -> String {
    if task.stage.is_terminal() {
        return String::new();
    }
    let reason = || {
        task.blocked_reason
            .as_deref()
            .unwrap_or("no reason recorded")
    };
    if let Some(wait) = waiting::of(task) {
        return match wait.waiting_for {
            WaitingFor::Approval => "an operator: approve or reject".into(),
            WaitingFor::DeployConfirmation => "an operator: confirm deploy".into(),
            WaitingFor::MergeQueue => "its turn in the merge queue".into(),
            WaitingFor::Infrastructure => format!("an operator's retry — {}", reason()),
            WaitingFor::Human => format!("an operator: blocked — {}", reason()),
            WaitingFor::Resume => "an operator: paused, waits for resume".into(),
            WaitingFor::Budget => format!("an operator: its spend cap — {}", reason()),
        };
    }
    match task.phase {
        Phase::Working => "an agent run (queued or running)".into(),
        Phase::Gating => "its gate's verdict".into(),
        Phase::Merging => "main's fast-forward to its tested candidate".into(),
        _ => "its next step".into(),
    }
}

/// What unblocks a waiting task, as `domain::waiting` says it (with its route); empty for a
/// task that waits on no one.
pub(super) fn unblocked_by(task: &TaskRecord) -> String {
    waiting::of(task).map(|w| w.action).unwrap_or_default()
}

/// `$` and four decimals: agent runs cost cents, not dollars.
pub(super) fn dollars(usd: f64) -> String {
    format!("${usd:.4}")
}

/// How long ago `rfc3339` was, coarse enough that the board changes once a minute at most
/// for it; `?` when the time cannot be read.
pub(super) fn age(rfc3339: &str, now: SystemTime) -> String {
    let Ok(at) = humantime::parse_rfc3339_weak(rfc3339) else {
        return "?".into();
    };
    let secs = now.duration_since(at).unwrap_or(Duration::ZERO).as_secs();
    match secs {
        0..60 => "<1m".into(),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A task's page.
pub(super) fn task_href(id: &str) -> String {
    format!("/ui/tasks/{id}")
}

/// The board: `tasks` into stage columns, each with its spend from `spend`.
pub(super) fn board(
    tasks: Vec<TaskRecord>,
    spend: &HashMap<String, TaskSpend>,
    now: SystemTime,
) -> BoardLive {
    let total = tasks.len();
    let active = tasks.iter().filter(|t| !t.stage.is_terminal()).count();
    let mut by_stage: HashMap<Stage, Vec<TaskRecord>> = HashMap::new();
    for task in tasks {
        by_stage.entry(task.stage).or_default().push(task);
    }
    let columns = Stage::ALL
        .iter()
        .map(|stage| {
            let mut tasks = by_stage.remove(stage).unwrap_or_default();
            // Newest change first; ids break ties so the order is stable between renders.
            tasks.sort_by(|a, b| {
                b.updated_at
                    .cmp(&a.updated_at)
                    .then_with(|| a.work_item_id.as_str().cmp(b.work_item_id.as_str()))
            });
            let total = tasks.len();
            let cards: Vec<Card> = tasks
                .iter()
                .take(CARDS_PER_COLUMN)
                .map(|t| card(t, spend.get(t.work_item_id.as_str()), now))
                .collect();
            Column {
                stage: stage.as_str(),
                hidden: total - cards.len(),
                cards,
                total,
            }
        })
        .collect();
    BoardLive {
        columns,
        total,
        active,
    }
}

fn card(task: &TaskRecord, spend: Option<&TaskSpend>, now: SystemTime) -> Card {
    let spend = spend.copied().unwrap_or_default();
    Card {
        id: task.work_item_id.to_string(),
        title: task.title.clone(),
        repo: task.repo.clone(),
        phase: task.phase.as_str(),
        waits_for: waits_for(task),
        paused: task.paused,
        developer_retries: task.developer_retries,
        stage_attempts: task.stage_attempts,
        runs: spend.runs,
        cost: dollars(spend.cost_usd),
        age: age(&task.created_at, now),
        href: task_href(task.work_item_id.as_str()),
    }
}

/// The text field an operator form has, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    /// No field.
    None,
    /// A reason may be given.
    OptionalReason,
    /// The form is refused without a reason.
    RequiredReason,
    /// A note for the next agent may be given (a retry's).
    OptionalNote,
}

impl Field {
    /// The field's name in the form, and the longest text the route takes.
    fn name_and_limit(self) -> Option<(&'static str, u32)> {
        match self {
            Field::None => None,
            Field::OptionalReason | Field::RequiredReason => Some(("reason", 2000)),
            Field::OptionalNote => Some(("note", 10_000)),
        }
    }
}

/// An operator action the dashboard offers as a form: its route's name, its button, its
/// text field and when it is shown. A new task route (answer, say) becomes a form by one more
/// row in [`FORMS`] (and its reading in `operator::human_action`).
pub(super) struct FormSpec {
    /// The action's name in `POST /tasks/{id}/{action}` and `POST /ui/tasks/{id}/{action}`.
    pub action: &'static str,
    /// The button's text.
    pub label: &'static str,
    /// Its text field.
    pub field: Field,
    /// Drawn as a destructive action.
    pub danger: bool,
    /// Whether it applies to the task as it stands.
    pub applies: fn(&TaskRecord) -> bool,
}

/// The operator routes that exist, as forms, in the order they are shown.
pub(super) const FORMS: &[FormSpec] = &[
    FormSpec {
        action: "approve",
        label: "Approve",
        field: Field::None,
        danger: false,
        applies: |t| t.phase == Phase::AwaitingApproval,
    },
    FormSpec {
        action: "reject",
        label: "Reject",
        field: Field::RequiredReason,
        danger: true,
        applies: |t| t.phase == Phase::AwaitingApproval,
    },
    FormSpec {
        action: "confirm-deploy",
        label: "Confirm deploy",
        field: Field::None,
        danger: false,
        applies: |t| t.phase == Phase::AwaitingDeployConfirm,
    },
    FormSpec {
        action: "retry",
        label: "Retry",
        field: Field::OptionalNote,
        danger: false,
        applies: |t| t.phase == Phase::Blocked,
    },
    FormSpec {
        action: "pause",
        label: "Pause",
        field: Field::None,
        danger: false,
        applies: |t| !t.paused,
    },
    FormSpec {
        action: "resume",
        label: "Resume",
        field: Field::None,
        danger: false,
        applies: |t| t.paused,
    },
    FormSpec {
        action: "stop",
        label: "Stop",
        field: Field::OptionalReason,
        danger: true,
        applies: |_| true,
    },
];

/// One form as a page shows it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct FormView {
    /// Where it posts.
    pub post_to: String,
    /// The action's name.
    pub action: &'static str,
    /// The button's text.
    pub label: &'static str,
    /// Its text field's name (`reason`, `note`); empty for none.
    pub field: &'static str,
    /// Whether the field must be filled.
    pub field_required: bool,
    /// The longest text the field takes.
    pub field_max: u32,
    /// Drawn as a destructive action.
    pub danger: bool,
}

/// The forms that apply to `task` now; none once it is finished.
pub(super) fn forms(task: &TaskRecord) -> Vec<FormView> {
    if task.stage.is_terminal() {
        return Vec::new();
    }
    FORMS
        .iter()
        .filter(|f| (f.applies)(task))
        .map(|f| {
            let (field, field_max) = f.field.name_and_limit().unwrap_or(("", 0));
            FormView {
                post_to: format!("/ui/tasks/{}/{}", task.work_item_id, f.action),
                action: f.action,
                label: f.label,
                field,
                field_required: f.field == Field::RequiredReason,
                field_max,
                danger: f.danger,
            }
        })
        .collect()
}

/// One transition of a task's journal.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TransitionRow {
    /// When.
    pub at: String,
    /// The stage it left (`—` for the first).
    pub from: String,
    /// The stage it entered.
    pub to: String,
    /// Why: a gate's verdict, an operator's action, a rollback's findings.
    pub reason: String,
}

/// A task's journal, oldest first.
pub(super) fn transitions(list: &[Transition]) -> Vec<TransitionRow> {
    list.iter()
        .map(|t| TransitionRow {
            at: t.at.clone(),
            from: t.from.map_or_else(|| "—".into(), |s| s.to_string()),
            to: t.to.to_string(),
            reason: t.reason.clone(),
        })
        .collect()
}

/// One agent run of a task.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RunRow {
    /// Its id.
    pub run_id: String,
    /// The role.
    pub role: String,
    /// The stage.
    pub stage: String,
    /// The model, `—` when none was reported.
    pub model: String,
    /// `running`, or how it ended.
    pub status: String,
    /// The exit code, `—` while running.
    pub exit: String,
    /// Input / output tokens.
    pub tokens: String,
    /// Cache read / creation tokens.
    pub cache: String,
    /// Its cost.
    pub cost: String,
    /// When it started.
    pub started_at: String,
    /// Why it failed, if it did.
    pub reason: String,
    /// Its log's page.
    pub log_href: String,
}

/// A task's agent runs, oldest first.
pub(super) fn runs(list: &[RunRecord]) -> Vec<RunRow> {
    list.iter()
        .map(|r| RunRow {
            run_id: r.run_id.clone(),
            role: r.role.clone(),
            stage: r.stage.to_string(),
            model: r.model.clone().unwrap_or_else(|| "—".into()),
            status: r.status.clone(),
            exit: r.exit_code.map_or_else(|| "—".into(), |c| c.to_string()),
            tokens: format!("{} / {}", r.input_tokens, r.output_tokens),
            cache: format!("{} / {}", r.cache_read_tokens, r.cache_creation_tokens),
            cost: dollars(r.cost_usd),
            started_at: r.started_at.clone(),
            reason: r.reason.clone().unwrap_or_default(),
            log_href: format!("/ui/runs/{}/log", r.run_id),
        })
        .collect()
}

/// A label and a value.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Pair {
    /// What it is.
    pub key: String,
    /// Its value as text.
    pub value: String,
}

/// A table: its columns and rows of text.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Table {
    /// The column heads.
    pub columns: Vec<String>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

/// One section of a JSON reply shown as HTML: a table for a list of objects, label/value
/// pairs for anything else.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Section {
    /// The reply's key.
    pub title: String,
    /// Set when the value is a list of objects.
    pub table: Option<Table>,
    /// The value's leaves, by their path, otherwise.
    pub pairs: Vec<Pair>,
}

/// A scalar as text; anything else as compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The leaves of `value` under `path`, depth first; a list of scalars is one leaf.
fn flatten(path: &str, value: &Value, out: &mut Vec<Pair>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (n, v) in items.iter().enumerate() {
                flatten(&format!("{path}[{n}]"), v, out);
            }
        }
        Value::Array(items) => out.push(Pair {
            key: path.to_string(),
            value: if items.is_empty() {
                "none".into()
            } else {
                items.iter().map(text).collect::<Vec<_>>().join(", ")
            },
        }),
        other => out.push(Pair {
            key: path.to_string(),
            value: text(other),
        }),
    }
}

/// One section of the reply.
pub(super) fn section(title: &str, value: &Value) -> Section {
    if let Some(items) = value
        .as_array()
        .filter(|items| !items.is_empty() && items.iter().all(Value::is_object))
    {
        let mut columns: Vec<String> = Vec::new();
        for item in items.iter().filter_map(Value::as_object) {
            for key in item.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
        let rows = items
            .iter()
            .map(|item| columns.iter().map(|c| text(&item[c.as_str()])).collect())
            .collect();
        return Section {
            title: title.to_string(),
            table: Some(Table { columns, rows }),
            pairs: Vec::new(),
        };
    }
    let mut pairs = Vec::new();
    flatten("", value, &mut pairs);
    if pairs.len() == 1 && pairs[0].key.is_empty() {
        pairs[0].key = title.to_string();
    }
    Section {
        title: title.to_string(),
        table: None,
        pairs,
    }
}

/// The sections of `GET /queue`'s reply: what an operator looks for first (counts, park,
/// hold, breaker, disk pause, the jobs, each repository's merge queue), then every other key
/// as it comes — so what the route adds (admission, say) shows without a change here.
pub(super) fn queue_sections(reply: &Value) -> Vec<Section> {
    const FIRST: [&str; 7] = [
        "counts",
        "parked",
        "held",
        "paused_for_disk",
        "breaker",
        "jobs",
        "merge_queues",
    ];
    let Some(map) = reply.as_object() else {
        return vec![section("queue", reply)];
    };
    let mut out: Vec<Section> = FIRST
        .iter()
        .filter_map(|k| map.get(*k).map(|v| section(k, v)))
        .collect();
    out.extend(
        map.iter()
            .filter(|(k, _)| !FIRST.contains(&k.as_str()))
            .map(|(k, v)| section(k, v)),
    );
    out
}

/// A repository's merge queue as its freeze form shows it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RepoFreeze {
    /// The configured project's repository.
    pub repo: String,
    /// Its queue is frozen.
    pub frozen: bool,
    /// Who froze it and why, when frozen.
    pub why: String,
}

/// Every configured repository with its merge queue's freeze as `GET /queue` reports it in
/// `merge_queues` (a repository it does not list is not frozen).
pub(super) fn repo_freezes<'a>(
    repos: impl IntoIterator<Item = &'a str>,
    reply: &Value,
) -> Vec<RepoFreeze> {
    let queues = reply["merge_queues"].as_array();
    repos
        .into_iter()
        .map(|repo| {
            let frozen = queues
                .and_then(|q| q.iter().find(|v| v["repo"] == repo))
                .map(|v| &v["frozen"])
                .filter(|f| !f.is_null());
            RepoFreeze {
                repo: repo.to_string(),
                frozen: frozen.is_some(),
                why: frozen.map_or_else(String::new, |f| {
                    format!(
                        "frozen by {} ({}) since {}: {}",
                        text(&f["by"]),
                        text(&f["kind"]),
                        text(&f["at"]),
                        text(&f["reason"])
                    )
                }),
            }
        })
        .collect()
}

/// One actor of the tree.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ActorRow {
    /// Levels below root (for the indent), at most 9.
    pub depth: usize,
    /// Its registered name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Its lifecycle status.
    pub status: &'static str,
    /// Restarts by its supervisor.
    pub restarts: u32,
    /// Live children.
    pub children: usize,
    /// What its Describe said, compact, or why it said nothing.
    pub details: String,
    /// Its Describe failed.
    pub failed: bool,
}

/// Longest details shown for one actor.
const DETAILS_CHARS: usize = 400;

/// The tree, depth first, as rows.
pub(super) fn actor_rows(root: &ActorNode) -> Vec<ActorRow> {
    fn walk(node: &ActorNode, depth: usize, out: &mut Vec<ActorRow>) {
        let (details, failed) = match (&node.error, &node.details) {
            (Some(e), _) => (e.clone(), true),
            (None, Some(d)) => (d.to_string(), false),
            (None, None) => (String::new(), false),
        };
        let details = if details.chars().count() > DETAILS_CHARS {
            let cut: String = details.chars().take(DETAILS_CHARS).collect();
            format!("{cut}…")
        } else {
            details
        };
        out.push(ActorRow {
            depth: depth.min(9),
            name: node.name.clone(),
            kind: node.kind,
            status: node.status,
            restarts: node.restarts,
            children: node.child_count,
            details,
            failed,
        });
        for child in &node.children {
            walk(child, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_actors::WorkItemId;
    use serde_json::json;

    fn task(id: &str, stage: Stage, phase: Phase, updated_at: &str) -> TaskRecord {
        TaskRecord {
            work_item_id: WorkItemId::parse(id).unwrap(),
            repo: "acme/app".into(),
            title: format!("Task {id}"),
            description: String::new(),
            stage,
            paused: false,
            labels: Vec::new(),
            branch: None,
            phase,
            blocked_reason: None,
            developer_retries: 1,
            stage_attempts: 2,
            note: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: updated_at.into(),
            budget_nano_usd: None,
        }
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339_weak(rfc3339).unwrap()
    }

    #[test]
    fn the_board_has_a_column_per_stage_with_the_newest_change_first() {
        let tasks = vec![
            task(
                "ACME-001",
                Stage::Analysis,
                Phase::Working,
                "2026-01-01T00:00:01Z",
            ),
            task(
                "ACME-002",
                Stage::Analysis,
                Phase::AwaitingApproval,
                "2026-01-01T00:00:09Z",
            ),
            task("ACME-003", Stage::Done, Phase::Idle, "2026-01-01T00:00:05Z"),
        ];
        let spend = HashMap::from([(
            "ACME-001".to_string(),
            TaskSpend {
                runs: 2,
                cost_usd: 0.5,
            },
        )]);
        let board = board(tasks, &spend, at("2026-01-01T02:30:00Z"));
        let stages: Vec<_> = board.columns.iter().map(|c| c.stage).collect();
        assert_eq!(stages.len(), Stage::ALL.len());
        assert_eq!(stages.first(), Some(&"created"));
        assert_eq!(stages.last(), Some(&"cancelled"));
        let analysis = &board.columns[1];
        let ids: Vec<_> = analysis.cards.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["ACME-002", "ACME-001"]);
        let first = &analysis.cards[1];
        assert_eq!((first.runs, first.cost.as_str()), (2, "$0.5000"));
        assert_eq!(first.age, "2h");
        assert_eq!(first.waits_for, "an agent run (queued or running)");
        assert_eq!(
            analysis.cards[0].waits_for,
            "an operator: approve or reject"
        );
        assert_eq!((board.total, board.active), (3, 2));
        assert_eq!(
            board.columns[8].cards[0].waits_for, "",
            "a done task waits for nothing"
        );
    }

    #[test]
    fn a_crowded_column_shows_a_bounded_number_of_cards_and_counts_the_rest() {
        let tasks: Vec<_> = (1..=CARDS_PER_COLUMN + 7)
            .map(|n| {
                task(
                    &format!("ACME-{n:03}"),
                    Stage::Done,
                    Phase::Idle,
                    "2026-01-01T00:00:00Z",
                )
            })
            .collect();
        let board = board(tasks, &HashMap::new(), SystemTime::now());
        let done = &board.columns[8];
        assert_eq!(
            (done.cards.len(), done.hidden, done.total),
            (CARDS_PER_COLUMN, 7, 57)
        );
    }

    #[test]
    fn ages_are_coarse_and_an_unreadable_time_is_a_question_mark() {
        let now = at("2026-01-03T00:00:00Z");
        assert_eq!(age("2026-01-02T23:59:30Z", now), "<1m");
        assert_eq!(age("2026-01-02T23:55:00Z", now), "5m");
        assert_eq!(age("2026-01-01T00:00:00Z", now), "2d");
        assert_eq!(age("yesterday", now), "?");
    }

    #[test]
    fn the_forms_offered_follow_the_phase() {
        let names = |t: &TaskRecord| forms(t).iter().map(|f| f.action).collect::<Vec<_>>();
        let waiting = task("ACME-001", Stage::Analysis, Phase::AwaitingApproval, "");
        assert_eq!(names(&waiting), ["approve", "reject", "pause", "stop"]);
        let reject = &forms(&waiting)[1];
        assert_eq!((reject.field, reject.field_required), ("reason", true));
        assert_eq!(reject.post_to, "/ui/tasks/ACME-001/reject");
        let mut paused = task("ACME-001", Stage::Deploy, Phase::AwaitingDeployConfirm, "");
        paused.paused = true;
        assert_eq!(names(&paused), ["confirm-deploy", "resume", "stop"]);
        let blocked = task("ACME-001", Stage::Development, Phase::Blocked, "");
        assert_eq!(names(&blocked), ["retry", "pause", "stop"]);
        let retry = &forms(&blocked)[0];
        assert_eq!(
            (retry.field, retry.field_required, retry.field_max),
            ("note", false, 10_000)
        );
        let done = task("ACME-001", Stage::Done, Phase::Idle, "");
        assert!(forms(&done).is_empty());
    }

    #[test]
    fn a_reply_becomes_tables_and_pairs_with_known_sections_first() {
        let reply = json!({
            "breaker": {"state": "closed", "failures": 0},
            "counts": {"queued": 1},
            "jobs": [{"id": 1, "task": "ACME-001"}, {"id": 2, "pid": 7}],
            "merge_queues": {"acme/app": {"depth": 2, "waiting": ["ACME-003", "ACME-004"]}},
            "parked": null,
        });
        let sections = queue_sections(&reply);
        let titles: Vec<_> = sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            ["counts", "parked", "breaker", "jobs", "merge_queues"]
        );
        let jobs = sections[3].table.as_ref().unwrap();
        assert_eq!(jobs.columns, ["id", "task", "pid"]);
        assert_eq!(jobs.rows[1], ["2", "—", "7"]);
        assert_eq!(
            sections[4].pairs,
            [
                Pair {
                    key: "acme/app.depth".into(),
                    value: "2".into()
                },
                Pair {
                    key: "acme/app.waiting".into(),
                    value: "ACME-003, ACME-004".into()
                },
            ]
        );
        assert_eq!(
            sections[1].pairs[0],
            Pair {
                key: "parked".into(),
                value: "—".into()
            }
        );
    }

    #[test]
    fn a_repository_is_frozen_only_when_its_queue_says_so() {
        let reply = json!({"merge_queues": [
            {"repo": "acme/app", "frozen": {"kind": "operator", "by": "ops", "reason": "release", "at": "T"}},
            {"repo": "acme/web", "frozen": null},
        ]});
        let repos = repo_freezes(["acme/app", "acme/web", "acme/new"], &reply);
        let frozen: Vec<_> = repos.iter().map(|r| (r.repo.as_str(), r.frozen)).collect();
        assert_eq!(
            frozen,
            [("acme/app", true), ("acme/web", false), ("acme/new", false)]
        );
        assert_eq!(repos[0].why, "frozen by ops (operator) since T: release");
    }

    #[test]
    fn what_a_task_waits_for_follows_the_domain_s_vocabulary() {
        let mut blocked = task("ACME-001", Stage::Testing, Phase::Blocked, "");
        blocked.blocked_reason = Some("infrastructure: git push failed".into());
        assert_eq!(
            waits_for(&blocked),
            "an operator's retry — infrastructure: git push failed"
        );
        assert!(unblocked_by(&blocked).contains("/tasks/ACME-001/retry"));
        blocked.paused = true;
        assert!(
            waits_for(&blocked).contains("retry"),
            "blocked comes before paused"
        );
        let mut paused = task("ACME-001", Stage::Review, Phase::Working, "");
        paused.paused = true;
        assert_eq!(waits_for(&paused), "an operator: paused, waits for resume");
        let working = task("ACME-001", Stage::Review, Phase::Working, "");
        assert_eq!(waits_for(&working), "an agent run (queued or running)");
        assert_eq!(unblocked_by(&working), "");
    }
}
