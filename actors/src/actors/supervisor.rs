//! The supervisor used for every inner node of the tree (`root`, `singletons`, `tasks`).
//! ractor restarts nothing by itself and, by default, stops a supervisor when a child exits;
//! this actor restarts failed children under a [`RestartPolicy`], gives up on a child that
//! storms, and stops its children in a defined order when it stops.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::actors::describe::{Describe, Description};
use crate::domain::restart::{Decision, GaveUp, RestartPolicy, RestartTracker};

/// How long a restart waits for the failed incarnation to unregister its name.
const OLD_INCARNATION_WAIT: Duration = Duration::from_secs(5);

/// A future that spawns one child linked to the given supervisor.
pub type SpawnFuture = BoxFuture<'static, Result<ActorCell, SpawnErr>>;

/// How to start — and after a failure, start again — one named child.
#[derive(Clone)]
pub struct ChildSpec {
    /// The child's registered name; unique among the supervisor's children.
    name: String,
    /// Builds fresh arguments and spawns the child linked to the supervisor cell given.
    start: Arc<dyn Fn(ActorCell) -> SpawnFuture + Send + Sync>,
}

impl ChildSpec {
    /// A child named `name`, whose actor and arguments `make` builds anew for each start
    /// (ractor's `Arguments` are consumed by a start, so a restart needs fresh ones).
    pub fn new<A, F>(name: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let name = name.into();
        let spawn_name = name.clone();
        Self {
            name,
            start: Arc::new(move |supervisor| {
                let (actor, args) = make();
                let name = spawn_name.clone();
                Box::pin(async move {
                    Actor::spawn_linked(Some(name), actor, args, supervisor)
                        .await
                        .map(|(actor, _)| actor.get_cell())
                })
            }),
        }
    }

    /// The child's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .finish()
    }
}

/// Produces a supervisor's dynamic children (e.g. one per active task in the store). It runs
/// after every start of the supervisor, so a restarted supervisor recovers its children.
pub type ChildLoader =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<ChildSpec>, String>> + Send + Sync>;

/// The order in which children are stopped when the supervisor stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownOrder {
    /// One at a time, the last started first (`root`: tasks before singletons).
    ReverseStart,
    /// All at once (`tasks`: thousands of independent peers).
    Concurrent,
}

/// Everything a supervisor is started with.
pub struct SupervisorArgs {
    /// Restart policy for its children.
    pub policy: RestartPolicy,
    /// Children started, in order, before the supervisor's own spawn returns.
    pub children: Vec<ChildSpec>,
    /// Dynamic children loaded and started after the supervisor is up.
    pub loader: Option<ChildLoader>,
    /// How children are stopped.
    pub shutdown: ShutdownOrder,
    /// How long to wait for a child (or, concurrently, all of them) to stop.
    pub shutdown_timeout: Duration,
    /// How many dynamic children are started at once.
    pub launch_concurrency: usize,
}

/// The supervisor actor; all configuration arrives as [`SupervisorArgs`].
pub struct Supervisor;

/// A supervisor's live bookkeeping.
pub struct SupervisorState {
    /// Failure history and restart counts per child.
    tracker: RestartTracker,
    /// Specs of children it is responsible for (alive, or waiting for a restart).
    specs: HashMap<String, ChildSpec>,
    /// Names of static children in start order, for [`ShutdownOrder::ReverseStart`].
    start_order: Vec<String>,
    /// Children it gave up on, by name.
    gave_up: BTreeMap<String, GaveUp>,
    /// The dynamic-children loader, if any.
    loader: Option<ChildLoader>,
    /// True until the loaded children have all been started (or failed to).
    loading: bool,
    /// `WaitReady` callers waiting for `loading` to end.
    waiters: Vec<RpcReplyPort<()>>,
    /// What it started and owns — the loader, launches, restarts after a backoff — ended
    /// with the supervisor.
    work: JoinSet<()>,
    /// How children are stopped.
    shutdown: ShutdownOrder,
    /// Stop timeout per child (or for all, when concurrent).
    shutdown_timeout: Duration,
    /// Parallelism of the initial launch.
    launch_concurrency: usize,
}

