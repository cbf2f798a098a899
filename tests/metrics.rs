//! `GET /metrics` on the real binary: the output is read back with a Prometheus text parser
//! (`prometheus-parse`), and its figures are the API's — the same task counts, jobs per
//! status, agent runs and cost totals.

mod common;

use std::collections::HashMap;

use common::{create, reach, start_local as start, start_local_with, task};
use orchestrator::intake::signature::sign;
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::Value;

/// Scrapes `/metrics` and parses it.
async fn scrape(base: &str) -> Scrape {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses as Prometheus text")
}

/// The samples of `metric`.
fn samples<'a>(scrape: &'a Scrape, metric: &str) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .collect()
}

/// A counter's or gauge's value.
fn number(sample: &Sample) -> f64 {
    match sample.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
        ref other => panic!("{} is not a number: {other:?}", sample.metric),
    }
}

/// The sum of `metric` over the samples whose labels include `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, metric)
        .into_iter()
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(number)
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_match_what_the_api_shows() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let shipped = create(
        &service,
        "Ship it",
        "scripted-agent: cost=0.5",
        &["autoApprove"],
    )
    .await;
    let waiting = create(&service, "Wait for me", "scripted-agent: cost=0.25", &[]).await;
    reach(&service, &shipped, "done", "idle").await;
    reach(&service, &waiting, "analysis", "awaiting-approval").await;

    let m = scrape(&service.base).await;

    // Tasks: the same count per stage and phase as GET /tasks.
    let (_, list) = service.get("/tasks").await;
    let tasks = list["tasks"].as_array().unwrap();
    let mut by_place = HashMap::<(String, String), f64>::new();
    for t in tasks {
        let key = (
            t["stage"].as_str().unwrap().to_string(),
            t["phase"].as_str().unwrap().to_string(),
        );
        *by_place.entry(key).or_default() += 1.0;
    }
    assert_eq!(sum(&m, "orchestrator_tasks", &[]), tasks.len() as f64);
    for ((stage, phase), n) in &by_place {
        assert_eq!(
            sum(
                &m,
                "orchestrator_tasks",
                &[("stage", stage), ("phase", phase)]
            ),
            *n,
            "tasks at {stage}/{phase}"
        );
    }
    assert_eq!(
        sum(
            &m,
            "orchestrator_tasks",
            &[("stage", "analysis"), ("phase", "awaiting-approval")]
        ),
        1.0
    );

    // Jobs per status: the same as GET /queue.
    let (_, queue) = service.get("/queue").await;
    for (status, n) in queue["counts"].as_object().unwrap() {
        assert_eq!(
            sum(&m, "orchestrator_jobs", &[("status", status)]),
            n.as_f64().unwrap(),
            "jobs {status}"
        );
    }

    // Runs and cost: the same as the tasks' runs and usage totals.
    let mut runs = Vec::new();
    let mut cost = 0.0;
    for id in [&shipped, &waiting] {
        let t = task(&service, id).await;
        cost += t["usage_total"]["cost_usd"].as_f64().unwrap();
        runs.extend(t["runs"].as_array().unwrap().iter().cloned());
    }
    assert!(
        (cost - (0.5 * (runs.len() - 1) as f64 + 0.25)).abs() < 1e-9,
        "{cost}"
    );
    let cost_metric = sum(&m, "orchestrator_agent_cost_usd_total", &[]);
    assert!((cost_metric - cost).abs() < 1e-9, "{cost_metric} != {cost}");
    let ended: Vec<&Value> = runs.iter().filter(|r| r["status"] != "running").collect();
    assert_eq!(
        sum(&m, "orchestrator_agent_runs_total", &[]),
        ended.len() as f64
    );
    let analysts = ended.iter().filter(|r| r["role"] == "analyst").count();
    assert_eq!(
        sum(
            &m,
            "orchestrator_agent_runs_total",
            &[("role", "analyst"), ("outcome", "succeeded")]
        ),
        analysts as f64
    );
    let durations = samples(&m, "orchestrator_agent_run_duration_seconds");
    let analyst = durations
        .iter()
        .find(|s| s.labels.get("role") == Some("analyst"))
        .expect("an analyst duration histogram");
    let Metric::Histogram(buckets) = &analyst.value else {
        panic!("not a histogram: {:?}", analyst.value)
    };
    let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(
        inf.count, analysts as f64,
        "every analyst run observed once"
    );

    // The dispatcher and the queue, as GET /queue shows them.
    assert_eq!(queue["breaker"]["state"], "closed");
    assert_eq!(sum(&m, "orchestrator_breaker_open", &[]), 0.0);
    assert_eq!(sum(&m, "orchestrator_queue_parked", &[]), 0.0);

    // The merge queue, as GET /queue shows it.
    let mq = queue["merge_queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["repo"] == "acme/app")
        .unwrap();
    let repo = ("repo", "acme/app");
    assert_eq!(
        sum(
            &m,
            "orchestrator_merge_queue_events_total",
            &[repo, ("event", "merged")]
        ),
        mq["counts"]["merged"].as_f64().unwrap()
    );
    assert!(mq["counts"]["merged"].as_u64().unwrap() >= 1, "{mq}");
    assert_eq!(
        sum(
            &m,
            "orchestrator_merge_queue_events_total",
            &[repo, ("event", "ci_run")]
        ),
        mq["counts"]["ci_runs"].as_f64().unwrap()
    );
    assert_eq!(
        sum(&m, "orchestrator_merge_queue_depth", &[repo]),
        (mq["waiting"].as_array().unwrap().len() + mq["batch"].as_array().unwrap().len()) as f64
    );
    assert_eq!(sum(&m, "orchestrator_merge_queue_frozen", &[repo]), 0.0);
    assert_eq!(
        samples(&m, "orchestrator_merge_queue_oldest_wait_seconds").len(),
        1
    );

    // The filesystems the disk watchdog reads, as ratios.
    let disks = samples(&m, "orchestrator_disk_fill_ratio");
    assert!(!disks.is_empty(), "no disk fill series");
    for d in disks {
        let fill = number(d);
        assert!((0.0..=1.0).contains(&fill), "{fill}");
    }
}

#[tokio::test]
async fn webhook_deliveries_are_counted_by_source_and_outcome_once_each() {
    let secret = "gitea-secret-0123";
    let dir = tempfile::tempdir().unwrap();
    let service = start_local_with(
        dir.path(),
        false,
        &[
            ("ORCH_GITEA_URL", "http://127.0.0.1:9"),
            ("ORCH_GITEA_TOKEN", "gitea-token"),
            ("ORCH_GITEA_WEBHOOK_SECRET", secret),
        ],
    )
    .await;
    let before = scrape(&service.base).await;
    assert_eq!(
        sum(&before, "orchestrator_webhook_deliveries_total", &[]),
        0.0
    );

    // A repository nobody registered: journaled as ignored; its replay is not journaled.
    let body =
        br#"{"sha": "abc", "state": "success", "repository": {"full_name": "someone/else"}}"#;
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .post(format!("{}/webhook/gitea", service.base))
            .header("Content-Type", "application/json")
            .header("X-Gitea-Event", "status")
            .header("X-Gitea-Delivery", "g-1")
            .header("X-Gitea-Signature", sign(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let m = scrape(&service.base).await;
    assert_eq!(
        sum(
            &m,
            "orchestrator_webhook_deliveries_total",
            &[("source", "gitea"), ("outcome", "ignored")]
        ),
        1.0
    );
    assert_eq!(sum(&m, "orchestrator_webhook_deliveries_total", &[]), 1.0);
}
