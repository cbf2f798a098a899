//! Configuration from `ORCH_*` environment variables and an optional `.env` file (the process
//! environment wins). Every value is validated up front; an error names the key, the bad value
//! and what was expected, and startup stops with exit code 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orchestrator_actors::actors::tracker::TrackerMode;
use orchestrator_actors::domain::resilience::RetryPolicy;
use tracing_subscriber::EnvFilter;

pub use integrations::{GiteaSettings, Integrations, PlaneSettings};

use crate::claude::settings::AgentSettings;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration of one service instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// Holds `orchestrator.db`, `runs/` and the repository clones in `repos/` (`ORCH_DATA_DIR`).
    pub data_dir: PathBuf,
    /// One git worktree per task (`ORCH_WORKTREES_DIR`; empty means `<data>/worktrees`).
    pub worktrees_dir: PathBuf,
    /// HTTP listen address (`ORCH_BIND`).
    pub bind: SocketAddr,
    /// Log filter directives, `tracing` env-filter syntax (`ORCH_LOG`).
    pub log: String,
    /// Log format (`ORCH_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Budget for a graceful shutdown before the process forces its exit
    /// (`ORCH_SHUTDOWN_TIMEOUT_S`).
    pub shutdown_timeout: Duration,
    /// Per-actor timeout of the Describe RPC behind `GET /actors` (`ORCH_DESCRIBE_TIMEOUT_MS`).
    pub describe_timeout: Duration,
    /// A child failing more than this many times within the window is left stopped
    /// (`ORCH_RESTART_MAX`).
    pub restart_max: u32,
    /// The restart-storm window (`ORCH_RESTART_WINDOW_S`).
    pub restart_window: Duration,
    /// First restart backoff, doubled per further failure (`ORCH_RESTART_BACKOFF_MS`).
    pub restart_backoff: Duration,
    /// Upper bound of the restart backoff (`ORCH_RESTART_BACKOFF_MAX_MS`).
    pub restart_backoff_max: Duration,
    /// Read-only SQLite connections for queries (`ORCH_DB_READERS`).
    pub db_readers: usize,
    /// The project registry (`ORCH_PROJECTS_JSON`): the one copy, shared by everyone who
    /// needs it.
    pub projects: std::sync::Arc<crate::config::projects::Projects>,
    /// Agent jobs running at once (`ORCH_MAX_CONCURRENCY`).
    pub max_concurrency: usize,
    /// Bearer token of the operator routes; `None` disables them (`ORCH_OPERATOR_TOKEN`).
    pub operator_token: Option<String>,
    /// The agent program: the Claude Code CLI, or `orchestrator scripted-agent`'s binary
    /// (`ORCH_CLAUDE_BIN`).
    pub claude_bin: String,
    /// Extra leading arguments for the agent program, e.g. `scripted-agent` when
    /// `ORCH_CLAUDE_BIN` is this binary (`ORCH_CLAUDE_ARGS`, split like a shell would).
    pub claude_args: Vec<String>,
    /// Per-role launch settings of the agents (`ORCH_AGENT_*`).
    pub agents: AgentSettings,
    /// What happens to a job whose run failed (`ORCH_TRANSIENT_RETRIES`,
    /// `ORCH_BACKOFF_BASE_S`, `ORCH_BACKOFF_MAX_S`).
    pub retry: RetryPolicy,
    /// Transient failures in a row that pause dispatch (`ORCH_BREAKER_THRESHOLD`).
    pub breaker_threshold: u32,
    /// How long dispatch stays paused (`ORCH_BREAKER_COOLDOWN_S`).
    pub breaker_cooldown: Duration,
    /// Interval of the job reaper's sweep (`ORCH_REAPER_TICK_S`).
    pub reaper_tick: Duration,
    /// Sweeps a job may look orphaned before the reaper requeues it
    /// (`ORCH_REAPER_GRACE_TICKS`).
    pub reaper_grace_ticks: u32,
    /// Interval of the reconciler's pass (`ORCH_RECONCILE_INTERVAL_S`); it also makes one
    /// at start.
    pub reconcile_interval: Duration,
    /// The disk watchdog's thresholds (`ORCH_DISK_WARN_PCT`, `ORCH_DISK_CRITICAL_PCT`) and
    /// reminder cooldown (`ORCH_DISK_REMINDER_S`).
    pub disk: orchestrator_actors::domain::disk::DiskRules,
    /// Interval of the disk watchdog's reading (`ORCH_DISK_CHECK_S`).
    pub disk_interval: Duration,
    /// Interval of the housekeeping sweep (`ORCH_HOUSEKEEPING_INTERVAL_S`).
    pub housekeeping_interval: Duration,
    /// How long a finished run's files are kept (`ORCH_RUN_LOG_RETENTION_DAYS`).
    pub run_log_retention: Duration,
    /// How long settled webhook deliveries are kept (`ORCH_EVENT_RETENTION_DAYS`).
    pub event_retention: Duration,
    /// Budget of one CI run of a project's test command (`ORCH_CI_TIMEOUT_S`).
    pub ci_timeout: Duration,
    /// Pause before re-checking a gate or merge that hit infrastructure trouble, or before a
    /// run prepares or publishes again (`ORCH_RETRY_DELAY_S`).
    pub retry_delay: Duration,
    /// Deferred evaluations of one gate in a row before the task is blocked
    /// (`ORCH_GATE_DEFER_MAX`).
    pub gate_defer_max: u32,
    /// Infrastructure failures in a row of one merge-queue step (building, testing or
    /// fast-forwarding a candidate) before its task is blocked (`ORCH_MERGE_RETRY_MAX`).
    pub merge_retry_max: u32,
    /// How often a merge queue frozen because `main` is red looks at `main` again
    /// (`ORCH_MERGE_QUEUE_RECHECK_S`).
    pub merge_queue_recheck: Duration,
    /// How many waiting tasks one merge lease takes at most, their candidates stacked and
    /// tested once (`ORCH_MERGE_BATCH_MAX`; 1 turns batching off).
    pub merge_batch_max: usize,
    /// Retries of a run's worktree preparation or publishing before the task is blocked
    /// (`ORCH_INFRA_RETRY_MAX`).
    pub infra_retry_max: u32,
    /// Plane, Gitea and the webhook intake (`ORCH_PLANE_*`, `ORCH_GITEA_*`, …).
    pub integrations: Integrations,
    /// The Telegram bot posting tracker cards; `None` logs them instead
    /// (`ORCH_TELEGRAM_BOT_TOKEN`).
    pub telegram_bot_token: Option<String>,
    /// The chat the cards go to: a number or `@channel` (`ORCH_TELEGRAM_CHAT_ID`).
    pub telegram_chat_id: Option<String>,
    /// Base URL of the Bot API (`ORCH_TELEGRAM_API_URL`).
    pub telegram_api_url: String,
    /// Whether a changed card is edited in place or bumped to the bottom of the chat
    /// (`ORCH_TRACKER_MODE`).
    pub tracker_mode: TrackerMode,
    /// `ORCH_*` keys that were set but mean nothing to this build (likely typos).
    pub unknown_keys: Vec<String>,
}

