//! Contract tests of the Plane client against the testkit's Plane fake: what goes over the
//! wire (token header, pagination, retries) and what a caller sees (Plane's error text,
//! comments under the right user, the board actually changed, a cache that rides out an
//! outage), plus the webhook bytes a receiver will have to verify.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use orchestrator::plane::{PlaneClient, PlaneError, StateGroup, StatesCache};
use orchestrator_actors::Role;
use orchestrator_testkit::plane::{PlaneFake, PlaneFakeConfig, PlaneFault, signature};
use serde_json::Value;

const TOKEN: &str = "plane_api_main";
const REVIEWER_TOKEN: &str = "plane_api_reviewer";

struct Setup {
    fake: PlaneFake,
    project: String,
    states: HashMap<String, String>,
}

fn setup() -> Setup {
    let config = PlaneFakeConfig::new("acme", TOKEN).with_token(REVIEWER_TOKEN, "reviewer-bot");
    let fake = PlaneFake::start(config);
    let project = fake.add_project("ACME");
    let states = fake.default_board(&project);
    Setup {
        fake,
        project,
        states,
    }
}

fn client(fake: &PlaneFake, token: &str) -> PlaneClient {
    let bots = HashMap::from([(Role::Reviewer, REVIEWER_TOKEN.to_string())]);
    PlaneClient::new(&fake.url(), "acme", token, bots).unwrap()
}

#[tokio::test]
async fn lists_states_with_the_api_key_header() {
    let s = setup();
    let states = client(&s.fake, TOKEN)
        .list_states(&s.project)
        .await
        .unwrap();
    assert_eq!(states.len(), 19);
    assert_eq!(states[0].name, "Backlog");
    assert_eq!(states[0].group, StateGroup::Backlog);
    let done = states.iter().find(|st| st.name == "Done").unwrap();
    assert_eq!(
        (done.id.as_str(), done.group),
        (s.states["Done"].as_str(), StateGroup::Completed)
    );
    let requests = s.fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].api_key(), Some(TOKEN));
    assert_eq!(requests[0].query["per_page"], "100");
}

#[tokio::test]
async fn a_bad_key_surfaces_planes_own_words() {
    let s = setup();
    let error = client(&s.fake, "wrong")
        .list_labels(&s.project)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, PlaneError::Status { status: 403, .. }),
        "{error:?}"
    );
    assert!(
        text.contains("GET /api/v1/workspaces/acme/projects/"),
        "{text}"
    );
    assert!(
        text.ends_with("/labels/ answered 403: Given API token is not valid"),
        "{text}"
    );
    assert_eq!(s.fake.requests().len(), 1, "a 403 is not retried");
}

#[tokio::test]
async fn lists_follow_every_page() {
    let s = setup();
    let issue = s.fake.add_issue(&s.project, "Login", "<p>x</p>", &[]);
    let author = s.fake.user_for_token(TOKEN).unwrap().id;
    for i in 0..7 {
        s.fake
            .add_comment(&issue.id, &author, &format!("<p>{i}</p>"));
    }
    let client = client(&s.fake, TOKEN).with_per_page(3);
    let comments = client.list_comments(&s.project, &issue.id).await.unwrap();
    let bodies: Vec<&str> = comments.iter().map(|c| c.comment_html.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "<p>0</p>", "<p>1</p>", "<p>2</p>", "<p>3</p>", "<p>4</p>", "<p>5</p>", "<p>6</p>"
        ]
    );
    let cursors: Vec<Option<String>> = s
        .fake
        .requests()
        .iter()
        .map(|r| r.query.get("cursor").cloned())
        .collect();
    assert_eq!(cursors, [None, Some("3:1:0".into()), Some("3:2:0".into())]);

    let states = client.list_states(&s.project).await.unwrap();
    assert_eq!(states.len(), 19, "7 pages of 3");
}

#[tokio::test]
async fn a_throttled_request_waits_retry_after_then_succeeds() {
    let s = setup();
    let issue = s
        .fake
        .add_issue(&s.project, "Login", "<p>Add login</p>", &[]);
    s.fake.push_throttle(1, 1);
    let got = client(&s.fake, TOKEN)
        .get_issue(&s.project, &issue.id)
        .await
        .unwrap();
    assert_eq!(got.name, "Login");
    assert_eq!(got.sequence_id, 1);
    assert_eq!(got.state, s.states["Backlog"]);
    let requests = s.fake.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[tokio::test]
async fn server_errors_are_retried_but_a_comment_is_never_posted_twice() {
    let s = setup();
    let issue = s.fake.add_issue(&s.project, "Login", "", &[]);
    let client = client(&s.fake, TOKEN);
    s.fake.push_fault(PlaneFault::ServerError);
    assert_eq!(client.list_labels(&s.project).await.unwrap(), []);
    s.fake.push_fault(PlaneFault::ServerError);
    let error = client
        .create_comment(&s.project, &issue.id, "<p>hi</p>", None)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("answered 500: Something went wrong please try again later"),
        "{error}"
    );
    let statuses: Vec<u16> = s.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200, 500]);
}

