//! A client for the Gitea REST API (`/api/v1`, `Authorization: token …`) covering what the
//! pipeline needs from a forge: branches, CI statuses, pull requests and merges, with the
//! retries Gitea's transient answers call for. Built against `shared/contracts/gitea.md`.

mod branches;
mod ci;
mod error;
pub mod forge;
mod pulls;
mod types;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Client, Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::GiteaError;
pub use forge::GiteaForge;
pub use types::{
    CiState, CiVerdict, CombinedStatus, MergeOptions, MergeOutcome, PrBranch, PullRequest,
    StatusItem,
};

/// How long one request may take before it counts as a transport failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a non-JSON error body an error keeps.
const BODY_SHOWN_CHARS: usize = 300;

/// How merges retry Gitea's transient refusals (405 while mergeability is being checked,
/// 5xx, no answer): `attempts` tries in all, waiting `base_delay`, then twice that, … up to
/// `max_delay` between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, at least 1.
    pub attempts: u32,
    /// The wait after the first failure.
    pub base_delay: Duration,
    /// The longest wait between tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six tries over about half a minute: long enough for Gitea's mergeability check.
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `attempt + 1` (`attempt` counts from 1).
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// A Gitea API client for one server and token.
#[derive(Clone, Debug)]
pub struct GiteaClient {
    /// The HTTP client, with the token header set on every request.
    http: Client,
    /// The server's base URL, e.g. `https://gitea.example.com` (the API is under `/api/v1`).
    base: Url,
    /// How merges retry.
    retry: RetryPolicy,
}

/// A raw answer: status and body.
pub(crate) struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as sent.
    pub body: String,
}

/// One request: the operation's name, method and path, for errors.
pub(crate) struct Call<'a> {
    /// The client method, e.g. `merge`.
    pub op: &'static str,
    /// The HTTP method.
    pub method: Method,
    /// Path segments under `/api/v1/repos/{owner}/{repo}/` (each is percent-encoded).
    pub segments: &'a [&'a str],
    /// Query pairs.
    pub query: &'a [(&'a str, String)],
}

impl GiteaClient {
    /// A client for the Gitea at `base_url` authenticating with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<GiteaClient, GiteaError> {
        let invalid = |what, value: &str, reason: String| GiteaError::Invalid {
            what,
            value: value.to_string(),
            reason,
        };
        let base =
            Url::parse(base_url).map_err(|e| invalid("base URL", base_url, e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid(
                "base URL",
                base_url,
                "it must be an http(s) URL".to_string(),
            ));
        }
        if token.trim().is_empty() {
            return Err(invalid("token", "", "it is empty".to_string()));
        }
        let mut auth = HeaderValue::from_str(&format!("token {token}")).map_err(|_| {
            invalid(
                "token",
                "<redacted>",
                "it has characters a header cannot carry".to_string(),
            )
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let http = Client::builder()
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| invalid("HTTP client setup", base_url, e.to_string()))?;
        Ok(GiteaClient {
            http,
            base,
            retry: RetryPolicy::default(),
        })
    }

    /// This client with merges retried by `retry`.
    pub fn with_retry(mut self, retry: RetryPolicy) -> GiteaClient {
        self.retry = retry;
        self
    }

    /// The URL of `segments` under `/api/v1/repos/{owner}/{name}/`.
    fn url(&self, repo: &str, segments: &[&str]) -> Result<Url, GiteaError> {
        let (owner, name) = split_repo(repo)?;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| GiteaError::Invalid {
                what: "base URL",
                value: self.base.to_string(),
                reason: "it cannot take a path".to_string(),
            })?
            .pop_if_empty()
            .extend(["api", "v1", "repos", owner, name])
            .extend(segments);
        Ok(url)
    }

    /// Sends one request and returns whatever Gitea answered; only getting no answer is an
    /// error here.
    pub(crate) async fn send(
        &self,
        repo: &str,
        call: &Call<'_>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<(Answer, String), GiteaError> {
        let mut url = self.url(repo, call.segments)?;
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let path = url.path().to_string();
        let transport = |source| GiteaError::Transport {
            op: call.op,
            method: method_name(&call.method),
            path: path.clone(),
            source,
        };
        let mut request = self.http.request(call.method.clone(), url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(transport)?;
        Ok((Answer { status, body }, path))
    }

    /// Sends one request, expects one of `ok` statuses, and parses the body as `T`.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        repo: &str,
        call: &Call<'_>,
        body: Option<&(impl Serialize + ?Sized)>,
        ok: &[u16],
    ) -> Result<T, GiteaError> {
        let (answer, path) = self.send(repo, call, body).await?;
        if !ok.contains(&answer.status) {
            return Err(status_error(call, path, &answer));
        }
        serde_json::from_str(&answer.body).map_err(|source| GiteaError::Decode {
            op: call.op,
            method: method_name(&call.method),
            path,
            source,
        })
    }
}

/// The error for an unexpected answer, carrying Gitea's `message`.
pub(crate) fn status_error(call: &Call<'_>, path: String, answer: &Answer) -> GiteaError {
    GiteaError::Status {
        op: call.op,
        method: method_name(&call.method),
        path,
        status: answer.status,
        message: gitea_message(&answer.body),
    }
}

/// Gitea's explanation in an error body: `message` of an `APIError`, else the start of the
/// body (a 409 merge conflict sends Gitea's conflict struct, a proxy may send HTML).
pub(crate) fn gitea_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    if let Some(message) = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str())
    {
        return message.to_string();
    }
    let text = body.trim();
    match text.char_indices().nth(BODY_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        _ => "HTTP",
    }
}

/// `owner/name` split in two, each part checked against Gitea's name rules, so a bad name
/// fails here instead of becoming a different path.
fn split_repo(repo: &str) -> Result<(&str, &str), GiteaError> {
    let invalid = |reason: &str| GiteaError::Invalid {
        what: "repo",
        value: repo.to_string(),
        reason: reason.to_string(),
    };
    let (owner, name) = repo
        .split_once('/')
        .ok_or_else(|| invalid("expected owner/name"))?;
    for part in [owner, name] {
        if part.is_empty() || part == "." || part == ".." {
            return Err(invalid("owner and name must be non-empty names"));
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "owner and name may hold only letters, digits, '-', '_' and '.'",
            ));
        }
    }
    Ok((owner, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_are_checked() {
        assert_eq!(split_repo("acme/web-app").unwrap(), ("acme", "web-app"));
        for bad in ["acme", "acme/", "/x", "a/b/c", "a/..", "a/b c"] {
            assert!(split_repo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_encode_each_segment_under_the_api() {
        let client = GiteaClient::new("http://gitea.local/sub/", "t").unwrap();
        let url = client.url("o/r", &["commits", "a/b", "status"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://gitea.local/sub/api/v1/repos/o/r/commits/a%2Fb/status"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        assert_eq!(retry.delay(1), Duration::from_millis(100));
        assert_eq!(retry.delay(2), Duration::from_millis(200));
        assert_eq!(retry.delay(3), Duration::from_millis(300));
    }

    #[test]
    fn error_messages_come_from_the_api_error_or_the_body() {
        assert_eq!(
            gitea_message(r#"{"message":"Please try again later","url":"x"}"#),
            "Please try again later"
        );
        assert!(gitea_message(r#"{"Style":"merge","StdErr":"CONFLICT"}"#).contains("CONFLICT"));
    }
}
