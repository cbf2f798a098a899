//! The SQLite-backed [`Store`]: one writer connection on its own thread plus a small pool of
//! read-only connections, over a WAL database that is migrated on open. All of the service's
//! SQL lives under this module.

mod cards;
mod checkpointer;
mod compression;
mod connection;
mod dashboard;
mod housekeeping;
mod intake;
mod intake_ports;
mod jobs;
mod merge_queue;
mod metrics;
mod migrations;
mod pulls;
mod readers;
mod reconcile;
mod replays;
mod tasks;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use orchestrator_actors::ports::{
    Job, JobStatus, JobStore, NewJob, NewRun, NewTask, NewTaskFields, ProcessId, PullRequest,
    PullRequestStore, QueueOverview, QueuePark, Requeue, RunFinish, RunRecord, RunningJob, Store,
    StoreError, TaskRecord, TaskUpdate, Transition,
};
use orchestrator_actors::{Stage, WorkItemId};
use rusqlite::Connection;

pub use connection::OpenError;
pub use dashboard::TaskSpend;
pub use metrics::{DeliveryCount, JournalFigures, RunCount, TaskCount, UsageSum};
pub use migrations::{MigrationReport, supported_version};
pub use reconcile::JournaledEvent;

use readers::Readers;
use writer::Writer;

/// Tuning for [`SqliteStore::open_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// How many read-only connections to pool, i.e. how many reads run at once; 0 counts as 1.
    pub readers: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { readers: 4 }
    }
}

