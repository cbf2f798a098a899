//! Classifies a failed agent run for the retry rules
//! ([`orchestrator_actors::domain::resilience`]): a rate limit or an overloaded API is transient
//! (with the retry-after it stated, if any), a usage limit that says when it resets parks
//! the queue, everything else is permanent.
//!
//! The CLI's structured fields decide first: `terminal_reason` (`max_turns`,
//! `prompt_too_long` end a run for its own reasons) and `api_error_status` (429, 529, 503 are
//! the API asking for patience; any other status is not a limit). Text is read only where the
//! CLI or the API speak — the result's text when it carries an API error status (the CLI puts
//! the API's message there), and the log's lines that are the CLI's API error lines or the
//! API's error bodies — never what the agent wrote: an agent quoting a limit message must not
//! park the account. Which field of CLI 2.1.197 carries what is in `docs/operations.md`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orchestrator_actors::domain::resilience::FailureClass;

use super::result::CliResult;

/// HTTP statuses of the Messages API that mean "try again later".
const TRANSIENT_STATUSES: [u16; 3] = [429, 529, 503];

/// `terminal_reason`s that end a run for reasons of its own, never an API limit.
const OWN_ENDS: [&str; 2] = ["max_turns", "prompt_too_long"];

/// How the CLI starts the lines it writes about an API failure (its result text, its
/// stderr): `API Error: 529 …`, `API Error: Request rejected (429) · …`, and the
/// subscription form `Claude AI usage limit reached|<unix seconds>`.
const API_ERROR_LINE_STARTS: [&str; 2] = ["API Error", "Claude AI usage limit reached"];

/// Phrases (lower case) that mean the API was rate limited or overloaded.
const TRANSIENT_PHRASES: [&str; 9] = [
    "rate limit",
    "rate_limit",
    "ratelimit",
    "overloaded",
    "too many requests",
    "api error: 429",
    "api error: 529",
    "api error: 503",
    "\"status\":429",
];

/// Phrases (lower case) that mean the account's usage limit was reached.
const USAGE_LIMIT_PHRASES: [&str; 4] = [
    "usage limit",
    "limit reached",
    "hit your limit",
    "limit will reset",
];

/// Whether `line` is one the CLI or the API wrote about an API failure: it starts like the
/// CLI's API error lines, or it is the API's error body `{"type":"error","error":{…}}`.
fn is_api_error_line(line: &str) -> bool {
    let line = line.trim_start();
    if API_ERROR_LINE_STARTS.iter().any(|s| line.starts_with(s)) {
        return true;
    }
    line.starts_with('{')
        && serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
            v.get("type").and_then(|t| t.as_str()) == Some("error")
                && v.pointer("/error/type").is_some_and(|t| t.is_string())
        })
}

