//! The single writer: one connection on a dedicated `store-writer` thread that runs write
//! closures. SQLite allows one writer anyway; serialising here means no SQLITE_BUSY between
//! our own writes and no async worker ever blocks on a lock or an fsync.
//!
//! Writes are group-committed: the thread takes every job already queued (up to
//! [`MAX_BATCH`]) and runs them in one transaction, each inside its own savepoint, so a job is
//! still all-or-nothing — one that fails or panics is rolled back to its savepoint and the
//! others keep their work. Callers hear back only once the batch's commit is known: a commit
//! that fails fails every job in the batch. Under load this turns many small commits (each a
//! WAL append and a lock round-trip) into one; an idle writer still commits a lone job at once.
//!
//! A job therefore must not issue transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`): the
//! writer owns the transaction. If it ends inside a job anyway (that, or SQLite rolling back
//! after an I/O error), no write of the batch so far is reported as saved.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use orchestrator_actors::ports::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{OpenError, checkpointer, lock};

/// Most jobs committed together; bounds how long the first job of a batch waits for the rest.
const MAX_BATCH: usize = 128;

/// A unit of work for the writer thread. It runs inside the batch transaction and returns
/// how to answer its caller once the batch's commit is known.
type Job = Box<dyn FnOnce(&mut Connection) -> Answer + Send>;

/// Answers a job's caller, given the outcome of the batch's commit.
type Answer = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Takes back what a write changed outside the database, when its batch fails to commit.
pub(crate) type Undo = Box<dyn FnOnce() + Send>;

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
    /// The checkpoint thread, which ends with the writer's connection; joined after it.
    checkpoints: Mutex<Option<JoinHandle<()>>>,
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
        let owned = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let opened = init().and_then(|(mut conn, value)| {
                    let (checkpoints, keepalive) = checkpointer::start(&owned, &mut conn)?;
                    Ok((conn, keepalive, (value, checkpoints)))
                });
                let (conn, keepalive) = match opened {
                    Ok((conn, keepalive, value)) => {
                        if ready.send(Ok(value)).is_err() {
                            return; // the opener gave up waiting
                        }
                        (conn, keepalive)
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                serve(conn, queue);
                // Only now, with the writer's connection closed, may the checkpoint thread
                // close its own: the last to close folds the log in and deletes it.
                drop(keepalive);
            })
            .map_err(|e| writer_err(path, format!("cannot spawn thread: {e}")))?;
        let writer = Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            checkpoints: Mutex::new(None),
        };
        let outcome = is_ready.await;
        match outcome {
            Ok(Ok((value, checkpoints))) => {
                *lock(&writer.checkpoints) = Some(checkpoints);
                Ok((writer, value))
            }
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

    /// Runs `f` on the writer connection, atomically, and returns its result once it is
    /// committed. A panic in `f` is re-raised here (its changes undone) and leaves the writer
    /// serving. Once queued, the write runs even if the caller stops waiting — like any
    /// request already sent to a database.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_undoable(move |conn| f(conn).map(|value| (value, None)))
            .await
    }

    /// Like [`Writer::call`], for a write that also changes state outside the database (a
    /// cache kept beside a table): besides its result, `f` returns how to take that change
    /// back, which runs on the writer thread — before any later write — if the batch's
    /// commit fails.
    pub(crate) async fn call_undoable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(T, Option<Undo>), StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel::<Reply<T>>();
        let job: Job = Box::new(move |conn| {
            let outcome = isolated(conn, f);
            Box::new(move |committed| {
                let outcome = match (outcome, committed) {
                    (Ok(Ok((value, _))), Ok(())) => Ok(Ok(value)),
                    (Ok(Ok((_, undo))), Err(e)) => {
                        if let Some(undo) = undo {
                            undo();
                        }
                        Ok(Err(e.clone()))
                    }
                    (Ok(Err(e)), _) => Ok(Err(e)),
                    (Err(panic), _) => Err(panic),
                };
                let _ = reply.send(outcome); // the caller may have stopped waiting
            })
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
        let threads = [
            ("writer", lock(&self.thread).take()),
            ("checkpoint", lock(&self.checkpoints).take()),
        ];
        for (name, thread) in threads {
            let Some(thread) = thread else { continue };
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the store {name} thread panicked"),
                Err(e) => tracing::error!(error = %e, "could not join the store {name} thread"),
            }
        }
    }
}

