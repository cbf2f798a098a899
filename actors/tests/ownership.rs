//! Who owns what, proven on the whole tree with in-memory and scripted ports: a run that
//! panics frees its slot and its job is retried (its attempt counted); a failed push keeps
//! the agent's finished work and only the publish is repeated; infrastructure trouble that
//! outlasts its budget blocks the task with an `infrastructure:` reason and an alert; a task
//! actor stopped or crashed mid-gate or mid-merge leaves nothing running, and a restart never
//! runs two merges at once. ractor's name registry is process-global: one test at a time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_actors::actors::dispatch::{DISPATCH, DispatchDeps};
use orchestrator_actors::actors::merge_queue::MergeQueueDeps;
use orchestrator_actors::actors::reaper::ReaperDeps;
use orchestrator_actors::actors::task::{TaskDeps, TaskMsg};
use orchestrator_actors::actors::tracker::{TrackerDeps, TrackerMode};
use orchestrator_actors::actors::tree::{self, Tree, TreeConfig};
use orchestrator_actors::domain::resilience::RetryPolicy;
use orchestrator_actors::domain::restart::RestartPolicy;
use orchestrator_actors::domain::task_machine::InfraLimits;
use orchestrator_actors::fakes::MemoryMergeQueue;
use orchestrator_actors::fakes::{
    MemoryCards, MemoryJobs, MemoryStore, NoForge, NoProcesses, RunScript, ScriptedForge,
    ScriptedRunner,
};
use orchestrator_actors::ports::workbench::{AgentRunner, Forge};
use orchestrator_actors::ports::{
    Alert, AlertKind, Card, JobStatus, JobStore, MessageId, NewJob, NewTask, Notice, Notifier,
    NotifyError, Phase, Store, TaskUpdate,
};
use orchestrator_actors::{Role, Stage, WorkItemId};
use ractor::{ActorRef, registry};
use tokio::sync::Mutex;

static REGISTRY: Mutex<()> = Mutex::const_new(());

/// A chat that keeps every alert.
#[derive(Default)]
struct Alerts(StdMutex<Vec<Alert>>);

