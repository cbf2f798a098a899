//! Supervision proven on the real binary: a panicking task actor is restarted with its state
//! reloaded and reachable by name; a storming one is left stopped and reported; one stuck actor
//! cannot hang `GET /actors`. Fault injection uses the debug-only `/debug/...` routes.

mod common;

use std::time::Duration;

use common::{Service, child, eventually, seed, stall};
use orchestrator_actors::Stage;

const FAST_RESTARTS: &[(&str, &str)] = &[
    ("ORCH_RESTART_BACKOFF_MS", "10"),
    ("ORCH_RESTART_BACKOFF_MAX_MS", "50"),
];

async fn actor_id(service: &Service, id: &str) -> Option<String> {
    let (_, task) = service.get(&format!("/tasks/{id}")).await;
    task["actor"]["id"].as_str().map(str::to_string)
}

/// Crashes the task's actor and waits for a new incarnation; returns its actor id.
async fn crash_and_wait(service: &Service, id: &str) -> String {
    let old = actor_id(service, id).await.expect("a live actor to crash");
    let (status, sent) = service.post(&format!("/debug/tasks/{id}/crash")).await;
    assert_eq!(status, 202);
    assert_eq!(sent["sent_to"], old.as_str());
    eventually("a restarted actor", Duration::from_secs(10), || async {
        actor_id(service, id).await.filter(|new| *new != old)
    })
    .await
}

async fn tasks_node(service: &Service) -> serde_json::Value {
    let (_, root) = service.get("/actors").await;
    child(&root, "tasks").clone()
}

#[tokio::test]
async fn a_panicking_task_actor_is_restarted_with_its_state_and_reachable_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(
        &data,
        &[("ORCH-1", Stage::Development), ("ORCH-2", Stage::Review)],
    )
    .await;
    let service = Service::start(&data, FAST_RESTARTS);

    let new_id = crash_and_wait(&service, "ORCH-1").await;

    // State intact: the new incarnation reloaded it from the store, and answers by name.
    let (_, task) = service.get("/tasks/ORCH-1").await;
    assert_eq!(task["actor"]["status"], "running");
    assert_eq!(task["actor"]["details"]["stage"], "development");
    assert_eq!(task["actor"]["details"]["title"], "Task ORCH-1");
    let tasks = tasks_node(&service).await;
    assert_eq!(child(&tasks, "task:ORCH-1")["restarts"], 1);
    assert_eq!(child(&tasks, "task:ORCH-1")["id"], new_id.as_str());
    assert_eq!(child(&tasks, "task:ORCH-2")["restarts"], 0);
    // A message sent by name after the restart reaches the new actor.
    let (_, sent) = service.post("/debug/tasks/ORCH-1/stall?ms=1").await;
    assert_eq!(sent["sent_to"], new_id.as_str());
    assert!(service.log().contains("child failed; restarting"));
}

#[tokio::test]
async fn a_task_actor_that_keeps_crashing_is_left_stopped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(
        &data,
        &[("ORCH-1", Stage::Analysis), ("ORCH-2", Stage::Analysis)],
    )
    .await;
    let mut env = FAST_RESTARTS.to_vec();
    env.push(("ORCH_RESTART_MAX", "2"));
    let service = Service::start(&data, &env);

    crash_and_wait(&service, "ORCH-1").await;
    let last = crash_and_wait(&service, "ORCH-1").await;
    assert_eq!(service.post("/debug/tasks/ORCH-1/crash").await.0, 202);

    // Given up: reported, and no longer among the children the supervisor would restart.
    let tasks = eventually("ORCH-1 given up", Duration::from_secs(10), || async {
        let tasks = tasks_node(&service).await;
        (!tasks["details"]["gave_up"].as_array().unwrap().is_empty()
            && tasks["details"]["supervised"] == 1)
            .then_some(tasks)
    })
    .await;
    let gave_up = &tasks["details"]["gave_up"][0];
    assert_eq!(gave_up["name"], "task:ORCH-1");
    assert_eq!(gave_up["failures"], 3);
    assert!(
        gave_up["last_error"]
            .as_str()
            .unwrap()
            .contains("crashed on request")
    );
    // Once the crashed incarnation is gone, ORCH-1 has no actor: nothing restarted it.
    let now = eventually(
        "the crashed incarnation to be gone",
        Duration::from_secs(10),
        || async {
            let now = actor_id(&service, "ORCH-1").await;
            (now.as_deref() != Some(last.as_str())).then_some(now)
        },
    )
    .await;
    assert_eq!(now, None, "no restart after giving up");
    // The rest of the service is unharmed.
    assert_eq!(service.get("/health").await.0, 200);
    assert_eq!(
        child(&tasks_node(&service).await, "task:ORCH-2")["status"],
        "running"
    );
    assert!(service.log().contains("left stopped"));
}

