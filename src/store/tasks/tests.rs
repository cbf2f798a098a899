//! Tests of the task SQL through the `Store` trait, against a real database file.

use orchestrator_actors::ports::Store;

use super::*;
use crate::store::test_support::{new_task, temp_store, work_item};

#[tokio::test]
async fn create_then_load_list_and_journal_round_trip() {
    let (_dir, store) = temp_store().await;
    let created = store.create_task(new_task("T-1")).await.unwrap();
    assert_eq!(created.work_item_id, work_item("T-1"));
    assert_eq!(created.repo, "acme/app");
    assert_eq!(created.title, "title T-1");
    assert_eq!(created.description, "description of T-1");
    assert_eq!(created.stage, Stage::Created);
    assert!(!created.paused);
    assert_eq!(created.created_at, created.updated_at);
    // RFC 3339 UTC with milliseconds, like MemoryStore's.
    let shape: String = created
        .created_at
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    assert_eq!(shape, "0000-00-00T00:00:00.000Z", "{}", created.created_at);

    assert_eq!(
        store.load_task(&work_item("T-1")).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.load_task(&work_item("T-404")).await.unwrap(), None);
    assert_eq!(store.list_tasks().await.unwrap(), vec![created.clone()]);
    assert_eq!(
        store.transitions(&work_item("T-1")).await.unwrap(),
        vec![Transition {
            from: None,
            to: Stage::Created,
            reason: "task created".into(),
            at: created.created_at.clone(),
        }]
    );
    assert_eq!(
        store.transitions(&work_item("T-404")).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn transition_is_compare_and_set() {
    let (_dir, store) = temp_store().await;
    let id = store
        .create_task(new_task("T-1"))
        .await
        .unwrap()
        .work_item_id;
    assert!(
        store
            .record_transition(&id, Stage::Created, Stage::Analysis, "start")
            .await
            .unwrap()
    );
    // A replay of the same decision (a stale `from`) changes nothing.
    assert!(
        !store
            .record_transition(&id, Stage::Created, Stage::Analysis, "start")
            .await
            .unwrap()
    );
    let task = store.load_task(&id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::Analysis);
    assert!(task.updated_at >= task.created_at);

    let journal = store.transitions(&id).await.unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[1].from, Some(Stage::Created));
    assert_eq!(journal[1].to, Stage::Analysis);
    assert_eq!(journal[1].reason, "start");
    assert_eq!(journal[1].at, task.updated_at);
}

#[tokio::test]
async fn unknown_tasks_and_duplicates_are_refused() {
    let (_dir, store) = temp_store().await;
    let err = store
        .record_transition(&work_item("T-404"), Stage::Created, Stage::Analysis, "x")
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::NotFound("task T-404".into()));

    store.create_task(new_task("T-1")).await.unwrap();
    let mut again = new_task("T-1");
    again.title = "other".into();
    let err = store.create_task(again).await.unwrap_err();
    assert_eq!(err, StoreError::Duplicate("task T-1".into()));
    // The refused create left neither a second row nor a second journal entry.
    assert_eq!(store.list_tasks().await.unwrap()[0].title, "title T-1");
    assert_eq!(store.transitions(&work_item("T-1")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn active_and_list_follow_creation_order_and_skip_terminal() {
    let (_dir, store) = temp_store().await;
    // Ids that sort differently from their creation order.
    for id in ["b-2", "a-1", "c-3", "0-4"] {
        store.create_task(new_task(id)).await.unwrap();
    }
    store
        .record_transition(
            &work_item("a-1"),
            Stage::Created,
            Stage::Cancelled,
            "dropped",
        )
        .await
        .unwrap();
    store
        .record_transition(&work_item("0-4"), Stage::Created, Stage::Done, "done")
        .await
        .unwrap();
    let listed: Vec<_> = store
        .list_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.work_item_id.to_string())
        .collect();
    assert_eq!(listed, ["b-2", "a-1", "c-3", "0-4"]);
    assert_eq!(
        store.active_task_ids().await.unwrap(),
        vec![work_item("b-2"), work_item("c-3")]
    );
}

#[test]
fn the_sql_terminal_stages_match_stage_is_terminal() {
    let terminal: Vec<_> = Stage::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let clause = format!("stage NOT IN ({})", terminal.join(", "));
    let source = include_str!("../tasks.rs");
    assert!(
        source.contains(&clause),
        "active_task_ids must filter on {clause}"
    );
    let schema = include_str!("../migrations/0001_initial.sql");
    assert!(
        schema.contains(&clause),
        "the tasks_active index must match {clause}"
    );
}

#[tokio::test]
async fn rows_this_build_cannot_read_are_corrupt() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    store
        .write(|conn| {
            // The schema's CHECK would refuse this; a future build's stage would not.
            conn.execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 UPDATE tasks SET stage = 'limbo' WHERE work_item_id = 'T-1';
                 PRAGMA ignore_check_constraints = OFF;",
            )
            .map_err(backend("test"))
        })
        .await
        .unwrap();
    let expected = StoreError::Corrupt("task T-1 has unknown stage \"limbo\"".into());
    assert_eq!(
        store.load_task(&work_item("T-1")).await,
        Err(expected.clone())
    );
    assert_eq!(store.list_tasks().await, Err(expected.clone()));
    assert_eq!(store.active_task_ids().await, Err(expected));

    store
        .write(|conn| {
            conn.execute_batch(
                "UPDATE tasks SET stage = 'created' WHERE work_item_id = 'T-1';
                 INSERT INTO tasks (work_item_id, repo, title) VALUES ('a/b', 'r', 't');
                 INSERT INTO transitions (task_id, from_stage, to_stage, reason)
                 SELECT id, 'created', 'nowhere', 'x' FROM tasks WHERE work_item_id = 'T-1';",
            )
            .map_err(backend("test"))
        })
        .await
        .unwrap();
    let err = store.list_tasks().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m)
            if m.starts_with("task row 2 has an invalid work item id \"a/b\"")),
        "{err:?}"
    );
    let err = store.transitions(&work_item("T-1")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m)
            if m == "task T-1 has unknown stage \"nowhere\" in transition 2"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tasks_own_spend_cap_and_its_budget_wait_are_saved_and_loaded() {
    let (_dir, store) = temp_store().await;
    let task = store.create_task(new_task("T-1")).await.unwrap();
    assert_eq!(task.budget_nano_usd, None);
    let mut update = TaskUpdate::keep(&task);
    update.phase = orchestrator_actors::ports::Phase::AwaitingBudget;
    update.blocked_reason = Some("budget: spent $2.00 of the $2.00 cap".into());
    update.budget_nano_usd = Some(2_000_000_000);
    assert!(
        store
            .update_task(&task.work_item_id, Stage::Created, update.clone())
            .await
            .unwrap()
    );
    let loaded = store.load_task(&task.work_item_id).await.unwrap().unwrap();
    assert_eq!(
        loaded.phase,
        orchestrator_actors::ports::Phase::AwaitingBudget
    );
    assert_eq!(loaded.budget_nano_usd, Some(2_000_000_000));
    assert_eq!(loaded.blocked_reason, update.blocked_reason);
    update.budget_nano_usd = None;
    assert!(
        store
            .update_task(&task.work_item_id, Stage::Created, update)
            .await
            .unwrap()
    );
    let cleared = store.load_task(&task.work_item_id).await.unwrap().unwrap();
    assert_eq!(cleared.budget_nano_usd, None);
}
