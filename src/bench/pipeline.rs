//! `orchestrator bench --pipeline`: the pipeline's own overhead with the dry-run agent and the
//! local git forge — one task at a time through every stage (git included), then a batch of
//! tasks spread over several repositories under a concurrency limit. The service runs
//! in-process on an ephemeral port, like the demo.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bench::BenchArgs;
use crate::config::Config;
use crate::config::projects::{Project, Projects};
use crate::git::sample;

/// Single tasks timed one after another for the per-task figure.
const SINGLE_RUNS: usize = 5;

/// Runs both measurements in `dir` and prints a Markdown table.
pub async fn measure(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let repos = args.repos.unwrap_or(4).max(1);
    let concurrency = args.concurrency.unwrap_or(4);
    let projects = sample_projects(dir, repos).await?;
    // The single-task figure runs alone; the batch gets its own service and data.
    let single = with_service(dir, "single", &projects, 1, &[], |base| async move {
        let mut samples = Vec::new();
        for _ in 0..SINGLE_RUNS {
            let started = Instant::now();
            let id = submit(&base, "bench/repo0").await?;
            wait_done(&base, &[id]).await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    })
    .await?;
    let batch = with_service(dir, "batch", &projects, concurrency, &[], |base| {
        let repos: Vec<String> = projects.iter().map(|p| p.repo.clone()).collect();
        let count = args.batch;
        async move {
            let started = Instant::now();
            let mut ids = Vec::new();
            for n in 0..count {
                ids.push(submit(&base, &repos[n % repos.len()]).await?);
            }
            wait_done(&base, &ids).await?;
            Ok(vec![started.elapsed()])
        }
    })
    .await?;
    let mut sorted = single.clone();
    sorted.sort();
    println!("| measure (dry-run agent, local forge) | result |");
    println!("|---|---|");
    println!(
        "| one task, all stages incl. git ({SINGLE_RUNS} runs) | median {:.2} s, min {:.2} s, max {:.2} s |",
        sorted[SINGLE_RUNS / 2].as_secs_f64(),
        sorted[0].as_secs_f64(),
        sorted[SINGLE_RUNS - 1].as_secs_f64()
    );
    println!(
        "| {} tasks across {repos} repos, ORCH_MAX_CONCURRENCY={} | {:.2} s wall |",
        args.batch,
        concurrency,
        batch[0].as_secs_f64()
    );
    Ok(())
}

/// `repos` sample projects (`bench/repo<N>`, prefix `R<N>`), each with a bare origin under
/// `dir` holding a tiny app and its test command.
pub(crate) async fn sample_projects(dir: &Path, repos: usize) -> anyhow::Result<Vec<Project>> {
    let mut projects = Vec::new();
    for n in 0..repos {
        let origin = dir.join(format!("repo{n}.git"));
        sample::create_sample_origin(&origin).await?;
        projects.push(Project {
            repo: format!("bench/repo{n}"),
            origin: origin.display().to_string(),
            prefix: format!("R{n}"),
            test_cmd: sample::SAMPLE_TEST_CMD.into(),
            staging: false,
            confirm_deploy: false,
            deploy: true,
            plane_project_id: None,
            gitea_repo: None,
            plane_states: Default::default(),
            append_only: Project::default_append_only(),
            budget_nano_usd: None,
        });
    }
    Ok(projects)
}

/// Runs `body` against a fresh in-process service with `projects` and extra `settings` on
/// the data directory `dir/name`.
pub(crate) async fn with_service<F, Fut, T>(
    dir: &Path,
    name: &str,
    projects: &[Project],
    concurrency: usize,
    settings: &[(&str, String)],
    body: F,
) -> anyhow::Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut config = Config::from_vars(
        [
            (
                "ORCH_DATA_DIR".to_string(),
                dir.join(name).display().to_string(),
            ),
            ("ORCH_LOG".to_string(), "warn".to_string()),
        ]
        .into_iter()
        .chain(settings.iter().map(|(k, v)| (k.to_string(), v.clone()))),
    )?;
    config.projects = Arc::new(Projects::new(projects.to_vec())?);
    config.max_concurrency = concurrency.max(1);
    config.claude_bin = std::env::current_exe()?.display().to_string();
    config.claude_args = vec!["scripted-agent".into()];
    config.retry_delay = Duration::from_secs(1);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(crate::server::run_on(config, listener, shutdown.clone()));
    let measured = body(base).await;
    shutdown.cancel();
    service.await.context("the service panicked")??;
    measured
}

/// Creates a task on `repo` that skips the approval; its id.
pub(crate) async fn submit(base: &str, repo: &str) -> anyhow::Result<String> {
    let reply: Value = reqwest::Client::new()
        .post(format!("{base}/tasks"))
        .json(&json!({"repo": repo, "title": "Benchmark task", "labels": ["autoApprove"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(reply["work_item_id"]
        .as_str()
        .context("no work_item_id")?
        .to_string())
}

/// Waits until every task of `ids` is done (an error if one is blocked, or after 600 s).
pub(crate) async fn wait_done(base: &str, ids: &[String]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let task: Value = http
                .get(format!("{base}/tasks/{id}"))
                .send()
                .await?
                .json()
                .await?;
            match task["stage"].as_str() {
                Some("done") => {}
                _ if task["phase"] == "blocked" => {
                    bail!("{id} blocked: {}", task["blocked_reason"])
                }
                _ => still.push(id),
            }
        }
        pending = still;
        if Instant::now() > deadline {
            bail!("tasks did not finish within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
