//! `GET /metrics`: the service's figures in the Prometheus (OpenMetrics) text format. The
//! handler gathers the journal's aggregates, the queue overview and dispatch's breaker, and
//! hands them to `crate::metrics::render`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use orchestrator_actors::actors::describe::describe_cell;
use orchestrator_actors::actors::disk_watchdog::DISK_WATCHDOG;
use orchestrator_actors::actors::dispatch::DISPATCH;
use ractor::registry;

use super::{ApiError, AppState};
use orchestrator_actors::actors::merge_queue;
use orchestrator_actors::ports::merge_queue::EntryState;

use crate::metrics::{BreakerFigures, CONTENT_TYPE, MergeQueueFigures, Snapshot, render};

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

/// Each watched filesystem's fill as the disk watchdog last read it, or `None` while it does
/// not answer.
async fn disks(state: &AppState) -> Option<Vec<(String, f64)>> {
    let cell = registry::where_is(DISK_WATCHDOG)?;
    let details = describe_cell(&cell, state.describe_timeout)
        .await
        .1
        .ok()?
        .details;
    let filesystems = details.get("filesystems")?.as_object()?;
    Some(
        filesystems
            .values()
            .filter_map(|fs| {
                let holds = fs.get("holds")?.as_str()?.to_string();
                let pct = fs.get("fill_pct")?.as_f64()?;
                Some((holds, pct / 100.0))
            })
            .collect(),
    )
}

/// Each repository's merge queue, or `None` while the queue does not answer.
async fn merge_queues() -> Option<Vec<MergeQueueFigures>> {
    let now = std::time::SystemTime::now();
    let views = merge_queue::overview().await.ok()?;
    Some(
        views
            .into_iter()
            .map(|q| {
                let oldest = q
                    .entries
                    .iter()
                    .filter(|e| e.state == EntryState::Waiting)
                    .filter_map(|e| humantime::parse_rfc3339(&e.joined_at).ok())
                    .min();
                MergeQueueFigures {
                    repo: q.repo,
                    waiting: q.waiting.len() as u64,
                    holding: q.batch.len() as u64,
                    oldest_wait_seconds: oldest
                        .and_then(|at| now.duration_since(at).ok())
                        .map_or(0.0, |d| d.as_secs_f64()),
                    frozen: q.frozen.is_some(),
                    ci_runs: q.counts.ci_runs,
                    merged: q.counts.merged,
                    bounced: q.counts.bounced,
                }
            })
            .collect(),
    )
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let snapshot = Snapshot {
        journal: state.journal.journal_figures().await?,
        queue: state.jobs.queue_overview().await?,
        breaker: breaker(&state).await,
        merge_queues: merge_queues().await,
        disks: disks(&state).await,
    };
    let text = render(&snapshot)
        .map_err(|e| ApiError::internal(format!("cannot render the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
