//! `GET /tasks` and `GET /tasks/{id}`: tasks from the store; a single task also shows its
//! journal, runs, usage, its spend against its cap (and any overshoot), and what its live
//! actor (found by name) says about itself. `POST /tasks` reads
//! its typed body and hands it to the one creation rule.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_actors::WorkItemId;
use orchestrator_actors::actors::describe::{describe_cell, status_name};
use orchestrator_actors::domain::budget;
use orchestrator_actors::domain::creation::{CreateError, Origin, TaskRequest};
use orchestrator_actors::domain::usage::Usage;
use orchestrator_actors::domain::waiting;
use ractor::registry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::JsonBody;
use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list).post(create))
        .route("/tasks/{id}", get(show))
}

/// Validates a work-item id from the path.
pub(super) fn parse_id(raw: &str) -> Result<WorkItemId, ApiError> {
    WorkItemId::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tasks = state.store.list_tasks().await?;
    Ok(Json(json!({ "tasks": tasks })))
}

async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let task = state
        .store
        .load_task(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    let transitions = state.store.transitions(&id).await?;
    let actor = describe_actor(&state, &id).await;
    let render = |e: serde_json::Error| ApiError::internal(format!("cannot render task {id}: {e}"));
    let mut body = serde_json::to_value(&task).map_err(render)?;
    body["transitions"] = serde_json::to_value(transitions).map_err(render)?;
    let runs = state.jobs.runs(&id).await?;
    let mut by_stage = std::collections::BTreeMap::<&str, Usage>::new();
    for run in &runs {
        by_stage.entry(run.stage.as_str()).or_default().add(run);
    }
    body["runs"] = serde_json::to_value(&runs).map_err(render)?;
    body["usage_by_stage"] = serde_json::to_value(by_stage).map_err(render)?;
    body["usage_total"] = serde_json::to_value(Usage::of(&runs)).map_err(render)?;
    let rules = state.projects.rules(&task.repo).unwrap_or_default();
    let standing = budget::Standing::of(&task, &rules, &budget::Spend::of(&runs));
    body["budget"] = serde_json::to_value(standing).map_err(render)?;
    body["pull_request"] = match &task.branch {
        Some(branch) => serde_json::to_value(state.pulls.pull_request(&task.repo, branch).await?)
            .map_err(render)?,
        None => Value::Null,
    };
    body["waiting"] = serde_json::to_value(waiting::of(&task)).map_err(render)?;
    body["actor"] = actor;
    Ok(Json(body))
}

/// What the task's live actor (found by name) says about itself: its name, id, status and
/// Describe details (or why there are none); null when it has no actor.
pub(super) async fn describe_actor(state: &AppState, id: &WorkItemId) -> Value {
    let Some(cell) = registry::where_is(id.actor_name()) else {
        return Value::Null;
    };
    let (_, described) = describe_cell(&cell, state.describe_timeout).await;
    let mut actor = json!({
        "name": id.actor_name(),
        "id": cell.get_id().to_string(),
        "status": status_name(cell.get_status()),
    });
    match described {
        Ok(d) => actor["details"] = d.details,
        Err(e) => actor["error"] = json!(e),
    }
    actor
}

/// `POST /tasks`'s body: a task for the local tracker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTaskBody {
    /// The project's repository.
    repo: String,
    /// One line.
    title: String,
    /// What is wanted and why.
    #[serde(default)]
    description: Option<String>,
    /// Labels (`Bug`, `autoApprove`, …).
    #[serde(default)]
    labels: Option<Vec<String>>,
}

/// `POST /tasks` (local tracker): `{repo, title, description?, labels?}` → 201
/// `{"work_item_id"}`. The creation rule decides; nothing is written when it refuses.
async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewTaskBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = TaskRequest {
        repo: body.repo,
        title: body.title,
        description: body.description.unwrap_or_default(),
        labels: body.labels.unwrap_or_default(),
        origin: Origin::Local,
    };
    let task = state.creator.create(request).await.map_err(refused)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "work_item_id": task.work_item_id })),
    ))
}

/// Why a task was not created, as an HTTP error: 400 for a bad request, 409 when the
/// project takes its tasks elsewhere or the id is taken.
fn refused(e: CreateError) -> ApiError {
    let status = match &e {
        e if e.is_bad_request() => StatusCode::BAD_REQUEST,
        CreateError::TrackedElsewhere { .. } | CreateError::Taken { .. } => StatusCode::CONFLICT,
        CreateError::Store(store) => ApiError::from(store.clone()).status,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError {
        status,
        message: e.to_string(),
    }
}
