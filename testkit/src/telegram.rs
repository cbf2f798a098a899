//! A loopback fake of the Telegram Bot API for one bot: `sendMessage`, `editMessageText` and
//! `deleteMessage` (method names case-insensitive) on `POST /bot<TOKEN>/<method>` with a JSON
//! body. It keeps the chat's messages with their edit history, validates HTML loosely the
//! way Telegram does, answers with the contract's exact error descriptions (HTTP status =
//! `error_code`), injects flood control on demand and records every request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::{Loopback, Server};

/// Telegram's exact "not modified" description.
pub const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
/// Editing a message that does not exist (or was deleted).
pub const EDIT_NOT_FOUND: &str = "Bad Request: message to edit not found";
/// Deleting a message that does not exist (or was deleted).
pub const DELETE_NOT_FOUND: &str = "Bad Request: message to delete not found";

/// Tags Telegram's HTML parse mode knows.
const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// One message of the chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TgMessage {
    /// Its id.
    pub id: i64,
    /// Its current text, as sent (with markup).
    pub text: String,
    /// The `parse_mode` it was last sent or edited with.
    pub parse_mode: Option<String>,
    /// Whether its last send or edit disabled link previews.
    pub link_preview_disabled: bool,
    /// Whether it was sent silently.
    pub disable_notification: bool,
    /// Its earlier texts, oldest first.
    pub edits: Vec<String>,
    /// Deleted (through the API or by [`TelegramFake::forget_message`]).
    pub deleted: bool,
}

/// One request the fake received, and what it answered.
#[derive(Clone, Debug)]
pub struct TgRequest {
    /// When it arrived.
    pub at: Instant,
    /// The method as spelled in the path.
    pub method: String,
    /// The JSON body (`Null` when not JSON).
    pub body: Value,
    /// The HTTP status answered.
    pub status: u16,
    /// The error description answered, if any.
    pub description: Option<String>,
}

impl TgRequest {
    /// The method, lower-cased.
    pub fn method_lower(&self) -> String {
        self.method.to_ascii_lowercase()
    }
}

#[derive(Default)]
struct Chat {
    messages: Vec<TgMessage>,
    requests: Vec<TgRequest>,
    /// Pending 429s: how many more, and their retry_after.
    flood: Option<(u32, u64)>,
}