#[async_trait]
impl Notifier for Alerts {
    async fn send_card(&self, _card: &Card) -> Result<MessageId, NotifyError> {
        Ok(MessageId(1))
    }
    async fn edit_card(&self, _id: MessageId, _card: &Card) -> Result<(), NotifyError> {
        Ok(())
    }
    async fn delete_message(&self, _id: MessageId) -> Result<(), NotifyError> {
        Ok(())
    }
    async fn send_alert(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }
    async fn send_notice(&self, _notice: &Notice) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// What a test sets up; everything else is fast and small.
struct Setup {
    store: Arc<MemoryStore>,
    jobs: Arc<MemoryJobs>,
    forge: Arc<dyn Forge>,
    runner: Arc<dyn AgentRunner>,
    alerts: Arc<Alerts>,
    limits: InfraLimits,
    infra_retries: u32,
    reaper_tick: Duration,
}

impl Setup {
    fn new(forge: Arc<dyn Forge>, runner: Arc<dyn AgentRunner>) -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            jobs: Arc::new(MemoryJobs::new()),
            forge,
            runner,
            alerts: Arc::new(Alerts::default()),
            limits: InfraLimits::default(),
            infra_retries: 5,
            reaper_tick: Duration::from_secs(60),
        }
    }

    async fn start(&self) -> Tree {
        let fast = Duration::from_millis(20);
        let store: Arc<dyn Store> = self.store.clone();
        let config = TreeConfig {
            merge_queue: Arc::new(MergeQueueDeps {
                store: Arc::new(MemoryMergeQueue::default()),
                tasks: store.clone(),
                forge: self.forge.clone(),
                retry_delay: fast,
                infra_retries: 5,
                main_recheck: Duration::from_secs(60),
                batch_max: 4,
            }),
            tasks: Arc::new(TaskDeps {
                store: store.clone(),
                jobs: self.jobs.clone(),
                forge: self.forge.clone(),
                board: Arc::new(orchestrator_actors::ports::LocalBoard),
                projects: Arc::new(orchestrator_actors::domain::projects::Projects::default()),
                retry_delay: fast,
                limits: self.limits,
            }),
            dispatch: Arc::new(DispatchDeps {
                store: store.clone(),
                jobs: self.jobs.clone(),
                forge: self.forge.clone(),
                runner: self.runner.clone(),
                max_concurrency: 1,
                boot_id: "test-boot".into(),
                tick: Duration::from_millis(200),
                processes: Arc::new(NoProcesses),
                retry: RetryPolicy::default(),
                max_attempts: 3,
                breaker_threshold: 3,
                breaker_cooldown: Duration::from_secs(60),
                infra_retries: self.infra_retries,
                infra_retry_delay: fast,
            }),
            reaper: Arc::new(ReaperDeps {
                jobs: self.jobs.clone(),
                processes: Arc::new(NoProcesses),
                boot_id: "test-boot".into(),
                tick: self.reaper_tick,
                grace_ticks: 3,
                backstop: Duration::from_secs(3600),
                max_attempts: 3,
            }),
            tracker: Arc::new(TrackerDeps {
                store,
                jobs: self.jobs.clone(),
                notifier: self.alerts.clone(),
                cards: Arc::new(MemoryCards::new()),
                mode: TrackerMode::Edit,
                max_retry_wait: Duration::from_secs(1),
            }),
            reconciler: None,
            disk: None,
            housekeeper: None,
            policy: RestartPolicy {
                max_restarts: 5,
                window: Duration::from_secs(60),
                backoff_initial: Duration::from_millis(5),
                backoff_max: Duration::from_millis(20),
            },
            shutdown_timeout: Duration::from_secs(5),
            launch_concurrency: 8,
            ready_timeout: Duration::from_secs(10),
        };
        tree::start(config).await.unwrap()
    }

    /// Creates task `s`, then moves it to `stage` and `phase` as a previous boot left it.
    async fn seed(&self, s: &str, stage: Stage, phase: Phase) {
        let id = WorkItemId::parse(s).unwrap();
        self.store
            .create_task(NewTask {
                work_item_id: id.clone(),
                repo: "acme/app".into(),
                title: format!("task {s}"),
                description: String::new(),
                labels: Vec::new(),
            })
            .await
            .unwrap();
        if stage == Stage::Created {
            return;
        }
        let task = self.store.load_task(&id).await.unwrap().unwrap();
        let mut update = TaskUpdate::keep(&task);
        update.to = Some((stage, "seeded".into()));
        update.phase = phase;
        update.stage_attempts = 1;
        assert!(
            self.store
                .update_task(&id, Stage::Created, update)
                .await
                .unwrap()
        );
    }

    async fn task(&self, s: &str) -> orchestrator_actors::ports::TaskRecord {
        let id = WorkItemId::parse(s).unwrap();
        self.store.load_task(&id).await.unwrap().unwrap()
    }
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until task `s` is in `phase`, reading the store.
async fn until_phase(setup: &Setup, s: &str, phase: Phase) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let task = setup.task(s).await;
        if task.phase == phase {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {s} to be {phase:?}; it is {:?} at {}",
            task.phase,
            task.stage
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for the Blocked alert of an infrastructure reason.
async fn infrastructure_alert(setup: &Setup) {
    let alerts = setup.alerts.clone();
    eventually("the blocked alert", || {
        alerts
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.kind == AlertKind::Blocked && a.text.contains("infrastructure:"))
    })
    .await;
}

async fn stop(tree: Tree) {
    tree.shutdown(Duration::from_secs(10)).await;
    eventually("registry cleared", || registry::where_is("root").is_none()).await;
}

async fn dispatch_details() -> serde_json::Value {
    let cell = registry::where_is(DISPATCH).unwrap();
    let (_, d) =
        orchestrator_actors::actors::describe::describe_cell(&cell, Duration::from_secs(2)).await;
    d.unwrap().details
}

#[tokio::test]
async fn a_panicking_run_frees_its_slot_and_its_job_is_retried_with_the_attempt_counted() {
    let _guard = REGISTRY.lock().await;
    let runner = Arc::new(ScriptedRunner::new([RunScript::Panic]));
    let setup = Setup::new(Arc::new(ScriptedForge::default()), runner.clone());
    setup.seed("P-1", Stage::Created, Phase::Idle).await;
    let tree = setup.start().await;

    // One slot only: the retry can run only if the panicked run gave its slot back.
    until_phase(&setup, "P-1", Phase::AwaitingApproval).await;
    assert_eq!(runner.launched(), 2, "the panicked run and its retry");
    let jobs = setup.jobs.all();
    assert_eq!(
        jobs.len(),
        1,
        "the same job was retried, not a new one queued"
    );
    assert_eq!(jobs[0].status, JobStatus::Succeeded);
    assert_eq!(jobs[0].attempts, 2, "the crashed attempt counts");
    let d = dispatch_details().await;
    assert_eq!(d["counters"]["crashed"], 1);
    assert_eq!(d["running"].as_array().unwrap().len(), 0, "no slot is held");
    let task = setup.task("P-1").await;
    assert_eq!(
        task.stage_attempts, 1,
        "the stage spent no attempt on the crash"
    );
    stop(tree).await;
}

