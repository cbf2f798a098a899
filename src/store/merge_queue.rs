//! The SQL of the merge queue: its entries in arrival order, each repository's freeze and
//! last green `main`, and its append-only journal. Written only by the `merge-queue` actor.

use async_trait::async_trait;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::StoreError;
use orchestrator_actors::ports::merge_queue::{
    EntryState, Freeze, FreezeKind, MergeQueueStore, QueueEntry, RepoQueueState,
};
use rusqlite::Connection;

use super::SqliteStore;
use super::tasks::backend;

fn load(conn: &Connection) -> Result<(Vec<QueueEntry>, Vec<RepoQueueState>), StoreError> {
    let what = "read the merge queue";
    let mut stmt = conn
        .prepare(
            "SELECT work_item_id, repo, seq, state, candidate, base, ready, joined_at
             FROM merge_queue ORDER BY repo, seq",
        )
        .map_err(backend(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, bool>(6)?,
                row.get::<_, String>(7)?,
            ))
        })
        .map_err(backend(what))?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, repo, seq, state, candidate, base, ready, joined_at) =
            row.map_err(backend(what))?;
        entries.push(QueueEntry {
            work_item_id: WorkItemId::parse(&id)
                .map_err(|e| StoreError::Corrupt(format!("merge_queue: {e}")))?,
            repo,
            seq,
            state: state
                .parse::<EntryState>()
                .map_err(|e| StoreError::Corrupt(format!("merge_queue: {e}")))?,
            candidate,
            base,
            ready,
            joined_at,
        });
    }
    let mut stmt = conn
        .prepare(
            "SELECT repo, frozen_kind, frozen_by, frozen_reason, frozen_at, last_green_main
             FROM merge_queue_repos ORDER BY repo",
        )
        .map_err(backend(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(backend(what))?;
    let mut repos = Vec::new();
    for row in rows {
        let (repo, kind, by, reason, at, last_green_main) = row.map_err(backend(what))?;
        // Fail closed: a freeze whose kind cannot be read is still a freeze.
        let frozen = kind.map(|kind| Freeze {
            kind: if kind == "main-red" {
                FreezeKind::MainRed
            } else {
                FreezeKind::Operator
            },
            by: by.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
            at: at.unwrap_or_default(),
        });
        repos.push(RepoQueueState {
            repo,
            frozen,
            last_green_main,
        });
    }
    Ok((entries, repos))
}

fn save_entry(conn: &mut Connection, e: &QueueEntry) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO merge_queue (work_item_id, repo, seq, state, candidate, base, ready, joined_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (work_item_id) DO UPDATE SET repo = excluded.repo, seq = excluded.seq,
             state = excluded.state, candidate = excluded.candidate, base = excluded.base,
             ready = excluded.ready",
        (
            e.work_item_id.as_str(),
            &e.repo,
            e.seq,
            e.state.as_str(),
            &e.candidate,
            &e.base,
            e.ready,
            &e.joined_at,
        ),
    )
    .map_err(backend(format!("save the merge-queue entry of {}", e.work_item_id)))?;
    Ok(())
}

fn save_repo(conn: &mut Connection, s: &RepoQueueState) -> Result<(), StoreError> {
    let frozen = s.frozen.as_ref();
    conn.execute(
        "INSERT INTO merge_queue_repos
             (repo, frozen_kind, frozen_by, frozen_reason, frozen_at, last_green_main)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (repo) DO UPDATE SET frozen_kind = excluded.frozen_kind,
             frozen_by = excluded.frozen_by, frozen_reason = excluded.frozen_reason,
             frozen_at = excluded.frozen_at, last_green_main = excluded.last_green_main",
        (
            &s.repo,
            frozen.map(|f| f.kind.as_str()),
            frozen.map(|f| f.by.as_str()),
            frozen.map(|f| f.reason.as_str()),
            frozen.map(|f| f.at.as_str()),
            &s.last_green_main,
        ),
    )
    .map_err(backend(format!("save the merge queue of {}", s.repo)))?;
    Ok(())
}

