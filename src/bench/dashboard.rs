//! `orchestrator bench --dashboard`: the web dashboard's board page at N tasks (time to the
//! first byte, whole page, size), then the board's Server-Sent Events fanned out to many
//! connected dashboards during a batch of tasks through the pipeline (the dry-run agent, the
//! local forge), against the same batch with none connected. The service runs in-process on
//! an ephemeral port, as in `--pipeline`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use crate::bench::BenchArgs;
use crate::bench::pipeline::{sample_projects, submit, wait_done, with_service};
use crate::bench::seed::{Seed, seed};

/// Runs both measurements in `dir` and prints a Markdown table.
pub async fn measure(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let tasks = args.tasks.unwrap_or(10_000);
    let projects = sample_projects(dir, args.repos.unwrap_or(4).max(1)).await?;
    let concurrency = args.concurrency.unwrap_or(4);

    // The board at `tasks` idle tasks, seeded through the store's own API.
    let data = dir.join("board");
    std::fs::create_dir_all(&data)?;
    let seeded = seed(&data.join("orchestrator.db"), tasks, Seed::Idle).await?;
    eprintln!("seeded {}", seeded.describe());
    let iterations = args.iterations.max(1);
    let board = with_service(
        dir,
        "board",
        &projects,
        concurrency,
        &[],
        |base| async move {
            let http = reqwest::Client::new();
            let mut first_byte = Vec::new();
            let mut whole = Vec::new();
            let mut size = 0;
            for _ in 0..iterations {
                let started = Instant::now();
                let response = http.get(format!("{base}/")).send().await?;
                first_byte.push(started.elapsed());
                if !response.status().is_success() {
                    bail!("GET / answered {}", response.status());
                }
                size = response.bytes().await?.len();
                whole.push(started.elapsed());
            }
            Ok((first_byte, whole, size))
        },
    )
    .await?;

    // The fan-out: the same batch without and with `dashboards` followers of the board.
    let dashboards = args.dashboards;
    let mut runs = Vec::new();
    for followers in [0, dashboards] {
        let name = format!("fanout-{followers}");
        let repos: Vec<String> = projects.iter().map(|p| p.repo.clone()).collect();
        let count = args.batch;
        let run = with_service(dir, &name, &projects, concurrency, &[], |base| async move {
            let mut set = JoinSet::new();
            for _ in 0..followers {
                set.spawn(follow(base.clone(), count));
            }
            let started = Instant::now();
            let mut ids = Vec::new();
            for n in 0..count {
                ids.push(submit(&base, &repos[n % repos.len()]).await?);
            }
            wait_done(&base, &ids).await?;
            let wall = started.elapsed();
            let all_done = Instant::now();
            let mut seen = Vec::new();
            while let Some(joined) = set.join_next().await {
                seen.push(joined.context("a follower panicked")??);
            }
            let lag = seen
                .iter()
                .map(|s| s.done_at.saturating_duration_since(all_done))
                .max()
                .unwrap_or_default();
            Ok((wall, seen, lag))
        })
        .await?;
        runs.push(run);
    }

    let (first_byte, whole, size) = board;
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| `GET /` (the board) at {tasks} idle tasks, {iterations} runs — first byte | {} |",
        spread(first_byte)
    );
    println!(
        "| the same, whole page | {}; {:.1} KiB |",
        spread(whole),
        size as f64 / 1024.0
    );
    for (wall, seen, lag) in &runs {
        if seen.is_empty() {
            println!(
                "| {} tasks, {} repos, ORCH_MAX_CONCURRENCY={concurrency}, no dashboard | {:.2} s wall |",
                args.batch,
                projects.len(),
                wall.as_secs_f64()
            );
            continue;
        }
        let mut events: Vec<usize> = seen.iter().map(|s| s.events).collect();
        events.sort_unstable();
        let bytes: usize = seen.iter().map(|s| s.bytes).sum();
        println!(
            "| the same with {} dashboards following the board | {:.2} s wall; events per dashboard median {}, min {}, max {}; {:.1} MiB sent in all; last dashboard saw the final board {} ms after the API |",
            seen.len(),
            wall.as_secs_f64(),
            events[events.len() / 2],
            events[0],
            events[events.len() - 1],
            bytes as f64 / (1024.0 * 1024.0),
            lag.as_millis()
        );
    }
    Ok(())
}

/// Median, p95 and max of `samples`, in ms.
fn spread(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64();
    format!(
        "median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        at(0.5) * 1e3,
        at(0.95) * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    )
}

/// What one follower of the board received.
struct Seen {
    /// `live` events.
    events: usize,
    /// Bytes of the stream.
    bytes: usize,
    /// When an event first showed all `count` tasks finished.
    done_at: Instant,
}

/// Follows the board's stream until an event shows `count` tasks, none active.
async fn follow(base: String, count: usize) -> anyhow::Result<Seen> {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/ui/events/board"))
        .send()
        .await?
        .error_for_status()?;
    // The board's totals line; its tag's end keeps "20 active" from reading as "0 active".
    let finished = format!("id=\"totals\">0 active · {count} in all<");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut events, mut bytes, mut pending) = (0, 0, String::new());
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), response.chunk())
            .await
            .context("the board did not show every task finished within 600 s")??
            .context("the board's stream ended")?;
        bytes += chunk.len();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: live") {
                events += 1;
                if event.contains(&finished) {
                    return Ok(Seen {
                        events,
                        bytes,
                        done_at: Instant::now(),
                    });
                }
            }
        }
    }
}