#[tokio::test]
async fn a_failed_push_keeps_the_agents_work_and_only_the_publish_is_retried() {
    let _guard = REGISTRY.lock().await;
    let forge = Arc::new(ScriptedForge::default().failing_publishes(2));
    let runner = Arc::new(ScriptedRunner::default());
    let setup = Setup::new(forge.clone(), runner.clone());
    setup.seed("F-1", Stage::Created, Phase::Idle).await;
    let tree = setup.start().await;

    until_phase(&setup, "F-1", Phase::AwaitingApproval).await;
    assert_eq!(runner.launched(), 1, "the agent ran once");
    assert_eq!(
        ScriptedForge::count(&forge.publishes),
        3,
        "two failed pushes, then one that worked"
    );
    let jobs = setup.jobs.all();
    assert_eq!(
        (jobs.len(), jobs[0].status, jobs[0].attempts),
        (1, JobStatus::Succeeded, 1)
    );
    let runs = setup
        .jobs
        .runs(&WorkItemId::parse("F-1").unwrap())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(
        runs[0].output_tokens, 5,
        "the paid run's usage is journaled"
    );
    stop(tree).await;
}

#[tokio::test]
async fn work_refused_for_its_conflict_markers_fails_the_run_and_the_role_runs_again_with_the_reason()
 {
    let _guard = REGISTRY.lock().await;
    let forge = Arc::new(ScriptedForge::default().rejecting_publishes(1));
    let runner = Arc::new(ScriptedRunner::default());
    let setup = Setup::new(forge.clone(), runner.clone());
    setup.seed("F-3", Stage::Created, Phase::Idle).await;
    let tree = setup.start().await;

    until_phase(&setup, "F-3", Phase::AwaitingApproval).await;
    assert_eq!(
        runner.launched(),
        2,
        "the refused run counts; the role ran again"
    );
    let runs = setup
        .jobs
        .runs(&WorkItemId::parse("F-3").unwrap())
        .await
        .unwrap();
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["failed", "succeeded"]);
    assert!(
        runs[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("conflict markers")),
        "{:?}",
        runs[0].reason
    );
    let task = setup.task("F-3").await;
    assert_eq!(task.stage_attempts, 2, "an attempt was spent");
    assert!(task.blocked_reason.is_none());
    stop(tree).await;
}

#[tokio::test]
async fn a_push_that_keeps_failing_blocks_the_task_as_infrastructure_without_spending_an_attempt() {
    let _guard = REGISTRY.lock().await;
    let forge = Arc::new(ScriptedForge::default().failing_publishes(100));
    let runner = Arc::new(ScriptedRunner::default());
    let mut setup = Setup::new(forge.clone(), runner.clone());
    setup.infra_retries = 2;
    setup.seed("F-2", Stage::Created, Phase::Idle).await;
    let tree = setup.start().await;

    until_phase(&setup, "F-2", Phase::Blocked).await;
    let task = setup.task("F-2").await;
    let reason = task.blocked_reason.unwrap();
    assert!(reason.starts_with("infrastructure: "), "{reason}");
    assert!(reason.contains("cannot publish"), "{reason}");
    assert_eq!(task.stage_attempts, 1, "no attempt spent");
    assert_eq!(
        runner.launched(),
        1,
        "the agent is never relaunched for a push"
    );
    assert_eq!(
        ScriptedForge::count(&forge.publishes),
        3,
        "the first try and two retries"
    );
    infrastructure_alert(&setup).await;
    stop(tree).await;
}

#[tokio::test]
async fn an_exhausted_gate_deferral_blocks_the_task_with_an_infrastructure_reason_and_an_alert() {
    let _guard = REGISTRY.lock().await;
    // NoForge defers every gate, as a git error or CI that cannot start would.
    let mut setup = Setup::new(Arc::new(NoForge), Arc::new(ScriptedRunner::default()));
    setup.limits.gate_deferrals = 3;
    setup.seed("D-1", Stage::Review, Phase::Gating).await;
    let tree = setup.start().await;

    until_phase(&setup, "D-1", Phase::Blocked).await;
    let task = setup.task("D-1").await;
    let reason = task.blocked_reason.unwrap();
    assert!(
        reason
            .starts_with("infrastructure: the review gate could not be evaluated 4 times in a row"),
        "{reason}"
    );
    assert_eq!((task.stage, task.developer_retries), (Stage::Review, 0));
    infrastructure_alert(&setup).await;
    stop(tree).await;
}

