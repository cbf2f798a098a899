//! `orchestrator bench --chaos`: agent launches when the service is SIGKILLed at random
//! (issue 13). A batch of tasks over several repositories goes through this binary's `serve`
//! with the scripted agent twice — once killed and restarted on the same data dir at random
//! moments, once left alone — and each run reports launches per task (the runs journal),
//! abandoned runs, agents seen sharing a worktree, and the time from each restart until every
//! agent that ran at the kill is under watch again.

mod sampler;
mod service;
mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::BenchArgs;
use crate::git::sample;
use sampler::{Sampler, Sightings, kill_leftovers};
use service::Serve;

/// How long after a restart every agent in flight at the kill must be watched again.
const WATCH_WITHIN: Duration = Duration::from_secs(30);
/// Time between two looks at the board while waiting for the next kill or the end.
const POLL: Duration = Duration::from_millis(100);

/// A span of seconds, `MIN-MAX` or a fixed `N`, that kill times are drawn from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SecondsRange {
    /// Fewest seconds.
    pub min: f64,
    /// Most seconds.
    pub max: f64,
}

impl FromStr for SecondsRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
        };
        let (min, max) = match text.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(text)?, number(text)?),
        };
        if min > max {
            return Err(format!("{min} is more than {max}: expected MIN-MAX"));
        }
        Ok(SecondsRange { min, max })
    }
}

impl fmt::Display for SecondsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{} s", self.min, self.max)
    }
}

/// clap's parser for [`SecondsRange`].
pub fn parse_seconds_range(text: &str) -> Result<SecondsRange, String> {
    text.parse()
}

/// xorshift64*: enough randomness for kill times, and the same seed gives the same schedule.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A time drawn uniformly from `range`.
    fn within(&mut self, range: SecondsRange) -> Duration {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(range.min + (range.max - range.min) * unit)
    }
}

/// One run's settings.
struct Plan {
    /// Tasks created.
    tasks: usize,
    /// Repositories they are spread over.
    repos: usize,
    /// `ORCH_MAX_CONCURRENCY`.
    concurrency: usize,
    /// Seconds every agent run sleeps.
    agent_sleep: u32,
    /// When to kill, or `None` for the run without kills.
    kills: Option<(SecondsRange, u64)>,
    /// How long the run may take.
    timeout: Duration,
}

/// One restart of the service.
struct Restart {
    /// Spawn → `/health` answers.
    healthy: Duration,
    /// Agents (running jobs) at the kill.
    in_flight: usize,
    /// Spawn → every one of them under watch again; `None` if that did not happen within
    /// [`WATCH_WITHIN`].
    watched: Option<Duration>,
}

/// What one run measured.
#[derive(Default)]
struct Report {
    /// Tasks that reached `done`.
    done: usize,
    /// Tasks that stopped anywhere else (blocked, waiting on a human), with why.
    stuck: Vec<String>,
    /// Agent launches (journaled runs) per task.
    launches: Vec<usize>,
    /// Runs a restart abandoned.
    abandoned: usize,
    /// What the process table showed.
    seen: Sightings,
    /// The restarts.
    restarts: Vec<Restart>,
    /// First `POST /tasks` → the last task settled.
    wall: Duration,
    /// Processes still working in the run's dir after the final stop, killed.
    leftovers: usize,
    /// Why the run did not finish, if it did not.
    failure: Option<String>,
    /// Whether Ctrl-C ended it.
    interrupted: bool,
}

