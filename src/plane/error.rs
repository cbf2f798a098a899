//! What can go wrong talking to Plane. Every variant names the request (method and path) so
//! a log line says which call failed, and a refusal carries Plane's own words.

use serde_json::Value;

/// A failed Plane API call.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// Plane answered with an error status (after any retries the status allowed).
    #[error("Plane {method} {path} answered {status}: {message}")]
    Status {
        /// `GET`, `PATCH`, `POST`.
        method: String,
        /// The request path, e.g. `/api/v1/workspaces/acme/projects/…/states/`.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Plane's `detail` or `error` text, or its field errors, or the raw body.
        message: String,
    },
    /// The request did not get an answer (connection refused, timeout).
    #[error("Plane {method} {path} failed: {source}")]
    Transport {
        /// `GET`, `PATCH`, `POST`.
        method: String,
        /// The request path.
        path: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// Plane answered success with a body that is not the expected JSON.
    #[error("Plane {method} {path} answered {status} with an unexpected body: {reason}")]
    Decode {
        /// `GET`, `PATCH`, `POST`.
        method: String,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// What did not match.
        reason: String,
    },
    /// A list kept announcing more pages past the bound.
    #[error("Plane GET {path} still had more results after {pages} pages; giving up")]
    TooManyPages {
        /// The list's path.
        path: String,
        /// How many pages were read.
        pages: usize,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the Plane HTTP client: {0}")]
    Client(reqwest::Error),
}

/// Plane's explanation in an error body: DRF's `detail`, Plane's `error`, or a serializer's
/// `{field: [messages]}`; else the body itself, shortened.
pub(super) fn plane_message(body: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return shorten(body.trim());
    };
    for key in ["detail", "error"] {
        if let Some(Value::String(text)) = map.get(key) {
            return text.clone();
        }
    }
    let fields: Vec<String> = map
        .iter()
        .map(|(field, value)| {
            let text = match value {
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if field == "non_field_errors" {
                text
            } else {
                format!("{field}: {text}")
            }
        })
        .collect();
    shorten(&fields.join("; "))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_message_reads_each_error_shape() {
        assert_eq!(
            plane_message(r#"{"detail":"Given API token is not valid"}"#),
            "Given API token is not valid"
        );
        assert_eq!(
            plane_message(r#"{"error":"The requested resource does not exist."}"#),
            "The requested resource does not exist."
        );
        assert_eq!(
            plane_message(
                r#"{"non_field_errors":["State is not valid please pass a valid state_id"]}"#
            ),
            "State is not valid please pass a valid state_id"
        );
        assert_eq!(
            plane_message(r#"{"state":["Invalid pk \"x\" - object does not exist."]}"#),
            "state: Invalid pk \"x\" - object does not exist."
        );
        assert_eq!(
            plane_message("<h1>Bad Gateway</h1>"),
            "<h1>Bad Gateway</h1>"
        );
        assert_eq!(plane_message(""), "(empty body)");
        assert_eq!(plane_message(&"x".repeat(400)).chars().count(), 301);
    }
}
