//! The SQL of the durable job queue and the agent-run journal. Claiming is one atomic job of
//! the single writer, so two claimers can never take the same job or exceed the concurrency limit;
//! requeueing clears every trace of the old run (the schema's CHECK enforces it too).

use orchestrator_actors::ports::{
    Job, JobStatus, NewJob, NewRun, ProcessId, QueueOverview, QueuePark, Requeue, RunFinish,
    RunRecord, RunningJob, StoreError,
};
use orchestrator_actors::{Stage, WorkItemId};
use rusqlite::{Connection, OptionalExtension, Row};

use super::tasks::backend;

/// The columns [`job_row`] reads, in order; `j` is jobs, `t` is tasks.
const JOB_COLUMNS: &str = "j.id, t.work_item_id, j.stage, j.role, j.status, j.attempts, \
     j.task_text, j.run_id, j.transient_attempts";

/// The current time in the store's timestamp format.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Clears a run's traces from a job going back to the queue; every requeue path uses it, so
/// a queued job never carries a pid, process start, boot, run id or start time.
const CLEAN_RUN: &str =
    "pid = NULL, pid_start = NULL, boot_id = NULL, run_id = NULL, started_at = NULL";

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
    u32,
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
        row.get(8)?,
    ))
}

fn into_job(
    (id, work_item_id, stage, role, status, attempts, task_text, run_id, transient_attempts): RawJob,
) -> Result<Job, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("job {id}: {e}"));
    Ok(Job {
        id,
        work_item_id: WorkItemId::parse(&work_item_id).map_err(|e| corrupt(e.to_string()))?,
        stage: stage.parse::<Stage>().map_err(|e| corrupt(e.to_string()))?,
        role: role
            .parse()
            .map_err(|e: orchestrator_actors::domain::pipeline::UnknownRole| {
                corrupt(e.to_string())
            })?,
        status: status.parse().map_err(corrupt)?,
        attempts,
        task_text,
        run_id,
        transient_attempts,
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
        (task, job.stage.as_str(), job.role.as_str(), &job.task_text),
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
    let running: i64 = conn
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
        let mut stmt = conn
            .prepare(
                "SELECT j.id FROM jobs AS j JOIN tasks AS t ON t.id = j.task_id
                 WHERE j.status = 'queued' AND t.paused = 0
                   AND j.available_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                   AND NOT EXISTS (SELECT 1 FROM queue_park
                                   WHERE until_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
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
        let raw = conn
            .query_row(
                // The run id counts the job's journaled runs, so it stays unique when a
                // transient requeue gives the claim's attempt back.
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,
                         run_id = 'run-' || id || '-'
                             || ((SELECT COUNT(*) FROM agent_runs WHERE job_id = jobs.id) + 1)
                             || '-' || ?2,
                         pid = NULL, pid_start = NULL,
                         boot_id = ?2, started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1
                     RETURNING id, (SELECT work_item_id FROM tasks WHERE tasks.id = jobs.task_id),
                         stage, role, status, attempts, task_text, run_id, transient_attempts",
                rusqlite::params![id, boot_id],
                job_row,
            )
            .map_err(backend(what))?;
        claimed.push(into_job(raw)?);
    }
    Ok(claimed)
}

/// Ends running job `job_id` of run `run_id` with `status`; false if it is not running that
/// run any more (someone else settled it).
pub(crate) fn finish_job(
    conn: &mut Connection,
    job_id: i64,
    run_id: &str,
    status: JobStatus,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            &format!(
                "UPDATE jobs SET status = ?3, last_error = ?4, finished_at = {NOW}, updated_at = {NOW}
                 WHERE id = ?1 AND status = 'running' AND run_id IS ?2"
            ),
            rusqlite::params![job_id, run_id, status.as_str(), error],
        )
        .map_err(backend(format!("finish job {job_id}")))?;
    Ok(changed == 1)
}

/// Records the process of a running job's run.
pub(crate) fn set_job_process(
    conn: &mut Connection,
    job_id: i64,
    run_id: &str,
    process: ProcessId,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE jobs SET pid = ?3, pid_start = ?4
         WHERE id = ?1 AND status = 'running' AND run_id = ?2",
        rusqlite::params![job_id, run_id, process.pid, process.start_ticks as i64],
    )
    .map_err(backend(format!("record the process of job {job_id}")))?;
    Ok(())
}

