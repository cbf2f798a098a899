//! `GET /actors` — the live actor tree from `root`, each actor described by its own RPC.
//! Query: `depth=N` cuts the tree N levels below root (children are still counted);
//! `timeout_ms=N` overrides the per-actor Describe timeout.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_actors::describe::{self, ActorNode, WalkOptions};
use orchestrator_actors::tree::ROOT;
use ractor::registry;

use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/actors", get(actors))
}

/// Parses one optional whole-number query parameter within `range`.
pub(super) fn number_param(
    query: &HashMap<String, String>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    let Some(raw) = query.get(name) else {
        return Ok(None);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid query parameter {name}={raw:?}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

/// Rejects query parameters the endpoint does not know.
pub(super) fn only_params(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?} (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
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
    let root = registry::where_is(ROOT).ok_or_else(|| ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        message: "the actor tree is not running".into(),
    })?;
    Ok(Json(
        describe::walk(root, WalkOptions { timeout, max_depth }).await,
    ))
}
