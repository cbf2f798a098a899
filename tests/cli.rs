//! The command line for people, against a running service: tables by default and JSON with
//! `--json`, operator actions with the token from `ORCH_OPERATOR_TOKEN` or `--token`, a
//! closed pipe ending the output quietly, and errors that name what was wrong, exit
//! non-zero and change nothing.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{Service, TOKEN, command, reach, start_local as start, task};
use serde_json::Value;

/// Runs the CLI in `dir` against `service` with `args`, and the operator token in the
/// environment when `token` is given.
fn cli(dir: &Path, service: &Service, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = command(dir);
    cmd.args(args).arg("--url").arg(&service.base);
    if let Some(token) = token {
        cmd.env("ORCH_OPERATOR_TOKEN", token);
    }
    cmd.output().expect("run the CLI")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn people_get_tables_machines_get_json_and_actions_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let cwd = dir.path();

    let created = cli(
        cwd,
        &service,
        None,
        &[
            "task",
            "create",
            "--repo",
            "acme/app",
            "--title",
            "Export a report",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(stdout(&created), "created ACME-001\n");
    reach(&service, "ACME-001", "analysis", "awaiting-approval").await;

    // A table for people…
    let list = cli(cwd, &service, None, &["tasks"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("PHASE"),
        "{text}"
    );
    assert!(lines[1].starts_with("ACME-001"), "{text}");
    assert!(lines[1].contains("awaiting-approval") && lines[1].contains("Export a report"));
    // …and the service's reply as it is for machines.
    let json = cli(cwd, &service, None, &["tasks", "--json"]);
    let reply: Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(reply["tasks"][0]["work_item_id"], "ACME-001");

    let shown = cli(cwd, &service, None, &["task", "show", "ACME-001"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let text = stdout(&shown);
    assert!(
        text.contains("transitions") && text.contains("analyst"),
        "{text}"
    );
    let status = stdout(&cli(cwd, &service, None, &["status"]));
    assert!(
        status.contains("ACME-001") && status.contains("webhook deliveries in progress: 0"),
        "{status}"
    );
    let actors = stdout(&cli(cwd, &service, None, &["actors", "--depth", "1"]));
    assert!(actors.starts_with("root [running]\n  "), "{actors}");
    assert!(actors.contains("  tasks [running]"), "{actors}");
    let queue = cli(cwd, &service, None, &["queue"]);
    assert!(
        stdout(&queue).contains("breaker  closed"),
        "{}",
        stdout(&queue)
    );

    // A wrong token is refused, says so, exits non-zero and changes nothing.
    let wrong = cli(
        cwd,
        &service,
        None,
        &["task", "approve", "ACME-001", "--token", "not-the-token"],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let err = stderr(&wrong);
    assert!(
        err.contains("401") && err.contains("ORCH_OPERATOR_TOKEN"),
        "{err}"
    );
    // No token at all: refused before anything is sent.
    let none = cli(cwd, &service, None, &["task", "approve", "ACME-001"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("needs the operator token"),
        "{}",
        stderr(&none)
    );
    // A malformed id is named.
    let bad = cli(cwd, &service, Some(TOKEN), &["task", "approve", "acme 1"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("\"acme 1\""), "{}", stderr(&bad));
    // An unknown task is named.
    let missing = cli(cwd, &service, Some(TOKEN), &["task", "pause", "ACME-999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("ACME-999"),
        "{}",
        stderr(&missing)
    );
    // A retry of a task that is not blocked is refused, and says why.
    let retry = cli(
        cwd,
        &service,
        Some(TOKEN),
        &["task", "retry", "ACME-001", "--note", "try again"],
    );
    assert_eq!(retry.status.code(), Some(1));
    assert!(
        stderr(&retry).contains("409") && stderr(&retry).contains("not blocked"),
        "{}",
        stderr(&retry)
    );
    assert_eq!(
        task(&service, "ACME-001").await["phase"],
        "awaiting-approval"
    );

    // The token from the environment (as the service reads it) moves the task on.
    let approved = cli(cwd, &service, Some(TOKEN), &["task", "approve", "ACME-001"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(
        stdout(&approved).starts_with("ACME-001 approve: done; now architecture"),
        "{}",
        stdout(&approved)
    );
    reach(&service, "ACME-001", "done", "idle").await;

    // A repository's merge queue, frozen and released from the command line.
    let frozen = cli(
        cwd,
        &service,
        Some(TOKEN),
        &["repo", "freeze", "acme/app", "--reason", "release day"],
    );
    assert!(frozen.status.success(), "{}", stderr(&frozen));
    assert_eq!(stdout(&frozen), "acme/app frozen: done\n");
    let queue = service.get("/queue").await.1;
    assert_eq!(queue["merge_queues"][0]["frozen"]["reason"], "release day");
    let unknown = cli(
        cwd,
        &service,
        Some(TOKEN),
        &["repo", "freeze", "nope/app", "--reason", "x"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("404") && stderr(&unknown).contains("nope/app"),
        "{}",
        stderr(&unknown)
    );
    let wrong = cli(
        cwd,
        &service,
        None,
        &["repo", "unfreeze", "acme/app", "--token", "not-the-token"],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("401"), "{}", stderr(&wrong));
    let released = cli(
        cwd,
        &service,
        Some(TOKEN),
        &["repo", "unfreeze", "acme/app"],
    );
    assert!(released.status.success(), "{}", stderr(&released));
    assert_eq!(stdout(&released), "acme/app unfrozen: done\n");
}

#[tokio::test]
async fn a_closed_pipe_ends_the_output_quietly_and_an_absent_service_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    for n in 0..3 {
        let body = serde_json::json!({"repo": "acme/app", "title": format!("task {n}")});
        assert_eq!(service.post_json("/tasks", &body, None).await.0, 201);
    }
    for args in [
        &["tasks"][..],
        &["tasks", "--json"],
        &["task", "show", "ACME-001"],
        &["queue"],
    ] {
        // The reader is gone before the first byte is written, as with `| head -0`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = command(dir.path());
        cmd.args(args)
            .arg("--url")
            .arg(&service.base)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped());
        let output = cmd.output().unwrap();
        let err = stderr(&output);
        assert!(
            output.status.success(),
            "{args:?}: {:?} {err}",
            output.status
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }

    let gone = command(dir.path())
        .args(["tasks", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("cannot reach the orchestrator at http://127.0.0.1:9"),
        "{}",
        stderr(&gone)
    );
}
