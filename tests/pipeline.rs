//! The pipeline end to end on the real binary in local mode: the local tracker (`POST
//! /tasks`), the local git forge on a sample bare origin, and the dry-run agent steered by
//! `scripted-agent:` directives in the task description. Humans act through the operator API.

mod common;

use std::time::Duration;

use common::{
    Service, TOKEN, create, dispatch_caught_up, eventually, reach, runs, start_local as start, task,
};
use serde_json::{Value, json};

async fn act(service: &Service, id: &str, action: &str, body: Value) -> (u16, Value) {
    service
        .post_json(&format!("/tasks/{id}/{action}"), &body, Some(TOKEN))
        .await
}

fn stages(task: &Value) -> Vec<String> {
    task["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap().to_string())
        .collect()
}

fn roles(task: &Value) -> Vec<String> {
    task["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap().to_string())
        .collect()
}

async fn origin_log(dir: &std::path::Path) -> String {
    orchestrator::git::command::git(&dir.join("ACME.git"), &["log", "--format=%p|%s", "main"])
        .await
        .unwrap()
}

#[tokio::test]
async fn the_happy_path_merges_into_main() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(
        &service,
        "Greet by name",
        "Say hello to the user.",
        &["autoApprove"],
    )
    .await;
    assert_eq!(id, "ACME-001");
    let done = reach(&service, &id, "done", "idle").await;
    assert_eq!(
        stages(&done),
        [
            "created",
            "analysis",
            "architecture",
            "development",
            "review",
            "testing",
            "deploy",
            "done"
        ]
    );
    // Without a staging stand the deployer runs once, for production, on the candidate.
    assert_eq!(
        roles(&done),
        [
            "analyst",
            "architect",
            "developer",
            "reviewer",
            "tester",
            "deployer"
        ]
    );
    assert_eq!(done["branch"], "feature/ACME-001-greet-by-name");
    assert_eq!(done["developer_retries"], 0);
    assert!(
        done["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded" && r["exit_code"] == 0)
    );
    let log = origin_log(dir.path()).await;
    let merge = log.lines().next().unwrap();
    assert_eq!(
        merge.split('|').next().unwrap().split(' ').count(),
        2,
        "a merge commit: {merge}"
    );
    assert!(merge.contains("(ACME-001)"), "{merge}");
    assert!(done["actor"].is_null(), "a done task has no actor");
    // Done: its worktree is removed; its branch stays on the origin.
    let worktree = service.data_dir.join("worktrees").join(&id);
    eventually("the worktree removed", Duration::from_secs(20), || {
        let gone = !worktree.exists();
        async move { gone.then_some(()) }
    })
    .await;
    let branches = orchestrator::git::command::git(
        &dir.path().join("ACME.git"),
        &["branch", "--list", "feature/ACME-001-greet-by-name"],
    )
    .await
    .unwrap();
    assert!(
        branches.contains("feature/ACME-001-greet-by-name"),
        "{branches}"
    );
    // The developer's run opened the branch's pull request; the merge closed it.
    let pr = &done["pull_request"];
    assert_eq!(
        (&pr["number"], &pr["state"], &pr["head"]),
        (
            &json!(1),
            &json!("merged"),
            &json!("feature/ACME-001-greet-by-name")
        ),
        "{pr}"
    );
    // Usage: the stages' sums are the total, and the total is the sum of the runs.
    let total = &done["usage_total"];
    assert_eq!(total["runs"], 6, "{total}");
    for key in ["input_tokens", "output_tokens", "cost_nano_usd"] {
        let by_stage: u64 = done["usage_by_stage"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s[key].as_u64().unwrap())
            .sum();
        assert_eq!(by_stage, total[key].as_u64().unwrap(), "{key}");
    }
}

#[tokio::test]
async fn analysis_waits_for_approval_a_rejection_reruns_the_analyst_and_a_replay_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(&service, "Export a report", "CSV export.", &[]).await;
    reach(&service, &id, "analysis", "awaiting-approval").await;

    let (status, reply) = act(
        &service,
        &id,
        "reject",
        json!({"reason": "add the PDF format"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["changed"], true);
    let t = eventually("a second analyst run", Duration::from_secs(60), || async {
        let t = task(&service, &id).await;
        (t["phase"] == "awaiting-approval" && t["runs"].as_array().unwrap().len() == 2).then_some(t)
    })
    .await;
    assert_eq!(roles(&t), ["analyst", "analyst"]);
    assert_eq!(t["stage"], "analysis");

    let (_, first) = act(&service, &id, "approve", json!({})).await;
    assert_eq!(first["changed"], true);
    let (status, replay) = act(&service, &id, "approve", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        replay["changed"], false,
        "a replayed approve changes nothing"
    );
    let done = reach(&service, &id, "done", "idle").await;
    let approvals = stages(&done)
        .iter()
        .filter(|s| *s == "architecture")
        .count();
    assert_eq!(approvals, 1);
}

#[tokio::test]
async fn request_changes_then_approved_rolls_back_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(
        &service,
        "Fix the footer",
        "scripted-agent: reviewer=REQUEST_CHANGES,APPROVED",
        &["autoApprove"],
    )
    .await;
    let done = reach(&service, &id, "done", "idle").await;
    assert_eq!(done["developer_retries"], 1);
    let rollbacks: Vec<_> = done["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["from"] == "review" && t["to"] == "development")
        .collect();
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(roles(&done).iter().filter(|r| *r == "developer").count(), 2);
    assert_eq!(roles(&done).iter().filter(|r| *r == "reviewer").count(), 2);
    // Two developer runs on the branch, still one pull request.
    assert_eq!(
        done["pull_request"]["number"], 1,
        "{}",
        done["pull_request"]
    );
}

#[tokio::test]
async fn three_failed_rounds_park_the_task_as_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(
        &service,
        "Flaky login",
        "scripted-agent: tester=FAIL",
        &["autoApprove"],
    )
    .await;
    let blocked = reach(&service, &id, "testing", "blocked").await;
    assert_eq!(blocked["developer_retries"], 3);
    assert!(
        blocked["blocked_reason"]
            .as_str()
            .unwrap()
            .contains("13-test-report.md"),
        "{}",
        blocked["blocked_reason"]
    );
    let runs = blocked["runs"].as_array().unwrap().len();
    // Had blocking queued another job, the dispatcher would have claimed it before the
    // witness's, so it would show among the task's runs by now.
    dispatch_caught_up(&service).await;
    assert_eq!(
        task(&service, &id).await["runs"].as_array().unwrap().len(),
        runs,
        "nothing more is launched"
    );
}

#[tokio::test]
async fn a_retried_blocked_task_continues_with_the_note_and_reaches_done() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(
        &service,
        "Flaky login",
        "scripted-agent: tester=FAIL,FAIL,FAIL,PASS",
        &["autoApprove"],
    )
    .await;
    let path = format!("/tasks/{id}/retry");
    // Not blocked yet: refused, and nothing changes.
    let (status, reply) = service
        .post_json(&path, &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("not blocked"),
        "{reply}"
    );
    let blocked = reach(&service, &id, "testing", "blocked").await;
    // What it waits for, and what unblocks it, in the words people read.
    assert_eq!(blocked["waiting"]["waiting_for"], "human", "{blocked}");
    assert!(
        blocked["waiting"]["action"]
            .as_str()
            .unwrap()
            .contains(&format!("/tasks/{id}/retry")),
        "{blocked}"
    );
    // Bad bodies are refused by name.
    for (body, what) in [
        (json!({"note": ""}), "note"),
        (json!({"reason": "x"}), "not a reason"),
        (json!({"note": "x", "extra": 1}), "extra"),
    ] {
        let (status, reply) = service.post_json(&path, &body, Some(common::TOKEN)).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains(what), "{reply}");
    }
    let (status, reply) = service
        .post_json(
            &format!("/tasks/{id}/approve"),
            &json!({"note": "x"}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, _) = service
        .post_json("/tasks/ACME-999/retry", &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 404);
    let (status, _) = service.post_json(&path, &json!({}), None).await;
    assert_eq!(status, 401);
    assert_eq!(task(&service, &id).await["phase"], "blocked");

    let (status, reply) = service
        .post_json(
            &path,
            &json!({"note": "The login test needs the seeded admin user."}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["changed"], true, "{reply}");
    let done = reach(&service, &id, "done", "idle").await;
    let journal = done["transitions"].to_string();
    assert!(
        journal.contains("retried by operator: The login test needs the seeded admin user."),
        "{journal}"
    );
    // The developer's next run got the note verbatim (the scripted developer quotes it).
    let changes = orchestrator::git::command::git(
        &dir.path().join("ACME.git"),
        &["show", &format!("main:changes/{id}.md")],
    )
    .await
    .unwrap();
    assert!(
        changes.contains("> The login test needs the seeded admin user."),
        "{changes}"
    );
    // A second retry of a task that is no longer blocked changes nothing.
    let (status, _) = service
        .post_json(&path, &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_cancelled_task_restarts_as_a_new_task_that_says_which_attempt_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(&service, "Add a banner", "", &[]).await;
    reach(&service, &id, "analysis", "awaiting-approval").await;
    let restart = format!("/tasks/{id}/restart");
    // Only a cancelled task restarts; bad input changes nothing.
    let (status, reply) = service
        .post_json(&restart, &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("not cancelled"),
        "{reply}"
    );
    let (status, _) = service.post_json(&restart, &json!({}), None).await;
    assert_eq!(status, 401);
    let (status, _) = service
        .post_json("/tasks/ACME-404/restart", &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 404);
    let (status, reply) = service
        .post_json(&restart, &json!({"reason": "x"}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 400, "{reply}");

    let (status, reply) = service
        .post_json(
            &format!("/tasks/{id}/stop"),
            &json!({"reason": "wrong approach"}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    reach(&service, &id, "cancelled", "idle").await;
    let (status, reply) = service
        .post_json(&restart, &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 201, "{reply}");
    let new = reply["work_item_id"].as_str().unwrap().to_string();
    assert_eq!(new, format!("{id}-r2"));
    assert_eq!(reply["restart_of"], id.as_str());
    // The old task stays cancelled, its journal saying what replaced it.
    let old = task(&service, &id).await;
    assert_eq!(old["stage"], "cancelled");
    assert!(
        old["transitions"]
            .to_string()
            .contains(&format!("restarted as {new}"))
    );
    // Twice is refused: it was restarted already.
    let (status, reply) = service
        .post_json(&restart, &json!({}), Some(common::TOKEN))
        .await;
    assert_eq!(status, 409, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains(&new), "{reply}");
    // The new task runs the pipeline from the start, under its own id and branch.
    let fresh = reach(&service, &new, "analysis", "awaiting-approval").await;
    assert_eq!(fresh["title"], "Add a banner");
    assert_eq!(fresh["waiting"]["waiting_for"], "approval", "{fresh}");
    assert!(
        fresh["transitions"]
            .to_string()
            .contains(&format!("restart of {id}"))
    );
    let (status, _) = service
        .post_json(
            &format!("/tasks/{new}/approve"),
            &json!({}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let done = reach(&service, &new, "done", "idle").await;
    assert!(done["branch"].as_str().unwrap().contains(&new), "{done}");
}

#[tokio::test]
async fn stop_during_a_running_agent_kills_it_and_nothing_of_its_run_reaches_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(
        &service,
        "Slow change",
        "scripted-agent: sleep=developer:60 code=slow.txt:x",
        &["autoApprove"],
    )
    .await;
    // The developer's agent runs (and sleeps).
    let pid = eventually("the developer running", Duration::from_secs(60), || async {
        let queue = service.get("/queue").await.1;
        queue["jobs"].as_array().and_then(|jobs| {
            jobs.iter()
                .find(|j| j["task"] == id.as_str() && j["role"] == "developer")
                .and_then(|j| j["pid"].as_i64())
        })
    })
    .await;
    let alive = |pid: i64| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    assert!(alive(pid));
    let (status, reply) = service
        .post_json(
            &format!("/tasks/{id}/stop"),
            &json!({"reason": "wrong approach"}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let t = reach(&service, &id, "cancelled", "idle").await;
    // Killed within the grace (SIGTERM first), long before its 60 s were up.
    eventually("the agent gone", Duration::from_secs(25), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    let branch = t["branch"].as_str().unwrap().to_string();
    let origin = dir.path().join("ACME.git");
    eventually(
        "the branch gone from the origin",
        Duration::from_secs(20),
        || {
            let origin = origin.clone();
            let branch = branch.clone();
            async move {
                let listed =
                    orchestrator::git::command::git(&origin, &["branch", "--list", &branch])
                        .await
                        .unwrap();
                listed.trim().is_empty().then_some(())
            }
        },
    )
    .await;
    let everywhere =
        orchestrator::git::command::git(&origin, &["log", "--all", "--name-only", "--format="])
            .await
            .unwrap();
    assert!(!everywhere.contains("slow.txt"), "{everywhere}");
    // The run is journaled as stopped; a second STOP changes nothing.
    let dev = eventually(
        "the run journaled as stopped",
        Duration::from_secs(20),
        || async {
            runs(&task(&service, &id).await)
                .into_iter()
                .find(|r| r["role"] == "developer" && r["status"] != "running")
        },
    )
    .await;
    assert!(
        dev["reason"].as_str().unwrap_or("").contains("stopped"),
        "{dev}"
    );
    let (status, _) = service
        .post_json(
            &format!("/tasks/{id}/stop"),
            &json!({}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_bug_skips_architecture_on_a_fix_branch() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let id = create(&service, "Crash on empty name", "", &["Bug", "autoApprove"]).await;
    let done = reach(&service, &id, "done", "idle").await;
    assert!(!stages(&done).contains(&"architecture".to_string()));
    assert_eq!(done["branch"], "fix/ACME-001-crash-on-empty-name");
}

#[tokio::test]
async fn pause_holds_the_task_and_resume_releases_it_and_deploy_waits_for_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), true).await;
    let id = create(&service, "Add a banner", "", &[]).await;
    reach(&service, &id, "analysis", "awaiting-approval").await;
    let (_, paused) = act(&service, &id, "pause", json!({})).await;
    assert_eq!(paused["paused"], true);
    act(&service, &id, "approve", json!({})).await;
    // The architect's job is queued but a paused task starts nothing: once the job is in the
    // queue, a witness task queued after it gets its run, which a claimable job would have
    // got first.
    eventually(
        "the architect's job in the queue",
        Duration::from_secs(30),
        || async {
            let (_, q) = service.get("/queue").await;
            q["jobs"]
                .as_array()?
                .iter()
                .any(|j| j["task"] == id && j["role"] == "architect")
                .then_some(())
        },
    )
    .await;
    dispatch_caught_up(&service).await;
    let held = task(&service, &id).await;
    assert_eq!(
        (held["stage"].as_str(), held["phase"].as_str()),
        (Some("architecture"), Some("working"))
    );
    assert_eq!(roles(&held), ["analyst"]);

    let (_, resumed) = act(&service, &id, "resume", json!({})).await;
    assert_eq!(resumed["paused"], false);
    reach(&service, &id, "deploy", "awaiting-deploy-confirm").await;
    let (_, approve) = act(&service, &id, "approve", json!({})).await;
    assert_eq!(approve["changed"], false, "a plain approve does not deploy");
    act(&service, &id, "confirm-deploy", json!({})).await;
    reach(&service, &id, "done", "idle").await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path(), false).await;
    let long = "x".repeat(10_000);
    for (body, needle) in [
        (
            json!({"repo": "acme/nope", "title": "t"}),
            "unknown repo \"acme/nope\"",
        ),
        (
            json!({"repo": "acme/app", "title": "  "}),
            "title must not be empty",
        ),
        (
            json!({"repo": "acme/app", "title": long}),
            "title is 10000 characters long",
        ),
        (
            json!({"repo": "acme/app", "title": "t", "labels": [1, 2]}),
            "labels must be strings",
        ),
        (
            json!({"repo": "acme/app", "title": "t", "labels": "Bug"}),
            "labels must be a list",
        ),
        (
            json!({"repo": "acme/app", "title": "t", "work_item_id": "../x"}),
            "unknown field \"work_item_id\"",
        ),
        (json!(["not", "an", "object"]), "must be a JSON object"),
    ] {
        let (status, reply) = service.post_json("/tasks", &body, None).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(needle),
            "{body}: {reply}"
        );
    }
    for path in ["/tasks/..%2Fetc%2Fpasswd/approve", "/tasks/-rf/approve"] {
        let (status, reply) = service.post_json(path, &json!({}), Some(TOKEN)).await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("invalid work item id"),
            "{reply}"
        );
    }
    let (status, _) = service
        .post_json(
            "/tasks/ACME-001/approve",
            &json!({}),
            Some("wrong-token-0000000"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, reply) = service
        .post_json("/tasks/ACME-001/reject", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        service.get("/tasks").await.1["tasks"],
        json!([]),
        "nothing was created"
    );
    // The first valid task still gets the first number.
    assert_eq!(create(&service, "Valid", "", &[]).await, "ACME-001");
}

#[tokio::test]
async fn operator_routes_are_refused_without_a_configured_token() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(&dir.path().join("data"), &[]);
    let (status, reply) = service
        .post_json("/tasks/ACME-001/approve", &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, 403);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("ORCH_OPERATOR_TOKEN")
    );
}

#[tokio::test]
async fn what_the_tests_leave_behind_never_reaches_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::local_mode(dir.path(), &[("acme/app", "ACME", false)]).await;
    // A test command that leaves a cache behind, like Python's `__pycache__`.
    let litter =
        r#"sh -c "mkdir -p __pycache__ && echo cache > __pycache__/app.pyc && sh test.sh""#;
    for (key, value) in env.iter_mut() {
        if key == "ORCH_PROJECTS_JSON" {
            let mut projects: Value = serde_json::from_str(value).unwrap();
            projects[0]["test_cmd"] = json!(litter);
            *value = projects.to_string();
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let service = Service::start(&dir.path().join("data"), &env);
    let id = create(&service, "Litter", "Leave no trace.", &["autoApprove"]).await;
    reach(&service, &id, "done", "idle").await;
    let files = orchestrator::git::command::git(
        &dir.path().join("ACME.git"),
        &["ls-tree", "-r", "--name-only", "main"],
    )
    .await
    .unwrap();
    assert!(!files.contains("__pycache__"), "{files}");
    assert!(files.contains(&format!("docs/work-items/{id}/")), "{files}");
    // And no CI checkout is left beside the clones.
    let checkouts = service.data_dir.join("repos").join("_ci");
    let left: Vec<_> = std::fs::read_dir(&checkouts)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
