//! The integration keys: Plane (tracker), Gitea (forge), the webhook intake and Telegram
//! (the live tracker card). A tracker or forge with a URL must have its token and, unless
//! unsigned webhooks are explicitly allowed, its webhook secret; a project that names a
//! Plane project or a Gitea repo needs that integration configured; a bot token needs a chat.

use std::collections::BTreeMap;
use std::time::Duration;

use orchestrator_actors::Role;
use orchestrator_actors::actors::tracker::TrackerMode;

use super::agents::role_key;
use super::{ConfigError, Get, invalid, number};
use crate::config::projects::Projects;

/// The Plane connection (`ORCH_PLANE_*`).
#[derive(Clone, Debug)]
pub struct PlaneSettings {
    /// API base URL, e.g. `https://plane.example.com` (`ORCH_PLANE_API_URL`).
    pub api_url: String,
    /// The orchestrator's API token (`ORCH_PLANE_API_TOKEN`).
    pub token: String,
    /// The workspace slug (`ORCH_PLANE_WORKSPACE_SLUG`).
    pub workspace: String,
    /// Secret of the webhook's signature; `None` only with unsigned webhooks allowed
    /// (`ORCH_PLANE_WEBHOOK_SECRET`).
    pub webhook_secret: Option<String>,
    /// Per-role bot tokens, so comments show who wrote them (`ORCH_PLANE_BOT_<ROLE>`).
    pub bot_tokens: BTreeMap<Role, String>,
    /// Plane user ids of the orchestrator's own accounts, whose events are ignored
    /// (`ORCH_PLANE_BOT_USER_IDS`); the ids of the tokens above are also learned at run time.
    pub bot_user_ids: Vec<String>,
    /// How long a project's states are trusted (`ORCH_PLANE_STATES_TTL_S`).
    pub states_ttl: Duration,
}

/// The Gitea connection (`ORCH_GITEA_*`).
#[derive(Clone, Debug)]
pub struct GiteaSettings {
    /// Base URL, e.g. `https://git.example.com` (`ORCH_GITEA_URL`).
    pub url: String,
    /// API token (`ORCH_GITEA_TOKEN`).
    pub token: String,
    /// Secret of the webhook's signature; `None` only with unsigned webhooks allowed
    /// (`ORCH_GITEA_WEBHOOK_SECRET`).
    pub webhook_secret: Option<String>,
}

/// Everything the integrations need.
#[derive(Clone, Debug)]
pub struct Integrations {
    /// Plane, when `ORCH_PLANE_API_URL` is set.
    pub plane: Option<PlaneSettings>,
    /// Gitea, when `ORCH_GITEA_URL` is set.
    pub gitea: Option<GiteaSettings>,
    /// Webhooks are accepted without a signature when no secret is set
    /// (`ORCH_ALLOW_UNSIGNED_WEBHOOKS`).
    pub allow_unsigned_webhooks: bool,
    /// A delivery whose body was seen within this window is a replay
    /// (`ORCH_WEBHOOK_DEDUP_WINDOW_S`).
    pub dedup_window: Duration,
    /// QG-0: the longest title a task may start with (`ORCH_QG0_TITLE_MAX`).
    pub qg0_title_max: usize,
    /// How often the CI-green gate polls a pending commit status (`ORCH_CI_POLL_S`).
    pub ci_poll: Duration,
    /// How long the CI-green gate waits for a pending status before deferring
    /// (`ORCH_CI_WAIT_S`).
    pub ci_wait: Duration,
}

fn url(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    if (v.starts_with("http://") || v.starts_with("https://")) && !v.contains(char::is_whitespace) {
        Ok(v.to_string())
    } else {
        Err(invalid(key, value, "an http:// or https:// URL"))
    }
}

fn required(key: &'static str, get: &Get<'_>, because: &str) -> Result<String, ConfigError> {
    let (_, value) = get(key);
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(invalid(key, "", &format!("a value, because {because}")));
    }
    Ok(value)
}

/// The webhook secret under `key`: required unless unsigned webhooks are allowed.
fn secret(
    key: &'static str,
    get: &Get<'_>,
    allow_unsigned: bool,
    what: &str,
) -> Result<Option<String>, ConfigError> {
    let (_, value) = get(key);
    match value.trim() {
        "" if allow_unsigned => Ok(None),
        "" => Err(invalid(
            key,
            "",
            &format!(
                "the secret {what} signs its webhooks with (or ORCH_ALLOW_UNSIGNED_WEBHOOKS=true to accept unsigned deliveries)"
            ),
        )),
        v => Ok(Some(v.to_string())),
    }
}

