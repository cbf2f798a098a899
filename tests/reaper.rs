//! The job reaper against a real SQLite queue and real processes: an orphaned job is
//! requeued after the grace ticks (its attempt counted, no run traces left), a job whose
//! run journaled an outcome is finalized from it, a run past the backstop has its process
//! group killed and is failed, and another boot's jobs are left to the startup sweep. The
//! reaper only reports; `dispatch`, the queue's only writer, carries its verdicts out, so
//! each test runs one (registered by its fixed name, hence one test at a time).

use std::sync::Arc;
use std::time::Duration;

use orchestrator::claude::process::{OsProcesses, start_ticks};
use orchestrator::store::SqliteStore;
use orchestrator_actors::actors::dispatch::{DISPATCH, Dispatch, DispatchDeps, DispatchMsg};
use orchestrator_actors::actors::reaper::{Reaper, ReaperDeps};
use orchestrator_actors::domain::resilience::RetryPolicy;
use orchestrator_actors::ports::{
    JobStatus, JobStore, NewJob, NewRun, NewTask, ProcessId, RunFinish, Store,
};
use orchestrator_actors::{Stage, WorkItemId};
use ractor::Actor;

const BOOT: &str = "this-boot";

async fn store(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("db.sqlite")).await.unwrap())
}

/// Creates task `id` with a job claimed under `boot`; returns the job id and its run id.
async fn running_job(store: &SqliteStore, id: &str, boot: &str) -> (i64, String) {
    let work_item = WorkItemId::parse(id).unwrap();
    store
        .create_task(NewTask {
            work_item_id: work_item.clone(),
            repo: "acme/app".into(),
            title: id.into(),
            description: String::new(),
            labels: Vec::new(),
        })
        .await
        .unwrap();
    store
        .enqueue_job(NewJob {
            work_item_id: work_item.clone(),
            stage: Stage::Analysis,
            role: orchestrator_actors::Role::Analyst,
            task_text: String::new(),
        })
        .await
        .unwrap();
    let job = store.claim_jobs(10, boot).await.unwrap().remove(0);
    let run_id = job.run_id.clone().unwrap();
    store
        .start_run(NewRun {
            run_id: run_id.clone(),
            job_id: job.id,
            work_item_id: work_item,
            stage: Stage::Analysis,
            role: orchestrator_actors::Role::Analyst,
            model: None,
            log_path: "x.log".into(),
            boot_id: boot.into(),
        })
        .await
        .unwrap();
    (job.id, run_id)
}

async fn start_reaper(
    store: Arc<SqliteStore>,
    backstop: Duration,
) -> ractor::ActorRef<orchestrator_actors::actors::reaper::ReaperMsg> {
    let deps = ReaperDeps {
        jobs: store,
        processes: Arc::new(OsProcesses::new(Duration::from_secs(2))),
        boot_id: BOOT.into(),
        tick: Duration::from_millis(50),
        grace_ticks: 3,
        backstop,
        max_attempts: 3,
    };
    let (actor, _) = Actor::spawn(None, Reaper::new(Arc::new(deps)), ())
        .await
        .unwrap();
    actor
}

/// One test at a time: the dispatcher's name is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A dispatcher that claims nothing (so requeued jobs stay queued for the assertions), up
/// and past its startup sweep.
async fn start_dispatch(store: Arc<SqliteStore>) -> ractor::ActorRef<DispatchMsg> {
    let deps = DispatchDeps {
        store: store.clone(),
        jobs: store,
        forge: Arc::new(orchestrator_actors::fakes::NoForge),
        projects: Arc::new(orchestrator_actors::domain::projects::Projects::default()),
        runner: Arc::new(orchestrator_actors::fakes::NoRunner),
        max_concurrency: 0,
        boot_id: BOOT.into(),
        tick: Duration::from_secs(60),
        processes: Arc::new(OsProcesses::new(Duration::from_secs(2))),
        retry: RetryPolicy::default(),
        max_attempts: 3,
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_secs(60),
        infra_retries: 0,
        infra_retry_delay: Duration::from_secs(1),
    };
    let (actor, _) = Actor::spawn(
        Some(DISPATCH.to_string()),
        Dispatch::new(Arc::new(deps)),
        (),
    )
    .await
    .unwrap();
    until("the dispatcher's startup sweep", || {
        let actor = actor.clone();
        async move {
            let d = actor
                .call(DispatchMsg::Describe, Some(Duration::from_secs(5)))
                .await
                .unwrap()
                .unwrap();
            d.details["recovered"] == true
        }
    })
    .await;
    actor
}

