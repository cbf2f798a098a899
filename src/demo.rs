//! `orchestrator demo`: the whole pipeline on a fresh machine with no configuration. It
//! creates a sample project (a bare origin with a tiny app and its test command) under the
//! data dir, runs the service in local mode with the dry-run agent and auto-approve, submits
//! a task, prints each stage as it happens, and succeeds when the task is `done` with its
//! merge visible in the origin's `main`. Running it again adds another task to the same
//! project.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::projects::{Project, Projects};
use crate::git::{self, command};

/// The demo project's repository name.
const DEMO_REPO: &str = "demo/hello";
/// How long the demo waits for its task before giving up.
const DEMO_DEADLINE: Duration = Duration::from_secs(300);

/// Turns a configuration into the demo's: the sample project, the dry-run agent (this very
/// binary), auto-approve via the task's labels, quiet logs.
pub fn demo_config(mut config: Config, origin: &Path) -> anyhow::Result<Config> {
    let project = Project {
        repo: DEMO_REPO.into(),
        origin: origin.display().to_string(),
        prefix: "DEMO".into(),
        test_cmd: git::sample::SAMPLE_TEST_CMD.into(),
        staging: false,
        confirm_deploy: false,
        deploy: true,
        plane_project_id: None,
        gitea_repo: None,
        plane_states: Default::default(),
        append_only: Project::default_append_only(),
    };
    config.projects = Arc::new(Projects::new(vec![project])?);
    config.claude_bin = std::env::current_exe()
        .context("cannot find this binary to use as the dry-run agent")?
        .display()
        .to_string();
    config.claude_args = vec!["scripted-agent".into()];
    config.retry_delay = Duration::from_secs(1);
    Ok(config)
}

/// Runs the demo; prints progress to stdout.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let origin = std::path::absolute(config.data_dir.join("demo").join("hello.git"))?;
    std::fs::create_dir_all(origin.parent().expect("has a parent"))?;
    git::sample::create_sample_origin(&origin)
        .await
        .with_context(|| format!("cannot create the sample project at {}", origin.display()))?;
    let config = demo_config(config, &origin)?;
    println!("orchestrator demo — local mode, dry-run agent (no model is called)");
    println!("sample project: {DEMO_REPO}, origin {}", origin.display());

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(crate::server::run_on(config, listener, shutdown.clone()));
    let outcome = drive(&base, &origin).await;
    shutdown.cancel();
    let served = service.await.context("the service task panicked")?;
    outcome?;
    served
}

async fn drive(base: &str, origin: &Path) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/tasks"))
        .json(&json!({
            "repo": DEMO_REPO,
            "title": "Greet the user by name",
            "description": "The app should print a friendly greeting.",
            "labels": ["autoApprove"],
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["work_item_id"]
        .as_str()
        .context("no work_item_id in the reply")?
        .to_string();
    println!("submitted task {id}");
    let started = Instant::now();
    let mut seen = 0;
    loop {
        let task: Value = http
            .get(format!("{base}/tasks/{id}"))
            .send()
            .await?
            .json()
            .await?;
        let transitions = task["transitions"].as_array().cloned().unwrap_or_default();
        for t in transitions.iter().skip(seen) {
            println!(
                "  [{:>5.1}s] {:<14} {}",
                started.elapsed().as_secs_f64(),
                t["to"].as_str().unwrap_or("?"),
                t["reason"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
        seen = transitions.len();
        match (task["stage"].as_str(), task["phase"].as_str()) {
            (Some("done"), _) => break,
            (Some(stage), Some("blocked")) => {
                bail!(
                    "task {id} is blocked at {stage}: {}",
                    task["blocked_reason"].as_str().unwrap_or("?")
                )
            }
            (Some("cancelled"), _) => bail!("task {id} was cancelled"),
            _ => {}
        }
        if started.elapsed() > DEMO_DEADLINE {
            bail!(
                "task {id} did not finish within {} s",
                DEMO_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let merge = merged_into(origin, &id).await?;
    println!(
        "done in {:.1}s — merged into main: {merge}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The origin's `main` commit that merged the task's branch.
async fn merged_into(origin: &Path, id: &str) -> anyhow::Result<String> {
    let log = command::git(origin, &["log", "--merges", "--format=%h %s", "main"]).await?;
    log.lines()
        .find(|l| l.contains(&format!("({id})")))
        .map(str::to_string)
        .with_context(|| {
            format!(
                "no merge of {id} on main of {}",
                PathBuf::from(origin).display()
            )
        })
}
