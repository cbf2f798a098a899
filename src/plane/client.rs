//! The HTTP side of the adapter: one request helper that authenticates with `X-API-Key`,
//! retries what Plane says is worth retrying (429 after `Retry-After`, 5xx and dropped
//! connections briefly) and reads Plane's error text, and the list helper that walks
//! `BasePaginator` pages on `next_page_results`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use orchestrator_actors::Role;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{PlaneError, plane_message};
use super::types::{PlaneComment, PlaneIssue, PlaneLabel, PlaneState};

/// Page size the client asks for. Plane accepts up to 1000, but smaller pages keep one slow
/// answer from holding a large body.
pub const DEFAULT_PER_PAGE: usize = 100;

/// The most pages one list reads before it gives up: at 100 a page, 100 000 objects, far
/// beyond any board, so hitting it means the server keeps announcing pages that never end.
pub const MAX_PAGES: usize = 1000;

/// How many times a throttled request is retried.
const THROTTLE_RETRIES: u32 = 3;

/// The longest `Retry-After` honoured; a longer one is cut to this so a caller is never
/// parked for an hour by one answer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The wait when a 429 names no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How many times a 5xx or a dropped connection is retried, and the first pause (doubled on
/// each retry).
const TRANSIENT_RETRIES: u32 = 2;
const TRANSIENT_BACKOFF: Duration = Duration::from_millis(250);

/// Budget of one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Plane workspace.
#[derive(Clone)]
pub struct PlaneClient {
    /// The HTTP client (connection pool).
    http: reqwest::Client,
    /// Base URL without a trailing slash and without `/api/v1`, e.g. `https://plane.example`.
    base: String,
    /// The workspace slug in every path.
    slug: String,
    /// The integration's main API token.
    token: String,
    /// Per-role bot tokens, so each role's comments show under its own Plane user.
    bot_tokens: HashMap<Role, String>,
    /// Page size asked for on lists.
    per_page: usize,
}

impl fmt::Debug for PlaneClient {
    // Tokens are secrets: they never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut roles: Vec<&str> = self.bot_tokens.keys().map(|r| r.as_str()).collect();
        roles.sort_unstable();
        f.debug_struct("PlaneClient")
            .field("base", &self.base)
            .field("slug", &self.slug)
            .field("bot_roles", &roles)
            .field("per_page", &self.per_page)
            .finish_non_exhaustive()
    }
}

/// One page of a Plane list.
#[derive(Deserialize)]
struct Page<T> {
    /// The objects on this page.
    results: Vec<T>,
    /// The cursor of the next page (present even on the last page).
    next_cursor: String,
    /// Whether the next page has anything: the only reliable end-of-list signal.
    next_page_results: bool,
}

/// How one failed attempt ends: whether it may be tried again.
enum Attempt {
    /// 429: wait this long (Plane's `Retry-After`, capped), then try again.
    Throttled(Duration, PlaneError),
    /// A 5xx or a lost connection: worth a short retry.
    Transient(PlaneError),
    /// Anything else: retrying cannot help.
    Final(PlaneError),
}

