//! Webhook deliveries as Plane's `webhook_send_task` makes them: the envelope in its key
//! order, the body as Python's `json.dumps` writes it, the `X-Plane-*` headers and an
//! HMAC-SHA256 of exactly those bytes. Tests can also build a delivery and send it (or a
//! tampered copy) themselves.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::model::{CommentRec, PlaneUser};
use super::pyjson::{Py, python_json_ordered};
use super::{PlaneFake, lock};

/// Why a webhook could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Neither the config nor [`PlaneFake::set_webhook_target`] named a target.
    #[error("plane fake: no webhook target URL is set")]
    NoTarget,
    /// The issue id is not on the board.
    #[error("plane fake: no issue {0}")]
    UnknownIssue(String),
    /// The issue's project has no state of that name.
    #[error("plane fake: the project of issue {issue} has no state named {name:?}")]
    UnknownState {
        /// The issue being moved.
        issue: String,
        /// The state name asked for.
        name: String,
    },
    /// The actor id is neither a token's user nor one added with [`PlaneFake::add_user`].
    #[error("plane fake: no user {0}")]
    UnknownUser(String),
    /// The POST itself failed (connection refused, timeout).
    #[error("plane fake: POST {url} failed: {source}")]
    Send {
        /// The target.
        url: String,
        /// What went wrong.
        source: reqwest::Error,
    },
}

/// A delivery ready to POST: Plane's headers and the exact body bytes they sign.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `Content-Type`, `User-Agent`, `X-Plane-Delivery`, `X-Plane-Event` and, with a
    /// secret, `X-Plane-Signature`, in that order.
    pub headers: Vec<(String, String)>,
    /// The Python-style JSON body.
    pub body: Vec<u8>,
}

/// What the receiver answered to a delivery.
#[derive(Clone, Debug)]
pub struct DeliveryReply {
    /// Its HTTP status.
    pub status: u16,
    /// Its body as text.
    pub body: String,
}

