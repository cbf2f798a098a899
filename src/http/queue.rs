//! `GET /queue` — the job queue at a glance: counts per status, the queued and running jobs
//! (attempts, transient retries, when each becomes claimable), the usage-limit park, the
//! hold while the agent program cannot start, the pause while a disk is critically full
//! (and each filesystem's fill), the dispatcher's circuit breaker and running
//! set, the reaper's counters, each repository's merge queue (holder, waiting tasks in
//! order, state, freeze, last green `main`), and what the
//! reconciler found (deliveries acted on late or superseded, missed board transitions, tasks
//! it cannot make sense of).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use orchestrator_actors::actors::describe::describe_cell;
use orchestrator_actors::actors::disk_watchdog::DISK_WATCHDOG;
use orchestrator_actors::actors::dispatch::DISPATCH;
use orchestrator_actors::actors::merge_queue;
use orchestrator_actors::actors::reaper::REAPER;
use orchestrator_actors::actors::reconciler::RECONCILER;
use ractor::registry;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/queue", get(queue))
}

/// An actor's Describe details by name, or why there are none.
async fn details(name: &str, state: &AppState) -> Value {
    match registry::where_is(name) {
        None => json!({"error": format!("{name} is not running")}),
        Some(cell) => match describe_cell(&cell, state.describe_timeout).await.1 {
            Ok(d) => d.details,
            Err(e) => json!({ "error": e }),
        },
    }
}

pub(super) async fn queue(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let overview = state.jobs.queue_overview().await?;
    let dispatch = details(DISPATCH, &state).await;
    let reaper = details(REAPER, &state).await;
    let reconciler = details(RECONCILER, &state).await;
    let disk = details(DISK_WATCHDOG, &state).await;
    let merge_queues = match merge_queue::overview().await {
        Ok(repos) => serde_json::to_value(repos).unwrap_or(Value::Null),
        Err(e) => json!({ "error": e }),
    };
    Ok(Json(json!({
        "counts": overview.counts,
        "parked": overview.parked,
        "breaker": dispatch.get("breaker").cloned().unwrap_or(Value::Null),
        "held": dispatch.get("agent_hold").cloned().unwrap_or(Value::Null),
        "paused_for_disk": dispatch.get("disk_pause").cloned().unwrap_or(Value::Null),
        "jobs": overview.active,
        "dispatch": dispatch,
        "reaper": reaper,
        "reconciler": reconciler,
        "disk": disk,
        "merge_queues": merge_queues,
    })))
}
