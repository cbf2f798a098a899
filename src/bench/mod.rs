//! `orchestrator bench`: seeds a fresh data dir with N non-terminal tasks (by default idle
//! ones, each waiting on a human — see [`crate::bench::seed`]), starts this very binary's
//! `serve` on it, and measures what docs/benchmarks.md records — time until every task actor
//! is up and `/health` answers, idle resident memory, `GET /actors` latency, and the graceful
//! stop. A measurement tool, not a test: it asserts only that what it measured is what it
//! meant to measure (all N actors really up and, for idle tasks, the boot changed nothing).

pub mod chaos;
pub mod dashboard;
pub mod dispatch;
pub mod merge_queue;
pub mod pipeline;
pub mod seed;
pub mod webhooks;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::seed::{Seed, seed};
use crate::store::SqliteStore;

/// Bench parameters.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Non-terminal tasks to seed (default 10,000); with `--chaos`, tasks of each run
    /// (default 12).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// What the tasks are doing when the service starts: `idle` (waiting on a human:
    /// approval, deploy confirmation, blocked, paused) or `created` (every one starts its
    /// pipeline at boot).
    #[arg(long, value_enum, default_value_t = Seed::Idle)]
    pub seed: Seed,
    /// Timed `GET /actors` requests per variant.
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// Measure the pipeline instead (dry-run agent, local forge): per-task overhead, then a
    /// batch of tasks across several repos.
    #[arg(long)]
    pub pipeline: bool,
    /// With `--pipeline`: tasks in the batch.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// With `--pipeline` or `--chaos`: repositories the tasks are spread over (default 4 with
    /// `--pipeline`, 2 with `--chaos`).
    #[arg(long)]
    pub repos: Option<usize>,
    /// With `--pipeline` or `--chaos`: `ORCH_MAX_CONCURRENCY` (default 4 with `--pipeline`, 3
    /// with `--chaos`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Measure the queue's dispatch overhead instead: job queued → agent process started,
    /// with a no-op agent.
    #[arg(long, conflicts_with = "pipeline")]
    pub dispatch: bool,
    /// With `--dispatch`: jobs to time.
    #[arg(long, default_value_t = 1_000)]
    pub jobs: usize,
    /// Measure the webhook intake instead: signed Gitea status deliveries against a
    /// trivial axum handler as the ceiling.
    #[arg(long, conflicts_with_all = ["pipeline", "dispatch"])]
    pub webhooks: bool,
    /// With `--webhooks`: deliveries of the throughput run (long enough — seconds, not a
    /// fraction of one — that a moment's stall of a shared machine does not decide it).
    #[arg(long, default_value_t = 50_000)]
    pub deliveries: usize,
    /// With `--webhooks`: send compact bodies (some 0.6 KiB, each object cut to a few
    /// fields) instead of full-size ones (some 4 KiB, as Gitea sends them).
    #[arg(long, requires = "webhooks")]
    pub compact: bool,
    /// With `--webhooks`: requests in flight during the throughput run.
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// With `--webhooks`: requests per second of the latency run.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// With `--webhooks`: seconds of the latency run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Measure agent launches under random SIGKILLs of the service instead (issue 13): a
    /// batch of tasks through `serve` with the scripted agent, killed and restarted at random
    /// moments, then the same batch without kills.
    #[arg(long, conflicts_with_all = ["pipeline", "dispatch", "webhooks"])]
    pub chaos: bool,
    /// With `--chaos`: seconds from a (re)start of the service to its next SIGKILL, drawn
    /// uniformly from `MIN-MAX` (or a fixed `N`).
    #[arg(long, default_value = "2-6", value_parser = crate::bench::chaos::parse_seconds_range)]
    pub kill_every: crate::bench::chaos::SecondsRange,
    /// With `--chaos`: seed of the random kill times (the same seed, the same schedule).
    #[arg(long, default_value_t = 13)]
    pub kill_seed: u64,
    /// With `--chaos`: seconds every agent run lasts (`scripted-agent: sleep=N` in each
    /// task's text), so kills land while agents run.
    #[arg(long, default_value_t = 2)]
    pub agent_sleep: u32,
    /// With `--chaos`: seconds each run may take before it is reported as failed.
    #[arg(long, default_value_t = 900)]
    pub run_timeout: u64,
    /// Measure the web dashboard instead: the board page at `--tasks` idle tasks (default
    /// 10,000), then its live stream followed by `--dashboards` clients during a batch of
    /// `--batch` tasks, against the same batch with none.
    #[arg(long, conflicts_with_all = ["pipeline", "dispatch", "webhooks", "chaos"])]
    pub dashboard: bool,
    /// With `--dashboard`: connected dashboards following the board during the batch.
    #[arg(long, default_value_t = 100)]
    pub dashboards: usize,
    /// With `--webhooks`: rounds of ceiling-then-intake measurements; with several, each
    /// round is printed and the median of every column is the result (a shared machine's
    /// noise moves single rounds by tens of percent).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub rounds: u32,
    /// Measure the merge queue instead: tasks queued in one repository whose test command
    /// takes about a second, batching off and on, with no culprit and with one.
    #[arg(long, conflicts_with_all = ["pipeline", "dispatch", "webhooks", "chaos"])]
    pub merge_queue: bool,
}