impl PlaneClient {
    /// A client of workspace `workspace_slug` at `api_url` (the Plane base URL; a trailing
    /// `/api/v1` is accepted too), using `token` and, for a role's comments, its bot token.
    pub fn new(
        api_url: &str,
        workspace_slug: &str,
        token: &str,
        bot_tokens: HashMap<Role, String>,
    ) -> Result<PlaneClient, PlaneError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(PlaneError::Client)?;
        let base = api_url.trim_end_matches('/');
        let base = base.strip_suffix("/api/v1").unwrap_or(base);
        Ok(PlaneClient {
            http,
            base: base.to_string(),
            slug: workspace_slug.to_string(),
            token: token.to_string(),
            bot_tokens,
            per_page: DEFAULT_PER_PAGE,
        })
    }

    /// The same client asking for `per_page` objects per list page (1 to 1000).
    pub fn with_per_page(mut self, per_page: usize) -> PlaneClient {
        self.per_page = per_page.clamp(1, 1000);
        self
    }

    /// Every state of a project, in Plane's order.
    pub async fn list_states(&self, project_id: &str) -> Result<Vec<PlaneState>, PlaneError> {
        self.list(&self.project_path(project_id, "states/")).await
    }

    /// Every label of a project.
    pub async fn list_labels(&self, project_id: &str) -> Result<Vec<PlaneLabel>, PlaneError> {
        self.list(&self.project_path(project_id, "labels/")).await
    }

    /// One work item.
    pub async fn get_issue(
        &self,
        project_id: &str,
        issue_id: &str,
    ) -> Result<PlaneIssue, PlaneError> {
        let path = self.issue_path(project_id, issue_id, "");
        self.call(Method::GET, &path, &[], None, &self.token).await
    }

    /// Moves a work item to a state of its project; the issue as Plane now has it.
    pub async fn set_issue_state(
        &self,
        project_id: &str,
        issue_id: &str,
        state_id: &str,
    ) -> Result<PlaneIssue, PlaneError> {
        let path = self.issue_path(project_id, issue_id, "");
        let body = json!({ "state": state_id });
        self.call(Method::PATCH, &path, &[], Some(&body), &self.token)
            .await
    }

    /// Every comment on a work item, oldest first as Plane lists them.
    pub async fn list_comments(
        &self,
        project_id: &str,
        issue_id: &str,
    ) -> Result<Vec<PlaneComment>, PlaneError> {
        self.list(&self.issue_path(project_id, issue_id, "comments/"))
            .await
    }

    /// Posts an HTML comment, under `author`'s bot token when one is configured (so it shows
    /// as that role's user), else under the main token.
    pub async fn create_comment(
        &self,
        project_id: &str,
        issue_id: &str,
        html: &str,
        author: Option<Role>,
    ) -> Result<PlaneComment, PlaneError> {
        let path = self.issue_path(project_id, issue_id, "comments/");
        let token = author
            .and_then(|role| self.bot_tokens.get(&role))
            .unwrap_or(&self.token);
        let body = json!({ "comment_html": html });
        self.call(Method::POST, &path, &[], Some(&body), token)
            .await
    }

    fn project_path(&self, project_id: &str, tail: &str) -> String {
        format!(
            "/api/v1/workspaces/{}/projects/{project_id}/{tail}",
            self.slug
        )
    }

    fn issue_path(&self, project_id: &str, issue_id: &str, tail: &str) -> String {
        self.project_path(project_id, &format!("issues/{issue_id}/{tail}"))
    }

    /// Every object of a paginated list, following `next_cursor` while `next_page_results`.
    async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, PlaneError> {
        let per_page = self.per_page.to_string();
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("per_page", per_page.as_str())];
            if let Some(cursor) = cursor.as_deref() {
                query.push(("cursor", cursor));
            }
            let page: Page<T> = self
                .call(Method::GET, path, &query, None, &self.token)
                .await?;
            all.extend(page.results);
            if !page.next_page_results {
                return Ok(all);
            }
            cursor = Some(page.next_cursor);
        }
        Err(PlaneError::TooManyPages {
            path: path.to_string(),
            pages: MAX_PAGES,
        })
    }

    /// One API call with its retries, decoded as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: &str,
    ) -> Result<T, PlaneError> {
        let (mut throttled, mut transient) = (0, 0);
        loop {
            let retry = match self.attempt(&method, path, query, body, token).await {
                Ok(value) => return Ok(value),
                Err(retry) => retry,
            };
            match retry {
                Attempt::Throttled(wait, _) if throttled < THROTTLE_RETRIES => {
                    throttled += 1;
                    tracing::warn!(%method, path, wait_s = wait.as_secs_f64(), "Plane throttled the request; waiting");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Transient(error) if transient < TRANSIENT_RETRIES => {
                    let wait = TRANSIENT_BACKOFF * 2u32.pow(transient);
                    transient += 1;
                    tracing::warn!(%method, path, %error, "Plane request failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Attempt::Throttled(_, error)
                | Attempt::Transient(error)
                | Attempt::Final(error) => {
                    return Err(error);
                }
            }
        }
    }

    /// One HTTP exchange.
    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: &str,
    ) -> Result<T, Attempt> {
        // A POST that may have reached Plane is never repeated: a second comment would show.
        let repeatable = *method != Method::POST;
        let transport = |source: reqwest::Error| {
            let connect = source.is_connect();
            let error = PlaneError::Transport {
                method: method.to_string(),
                path: path.to_string(),
                source,
            };
            if repeatable || connect {
                Attempt::Transient(error)
            } else {
                Attempt::Final(error)
            }
        };
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-API-Key", token);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = response.text().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Attempt::Final(PlaneError::Decode {
                    method: method.to_string(),
                    path: path.to_string(),
                    status: status.as_u16(),
                    reason: e.to_string(),
                })
            });
        }
        let error = PlaneError::Status {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            message: plane_message(&text),
        };
        Err(if status == StatusCode::TOO_MANY_REQUESTS {
            Attempt::Throttled(wait, error)
        } else if status.is_server_error() && repeatable {
            Attempt::Transient(error)
        } else {
            Attempt::Final(error)
        })
    }
}

/// The wait a 429 asks for: `Retry-After` in seconds, capped at [`MAX_RETRY_AFTER`]; DRF
/// never sends the HTTP-date form, so anything unreadable waits [`DEFAULT_RETRY_AFTER`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, |s| {
            Duration::from_secs(s).min(MAX_RETRY_AFTER)
        })
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    fn wait_for(value: Option<&'static str>) -> Duration {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
        }
        retry_after(&headers)
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        assert_eq!(wait_for(Some("7")), Duration::from_secs(7));
        assert_eq!(wait_for(Some("3600")), MAX_RETRY_AFTER);
        assert_eq!(wait_for(Some("soon")), DEFAULT_RETRY_AFTER);
        assert_eq!(wait_for(None), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn base_url_accepts_the_api_prefix_and_debug_hides_tokens() {
        let bots = HashMap::from([(Role::Developer, "dev-secret".to_string())]);
        let client =
            PlaneClient::new("http://plane.test/api/v1/", "acme", "main-secret", bots).unwrap();
        assert_eq!(client.base, "http://plane.test");
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("developer"), "{shown}");
    }
}
