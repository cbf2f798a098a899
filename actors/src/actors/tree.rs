//! Assembles the actor tree — `root` → `singletons`, `tasks` → `task:<id>` — and waits until
//! every task actor recovered from the store is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, registry};
use tokio::task::JoinHandle;

use crate::actors::disk_watchdog::{DISK_WATCHDOG, DiskWatchdog, DiskWatchdogDeps};
use crate::actors::dispatch::{DISPATCH, Dispatch, DispatchDeps};
use crate::actors::housekeeper::{HOUSEKEEPER, Housekeeper, HousekeeperDeps};
use crate::actors::merge_queue::{MERGE_QUEUE, MergeQueue, MergeQueueDeps};
use crate::actors::reaper::{REAPER, Reaper, ReaperDeps};
use crate::actors::reconciler::{RECONCILER, Reconciler, ReconcilerDeps};
use crate::actors::supervisor::{
    ChildSpec, ShutdownOrder, Supervisor, SupervisorArgs, SupervisorMsg,
};
use crate::actors::task::{TaskDeps, task_loader};
use crate::actors::tracker::{TRACKER, Tracker, TrackerDeps};
use crate::domain::restart::RestartPolicy;

/// Registered name of the tree's root.
pub const ROOT: &str = "root";
/// Registered name of the supervisor of long-lived service actors.
pub const SINGLETONS: &str = "singletons";
/// Registered name of the supervisor of task actors.
pub const TASKS: &str = "tasks";

/// What the tree needs from the service.
#[derive(Clone)]
pub struct TreeConfig {
    /// What task actors work with.
    pub tasks: Arc<TaskDeps>,
    /// What the dispatcher and its runs work with.
    pub dispatch: Arc<DispatchDeps>,
    /// What the job reaper works with.
    pub reaper: Arc<ReaperDeps>,
    /// What the merge queue works with.
    pub merge_queue: Arc<MergeQueueDeps>,
    /// What the chat tracker works with.
    pub tracker: Arc<TrackerDeps>,
    /// What the reconciler works with; `None` runs none (nothing to reconcile with).
    pub reconciler: Option<Arc<ReconcilerDeps>>,
    /// What the disk watchdog works with; `None` runs none.
    pub disk: Option<Arc<DiskWatchdogDeps>>,
    /// What the housekeeper works with; `None` runs none.
    pub housekeeper: Option<Arc<HousekeeperDeps>>,
    /// Restart policy of every supervisor.
    pub policy: RestartPolicy,
    /// Per-child stop timeout.
    pub shutdown_timeout: Duration,
    /// How many task actors are started at once at startup.
    pub launch_concurrency: usize,
    /// How long startup may take to bring up every task actor.
    pub ready_timeout: Duration,
}

