//! `GET /actors` — the live actor tree from `root`, each actor described by its own RPC.
//! Query: `depth=N` cuts the tree N levels below root (children are still counted);
//! `timeout_ms=N` overrides the per-actor Describe timeout.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_actors::actors::describe::{self, ActorNode, WalkOptions};
use orchestrator_actors::actors::tree::ROOT;
use ractor::registry;

use super::params::{number_param, only_params};
use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/actors", get(actors))
}

async fn actors(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ActorNode>, ApiError> {
    only_params(&query, &["depth", "timeout_ms"])?;
    let max_depth = number_param(&query, "depth", 0..=100)?.map(|d| d as usize);
    let timeout = number_param(&query, "timeout_ms", 1..=60_000)?
        .map(Duration::from_millis)
        .unwrap_or(state.describe_timeout);
    let root = registry::where_is(ROOT)
        .ok_or_else(|| ApiError::unavailable("the actor tree is not running"))?;
    Ok(Json(
        describe::walk(root, WalkOptions { timeout, max_depth }).await,
    ))
}