/// The durable store: a WAL database with one writer thread and a pool of readers.
pub struct SqliteStore {
    /// The database file, for messages.
    path: PathBuf,
    /// What opening did to the schema.
    report: MigrationReport,
    /// The only connection that writes.
    writer: Writer,
    /// The read-only connections.
    readers: Readers,
    /// The delivery journal's replay window; used on the writer thread only.
    recent: Arc<Mutex<replays::RecentBodies>>,
    /// The compression dictionaries of delivery bodies, as committed.
    dictionaries: compression::dictionaries::Dictionaries,
    /// Makes a second, concurrent `close` wait until the first has finished.
    closing: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`, with default options.
    /// The parent directory must exist.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with(path, StoreOptions::default()).await
    }

    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open_with(path: &Path, options: StoreOptions) -> Result<Self, OpenError> {
        let owned = path.to_owned();
        let (writer, report) = Writer::start(path, move || {
            let mut conn = connection::open_writer(&owned)?;
            let report = migrations::migrate(&mut conn, &owned)?;
            Ok((conn, report))
        })
        .await?;
        // Readers only now: a read-only connection can neither create the file nor see a
        // half-migrated schema.
        let readers = match Readers::open(path, options.readers).await {
            Ok(readers) => readers,
            Err(e) => {
                writer.stop().await;
                return Err(e);
            }
        };
        Ok(Self {
            path: path.to_owned(),
            report,
            writer,
            readers,
            recent: Arc::default(),
            dictionaries: compression::dictionaries::Dictionaries::default(),
            closing: tokio::sync::Mutex::new(()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening did to the schema.
    pub fn migration_report(&self) -> &MigrationReport {
        &self.report
    }

    /// Waits for in-flight reads and queued writes, then closes every connection and joins
    /// the writer thread. Idempotent; afterwards every operation fails with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        let _one_at_a_time = self.closing.lock().await;
        self.readers.close().await;
        self.writer.stop().await;
    }

    /// Runs `f` on the writer connection, on the writer thread.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.call(f).await
    }

    /// Like [`SqliteStore::write`], for a write that also changes state outside the database;
    /// see [`Writer::call_undoable`].
    pub(crate) async fn write_undoable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(T, Option<writer::Undo>), StoreError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        self.writer.call_undoable(f).await
    }

    /// The journal's aggregates behind `GET /metrics` (one read).
    pub async fn journal_figures(&self) -> Result<JournalFigures, StoreError> {
        self.read(metrics::journal_figures).await
    }

    /// Runs `f` on a pooled read-only connection, on tokio's blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.call(f).await
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("schema_version", &self.report.current_version)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord, StoreError> {
        self.write(move |conn| tasks::create_task(conn, &task))
            .await
    }

    async fn load_task(&self, id: &WorkItemId) -> Result<Option<TaskRecord>, StoreError> {
        let id = id.clone();
        self.read(move |conn| tasks::load_task(conn, &id)).await
    }

    async fn restart_task(
        &self,
        old: &WorkItemId,
        task: NewTask,
    ) -> Result<TaskRecord, StoreError> {
        let old = old.clone();
        self.write(move |conn| tasks::restart_task(conn, &old, &task))
            .await
    }

    async fn active_task_ids(&self) -> Result<Vec<WorkItemId>, StoreError> {
        self.read(tasks::active_task_ids).await
    }

    async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(tasks::list_tasks).await
    }

    async fn transitions(&self, id: &WorkItemId) -> Result<Vec<Transition>, StoreError> {
        let id = id.clone();
        self.read(move |conn| tasks::transitions(conn, &id)).await
    }

    async fn record_transition(
        &self,
        id: &WorkItemId,
        from: Stage,
        to: Stage,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let reason = reason.to_string();
        self.write(move |conn| tasks::record_transition(conn, &id, from, to, &reason))
            .await
    }

    async fn update_task(
        &self,
        id: &WorkItemId,
        expected: Stage,
        update: TaskUpdate,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(move |conn| tasks::update_task(conn, &id, expected, &update))
            .await
    }

    async fn create_numbered_task(
        &self,
        prefix: &str,
        task: NewTaskFields,
    ) -> Result<TaskRecord, StoreError> {
        let prefix = prefix.to_string();
        self.write(move |conn| tasks::create_numbered_task(conn, &prefix, &task))
            .await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: NewJob) -> Result<i64, StoreError> {
        self.write(move |conn| jobs::enqueue_job(conn, &job)).await
    }

    async fn claim_jobs(&self, max_running: usize, boot_id: &str) -> Result<Vec<Job>, StoreError> {
        let boot_id = boot_id.to_string();
        self.write(move |conn| jobs::claim_jobs(conn, max_running, &boot_id))
            .await
    }

    async fn finish_job(
        &self,
        job_id: i64,
        run_id: &str,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let error = error.map(str::to_string);
        let run_id = run_id.to_string();
        self.write(move |conn| jobs::finish_job(conn, job_id, &run_id, status, error.as_deref()))
            .await
    }

    async fn set_job_process(
        &self,
        job_id: i64,
        run_id: &str,
        process: ProcessId,
    ) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        self.write(move |conn| jobs::set_job_process(conn, job_id, &run_id, process))
            .await
    }

    async fn requeue_job(
        &self,
        job_id: i64,
        run_id: &str,
        how: Requeue,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let (run_id, reason) = (run_id.to_string(), reason.to_string());
        self.write(move |conn| jobs::requeue_job(conn, job_id, &run_id, &how, &reason))
            .await
    }

    async fn running_jobs(&self) -> Result<Vec<RunningJob>, StoreError> {
        self.read(jobs::running_jobs).await
    }

    async fn park_queue(&self, until_unix: i64, reason: &str) -> Result<(), StoreError> {
        let reason = reason.to_string();
        self.write(move |conn| jobs::park_queue(conn, until_unix, &reason))
            .await
    }

    async fn queue_park(&self) -> Result<Option<QueuePark>, StoreError> {
        self.read(jobs::queue_park).await
    }

    async fn queue_overview(&self) -> Result<QueueOverview, StoreError> {
        self.read(jobs::queue_overview).await
    }

    async fn cancel_queued_jobs(&self, id: &WorkItemId) -> Result<u32, StoreError> {
        let id = id.clone();
        self.write(move |conn| jobs::cancel_queued_jobs(conn, &id))
            .await
    }

    async fn requeue_stale_jobs(&self, boot_id: &str) -> Result<u32, StoreError> {
        let boot_id = boot_id.to_string();
        self.write(move |conn| jobs::requeue_stale_jobs(conn, &boot_id))
            .await
    }

    async fn adopt_job(
        &self,
        job_id: i64,
        run_id: &str,
        boot_id: &str,
    ) -> Result<bool, StoreError> {
        let (run_id, boot_id) = (run_id.to_string(), boot_id.to_string());
        self.write(move |conn| jobs::adopt_job(conn, job_id, &run_id, &boot_id))
            .await
    }

    async fn active_job(&self, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
        let id = id.clone();
        self.read(move |conn| jobs::active_job(conn, &id)).await
    }

    async fn last_job(&self, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
        let id = id.clone();
        self.read(move |conn| jobs::last_job(conn, &id)).await
    }

    async fn start_run(&self, run: NewRun) -> Result<(), StoreError> {
        self.write(move |conn| jobs::start_run(conn, &run)).await
    }

    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        self.write(move |conn| jobs::finish_run(conn, &run_id, &finish))
            .await
    }

    async fn runs(&self, id: &WorkItemId) -> Result<Vec<RunRecord>, StoreError> {
        let id = id.clone();
        self.read(move |conn| jobs::runs(conn, &id)).await
    }
}

/// Locks a std mutex, ignoring poison: every critical section here is a push, pop or take
/// that cannot leave the data half-changed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
impl SqliteStore {
    /// A pragma's value as seen by the writer connection.
    pub(crate) async fn writer_pragma(&self, name: &'static str) -> String {
        self.write(move |conn| test_support::pragma(conn, name))
            .await
            .unwrap()
    }

    /// A pragma's value as seen by a reader connection.
    pub(crate) async fn reader_pragma(&self, name: &'static str) -> String {
        self.read(move |conn| test_support::pragma(conn, name))
            .await
            .unwrap()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared fixtures for the store's tests.

    use super::*;

    /// A fresh store in a temporary directory, which must outlive it.
    pub(crate) async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
        temp_store_with(StoreOptions::default()).await
    }

    /// Like [`temp_store`], with options.
    pub(crate) async fn temp_store_with(options: StoreOptions) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_with(&dir.path().join("orchestrator.db"), options)
            .await
            .unwrap();
        (dir, store)
    }

    /// Every row `sql` selects, read on a reader connection and mapped by `row`.
    pub(crate) async fn select<T: Send + 'static>(
        store: &SqliteStore,
        sql: &'static str,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        store
            .read(move |conn| {
                let mut stmt = conn.prepare(sql).unwrap();
                let rows = stmt.query_map([], row).unwrap();
                Ok(rows.collect::<Result<Vec<_>, _>>().unwrap())
            })
            .await
            .unwrap()
    }

    /// A valid id.
    pub(crate) fn work_item(id: &str) -> WorkItemId {
        WorkItemId::parse(id).unwrap()
    }

    /// A task to create.
    pub(crate) fn new_task(id: &str) -> NewTask {
        NewTask {
            work_item_id: work_item(id),
            repo: "acme/app".into(),
            title: format!("title {id}"),
            description: format!("description of {id}"),
            labels: Vec::new(),
        }
    }

    /// Holds the writer busy until the returned sender is used (or dropped), so that writes
    /// queued meanwhile run as one batch.
    pub(crate) async fn hold_writer(store: &Arc<SqliteStore>) -> std::sync::mpsc::Sender<()> {
        let (entered, is_entered) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = Arc::clone(store);
        tokio::spawn(async move {
            holder
                .write(move |_| {
                    entered.send(()).unwrap();
                    let _ = released.recv();
                    Ok(())
                })
                .await
        });
        is_entered.await.unwrap();
        release
    }

    /// A write that passes its savepoint but fails the deferred foreign-key check at COMMIT,
    /// failing its whole batch.
    pub(crate) fn fails_at_commit(conn: &mut Connection) -> Result<(), StoreError> {
        conn.execute_batch(
            "PRAGMA defer_foreign_keys = ON;
             INSERT INTO task_links (work_item_id, tracker, project_ref, issue_ref)
             VALUES ('NOPE-1', 'plane', 'p', 'i');",
        )
        .map_err(tasks::backend("test"))
    }

    /// A pragma's current value, as text.
    pub(crate) fn pragma(conn: &Connection, name: &str) -> Result<String, StoreError> {
        use rusqlite::types::Value;
        let value: Value = conn
            .pragma_query_value(None, name, |row| row.get(0))
            .map_err(tasks::backend(format!("read pragma {name}")))?;
        Ok(match value {
            Value::Integer(i) => i.to_string(),
            Value::Text(s) => s,
            other => format!("{other:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::test_support::*;
    use super::*;

    #[tokio::test]
    async fn every_operation_fails_with_closed_after_close() {
        let (_dir, store) = temp_store().await;
        let id = store
            .create_task(new_task("T-1"))
            .await
            .unwrap()
            .work_item_id;
        store.close().await;
        store.close().await; // idempotent

        assert_eq!(
            store.create_task(new_task("T-2")).await,
            Err(StoreError::Closed)
        );
        assert_eq!(store.load_task(&id).await, Err(StoreError::Closed));
        assert_eq!(store.active_task_ids().await, Err(StoreError::Closed));
        assert_eq!(store.list_tasks().await, Err(StoreError::Closed));
        assert_eq!(store.transitions(&id).await, Err(StoreError::Closed));
        assert_eq!(
            store
                .record_transition(&id, Stage::Created, Stage::Analysis, "go")
                .await,
            Err(StoreError::Closed)
        );
    }

    #[tokio::test]
    async fn close_waits_for_work_in_flight_and_releases_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        let store = std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
        let writer = std::sync::Arc::clone(&store);
        let write = tokio::spawn(async move {
            writer
                .write(|conn| {
                    std::thread::sleep(Duration::from_millis(200));
                    tasks::create_task(conn, &new_task("T-1"))
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.close().await;
        write
            .await
            .unwrap()
            .expect("a queued write completes before close");
        // The last connection closing checkpoints and removes the WAL.
        assert!(!dir.path().join("orchestrator.db-wal").exists());

        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.load_task(&work_item("T-1")).await.unwrap().is_some());
        store.close().await;
    }

    #[tokio::test]
    async fn dropping_without_close_neither_hangs_nor_loses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.create_task(new_task("T-1")).await.unwrap();
        drop(store);

        let store = tokio::time::timeout(Duration::from_secs(10), SqliteStore::open(&path))
            .await
            .expect("reopening after a drop hung")
            .unwrap();
        assert_eq!(store.list_tasks().await.unwrap().len(), 1);
        assert!(store.migration_report().applied.is_empty());
    }

    #[tokio::test]
    async fn a_pool_of_zero_readers_still_reads() {
        let (_dir, store) = temp_store_with(StoreOptions { readers: 0 }).await;
        assert_eq!(store.list_tasks().await.unwrap(), vec![]);
    }
}

#[async_trait]
impl PullRequestStore for SqliteStore {
    async fn ensure_pull_request(
        &self,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
    ) -> Result<(PullRequest, bool), StoreError> {
        let (repo, head, base, title) = (
            repo.to_string(),
            head.to_string(),
            base.to_string(),
            title.to_string(),
        );
        self.write(move |conn| pulls::ensure_pull_request(conn, &repo, &head, &base, &title))
            .await
    }

    async fn mark_pull_request_merged(&self, repo: &str, head: &str) -> Result<bool, StoreError> {
        let (repo, head) = (repo.to_string(), head.to_string());
        self.write(move |conn| pulls::mark_merged(conn, &repo, &head))
            .await
    }

    async fn pull_request(
        &self,
        repo: &str,
        head: &str,
    ) -> Result<Option<PullRequest>, StoreError> {
        let (repo, head) = (repo.to_string(), head.to_string());
        self.read(move |conn| pulls::latest(conn, &repo, &head))
            .await
    }
}
