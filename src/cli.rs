//! The command line: `serve` runs the service; `doctor` checks what it needs; `status`,
//! `tasks`, `task …`, `queue` and `actors` ask a running one over HTTP and print tables
//! (`--json` for the service's reply as it is); `bench` measures startup, memory and introspection at scale; `scripted-agent`
//! is the dry-run agent (it runs without the service configuration).
//! Exit codes: 0 success, 1 runtime failure (the service refused, or cannot be reached),
//! 2 bad usage or configuration.

mod client;
mod output;
mod render;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use orchestrator_actors::WorkItemId;
use serde_json::{Value, json};

use crate::config::Config;
use client::Client;

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
    /// List tasks, or show one task with its journal, runs and cost.
    Tasks {
        /// Work-item id of one task.
        id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create, show or act on one task (actions need the operator token).
    #[command(subcommand)]
    Task(TaskCommand),
    /// Show the job queue: counts, the usage-limit park, the breaker, the active jobs.
    Queue(ClientArgs),
    /// Hold or release a repository (needs the operator token): today, its merge queue.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Show the live actor tree of a running service.
    Actors {
        /// Levels below root to include.
        #[arg(long)]
        depth: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Measure startup with many tasks, idle memory, GET /actors and GET /metrics latency
    /// (see docs/benchmarks.md).
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

/// What can be done to one task.
#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Create a task on a project that uses the local tracker.
    Create {
        /// The project's repository (`owner/name`).
        #[arg(long)]
        repo: String,
        /// One line.
        #[arg(long)]
        title: String,
        /// What is wanted and why.
        #[arg(long)]
        description: Option<String>,
        /// A label (`Bug`, `autoApprove`, `autoDeploy`, …); repeat for more.
        #[arg(long = "label")]
        labels: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one task with its journal, runs and cost.
    Show(TaskTarget),
    /// Approve a task's analysis.
    Approve(TaskTarget),
    /// Reject a task's analysis; the analyst runs again with the reason.
    Reject {
        #[command(flatten)]
        target: TaskTarget,
        /// Why (1-2000 characters).
        #[arg(long)]
        reason: String,
    },
    /// Release a production deploy that waits for confirmation.
    ConfirmDeploy(TaskTarget),
    /// Hold a task: it starts no new work until resumed.
    Pause(TaskTarget),
    /// Release a paused task.
    Resume(TaskTarget),
    /// Set a task's spend cap; a task waiting for budget launches its due run when the cap
    /// is above what it spent.
    Budget {
        #[command(flatten)]
        target: TaskTarget,
        /// The new cap in US dollars.
        usd: f64,
    },
    /// Cancel a task for good.
    Stop {
        #[command(flatten)]
        target: TaskTarget,
        /// Why, for the task's journal.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Start a cancelled task afresh, as a new task (`<id>-r2`, …).
    Restart(TaskTarget),
    /// Retry a blocked task: its stage resumes with a fresh retry budget.
    Retry {
        #[command(flatten)]
        target: TaskTarget,
        /// A note passed verbatim to the next agent run.
        #[arg(long)]
        note: Option<String>,
    },
}

/// What can be done to a repository.
#[derive(clap::Subcommand, Debug)]
pub enum RepoCommand {
    /// Freeze its merge queue: nothing merges until it is unfrozen; nobody is dropped.
    Freeze {
        /// The repository as configured (e.g. acme/app).
        repo: String,
        /// Why, for the journal.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Unfreeze its merge queue.
    Unfreeze {
        /// The repository as configured.
        repo: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// One task of a running service.
#[derive(clap::Args, Debug)]
pub struct TaskTarget {
    /// Work-item id (e.g. ACME-001).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where a running service is, how to speak to it, and how to print its reply.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// Base URL of the service [default: http://<ORCH_BIND>].
    #[arg(long)]
    pub url: Option<String>,
    /// Operator token for actions [default: ORCH_OPERATOR_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// Print the service's JSON reply instead of a table.
    #[arg(long)]
    pub json: bool,
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
        Command::Status(client) => {
            let reply = connect(&config, &client)?.get("/status").await?;
            show(&client, &reply, render::status)
        }
        Command::Tasks { id: None, client } => {
            let reply = connect(&config, &client)?.get("/tasks").await?;
            show(&client, &reply, render::task_list)
        }
        Command::Tasks {
            id: Some(id),
            client,
        } => show_task(&config, &TaskTarget { id, client }).await,
        Command::Task(command) => task(&config, command).await,
        Command::Queue(client) => {
            let reply = connect(&config, &client)?.get("/queue").await?;
            show(&client, &reply, render::queue)
        }
        Command::Repo(command) => {
            let (repo, action, body, client) = match command {
                RepoCommand::Freeze {
                    repo,
                    reason,
                    client,
                } => (repo, "freeze", json!({ "reason": reason }), client),
                RepoCommand::Unfreeze { repo, client } => (repo, "unfreeze", json!({}), client),
            };
            if repo.trim().is_empty() || repo.contains(char::is_whitespace) {
                anyhow::bail!("repo {repo:?} is not a repository name (e.g. acme/app)");
            }
            let reply = connect(&config, &client)?
                .operator_post(&format!("/repos/{repo}/merge-queue/{action}"), &body)
                .await?;
            show(&client, &reply, |r| {
                format!(
                    "{} {}: {}\n",
                    r["repo"].as_str().unwrap_or("-"),
                    if r["frozen"].is_null() {
                        "unfrozen"
                    } else {
                        "frozen"
                    },
                    if r["changed"] == true {
                        "done"
                    } else {
                        "no change"
                    }
                )
            })
        }
        Command::Actors { depth, client } => {
            let path = depth.map_or("/actors".to_string(), |d| format!("/actors?depth={d}"));
            let reply = connect(&config, &client)?.get(&path).await?;
            show(&client, &reply, render::actors)
        }
        Command::Bench(args) => crate::bench::run(args).await,
        // Dispatched by `main` before any configuration is loaded.
        Command::ScriptedAgent(_) | Command::AgentShim(_) => {
            anyhow::bail!("scripted-agent and agent-shim do not run inside the service")
        }
    }
}

/// The client a command's flags and the configuration describe.
fn connect(config: &Config, client: &ClientArgs) -> anyhow::Result<Client> {
    Client::new(config, client.url.as_deref(), client.token.as_deref())
}

/// Prints a reply: as JSON with `--json`, else as `table` renders it.
fn show(client: &ClientArgs, reply: &Value, table: fn(&Value) -> String) -> anyhow::Result<()> {
    let text = if client.json {
        serde_json::to_string_pretty(reply)?
    } else {
        table(reply)
    };
    output::emit(&text).context("cannot write to standard output")
}

/// A task id from the command line, checked before anything is sent.
fn task_id(raw: &str) -> anyhow::Result<WorkItemId> {
    WorkItemId::parse(raw).with_context(|| format!("task id {raw:?}"))
}

async fn show_task(config: &Config, target: &TaskTarget) -> anyhow::Result<()> {
    let id = task_id(&target.id)?;
    let reply = connect(config, &target.client)?
        .get(&format!("/tasks/{id}"))
        .await?;
    show(&target.client, &reply, render::task)
}

async fn task(config: &Config, command: TaskCommand) -> anyhow::Result<()> {
    let (target, action, body) = match command {
        TaskCommand::Create {
            repo,
            title,
            description,
            labels,
            client,
        } => {
            let body = json!({
                "repo": repo, "title": title, "description": description, "labels": labels,
            });
            let reply = connect(config, &client)?.post("/tasks", &body).await?;
            return show(&client, &reply, |r| {
                format!("created {}\n", r["work_item_id"].as_str().unwrap_or("-"))
            });
        }
        TaskCommand::Show(target) => return show_task(config, &target).await,
        TaskCommand::Restart(target) => {
            let id = task_id(&target.id)?;
            let reply = connect(config, &target.client)?
                .operator_post(&format!("/tasks/{id}/restart"), &json!({}))
                .await?;
            return show(&target.client, &reply, |r| {
                format!(
                    "{} restarted as {}\n",
                    r["restart_of"].as_str().unwrap_or("-"),
                    r["work_item_id"].as_str().unwrap_or("-")
                )
            });
        }
        TaskCommand::Approve(target) => (target, "approve", json!({})),
        TaskCommand::Reject { target, reason } => (target, "reject", json!({ "reason": reason })),
        TaskCommand::ConfirmDeploy(target) => (target, "confirm-deploy", json!({})),
        TaskCommand::Pause(target) => (target, "pause", json!({})),
        TaskCommand::Resume(target) => (target, "resume", json!({})),
        TaskCommand::Budget { target, usd } => (target, "budget", json!({ "usd": usd })),
        TaskCommand::Stop { target, reason } => match reason {
            Some(reason) => (target, "stop", json!({ "reason": reason })),
            None => (target, "stop", json!({})),
        },
        TaskCommand::Retry { target, note } => match note {
            Some(note) => (target, "retry", json!({ "note": note })),
            None => (target, "retry", json!({})),
        },
    };
    let id = task_id(&target.id)?;
    let reply = connect(config, &target.client)?
        .operator_post(&format!("/tasks/{id}/{action}"), &body)
        .await?;
    let text = if target.client.json {
        serde_json::to_string_pretty(&reply)?
    } else {
        render::action(action, &reply)
    };
    output::emit(&text).context("cannot write to standard output")
}
