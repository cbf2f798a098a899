//! The generic supervisor on its own: shutdown order, deliberate stops versus failures, and
//! a failing start retried under the policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_actors::actors::supervisor::{
    ChildSpec, ShutdownOrder, Supervisor, SupervisorArgs, SupervisorMsg,
};
use orchestrator_actors::domain::restart::RestartPolicy;
use ractor::{Actor, ActorProcessingErr, ActorRef, registry};

/// Records its own `post_stop` in a shared log; `Leave` stops it deliberately, `Fail` fails it.
struct Probe {
    log: Arc<Mutex<Vec<String>>>,
}

enum ProbeMsg {
    Leave,
    Fail,
}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = String;
    type Arguments = String;

    async fn pre_start(
        &self,
        _: ActorRef<ProbeMsg>,
        name: String,
    ) -> Result<String, ActorProcessingErr> {
        self.log.lock().unwrap().push(format!("start {name}"));
        Ok(name)
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        _: &mut String,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::Leave => myself.stop(Some("done".into())),
            ProbeMsg::Fail => return Err("probe failure".into()),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ProbeMsg>,
        name: &mut String,
    ) -> Result<(), ActorProcessingErr> {
        self.log.lock().unwrap().push(format!("stop {name}"));
        Ok(())
    }
}

fn probe(name: &str, log: &Arc<Mutex<Vec<String>>>) -> ChildSpec {
    let (log, arg) = (log.clone(), name.to_string());
    ChildSpec::new(name, move || (Probe { log: log.clone() }, arg.clone()))
}

fn args(children: Vec<ChildSpec>, shutdown: ShutdownOrder) -> SupervisorArgs {
    SupervisorArgs {
        policy: RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
        },
        children,
        loader: None,
        shutdown,
        shutdown_timeout: Duration::from_secs(5),
        launch_concurrency: 4,
    }
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn details(sup: &ActorRef<SupervisorMsg>) -> serde_json::Value {
    sup.call(SupervisorMsg::Describe, Some(Duration::from_secs(1)))
        .await
        .unwrap()
        .unwrap()
        .details
}

#[tokio::test]
async fn reverse_start_order_stops_the_last_started_child_first() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let children = vec![probe("ord-singletons", &log), probe("ord-tasks", &log)];
    let (sup, join) = Actor::spawn(
        Some("ord-root".into()),
        Supervisor,
        args(children, ShutdownOrder::ReverseStart),
    )
    .await
    .unwrap();
    sup.stop(None);
    join.await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "start ord-singletons",
            "start ord-tasks",
            "stop ord-tasks",
            "stop ord-singletons"
        ]
    );
}

#[tokio::test]
async fn a_deliberate_stop_is_not_restarted_but_a_failure_is() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let children = vec![probe("ds-leaver", &log), probe("ds-failer", &log)];
    let (sup, join) = Actor::spawn(
        Some("ds-root".into()),
        Supervisor,
        args(children, ShutdownOrder::Concurrent),
    )
    .await
    .unwrap();

    let leaver: ActorRef<ProbeMsg> = registry::where_is("ds-leaver").unwrap().into();
    leaver.cast(ProbeMsg::Leave).unwrap();
    let failer: ActorRef<ProbeMsg> = registry::where_is("ds-failer").unwrap().into();
    let failed_id = failer.get_id();
    failer.cast(ProbeMsg::Fail).unwrap();

    eventually("the failer restarted", || {
        registry::where_is("ds-failer").is_some_and(|c| c.get_id() != failed_id)
    })
    .await;
    eventually("the leaver forgotten", || {
        registry::where_is("ds-leaver").is_none()
    })
    .await;
    let d = details(&sup).await;
    assert_eq!(d["supervised"], 1, "{d}");
    let starts = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| *l == "start ds-leaver")
        .count();
    assert_eq!(starts, 1, "a child that left on purpose must not come back");

    sup.stop(None);
    join.await.unwrap();
}

#[tokio::test]
async fn the_supervisor_survives_its_children_and_reports_restart_counts() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (sup, join) = Actor::spawn(
        Some("rc-root".into()),
        Supervisor,
        args(vec![probe("rc-child", &log)], ShutdownOrder::Concurrent),
    )
    .await
    .unwrap();
    for round in 1..=2u32 {
        let child: ActorRef<ProbeMsg> = registry::where_is("rc-child").unwrap().into();
        let id = child.get_id();
        child.cast(ProbeMsg::Fail).unwrap();
        eventually("a restart", || {
            registry::where_is("rc-child").is_some_and(|c| c.get_id() != id)
        })
        .await;
        let counts = sup
            .call(SupervisorMsg::Describe, Some(Duration::from_secs(1)))
            .await
            .unwrap()
            .unwrap()
            .child_restarts;
        assert_eq!(counts.get("rc-child"), Some(&round));
    }
    assert_eq!(sup.get_status(), ractor::ActorStatus::Running);
    sup.stop(None);
    join.await.unwrap();
}
