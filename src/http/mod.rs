//! The HTTP surface (axum). Handlers parse (typed bodies, unknown fields refused), ask the
//! store or the domain, and shape the reply; no business decision is made here. Every error
//! body of the API is `{"error": "…"}`; the web dashboard (`/`, `/ui/…`) answers HTML.

mod actors;
mod body;
mod dashboard;
#[cfg(debug_assertions)]
mod debug;
mod error;
mod health;
mod metrics;
mod operator;
mod params;
mod queue;
mod repos;
mod tasks;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use orchestrator_actors::actors::task::TaskCreator;
use orchestrator_actors::ports::{JobStore, PullRequestStore, Store};

pub use dashboard::{Dashboard, PlaneWeb};
pub use error::ApiError;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The durable store (queries only; writes belong to actors).
    pub store: Arc<dyn Store>,
    /// The job queue and run journal (queries only).
    pub jobs: Arc<dyn JobStore>,
    /// The local forge's pull requests (queries only).
    pub pulls: Arc<dyn PullRequestStore>,
    /// The one way a task is created (the creation rule, the store, the task's actor).
    pub creator: Arc<TaskCreator>,
    /// Bearer token of the operator routes; `None` disables them.
    pub operator_token: Option<String>,
    /// Per-actor Describe timeout for `/actors` and `/tasks/{id}`.
    pub describe_timeout: Duration,
    /// The webhook intake.
    pub intake: Arc<crate::intake::Intake>,
    /// The journal's aggregates for `GET /metrics` (reads only).
    pub journal: Arc<crate::store::SqliteStore>,
    /// The project registry (each task's spend cap for `GET /tasks/{id}`).
    pub projects: Arc<crate::config::projects::Projects>,
    /// The web dashboard's sessions and live feed.
    pub dashboard: Arc<Dashboard>,
}

/// The complete router.
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .merge(health::router())
        .merge(actors::router())
        .merge(tasks::router())
        .merge(queue::router())
        .merge(metrics::router())
        .merge(operator::router())
        .merge(repos::router())
        .merge(webhooks::router());
    #[cfg(debug_assertions)]
    let router = router.merge(debug::router());
    router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::map_response(json_errors))
        // After the layer: the dashboard's errors are HTML pages for a person.
        .merge(dashboard::router())
        .with_state(state)
}

/// Turns an error response that is not JSON (an extractor's rejection, say) into
/// `{"error": "<its text>"}`, so clients can rely on one error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    ApiError {
        status,
        message: text,
    }
    .into_response()
}