/// Why the tree could not start.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The root (or one of its fixed children) failed to spawn.
    #[error("cannot start the actor tree: {0}")]
    Spawn(String),
    /// A supervisor died or stalled while loading its children.
    #[error("actor {name} did not become ready: {reason}")]
    NotReady {
        /// The supervisor's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// The running tree.
pub struct Tree {
    /// The root supervisor.
    pub root: ActorRef<SupervisorMsg>,
    /// Completes when the root has stopped.
    pub join: JoinHandle<()>,
}

fn supervisor_spec(name: &str, config: &TreeConfig, singletons: bool) -> ChildSpec {
    let config = config.clone();
    ChildSpec::new(name, move || {
        let (children, loader) = if singletons {
            let deps = config.dispatch.clone();
            let dispatch = ChildSpec::new(DISPATCH, move || (Dispatch::new(deps.clone()), ()));
            let deps = config.reaper.clone();
            let reaper = ChildSpec::new(REAPER, move || (Reaper::new(deps.clone()), ()));
            let deps = config.tracker.clone();
            let tracker = ChildSpec::new(TRACKER, move || (Tracker::new(deps.clone()), ()));
            let deps = config.merge_queue.clone();
            let merge_queue =
                ChildSpec::new(MERGE_QUEUE, move || (MergeQueue::new(deps.clone()), ()));
            let mut children = vec![dispatch, reaper, tracker, merge_queue];
            if let Some(deps) = config.reconciler.clone() {
                children.push(ChildSpec::new(RECONCILER, move || {
                    (Reconciler::new(deps.clone()), ())
                }));
            }
            if let Some(deps) = config.disk.clone() {
                children.push(ChildSpec::new(DISK_WATCHDOG, move || {
                    (DiskWatchdog::new(deps.clone()), ())
                }));
            }
            if let Some(deps) = config.housekeeper.clone() {
                children.push(ChildSpec::new(HOUSEKEEPER, move || {
                    (Housekeeper::new(deps.clone()), ())
                }));
            }
            (children, None)
        } else {
            (Vec::new(), Some(task_loader(config.tasks.clone())))
        };
        let args = SupervisorArgs {
            policy: config.policy.clone(),
            children,
            loader,
            shutdown: ShutdownOrder::Concurrent,
            shutdown_timeout: config.shutdown_timeout,
            launch_concurrency: config.launch_concurrency,
        };
        (Supervisor, args)
    })
}

/// Spawns the tree and returns once every task actor recovered from the store has started
/// (or been reported as failed to start).
pub async fn start(config: TreeConfig) -> Result<Tree, TreeError> {
    let args = SupervisorArgs {
        policy: config.policy.clone(),
        children: vec![
            supervisor_spec(SINGLETONS, &config, true),
            supervisor_spec(TASKS, &config, false),
        ],
        loader: None,
        shutdown: ShutdownOrder::ReverseStart,
        shutdown_timeout: config.shutdown_timeout,
        launch_concurrency: 1,
    };
    let (root, join) = Actor::spawn(Some(ROOT.to_string()), Supervisor, args)
        .await
        .map_err(|e| TreeError::Spawn(e.to_string()))?;
    if let Err(e) = wait_ready(&root, TASKS, config.ready_timeout).await {
        root.stop(Some("startup failed".into()));
        let _ = join.await;
        return Err(e);
    }
    Ok(Tree { root, join })
}

/// Waits until `root`'s child supervisor `name` has started every child it loaded. A failed
/// load is retried by the root under its restart policy, so this only gives up when the root
/// does, or at the deadline.
async fn wait_ready(
    root: &ActorRef<SupervisorMsg>,
    name: &str,
    timeout: Duration,
) -> Result<(), TreeError> {
    let deadline = Instant::now() + timeout;
    let not_ready = |reason: String| TreeError::NotReady {
        name: name.to_string(),
        reason,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(not_ready(format!(
                "not ready within {} s",
                timeout.as_secs()
            )));
        }
        if let Some(cell) = registry::where_is(name)
            && let Ok(CallResult::Success(())) =
                ractor::rpc::call(&cell, SupervisorMsg::WaitReady, Some(left)).await
        {
            return Ok(());
        }
        // Gone or failed mid-load: find out whether the root has given up on it.
        if let Ok(CallResult::Success(Some(gave_up))) = root
            .call(
                |reply| SupervisorMsg::GaveUpOn(name.to_string(), reply),
                Some(Duration::from_secs(1)),
            )
            .await
        {
            return Err(not_ready(format!(
                "it kept failing: {}",
                gave_up.last_error
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Tree {
    /// Stops the tree in order (tasks, then singletons) and waits up to `budget` for the
    /// root to end; actors still running then (a handler stuck in long work) are killed.
    /// Returns false when something had to be killed.
    pub async fn shutdown(self, budget: Duration) -> bool {
        let Tree { root, mut join } = self;
        root.stop(Some("shutdown".into()));
        if tokio::time::timeout(budget, &mut join).await.is_ok() {
            return true;
        }
        tracing::warn!(
            budget_ms = budget.as_millis() as u64,
            "actors did not stop in time; killing them"
        );
        root.kill();
        let _ = tokio::time::timeout(Duration::from_secs(1), join).await;
        false
    }
}
