//! What the reconciler reads from the store: the deliveries accepted but never acted on,
//! the non-terminal tasks linked to a tracker, the tasks at their gate. Its writes are the
//! intake's own (journal, settle).

use rusqlite::OptionalExtension;

use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::StoreError;

use super::SqliteStore;
use super::tasks::backend;

/// A journaled delivery, as the reconciler re-reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournaledEvent {
    /// Its id.
    pub id: i64,
    /// `plane` or `gitea`.
    pub source: String,
    /// What it is, as journaled (`issue.updated.state`, `status`, …).
    pub kind: String,
    /// When it was received, RFC 3339 UTC.
    pub received_at: String,
}

fn work_item(raw: String) -> Result<WorkItemId, StoreError> {
    WorkItemId::parse(&raw)
        .map_err(|e| StoreError::Backend(format!("stored work item id {raw:?}: {e}")))
}

impl SqliteStore {
    /// The newest delivery's id (0 for none): those up to it were received before this call.
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
                .map_err(backend("read the newest delivery's id"))
        })
        .await
    }

    /// Deliveries accepted but never acted on, oldest first: those whose acting failed, and
    /// those without an outcome that were received up to `watermark` (by an earlier boot)
    /// or before `before` (RFC 3339 UTC; nobody is acting on them any more).
    pub async fn unsettled_events(
        &self,
        watermark: i64,
        before: String,
    ) -> Result<Vec<i64>, StoreError> {
        self.read(move |conn| {
            let what = "list unsettled deliveries";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM events
                     WHERE (outcome IS NULL OR outcome = 'failed')
                       AND (outcome = 'failed' OR id <= ?1 OR received_at < ?2)
                     ORDER BY id",
                )
                .map_err(backend(what))?;
            stmt.query_map((watermark, &before), |r| r.get(0))
                .map_err(backend(what))?
                .collect::<Result<Vec<i64>, _>>()
                .map_err(backend(what))
        })
        .await
    }

    /// Delivery `id`'s source and reception time.
    pub async fn journaled_event(&self, id: i64) -> Result<Option<JournaledEvent>, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT source, kind, received_at FROM events WHERE id = ?1",
                [id],
                |r| {
                    Ok(JournaledEvent {
                        id,
                        source: r.get(0)?,
                        kind: r.get(1)?,
                        received_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(backend(format!("read delivery {id}")))
        })
        .await
    }

    /// The non-terminal tasks linked to an issue of `tracker`, in creation order.
    pub async fn linked_active_tasks(
        &self,
        tracker: &'static str,
    ) -> Result<Vec<WorkItemId>, StoreError> {
        self.read(move |conn| {
            let what = "list linked tasks";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT t.work_item_id FROM tasks AS t
                     JOIN task_links AS l ON l.work_item_id = t.work_item_id
                     WHERE t.stage NOT IN ('done', 'cancelled') AND l.tracker = ?1
                     ORDER BY t.id",
                )
                .map_err(backend(what))?;
            let raw = stmt
                .query_map([tracker], |r| r.get::<_, String>(0))
                .map_err(backend(what))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend(what))?;
            raw.into_iter().map(work_item).collect()
        })
        .await
    }

    /// The non-terminal tasks at their gate (`phase` `gating`), with their repository.
    pub async fn gating_tasks(&self) -> Result<Vec<(WorkItemId, String)>, StoreError> {
        self.read(|conn| {
            let what = "list tasks at their gate";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT work_item_id, repo FROM tasks
                     WHERE stage NOT IN ('done', 'cancelled') AND phase = 'gating'
                     ORDER BY id",
                )
                .map_err(backend(what))?;
            let raw = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend(what))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend(what))?;
            raw.into_iter()
                .map(|(id, repo)| Ok((work_item(id)?, repo)))
                .collect()
        })
        .await
    }
}