/// What this run's CLI and API said about an API failure, and nothing the agent wrote.
fn api_error_text(result: Option<&CliResult>, log_tail: &str) -> String {
    let mut text = String::new();
    if let Some(result) = result.filter(|r| r.is_error) {
        let message = result.error_message().unwrap_or_default();
        // With an API error status the CLI writes the API's message as the result; without
        // one, only a line that starts like its own API error lines counts.
        if result.api_error_status.is_some() || is_api_error_line(&message) {
            text.push_str(&message);
            text.push('\n');
        }
    }
    for line in log_tail.lines().filter(|l| is_api_error_line(l)) {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Classifies a failed run from its result (if it printed one), its log tail, and the time
/// `now` (a usage limit's reset time must lie ahead of it).
pub fn classify(result: Option<&CliResult>, log_tail: &str, now: SystemTime) -> FailureClass {
    if result
        .and_then(|r| r.terminal_reason.as_deref())
        .is_some_and(|reason| OWN_ENDS.contains(&reason))
    {
        return FailureClass::Permanent;
    }
    let status = result.and_then(|r| r.api_error_status);
    let lower = api_error_text(result, log_tail).to_lowercase();
    let limit_possible = status.is_none_or(|s| s == 429);
    if limit_possible
        && USAGE_LIMIT_PHRASES.iter().any(|p| lower.contains(p))
        && let Some(resets_at) = reset_time(&lower, now)
    {
        return FailureClass::UsageLimit { resets_at };
    }
    let transient = match status {
        Some(status) => TRANSIENT_STATUSES.contains(&status),
        None => TRANSIENT_PHRASES.iter().any(|p| lower.contains(p)),
    };
    if transient {
        return FailureClass::Transient {
            retry_after: retry_after(&lower),
        };
    }
    FailureClass::Permanent
}

/// A stated retry-after in seconds: `retry-after: 30`, `retry_after=30`, `"retry-after":"30"`,
/// `retry after 30 seconds`. The last mention wins (the latest attempt's answer).
fn retry_after(lower: &str) -> Option<Duration> {
    let mut found = None;
    for marker in ["retry-after", "retry_after", "retry after"] {
        let mut rest = lower;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let value = rest.trim_start_matches(|c: char| {
                c.is_whitespace() || matches!(c, ':' | '=' | '"' | '\'')
            });
            if let Some(seconds) = leading_number(value).filter(|s| *s <= 86_400.0) {
                found = Some(Duration::from_secs_f64(seconds));
            }
        }
    }
    found
}

/// When a usage limit resets: `resets at <RFC 3339>`, `resets at <unix seconds>`,
/// `reset: <…>`, or the CLI's `…limit reached|<unix seconds>` form. The time must lie ahead
/// of `now`; a reset time nobody can read is not a usage-limit classification (the run is
/// then judged by its other evidence).
fn reset_time(lower: &str, now: SystemTime) -> Option<SystemTime> {
    let mut candidates = Vec::new();
    if let Some(at) = lower.find("limit reached|") {
        candidates.push(&lower[at + "limit reached|".len()..]);
    }
    for marker in ["resets at", "reset at", "resets:", "resets"] {
        if let Some(at) = lower.find(marker) {
            candidates.push(&lower[at + marker.len()..]);
        }
    }
    candidates.into_iter().find_map(|text| {
        let token: String = text
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '+' | '.'))
            .collect();
        let token = token.trim_end_matches('.');
        let when = if token.chars().all(|c| c.is_ascii_digit()) && token.len() >= 9 {
            UNIX_EPOCH + Duration::from_secs(token.parse().ok()?)
        } else {
            humantime::parse_rfc3339_weak(&token.to_uppercase()).ok()?
        };
        (when > now).then_some(when)
    })
}

