//! The housekeeper against a scripted world: only a finished task's worktree goes, only a
//! run's old files that no live task or running job needs, and the journal is pruned to its
//! retention; what it cannot place is left alone and reported.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::actors::describe::Description;
use orchestrator_actors::actors::housekeeper::{
    HOUSEKEEPER, Housekeeper, HousekeeperDeps, HousekeeperMsg,
};
use orchestrator_actors::fakes::MemoryStore;
use orchestrator_actors::ports::{
    Housekeeping, NewTask, Phase, RunFiles, Store, TaskRecord, TaskUpdate,
};
use orchestrator_actors::{Stage, WorkItemId};
use ractor::Actor;
use ractor::rpc::CallResult;

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Default)]
struct World {
    removed_worktrees: Mutex<Vec<String>>,
    removed_runs: Mutex<Vec<String>>,
    pruned: Mutex<Vec<Duration>>,
}

#[async_trait]
impl Housekeeping for World {
    async fn worktrees(&self) -> Result<Vec<String>, String> {
        Ok(["ACME-1", "ACME-2", "ACME-3", "lost+found"]
            .map(String::from)
            .to_vec())
    }
    async fn remove_worktree(&self, task: &TaskRecord) -> Result<(), String> {
        self.removed_worktrees
            .lock()
            .unwrap()
            .push(task.work_item_id.to_string());
        Ok(())
    }
    async fn run_files(&self) -> Result<Vec<RunFiles>, String> {
        let run = |id: &str, age| RunFiles {
            run_id: id.into(),
            age,
        };
        Ok(vec![
            run("run-old", DAY * 31),
            run("run-old-but-live", DAY * 40),
            run("run-recent", DAY * 2),
        ])
    }
    async fn live_runs(&self) -> Result<HashSet<String>, String> {
        Ok(HashSet::from(["run-old-but-live".to_string()]))
    }
    async fn remove_run_files(&self, run_id: &str) -> Result<u32, String> {
        self.removed_runs.lock().unwrap().push(run_id.into());
        Ok(4)
    }
    async fn prune_events(&self, older_than: Duration) -> Result<u64, String> {
        self.pruned.lock().unwrap().push(older_than);
        Ok(7)
    }
}

async fn task(store: &MemoryStore, id: &str, stage: Stage) {
    let id = WorkItemId::parse(id).unwrap();
    store
        .create_task(NewTask {
            work_item_id: id.clone(),
            repo: "acme/app".into(),
            title: "t".into(),
            description: String::new(),
            labels: Vec::new(),
        })
        .await
        .unwrap();
    let record = store.load_task(&id).await.unwrap().unwrap();
    let mut update = TaskUpdate::keep(&record);
    update.to = Some((stage, "seeded".into()));
    update.phase = Phase::Idle;
    assert!(
        store
            .update_task(&id, Stage::Created, update)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_sweep_removes_only_what_no_live_task_needs() {
    let store = Arc::new(MemoryStore::new());
    task(&store, "ACME-1", Stage::Done).await;
    task(&store, "ACME-2", Stage::Development).await;
    let world = Arc::new(World::default());
    let deps = Arc::new(HousekeeperDeps {
        world: world.clone(),
        store,
        interval: Duration::from_secs(3600),
        run_retention: DAY * 30,
        event_retention: DAY * 90,
    });
    let (keeper, join) = Actor::spawn(Some(HOUSEKEEPER.into()), Housekeeper::new(deps), ())
        .await
        .unwrap();
    let mut details = serde_json::Value::Null;
    for _ in 0..500 {
        details = match keeper
            .call(HousekeeperMsg::Describe, Some(Duration::from_secs(5)))
            .await
        {
            Ok(CallResult::Success(Description { details, .. })) => details,
            other => panic!("{other:?}"),
        };
        if details["counters"]["sweeps"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(details["counters"]["sweeps"], 1, "{details}");
    assert_eq!(*world.removed_worktrees.lock().unwrap(), ["ACME-1"]);
    assert_eq!(*world.removed_runs.lock().unwrap(), ["run-old"]);
    assert_eq!(*world.pruned.lock().unwrap(), [DAY * 90]);
    let c = &details["counters"];
    assert_eq!(c["worktrees_removed"], 1, "{details}");
    assert_eq!(c["files_removed"], 4, "{details}");
    assert_eq!(c["events_removed"], 7, "{details}");
    assert_eq!(
        c["unknown_worktrees"],
        serde_json::json!(["ACME-3", "lost+found"]),
        "{details}"
    );
    keeper.stop(None);
    let _ = join.await;
}