fn task_ref(s: &str) -> ActorRef<TaskMsg> {
    registry::where_is(format!("task:{s}")).unwrap().into()
}

#[tokio::test]
async fn a_task_stopped_or_crashed_mid_gate_leaves_no_evaluation_running() {
    let _guard = REGISTRY.lock().await;
    let forge = Arc::new(ScriptedForge::default().hanging_gates());
    let setup = Setup::new(forge.clone(), Arc::new(ScriptedRunner::default()));
    setup.seed("G-1", Stage::Review, Phase::Gating).await;
    let tree = setup.start().await;
    let running = || forge.gates_running.load(Ordering::SeqCst);

    eventually("the gate evaluation", || running() == 1).await;
    let old = task_ref("G-1").get_id();
    task_ref("G-1").cast(TaskMsg::Crash("test".into())).unwrap();
    eventually("a new incarnation", || {
        registry::where_is("task:G-1").is_some_and(|c| c.get_id() != old)
    })
    .await;
    // The new incarnation evaluates again; the old evaluation is gone, not running beside it.
    eventually("the new evaluation", || {
        ScriptedForge::count(&forge.gates_running) == 1
    })
    .await;
    task_ref("G-1").stop(Some("test".into()));
    eventually("no evaluation left running", || running() == 0).await;
    stop(tree).await;
}

#[tokio::test]
async fn a_restart_mid_merge_never_runs_two_merges_at_once() {
    let _guard = REGISTRY.lock().await;
    let forge = Arc::new(ScriptedForge::default().slow_merges(Duration::from_millis(400)));
    let setup = Setup::new(forge.clone(), Arc::new(ScriptedRunner::default()));
    setup.seed("M-1", Stage::Deploy, Phase::Merging).await;
    let tree = setup.start().await;

    eventually("the merge", || {
        ScriptedForge::count(&forge.merges_running) == 1
    })
    .await;
    let old = task_ref("M-1").get_id();
    task_ref("M-1").cast(TaskMsg::Crash("test".into())).unwrap();
    eventually("a new incarnation", || {
        registry::where_is("task:M-1").is_some_and(|c| c.get_id() != old)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.task("M-1").await.stage != Stage::Done {
        assert!(Instant::now() < deadline, "the merge never finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The merge queue owns the fast-forward: a restarted task asks again, and the one in
    // flight answers for it.
    assert_eq!(
        ScriptedForge::count(&forge.merges),
        1,
        "the restart fast-forwarded again"
    );
    assert_eq!(ScriptedForge::count(&forge.merges_peak), 1);
    stop(tree).await;
}

#[tokio::test]
async fn the_reaper_reports_an_orphaned_job_and_dispatch_runs_it_again() {
    let _guard = REGISTRY.lock().await;
    let runner = Arc::new(ScriptedRunner::default());
    let mut setup = Setup::new(Arc::new(ScriptedForge::default()), runner.clone());
    setup.reaper_tick = Duration::from_millis(20);
    // A job this boot claimed whose run actor never came up (it died before it could).
    setup.seed("O-1", Stage::Analysis, Phase::Working).await;
    let id = WorkItemId::parse("O-1").unwrap();
    setup
        .jobs
        .enqueue_job(NewJob {
            work_item_id: id.clone(),
            stage: Stage::Analysis,
            role: Role::Analyst,
            task_text: "analyse".into(),
        })
        .await
        .unwrap();
    let claimed = setup.jobs.claim_jobs(1, "test-boot").await.unwrap();
    assert_eq!(claimed.len(), 1);
    let tree = setup.start().await;

    // The reaper's verdict is written by dispatch, which then claims the job and runs it.
    until_phase(&setup, "O-1", Phase::AwaitingApproval).await;
    let jobs = setup.jobs.all();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].status, jobs[0].attempts),
        (JobStatus::Succeeded, 2),
        "requeued with the lost attempt counted"
    );
    assert_eq!(runner.launched(), 1);
    let reaper = registry::where_is("reaper").unwrap();
    let (_, d) =
        orchestrator_actors::actors::describe::describe_cell(&reaper, Duration::from_secs(2)).await;
    assert_eq!(d.unwrap().details["counters"]["requeued"], 1);
    stop(tree).await;
}
