//! The chaos bench's result: both runs side by side as a Markdown table, the ratio of their
//! launches, and whatever did not go as planned (tasks not done, overlaps, failures).

use std::time::Duration;

use super::{Plan, Report, Restart, WATCH_WITHIN};
use crate::bench::BenchArgs;

/// Prints both runs side by side as a Markdown table, then what went wrong, if anything.
pub(super) fn print(plan: &Plan, args: &BenchArgs, kills: &Report, calm: &Report) {
    println!(
        "{} tasks over {} repos, ORCH_MAX_CONCURRENCY={}, every agent run sleeps {} s; \
         SIGKILL every {} after each (re)start, seed {}.",
        plan.tasks, plan.repos, plan.concurrency, plan.agent_sleep, args.kill_every, args.kill_seed
    );
    println!();
    println!("| measure | with kills | without kills |");
    println!("|---|---|---|");
    let rows: [Row; 12] = [
        ("tasks done", &|r| format!("{} / {}", r.done, plan.tasks)),
        ("wall time, first task created → all settled", &|r| {
            format!("{:.1} s", r.wall.as_secs_f64())
        }),
        ("agent launches (runs journaled)", &|r| {
            r.launches.iter().sum::<usize>().to_string()
        }),
        ("launches per task, mean / max", &|r| {
            let n = r.launches.len().max(1) as f64;
            let mean = r.launches.iter().sum::<usize>() as f64 / n;
            let max = r.launches.iter().max().copied().unwrap_or(0);
            format!("{mean:.2} / {max}")
        }),
        ("runs abandoned by a restart", &|r| r.abandoned.to_string()),
        ("agent processes seen in /proc", &|r| {
            r.seen.agents.len().to_string()
        }),
        (
            "looks with two agents in one worktree (of all looks)",
            &|r| format!("{} (of {})", r.seen.overlap_moments, r.seen.samples),
        ),
        ("kills performed", &|r| r.restarts.len().to_string()),
        ("kills with agents running (agents then)", &|r| {
            let hit: Vec<&Restart> = r.restarts.iter().filter(|x| x.in_flight > 0).collect();
            let agents: usize = hit.iter().map(|x| x.in_flight).sum();
            format!("{} ({agents})", hit.len())
        }),
        ("restart → `/health`, median / max", &|r| {
            spread(r.restarts.iter().map(|x| x.healthy).collect())
        }),
        ("restart → every agent under watch, median / max", &|r| {
            let hit = r.restarts.iter().filter(|x| x.in_flight > 0);
            let missed = hit.clone().filter(|x| x.watched.is_none()).count();
            let times = hit.filter_map(|x| x.watched).collect();
            match missed {
                0 => spread(times),
                n => format!(
                    "{} ({n} not within {} s)",
                    spread(times),
                    WATCH_WITHIN.as_secs()
                ),
            }
        }),
        ("processes left behind, killed at the end", &|r| {
            r.leftovers.to_string()
        }),
    ];
    for (name, f) in rows {
        println!("| {name} | {} | {} |", f(kills), f(calm));
    }
    let total = |r: &Report| r.launches.iter().sum::<usize>() as f64;
    if total(calm) > 0.0 {
        println!();
        println!(
            "Launches with kills / without: {:.2}×.",
            total(kills) / total(calm)
        );
    }
    for (name, r) in [("with kills", kills), ("without kills", calm)] {
        for stuck in &r.stuck {
            println!("- {name}: not done: {stuck}");
        }
        for example in &r.seen.examples {
            println!("- {name}: overlap: {example}");
        }
        if let Some(failure) = &r.failure {
            println!("- {name}: FAILED: {failure}");
        }
    }
}

/// A row of the table: its name and how a run's figure is shown.
type Row<'a> = (&'a str, &'a dyn Fn(&Report) -> String);

/// `median / max` in ms, or `—` without samples.
fn spread(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "—".into();
    }
    samples.sort();
    format!(
        "{} / {} ms",
        samples[samples.len() / 2].as_millis(),
        samples[samples.len() - 1].as_millis()
    )
}