/// Puts running job `job_id` of run `run_id` back in the queue as `how` says.
pub(crate) fn requeue_job(
    conn: &mut Connection,
    job_id: i64,
    run_id: &str,
    how: &Requeue,
    reason: &str,
) -> Result<bool, StoreError> {
    let (delay_s, transient, give_back) = match how {
        Requeue::Transient { delay } => (delay.as_secs_f64(), 1, 1),
        Requeue::Parked => (0.0, 0, 1),
        Requeue::Lost => (0.0, 0, 0),
    };
    let changed = conn
        .execute(
            &format!(
                "UPDATE jobs SET status = 'queued', {CLEAN_RUN},
                     available_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?3 || ' seconds'),
                     transient_attempts = transient_attempts + ?4,
                     attempts = MAX(attempts - ?5, 0),
                     last_error = ?6, updated_at = {NOW}
                 WHERE id = ?1 AND status = 'running' AND run_id IS ?2"
            ),
            rusqlite::params![job_id, run_id, delay_s, transient, give_back, reason],
        )
        .map_err(backend(format!("requeue job {job_id}")))?;
    Ok(changed == 1)
}

/// Every running job with its process, age and journaled run outcome.
pub(crate) fn running_jobs(conn: &Connection) -> Result<Vec<RunningJob>, StoreError> {
    let what = "list running jobs";
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {JOB_COLUMNS}, j.boot_id, j.pid, j.pid_start,
                    (julianday('now') - julianday(j.started_at)) * 86400.0,
                    r.outcome, r.reason
             FROM jobs AS j JOIN tasks AS t ON t.id = j.task_id
             LEFT JOIN agent_runs AS r ON r.run_id = j.run_id AND r.finished_at IS NOT NULL
             WHERE j.status = 'running' ORDER BY j.id"
        ))
        .map_err(backend(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                job_row(row)?,
                row.get::<_, Option<String>>(9)?,
                row.get::<_, Option<u32>>(10)?,
                row.get::<_, Option<i64>>(11)?,
                row.get::<_, Option<f64>>(12)?,
                row.get::<_, Option<String>>(13)?,
                row.get::<_, Option<String>>(14)?,
            ))
        })
        .map_err(backend(what))?;
    rows.map(|row| {
        let (raw, boot_id, pid, start, running_s, run_outcome, run_reason) =
            row.map_err(backend(what))?;
        Ok(RunningJob {
            job: into_job(raw)?,
            boot_id,
            process: pid.map(|pid| ProcessId {
                pid,
                start_ticks: start.unwrap_or(0) as u64,
            }),
            running_s: running_s.unwrap_or(0.0).max(0.0),
            run_outcome: run_outcome
                .map(|o| o.parse())
                .transpose()
                .map_err(StoreError::Corrupt)?,
            run_reason,
        })
    })
    .collect()
}

/// Parks the queue until `until_unix`, or moves an existing park later (never earlier).
pub(crate) fn park_queue(
    conn: &mut Connection,
    until_unix: i64,
    reason: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO queue_park (id, until_at, reason)
         VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', ?1, 'unixepoch'), ?2)
         ON CONFLICT (id) DO UPDATE SET
             until_at = MAX(until_at, excluded.until_at), reason = excluded.reason,
             parked_at = excluded.parked_at",
        rusqlite::params![until_unix, reason],
    )
    .map_err(backend("park the queue"))?;
    Ok(())
}

/// The park in force.
pub(crate) fn queue_park(conn: &Connection) -> Result<Option<QueuePark>, StoreError> {
    conn.query_row(
        &format!("SELECT until_at, reason FROM queue_park WHERE id = 1 AND until_at > {NOW}"),
        [],
        |row| {
            Ok(QueuePark {
                until: row.get(0)?,
                reason: row.get(1)?,
            })
        },
    )
    .optional()
    .map_err(backend("read the queue park"))
}

/// Counts per status, the active jobs and the park.
pub(crate) fn queue_overview(conn: &Connection) -> Result<QueueOverview, StoreError> {
    let what = "read the queue";
    let mut overview = QueueOverview {
        parked: queue_park(conn)?,
        ..QueueOverview::default()
    };
    let mut stmt = conn
        .prepare("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(backend(what))?
    {
        let (status, n) = row.map_err(backend(what))?;
        overview.counts.insert(status, n as u64);
    }
    let mut stmt = conn
        .prepare(
            "SELECT j.id, t.work_item_id, j.stage, j.role, j.status, j.attempts,
                    j.transient_attempts, j.available_at, j.started_at, j.pid, j.run_id,
                    j.last_error, r.boot_id, r.adopted_by
             FROM jobs AS j JOIN tasks AS t ON t.id = j.task_id
             LEFT JOIN agent_runs AS r ON r.run_id = j.run_id
             WHERE j.status IN ('queued', 'running') ORDER BY j.id LIMIT 100",
        )
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| {
            Ok(serde_json::json!({
                "job": r.get::<_, i64>(0)?,
                "task": r.get::<_, String>(1)?,
                "stage": r.get::<_, String>(2)?,
                "role": r.get::<_, String>(3)?,
                "status": r.get::<_, String>(4)?,
                "attempts": r.get::<_, i64>(5)?,
                "transient_attempts": r.get::<_, i64>(6)?,
                "available_at": r.get::<_, String>(7)?,
                "started_at": r.get::<_, Option<String>>(8)?,
                "pid": r.get::<_, Option<i64>>(9)?,
                "run_id": r.get::<_, Option<String>>(10)?,
                "last_error": r.get::<_, Option<String>>(11)?,
                "launched_by": r.get::<_, Option<String>>(12)?,
                "adopted_by": r.get::<_, Option<String>>(13)?,
            }))
        })
        .map_err(backend(what))?
    {
        overview.active.push(row.map_err(backend(what))?);
    }
    Ok(overview)
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
    conn.execute(
        "UPDATE agent_runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
             outcome = 'abandoned', reason = 'the orchestrator restarted while it ran'
         WHERE finished_at IS NULL AND run_id IN (
             SELECT run_id FROM jobs WHERE status = 'running' AND boot_id IS NOT ?1)",
        [boot_id],
    )
    .map_err(backend(what))?;
    let n = conn
        .execute(
            &format!(
                "UPDATE jobs SET status = 'queued', {CLEAN_RUN},
                     last_error = 'requeued: the orchestrator restarted while it ran',
                     updated_at = {NOW}
                 WHERE status = 'running' AND boot_id IS NOT ?1"
            ),
            [boot_id],
        )
        .map_err(backend(what))?;
    Ok(n as u32)
}

