//! Webhook deliveries as Gitea's `deliver.go` sends them: the payload bytes, the header block
//! with its HMAC signatures, and the POST to the receiver; plus the payload builders for the
//! events the orchestrator listens to.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::model::{Pull, Repo, Status};
use super::wire::{self, fake_user, go_indent, payload_commit, repository};

/// Where the fake sends webhooks, and the secret it signs them with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The receiver's URL, e.g. `http://127.0.0.1:4000/webhooks/gitea`.
    pub url: String,
    /// The hook's secret; empty sends empty signatures, as Gitea does.
    pub secret: String,
}

/// What the receiver answered to one delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The `X-Gitea-Event` sent.
    pub event: String,
    /// The `X-Gitea-Event-Type` sent.
    pub event_type: String,
    /// The exact bytes sent.
    pub body: Vec<u8>,
    /// The receiver's HTTP status; `None` when it could not be reached.
    pub status: Option<u16>,
    /// The receiver's answer body, or the transport error when it could not be reached.
    pub response: String,
}

impl Delivery {
    /// The sent body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Why an emitter could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No target was configured with the fake's config or `set_webhook`.
    #[error("gitea fake: no webhook target is configured")]
    NoTarget,
    /// The emitter names a repo or pull request the fake does not have.
    #[error("gitea fake: {0}")]
    Unknown(String),
}

/// How long the fake waits for a receiver; Gitea's default `[webhook] DELIVER_TIMEOUT` is 5 s.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(5);

/// The signed header block and body of one delivery of `payload`.
pub fn signed(
    secret: &str,
    uuid: &str,
    event: &str,
    event_type: &str,
    payload: &Value,
) -> (Vec<(String, String)>, Vec<u8>) {
    let body = go_indent(payload).into_bytes();
    let (sha1, sha256) = if secret.is_empty() {
        (String::new(), String::new())
    } else {
        (hmac_sha1_hex(secret, &body), hmac_sha256_hex(secret, &body))
    };
    let headers = [
        ("Content-Type", "application/json".to_string()),
        ("User-Agent", "GiteaServer".to_string()),
        ("X-Gitea-Delivery", uuid.to_string()),
        ("X-Gitea-Event", event.to_string()),
        ("X-Gitea-Event-Type", event_type.to_string()),
        ("X-Gitea-Signature", sha256.clone()),
        ("X-Gogs-Delivery", uuid.to_string()),
        ("X-Gogs-Event", event.to_string()),
        ("X-Gogs-Event-Type", event_type.to_string()),
        ("X-Gogs-Signature", sha256.clone()),
        ("X-Hub-Signature", format!("sha1={sha1}")),
        ("X-Hub-Signature-256", format!("sha256={sha256}")),
        ("X-GitHub-Delivery", uuid.to_string()),
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Event-Type", event_type.to_string()),
    ];
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    (headers, body)
}

/// hex(HMAC-SHA256(secret, body)), the `X-Gitea-Signature` value.
pub fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// hex(HMAC-SHA1(secret, body)), the `X-Hub-Signature` value after `sha1=`.
fn hmac_sha1_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs `body` with `headers` to `url` and records what came back.
pub async fn send(url: &str, headers: &[(String, String)], body: Vec<u8>) -> Delivery {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or_else(String::new, |(_, v)| v.clone())
    };
    let mut delivery = Delivery {
        event: find("X-Gitea-Event"),
        event_type: find("X-Gitea-Event-Type"),
        body: body.clone(),
        status: None,
        response: String::new(),
    };
    let client = match reqwest::Client::builder().timeout(DELIVER_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            delivery.response = e.to_string();
            return delivery;
        }
    };
    let mut request = client.post(url).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send().await {
        Ok(response) => {
            delivery.status = Some(response.status().as_u16());
            delivery.response = response.text().await.unwrap_or_default();
        }
        Err(e) => delivery.response = e.to_string(),
    }
    delivery
}

/// `CommitStatusPayload` (no `branches` field: Gitea does not send one).
pub fn status_payload(base_url: &str, repo: &Repo, status: &Status) -> Value {
    json!({
        "commit": payload_commit(base_url, &repo.full_name, &status.sha, "", &status.created_at),
        "context": status.context,
        "created_at": status.created_at,
        "description": status.description,
        "id": status.id,
        "repository": repository(base_url, &repo.full_name, repo.id),
        "sender": fake_user(base_url),
        "sha": status.sha,
        "state": status.state,
        "target_url": status.target_url,
        "updated_at": status.created_at
    })
}

/// `PullRequestPayload` with `action` about `pull`; `review` is `{type, content}` for reviews.
pub fn pull_request_payload(
    base_url: &str,
    repo: &Repo,
    pull: &Pull,
    action: &str,
    review: Option<Value>,
) -> Value {
    let reviewer = review.as_ref().map_or(Value::Null, |_| fake_user(base_url));
    json!({
        "action": action,
        "number": pull.number,
        "pull_request": repo.pull_json(base_url, pull),
        "requested_reviewer": reviewer,
        "repository": repository(base_url, &repo.full_name, repo.id),
        "sender": fake_user(base_url),
        "commit_id": "",
        "review": review
    })
}

/// `PushPayload` for moving `branch` from `before` to `after`.
pub fn push_payload(base_url: &str, repo: &Repo, branch: &str, before: &str, after: &str) -> Value {
    let message = repo
        .bare
        .as_ref()
        .and_then(|bare| super::git::commit_info(bare, after))
        .map(|(subject, _)| subject)
        .unwrap_or_default();
    let deleted = after.bytes().all(|b| b == b'0');
    let head = (!deleted).then(|| {
        payload_commit(
            base_url,
            &repo.full_name,
            after,
            &message,
            &wire::now_rfc3339(),
        )
    });
    let commits: Vec<Value> = head.iter().cloned().collect();
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "compare_url": format!("{base_url}/{}/compare/{before}...{after}", repo.full_name),
        "total_commits": commits.len(),
        "commits": commits,
        "head_commit": head,
        "repository": repository(base_url, &repo.full_name, repo.id),
        "pusher": fake_user(base_url),
        "sender": fake_user(base_url)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_exact_body_and_follow_the_header_table() {
        let (headers, body) = signed(
            "s3cret",
            "u-1",
            "pull_request_approved",
            "pull_request_review_approved",
            &json!({"a": 1}),
        );
        assert_eq!(body, b"{\n  \"a\": 1\n}");
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let sig = hmac_sha256_hex("s3cret", &body);
        assert_eq!(get("X-Gitea-Signature"), Some(sig.as_str()));
        assert_eq!(get("X-Gogs-Signature"), Some(sig.as_str()));
        assert_eq!(
            get("X-Hub-Signature-256"),
            Some(format!("sha256={sig}").as_str())
        );
        assert!(get("X-Hub-Signature").is_some_and(|v| v.starts_with("sha1=") && v.len() == 45));
        assert_eq!(get("X-GitHub-Event"), Some("pull_request_approved"));
        assert_eq!(
            get("X-Gitea-Event-Type"),
            Some("pull_request_review_approved")
        );
    }

    #[test]
    fn an_empty_secret_sends_empty_signatures() {
        let (headers, _) = signed("", "u-1", "push", "push", &json!({}));
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("X-Gitea-Signature"), Some(""));
        assert_eq!(get("X-Hub-Signature-256"), Some("sha256="));
    }
}
