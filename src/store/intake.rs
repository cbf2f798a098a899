//! The SQL of the webhook intake: the delivery journal (a replay is the same delivery id, or
//! the same body from the same source within a window), tasks linked to tracker issues, and
//! the head commit of each branch.

use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::{
    BranchAt, Journaled, NewEvent, NewTask, StoreError, TaskRecord, TrackerLink,
};
use rusqlite::{Connection, OptionalExtension};

use super::tasks::{backend, insert_task, is_unique_violation};

/// Journals `event` unless it is a replay within `window_s` seconds (settled at once when
/// its outcome is already known).
pub(crate) fn journal_event(
    conn: &mut Connection,
    event: &NewEvent,
    window_s: u64,
) -> Result<Journaled, StoreError> {
    let what = format!("journal a {} {} delivery", event.source, event.kind);
    let replayed: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events WHERE source = ?1 AND body_hash = ?2
                 AND received_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3))",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                (
                    &event.source,
                    &event.body_hash,
                    format!("-{window_s} seconds"),
                ),
                |r| r.get(0),
            )
        })
        .map_err(backend(&what))?;
    if replayed {
        return Ok(Journaled::Duplicate);
    }
    // A delivery id is unique forever; without one, the body hash (plus the moment) keys it.
    let dedup_key = match &event.delivery_id {
        Some(id) => format!("{}:delivery:{id}", event.source),
        None => format!(
            "{}:body:{}:{}",
            event.source,
            event.body_hash,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
    };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (source, kind, dedup_key, body_hash, payload, outcome,
                 processed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                 CASE WHEN ?6 IS NULL THEN NULL
                      ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END)
             RETURNING id",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                (
                    &event.source,
                    &event.kind,
                    &dedup_key,
                    &event.body_hash,
                    &event.payload,
                    &event.settled,
                ),
                |r| r.get::<_, i64>(0),
            )
        });
    let id = match inserted {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => return Ok(Journaled::Duplicate),
        Err(e) => return Err(backend(&what)(e)),
    };
    Ok(Journaled::New(id))
}

/// Records the outcome of journaled event `id`.
pub(crate) fn settle_event(
    conn: &mut Connection,
    id: i64,
    work_item_id: Option<&WorkItemId>,
    outcome: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE events SET work_item_id = ?2, outcome = ?3, error = ?4,
             processed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute((id, work_item_id.map(WorkItemId::as_str), outcome, error)))
    .map_err(backend(format!("settle event {id}")))?;
    Ok(())
}

/// Creates a task linked to its tracker issue, as one atomic write.
pub(crate) fn create_linked_task(
    conn: &mut Connection,
    task: &NewTask,
    link: &TrackerLink,
) -> Result<TaskRecord, StoreError> {
    let what = format!(
        "create task {} for {} issue {}",
        task.work_item_id, link.tracker, link.issue_ref
    );
    let record = insert_task(conn, task)?;
    conn.execute(
        "INSERT INTO task_links (work_item_id, tracker, project_ref, issue_ref)
         VALUES (?1, ?2, ?3, ?4)",
        (
            task.work_item_id.as_str(),
            &link.tracker,
            &link.project_ref,
            &link.issue_ref,
        ),
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Duplicate(format!(
                "a task for {} issue {}",
                link.tracker, link.issue_ref
            ))
        } else {
            backend(&what)(e)
        }
    })?;
    Ok(record)
}

/// The task linked to an issue.
pub(crate) fn linked_task(
    conn: &Connection,
    tracker: &str,
    issue_ref: &str,
) -> Result<Option<WorkItemId>, StoreError> {
    let id: Option<String> = conn
        .query_row(
            "SELECT work_item_id FROM task_links WHERE tracker = ?1 AND issue_ref = ?2",
            [tracker, issue_ref],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend(format!(
            "find the task of {tracker} issue {issue_ref}"
        )))?;
    id.map(|id| WorkItemId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// The issue a task is linked to.
pub(crate) fn task_link(
    conn: &Connection,
    id: &WorkItemId,
) -> Result<Option<TrackerLink>, StoreError> {
    conn.query_row(
        "SELECT tracker, project_ref, issue_ref FROM task_links WHERE work_item_id = ?1",
        [id.as_str()],
        |r| {
            Ok(TrackerLink {
                tracker: r.get(0)?,
                project_ref: r.get(1)?,
                issue_ref: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(backend(format!("find the tracker link of {id}")))
}

/// Records a branch's head commit.
pub(crate) fn record_branch_head(
    conn: &mut Connection,
    repo: &str,
    branch: &str,
    sha: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO branch_heads (repo, branch, sha) VALUES (?1, ?2, ?3)
         ON CONFLICT (repo, branch) DO UPDATE SET sha = excluded.sha,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        [repo, branch, sha],
    )
    .map_err(backend(format!("record the head of {repo}:{branch}")))?;
    Ok(())
}

/// The branches of `repo` whose head is `sha`.
pub(crate) fn branches_at(
    conn: &Connection,
    repo: &str,
    sha: &str,
) -> Result<Vec<BranchAt>, StoreError> {
    let what = format!("find the branches of {repo} at {sha}");
    let mut stmt = conn
        .prepare_cached(
            "SELECT h.branch, (SELECT t.work_item_id FROM tasks AS t
                               WHERE t.repo = h.repo AND t.branch = h.branch
                               ORDER BY t.id DESC LIMIT 1)
             FROM branch_heads AS h WHERE h.repo = ?1 AND h.sha = ?2 ORDER BY h.branch",
        )
        .map_err(backend(&what))?;
    let rows = stmt
        .query_map([repo, sha], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(backend(&what))?;
    rows.map(|row| {
        let (branch, task) = row.map_err(backend(&what))?;
        let task = task
            .map(|id| WorkItemId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?;
        Ok(BranchAt { branch, task })
    })
    .collect()
}

/// The task working on `branch` of `repo`.
pub(crate) fn task_on_branch(
    conn: &Connection,
    repo: &str,
    branch: &str,
) -> Result<Option<WorkItemId>, StoreError> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT work_item_id FROM tasks WHERE repo = ?1 AND branch = ?2
             ORDER BY id DESC LIMIT 1",
        )
        .and_then(|mut stmt| stmt.query_row([repo, branch], |r| r.get(0)).optional())
        .map_err(backend(format!("find the task on {repo}:{branch}")))?;
    id.map(|id| WorkItemId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}
