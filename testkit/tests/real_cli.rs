//! The real Claude Code CLI against the stub, offline: it writes a role's artifacts through
//! `Write` tool calls (streamed or plain JSON), rewrites them on a second run, and reports API
//! faults the way the orchestrator must classify them. These tests panic, never pass, when
//! the CLI is not installed (see `claude_bin`).

use std::path::Path;
use std::time::Duration;

use orchestrator_testkit::{
    AnthropicStub, ClaudeEnv, ClaudeRun, Fault, StubConfig, Verdicts, scratch_git_repo,
};
use serde_json::Value;

/// Every run is bounded; a healthy one takes a few seconds.
const TIMEOUT: Duration = Duration::from_secs(25);

fn prompt(role: &str, id: &str) -> String {
    format!(
        "Add a /health endpoint\n\nYou are the {role} for work item {id}.\nRepository: demo\n\
         Artifacts: docs/work-items/{id}/\n\nThe service needs a health check.\n"
    )
}

/// Runs the CLI as the orchestrator does: `-p`, JSON output, sonnet, edits accepted.
fn run(env: &ClaudeEnv, cwd: &Path, prompt: &str) -> ClaudeRun {
    env.run(
        cwd,
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
        TIMEOUT,
    )
}

fn assert_success(run: &ClaudeRun) -> Value {
    assert!(!run.timed_out, "timed out after {:?}", run.elapsed);
    let result = run.json();
    assert_eq!(run.exit_code, Some(0), "{result}\nstderr: {}", run.stderr);
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["result"], "done");
    assert_eq!(result["permission_denials"], serde_json::json!([]));
    let usage = &result["modelUsage"]["claude-sonnet-4-5"];
    assert!(usage["inputTokens"].as_u64().unwrap() > 0, "{result}");
    assert!(usage["outputTokens"].as_u64().unwrap() > 0, "{result}");
    assert!(usage["costUSD"].as_f64().unwrap() > 0.0, "{result}");
    result
}