/// Moves running job `job_id` of run `run_id`, left by a previous boot, under `boot_id`
/// without relaunching it: same run, same attempt, same journal row, now marked adopted.
/// False if the job is no longer running that run.
pub(crate) fn adopt_job(
    conn: &mut Connection,
    job_id: i64,
    run_id: &str,
    boot_id: &str,
) -> Result<bool, StoreError> {
    let what = format!("adopt run {run_id} of job {job_id}");
    // All or nothing: the writer runs each write in a savepoint of its own.
    let n = conn
        .execute(
            &format!(
                "UPDATE jobs SET boot_id = ?3, updated_at = {NOW}
                 WHERE id = ?1 AND run_id = ?2 AND status = 'running'"
            ),
            rusqlite::params![job_id, run_id, boot_id],
        )
        .map_err(backend(&what))?;
    if n == 1 {
        conn.execute(
            "UPDATE agent_runs SET adopted_by = ?2 WHERE run_id = ?1",
            rusqlite::params![run_id, boot_id],
        )
        .map_err(backend(&what))?;
    }
    Ok(n == 1)
}

/// Narrows [`one_job`] to the task's queued or running job.
const ACTIVE: &str = "AND j.status IN ('queued', 'running')";

/// The query of [`one_job`]: the task's newest job that passes `filter`.
fn one_job_sql(filter: &str) -> String {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs AS j JOIN tasks AS t ON t.id = j.task_id
         WHERE t.work_item_id = ?1 {filter} ORDER BY j.id DESC LIMIT 1"
    )
}

fn one_job(conn: &Connection, id: &WorkItemId, filter: &str) -> Result<Option<Job>, StoreError> {
    // Hot: every task actor that starts in the middle of its stage's work.
    conn.prepare_cached(&one_job_sql(filter))
        .and_then(|mut stmt| stmt.query_row([id.as_str()], job_row).optional())
        .map_err(backend(format!("read the jobs of task {id}")))?
        .map(into_job)
        .transpose()
}

/// The task's queued or running job.
pub(crate) fn active_job(conn: &Connection, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
    one_job(conn, id, ACTIVE)
}

/// The task's latest job.
pub(crate) fn last_job(conn: &Connection, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
    one_job(conn, id, "")
}

/// Journals the start of a run.
pub(crate) fn start_run(conn: &mut Connection, run: &NewRun) -> Result<(), StoreError> {
    let task = task_rowid(conn, &run.work_item_id)?;
    conn.execute(
        // A start journaled again — its first answer lost to a timeout, or a run whose boot
        // died before its agent started — keeps its row; the boot launching it is recorded.
        "INSERT INTO agent_runs (run_id, job_id, task_id, stage, role, model, log_path, boot_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (run_id) DO UPDATE SET boot_id = excluded.boot_id",
        rusqlite::params![
            run.run_id,
            run.job_id,
            task,
            run.stage.as_str(),
            run.role.as_str(),
            run.model,
            run.log_path,
            run.boot_id
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
                f.outcome.as_str(),
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
    // Hot: every card render.
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.run_id, r.role, r.stage, COALESCE(r.outcome, 'running'), r.exit_code,
                    r.started_at, r.finished_at, r.model, r.input_tokens, r.output_tokens,
                    r.cache_read_tokens, r.cache_creation_tokens, r.cost_usd, r.reason,
                    r.boot_id, r.adopted_by
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
                    launched_by: row.get(14)?,
                    adopted_by: row.get(15)?,
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
