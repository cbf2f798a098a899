//! Contract tests of the Gitea client against the testkit's Gitea fake: the auth header, how
//! CI states are read and waited on, idempotent PR creation, merge retries and conflicts,
//! branch cleanup, a real git merge, and the shape and signature of a status webhook.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use hmac::{Hmac, Mac};
use orchestrator::gitea::{
    CiState, CiVerdict, GiteaClient, GiteaError, MergeOptions, MergeOutcome, RetryPolicy,
};
use orchestrator_testkit::gitea::{
    GiteaFake, GiteaFakeConfig, WebhookTarget, commit_to_branch, init_bare_repo, is_ancestor,
};
use tokio::sync::mpsc;

const REPO: &str = "acme/app";

/// A fake with `acme/app` in memory, and a client for it whose merge retries are quick.
fn setup() -> (GiteaFake, GiteaClient) {
    let fake = GiteaFake::start(GiteaFakeConfig::default());
    fake.add_repo(REPO, None);
    let client = client(&fake);
    (fake, client)
}

fn client(fake: &GiteaFake) -> GiteaClient {
    GiteaClient::new(&fake.url(), fake.token())
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        })
}

/// A memory-mode branch `feature/X-1` one invented commit ahead of `main`, with an open PR.
async fn open_pr(fake: &GiteaFake, client: &GiteaClient) -> (u64, String) {
    let sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    fake.set_branch(REPO, "feature/X-1", sha);
    let (pr, created) = client
        .ensure_open_pr(REPO, "feature/X-1", "main", "X-1: add a thing", "body")
        .await
        .unwrap();
    assert!(created);
    (pr.number, sha.to_string())
}

#[tokio::test]
async fn requests_carry_the_token_header_and_a_wrong_token_is_refused_by_name() {
    let (fake, client) = setup();
    client.combined_status(REPO, "main").await.unwrap();
    let request = fake.requests().pop().unwrap();
    assert_eq!(
        request.header("authorization"),
        Some(format!("token {}", fake.token()).as_str())
    );

    let wrong = GiteaClient::new(&fake.url(), "not-the-token").unwrap();
    let err = wrong.combined_status(REPO, "main").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let text = err.to_string();
    assert!(text.contains("combined_status"), "{text}");
    assert!(
        text.contains("/api/v1/repos/acme/app/commits/main/status"),
        "{text}"
    );
}

#[tokio::test]
async fn a_commit_without_statuses_is_pending_and_items_are_read_from_status() {
    let (fake, client) = setup();
    let sha = fake.branch_sha(REPO, "main").unwrap();
    let none = client.combined_status(REPO, &sha).await.unwrap();
    assert_eq!(none.state, CiState::Pending);
    assert!(none.statuses.is_empty());

    fake.set_status(REPO, &sha, "success", "ci/lint", "clean");
    fake.set_status(REPO, &sha, "pending", "ci/test", "running");
    let some = client.combined_status(REPO, &sha).await.unwrap();
    assert_eq!(some.state, CiState::Pending);
    let test = some
        .statuses
        .iter()
        .find(|s| s.context == "ci/test")
        .unwrap();
    assert_eq!(test.status, "pending");
    assert_eq!(test.description, "running");
}

