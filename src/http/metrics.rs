//! `GET /metrics`: the service's figures in the Prometheus (OpenMetrics) text format. The
//! handler gathers the journal's aggregates, the queue overview and dispatch's breaker, and
//! hands them to `crate::metrics::render`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use orchestrator_actors::actors::describe::describe_cell;
use orchestrator_actors::actors::dispatch::DISPATCH;
use ractor::registry;

use super::{ApiError, AppState};
use crate::metrics::{BreakerFigures, CONTENT_TYPE, Snapshot, render};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The breaker as dispatch describes it, or `None` while dispatch is not answering (the
/// series is then left out rather than guessed).
async fn breaker(state: &AppState) -> Option<BreakerFigures> {
    let cell = registry::where_is(DISPATCH)?;
    let details = describe_cell(&cell, state.describe_timeout)
        .await
        .1
        .ok()?
        .details;
    let breaker = details.get("breaker")?;
    Some(BreakerFigures {
        open: breaker.get("state")?.as_str()? == "open",
        opened_total: breaker.get("opened_total")?.as_u64()?,
    })
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let snapshot = Snapshot {
        journal: state.journal.journal_figures().await?,
        queue: state.jobs.queue_overview().await?,
        breaker: breaker(&state).await,
    };
    let text = render(&snapshot)
        .map_err(|e| ApiError::internal(format!("cannot render the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