async fn status_of(store: &SqliteStore, id: &str) -> (JobStatus, u32) {
    let job = store
        .last_job(&WorkItemId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    (job.status, job.attempts)
}

async fn until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn orphans_are_requeued_outcomes_finalized_and_other_boots_left_alone() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    // Up before the jobs exist, so its startup sweep leaves the other boot's job alone.
    let dispatch = start_dispatch(store.clone()).await;
    let (_orphan, _) = running_job(&store, "R-1", BOOT).await;
    let (_done, done_run) = running_job(&store, "R-2", BOOT).await;
    store
        .finish_run(
            &done_run,
            RunFinish {
                outcome: orchestrator_actors::ports::RunOutcome::Succeeded,
                ..RunFinish::default()
            },
        )
        .await
        .unwrap();
    let (_old, _) = running_job(&store, "R-3", "old-boot").await;
    let reaper = start_reaper(store.clone(), Duration::from_secs(3600)).await;

    until("R-2 finalized", || async {
        status_of(&store, "R-2").await.0 == JobStatus::Succeeded
    })
    .await;
    until("R-1 requeued", || async {
        status_of(&store, "R-1").await.0 == JobStatus::Queued
    })
    .await;
    // Requeued with its attempt counted and no trace of the vanished run.
    assert_eq!(status_of(&store, "R-1").await, (JobStatus::Queued, 1));
    let overview = store.queue_overview().await.unwrap();
    let r1 = overview.active.iter().find(|j| j["task"] == "R-1").unwrap();
    assert!(r1["pid"].is_null() && r1["run_id"].is_null() && r1["started_at"].is_null());
    // Another boot's job is not the reaper's business.
    assert_eq!(status_of(&store, "R-3").await.0, JobStatus::Running);
    reaper.stop(None);
    dispatch.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_run_past_the_backstop_is_killed_with_its_group_and_failed() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let dispatch = start_dispatch(store.clone()).await;
    let (job, run_id) = running_job(&store, "B-1", BOOT).await;
    let mut agent = tokio::process::Command::new("sh")
        .args(["-c", "trap '' TERM; sleep 300 & sleep 300"])
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = agent.id().unwrap();
    until(
        "the agent's start time",
        || async move { start_ticks(pid) != 0 },
    )
    .await;
    let ticks = start_ticks(pid);
    store
        .set_job_process(
            job,
            &run_id,
            ProcessId {
                pid,
                start_ticks: ticks,
            },
        )
        .await
        .unwrap();
    // A backstop of 0 s: any running job is past it.
    let reaper = start_reaper(store.clone(), Duration::from_secs(0)).await;
    until("B-1 failed", || async {
        status_of(&store, "B-1").await.0 == JobStatus::Failed
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(10), agent.wait())
        .await
        .expect("the agent was not killed")
        .unwrap();
    assert!(!status.success());
    let process = ProcessId {
        pid,
        start_ticks: ticks,
    };
    until("the whole group to be gone", || async {
        use orchestrator_actors::ports::workbench::ProcessControl;
        !OsProcesses::new(Duration::from_secs(2)).is_alive(&process)
    })
    .await;
    let last = store
        .last_job(&WorkItemId::parse("B-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.status, JobStatus::Failed);
    reaper.stop(None);
    dispatch.stop_and_wait(None, None).await.unwrap();
}
