//! The actor tree against the in-memory store: recovery at startup, supervised restart with
//! state reloaded, the restart-storm limit, failing starts, and introspection that a stuck
//! actor cannot hang. ractor's name registry is process-global, so these tests take a lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_actors::actors::describe::{self, ActorNode, WalkOptions};
use orchestrator_actors::actors::dispatch::DispatchDeps;
use orchestrator_actors::actors::merge_queue::MergeQueueDeps;
use orchestrator_actors::actors::reaper::ReaperDeps;
use orchestrator_actors::actors::supervisor::SupervisorMsg;
use orchestrator_actors::actors::task::TaskCreator;
use orchestrator_actors::actors::task::TaskDeps;
use orchestrator_actors::actors::task::TaskMsg;
use orchestrator_actors::actors::tracker::{TrackerDeps, TrackerMode};
use orchestrator_actors::actors::tree::{self, Tree, TreeConfig, TreeError};
use orchestrator_actors::domain::creation::{CreateError, Origin, TaskRequest};
use orchestrator_actors::domain::gates::CiOutcome;
use orchestrator_actors::domain::gates::GateOutcome;
use orchestrator_actors::domain::projects::{Project, Projects};
use orchestrator_actors::domain::resilience::RetryPolicy;
use orchestrator_actors::domain::restart::RestartPolicy;
use orchestrator_actors::fakes::MemoryMergeQueue;
use orchestrator_actors::fakes::{
    MemoryCards, MemoryJobs, MemoryStore, NoChat, NoForge, NoProcesses, NoRunner,
};
use orchestrator_actors::ports::JobStore;
use orchestrator_actors::ports::TrackerLink;
use orchestrator_actors::ports::merge_queue::{CandidateBuild, FastForward};
use orchestrator_actors::ports::workbench::Workplace;
use orchestrator_actors::ports::workbench::{Forge, ProcessControl, PublishError};
use orchestrator_actors::ports::{NewJob, Phase};
use orchestrator_actors::ports::{
    NewTask, NewTaskFields, Store, StoreError, TaskRecord, TaskUpdate, Transition,
};
use orchestrator_actors::{GateKind, Role};
use orchestrator_actors::{Stage, WorkItemId};
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, registry};
use tokio::sync::Mutex;

mod phases;

static REGISTRY: Mutex<()> = Mutex::const_new(());

fn id(s: &str) -> WorkItemId {
    WorkItemId::parse(s).unwrap()
}

async fn add(store: &dyn Store, s: &str, stage: Stage) {
    store
        .create_task(NewTask {
            work_item_id: id(s),
            repo: "acme/app".into(),
            title: format!("title of {s}"),
            description: "d".into(),
            labels: Vec::new(),
        })
        .await
        .unwrap();
    if stage != Stage::Created {
        assert!(
            store
                .record_transition(&id(s), Stage::Created, stage, "seed")
                .await
                .unwrap()
        );
    }
}

fn config(store: Arc<dyn Store>, policy: RestartPolicy) -> TreeConfig {
    config_with(
        store,
        policy,
        Arc::new(MemoryJobs::new()),
        Arc::new(NoForge),
    )
}

fn config_with(
    store: Arc<dyn Store>,
    policy: RestartPolicy,
    jobs: Arc<dyn JobStore>,
    forge: Arc<dyn Forge>,
) -> TreeConfig {
    let processes: Arc<dyn ProcessControl> = Arc::new(NoProcesses);
    let reaper_jobs = jobs.clone();
    let tracker = Arc::new(TrackerDeps {
        store: store.clone(),
        jobs: jobs.clone(),
        notifier: Arc::new(NoChat),
        cards: Arc::new(MemoryCards::new()),
        mode: TrackerMode::Edit,
        max_retry_wait: Duration::from_secs(1),
    });
    TreeConfig {
        merge_queue: Arc::new(MergeQueueDeps {
            store: Arc::new(MemoryMergeQueue::default()),
            tasks: store.clone(),
            forge: forge.clone(),
            retry_delay: Duration::from_secs(60),
            infra_retries: 0,
            main_recheck: Duration::from_secs(60),
            batch_max: 4,
        }),
        tasks: Arc::new(TaskDeps {
            store: store.clone(),
            jobs: jobs.clone(),
            forge: forge.clone(),
            projects: Arc::new(Projects::default()),
            board: Arc::new(orchestrator_actors::ports::LocalBoard),
            retry_delay: Duration::from_secs(60),
            limits: Default::default(),
        }),
        dispatch: Arc::new(DispatchDeps {
            store,
            jobs,
            forge,
            runner: Arc::new(NoRunner),
            max_concurrency: 0,
            boot_id: "test-boot".into(),
            tick: Duration::from_secs(60),
            processes: processes.clone(),
            retry: RetryPolicy::default(),
            max_attempts: 3,
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(60),
            infra_retries: 0,
            infra_retry_delay: Duration::from_secs(60),
        }),
        reaper: Arc::new(ReaperDeps {
            jobs: reaper_jobs,
            processes,
            boot_id: "test-boot".into(),
            tick: Duration::from_secs(60),
            grace_ticks: 3,
            backstop: Duration::from_secs(3600),
            max_attempts: 3,
        }),
        tracker,
        reconciler: None,
        disk: None,
        housekeeper: None,
        policy,
        shutdown_timeout: Duration::from_secs(5),
        launch_concurrency: 8,
        ready_timeout: Duration::from_secs(10),
    }
}

