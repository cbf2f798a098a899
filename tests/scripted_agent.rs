//! The built binary as a dry-run agent: launched with the real CLI's flags, it plays each
//! role through a whole scripted pipeline in one worktree, answers with a result object our
//! parser reads, needs no service configuration, and runs under the agent runner.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use orchestrator::claude::result::{CliResult, parse_stdout};
use orchestrator::claude::runner::{self, AgentCommand};

const TASK: &str = "# Add a health endpoint\n\
    The service should answer GET /health with 200.\n\
    scripted-agent: reviewer=REQUEST_CHANGES,APPROVED deployer=SUCCESS\n";

/// The argv the orchestrator gives `claude`, pointed at this binary instead.
fn agent_args(task: &str) -> Vec<String> {
    [
        "scripted-agent",
        "-p",
        task,
        "--output-format",
        "json",
        "--model",
        "claude-sonnet-4-5",
        "--append-system-prompt-file",
        "/nonexistent/role.md",
        "--allowedTools",
        "Read Edit Bash(git *)",
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        "40",
        "--effort",
        "high",
        "--fallback-model",
        "claude-haiku-4-5",
        "--some-future-flag",
        "value",
    ]
    .map(String::from)
    .to_vec()
}

fn artifacts_dir(worktree: &Path) -> PathBuf {
    worktree.join("docs/work-items/ORCH-42")
}

/// Runs one role in `worktree` and returns the process output.
fn play(worktree: &Path, role: &str, attempt: u32, stage: &str, task: &str) -> Output {
    common::command(worktree)
        .args(agent_args(task))
        .env("ORCH_ROLE", role)
        .env("ORCH_WORK_ITEM", "ORCH-42")
        .env("ORCH_ARTIFACTS_DIR", artifacts_dir(worktree))
        .env("ORCH_ATTEMPT", attempt.to_string())
        .env("ORCH_STAGE", stage)
        .output()
        .expect("run the scripted agent")
}

/// The run's result object; asserts it succeeded as the CLI would report it.
fn succeeded(out: &Output) -> CliResult {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout}\nstderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON line expected: {stdout}"
    );
    let result = parse_stdout(&stdout).expect("a CLI result object");
    assert!(
        !result.is_error && result.subtype == "success",
        "{result:?}"
    );
    assert!(
        result
            .result
            .as_deref()
            .unwrap()
            .starts_with("[scripted-agent] dry run:")
    );
    result
}

fn front_matter_value(path: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml = text
        .strip_prefix("---\n")
        .and_then(|r| r.split_once("\n---\n"))
        .unwrap()
        .0;
    let map: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
    map.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{key} in {text}"))
        .to_string()
}

#[test]
fn every_role_plays_its_part_through_a_scripted_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let wt = dir.path();
    let docs = artifacts_dir(wt);

    let analyst = succeeded(&play(wt, "analyst", 1, "analysis", TASK));
    assert!(analyst.result.unwrap().contains("01-brd.md"));
    for name in [
        "00-business-request.md",
        "01-brd.md",
        "02-trz.md",
        "03-acceptance-criteria.md",
    ] {
        assert_eq!(
            front_matter_value(&docs.join(name), "work_item_id"),
            "ORCH-42"
        );
    }
    let plan: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(docs.join("04-test-plan.yaml")).unwrap())
            .unwrap();
    assert!(plan["cases"].as_sequence().is_some_and(|c| !c.is_empty()));

    succeeded(&play(wt, "architect", 1, "architecture", TASK));
    let adr = docs.join("06-adr/ADR-001-add-a-health-endpoint.md");
    assert_eq!(front_matter_value(&adr, "status"), "accepted");
    assert_eq!(front_matter_value(&adr, "verdict"), "OK");

    succeeded(&play(wt, "developer", 1, "development", TASK));
    succeeded(&play(wt, "reviewer", 1, "review", TASK));
    assert_eq!(
        front_matter_value(&docs.join("12-review.md"), "verdict"),
        "REQUEST_CHANGES"
    );
    succeeded(&play(wt, "developer", 2, "development", TASK));
    let changes = std::fs::read_to_string(wt.join("changes/ORCH-42.md")).unwrap();
    assert_eq!(changes.matches("ORCH-42").count(), 2, "{changes}");
    succeeded(&play(wt, "reviewer", 2, "review", TASK));
    assert_eq!(
        front_matter_value(&docs.join("12-review.md"), "verdict"),
        "APPROVED"
    );

    succeeded(&play(wt, "tester", 1, "testing", TASK));
    assert_eq!(
        front_matter_value(&docs.join("13-test-report.md"), "result"),
        "PASS"
    );

    succeeded(&play(wt, "deployer", 1, "deploy-staging", TASK));
    assert_eq!(
        front_matter_value(&docs.join("15-staging-log.md"), "staging_status"),
        "SUCCESS"
    );
    succeeded(&play(wt, "deployer", 2, "deploy", TASK));
    assert_eq!(
        front_matter_value(&docs.join("14-deploy-log.md"), "deploy_status"),
        "SUCCESS"
    );
}

