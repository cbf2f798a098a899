//! The Gitea fake's webhooks as a receiver sees them: review and push events carry Gitea's
//! event headers and payload shapes, and a replayed or tampered delivery is byte-for-byte
//! what the test hands over.

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use orchestrator_testkit::gitea::{GiteaFake, GiteaFakeConfig, WebhookTarget, hmac_sha256_hex};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const REPO: &str = "acme/app";

/// A receiver that answers 401 to a bad signature, like the orchestrator's should.
async fn receiver(secret: &'static str) -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let given = headers
                    .get("x-gitea-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((headers, body.clone()));
                if given == hmac_sha256_hex(secret, &body) {
                    (axum::http::StatusCode::OK, "accepted")
                } else {
                    (axum::http::StatusCode::UNAUTHORIZED, "bad signature")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// A fake with a webhook target, `acme/app`, and an open PR #1 from `feature/X-1`.
async fn fake_with_pr(url: String) -> GiteaFake {
    let fake = GiteaFake::start(GiteaFakeConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: "s".to_string(),
        }),
        ..GiteaFakeConfig::default()
    });
    fake.add_repo(REPO, None);
    fake.set_branch(
        REPO,
        "feature/X-1",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/repos/{REPO}/pulls", fake.url()))
        .header("Authorization", format!("token {}", fake.token()))
        .json(&json!({"head": "feature/X-1", "base": "main", "title": "X-1", "body": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    fake
}

#[tokio::test]
async fn reviews_arrive_as_gitea_sends_them() {
    let (url, mut seen) = receiver("s").await;
    let fake = fake_with_pr(url).await;

    let approved = fake.emit_review(REPO, 1, true, "LGTM").await.unwrap();
    assert_eq!(approved.status, Some(200));
    let (headers, body) = seen.recv().await.unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(headers["x-gitea-event"], "pull_request_approved");
    assert_eq!(
        headers["x-gitea-event-type"],
        "pull_request_review_approved"
    );
    assert_eq!(payload["action"], "reviewed");
    assert_eq!(payload["review"]["type"], "pull_request_review_approved");
    assert_eq!(payload["review"]["content"], "LGTM");
    assert_eq!(payload["pull_request"]["head"]["label"], "feature/X-1");

    fake.emit_review(REPO, 1, false, "P0: fix it")
        .await
        .unwrap();
    let (headers, body) = seen.recv().await.unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(headers["x-gitea-event"], "pull_request_rejected");
    assert_eq!(payload["review"]["type"], "pull_request_review_rejected");
}

#[tokio::test]
async fn a_push_names_the_ref_and_both_shas() {
    let (url, mut seen) = receiver("s").await;
    let fake = fake_with_pr(url).await;
    let before = "0123456789abcdef0123456789abcdef01234567";
    let after = "89abcdef0123456789abcdef0123456789abcdef";
    fake.emit_push(REPO, "feature/X-1", before, after)
        .await
        .unwrap();
    let (headers, body) = seen.recv().await.unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(headers["x-gitea-event"], "push");
    assert_eq!(payload["ref"], "refs/heads/feature/X-1");
    assert_eq!(payload["before"], before);
    assert_eq!(payload["after"], after);
    assert_eq!(payload["head_commit"]["id"], after);
}

#[tokio::test]
async fn a_tampered_replay_is_what_the_receiver_gets() {
    let (url, mut seen) = receiver("s").await;
    let fake = fake_with_pr(url).await;
    let (headers, body) = fake.signed_delivery("status", "status", &json!({"state": "success"}));
    let replay = fake.send_delivery(&headers, body.clone()).await.unwrap();
    assert_eq!(replay.status, Some(200));
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let refused = fake
        .send_delivery(&headers, tampered.clone())
        .await
        .unwrap();
    assert_eq!(refused.status, Some(401));
    assert_eq!(refused.response, "bad signature");
    assert_eq!(seen.recv().await.unwrap().1, body);
    assert_eq!(seen.recv().await.unwrap().1, tampered);
}
