//! The single writer: one connection on a dedicated `store-writer` thread that runs write
//! closures one at a time. SQLite allows one writer anyway; serialising here means no
//! SQLITE_BUSY between our own writes and no async worker ever blocks on a lock or an fsync.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use orchestrator_actors::ports::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{OpenError, lock};

/// A unit of work for the writer thread; it replies through a channel it captured.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// What a job sends back: its result, or the panic it raised, to be re-raised in the caller.
type Reply<T> = Result<Result<T, StoreError>, Box<dyn Any + Send>>;

/// Handle to the writer thread.
pub(crate) struct Writer {
    /// Queue into the thread; `None` once stopped, which is how later writes learn the store
    /// is closed. Dropping it (also when the store is dropped unclosed) ends the thread after
    /// the jobs already queued.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Joined by [`Writer::stop`]; detached if the store is dropped without closing.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the thread, which runs `init` to open (and migrate) its connection before
    /// serving jobs. Returns what `init` produced besides the connection.
    pub(crate) async fn start<R: Send + 'static>(
        path: &Path,
        init: impl FnOnce() -> Result<(Connection, R), OpenError> + Send + 'static,
    ) -> Result<(Self, R), OpenError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, is_ready) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let conn = match init() {
                    Ok((conn, value)) => {
                        if ready.send(Ok(value)).is_err() {
                            return; // the opener gave up waiting
                        }
                        conn
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                serve(conn, queue);
            })
            .map_err(|e| writer_err(path, format!("cannot spawn thread: {e}")))?;
        let writer = Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        };
        let outcome = is_ready.await;
        match outcome {
            Ok(Ok(value)) => Ok((writer, value)),
            Ok(Err(e)) => {
                writer.stop().await;
                Err(e)
            }
            Err(_) => {
                writer.stop().await;
                Err(writer_err(path, "the thread panicked while opening".into()))
            }
        }
    }

    /// Runs `f` on the writer connection and returns its result. A panic in `f` is re-raised
    /// here and leaves the writer serving. Once queued, the write runs even if the caller
    /// stops waiting — like any request already sent to a database.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel::<Reply<T>>();
        let job: Job = Box::new(move |conn| {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
            let _ = reply.send(outcome); // the caller may have stopped waiting
        });
        lock(&self.jobs)
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        match answer.await {
            Ok(Ok(result)) => result,
            Ok(Err(payload)) => panic::resume_unwind(payload),
            // Only if the thread died before running the job: nothing serves writes any more.
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Lets the thread finish the queued jobs, then joins it (off the async worker threads).
    /// Idempotent.
    pub(crate) async fn stop(&self) {
        drop(lock(&self.jobs).take());
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the store writer thread panicked"),
                Err(e) => tracing::error!(error = %e, "could not join the store writer thread"),
            }
        }
    }
}

/// The thread's loop: run jobs until every sender is gone, then close the connection.
fn serve(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        job(&mut conn);
        // A job that left its transaction open (e.g. a raw BEGIN) would hold the write lock
        // and its half-done changes forever; undo it rather than let the next job commit it.
        if !conn.is_autocommit() {
            tracing::error!("a store write left its transaction open; rolling it back");
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rolling back the abandoned transaction failed");
            }
        }
    }
    // Closing explicitly (rather than dropping) surfaces a failed final WAL checkpoint.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the store writer connection failed");
    }
}

fn writer_err(path: &Path, detail: String) -> OpenError {
    OpenError::Writer {
        path: path.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use orchestrator_actors::ports::Store;

    use crate::store::test_support::{new_task, temp_store, work_item};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_creates_all_succeed() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        let mut handles = Vec::new();
        for i in 0..200 {
            let creator = Arc::clone(&store);
            handles.push(tokio::spawn(async move {
                creator
                    .create_task(new_task(&format!("T-{i}")))
                    .await
                    .map(drop)
            }));
            if i % 4 == 0 {
                let lister = Arc::clone(&store);
                handles.push(tokio::spawn(
                    async move { lister.list_tasks().await.map(drop) },
                ));
            }
        }
        for handle in handles {
            handle.await.unwrap().unwrap();
        }
        let tasks = store.list_tasks().await.unwrap();
        let ids: BTreeSet<_> = tasks.iter().map(|t| t.work_item_id.to_string()).collect();
        assert_eq!(tasks.len(), 200);
        assert_eq!(ids.len(), 200);
        for i in [0, 99, 199] {
            let journal = store
                .transitions(&work_item(&format!("T-{i}")))
                .await
                .unwrap();
            assert_eq!(journal.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_panicking_write_reaches_its_caller_and_the_writer_keeps_serving() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        let panicker = Arc::clone(&store);
        let outcome = tokio::spawn(async move {
            panicker
                .write(|_| -> Result<(), _> { panic!("boom in a write") })
                .await
        })
        .await;
        assert!(outcome.unwrap_err().is_panic());
        store.create_task(new_task("T-1")).await.unwrap();
        assert!(store.load_task(&work_item("T-1")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_transaction_left_open_by_a_write_is_rolled_back() {
        let (_dir, store) = temp_store().await;
        store
            .write(|conn| {
                conn.execute_batch(
                    "BEGIN IMMEDIATE;
                     INSERT INTO tasks (work_item_id, repo, title) VALUES ('T-9', 'r', 't');",
                )
                .map_err(crate::store::tasks::backend("test"))
            })
            .await
            .unwrap();
        // The next write must not commit the abandoned insert along with its own work.
        store.create_task(new_task("T-1")).await.unwrap();
        assert_eq!(store.load_task(&work_item("T-9")).await.unwrap(), None);
        assert_eq!(store.list_tasks().await.unwrap().len(), 1);
    }
}