#[tokio::test]
async fn a_failure_is_terminal_at_once_and_names_the_failing_context() {
    let (fake, client) = setup();
    let sha = fake.branch_sha(REPO, "main").unwrap();
    fake.set_status(REPO, &sha, "success", "ci/lint", "clean");
    fake.set_status(REPO, &sha, "failure", "ci/test", "3 tests failed");
    let verdict = client
        .wait_ci_green(
            REPO,
            &sha,
            Duration::from_millis(20),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let CiVerdict::Red { details } = verdict else {
        panic!("expected red, got {verdict:?}")
    };
    assert!(
        details.contains("ci/test is failure (3 tests failed)"),
        "{details}"
    );
    assert!(!details.contains("ci/lint"), "{details}");
    assert_eq!(
        fake.requests().len(),
        1,
        "a failure must not be polled again"
    );
}

#[tokio::test]
async fn pending_turns_green_while_polling() {
    let (fake, client) = setup();
    let sha = fake.branch_sha(REPO, "main").unwrap();
    fake.set_status(REPO, &sha, "pending", "ci/test", "running");
    let wait = client.wait_ci_green(
        REPO,
        &sha,
        Duration::from_millis(30),
        Duration::from_secs(10),
    );
    let post_later = async {
        // Once the client has seen it pending twice, CI finishes.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while fake.requests().iter().filter(|r| r.method == "GET").count() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the client never polled twice"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Through the API, as a CI runner would post it.
        let http = reqwest::Client::new();
        let answer = http
            .post(format!("{}/api/v1/repos/{REPO}/statuses/{sha}", fake.url()))
            .header("Authorization", format!("token {}", fake.token()))
            .json(&serde_json::json!({"state": "success", "context": "ci/test", "description": "42 passed", "target_url": ""}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
    };
    let (verdict, ()) = tokio::join!(wait, post_later);
    assert_eq!(
        verdict.unwrap(),
        CiVerdict::Green {
            summary: "1 context passed: ci/test".to_string()
        }
    );
    let polls = fake.requests().iter().filter(|r| r.method == "GET").count();
    assert!(
        polls >= 2,
        "it should have polled while pending, polled {polls} times"
    );
}

#[tokio::test]
async fn still_pending_after_the_budget_says_so() {
    let (fake, client) = setup();
    let sha = fake.branch_sha(REPO, "main").unwrap();
    let verdict = client
        .wait_ci_green(
            REPO,
            &sha,
            Duration::from_millis(100),
            Duration::from_millis(1100),
        )
        .await
        .unwrap();
    assert_eq!(verdict.to_string(), "CI still pending after 1 s");
}

#[tokio::test]
async fn status_server_errors_are_retried_within_the_budget() {
    let (fake, client) = setup();
    let sha = fake.branch_sha(REPO, "main").unwrap();
    fake.set_status(REPO, &sha, "success", "ci/test", "ok");
    fake.push_status_fault(502, "bad gateway");
    let verdict = client
        .wait_ci_green(
            REPO,
            &sha,
            Duration::from_millis(10),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(matches!(verdict, CiVerdict::Green { .. }), "{verdict:?}");
}

#[tokio::test]
async fn no_answer_at_all_within_the_budget_is_an_error() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = GiteaClient::new(&format!("http://127.0.0.1:{port}"), "t").unwrap();
    let err = client
        .wait_ci_green(
            REPO,
            "abc1234",
            Duration::from_millis(50),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, GiteaError::NoCiAnswer { .. }), "{err}");
}

#[tokio::test]
async fn ensure_open_pr_creates_once_then_finds_the_existing_one() {
    let (fake, client) = setup();
    let (number, sha) = open_pr(&fake, &client).await;
    let (again, created) = client
        .ensure_open_pr(REPO, "feature/X-1", "main", "X-1: add a thing", "body")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.number, number);
    assert_eq!(again.head.sha, sha);
    let posts: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pulls"))
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [201, 409]);
    let found = client.find_open_pr_by_sha(REPO, &sha).await.unwrap();
    assert_eq!(found.map(|pr| pr.number), Some(number));
}

#[tokio::test]
async fn a_pr_from_a_branch_into_itself_is_refused() {
    let (_fake, client) = setup();
    let err = client
        .ensure_open_pr(REPO, "main", "main", "t", "")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422), "{err}");
}

#[tokio::test]
async fn a_405_try_again_later_is_retried_until_the_merge_succeeds() {
    let (fake, client) = setup();
    let (number, _) = open_pr(&fake, &client).await;
    fake.push_merge_fault(405, "Please try again later");
    let outcome = client
        .merge(REPO, number, &MergeOptions::merge_commit("Merge X-1"))
        .await
        .unwrap();
    assert_eq!(outcome, MergeOutcome::Merged);
    let merges = fake.merge_requests();
    assert_eq!(merges.len(), 2);
    assert_eq!(merges[0].status, 405);
    assert_eq!(merges[1].status, 200);
    assert_eq!(merges[1].json()["Do"], "merge");
    let pr = client.pull_request(REPO, number).await.unwrap();
    assert!(pr.merged);
    assert_eq!(pr.state, "closed");
    assert!(pr.merge_commit_sha.is_some());
    assert_eq!(fake.branch_sha(REPO, "main"), pr.merge_commit_sha);
}