fn fast_policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts,
        window: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
    }
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn task_ref(s: &str) -> Option<ActorRef<TaskMsg>> {
    registry::where_is(format!("task:{s}")).map(ActorRef::from)
}

async fn describe_task(s: &str) -> serde_json::Value {
    let actor = task_ref(s).expect("task actor registered");
    match actor
        .call(TaskMsg::Describe, Some(Duration::from_secs(2)))
        .await
        .unwrap()
    {
        CallResult::Success(d) => d.details,
        other => panic!("describe failed: {other:?}"),
    }
}

async fn walk(timeout: Duration) -> ActorNode {
    let root = registry::where_is("root").expect("root registered");
    describe::walk(
        root,
        WalkOptions {
            timeout,
            max_depth: None,
        },
    )
    .await
}

fn child<'a>(node: &'a ActorNode, name: &str) -> &'a ActorNode {
    node.children
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{} has no child {name}", node.name))
}

async fn crash_and_wait_for_restart(s: &str) -> ActorCell {
    let old = registry::where_is(format!("task:{s}")).unwrap();
    task_ref(s)
        .unwrap()
        .cast(TaskMsg::Crash("test".into()))
        .unwrap();
    let name = format!("task:{s}");
    eventually("a new incarnation", || {
        registry::where_is(name.clone()).is_some_and(|c| c.get_id() != old.get_id())
    })
    .await;
    registry::where_is(name).unwrap()
}

async fn stop(tree: Tree) {
    tree.shutdown(Duration::from_secs(10)).await;
    // The next test must find every name free again.
    eventually("registry cleared", || registry::where_is("root").is_none()).await;
}

#[tokio::test]
async fn startup_recovers_every_non_terminal_task_and_nothing_else() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    add(&*store, "A-1", Stage::Created).await;
    add(&*store, "A-2", Stage::Review).await;
    add(&*store, "A-3", Stage::Done).await;
    add(&*store, "A-4", Stage::Cancelled).await;
    let tree = tree::start(config(store.clone(), RestartPolicy::default()))
        .await
        .unwrap();

    let root = walk(Duration::from_secs(1)).await;
    assert_eq!((root.name.as_str(), root.kind), ("root", "supervisor"));
    let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["singletons", "tasks"]);
    let tracker = child(child(&root, "singletons"), "tracker");
    assert_eq!(tracker.kind, "tracker");
    assert_eq!(tracker.details.as_ref().unwrap()["pending"], 0);
    let tasks = child(&root, "tasks");
    let names: Vec<_> = tasks.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["task:A-1", "task:A-2"]);
    let a2 = child(tasks, "task:A-2");
    assert_eq!(a2.kind, "task");
    assert_eq!(a2.status, "running");
    assert_eq!(a2.details.as_ref().unwrap()["stage"], "review");
    stop(tree).await;
    assert!(task_ref("A-1").is_none());
}

#[tokio::test]
async fn a_crashed_task_actor_is_restarted_with_its_state_reloaded() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    add(&*store, "B-1", Stage::Development).await;
    add(&*store, "B-2", Stage::Testing).await;
    let tree = tree::start(config(store.clone(), fast_policy(3)))
        .await
        .unwrap();
    let before = describe_task("B-1").await;

    crash_and_wait_for_restart("B-1").await;

    // Messages sent by name now reach the new incarnation, which reloaded its stage.
    let after = describe_task("B-1").await;
    assert_eq!(after["stage"], "development");
    assert_eq!(after["title"], before["title"]);
    assert_ne!(after["loaded_at"], before["loaded_at"]);
    let root = walk(Duration::from_secs(1)).await;
    let tasks = child(&root, "tasks");
    assert_eq!(child(tasks, "task:B-1").restarts, 1);
    assert_eq!(child(tasks, "task:B-2").restarts, 0);
    assert_eq!(child(&root, "tasks").restarts, 0);
    stop(tree).await;
}

