//! The merge queue, black-box in local mode: tasks whose changes are each green but red
//! together never make `main` red; a conflict goes back to development with `main` merged in;
//! a red `main` freezes the queue instead of bouncing tasks; CI trouble blocks as
//! infrastructure; a kill -9 mid-test or mid-fast-forward loses nothing and merges nothing
//! twice. The project's test command is `sh check.sh` on an origin this file builds.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Service, TOKEN, create, eventually, task};
use serde_json::{Value, json};

/// The project's tests: `a.flag` and `b.flag` are each fine but clash together (unless one
/// of them says `fixed`, as its developer's second run writes); `main-red`
/// breaks everything; `slow-main.flag` with `slow-branch.flag` takes a minute; `slow.flag`
/// alone takes 3 s. Every run leaves a `__pycache__` behind, like a Python suite.
const CHECK: &str = r#"#!/bin/sh
mkdir -p __pycache__ && touch __pycache__/trace.pyc
if [ -e main-red ]; then echo "FAIL: main is broken (main-red)"; exit 1; fi
if [ -e a.flag ] && [ -e b.flag ] && ! grep -qs fixed a.flag b.flag; then
    echo "FAIL: a.flag and b.flag clash"; exit 1
fi
if [ -e slow-main.flag ] && [ -e slow-branch.flag ]; then sleep 60; fi
if [ -e slow.flag ]; then sleep 3; fi
echo "all tests passed"
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare origin whose `main` holds the sample app and `check.sh`; returns it and a scratch
/// clone to push "outside" changes from.
async fn origin(dir: &Path) -> (PathBuf, PathBuf) {
    let origin = dir.join("ACME.git");
    orchestrator::git::sample::create_sample_origin(&origin)
        .await
        .unwrap();
    let scratch = dir.join("scratch");
    git(
        dir,
        &["clone", "--quiet", origin.to_str().unwrap(), "scratch"],
    );
    std::fs::write(scratch.join("check.sh"), CHECK).unwrap();
    git(&scratch, &["add", "check.sh"]);
    git(&scratch, &["commit", "--quiet", "-m", "Add check.sh"]);
    git(&scratch, &["push", "--quiet", "origin", "HEAD:main"]);
    (origin, scratch)
}

/// An outside push to `main`: `change` adds (Some) or removes (None) `file`.
fn push_to_main(scratch: &Path, file: &str, change: Option<&str>) -> String {
    git(scratch, &["pull", "--quiet", "--ff-only", "origin", "main"]);
    match change {
        Some(text) => std::fs::write(scratch.join(file), text).unwrap(),
        None => {
            git(scratch, &["rm", "--quiet", file]);
        }
    }
    git(scratch, &["add", "--all"]);
    git(
        scratch,
        &["commit", "--quiet", "-m", &format!("outside: {file}")],
    );
    git(scratch, &["push", "--quiet", "origin", "HEAD:main"]);
    git(scratch, &["rev-parse", "HEAD"])
}

