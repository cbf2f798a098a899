//! Versioned schema migrations. Each pending migration runs in its own IMMEDIATE transaction
//! together with its `schema_migrations` row, so a crash leaves the schema at a known version
//! and a second process opening the same file concurrently cannot apply one twice.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::OpenError;

/// Every migration this build knows, as `(version, name, sql)`, in strictly increasing
/// version order. Append only: a released migration is never edited, since databases in the
/// field have already run it.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "pipeline", include_str!("migrations/0002_pipeline.sql")),
    (3, "agents", include_str!("migrations/0003_agents.sql")),
    (
        4,
        "integrations",
        include_str!("migrations/0004_integrations.sql"),
    ),
    (5, "tracker", include_str!("migrations/0005_tracker.sql")),
    (
        6,
        "replay-window",
        include_str!("migrations/0006_replay_window.sql"),
    ),
    (
        7,
        "event-bodies",
        include_str!("migrations/0007_event_bodies.sql"),
    ),
    (
        8,
        "body-dictionaries",
        include_str!("migrations/0008_body_dictionaries.sql"),
    ),
    (
        9,
        "jobs-by-task",
        include_str!("migrations/0009_jobs_by_task.sql"),
    ),
    (
        10,
        "adopted-runs",
        include_str!("migrations/0010_adopted_runs.sql"),
    ),
    (
        11,
        "unsettled-events",
        include_str!("migrations/0011_unsettled_events.sql"),
    ),
    (
        12,
        "merge-queue",
        include_str!("migrations/0012_merge_queue.sql"),
    ),
];

/// What opening did to the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// The migrations this open applied, as `(version, name)`, oldest first; empty when the
    /// database was already up to date.
    pub applied: Vec<(i64, String)>,
    /// The schema version the database is at now.
    pub current_version: i64,
}

/// The newest schema version this build can run against.
pub fn supported_version() -> i64 {
    MIGRATIONS.last().map_or(0, |&(version, _, _)| version)
}

/// Brings the schema up to [`supported_version`], refusing a database a newer build has
/// already migrated further.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<MigrationReport, OpenError> {
    let version_err = |source| OpenError::SchemaVersion {
        path: path.to_owned(),
        source,
    };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(version_err)?;
    let found = current_version(conn).map_err(version_err)?;
    refuse_newer(path, found)?;

    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let migrate_err = |source| OpenError::Migrate {
            path: path.to_owned(),
            version,
            name: name.to_string(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(migrate_err)?;
        // Another process may have migrated between our first look and taking the write lock.
        if current_version(&tx).map_err(migrate_err)? >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(migrate_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            (version, name),
        )
        .map_err(migrate_err)?;
        tx.commit().map_err(migrate_err)?;
        tracing::info!(
            db = %path.display(),
            version,
            name,
            "applied database migration"
        );
        applied.push((version, name.to_string()));
    }

    let current_version = current_version(conn).map_err(version_err)?;
    refuse_newer(path, current_version)?;
    Ok(MigrationReport {
        applied,
        current_version,
    })
}

fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )
}

