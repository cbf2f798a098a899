//! The result object the Claude Code CLI prints with `--output-format json` (and as the last
//! line of `stream-json`), read by key so new or reordered fields never break us. Token and
//! cost accounting come from `modelUsage`, which the contract names as authoritative.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One agent run's outcome as the CLI reported it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CliResult {
    /// `success` or one of the `error_*` subtypes. Not enough on its own: an API error
    /// reports `success` with `is_error: true`.
    pub subtype: String,
    /// Whether the run failed; the field to check together with the exit code.
    pub is_error: bool,
    /// The final text; present on `success` (also carries API / login errors).
    #[serde(default)]
    pub result: Option<String>,
    /// Error messages of the `error_*` subtypes, which carry no `result`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<String>,
    /// Model turns taken.
    #[serde(default)]
    pub num_turns: Option<u64>,
    /// Wall time of the run as the CLI measured it.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// The CLI's session id, for resuming or finding its transcript.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The CLI's own cost estimate; used only when `modelUsage` is missing.
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    /// HTTP status of a failed API call (400, 500…), when that is why the run failed.
    #[serde(default)]
    pub api_error_status: Option<u16>,
    /// Why the CLI's loop ended: `completed` (also after an API error), `max_turns`,
    /// `prompt_too_long`, … (2.1.197).
    #[serde(default)]
    pub terminal_reason: Option<String>,
    /// Per-model usage and cost, keyed by model id: the authoritative totals.
    #[serde(default, rename = "modelUsage", deserialize_with = "null_as_default")]
    pub model_usage: BTreeMap<String, ModelUsage>,
}

/// One model's share of a run (`modelUsage.<model>`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    /// Uncached input tokens.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_tokens: u64,
    /// Input tokens served from the prompt cache.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache_creation_input_tokens: u64,
    /// What this model cost, in US dollars.
    #[serde(default, rename = "costUSD", deserialize_with = "null_as_default")]
    pub cost_usd: f64,
}

impl ModelUsage {
    /// Every token this model processed, cached or not: what a budget counts.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_input_tokens)
            .saturating_add(self.cache_creation_input_tokens)
    }
}

impl CliResult {
    /// All tokens of all models (input, output, cache read, cache creation); 0 when the CLI
    /// reported no `modelUsage`.
    pub fn total_tokens(&self) -> u64 {
        self.model_usage
            .values()
            .fold(0u64, |sum, usage| sum.saturating_add(usage.total_tokens()))
    }

    /// The run's cost in US dollars: the sum of `modelUsage.*.costUSD`, or the CLI's
    /// `total_cost_usd` estimate only when `modelUsage` is empty, or 0.
    pub fn cost_usd(&self) -> f64 {
        if self.model_usage.is_empty() {
            self.total_cost_usd.unwrap_or(0.0)
        } else {
            self.model_usage.values().map(|u| u.cost_usd).sum()
        }
    }

    /// The model that did the work: the costliest one, then the one with most tokens (the
    /// CLI also calls a small model for housekeeping); ties go to the first id in order.
    pub fn primary_model(&self) -> Option<&str> {
        let mut best: Option<(&String, &ModelUsage)> = None;
        for (model, usage) in &self.model_usage {
            let better = match best {
                None => true,
                Some((_, b)) => {
                    usage.cost_usd > b.cost_usd
                        || (usage.cost_usd == b.cost_usd && usage.total_tokens() > b.total_tokens())
                }
            };
            if better {
                best = Some((model, usage));
            }
        }
        best.map(|(model, _)| model.as_str())
    }

    /// Why the run failed, in the CLI's words (`result` text, else the `errors`), when
    /// `is_error` is set.
    pub fn error_message(&self) -> Option<String> {
        if !self.is_error {
            return None;
        }
        let text = match (&self.result, self.errors.is_empty()) {
            (_, false) => self.errors.join("; "),
            (Some(result), true) if !result.trim().is_empty() => result.clone(),
            _ => format!("the CLI reported an error (subtype {})", self.subtype),
        };
        Some(text)
    }
}

/// Parses the CLI's stdout: either the whole text is the result object, or — for
/// `stream-json` or stray lines around it — the last non-empty line that is a JSON object
/// with `"type":"result"`. The error says what was wrong and quotes the start of the text.
pub fn parse_stdout(stdout: &str) -> Result<CliResult, String> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err("stdout is empty: the agent printed no result object".to_string());
    }
    let whole_error = match serde_json::from_str::<Value>(text) {
        Ok(value) => return from_value(value),
        Err(e) => e,
    };
    for line in text.lines().rev().map(str::trim).filter(|l| !l.is_empty()) {
        if let Ok(value) = serde_json::from_str::<Value>(line)
            && value.get("type").and_then(Value::as_str) == Some("result")
        {
            return from_value(value);
        }
    }
    Err(format!(
        "stdout is not a CLI result object ({whole_error}) and no line of it is a JSON object \
         with \"type\":\"result\"; stdout starts with {:?}",
        snippet(text)
    ))
}

/// Checks that `value` is the result object and reads its fields.
fn from_value(value: Value) -> Result<CliResult, String> {
    match value.get("type") {
        Some(Value::String(kind)) if kind == "result" => {}
        Some(other) => {
            return Err(format!(
                "stdout JSON has \"type\": {other}, expected \"result\""
            ));
        }
        None if value.is_object() => {
            return Err("stdout JSON object has no \"type\" field (expected \"result\")".into());
        }
        None => {
            return Err(format!(
                "stdout JSON is not an object: {}",
                snippet_value(&value)
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("stdout result object is malformed: {e}"))
}

/// Reads `null` as the type's default, since the CLI writes `null` for absent values.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The first 200 characters, enough to recognise what the agent printed.
fn snippet(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn snippet_value(value: &Value) -> String {
    snippet(&value.to_string())
}

#[cfg(test)]
mod tests;
