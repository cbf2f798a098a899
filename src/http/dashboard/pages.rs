//! The dashboard's pages (GET): the board, a task, the queue, the actor tree and a run's log.
//! Each page's live part is built by one function here, which its Server-Sent Events stream
//! (`live.rs`) renders again as things change.

use std::time::SystemTime;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::actors::describe::{self, WalkOptions};
use orchestrator_actors::actors::tree::ROOT;
use orchestrator_actors::domain::usage::Usage;
use orchestrator_actors::ports::{PullRequest, Store, TrackerLinks};
use ractor::registry;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::views::{
    self, ActorRow, BoardLive, FormView, RepoFreeze, RunRow, Section, TransitionRow,
};
use super::{Chrome, PageError, Viewer, render};
use crate::http::tasks::{describe_actor, parse_id};
use crate::http::{ApiError, AppState};
use crate::store::SqliteStore;

/// The board's page.
#[derive(Template)]
#[template(path = "dashboard/board.html")]
struct BoardPage {
    /// The frame.
    chrome: Chrome,
    /// The columns.
    live: BoardLive,
}

/// The board's live part alone, for its stream.
#[derive(Template)]
#[template(path = "dashboard/board_live.html")]
pub(super) struct BoardFragment<'a> {
    /// The columns.
    pub live: &'a BoardLive,
}

/// The live stream's path for a page showing `fragment`'s rendering: `?v=` says which
/// version the page shows, so the stream does not send it again.
fn events_path(path: &str, fragment: &impl Template) -> String {
    match fragment.render() {
        Ok(html) => format!("{path}?v={}", super::version(&html)),
        Err(_) => path.to_string(),
    }
}

/// The board as it stands: every task from the store, each with its spend.
pub(super) async fn board_live(
    store: &dyn Store,
    journal: &SqliteStore,
) -> Result<BoardLive, PageError> {
    let tasks = store.list_tasks().await?;
    let spend = journal.task_spend().await?;
    Ok(views::board(tasks, &spend, SystemTime::now()))
}

/// `GET /`: the board.
pub(super) async fn board(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&state, &headers).await;
    let live = board_live(state.store.as_ref(), &state.journal).await?;
    let events = events_path("/ui/events/board", &BoardFragment { live: &live });
    let chrome = Chrome::new("Board", "board", "/", events, &viewer);
    let nonce = chrome.nonce.clone();
    Ok(render(StatusCode::OK, &nonce, &BoardPage { chrome, live }))
}

/// A task's live part: the record, its journal, runs, links and the forms that apply.
#[derive(Clone, Debug)]
pub(super) struct TaskLive {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its repository.
    pub repo: String,
    /// What is wanted.
    pub description: String,
    /// Its stage.
    pub stage: String,
    /// Its phase.
    pub phase: &'static str,
    /// Paused by the operator.
    pub paused: bool,
    /// What it waits for, in words.
    pub waits_for: String,
    /// What unblocks it, with its route; empty when it waits on no one.
    pub unblocked_by: String,
    /// Its labels, comma-separated.
    pub labels: String,
    /// Its branch, `—` before one is cut.
    pub branch: String,
    /// What its next agent will be told.
    pub note: String,
    /// Times it went back to development.
    pub developer_retries: u32,
    /// Agent runs of its current stage.
    pub stage_attempts: u32,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Its journal, with the gates' verdicts and the operators' reasons.
    pub transitions: Vec<TransitionRow>,
    /// Its agent runs.
    pub runs: Vec<RunRow>,
    /// What all its runs cost.
    pub total_cost: String,
    /// Input / output tokens of all its runs.
    pub total_tokens: String,
    /// Its pull request on the local forge, if one was opened.
    pub pull: Option<PullRequest>,
    /// Its Plane issue's page, when it came from Plane.
    pub plane_url: Option<String>,
    /// Its live actor's status, or that it has none.
    pub actor_status: String,
    /// What its actor's Describe said (the gate or merge in flight, timers), compact.
    pub actor_details: String,
    /// The forms that apply now.
    pub forms: Vec<FormView>,
    /// Operator actions are configured.
    pub enabled: bool,
    /// An operator is logged in.
    pub logged_in: bool,
    /// The session's CSRF token.
    pub csrf: String,
}

/// The task's page.
#[derive(Template)]
#[template(path = "dashboard/task.html")]
struct TaskPage {
    /// The frame.
    chrome: Chrome,
    /// What the last form did, after its redirect.
    flash: Option<String>,
    /// The task.
    live: TaskLive,
}

/// A task's live part alone, for its stream.
#[derive(Template)]
#[template(path = "dashboard/task_live.html")]
pub(super) struct TaskFragment<'a> {
    /// The task.
    pub live: &'a TaskLive,
}