/// Every key this build understands, with its default, in `.env.example` order.
pub const KEYS: &[(&str, &str)] = &[
    ("ORCH_DATA_DIR", "./data"),
    ("ORCH_WORKTREES_DIR", ""),
    ("ORCH_BIND", "127.0.0.1:8500"),
    ("ORCH_LOG", "info"),
    ("ORCH_LOG_FORMAT", "text"),
    ("ORCH_SHUTDOWN_TIMEOUT_S", "8"),
    ("ORCH_DESCRIBE_TIMEOUT_MS", "1000"),
    ("ORCH_RESTART_MAX", "5"),
    ("ORCH_RESTART_WINDOW_S", "60"),
    ("ORCH_RESTART_BACKOFF_MS", "100"),
    ("ORCH_RESTART_BACKOFF_MAX_MS", "10000"),
    ("ORCH_DB_READERS", "4"),
    ("ORCH_PROJECTS_JSON", ""),
    ("ORCH_MAX_CONCURRENCY", "1"),
    ("ORCH_OPERATOR_TOKEN", ""),
    ("ORCH_CLAUDE_BIN", "claude"),
    ("ORCH_CLAUDE_ARGS", ""),
    ("ORCH_AGENT_PERMISSION_MODE", "acceptEdits"),
    ("ORCH_AGENT_FALLBACK_MODEL", ""),
    ("ORCH_AGENT_MODEL_ALLOW", ""),
    ("ORCH_AGENT_PROMPTS_DIR", ""),
    ("ORCH_AGENT_CONFIG_DIR", ""),
    ("ORCH_AGENT_TERM_GRACE_S", "20"),
    ("ORCH_SHUTDOWN_AGENTS", "adopt"),
    ("ORCH_AGENT_MODEL_ANALYST", "claude-sonnet-4-5"),
    ("ORCH_AGENT_EFFORT_ANALYST", ""),
    ("ORCH_AGENT_TIMEOUT_ANALYST_S", "1800"),
    ("ORCH_AGENT_MAX_TURNS_ANALYST", "40"),
    (
        "ORCH_AGENT_ALLOWED_TOOLS_ANALYST",
        "Read,Glob,Grep,Write,Edit",
    ),
    ("ORCH_AGENT_MODEL_ARCHITECT", "claude-opus-4-8"),
    ("ORCH_AGENT_EFFORT_ARCHITECT", ""),
    ("ORCH_AGENT_TIMEOUT_ARCHITECT_S", "1800"),
    ("ORCH_AGENT_MAX_TURNS_ARCHITECT", "40"),
    (
        "ORCH_AGENT_ALLOWED_TOOLS_ARCHITECT",
        "Read,Glob,Grep,Write,Edit",
    ),
    ("ORCH_AGENT_MODEL_DEVELOPER", "claude-sonnet-4-5"),
    ("ORCH_AGENT_EFFORT_DEVELOPER", ""),
    ("ORCH_AGENT_TIMEOUT_DEVELOPER_S", "3600"),
    ("ORCH_AGENT_MAX_TURNS_DEVELOPER", "120"),
    (
        "ORCH_AGENT_ALLOWED_TOOLS_DEVELOPER",
        "Read,Glob,Grep,Write,Edit,Bash",
    ),
    ("ORCH_AGENT_MODEL_REVIEWER", "claude-opus-4-8"),
    ("ORCH_AGENT_EFFORT_REVIEWER", ""),
    ("ORCH_AGENT_TIMEOUT_REVIEWER_S", "3000"),
    ("ORCH_AGENT_MAX_TURNS_REVIEWER", "60"),
    (
        "ORCH_AGENT_ALLOWED_TOOLS_REVIEWER",
        "Read,Glob,Grep,Write,Bash(git diff:*),Bash(git log:*)",
    ),
    ("ORCH_AGENT_MODEL_TESTER", "claude-sonnet-4-5"),
    ("ORCH_AGENT_EFFORT_TESTER", ""),
    ("ORCH_AGENT_TIMEOUT_TESTER_S", "1800"),
    ("ORCH_AGENT_MAX_TURNS_TESTER", "80"),
    (
        "ORCH_AGENT_ALLOWED_TOOLS_TESTER",
        "Read,Glob,Grep,Write,Edit,Bash",
    ),
    ("ORCH_AGENT_MODEL_DEPLOYER", "claude-sonnet-4-5"),
    ("ORCH_AGENT_EFFORT_DEPLOYER", ""),
    ("ORCH_AGENT_TIMEOUT_DEPLOYER_S", "1800"),
    ("ORCH_AGENT_MAX_TURNS_DEPLOYER", "40"),
    (
        "ORCH_AGENT_ALLOWED_TOOLS_DEPLOYER",
        "Read,Glob,Grep,Write,Bash",
    ),
    ("ORCH_TRANSIENT_RETRIES", "5"),
    ("ORCH_BACKOFF_BASE_S", "30"),
    ("ORCH_BACKOFF_MAX_S", "900"),
    ("ORCH_BREAKER_THRESHOLD", "3"),
    ("ORCH_BREAKER_COOLDOWN_S", "300"),
    ("ORCH_REAPER_TICK_S", "15"),
    ("ORCH_REAPER_GRACE_TICKS", "4"),
    ("ORCH_RECONCILE_INTERVAL_S", "300"),
    ("ORCH_DISK_WARN_PCT", "85"),
    ("ORCH_DISK_CRITICAL_PCT", "95"),
    ("ORCH_DISK_CHECK_S", "60"),
    ("ORCH_DISK_REMINDER_S", "3600"),
    ("ORCH_HOUSEKEEPING_INTERVAL_S", "3600"),
    ("ORCH_RUN_LOG_RETENTION_DAYS", "30"),
    ("ORCH_EVENT_RETENTION_DAYS", "90"),
    ("ORCH_CI_TIMEOUT_S", "1800"),
    ("ORCH_RETRY_DELAY_S", "30"),
    ("ORCH_GATE_DEFER_MAX", "20"),
    ("ORCH_MERGE_RETRY_MAX", "5"),
    ("ORCH_MERGE_QUEUE_RECHECK_S", "60"),
    ("ORCH_MERGE_BATCH_MAX", "4"),
    ("ORCH_INFRA_RETRY_MAX", "5"),
    ("ORCH_PLANE_API_URL", ""),
    ("ORCH_PLANE_API_TOKEN", ""),
    ("ORCH_PLANE_WORKSPACE_SLUG", ""),
    ("ORCH_PLANE_WEBHOOK_SECRET", ""),
    ("ORCH_PLANE_BOT_ANALYST", ""),
    ("ORCH_PLANE_BOT_ARCHITECT", ""),
    ("ORCH_PLANE_BOT_DEVELOPER", ""),
    ("ORCH_PLANE_BOT_REVIEWER", ""),
    ("ORCH_PLANE_BOT_TESTER", ""),
    ("ORCH_PLANE_BOT_DEPLOYER", ""),
    ("ORCH_PLANE_BOT_USER_IDS", ""),
    ("ORCH_PLANE_STATES_TTL_S", "300"),
    ("ORCH_GITEA_URL", ""),
    ("ORCH_GITEA_TOKEN", ""),
    ("ORCH_GITEA_WEBHOOK_SECRET", ""),
    ("ORCH_ALLOW_UNSIGNED_WEBHOOKS", "false"),
    ("ORCH_WEBHOOK_DEDUP_WINDOW_S", "600"),
    ("ORCH_QG0_TITLE_MAX", "200"),
    ("ORCH_CI_POLL_S", "10"),
    ("ORCH_CI_WAIT_S", "900"),
    ("ORCH_TELEGRAM_BOT_TOKEN", ""),
    ("ORCH_TELEGRAM_CHAT_ID", ""),
    ("ORCH_TELEGRAM_API_URL", "https://api.telegram.org"),
    ("ORCH_TRACKER_MODE", "edit"),
];

