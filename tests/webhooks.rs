//! The webhook intake, black-box: signatures over the raw body, the body limit, broken
//! JSON, replays, unknown projects, the orchestrator's own events, and the refusal to start
//! with an integration but no secret.

mod common;

use common::{Service, command};
use orchestrator::intake::signature::sign;
use serde_json::{Value, json};

const PLANE_SECRET: &str = "plane_wh_0123456789abcdef";
const GITEA_SECRET: &str = "gitea-secret-0123";
const PROJECT: &str = "0b7f3c2e-1111-4a4a-9b9b-222233334444";
const BOT: &str = "9d1e2f3a-bot0-4000-8000-000000000001";

/// A service with Plane and Gitea configured; their APIs point at a closed port, which no
/// test here reaches (every delivery below is refused, ignored or a replay).
async fn service(dir: &std::path::Path) -> Service {
    let projects = json!([{
        "repo": "acme/app", "origin": dir.join("none.git"), "prefix": "ACME", "test_cmd": "true",
        "plane_project_id": PROJECT, "gitea_repo": "acme/app"
    }]);
    Service::start(
        &dir.join("data"),
        &[
            ("ORCH_PROJECTS_JSON", &projects.to_string()),
            ("ORCH_PLANE_API_URL", "http://127.0.0.1:9"),
            ("ORCH_PLANE_API_TOKEN", "plane-token"),
            ("ORCH_PLANE_WORKSPACE_SLUG", "acme"),
            ("ORCH_PLANE_WEBHOOK_SECRET", PLANE_SECRET),
            ("ORCH_PLANE_BOT_USER_IDS", BOT),
            ("ORCH_GITEA_URL", "http://127.0.0.1:9"),
            ("ORCH_GITEA_TOKEN", "gitea-token"),
            ("ORCH_GITEA_WEBHOOK_SECRET", GITEA_SECRET),
        ],
    )
}

/// Python's `json.dumps` separators, as Plane signs and sends its bodies.
fn plane_body(project: &str, actor: &str, field: &str) -> Vec<u8> {
    format!(
        r##"{{"event": "issue", "action": "updated", "webhook_id": "w1", "workspace_id": "ws1", "data": {{"id": "issue-1", "project": "{project}", "sequence_id": 7, "name": "Add login", "description_html": "<p>Users need to log in.</p>", "state": {{"id": "st-1", "name": "In Progress", "color": "#F59E0B", "group": "started"}}, "labels": []}}, "activity": {{"field": "{field}", "new_value": "st-1", "old_value": "st-0", "actor": {{"id": "{actor}", "display_name": "x"}}, "old_identifier": null, "new_identifier": null}}}}"##
    )
    .into_bytes()
}

async fn deliver(
    service: &Service,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", service.base))
        .header("Content-Type", "application/json")
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn plane(service: &Service, delivery: &str, body: Vec<u8>) -> (u16, Value) {
    let sig = sign(PLANE_SECRET, &body);
    deliver(
        service,
        "/webhook/plane",
        &[
            ("X-Plane-Event", "issue"),
            ("X-Plane-Delivery", delivery),
            ("X-Plane-Signature", &sig),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_401_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let body = plane_body(PROJECT, "human-1", "state");
    let (status, reply) = deliver(
        &service,
        "/webhook/plane",
        &[("X-Plane-Event", "issue")],
        body.clone(),
    )
    .await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("missing X-Plane-Signature"),
        "{reply}"
    );

    let wrong = sign("another secret", &body);
    let (status, reply) = deliver(
        &service,
        "/webhook/plane",
        &[("X-Plane-Signature", &wrong)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        reply["error"].as_str().unwrap().contains("does not match"),
        "{reply}"
    );

    // Signed bytes must be the bytes sent: the same JSON re-serialised compactly fails.
    let sig = sign(PLANE_SECRET, &body);
    let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    let (status, _) = deliver(
        &service,
        "/webhook/plane",
        &[("X-Plane-Signature", &sig)],
        compact,
    )
    .await;
    assert_eq!(status, 401);

    // Gitea: its own header and secret.
    let body =
        br#"{"sha": "abc", "state": "success", "repository": {"full_name": "acme/app"}}"#.to_vec();
    let plane_sig = sign(PLANE_SECRET, &body);
    let (status, reply) = deliver(
        &service,
        "/webhook/gitea",
        &[
            ("X-Gitea-Event", "status"),
            ("X-Gitea-Signature", &plane_sig),
        ],
        body,
    )
    .await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("X-Gitea-Signature")
    );
    assert_eq!(
        journaled(&service).await,
        0,
        "a refused delivery is not journaled"
    );
}

#[tokio::test]
async fn an_oversized_body_is_413_and_broken_json_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut big = b"{\"pad\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    big.extend(b"\"}");
    let (status, reply) = plane(&service, "d-big", big).await;
    assert_eq!(status, 413, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("exceeds"),
        "{reply}"
    );

    let (status, reply) = plane(&service, "d-broken", b"{\"event\": \"issue\", ".to_vec()).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("not valid JSON"),
        "{reply}"
    );

    // Valid JSON of the wrong shape names the field.
    let body = br#"{"event": "issue", "action": "updated", "data": {"project": "p"}, "activity": {"field": "state"}}"#;
    let (status, reply) = plane(&service, "d-shape", body.to_vec()).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("data."),
        "{reply}"
    );
    assert_eq!(journaled(&service).await, 0);
}

