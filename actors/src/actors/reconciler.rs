//! `reconciler` — catches what the webhooks missed. Once at start and then every interval
//! (`ORCH_RECONCILE_INTERVAL_S`) it makes one pass, in work it owns:
//!
//! 1. every delivery journaled but never acted on (its acting failed, or an earlier boot
//!    left it without an outcome) is re-evaluated against the current state — acted on if
//!    it still applies, settled `superseded` if not ([`crate::domain::reconcile::judge`]);
//!    one that keeps failing is abandoned after `retries` passes, with an alert;
//! 2. the card of every non-terminal task linked to a tracker is read, and a transition a
//!    human made while nobody listened is applied when it fits the task (journaled as
//!    reconciled); what does not add up is left alone and alerted once per task;
//! 3. every task waiting on a forge's CI is told to re-check its gate, which reads the
//!    combined status, so a status webhook that never came holds nothing up.
//!
//! Its counters are in `GET /queue`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::WorkItemId;
use crate::actors::describe::{Describe, Description};
use crate::actors::owned::report_to;
use crate::actors::task::TaskMsg;
use crate::actors::tracker;
use crate::ports::{Alert, AlertKind, BoardCheck, Reconcile, Redone};

/// Registered name of the reconciler.
pub const RECONCILER: &str = "reconciler";

/// What the reconciler works with.
pub struct ReconcilerDeps {
    /// The world, as far as reconciling goes.
    pub world: Arc<dyn Reconcile>,
    /// Interval between passes (`ORCH_RECONCILE_INTERVAL_S`).
    pub interval: Duration,
    /// Passes a delivery may fail before it is abandoned (`ORCH_INFRA_RETRY_MAX`).
    pub retries: u32,
}

/// What the reconciler found, for `GET /queue`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReconcilerCounters {
    /// Passes completed.
    pub passes: u64,
    /// Deliveries acted on late.
    pub deliveries_acted: u64,
    /// Deliveries settled `superseded`.
    pub deliveries_superseded: u64,
    /// Re-evaluations that failed (left for the next pass).
    pub deliveries_failed: u64,
    /// Deliveries given up on after their budget.
    pub deliveries_abandoned: u64,
    /// Missed board transitions applied.
    pub transitions_applied: u64,
    /// Board triggers the task had moved past.
    pub transitions_superseded: u64,
    /// Cards that could not be read.
    pub board_errors: u64,
    /// Gate re-checks asked of tasks waiting on CI.
    pub ci_rechecks: u64,
    /// The last error of a pass, if any.
    pub last_error: Option<String>,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Its counts.
    counters: ReconcilerCounters,
    /// Failed re-evaluations per delivery, after this pass.
    tries: BTreeMap<i64, u32>,
    /// Tasks that do not add up, and why.
    ambiguous: BTreeMap<WorkItemId, String>,
    /// Alerts for deliveries given up on.
    abandoned: Vec<Alert>,
}

/// The reconciler's bookkeeping.
pub struct ReconcilerState {
    /// Failed re-evaluations per delivery still pending.
    tries: BTreeMap<i64, u32>,
    /// Tasks the reconciler cannot make sense of, and why (alerted once each).
    ambiguous: BTreeMap<WorkItemId, String>,
    /// Running totals.
    counters: ReconcilerCounters,
    /// The pass in progress, owned: it ends with the actor.
    passing: Option<AbortOnDropHandle<()>>,
}

/// Messages the reconciler handles.
pub enum ReconcilerMsg {
    /// The interval (and once at start): make a pass unless one is under way.
    Tick,
    /// Self, from the pass it owns.
    Passed(Box<Pass>),
    /// Anyone: reply with the counters and the current findings.
    Describe(RpcReplyPort<Description>),
}

impl Describe for ReconcilerMsg {
    const KIND: &'static str = "reconciler";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        ReconcilerMsg::Describe(reply)
    }
}

/// The reconciler actor.
pub struct Reconciler {
    deps: Arc<ReconcilerDeps>,
}

impl Reconciler {
    /// A reconciler working with `deps`.
    pub fn new(deps: Arc<ReconcilerDeps>) -> Self {
        Self { deps }
    }
}

fn note_error(c: &mut ReconcilerCounters, error: String) {
    warn!(%error, "reconciler");
    c.last_error = Some(error);
}

