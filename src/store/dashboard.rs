//! The reads behind the web dashboard that no JSON route needs: each task's spend for the
//! board's cards (one aggregate, not one query per card) and where a run's log lies. Reads
//! only; what the dashboard shows of them is `crate::http::dashboard`.

use std::collections::HashMap;

use orchestrator_actors::ports::StoreError;
use rusqlite::{Connection, OptionalExtension};

use super::SqliteStore;
use super::tasks::backend;

/// What a task's agent runs came to so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TaskSpend {
    /// Agent runs journaled for it (running ones included).
    pub runs: u64,
    /// Their cost in US dollars.
    pub cost_usd: f64,
}

/// Every task's spend that has at least one run, by work-item id.
fn task_spend(conn: &Connection) -> Result<HashMap<String, TaskSpend>, StoreError> {
    let what = "read the tasks' spend";
    let mut stmt = conn
        .prepare_cached(
            "SELECT t.work_item_id, COUNT(r.id), COALESCE(SUM(r.cost_usd), 0)
             FROM agent_runs AS r JOIN tasks AS t ON t.id = r.task_id
             GROUP BY r.task_id",
        )
        .map_err(backend(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                TaskSpend {
                    runs: row.get::<_, i64>(1)?.max(0) as u64,
                    cost_usd: row.get(2)?,
                },
            ))
        })
        .map_err(backend(what))?;
    rows.collect::<Result<_, _>>().map_err(backend(what))
}

/// The log file journaled for `run_id`, if the run exists.
fn run_log_path(conn: &Connection, run_id: &str) -> Result<Option<String>, StoreError> {
    let what = format!("read the log path of run {run_id}");
    conn.prepare_cached("SELECT log_path FROM agent_runs WHERE run_id = ?1")
        .map_err(backend(&what))?
        .query_row([run_id], |row| row.get(0))
        .optional()
        .map_err(backend(&what))
}

impl SqliteStore {
    /// Every task's spend so far (tasks without runs are absent).
    pub async fn task_spend(&self) -> Result<HashMap<String, TaskSpend>, StoreError> {
        self.read(task_spend).await
    }

    /// Where the log of `run_id` was written, if such a run was journaled.
    pub async fn run_log_path(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |conn| run_log_path(conn, &run_id)).await
    }
}
