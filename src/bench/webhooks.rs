//! `orchestrator bench --webhooks`: the webhook intake on loopback, against a trivial axum
//! handler in this same binary as the ceiling. Deliveries are signed Gitea `status` events
//! (2-space indented, full-size unless `--compact`, each unique so none is a replay, built
//! before the clock starts) for a registered repository whose commit resolves, through the
//! store, to a branch — the whole intake path: body limit, HMAC over the raw body, JSON, the
//! journal write with its replay check, the commit's branch and task, the nudge and its
//! outcome, then the answer. Two figures per server: throughput with many requests in flight
//! (for the intake, counted until every delivery's outcome is written; the two servers' runs
//! cut into slices taken in turns), and latency percentiles under an open-loop load of a
//! fixed rate.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Json;
use axum::routing::post;
use futures::StreamExt;
use orchestrator_actors::ports::BranchHeads;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bench::BenchArgs;
use crate::config::Config;
use crate::intake::signature::sign;
use crate::store::SqliteStore;

const SECRET: &str = "bench-webhook-secret";
const SHA: &str = "5f0c6c1d2b3a49e8a7f6e5d4c3b2a1908f7e6d5c";

/// A signed delivery.
struct Delivery {
    body: Vec<u8>,
    signature: String,
    id: String,
}

/// A Gitea user as webhook payloads carry it (`services/convert/user.go`).
fn user(id: u64, login: &str) -> serde_json::Value {
    json!({
        "id": id, "login": login, "login_name": "", "source_id": 0, "full_name": "",
        "email": format!("{login}@example.com"),
        "avatar_url": format!("http://gitea/avatars/{login}"),
        "html_url": format!("http://gitea/{login}"), "language": "", "is_admin": false,
        "last_login": "0001-01-01T00:00:00Z", "created": "2026-01-05T09:12:44Z",
        "restricted": false, "active": false, "prohibit_login": false, "location": "",
        "website": "", "description": "", "visibility": "public", "followers_count": 0,
        "following_count": 0, "starred_repos_count": 0, "username": login
    })
}

/// The CI step status `n` is of: one of three.
fn context(n: usize) -> &'static str {
    ["ci/build", "ci/test", "ci/lint"][n % 3]
}

/// The state status `n` reports: each step goes pending, then succeeds.
fn state(n: usize) -> &'static str {
    ["pending", "success"][n / 3 % 2]
}

/// When status `n` was posted: a second after the one before it.
fn at(n: usize) -> String {
    let start = std::time::UNIX_EPOCH + Duration::from_secs(1_795_341_600); // 2026-11-22T10:00Z
    humantime::format_rfc3339_seconds(start + Duration::from_secs(n as u64)).to_string()
}

/// Makes the `n`-th delivery of a run.
type Make = fn(usize) -> Delivery;

/// The `n`-th status delivery: Gitea's 2-space indented `CommitStatusPayload`, with the full
/// repository, sender and commit objects a real delivery carries (some 4 KiB). Like the
/// statuses of a real commit, they differ in step, state, build number, link and times.
fn full_delivery(n: usize) -> Delivery {
    let mut repository = json!({
        "id": 1, "owner": user(1, "acme"), "name": "app", "full_name": "acme/app",
        "description": "The acme application", "empty": false, "private": true,
        "fork": false, "template": false, "parent": null, "mirror": false, "size": 2048,
        "language": "", "languages_url": "http://gitea/api/v1/repos/acme/app/languages",
        "html_url": "http://gitea/acme/app", "url": "http://gitea/api/v1/repos/acme/app",
        "link": "", "ssh_url": "git@gitea:acme/app.git",
        "clone_url": "http://gitea/acme/app.git", "original_url": "", "website": "",
        "stars_count": 0, "forks_count": 0, "watchers_count": 3, "open_issues_count": 4,
        "open_pr_counter": 2, "release_counter": 0, "default_branch": "main",
        "archived": false, "created_at": "2026-01-05T09:15:02Z",
        "updated_at": "2026-11-22T09:58:31Z", "archived_at": "1970-01-01T00:00:00Z",
        "permissions": {"admin": true, "push": true, "pull": true}
    });
    // Two halves: one `json!` of every field exceeds the macro's recursion limit.
    let settings = json!({
        "has_issues": true, "internal_tracker": {"enable_time_tracker": true,
            "allow_only_contributors_to_track_time": true,
            "enable_issue_dependencies": true},
        "has_wiki": true, "has_pull_requests": true, "has_projects": true,
        "projects_mode": "all", "has_releases": true, "has_packages": true,
        "has_actions": true, "ignore_whitespace_conflicts": false,
        "allow_merge_commits": true, "allow_rebase": true, "allow_rebase_explicit": true,
        "allow_squash_merge": true, "allow_fast_forward_only_merge": true,
        "allow_rebase_update": true, "default_delete_branch_after_merge": false,
        "default_merge_style": "merge", "default_allow_maintainer_edit": false,
        "avatar_url": "", "internal": false, "mirror_interval": "",
        "object_format_name": "sha1", "mirror_updated": "0001-01-01T00:00:00Z",
        "repo_transfer": null, "topics": [], "licenses": []
    });
    if let (Some(repo), serde_json::Value::Object(more)) = (repository.as_object_mut(), settings) {
        repo.extend(more);
    }
    let signature = json!({"name": "CI", "email": "ci@example.com", "username": "ci"});
    let payload = json!({
        "commit": {
            "id": SHA, "message": "feat: say hello\n", "url": format!("http://gitea/acme/app/commit/{SHA}"),
            "author": signature, "committer": signature, "verification": null,
            "timestamp": "2026-11-22T09:58:30Z", "added": [], "removed": [], "modified": []
        },
        "context": context(n),
        "created_at": at(n),
        "description": format!("build #{n}"),
        "id": n,
        "repository": repository,
        "sender": user(2, "ci"),
        "sha": SHA,
        "state": state(n),
        "target_url": format!("http://ci/builds/{n}"),
        "updated_at": at(n)
    });
    signed(n, &payload)
}