/// Runs the batch with kills, then without, and prints both side by side.
pub async fn measure(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let plan = |kills| Plan {
        tasks: args.tasks.unwrap_or(12).max(1),
        repos: args.repos.unwrap_or(2).max(1),
        concurrency: args.concurrency.unwrap_or(3).max(1),
        agent_sleep: args.agent_sleep,
        kills,
        timeout: Duration::from_secs(args.run_timeout),
    };
    let chaos = plan(Some((args.kill_every, args.kill_seed)));
    let calm = plan(None);
    eprintln!(
        "chaos: {} tasks over {} repos, ORCH_MAX_CONCURRENCY={}, agents sleep {} s, SIGKILL every {} (seed {})",
        chaos.tasks,
        chaos.repos,
        chaos.concurrency,
        chaos.agent_sleep,
        args.kill_every,
        args.kill_seed
    );
    let with_kills = run(&chaos, &dir.join("kills")).await?;
    if with_kills.interrupted {
        bail!("interrupted");
    }
    eprintln!("run with kills finished; now without");
    let without = run(&calm, &dir.join("calm")).await?;
    table::print(&chaos, args, &with_kills, &without);
    let failures: Vec<String> = [("with kills", &with_kills), ("without kills", &without)]
        .iter()
        .filter_map(|(name, r)| r.failure.as_ref().map(|f| format!("{name}: {f}")))
        .collect();
    if !failures.is_empty() {
        bail!("the benchmark did not complete: {}", failures.join("; "));
    }
    Ok(())
}

