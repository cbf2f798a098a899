//! What housekeeping asks of the store: the runs whose files must stay, and the webhook
//! journal's retention — settled deliveries past it go with their bodies, and a body
//! dictionary goes once no kept body is compressed against it and a newer one of its family
//! exists (the newest of a family is what new bodies are compressed against).

use std::collections::HashSet;

use orchestrator_actors::ports::StoreError;

use super::SqliteStore;
use super::tasks::backend;

/// Most deliveries removed by one write, so that the writer is never held long.
const PRUNE_BATCH: i64 = 2_000;

impl SqliteStore {
    /// The runs whose files must stay: their job is running, or their task is not finished.
    pub async fn live_runs(&self) -> Result<HashSet<String>, StoreError> {
        self.read(|conn| {
            let what = "list live runs";
            let mut stmt = conn
                .prepare_cached(
                    "SELECT run_id FROM jobs WHERE status = 'running' AND run_id IS NOT NULL
                     UNION
                     SELECT r.run_id FROM agent_runs AS r JOIN tasks AS t ON t.id = r.task_id
                     WHERE t.stage NOT IN ('done', 'cancelled')",
                )
                .map_err(backend(what))?;
            stmt.query_map([], |r| r.get::<_, String>(0))
                .map_err(backend(what))?
                .collect::<Result<HashSet<_>, _>>()
                .map_err(backend(what))
        })
        .await
    }

