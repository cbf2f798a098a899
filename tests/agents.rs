//! Agent runs that go wrong, on the real binary with the dry-run agent: a rate-limited API
//! (transient retries after the stated retry-after, the circuit breaker), a usage limit
//! (the whole queue parks), an exhausted transient budget and a role timeout. An
//! orchestrator killed while an agent runs is `adoption.rs`.

mod common;

use std::time::{Duration, SystemTime};

use common::{create, eventually, first_run_ended, reach, runs, start_local_with};
use serde_json::Value;

fn time(value: &Value) -> SystemTime {
    humantime::parse_rfc3339_weak(value.as_str().expect("a timestamp"))
        .unwrap_or_else(|e| panic!("bad timestamp {value}: {e}"))
}

/// Seconds between the end of `earlier` and the start of `later`.
fn gap(earlier: &Value, later: &Value) -> f64 {
    time(&later["started_at"])
        .duration_since(time(&earlier["finished_at"]))
        .map_or(0.0, |d| d.as_secs_f64())
}

#[tokio::test]
async fn a_rate_limited_run_is_retried_after_its_retry_after_and_the_breaker_opens_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local_with(
        dir.path(),
        false,
        &[
            ("ORCH_BACKOFF_BASE_S", "1"),
            ("ORCH_BREAKER_THRESHOLD", "2"),
            ("ORCH_BREAKER_COOLDOWN_S", "3"),
        ],
    )
    .await;
    let id = create(
        &service,
        "Rate limited",
        "scripted-agent: transient=analyst:2 retry_after=1.5",
        &[],
    )
    .await;
    // After the second 429 in a row the breaker is open and shows in /queue.
    let queue = eventually("the breaker to open", Duration::from_secs(30), || async {
        let (_, q) = service.get("/queue").await;
        (q["breaker"]["state"] == "open").then_some(q)
    })
    .await;
    assert_eq!(queue["breaker"]["consecutive_transient"], 2, "{queue}");
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    let runs = runs(&t);
    let outcomes: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["transient", "transient", "succeeded"], "{t}");
    assert!(
        runs[0]["reason"].as_str().unwrap().contains("429"),
        "{}",
        runs[0]
    );
    // The stated retry-after (1.5 s) is honoured, then the breaker's cool-down (3 s).
    assert!(gap(&runs[0], &runs[1]) >= 1.5, "{runs:?}");
    assert!(gap(&runs[1], &runs[2]) >= 3.0, "{runs:?}");
    // Transient failures used none of the stage's attempts.
    assert_eq!(t["stage_attempts"], 1, "{t}");
    let (_, queue) = service.get("/queue").await;
    assert_eq!(queue["breaker"]["state"], "closed", "{queue}");
    assert_eq!(queue["breaker"]["opened_total"], 1, "{queue}");
    assert_eq!(queue["breaker"]["consecutive_transient"], 0, "{queue}");
}

#[tokio::test]
async fn a_usage_limit_parks_the_queue_until_it_resets_without_burning_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local_with(dir.path(), false, &[]).await;
    let id = create(
        &service,
        "Out of quota",
        "scripted-agent: usage_limit=analyst:1 retry_after=3",
        &[],
    )
    .await;
    // The park is written first (so nothing is claimed meanwhile), then the job requeued.
    let queue = eventually("the queue to park", Duration::from_secs(30), || async {
        let (_, q) = service.get("/queue").await;
        (!q["parked"].is_null() && q["jobs"][0]["status"] == "queued").then_some(q)
    })
    .await;
    assert!(
        queue["parked"]["reason"]
            .as_str()
            .unwrap()
            .contains("usage limit"),
        "{queue}"
    );
    let job = &queue["jobs"][0];
    assert_eq!(
        (&job["status"], &job["attempts"], &job["transient_attempts"]),
        (&Value::from("queued"), &Value::from(0), &Value::from(0)),
        "{queue}"
    );
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    let runs = runs(&t);
    let outcomes: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["usage-limit", "succeeded"], "{t}");
    let reset = time(&queue["parked"]["until"]);
    assert!(
        time(&runs[1]["started_at"]) >= reset,
        "the run started before the reset: {runs:?} {queue}"
    );
    assert_eq!(t["stage_attempts"], 1, "{t}");
    let (_, queue) = service.get("/queue").await;
    assert!(queue["parked"].is_null(), "{queue}");
}

#[tokio::test]
async fn a_spent_transient_budget_counts_as_a_failure_and_repeated_failures_block_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local_with(
        dir.path(),
        false,
        &[
            ("ORCH_TRANSIENT_RETRIES", "1"),
            ("ORCH_BACKOFF_BASE_S", "1"),
            ("ORCH_BREAKER_THRESHOLD", "100"),
        ],
    )
    .await;
    let id = create(
        &service,
        "Always rate limited",
        "scripted-agent: transient=analyst retry_after=0.2",
        &[],
    )
    .await;
    let t = reach(&service, &id, "analysis", "blocked").await;
    let reason = t["blocked_reason"].as_str().unwrap();
    assert!(reason.contains("exhausted the retry budget of 1"), "{t}");
    // Per stage attempt: one transient retry, then the failure that counts; three attempts.
    let outcomes: Vec<String> = runs(&t)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        [
            "transient",
            "failed",
            "transient",
            "failed",
            "transient",
            "failed"
        ],
        "{t}"
    );
}

#[tokio::test]
async fn a_role_over_its_time_budget_is_killed_and_journaled_as_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let service =
        start_local_with(dir.path(), false, &[("ORCH_AGENT_TIMEOUT_ANALYST_S", "1")]).await;
    let id = create(&service, "Slow", "scripted-agent: sleep=analyst:30", &[]).await;
    let t = first_run_ended(&service, &id).await;
    let run = &runs(&t)[0];
    assert_eq!(run["status"], "timeout", "{run}");
    assert_eq!(run["exit_code"], -9, "{run}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("timeout after 1 s"),
        "{run}"
    );
    assert_eq!(run["model"], "claude-sonnet-4-5", "{run}");
}
