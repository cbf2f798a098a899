//! The reconciler and a robust intake, end to end with Plane faked on loopback and the
//! dry-run agent: a delivery whose acting failed is acted on once the API recovers, a card
//! moved while the service was down is applied after a restart, a stale Approved is settled
//! `superseded`, and a payload without the issue's name still starts its task.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{BIN, Service, eventually, reach, task, webhooks_settled};
use orchestrator_testkit::plane::{PlaneFake, PlaneFakeConfig, PlaneUser, Py};
use serde_json::{Value, json};

const PLANE_TOKEN: &str = "plane-main-token";

struct World {
    plane: PlaneFake,
    project: String,
    human: PlaneUser,
    service: Service,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// Plane on loopback, one project on the local forge, the reconciler every `interval_s`.
async fn world(interval_s: u64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("app.git");
    orchestrator::git::sample::create_sample_origin(&origin)
        .await
        .unwrap();
    let plane = PlaneFake::start(PlaneFakeConfig::new("acme", PLANE_TOKEN));
    let project = plane.add_project("ACME");
    plane.default_board(&project);
    let human = plane.add_user("Ann Human");
    let projects = json!([{
        "repo": "acme/app", "origin": origin, "prefix": "ACME",
        "test_cmd": orchestrator::git::sample::SAMPLE_TEST_CMD,
        "plane_project_id": project,
    }]);
    let env = [
        ("ORCH_PROJECTS_JSON", projects.to_string()),
        ("ORCH_CLAUDE_BIN", BIN.to_string()),
        ("ORCH_CLAUDE_ARGS", "scripted-agent".to_string()),
        ("ORCH_OPERATOR_TOKEN", common::TOKEN.to_string()),
        ("ORCH_RETRY_DELAY_S", "1".to_string()),
        ("ORCH_PLANE_API_URL", plane.url()),
        ("ORCH_PLANE_API_TOKEN", PLANE_TOKEN.to_string()),
        ("ORCH_PLANE_WORKSPACE_SLUG", "acme".to_string()),
        (
            "ORCH_PLANE_WEBHOOK_SECRET",
            plane.webhook_secret().to_string(),
        ),
        ("ORCH_PLANE_STATES_TTL_S", "0".to_string()),
        ("ORCH_RECONCILE_INTERVAL_S", interval_s.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let data = dir.path().join("data");
    let service = Service::start(&data, &env);
    plane.set_webhook_target(&format!("{}/webhook/plane", service.base));
    World {
        plane,
        project,
        human,
        service,
        data,
        _dir: dir,
    }
}

/// The journal's state-change deliveries, oldest first: `(kind, outcome)`.
fn deliveries(data: &Path) -> Vec<(String, Option<String>)> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("orchestrator.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare(
            "SELECT kind, outcome FROM events WHERE kind LIKE 'issue.updated.state%' ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// How many times the task left analysis for architecture.
fn approvals(task: &Value) -> usize {
    task["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["from"] == "analysis" && t["to"] == "architecture")
        .count()
}

/// Waits until the reconciler has completed `n` passes since it started.
async fn passes(service: &Service, n: u64) -> Value {
    eventually("reconciler passes", Duration::from_secs(60), || async {
        let (_, queue) = service.get("/queue").await;
        let done = queue["reconciler"]["counters"]["passes"]
            .as_u64()
            .unwrap_or(0);
        (done >= n).then_some(queue)
    })
    .await
}

impl World {
    /// A new issue moved to In Progress; waits until its task awaits approval and the card
    /// shows In Review. Returns the issue id and the task id.
    async fn awaiting_approval(&self) -> (String, String) {
        let issue = self
            .plane
            .add_issue(&self.project, "Add a greeting", "<p>Say hello.</p>", &[]);
        let reply = self
            .plane
            .move_issue(&issue.id, "In Progress", &self.human.id, "state_id")
            .await
            .unwrap();
        assert!(reply.body.contains("accepted"), "{}", reply.body);
        let id = format!("ACME-{}", issue.sequence_id);
        reach(&self.service, &id, "analysis", "awaiting-approval").await;
        eventually("the card in In Review", Duration::from_secs(30), || async {
            (self.plane.state_name_of(&issue.id).as_deref() == Some("In Review")).then_some(())
        })
        .await;
        (issue.id, id)
    }
}

/// What a scenario keeps of its world once the service has been handed on.
struct Parts<'w> {
    plane: &'w PlaneFake,
    human: &'w PlaneUser,
    data: &'w Path,
}

impl World {
    fn parts(&self) -> Parts<'_> {
        Parts {
            plane: &self.plane,
            human: &self.human,
            data: &self.data,
        }
    }
}

/// Moves the card to `state` during a Plane outage: the delivery is accepted, and acting on
/// it fails (the service has never read the board's states).
async fn move_during_an_outage(w: &Parts<'_>, service: &Service, issue: &str, state: &str) {
    w.plane.set_down(true);
    let reply = w
        .plane
        .move_issue(issue, state, &w.human.id, "state_id")
        .await
        .unwrap();
    assert!(reply.body.contains("accepted"), "{}", reply.body);
    webhooks_settled(service).await;
    let journal = deliveries(w.data);
    assert_eq!(
        journal.last().unwrap().1.as_deref(),
        Some("failed"),
        "{journal:?}"
    );
}

/// Stops `service` with SIGTERM and starts it again on the same data.
fn restart(mut service: Service) -> Service {
    service.signal(libc::SIGTERM);
    service
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
    service.restart()
}

#[tokio::test]
async fn a_delivery_whose_action_failed_is_acted_on_once_the_api_recovers() {
    let w = world(1).await;
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[]);
    move_during_an_outage(&w.parts(), &w.service, &issue.id, "In Progress").await;
    let (_, tasks) = w.service.get("/tasks").await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 0, "{tasks}");
    w.plane.set_down(false);
    let id = format!("ACME-{}", issue.sequence_id);
    let t = eventually("the task to start", Duration::from_secs(60), || async {
        let t = task(&w.service, &id).await;
        (t["work_item_id"] == id.as_str()).then_some(t)
    })
    .await;
    assert_eq!(t["title"], "Add a greeting", "{t}");
    // Later passes find nothing more to do: the delivery is acted on exactly once.
    let queue = passes(&w.service, 1).await;
    let seen = queue["reconciler"]["counters"]["passes"].as_u64().unwrap();
    let now = passes(&w.service, seen + 2).await;
    assert_eq!(
        now["reconciler"]["counters"]["deliveries_acted"], 1,
        "{now}"
    );
    let (_, tasks) = w.service.get("/tasks").await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 1, "{tasks}");
    let journal = deliveries(&w.data);
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert!(
        journal[0]
            .1
            .as_deref()
            .is_some_and(|o| o.starts_with("reconciled: task ACME-1 created")),
        "{journal:?}"
    );
}

