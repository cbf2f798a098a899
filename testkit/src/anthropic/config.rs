//! What a test can tell the stub: the verdicts its role artifacts carry, how it answers
//! streaming requests, and the API faults it injects instead of answering.

use std::path::PathBuf;
use std::time::Duration;

/// How an [`AnthropicStub`](super::AnthropicStub) behaves. `StubConfig::default()` plays
/// every role with a passing verdict and answers streaming requests with SSE.
#[derive(Clone, Debug, Default)]
pub struct StubConfig {
    /// Answer plain JSON Messages even when the request asks for `"stream": true`. The CLI
    /// then repeats the request without `stream` (see the contract), doubling the requests.
    pub force_json: bool,
    /// The verdicts written into the role artifacts' front matter.
    pub verdicts: Verdicts,
    /// Working directory used when a request names none (the CLI omits it under
    /// `--system-prompt`). A directory named by the request wins.
    pub working_dir: Option<PathBuf>,
    /// A fault applied to every `POST /v1/messages` from the start, as if
    /// [`AnthropicStub::set_default_fault`](super::AnthropicStub::set_default_fault) had been
    /// called before the first request.
    pub default_fault: Option<Fault>,
}

/// The front-matter values the stub writes for the roles whose gate reads a verdict. Values
/// are written verbatim, so a test can also hand the gates something they cannot read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdicts {
    /// The ADR's `verdict:`; `CONFLICT` sends the task back to analysis, anything else passes.
    pub architect: String,
    /// `12-review.md`'s `verdict:`: `APPROVED` or `REQUEST_CHANGES` (which adds P0/P1
    /// findings to the body).
    pub reviewer: String,
    /// `13-test-report.md`'s `result:`: `PASS` or `FAIL` (which adds a `## Failed` section).
    pub tester: String,
    /// `15-staging-log.md`'s `staging_status:`: `SUCCESS` or `FAILED`.
    pub staging: String,
    /// `14-deploy-log.md`'s `deploy_status:`: `SUCCESS` or `FAILED`.
    pub deploy: String,
}

impl Default for Verdicts {
    /// Every gate passes.
    fn default() -> Self {
        Self {
            architect: "ACCEPTED".into(),
            reviewer: "APPROVED".into(),
            tester: "PASS".into(),
            staging: "SUCCESS".into(),
            deploy: "SUCCESS".into(),
        }
    }
}

/// An API failure the stub answers with instead of a Message. Faults apply to
/// `POST /v1/messages` only; bodies follow the API's error shape
/// `{"type":"error","error":{"type":…,"message":…},"request_id":"req_…"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 `rate_limit_error` with a `retry-after: <retry_after_s>` header.
    RateLimited {
        /// Seconds announced in `retry-after`.
        retry_after_s: u64,
    },
    /// A subscription usage limit: 429 `rate_limit_error` whose message is
    /// [`usage_limit_message`], with `retry-after` set to the seconds left until the reset
    /// (0 when it is past) and the `anthropic-ratelimit-unified-status: rejected` /
    /// `anthropic-ratelimit-unified-reset: <unix>` headers the API sends with such limits.
    UsageLimit {
        /// When the limit resets, in Unix seconds.
        resets_at_unix: i64,
    },
    /// 529 `overloaded_error`.
    Overloaded,
    /// 500 `api_error`.
    ServerError,
    /// 400 `invalid_request_error` carrying `message`.
    BadRequest {
        /// The error message, which the CLI reports as `API Error: 400 <message>`.
        message: String,
    },
    /// 401 `authentication_error`. The CLI retries it silently for minutes, so a run facing
    /// it must be bounded by a process timeout.
    Unauthorized,
    /// Waits `delay`, then answers normally.
    Slow {
        /// How long to wait before answering.
        delay: Duration,
    },
}

/// Start of every [`Fault::UsageLimit`] message, for tests and classifiers to match on.
pub const USAGE_LIMIT_PREFIX: &str = "Claude AI usage limit reached";

/// The message of a [`Fault::UsageLimit`] 429:
/// `Claude AI usage limit reached; your limit will reset at <RFC 3339 UTC> (unix <seconds>)`.
pub fn usage_limit_message(resets_at_unix: i64) -> String {
    let when = u64::try_from(resets_at_unix)
        .ok()
        .map(|secs| std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .map_or_else(
            || "before 1970".to_string(),
            |at| humantime::format_rfc3339_seconds(at).to_string(),
        );
    format!("{USAGE_LIMIT_PREFIX}; your limit will reset at {when} (unix {resets_at_unix})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_limit_message_names_the_reset_time_twice() {
        assert_eq!(
            usage_limit_message(1_795_366_800),
            "Claude AI usage limit reached; your limit will reset at 2026-11-22T17:00:00Z \
             (unix 1795366800)"
        );
    }
}
