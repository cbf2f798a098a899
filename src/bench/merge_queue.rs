//! `orchestrator bench --merge-queue`: N tasks (default 8) of one repository reach its merge
//! queue while it is frozen; the queue is thawed and timed until the last one is merged. The
//! project's tests take about a second. Four variants, side by side: batching off
//! (`ORCH_MERGE_BATCH_MAX=1`) and on (4), with no culprit and with one (a change that is
//! green alone but red on top of another task's, fixed by its developer's second run). The
//! figures: CI runs per merged task (the queue's own runs: candidates and `main` alone) and
//! wall time from the thaw to the last merge.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::BenchArgs;
use crate::bench::pipeline::{wait_done, with_service};
use crate::config::projects::Project;
use crate::git::command::git;
use crate::git::sample;

/// The project's tests: about a second; `culprit.flag` saying `bad` breaks them in any merge
/// candidate (a commit titled `Merge …`), not on its own branch — a change green alone and red
/// when integrated.
const CHECK: &str = "#!/bin/sh\nsleep 1\nif grep -qs bad culprit.flag && git log -1 --format=%s | grep -q '^Merge '; then echo 'FAIL: culprit'; exit 1; fi\necho ok\n";

const TOKEN: &str = "bench-operator-token";

/// One variant's figures.
struct Figures {
    ci_runs: u64,
    merged: u64,
    wall: Duration,
}

/// Runs the four variants in `dir` and prints a Markdown table.
pub async fn measure(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let tasks = args.tasks.unwrap_or(8).max(2);
    let mut rows = Vec::new();
    for (batch, culprit) in [(1, false), (4, false), (1, true), (4, true)] {
        let name = format!("mq-{batch}-{culprit}");
        let figures = variant(dir, &name, tasks, batch, culprit).await?;
        rows.push((batch, culprit, figures));
    }
    println!(
        "| {tasks} tasks, one repo, tests ≈ 1 s | CI runs | merged | CI runs per merged task | thaw → last merge |"
    );
    println!("|---|---|---|---|---|");
    for (batch, culprit, f) in &rows {
        println!(
            "| ORCH_MERGE_BATCH_MAX={batch}, {} | {} | {} | {:.2} | {:.1} s |",
            if *culprit {
                "one culprit"
            } else {
                "no culprit"
            },
            f.ci_runs,
            f.merged,
            f.ci_runs as f64 / f.merged.max(1) as f64,
            f.wall.as_secs_f64()
        );
    }
    Ok(())
}

async fn variant(
    dir: &Path,
    name: &str,
    tasks: usize,
    batch: usize,
    culprit: bool,
) -> anyhow::Result<Figures> {
    let origin = dir.join(format!("{name}.git"));
    sample::create_sample_origin(&origin).await?;
    add_check(dir, &origin, name).await?;
    let project = Project {
        repo: "bench/queue".into(),
        origin: origin.display().to_string(),
        prefix: "MQ".into(),
        test_cmd: "sh check.sh".into(),
        staging: false,
        confirm_deploy: false,
        deploy: false,
        plane_project_id: None,
        gitea_repo: None,
        plane_states: Default::default(),
        append_only: Project::default_append_only(),
    };
    let settings = [
        ("ORCH_MERGE_BATCH_MAX", batch.to_string()),
        ("ORCH_OPERATOR_TOKEN", TOKEN.to_string()),
    ];
    let measured = with_service(dir, name, &[project], tasks, &settings, |base| async move {
        let http = reqwest::Client::new();
        operator(
            &http,
            &base,
            "freeze",
            json!({"reason": "gather the queue"}),
        )
        .await?;
        let mut ids = Vec::new();
        for n in 0..tasks {
            let script = if culprit && n == tasks / 2 {
                "scripted-agent: code=culprit.flag:bad,fixed".to_string()
            } else {
                format!("scripted-agent: code=file-{n}.txt:{n}")
            };
            ids.push(submit(&http, &base, &format!("Change {n}"), &script).await?);
        }
        wait_queued(&http, &base, &ids).await?;
        let started = Instant::now();
        operator(&http, &base, "unfreeze", json!({})).await?;
        wait_done(&base, &ids).await?;
        let wall = started.elapsed();
        let queue: Value = http
            .get(format!("{base}/queue"))
            .send()
            .await?
            .json()
            .await?;
        let counts = &queue["merge_queues"][0]["counts"];
        Ok(vec![
            wall,
            Duration::from_secs(counts["ci_runs"].as_u64().context("no ci_runs")?),
            Duration::from_secs(counts["merged"].as_u64().context("no merged")?),
        ])
    })
    .await?;
    Ok(Figures {
        wall: measured[0],
        ci_runs: measured[1].as_secs(),
        merged: measured[2].as_secs(),
    })
}

/// Commits `check.sh` onto the sample origin's `main`.
async fn add_check(dir: &Path, origin: &Path, name: &str) -> anyhow::Result<()> {
    let work = dir.join(format!("{name}-seed"));
    let origin_arg = origin.display().to_string();
    let work_arg = work.display().to_string();
    git(dir, &["clone", "--quiet", &origin_arg, &work_arg]).await?;
    tokio::fs::write(work.join("check.sh"), CHECK).await?;
    git(&work, &["add", "check.sh"]).await?;
    git(
        &work,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "--quiet",
            "-m",
            "Add check.sh",
        ],
    )
    .await?;
    git(&work, &["push", "--quiet", "origin", "HEAD:main"]).await?;
    Ok(())
}

async fn operator(
    http: &reqwest::Client,
    base: &str,
    action: &str,
    body: Value,
) -> anyhow::Result<()> {
    http.post(format!("{base}/repos/bench/queue/merge-queue/{action}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn submit(
    http: &reqwest::Client,
    base: &str,
    title: &str,
    description: &str,
) -> anyhow::Result<String> {
    let reply: Value = http
        .post(format!("{base}/tasks"))
        .json(
            &json!({"repo": "bench/queue", "title": title, "description": description,
            "labels": ["autoApprove"]}),
        )
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

/// Waits until every task waits in the (frozen) merge queue.
async fn wait_queued(http: &reqwest::Client, base: &str, ids: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut all = true;
        for id in ids {
            let task: Value = http
                .get(format!("{base}/tasks/{id}"))
                .send()
                .await?
                .json()
                .await?;
            if task["phase"] == "blocked" {
                bail!("{id} blocked: {}", task["blocked_reason"]);
            }
            all &= task["phase"] == "queued";
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the tasks did not reach the merge queue within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