#[tokio::test]
async fn a_child_that_keeps_failing_is_left_stopped_and_reported() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    add(&*store, "C-1", Stage::Analysis).await;
    add(&*store, "C-2", Stage::Analysis).await;
    let tree = tree::start(config(store.clone(), fast_policy(2)))
        .await
        .unwrap();

    crash_and_wait_for_restart("C-1").await;
    crash_and_wait_for_restart("C-1").await;
    // The third failure within the window exceeds max_restarts = 2.
    task_ref("C-1")
        .unwrap()
        .cast(TaskMsg::Crash("again".into()))
        .unwrap();
    eventually("C-1 gone", || task_ref("C-1").is_none()).await;
    // Once its supervisor has recorded giving up, no restart can be pending any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let root = loop {
        let root = walk(Duration::from_secs(1)).await;
        let tasks = child(&root, "tasks");
        if tasks.details.as_ref().unwrap()["gave_up"][0]["name"] == "task:C-1" {
            break root;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor never gave up on C-1"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        task_ref("C-1").is_none(),
        "a given-up child must stay stopped"
    );
    let tasks = child(&root, "tasks");
    let gave_up = &tasks.details.as_ref().unwrap()["gave_up"];
    assert_eq!(gave_up[0]["name"], "task:C-1");
    assert_eq!(gave_up[0]["failures"], 3);
    assert!(gave_up[0]["last_error"].as_str().unwrap().contains("again"));
    // Its sibling is untouched.
    assert_eq!(child(tasks, "task:C-2").status, "running");
    stop(tree).await;
}

/// Delegates to a [`MemoryStore`] but fails chosen operations.
struct FlakyStore {
    inner: MemoryStore,
    fail_load_of: Option<WorkItemId>,
    fail_listing: bool,
}

#[async_trait]
impl Store for FlakyStore {
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord, StoreError> {
        self.inner.create_task(task).await
    }
    async fn restart_task(
        &self,
        old: &WorkItemId,
        task: NewTask,
    ) -> Result<TaskRecord, StoreError> {
        self.inner.restart_task(old, task).await
    }
    async fn load_task(&self, id: &WorkItemId) -> Result<Option<TaskRecord>, StoreError> {
        if self.fail_load_of.as_ref() == Some(id) {
            return Err(StoreError::Backend("disk on fire".into()));
        }
        self.inner.load_task(id).await
    }
    async fn active_task_ids(&self) -> Result<Vec<WorkItemId>, StoreError> {
        if self.fail_listing {
            return Err(StoreError::Backend("database is locked".into()));
        }
        self.inner.active_task_ids().await
    }
    async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.inner.list_tasks().await
    }
    async fn transitions(&self, id: &WorkItemId) -> Result<Vec<Transition>, StoreError> {
        self.inner.transitions(id).await
    }
    async fn record_transition(
        &self,
        id: &WorkItemId,
        from: Stage,
        to: Stage,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.inner.record_transition(id, from, to, reason).await
    }
    async fn update_task(
        &self,
        id: &WorkItemId,
        expected: Stage,
        update: TaskUpdate,
    ) -> Result<bool, StoreError> {
        self.inner.update_task(id, expected, update).await
    }
    async fn create_numbered_task(
        &self,
        prefix: &str,
        task: NewTaskFields,
    ) -> Result<TaskRecord, StoreError> {
        self.inner.create_numbered_task(prefix, task).await
    }
}

#[tokio::test]
async fn a_task_that_cannot_load_is_retried_with_backoff_then_given_up() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        fail_load_of: Some(id("D-1")),
        fail_listing: false,
    });
    add(&*store, "D-1", Stage::Created).await;
    add(&*store, "D-2", Stage::Created).await;
    let tree = tree::start(config(store.clone(), fast_policy(2)))
        .await
        .unwrap();
    assert!(task_ref("D-2").is_some());

    let tasks: ActorRef<SupervisorMsg> = registry::where_is("tasks").unwrap().into();
    let mut gave_up = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gave_up.as_array().is_none_or(|a| a.is_empty()) {
        assert!(Instant::now() < deadline, "D-1 was never given up on");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let d = tasks
            .call(SupervisorMsg::Describe, None)
            .await
            .unwrap()
            .unwrap();
        gave_up = d.details["gave_up"].clone();
    }
    assert_eq!(gave_up[0]["name"], "task:D-1");
    assert!(
        gave_up[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("disk on fire")
    );
    assert!(task_ref("D-1").is_none());
    stop(tree).await;
}

#[tokio::test]
async fn startup_fails_with_a_reason_when_tasks_cannot_be_listed() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        fail_load_of: None,
        fail_listing: true,
    });
    let err = match tree::start(config(store, fast_policy(1))).await {
        Err(e) => e,
        Ok(_) => panic!("the tree must not start without its tasks"),
    };
    assert!(
        matches!(&err, TreeError::NotReady { name, .. } if name == "tasks"),
        "{err}"
    );
    eventually("registry cleared", || registry::where_is("root").is_none()).await;
}

