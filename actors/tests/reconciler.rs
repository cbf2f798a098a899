//! The reconciler's schedule and bookkeeping against a scripted world: a delivery that
//! still applies is acted on exactly once, one that keeps failing is retried on its budget
//! and then abandoned with an alert, a task it cannot make sense of raises one alert however
//! many passes find it, and every task waiting on CI is told to re-check its gate each pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::actors::describe::Description;
use orchestrator_actors::actors::reconciler::{
    RECONCILER, Reconciler, ReconcilerDeps, ReconcilerMsg,
};
use orchestrator_actors::actors::task::TaskMsg;
use orchestrator_actors::actors::tracker::{TRACKER, TrackerMsg};
use orchestrator_actors::ports::{Alert, AlertKind, BoardCheck, Reconcile, Redone};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;

fn id(s: &str) -> WorkItemId {
    WorkItemId::parse(s).unwrap()
}

/// Delivery 1 still applies; delivery 2 fails every time. ACME-1's card does not add up;
/// ACME-2 waits on CI.
#[derive(Default)]
struct World {
    redone: Mutex<BTreeMap<i64, u32>>,
    settled: Mutex<Vec<i64>>,
    abandoned: Mutex<Vec<i64>>,
}

#[async_trait]
impl Reconcile for World {
    async fn pending_deliveries(&self) -> Result<Vec<i64>, String> {
        let settled = self.settled.lock().unwrap();
        Ok([1, 2]
            .into_iter()
            .filter(|d| !settled.contains(d))
            .collect())
    }

    async fn redo_delivery(&self, delivery: i64) -> Redone {
        *self.redone.lock().unwrap().entry(delivery).or_default() += 1;
        if delivery == 1 {
            self.settled.lock().unwrap().push(1);
            Redone::Acted {
                task: Some(id("ACME-9")),
                outcome: "approved".into(),
            }
        } else {
            Redone::Failed {
                task: Some(id("ACME-3")),
                error: "Plane answered 500".into(),
            }
        }
    }

    async fn abandon_delivery(&self, delivery: i64, _reason: &str) -> Result<(), String> {
        self.abandoned.lock().unwrap().push(delivery);
        self.settled.lock().unwrap().push(delivery);
        Ok(())
    }

    async fn linked_tasks(&self) -> Result<Vec<WorkItemId>, String> {
        Ok(vec![id("ACME-1")])
    }

    async fn check_board(&self, _task: &WorkItemId) -> BoardCheck {
        BoardCheck::Ambiguous("the card was moved to ConfirmDeploy while task is analysis".into())
    }

    async fn awaiting_ci(&self) -> Result<Vec<WorkItemId>, String> {
        Ok(vec![id("ACME-2")])
    }
}

/// A stand-in tracker that keeps the alerts.
struct Chat;

impl Actor for Chat {
    type Msg = TrackerMsg;
    type State = Arc<Mutex<Vec<Alert>>>;
    type Arguments = Arc<Mutex<Vec<Alert>>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<TrackerMsg>,
        alerts: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(alerts)
    }

    async fn handle(
        &self,
        _myself: ActorRef<TrackerMsg>,
        msg: TrackerMsg,
        alerts: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrackerMsg::Alert(alert) => alerts.lock().unwrap().push(alert),
            TrackerMsg::Describe(reply) => {
                let _ = reply.send(Description::default());
            }
            _ => {}
        }
        Ok(())
    }
}

/// A stand-in task actor that counts the re-checks it is asked for.
struct Gate;

impl Actor for Gate {
    type Msg = TaskMsg;
    type State = Arc<Mutex<u32>>;
    type Arguments = Arc<Mutex<u32>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<TaskMsg>,
        rechecks: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(rechecks)
    }

    async fn handle(
        &self,
        _myself: ActorRef<TaskMsg>,
        msg: TaskMsg,
        rechecks: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let TaskMsg::Recheck = msg {
            *rechecks.lock().unwrap() += 1;
        }
        Ok(())
    }
}

async fn describe(reconciler: &ActorRef<ReconcilerMsg>) -> Value {
    match reconciler
        .call(ReconcilerMsg::Describe, Some(Duration::from_secs(5)))
        .await
    {
        Ok(CallResult::Success(Description { details, .. })) => details,
        other => panic!("describe failed: {other:?}"),
    }
}

/// Waits until `n` passes are done; the details then.
async fn passes(reconciler: &ActorRef<ReconcilerMsg>, n: u64) -> Value {
    for _ in 0..500 {
        let details = describe(reconciler).await;
        if details["counters"]["passes"].as_u64() >= Some(n) {
            return details;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("pass {n} did not complete");
}

/// Once pass `n - 1` is over (none is under way: a tick during one is skipped), asks for
/// pass `n` and waits for it.
async fn pass(reconciler: &ActorRef<ReconcilerMsg>, n: u64) -> Value {
    passes(reconciler, n - 1).await;
    reconciler.cast(ReconcilerMsg::Tick).unwrap();
    passes(reconciler, n).await
}

#[tokio::test]
async fn each_finding_is_handled_once_and_each_failure_on_its_budget() {
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let (chat, chat_join) = Actor::spawn(Some(TRACKER.into()), Chat, alerts.clone())
        .await
        .unwrap();
    let rechecks = Arc::new(Mutex::new(0));
    let (gate, gate_join) = Actor::spawn(Some(id("ACME-2").actor_name()), Gate, rechecks.clone())
        .await
        .unwrap();
    let world = Arc::new(World::default());
    let deps = Arc::new(ReconcilerDeps {
        world: world.clone(),
        interval: Duration::from_secs(3600),
        retries: 2,
    });
    let (reconciler, join) = Actor::spawn(Some(RECONCILER.into()), Reconciler::new(deps), ())
        .await
        .unwrap();
    // The pass at start, then three more.
    let mut details = Value::Null;
    for n in 2..=4 {
        details = pass(&reconciler, n).await;
    }
    let counters = &details["counters"];
    assert_eq!(counters["deliveries_acted"], 1, "{details}");
    assert_eq!(counters["deliveries_failed"], 2, "{details}");
    assert_eq!(counters["deliveries_abandoned"], 1, "{details}");
    assert_eq!(counters["ci_rechecks"], 4, "{details}");
    assert_eq!(
        *world.redone.lock().unwrap(),
        BTreeMap::from([(1, 1), (2, 2)])
    );
    assert_eq!(*world.abandoned.lock().unwrap(), vec![2]);
    assert_eq!(*rechecks.lock().unwrap(), 4);
    assert_eq!(
        details["unreconciled"]["ACME-1"],
        "the card was moved to ConfirmDeploy while task is analysis"
    );
    // The alerts were sent before the pass was counted: a round trip to the chat comes
    // after them in its mailbox.
    let _ = chat
        .call(TrackerMsg::Describe, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let alerts = alerts.lock().unwrap().clone();
    let about = |task: &str| {
        alerts
            .iter()
            .filter(|a| a.work_item_id.as_str() == task && a.kind == AlertKind::Unreconciled)
            .count()
    };
    assert_eq!(about("ACME-1"), 1, "{alerts:?}");
    assert_eq!(about("ACME-3"), 1, "{alerts:?}");
    reconciler.stop(None);
    gate.stop(None);
    chat.stop(None);
    let _ = (join.await, gate_join.await, chat_join.await);
}
