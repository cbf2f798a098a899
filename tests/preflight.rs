//! An agent program that cannot start holds the queue — visible in `GET /queue`, no attempt
//! spent, the task not blocked — until it can; and `orchestrator doctor`'s checklist.

mod common;

use std::time::Duration;

use common::{BIN, create, eventually, start_local_with, task};

#[tokio::test]
async fn a_missing_agent_binary_holds_the_queue_and_spends_no_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("bin").join("claude");
    let shown = agent.display().to_string();
    let service = start_local_with(dir.path(), false, &[("ORCH_CLAUDE_BIN", &shown)]).await;
    let id = create(&service, "Add a greeting", "Say hello.", &[]).await;
    let queue = eventually("the queue to be held", Duration::from_secs(30), || async {
        let (_, queue) = service.get("/queue").await;
        (!queue["held"].is_null()).then_some(queue)
    })
    .await;
    let reason = queue["held"]["reason"].as_str().unwrap();
    assert!(reason.contains(&shown), "{queue}");
    assert!(reason.contains("ORCH_CLAUDE_BIN"), "{queue}");
    // The job went back to the queue in the same step that held it: a later look at the
    // queue shows it (the one above may have read the jobs just before).
    let (_, queue) = service.get("/queue").await;
    let jobs = queue["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{queue}");
    assert_eq!(jobs[0]["status"], "queued", "{queue}");
    assert_eq!(jobs[0]["attempts"], 0, "{queue}");
    let t = task(&service, &id).await;
    assert_eq!(
        (&t["stage"], &t["phase"]),
        (&"analysis".into(), &"working".into()),
        "{t}"
    );
    let runs = common::runs(&t);
    assert!(!runs.is_empty(), "{t}");
    assert!(runs.iter().all(|r| r["status"] == "infrastructure"), "{t}");
    let before = t["stage_attempts"].clone();

    // The program appears: claims resume and the task goes on.
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(BIN, &agent).unwrap();
    let t = common::reach(&service, &id, "analysis", "awaiting-approval").await;
    assert_eq!(t["stage_attempts"], before, "no attempt was spent: {t}");
    let (_, queue) = service.get("/queue").await;
    assert!(queue["held"].is_null(), "{queue}");
}

/// Runs `orchestrator doctor` with `env` (a Plane project and Gitea repository on loopback
/// fakes); its exit code and its checklist.
fn doctor(dir: &std::path::Path, env: &[(String, String)]) -> (i32, String) {
    let out = common::command(dir)
        .arg("doctor")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ORCH_DATA_DIR", dir.join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// One project on Plane (its board lacking `omit`), Gitea and Telegram, all on loopback.
async fn integrated(
    dir: &std::path::Path,
    omit: &[&str],
) -> (
    Vec<(String, String)>,
    orchestrator_testkit::plane::PlaneFake,
    orchestrator_testkit::gitea::GiteaFake,
    orchestrator_testkit::telegram::TelegramFake,
) {
    use orchestrator_testkit::gitea::{GiteaFake, GiteaFakeConfig};
    use orchestrator_testkit::plane::{PlaneFake, PlaneFakeConfig};
    use orchestrator_testkit::telegram::TelegramFake;
    let origin = dir.join("app.git");
    orchestrator::git::sample::create_sample_origin(&origin)
        .await
        .unwrap();
    let plane = PlaneFake::start(PlaneFakeConfig::new("acme", "plane-token"));
    let project = plane.add_project("ACME");
    plane.default_board_without(&project, omit);
    let gitea = GiteaFake::start(GiteaFakeConfig::default());
    gitea.add_repo("acme/app", Some(origin.clone()));
    let telegram = TelegramFake::start("123456:telegram-test-token");
    let projects = serde_json::json!([{
        "repo": "acme/app", "origin": origin, "prefix": "ACME",
        "test_cmd": orchestrator::git::sample::SAMPLE_TEST_CMD,
        "confirm_deploy": true, "plane_project_id": project, "gitea_repo": "acme/app",
    }]);
    let env = [
        ("ORCH_PROJECTS_JSON", projects.to_string()),
        ("ORCH_CLAUDE_BIN", BIN.to_string()),
        ("ORCH_PLANE_API_URL", plane.url()),
        ("ORCH_PLANE_API_TOKEN", "plane-token".to_string()),
        ("ORCH_PLANE_WORKSPACE_SLUG", "acme".to_string()),
        ("ORCH_PLANE_WEBHOOK_SECRET", "s".to_string()),
        ("ORCH_GITEA_URL", gitea.url()),
        ("ORCH_GITEA_TOKEN", gitea.token().to_string()),
        ("ORCH_GITEA_WEBHOOK_SECRET", "s".to_string()),
        (
            "ORCH_TELEGRAM_BOT_TOKEN",
            "123456:telegram-test-token".to_string(),
        ),
        ("ORCH_TELEGRAM_CHAT_ID", "-100200300".to_string()),
        ("ORCH_TELEGRAM_API_URL", telegram.url()),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    (env, plane, gitea, telegram)
}

#[tokio::test]
async fn doctor_passes_with_everything_in_place_and_shows_the_agent_version() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _plane, _gitea, _telegram) = integrated(dir.path(), &[]).await;
    let (code, out) = doctor(dir.path(), &env);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[ok]   agent program: orchestrator "), "{out}");
    assert!(out.contains("[ok]   git: git version"), "{out}");
    assert!(out.contains("[ok]   data directory"), "{out}");
    // The fake's default board has no Awaiting Deploy column: a warning, not a failure.
    assert!(
        out.contains("[warn] Plane project of acme/app") && out.contains("Awaiting Deploy"),
        "{out}"
    );
    assert!(!out.contains("[FAIL]"), "{out}");
    assert!(out.contains("[ok]   Gitea repository acme/app"), "{out}");
    assert!(
        out.contains("[ok]   Telegram: @orchestrator_test_bot"),
        "{out}"
    );
}

#[tokio::test]
async fn doctor_fails_naming_a_missing_board_status_and_a_missing_agent_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, _plane, _gitea, _telegram) =
        integrated(dir.path(), &["Approved", "Testing"]).await;
    env.push(("ORCH_CLAUDE_BIN".into(), "/nonexistent/claude".into()));
    env.push(("ORCH_GITEA_TOKEN".into(), "wrong-token".into()));
    let (code, out) = doctor(dir.path(), &env);
    assert_eq!(code, 1, "{out}");
    let line = |start: &str| {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{out}"))
            .to_string()
    };
    let agent = line("[FAIL] agent program");
    assert!(agent.contains("/nonexistent/claude"), "{agent}");
    assert!(agent.contains("ORCH_CLAUDE_BIN"), "{agent}");
    let board = line("[FAIL] Plane project of acme/app");
    assert!(
        board.contains("lacks the statuses a human steers by: Approved"),
        "{board}"
    );
    assert!(board.contains("the columns Testing"), "{board}");
    let gitea = line("[FAIL] Gitea repository acme/app");
    assert!(gitea.contains("ORCH_GITEA_TOKEN"), "{gitea}");
    assert!(out.contains("[ok]   git"), "{out}");
    assert!(out.contains("3 of 6 checks failed"), "{out}");
}