impl Delivery {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The same delivery with a header replaced (or added), e.g. a forged signature.
    pub fn with_header(mut self, name: &str, value: &str) -> Delivery {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// POSTs it to `url` as Plane does (30 s timeout) and returns the answer.
    pub async fn send(&self, url: &str) -> Result<DeliveryReply, WebhookError> {
        let failed = |source| WebhookError::Send {
            url: url.to_string(),
            source,
        };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(failed)?;
        let mut request = client.post(url).body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(failed)?;
        Ok(DeliveryReply { status, body })
    }
}

/// Lowercase hex HMAC-SHA256 of `body` under `secret`: `X-Plane-Signature`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|e| unreachable!("HMAC takes keys of any length: {e}"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl PlaneFake {
    /// A delivery of `body` for `event` (`issue`, `issue_comment`, …) with a fresh
    /// `X-Plane-Delivery` id, signed with the fake's secret.
    pub fn signed_delivery(&self, event: &str, body: &Py) -> Delivery {
        let body = python_json_ordered(body).into_bytes();
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), "Autopilot".to_string()),
            (
                "X-Plane-Delivery".to_string(),
                uuid::Uuid::new_v4().to_string(),
            ),
            ("X-Plane-Event".to_string(), event.to_string()),
        ];
        let secret = &self.shared.webhook_secret;
        if !secret.is_empty() {
            headers.push(("X-Plane-Signature".to_string(), signature(secret, &body)));
        }
        Delivery { headers, body }
    }

    /// The envelope Plane wraps every event in, keys in its order.
    pub fn envelope(&self, event: &str, action: &str, data: Py, activity: Py) -> Py {
        Py::object([
            ("event", Py::from(json!(event))),
            ("action", json!(action).into()),
            ("webhook_id", json!(self.shared.webhook_id).into()),
            ("workspace_id", json!(self.shared.workspace_id).into()),
            ("data", data),
            ("activity", activity),
        ])
    }

    /// The `issue`/`updated` body for a change of `field` made by `actor`: `data` is the
    /// issue as it is now, expanded.
    pub fn issue_updated_body(
        &self,
        issue_id: &str,
        field: &str,
        old_value: Value,
        new_value: Value,
        actor: &PlaneUser,
    ) -> Result<Py, WebhookError> {
        let data = {
            let board = lock(&self.shared.board);
            let issue = board
                .issue(issue_id)
                .ok_or_else(|| WebhookError::UnknownIssue(issue_id.to_string()))?;
            board.expanded(issue, &self.shared.workspace_id)
        };
        let activity = activity(Some(field), old_value, new_value, actor);
        Ok(self.envelope("issue", "updated", data, activity))
    }

    /// POSTs an `issue`/`updated` event for `field` (`"state"` from the API, `"state_id"`
    /// from the UI) to the webhook target.
    pub async fn emit_issue_updated(
        &self,
        issue_id: &str,
        field: &str,
        old_value: Value,
        new_value: Value,
        actor: &PlaneUser,
    ) -> Result<DeliveryReply, WebhookError> {
        let body = self.issue_updated_body(issue_id, field, old_value, new_value, actor)?;
        self.deliver("issue", &body).await
    }

    /// Moves an issue to the state called `state_name`, as `actor_user_id` would on the
    /// board, and POSTs the `issue`/`updated` event with state UUIDs as old and new values.
    pub async fn move_issue(
        &self,
        issue_id: &str,
        state_name: &str,
        actor_user_id: &str,
        field: &str,
    ) -> Result<DeliveryReply, WebhookError> {
        let actor = self
            .shared
            .user(actor_user_id)
            .ok_or_else(|| WebhookError::UnknownUser(actor_user_id.to_string()))?;
        let (old, new) = {
            let mut board = lock(&self.shared.board);
            let project = board
                .issue(issue_id)
                .map(|i| i.project.clone())
                .ok_or_else(|| WebhookError::UnknownIssue(issue_id.to_string()))?;
            let new = board
                .state_named(&project, state_name)
                .map(|s| s.id.clone())
                .ok_or_else(|| WebhookError::UnknownState {
                    issue: issue_id.to_string(),
                    name: state_name.to_string(),
                })?;
            let old = board
                .set_state(issue_id, &new)
                .ok_or_else(|| WebhookError::UnknownIssue(issue_id.to_string()))?;
            (old, new)
        };
        self.emit_issue_updated(issue_id, field, json!(old), json!(new), &actor)
            .await
    }

    /// POSTs the `issue_comment`/`created` event for a comment, as its author.
    pub async fn emit_comment_created(
        &self,
        comment: &CommentRec,
    ) -> Result<DeliveryReply, WebhookError> {
        let actor = self
            .shared
            .user(&comment.actor)
            .ok_or_else(|| WebhookError::UnknownUser(comment.actor.clone()))?;
        let data = comment.api(&self.shared.workspace_id);
        let activity = activity(None, Value::Null, Value::Null, &actor);
        let body = self.envelope("issue_comment", "created", data, activity);
        self.deliver("issue_comment", &body).await
    }

    /// Signs `body` and POSTs it to the webhook target.
    pub async fn deliver(&self, event: &str, body: &Py) -> Result<DeliveryReply, WebhookError> {
        let url = lock(&self.shared.webhook_url)
            .clone()
            .ok_or(WebhookError::NoTarget)?;
        self.signed_delivery(event, body).send(&url).await
    }
}

/// `webhook_activity`'s `activity` object.
fn activity(field: Option<&str>, old_value: Value, new_value: Value, actor: &PlaneUser) -> Py {
    Py::object([
        ("field", Py::from(json!(field))),
        ("new_value", new_value.into()),
        ("old_value", old_value.into()),
        ("actor", actor.lite()),
        ("old_identifier", Value::Null.into()),
        ("new_identifier", Value::Null.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",
        //   b"The quick brown fox jumps over the lazy dog",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
