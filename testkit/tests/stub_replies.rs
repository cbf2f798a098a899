//! The stub over HTTP, without the CLI: its JSON Messages, SSE streams and error replies are
//! well formed, it plays the role named in the prompt, and faults are consumed as documented.

use std::time::Duration;

use orchestrator_testkit::anthropic::{USAGE_LIMIT_PREFIX, usage_limit_message};
use orchestrator_testkit::{AnthropicStub, Fault, StubConfig};
use serde_json::{Value, json};

const ANALYST_PROMPT: &str = "Add a /health endpoint\n\nYou are the analyst for work item ORCH-7.\n\
                              Repository: demo\nArtifacts: docs/work-items/ORCH-7/\n\nDetails.\n";

/// A request shaped like the CLI's: system blocks with the working directory, reminder
/// blocks before the prompt, and the Read/Write tools.
fn cli_request(stream: bool, messages: Value) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.595;"},
            {"type": "text", "text": "You are a Claude agent."},
            {"type": "text", "text": "# Environment\n - Primary working directory: /tmp/wt-orch-7\n"}
        ],
        "messages": messages,
        "tools": [
            {"name": "Read", "description": "...", "input_schema": {}},
            {"name": "Write", "description": "...", "input_schema": {}}
        ]
    })
}

fn first_turn() -> Value {
    json!([{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\ncontext\n</system-reminder>"},
        {"type": "text", "text": ANALYST_PROMPT}
    ]}])
}

async fn post(stub: &AnthropicStub, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/messages?beta=true", stub.base_url()))
        .header("x-api-key", "sk-test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .expect("the stub answers")
}

/// `(event name, data)` pairs of an SSE body; every event must have both lines.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| {
            let mut lines = chunk.lines();
            let name = lines.next().and_then(|l| l.strip_prefix("event: "));
            let data = lines.next().and_then(|l| l.strip_prefix("data: "));
            match (name, data, lines.next()) {
                (Some(name), Some(data), None) => (
                    name.to_string(),
                    serde_json::from_str(data).expect("data is JSON"),
                ),
                _ => panic!("malformed SSE event: {chunk:?}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_json_reply_asks_to_write_the_analysts_artifacts() {
    let stub = AnthropicStub::start(StubConfig::default());
    let response = post(&stub, &cli_request(false, first_turn())).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-sonnet-4-5");
    assert_eq!(message["stop_reason"], "tool_use");
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 100);
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 10);
    let writes: Vec<&Value> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    let paths: Vec<&str> = writes
        .iter()
        .map(|b| b["input"]["file_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/tmp/wt-orch-7/docs/work-items/ORCH-7/01-brd.md",
            "/tmp/wt-orch-7/docs/work-items/ORCH-7/02-trz.md",
            "/tmp/wt-orch-7/docs/work-items/ORCH-7/03-acceptance-criteria.md",
            "/tmp/wt-orch-7/docs/work-items/ORCH-7/04-test-plan.yaml",
        ]
    );
    for block in writes {
        assert_eq!(block["name"], "Write");
        assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
        assert!(!block["input"]["content"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_sse_reply_follows_the_contracts_event_order_and_rebuilds_the_same_message() {
    let stub = AnthropicStub::start(StubConfig::default());
    let plain: Value = post(&stub, &cli_request(false, first_turn()))
        .await
        .json()
        .await
        .unwrap();
    let streamed_request = cli_request(true, first_turn());
    let response = post(&stub, &streamed_request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = events(&response.text().await.unwrap());
    for (name, data) in &events {
        assert_eq!(&data["type"], name.as_str(), "type repeats the event name");
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);

    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    // Deterministic usage: one input token per four bytes of the request body.
    let body_len = serde_json::to_vec(&streamed_request).unwrap().len() as u64;
    assert_eq!(start["usage"]["input_tokens"], body_len / 4);

    // Rebuild the content from the block events; it must equal the non-streamed Message.
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial = String::new();
    let mut open: Option<u64> = None;
    for (name, data) in &events[2..events.len() - 2] {
        let index = data["index"].as_u64().unwrap();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "blocks do not nest");
                assert_eq!(index as usize, blocks.len(), "indexes count up from 0");
                open = Some(index);
                blocks.push(data["content_block"].clone());
                partial.clear();
            }
            "content_block_delta" => {
                assert_eq!(open, Some(index));
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = blocks[index as usize]["text"].as_str().unwrap().to_string();
                        blocks[index as usize]["text"] =
                            json!(text + delta["text"].as_str().unwrap());
                    }
                    "input_json_delta" => partial.push_str(delta["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(open.take(), Some(index));
                let block = &mut blocks[index as usize];
                if block["type"] == "tool_use" {
                    assert_eq!(
                        block["input"],
                        json!({}),
                        "tool_use starts with empty input"
                    );
                    block["input"] =
                        serde_json::from_str(&partial).expect("fragments join to JSON");
                }
            }
            other => panic!("unexpected event {other} inside the message"),
        }
    }
    assert_eq!(open, None);
    let without_ids = |blocks: &[Value]| -> Vec<Value> {
        blocks
            .iter()
            .cloned()
            .map(|mut b| {
                b.as_object_mut().unwrap().remove("id");
                b
            })
            .collect()
    };
    assert_eq!(
        without_ids(&blocks),
        without_ids(plain["content"].as_array().unwrap())
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"]["output_tokens"],
        plain["usage"]["output_tokens"]
    );
}

#[tokio::test]
async fn a_tool_result_turn_gets_done_and_forced_json_ignores_stream() {
    let stub = AnthropicStub::start(StubConfig {
        force_json: true,
        ..StubConfig::default()
    });
    let mut turns = first_turn();
    let turns_list = turns.as_array_mut().unwrap();
    turns_list.push(json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_x", "name": "Write", "input": {"file_path": "/tmp/a", "content": "a"}}
    ]}));
    turns_list.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "File created successfully at: /tmp/a"}
    ]}));
    let response = post(&stub, &cli_request(true, turns)).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "done"}])
    );
    let log = stub.requests();
    assert_eq!(log.len(), 1);
    assert!(!log[0].streamed);
}