#[tokio::test]
async fn one_stuck_actor_cannot_hang_introspection() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    add(&*store, "E-1", Stage::Created).await;
    add(&*store, "E-2", Stage::Created).await;
    let tree = tree::start(config(store.clone(), RestartPolicy::default()))
        .await
        .unwrap();
    task_ref("E-1")
        .unwrap()
        .cast(TaskMsg::Stall(Duration::from_secs(30)))
        .unwrap();

    let root = tokio::time::timeout(Duration::from_secs(5), walk(Duration::from_millis(200)))
        .await
        .expect("the walk must finish despite the stuck actor");
    let tasks = child(&root, "tasks");
    let stuck = child(tasks, "task:E-1");
    assert!(stuck.details.is_none());
    assert!(
        stuck
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 200 ms")
    );
    assert_eq!(
        child(tasks, "task:E-2").details.as_ref().unwrap()["stage"],
        "analysis"
    );
    // Stop kills the stalled handler rather than waiting 30 s for it.
    tree.root.kill();
    let _ = tree.join.await;
    eventually("registry cleared", || registry::where_is("root").is_none()).await;
}

#[tokio::test]
async fn depth_limit_cuts_children_but_keeps_their_count() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    for i in 0..3 {
        add(&*store, &format!("F-{i}"), Stage::Created).await;
    }
    let tree = tree::start(config(store.clone(), RestartPolicy::default()))
        .await
        .unwrap();
    let root = registry::where_is("root").unwrap();
    let shallow = describe::walk(
        root,
        WalkOptions {
            timeout: Duration::from_secs(1),
            max_depth: Some(1),
        },
    )
    .await;
    let tasks = child(&shallow, "tasks");
    assert_eq!(tasks.child_count, 3);
    assert!(tasks.children.is_empty());
    stop(tree).await;
}

#[tokio::test]
async fn every_task_is_created_through_one_rule_and_gets_its_actor() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    let config = config(store.clone(), RestartPolicy::default());
    let deps = config.tasks.clone();
    let tree = tree::start(config).await.unwrap();
    let project = |repo: &str, prefix: &str, plane: Option<&str>| Project {
        repo: repo.into(),
        origin: "o".into(),
        prefix: prefix.into(),
        test_cmd: "t".into(),
        staging: false,
        confirm_deploy: false,
        deploy: true,
        plane_project_id: plane.map(str::to_string),
        gitea_repo: None,
        plane_states: Default::default(),
        append_only: Project::default_append_only(),
    };
    let projects = Projects::new(vec![
        project("acme/app", "ACME", None),
        project("acme/web", "WEB", Some("p-1")),
    ])
    .unwrap();
    let creator = TaskCreator {
        tasks: Arc::new(TaskDeps {
            store: deps.store.clone(),
            jobs: deps.jobs.clone(),
            forge: deps.forge.clone(),
            projects: Arc::new(projects),
            board: deps.board.clone(),
            retry_delay: deps.retry_delay,
            limits: deps.limits,
        }),
        links: store.clone(),
    };
    let request = |repo: &str, title: &str, origin: Origin| TaskRequest {
        repo: repo.into(),
        title: title.into(),
        description: "Why.".into(),
        labels: Vec::new(),
        origin,
    };
    let local = creator
        .create(request("acme/app", " Add login ", Origin::Local))
        .await
        .unwrap();
    assert_eq!(local.work_item_id.as_str(), "ACME-001");
    assert_eq!(local.title, "Add login");
    let issue = Origin::Issue {
        link: TrackerLink {
            tracker: "plane".into(),
            project_ref: "p-1".into(),
            issue_ref: "issue-7".into(),
        },
        number: 7,
    };
    let linked = creator
        .create(request("acme/web", "Fix the crash", issue.clone()))
        .await
        .unwrap();
    assert_eq!(linked.work_item_id.as_str(), "WEB-7");
    for id in ["ACME-001", "WEB-7"] {
        eventually("the new task's actor", || task_ref(id).is_some()).await;
    }
    // The same issue again: its id is taken.
    let again = creator
        .create(request("acme/web", "Fix the crash", issue))
        .await
        .unwrap_err();
    assert!(matches!(again, CreateError::Taken { .. }), "{again}");
    // Refused by the rule: nothing is written.
    for bad in [
        request("acme/app", " ", Origin::Local),
        request("acme/web", "Plane's project", Origin::Local),
        request("acme/nope", "Nobody's", Origin::Local),
    ] {
        creator.create(bad).await.unwrap_err();
    }
    assert_eq!(store.list_tasks().await.unwrap().len(), 2);
    stop(tree).await;
}
