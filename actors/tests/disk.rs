//! The disk watchdog against a scripted filesystem and the real dispatcher: crossing into
//! critical is said once and stops claims (a queued job stays queued), the way back below
//! the warning threshold is said once and claims resume.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::actors::describe::Description;
use orchestrator_actors::actors::disk_watchdog::{
    DISK_WATCHDOG, DiskWatchdog, DiskWatchdogDeps, DiskWatchdogMsg,
};
use orchestrator_actors::actors::dispatch::{DISPATCH, Dispatch, DispatchDeps, DispatchMsg};
use orchestrator_actors::actors::tracker::{TRACKER, TrackerMsg};
use orchestrator_actors::domain::disk::DiskRules;
use orchestrator_actors::domain::resilience::RetryPolicy;
use orchestrator_actors::fakes::{MemoryJobs, MemoryStore, NoForge, NoProcesses, NoRunner};
use orchestrator_actors::ports::{DiskProbe, FsReading, JobStatus, JobStore, NewJob, Notice};
use orchestrator_actors::{Role, Stage, WorkItemId};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;

/// One filesystem whose fill the test sets.
struct Disk(Mutex<f64>);

#[async_trait]
impl DiskProbe for Disk {
    async fn read(&self) -> Vec<FsReading> {
        vec![FsReading {
            id: "dev:1".into(),
            holds: "data /srv/data".into(),
            fill_pct: Ok(*self.0.lock().unwrap()),
        }]
    }
}

/// A stand-in tracker that keeps the notices.
struct Chat;

impl Actor for Chat {
    type Msg = TrackerMsg;
    type State = Arc<Mutex<Vec<Notice>>>;
    type Arguments = Arc<Mutex<Vec<Notice>>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<TrackerMsg>,
        notices: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(notices)
    }

    async fn handle(
        &self,
        _myself: ActorRef<TrackerMsg>,
        msg: TrackerMsg,
        notices: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrackerMsg::Notice(notice) => notices.lock().unwrap().push(notice),
            TrackerMsg::Describe(reply) => {
                let _ = reply.send(Description::default());
            }
            _ => {}
        }
        Ok(())
    }
}

async fn details<M: ractor::Message>(
    actor: &ActorRef<M>,
    ask: fn(ractor::RpcReplyPort<Description>) -> M,
) -> Value {
    match actor.call(ask, Some(Duration::from_secs(5))).await {
        Ok(CallResult::Success(d)) => d.details,
        other => panic!("describe failed: {other:?}"),
    }
}

async fn until<F: AsyncFn() -> bool>(what: &str, f: F) {
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_critical_disk_stops_claims_until_it_is_below_warn_again() {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let (chat, chat_join) = Actor::spawn(Some(TRACKER.into()), Chat, notices.clone())
        .await
        .unwrap();
    let jobs = Arc::new(MemoryJobs::new());
    let deps = Arc::new(DispatchDeps {
        store: Arc::new(MemoryStore::new()),
        jobs: jobs.clone(),
        forge: Arc::new(NoForge),
        projects: Arc::new(orchestrator_actors::domain::projects::Projects::default()),
        runner: Arc::new(NoRunner),
        max_concurrency: 1,
        boot_id: "test-boot".into(),
        tick: Duration::from_secs(3600),
        processes: Arc::new(NoProcesses),
        retry: RetryPolicy::default(),
        max_attempts: 3,
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_secs(60),
        infra_retries: 0,
        infra_retry_delay: Duration::from_millis(10),
    });
    let (dispatch, dispatch_join) = Actor::spawn(Some(DISPATCH.into()), Dispatch::new(deps), ())
        .await
        .unwrap();
    let disk = Arc::new(Disk(Mutex::new(96.0)));
    let watchdog_deps = Arc::new(DiskWatchdogDeps {
        probe: disk.clone(),
        rules: DiskRules {
            warn_pct: 85.0,
            critical_pct: 95.0,
            reminder: Duration::from_secs(3600),
        },
        interval: Duration::from_secs(3600),
    });
    let (watchdog, watchdog_join) = Actor::spawn(
        Some(DISK_WATCHDOG.into()),
        DiskWatchdog::new(watchdog_deps),
        (),
    )
    .await
    .unwrap();
    // The reading at start finds the disk critical.
    until("dispatch to pause", async || {
        !details(&dispatch, DispatchMsg::Describe).await["disk_pause"].is_null()
    })
    .await;
    // Claims would be made by now but for the pause: the previous boot's runs are dealt with.
    until("dispatch to recover", async || {
        details(&dispatch, DispatchMsg::Describe).await["recovered"] == true
    })
    .await;
    let pause = details(&dispatch, DispatchMsg::Describe).await["disk_pause"].clone();
    assert!(pause.as_str().unwrap().contains("96.0% full"), "{pause}");
    let id = WorkItemId::parse("ACME-1").unwrap();
    jobs.enqueue_job(NewJob {
        work_item_id: id.clone(),
        stage: Stage::Analysis,
        role: Role::Analyst,
        task_text: "t".into(),
    })
    .await
    .unwrap();
    dispatch.cast(DispatchMsg::Wake).unwrap();
    // A Describe is answered after the Wake: the claim was not made.
    let _ = details(&dispatch, DispatchMsg::Describe).await;
    let job = jobs.active_job(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);

    // Still above warn: critical holds, nothing more is said.
    *disk.0.lock().unwrap() = 90.0;
    watchdog.cast(DiskWatchdogMsg::Tick).unwrap();
    until("the second reading", async || {
        details(&watchdog, DiskWatchdogMsg::Describe).await["readings"] == 2
    })
    .await;
    let _ = details(&dispatch, DispatchMsg::Describe).await;
    assert_eq!(
        jobs.active_job(&id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );

    // Below warn: claims resume.
    *disk.0.lock().unwrap() = 80.0;
    watchdog.cast(DiskWatchdogMsg::Tick).unwrap();
    until("the job to be claimed", async || {
        jobs.active_job(&id)
            .await
            .unwrap()
            .is_none_or(|j| j.status != JobStatus::Queued)
    })
    .await;
    assert!(details(&dispatch, DispatchMsg::Describe).await["disk_pause"].is_null());
    let _ = chat
        .call(TrackerMsg::Describe, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let said: Vec<String> = notices
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.text.clone())
        .collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].contains("critical at 95%"), "{said:?}");
    assert!(said[1].contains("back to 80.0% full"), "{said:?}");
    watchdog.stop(None);
    dispatch.stop(None);
    chat.stop(None);
    let _ = (watchdog_join.await, dispatch_join.await, chat_join.await);
}