#[tokio::test]
async fn faults_are_consumed_in_order_then_the_default_applies() {
    let stub = AnthropicStub::start(StubConfig::default());
    stub.push_fault(Fault::RateLimited { retry_after_s: 7 });
    stub.push_fault(Fault::Overloaded);
    stub.push_fault(Fault::BadRequest {
        message: "prompt is too long".into(),
    });
    stub.push_fault(Fault::Unauthorized);
    stub.push_fault(Fault::ServerError);
    let body = cli_request(false, first_turn());

    let limited = post(&stub, &body).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let request_id = limited.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    assert_eq!(error["request_id"], request_id.as_str());
    assert!(request_id.starts_with("req_"));

    for (status, kind) in [
        (529, "overloaded_error"),
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (500, "api_error"),
    ] {
        let response = post(&stub, &body).await;
        assert_eq!(response.status(), status);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], kind);
        if status == 400 {
            assert_eq!(error["error"]["message"], "prompt is too long");
        }
    }
    assert_eq!(post(&stub, &body).await.status(), 200, "queue is empty");

    stub.set_default_fault(Some(Fault::Overloaded));
    stub.push_fault(Fault::Unauthorized);
    assert_eq!(
        post(&stub, &body).await.status(),
        401,
        "the queue goes first"
    );
    assert_eq!(post(&stub, &body).await.status(), 529);
    assert_eq!(post(&stub, &body).await.status(), 529);
    stub.set_default_fault(None);
    assert_eq!(post(&stub, &body).await.status(), 200);

    let statuses: Vec<u16> = stub.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 529, 400, 401, 500, 200, 401, 529, 529, 200]);
    let faults: Vec<Option<Fault>> = stub.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(faults[0], Some(Fault::RateLimited { retry_after_s: 7 }));
    assert_eq!(faults[5], None);
}

#[tokio::test]
async fn a_usage_limit_names_its_reset_time_in_message_and_headers() {
    let resets_at = 4_102_444_800; // 2100-01-01T00:00:00Z
    let stub = AnthropicStub::start(StubConfig {
        default_fault: Some(Fault::UsageLimit {
            resets_at_unix: resets_at,
        }),
        ..StubConfig::default()
    });
    let response = post(&stub, &cli_request(true, first_turn())).await;
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    assert_eq!(headers["anthropic-ratelimit-unified-status"], "rejected");
    assert_eq!(headers["anthropic-ratelimit-unified-reset"], "4102444800");
    let retry_after: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 3600, "seconds until the reset: {retry_after}");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert_eq!(message, usage_limit_message(resets_at));
    assert!(message.starts_with(USAGE_LIMIT_PREFIX));
    assert!(message.contains("2100-01-01T00:00:00Z"), "{message}");
}

#[tokio::test]
async fn a_slow_fault_delays_a_normal_answer() {
    let stub = AnthropicStub::start(StubConfig::default());
    let delay = Duration::from_millis(300);
    stub.push_fault(Fault::Slow { delay });
    let started = std::time::Instant::now();
    let response = post(&stub, &cli_request(false, first_turn())).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= delay);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
}

#[tokio::test]
async fn other_routes_are_404_and_every_request_is_logged() {
    let stub = AnthropicStub::start(StubConfig::default());
    let client = reqwest::Client::new();
    let head = client
        .head(format!("{}/", stub.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    let models = client
        .get(format!("{}/v1/models", stub.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 404);
    let error: Value = models.json().await.unwrap();
    assert_eq!(error["error"]["type"], "not_found_error");
    let not_json = client
        .post(format!("{}/v1/messages", stub.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    post(&stub, &cli_request(true, first_turn())).await;

    let log = stub.requests();
    let seen: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("HEAD", "/", 404),
            ("GET", "/v1/models", 404),
            ("POST", "/v1/messages", 400),
            ("POST", "/v1/messages?beta=true", 200),
        ]
    );
    let last = &log[3];
    assert!(last.streamed && last.is_messages());
    assert_eq!(last.header("x-api-key"), Some("sk-test"));
    assert_eq!(last.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(last.body.as_ref().unwrap()["model"], "claude-sonnet-4-5");
    assert!(log[2].body.is_none());
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(stub.messages_requests().len(), 2);
}

#[tokio::test]
async fn dropping_the_stub_closes_its_port() {
    let stub = AnthropicStub::start(StubConfig::default());
    let base = stub.base_url();
    drop(stub);
    let result = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .json(&json!({}))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(result.is_err(), "still answering after drop: {result:?}");
}
