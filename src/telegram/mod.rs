//! The Telegram adapter of the [`Notifier`] port: cards and alerts go to one chat through
//! the Bot API (`POST {base}/bot<TOKEN>/<method>`, JSON, HTML parse mode, link previews off),
//! and the API's answers are mapped onto [`NotifyError`] as the contract describes.
//! [`LogNotifier`] stands in when no bot token is configured.

pub mod render;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::ports::{Alert, Card, MessageId, Notice, Notifier, NotifyError};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The wait assumed when a 429 names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The Bot API's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Value,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Debug, Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

/// Posts to one chat through the Bot API.
pub struct TelegramNotifier {
    client: reqwest::Client,
    /// `{base}/bot<TOKEN>`; never logged.
    endpoint: String,
    /// A numeric chat id as a JSON number, else `@channel` as a string.
    chat_id: Value,
}

impl TelegramNotifier {
    /// A notifier for `chat_id` (a number or `@username`) through the API at `api_base`
    /// (normally [`DEFAULT_API_URL`]) as the bot `bot_token`.
    pub fn new(api_base: &str, bot_token: &str, chat_id: &str) -> Self {
        let chat_id = chat_id.trim();
        Self {
            client: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap_or_default(),
            endpoint: format!("{}/bot{}", api_base.trim_end_matches('/'), bot_token.trim()),
            chat_id: chat_id
                .parse::<i64>()
                .map_or_else(|_| json!(chat_id), |n| json!(n)),
        }
    }

    /// The bot's `@username`, from `getMe`: the token is valid.
    pub async fn bot_name(&self) -> Result<String, NotifyError> {
        let me = self.call("getMe", json!({})).await?;
        Ok(me
            .get("username")
            .and_then(Value::as_str)
            .map_or_else(|| "(no username)".to_string(), |u| format!("@{u}")))
    }

    /// Calls `method` with `body` (the chat id added); the `result` on success.
    async fn call(&self, method: &str, mut body: Value) -> Result<Value, NotifyError> {
        body["chat_id"] = self.chat_id.clone();
        let response = self
            .client
            .post(format!("{}/{method}", self.endpoint))
            .json(&body)
            .send()
            .await
            // Without the URL: it carries the token.
            .map_err(|e| NotifyError::Failed(format!("{method}: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let header_retry = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let envelope: Envelope = response.json().await.map_err(|e| {
            NotifyError::Failed(format!(
                "{method}: HTTP {status} with an unreadable body: {}",
                e.without_url()
            ))
        })?;
        if envelope.ok {
            return Ok(envelope.result);
        }
        let code = envelope.error_code.unwrap_or(status);
        let description = envelope.description.unwrap_or_default();
        Err(classify(
            code,
            &description,
            envelope
                .parameters
                .and_then(|p| p.retry_after)
                .or(header_retry),
            method,
        ))
    }

    async fn put_text(
        &self,
        method: &str,
        mut body: Value,
        text: String,
    ) -> Result<Value, NotifyError> {
        body["text"] = json!(text);
        body["parse_mode"] = json!("HTML");
        body["link_preview_options"] = json!({"is_disabled": true});
        self.call(method, body).await
    }
}

/// Maps a failed call onto the port's errors.
fn classify(code: u16, description: &str, retry_after: Option<u64>, method: &str) -> NotifyError {
    if code == 429 {
        return NotifyError::RetryAfter(
            retry_after.map_or(DEFAULT_RETRY_AFTER, Duration::from_secs),
        );
    }
    if description.starts_with("Bad Request: message is not modified") {
        return NotifyError::NotModified;
    }
    if description == "Bad Request: message to edit not found"
        || description == "Bad Request: message to delete not found"
    {
        return NotifyError::NotFound;
    }
    NotifyError::Failed(format!("{method}: {code} {description}"))
}

#[async_trait]
impl Notifier for TelegramNotifier {
    async fn send_card(&self, card: &Card) -> Result<MessageId, NotifyError> {
        let body = json!({"disable_notification": true});
        let result = self
            .put_text("sendMessage", body, render::card(card))
            .await?;
        result["message_id"]
            .as_i64()
            .map(MessageId)
            .ok_or_else(|| NotifyError::Failed("sendMessage: no message_id in the result".into()))
    }

    async fn edit_card(&self, id: MessageId, card: &Card) -> Result<(), NotifyError> {
        let body = json!({"message_id": id.0});
        self.put_text("editMessageText", body, render::card(card))
            .await
            .map(|_| ())
    }

    async fn delete_message(&self, id: MessageId) -> Result<(), NotifyError> {
        match self
            .call("deleteMessage", json!({"message_id": id.0}))
            .await
        {
            // Already gone is what was wanted.
            Ok(_) | Err(NotifyError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), NotifyError> {
        let body = json!({"disable_notification": false});
        self.put_text("sendMessage", body, render::alert(alert))
            .await
            .map(|_| ())
    }

    async fn send_notice(&self, notice: &Notice) -> Result<(), NotifyError> {
        let body = json!({"disable_notification": false});
        self.put_text("sendMessage", body, render::notice(notice))
            .await
            .map(|_| ())
    }
}

/// Logs cards and alerts instead of posting them (no bot token configured).
#[derive(Debug, Default)]
pub struct LogNotifier {
    last_id: AtomicI64,
}

impl LogNotifier {
    /// A log-only notifier whose first card is message 1.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    async fn send_card(&self, card: &Card) -> Result<MessageId, NotifyError> {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        info!(task = %card.work_item_id, stage = %card.stage, state = ?card.state, message = id, "tracker card (log only)");
        Ok(MessageId(id))
    }

    async fn edit_card(&self, id: MessageId, card: &Card) -> Result<(), NotifyError> {
        info!(task = %card.work_item_id, stage = %card.stage, state = ?card.state, message = id.0, "tracker card updated (log only)");
        Ok(())
    }

    async fn delete_message(&self, _id: MessageId) -> Result<(), NotifyError> {
        Ok(())
    }

    async fn send_alert(&self, alert: &Alert) -> Result<(), NotifyError> {
        info!(task = %alert.work_item_id, kind = alert.kind.as_str(), text = %alert.text, "tracker alert (log only)");
        Ok(())
    }

    async fn send_notice(&self, notice: &Notice) -> Result<(), NotifyError> {
        info!(topic = %notice.topic, text = %notice.text, "service notice (log only)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_onto_the_port() {
        assert_eq!(
            classify(429, "Too Many Requests: retry after 7", Some(7), "m"),
            NotifyError::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            classify(429, "", None, "m"),
            NotifyError::RetryAfter(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(
            classify(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                None,
                "m"
            ),
            NotifyError::NotModified
        );
        assert_eq!(
            classify(400, "Bad Request: message to edit not found", None, "m"),
            NotifyError::NotFound
        );
        assert_eq!(
            classify(
                403,
                "Forbidden: bot was blocked by the user",
                None,
                "sendMessage"
            ),
            NotifyError::Failed("sendMessage: 403 Forbidden: bot was blocked by the user".into())
        );
    }
}
