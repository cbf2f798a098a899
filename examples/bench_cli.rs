//! `cargo run --release --example bench_cli [-- N]`: N (default 8) real Claude Code CLI runs
//! in parallel through the orchestrator's own launcher (analyst role, every launch flag),
//! each in its own git repository, against one loopback Anthropic stub. Prints the total
//! wall time and each run's duration; fails if any run fails. Needs the pinned CLI (see
//! `.ci/run`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use orchestrator::claude::launcher::CliLauncher;
use orchestrator::config::Config;
use orchestrator_actors::ports::workbench::{AgentRequest, AgentRunner, Workplace};
use orchestrator_actors::{Role, Stage, WorkItemId};
use orchestrator_testkit::anthropic::{AnthropicStub, StubConfig};
use orchestrator_testkit::claude::{ClaudeEnv, claude_bin, scratch_git_repo};

/// `target/<profile>/orchestrator`, beside this example's own directory.
fn orchestrator_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("orchestrator"))
        .filter(|bin| bin.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("build the orchestrator binary first: cargo build --release")
        })?;
    Ok(bin)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(8);
    let stub = AnthropicStub::start(StubConfig::default());
    let claude = ClaudeEnv::new(&stub);
    // The launcher's agents inherit this process's environment (minus ORCH_*).
    for (key, value) in claude.vars() {
        // SAFETY: this runtime is single-threaded and the stub's server thread never reads
        // the environment, so nothing reads it concurrently with this write.
        unsafe { std::env::set_var(key, value) };
    }
    let scratch = tempfile::tempdir()?;
    let config = Config::from_vars(std::iter::empty())?;
    let prompts = config
        .agents
        .install_prompts(&scratch.path().join("prompts"))?;
    let launcher = std::sync::Arc::new(
        CliLauncher::new(
            claude_bin(),
            Vec::new(),
            scratch.path().join("runs"),
            config.agents.clone(),
            prompts,
        )
        // The agents' shim is the orchestrator binary (`cargo build --release` builds it).
        .with_shim(orchestrator_binary()?),
    );
    let repos: Vec<_> = (0..runs).map(|_| scratch_git_repo()).collect();

    let started = Instant::now();
    let mut handles = Vec::new();
    for (n, repo) in repos.iter().enumerate() {
        let launcher = launcher.clone();
        let id = WorkItemId::parse(&format!("BENCH-{n:03}"))?;
        let worktree: PathBuf = repo.path().to_path_buf();
        let request = AgentRequest {
            run_id: format!("bench-{n}"),
            work_item_id: id.clone(),
            stage: Stage::Analysis,
            role: Role::Analyst,
            task_text: format!(
                "Bench {n}\n\nYou are the analyst for work item {id}.\nRepository: bench/repo\nArtifacts: docs/work-items/{id}/\n\nAnalyse a greeting feature.\n"
            ),
            workplace: Workplace {
                branch: "main".into(),
                artifacts_dir: worktree.join(format!("docs/work-items/{id}")),
                worktree,
            },
            attempt: 1,
            adopted: false,
            budget_left_nano_usd: None,
        };
        handles.push(tokio::spawn(async move {
            let one = Instant::now();
            let (spawned, _) = tokio::sync::oneshot::channel();
            let report = launcher.run(request, spawned).await;
            (report, one.elapsed())
        }));
    }
    let mut durations = BTreeMap::new();
    for (n, handle) in handles.into_iter().enumerate() {
        let (report, took) = handle.await?;
        anyhow::ensure!(report.success, "run {n} failed: {}", report.reason);
        durations.insert(n, took);
    }
    let wall = started.elapsed();
    let mut sorted: Vec<_> = durations.values().copied().collect();
    sorted.sort();
    println!("| {runs} real CLI runs in parallel (analyst, stub API) | value |");
    println!("|---|---|");
    println!("| total wall time | {:.2} s |", wall.as_secs_f64());
    println!(
        "| fastest / median / slowest run | {:.2} / {:.2} / {:.2} s |",
        sorted[0].as_secs_f64(),
        sorted[sorted.len() / 2].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64()
    );
    println!("| API requests | {} |", stub.messages_requests().len());
    Ok(())
}