/// Builds a task's live part for `viewer`.
pub(super) async fn task_live(
    state: &AppState,
    id: &WorkItemId,
    viewer: &Viewer,
) -> Result<TaskLive, PageError> {
    let task = state
        .store
        .load_task(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    let transitions = state.store.transitions(id).await?;
    let runs = state.jobs.runs(id).await?;
    let usage = Usage::of(&runs);
    let pull = match &task.branch {
        Some(branch) => state.pulls.pull_request(&task.repo, branch).await?,
        None => None,
    };
    let plane_url = match (&state.dashboard.plane, state.journal.task_link(id).await?) {
        (Some(plane), Some(link)) if link.tracker == "plane" => Some(format!(
            "{}/{}/projects/{}/issues/{}",
            plane.url.trim_end_matches('/'),
            plane.workspace,
            link.project_ref,
            link.issue_ref
        )),
        _ => None,
    };
    let actor = describe_actor(state, id).await;
    let (actor_status, actor_details) = match &actor {
        Value::Null => ("no live actor".to_string(), String::new()),
        a => (
            a["status"].as_str().unwrap_or("unknown").to_string(),
            match (&a["details"], &a["error"]) {
                (Value::Null, Value::Null) => String::new(),
                (Value::Null, e) => e.as_str().unwrap_or_default().to_string(),
                (d, _) => d.to_string(),
            },
        ),
    };
    Ok(TaskLive {
        id: task.work_item_id.to_string(),
        title: task.title.clone(),
        repo: task.repo.clone(),
        description: task.description.clone(),
        stage: task.stage.to_string(),
        phase: task.phase.as_str(),
        paused: task.paused,
        waits_for: views::waits_for(&task),
        unblocked_by: views::unblocked_by(&task),
        labels: task.labels.join(", "),
        branch: task.branch.clone().unwrap_or_else(|| "—".into()),
        note: task.note.clone().unwrap_or_default(),
        developer_retries: task.developer_retries,
        stage_attempts: task.stage_attempts,
        created_at: task.created_at.clone(),
        updated_at: task.updated_at.clone(),
        transitions: views::transitions(&transitions),
        runs: views::runs(&runs),
        total_cost: views::dollars(usage.cost_usd),
        total_tokens: format!("{} / {}", usage.input_tokens, usage.output_tokens),
        pull,
        plane_url,
        actor_status,
        actor_details,
        forms: views::forms(&task),
        enabled: viewer.enabled,
        logged_in: viewer.session.is_some(),
        csrf: viewer.csrf(),
    })
}

/// A page's query after a form: what the form just posted did (set by its redirect).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TaskQuery {
    /// The action that was posted.
    #[serde(default)]
    did: Option<String>,
    /// Whether it changed the task.
    #[serde(default)]
    changed: Option<bool>,
}

/// `GET /ui/tasks/{id}`.
pub(super) async fn task(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    query: Result<Query<TaskQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let id = parse_id(&raw)?;
    let viewer = Viewer::of(&state, &headers).await;
    let live = task_live(&state, &id, &viewer).await?;
    let flash = query
        .did
        .as_deref()
        .and_then(|did| views::FORMS.iter().find(|f| f.action == did))
        .map(|f| match query.changed {
            Some(true) => format!("{}: done.", f.label),
            _ => format!(
                "{}: changed nothing (already done, or not possible at this moment).",
                f.label
            ),
        });
    let here = format!("/ui/tasks/{id}");
    let events = events_path(
        &format!("/ui/events/tasks/{id}"),
        &TaskFragment { live: &live },
    );
    let chrome = Chrome::new(format!("{id}"), "", here, events, &viewer);
    let nonce = chrome.nonce.clone();
    Ok(render(
        StatusCode::OK,
        &nonce,
        &TaskPage {
            chrome,
            flash,
            live,
        },
    ))
}

/// The queue's live part: `GET /queue`'s reply as sections, and each repository's freeze
/// form.
#[derive(Clone, Debug)]
pub(super) struct QueueLive {
    /// The reply's sections.
    pub sections: Vec<Section>,
    /// Every configured repository's merge queue, frozen or not.
    pub repos: Vec<RepoFreeze>,
    /// Operator actions are configured.
    pub enabled: bool,
    /// An operator is logged in.
    pub logged_in: bool,
    /// The session's CSRF token.
    pub csrf: String,
}

/// The queue's live part alone, for its stream.
#[derive(Template)]
#[template(path = "dashboard/queue_live.html")]
pub(super) struct QueueFragment<'a> {
    /// The queue.
    pub live: &'a QueueLive,
}

/// The queue's page.
#[derive(Template)]
#[template(path = "dashboard/queue.html")]
struct QueuePage {
    /// The frame.
    chrome: Chrome,
    /// What the last form did, after its redirect.
    flash: Option<String>,
    /// The queue.
    live: QueueLive,
}

