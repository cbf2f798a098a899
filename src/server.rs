//! `serve`: open the store, bring up the actor tree (every non-terminal task gets its actor
//! back), then serve HTTP until the shutdown future resolves; stop in order — HTTP, tasks,
//! singletons, store.

use std::sync::Arc;

use anyhow::Context;
use std::path::PathBuf;

use orchestrator_actors::actors::disk_watchdog::DiskWatchdogDeps;
use orchestrator_actors::actors::dispatch::DispatchDeps;
use orchestrator_actors::actors::housekeeper::HousekeeperDeps;
use orchestrator_actors::actors::merge_queue::MergeQueueDeps;
use orchestrator_actors::actors::reaper::ReaperDeps;
use orchestrator_actors::actors::reconciler::ReconcilerDeps;
use orchestrator_actors::actors::task::TaskCreator;
use orchestrator_actors::actors::task::TaskDeps;
use orchestrator_actors::actors::tracker::TrackerDeps;
use orchestrator_actors::actors::tree::{self, TreeConfig};
use orchestrator_actors::domain::restart::RestartPolicy;
use orchestrator_actors::domain::task_machine::{InfraLimits, MAX_STAGE_ATTEMPTS};
use orchestrator_actors::ports::workbench::{Forge, ProcessControl};
use orchestrator_actors::ports::{CardStore, JobStore, Notifier, PullRequestStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::claude::launcher::CliLauncher;
use crate::claude::process::OsProcesses;
use crate::config::Config;
use crate::forge::ProjectForge;
use crate::git::Workspace;
use crate::http::{self, AppState};
use crate::intake::IntakeReconciler;
use crate::integrations::Connections;
use crate::os::lockfile::LockFile;
use crate::store::{SqliteStore, StoreOptions};
use crate::telegram::{LogNotifier, TelegramNotifier};

/// How many task actors are started at once at startup.
const LAUNCH_CONCURRENCY: usize = 64;
/// Interval of the dispatcher's safety-net look at the queue.
const DISPATCH_TICK: std::time::Duration = std::time::Duration::from_secs(2);

/// A fresh id for this process's life: jobs claimed under another id are from an earlier boot.
fn boot_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos)
}

/// How far past the longest role timeout (and the kill's grace) the reaper's backstop lies.
const REAPER_BACKSTOP_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest single wait on Telegram's flood control before a delivery is retried.
const TRACKER_MAX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A delivery of this boot left without an outcome this long is no longer being acted on
/// (acting on one waits on a task actor for 10 s and on the tracker's API); the reconciler
/// takes it up.
const UNSETTLED_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// How long startup may take to bring every recovered task actor up.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The restart policy the configuration describes.
pub fn restart_policy(config: &Config) -> RestartPolicy {
    RestartPolicy {
        max_restarts: config.restart_max,
        window: config.restart_window,
        backoff_initial: config.restart_backoff,
        backoff_max: config.restart_backoff_max,
    }
}

/// Runs the service until `shutdown` is cancelled, then stops it within the configured
/// budget: a quarter for in-flight HTTP requests, half for the actor tree (stragglers are
/// killed), the rest for the store. The signal thread's deadline is the backstop.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on ORCH_BIND={}", config.bind))?;
    run_on(config, listener, shutdown).await
}

