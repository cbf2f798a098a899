//! The job queue and run journal against a real SQLite file.
use orchestrator_actors::Role;
use orchestrator_actors::ports::{JobStore, NewTaskFields, Phase, RunOutcome, Store, TaskUpdate};

use std::time::Duration;

use super::*;
use crate::store::SqliteStore;
use crate::store::test_support::*;

/// A job row's run traces: pid, process start, boot, run id, start time.
type Traces = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const NO_TRACES: Traces = (None, None, None, None, None);

async fn traces(store: &SqliteStore, id: i64) -> Traces {
    store
        .read(move |conn| {
            conn.query_row(
                "SELECT pid, pid_start, boot_id, run_id, started_at FROM jobs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .map_err(backend("read"))
        })
        .await
        .unwrap()
}

/// Claims the task's job under `boot`, journals a run for it and records a process.
async fn claim_and_start(store: &SqliteStore, id: &str, boot: &str) -> Job {
    let job = store.claim_jobs(10, boot).await.unwrap().remove(0);
    assert_eq!(job.work_item_id.as_str(), id);
    let run_id = job.run_id.clone().unwrap();
    store
        .start_run(NewRun {
            boot_id: "boot-test".into(),
            run_id: run_id.clone(),
            job_id: job.id,
            work_item_id: work_item(id),
            stage: Stage::Analysis,
            role: Role::Analyst,
            model: None,
            log_path: format!("runs/{run_id}.log"),
        })
        .await
        .unwrap();
    store
        .set_job_process(
            job.id,
            &run_id,
            ProcessId {
                pid: 777,
                start_ticks: 12345,
            },
        )
        .await
        .unwrap();
    job
}

fn job(id: &str, role: &str) -> NewJob {
    let role: Role = role.parse().expect("a role");
    NewJob {
        work_item_id: work_item(id),
        stage: Stage::Analysis,
        role,
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
    let run_id = claimed.run_id.clone().unwrap();
    store
        .set_job_process(
            id,
            &run_id,
            ProcessId {
                pid: 4242,
                start_ticks: 99,
            },
        )
        .await
        .unwrap();
    store
        .start_run(NewRun {
            boot_id: "boot-test".into(),
            run_id: run_id.clone(),
            job_id: id,
            work_item_id: work_item("T-1"),
            stage: Stage::Analysis,
            role: Role::Analyst,
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
    assert_eq!(traces(&store, id).await, NO_TRACES);
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
            boot_id: "boot-test".into(),
            run_id: run_id.clone(),
            job_id: id,
            work_item_id: work_item("T-1"),
            stage: Stage::Analysis,
            role: Role::Analyst,
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
                outcome: RunOutcome::Succeeded,
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
        .finish_job(id, &run_id, JobStatus::Succeeded, None)
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

#[tokio::test]
async fn every_requeue_path_leaves_a_queued_job_without_run_traces() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    let id = store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let mut run_ids = Vec::new();
    for how in [
        Requeue::Transient {
            delay: Duration::ZERO,
        },
        Requeue::Parked,
        Requeue::Lost,
    ] {
        let claimed = claim_and_start(&store, "T-1", "boot-a").await;
        let run_id = claimed.run_id.clone().unwrap();
        assert_ne!(traces(&store, id).await, NO_TRACES);
        assert!(
            store
                .requeue_job(id, &run_id, how.clone(), "because")
                .await
                .unwrap(),
            "{how:?}"
        );
        assert_eq!(traces(&store, id).await, NO_TRACES, "{how:?}");
        run_ids.push(run_id);
    }
    // The restart path too.
    let claimed = claim_and_start(&store, "T-1", "boot-a").await;
    run_ids.push(claimed.run_id.clone().unwrap());
    assert_eq!(store.requeue_stale_jobs("boot-b").await.unwrap(), 1);
    assert_eq!(traces(&store, id).await, NO_TRACES);
    // Every claim ran under its own run id, though two requeues gave attempts back.
    run_ids.sort();
    run_ids.dedup();
    assert_eq!(run_ids.len(), 4);
    let job = store.active_job(&work_item("T-1")).await.unwrap().unwrap();
    assert_eq!((job.attempts, job.transient_attempts), (2, 1));

    // The schema refuses a queued job with traces, whatever writes it.
    for column in [
        "pid = 1",
        "pid_start = 1",
        "run_id = 'r'",
        "started_at = 'x'",
    ] {
        let sql = format!("UPDATE jobs SET {column} WHERE id = {id}");
        let refused = store
            .write(move |conn| conn.execute(&sql, []).map_err(backend("poke")))
            .await;
        assert!(refused.is_err(), "{column} was accepted on a queued job");
    }
}

#[tokio::test]
async fn a_transient_requeue_waits_gives_the_attempt_back_and_counts_its_own_budget() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    let id = store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let claimed = claim_and_start(&store, "T-1", "boot-a").await;
    let run_id = claimed.run_id.unwrap();
    assert!(
        store
            .requeue_job(
                id,
                &run_id,
                Requeue::Transient {
                    delay: Duration::from_secs(3600)
                },
                "429"
            )
            .await
            .unwrap()
    );
    // Not claimable before its time.
    assert!(store.claim_jobs(10, "boot-a").await.unwrap().is_empty());
    let job = store.active_job(&work_item("T-1")).await.unwrap().unwrap();
    assert_eq!((job.attempts, job.transient_attempts), (0, 1));
    // A second requeue of the same run is refused: it is no longer running.
    assert!(
        !store
            .requeue_job(id, &run_id, Requeue::Lost, "again")
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_job(id, &run_id, JobStatus::Failed, Some("late"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn finishing_is_guarded_by_the_run_so_a_job_is_settled_once() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    let id = store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let claimed = claim_and_start(&store, "T-1", "boot-a").await;
    let run_id = claimed.run_id.unwrap();
    assert!(
        !store
            .finish_job(id, "run-of-someone-else", JobStatus::Failed, None)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_job(id, &run_id, JobStatus::Failed, Some("boom"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_job(id, &run_id, JobStatus::Succeeded, None)
            .await
            .unwrap()
    );
    let job = store.last_job(&work_item("T-1")).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
}

#[tokio::test]
async fn a_parked_queue_claims_nothing_until_the_park_ends() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store.park_queue(now + 3600, "usage limit").await.unwrap();
    // A shorter park never shortens the one in force.
    store.park_queue(now + 60, "again").await.unwrap();
    let park = store.queue_park().await.unwrap().unwrap();
    assert_eq!(park.reason, "again");
    let until = humantime::parse_rfc3339_weak(&park.until).unwrap();
    let left = until
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((3500..=3600).contains(&left), "{left}");
    assert!(store.claim_jobs(10, "boot-a").await.unwrap().is_empty());
    let overview = store.queue_overview().await.unwrap();
    assert_eq!(overview.counts.get("queued"), Some(&1));
    assert_eq!(overview.active.len(), 1);
    assert!(overview.parked.is_some());
    // A park in the past is over.
    store
        .write(|conn| {
            conn.execute(
                "UPDATE queue_park SET until_at = '2000-01-01T00:00:00.000Z'",
                [],
            )
            .map_err(backend("rewind"))
        })
        .await
        .unwrap();
    assert!(store.queue_park().await.unwrap().is_none());
    assert_eq!(store.claim_jobs(10, "boot-a").await.unwrap().len(), 1);
}

#[tokio::test]
async fn running_jobs_carry_their_process_age_and_journaled_outcome() {
    let (_dir, store) = temp_store().await;
    store.create_task(new_task("T-1")).await.unwrap();
    let id = store.enqueue_job(job("T-1", "analyst")).await.unwrap();
    let claimed = claim_and_start(&store, "T-1", "boot-a").await;
    let run_id = claimed.run_id.clone().unwrap();
    let running = store.running_jobs().await.unwrap();
    assert_eq!(running.len(), 1);
    let r = &running[0];
    assert_eq!(r.job.id, id);
    assert_eq!(r.boot_id.as_deref(), Some("boot-a"));
    assert_eq!(
        r.process,
        Some(ProcessId {
            pid: 777,
            start_ticks: 12345
        })
    );
    assert!(r.running_s >= 0.0 && r.running_s < 60.0);
    assert_eq!(r.run_outcome, None);
    store
        .finish_run(
            &run_id,
            RunFinish {
                outcome: RunOutcome::Failed,
                reason: Some("exit 1".into()),
                ..RunFinish::default()
            },
        )
        .await
        .unwrap();
    let r = store.running_jobs().await.unwrap().remove(0);
    assert_eq!(r.run_outcome, Some(RunOutcome::Failed));
    assert_eq!(r.run_reason.as_deref(), Some("exit 1"));
}

#[tokio::test]
async fn a_tasks_jobs_are_looked_up_by_task_not_by_scanning_the_queue() {
    let (_dir, store) = temp_store().await;
    for filter in ["", ACTIVE] {
        let sql = format!("EXPLAIN QUERY PLAN {}", one_job_sql(filter));
        let plan = store
            .read(move |conn| {
                let mut stmt = conn.prepare(&sql).map_err(backend("explain"))?;
                let rows = stmt
                    .query_map(["ACME-1"], |row| row.get::<_, String>(3))
                    .map_err(backend("explain"))?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(backend("explain"))
            })
            .await
            .unwrap();
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "filter {filter:?}: {plan:?}"
        );
    }
}