/// What `GET /queue` answers, as sections, with the freeze forms for `viewer`.
pub(super) async fn queue_live(state: &AppState, viewer: &Viewer) -> Result<QueueLive, PageError> {
    let Json(reply) = crate::http::queue::queue(State(state.clone())).await?;
    let projects = &state.creator.tasks.projects;
    Ok(QueueLive {
        sections: views::queue_sections(&reply),
        repos: views::repo_freezes(projects.iter().map(|p| p.repo.as_str()), &reply),
        enabled: viewer.enabled,
        logged_in: viewer.session.is_some(),
        csrf: viewer.csrf(),
    })
}

/// `GET /ui/queue`.
pub(super) async fn queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TaskQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let viewer = Viewer::of(&state, &headers).await;
    let live = queue_live(&state, &viewer).await?;
    let flash = match query.did.as_deref() {
        Some(did @ ("freeze" | "unfreeze")) => Some(match query.changed {
            Some(true) => format!("{did}: done."),
            _ => format!("{did}: changed nothing (it already was)."),
        }),
        _ => None,
    };
    let events = events_path("/ui/events/queue", &QueueFragment { live: &live });
    let chrome = Chrome::new("Queue", "queue", "/ui/queue", events, &viewer);
    let nonce = chrome.nonce.clone();
    Ok(render(
        StatusCode::OK,
        &nonce,
        &QueuePage {
            chrome,
            flash,
            live,
        },
    ))
}

/// The actor tree's live part.
#[derive(Template)]
#[template(path = "dashboard/actors_live.html")]
pub(super) struct ActorsFragment<'a> {
    /// The actors, depth first.
    pub rows: &'a [ActorRow],
}

/// The actor tree's page.
#[derive(Template)]
#[template(path = "dashboard/actors.html")]
struct ActorsPage {
    /// The frame.
    chrome: Chrome,
    /// The actors, depth first.
    rows: Vec<ActorRow>,
}

/// The tree from `root`, as `GET /actors` walks it.
pub(super) async fn actor_rows(state: &AppState) -> Result<Vec<ActorRow>, PageError> {
    let root = registry::where_is(ROOT)
        .ok_or_else(|| ApiError::unavailable("the actor tree is not running"))?;
    let tree = describe::walk(
        root,
        WalkOptions {
            timeout: state.describe_timeout,
            max_depth: None,
        },
    )
    .await;
    Ok(views::actor_rows(&tree))
}

/// `GET /ui/actors`.
pub(super) async fn actors(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&state, &headers).await;
    let rows = actor_rows(&state).await?;
    let events = events_path("/ui/events/actors", &ActorsFragment { rows: &rows });
    let chrome = Chrome::new("Actors", "actors", "/ui/actors", events, &viewer);
    let nonce = chrome.nonce.clone();
    Ok(render(StatusCode::OK, &nonce, &ActorsPage { chrome, rows }))
}

/// Most of a log shown at once: its end.
const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// A run's log.
#[derive(Template)]
#[template(path = "dashboard/log.html")]
struct LogPage {
    /// The frame.
    chrome: Chrome,
    /// The run.
    run_id: String,
    /// Where the log lies.
    path: String,
    /// Bytes left out before the tail shown.
    skipped: u64,
    /// The log's (last) text, or why there is none.
    text: String,
}

/// `GET /ui/runs/{run_id}/log`: the last 256 KiB of the log the run journaled.
pub(super) async fn run_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Result<Response, PageError> {
    let valid = !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::bad_request(format!(
            "invalid run id {run_id:?}: letters, digits, '-' and '_' only"
        ))
        .into());
    }
    let path = state
        .journal
        .run_log_path(&run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    let (skipped, text) = match tail(&path).await {
        Ok(found) => found,
        Err(e) => (
            0,
            format!(
                "the log cannot be read ({e}); finished runs' files are removed after \
                 ORCH_RUN_LOG_RETENTION_DAYS"
            ),
        ),
    };
    let viewer = Viewer::of(&state, &headers).await;
    let here = format!("/ui/runs/{run_id}/log");
    let chrome = Chrome::new(format!("Run {run_id}"), "", here, "", &viewer);
    let nonce = chrome.nonce.clone();
    Ok(render(
        StatusCode::OK,
        &nonce,
        &LogPage {
            chrome,
            run_id,
            path,
            skipped,
            text,
        },
    ))
}

/// The last [`LOG_TAIL_BYTES`] of the file at `path` as text, and how many bytes came before.
async fn tail(path: &str) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let skipped = len.saturating_sub(LOG_TAIL_BYTES);
    file.seek(std::io::SeekFrom::Start(skipped)).await?;
    let mut bytes = Vec::with_capacity((len - skipped) as usize);
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes).await?;
    Ok((skipped, String::from_utf8_lossy(&bytes).into_owned()))
}