/// The thread's loop: run the queued jobs a batch at a time until every sender is gone, then
/// close the connection.
fn serve(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
    }
    // Closing explicitly (rather than dropping) surfaces a failed final WAL checkpoint.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the store writer connection failed");
    }
}

/// Runs `batch` in one transaction and answers each job with the commit's outcome.
fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    // Answers waiting for the open transaction's commit.
    let mut pending: Vec<Answer> = Vec::with_capacity(batch.len());
    let mut open = begin(conn);
    for job in batch {
        let answer = job(conn);
        if open && conn.is_autocommit() {
            // The transaction ended inside this job: SQLite rolled it back (an I/O error, a
            // full disk) or the job broke the rules. What the batch wrote so far cannot be
            // vouched for, so none of it is reported as written.
            tracing::error!("the write transaction ended inside a write; failing its batch");
            let lost = StoreError::Backend(
                "the write transaction ended early; this write may not have been saved".into(),
            );
            for answer in pending.drain(..) {
                answer(Err(&lost));
            }
            answer(Err(&lost));
            open = begin(conn);
            continue;
        }
        pending.push(answer);
    }
    let committed = if open {
        statement(conn, "COMMIT").map_err(|e| StoreError::Backend(format!("commit writes: {e}")))
    } else {
        Ok(())
    };
    // A failed COMMIT can leave the transaction open; so can a job that broke the rules.
    if !conn.is_autocommit() {
        if committed.is_ok() {
            tracing::error!("a store write left a transaction open; rolling it back");
        }
        if let Err(e) = statement(conn, "ROLLBACK") {
            tracing::error!(error = %e, "rolling back the write batch failed");
        }
    }
    for answer in pending {
        answer(committed.as_ref().map(|_| ()));
    }
}

/// Begins a batch transaction; false if it cannot (another process holds the write lock
/// past the busy timeout), in which case each job's savepoint is a transaction of its own
/// and succeeds or fails by itself.
fn begin(conn: &Connection) -> bool {
    match statement(conn, "BEGIN IMMEDIATE") {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot begin a write batch; writing its jobs one by one");
            false
        }
    }
}