#[tokio::test]
async fn one_stuck_actor_cannot_hang_the_actors_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed(
        &data,
        &[("ORCH-1", Stage::Created), ("ORCH-2", Stage::Created)],
    )
    .await;
    let service = Service::start(&data, &[("ORCH_DESCRIBE_TIMEOUT_MS", "300")]);
    stall(&service, "ORCH-1", 60_000).await;

    for path in ["/actors", "/actors?timeout_ms=200"] {
        let (status, root) = tokio::time::timeout(Duration::from_secs(10), service.get(path))
            .await
            .expect("the endpoint must answer despite the stuck actor");
        assert_eq!(status, 200);
        let tasks = child(&root, "tasks");
        let stuck = child(tasks, "task:ORCH-1");
        assert!(
            stuck["error"].as_str().unwrap().contains("timed out"),
            "{stuck}"
        );
        assert!(stuck.get("details").is_none());
        assert_eq!(child(tasks, "task:ORCH-2")["details"]["stage"], "analysis");
    }
    // /tasks/{id} for the stuck task degrades the same way.
    let (status, task) = service.get("/tasks/ORCH-1").await;
    assert_eq!(status, 200);
    assert!(
        task["actor"]["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}

#[tokio::test]
async fn a_run_that_panics_frees_its_slot_and_its_job_runs_again_with_the_attempt_counted() {
    let dir = tempfile::tempdir().unwrap();
    // One slot: the job can only run again if the crashed run gave its slot back.
    let service =
        common::start_local_with(dir.path(), false, &[("ORCH_MAX_CONCURRENCY", "1")]).await;
    let id = common::create(
        &service,
        "Crash a run",
        "scripted-agent: sleep=analyst:60",
        &[],
    )
    .await;
    let running = |attempts: i64| {
        let service = &service;
        let id = id.clone();
        async move {
            let (_, queue) = service.get("/queue").await;
            queue["jobs"].as_array()?.iter().find_map(|j| {
                (j["task"] == id.as_str()
                    && j["status"] == "running"
                    && j["attempts"] == attempts
                    && !j["pid"].is_null())
                .then(|| j["job"].as_i64())
                .flatten()
            })
        }
    };
    let job = eventually("the analyst running", Duration::from_secs(60), || {
        running(1)
    })
    .await;
    let (status, _) = service.post(&format!("/debug/runs/{job}/crash")).await;
    assert_eq!(status, 202);
    // The same job runs again, its crashed attempt counted; the crashed run is journaled.
    let again = eventually("the job running again", Duration::from_secs(30), || {
        running(2)
    })
    .await;
    assert_eq!(again, job);
    let task = common::task(&service, &id).await;
    let runs = common::runs(&task);
    assert_eq!(runs[0]["status"], "crashed", "{runs:?}");
    assert!(
        runs[0]["reason"]
            .as_str()
            .unwrap()
            .contains("crashed on request"),
        "{runs:?}"
    );
    // A bad job id is refused with a reason.
    let (status, body) = service.post("/debug/runs/nope/crash").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("\"nope\""),
        "{body}"
    );
}
