//! Records how the real Claude Code CLI reacts to each API fault the stub can inject: saves
//! its stdout as `testkit/fixtures/cli-<version>/<case>.json` and prints one summary line per
//! case (exit code, wall time, requests received and their spacing). The findings table in
//! `testkit/README.md` comes from this. Some cases take minutes (the CLI's own retries).
//!
//! `cargo run -p orchestrator-testkit --example record_cli_faults [case…]` (no case: all).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orchestrator_testkit::claude::CLAUDE_CODE_VERSION;
use orchestrator_testkit::{AnthropicStub, ClaudeEnv, Fault, StubConfig, scratch_git_repo};

/// One recorded scenario.
struct Case {
    /// Fixture name.
    name: &'static str,
    /// Faults queued for the first requests.
    queued: Vec<Fault>,
    /// Fault for every request after the queue.
    default: Option<Fault>,
    /// Extra environment for the CLI.
    env: Vec<(&'static str, &'static str)>,
    /// Process timeout.
    timeout: Duration,
}

fn cases() -> Vec<Case> {
    let in_an_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
        + 3600;
    let in_30s = in_an_hour - 3600 + 30;
    let case = |name, default: Option<Fault>, env: Vec<(&'static str, &'static str)>, secs| Case {
        name,
        queued: Vec::new(),
        default,
        env,
        timeout: Duration::from_secs(secs),
    };
    vec![
        case("success", None, vec![], 60),
        Case {
            queued: vec![Fault::RateLimited { retry_after_s: 3 }],
            ..case("rate-limited-once-retry-after-3", None, vec![], 120)
        },
        case(
            "rate-limited-retry-after-2",
            Some(Fault::RateLimited { retry_after_s: 2 }),
            vec![],
            600,
        ),
        case(
            "rate-limited-retry-after-2-max-retries-0",
            Some(Fault::RateLimited { retry_after_s: 2 }),
            vec![("CLAUDE_CODE_MAX_RETRIES", "0")],
            120,
        ),
        case(
            "rate-limited-retry-after-30-max-retries-1",
            Some(Fault::RateLimited { retry_after_s: 30 }),
            vec![("CLAUDE_CODE_MAX_RETRIES", "1")],
            120,
        ),
        case(
            "rate-limited-retry-after-120-max-retries-2",
            Some(Fault::RateLimited { retry_after_s: 120 }),
            vec![("CLAUDE_CODE_MAX_RETRIES", "2")],
            120,
        ),
        case("overloaded", Some(Fault::Overloaded), vec![], 600),
        case(
            "overloaded-max-retries-0",
            Some(Fault::Overloaded),
            vec![("CLAUDE_CODE_MAX_RETRIES", "0")],
            120,
        ),
        case(
            "server-error-max-retries-0",
            Some(Fault::ServerError),
            vec![("CLAUDE_CODE_MAX_RETRIES", "0")],
            120,
        ),
        case(
            "bad-request",
            Some(Fault::BadRequest {
                message: "messages.0.content: stubbed bad request".into(),
            }),
            vec![],
            120,
        ),
        case(
            "bad-request-prompt-too-long",
            Some(Fault::BadRequest {
                message: "prompt is too long: 250000 tokens > 200000 maximum".into(),
            }),
            vec![],
            120,
        ),
        case("unauthorized", Some(Fault::Unauthorized), vec![], 90),
        case(
            "unauthorized-max-retries-0",
            Some(Fault::Unauthorized),
            vec![("CLAUDE_CODE_MAX_RETRIES", "0")],
            90,
        ),
        case(
            "usage-limit",
            Some(Fault::UsageLimit {
                resets_at_unix: in_an_hour,
            }),
            vec![],
            600,
        ),
        case(
            "usage-limit-resets-in-30s-max-retries-2",
            Some(Fault::UsageLimit {
                resets_at_unix: in_30s,
            }),
            vec![("CLAUDE_CODE_MAX_RETRIES", "2")],
            300,
        ),
    ]
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let dir = orchestrator_testkit::claude::workspace_root()
        .join("testkit/fixtures")
        .join(format!("cli-{CLAUDE_CODE_VERSION}"));
    std::fs::create_dir_all(&dir).expect("create the fixtures directory");
    let names: Vec<&str> = cases()
        .iter()
        .map(|c| c.name)
        .filter(|name| wanted.is_empty() || wanted.iter().any(|w| w == name))
        .collect();
    for name in names {
        // Built afresh for each case, so reset times count from when the case starts.
        let Some(case) = cases().into_iter().find(|c| c.name == name) else {
            continue;
        };
        let stub = AnthropicStub::start(StubConfig {
            default_fault: case.default.clone(),
            ..StubConfig::default()
        });
        for fault in &case.queued {
            stub.push_fault(fault.clone());
        }
        let mut env = ClaudeEnv::new(&stub);
        for (k, v) in &case.env {
            env = env.set(k, v);
        }
        let repo = scratch_git_repo();
        let prompt = "Record CLI faults\n\nYou are the analyst for work item FX-1.\n\
                      Repository: probe\nArtifacts: docs/work-items/FX-1/\n\nProbe.\n";
        let run = env.run(
            repo.path(),
            &[
                "-p",
                prompt,
                "--output-format",
                "json",
                "--model",
                "claude-sonnet-4-5",
                "--permission-mode",
                "acceptEdits",
            ],
            case.timeout,
        );
        let posts = stub.messages_requests();
        let spacing: Vec<String> = posts
            .windows(2)
            .map(|w| format!("{:.2}", (w[1].at - w[0].at).as_secs_f64()))
            .collect();
        let statuses: Vec<u16> = posts.iter().map(|r| r.status).collect();
        if !run.stdout.trim().is_empty() {
            std::fs::write(dir.join(format!("{}.json", case.name)), &run.stdout)
                .expect("write the fixture");
        }
        let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap_or_default();
        println!(
            "{} | exit {:?} | timed out {} | {:.1}s | {} POSTs {:?} | spacing {:?} | subtype {} | \
             is_error {} | api_error_status {} | result {} | errors {} | stderr {:?}",
            case.name,
            run.exit_code,
            run.timed_out,
            run.elapsed.as_secs_f64(),
            posts.len(),
            statuses,
            spacing,
            json["subtype"],
            json["is_error"],
            json["api_error_status"],
            json["result"],
            json["errors"],
            run.stderr.lines().take(3).collect::<Vec<_>>().join(" / "),
        );
    }
}
