//! `GET /health` (liveness; answered only once the actor tree is up) and `GET /status`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
}

async fn health() -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": "orchestrator",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let active: Vec<Value> = state
        .store
        .list_tasks()
        .await?
        .into_iter()
        .filter(|t| !t.stage.is_terminal())
        .map(|t| {
            json!({
                "work_item_id": t.work_item_id,
                "repo": t.repo,
                "title": t.title,
                "stage": t.stage,
                "paused": t.paused,
            })
        })
        .collect();
    Ok(Json(json!({
        "active_tasks": active,
        "webhooks_in_progress": state.intake.acting(),
    })))
}