#[tokio::test]
async fn a_409_conflict_is_terminal_without_retry() {
    let (fake, client) = setup();
    let (number, _) = open_pr(&fake, &client).await;
    fake.push_merge_fault(409, "merge conflict in src/lib.rs");
    let outcome = client
        .merge(REPO, number, &MergeOptions::merge_commit("Merge X-1"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::Conflict {
            message: "merge conflict in src/lib.rs".to_string()
        }
    );
    assert_eq!(fake.merge_requests().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_and_a_second_merge_reports_already_merged() {
    let (fake, client) = setup();
    let (number, _) = open_pr(&fake, &client).await;
    fake.push_merge_fault(500, "");
    let options = MergeOptions::merge_commit("Merge X-1");
    assert_eq!(
        client.merge(REPO, number, &options).await.unwrap(),
        MergeOutcome::Merged
    );
    assert_eq!(
        client.merge(REPO, number, &options).await.unwrap(),
        MergeOutcome::AlreadyMerged
    );
    let statuses: Vec<u16> = fake.merge_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200, 405]);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (fake, client) = setup();
    let (number, _) = open_pr(&fake, &client).await;
    for _ in 0..4 {
        fake.push_merge_fault(405, "Please try again later");
    }
    let err = client
        .merge(REPO, number, &MergeOptions::merge_commit("Merge X-1"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("after 4 attempts"), "{text}");
    assert!(text.contains("Please try again later"), "{text}");
}

#[tokio::test]
async fn deleting_a_branch_twice_is_204_then_404() {
    let (fake, client) = setup();
    client
        .create_branch(REPO, "feature/X-2", "main")
        .await
        .unwrap();
    assert!(fake.branch_sha(REPO, "feature/X-2").is_some());
    assert!(client.delete_branch(REPO, "feature/X-2").await.unwrap());
    assert!(!client.delete_branch(REPO, "feature/X-2").await.unwrap());
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [204, 404]);
}

#[tokio::test]
async fn a_merge_in_a_bare_repo_leaves_the_merge_commit_on_main() {
    let dir = tempfile::tempdir().unwrap();
    let bare = init_bare_repo(dir.path(), "app");
    let head = commit_to_branch(&bare, "feature/X-3", "src/x.txt", "x\n");
    let fake = GiteaFake::start(GiteaFakeConfig::default());
    fake.add_repo(REPO, Some(bare.clone()));
    let client = client(&fake);
    let (pr, _) = client
        .ensure_open_pr(REPO, "feature/X-3", "main", "X-3", "")
        .await
        .unwrap();
    assert_eq!(pr.head.sha, head);
    let outcome = client
        .merge(REPO, pr.number, &MergeOptions::merge_commit("Merge X-3"))
        .await
        .unwrap();
    assert_eq!(outcome, MergeOutcome::Merged);
    let merged = client.pull_request(REPO, pr.number).await.unwrap();
    let merge_sha = merged.merge_commit_sha.unwrap();
    assert!(is_ancestor(&bare, &merge_sha, "main"));
    assert!(is_ancestor(&bare, &head, "main"));
    assert_eq!(fake.branch_sha(REPO, "main"), Some(merge_sha));
}

#[tokio::test]
async fn a_real_conflict_in_a_bare_repo_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let bare = init_bare_repo(dir.path(), "app");
    commit_to_branch(&bare, "feature/X-4", "README.md", "theirs\n");
    commit_to_branch(&bare, "main", "README.md", "ours\n");
    let fake = GiteaFake::start(GiteaFakeConfig::default());
    fake.add_repo(REPO, Some(bare));
    let client = client(&fake);
    let (pr, _) = client
        .ensure_open_pr(REPO, "feature/X-4", "main", "X-4", "")
        .await
        .unwrap();
    let outcome = client
        .merge(REPO, pr.number, &MergeOptions::merge_commit("Merge X-4"))
        .await
        .unwrap();
    let MergeOutcome::Conflict { message } = outcome else {
        panic!("expected a conflict, got {outcome:?}")
    };
    assert!(message.contains("CONFLICT"), "{message}");
    assert_eq!(fake.merge_requests().len(), 1);
}