/// One pass: deliveries first (they may change tasks), then the board, then CI.
async fn pass(deps: &ReconcilerDeps, mut tries: BTreeMap<i64, u32>) -> Pass {
    let world = &deps.world;
    let mut out = Pass::default();
    let c = &mut out.counters;
    match world.pending_deliveries().await {
        Ok(pending) => {
            tries.retain(|id, _| pending.contains(id));
            for id in pending {
                let spent = tries.get(&id).copied().unwrap_or(0);
                if spent >= deps.retries {
                    let reason = format!(
                        "abandoned: could not be acted on in {spent} passes of the reconciler"
                    );
                    match world.abandon_delivery(id, &reason).await {
                        Ok(()) => {
                            c.deliveries_abandoned += 1;
                            tries.remove(&id);
                            warn!(event = id, "{reason}");
                        }
                        Err(e) => note_error(c, format!("cannot abandon delivery {id}: {e}")),
                    }
                    continue;
                }
                match world.redo_delivery(id).await {
                    Redone::Acted { task, outcome } => {
                        info!(event = id, task = ?task, %outcome, "delivery acted on late");
                        c.deliveries_acted += 1;
                        tries.remove(&id);
                    }
                    Redone::Superseded { task, reason } => {
                        info!(event = id, task = ?task, %reason, "delivery superseded");
                        c.deliveries_superseded += 1;
                        tries.remove(&id);
                    }
                    Redone::Failed { task, error } => {
                        c.deliveries_failed += 1;
                        let n = tries.entry(id).or_insert(0);
                        *n += 1;
                        if *n >= deps.retries
                            && let Some(task) = task
                        {
                            out.abandoned.push(Alert {
                                work_item_id: task,
                                kind: AlertKind::Unreconciled,
                                text: format!(
                                    "webhook delivery {id} could not be acted on after {n} tries: {error}"
                                ),
                            });
                        }
                        note_error(c, format!("delivery {id}: {error}"));
                    }
                }
            }
        }
        Err(e) => note_error(c, format!("cannot list pending deliveries: {e}")),
    }
    match world.linked_tasks().await {
        Ok(tasks) => {
            for id in tasks {
                match world.check_board(&id).await {
                    BoardCheck::InStep => {}
                    BoardCheck::Applied(what) => {
                        info!(task = %id, %what, "missed board transition applied");
                        c.transitions_applied += 1;
                    }
                    BoardCheck::Superseded(_) => c.transitions_superseded += 1,
                    BoardCheck::Ambiguous(why) => {
                        out.ambiguous.insert(id, why);
                    }
                    BoardCheck::Failed(error) => {
                        c.board_errors += 1;
                        note_error(c, format!("task {id}'s card: {error}"));
                    }
                }
            }
        }
        Err(e) => note_error(c, format!("cannot list linked tasks: {e}")),
    }
    match world.awaiting_ci().await {
        Ok(tasks) => {
            for id in tasks {
                let told = ractor::registry::where_is(id.actor_name())
                    .map(ActorRef::<TaskMsg>::from)
                    .is_some_and(|actor| actor.cast(TaskMsg::Recheck).is_ok());
                if told {
                    c.ci_rechecks += 1;
                }
            }
        }
        Err(e) => note_error(c, format!("cannot list tasks waiting on CI: {e}")),
    }
    out.tries = tries;
    out
}

/// The findings of this pass that were not already alerted; `alerted` becomes the findings.
fn new_findings(
    alerted: &mut BTreeMap<WorkItemId, String>,
    found: BTreeMap<WorkItemId, String>,
) -> Vec<(WorkItemId, String)> {
    let fresh = found
        .iter()
        .filter(|(id, _)| !alerted.contains_key(*id))
        .map(|(id, why)| (id.clone(), why.clone()))
        .collect();
    *alerted = found;
    fresh
}

impl Actor for Reconciler {
    type Msg = ReconcilerMsg;
    type State = ReconcilerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ReconcilerState {
            tries: BTreeMap::new(),
            ambiguous: BTreeMap::new(),
            counters: ReconcilerCounters::default(),
            passing: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(ReconcilerMsg::Tick)?;
        myself.send_interval(self.deps.interval, || ReconcilerMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReconcilerMsg::Tick => {
                if state.passing.is_some() {
                    return Ok(());
                }
                let deps = self.deps.clone();
                let tries = state.tries.clone();
                state.passing = Some(report_to(&myself, async move {
                    ReconcilerMsg::Passed(Box::new(pass(&deps, tries).await))
                }));
            }
            ReconcilerMsg::Passed(done) => {
                state.passing = None;
                let Pass {
                    counters: d,
                    tries,
                    ambiguous,
                    abandoned,
                } = *done;
                state.tries = tries;
                for (id, why) in new_findings(&mut state.ambiguous, ambiguous) {
                    warn!(task = %id, %why, "the reconciler cannot make sense of a task");
                    tracker::alert(Alert {
                        work_item_id: id,
                        kind: AlertKind::Unreconciled,
                        text: why,
                    });
                }
                for alert in abandoned {
                    tracker::alert(alert);
                }
                let c = &mut state.counters;
                c.passes += 1;
                c.deliveries_acted += d.deliveries_acted;
                c.deliveries_superseded += d.deliveries_superseded;
                c.deliveries_failed += d.deliveries_failed;
                c.deliveries_abandoned += d.deliveries_abandoned;
                c.transitions_applied += d.transitions_applied;
                c.transitions_superseded += d.transitions_superseded;
                c.board_errors += d.board_errors;
                c.ci_rechecks += d.ci_rechecks;
                c.last_error = d.last_error;
            }
            ReconcilerMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    details: json!({
                        "interval_s": self.deps.interval.as_secs_f64(),
                        "counters": state.counters,
                        "pending_retries": state.tries,
                        "unreconciled": state.ambiguous,
                    }),
                    ..Description::default()
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> WorkItemId {
        WorkItemId::parse(s).unwrap()
    }

    #[test]
    fn a_task_that_does_not_add_up_is_reported_once_until_it_does() {
        let mut alerted = BTreeMap::new();
        let found = BTreeMap::from([(id("ACME-1"), "odd".to_string())]);
        assert_eq!(new_findings(&mut alerted, found.clone()).len(), 1);
        assert!(new_findings(&mut alerted, found.clone()).is_empty());
        assert!(new_findings(&mut alerted, BTreeMap::new()).is_empty());
        assert_eq!(new_findings(&mut alerted, found).len(), 1);
    }
}
