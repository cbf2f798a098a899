//! The SQL of the webhook intake: the delivery journal (a replay is the same delivery id, or
//! the same body from the same source within a window), tasks linked to tracker issues, and
//! the head commit of each branch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::{
    ActInWrite, BranchAt, Journaled, NewEvent, NewTask, Settlement, StoreError, TaskRecord,
    TrackerLink,
};
use rusqlite::{Connection, OptionalExtension};

use super::compression::bodies::{self, Dictionary, StoredBody};
use super::compression::dictionaries::{self, Family, Offer};
use super::replays::{self, RecentBodies};
use super::tasks::{backend, insert_task, is_unique_violation};
use super::{lock, writer::Undo};

/// What journaling a delivery came to, and the dictionary of its family when its body was
/// offered as one (see [`dictionaries`]).
pub(crate) type JournalWrite = (Journaled, Option<(Family, Dictionary)>);

/// Journals `event` with its `body` unless it is a replay within `window`, and resolves the
/// commit it names to its branches in the same transaction; a new delivery is settled at once
/// when its outcome is already known, or when `act` decides it (the task it asks to re-check
/// is handed back, to be told after the commit), and its body is taken up on
/// its `offer` to be its family's dictionary. Besides the answer, how to take the body's note
/// out of the replay window should the write not be committed.
pub(crate) fn journal_event(
    conn: &mut Connection,
    recent: &Arc<Mutex<RecentBodies>>,
    event: &NewEvent,
    body: &StoredBody,
    offer: Option<Offer>,
    act: Option<ActInWrite>,
    window: Duration,
) -> Result<(JournalWrite, Option<Undo>), StoreError> {
    let now = SystemTime::now();
    let now_ms = unix_ms(now);
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let seen = replays::key(&event.source, &event.body_hash);
    {
        let mut recent = lock(recent);
        recent.cover(conn, window_ms, now_ms)?;
        if recent.seen_after(&seen, now_ms.saturating_sub(window_ms)) {
            return Ok(((Journaled::Duplicate, None), None));
        }
    }
    let failed = |e| {
        backend(format!(
            "journal a {} {} delivery",
            event.source, event.kind
        ))(e)
    };
    // A delivery id is unique forever; without one, the body hash (plus the moment) keys it.
    let dedup_key = match &event.delivery_id {
        Some(id) => format!("{}:delivery:{id}", event.source),
        None => format!(
            "{}:body:{}:{}",
            event.source,
            event.body_hash,
            now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        ),
    };
    // Known to be new before anything acts on it.
    let replayed = conn
        .prepare_cached("SELECT 1 FROM events WHERE dedup_key = ?1")
        .and_then(|mut stmt| stmt.exists([&dedup_key]))
        .map_err(failed)?;
    if replayed {
        return Ok(((Journaled::Duplicate, None), None));
    }
    let mut branches = match &event.commit {
        Some(commit) => branches_at(conn, &commit.repo, &commit.sha)?,
        None => Vec::new(),
    };
    let (task, outcome, recheck) = match (&event.settled, act) {
        (Some(outcome), _) => (None, Some(outcome.clone()), None),
        (None, Some(act)) => act(&mut branches).map_or((None, None, None), |acted| {
            (acted.task, Some(acted.outcome), acted.recheck)
        }),
        (None, None) => (None, None, None),
    };
    let acted = event.settled.is_none() && outcome.is_some();
    let received_at = humantime::format_rfc3339_millis(now).to_string();
    // The new row's id from the connection rather than by RETURNING, which buffers its
    // output rows apart before handing back the first: this runs for every delivery.
    conn.prepare_cached(
        "INSERT INTO events (source, kind, dedup_key, body_hash, work_item_id, outcome,
             received_at, processed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?6 IS NULL THEN NULL ELSE ?7 END)",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            &event.source,
            &event.kind,
            &dedup_key,
            &event.body_hash,
            task.as_ref().map(WorkItemId::as_str),
            &outcome,
            &received_at,
        ))
    })
    .map_err(failed)?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO event_bodies (event_id, encoding, body, dictionary_id)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut stmt| stmt.execute((id, body.encoding, &body.bytes, body.dictionary)))
    .map_err(failed)?;
    let dictionary = offer
        .map(|offer| dictionaries::take_offer(conn, offer, now))
        .transpose()?;
    lock(recent).note(seen.clone(), now_ms);
    let recent = Arc::clone(recent);
    let undo: Undo = Box::new(move || lock(&recent).forget(&seen, now_ms));
    let journaled = Journaled::New {
        id,
        branches,
        acted,
        recheck,
    };
    Ok(((journaled, dictionary), Some(undo)))
}

/// The raw body of event `id`, as it was received.
pub(crate) fn event_body(conn: &Connection, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
    let stored = conn
        .query_row(
            "SELECT b.encoding, b.body, d.body FROM event_bodies AS b
             LEFT JOIN body_dictionaries AS d ON d.id = b.dictionary_id
             WHERE b.event_id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            },
        )
        .optional()
        .map_err(backend(format!("read the body of event {id}")))?;
    stored
        .map(|(encoding, bytes, dictionary)| {
            bodies::decode(id, &encoding, bytes, dictionary.as_deref())
        })
        .transpose()
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Records what became of journaled events, one after another in this write.
pub(crate) fn settle_events(
    conn: &mut Connection,
    settled: &[Settlement],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE events SET work_item_id = ?2, outcome = ?3, error = ?4,
                 processed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1",
        )
        .map_err(backend("settle events"))?;
    for s in settled {
        stmt.execute((
            s.id,
            s.work_item_id.as_ref().map(WorkItemId::as_str),
            &s.outcome,
            &s.error,
        ))
        .map_err(backend(format!("settle event {}", s.id)))?;
    }
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
    // Named only on failure: this runs for every commit status.
    let failed = |e| backend(format!("find the branches of {repo} at {sha}"))(e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT h.branch, (SELECT t.work_item_id FROM tasks AS t
                               WHERE t.repo = h.repo AND t.branch = h.branch
                               ORDER BY t.id DESC LIMIT 1)
             FROM branch_heads AS h WHERE h.repo = ?1 AND h.sha = ?2 ORDER BY h.branch",
        )
        .map_err(failed)?;
    let rows = stmt
        .query_map([repo, sha], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(failed)?;
    rows.map(|row| {
        let (branch, task) = row.map_err(failed)?;
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
