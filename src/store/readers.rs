//! The pool of read-only connections. Reads run on tokio's blocking pool, one per connection
//! at a time; in WAL mode they see the last committed state and never wait for the writer.

use std::panic;
use std::path::Path;
use std::sync::{Arc, Mutex};

use orchestrator_actors::ports::StoreError;
use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{OpenError, connection, lock};

/// A fixed set of read-only connections.
pub(crate) struct Readers {
    /// One permit per pooled connection, so a permit guarantees an idle connection in `idle`.
    /// Closed by [`Readers::close`], which is how later reads learn the store is closed.
    permits: Arc<Semaphore>,
    /// The idle connections.
    idle: Arc<Mutex<Vec<Connection>>>,
    /// How many connections the pool was opened with.
    size: u32,
}

impl Readers {
    /// Opens `size` (at least one) read-only connections to an existing, migrated database.
    pub(crate) async fn open(path: &Path, size: usize) -> Result<Self, OpenError> {
        let size = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            (0..size)
                .map(|_| connection::open_reader(&owned))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        let conns = match opened {
            Ok(conns) => conns?,
            Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(OpenError::Configure {
                    path: path.to_owned(),
                    detail: format!("opening read connections was cancelled: {e}"),
                });
            }
        };
        Ok(Self {
            permits: Arc::new(Semaphore::new(conns.len())),
            idle: Arc::new(Mutex::new(conns)),
            size,
        })
    }

    /// Runs `f` on an idle connection, waiting for one if all are busy. A panic in `f` is
    /// re-raised here, as if `f` had run inline.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = Arc::clone(&self.idle);
        let outcome = tokio::task::spawn_blocking(move || {
            let lease = Lease::take(idle, permit)?;
            f(lease.conn())
        })
        .await;
        match outcome {
            Ok(result) => result,
            Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Waits for the reads in flight, then closes every connection. Idempotent.
    pub(crate) async fn close(&self) {
        let Ok(all) = self.permits.acquire_many(self.size).await else {
            return; // already closed
        };
        self.permits.close();
        let conns = std::mem::take(&mut *lock(&self.idle));
        drop(all);
        // Closing a read-only connection does no I/O worth moving off this thread: only a
        // writer checkpoints the WAL.
        drop(conns);
    }
}

/// A connection borrowed from the pool; returned on drop, even when the read panics.
struct Lease {
    /// Always `Some` until dropped.
    conn: Option<Connection>,
    /// Where it goes back.
    idle: Arc<Mutex<Vec<Connection>>>,
    /// Released only after the connection is back (fields drop after `Drop::drop`), so the
    /// next permit holder always finds one.
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn take(
        idle: Arc<Mutex<Vec<Connection>>>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Self, StoreError> {
        let conn = lock(&idle).pop().ok_or(StoreError::Closed)?;
        Ok(Self {
            conn: Some(conn),
            idle,
            _permit: permit,
        })
    }

    fn conn(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A read transaction left open would pin its snapshot and stop WAL checkpoints.
            if !conn.is_autocommit() {
                tracing::error!("a store read left its transaction open; rolling it back");
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %e, "rolling back the abandoned read failed");
                }
            }
            lock(&self.idle).push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use orchestrator_actors::ports::Store;
    use tokio::sync::oneshot;
    use tokio::time::timeout;

    use crate::store::StoreOptions;
    use crate::store::tasks::backend;
    use crate::store::test_support::{new_task, temp_store, temp_store_with, work_item};

    /// Below the 5 s busy timeout, so a read or write that waited on a lock fails the test.
    const PROMPTLY: Duration = Duration::from_secs(3);

    fn count_tasks(conn: &rusqlite::Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM tasks", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn reads_proceed_while_a_write_transaction_is_open() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        store.create_task(new_task("T-1")).await.unwrap();

        let (opened, is_open) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let writer = Arc::clone(&store);
        let write = tokio::spawn(async move {
            writer
                .write(move |conn| {
                    // The writer's transaction is open while the job runs.
                    conn.execute(
                        "INSERT INTO tasks (work_item_id, repo, title) VALUES ('T-2', 'r', 't')",
                        [],
                    )
                    .map_err(backend("test"))?;
                    opened.send(()).unwrap();
                    let _ = released.recv(); // also returns if the test failed and hung up
                    Ok(())
                })
                .await
        });
        is_open.await.unwrap();

        let seen = timeout(PROMPTLY, store.list_tasks())
            .await
            .expect("a read waited for the open write transaction")
            .unwrap();
        let ids: Vec<_> = seen.iter().map(|t| t.work_item_id.to_string()).collect();
        assert_eq!(ids, ["T-1"], "the uncommitted insert must not be visible");

        release.send(()).unwrap();
        write.await.unwrap().unwrap();
        assert!(store.load_task(&work_item("T-2")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn writes_commit_while_a_read_holds_a_snapshot() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        store.create_task(new_task("T-1")).await.unwrap();

        let (started, has_started) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let reader = Arc::clone(&store);
        let read = tokio::spawn(async move {
            reader
                .read(move |conn| {
                    conn.execute_batch("BEGIN").map_err(backend("test"))?;
                    let before = count_tasks(conn);
                    started.send(()).unwrap();
                    let _ = released.recv();
                    let after = count_tasks(conn);
                    conn.execute_batch("COMMIT").map_err(backend("test"))?;
                    Ok((before, after))
                })
                .await
        });
        has_started.await.unwrap();

        // With a rollback journal this commit would wait for the reader's lock and fail.
        timeout(PROMPTLY, store.create_task(new_task("T-2")))
            .await
            .expect("a write waited for an open read")
            .unwrap();

        release.send(()).unwrap();
        assert_eq!(
            read.await.unwrap().unwrap(),
            (1, 1),
            "the snapshot is stable"
        );
        assert_eq!(store.read(|conn| Ok(count_tasks(conn))).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_read_left_in_a_transaction_does_not_pin_its_snapshot() {
        let (_dir, store) = temp_store_with(StoreOptions { readers: 1 }).await;
        store
            .read(|conn| {
                conn.execute_batch("BEGIN").map_err(backend("test"))?;
                Ok(count_tasks(conn))
            })
            .await
            .unwrap();
        store.create_task(new_task("T-1")).await.unwrap();
        // The pool's only connection must see the new row, i.e. its old snapshot is gone.
        assert_eq!(store.read(|conn| Ok(count_tasks(conn))).await.unwrap(), 1);
    }
}
