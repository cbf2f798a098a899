//! The job queue and run journal against a real SQLite file.
use orchestrator_actors::ports::{JobStore, NewTaskFields, Phase, Store, TaskUpdate};

use super::*;
use crate::store::test_support::*;

fn job(id: &str, role: &str) -> NewJob {
    NewJob {
        work_item_id: work_item(id),
        stage: Stage::Analysis,
        role: role.into(),
        task_text: format!("do {role} work on {id}"),
    }
}

#[tokio::test]
async fn claims_are_fifo_bounded_and_skip_paused_tasks() {
    let (_dir, store) = temp_store().await;
    for id in ["T-1", "T-2", "T-3"] {
        store.create_task(new_task(id)).await.unwrap();
        store.enqueue_job(job(id, "analyst")).await.unwrap();
    }
    // Pause T-1: its job waits, the others go first.
    let t1 = store.load_task(&work_item("T-1")).await.unwrap().unwrap();
    let mut pause = TaskUpdate::keep(&t1);
    pause.paused = true;
    assert!(
        store
            .update_task(&t1.work_item_id, t1.stage, pause)
            .await
            .unwrap()
    );

    let first = store.claim_jobs(1, "boot-a").await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].work_item_id.as_str(), "T-2");
    assert_eq!(first[0].status, JobStatus::Running);
    assert_eq!(first[0].attempts, 1);
    assert!(first[0].run_id.as_deref().unwrap().contains("boot-a"));
    // The limit counts running jobs.
    assert!(store.claim_jobs(1, "boot-a").await.unwrap().is_empty());
    let next = store.claim_jobs(5, "boot-a").await.unwrap();
    assert_eq!(
        next.iter()
            .map(|j| j.work_item_id.as_str())
            .collect::<Vec<_>>(),
        ["T-3"]
    );
}

#[tokio::test]
async fn a_task_has_at_most_one_active_job() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let err = store.enqueue_job(job("T-1", "analyst")).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::Duplicate("an active job for task T-1".into())
    );
    assert_eq!(
        store.cancel_queued_jobs(&work_item("T-1")).await.unwrap(),
        1
    );
    assert!(store.active_job(&work_item("T-1")).await.unwrap().is_none());
    store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let unknown = store
        .enqueue_job(job("NOPE-1", "analyst"))
        .await
        .unwrap_err();
    assert_eq!(unknown, StoreError::NotFound("task NOPE-1".into()));
}

#[tokio::test]
async fn jobs_of_a_previous_boot_are_requeued_without_a_trace_of_their_run() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    let id = store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let claimed = store.claim_jobs(1, "old-boot").await.unwrap().remove(0);
    store.set_job_pid(id, 4242).await.unwrap();
    let run_id = claimed.run_id.clone().unwrap();
    store
        .start_run(NewRun {
            run_id: run_id.clone(),
            job_id: id,
            work_item_id: work_item("T-1"),
            stage: Stage::Analysis,
            role: "analyst".into(),
            model: None,
            log_path: "runs/x.log".into(),
        })
        .await
        .unwrap();
    // The current boot's own running jobs are left alone.
    assert_eq!(store.requeue_stale_jobs("old-boot").await.unwrap(), 0);
    assert_eq!(store.requeue_stale_jobs("new-boot").await.unwrap(), 1);
    let requeued = store.active_job(&work_item("T-1")).await.unwrap().unwrap();
    assert_eq!(
        (requeued.status, requeued.run_id.clone()),
        (JobStatus::Queued, None)
    );
    let traces: (Option<i64>, Option<String>, Option<String>) = store
        .read(move |conn| {
            conn.query_row(
                "SELECT pid, boot_id, started_at FROM jobs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(backend("read"))
        })
        .await
        .unwrap();
    assert_eq!(traces, (None, None, None));
    let runs = store.runs(&work_item("T-1")).await.unwrap();
    assert_eq!(runs[0].status, "abandoned");
    // Claimed again, it is attempt 2 under a new run id.
    let again = store.claim_jobs(1, "new-boot").await.unwrap().remove(0);
    assert_eq!(again.attempts, 2);
    assert_ne!(again.run_id.unwrap(), run_id);
}