struct Shared {
    token: String,
    chat: Mutex<Chat>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Chat> {
    shared
        .chat
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake on `127.0.0.1:<ephemeral port>`. Dropping it shuts the server down.
pub struct TelegramFake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The server thread; dropping it stops the server.
    _server: Server,
}

impl TelegramFake {
    /// Starts a fake serving the bot `token`, on a thread and runtime of its own.
    ///
    /// # Panics
    /// When the loopback port cannot be bound: a test cannot run without its fake.
    pub fn start(token: &str) -> TelegramFake {
        let port = Loopback::bind("telegram fake");
        let addr = port.addr();
        let shared = Arc::new(Shared {
            token: token.to_string(),
            chat: Mutex::new(Chat::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        TelegramFake {
            addr,
            shared,
            _server: port.serve(app, None),
        }
    }

    /// `http://127.0.0.1:<port>`, the API base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every message ever sent, deleted ones included, in id order.
    pub fn messages(&self) -> Vec<TgMessage> {
        lock(&self.shared).messages.clone()
    }

    /// The live messages whose text contains `needle`.
    pub fn cards_for(&self, needle: &str) -> Vec<TgMessage> {
        self.messages()
            .into_iter()
            .filter(|m| !m.deleted && m.text.contains(needle))
            .collect()
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<TgRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Answers the next `n` requests with 429 and `retry_after` seconds.
    pub fn push_flood(&self, n: u32, retry_after: u64) {
        lock(&self.shared).flood = (n > 0).then_some((n, retry_after));
    }

    /// Marks message `id` deleted as if a human removed it: editing it is "not found".
    pub fn forget_message(&self, id: i64) {
        if let Some(m) = lock(&self.shared).messages.iter_mut().find(|m| m.id == id) {
            m.deleted = true;
        }
    }
}

/// An answer: the envelope, its status and (for 429) the `Retry-After` header.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn ok(result: Value) -> Self {
        Self {
            status: 200,
            body: json!({"ok": true, "result": result}),
            retry_after: None,
        }
    }

    fn error(code: u16, description: &str) -> Self {
        Self {
            status: code,
            body: json!({"ok": false, "error_code": code, "description": description}),
            retry_after: None,
        }
    }

    fn bad(description: impl std::fmt::Display) -> Self {
        Self::error(400, &format!("Bad Request: {description}"))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let at = Instant::now();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (token, method) = uri
        .path()
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or(("", ""));
    let method = method.to_string();
    let mut chat = lock(&shared);
    let answer = if token != shared.token {
        Answer::error(401, "Unauthorized")
    } else if let Some((left, retry_after)) = chat.flood {
        chat.flood = (left > 1).then_some((left - 1, retry_after));
        Answer {
            retry_after: Some(retry_after),
            body: json!({
                "ok": false,
                "error_code": 429,
                "description": format!("Too Many Requests: retry after {retry_after}"),
                "parameters": {"retry_after": retry_after},
            }),
            status: 429,
        }
    } else if !body.is_object() {
        Answer::bad("a JSON object body is required")
    } else if body["chat_id"].is_null() {
        Answer::bad("chat_id is empty")
    } else {
        match method.to_ascii_lowercase().as_str() {
            "getme" => Answer::ok(json!({
                "id": 1, "is_bot": true, "first_name": "Orchestrator",
                "username": "orchestrator_test_bot",
            })),
            "sendmessage" => send(&mut chat, &body),
            "editmessagetext" => edit(&mut chat, &body),
            "deletemessage" => delete(&mut chat, &body),
            _ => Answer::error(404, "Not Found"),
        }
    };
    chat.requests.push(TgRequest {
        at,
        method,
        body,
        status: answer.status,
        description: answer.body["description"].as_str().map(str::to_string),
    });
    drop(chat);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(answer.body)).into_response();
    if let Some(n) = answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(n));
    }
    response
}

/// The message object Telegram returns.
fn message_json(m: &TgMessage, chat_id: &Value) -> Value {
    let date = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "message_id": m.id,
        "date": date,
        "chat": {"id": chat_id, "type": "private"},
        "text": plain_text(&m.text, m.parse_mode.as_deref()).unwrap_or_default(),
    })
}

/// The text's checks: non-empty, parseable in its parse mode, at most 4096 characters.
fn check_text(body: &Value) -> Result<(String, Option<String>, bool), Answer> {
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let parse_mode = body["parse_mode"].as_str().map(str::to_string);
    let plain = plain_text(&text, parse_mode.as_deref())?;
    if plain.trim().is_empty() {
        return Err(Answer::bad("message text is empty"));
    }
    if plain.encode_utf16().count() > 4096 {
        return Err(Answer::bad("message is too long"));
    }
    let previews_off = body["link_preview_options"]["is_disabled"] == json!(true)
        || (body.get("link_preview_options").is_none()
            && body["disable_web_page_preview"] == json!(true));
    Ok((text, parse_mode, previews_off))
}

fn send(chat: &mut Chat, body: &Value) -> Answer {
    let (text, parse_mode, link_preview_disabled) = match check_text(body) {
        Ok(checked) => checked,
        Err(answer) => return answer,
    };
    let message = TgMessage {
        id: chat.messages.len() as i64 + 1,
        text,
        parse_mode,
        link_preview_disabled,
        disable_notification: body["disable_notification"] == json!(true),
        edits: Vec::new(),
        deleted: false,
    };
    let answer = Answer::ok(message_json(&message, &body["chat_id"]));
    chat.messages.push(message);
    answer
}

fn live(chat: &mut Chat, body: &Value) -> Option<usize> {
    let id = body["message_id"].as_i64()?;
    chat.messages.iter().position(|m| m.id == id && !m.deleted)
}

fn edit(chat: &mut Chat, body: &Value) -> Answer {
    let Some(at) = live(chat, body) else {
        return Answer::error(400, EDIT_NOT_FOUND);
    };
    let (text, parse_mode, link_preview_disabled) = match check_text(body) {
        Ok(checked) => checked,
        Err(answer) => return answer,
    };
    let message = &mut chat.messages[at];
    if message.text == text && message.parse_mode == parse_mode {
        return Answer::error(400, NOT_MODIFIED);
    }
    let old = std::mem::replace(&mut message.text, text);
    message.edits.push(old);
    message.parse_mode = parse_mode;
    message.link_preview_disabled = link_preview_disabled;
    Answer::ok(message_json(message, &body["chat_id"]))
}