/// Reads and checks the section against the configured `projects`.
pub(super) fn integrations(
    get: &Get<'_>,
    projects: &Projects,
) -> Result<Integrations, ConfigError> {
    let (key, value) = get("ORCH_ALLOW_UNSIGNED_WEBHOOKS");
    let allow_unsigned = match value.trim() {
        "true" => true,
        "false" => false,
        _ => return Err(invalid(key, &value, "true or false")),
    };
    let (key, value) = get("ORCH_PLANE_API_URL");
    let plane = if value.trim().is_empty() {
        None
    } else {
        let because = "ORCH_PLANE_API_URL is set";
        let mut bot_tokens = BTreeMap::new();
        for role in Role::ALL {
            let (_, token) = get(role_key(
                "ORCH_PLANE_BOT_",
                &role.as_str().to_uppercase(),
                "",
            ));
            if !token.trim().is_empty() {
                bot_tokens.insert(role, token.trim().to_string());
            }
        }
        let (_, ids) = get("ORCH_PLANE_BOT_USER_IDS");
        Some(PlaneSettings {
            api_url: url(key, &value)?,
            token: required("ORCH_PLANE_API_TOKEN", get, because)?,
            workspace: required("ORCH_PLANE_WORKSPACE_SLUG", get, because)?,
            webhook_secret: secret("ORCH_PLANE_WEBHOOK_SECRET", get, allow_unsigned, "Plane")?,
            bot_tokens,
            bot_user_ids: ids
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            states_ttl: Duration::from_secs(number(get("ORCH_PLANE_STATES_TTL_S"), 0, 86_400)?),
        })
    };
    let (key, value) = get("ORCH_GITEA_URL");
    let gitea = if value.trim().is_empty() {
        None
    } else {
        Some(GiteaSettings {
            url: url(key, &value)?,
            token: required("ORCH_GITEA_TOKEN", get, "ORCH_GITEA_URL is set")?,
            webhook_secret: secret("ORCH_GITEA_WEBHOOK_SECRET", get, allow_unsigned, "Gitea")?,
        })
    };
    for p in projects.iter() {
        if p.plane_project_id.is_some() && plane.is_none() {
            let (key, value) = get("ORCH_PROJECTS_JSON");
            return Err(invalid(
                key,
                &value,
                &format!(
                    "ORCH_PLANE_API_URL to be set: project {:?} has a plane_project_id",
                    p.repo
                ),
            ));
        }
        if p.gitea_repo.is_some() && gitea.is_none() {
            let (key, value) = get("ORCH_PROJECTS_JSON");
            return Err(invalid(
                key,
                &value,
                &format!(
                    "ORCH_GITEA_URL to be set: project {:?} has a gitea_repo",
                    p.repo
                ),
            ));
        }
    }
    Ok(Integrations {
        plane,
        gitea,
        allow_unsigned_webhooks: allow_unsigned,
        dedup_window: Duration::from_secs(number(
            get("ORCH_WEBHOOK_DEDUP_WINDOW_S"),
            0,
            7 * 86_400,
        )?),
        qg0_title_max: number(get("ORCH_QG0_TITLE_MAX"), 1, 10_000)? as usize,
        ci_poll: Duration::from_secs(number(get("ORCH_CI_POLL_S"), 1, 3_600)?),
        ci_wait: Duration::from_secs(number(get("ORCH_CI_WAIT_S"), 1, 86_400)?),
    })
}

/// The Telegram settings: bot token (hidden in errors), chat id (required with a token) and
/// API base URL.
pub(super) fn telegram(
    get: &Get<'_>,
) -> Result<(Option<String>, Option<String>, String), ConfigError> {
    let (key, token) = get("ORCH_TELEGRAM_BOT_TOKEN");
    let token = match token.trim() {
        "" => None,
        t if t.chars().any(|c| c.is_whitespace() || c == '/') => {
            return Err(invalid(
                key,
                "<hidden>",
                "a bot token as BotFather gives it (no spaces or slashes)",
            ));
        }
        t => Some(t.to_string()),
    };
    let (key, chat) = get("ORCH_TELEGRAM_CHAT_ID");
    let chat = match chat.trim() {
        "" if token.is_some() => {
            return Err(invalid(
                key,
                &chat,
                "the chat id (a number or @channelname) since ORCH_TELEGRAM_BOT_TOKEN is set",
            ));
        }
        "" => None,
        c if c.parse::<i64>().is_ok()
            || c.strip_prefix('@').is_some_and(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            }) =>
        {
            Some(c.to_string())
        }
        _ => return Err(invalid(key, &chat, "a number or @channelname")),
    };
    let (key, value) = get("ORCH_TELEGRAM_API_URL");
    Ok((token, chat, url(key, &value)?))
}

/// How a changed card is shown (`ORCH_TRACKER_MODE`).
pub(super) fn tracker_mode(get: &Get<'_>) -> Result<TrackerMode, ConfigError> {
    let (key, value) = get("ORCH_TRACKER_MODE");
    match value.trim() {
        "edit" => Ok(TrackerMode::Edit),
        "bump" => Ok(TrackerMode::Bump),
        _ => Err(invalid(key, &value, "edit or bump")),
    }
}
