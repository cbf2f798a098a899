//! The SQL behind `GET /metrics`: aggregates of the journal (tasks, agent runs, webhook
//! deliveries), read in one pass on a reader connection. What the figures mean and how they
//! are exposed is `crate::metrics`; this module only counts.

use orchestrator_actors::ports::StoreError;
use rusqlite::Connection;

use super::tasks::backend;

/// How many tasks stand in one stage and phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskCount {
    /// The pipeline stage.
    pub stage: String,
    /// The phase within it.
    pub phase: String,
    /// Tasks there.
    pub count: u64,
}

/// How many agent runs of one role ended one way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCount {
    /// The role.
    pub role: String,
    /// `succeeded`, `failed`, `timeout`, `transient`, … as journaled.
    pub outcome: String,
    /// Runs.
    pub count: u64,
}

/// What the agent runs of one role and model used, summed.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageSum {
    /// The role.
    pub role: String,
    /// The model, `unknown` when the run reported none.
    pub model: String,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Cache-creation tokens.
    pub cache_creation_tokens: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// How many webhook deliveries of one source came to one outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryCount {
    /// `plane` or `gitea`.
    pub source: String,
    /// `acted`, `ignored`, `superseded` (the reconciler found it no longer applied),
    /// `failed` (also abandoned), or `pending` while its outcome is not journaled yet.
    pub outcome: String,
    /// Deliveries.
    pub count: u64,
}

/// The journal's aggregates at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalFigures {
    /// Tasks by stage and phase (terminal ones included).
    pub tasks: Vec<TaskCount>,
    /// Ended agent runs by role and outcome.
    pub runs: Vec<RunCount>,
    /// Wall-clock seconds of every ended run, with its role.
    pub run_seconds: Vec<(String, f64)>,
    /// Tokens and cost by role and model.
    pub usage: Vec<UsageSum>,
    /// Webhook deliveries by source and outcome.
    pub deliveries: Vec<DeliveryCount>,
}

/// Reads every aggregate `GET /metrics` shows from the journal.
pub(crate) fn journal_figures(conn: &Connection) -> Result<JournalFigures, StoreError> {
    let what = "read the metrics";
    let mut figures = JournalFigures::default();
    let mut stmt = conn
        .prepare_cached("SELECT stage, phase, COUNT(*) FROM tasks GROUP BY stage, phase")
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| {
            Ok(TaskCount {
                stage: r.get(0)?,
                phase: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
            })
        })
        .map_err(backend(what))?
    {
        figures.tasks.push(row.map_err(backend(what))?);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT role, outcome, COUNT(*) FROM agent_runs WHERE outcome IS NOT NULL
             GROUP BY role, outcome",
        )
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| {
            Ok(RunCount {
                role: r.get(0)?,
                outcome: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
            })
        })
        .map_err(backend(what))?
    {
        figures.runs.push(row.map_err(backend(what))?);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT role, MAX(0.0, (julianday(finished_at) - julianday(started_at)) * 86400.0)
             FROM agent_runs WHERE finished_at IS NOT NULL",
        )
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<f64>>(1)?)))
        .map_err(backend(what))?
    {
        let (role, seconds): (String, Option<f64>) = row.map_err(backend(what))?;
        if let Some(seconds) = seconds {
            figures.run_seconds.push((role, seconds));
        }
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT role, COALESCE(model, 'unknown'), SUM(input_tokens), SUM(output_tokens),
                    SUM(cache_read_tokens), SUM(cache_creation_tokens), SUM(cost_usd)
             FROM agent_runs GROUP BY role, COALESCE(model, 'unknown')",
        )
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| {
            Ok(UsageSum {
                role: r.get(0)?,
                model: r.get(1)?,
                input_tokens: r.get::<_, i64>(2)? as u64,
                output_tokens: r.get::<_, i64>(3)? as u64,
                cache_read_tokens: r.get::<_, i64>(4)? as u64,
                cache_creation_tokens: r.get::<_, i64>(5)? as u64,
                cost_usd: r.get(6)?,
            })
        })
        .map_err(backend(what))?
    {
        figures.usage.push(row.map_err(backend(what))?);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT source, CASE WHEN error IS NOT NULL THEN 'failed'
                                 WHEN outcome IS NULL THEN 'pending'
                                 WHEN outcome LIKE 'ignored%' THEN 'ignored'
                                 WHEN outcome LIKE 'superseded%' THEN 'superseded'
                                 ELSE 'acted' END AS result, COUNT(*)
             FROM events GROUP BY source, result",
        )
        .map_err(backend(what))?;
    for row in stmt
        .query_map([], |r| {
            Ok(DeliveryCount {
                source: r.get(0)?,
                outcome: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
            })
        })
        .map_err(backend(what))?
    {
        figures.deliveries.push(row.map_err(backend(what))?);
    }
    Ok(figures)
}