fn delete(chat: &mut Chat, body: &Value) -> Answer {
    let Some(at) = live(chat, body) else {
        return Answer::error(400, DELETE_NOT_FOUND);
    };
    chat.messages[at].deleted = true;
    Answer::ok(json!(true))
}

/// The text without markup, or the 400 Telegram gives for HTML it cannot parse.
fn plain_text(text: &str, parse_mode: Option<&str>) -> Result<String, Answer> {
    match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(text.to_string()),
        Some("html") => parse_html(text)
            .map_err(|detail| Answer::bad(format!("can't parse entities: {detail}"))),
        Some("markdown" | "markdownv2") => Ok(text.to_string()),
        Some(_) => Err(Answer::bad("unsupported parse_mode")),
    }
}

/// A loose version of Telegram's HTML parser: known tags only, balanced and properly nested;
/// a `<` must start a tag; `&lt; &gt; &amp; &quot;` and numeric entities are decoded and any
/// other `&` is kept as text.
pub fn parse_html(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut plain = String::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                let Some(end) = text[i..].find('>').map(|e| i + e) else {
                    return Err(format!(
                        "Can't find end of the entity starting at byte offset {i}"
                    ));
                };
                let inner = &text[i + 1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some((top, _)) if top == name => {}
                        Some((top, _)) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {i}, expected \"</{top}>\", found \"</{name}>\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name: String = inner
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if name.is_empty() || !TAGS.contains(&name.as_str()) {
                        let shown: String =
                            inner.chars().take_while(|c| !c.is_whitespace()).collect();
                        return Err(format!(
                            "Unsupported start tag \"{shown}\" at byte offset {i}"
                        ));
                    }
                    open.push((name, i));
                }
                i = end + 1;
            }
            b'&' => {
                let rest = &text[i..];
                let decoded = [
                    ("&lt;", '<'),
                    ("&gt;", '>'),
                    ("&amp;", '&'),
                    ("&quot;", '"'),
                ]
                .into_iter()
                .find(|(entity, _)| rest.starts_with(entity));
                match decoded {
                    Some((entity, c)) => {
                        plain.push(c);
                        i += entity.len();
                    }
                    None => {
                        let numeric = rest.strip_prefix("&#").and_then(|r| {
                            let end = r.find(';')?;
                            let n = match r[..end].strip_prefix(['x', 'X']) {
                                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                                None => r[..end].parse().ok()?,
                            };
                            Some((char::from_u32(n)?, end + 3))
                        });
                        match numeric {
                            Some((c, len)) => {
                                plain.push(c);
                                i += len;
                            }
                            None => {
                                plain.push('&');
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => {
                let c = text[i..].chars().next().expect("i is on a char boundary");
                plain.push(c);
                i += c.len_utf8();
            }
        }
    }
    if let Some((_, at)) = open.first() {
        return Err(format!(
            "Can't find end of the entity starting at byte offset {at}"
        ));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::parse_html;

    #[test]
    fn html_is_checked_like_telegram_does() {
        assert_eq!(
            parse_html("<b>ORCH-1</b> · a &amp; b &lt;1m").unwrap(),
            "ORCH-1 · a & b <1m"
        );
        assert_eq!(parse_html("a & b").unwrap(), "a & b");
        assert_eq!(
            parse_html("a <1m").unwrap_err(),
            "Can't find end of the entity starting at byte offset 2"
        );
        assert!(
            parse_html("<1m> x")
                .unwrap_err()
                .starts_with("Unsupported start tag \"1m\"")
        );
        assert!(parse_html("<b>x").unwrap_err().contains("byte offset 0"));
        assert!(
            parse_html("<b><i>x</b></i>")
                .unwrap_err()
                .contains("Unmatched end tag")
        );
        assert!(
            parse_html("x</b>")
                .unwrap_err()
                .contains("Unexpected end tag")
        );
    }
}