    /// Removes the settled deliveries received before `before` (RFC 3339 UTC), oldest
    /// first, a batch per write; then the dictionaries nothing needs. Deliveries without an
    /// outcome or whose acting failed stay: the reconciler still owes them an answer.
    pub async fn prune_events(&self, before: String) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            let cutoff = before.clone();
            let n = self
                .write(move |conn| {
                    let what = "prune the webhook journal";
                    let settled =
                        "received_at < ?1 AND outcome IS NOT NULL AND outcome <> 'failed'";
                    let last: Option<i64> = conn
                        .query_row(
                            &format!(
                                "SELECT max(id) FROM (SELECT id FROM events WHERE {settled}
                                                     ORDER BY id LIMIT ?2)"
                            ),
                            (&cutoff, PRUNE_BATCH),
                            |r| r.get(0),
                        )
                        .map_err(backend(what))?;
                    let Some(last) = last else {
                        return Ok(0);
                    };
                    conn.execute(
                        &format!(
                            "DELETE FROM event_bodies WHERE event_id IN
                             (SELECT id FROM events WHERE id <= ?2 AND {settled})"
                        ),
                        (&cutoff, last),
                    )
                    .map_err(backend(what))?;
                    let n = conn
                        .execute(
                            &format!("DELETE FROM events WHERE id <= ?2 AND {settled}"),
                            (&cutoff, last),
                        )
                        .map_err(backend(what))?;
                    Ok(n as u64)
                })
                .await?;
            removed += n;
            if n < PRUNE_BATCH as u64 {
                break;
            }
        }
        self.write(|conn| {
            conn.execute(
                "DELETE FROM body_dictionaries
                 WHERE id NOT IN (SELECT dictionary_id FROM event_bodies
                                  WHERE dictionary_id IS NOT NULL)
                   AND id NOT IN (SELECT max(id) FROM body_dictionaries
                                  GROUP BY source, kind, scope)",
                [],
            )
            .map_err(backend("prune body dictionaries"))
        })
        .await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::ports::{
        JobStatus, JobStore, NewJob, NewRun, NewTask, Store, TaskUpdate,
    };
    use orchestrator_actors::{Role, Stage, WorkItemId};

    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        (dir, store)
    }

    /// Task `id` with one claimed run; finished (and the task done) unless `live`.
    async fn run(store: &SqliteStore, id: &str, live: bool) -> String {
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
        store
            .enqueue_job(NewJob {
                work_item_id: id.clone(),
                stage: Stage::Analysis,
                role: Role::Analyst,
                task_text: "t".into(),
            })
            .await
            .unwrap();
        let job = store.claim_jobs(8, "boot").await.unwrap().remove(0);
        let run_id = job.run_id.clone().unwrap();
        store
            .start_run(NewRun {
                run_id: run_id.clone(),
                job_id: job.id,
                work_item_id: id.clone(),
                stage: Stage::Analysis,
                role: Role::Analyst,
                model: None,
                log_path: format!("/runs/{run_id}.log"),
                boot_id: "boot".into(),
            })
            .await
            .unwrap();
        if !live {
            assert!(
                store
                    .finish_job(job.id, &run_id, JobStatus::Succeeded, None)
                    .await
                    .unwrap()
            );
            let task = store.load_task(&id).await.unwrap().unwrap();
            let mut done = TaskUpdate::keep(&task);
            done.to = Some((Stage::Done, "merged".into()));
            assert!(store.update_task(&id, Stage::Created, done).await.unwrap());
        }
        run_id
    }

    #[tokio::test]
    async fn a_finished_task_s_runs_are_not_live_and_a_running_one_is() {
        let (_dir, store) = store().await;
        let done = run(&store, "ACME-1", false).await;
        let live = run(&store, "ACME-2", true).await;
        let runs = store.live_runs().await.unwrap();
        assert!(runs.contains(&live), "{runs:?}");
        assert!(!runs.contains(&done), "{runs:?}");
    }

    async fn sql<T: Send + 'static>(
        store: &SqliteStore,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> T {
        store
            .write(move |conn| f(conn).map_err(backend("test")))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn retention_keeps_what_is_pending_recent_or_still_needed() {
        let (_dir, store) = store().await;
        sql(&store, |conn| {
            conn.execute_batch(
                "INSERT INTO body_dictionaries (id, source, kind, scope, body, created_at) VALUES
                   (1, 'gitea', 'status', 'acme/app', x'00', '2020-01-01T00:00:00Z'),
                   (2, 'gitea', 'status', 'acme/app', x'00', '2020-06-01T00:00:00Z'),
                   (3, 'gitea', 'status', 'acme/lib', x'00', '2020-01-01T00:00:00Z'),
                   (4, 'gitea', 'status', 'acme/lib', x'00', '2020-06-01T00:00:00Z');
                 INSERT INTO events (id, source, kind, dedup_key, received_at, outcome) VALUES
                   (1, 'gitea', 'status', 'k1', '2020-01-02T00:00:00.000Z', 'recheck'),
                   (2, 'gitea', 'status', 'k2', '2020-01-02T00:00:00.000Z', NULL),
                   (3, 'gitea', 'status', 'k3', '2020-01-02T00:00:00.000Z', 'failed'),
                   (4, 'gitea', 'status', 'k4', '2020-01-03T00:00:00.000Z', 'ignored: x'),
                   (5, 'gitea', 'status', 'k5', '2999-01-01T00:00:00.000Z', 'recheck');
                 INSERT INTO event_bodies (event_id, encoding, body, dictionary_id) VALUES
                   (1, 'lz4-dict', x'00', 1), (2, 'identity', x'00', NULL),
                   (3, 'lz4-dict', x'00', 3), (4, 'identity', x'00', NULL),
                   (5, 'identity', x'00', NULL);",
            )
        })
        .await;
        let removed = store
            .prune_events("2021-01-01T00:00:00.000Z".into())
            .await
            .unwrap();
        assert_eq!(removed, 2);
        let ids = |table: &'static str, column: &'static str| {
            let store = &store;
            async move {
                sql(store, move |conn| {
                    let mut stmt =
                        conn.prepare(&format!("SELECT {column} FROM {table} ORDER BY 1"))?;
                    stmt.query_map([], |r| r.get::<_, i64>(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()
                })
                .await
            }
        };
        // Pending (no outcome) and failed ones wait for the reconciler; 5 is recent.
        assert_eq!(ids("events", "id").await, [2, 3, 5]);
        assert_eq!(ids("event_bodies", "event_id").await, [2, 3, 5]);
        // 1 served only pruned bodies; 3 is still needed by delivery 3; 2 and 4 are their
        // families' newest.
        assert_eq!(ids("body_dictionaries", "id").await, [2, 3, 4]);
    }
}