#[tokio::test]
async fn replays_unknown_projects_and_own_events_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;

    // Another Plane project: journaled, ignored.
    let (status, reply) = plane(
        &service,
        "d-1",
        plane_body("other-project", "human-1", "state"),
    )
    .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("ignored")),
        "{reply}"
    );
    // The same delivery again, and the same body under a fresh delivery id (Plane retries
    // with a new id): duplicates.
    let (_, reply) = plane(
        &service,
        "d-1",
        plane_body("other-project", "human-1", "state"),
    )
    .await;
    assert_eq!(reply["status"], "duplicate");
    let (_, reply) = plane(
        &service,
        "d-2",
        plane_body("other-project", "human-1", "state"),
    )
    .await;
    assert_eq!(reply["status"], "duplicate");

    // Moved by the orchestrator's own account: ignored, no task.
    let (_, reply) = plane(&service, "d-3", plane_body(PROJECT, BOT, "state_id")).await;
    assert_eq!(reply["status"], "ignored", "{reply}");
    // A comment the orchestrator's own account wrote comes back: ignored as its own.
    let comment = format!(
        r#"{{"event": "issue_comment", "action": "created", "webhook_id": "w1", "workspace_id": "ws1", "data": {{"id": "c1", "comment_html": "<p>review \u2192 testing</p>", "issue": "issue-1", "actor": "{BOT}", "project": "{PROJECT}"}}, "activity": {{"field": null, "new_value": null, "old_value": null, "actor": {{"id": "{BOT}"}}, "old_identifier": null, "new_identifier": null}}}}"#
    );
    let (_, reply) = plane(&service, "d-4", comment.into_bytes()).await;
    assert_eq!(reply["status"], "ignored", "{reply}");

    // A Gitea repository nobody registered.
    let body = br#"{
  "sha": "abc",
  "state": "success",
  "repository": {
    "full_name": "someone/else"
  }
}"#
    .to_vec();
    let sig = sign(GITEA_SECRET, &body);
    let (status, reply) = deliver(
        &service,
        "/webhook/gitea",
        &[
            ("X-Gitea-Event", "status"),
            ("X-Gitea-Delivery", "g-1"),
            ("X-Gitea-Signature", &sig),
        ],
        body,
    )
    .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("ignored")),
        "{reply}"
    );

    assert_eq!(
        journaled(&service).await,
        4,
        "every accepted delivery is journaled once"
    );
    let outcomes = outcomes(&service).await;
    assert!(outcomes[0].contains("not in the registry"), "{outcomes:?}");
    assert!(
        outcomes[1].contains("orchestrator's own account"),
        "{outcomes:?}"
    );
    assert!(
        outcomes[2].contains("orchestrator's own account"),
        "{outcomes:?}"
    );
    assert!(
        outcomes[3].contains("someone/else is not in the registry"),
        "{outcomes:?}"
    );
    let (_, tasks) = service.get("/tasks").await;
    assert_eq!(tasks["tasks"].as_array().map_or(0, Vec::len), 0, "{tasks}");
}

/// How many deliveries the journal holds.
async fn journaled(service: &Service) -> i64 {
    let db = service.data_dir.join("orchestrator.db");
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM events WHERE source IN ('plane', 'gitea')",
            [],
            |r| r.get(0),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

/// What the intake did with each journaled delivery, oldest first.
async fn outcomes(service: &Service) -> Vec<String> {
    let db = service.data_dir.join("orchestrator.db");
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT coalesce(outcome, '') FROM events ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn no_secret_refuses_to_start_unless_unsigned_webhooks_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        (
            "ORCH_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("ORCH_BIND", "127.0.0.1:0".to_string()),
        ("ORCH_GITEA_URL", "http://127.0.0.1:9".to_string()),
        ("ORCH_GITEA_TOKEN", "t".to_string()),
    ];
    let out = command(dir.path())
        .arg("serve")
        .envs(base.iter().cloned())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ORCH_GITEA_WEBHOOK_SECRET"), "{err}");
    assert!(err.contains("ORCH_ALLOW_UNSIGNED_WEBHOOKS"), "{err}");
    assert!(
        !dir.path().join("data/orchestrator.db").exists(),
        "nothing created"
    );

    let env: Vec<(&str, &str)> = vec![
        ("ORCH_GITEA_URL", "http://127.0.0.1:9"),
        ("ORCH_GITEA_TOKEN", "t"),
        ("ORCH_ALLOW_UNSIGNED_WEBHOOKS", "true"),
    ];
    let service = Service::start(&dir.path().join("data"), &env);
    assert!(
        service.log().contains("ORCH_ALLOW_UNSIGNED_WEBHOOKS=true"),
        "{}",
        service.log()
    );
    let body =
        br#"{"sha": "abc", "state": "success", "repository": {"full_name": "x/y"}}"#.to_vec();
    let (status, reply) = deliver(
        &service,
        "/webhook/gitea",
        &[("X-Gitea-Event", "status")],
        body,
    )
    .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("ignored")),
        "{reply}"
    );
    // Plane is not configured here: its route says so.
    let (status, reply) = plane(&service, "d", plane_body(PROJECT, "h", "state")).await;
    assert_eq!(status, 404, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("ORCH_PLANE_API_URL")
    );
}
