//! What `GET /metrics` says, in the OpenMetrics/Prometheus text format through
//! `prometheus-client` (ADR 0013). Every figure is read when scraped — the journal's
//! aggregates, the queue's counts and park, the breaker dispatch describes — so the metrics
//! cannot drift from what the API shows, and no second writer keeps counters of its own.

use orchestrator_actors::ports::QueueOverview;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::store::JournalFigures;

/// The content type of the reply (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds, in seconds, of the agent-run duration histogram: a minute to two hours.
const RUN_SECONDS_BUCKETS: [f64; 9] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
];

/// The dispatcher's circuit breaker, as `GET /queue` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerFigures {
    /// Whether it is open (no claims).
    pub open: bool,
    /// Times it opened since the service started.
    pub opened_total: u64,
}

/// One repository's merge queue, as the `merge-queue` actor shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeQueueFigures {
    /// The repository.
    pub repo: String,
    /// Tasks waiting for the lease.
    pub waiting: u64,
    /// Tasks holding it (its batch).
    pub holding: u64,
    /// Seconds the longest-waiting task has waited.
    pub oldest_wait_seconds: f64,
    /// Whether it is frozen.
    pub frozen: bool,
    /// Its counters since the service started: CI runs, merged, bounced.
    pub ci_runs: u64,
    /// Tasks merged.
    pub merged: u64,
    /// Tasks sent back.
    pub bounced: u64,
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The journal's aggregates.
    pub journal: JournalFigures,
    /// The queue's counts and park.
    pub queue: QueueOverview,
    /// The breaker, when dispatch answered.
    pub breaker: Option<BreakerFigures>,
    /// Each repository's merge queue, when the queue answered.
    pub merge_queues: Option<Vec<MergeQueueFigures>>,
    /// Each watched filesystem's fill (what it holds, fill as a ratio), when the disk
    /// watchdog answered.
    pub disks: Option<Vec<(String, f64)>>,
}