fn refuse_newer(path: &Path, found: i64) -> Result<(), OpenError> {
    let supported = supported_version();
    if found > supported {
        return Err(OpenError::TooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::ports::Store;

    use super::*;
    use crate::store::SqliteStore;
    use crate::store::test_support::{new_task, temp_store, work_item};

    #[test]
    fn versions_strictly_increase_from_one() {
        assert_eq!(MIGRATIONS[0].0, 1);
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} then {}", pair[0].0, pair[1].0);
        }
        assert_eq!(supported_version(), MIGRATIONS.len() as i64);
    }

    async fn migration_rows(store: &SqliteStore) -> Vec<(i64, String)> {
        store
            .read(|conn| {
                let mut stmt = conn
                    .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
                    .unwrap();
                let rows = stmt
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .unwrap();
                Ok(rows.map(Result::unwrap).collect())
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn migrations_apply_once_and_reopening_applies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");

        let every: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|&(version, name, _)| (version, name.to_string()))
            .collect();
        assert_eq!(every[..2], [(1, "initial".into()), (2, "pipeline".into())]);
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.migration_report(),
            &MigrationReport {
                applied: every.clone(),
                current_version: supported_version(),
            }
        );
        assert_eq!(migration_rows(&store).await, every);
        store.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.migration_report(),
            &MigrationReport {
                applied: vec![],
                current_version: supported_version(),
            }
        );
        assert_eq!(migration_rows(&store).await.len(), every.len());
        store.close().await;
    }

    #[tokio::test]
    async fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        SqliteStore::open(&path).await.unwrap().close().await;
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES (99, 'future', '2030-01-01T00:00:00.000Z')",
                [],
            )
            .unwrap();
        }
        let err = SqliteStore::open(&path).await.unwrap_err();
        assert!(
            matches!(err, OpenError::TooNew { found: 99, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "database {} has schema version 99, newer than this build supports ({})",
                path.display(),
                supported_version()
            )
        );
    }

    #[tokio::test]
    async fn a_failed_migration_names_it_and_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        {
            // A stray table that the initial migration also creates makes it fail halfway.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE jobs (x INTEGER)").unwrap();
        }
        let err = SqliteStore::open(&path).await.unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("schema version 1 (initial)"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let tasks_tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'tasks'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tasks_tables, 0, "the failed migration was rolled back");
        assert_eq!(current_version(&conn).unwrap(), 0);
    }

    #[tokio::test]
    async fn bodies_journaled_before_0007_are_kept_byte_for_byte() {
        use orchestrator_actors::ports::EventJournal;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (
                     version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )
            .unwrap();
            for &(version, name, sql) in MIGRATIONS.iter().take_while(|m| m.0 < 7) {
                conn.execute_batch(sql).unwrap();
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?1, ?2, '2026-11-01T00:00:00.000Z')",
                    (version, name),
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO events (id, source, kind, dedup_key, payload)
                 VALUES (5, 'plane', 'issue.updated', 'plane:delivery:d5', '{\"é\": 1}')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let from_0007: Vec<_> = MIGRATIONS
            .iter()
            .filter(|m| m.0 >= 7)
            .map(|&(version, name, _)| (version, name.to_string()))
            .collect();
        assert_eq!(
            from_0007[..2],
            [
                (7, "event-bodies".to_string()),
                (8, "body-dictionaries".to_string())
            ]
        );
        assert_eq!(store.migration_report().applied, from_0007);
        assert_eq!(
            store.event_body(5).await.unwrap().as_deref(),
            Some("{\"é\": 1}".as_bytes())
        );
        assert_eq!(store.event_body(6).await.unwrap(), None);
        let payload_columns: i64 = store
            .read(|conn| {
                Ok(conn
                    .query_row(
                        "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'payload'",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap())
            })
            .await
            .unwrap();
        assert_eq!(payload_columns, 0);
        store.close().await;
    }

    /// Runs one statement on the writer, returning SQLite's message on failure.
    async fn exec(store: &SqliteStore, sql: &'static str) -> Result<usize, String> {
        store
            .write(move |conn| Ok(conn.execute(sql, []).map_err(|e| e.to_string())))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_transition_journal_is_append_only() {
        let (_dir, store) = temp_store().await;
        store.create_task(new_task("T-1")).await.unwrap();
        let err = exec(&store, "UPDATE transitions SET reason = 'rewritten'").await;
        assert_eq!(err, Err("transitions is append-only".into()));
        let err = exec(&store, "DELETE FROM transitions").await;
        assert_eq!(err, Err("transitions is append-only".into()));
        let journal = store.transitions(&work_item("T-1")).await.unwrap();
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].reason, "task created");
    }

    #[tokio::test]
    async fn a_queued_job_carries_no_trace_of_a_run() {
        let (_dir, store) = temp_store().await;
        store.create_task(new_task("T-1")).await.unwrap();
        let err = exec(
            &store,
            "INSERT INTO jobs (task_id, stage, role, status, pid)
             VALUES (1, 'analysis', 'analyst', 'queued', 42)",
        )
        .await
        .unwrap_err();
        assert!(err.contains("CHECK constraint failed"), "{err}");
        let inserted = exec(
            &store,
            "INSERT INTO jobs (task_id, stage, role, status, pid, run_id, started_at)
             VALUES (1, 'analysis', 'analyst', 'running', 42, 'run-1', '2024-01-01T00:00:00.000Z')",
        )
        .await;
        assert_eq!(inserted, Ok(1));
    }

    #[tokio::test]
    async fn a_task_has_at_most_one_active_job() {
        let (_dir, store) = temp_store().await;
        store.create_task(new_task("T-1")).await.unwrap();
        store.create_task(new_task("T-2")).await.unwrap();
        let queue_for_t1 =
            "INSERT INTO jobs (task_id, stage, role) VALUES (1, 'analysis', 'analyst')";
        assert_eq!(exec(&store, queue_for_t1).await, Ok(1));
        let err = exec(&store, queue_for_t1).await.unwrap_err();
        assert!(err.contains("UNIQUE constraint failed"), "{err}");
        // Running counts as active too.
        let err = exec(
            &store,
            "INSERT INTO jobs (task_id, stage, role, status, pid) VALUES (1, 'a', 'r', 'running', 7)",
        )
        .await
        .unwrap_err();
        assert!(err.contains("UNIQUE constraint failed"), "{err}");
        // Another task, and the same task once its job has finished, may queue.
        let queue_for_t2 =
            "INSERT INTO jobs (task_id, stage, role) VALUES (2, 'analysis', 'analyst')";
        assert_eq!(exec(&store, queue_for_t2).await, Ok(1));
        assert_eq!(
            exec(
                &store,
                "UPDATE jobs SET status = 'succeeded' WHERE task_id = 1"
            )
            .await,
            Ok(1)
        );
        assert_eq!(exec(&store, queue_for_t1).await, Ok(1));
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced() {
        let (_dir, store) = temp_store().await;
        let err = exec(
            &store,
            "INSERT INTO jobs (task_id, stage, role) VALUES (99, 'analysis', 'analyst')",
        )
        .await
        .unwrap_err();
        assert!(err.contains("FOREIGN KEY constraint failed"), "{err}");
    }
}