/// The `n`-th status delivery with the same fields but each object cut to a few of its own
/// (some 0.6 KiB): what the intake costs apart from the size of the body.
fn compact_delivery(n: usize) -> Delivery {
    let payload = json!({
        "commit": {"id": SHA, "message": "wip", "url": "http://gitea/acme/app/commit/x"},
        "context": context(n),
        "created_at": at(n),
        "description": format!("build #{n}"),
        "id": n,
        "repository": {"id": 1, "full_name": "acme/app", "name": "app"},
        "sender": {"id": 2, "login": "ci"},
        "sha": SHA,
        "state": state(n),
        "target_url": format!("http://ci/builds/{n}"),
        "updated_at": at(n)
    });
    signed(n, &payload)
}

/// Delivery `n` of `payload`, indented and signed as Gitea sends it.
fn signed(n: usize, payload: &serde_json::Value) -> Delivery {
    let body = serde_json::to_vec_pretty(payload).expect("serialisable");
    Delivery {
        signature: sign(SECRET, &body),
        body,
        id: format!("bench-{n}"),
    }
}

/// Latency percentiles and throughput of one server.
struct Figures {
    throughput: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// A server under measurement.
struct Server {
    /// Where deliveries go.
    url: String,
    /// `GET /status` of the service, whose `webhooks_in_progress` says how many accepted
    /// deliveries are still being acted on; `None` for the ceiling, which acts on nothing.
    status: Option<String>,
}

/// Sends every delivery from `first` on with `in_flight` at a time; how long they took,
/// counted until the last of them has been acted on, not merely answered — the work behind
/// the answers must keep up too.
async fn throughput(
    client: &reqwest::Client,
    server: &Server,
    make: Make,
    first: usize,
    count: usize,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    // Built beforehand: the client's own work is no part of either server's figure.
    let deliveries: Vec<Delivery> = (first..first + count).map(make).collect();
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(deliveries)
        .map(|d| send(client, &server.url, d))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    for r in results {
        r?;
    }
    drained(client, server).await?;
    Ok(started.elapsed())
}

/// Slices each server's throughput run is cut into, taken in turns.
const SLICES: usize = 10;

/// Deliveries per second of each server (ceiling, intake), `args.deliveries` each. The runs
/// are cut into [`SLICES`] slices taken in turns — ceiling, intake, intake, ceiling, … — so
/// that both meet the same spells of load from the machine's other tenants, which otherwise
/// decide a ratio more than either server does.
async fn throughputs(
    client: &reqwest::Client,
    servers: [&Server; 2],
    make: Make,
    first: [usize; 2],
    args: &BenchArgs,
) -> anyhow::Result<[f64; 2]> {
    let mut elapsed = [Duration::ZERO; 2];
    let mut sent = [0; 2];
    for slice in 0..SLICES {
        let count = args.deliveries / SLICES + usize::from(slice < args.deliveries % SLICES);
        let order = if slice % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let start = first[side] + sent[side];
            elapsed[side] +=
                throughput(client, servers[side], make, start, count, args.in_flight).await?;
            sent[side] += count;
        }
    }
    Ok([0, 1].map(|side| sent[side] as f64 / elapsed[side].as_secs_f64()))
}