#[tokio::test]
async fn a_card_moved_while_the_service_was_down_is_applied_after_restart() {
    let w = world(3600).await;
    let (issue, id) = w.awaiting_approval().await;
    let mut first = w.service;
    first.signal(libc::SIGTERM);
    first
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
    // Plane's delivery finds nobody listening, and Plane does not redeliver.
    let lost = w
        .plane
        .move_issue(&issue, "Approved", &w.human.id, "state_id")
        .await;
    assert!(lost.is_err(), "{lost:?}");
    let second = first.restart();
    w.plane
        .set_webhook_target(&format!("{}/webhook/plane", second.base));
    let t = eventually(
        "the missed approve to land",
        Duration::from_secs(60),
        || async {
            let t = task(&second, &id).await;
            (t["stage"] != "analysis").then_some(t)
        },
    )
    .await;
    assert_eq!(approvals(&t), 1, "{t}");
    let journal = deliveries(&w.data);
    let reconciled: Vec<_> = journal
        .iter()
        .filter(|(kind, _)| kind == "issue.updated.state.reconciled")
        .collect();
    assert_eq!(reconciled.len(), 1, "{journal:?}");
    assert!(
        reconciled[0]
            .1
            .as_deref()
            .is_some_and(|o| o.starts_with("reconciled: ")),
        "{journal:?}"
    );
}