/// A configuration problem; its message names the key (or file) and the bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value that does not parse or is out of range.
    #[error("invalid {key}={value:?}: expected {expected}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// Its value, verbatim.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The `.env` file exists but cannot be read or parsed.
    #[error("cannot read {path}: {message}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// The reader's complaint (includes the line when known).
        message: String,
    },
}

impl Config {
    /// Reads `.env` in the working directory (if present), then overlays the process
    /// environment, and validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        let mut vars = read_env_file(Path::new(".env"))?;
        vars.extend(std::env::vars().filter(|(k, _)| k.starts_with("ORCH_")));
        Self::from_vars(vars)
    }

    /// Builds a configuration from explicit key/value pairs (later pairs win); keys not
    /// starting with `ORCH_` are ignored.
    pub fn from_vars<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("ORCH_"))
            .collect();
        let get = |key: &'static str| -> (&'static str, String) {
            let value = vars
                .get(key)
                .cloned()
                .unwrap_or_else(|| default_of(key).to_string());
            (key, value)
        };
        let unknown_keys = vars
            .keys()
            .filter(|k| !KEYS.iter().any(|(known, _)| known == k))
            .cloned()
            .collect();

        let (key, value) = get("ORCH_DATA_DIR");
        let data_dir = PathBuf::from(non_empty(key, value)?);

        // Empty means "beside the rest of the data", which a static default cannot say.
        let (_, value) = get("ORCH_WORKTREES_DIR");
        let worktrees_dir = if value.trim().is_empty() {
            data_dir.join("worktrees")
        } else {
            PathBuf::from(value)
        };

        let (key, value) = get("ORCH_BIND");
        let bind = value
            .parse::<SocketAddr>()
            .map_err(|_| invalid(key, &value, "an IP address and port, e.g. 127.0.0.1:8500"))?;

        let (key, value) = get("ORCH_LOG");
        let log = non_empty(key, value)?;
        EnvFilter::try_new(&log).map_err(|e| {
            invalid(
                key,
                &log,
                &format!("log directives such as info or orchestrator=debug ({e})"),
            )
        })?;

        let (key, value) = get("ORCH_LOG_FORMAT");
        let log_format = match value.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(invalid(key, &value, "text or json")),
        };

        let (key, value) = get("ORCH_PROJECTS_JSON");
        let projects =
            crate::config::projects::parse(&value).map_err(|e| invalid(key, &value, &e))?;
        let integrations = integrations::integrations(&get, &projects)?;
        let (telegram_bot_token, telegram_chat_id, telegram_api_url) =
            integrations::telegram(&get)?;
        let tracker_mode = integrations::tracker_mode(&get)?;

        Ok(Self {
            data_dir,
            worktrees_dir,
            bind,
            log,
            log_format,
            shutdown_timeout: Duration::from_secs(number(get("ORCH_SHUTDOWN_TIMEOUT_S"), 1, 300)?),
            describe_timeout: Duration::from_millis(number(
                get("ORCH_DESCRIBE_TIMEOUT_MS"),
                1,
                60_000,
            )?),
            restart_max: number(get("ORCH_RESTART_MAX"), 0, 1_000)? as u32,
            restart_window: Duration::from_secs(number(get("ORCH_RESTART_WINDOW_S"), 1, 86_400)?),
            restart_backoff: Duration::from_millis(number(
                get("ORCH_RESTART_BACKOFF_MS"),
                1,
                600_000,
            )?),
            restart_backoff_max: Duration::from_millis(number(
                get("ORCH_RESTART_BACKOFF_MAX_MS"),
                1,
                3_600_000,
            )?),
            db_readers: number(get("ORCH_DB_READERS"), 1, 64)? as usize,
            projects: std::sync::Arc::new(projects),
            max_concurrency: number(get("ORCH_MAX_CONCURRENCY"), 1, 64)? as usize,
            operator_token: {
                let (key, value) = get("ORCH_OPERATOR_TOKEN");
                match value.trim() {
                    "" => None,
                    t if t.len() < 16 || t.chars().any(char::is_whitespace) => {
                        return Err(invalid(
                            key,
                            "<hidden>",
                            "at least 16 characters without spaces",
                        ));
                    }
                    t => Some(t.to_string()),
                }
            },
            claude_bin: {
                let (key, value) = get("ORCH_CLAUDE_BIN");
                non_empty(key, value)?
            },
            claude_args: {
                let (key, value) = get("ORCH_CLAUDE_ARGS");
                shell_words::split(&value).map_err(|e| {
                    invalid(
                        key,
                        &value,
                        &format!("arguments as a shell would split them ({e})"),
                    )
                })?
            },
            agents: agents::agent_settings(&get)?,
            retry: RetryPolicy {
                transient_budget: number(get("ORCH_TRANSIENT_RETRIES"), 0, 100)? as u32,
                backoff_base: Duration::from_secs(number(get("ORCH_BACKOFF_BASE_S"), 1, 86_400)?),
                backoff_max: Duration::from_secs(number(get("ORCH_BACKOFF_MAX_S"), 1, 86_400)?),
                ..RetryPolicy::default()
            },
            breaker_threshold: number(get("ORCH_BREAKER_THRESHOLD"), 1, 1_000)? as u32,
            breaker_cooldown: Duration::from_secs(number(
                get("ORCH_BREAKER_COOLDOWN_S"),
                1,
                86_400,
            )?),
            reaper_tick: Duration::from_secs(number(get("ORCH_REAPER_TICK_S"), 1, 3_600)?),
            reaper_grace_ticks: number(get("ORCH_REAPER_GRACE_TICKS"), 1, 1_000)? as u32,
            reconcile_interval: Duration::from_secs(number(
                get("ORCH_RECONCILE_INTERVAL_S"),
                1,
                86_400,
            )?),
            disk: {
                let (key, value) = get("ORCH_DISK_WARN_PCT");
                let warn = number((key, value.clone()), 1, 100)?;
                let critical = number(get("ORCH_DISK_CRITICAL_PCT"), 1, 100)?;
                if warn > critical {
                    return Err(invalid(
                        key,
                        &value,
                        &format!("at most ORCH_DISK_CRITICAL_PCT ({critical})"),
                    ));
                }
                orchestrator_actors::domain::disk::DiskRules {
                    warn_pct: warn as f64,
                    critical_pct: critical as f64,
                    reminder: Duration::from_secs(number(
                        get("ORCH_DISK_REMINDER_S"),
                        60,
                        604_800,
                    )?),
                }
            },
            disk_interval: Duration::from_secs(number(get("ORCH_DISK_CHECK_S"), 1, 3_600)?),
            housekeeping_interval: Duration::from_secs(number(
                get("ORCH_HOUSEKEEPING_INTERVAL_S"),
                1,
                604_800,
            )?),
            run_log_retention: Duration::from_secs(
                86_400 * number(get("ORCH_RUN_LOG_RETENTION_DAYS"), 1, 36_500)?,
            ),
            event_retention: Duration::from_secs(
                86_400 * number(get("ORCH_EVENT_RETENTION_DAYS"), 1, 36_500)?,
            ),
            ci_timeout: Duration::from_secs(number(get("ORCH_CI_TIMEOUT_S"), 1, 86_400)?),
            retry_delay: Duration::from_secs(number(get("ORCH_RETRY_DELAY_S"), 1, 3_600)?),
            gate_defer_max: number(get("ORCH_GATE_DEFER_MAX"), 0, 10_000)? as u32,
            merge_retry_max: number(get("ORCH_MERGE_RETRY_MAX"), 0, 10_000)? as u32,
            merge_batch_max: number(get("ORCH_MERGE_BATCH_MAX"), 1, 64)? as usize,
            merge_queue_recheck: Duration::from_secs(number(
                get("ORCH_MERGE_QUEUE_RECHECK_S"),
                1,
                86_400,
            )?),
            infra_retry_max: number(get("ORCH_INFRA_RETRY_MAX"), 0, 10_000)? as u32,
            integrations,
            telegram_bot_token,
            telegram_chat_id,
            telegram_api_url,
            tracker_mode,
            unknown_keys,
        })
    }

    /// Path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("orchestrator.db")
    }

    /// Directory of agent run logs.
    pub fn runs_dir(&self) -> PathBuf {
        self.data_dir.join("runs")
    }

    /// Directory of the local repository clones the workspace works from.
    pub fn repos_dir(&self) -> PathBuf {
        self.data_dir.join("repos")
    }
}

/// A key's name and value, as read with defaults applied.
type Get<'a> = dyn Fn(&'static str) -> (&'static str, String) + 'a;

fn default_of(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, d)| *d)
        .expect("every key read has a default in KEYS")
}

fn invalid(key: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

fn non_empty(key: &'static str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(key, &value, "a non-empty value"));
    }
    Ok(value)
}

fn number((key, value): (&'static str, String), min: u64, max: u64) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| invalid(key, &value, &format!("a whole number from {min} to {max}")))
}

/// Reads `KEY=value` pairs from `path`; a missing file is an empty set.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::EnvFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    iter.collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::EnvFile {
            path: path.to_path_buf(),
            message: match e {
                dotenvy::Error::LineParse(line, at) => {
                    format!(
                        "cannot parse line {:?} (at character {at})",
                        line.trim_end()
                    )
                }
                other => other.to_string(),
            },
        })
}

mod agents;
mod integrations;
pub mod projects;
#[cfg(test)]
mod tests;
