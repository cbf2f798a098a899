//! The SQL for tasks and their stage journal, as plain functions over a connection. Writes
//! take `&mut Connection` and run as one job of the writer, which makes each of them atomic;
//! reads take `&Connection`. Timestamps come from SQLite so every row of one write agrees on
//! the clock.

use std::fmt::Display;

use orchestrator_actors::ports::{
    NewTask, NewTaskFields, StoreError, TaskRecord, TaskUpdate, Transition,
};
use orchestrator_actors::{Stage, WorkItemId};
use rusqlite::{Connection, OptionalExtension, Row};

/// The columns [`raw_task`] reads, in its order.
const TASK_COLUMNS: &str = "id, work_item_id, repo, title, description, stage, paused, \
     created_at, updated_at, labels, branch, phase, blocked_reason, developer_retries, \
     stage_attempts, note";

/// Wraps a SQLite error as [`StoreError::Backend`], saying what was being done.
pub(crate) fn backend(what: impl Display) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("{what}: {e}"))
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error()
        .is_some_and(|e| e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// A task row as stored, before its text is checked.
struct RawTask {
    /// The row id; names the row when its work_item_id cannot be read.
    rowid: i64,
    /// Not yet validated as a [`WorkItemId`].
    work_item_id: String,
    /// As stored.
    repo: String,
    /// As stored.
    title: String,
    /// As stored.
    description: String,
    /// Not yet parsed: a newer build may have written a stage this one does not know.
    stage: String,
    /// As stored.
    paused: bool,
    /// As stored.
    created_at: String,
    /// As stored.
    updated_at: String,
    /// JSON array, not yet parsed.
    labels: String,
    /// As stored.
    branch: Option<String>,
    /// Not yet parsed.
    phase: String,
    /// As stored.
    blocked_reason: Option<String>,
    /// As stored.
    developer_retries: u32,
    /// As stored.
    stage_attempts: u32,
    /// As stored.
    note: Option<String>,
}

fn raw_task(row: &Row<'_>) -> rusqlite::Result<RawTask> {
    Ok(RawTask {
        rowid: row.get(0)?,
        work_item_id: row.get(1)?,
        repo: row.get(2)?,
        title: row.get(3)?,
        description: row.get(4)?,
        stage: row.get(5)?,
        paused: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        labels: row.get(9)?,
        branch: row.get(10)?,
        phase: row.get(11)?,
        blocked_reason: row.get(12)?,
        developer_retries: row.get(13)?,
        stage_attempts: row.get(14)?,
        note: row.get(15)?,
    })
}

impl RawTask {
    fn into_record(self) -> Result<TaskRecord, StoreError> {
        let work_item_id = parse_id(self.rowid, &self.work_item_id)?;
        let stage = parse_stage(&work_item_id, &self.stage)?;
        let labels = serde_json::from_str(&self.labels).map_err(|e| {
            StoreError::Corrupt(format!("task {work_item_id} has unreadable labels: {e}"))
        })?;
        let phase = self
            .phase
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("task {work_item_id}: {e}")))?;
        Ok(TaskRecord {
            labels,
            branch: self.branch,
            phase,
            blocked_reason: self.blocked_reason,
            developer_retries: self.developer_retries,
            stage_attempts: self.stage_attempts,
            note: self.note,
            work_item_id,
            repo: self.repo,
            title: self.title,
            description: self.description,
            stage,
            paused: self.paused,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn parse_id(rowid: i64, value: &str) -> Result<WorkItemId, StoreError> {
    WorkItemId::parse(value)
        .map_err(|e| StoreError::Corrupt(format!("task row {rowid} has an {e}")))
}

fn parse_stage(id: &WorkItemId, value: &str) -> Result<Stage, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("task {id} has unknown stage {value:?}")))
}

/// Inserts a task in [`Stage::Created`] and its first journal entry (atomic, as every write
/// job is).
pub(crate) fn create_task(conn: &mut Connection, task: &NewTask) -> Result<TaskRecord, StoreError> {
    insert_task(conn, task)
}

/// Creates a task under the next id for `prefix`, in the same write as the counter.
pub(crate) fn create_numbered_task(
    conn: &mut Connection,
    prefix: &str,
    fields: &NewTaskFields,
) -> Result<TaskRecord, StoreError> {
    let what = format!("create a task numbered under {prefix:?}");
    let number: i64 = conn
        .query_row(
            "INSERT INTO work_item_counters (prefix, last) VALUES (?1, 1)
             ON CONFLICT (prefix) DO UPDATE SET last = last + 1 RETURNING last",
            [prefix],
            |row| row.get(0),
        )
        .map_err(backend(&what))?;
    let id = WorkItemId::parse(&format!("{prefix}-{number:03}"))
        .map_err(|e| StoreError::Backend(format!("{what}: {e}")))?;
    let record = insert_task(
        conn,
        &NewTask {
            work_item_id: id,
            repo: fields.repo.clone(),
            title: fields.title.clone(),
            description: fields.description.clone(),
            labels: fields.labels.clone(),
        },
    )?;
    Ok(record)
}

