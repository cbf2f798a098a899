//! The bytes on the wire: a [`Reply`] as a JSON Message or as the SSE event sequence the
//! contract verified against the CLI, deterministic `usage`, and the API's error bodies.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::reply::{Block, Reply};

/// Largest `input_json_delta` fragment, in bytes: small enough that every tool call's input
/// arrives in several pieces, as the real API sends it.
const JSON_FRAGMENT: usize = 64;

/// Token counts the stub reports. Deterministic: input is one token per four bytes of the
/// request body, output one per four bytes of the reply's content (at least one each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// `usage.input_tokens`.
    pub input_tokens: u64,
    /// `usage.output_tokens`.
    pub output_tokens: u64,
}

impl Usage {
    /// The usage of answering a `body_len`-byte request with `reply`.
    pub fn of(body_len: usize, reply: &Reply) -> Usage {
        let content: usize = reply
            .blocks
            .iter()
            .map(|block| match block {
                Block::Text(text) => text.len(),
                Block::ToolUse { input, .. } => input.to_string().len(),
            })
            .sum();
        Usage {
            input_tokens: (body_len as u64 / 4).max(1),
            output_tokens: (content as u64 / 4).max(1),
        }
    }

    fn json(self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    }
}

fn block_json(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

/// The non-streaming Message.
pub fn message(reply: &Reply, id: &str, model: &str, usage: Usage) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks.iter().map(block_json).collect::<Vec<_>>(),
        "stop_reason": reply.stop_reason,
        "stop_sequence": null,
        "usage": usage.json(usage.output_tokens),
    })
}

/// The SSE stream: `message_start` (with usage), `ping`, then per block
/// `content_block_start` → deltas → `content_block_stop` (tool input as `input_json_delta`
/// fragments), `message_delta` (stop reason, output tokens), `message_stop`.
pub fn sse(reply: &Reply, id: &str, model: &str, usage: Usage) -> String {
    let mut out = String::new();
    let mut event = |name: &str, data: Value| {
        let _ = write!(out, "event: {name}\ndata: {data}\n\n");
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage.json(1),
        }}),
    );
    event("ping", json!({"type": "ping"}));
    for (index, block) in reply.blocks.iter().enumerate() {
        let (start, deltas) = match block {
            Block::Text(text) => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": text})],
            ),
            Block::ToolUse { id, name, input } => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                fragments(&input.to_string())
                    .into_iter()
                    .map(|part| json!({"type": "input_json_delta", "partial_json": part}))
                    .collect(),
            ),
        };
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": usage.output_tokens}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    out
}

/// `text` cut into pieces of at most [`JSON_FRAGMENT`] bytes, on character boundaries.
fn fragments(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(JSON_FRAGMENT);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// The API's error body: `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn error_body(error_type: &str, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_rejoin_and_respect_characters() {
        let text = format!("{{\"content\":\"{}\"}}", "Проверка ".repeat(20));
        let parts = fragments(&text);
        assert!(parts.len() > 2);
        assert!(parts.iter().all(|p| p.len() <= JSON_FRAGMENT));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn usage_grows_with_the_request_and_the_reply() {
        let reply = Reply {
            blocks: vec![Block::Text("x".repeat(40))],
            stop_reason: "end_turn",
        };
        assert_eq!(
            Usage::of(4000, &reply),
            Usage {
                input_tokens: 1000,
                output_tokens: 10
            }
        );
        assert_eq!(Usage::of(0, &reply).input_tokens, 1);
    }
}