#[test]
fn failing_verdicts_and_crashes_follow_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let wt = dir.path();
    let task = "Fix it\nscripted-agent: tester=FAIL architect=CONFLICT fail=developer";

    succeeded(&play(wt, "tester", 1, "testing", task));
    assert_eq!(
        front_matter_value(&artifacts_dir(wt).join("13-test-report.md"), "result"),
        "FAIL"
    );
    succeeded(&play(wt, "architect", 1, "architecture", task));
    let adr = artifacts_dir(wt).join("06-adr/ADR-001-fix-it.md");
    assert_eq!(front_matter_value(&adr, "verdict"), "CONFLICT");

    let crash = play(wt, "developer", 1, "development", task);
    assert_eq!(crash.status.code(), Some(1));
    let result = parse_stdout(&String::from_utf8_lossy(&crash.stdout)).unwrap();
    assert!(result.is_error);
    assert!(result.error_message().unwrap().contains("simulated crash"));
    assert!(!wt.join("changes").exists());
}

#[test]
fn it_needs_no_service_configuration_and_names_a_missing_variable() {
    let dir = tempfile::tempdir().unwrap();
    // Both would stop `serve` with a configuration error; the agent must not care.
    std::fs::write(dir.path().join(".env"), "THIS IS NOT A DOTENV LINE\n").unwrap();
    let out = common::command(dir.path())
        .args(agent_args("task"))
        .env("ORCH_BIND", "nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let result = parse_stdout(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert!(result.is_error);
    assert!(
        result
            .error_message()
            .unwrap()
            .contains("ORCH_ROLE is not set"),
        "{result:?}"
    );

    let ok = common::command(dir.path())
        .args(agent_args("task"))
        .env("ORCH_BIND", "nonsense")
        .env("ORCH_ROLE", "reviewer")
        .env("ORCH_WORK_ITEM", "ORCH-42")
        .env("ORCH_ARTIFACTS_DIR", artifacts_dir(dir.path()))
        .output()
        .unwrap();
    succeeded(&ok);

    let no_task = common::command(dir.path())
        .args(["scripted-agent", "--output-format", "json"])
        .output()
        .unwrap();
    assert_eq!(no_task.status.code(), Some(2));
    let result = parse_stdout(&String::from_utf8_lossy(&no_task.stdout)).unwrap();
    assert!(result.error_message().unwrap().contains("-p/--print"));
}

fn runner_command(worktree: &Path, role: &str, task: &str, timeout: Duration) -> AgentCommand {
    AgentCommand {
        program: PathBuf::from(common::BIN),
        args: agent_args(task),
        cwd: worktree.to_path_buf(),
        env: vec![
            ("ORCH_ROLE".into(), role.into()),
            ("ORCH_WORK_ITEM".into(), "ORCH-42".into()),
            (
                "ORCH_ARTIFACTS_DIR".into(),
                artifacts_dir(worktree).display().to_string(),
            ),
            ("ORCH_ATTEMPT".into(), "1".into()),
        ],
        log_path: worktree.join("runs/reviewer-1.log"),
        timeout,
        term_grace: Duration::from_secs(2),
        shim: PathBuf::from(common::BIN),
    }
}

#[tokio::test]
async fn the_runner_drives_it_like_a_real_agent() {
    let dir = tempfile::tempdir().unwrap();
    let wt = dir.path();
    let outcome = runner::run(runner_command(
        wt,
        "reviewer",
        TASK,
        Duration::from_secs(60),
    ))
    .await;
    assert!(outcome.success(), "{outcome:?}");
    let result = outcome.result.unwrap();
    assert_eq!(result.primary_model(), Some("scripted-agent"));
    assert_eq!(result.cost_usd(), 0.0);
    assert_eq!(
        front_matter_value(&artifacts_dir(wt).join("12-review.md"), "verdict"),
        "REQUEST_CHANGES"
    );
    assert!(
        outcome.log_tail.contains("[scripted-agent] dry run"),
        "{}",
        outcome.log_tail
    );

    // A scripted sleep past the timeout: stopped, reported, nothing written.
    let slow = "scripted-agent: sleep=tester:300";
    let outcome = runner::run(runner_command(wt, "tester", slow, Duration::from_secs(1))).await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, Some(-libc::SIGTERM));
    assert_eq!(outcome.result.unwrap_err(), "timeout after 1 s");
    assert!(!artifacts_dir(wt).join("13-test-report.md").exists());
}