/// Inserts a task and its first journal entry, as part of the caller's write.
pub(crate) fn insert_task(conn: &Connection, task: &NewTask) -> Result<TaskRecord, StoreError> {
    let what = format!("task {}", task.work_item_id);
    let labels = serde_json::to_string(&task.labels)
        .map_err(|e| StoreError::Backend(format!("encode labels of {what}: {e}")))?;
    let raw = conn
        .query_row(
            &format!(
                "INSERT INTO tasks (work_item_id, repo, title, description, stage, labels)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {TASK_COLUMNS}"
            ),
            (
                task.work_item_id.as_str(),
                &task.repo,
                &task.title,
                &task.description,
                Stage::Created.as_str(),
                &labels,
            ),
            raw_task,
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate(what.clone())
            } else {
                backend(format!("create {what}"))(e)
            }
        })?;
    // The journal entry reuses the row's timestamp so both say the same moment.
    conn.execute(
        "INSERT INTO transitions (task_id, from_stage, to_stage, reason, at)
         VALUES (?1, NULL, ?2, 'task created', ?3)",
        (raw.rowid, Stage::Created.as_str(), &raw.created_at),
    )
    .map_err(backend(format!("journal creation of {what}")))?;
    raw.into_record()
}

/// One task, or `None`.
pub(crate) fn load_task(
    conn: &Connection,
    id: &WorkItemId,
) -> Result<Option<TaskRecord>, StoreError> {
    // Hot: every task actor's start, every card render, every operator read.
    conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE work_item_id = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([id.as_str()], raw_task).optional())
    .map_err(backend(format!("load task {id}")))?
    .map(RawTask::into_record)
    .transpose()
}

/// Every task, in creation order (the row id only grows).
pub(crate) fn list_tasks(conn: &Connection) -> Result<Vec<TaskRecord>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {TASK_COLUMNS} FROM tasks ORDER BY id"))
        .map_err(backend("list tasks"))?;
    let rows = stmt
        .query_map([], raw_task)
        .map_err(backend("list tasks"))?;
    rows.map(|row| row.map_err(backend("list tasks"))?.into_record())
        .collect()
}

/// Ids of the non-terminal tasks, in creation order.
pub(crate) fn active_task_ids(conn: &Connection) -> Result<Vec<WorkItemId>, StoreError> {
    // The terminal stages are spelled out (not bound) so the planner can use the partial
    // index `tasks_active`, whose WHERE clause says the same; a test checks it against Stage.
    let mut stmt = conn
        .prepare(
            "SELECT id, work_item_id, stage FROM tasks
             WHERE stage NOT IN ('done', 'cancelled') ORDER BY id",
        )
        .map_err(backend("list active tasks"))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(backend("list active tasks"))?;
    rows.map(|row| {
        let (rowid, id, stage) = row.map_err(backend("list active tasks"))?;
        let id = parse_id(rowid, &id)?;
        parse_stage(&id, &stage)?;
        Ok(id)
    })
    .collect()
}

