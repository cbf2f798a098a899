//! Black-box checks that the Plane fake answers like Plane: auth and error shapes,
//! pagination, the PATCH rules, comments under each token, throttling, and webhook deliveries
//! whose signature verifies over the exact bytes received.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use orchestrator_testkit::plane::{PlaneFake, PlaneFakeConfig, PlaneFault};
use serde_json::{Value, json};
use sha2::Sha256;

const TOKEN: &str = "plane_api_main";
const DEV_TOKEN: &str = "plane_api_dev";

fn fake() -> (PlaneFake, String) {
    let fake =
        PlaneFake::start(PlaneFakeConfig::new("acme", TOKEN).with_token(DEV_TOKEN, "dev-bot"));
    let project = fake.add_project("ACME");
    (fake, project)
}

fn api(fake: &PlaneFake, project: &str, tail: &str) -> String {
    format!(
        "{}/api/v1/workspaces/acme/projects/{project}/{tail}",
        fake.url()
    )
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.header("x-api-key", token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn auth_failures_answer_403_with_drf_details() {
    let (fake, project) = fake();
    let url = api(&fake, &project, "states/");
    assert_eq!(
        get(&url, None).await,
        (
            403,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    assert_eq!(
        get(&url, Some("nope")).await,
        (403, json!({"detail": "Given API token is not valid"}))
    );
    fake.revoke_token(TOKEN);
    assert_eq!(get(&url, Some(TOKEN)).await.0, 403);
    assert_eq!(get(&url, Some(DEV_TOKEN)).await.0, 200);
    let (status, body) = get(&api(&fake, "not-a-project", "states/"), Some(DEV_TOKEN)).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "The requested resource does not exist."})
        )
    );
}

#[tokio::test]
async fn lists_page_like_base_paginator() {
    let (fake, project) = fake();
    let ids = fake.default_board_without(&project, &["Confirm Deploy"]);
    assert_eq!(ids.len(), 18);
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}?per_page=5", api(&fake, &project, "states/"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(&url, Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(page["total_results"], 18);
        assert!(!page["next_cursor"].as_str().unwrap().is_empty());
        names.extend(
            page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].clone()),
        );
        if page["next_page_results"] == false {
            break;
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_string());
    }
    assert_eq!(names.len(), 18);
    assert_eq!(names[0], "Backlog");
    assert_eq!(names[17], "Cancelled");
    assert!(!names.contains(&json!("Confirm Deploy")));

    let (status, body) = get(
        &format!("{}?per_page=1001", api(&fake, &project, "labels/")),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (400, json!("Invalid per_page value. Cannot exceed 1000."))
    );
    let (status, body) = get(
        &format!("{}?cursor=oops", api(&fake, &project, "labels/")),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (400, json!("Invalid cursor parameter."))
    );
}

#[tokio::test]
async fn patch_moves_the_issue_and_refuses_foreign_states() {
    let (fake, project) = fake();
    let states = fake.default_board(&project);
    let other = fake.add_project("OTHER");
    let foreign = fake.add_state(&other, "Todo", "unstarted");
    let issue = fake.add_issue(&project, "Login", "<p>Add a login</p>", &[]);
    assert_eq!(issue.sequence_id, 1);
    assert_eq!(fake.add_issue(&project, "Logout", "", &[]).sequence_id, 2);

    let url = api(&fake, &project, &format!("issues/{}/", issue.id));
    let client = reqwest::Client::new();
    let patch = |body: Value| {
        client
            .patch(&url)
            .header("X-API-Key", TOKEN)
            .json(&body)
            .send()
    };
    let response = patch(json!({"state": states["Done"]})).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], json!(states["Done"]));
    assert!(body["completed_at"].is_string());
    assert!(
        body.get("description_stripped").is_none(),
        "the API serializer excludes it"
    );
    assert_eq!(fake.state_name_of(&issue.id).as_deref(), Some("Done"));

    let response = patch(json!({"state": foreign})).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"non_field_errors": ["State is not valid please pass a valid state_id"]})
    );
    assert_eq!(fake.state_name_of(&issue.id).as_deref(), Some("Done"));

    let (status, body) = get(&format!("{url}?expand=state"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"]["name"], "Done");
    assert_eq!(body["state"]["group"], "completed");
    let patched: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patched[0].body, Some(json!({"state": states["Done"]})));
}

#[tokio::test]
async fn comments_are_written_by_the_token_user_and_throttling_answers_429() {
    let (fake, project) = fake();
    fake.default_board(&project);
    let issue = fake.add_issue(&project, "Login", "", &[]);
    let url = api(&fake, &project, &format!("issues/{}/comments/", issue.id));
    fake.push_throttle(1, 7);
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(&url)
            .header("X-Api-Key", DEV_TOKEN)
            .json(&json!({"comment_html": "<p>done</p>"}))
            .send()
    };
    let throttled = post().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers()["retry-after"], "7");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "Request was throttled. Expected available in 7 seconds."
    );

    let created = post().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let comment: Value = created.json().await.unwrap();
    let bot = fake.user_for_token(DEV_TOKEN).unwrap();
    assert_eq!(comment["actor"], json!(bot.id));
    assert_eq!(comment["comment_html"], "<p>done</p>");
    assert_eq!(fake.comments(&issue.id).len(), 1);

    fake.push_fault(PlaneFault::ServerError);
    assert_eq!(get(&url, Some(TOKEN)).await.0, 500);
    let (status, page) = get(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["id"], comment["id"]);
}

