//! The agents' launch settings (`ORCH_AGENT_*`, `ORCH_SHUTDOWN_AGENTS`): per role a model,
//! effort, time budget, turns and tools, and what every agent shares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use orchestrator_actors::Role;

use super::{ConfigError, Get, KEYS, invalid, number};
use crate::claude::settings::{
    AgentSettings, EFFORTS, PERMISSION_MODES, RoleSettings, model_allowed, split_tools,
};

/// The agents' launch settings, every model checked against `^claude-` or the allow-list.
pub(super) fn agent_settings(get: &Get<'_>) -> Result<AgentSettings, ConfigError> {
    let (_, allow) = get("ORCH_AGENT_MODEL_ALLOW");
    let allow: Vec<String> = allow
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    let model = |key: &'static str, value: String| -> Result<String, ConfigError> {
        let value = value.trim().to_string();
        if model_allowed(&value, &allow) {
            Ok(value)
        } else {
            Err(invalid(
                key,
                &value,
                "a model id starting with claude- (letters, digits, - . _ [ ]) or a name \
                 listed in ORCH_AGENT_MODEL_ALLOW",
            ))
        }
    };
    let mut roles = BTreeMap::new();
    for role in Role::ALL {
        let upper = role.as_str().to_uppercase();
        let (key, value) = get(role_key("ORCH_AGENT_MODEL_", &upper, ""));
        let role_model = model(key, value)?;
        let (key, value) = get(role_key("ORCH_AGENT_EFFORT_", &upper, ""));
        let effort = match value.trim() {
            "" => None,
            e if EFFORTS.contains(&e) => Some(e.to_string()),
            _ => return Err(invalid(key, &value, &EFFORTS.join(", "))),
        };
        let timeout = Duration::from_secs(number(
            get(role_key("ORCH_AGENT_TIMEOUT_", &upper, "_S")),
            1,
            86_400,
        )?);
        let max_turns = number(
            get(role_key("ORCH_AGENT_MAX_TURNS_", &upper, "")),
            1,
            10_000,
        )? as u32;
        let (key, value) = get(role_key("ORCH_AGENT_ALLOWED_TOOLS_", &upper, ""));
        let allowed_tools = split_tools(&value);
        if allowed_tools.is_empty() {
            return Err(invalid(
                key,
                &value,
                "a comma-separated list of tools, e.g. Read,Write",
            ));
        }
        roles.insert(
            role,
            RoleSettings {
                model: role_model,
                effort,
                timeout,
                max_turns,
                allowed_tools,
            },
        );
    }
    let (key, value) = get("ORCH_AGENT_PERMISSION_MODE");
    if !PERMISSION_MODES.contains(&value.trim()) {
        return Err(invalid(key, &value, &PERMISSION_MODES.join(", ")));
    }
    let (key, fallback) = get("ORCH_AGENT_FALLBACK_MODEL");
    let fallback_model = match fallback.trim() {
        "" => None,
        _ => Some(model(key, fallback)?),
    };
    let path = |key: &'static str| {
        let (_, value) = get(key);
        (!value.trim().is_empty()).then(|| PathBuf::from(value.trim()))
    };
    let term_grace = Duration::from_secs(number(get("ORCH_AGENT_TERM_GRACE_S"), 0, 600)?);
    let (key, shutdown) = get("ORCH_SHUTDOWN_AGENTS");
    let keep_on_shutdown = match shutdown.trim() {
        "adopt" => true,
        "stop" => false,
        _ => return Err(invalid(key, &shutdown, "adopt, stop")),
    };
    Ok(AgentSettings {
        roles,
        permission_mode: value.trim().to_string(),
        fallback_model,
        prompts_dir: path("ORCH_AGENT_PROMPTS_DIR"),
        config_dir: path("ORCH_AGENT_CONFIG_DIR"),
        term_grace,
        keep_on_shutdown,
    })
}

/// The static name of a per-role key (`ORCH_AGENT_MODEL_` + `ANALYST` + ``).
pub(super) fn role_key(prefix: &str, role: &str, suffix: &str) -> &'static str {
    KEYS.iter()
        .map(|(k, _)| *k)
        .find(|k| {
            k.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                == Some(role)
        })
        .expect("every per-role key is listed in KEYS")
}