/// Runs `f` inside a savepoint: kept if `f` succeeds, rolled back if it fails or panics.
fn isolated<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Reply<T> {
    if let Err(e) = statement(conn, "SAVEPOINT write") {
        return Ok(Err(StoreError::Backend(format!("begin a write: {e}"))));
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
    let kept = matches!(outcome, Ok(Ok(_)));
    let ended = if kept {
        statement(conn, "RELEASE write")
    } else {
        statement(conn, "ROLLBACK TO write").and_then(|()| statement(conn, "RELEASE write"))
    };
    match ended {
        Ok(()) => outcome,
        // The savepoint is gone: the transaction ended inside the job (SQLite rolled it
        // back, or the job ended it itself). Whatever is open now must not be committed
        // with the others' work; the batch notices the ended transaction.
        Err(e) => {
            tracing::error!(error = %e, "a store write lost its savepoint");
            if !conn.is_autocommit()
                && let Err(e) = statement(conn, "ROLLBACK")
            {
                tracing::error!(error = %e, "rolling back after a broken write failed");
            }
            match outcome {
                Ok(Ok(_)) => Ok(Err(StoreError::Backend(format!(
                    "a write ended its transaction itself and was rolled back: {e}"
                )))),
                other => other,
            }
        }
    }
}

/// Runs a parameterless statement, prepared once per connection.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
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

    use crate::store::SqliteStore;
    use crate::store::tasks::backend;
    use crate::store::test_support::{
        fails_at_commit, hold_writer, new_task, temp_store, work_item,
    };
    use futures::poll;
    use orchestrator_actors::ports::{Store, StoreError};

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

    /// A write that inserts task `id` and then returns `outcome`.
    fn insert_then(
        id: &'static str,
        outcome: Result<(), StoreError>,
    ) -> impl FnOnce(&mut rusqlite::Connection) -> Result<(), StoreError> + Send + 'static {
        move |conn| {
            conn.execute(
                "INSERT INTO tasks (work_item_id, repo, title) VALUES (?1, 'r', 't')",
                [id],
            )
            .map_err(backend("test"))?;
            outcome
        }
    }

    /// A write as [`one_batch`] takes it.
    type Write =
        Box<dyn FnOnce(&mut rusqlite::Connection) -> Result<(), StoreError> + Send + 'static>;

    /// Runs `writes` as one batch: each is queued behind a held write before any of them runs.
    async fn one_batch(
        store: &Arc<SqliteStore>,
        writes: Vec<Write>,
    ) -> Vec<Result<(), StoreError>> {
        let release = hold_writer(store).await;
        let mut queued: Vec<_> = writes
            .into_iter()
            .map(|write| Box::pin(store.write(write)))
            .collect();
        for write in &mut queued {
            assert!(poll!(write.as_mut()).is_pending());
        }
        release.send(()).unwrap();
        futures::future::join_all(queued).await
    }

    /// The ids of every task in the store, sorted.
    async fn task_ids(store: &SqliteStore) -> Vec<String> {
        let mut ids: Vec<_> = store
            .list_tasks()
            .await
            .unwrap()
            .iter()
            .map(|t| t.work_item_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn a_failing_write_changes_nothing_while_its_batch_mates_commit() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        let refused = || Err(StoreError::Backend("refused after writing".into()));
        let outcomes = one_batch(
            &store,
            vec![
                Box::new(insert_then("T-1", Ok(()))),
                Box::new(insert_then("T-2", refused())),
                Box::new(insert_then("T-3", Ok(()))),
            ],
        )
        .await;
        let [first, failing, last]: [_; 3] = outcomes.try_into().unwrap();
        first.unwrap();
        last.unwrap();
        assert_eq!(failing, refused());
        assert_eq!(task_ids(&store).await, ["T-1", "T-3"]);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_write_of_the_batch() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        // A dangling link passes its savepoint but fails the deferred check at COMMIT.
        let outcomes = one_batch(
            &store,
            vec![
                Box::new(insert_then("T-1", Ok(()))),
                Box::new(fails_at_commit),
            ],
        )
        .await;
        for outcome in outcomes {
            let err = outcome.unwrap_err().to_string();
            assert!(
                err.contains("commit writes") && err.contains("FOREIGN KEY"),
                "{err}"
            );
        }
        assert_eq!(store.list_tasks().await.unwrap(), Vec::new());
        // The writer is left with no transaction open and keeps serving.
        store.create_task(new_task("T-4")).await.unwrap();
        assert!(store.load_task(&work_item("T-4")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn when_the_transaction_ends_inside_a_write_its_batch_is_not_reported_saved() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        let outcomes = one_batch(
            &store,
            vec![
                Box::new(insert_then("T-1", Ok(()))),
                Box::new(|conn| conn.execute_batch("ROLLBACK").map_err(backend("test"))),
                Box::new(insert_then("T-3", Ok(()))),
            ],
        )
        .await;
        let [before, breaker, after]: [_; 3] = outcomes.try_into().unwrap();
        let err = before.unwrap_err().to_string();
        assert!(err.contains("may not have been saved"), "{err}");
        assert!(breaker.is_err());
        // The writes after it get a transaction of their own.
        after.unwrap();
        assert_eq!(task_ids(&store).await, ["T-3"]);
    }

    #[tokio::test]
    async fn a_panicking_write_reaches_its_caller_undone_and_the_writer_keeps_serving() {
        let (_dir, store) = temp_store().await;
        let store = Arc::new(store);
        let panicker = Arc::clone(&store);
        let outcome = tokio::spawn(async move {
            panicker
                .write(|conn| -> Result<(), _> {
                    insert_then("T-9", Ok(()))(conn)?;
                    panic!("boom in a write")
                })
                .await
        })
        .await;
        assert!(outcome.unwrap_err().is_panic());
        store.create_task(new_task("T-1")).await.unwrap();
        assert!(store.load_task(&work_item("T-1")).await.unwrap().is_some());
        assert_eq!(store.load_task(&work_item("T-9")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_write_that_ends_the_transaction_itself_fails_and_what_it_opened_is_undone() {
        let (_dir, store) = temp_store().await;
        let err = store
            .write(|conn| {
                conn.execute_batch(
                    "COMMIT; BEGIN IMMEDIATE;
                     INSERT INTO tasks (work_item_id, repo, title) VALUES ('T-9', 'r', 't');",
                )
                .map_err(backend("test"))
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("ended its transaction itself"), "{err}");
        // The next write must not commit the abandoned insert along with its own work.
        store.create_task(new_task("T-1")).await.unwrap();
        assert_eq!(store.load_task(&work_item("T-9")).await.unwrap(), None);
        assert_eq!(store.list_tasks().await.unwrap().len(), 1);
    }
}
