//! `orchestrator bench --dispatch`: the queue's own overhead — from "job queued" (just
//! before the enqueue is written) to "agent process started" (the runner's spawn notice) —
//! over many jobs with a no-op agent (`true`). Everything real but the agent's work: the
//! SQLite queue, the dispatcher and run actors, the launcher's process spawn. Jobs go one
//! at a time, so the figure is the overhead, not time spent waiting behind other jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use orchestrator_actors::actors::dispatch::{DISPATCH, Dispatch, DispatchDeps};
use orchestrator_actors::domain::gates::CiOutcome;
use orchestrator_actors::domain::gates::GateOutcome;
use orchestrator_actors::domain::resilience::RetryPolicy;
use orchestrator_actors::ports::merge_queue::{CandidateBuild, FastForward};
use orchestrator_actors::ports::workbench::{
    AgentReport, AgentRequest, AgentRunner, Forge, PublishError, SpawnNotice, Workplace,
};
use orchestrator_actors::ports::{JobStore, NewJob, NewTask, Store, TaskRecord};
use orchestrator_actors::{GateKind, Role, Stage, WorkItemId};
use ractor::Actor;

use crate::bench::BenchArgs;
use crate::claude::launcher::CliLauncher;
use crate::claude::process::OsProcesses;
use crate::config::Config;
use crate::store::SqliteStore;

/// A forge whose every worktree is one scratch directory; nothing is committed.
struct ScratchForge(PathBuf);

#[async_trait]
impl Forge for ScratchForge {
    async fn prepare(&self, task: &TaskRecord) -> Result<Workplace, String> {
        Ok(Workplace {
            branch: format!("bench/{}", task.work_item_id),
            worktree: self.0.clone(),
            artifacts_dir: self.0.clone(),
        })
    }
    async fn publish(&self, _task: &TaskRecord, _role: Role) -> Result<(), PublishError> {
        Ok(())
    }
    async fn evaluate_gate(&self, _task: &TaskRecord, _gate: GateKind) -> GateOutcome {
        GateOutcome::Defer {
            reason: "not gated in the bench".into(),
        }
    }
    async fn build_candidate(
        &self,
        _task: &TaskRecord,
        _onto: Option<&str>,
    ) -> Result<CandidateBuild, String> {
        Err("nothing is merged in the bench".into())
    }
    async fn publish_candidate(&self, _task: &TaskRecord, _candidate: &str) -> Result<(), String> {
        Ok(())
    }
    async fn test_commit(&self, _repo: &str, _sha: &str) -> CiOutcome {
        CiOutcome::ToolError {
            message: "no CI in the bench".into(),
        }
    }
    async fn main_head(&self, _repo: &str) -> Result<String, String> {
        Err("nothing is merged in the bench".into())
    }
    async fn fast_forward_main(
        &self,
        _task: &TaskRecord,
        _candidate: &str,
    ) -> Result<FastForward, String> {
        Err("nothing is merged in the bench".into())
    }
    async fn delete_branch(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn merge_main_into_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn remove_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        // Every task shares the one scratch directory, which outlives them all.
        Ok(())
    }
    async fn is_on_main(&self, _task: &TaskRecord, _sha: &str) -> Result<bool, String> {
        Err("nothing is merged in the bench".into())
    }
}

/// The real launcher, noting when each task's agent process was announced.
struct Stopwatch {
    inner: CliLauncher,
    started: Arc<Mutex<HashMap<WorkItemId, Instant>>>,
}

#[async_trait]
impl AgentRunner for Stopwatch {
    fn model(&self, role: Role) -> Option<String> {
        self.inner.model(role)
    }
    fn log_path(&self, run_id: &str) -> PathBuf {
        self.inner.log_path(run_id)
    }
    async fn run(&self, request: AgentRequest, spawned: SpawnNotice) -> AgentReport {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self.started.clone();
        let id = request.work_item_id.clone();
        tokio::spawn(async move {
            if let Ok(process) = rx.await {
                started.lock().expect("poisoned").insert(id, Instant::now());
                let _ = spawned.send(process);
            }
        });
        self.inner.run(request, tx).await
    }
}

/// Runs the measurement in `dir` and prints a Markdown table.
pub async fn measure(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = Arc::new(SqliteStore::open(&dir.join("orchestrator.db")).await?);
    let config = Config::from_vars(std::iter::empty())?;
    let prompts = config.agents.install_prompts(&dir.join("prompts"))?;
    let started = Arc::new(Mutex::new(HashMap::new()));
    let runner = Stopwatch {
        inner: CliLauncher::new(
            PathBuf::from("true"),
            Vec::new(),
            dir.join("runs"),
            config.agents.clone(),
            prompts,
        ),
        started: started.clone(),
    };
    let deps = Arc::new(DispatchDeps {
        store: store.clone(),
        jobs: store.clone(),
        forge: Arc::new(ScratchForge(dir.to_path_buf())),
        runner: Arc::new(runner),
        max_concurrency: 4,
        boot_id: "bench".into(),
        tick: Duration::from_secs(2),
        processes: Arc::new(OsProcesses::new(config.agents.term_grace)),
        retry: RetryPolicy::default(),
        max_attempts: 3,
        breaker_threshold: 1_000,
        breaker_cooldown: Duration::from_secs(1),
        infra_retries: 0,
        infra_retry_delay: Duration::from_secs(1),
    });
    let (dispatch, handle) = Actor::spawn(Some(DISPATCH.to_string()), Dispatch::new(deps), ())
        .await
        .context("cannot start the dispatcher")?;

    let jobs = args.jobs.max(1);
    let mut samples = Vec::with_capacity(jobs);
    for n in 0..jobs {
        let id = WorkItemId::parse(&format!("BENCH-{n}"))?;
        store
            .create_task(NewTask {
                work_item_id: id.clone(),
                repo: "bench/repo".into(),
                title: format!("bench {n}"),
                description: String::new(),
                labels: Vec::new(),
            })
            .await?;
        let queued = Instant::now();
        // Through the dispatcher, the queue's only writer, as a task actor does.
        orchestrator_actors::actors::dispatch::enqueue(NewJob {
            work_item_id: id.clone(),
            stage: Stage::Analysis,
            role: Role::Analyst,
            task_text: "noop".into(),
        })
        .await
        .map_err(anyhow::Error::msg)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let spawned = loop {
            if let Some(at) = started.lock().expect("poisoned").get(&id).copied() {
                break at;
            }
            if Instant::now() > deadline {
                bail!("job {n} did not start within 10 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push(spawned.duration_since(queued));
        // Let the run finish, so the next job measures dispatch alone.
        while store.active_job(&id).await?.is_some() {
            if Instant::now() > deadline {
                bail!("job {n} did not finish within 10 s");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    dispatch.stop(None);
    let _ = handle.await;
    store.close().await;

    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| dispatch overhead, job queued → agent process started ({jobs} jobs, no-op agent) | value |"
    );
    println!("|---|---|");
    println!("| p50 | {} |", ms(pick(0.50)));
    println!("| p90 | {} |", ms(pick(0.90)));
    println!("| p99 | {} |", ms(pick(0.99)));
    println!(
        "| max | {} |",
        ms(*samples.last().expect("at least one job"))
    );
    Ok(())
}
