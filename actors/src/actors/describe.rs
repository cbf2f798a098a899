//! Introspection: every actor answers a `Describe` RPC, and [`walk`] turns the live tree
//! under an actor into JSON-ready [`ActorNode`]s. Each RPC has its own timeout, so one stuck
//! actor costs the walk at most that timeout and shows up as an error on its node.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorStatus, Message, RpcReplyPort};
use serde::Serialize;

use crate::actors::disk_watchdog::DiskWatchdogMsg;
use crate::actors::dispatch::DispatchMsg;
use crate::actors::housekeeper::HousekeeperMsg;
use crate::actors::merge_queue::MergeQueueMsg;
use crate::actors::reaper::ReaperMsg;
use crate::actors::reconciler::ReconcilerMsg;
use crate::actors::run::RunMsg;
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::task::TaskMsg;
use crate::actors::tracker::TrackerMsg;

/// What an actor says about itself.
#[derive(Clone, Debug, Default)]
pub struct Description {
    /// Actor-specific facts (stage, children count, policy, …).
    pub details: serde_json::Value,
    /// Restart counts of this actor's children, by name (supervisors only; zero omitted).
    pub child_restarts: BTreeMap<String, u32>,
}

/// A message type whose actor answers `Describe`.
pub trait Describe: Message + Sized {
    /// The `kind` shown for actors of this type.
    const KIND: &'static str;
    /// Builds the Describe request carrying `reply`.
    fn describe(reply: RpcReplyPort<Description>) -> Self;
}

/// One node of the live tree.
#[derive(Clone, Debug, Serialize)]
pub struct ActorNode {
    /// Registered name, or empty for an unnamed actor.
    pub name: String,
    /// ractor's actor id (changes when an actor is restarted).
    pub id: String,
    /// Lifecycle status: starting, running, stopping, …
    pub status: &'static str,
    /// Actor kind: supervisor, task, …; `unknown` for a type this walker does not know.
    pub kind: &'static str,
    /// Times its supervisor restarted it after a failure.
    pub restarts: u32,
    /// What its Describe RPC returned; absent when the RPC failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Why `details` is missing (e.g. the RPC timed out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Number of live children, also when `children` is cut by the depth limit.
    pub child_count: usize,
    /// Live children sorted by name (empty below the depth limit).
    pub children: Vec<ActorNode>,
}

/// How far and how patiently to walk.
#[derive(Clone, Copy, Debug)]
pub struct WalkOptions {
    /// Per-actor Describe timeout.
    pub timeout: Duration,
    /// Levels below the start to include (`None` = all, `Some(0)` = the start only).
    pub max_depth: Option<usize>,
}

/// Walks the live tree from `start`, describing every actor concurrently.
pub async fn walk(start: ActorCell, options: WalkOptions) -> ActorNode {
    walk_node(start, 0, 0, options).await
}

fn walk_node(
    cell: ActorCell,
    restarts: u32,
    depth: usize,
    options: WalkOptions,
) -> BoxFuture<'static, ActorNode> {
    Box::pin(async move {
        let (kind, described) = describe_cell(&cell, options.timeout).await;
        let mut children = cell.get_children();
        children.sort_by_cached_key(|c| c.get_name().unwrap_or_default());
        let child_count = children.len();
        let (details, error, child_restarts) = match described {
            Ok(d) => (Some(d.details), None, d.child_restarts),
            Err(e) => (None, Some(e), BTreeMap::new()),
        };
        let children = if options.max_depth.is_some_and(|max| depth >= max) {
            Vec::new()
        } else {
            join_all(children.into_iter().map(|child| {
                let n = child
                    .get_name()
                    .and_then(|name| child_restarts.get(&name).copied())
                    .unwrap_or(0);
                walk_node(child, n, depth + 1, options)
            }))
            .await
        };
        ActorNode {
            name: cell.get_name().unwrap_or_default(),
            id: cell.get_id().to_string(),
            status: status_name(cell.get_status()),
            kind,
            restarts,
            details,
            error,
            child_count,
            children,
        }
    })
}

/// Describes one actor of any kind known to this crate.
pub async fn describe_cell(
    cell: &ActorCell,
    timeout: Duration,
) -> (&'static str, Result<Description, String>) {
    if cell.is_message_type_of::<SupervisorMsg>() == Some(true) {
        (
            SupervisorMsg::KIND,
            call::<SupervisorMsg>(cell, timeout).await,
        )
    } else if cell.is_message_type_of::<TaskMsg>() == Some(true) {
        (TaskMsg::KIND, call::<TaskMsg>(cell, timeout).await)
    } else if cell.is_message_type_of::<DispatchMsg>() == Some(true) {
        (DispatchMsg::KIND, call::<DispatchMsg>(cell, timeout).await)
    } else if cell.is_message_type_of::<RunMsg>() == Some(true) {
        (RunMsg::KIND, call::<RunMsg>(cell, timeout).await)
    } else if cell.is_message_type_of::<ReaperMsg>() == Some(true) {
        (ReaperMsg::KIND, call::<ReaperMsg>(cell, timeout).await)
    } else if cell.is_message_type_of::<TrackerMsg>() == Some(true) {
        (TrackerMsg::KIND, call::<TrackerMsg>(cell, timeout).await)
    } else if cell.is_message_type_of::<HousekeeperMsg>() == Some(true) {
        (
            HousekeeperMsg::KIND,
            call::<HousekeeperMsg>(cell, timeout).await,
        )
    } else if cell.is_message_type_of::<DiskWatchdogMsg>() == Some(true) {
        (
            DiskWatchdogMsg::KIND,
            call::<DiskWatchdogMsg>(cell, timeout).await,
        )
    } else if cell.is_message_type_of::<ReconcilerMsg>() == Some(true) {
        (
            ReconcilerMsg::KIND,
            call::<ReconcilerMsg>(cell, timeout).await,
        )
    } else if cell.is_message_type_of::<MergeQueueMsg>() == Some(true) {
        (
            MergeQueueMsg::KIND,
            call::<MergeQueueMsg>(cell, timeout).await,
        )
    } else {
        ("unknown", Err("actor does not answer Describe".into()))
    }
}

async fn call<M: Describe>(cell: &ActorCell, timeout: Duration) -> Result<Description, String> {
    match ractor::rpc::call(cell, M::describe, Some(timeout)).await {
        Ok(CallResult::Success(d)) => Ok(d),
        Ok(CallResult::Timeout) => Err(format!(
            "describe timed out after {} ms",
            timeout.as_millis()
        )),
        Ok(CallResult::SenderError) => Err("actor dropped the describe request".into()),
        Err(e) => Err(format!("actor unreachable: {e}")),
    }
}

/// The lower-case name of an actor status.
pub fn status_name(status: ActorStatus) -> &'static str {
    match status {
        ActorStatus::Unstarted => "unstarted",
        ActorStatus::Starting => "starting",
        ActorStatus::Running => "running",
        ActorStatus::Upgrading => "upgrading",
        ActorStatus::Draining => "draining",
        ActorStatus::Stopping => "stopping",
        ActorStatus::Stopped => "stopped",
    }
}
