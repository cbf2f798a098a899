//! `GET /tasks` and `GET /tasks/{id}`: tasks from the store; a single task also shows its
//! journal and what its live actor (found by name) says about itself.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_actors::WorkItemId;
use orchestrator_actors::describe::{describe_cell, status_name};
use ractor::registry;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list))
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
    let actor = match registry::where_is(id.actor_name()) {
        None => Value::Null,
        Some(cell) => {
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
    };
    let render = |e: serde_json::Error| ApiError::internal(format!("cannot render task {id}: {e}"));
    let mut body = serde_json::to_value(&task).map_err(render)?;
    body["transitions"] = serde_json::to_value(transitions).map_err(render)?;
    body["actor"] = actor;
    Ok(Json(body))
}