/// Messages a supervisor handles.
pub enum SupervisorMsg {
    /// Anyone (`GET /actors`): reply with children counts, policy and given-up children.
    Describe(RpcReplyPort<Description>),
    /// Startup: reply once the loaded children have all been started (or failed to).
    WaitReady(RpcReplyPort<()>),
    /// Startup: whether this supervisor gave up on child `name`, and why.
    GaveUpOn(String, RpcReplyPort<Option<GaveUp>>),
    /// The tracker (a task was created): supervise this child and start it; replies once it
    /// started or failed to. Idempotent for a child that is already running.
    StartChild(ChildSpec, RpcReplyPort<Result<(), String>>),
    /// Self, from the loader task: take responsibility for these children and start them.
    Adopt(Vec<ChildSpec>),
    /// Self, from the loader task: loading failed; the supervisor fails so its parent
    /// restarts it with backoff.
    LoadFailed(String),
    /// Self, from the launch task: every adopted child has been started or reported failed.
    LoadDone,
    /// Self, after a backoff: start this failed child again.
    Restart(String),
    /// Self, from a launch: starting this child failed (its `pre_start` returned an error).
    StartFailed {
        /// The child's name.
        name: String,
        /// The spawn error, as text.
        error: String,
    },
}

impl Describe for SupervisorMsg {
    const KIND: &'static str = "supervisor";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        SupervisorMsg::Describe(reply)
    }
}

impl SupervisorState {
    /// Starts `work` as the supervisor's own, reaping what already ended.
    fn own(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        while self.work.try_join_next().is_some() {}
        self.work.spawn(work);
    }

    /// Applies the policy to one failure of `name`: schedule a restart or give up.
    fn on_child_failure(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        name: String,
        error: String,
        old: Option<ActorCell>,
    ) {
        if !self.specs.contains_key(&name) {
            warn!(child = %name, %error, "unknown child failed; ignoring");
            return;
        }
        match self.tracker.on_failure(&name, Instant::now()) {
            Decision::Restart { after } => {
                warn!(child = %name, %error, backoff_ms = after.as_millis() as u64, "child failed; restarting");
                let me = myself.clone();
                self.own(async move {
                    // The failed incarnation unregisters its name just after notifying us.
                    if let Some(old) = old {
                        let _ = old.wait(Some(OLD_INCARNATION_WAIT)).await;
                    }
                    tokio::time::sleep(after).await;
                    let _ = me.cast(SupervisorMsg::Restart(name));
                });
            }
            Decision::GiveUp { failures } => {
                let window_s = self.tracker.policy().window.as_secs_f64();
                error!(child = %name, %error, failures, window_s, "child failed too often; left stopped");
                self.specs.remove(&name);
                self.gave_up.insert(
                    name.clone(),
                    GaveUp {
                        name,
                        failures,
                        last_error: error,
                    },
                );
            }
        }
    }
}

