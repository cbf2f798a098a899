//! The command line: `serve` runs the service; `doctor` checks what it needs; `status`,
//! `tasks` and `actors` ask a running one over HTTP; `bench` measures startup, memory and introspection at scale;
//! `scripted-agent` is the dry-run agent (it runs without the service configuration).
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// Self-hosted software factory: drives role agents through a gated delivery pipeline.
#[derive(Parser, Debug)]
#[command(name = "orchestrator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (HTTP on ORCH_BIND, data in ORCH_DATA_DIR).
    Serve,
    /// Watch a sample task travel the whole pipeline locally, with the dry-run agent.
    Demo,
    /// Check what the service needs — the agent program (and its version), git, the data
    /// directory, each Plane board's statuses, Gitea and its repositories, the Telegram
    /// token — and print a checklist; exits 1 when a check fails.
    Doctor,
    /// Show the active tasks of a running service.
    Status(ClientArgs),
    /// List tasks, or show one task with its journal and live actor.
    Tasks {
        /// Work-item id of one task.
        id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the live actor tree of a running service.
    Actors {
        /// Levels below root to include.
        #[arg(long)]
        depth: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Measure startup with many tasks, idle memory and GET /actors latency (see docs/benchmarks.md).
    Bench(crate::bench::BenchArgs),
    /// Dry-run stand-in for `claude -p … --output-format json`: writes the role's artifacts
    /// (ORCH_ROLE, ORCH_WORK_ITEM, ORCH_ARTIFACTS_DIR, ORCH_ATTEMPT, ORCH_STAGE) and prints one
    /// result object. For tests and demos; no model is called.
    ScriptedAgent(crate::claude::scripted::ScriptedArgs),
    /// Internal: the supervisor every agent runs under (started by the service; it outlives
    /// it and records the agent's exit in `<data>/runs/`).
    #[command(hide = true)]
    AgentShim(crate::claude::shim::ShimArgs),
}

/// Where a running service is.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// Base URL of the service [default: http://<ORCH_BIND>].
    #[arg(long)]
    pub url: Option<String>,
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The scripted agent runs as a child of the service, in a worktree, with agent variables
    // only: loading the service configuration (and a stray `.env`) there would be wrong.
    let command = match cli.command {
        Command::ScriptedAgent(args) => return crate::claude::scripted::main(&args),
        Command::AgentShim(args) => return crate::claude::shim::main(&args),
        command => command,
    };
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orchestrator: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orchestrator: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            crate::logging::init(&config);
            let token = crate::signals::install(config.shutdown_timeout)
                .context("cannot install signal handlers")?;
            crate::server::run(config, token).await
        }
        Command::Demo => {
            crate::logging::init_quiet(&config);
            crate::demo::run(config).await
        }
        Command::Doctor => crate::preflight::doctor(&config).await,
        Command::Status(client) => print_get(&config, &client, "/status").await,
        Command::Tasks { id: None, client } => print_get(&config, &client, "/tasks").await,
        Command::Tasks {
            id: Some(id),
            client,
        } => {
            let id = orchestrator_actors::WorkItemId::parse(&id)?;
            print_get(&config, &client, &format!("/tasks/{id}")).await
        }
        Command::Actors { depth, client } => {
            let path = depth.map_or("/actors".to_string(), |d| format!("/actors?depth={d}"));
            print_get(&config, &client, &path).await
        }
        Command::Bench(args) => crate::bench::run(args).await,
        // Dispatched by `main` before any configuration is loaded.
        Command::ScriptedAgent(_) | Command::AgentShim(_) => {
            anyhow::bail!("scripted-agent and agent-shim do not run inside the service")
        }
    }
}

/// GETs `path` from the service and prints the JSON reply, pretty.
async fn print_get(config: &Config, client: &ClientArgs, path: &str) -> anyhow::Result<()> {
    let base = client
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind));
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("cannot reach the orchestrator at {base} (is it running?)"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer with JSON"))?;
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no error message");
        anyhow::bail!("{url} answered {status}: {message}");
    }
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