#[tokio::test]
async fn a_stale_approved_is_settled_superseded_and_changes_nothing() {
    let w = world(3600).await;
    let (issue, id) = w.awaiting_approval().await;
    // No agent runs past this point, so the task stands still for the check.
    let (status, reply) = w
        .service
        .post_json(
            &format!("/tasks/{id}/pause"),
            &json!({}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    // A fresh boot has not read the board yet: during an outage, the Approved fails.
    w.plane.set_down(true);
    let World {
        plane,
        human,
        data,
        service,
        _dir,
        ..
    } = w;
    let w = Parts {
        plane: &plane,
        human: &human,
        data: &data,
    };
    let second = restart(service);
    w.plane
        .set_webhook_target(&format!("{}/webhook/plane", second.base));
    move_during_an_outage(&w, &second, &issue, "Approved").await;
    // The task is approved another way and moves on; the delivery is stale now.
    let (status, reply) = second
        .post_json(
            &format!("/tasks/{id}/approve"),
            &json!({}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let before = reach(&second, &id, "architecture", "working").await;
    w.plane.set_down(false);
    let third = restart(second);
    let queue = passes(&third, 1).await;
    let counters = &queue["reconciler"]["counters"];
    assert_eq!(counters["deliveries_superseded"], 1, "{queue}");
    assert_eq!(counters["deliveries_acted"], 0, "{queue}");
    assert_eq!(counters["transitions_applied"], 0, "{queue}");
    let journal = deliveries(w.data);
    let (_, outcome) = journal.last().unwrap();
    assert!(
        outcome
            .as_deref()
            .is_some_and(|o| o.starts_with("superseded: ")),
        "{journal:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", third.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("orchestrator_webhook_deliveries_total{")
                && l.contains("outcome=\"superseded\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let after = task(&third, &id).await;
    assert_eq!(after["transitions"], before["transitions"]);
    assert_eq!(
        (&after["stage"], &after["phase"]),
        (&before["stage"], &before["phase"])
    );
}

#[tokio::test]
async fn a_plane_payload_without_the_name_starts_the_task_with_the_name_from_the_api() {
    let w = world(3600).await;
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[]);
    // The card moves with no delivery; the one sent is Plane's, stripped.
    w.plane.set_webhook_target("http://127.0.0.1:9/nobody");
    let undelivered = w
        .plane
        .move_issue(&issue.id, "To Analyse", &w.human.id, "state_id")
        .await;
    assert!(undelivered.is_err(), "{undelivered:?}");
    w.plane
        .set_webhook_target(&format!("{}/webhook/plane", w.service.base));
    let start = w.plane.state_id(&w.project, "To Analyse").unwrap();
    let body = w
        .plane
        .issue_updated_body(&issue.id, "state_id", json!(null), json!(start), &w.human)
        .unwrap();
    let mut body = body.to_value();
    let data = body["data"].as_object_mut().unwrap();
    data.remove("name");
    data.remove("sequence_id");
    data.remove("description_html");
    data.remove("description_stripped");
    let reply = w.plane.deliver("issue", &Py::from(body)).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("accepted"), "{}", reply.body);
    let id = format!("ACME-{}", issue.sequence_id);
    let t = eventually("the task to start", Duration::from_secs(30), || async {
        let t = task(&w.service, &id).await;
        (t["work_item_id"] == id.as_str()).then_some(t)
    })
    .await;

    assert_eq!(t["title"], "Add a greeting", "{t}");
    assert_eq!(t["description"], "Say hello.", "{t}");
}