/// The journal of one task, oldest first; empty for an unknown task.
pub(crate) fn transitions(
    conn: &Connection,
    id: &WorkItemId,
) -> Result<Vec<Transition>, StoreError> {
    let what = format!("read the journal of task {id}");
    let mut stmt = conn
        .prepare(
            "SELECT j.id, j.from_stage, j.to_stage, j.reason, j.at
             FROM transitions AS j JOIN tasks AS t ON t.id = j.task_id
             WHERE t.work_item_id = ?1 ORDER BY j.id",
        )
        .map_err(backend(&what))?;
    let rows = stmt
        .query_map([id.as_str()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(backend(&what))?;
    rows.map(|row| {
        let (entry, from, to, reason, at) = row.map_err(backend(&what))?;
        let stage = |value: &str| {
            parse_stage(id, value).map_err(|e| match e {
                StoreError::Corrupt(msg) => {
                    StoreError::Corrupt(format!("{msg} in transition {entry}"))
                }
                other => other,
            })
        };
        Ok(Transition {
            from: from.as_deref().map(stage).transpose()?,
            to: stage(&to)?,
            reason,
            at,
        })
    })
    .collect()
}

/// Compare-and-set of a task's stage plus its journal entry, as one atomic write.
/// `Ok(false)` (and no change) when the task is no longer at `from`.
pub(crate) fn record_transition(
    conn: &mut Connection,
    id: &WorkItemId,
    from: Stage,
    to: Stage,
    reason: &str,
) -> Result<bool, StoreError> {
    let what = format!("move task {id} from {from} to {to}");
    let moved: Option<(i64, String)> = conn
        .query_row(
            "UPDATE tasks SET stage = ?3, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE work_item_id = ?1 AND stage = ?2 RETURNING id, updated_at",
            (id.as_str(), from.as_str(), to.as_str()),
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(backend(&what))?;
    let Some((rowid, at)) = moved else {
        // Nothing changed: the write only read.
        return stale_or_missing(conn, id, &what);
    };
    conn.execute(
        "INSERT INTO transitions (task_id, from_stage, to_stage, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        (rowid, from.as_str(), to.as_str(), reason, &at),
    )
    .map_err(backend(&what))?;
    Ok(true)
}

/// The answer to a compare-and-set that matched no row: `Ok(false)` when the task exists (it
/// moved on), [`StoreError::NotFound`] when it does not.
fn stale_or_missing(conn: &Connection, id: &WorkItemId, what: &str) -> Result<bool, StoreError> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM tasks WHERE work_item_id = ?1",
            [id.as_str()],
            |_| Ok(()),
        )
        .optional()
        .map_err(backend(what))?
        .is_some();
    if exists {
        Ok(false)
    } else {
        Err(StoreError::NotFound(format!("task {id}")))
    }
}

/// Saves a task actor's decision (fields, and optionally a journaled stage change) if the
/// task is still at `expected`.
pub(crate) fn update_task(
    conn: &mut Connection,
    id: &WorkItemId,
    expected: Stage,
    update: &TaskUpdate,
) -> Result<bool, StoreError> {
    let what = format!("update task {id}");
    let stage = update.to.as_ref().map_or(expected, |(to, _)| *to);
    let saved: Option<(i64, String)> = conn
        .query_row(
            "UPDATE tasks SET stage = ?3, phase = ?4, paused = ?5, branch = ?6,
                 blocked_reason = ?7, developer_retries = ?8, stage_attempts = ?9, note = ?10,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE work_item_id = ?1 AND stage = ?2 RETURNING id, updated_at",
            rusqlite::params![
                id.as_str(),
                expected.as_str(),
                stage.as_str(),
                update.phase.as_str(),
                update.paused,
                update.branch,
                update.blocked_reason,
                update.developer_retries,
                update.stage_attempts,
                update.note,
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(backend(&what))?;
    let Some((rowid, at)) = saved else {
        return stale_or_missing(conn, id, &what);
    };
    if let Some((to, reason)) = &update.to {
        conn.execute(
            "INSERT INTO transitions (task_id, from_stage, to_stage, reason, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            (rowid, expected.as_str(), to.as_str(), reason, &at),
        )
        .map_err(backend(&what))?;
    }
    Ok(true)
}

/// Creates `task` in place of the cancelled `old`, journals both sides and moves `old`'s
/// tracker link to it — one write job, so all or nothing (see `Store::restart_task`).
pub(crate) fn restart_task(
    conn: &mut Connection,
    old: &WorkItemId,
    task: &NewTask,
) -> Result<TaskRecord, StoreError> {
    let what = format!("restart {old} as {}", task.work_item_id);
    let old_row: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, stage FROM tasks WHERE work_item_id = ?1",
            [old.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(backend(&what))?;
    let Some((old_rowid, old_stage)) = old_row else {
        return Err(StoreError::NotFound(format!("task {old}")));
    };
    let record = insert_task(conn, task)?;
    conn.execute(
        "INSERT INTO transitions (task_id, from_stage, to_stage, reason)
         SELECT id, 'created', 'created', ?2 FROM tasks WHERE work_item_id = ?1",
        (
            task.work_item_id.as_str(),
            format!("restart of {old}, which was cancelled"),
        ),
    )
    .map_err(backend(&what))?;
    conn.execute(
        "INSERT INTO transitions (task_id, from_stage, to_stage, reason) VALUES (?1, ?2, ?2, ?3)",
        (
            old_rowid,
            &old_stage,
            format!("restarted as {}", task.work_item_id),
        ),
    )
    .map_err(backend(&what))?;
    conn.execute(
        "UPDATE task_links SET work_item_id = ?2 WHERE work_item_id = ?1",
        (old.as_str(), task.work_item_id.as_str()),
    )
    .map_err(backend(&what))?;
    Ok(record)
}

#[cfg(test)]
mod tests;
