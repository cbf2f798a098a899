//! Startup on an empty or existing data dir, the read endpoints, and graceful shutdown on
//! SIGTERM/SIGINT — including a stuck actor and a second signal.

mod common;

use std::time::Duration;

use common::{Service, child, seed, stall};
use orchestrator_actors::Stage;
use serde_json::json;

#[tokio::test]
async fn a_fresh_data_dir_serves_health_and_the_bare_tree_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut service = Service::start(&data, &[]);

    let (status, health) = service.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "orchestrator");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    let (_, root) = service.get("/actors").await;
    assert_eq!(
        (root["name"].as_str(), root["kind"].as_str()),
        (Some("root"), Some("supervisor"))
    );
    for name in ["singletons", "tasks"] {
        let node = child(&root, name);
        assert_eq!(node["status"], "running");
        assert_eq!(node["restarts"], 0);
        assert!(node["id"].is_string());
    }
    assert_eq!(
        service.get("/status").await.1,
        json!({ "active_tasks": [], "webhooks_in_progress": 0 })
    );
    assert!(data.join("orchestrator.db").is_file() && data.join("runs").is_dir());

    service.signal(libc::SIGTERM);
    let status = service
        .wait_exit(Duration::from_secs(10))
        .expect("exit within 10 s");
    assert!(status.success(), "{status:?}\n{}", service.log());
    assert!(service.log().contains("stopped"));
}

#[tokio::test]
async fn a_second_service_on_the_same_data_dir_is_refused_and_the_first_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Service::start(&data, &[]);
    let second = common::command(dir.path())
        .arg("serve")
        .env("ORCH_DATA_DIR", &data)
        .env("ORCH_BIND", "127.0.0.1:0")
        .output()
        .expect("run a second serve");
    assert!(!second.status.success(), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another orchestrator is already running")
            && stderr.contains(&data.display().to_string()),
        "{stderr}"
    );
    assert_eq!(first.get("/health").await.0, 200);
    first.signal(libc::SIGTERM);
    first
        .wait_exit(Duration::from_secs(10))
        .expect("it stopped");
    // Once the first is gone, the data directory is free again.
    let again = Service::start(&data, &[]);
    assert_eq!(again.get("/health").await.0, 200);
}

#[tokio::test]
async fn a_restart_reuses_the_database_and_recovers_every_non_terminal_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(
        &data,
        &[
            ("ORCH-1", Stage::Development),
            ("ORCH-2", Stage::Done),
            ("ORCH-3", Stage::Review),
        ],
    )
    .await;

    for round in 0..2 {
        let mut service = Service::start(&data, &[]);
        let (_, root) = service.get("/actors").await;
        let tasks = child(&root, "tasks");
        let names: Vec<_> = tasks["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].clone())
            .collect();
        assert_eq!(
            names,
            [json!("task:ORCH-1"), json!("task:ORCH-3")],
            "round {round}"
        );
        assert_eq!(child(tasks, "task:ORCH-3")["details"]["stage"], "review");

        let (_, status) = service.get("/status").await;
        let active: Vec<_> = status["active_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["work_item_id"].clone())
            .collect();
        assert_eq!(active, [json!("ORCH-1"), json!("ORCH-3")]);
        assert_eq!(
            service.get("/tasks").await.1["tasks"]
                .as_array()
                .unwrap()
                .len(),
            3
        );

        // The seeding run migrated the schema; neither start applies anything.
        assert!(
            !service.log().contains("applied database migration"),
            "round {round}:\n{}",
            service.log()
        );
        service.signal(libc::SIGINT);
        assert!(
            service
                .wait_exit(Duration::from_secs(10))
                .unwrap()
                .success()
        );
    }
}

#[tokio::test]
async fn a_task_shows_its_journal_and_live_actor_and_bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(
        &data,
        &[("ORCH-7", Stage::Analysis), ("ORCH-8", Stage::Cancelled)],
    )
    .await;
    let service = Service::start(&data, &[]);

    let (status, task) = service.get("/tasks/ORCH-7").await;
    assert_eq!(status, 200);
    assert_eq!(task["stage"], "analysis");
    assert_eq!(task["paused"], false);
    let journal = task["transitions"].as_array().unwrap();
    assert_eq!(
        (journal[0]["from"].clone(), journal[0]["to"].clone()),
        (json!(null), json!("created"))
    );
    assert_eq!(
        (journal[1]["from"].clone(), journal[1]["to"].clone()),
        (json!("created"), json!("analysis"))
    );
    assert_eq!(task["actor"]["name"], "task:ORCH-7");
    assert_eq!(task["actor"]["details"]["stage"], "analysis");
    // A terminal task has no actor.
    assert_eq!(service.get("/tasks/ORCH-8").await.1["actor"], json!(null));

    for (path, code, needle) in [
        ("/tasks/NOPE-1", 404, "task NOPE-1 not found"),
        ("/tasks/-rf", 400, "invalid work item id"),
        ("/no/such/thing", 404, "no such endpoint"),
        ("/actors?depth=deep", 400, "depth=\"deep\""),
        (
            "/actors?color=red",
            400,
            "unknown query parameter \"color\"",
        ),
    ] {
        let (status, body) = service.get(path).await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    let (status, body) = service.post("/health").await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn a_stuck_actor_is_killed_within_the_shutdown_budget_and_exit_is_still_clean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(&data, &[("ORCH-1", Stage::Testing)]).await;
    let mut service = Service::start(
        &data,
        &[
            ("ORCH_SHUTDOWN_TIMEOUT_S", "4"),
            ("ORCH_DESCRIBE_TIMEOUT_MS", "200"),
        ],
    );
    stall(&service, "ORCH-1", 120_000).await;

    service.signal(libc::SIGTERM);
    let status = service
        .wait_exit(Duration::from_secs(10))
        .expect("exit within 10 s");
    assert!(status.success(), "{status:?}\n{}", service.log());
    assert!(
        service.log().contains("did not stop in time"),
        "{}",
        service.log()
    );
}

#[tokio::test]
async fn a_second_signal_forces_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(&data, &[("ORCH-1", Stage::Testing)]).await;
    let mut service = Service::start(
        &data,
        &[
            ("ORCH_SHUTDOWN_TIMEOUT_S", "120"),
            ("ORCH_DESCRIBE_TIMEOUT_MS", "200"),
        ],
    );
    stall(&service, "ORCH-1", 120_000).await;

    service.signal(libc::SIGTERM);
    assert!(
        service.wait_exit(Duration::from_millis(500)).is_none(),
        "still stopping the stuck actor"
    );
    service.signal(libc::SIGTERM);
    let status = service
        .wait_exit(Duration::from_secs(5))
        .expect("forced exit");
    assert_eq!(status.code(), Some(130), "{}", service.log());
    assert!(service.log().contains("second signal"));
}