/// A label set: name/value pairs.
type Labels = Vec<(&'static str, String)>;

/// A counter of dollars.
type DollarCounter = Counter<f64, std::sync::atomic::AtomicU64>;

/// Renders a snapshot as OpenMetrics text (ending in `# EOF`).
pub fn render(snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("orchestrator");

    let tasks = Family::<Labels, Gauge>::default();
    registry.register("tasks", "Tasks by stage and phase", tasks.clone());
    for t in &snapshot.journal.tasks {
        let labels = vec![("stage", t.stage.clone()), ("phase", t.phase.clone())];
        tasks.get_or_create(&labels).set(t.count as i64);
    }

    let jobs = Family::<Labels, Gauge>::default();
    registry.register("jobs", "Jobs in the durable queue by status", jobs.clone());
    for (status, n) in &snapshot.queue.counts {
        jobs.get_or_create(&vec![("status", status.clone())])
            .set(*n as i64);
    }

    let runs = Family::<Labels, Counter>::default();
    registry.register(
        "agent_runs",
        "Ended agent runs by role and outcome",
        runs.clone(),
    );
    for r in &snapshot.journal.runs {
        let labels = vec![("role", r.role.clone()), ("outcome", r.outcome.clone())];
        runs.get_or_create(&labels).inc_by(r.count);
    }

    let durations = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
        Histogram::new(RUN_SECONDS_BUCKETS)
    });
    registry.register_with_unit(
        "agent_run_duration",
        "Wall-clock time of ended agent runs by role",
        Unit::Seconds,
        durations.clone(),
    );
    for (role, seconds) in &snapshot.journal.run_seconds {
        durations
            .get_or_create(&vec![("role", role.clone())])
            .observe(*seconds);
    }

    let tokens = Family::<Labels, Counter>::default();
    registry.register(
        "agent_tokens",
        "Tokens used by agent runs by role, model and kind",
        tokens.clone(),
    );
    let cost = Family::<Labels, DollarCounter>::default();
    registry.register(
        "agent_cost_usd",
        "What agent runs cost, in US dollars, by role and model",
        cost.clone(),
    );
    for u in &snapshot.journal.usage {
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cache_read", u.cache_read_tokens),
            ("cache_creation", u.cache_creation_tokens),
        ] {
            let labels = vec![
                ("role", u.role.clone()),
                ("model", u.model.clone()),
                ("kind", kind.to_string()),
            ];
            tokens.get_or_create(&labels).inc_by(n);
        }
        cost.get_or_create(&vec![("role", u.role.clone()), ("model", u.model.clone())])
            .inc_by(u.cost_usd);
    }

    let deliveries = Family::<Labels, Counter>::default();
    registry.register(
        "webhook_deliveries",
        "Journaled webhook deliveries by source and outcome",
        deliveries.clone(),
    );
    for d in &snapshot.journal.deliveries {
        let labels = vec![("source", d.source.clone()), ("outcome", d.outcome.clone())];
        deliveries.get_or_create(&labels).inc_by(d.count);
    }

    let parked = Gauge::<i64>::default();
    registry.register(
        "queue_parked",
        "1 while the whole queue is parked on the account's usage limit",
        parked.clone(),
    );
    parked.set(i64::from(snapshot.queue.parked.is_some()));

    if let Some(breaker) = snapshot.breaker {
        let open = Gauge::<i64>::default();
        registry.register(
            "breaker_open",
            "1 while dispatch's circuit breaker is open (no claims)",
            open.clone(),
        );
        open.set(i64::from(breaker.open));
        let opened = Counter::<u64>::default();
        registry.register(
            "breaker_opened",
            "Times dispatch's circuit breaker opened since the service started",
            opened.clone(),
        );
        opened.inc_by(breaker.opened_total);
    }

    if let Some(queues) = &snapshot.merge_queues {
        let depth = Family::<Labels, Gauge>::default();
        registry.register(
            "merge_queue_depth",
            "Tasks in a repository's merge queue, waiting or holding the lease",
            depth.clone(),
        );
        let wait = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register_with_unit(
            "merge_queue_oldest_wait",
            "How long the longest-waiting task of a repository's merge queue has waited",
            prometheus_client::registry::Unit::Seconds,
            wait.clone(),
        );
        let frozen = Family::<Labels, Gauge>::default();
        registry.register(
            "merge_queue_frozen",
            "1 while a repository's merge queue is frozen",
            frozen.clone(),
        );
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "merge_queue_events",
            "What a repository's merge queue did since the service started: CI runs, tasks merged, tasks sent back",
            events.clone(),
        );
        for q in queues {
            let repo = || vec![("repo", q.repo.clone())];
            let mut labels = repo();
            labels.push(("state", "waiting".into()));
            depth.get_or_create(&labels).set(q.waiting as i64);
            let mut labels = repo();
            labels.push(("state", "holding".into()));
            depth.get_or_create(&labels).set(q.holding as i64);
            wait.get_or_create(&repo()).set(q.oldest_wait_seconds);
            frozen.get_or_create(&repo()).set(i64::from(q.frozen));
            for (event, n) in [
                ("ci_run", q.ci_runs),
                ("merged", q.merged),
                ("bounced", q.bounced),
            ] {
                let mut labels = repo();
                labels.push(("event", event.into()));
                events.get_or_create(&labels).inc_by(n);
            }
        }
    }

    if let Some(disks) = &snapshot.disks {
        let fill = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register_with_unit(
            "disk_fill",
            "How full each filesystem the service writes to is (data, clones, worktrees), 0 to 1",
            prometheus_client::registry::Unit::Other("ratio".into()),
            fill.clone(),
        );
        for (holds, ratio) in disks {
            fill.get_or_create(&vec![("filesystem", holds.clone())])
                .set(*ratio);
        }
    }

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