#[async_trait]
impl MergeQueueStore for SqliteStore {
    async fn load_merge_queue(&self) -> Result<(Vec<QueueEntry>, Vec<RepoQueueState>), StoreError> {
        self.read(load).await
    }

    async fn save_queue_entry(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |conn| save_entry(conn, &entry)).await
    }

    async fn remove_queue_entry(&self, id: &WorkItemId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM merge_queue WHERE work_item_id = ?1",
                [id.as_str()],
            )
            .map_err(backend(format!("remove {id} from the merge queue")))?;
            Ok(())
        })
        .await
    }

    async fn save_repo_queue(&self, state: &RepoQueueState) -> Result<(), StoreError> {
        let state = state.clone();
        self.write(move |conn| save_repo(conn, &state)).await
    }

    async fn journal_queue(
        &self,
        repo: &str,
        task: Option<&WorkItemId>,
        what: &str,
        by: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let row = (
            repo.to_string(),
            task.map(|t| t.as_str().to_string()),
            what.to_string(),
            by.to_string(),
            detail.to_string(),
        );
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO merge_queue_journal (repo, work_item_id, what, by, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                (&row.0, &row.1, &row.2, &row.3, &row.4),
            )
            .map_err(backend("journal a merge-queue decision"))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::ports::Store;
    use orchestrator_actors::ports::merge_queue::{
        EntryState, Freeze, FreezeKind, MergeQueueStore, QueueEntry, RepoQueueState,
    };

    use crate::store::SqliteStore;
    use crate::store::test_support::{new_task, temp_store};

    #[tokio::test]
    async fn a_reopened_store_keeps_the_queue_in_order_and_the_freeze() {
        let (dir, store) = temp_store().await;
        let mut ids = Vec::new();
        for n in ["T-1", "T-2"] {
            ids.push(store.create_task(new_task(n)).await.unwrap().work_item_id);
        }
        for (seq, id) in ids.iter().enumerate().rev() {
            let entry = QueueEntry {
                work_item_id: id.clone(),
                repo: "acme/app".into(),
                seq: seq as i64 + 1,
                state: if seq == 0 {
                    EntryState::Testing
                } else {
                    EntryState::Waiting
                },
                candidate: (seq == 0).then(|| "abc".to_string()),
                base: None,
                ready: false,
                joined_at: "2026-12-03T00:00:00.000Z".into(),
            };
            store.save_queue_entry(&entry).await.unwrap();
        }
        let frozen = RepoQueueState {
            repo: "acme/app".into(),
            frozen: Some(Freeze {
                kind: FreezeKind::MainRed,
                by: "merge-queue".into(),
                reason: "main is red at abc".into(),
                at: "2026-12-03T00:00:00.000Z".into(),
            }),
            last_green_main: Some("def".into()),
        };
        store.save_repo_queue(&frozen).await.unwrap();
        store
            .journal_queue("acme/app", Some(&ids[0]), "frozen", "merge-queue", "x")
            .await
            .unwrap();
        store.close().await;

        let store = SqliteStore::open(&dir.path().join("orchestrator.db"))
            .await
            .unwrap();
        let (entries, repos) = store.load_merge_queue().await.unwrap();
        let order: Vec<_> = entries.iter().map(|e| e.work_item_id.clone()).collect();
        assert_eq!(order, ids);
        assert_eq!(entries[0].state, EntryState::Testing);
        assert_eq!(entries[0].candidate.as_deref(), Some("abc"));
        assert_eq!(repos, vec![frozen]);
        store.remove_queue_entry(&ids[0]).await.unwrap();
        store.remove_queue_entry(&ids[0]).await.unwrap();
        assert_eq!(store.load_merge_queue().await.unwrap().0.len(), 1);
    }
}