/// Waits until the service has acted on every delivery it accepted.
async fn drained(client: &reqwest::Client, server: &Server) -> anyhow::Result<()> {
    let Some(status) = &server.status else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body: serde_json::Value = client.get(status).send().await?.json().await?;
        let in_progress = body["webhooks_in_progress"]
            .as_u64()
            .with_context(|| format!("GET /status has no webhooks_in_progress: {body}"))?;
        if in_progress == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{in_progress} deliveries still being acted on after two minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `count` deliveries at `rate` per second, each on its own schedule (open loop: a
/// slow answer does not delay the next request); each request's latency.
async fn at_rate(
    client: &reqwest::Client,
    url: &str,
    make: Make,
    first: usize,
    count: usize,
    rate: u32,
) -> anyhow::Result<Vec<Duration>> {
    let period = Duration::from_secs(1) / rate;
    let deliveries: Vec<Delivery> = (first..first + count).map(make).collect();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::with_capacity(count);
    for d in deliveries {
        ticker.tick().await;
        let (client, url) = (client.clone(), url.to_string());
        handles.push(tokio::spawn(async move {
            let started = Instant::now();
            send(&client, &url, d).await.map(|()| started.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for h in handles {
        latencies.push(h.await??);
    }
    Ok(latencies)
}

async fn send(client: &reqwest::Client, url: &str, d: Delivery) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Gitea-Event", "status")
        .header("X-Gitea-Event-Type", "status")
        .header("X-Gitea-Delivery", &d.id)
        .header("X-Gitea-Signature", &d.signature)
        .body(d.body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() || text.contains("duplicate") {
        bail!("delivery {} answered {status}: {text}", d.id);
    }
    Ok(())
}

fn figures(throughput: f64, mut latencies: Vec<Duration>) -> Figures {
    latencies.sort();
    let pick = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    Figures {
        throughput,
        p50: pick(0.50),
        p99: pick(0.99),
        max: *latencies.last().expect("some requests"),
    }
}

/// The figures of one round: both servers' throughput (see [`throughputs`]), then each one's
/// latency.
async fn measure_round(
    servers: [&Server; 2],
    args: &BenchArgs,
    first: [usize; 2],
) -> anyhow::Result<[Figures; 2]> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let make: Make = if args.compact {
        compact_delivery
    } else {
        full_delivery
    };
    // Warm-up: connections, caches, the store's statements.
    for side in 0..2 {
        throughput(&client, servers[side], make, first[side], 200, 16).await?;
    }
    let first = first.map(|f| f + 200);
    let rps = throughputs(&client, servers, make, first, args).await?;
    let mut latencies = Vec::with_capacity(2);
    for side in 0..2 {
        // The throughput runs have been wholly acted on: the latency run starts with no
        // backlog.
        let latency = at_rate(
            &client,
            &servers[side].url,
            make,
            first[side] + args.deliveries,
            args.rate as usize * args.seconds as usize,
            args.rate,
        )
        .await?;
        drained(&client, servers[side]).await?;
        latencies.push(latency);
    }
    let [ceiling, intake]: [Vec<Duration>; 2] =
        latencies.try_into().expect("one latency run per server");
    Ok([figures(rps[0], ceiling), figures(rps[1], intake)])
}

/// Runs the measurement in `dir` and prints a Markdown table.
pub async fn measure(args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The ceiling: the least an axum POST handler can do with the same body.
    let ceiling = TcpListener::bind("127.0.0.1:0").await?;
    let ceiling_url = format!("http://{}/webhook/gitea", ceiling.local_addr()?);
    let app = axum::Router::new().route(
        "/webhook/gitea",
        post(|_body: axum::body::Bytes| async { Json(json!({"status": "accepted"})) }),
    );
    tokio::spawn(async move { axum::serve(ceiling, app).await });

    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    {
        // The commit the statuses name is a known branch head (no task works on it).
        let store = SqliteStore::open(&data.join("orchestrator.db")).await?;
        store
            .record_branch_head("acme/app", "feature/BENCH-1-x", SHA)
            .await?;
        store.close().await;
    }
    let projects = json!([{
        "repo": "acme/app", "origin": dir.join("origin.git"), "prefix": "ACME",
        "test_cmd": "true", "gitea_repo": "acme/app"
    }]);
    let config = Config::from_vars(
        [
            ("ORCH_DATA_DIR", data.display().to_string()),
            ("ORCH_LOG", "warn".to_string()),
            ("ORCH_PROJECTS_JSON", projects.to_string()),
            ("ORCH_GITEA_URL", "http://127.0.0.1:9".to_string()),
            ("ORCH_GITEA_TOKEN", "bench".to_string()),
            ("ORCH_GITEA_WEBHOOK_SECRET", SECRET.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v)),
    )?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let intake = Server {
        url: format!("http://{}/webhook/gitea", listener.local_addr()?),
        status: Some(format!("http://{}/status", listener.local_addr()?)),
    };
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(crate::server::run_on(config, listener, shutdown.clone()));

    let ceiling = Server {
        url: ceiling_url,
        status: None,
    };
    let mut rounds = Vec::new();
    for round in 0..args.rounds as usize {
        // Each round sends deliveries no earlier round sent, so none is a replay.
        let first =
            round * 10 * (args.deliveries + args.rate as usize * args.seconds as usize + 200);
        let [ceiling, intake] =
            measure_round([&ceiling, &intake], args, [first, first + 1_000_000_000]).await?;
        rounds.push((ceiling, intake));
    }
    shutdown.cancel();
    service.await??;
    report(args, &rounds);
    Ok(())
}

/// Prints each round and, with several, the medians.
fn report(args: &BenchArgs, rounds: &[(Figures, Figures)]) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| round | server | throughput ({} in flight) | p50 @ {} rps | p99 @ {} rps | max @ {} rps | intake / ceiling |",
        args.in_flight, args.rate, args.rate, args.rate
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |round: &str, name: &str, f: &Figures, ratio: &str| {
        println!(
            "| {round} | {name} | {:.0} req/s | {} | {} | {} | {ratio} |",
            f.throughput,
            ms(f.p50),
            ms(f.p99),
            ms(f.max)
        );
    };
    let ratio = |c: &Figures, i: &Figures| 100.0 * i.throughput / c.throughput;
    for (n, (ceiling, intake)) in rounds.iter().enumerate() {
        let round = (n + 1).to_string();
        row(&round, "trivial axum handler (ceiling)", ceiling, "");
        row(
            &round,
            "webhook intake",
            intake,
            &format!("{:.0}%", ratio(ceiling, intake)),
        );
    }
    if rounds.len() > 1 {
        let median_of = |pick: &dyn Fn(&Figures) -> f64, side: usize| {
            let mut values: Vec<f64> = rounds
                .iter()
                .map(|(c, i)| pick(if side == 0 { c } else { i }))
                .collect();
            median(&mut values)
        };
        let secs = |v: f64| Duration::from_secs_f64(v);
        for (side, name) in [(0, "trivial axum handler (ceiling)"), (1, "webhook intake")] {
            let f = Figures {
                throughput: median_of(&|f| f.throughput, side),
                p50: secs(median_of(&|f| f.p50.as_secs_f64(), side)),
                p99: secs(median_of(&|f| f.p99.as_secs_f64(), side)),
                max: secs(median_of(&|f| f.max.as_secs_f64(), side)),
            };
            let mut ratios: Vec<f64> = rounds.iter().map(|(c, i)| ratio(c, i)).collect();
            let ratio = if side == 1 {
                format!("{:.0}%", median(&mut ratios))
            } else {
                String::new()
            };
            row("median", name, &f, &ratio);
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::{compact_delivery, full_delivery, median};
    use crate::intake::signature::verify;

    #[test]
    fn deliveries_are_signed_unique_and_of_the_sizes_documented() {
        let (full, compact) = (full_delivery(7), compact_delivery(7));
        assert!(
            (3_500..5_500).contains(&full.body.len()),
            "{}",
            full.body.len()
        );
        assert!(
            (400..900).contains(&compact.body.len()),
            "{}",
            compact.body.len()
        );
        for d in [&full, &compact] {
            verify(
                super::SECRET,
                "X-Gitea-Signature",
                Some(&d.signature),
                &d.body,
            )
            .unwrap();
        }
        assert_ne!(full_delivery(8).body, full.body);
        assert_ne!(full_delivery(8).id, full.id);
    }

    #[test]
    fn statuses_go_through_the_steps_of_a_commit_a_second_apart() {
        let fields = |n: usize| {
            let body: serde_json::Value = serde_json::from_slice(&full_delivery(n).body).unwrap();
            [&body["context"], &body["state"], &body["created_at"]].map(|v| v.to_string())
        };
        assert_eq!(
            fields(0),
            ["\"ci/build\"", "\"pending\"", "\"2026-11-22T10:00:00Z\""]
        );
        assert_eq!(
            fields(4),
            ["\"ci/test\"", "\"success\"", "\"2026-11-22T10:00:04Z\""]
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
    }
}