/// The number at the start of `text` (digits with an optional fraction).
fn leading_number(text: &str) -> Option<f64> {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(text.len(), |(i, _)| i);
    text[..end].trim_end_matches('.').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::result::parse_stdout;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn result(json: &str) -> CliResult {
        parse_stdout(json).unwrap()
    }

    #[test]
    fn api_429_and_529_are_transient_with_the_stated_retry_after() {
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,
                "result":"API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Rate limited; retry-after: 7\"}}"}"#,
        );
        assert_eq!(
            classify(Some(&r), "", now()),
            FailureClass::Transient {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":529,
                "result":"API Error: 529 Overloaded"}"#,
        );
        assert_eq!(
            classify(Some(&r), "", now()),
            FailureClass::Transient { retry_after: None }
        );
    }

    #[test]
    fn the_log_s_api_error_lines_alone_can_show_a_transient_failure() {
        let tail = "starting\nAPI Error: 429 Too Many Requests (retry after 12 seconds)\n";
        assert_eq!(
            classify(None, tail, now()),
            FailureClass::Transient {
                retry_after: Some(Duration::from_secs(12))
            }
        );
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify(None, body, now()),
            FailureClass::Transient { retry_after: None }
        );
    }

    #[test]
    fn an_agent_that_merely_quotes_a_limit_message_is_not_parked() {
        let limit = testkit_limit_message();
        // The agent's own final words (no API error status) quote it.
        let r = result(&format!(
            r#"{{"type":"result","subtype":"success","is_error":true,"api_error_status":null,
                "result":"I could not finish. The notes say: {limit}","terminal_reason":"completed"}}"#
        ));
        assert_eq!(classify(Some(&r), "", now()), FailureClass::Permanent);
        // Out of turns after writing a file that quotes it; the log holds the result line
        // (the agent's text inside it) and a quoted line from elsewhere.
        let r = result(
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,
                "errors":["Reached maximum number of turns (40)"],"terminal_reason":"max_turns"}"#,
        );
        let tail = format!(
            "{{\"type\":\"result\",\"result\":\"{limit}\"}}\n> {limit}\nwrote docs/limits.md: {limit}\n"
        );
        assert_eq!(classify(Some(&r), &tail, now()), FailureClass::Permanent);
        // No result at all: only API error lines count, and a quote is not one.
        assert_eq!(classify(None, &tail, now()), FailureClass::Permanent);
        // The same words from the CLI itself do park.
        assert!(matches!(
            classify(
                None,
                &format!("API Error: Request rejected (429) · {limit}"),
                now()
            ),
            FailureClass::UsageLimit { .. }
        ));
    }

    /// The usage-limit message the test stub sends, with a reset an hour after [`now`].
    fn testkit_limit_message() -> String {
        orchestrator_testkit::anthropic::usage_limit_message(1_800_003_600)
    }

    #[test]
    fn a_structured_end_or_status_outweighs_words() {
        // A 400 whose message mentions a rate limit is not a limit.
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":400,
                "result":"API Error: 400 your prompt mentions a rate limit"}"#,
        );
        assert_eq!(classify(Some(&r), "", now()), FailureClass::Permanent);
        // A run that ended for its own reasons is never a limit, whatever the log says.
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":null,
                "result":"Prompt is too long","terminal_reason":"prompt_too_long"}"#,
        );
        assert_eq!(
            classify(Some(&r), "API Error: 529 Overloaded", now()),
            FailureClass::Permanent
        );
    }

    #[test]
    fn bad_requests_auth_timeouts_and_garbage_are_permanent() {
        let r = result(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":400,
                "result":"API Error: 400 prompt is too long"}"#,
        );
        assert_eq!(classify(Some(&r), "", now()), FailureClass::Permanent);
        let r = result(
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,
                "errors":["Reached maximum number of turns (40)"]}"#,
        );
        assert_eq!(classify(Some(&r), "", now()), FailureClass::Permanent);
        assert_eq!(
            classify(None, "timeout after 1800 s", now()),
            FailureClass::Permanent
        );
        assert_eq!(
            classify(None, "not json at all: {{{", now()),
            FailureClass::Permanent
        );
    }

    #[test]
    fn a_usage_limit_with_a_reset_time_parks_until_then() {
        let at = now() + Duration::from_secs(3600);
        let stamp = humantime::format_rfc3339_seconds(at).to_string();
        let r = result(&format!(
            r#"{{"type":"result","subtype":"success","is_error":true,"api_error_status":429,
                "result":"API Error: 429 usage limit reached; resets at {stamp}"}}"#
        ));
        assert_eq!(
            classify(Some(&r), "", now()),
            FailureClass::UsageLimit { resets_at: at }
        );
        // The CLI's own `…limit reached|<unix seconds>` form.
        let epoch = 1_800_000_000u64 + 7200;
        assert_eq!(
            classify(
                None,
                &format!("Claude AI usage limit reached|{epoch}"),
                now()
            ),
            FailureClass::UsageLimit {
                resets_at: UNIX_EPOCH + Duration::from_secs(epoch)
            }
        );
    }

    #[test]
    fn a_usage_limit_without_a_readable_future_reset_is_judged_otherwise() {
        // Reset already past: just a rate limit.
        let past = humantime::format_rfc3339_seconds(now() - Duration::from_secs(60));
        assert_eq!(
            classify(
                None,
                &format!("API Error: 429 usage limit reached, resets at {past}"),
                now()
            ),
            FailureClass::Transient { retry_after: None }
        );
        // No time at all, no transient marker: permanent.
        assert_eq!(
            classify(None, "your usage limit is configured by an admin", now()),
            FailureClass::Permanent
        );
    }

    /// Every result the pinned real CLI printed for an API failure, recorded against the
    /// test stub (`testkit/fixtures/cli-2.1.197/`), lands in the right class.
    #[test]
    fn the_real_cli_results_are_classified() {
        use orchestrator_testkit::claude::cli_fixture;
        let class = |case: &str, now: SystemTime| {
            let stdout = cli_fixture(case);
            let result = parse_stdout(&stdout).unwrap_or_else(|e| panic!("{case}: {e}"));
            classify(Some(&result), "", now)
        };
        for case in [
            "rate-limited-retry-after-2",
            "rate-limited-retry-after-2-max-retries-0",
            "rate-limited-retry-after-30-max-retries-1",
            "rate-limited-retry-after-120-max-retries-2",
            "overloaded",
            "overloaded-max-retries-0",
        ] {
            assert!(
                matches!(class(case, now()), FailureClass::Transient { .. }),
                "{case}"
            );
        }
        for case in [
            "bad-request",
            "bad-request-prompt-too-long",
            "unauthorized-max-retries-0",
            "server-error-max-retries-0",
        ] {
            assert_eq!(class(case, now()), FailureClass::Permanent, "{case}");
        }
        // Seen before its reset time, a usage limit parks; after it, it is a rate limit.
        for case in ["usage-limit", "usage-limit-resets-in-30s-max-retries-2"] {
            assert!(
                matches!(class(case, UNIX_EPOCH), FailureClass::UsageLimit { .. }),
                "{case}"
            );
            assert!(
                matches!(class(case, now()), FailureClass::Transient { .. }),
                "{case}"
            );
        }
    }
}
