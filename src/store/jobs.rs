//! The SQL of the durable job queue and the agent-run journal. Claiming is one IMMEDIATE
//! transaction, so two claimers can never take the same job or exceed the concurrency limit;
//! requeueing clears every trace of the old run (the schema's CHECK enforces it too).

use orchestrator_actors::ports::{
    Job, JobStatus, NewJob, NewRun, RunFinish, RunRecord, StoreError,
};
use orchestrator_actors::{Stage, WorkItemId};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::tasks::backend;

/// The columns [`job_row`] reads, in order; `j` is jobs, `t` is tasks.
const JOB_COLUMNS: &str =
    "j.id, t.work_item_id, j.stage, j.role, j.status, j.attempts, j.task_text, j.run_id";

/// A job row before its text is checked.
type RawJob = (
    i64,
    String,
    String,
    String,
    String,
    u32,
    String,
    Option<String>,
);

fn job_row(row: &Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn into_job(
    (id, work_item_id, stage, role, status, attempts, task_text, run_id): RawJob,
) -> Result<Job, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("job {id}: {e}"));
    Ok(Job {
        id,
        work_item_id: WorkItemId::parse(&work_item_id).map_err(|e| corrupt(e.to_string()))?,
        stage: stage.parse::<Stage>().map_err(|e| corrupt(e.to_string()))?,
        role,
        status: status.parse().map_err(corrupt)?,
        attempts,
        task_text,
        run_id,
    })
}

fn task_rowid(conn: &Connection, id: &WorkItemId) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT id FROM tasks WHERE work_item_id = ?1",
        [id.as_str()],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend(format!("find task {id}")))?
    .ok_or_else(|| StoreError::NotFound(format!("task {id}")))
}

/// Enqueues a job; the unique partial index refuses a second active job for a task.
pub(crate) fn enqueue_job(conn: &mut Connection, job: &NewJob) -> Result<i64, StoreError> {
    let what = format!("enqueue {} for task {}", job.role, job.work_item_id);
    let task = task_rowid(conn, &job.work_item_id)?;
    conn.query_row(
        "INSERT INTO jobs (task_id, stage, role, task_text) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        (task, job.stage.as_str(), &job.role, &job.task_text),
        |row| row.get(0),
    )
    .map_err(|e| {
        if e.sqlite_error()
            .is_some_and(|e| e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
        {
            StoreError::Duplicate(format!("an active job for task {}", job.work_item_id))
        } else {
            backend(&what)(e)
        }
    })
}

/// Claims up to the free slots under `max_running`, FIFO, skipping paused tasks.
pub(crate) fn claim_jobs(
    conn: &mut Connection,
    max_running: usize,
    boot_id: &str,
) -> Result<Vec<Job>, StoreError> {
    let what = "claim queued jobs";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend(what))?;
    let running: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM jobs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .map_err(backend(what))?;
    let slots = (max_running as i64 - running).max(0);
    if slots == 0 {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = {
        let mut stmt = tx
            .prepare(
                "SELECT j.id FROM jobs AS j JOIN tasks AS t ON t.id = j.task_id
                 WHERE j.status = 'queued' AND t.paused = 0
                   AND j.available_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 ORDER BY j.priority DESC, j.id LIMIT ?1",
            )
            .map_err(backend(what))?;
        stmt.query_map([slots], |r| r.get(0))
            .map_err(backend(what))?
            .collect::<Result<_, _>>()
            .map_err(backend(what))?
    };
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let raw = tx
            .query_row(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,
                         run_id = 'run-' || id || '-' || (attempts + 1) || '-' || ?2,
                         boot_id = ?2, started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1
                     RETURNING id, (SELECT work_item_id FROM tasks WHERE tasks.id = jobs.task_id),
                         stage, role, status, attempts, task_text, run_id",
                rusqlite::params![id, boot_id],
                job_row,
            )
            .map_err(backend(what))?;
        claimed.push(into_job(raw)?);
    }
    tx.commit().map_err(backend(what))?;
    Ok(claimed)
}

/// Ends a job with `status`.
pub(crate) fn finish_job(
    conn: &mut Connection,
    job_id: i64,
    status: JobStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE jobs SET status = ?2, last_error = ?3,
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1",
            rusqlite::params![job_id, status.as_str(), error],
        )
        .map_err(backend(format!("finish job {job_id}")))?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("job {job_id}")));
    }
    Ok(())
}

/// Records the pid of a running job's process.
pub(crate) fn set_job_pid(conn: &mut Connection, job_id: i64, pid: u32) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE jobs SET pid = ?2 WHERE id = ?1 AND status = 'running'",
        rusqlite::params![job_id, pid],
    )
    .map_err(backend(format!("record the pid of job {job_id}")))?;
    Ok(())
}

/// Cancels the task's queued jobs.
pub(crate) fn cancel_queued_jobs(
    conn: &mut Connection,
    id: &WorkItemId,
) -> Result<u32, StoreError> {
    let task = task_rowid(conn, id)?;
    let n = conn
        .execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE task_id = ?1 AND status = 'queued'",
            [task],
        )
        .map_err(backend(format!("cancel the jobs of task {id}")))?;
    Ok(n as u32)
}