fn assert_analysis_written(repo: &Path, id: &str) {
    for file in orchestrator_actors::domain::artifacts::ANALYSIS_ARTIFACTS {
        let path = repo.join(format!("docs/work-items/{id}/{file}"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
        assert!(text.contains(id), "{}: {text}", path.display());
    }
}

#[test]
fn the_analyst_writes_its_artifacts_over_sse() {
    let stub = AnthropicStub::start(StubConfig::default());
    let repo = scratch_git_repo();
    let run = run(
        &ClaudeEnv::new(&stub),
        repo.path(),
        &prompt("analyst", "ORCH-1"),
    );
    assert_success(&run);
    assert_analysis_written(repo.path(), "ORCH-1");
    let posts = stub.messages_requests();
    assert_eq!(posts.len(), 2, "one Write turn, one final turn");
    assert!(posts.iter().all(|r| r.streamed && r.status == 200));
    assert!(posts[0].path.starts_with("/v1/messages"));
    assert_eq!(posts[0].header("x-api-key"), Some("sk-test"));
}

#[test]
fn the_analyst_writes_its_artifacts_with_plain_json_replies() {
    let stub = AnthropicStub::start(StubConfig {
        force_json: true,
        ..StubConfig::default()
    });
    let repo = scratch_git_repo();
    let run = run(
        &ClaudeEnv::new(&stub),
        repo.path(),
        &prompt("analyst", "ORCH-2"),
    );
    assert_success(&run);
    assert_analysis_written(repo.path(), "ORCH-2");
    let posts = stub.messages_requests();
    assert!(posts.iter().all(|r| !r.streamed && r.status == 200));
    // The CLI asks for a stream, gets JSON, and asks again without `stream`.
    let streamed_asks = posts
        .iter()
        .filter(|r| r.body.as_ref().is_some_and(|b| b["stream"] == true))
        .count();
    assert!(
        streamed_asks >= 1 && posts.len() > streamed_asks,
        "{posts:#?}"
    );
}

#[test]
fn a_second_run_rewrites_existing_artifacts_after_reading_them() {
    let repo = scratch_git_repo();
    let review = repo.path().join("docs/work-items/ORCH-3/12-review.md");
    for verdict in ["REQUEST_CHANGES", "APPROVED"] {
        let stub = AnthropicStub::start(StubConfig {
            verdicts: Verdicts {
                reviewer: verdict.into(),
                ..Verdicts::default()
            },
            ..StubConfig::default()
        });
        let run = run(
            &ClaudeEnv::new(&stub),
            repo.path(),
            &prompt("reviewer", "ORCH-3"),
        );
        assert_success(&run);
        let text = std::fs::read_to_string(&review).unwrap();
        assert!(text.contains(&format!("verdict: {verdict}")), "{text}");
    }
    let developer_stub = AnthropicStub::start(StubConfig::default());
    let env = ClaudeEnv::new(&developer_stub);
    for _ in 0..2 {
        assert_success(&run(&env, repo.path(), &prompt("developer", "ORCH-3")));
    }
    let change = std::fs::read_to_string(repo.path().join("changes/ORCH-3.md")).unwrap();
    assert!(change.contains("developer run 1") && change.contains("developer run 2"));
}

#[test]
fn a_bad_request_fails_with_the_api_message() {
    let stub = AnthropicStub::start(StubConfig {
        default_fault: Some(Fault::BadRequest {
            message: "messages.1.content.0: tool_use ids must be unique".into(),
        }),
        ..StubConfig::default()
    });
    let repo = scratch_git_repo();
    let run = run(
        &ClaudeEnv::new(&stub),
        repo.path(),
        &prompt("analyst", "ORCH-4"),
    );
    assert!(!run.timed_out);
    assert_eq!(run.exit_code, Some(1));
    let result = run.json();
    assert_eq!(result["is_error"], true);
    assert_eq!(
        result["subtype"], "success",
        "the CLI keeps subtype success"
    );
    assert_eq!(result["api_error_status"], 400);
    assert_eq!(
        result["result"],
        "API Error: 400 messages.1.content.0: tool_use ids must be unique"
    );
    assert_eq!(stub.messages_requests().len(), 1, "a 400 is not retried");
}

#[test]
fn a_rate_limit_without_retries_fails_fast_as_a_429() {
    let stub = AnthropicStub::start(StubConfig {
        default_fault: Some(Fault::RateLimited { retry_after_s: 1 }),
        ..StubConfig::default()
    });
    let repo = scratch_git_repo();
    let env = ClaudeEnv::new(&stub).set("CLAUDE_CODE_MAX_RETRIES", "0");
    let run = run(&env, repo.path(), &prompt("analyst", "ORCH-5"));
    assert_eq!(run.exit_code, Some(1), "{run:?}");
    let result = run.json();
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 429);
    let text = result["result"].as_str().unwrap();
    assert!(
        text.starts_with("API Error: Request rejected (429) · "),
        "{text}"
    );
    assert_eq!(stub.messages_requests().len(), 1);
}

#[test]
fn a_rate_limit_is_retried_by_the_cli_after_retry_after() {
    let stub = AnthropicStub::start(StubConfig::default());
    stub.push_fault(Fault::RateLimited { retry_after_s: 1 });
    let repo = scratch_git_repo();
    let run = run(
        &ClaudeEnv::new(&stub),
        repo.path(),
        &prompt("analyst", "ORCH-6"),
    );
    assert_success(&run);
    let posts = stub.messages_requests();
    let statuses: Vec<u16> = posts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200, 200]);
    // retry-after is a lower bound on the CLI's own wait.
    assert!(posts[1].at - posts[0].at >= Duration::from_secs(1));
}

#[test]
fn unauthorized_without_retries_fails_and_with_retries_needs_a_process_timeout() {
    let stub = AnthropicStub::start(StubConfig {
        default_fault: Some(Fault::Unauthorized),
        ..StubConfig::default()
    });
    let repo = scratch_git_repo();
    let env = ClaudeEnv::new(&stub).set("CLAUDE_CODE_MAX_RETRIES", "0");
    let fast = run(&env, repo.path(), &prompt("analyst", "ORCH-7"));
    assert_eq!(fast.exit_code, Some(1), "{fast:?}");
    let result = fast.json();
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 401);
    assert_eq!(result["result"], "Invalid API key · Fix external API key");

    // With its default retries the CLI keeps retrying silently: only a timeout ends it.
    let hanging = ClaudeEnv::new(&stub).run(
        repo.path(),
        &[
            "-p",
            "hi",
            "--output-format",
            "json",
            "--model",
            "claude-sonnet-4-5",
        ],
        Duration::from_secs(4),
    );
    assert!(hanging.timed_out, "{hanging:?}");
    assert_eq!(hanging.exit_code, None);
    assert_eq!(hanging.stdout, "");
}