/// A webhook receiver on loopback that keeps what it got and answers 202.
async fn receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push((headers, body));
            (StatusCode::ACCEPTED, "queued")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/plane", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn webhooks_are_python_json_signed_over_the_raw_bytes() {
    let (fake, project) = fake();
    let states = fake.default_board(&project);
    let label = fake.add_label(&project, "bug", "#ff0000");
    let issue = fake.add_issue(&project, "Café ☕", "<p>Déjà vu</p>", &[&label]);
    let human = fake.add_user("Ana");
    let (url, got) = receiver().await;
    fake.set_webhook_target(&url);

    let reply = fake
        .move_issue(&issue.id, "In Progress", &human.id, "state_id")
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (202, "queued"));
    assert_eq!(
        fake.state_name_of(&issue.id).as_deref(),
        Some("In Progress")
    );

    let (headers, body) = got.lock().unwrap()[0].clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["user-agent"], "Autopilot");
    assert_eq!(headers["x-plane-event"], "issue");
    let mut mac = Hmac::<Sha256>::new_from_slice(fake.webhook_secret().as_bytes()).unwrap();
    mac.update(&body);
    mac.verify_slice(&hex::decode(headers["x-plane-signature"].to_str().unwrap()).unwrap())
        .expect("the signature covers the exact body bytes");

    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.is_ascii(), "ensure_ascii escapes everything else");
    assert!(text.starts_with(r#"{"event": "issue", "action": "updated", "webhook_id": "#));
    assert!(text.contains(r#""name": "Caf\u00e9 \u2615""#));
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    let order: Vec<usize> = ["\"data\": ", "\"activity\": "]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
    assert!(order[0] < order[1]);
    assert_eq!(envelope["workspace_id"], json!(fake.workspace_id()));
    assert_eq!(envelope["data"]["state"]["name"], "In Progress");
    assert_eq!(
        envelope["data"]["labels"],
        json!([{"id": label, "name": "bug", "color": "#ff0000"}])
    );
    assert_eq!(envelope["data"]["project"], json!(project));
    assert_eq!(envelope["data"]["description_stripped"], "Déjà vu");
    assert_eq!(envelope["activity"]["field"], "state_id");
    assert_eq!(envelope["activity"]["old_value"], json!(states["Backlog"]));
    assert_eq!(
        envelope["activity"]["new_value"],
        json!(states["In Progress"])
    );
    assert_eq!(envelope["activity"]["actor"]["id"], json!(human.id));
    assert_eq!(envelope["activity"]["actor"]["display_name"], "Ana");

    // A replay carries the same delivery id; each fresh delivery gets its own.
    let delivery = fake.signed_delivery(
        "issue",
        &fake
            .issue_updated_body(&issue.id, "state", json!(null), json!(null), &human)
            .unwrap(),
    );
    delivery.send(&url).await.unwrap();
    delivery.send(&url).await.unwrap();
    let comment = fake.add_comment(
        &issue.id,
        &fake.user_for_token(DEV_TOKEN).unwrap().id,
        "<p>hi</p>",
    );
    fake.emit_comment_created(&comment).await.unwrap();
    let got = got.lock().unwrap();
    let ids: Vec<_> = got
        .iter()
        .map(|(h, _)| h["x-plane-delivery"].clone())
        .collect();
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[2], ids[3]);
    assert_eq!(got[3].0["x-plane-event"], "issue_comment");
    let created: Value = serde_json::from_slice(&got[3].1).unwrap();
    assert_eq!(created["action"], "created");
    assert_eq!(created["data"]["actor"], json!(comment.actor));
    assert_eq!(created["activity"]["field"], Value::Null);
}

#[tokio::test]
async fn an_empty_secret_sends_unsigned_deliveries() {
    let (url, got) = receiver().await;
    let config = PlaneFakeConfig::new("acme", TOKEN).with_webhook(Some(&url), "");
    let fake = PlaneFake::start(config);
    let project = fake.add_project("ACME");
    fake.default_board(&project);
    let issue = fake.add_issue(&project, "x", "", &[]);
    let bot = fake.user_for_token(TOKEN).unwrap();
    fake.move_issue(&issue.id, "Done", &bot.id, "state")
        .await
        .unwrap();
    let got = got.lock().unwrap();
    assert!(got[0].0.get("x-plane-signature").is_none());
    assert!(fake.issue(&issue.id).unwrap().completed_at.is_some());
}