/// Requeues jobs another boot left running, closing their runs as abandoned.
pub(crate) fn requeue_stale_jobs(conn: &mut Connection, boot_id: &str) -> Result<u32, StoreError> {
    let what = "requeue jobs of a previous boot";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend(what))?;
    tx.execute(
        "UPDATE agent_runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
             outcome = 'abandoned', reason = 'the orchestrator restarted while it ran'
         WHERE finished_at IS NULL AND run_id IN (
             SELECT run_id FROM jobs WHERE status = 'running' AND boot_id IS NOT ?1)",
        [boot_id],
    )
    .map_err(backend(what))?;
    let n = tx
        .execute(
            "UPDATE jobs SET status = 'queued', pid = NULL, boot_id = NULL, run_id = NULL,
                 started_at = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE status = 'running' AND boot_id IS NOT ?1",
            [boot_id],
        )
        .map_err(backend(what))?;
    tx.commit().map_err(backend(what))?;
    Ok(n as u32)
}

fn one_job(conn: &Connection, id: &WorkItemId, filter: &str) -> Result<Option<Job>, StoreError> {
    conn.query_row(
        &format!(
            "SELECT {JOB_COLUMNS} FROM jobs AS j JOIN tasks AS t ON t.id = j.task_id
             WHERE t.work_item_id = ?1 {filter} ORDER BY j.id DESC LIMIT 1"
        ),
        [id.as_str()],
        job_row,
    )
    .optional()
    .map_err(backend(format!("read the jobs of task {id}")))?
    .map(into_job)
    .transpose()
}

/// The task's queued or running job.
pub(crate) fn active_job(conn: &Connection, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
    one_job(conn, id, "AND j.status IN ('queued', 'running')")
}

/// The task's latest job.
pub(crate) fn last_job(conn: &Connection, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
    one_job(conn, id, "")
}

/// Journals the start of a run.
pub(crate) fn start_run(conn: &mut Connection, run: &NewRun) -> Result<(), StoreError> {
    let task = task_rowid(conn, &run.work_item_id)?;
    conn.execute(
        "INSERT INTO agent_runs (run_id, job_id, task_id, stage, role, model, log_path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            run.run_id,
            run.job_id,
            task,
            run.stage.as_str(),
            run.role,
            run.model,
            run.log_path
        ],
    )
    .map_err(backend(format!("journal run {}", run.run_id)))?;
    Ok(())
}

/// Journals the end of a run.
pub(crate) fn finish_run(
    conn: &mut Connection,
    run_id: &str,
    f: &RunFinish,
) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE agent_runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 exit_code = ?2, outcome = ?3, reason = ?4, subtype = ?5, is_error = ?6,
                 num_turns = ?7, duration_ms = ?8, session_id = ?9, model = COALESCE(?10, model),
                 input_tokens = ?11, output_tokens = ?12, cache_read_tokens = ?13,
                 cache_creation_tokens = ?14, cost_usd = ?15
             WHERE run_id = ?1",
            rusqlite::params![
                run_id,
                f.exit_code,
                f.outcome,
                f.reason,
                f.subtype,
                f.is_error,
                f.num_turns.map(|n| n as i64),
                f.duration_ms.map(|n| n as i64),
                f.session_id,
                f.model,
                f.input_tokens as i64,
                f.output_tokens as i64,
                f.cache_read_tokens as i64,
                f.cache_creation_tokens as i64,
                f.cost_usd,
            ],
        )
        .map_err(backend(format!("journal the end of run {run_id}")))?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("run {run_id}")));
    }
    Ok(())
}

/// A task's runs, oldest first.
pub(crate) fn runs(conn: &Connection, id: &WorkItemId) -> Result<Vec<RunRecord>, StoreError> {
    let what = format!("read the runs of task {id}");
    let mut stmt = conn
        .prepare(
            "SELECT r.run_id, r.role, r.stage, COALESCE(r.outcome, 'running'), r.exit_code,
                    r.started_at, r.finished_at, r.model, r.input_tokens, r.output_tokens,
                    r.cache_read_tokens, r.cache_creation_tokens, r.cost_usd, r.reason
             FROM agent_runs AS r JOIN tasks AS t ON t.id = r.task_id
             WHERE t.work_item_id = ?1 ORDER BY r.id",
        )
        .map_err(backend(&what))?;
    let rows = stmt
        .query_map([id.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                RunRecord {
                    run_id: String::new(),
                    role: String::new(),
                    stage: Stage::Created,
                    status: row.get(3)?,
                    exit_code: row.get(4)?,
                    started_at: row.get(5)?,
                    finished_at: row.get(6)?,
                    model: row.get(7)?,
                    input_tokens: row.get::<_, i64>(8)? as u64,
                    output_tokens: row.get::<_, i64>(9)? as u64,
                    cache_read_tokens: row.get::<_, i64>(10)? as u64,
                    cache_creation_tokens: row.get::<_, i64>(11)? as u64,
                    cost_usd: row.get(12)?,
                    reason: row.get(13)?,
                },
            ))
        })
        .map_err(backend(&what))?;
    rows.map(|row| {
        let (run_id, role, stage, mut record) = row.map_err(backend(&what))?;
        record.stage = stage
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("run {run_id}: {e}")))?;
        record.run_id = run_id;
        record.role = role;
        Ok(record)
    })
    .collect()
}

#[cfg(test)]
mod tests;
