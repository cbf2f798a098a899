//! `POST /webhook/plane` and `POST /webhook/gitea`: the raw body (at most 1 MiB, else 413)
//! goes to the intake, which checks its signature (401), its JSON (400) and replays, and
//! answers `{"status": "accepted" | "ignored" | "duplicate"}` before anything is acted on.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::intake::{MAX_BODY, Source};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/webhook/plane", post(plane))
        .route("/webhook/gitea", post(gitea))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn plane(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    receive(state, Source::Plane, headers, body).await
}

async fn gitea(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    receive(state, Source::Gitea, headers, body).await
}

async fn receive(
    state: AppState,
    source: Source,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("the body exceeds the webhook limit of {MAX_BODY} bytes"),
            }
        } else {
            ApiError {
                status: rejection.status(),
                message: format!("cannot read the body: {}", rejection.body_text()),
            }
        }
    })?;
    match state.intake.receive(source, &headers, &body).await {
        Ok(reply) => Ok(Json(json!({ "status": reply.as_str() }))),
        Err(refusal) => Err(ApiError {
            status: refusal.status,
            message: refusal.message,
        }),
    }
}