#[tokio::test]
async fn comments_go_out_under_the_roles_bot_token_or_the_main_one() {
    let s = setup();
    let issue = s.fake.add_issue(&s.project, "Login", "", &[]);
    let client = client(&s.fake, TOKEN);
    let by_reviewer = client
        .create_comment(&s.project, &issue.id, "<p>LGTM</p>", Some(Role::Reviewer))
        .await
        .unwrap();
    let by_tester = client
        .create_comment(
            &s.project,
            &issue.id,
            "<p>tests pass</p>",
            Some(Role::Tester),
        )
        .await
        .unwrap();
    let reviewer_bot = s.fake.user_for_token(REVIEWER_TOKEN).unwrap();
    let main = s.fake.user_for_token(TOKEN).unwrap();
    assert_eq!(by_reviewer.actor.as_deref(), Some(reviewer_bot.id.as_str()));
    assert_eq!(
        by_tester.actor.as_deref(),
        Some(main.id.as_str()),
        "no tester bot: main token"
    );
    let keys: Vec<Option<String>> = s
        .fake
        .requests()
        .iter()
        .map(|r| r.api_key().map(str::to_string))
        .collect();
    assert_eq!(keys, [Some(REVIEWER_TOKEN.into()), Some(TOKEN.into())]);
    let stored = s.fake.comments(&issue.id);
    assert_eq!(stored[0].comment_html, "<p>LGTM</p>");
    assert_eq!(stored[0].actor, reviewer_bot.id);
}

#[tokio::test]
async fn setting_a_state_moves_the_card() {
    let s = setup();
    let issue = s.fake.add_issue(&s.project, "Login", "", &[]);
    let client = client(&s.fake, TOKEN);
    let moved = client
        .set_issue_state(&s.project, &issue.id, &s.states["In Review"])
        .await
        .unwrap();
    assert_eq!(moved.state, s.states["In Review"]);
    assert_eq!(
        s.fake.state_name_of(&issue.id).as_deref(),
        Some("In Review")
    );
    let patch = s
        .fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.body,
        Some(serde_json::json!({"state": s.states["In Review"]}))
    );

    let other = s.fake.add_project("OTHER");
    let foreign = s.fake.add_state(&other, "Todo", "unstarted");
    let error = client
        .set_issue_state(&s.project, &issue.id, &foreign)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("answered 400: State is not valid please pass a valid state_id"),
        "{error}"
    );
    assert_eq!(
        s.fake.state_name_of(&issue.id).as_deref(),
        Some("In Review")
    );
}

#[tokio::test]
async fn the_states_cache_rides_out_a_failed_refresh() {
    let s = setup();
    let cache = StatesCache::new(client(&s.fake, TOKEN), Duration::ZERO);
    let first = cache.get(&s.project).await.unwrap();
    assert_eq!(first.len(), 19);
    s.fake.revoke_token(TOKEN);
    let second = cache.get(&s.project).await.unwrap();
    assert_eq!(second, first, "the last good set is served");
    let statuses: Vec<u16> = s.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 403], "the refresh was attempted");

    let other = s.fake.add_project("OTHER");
    let error = cache.get(&other).await.unwrap_err();
    assert!(
        error.to_string().contains("Given API token is not valid"),
        "{error}"
    );
}

#[tokio::test]
async fn the_states_cache_asks_plane_once_per_ttl() {
    let s = setup();
    let cache = StatesCache::new(client(&s.fake, TOKEN), Duration::from_secs(3600));
    cache.get(&s.project).await.unwrap();
    let review = cache.by_name(&s.project, "Review").await.unwrap().unwrap();
    assert_eq!(review.id, s.states["Review"]);
    assert_eq!(s.fake.requests().len(), 1);
    cache.invalidate(&s.project).await;
    cache.get(&s.project).await.unwrap();
    assert_eq!(s.fake.requests().len(), 2);
}

#[tokio::test]
async fn the_fakes_webhook_verifies_over_the_raw_bytes() {
    let s = setup();
    let got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push((headers, body));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/plane", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    s.fake.set_webhook_target(&url);
    let issue = s.fake.add_issue(&s.project, "Überholen", "", &[]);
    let human = s.fake.add_user("Zoë");
    let reply = s
        .fake
        .move_issue(&issue.id, "To Analyse", &human.id, "state_id")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    let (headers, body) = got.lock().unwrap()[0].clone();
    let sent = headers["x-plane-signature"].to_str().unwrap();
    assert_eq!(sent, signature(s.fake.webhook_secret(), &body));
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.contains(r#""display_name": "Zo\u00eb""#), "{text}");
    assert!(!text.contains("\":\""), "Python separators only");
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["data"]["state"]["name"], "To Analyse");
    assert_eq!(
        parsed["activity"]["new_value"],
        Value::String(s.states["To Analyse"].clone())
    );
}