/// One run in `dir`: sets up origins and the service, drives it, and always cleans up.
async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // /proc shows working directories resolved; compare like with like.
    let dir = dir.canonicalize()?;
    let mut projects = Vec::new();
    for n in 0..plan.repos {
        let origin = dir.join(format!("repo{n}.git"));
        sample::create_sample_origin(&origin).await?;
        projects.push(json!({
            "repo": format!("chaos/repo{n}"),
            "origin": origin.display().to_string(),
            "prefix": format!("R{n}"),
            "test_cmd": sample::SAMPLE_TEST_CMD,
        }));
    }
    let data = dir.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let env = [
        ("ORCH_DATA_DIR", data.display().to_string()),
        ("ORCH_BIND", format!("127.0.0.1:{port}")),
        ("ORCH_LOG", "warn".into()),
        ("ORCH_PROJECTS_JSON", Value::from(projects).to_string()),
        ("ORCH_MAX_CONCURRENCY", plan.concurrency.to_string()),
        (
            "ORCH_CLAUDE_BIN",
            std::env::current_exe()?.display().to_string(),
        ),
        ("ORCH_CLAUDE_ARGS", "scripted-agent".into()),
        ("ORCH_RETRY_DELAY_S", "1".into()),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let mut serve = Serve::new(&dir, env, format!("http://127.0.0.1:{port}"));
    let sampler = Sampler::start(data.join("worktrees"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut report = Report::default();
    // Ctrl-C ends the run here, so the cleanup below still happens.
    let driven = tokio::select! {
        driven = drive(plan, &mut serve, &http, &mut report) => Some(driven),
        _ = tokio::signal::ctrl_c() => None,
    };
    match driven {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            report.failure = Some(format!(
                "{e:#}\nlast lines of serve's log:\n{}",
                serve.log_tail(20)
            ));
        }
        None => {
            report.interrupted = true;
            report.failure = Some("interrupted".into());
        }
    }
    let stopped = serve.stop().await;
    report.seen = sampler.finish();
    report.leftovers = kill_leftovers(&dir);
    if let Err(e) = stopped
        && report.failure.is_none()
    {
        report.failure = Some(format!("{e:#}"));
    }
    Ok(report)
}

/// Starts the service, creates the tasks, kills and restarts it on schedule until every task
/// settled, then reads each task's runs.
async fn drive(
    plan: &Plan,
    serve: &mut Serve,
    http: &reqwest::Client,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (mut spawned, _) = serve.start(http).await?;
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..plan.tasks {
        let repo = format!("chaos/repo{}", n % plan.repos);
        ids.push(submit(http, &serve.base, &repo, n, plan.agent_sleep).await?);
    }
    let mut rng = plan.kills.map(|(_, seed)| XorShift::new(seed));
    let mut next_kill = plan
        .kills
        .zip(rng.as_mut())
        .map(|((range, _), rng)| spawned + rng.within(range));
    let mut timed_out = false;
    loop {
        if settled(http, &serve.base, &ids).await? {
            break;
        }
        if started.elapsed() > plan.timeout {
            timed_out = true;
            break;
        }
        match next_kill {
            Some(at) if Instant::now() >= at => {
                let in_flight = running_jobs(http, &serve.base).await?;
                serve.kill().await?;
                let (at, healthy) = serve.start(http).await?;
                spawned = at;
                let watched = watch(http, &serve.base, &in_flight, spawned).await;
                report.restarts.push(Restart {
                    healthy,
                    in_flight: in_flight.len(),
                    watched,
                });
                if let (Some((range, _)), Some(rng)) = (plan.kills, rng.as_mut()) {
                    next_kill = Some(spawned + rng.within(range));
                }
            }
            Some(at) => tokio::time::sleep(POLL.min(at - Instant::now())).await,
            None => tokio::time::sleep(POLL).await,
        }
    }
    report.wall = started.elapsed();
    for id in &ids {
        let task = get(http, &format!("{}/tasks/{id}", serve.base)).await?;
        match task["stage"].as_str() {
            Some("done") => report.done += 1,
            stage => report.stuck.push(format!(
                "{id}: stage {}, phase {}, {}",
                stage.unwrap_or("?"),
                task["phase"],
                task["blocked_reason"]
            )),
        }
        let runs = task["runs"].as_array().cloned().unwrap_or_default();
        report.launches.push(runs.len());
        report.abandoned += runs.iter().filter(|r| r["status"] == "abandoned").count();
    }
    if timed_out {
        bail!(
            "the tasks did not settle within {} s",
            plan.timeout.as_secs()
        );
    }
    Ok(())
}

/// Creates task number `n` on `repo`; every agent run of it sleeps `sleep` seconds.
async fn submit(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    n: usize,
    sleep: u32,
) -> anyhow::Result<String> {
    let body = json!({
        "repo": repo,
        "title": format!("Chaos task {n}"),
        "description": format!("A task of the chaos benchmark.\n\nscripted-agent: sleep={sleep}\n"),
        "labels": ["autoApprove"],
    });
    let reply: Value = http
        .post(format!("{base}/tasks"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(reply["work_item_id"]
        .as_str()
        .context("POST /tasks answered without a work_item_id")?
        .to_string())
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    http.get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))
}

/// Whether every task is done or stopped where no agent will move it (blocked, cancelled,
/// waiting on a human).
async fn settled(http: &reqwest::Client, base: &str, ids: &[String]) -> anyhow::Result<bool> {
    let board = get(http, &format!("{base}/tasks")).await?;
    let tasks: BTreeMap<&str, &Value> = board["tasks"]
        .as_array()
        .context("GET /tasks without \"tasks\"")?
        .iter()
        .filter_map(|t| Some((t["work_item_id"].as_str()?, t)))
        .collect();
    Ok(ids.iter().all(|id| {
        tasks.get(id.as_str()).is_some_and(|t| {
            matches!(t["stage"].as_str(), Some("done" | "cancelled"))
                || t["phase"] == "blocked"
                || t["phase"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("awaiting"))
        })
    }))
}

/// The ids of the jobs running now.
async fn running_jobs(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<i64>> {
    let queue = get(http, &format!("{base}/queue")).await?;
    Ok(queue["jobs"]
        .as_array()
        .context("GET /queue without \"jobs\"")?
        .iter()
        .filter(|j| j["status"] == "running")
        .filter_map(|j| j["job"].as_i64())
        .collect())
}

/// Polls `/queue` until every job of `in_flight` is watched by the new boot (see
/// [`watched`]); the time since `spawned`, or `None` past [`WATCH_WITHIN`]. Nothing in
/// flight is nothing to wait for.
async fn watch(
    http: &reqwest::Client,
    base: &str,
    in_flight: &[i64],
    spawned: Instant,
) -> Option<Duration> {
    if in_flight.is_empty() {
        return None;
    }
    while spawned.elapsed() < WATCH_WITHIN {
        if let Ok(queue) = get(http, &format!("{base}/queue")).await
            && watched(in_flight, &queue)
        {
            return Some(spawned.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Whether the boot answering `queue` watches every job of `in_flight`: its dispatcher has
/// recovered, and each job is either settled (no longer queued or running) or running in its
/// dispatcher's running set with the pid its run actor reported — adopted by this boot or
/// launched again by it, never one marked adopted by an earlier boot. A job requeued and
/// waiting is not watched.
fn watched(in_flight: &[i64], queue: &Value) -> bool {
    let dispatch = &queue["dispatch"];
    if dispatch["recovered"] == false {
        return false;
    }
    let boot = dispatch["boot_id"].as_str();
    let mut held: BTreeMap<i64, bool> = BTreeMap::new();
    for slot in dispatch["running"].as_array().into_iter().flatten() {
        if let Some(job) = slot["job"].as_i64() {
            held.insert(job, !slot["pid"].is_null());
        }
    }
    let jobs = queue["jobs"].as_array().cloned().unwrap_or_default();
    in_flight.iter().all(|id| {
        let Some(job) = jobs.iter().find(|j| j["job"].as_i64() == Some(*id)) else {
            return true;
        };
        // Adopted or launched again, a job counts once this boot's run actor reported its
        // agent's process to dispatch: the journaled pid alone is the previous boot's word.
        let by_this_boot = job["adopted_by"]
            .as_str()
            .is_none_or(|by| boot.is_none_or(|boot| boot == by));
        job["status"] == "running"
            && !job["pid"].is_null()
            && by_this_boot
            && held.get(id).copied().unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_times_are_read_as_a_range_or_one_number() {
        assert_eq!(
            "2-6".parse::<SecondsRange>(),
            Ok(SecondsRange { min: 2.0, max: 6.0 })
        );
        assert_eq!(
            "1.5".parse::<SecondsRange>(),
            Ok(SecondsRange { min: 1.5, max: 1.5 })
        );
        assert!("6-2".parse::<SecondsRange>().is_err());
        assert!("0-2".parse::<SecondsRange>().is_err());
        assert!("soon".parse::<SecondsRange>().is_err());
    }

    #[test]
    fn the_same_seed_draws_the_same_kill_times_within_the_range() {
        let range = SecondsRange { min: 2.0, max: 6.0 };
        let draw = |seed| {
            let mut rng = XorShift::new(seed);
            (0..50).map(|_| rng.within(range)).collect::<Vec<_>>()
        };
        assert_eq!(draw(13), draw(13));
        assert_ne!(draw(13), draw(14));
        assert!(
            draw(0)
                .iter()
                .all(|d| (2.0..=6.0).contains(&d.as_secs_f64()))
        );
    }

    #[test]
    fn an_agent_is_watched_once_the_new_boot_runs_or_adopts_it_or_it_settled() {
        let queue = |jobs: Value, running: Value, recovered: bool| json!({"jobs": jobs, "dispatch": {"boot_id": "b2", "recovered": recovered, "running": running}});
        let requeued = json!([{"job": 7, "status": "queued", "pid": null}]);
        assert!(!watched(&[7], &queue(requeued, json!([]), true)));
        // Still the previous boot's row: a pid, but the new dispatcher does not hold it.
        let stale = json!([{"job": 7, "status": "running", "pid": 41}]);
        assert!(!watched(&[7], &queue(stale.clone(), json!([]), true)));
        let relaunched = json!([{"job": 7, "status": "running", "pid": 42}]);
        let held = json!([{"job": 7, "pid": 42}]);
        assert!(watched(&[7], &queue(relaunched, held.clone(), true)));
        assert!(!watched(&[7], &queue(stale.clone(), held, false)));
        let adopted = json!([{"job": 7, "status": "running", "pid": 41, "adopted_by": "b2"}]);
        // Adopted but its run actor has not reported the agent yet: not watched yet.
        assert!(!watched(&[7], &queue(adopted.clone(), json!([]), true)));
        let watching = json!([{"job": 7, "pid": 41}]);
        assert!(watched(&[7], &queue(adopted, watching, true)));
        let adopted_before =
            json!([{"job": 7, "status": "running", "pid": 41, "adopted_by": "b1"}]);
        assert!(!watched(&[7], &queue(adopted_before, json!([]), true)));
        assert!(watched(&[7], &queue(json!([]), json!([]), true)));
    }
}
