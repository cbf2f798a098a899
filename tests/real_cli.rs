//! The orchestrator driving the **real** Claude Code CLI (the pinned 2.1.197 install, see
//! `.ci/run`) against the loopback Anthropic stub: artifacts written by the CLI's own `Write`
//! tool calls pass the analysis gate, usage and cost are journaled, a rate limit is retried
//! after its retry-after, a usage limit parks the queue, and an API 400 fails the run with
//! the API's message. Without the CLI installed these tests fail, saying how to install it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Service, create, eventually, first_run_ended, reach, runs, start_local_with};
use orchestrator_actors::Role;
use orchestrator_testkit::anthropic::{AnthropicStub, Fault, StubConfig};
use orchestrator_testkit::claude::{ClaudeEnv, claude_bin};
use serde_json::Value;

/// Starts the service in local mode with the real CLI as every role's agent, talking to
/// `stub`. `extra` goes on top (e.g. `CLAUDE_CODE_MAX_RETRIES`).
async fn start(
    dir: &std::path::Path,
    stub: &AnthropicStub,
    extra: &[(&str, &str)],
) -> (Service, ClaudeEnv) {
    let claude = ClaudeEnv::new(stub);
    let bin = claude_bin().display().to_string();
    let config_dir = dir.join("claude-runs").display().to_string();
    let mut env: Vec<(String, String)> = claude
        .vars()
        .iter()
        .filter(|(k, _)| k != "CLAUDE_CONFIG_DIR" && k != "PATH")
        .cloned()
        .collect();
    env.extend(
        [
            ("ORCH_CLAUDE_BIN", bin.as_str()),
            ("ORCH_CLAUDE_ARGS", ""),
            ("ORCH_AGENT_CONFIG_DIR", config_dir.as_str()),
            ("ORCH_BACKOFF_BASE_S", "1"),
            ("ORCH_AGENT_TIMEOUT_ANALYST_S", "120"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (start_local_with(dir, false, &env).await, claude)
}

fn outcomes(task: &Value) -> Vec<String> {
    runs(task)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

async fn worktree_file(service: &Service, id: &str, name: &str) -> String {
    let path = service
        .data_dir
        .join("worktrees")
        .join(id)
        .join(format!("docs/work-items/{id}/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_real_cli_writes_the_analysis_and_its_usage_is_journaled() {
    let stub = AnthropicStub::start(StubConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let (service, _claude) = start(dir.path(), &stub, &[]).await;
    let id = create(
        &service,
        "Greet by name",
        "Say hello to the user by name.",
        &[],
    )
    .await;
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    assert_eq!(outcomes(&t), ["succeeded"], "{t}");
    for name in [
        "01-brd.md",
        "02-trz.md",
        "03-acceptance-criteria.md",
        "04-test-plan.yaml",
    ] {
        assert!(
            !worktree_file(&service, &id, name).await.trim().is_empty(),
            "{name} is empty"
        );
    }
    // The CLI really called the API (with our launch flags) and reported usage.
    let requests = stub.messages_requests();
    assert!(requests.len() >= 2, "{} requests", requests.len());
    let first = requests[0].body.as_ref().unwrap();
    assert_eq!(first["model"], "claude-sonnet-4-5");
    let system = first["system"].to_string();
    let prompt_heading = orchestrator::claude::settings::embedded_prompt(Role::Analyst)
        .lines()
        .next()
        .unwrap();
    assert!(
        system.contains(prompt_heading),
        "the analyst prompt ({prompt_heading:?}) was not appended"
    );
    let run = &runs(&t)[0];
    assert_eq!(run["model"], "claude-sonnet-4-5", "{run}");
    assert!(run["input_tokens"].as_u64().unwrap() > 0, "{run}");
    assert!(run["output_tokens"].as_u64().unwrap() > 0, "{run}");
    assert!(run["cost_usd"].as_f64().unwrap() > 0.0, "{run}");
    assert_eq!(run["exit_code"], 0, "{run}");
    assert_eq!(t["usage_total"]["input_tokens"], run["input_tokens"], "{t}");
    assert_eq!(
        t["usage_by_stage"]["analysis"]["cost_nano_usd"], t["usage_total"]["cost_nano_usd"],
        "{t}"
    );
    // A per-run CLAUDE_CONFIG_DIR held the session.
    assert!(dir.path().join("claude-runs").read_dir().unwrap().count() >= 1);
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_its_retry_after() {
    let stub = AnthropicStub::start(StubConfig::default());
    stub.push_fault(Fault::RateLimited { retry_after_s: 2 });
    let dir = tempfile::tempdir().unwrap();
    // The CLI's own retries honour the retry-after header.
    let (service, _claude) = start(dir.path(), &stub, &[]).await;
    let id = create(&service, "Rate limited", "Busy API.", &[]).await;
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    assert_eq!(outcomes(&t), ["succeeded"], "{t}");
    let requests = stub.messages_requests();
    assert_eq!(requests[0].status, 429);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
}

#[tokio::test]
async fn a_rate_limit_the_cli_gives_up_on_is_requeued_as_transient() {
    let stub = AnthropicStub::start(StubConfig::default());
    stub.push_fault(Fault::RateLimited { retry_after_s: 2 });
    let dir = tempfile::tempdir().unwrap();
    let (service, _claude) = start(dir.path(), &stub, &[("CLAUDE_CODE_MAX_RETRIES", "0")]).await;
    let id = create(&service, "Rate limited", "Busy API.", &[]).await;
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    assert_eq!(outcomes(&t), ["transient", "succeeded"], "{t}");
    assert!(
        runs(&t)[0]["reason"].as_str().unwrap().contains("429"),
        "{t}"
    );
    assert_eq!(
        t["stage_attempts"], 1,
        "a transient failure spends no attempt: {t}"
    );
}

#[tokio::test]
async fn a_usage_limit_parks_the_queue_until_its_reset() {
    let stub = AnthropicStub::start(StubConfig::default());
    // Far enough ahead that a CLI slow to start on a loaded machine still sees it coming.
    let resets = SystemTime::now() + Duration::from_secs(12);
    let resets_unix = resets.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    stub.push_fault(Fault::UsageLimit {
        resets_at_unix: resets_unix,
    });
    let dir = tempfile::tempdir().unwrap();
    let (service, _claude) = start(dir.path(), &stub, &[("CLAUDE_CODE_MAX_RETRIES", "0")]).await;
    let id = create(&service, "Out of quota", "No tokens left.", &[]).await;
    let queue = eventually("the queue to park", Duration::from_secs(60), || async {
        let (_, q) = service.get("/queue").await;
        (!q["parked"].is_null()).then_some(q)
    })
    .await;
    let until = humantime::parse_rfc3339_weak(queue["parked"]["until"].as_str().unwrap()).unwrap();
    assert!(
        until >= UNIX_EPOCH + Duration::from_secs(resets_unix as u64),
        "{queue}"
    );
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    assert_eq!(outcomes(&t), ["usage-limit", "succeeded"], "{t}");
    let second = stub.messages_requests()[1].at_system;
    assert!(second >= until, "a request reached the API while parked");
}

#[tokio::test]
async fn an_api_400_fails_the_run_with_the_api_message() {
    let stub = AnthropicStub::start(StubConfig::default());
    stub.push_fault(Fault::BadRequest {
        message: "messages.0.content: stubbed invalid request".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let (service, _claude) = start(dir.path(), &stub, &[]).await;
    let id = create(&service, "Bad request", "The API refuses.", &[]).await;
    let t = first_run_ended(&service, &id).await;
    let run = &runs(&t)[0];
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["exit_code"], 1, "{run}");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("API Error: 400") && reason.contains("stubbed invalid request"),
        "{reason}"
    );
    // A permanent failure spends a stage attempt; the next one goes through.
    let t = reach(&service, &id, "analysis", "awaiting-approval").await;
    assert_eq!(outcomes(&t), ["failed", "succeeded"], "{t}");
}
