//! Configuration from `ORCH_*` environment variables and an optional `.env` file (the process
//! environment wins). Every value is validated up front; an error names the key, the bad value
//! and what was expected, and startup stops with exit code 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

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
    /// The projects tasks may be created for (`ORCH_PROJECTS_JSON`).
    pub projects: Vec<crate::projects::Project>,
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
    /// Wall-clock budget of one agent run before its process group is killed
    /// (`ORCH_AGENT_TIMEOUT_S`).
    pub agent_timeout: Duration,
    /// Budget of one CI run of a project's test command (`ORCH_CI_TIMEOUT_S`).
    pub ci_timeout: Duration,
    /// Pause before re-checking a gate or merge that hit infrastructure trouble
    /// (`ORCH_RETRY_DELAY_S`).
    pub retry_delay: Duration,
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
    ("ORCH_AGENT_TIMEOUT_S", "3600"),
    ("ORCH_CI_TIMEOUT_S", "1800"),
    ("ORCH_RETRY_DELAY_S", "30"),
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
            projects: {
                let (key, value) = get("ORCH_PROJECTS_JSON");
                crate::projects::parse(&value).map_err(|e| invalid(key, &value, &e))?
            },
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
            agent_timeout: Duration::from_secs(number(get("ORCH_AGENT_TIMEOUT_S"), 1, 86_400)?),
            ci_timeout: Duration::from_secs(number(get("ORCH_CI_TIMEOUT_S"), 1, 86_400)?),
            retry_delay: Duration::from_secs(number(get("ORCH_RETRY_DELAY_S"), 1, 3_600)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_are_embedded() {
        let c = with(&[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.bind.to_string(), "127.0.0.1:8500");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.db_path(), PathBuf::from("./data/orchestrator.db"));
        assert_eq!(c.repos_dir(), PathBuf::from("./data/repos"));
        assert_eq!(c.worktrees_dir, PathBuf::from("./data/worktrees"));
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn worktrees_follow_the_data_dir_unless_set() {
        let c = with(&[("ORCH_DATA_DIR", "/srv/orch")]).unwrap();
        assert_eq!(c.worktrees_dir, PathBuf::from("/srv/orch/worktrees"));
        let c = with(&[
            ("ORCH_DATA_DIR", "/srv/orch"),
            ("ORCH_WORKTREES_DIR", "/fast/wt"),
        ])
        .unwrap();
        assert_eq!(c.worktrees_dir, PathBuf::from("/fast/wt"));
    }

    #[test]
    fn each_bad_value_is_named_with_its_key() {
        for (key, value, expected) in [
            ("ORCH_BIND", "nonsense", "IP address and port"),
            ("ORCH_BIND", "localhost:8500", "IP address and port"),
            ("ORCH_LOG_FORMAT", "xml", "text or json"),
            ("ORCH_LOG", "info,=[", "log directives"),
            ("ORCH_DATA_DIR", " ", "non-empty"),
            ("ORCH_SHUTDOWN_TIMEOUT_S", "0", "from 1 to 300"),
            ("ORCH_RESTART_MAX", "-1", "whole number"),
            ("ORCH_DB_READERS", "lots", "whole number"),
        ] {
            let err = with(&[(key, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid {key}={value:?}")),
                "{err}"
            );
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn later_pairs_win_and_unknown_keys_are_collected() {
        let c = with(&[
            ("ORCH_BIND", "nonsense"),
            ("ORCH_BIND", "0.0.0.0:9000"),
            ("ORCH_BNID", "x"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.unknown_keys, ["ORCH_BNID"]);
    }

    #[test]
    fn env_file_is_read_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.env");
        std::fs::write(&good, "# comment\nORCH_BIND=127.0.0.1:9100\n").unwrap();
        assert_eq!(
            read_env_file(&good).unwrap(),
            [("ORCH_BIND".to_string(), "127.0.0.1:9100".to_string())]
        );
        assert!(
            read_env_file(&dir.path().join("missing.env"))
                .unwrap()
                .is_empty()
        );
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, "ORCH_BIND='unterminated\n").unwrap();
        let err = read_env_file(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.env"), "{err}");
    }

    #[test]
    fn env_example_documents_every_key_with_its_default() {
        let example = include_str!("../.env.example");
        for (key, default) in KEYS {
            let line = format!("{key}={default}");
            assert!(
                example
                    .lines()
                    .any(|l| l.trim_start_matches("# ").trim() == line),
                "missing {line}"
            );
        }
    }
}
