//! Typed JSON request bodies: [`JsonBody<T>`] reads a body into `T` (whose fields serde
//! checks; bodies are declared with `deny_unknown_fields`) and answers 400 with a message
//! that names the field at fault. `Option<JsonBody<T>>` accepts a request without a body.

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::ApiError;

/// A JSON body read into `T`.
#[derive(Debug)]
pub(super) struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::bad_request(
                "the body must be a JSON object (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::bad_request(format!("cannot read the body: {}", e.body_text()))
        })?;
        parse(&bytes).map(JsonBody)
    }
}

impl<T, S> OptionalFromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// `None` for a request that carries no body (no `Content-Type`, or nothing in it).
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if req.headers().get(header::CONTENT_TYPE).is_none() {
            return Ok(None);
        }
        if !is_json(req.headers()) {
            return Err(ApiError::bad_request(
                "the body must be a JSON object (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::bad_request(format!("cannot read the body: {}", e.body_text()))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&bytes).map(|body| Some(JsonBody(body)))
    }
}

/// Whether the request says its body is JSON (`application/json`, or a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"))
}

/// `bytes` as a `T`; a 400 naming the field at fault when they are not one.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("the body is not valid JSON: {inner}"));
        }
        let at = format!(" at line {} column {}", inner.line(), inner.column());
        let message = inner.to_string();
        let message = message.strip_suffix(&at).unwrap_or(&message);
        ApiError::bad_request(explain(e.path(), message))
    })?;
    json.end()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde's `message` about the value at `path`, in the API's words: the top-level field
/// first (`title must be a string, not integer 5`), JSON's names for its types (a list, an
/// object), field names in double quotes.
fn explain(path: &serde_path_to_error::Path, message: &str) -> String {
    let mut segments = path.iter();
    let field = segments.find_map(|segment| match segment {
        Segment::Map { key } => Some(key.as_str()),
        _ => None,
    });
    let in_list = matches!(path.iter().next_back(), Some(Segment::Seq { .. }));
    let names = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        && let Some((got, wanted)) = rest.split_once(", expected ")
    {
        let wanted = json_words(wanted);
        // An item of a list: say what the items must be.
        let wanted = match (in_list, wanted.strip_prefix("a ")) {
            (true, Some(kind)) if !kind.contains(' ') => format!("{kind}s"),
            _ => wanted,
        };
        let got = got.replace('`', "");
        return match field {
            Some(field) => format!("{field} must be {wanted}, not {got}"),
            None => format!("the body must be {wanted}, not {got}"),
        };
    }
    if message.starts_with("missing field ")
        && let [missing] = names(message).as_slice()
    {
        let whole = field.map_or(String::new(), |f| format!("{f}."));
        return format!("{whole}{missing} is required");
    }
    if message.starts_with("unknown field ")
        && let Some((unknown, known)) = names(message).split_first()
    {
        return format!("unknown field {unknown:?} (known: {})", known.join(", "));
    }
    let message = message.replace('`', "\"");
    match field {
        Some(field) => format!("{field}: {message}"),
        None => message,
    }
}

/// serde's name of an expected type as JSON calls it.
fn json_words(wanted: &str) -> String {
    match wanted {
        "a sequence" => "a list".to_string(),
        "a map" => "an object".to_string(),
        w if w.starts_with("struct ") => "an object".to_string(),
        w => w.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::parse;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        tags: Option<Vec<String>>,
    }

    fn error(json: &str) -> String {
        parse::<Body>(json.as_bytes()).unwrap_err().message
    }

    #[test]
    fn every_error_names_its_field() {
        assert!(parse::<Body>(br#" {"name": "x"} "#).is_ok());
        for (json, expected) in [
            (r#"["a"]"#, "the body must be a JSON object"),
            ("", "the body must be a JSON object"),
            (r#"{"name": 5}"#, "name must be a string, not integer 5"),
            (
                r#"{"name": "x", "tags": "a"}"#,
                "tags must be a list, not string \"a\"",
            ),
            (
                r#"{"name": "x", "tags": ["a", 1]}"#,
                "tags must be strings, not integer 1",
            ),
            (r#"{"tags": []}"#, "name is required"),
            (
                r#"{"name": "x", "colour": 1}"#,
                "unknown field \"colour\" (known: name, tags)",
            ),
        ] {
            assert_eq!(error(json), expected, "{json}");
        }
        for (json, start) in [
            (r#"{"name": "#, "the body is not valid JSON: "),
            (r#"{"name": "x"} {}"#, "the body is not valid JSON: "),
        ] {
            let message = error(json);
            assert!(message.starts_with(start), "{json}: {message}");
        }
    }
}