#[tokio::test]
async fn runs_record_usage_and_cost() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    let id = store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let claimed = store.claim_jobs(1, "b").await.unwrap().remove(0);
    let run_id = claimed.run_id.unwrap();
    store
        .start_run(NewRun {
            run_id: run_id.clone(),
            job_id: id,
            work_item_id: work_item("T-1"),
            stage: Stage::Analysis,
            role: "analyst".into(),
            model: Some("claude-sonnet-4-5".into()),
            log_path: "runs/r.log".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        store.runs(&work_item("T-1")).await.unwrap()[0].status,
        "running"
    );
    store
        .finish_run(
            &run_id,
            RunFinish {
                exit_code: Some(0),
                outcome: "succeeded".into(),
                input_tokens: 11,
                output_tokens: 5,
                cache_read_tokens: 3,
                cost_usd: 0.000108,
                ..RunFinish::default()
            },
        )
        .await
        .unwrap();
    store
        .finish_job(id, JobStatus::Succeeded, None)
        .await
        .unwrap();
    let run = &store.runs(&work_item("T-1")).await.unwrap()[0];
    assert_eq!(
        (
            run.status.as_str(),
            run.exit_code,
            run.input_tokens,
            run.output_tokens
        ),
        ("succeeded", Some(0), 11, 5)
    );
    assert_eq!(run.model.as_deref(), Some("claude-sonnet-4-5"));
    assert!((run.cost_usd - 0.000108).abs() < 1e-12);
    assert!(run.finished_at.is_some());
    assert_eq!(
        store
            .last_job(&work_item("T-1"))
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Succeeded
    );
    assert!(
        store
            .finish_run("nope", RunFinish::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn update_task_is_atomic_compare_and_set_and_numbering_never_reuses() {
    let (_dir, store) = temp_store().await;
    let fields = |title: &str| NewTaskFields {
        repo: "acme/app".into(),
        title: title.into(),
        description: String::new(),
        labels: vec!["Bug".into()],
    };
    let a = store
        .create_numbered_task("ACME", fields("a"))
        .await
        .unwrap();
    let b = store
        .create_numbered_task("ACME", fields("b"))
        .await
        .unwrap();
    let c = store
        .create_numbered_task("OTHER", fields("c"))
        .await
        .unwrap();
    assert_eq!(
        [
            a.work_item_id.as_str(),
            b.work_item_id.as_str(),
            c.work_item_id.as_str()
        ],
        ["ACME-001", "ACME-002", "OTHER-001"]
    );
    assert_eq!(a.labels, ["Bug"]);

    let mut update = TaskUpdate::keep(&a);
    update.to = Some((Stage::Analysis, "start".into()));
    update.phase = Phase::Working;
    update.note = Some("read the BRD".into());
    assert!(
        store
            .update_task(&a.work_item_id, Stage::Created, update.clone())
            .await
            .unwrap()
    );
    // A stale expectation changes nothing.
    assert!(
        !store
            .update_task(&a.work_item_id, Stage::Created, update)
            .await
            .unwrap()
    );
    let saved = store.load_task(&a.work_item_id).await.unwrap().unwrap();
    assert_eq!(
        (saved.stage, saved.phase, saved.note.as_deref()),
        (Stage::Analysis, Phase::Working, Some("read the BRD"))
    );
    assert_eq!(store.transitions(&a.work_item_id).await.unwrap().len(), 2);
    let missing = TaskUpdate::keep(&saved);
    assert!(
        store
            .update_task(&work_item("NOPE-1"), Stage::Created, missing)
            .await
            .is_err()
    );
}
