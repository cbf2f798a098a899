//! A recovered task does what its phase needs and nothing more: a gate evaluated again, a
//! merge resumed, a job woken — and nothing for a task waiting on a human.

use super::*;

/// A forge that notes every gate evaluated and every candidate started (a recovered merge
/// without a queue entry rejoins the queue: its candidate is built and tested again first);
/// gates defer, candidates never finish.
#[derive(Default)]
struct RecordingForge {
    /// Tasks whose gate was evaluated, in order.
    gates: std::sync::Mutex<Vec<WorkItemId>>,
    /// Tasks whose merge was started, in order.
    merges: std::sync::Mutex<Vec<WorkItemId>>,
}

#[async_trait]
impl Forge for RecordingForge {
    async fn prepare(&self, _task: &TaskRecord) -> Result<Workplace, String> {
        Err("no worktrees in this test".into())
    }
    async fn publish(&self, _task: &TaskRecord, _role: Role) -> Result<(), PublishError> {
        Ok(())
    }
    async fn evaluate_gate(&self, task: &TaskRecord, _gate: GateKind) -> GateOutcome {
        self.gates.lock().unwrap().push(task.work_item_id.clone());
        GateOutcome::Defer {
            reason: "recorded".into(),
        }
    }
    async fn build_candidate(
        &self,
        task: &TaskRecord,
        _onto: Option<&str>,
    ) -> Result<CandidateBuild, String> {
        self.merges.lock().unwrap().push(task.work_item_id.clone());
        std::future::pending().await
    }
    async fn publish_candidate(&self, _task: &TaskRecord, _candidate: &str) -> Result<(), String> {
        Ok(())
    }
    async fn test_commit(&self, _repo: &str, _sha: &str) -> CiOutcome {
        std::future::pending().await
    }
    async fn main_head(&self, _repo: &str) -> Result<String, String> {
        Err("recorded".into())
    }
    async fn fast_forward_main(
        &self,
        _task: &TaskRecord,
        _candidate: &str,
    ) -> Result<FastForward, String> {
        std::future::pending().await
    }
    async fn delete_branch(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn merge_main_into_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn remove_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn is_on_main(&self, _task: &TaskRecord, _sha: &str) -> Result<bool, String> {
        Err("recorded".into())
    }
}

/// Seeds task `s` at `stage` in `phase`, paused or not.
async fn add_in(store: &dyn Store, s: &str, stage: Stage, phase: Phase, paused: bool) {
    add(store, s, stage).await;
    let task = store.load_task(&id(s)).await.unwrap().unwrap();
    let mut update = TaskUpdate::keep(&task);
    update.phase = phase;
    update.paused = paused;
    update.stage_attempts = 1;
    update.branch = Some(format!("feature/{s}"));
    assert!(store.update_task(&id(s), stage, update).await.unwrap());
}

#[tokio::test]
async fn a_recovered_task_does_what_its_phase_needs_and_nothing_more() {
    let _guard = REGISTRY.lock().await;
    let store = Arc::new(MemoryStore::new());
    let jobs = Arc::new(MemoryJobs::new());
    let forge = Arc::new(RecordingForge::default());
    add_in(&*store, "R-1", Stage::Development, Phase::Working, false).await; // its job lost
    add_in(&*store, "R-2", Stage::Review, Phase::Gating, false).await;
    add_in(&*store, "R-3", Stage::Deploy, Phase::Merging, false).await;
    add_in(
        &*store,
        "R-4",
        Stage::Analysis,
        Phase::AwaitingApproval,
        false,
    )
    .await;
    add_in(
        &*store,
        "R-5",
        Stage::Deploy,
        Phase::AwaitingDeployConfirm,
        false,
    )
    .await;
    add_in(&*store, "R-6", Stage::Development, Phase::Blocked, false).await;
    add_in(&*store, "R-7", Stage::Testing, Phase::Working, true).await;
    jobs.enqueue_job(NewJob {
        work_item_id: id("R-7"),
        stage: Stage::Testing,
        role: Role::Tester,
        task_text: "test it".into(),
    })
    .await
    .unwrap();
    let before = store.list_tasks().await.unwrap();

    let tree = tree::start(config_with(
        store.clone(),
        RestartPolicy::default(),
        jobs.clone(),
        forge.clone(),
    ))
    .await
    .unwrap();

    // What must happen: the lost job is queued again, the gate re-evaluated, the merge
    // started again.
    eventually("R-1's job queued again", || {
        jobs.all().iter().any(|j| j.work_item_id == id("R-1"))
    })
    .await;
    eventually("R-2's gate evaluated", || {
        !forge.gates.lock().unwrap().is_empty()
    })
    .await;
    eventually("R-3's candidate started", || {
        !forge.merges.lock().unwrap().is_empty()
    })
    .await;
    // A task actor handles a message only once its start is over.
    for s in ["R-1", "R-2", "R-3", "R-4", "R-5", "R-6", "R-7"] {
        describe_task(s).await;
    }

    // And nothing more: no other gate, merge or job, no task saved again, no card
    // re-rendered (every saved decision would have asked the tracker for one).
    assert_eq!(*forge.gates.lock().unwrap(), [id("R-2")]);
    assert_eq!(*forge.merges.lock().unwrap(), [id("R-3")]);
    let queued: Vec<_> = jobs
        .all()
        .iter()
        .map(|j| (j.work_item_id.to_string(), j.stage))
        .collect();
    assert_eq!(
        queued,
        [
            ("R-7".to_string(), Stage::Testing),
            ("R-1".to_string(), Stage::Development)
        ]
    );
    assert_eq!(store.list_tasks().await.unwrap(), before);
    let tracker = child(
        child(&walk(Duration::from_secs(1)).await, "singletons"),
        "tracker",
    )
    .details
    .clone()
    .unwrap();
    assert_eq!(tracker["pending"], 0, "{tracker}");
    let counters = tracker["counters"].as_object().unwrap();
    assert!(counters.values().all(|n| n == 0), "{tracker}");
    stop(tree).await;
}
