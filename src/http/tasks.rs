//! `GET /tasks` and `GET /tasks/{id}`: tasks from the store; a single task also shows its
//! journal and what its live actor (found by name) says about itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_actors::WorkItemId;
use orchestrator_actors::describe::{describe_cell, status_name};
use orchestrator_actors::ports::{NewTaskFields, RunRecord};
use orchestrator_actors::task::spawn_task_actor;
use ractor::registry;
use serde_json::{Value, json};

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
    let runs = state.jobs.runs(&id).await?;
    let mut usage = serde_json::Map::new();
    let mut total = usage_zero();
    for run in &runs {
        let entry = usage.entry(run.stage.as_str()).or_insert_with(usage_zero);
        add_usage(entry, run);
        add_usage(&mut total, run);
    }
    body["runs"] = serde_json::to_value(&runs).map_err(render)?;
    body["usage_by_stage"] = serde_json::Value::Object(usage);
    body["usage_total"] = total;
    body["pull_request"] = match &task.branch {
        Some(branch) => serde_json::to_value(state.pulls.pull_request(&task.repo, branch).await?)
            .map_err(render)?,
        None => Value::Null,
    };
    body["actor"] = actor;
    Ok(Json(body))
}

/// Token and cost counters at zero. Costs are summed as whole nano-dollars, so every sum
/// is exact: the stages' sums add up to the total to the last digit.
fn usage_zero() -> Value {
    json!({"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
           "cache_creation_tokens": 0, "cost_nano_usd": 0, "cost_usd": 0.0, "runs": 0})
}

/// Adds one run's tokens and cost to a usage counter.
fn add_usage(entry: &mut Value, run: &RunRecord) {
    let nanos = (run.cost_usd.max(0.0) * 1e9).round() as u64;
    for (key, add) in [
        ("input_tokens", run.input_tokens),
        ("output_tokens", run.output_tokens),
        ("cache_read_tokens", run.cache_read_tokens),
        ("cache_creation_tokens", run.cache_creation_tokens),
        ("cost_nano_usd", nanos),
        ("runs", 1),
    ] {
        entry[key] = json!(entry[key].as_u64().unwrap_or(0) + add);
    }
    entry["cost_usd"] = json!(entry["cost_nano_usd"].as_u64().unwrap_or(0) as f64 / 1e9);
}

/// Longest accepted title, in characters.
const MAX_TITLE: usize = 200;
/// Longest accepted description, in characters.
const MAX_DESCRIPTION: usize = 20_000;
/// Most labels on one task, and the longest label.
const MAX_LABELS: usize = 20;
const MAX_LABEL: usize = 50;

/// `POST /tasks` (local tracker): `{repo, title, description?, labels?}` → 201
/// `{"work_item_id"}`. Everything is validated before anything is written.
async fn create(
    State(state): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!("the body must be a JSON object: {}", e.body_text()))
    })?;
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["repo", "title", "description", "labels"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown field {unknown:?} (known: repo, title, description, labels)"
        )));
    }
    let text = |name: &str, required: bool| -> Result<String, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) if !required => Ok(String::new()),
            None | Some(Value::Null) => Err(ApiError::bad_request(format!("{name} is required"))),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name} must be a string, not {other}"
            ))),
        }
    };
    let repo = text("repo", true)?;
    let project = state
        .projects
        .iter()
        .find(|p| p.repo == repo)
        .ok_or_else(|| {
            let known: Vec<_> = state.projects.iter().map(|p| p.repo.as_str()).collect();
            ApiError::bad_request(format!(
                "unknown repo {repo:?} (configured: {})",
                if known.is_empty() {
                    "none; set ORCH_PROJECTS_JSON".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
    if project.plane_project_id.is_some() {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            message: format!(
                "repo {repo:?} takes its tasks from Plane (plane_project_id is set): move an issue to a start status on its board instead"
            ),
        });
    }
    let title = text("title", true)?.trim().to_string();
    if title.is_empty() {
        return Err(ApiError::bad_request("title must not be empty"));
    }
    let title_len = title.chars().count();
    if title_len > MAX_TITLE {
        return Err(ApiError::bad_request(format!(
            "title is {title_len} characters long; at most {MAX_TITLE} are allowed"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "title must be one line without control characters",
        ));
    }
    let description = text("description", false)?;
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::bad_request(format!(
            "description is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    let labels = match fields.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_LABELS {
                return Err(ApiError::bad_request(format!(
                    "at most {MAX_LABELS} labels are allowed"
                )));
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(l)
                        if !l.trim().is_empty()
                            && l.chars().count() <= MAX_LABEL
                            && !l.chars().any(char::is_control) =>
                    {
                        Ok(l.trim().to_string())
                    }
                    Value::String(l) => Err(ApiError::bad_request(format!(
                        "label {l:?} must be 1-{MAX_LABEL} characters on one line"
                    ))),
                    other => Err(ApiError::bad_request(format!(
                        "labels must be strings, found {other}"
                    ))),
                })
                .collect::<Result<_, _>>()?
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "labels must be a list of strings, not {other}"
            )));
        }
    };
    let task = state
        .store
        .create_numbered_task(
            &project.prefix,
            NewTaskFields {
                repo,
                title,
                description,
                labels,
            },
        )
        .await?;
    let id = task.work_item_id;
    spawn_task_actor(state.task_deps.clone(), id.clone())
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "task {id} was created but its actor did not start: {e}"
            ))
        })?;
    Ok((StatusCode::CREATED, Json(json!({ "work_item_id": id }))))
}
