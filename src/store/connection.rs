//! Opening and configuring SQLite connections: the pragmas every connection gets and the
//! errors that make a database unusable at startup. Every error names the database file,
//! because the operator reading it has to know which file to look at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// How long a statement waits for a lock held by another connection (or another process, e.g.
/// the sqlite3 shell) before failing with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Why a database could not be opened; every message names the database file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite could not open or create the file (e.g. its directory does not exist).
    #[error("cannot open database {}: {reason}", .path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason, without the path SQLite appends (it is already in the message).
        reason: String,
    },
    /// A pragma could not be set, or SQLite silently kept another value.
    #[error("cannot configure database {}: {detail}", .path.display())]
    Configure {
        /// The database file.
        path: PathBuf,
        /// Which setting failed, and why.
        detail: String,
    },
    /// The migration bookkeeping could not be read or created.
    #[error("cannot read the schema version of database {}: {source}", .path.display())]
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// A migration failed; its transaction was rolled back, so the schema is still at the
    /// previous version.
    #[error(
        "cannot migrate database {} to schema version {version} ({name}): {source}",
        .path.display()
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The migration that failed.
        version: i64,
        /// Its name.
        name: String,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// A newer build migrated this database; running an older one against it could corrupt it.
    #[error(
        "database {} has schema version {found}, newer than this build supports ({supported})",
        .path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The writer thread could not be started, or died while opening.
    #[error("cannot start the writer of database {}: {detail}", .path.display())]
    Writer {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Opens the one read-write connection: creates the file if needed and switches it to WAL,
/// which is what lets readers proceed while a write transaction is open.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open(path).map_err(|e| open_err(path, &e))?;
    set_busy_timeout(&conn, path)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| configure(path, format!("journal_mode=WAL: {e}")))?;
    // SQLite answers with the mode it actually uses instead of failing (e.g. `memory`).
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(configure(
            path,
            format!("journal_mode=WAL was refused; the database stays in {mode:?} mode"),
        ));
    }
    set_common(&conn, path)?;
    Ok(conn)
}

/// Opens the connection that runs WAL checkpoints beside the writer; it never writes rows.
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection, OpenError> {
    open_existing(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
}

/// Opens one read-only connection of the pool. The writer must have created and migrated the
/// file first: a read-only connection can neither create it nor switch it to WAL.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, OpenError> {
    open_existing(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Opens a further connection to the file the writer created, in `mode`.
fn open_existing(path: &Path, mode: OpenFlags) -> Result<Connection, OpenError> {
    let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_err(path, &e))?;
    set_busy_timeout(&conn, path)?;
    set_common(&conn, path)?;
    Ok(conn)
}

fn open_err(path: &Path, e: &rusqlite::Error) -> OpenError {
    let message = e.to_string();
    let suffix = format!(": {}", path.display());
    OpenError::Open {
        path: path.to_owned(),
        reason: message
            .strip_suffix(&suffix)
            .map_or_else(|| message.clone(), str::to_string),
    }
}

fn set_busy_timeout(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| configure(path, format!("busy_timeout: {e}")))
}

/// Settings that are per connection (not stored in the file), so every connection needs them.
fn set_common(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    // NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the
    // last transactions, which is an acceptable trade for not fsyncing every commit.
    for (name, value) in [("synchronous", "NORMAL"), ("foreign_keys", "ON")] {
        conn.pragma_update(None, name, value)
            .map_err(|e| configure(path, format!("{name}={value}: {e}")))?;
    }
    // Plans must not depend on the values bound to a statement: otherwise SQLite marks a
    // cached statement that compares a column with a parameter for re-preparing on every
    // new binding, and each execution of it parses and plans the SQL all over again.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| configure(path, format!("query planner stability: {e}")))?;
    Ok(())
}

fn configure(path: &Path, detail: String) -> OpenError {
    OpenError::Configure {
        path: path.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use crate::store::test_support::temp_store;

    #[tokio::test]
    async fn open_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("orchestrator.db");
        let err = SqliteStore::open(&path).await.unwrap_err();
        assert!(matches!(err, OpenError::Open { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot open database {}: unable to open database file",
                path.display()
            )
        );
        assert!(
            !path.parent().unwrap().exists(),
            "open must not create directories"
        );
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = SqliteStore::open(&path).await.unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a database"), "{err}");
    }

    #[tokio::test]
    async fn pragmas_are_set_on_writer_and_readers() {
        let (_dir, store) = temp_store().await;
        for (name, expected) in [
            ("journal_mode", "wal"),
            ("synchronous", "1"),
            ("foreign_keys", "1"),
            ("busy_timeout", "5000"),
        ] {
            assert_eq!(store.writer_pragma(name).await, expected, "writer {name}");
            assert_eq!(store.reader_pragma(name).await, expected, "reader {name}");
        }
    }

    #[tokio::test]
    async fn a_cached_statement_is_not_prepared_again_for_new_parameters() {
        let (_dir, store) = temp_store().await;
        let sql = "SELECT work_item_id FROM tasks WHERE repo = ?1 AND branch = ?2
                   ORDER BY id DESC LIMIT 1";
        for conn_kind in ["writer", "reader"] {
            let run = move |conn: &Connection| {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                for branch in ["feature/a", "feature/b", "feature/c"] {
                    stmt.query(["acme/app", branch]).unwrap().next().unwrap();
                }
                Ok(stmt.get_status(rusqlite::StatementStatus::RePrepare))
            };
            let reprepared = if conn_kind == "writer" {
                store.write(move |conn| run(conn)).await.unwrap()
            } else {
                store.read(run).await.unwrap()
            };
            assert_eq!(reprepared, 0, "{conn_kind}");
        }
    }

    #[tokio::test]
    async fn readers_are_read_only() {
        let (_dir, store) = temp_store().await;
        let err = store
            .read(|conn| {
                conn.execute("DELETE FROM tasks", [])
                    .map_err(crate::store::tasks::backend("test"))
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
