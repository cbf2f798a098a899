//! Debug builds only (compiled out of release): fault injection for the supervision tests.
//! `POST /debug/tasks/{id}/crash` panics the task's actor; `POST /debug/tasks/{id}/stall?ms=N`
//! blocks its handler for N ms; `POST /debug/runs/{job}/crash` panics the run actor of a
//! running job (its agent is killed and the job requeued with the attempt counted).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use orchestrator_actors::actors::run::{RunMsg, run_name};
use orchestrator_actors::actors::task::TaskMsg;
use ractor::{ActorRef, registry};
use serde_json::{Value, json};

use super::params::{number_param, only_params};
use super::tasks::parse_id;
use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/debug/tasks/{id}/crash", post(crash))
        .route("/debug/tasks/{id}/stall", post(stall))
        .route("/debug/runs/{job}/crash", post(crash_run))
}

async fn crash_run(Path(raw): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let job: i64 = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("job id {raw:?} is not a number")))?;
    let actor: ActorRef<RunMsg> = registry::where_is(run_name(job))
        .map(ActorRef::from)
        .ok_or_else(|| ApiError::not_found(format!("no live run for job {job}")))?;
    actor
        .cast(RunMsg::Crash("debug route".into()))
        .map_err(|e| ApiError::not_found(format!("run unreachable: {e}")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "sent_to": actor.get_id().to_string() })),
    ))
}

fn task_actor(raw: &str) -> Result<ActorRef<TaskMsg>, ApiError> {
    let id = parse_id(raw)?;
    registry::where_is(id.actor_name())
        .map(ActorRef::from)
        .ok_or_else(|| ApiError::not_found(format!("no live actor for task {id}")))
}

fn send(actor: &ActorRef<TaskMsg>, msg: TaskMsg) -> Result<(StatusCode, Json<Value>), ApiError> {
    actor
        .cast(msg)
        .map_err(|e| ApiError::not_found(format!("actor unreachable: {e}")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "sent_to": actor.get_id().to_string() })),
    ))
}

async fn crash(Path(raw): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let actor = task_actor(&raw)?;
    send(&actor, TaskMsg::Crash("debug route".into()))
}

async fn stall(
    Path(raw): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    only_params(&query, &["ms"])?;
    let ms = number_param(&query, "ms", 1..=600_000)?.unwrap_or(30_000);
    let actor = task_actor(&raw)?;
    send(&actor, TaskMsg::Stall(Duration::from_millis(ms)))
}