/// Runs the benchmark and prints a Markdown table of the results.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("orchestrator-bench-{}", std::process::id()));
    let result = if args.webhooks {
        crate::bench::webhooks::measure(&args, &dir).await
    } else if args.dispatch {
        crate::bench::dispatch::measure(&args, &dir).await
    } else if args.pipeline {
        crate::bench::pipeline::measure(&args, &dir).await
    } else if args.chaos {
        crate::bench::chaos::measure(&args, &dir).await
    } else if args.dashboard {
        crate::bench::dashboard::measure(&args, &dir).await
    } else if args.merge_queue {
        crate::bench::merge_queue::measure(&args, &dir).await
    } else {
        measure(&args, &dir).await
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(args: &BenchArgs, dir: &PathBuf) -> anyhow::Result<()> {
    let tasks = args.tasks.unwrap_or(10_000);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let seeding = Instant::now();
    let db = dir.join("orchestrator.db");
    let seeded = seed(&db, tasks, args.seed).await?;
    eprintln!(
        "seeded {} in {:.2} s",
        seeded.describe(),
        seeding.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("ORCH_DATA_DIR", dir)
        .env("ORCH_BIND", format!("127.0.0.1:{port}"))
        .env("ORCH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `serve`")?;
    let pid = child.id().context("serve exited at once")?;
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("serve was not healthy within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ready = started.elapsed();
    let shallow: serde_json::Value = http
        .get(format!("{base}/actors?depth=1"))
        .send()
        .await?
        .json()
        .await?;
    let tasks_node = shallow["children"]
        .as_array()
        .and_then(|c| c.iter().find(|n| n["name"] == "tasks"))
        .context("no tasks supervisor in /actors")?;
    if tasks_node["child_count"] != tasks {
        bail!(
            "expected {tasks} task actors, /actors shows {}",
            tasks_node["child_count"]
        );
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_kib = resident_kib(pid)?;

    let full = time_get(&http, &format!("{base}/actors"), args.iterations).await?;
    let depth1 = time_get(&http, &format!("{base}/actors?depth=1"), args.iterations).await?;
    let metrics = time_get(&http, &format!("{base}/metrics"), args.iterations).await?;

    let stopping = Instant::now();
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .context("serve did not stop within 15 s of SIGTERM")??;
    let stopped = stopping.elapsed();

    let store = SqliteStore::open(&db).await?;
    let unchanged = seeded.unchanged(&store).await;
    store.close().await;
    unchanged?;

    println!("Seeded: {}.", seeded.describe());
    println!();
    println!("| measure ({tasks} non-terminal tasks) | result |");
    println!("|---|---|");
    println!(
        "| start → all task actors up and `/health` ready | {} ms |",
        ready.as_millis()
    );
    println!(
        "| resident memory, 1 s after ready | {:.1} MiB |",
        rss_kib as f64 / 1024.0
    );
    println!(
        "| `GET /actors` (full tree, {} runs) | median {} ms, p95 {} ms, max {} ms |",
        args.iterations, full.0, full.1, full.2
    );
    println!(
        "| `GET /actors?depth=1` ({} runs) | median {} ms, p95 {} ms, max {} ms |",
        args.iterations, depth1.0, depth1.1, depth1.2
    );
    println!(
        "| `GET /metrics` ({} runs) | median {} ms, p95 {} ms, max {} ms |",
        args.iterations, metrics.0, metrics.1, metrics.2
    );
    println!(
        "| SIGTERM → exit | {} ms, {} |",
        stopped.as_millis(),
        status
    );
    Ok(())
}

/// Median, p95 and max latency in ms of `n` sequential GETs of `url`.
async fn time_get(
    http: &reqwest::Client,
    url: &str,
    n: usize,
) -> anyhow::Result<(u128, u128, u128)> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let response = http.get(url).send().await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("{url} answered {status}");
        }
        samples.push(t.elapsed().as_millis());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok((
        at(0.5),
        at(0.95),
        *samples.last().expect("at least one sample"),
    ))
}

/// VmRSS of a process, from /proc.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}
