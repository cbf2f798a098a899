//! `housekeeper` — a sweep at start and every interval (`ORCH_HOUSEKEEPING_INTERVAL_S`), in
//! work it owns: the worktree of every finished task still on disk is removed (a live
//! task's never), a run's files older than `ORCH_RUN_LOG_RETENTION_DAYS` are removed unless
//! its job runs or its task is live, and the webhook journal keeps
//! `ORCH_EVENT_RETENTION_DAYS` of settled deliveries (what a kept row needs is kept). What
//! may go is [`crate::domain::housekeeping`]'s to say.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::WorkItemId;
use crate::actors::describe::{Describe, Description};
use crate::actors::owned::report_to;
use crate::domain::housekeeping::{WorktreeVerdict, run_files_removable, worktree};
use crate::ports::{Housekeeping, Store};

/// Registered name of the housekeeper.
pub const HOUSEKEEPER: &str = "housekeeper";

/// What the housekeeper works with.
pub struct HousekeeperDeps {
    /// The directories and the journal.
    pub world: Arc<dyn Housekeeping>,
    /// Tasks, to tell a finished one from a live one.
    pub store: Arc<dyn Store>,
    /// Interval between sweeps (`ORCH_HOUSEKEEPING_INTERVAL_S`).
    pub interval: Duration,
    /// How long a run's files are kept (`ORCH_RUN_LOG_RETENTION_DAYS`).
    pub run_retention: Duration,
    /// How long settled deliveries are kept (`ORCH_EVENT_RETENTION_DAYS`).
    pub event_retention: Duration,
}

/// What the sweeps removed, for `GET /actors`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HousekeeperCounters {
    /// Sweeps completed.
    pub sweeps: u64,
    /// Worktrees of finished tasks removed.
    pub worktrees_removed: u64,
    /// Runs whose files were removed.
    pub runs_removed: u64,
    /// Files removed with them.
    pub files_removed: u64,
    /// Webhook deliveries past retention removed.
    pub events_removed: u64,
    /// Directories in the worktrees directory that are no task's (left alone), at the last
    /// sweep.
    pub unknown_worktrees: Vec<String>,
    /// The last sweep's errors.
    pub errors: Vec<String>,
}

/// The housekeeper's bookkeeping.
pub struct HousekeeperState {
    /// Running totals (the last sweep's unknown worktrees and errors).
    counters: HousekeeperCounters,
    /// The sweep in progress, owned: it ends with the actor.
    sweeping: Option<AbortOnDropHandle<()>>,
}

/// Messages the housekeeper handles.
pub enum HousekeeperMsg {
    /// The interval (and once at start): sweep unless a sweep is under way.
    Tick,
    /// Self, from the sweep it owns.
    Swept(Box<HousekeeperCounters>),
    /// Anyone: reply with the counters.
    Describe(RpcReplyPort<Description>),
}

impl Describe for HousekeeperMsg {
    const KIND: &'static str = "housekeeper";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        HousekeeperMsg::Describe(reply)
    }
}

/// The housekeeper actor.
pub struct Housekeeper {
    deps: Arc<HousekeeperDeps>,
}

impl Housekeeper {
    /// A housekeeper working with `deps`.
    pub fn new(deps: Arc<HousekeeperDeps>) -> Self {
        Self { deps }
    }
}

/// One sweep; what it removed and what went wrong.
async fn sweep(deps: &HousekeeperDeps) -> HousekeeperCounters {
    let mut done = HousekeeperCounters::default();
    let world = &deps.world;
    match world.worktrees().await {
        Ok(names) => {
            for name in names {
                let Ok(id) = WorkItemId::parse(&name) else {
                    done.unknown_worktrees.push(name);
                    continue;
                };
                let task = match deps.store.load_task(&id).await {
                    Ok(task) => task,
                    Err(e) => {
                        done.errors.push(format!("task {id}: {e}"));
                        continue;
                    }
                };
                match (worktree(task.as_ref().map(|t| t.stage)), task) {
                    (WorktreeVerdict::Remove, Some(task)) => {
                        match world.remove_worktree(&task).await {
                            Ok(()) => {
                                info!(task = %id, "removed a finished task's worktree");
                                done.worktrees_removed += 1;
                            }
                            Err(e) => done.errors.push(e),
                        }
                    }
                    (WorktreeVerdict::Unknown, _) => done.unknown_worktrees.push(name),
                    _ => {}
                }
            }
        }
        Err(e) => done.errors.push(format!("cannot list the worktrees: {e}")),
    }
    match (world.run_files().await, world.live_runs().await) {
        (Ok(runs), Ok(live)) => {
            for run in runs {
                let keep = live.contains(&run.run_id);
                if !run_files_removable(run.age, deps.run_retention, keep) {
                    continue;
                }
                match world.remove_run_files(&run.run_id).await {
                    Ok(files) => {
                        done.runs_removed += 1;
                        done.files_removed += u64::from(files);
                    }
                    Err(e) => done.errors.push(e),
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => done.errors.push(format!("cannot list the runs: {e}")),
    }
    match world.prune_events(deps.event_retention).await {
        Ok(n) => done.events_removed = n,
        Err(e) => done
            .errors
            .push(format!("cannot prune the webhook journal: {e}")),
    }
    done
}

impl Actor for Housekeeper {
    type Msg = HousekeeperMsg;
    type State = HousekeeperState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(HousekeeperState {
            counters: HousekeeperCounters::default(),
            sweeping: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(HousekeeperMsg::Tick)?;
        myself.send_interval(self.deps.interval, || HousekeeperMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HousekeeperMsg::Tick => {
                if state.sweeping.is_some() {
                    return Ok(());
                }
                let deps = self.deps.clone();
                state.sweeping = Some(report_to(&myself, async move {
                    HousekeeperMsg::Swept(Box::new(sweep(&deps).await))
                }));
            }
            HousekeeperMsg::Swept(done) => {
                state.sweeping = None;
                for e in &done.errors {
                    warn!(error = %e, "housekeeping");
                }
                let c = &mut state.counters;
                c.sweeps += 1;
                c.worktrees_removed += done.worktrees_removed;
                c.runs_removed += done.runs_removed;
                c.files_removed += done.files_removed;
                c.events_removed += done.events_removed;
                c.unknown_worktrees = done.unknown_worktrees;
                c.errors = done.errors;
            }
            HousekeeperMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    details: json!({
                        "interval_s": self.deps.interval.as_secs_f64(),
                        "run_retention_days": self.deps.run_retention.as_secs() / 86_400,
                        "event_retention_days": self.deps.event_retention.as_secs() / 86_400,
                        "counters": state.counters,
                    }),
                    ..Description::default()
                });
            }
        }
        Ok(())
    }
}