/// Like [`run`], on a listener the caller bound (the demo and benchmarks use port 0).
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let budget = config.shutdown_timeout;
    let (http_drain, tree_stop) = (budget / 4, budget / 2);
    for key in &config.unknown_keys {
        warn!(key = %key, "unknown ORCH_* setting ignored (typo?)");
    }
    std::fs::create_dir_all(config.runs_dir()).with_context(|| {
        format!(
            "cannot create data directory {}",
            config.runs_dir().display()
        )
    })?;
    // One service per data directory: a second one would take the first's agents and git for
    // a dead boot's and end them. Held for the service's life; never inherited by an agent.
    let instance = config.data_dir.join("orchestrator.lock");
    let _instance = LockFile::try_acquire(&instance)
        .with_context(|| format!("cannot lock {}", instance.display()))?
        .with_context(|| {
            format!(
                "another orchestrator is already running on the data directory {} (it holds {})",
                config.data_dir.display(),
                instance.display()
            )
        })?;
    let addr = listener.local_addr()?;
    // Logged as it comes; owned here, so it ends with the service.
    let _preflight = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(crate::preflight::log(
        config.clone(),
    )));

    let store = Arc::new(
        SqliteStore::open_with(
            &config.db_path(),
            StoreOptions {
                readers: config.db_readers,
            },
        )
        .await?,
    );
    let dyn_store: Arc<dyn Store> = store.clone();
    let jobs: Arc<dyn JobStore> = store.clone();
    let workspace = Arc::new(Workspace::from_config(&config));
    let pulls: Arc<dyn PullRequestStore> = store.clone();
    let integrations = Connections::connect(&config, store.clone())?;
    let forge: Arc<dyn Forge> = Arc::new(ProjectForge::new(
        workspace,
        pulls.clone(),
        config.projects.clone(),
        config.ci_timeout,
        store.clone(),
        integrations.gitea_forge(&config),
    ));
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let prompts = config
        .agents
        .install_prompts(&data_dir.join("prompts"))
        .context("cannot write the agents' prompt files")?;
    let runner = Arc::new(CliLauncher::new(
        PathBuf::from(&config.claude_bin),
        config.claude_args.clone(),
        data_dir.join("runs"),
        config.agents.clone(),
        prompts,
    ));
    let processes: Arc<dyn ProcessControl> = Arc::new(OsProcesses::new(config.agents.term_grace));
    let boot_id = boot_id();
    let task_deps = Arc::new(TaskDeps {
        store: dyn_store.clone(),
        jobs: jobs.clone(),
        forge: forge.clone(),
        projects: config.projects.clone(),
        board: integrations.board.clone(),
        retry_delay: config.retry_delay,
        limits: InfraLimits {
            gate_deferrals: config.gate_defer_max,
            merge_retries: config.merge_retry_max,
        },
    });
    let creator = Arc::new(TaskCreator {
        tasks: task_deps.clone(),
        links: store.clone(),
    });
    let notifier: Arc<dyn Notifier> = match (&config.telegram_bot_token, &config.telegram_chat_id) {
        (Some(token), Some(chat)) => {
            info!(chat = %chat, mode = config.tracker_mode.as_str(), "tracker cards go to Telegram");
            Arc::new(TelegramNotifier::new(&config.telegram_api_url, token, chat))
        }
        _ => {
            info!("no ORCH_TELEGRAM_BOT_TOKEN: tracker cards are only logged");
            Arc::new(LogNotifier::new())
        }
    };
    let cards: Arc<dyn CardStore> = store.clone();
    let tracker = Arc::new(TrackerDeps {
        store: dyn_store.clone(),
        jobs: jobs.clone(),
        notifier,
        cards,
        mode: config.tracker_mode,
        max_retry_wait: TRACKER_MAX_RETRY_WAIT,
    });
    let intake = integrations.intake(&config, store.clone(), creator.clone());
    let reconciler = IntakeReconciler::new(
        intake.clone(),
        store.clone(),
        config.reconcile_interval.max(UNSETTLED_AFTER),
    )
    .await
    .context("cannot read the webhook journal")?;
    let housekeeping_forge = forge.clone();
    let merge_queue = Arc::new(MergeQueueDeps {
        store: store.clone(),
        tasks: dyn_store.clone(),
        forge: forge.clone(),
        retry_delay: config.retry_delay,
        infra_retries: config.merge_retry_max,
        main_recheck: config.merge_queue_recheck,
        batch_max: config.merge_batch_max,
    });
    let tree_config = TreeConfig {
        tasks: task_deps.clone(),
        merge_queue,
        dispatch: Arc::new(DispatchDeps {
            store: dyn_store.clone(),
            jobs: jobs.clone(),
            forge,
            projects: config.projects.clone(),
            runner,
            max_concurrency: config.max_concurrency,
            boot_id: boot_id.clone(),
            tick: DISPATCH_TICK,
            processes: processes.clone(),
            retry: config.retry.clone(),
            max_attempts: MAX_STAGE_ATTEMPTS,
            breaker_threshold: config.breaker_threshold,
            breaker_cooldown: config.breaker_cooldown,
            infra_retries: config.infra_retry_max,
            infra_retry_delay: config.retry_delay,
        }),
        reaper: Arc::new(ReaperDeps {
            jobs: jobs.clone(),
            processes,
            boot_id,
            tick: config.reaper_tick,
            grace_ticks: config.reaper_grace_ticks,
            // Past every role's budget and the kill's grace, a run can only be stuck.
            backstop: config.agents.longest_timeout()
                + config.agents.term_grace
                + REAPER_BACKSTOP_MARGIN,
            max_attempts: MAX_STAGE_ATTEMPTS,
        }),
        tracker,
        reconciler: Some(Arc::new(ReconcilerDeps {
            world: Arc::new(reconciler),
            interval: config.reconcile_interval,
            // At least one try, whatever the budget of other infrastructure retries.
            retries: config.infra_retry_max.max(1),
        })),
        disk: Some(Arc::new(DiskWatchdogDeps {
            probe: Arc::new(crate::os::disk::StatvfsProbe::new(vec![
                ("data".into(), data_dir.clone()),
                ("clones".into(), config.repos_dir()),
                ("worktrees".into(), config.worktrees_dir.clone()),
            ])),
            rules: config.disk,
            interval: config.disk_interval,
        })),
        housekeeper: Some(Arc::new(HousekeeperDeps {
            world: Arc::new(crate::housekeeping::ServiceHousekeeping {
                store: store.clone(),
                forge: housekeeping_forge,
                runs_dir: data_dir.join("runs"),
                worktrees_dir: config.worktrees_dir.clone(),
            }),
            store: dyn_store.clone(),
            interval: config.housekeeping_interval,
            run_retention: config.run_log_retention,
            event_retention: config.event_retention,
        })),
        policy: restart_policy(&config),
        // Each supervisor level waits this long for its children before moving on.
        shutdown_timeout: tree_stop / 2,
        launch_concurrency: LAUNCH_CONCURRENCY,
        ready_timeout: READY_TIMEOUT,
    };
    let mut tree = match tree::start(tree_config).await {
        Ok(tree) => tree,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let tasks = ractor::registry::where_is(tree::TASKS).map_or(0, |cell| cell.get_children().len());
    info!(tasks, "actor tree ready");

    let dyn_store_for_dashboard = dyn_store.clone();
    let app = http::router(AppState {
        store: dyn_store,
        jobs,
        pulls,
        creator: creator.clone(),
        operator_token: config.operator_token.clone(),
        describe_timeout: config.describe_timeout,
        intake,
        journal: store.clone(),
        projects: config.projects.clone(),
        dashboard: Arc::new(http::Dashboard::start(
            dyn_store_for_dashboard,
            store.clone(),
            config.integrations.plane.as_ref().map(|p| http::PlaneWeb {
                url: p.api_url.clone(),
                workspace: p.workspace.clone(),
            }),
            shutdown.child_token(),
        )),
    });
    info!("listening on http://{addr}");
    let server =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let drain_deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(http_drain).await;
    };
    let (outcome, tree_alive) = tokio::select! {
        served = server => (served.context("HTTP server failed"), true),
        _ = drain_deadline => {
            warn!(drain_ms = http_drain.as_millis() as u64, "in-flight HTTP requests cut off");
            (Ok(()), true)
        }
        _ = &mut tree.join => (Err(anyhow::anyhow!("the actor tree stopped unexpectedly")), false),
    };
    if tree_alive {
        info!("HTTP closed; stopping actors");
        tree.shutdown(tree_stop).await;
    }
    store.close().await;
    match &outcome {
        Ok(()) => info!("stopped"),
        Err(e) => error!("{e:#}"),
    }
    outcome
}
