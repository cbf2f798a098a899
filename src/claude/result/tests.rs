//! Parsing the CLI result object: the sample captured from the real 2.1.197 binary, the
//! failure rows of the contract's table, and shapes the parser must tolerate or reject.

use super::*;

/// Captured from the real CLI (docs: shared/contracts/claude-code-cli.md), verbatim.
const REAL_SAMPLE: &str = r#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,
 "duration_ms":135,"duration_api_ms":32,"ttft_ms":129,"ttft_stream_ms":128,"time_to_request_ms":109,
 "num_turns":1,"result":"Hello from stub.","stop_reason":"end_turn",
 "session_id":"56fdfad9-…","total_cost_usd":0.000108,
 "usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5,
          "server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard",
          "cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},
          "inference_geo":"","iterations":[],"speed":"standard"},
 "modelUsage":{"claude-sonnet-4-5":{"inputTokens":11,"outputTokens":5,"cacheReadInputTokens":0,
          "cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.000108,
          "contextWindow":200000,"maxOutputTokens":32000}},
 "permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","uuid":"4321459c-…"}"#;

#[test]
fn the_real_sample_parses_with_usage_and_cost() {
    let r = parse_stdout(REAL_SAMPLE).unwrap();
    assert_eq!(r.subtype, "success");
    assert!(!r.is_error);
    assert_eq!(r.result.as_deref(), Some("Hello from stub."));
    assert_eq!(r.num_turns, Some(1));
    assert_eq!(r.duration_ms, Some(135));
    assert_eq!(r.session_id.as_deref(), Some("56fdfad9-…"));
    assert_eq!(r.api_error_status, None);
    assert_eq!(r.total_tokens(), 16);
    assert!((r.cost_usd() - 0.000108).abs() < 1e-12);
    assert_eq!(r.primary_model(), Some("claude-sonnet-4-5"));
    assert_eq!(r.error_message(), None);
}

#[test]
fn max_turns_is_an_error_with_errors_and_no_result() {
    let r = parse_stdout(
        r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":2,
            "errors":["Reached maximum number of turns (1)"],"terminal_reason":"max_turns",
            "session_id":"s","total_cost_usd":0.01,"modelUsage":{}}"#,
    )
    .unwrap();
    assert_eq!(r.subtype, "error_max_turns");
    assert!(r.is_error);
    assert_eq!(r.result, None);
    assert_eq!(r.errors, vec!["Reached maximum number of turns (1)"]);
    assert_eq!(
        r.error_message().as_deref(),
        Some("Reached maximum number of turns (1)")
    );
    // No modelUsage: the estimate is all there is.
    assert!((r.cost_usd() - 0.01).abs() < 1e-12);
    assert_eq!(r.total_tokens(), 0);
    assert_eq!(r.primary_model(), None);
}

#[test]
fn an_api_error_says_success_but_is_an_error() {
    let r = parse_stdout(
        r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":400,
            "result":"API Error: 400 prompt is too long","num_turns":1}"#,
    )
    .unwrap();
    assert_eq!(r.subtype, "success");
    assert!(r.is_error);
    assert_eq!(r.api_error_status, Some(400));
    assert_eq!(
        r.error_message().as_deref(),
        Some("API Error: 400 prompt is too long")
    );
}

#[test]
fn not_logged_in_is_an_error() {
    let r = parse_stdout(
        r#"{"type":"result","subtype":"success","is_error":true,
            "result":"Not logged in · Please run /login","api_error_status":null}"#,
    )
    .unwrap();
    assert!(r.is_error);
    assert_eq!(
        r.error_message().as_deref(),
        Some("Not logged in · Please run /login")
    );
}

#[test]
fn key_order_extra_keys_and_nulls_do_not_matter() {
    let r = parse_stdout(
        r#"{"modelUsage":{"b-model":{"costUSD":0.5,"outputTokens":1,"brandNew":[1,2]},
                          "a-model":{"inputTokens":100,"costUSD":0.25,"cacheReadInputTokens":null}},
            "futureField":{"nested":true},"is_error":false,"errors":null,
            "session_id":"x","subtype":"success","type":"result","total_cost_usd":9.0}"#,
    )
    .unwrap();
    assert!(!r.is_error);
    assert!(r.errors.is_empty());
    assert_eq!(r.total_tokens(), 101);
    // modelUsage wins over the estimate.
    assert!((r.cost_usd() - 0.75).abs() < 1e-12);
    assert_eq!(r.primary_model(), Some("b-model"));
}

#[test]
fn primary_model_falls_back_to_tokens_then_first_id() {
    let r = parse_stdout(
        r#"{"type":"result","subtype":"success","is_error":false,"modelUsage":{
            "z":{"inputTokens":1},"m":{"inputTokens":7},"a":{"inputTokens":7}}}"#,
    )
    .unwrap();
    assert_eq!(r.primary_model(), Some("a"));
}

#[test]
fn the_last_result_line_of_a_stream_is_found() {
    let stream = concat!(
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        "\n",
        r#"{"type":"assistant","message":{"content":[]}}"#,
        "\n",
        r#"{"type":"result","subtype":"success","is_error":false,"result":"done","num_turns":3}"#,
        "\n\n",
        "a stray line after the result\n",
    );
    let r = parse_stdout(stream).unwrap();
    assert_eq!(r.result.as_deref(), Some("done"));
    assert_eq!(r.num_turns, Some(3));
}

#[test]
fn invalid_output_is_an_error_that_says_why() {
    let empty = parse_stdout(" \n").unwrap_err();
    assert!(empty.contains("empty"), "{empty}");

    let prose =
        parse_stdout("Error: When using --print, --output-format=stream-json requires --verbose")
            .unwrap_err();
    assert!(prose.contains("not a CLI result object"), "{prose}");
    assert!(prose.contains("requires --verbose"), "{prose}");

    let wrong_type = parse_stdout(r#"{"type":"system","subtype":"init"}"#).unwrap_err();
    assert!(wrong_type.contains("\"system\""), "{wrong_type}");

    let no_type = parse_stdout(r#"{"subtype":"success","is_error":false}"#).unwrap_err();
    assert!(no_type.contains("no \"type\""), "{no_type}");

    let missing = parse_stdout(r#"{"type":"result","subtype":"success"}"#).unwrap_err();
    assert!(missing.contains("is_error"), "{missing}");

    let not_object = parse_stdout("[1,2,3]").unwrap_err();
    assert!(not_object.contains("not an object"), "{not_object}");
}