#[tokio::test]
async fn fast_forward_only_moves_main_to_the_pinned_head_and_refuses_what_diverged() {
    let dir = tempfile::tempdir().unwrap();
    let bare = init_bare_repo(dir.path(), "app");
    let head = commit_to_branch(&bare, "feature/X-5", "src/x.txt", "x\n");
    let fake = GiteaFake::start(GiteaFakeConfig::default());
    fake.add_repo(REPO, Some(bare.clone()));
    let client = client(&fake);
    let (pr, _) = client
        .ensure_open_pr(REPO, "feature/X-5", "main", "X-5", "")
        .await
        .unwrap();
    // A head other than the pinned one is refused: 409, main untouched.
    let main_before = fake.branch_sha(REPO, "main");
    let stale = MergeOptions::fast_forward_only(&"0".repeat(40));
    let outcome = client.merge(REPO, pr.number, &stale).await.unwrap();
    assert!(
        matches!(outcome, MergeOutcome::Conflict { .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.branch_sha(REPO, "main"), main_before);
    // The pinned head, a descendant of main: main is exactly it.
    let options = MergeOptions::fast_forward_only(&head);
    assert_eq!(
        client.merge(REPO, pr.number, &options).await.unwrap(),
        MergeOutcome::Merged
    );
    assert_eq!(fake.branch_sha(REPO, "main"), Some(head.clone()));
    let request = &fake.merge_requests()[1];
    assert_eq!(request.json()["Do"], "fast-forward-only");
    assert_eq!(request.json()["head_commit_id"], head.as_str());
    // Asked again (an answer lost), Gitea says 405 "already merged": that is success.
    assert_eq!(
        client.merge(REPO, pr.number, &options).await.unwrap(),
        MergeOutcome::AlreadyMerged
    );
    assert_eq!(fake.merge_requests()[2].status, 405);

    // main moved on since the head was cut: fast-forward-only is refused with 409.
    let other = commit_to_branch(&bare, "feature/X-6", "src/y.txt", "y\n");
    commit_to_branch(&bare, "main", "README.md", "moved\n");
    let (pr, _) = client
        .ensure_open_pr(REPO, "feature/X-6", "main", "X-6", "")
        .await
        .unwrap();
    let outcome = client
        .merge(REPO, pr.number, &MergeOptions::fast_forward_only(&other))
        .await
        .unwrap();
    let MergeOutcome::Conflict { message } = outcome else {
        panic!("expected a refusal, got {outcome:?}")
    };
    assert!(message.contains("fast-forward"), "{message}");
    assert!(!is_ancestor(&bare, &other, "main"));
}

/// A webhook receiver on loopback that hands each delivery to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn a_status_webhook_is_indented_like_go_has_no_branches_and_verifies() {
    let (fake, client) = setup();
    let (url, mut deliveries) = receiver().await;
    let secret = "hook-secret";
    fake.set_webhook(Some(WebhookTarget {
        url,
        secret: secret.to_string(),
    }));
    let sha = fake.branch_sha(REPO, "main").unwrap();
    let answer = fake
        .emit_status(REPO, &sha, "success", "ci/test")
        .await
        .unwrap();
    assert_eq!(answer.status, Some(200));
    assert_eq!(answer.response, "ok");

    let (headers, body) = deliveries.recv().await.unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.starts_with("{\n  \"commit\": {\n    \""), "{text}");
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(payload.get("branches").is_none());
    assert_eq!(payload["sha"], sha.as_str());
    assert_eq!(payload["state"], "success");
    assert_eq!(headers["x-gitea-event"], "status");

    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(headers["x-gitea-signature"], expected.as_str());
    assert_eq!(
        headers["x-hub-signature-256"],
        format!("sha256={expected}").as_str()
    );

    // The client agrees with the hook: the status is on the commit.
    let combined = client.combined_status(REPO, &sha).await.unwrap();
    assert_eq!(combined.state, CiState::Success);
}

#[tokio::test]
async fn a_merge_through_the_api_sends_a_closed_merged_pull_request_hook() {
    let (fake, client) = setup();
    let (url, mut deliveries) = receiver().await;
    fake.set_webhook(Some(WebhookTarget {
        url,
        secret: String::new(),
    }));
    let (number, _) = open_pr(&fake, &client).await;
    client
        .merge(REPO, number, &MergeOptions::merge_commit("Merge X-1"))
        .await
        .unwrap();
    let (headers, body) = deliveries.recv().await.unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(headers["x-gitea-event"], "pull_request");
    assert_eq!(payload["action"], "closed");
    assert_eq!(payload["pull_request"]["merged"], true);
    assert_eq!(payload["number"], number);
}