/// Starts `spec` under `supervisor` off the actor's handler; a failure comes back as
/// [`SupervisorMsg::StartFailed`].
fn launch(state: &mut SupervisorState, supervisor: ActorRef<SupervisorMsg>, spec: ChildSpec) {
    state.own(async move {
        if let Err(e) = (spec.start)(supervisor.get_cell()).await {
            let _ = supervisor.cast(SupervisorMsg::StartFailed {
                name: spec.name,
                error: e.to_string(),
            });
        }
    });
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut specs = HashMap::new();
        let mut start_order = Vec::new();
        for spec in args.children {
            (spec.start)(myself.get_cell())
                .await
                .map_err(|e| format!("cannot start child {}: {e}", spec.name))?;
            start_order.push(spec.name.clone());
            specs.insert(spec.name.clone(), spec);
        }
        Ok(SupervisorState {
            tracker: RestartTracker::new(args.policy),
            specs,
            start_order,
            gave_up: BTreeMap::new(),
            loading: args.loader.is_some(),
            loader: args.loader,
            waiters: Vec::new(),
            work: JoinSet::new(),
            shutdown: args.shutdown,
            shutdown_timeout: args.shutdown_timeout,
            launch_concurrency: args.launch_concurrency.max(1),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(loader) = state.loader.clone() {
            state.own(async move {
                let msg = match loader().await {
                    Ok(specs) => SupervisorMsg::Adopt(specs),
                    Err(e) => SupervisorMsg::LoadFailed(e),
                };
                let _ = myself.cast(msg);
            });
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Describe(reply) => {
                let details = json!({
                    "children": myself.get_children().len(),
                    "supervised": state.specs.len(),
                    "loading": state.loading,
                    "shutdown": state.shutdown,
                    "policy": state.tracker.policy(),
                    "gave_up": state.gave_up.values().collect::<Vec<_>>(),
                });
                let _ = reply.send(Description {
                    details,
                    child_restarts: state.tracker.restart_counts(),
                });
            }
            SupervisorMsg::GaveUpOn(name, reply) => {
                let _ = reply.send(state.gave_up.get(&name).cloned());
            }
            SupervisorMsg::WaitReady(reply) => {
                if state.loading {
                    state.waiters.push(reply);
                } else {
                    let _ = reply.send(());
                }
            }
            SupervisorMsg::StartChild(spec, reply) => {
                if ractor::registry::where_is(spec.name.clone()).is_some() {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                state.gave_up.remove(&spec.name);
                state.specs.insert(spec.name.clone(), spec.clone());
                let supervisor = myself.clone();
                state.own(async move {
                    let result = (spec.start)(supervisor.get_cell()).await.map(|_| ());
                    let _ =
                        reply.send(result.map_err(|e| format!("cannot start {}: {e}", spec.name)));
                });
            }
            SupervisorMsg::Adopt(specs) => {
                info!(supervisor = ?myself.get_name(), children = specs.len(), "starting loaded children");
                for spec in &specs {
                    state.specs.insert(spec.name.clone(), spec.clone());
                }
                let me = myself.clone();
                let concurrency = state.launch_concurrency;
                state.own(async move {
                    let cell = me.get_cell();
                    futures::stream::iter(specs)
                        .map(|spec| {
                            let cell = cell.clone();
                            async move { ((spec.start)(cell).await, spec.name) }
                        })
                        .buffer_unordered(concurrency)
                        .for_each(|(result, name)| {
                            if let Err(e) = result {
                                let error = e.to_string();
                                let _ = me.cast(SupervisorMsg::StartFailed { name, error });
                            }
                            futures::future::ready(())
                        })
                        .await;
                    let _ = me.cast(SupervisorMsg::LoadDone);
                });
            }
            SupervisorMsg::LoadFailed(error) => {
                return Err(format!("loading children failed: {error}").into());
            }
            SupervisorMsg::LoadDone => {
                state.loading = false;
                for waiter in state.waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
            SupervisorMsg::Restart(name) => {
                if let Some(spec) = state.specs.get(&name) {
                    state.tracker.on_restart(&name);
                    info!(child = %name, restarts = state.tracker.restarts(&name), "restarting child");
                    launch(state, myself.clone(), spec.clone());
                }
            }
            SupervisorMsg::StartFailed { name, error } => {
                state.on_child_failure(&myself, name, error, None);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let name = cell.get_name().unwrap_or_default();
                state.on_child_failure(&myself, name, err.to_string(), Some(cell));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // A normal stop is a decision (e.g. the task reached a terminal stage).
                let name = cell.get_name().unwrap_or_default();
                if state.specs.remove(&name).is_some() {
                    info!(child = %name, reason = reason.as_deref().unwrap_or(""), "child stopped");
                    state.tracker.forget(&name);
                    state.start_order.retain(|n| *n != name);
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let reason = Some("shutdown".to_string());
        if state.shutdown == ShutdownOrder::ReverseStart {
            for name in state.start_order.iter().rev() {
                let child = myself
                    .get_children()
                    .into_iter()
                    .find(|c| c.get_name().as_deref() == Some(name.as_str()));
                if let Some(child) = child {
                    let _ = child
                        .stop_and_wait(reason.clone(), Some(state.shutdown_timeout))
                        .await;
                }
            }
        }
        myself
            .stop_children_and_wait(reason, Some(state.shutdown_timeout))
            .await;
        // A child stuck in a long handler ignores Stop; Kill interrupts it.
        let stuck = myself.get_children();
        if !stuck.is_empty() {
            warn!(
                supervisor = ?myself.get_name(),
                count = stuck.len(),
                timeout_ms = state.shutdown_timeout.as_millis() as u64,
                "children did not stop in time; killing them"
            );
            for child in stuck {
                child.kill();
            }
        }
        Ok(())
    }
}