fn start(dir: &Path, origin: &Path, extra: &[(&str, &str)]) -> Service {
    let projects = json!([{
        "repo": "acme/app",
        "origin": origin,
        "prefix": "ACME",
        "test_cmd": "sh check.sh",
        "staging": true,
    }]);
    let mut env: Vec<(String, String)> = vec![
        ("ORCH_PROJECTS_JSON".into(), projects.to_string()),
        ("ORCH_CLAUDE_BIN".into(), common::BIN.into()),
        ("ORCH_CLAUDE_ARGS".into(), "scripted-agent".into()),
        ("ORCH_OPERATOR_TOKEN".into(), TOKEN.into()),
        ("ORCH_RETRY_DELAY_S".into(), "1".into()),
        ("ORCH_MAX_CONCURRENCY".into(), "3".into()),
        ("ORCH_MERGE_QUEUE_RECHECK_S".into(), "1".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Service::start(&dir.join("data"), &env)
}

async fn done_or_blocked(service: &Service, id: &str, limit: Duration) -> Value {
    eventually(&format!("{id} done or blocked"), limit, || async {
        let t = task(service, id).await;
        (t["stage"] == "done" || t["phase"] == "blocked" || t["stage"] == "cancelled").then_some(t)
    })
    .await
}

/// `main`'s first-parent line on the origin, newest first: (sha, subject).
fn first_parents(origin: &Path) -> Vec<(String, String)> {
    git(origin, &["log", "--first-parent", "--format=%H %s", "main"])
        .lines()
        .map(|l| {
            let (sha, subject) = l.split_once(' ').unwrap();
            (sha.to_string(), subject.to_string())
        })
        .collect()
}

/// Runs `check.sh` on `sha` of `origin` in a fresh checkout: whether it is green.
fn green_at(origin: &Path, sha: &str, scratch_root: &Path) -> bool {
    let dir = scratch_root.join(format!("verify-{sha}"));
    git(
        scratch_root,
        &[
            "clone",
            "--quiet",
            origin.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    git(&dir, &["checkout", "--quiet", "--detach", sha]);
    if !dir.join("check.sh").exists() {
        return true; // before the tests existed
    }
    std::process::Command::new("sh")
        .arg("check.sh")
        .current_dir(&dir)
        .output()
        .unwrap()
        .status
        .success()
}

async fn merge_queue(service: &Service) -> Value {
    let queue = service.get("/queue").await.1;
    queue["merge_queues"]
        .as_array()
        .and_then(|repos| repos.iter().find(|r| r["repo"] == "acme/app").cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn changes_green_alone_but_red_together_never_make_main_red() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, scratch) = origin(dir.path()).await;
    let service = start(dir.path(), &origin, &[]);
    let a = create(
        &service,
        "Flag A",
        "scripted-agent: code=a.flag:a,fixed",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let b = create(
        &service,
        "Flag B",
        "scripted-agent: code=b.flag:b,fixed",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let c = create(
        &service,
        "Notes",
        "scripted-agent: code=notes.txt:hello",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let mut bounced = None;
    for id in [&a, &b, &c] {
        let t = done_or_blocked(&service, id, Duration::from_secs(240)).await;
        assert_eq!(t["stage"], "done", "{id}: {t}\n{}", service.log());
        if t["developer_retries"] != 0 {
            assert_eq!(t["developer_retries"], 1, "{t}");
            bounced = Some((id.clone(), t));
        }
    }
    // Exactly one of the clashing pair went back once, with the failing output verbatim.
    let (culprit, t) = bounced.expect("one of the clashing pair was sent back");
    assert!(culprit == a || culprit == b, "{culprit}");
    let transitions = t["transitions"].to_string();
    assert!(
        transitions.contains("merge candidate"),
        "the rollback names the candidate: {transitions}"
    );
    // The developer's second run got the failing output verbatim (the scripted developer
    // quotes what it was asked to fix in its change file).
    let changes = git(&origin, &["show", &format!("main:changes/{culprit}.md")]);
    assert!(
        changes.contains("> FAIL: a.flag and b.flag clash"),
        "{changes}"
    );
    let runs = t["runs"].as_array().unwrap();
    let developer_runs = runs.iter().filter(|r| r["role"] == "developer").count();
    assert_eq!(developer_runs, 2, "{t}");

    // main is green at every first-parent commit, and each task id is in exactly one.
    let line = first_parents(&origin);
    for (sha, subject) in &line {
        assert!(
            green_at(&origin, sha, dir.path()),
            "main is red at {sha} ({subject})"
        );
    }
    for id in [&a, &b, &c] {
        let count = line.iter().filter(|(_, s)| s.contains(id.as_str())).count();
        assert_eq!(count, 1, "{id} in {count} first-parent commits: {line:?}");
    }
    // What the tests leave behind never reaches main.
    let files = git(&origin, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(!files.contains("__pycache__"), "{files}");
    // The queue shows what it did, and that it is idle again.
    let q = merge_queue(&service).await;
    assert_eq!(q["state"], "idle", "{q}");
    assert_eq!(q["counts"]["merged"], 3, "{q}");
    assert_eq!(q["last_green_main"], line[0].0.as_str(), "{q}");
    let _ = scratch;
}

#[tokio::test]
async fn a_textual_conflict_goes_back_with_main_merged_in_and_is_resolved_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, _scratch) = origin(dir.path()).await;
    let service = start(dir.path(), &origin, &[("ORCH_MAX_CONCURRENCY", "2")]);
    // Both write shared.txt; the second to reach the queue conflicts (add/add).
    let first = create(
        &service,
        "Shared one",
        "scripted-agent: code=shared.txt:one",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let second = create(
        &service,
        "Shared two",
        "scripted-agent: code=shared.txt:two sleep=tester:4",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let t1 = done_or_blocked(&service, &first, Duration::from_secs(180)).await;
    assert_eq!(t1["stage"], "done", "{t1}");
    let t2 = done_or_blocked(&service, &second, Duration::from_secs(180)).await;
    assert_eq!(t2["stage"], "done", "{t2}\n{}", service.log());
    assert_eq!(t2["developer_retries"], 1, "{t2}");
    let transitions = t2["transitions"].to_string();
    assert!(
        transitions.contains("conflicts in shared.txt"),
        "{transitions}"
    );
    // The second developer run resolved it: main holds the second task's content, and the
    // conflict's resolution is a merge of main into the branch.
    let shared = git(&origin, &["show", "main:shared.txt"]);
    assert_eq!(shared, "two");
    let line = first_parents(&origin);
    for (sha, subject) in &line {
        assert!(
            green_at(&origin, sha, dir.path()),
            "red at {sha} ({subject})"
        );
    }
    for id in [&first, &second] {
        let count = line.iter().filter(|(_, s)| s.contains(id.as_str())).count();
        assert_eq!(count, 1, "{id}: {line:?}");
    }
}

#[tokio::test]
async fn a_red_main_freezes_the_queue_without_spending_a_retry_and_it_thaws_when_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, scratch) = origin(dir.path()).await;
    let service = start(dir.path(), &origin, &[]);
    let id = create(
        &service,
        "Innocent",
        "scripted-agent: code=innocent.txt:x sleep=reviewer:2",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    // Once the branch passed its own CI, main breaks under it (an outside push).
    common::reach(&service, &id, "review", "working").await;
    let red = push_to_main(&scratch, "main-red", Some("broken\n"));
    let q = eventually("the queue frozen", Duration::from_secs(120), || async {
        let q = merge_queue(&service).await;
        (q["state"] == "frozen").then_some(q)
    })
    .await;
    assert_eq!(q["frozen"]["kind"], "main-red", "{q}");
    assert_eq!(
        q["frozen"]["reason"],
        format!("main is red at {red}").as_str(),
        "{q}"
    );
    assert_eq!(
        q["waiting"],
        json!([id]),
        "the task waits, first in line: {q}"
    );
    let t = task(&service, &id).await;
    assert_eq!(t["phase"], "queued", "{t}");
    assert_eq!(t["developer_retries"], 0, "{t}");
    assert_eq!(t["waiting"]["waiting_for"], "merge-queue", "{t}");

    // main is fixed: the queue thaws by itself, rebuilds, and the task lands.
    push_to_main(&scratch, "main-red", None);
    let t = done_or_blocked(&service, &id, Duration::from_secs(120)).await;
    assert_eq!(t["stage"], "done", "{t}\n{}", service.log());
    assert_eq!(t["developer_retries"], 0, "{t}");
    let q = merge_queue(&service).await;
    assert!(q["frozen"].is_null(), "{q}");
    for (sha, subject) in first_parents(&origin).iter().take(1) {
        assert!(
            green_at(&origin, sha, dir.path()),
            "red at {sha} ({subject})"
        );
    }
}

#[tokio::test]
async fn a_ci_timeout_on_the_candidate_blocks_as_infrastructure_without_a_developer_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, scratch) = origin(dir.path()).await;
    let service = start(
        dir.path(),
        &origin,
        &[("ORCH_CI_TIMEOUT_S", "2"), ("ORCH_MERGE_RETRY_MAX", "1")],
    );
    let id = create(
        &service,
        "Slow together",
        "scripted-agent: code=slow-branch.flag:x sleep=reviewer:2",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    common::reach(&service, &id, "review", "working").await;
    push_to_main(&scratch, "slow-main.flag", Some("x\n"));
    let t = done_or_blocked(&service, &id, Duration::from_secs(120)).await;
    assert_eq!(t["phase"], "blocked", "{t}");
    let reason = t["blocked_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("infrastructure: merge queue: CI on the candidate"),
        "{reason}"
    );
    assert!(reason.contains("2 tries"), "{reason}");
    assert_eq!(t["developer_retries"], 0, "{t}");
    // It gave the lease up.
    let q = merge_queue(&service).await;
    assert!(q["holder"].is_null(), "{q}");
}

#[tokio::test]
async fn an_operator_freeze_holds_the_queue_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, _scratch) = origin(dir.path()).await;
    let service = start(dir.path(), &origin, &[]);
    let path = "/repos/acme/app/merge-queue/freeze";
    // Bad input is refused and changes nothing.
    let (status, _) = service
        .post_json(path, &json!({"reason": "release"}), None)
        .await;
    assert_eq!(status, 401);
    let (status, reply) = service.post_json(path, &json!({}), Some(TOKEN)).await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = service
        .post_json(
            "/repos/nope/app/merge-queue/freeze",
            &json!({"reason": "x"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 404, "{reply}");
    assert!(reply.to_string().contains("nope/app"), "{reply}");
    assert!(
        merge_queue(&service).await.is_null() || merge_queue(&service).await["frozen"].is_null()
    );

    let (status, reply) = service
        .post_json(
            path,
            &json!({"reason": "release in progress", "by": "ops"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["changed"], true);
    let id = create(&service, "Held", "", &["autoApprove", "autoDeploy"]).await;
    common::reach(&service, &id, "testing", "queued").await;
    let mut service = service;
    service.signal(libc::SIGTERM);
    service.wait_exit(Duration::from_secs(30)).unwrap();
    let service = service.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let q = merge_queue(&service).await;
    assert_eq!(q["state"], "frozen", "{q}");
    assert_eq!(q["frozen"]["by"], "ops", "{q}");
    assert_eq!(q["frozen"]["reason"], "release in progress", "{q}");
    assert_eq!(q["waiting"], json!([id]), "{q}");
    assert_eq!(task(&service, &id).await["phase"], "queued");

    let (status, reply) = service
        .post_json(
            "/repos/acme%2Fapp/merge-queue/unfreeze",
            &json!({}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let t = done_or_blocked(&service, &id, Duration::from_secs(120)).await;
    assert_eq!(t["stage"], "done", "{t}");
    // The queue answers in the actor tree too.
    let (_, root) = service.get("/actors").await;
    let mq = common::child(common::child(&root, "singletons"), "merge-queue");
    assert_eq!(mq["kind"], "merge-queue", "{mq}");
    assert!(mq["details"]["repos"].is_array(), "{mq}");
}

#[tokio::test]
async fn kill_9_while_testing_a_candidate_and_while_fast_forwarding_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, _scratch) = origin(dir.path()).await;
    // The origin takes 3 s to accept a push to main, so a kill lands during it.
    let hook = origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do [ \"$ref\" = refs/heads/main ] && sleep 3; done\nexit 0\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    let mut service = start(dir.path(), &origin, &[("ORCH_MAX_CONCURRENCY", "2")]);
    let slow = create(
        &service,
        "Slow tests",
        "scripted-agent: code=slow.flag:x",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let other = create(
        &service,
        "Other",
        "scripted-agent: code=other.txt:x",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    // Killed while a candidate is being tested.
    eventually(
        "a candidate under test",
        Duration::from_secs(120),
        || async { (merge_queue(&service).await["state"] == "testing").then_some(()) },
    )
    .await;
    service.signal(libc::SIGKILL);
    service.wait_exit(Duration::from_secs(10)).unwrap();
    let mut service = service.restart();
    // Killed while main is being fast-forwarded.
    eventually("a fast-forward", Duration::from_secs(120), || async {
        (merge_queue(&service).await["state"] == "merging").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.signal(libc::SIGKILL);
    service.wait_exit(Duration::from_secs(10)).unwrap();
    let service = service.restart();
    for id in [&slow, &other] {
        let t = done_or_blocked(&service, id, Duration::from_secs(180)).await;
        assert_eq!(t["stage"], "done", "{id}: {t}\n{}", service.log());
    }
    let line = first_parents(&origin);
    for id in [&slow, &other] {
        let count = line.iter().filter(|(_, s)| s.contains(id.as_str())).count();
        assert_eq!(count, 1, "{id} merged {count} times: {line:?}");
    }
}

#[tokio::test]
async fn a_deep_queue_is_tested_as_a_batch_and_a_red_batch_is_bisected_to_its_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, _scratch) = origin(dir.path()).await;
    let service = start(dir.path(), &origin, &[("ORCH_MAX_CONCURRENCY", "4")]);
    // Hold the queue while four tasks reach it, so one lease takes them all.
    let (status, reply) = service
        .post_json(
            "/repos/acme/app/merge-queue/freeze",
            &json!({"reason": "gather a batch"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    // The first and the third break the suite together (a.flag + b.flag): the later of them
    // in line is the culprit, and its developer's second run fixes it.
    let scripts = [
        "scripted-agent: code=a.flag:a,fixed",
        "scripted-agent: code=one.txt:1",
        "scripted-agent: code=b.flag:b,fixed",
        "scripted-agent: code=four.txt:4",
    ];
    let mut ids = Vec::new();
    for (n, script) in scripts.iter().enumerate() {
        ids.push(
            create(
                &service,
                &format!("Batch {n}"),
                script,
                &["autoApprove", "autoDeploy"],
            )
            .await,
        );
    }
    for id in &ids {
        common::reach(&service, id, "testing", "queued").await;
    }
    // The queue's order is the order their tests passed in.
    let q = merge_queue(&service).await;
    let order: Vec<String> = q["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(order.len(), 4, "{q}");
    let at = |id: &String| order.iter().position(|o| o == id).unwrap();
    // Of the clashing pair, the later in line is the culprit.
    let culprit = if at(&ids[0]) > at(&ids[2]) {
        &ids[0]
    } else {
        &ids[2]
    };
    let (status, _) = service
        .post_json(
            "/repos/acme/app/merge-queue/unfreeze",
            &json!({}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let q = eventually("the batch", Duration::from_secs(60), || async {
        let q = merge_queue(&service).await;
        (q["batch"].as_array().is_some_and(|b| b.len() == 4)).then_some(q)
    })
    .await;
    assert_eq!(q["batch"], json!(order), "{q}");

    for id in &ids {
        let t = done_or_blocked(&service, id, Duration::from_secs(180)).await;
        assert_eq!(t["stage"], "done", "{id}: {t}\n{}", service.log());
        let expected = if id == culprit { 1 } else { 0 };
        assert_eq!(t["developer_retries"], expected, "{id}: {t}");
    }
    // The culprit got its own candidate's failing output.
    let changes = git(&origin, &["show", &format!("main:changes/{culprit}.md")]);
    assert!(
        changes.contains("> FAIL: a.flag and b.flag clash"),
        "{changes}"
    );
    // main is green at every first-parent commit; each task in exactly one.
    let line = first_parents(&origin);
    for (sha, subject) in &line {
        assert!(
            green_at(&origin, sha, dir.path()),
            "red at {sha} ({subject})"
        );
    }
    for id in &ids {
        let count = line.iter().filter(|(_, s)| s.contains(id.as_str())).count();
        assert_eq!(count, 1, "{id}: {line:?}");
    }
    // One batch's red top, main alone, at most two bisection tests; then what followed the
    // culprit as one more batch, and the fixed culprit: never a test per task per round.
    let q = merge_queue(&service).await;
    assert_eq!(q["counts"]["merged"], 4, "{q}");
    assert_eq!(q["counts"]["bounced"], 1, "{q}");
    let ci_runs = q["counts"]["ci_runs"].as_u64().unwrap();
    assert!((4..=7).contains(&ci_runs), "{q}");
}

#[tokio::test]
async fn a_stop_during_the_fast_forward_is_deferred_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, _scratch) = origin(dir.path()).await;
    // The origin takes 3 s to accept a push to main, so the STOP lands during it.
    let hook = origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do [ \"$ref\" = refs/heads/main ] && sleep 3; done\nexit 0\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();
    let service = start(dir.path(), &origin, &[]);
    let id = create(
        &service,
        "Almost there",
        "scripted-agent: code=late.txt:x",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    eventually("the fast-forward", Duration::from_secs(120), || async {
        (merge_queue(&service).await["state"] == "merging").then_some(())
    })
    .await;
    let stop = format!("/tasks/{id}/stop");
    let (status, reply) = service
        .post_json(&stop, &json!({"reason": "changed my mind"}), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["changed"], true, "{reply}");
    assert_eq!(
        reply["stop_deferred"], "the fast-forward of main",
        "{reply}"
    );
    // A second STOP changes nothing.
    let (status, reply) = service.post_json(&stop, &json!({}), Some(TOKEN)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["changed"], false, "{reply}");
    // The fast-forward landed: the task is done, and its journal says what became of the STOP.
    let t = done_or_blocked(&service, &id, Duration::from_secs(60)).await;
    assert_eq!(t["stage"], "done", "{t}");
    let journal = t["transitions"].to_string();
    assert!(
        journal.contains(
            "STOP requested (changed my mind); deferred until the fast-forward of main ends"
        ),
        "{journal}"
    );
    let line = first_parents(&origin);
    assert_eq!(
        line.iter().filter(|(_, s)| s.contains(id.as_str())).count(),
        1
    );
}

#[tokio::test]
async fn a_stop_while_queued_or_during_the_candidate_test_releases_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, _scratch) = origin(dir.path()).await;
    let service = start(dir.path(), &origin, &[("ORCH_MERGE_BATCH_MAX", "1")]);
    // Queued behind a frozen queue.
    let (status, _) = service
        .post_json(
            "/repos/acme/app/merge-queue/freeze",
            &json!({"reason": "hold"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    let waiting = create(&service, "Waits", "", &["autoApprove", "autoDeploy"]).await;
    common::reach(&service, &waiting, "testing", "queued").await;
    let (status, reply) = service
        .post_json(&format!("/tasks/{waiting}/stop"), &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{reply}");
    common::reach(&service, &waiting, "cancelled", "idle").await;
    let q = merge_queue(&service).await;
    assert_eq!(q["waiting"], json!([]), "{q}");
    let (status, _) = service
        .post_json(
            "/repos/acme/app/merge-queue/unfreeze",
            &json!({}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);

    // Holding the lease while its candidate's (3 s) tests run.
    let slow = create(
        &service,
        "Slow tests",
        "scripted-agent: code=slow.flag:x",
        &["autoApprove", "autoDeploy"],
    )
    .await;
    let next = create(&service, "Next", "", &["autoApprove", "autoDeploy"]).await;
    eventually(
        "the candidate under test",
        Duration::from_secs(120),
        || async {
            let q = merge_queue(&service).await;
            (q["state"] == "testing" && q["holder"] == slow.as_str()).then_some(())
        },
    )
    .await;
    let (status, reply) = service
        .post_json(&format!("/tasks/{slow}/stop"), &json!({}), Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{reply}");
    common::reach(&service, &slow, "cancelled", "idle").await;
    // The lease passed on: the next task merges; nothing of the stopped one is on main.
    let t = done_or_blocked(&service, &next, Duration::from_secs(120)).await;
    assert_eq!(t["stage"], "done", "{t}");
    let line = first_parents(&origin);
    assert!(
        !line.iter().any(|(_, s)| s.contains(slow.as_str())),
        "{line:?}"
    );
    let files = git(&origin, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(!files.contains("slow.flag"), "{files}");
}
