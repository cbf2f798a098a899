//! Configuration parsing: defaults, per-key validation, agents' settings, `.env`.

use super::*;
use orchestrator_actors::Role;

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
fn the_disk_thresholds_default_to_85_and_95_and_warn_may_not_exceed_critical() {
    let c = with(&[]).unwrap();
    assert_eq!((c.disk.warn_pct, c.disk.critical_pct), (85.0, 95.0));
    assert_eq!(c.disk.reminder, Duration::from_secs(3600));
    assert_eq!(c.disk_interval, Duration::from_secs(60));
    assert_eq!(c.reconcile_interval, Duration::from_secs(300));
    let err = with(&[("ORCH_DISK_WARN_PCT", "96")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid ORCH_DISK_WARN_PCT=\"96\": expected at most ORCH_DISK_CRITICAL_PCT (95)"
    );
    let err = with(&[("ORCH_DISK_CRITICAL_PCT", "101")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid ORCH_DISK_CRITICAL_PCT=\"101\""),
        "{err}"
    );
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
fn agents_get_per_role_defaults() {
    let c = with(&[]).unwrap();
    let timeout = |role| c.agents.role(role).timeout.as_secs();
    assert_eq!(timeout(Role::Developer), 3600);
    assert_eq!(timeout(Role::Reviewer), 3000);
    for role in [Role::Analyst, Role::Architect, Role::Tester, Role::Deployer] {
        assert_eq!(timeout(role), 1800, "{role}");
    }
    for role in Role::ALL {
        assert!(c.agents.role(role).model.starts_with("claude-"), "{role}");
        assert!(!c.agents.role(role).allowed_tools.is_empty(), "{role}");
    }
    assert_eq!(c.agents.permission_mode, "acceptEdits");
    assert_eq!(c.agents.longest_timeout().as_secs(), 3600);
    assert_eq!(
        c.agents.role(Role::Reviewer).allowed_tools,
        [
            "Read",
            "Glob",
            "Grep",
            "Write",
            "Bash(git diff:*)",
            "Bash(git log:*)"
        ]
    );
    let c = with(&[
        ("ORCH_AGENT_MODEL_TESTER", "claude-haiku-4-5"),
        ("ORCH_AGENT_EFFORT_TESTER", "high"),
        ("ORCH_AGENT_TIMEOUT_TESTER_S", "60"),
        ("ORCH_AGENT_MAX_TURNS_TESTER", "7"),
    ])
    .unwrap();
    let tester = c.agents.role(Role::Tester);
    assert_eq!(tester.model, "claude-haiku-4-5");
    assert_eq!(tester.effort.as_deref(), Some("high"));
    assert_eq!((tester.timeout.as_secs(), tester.max_turns), (60, 7));
}

#[test]
fn the_agents_term_grace_defaults_to_20_s_and_takes_0_to_600() {
    assert_eq!(
        with(&[]).unwrap().agents.term_grace,
        Duration::from_secs(20)
    );
    for (value, secs) in [("0", 0), ("45", 45), (" 600 ", 600)] {
        let c = with(&[("ORCH_AGENT_TERM_GRACE_S", value)]).unwrap();
        assert_eq!(c.agents.term_grace, Duration::from_secs(secs), "{value:?}");
    }
    for value in ["601", "-1", "2.5", "", "soon"] {
        let err = with(&[("ORCH_AGENT_TERM_GRACE_S", value)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("invalid ORCH_AGENT_TERM_GRACE_S={value:?}")),
            "{err}"
        );
        assert!(err.contains("from 0 to 600"), "{err}");
    }
}

#[test]
fn a_bad_agent_setting_is_refused_naming_its_key() {
    for (key, value, expected) in [
        (
            "ORCH_AGENT_MODEL_DEVELOPER",
            "gpt-5",
            "starting with claude-",
        ),
        (
            "ORCH_AGENT_MODEL_ANALYST",
            "sonnet",
            "ORCH_AGENT_MODEL_ALLOW",
        ),
        (
            "ORCH_AGENT_FALLBACK_MODEL",
            "llama",
            "starting with claude-",
        ),
        ("ORCH_AGENT_EFFORT_REVIEWER", "extreme", "low, medium, high"),
        ("ORCH_AGENT_TIMEOUT_DEVELOPER_S", "0", "from 1 to 86400"),
        ("ORCH_AGENT_MAX_TURNS_TESTER", "many", "whole number"),
        ("ORCH_AGENT_PERMISSION_MODE", "yolo", "acceptEdits"),
        ("ORCH_AGENT_ALLOWED_TOOLS_DEPLOYER", " , ", "list of tools"),
        ("ORCH_TRANSIENT_RETRIES", "-1", "whole number"),
        ("ORCH_BREAKER_THRESHOLD", "0", "from 1"),
    ] {
        let err = with(&[(key, value)]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("invalid {key}={value:?}")),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    // An alias on the allow-list is accepted.
    let c = with(&[
        ("ORCH_AGENT_MODEL_ALLOW", "sonnet, opus"),
        ("ORCH_AGENT_MODEL_ANALYST", "sonnet"),
    ])
    .unwrap();
    assert_eq!(c.agents.role(Role::Analyst).model, "sonnet");
}

#[test]
fn env_example_documents_every_key_with_its_default() {
    let example = include_str!("../../.env.example");
    for (key, default) in KEYS {
        // A default with spaces is quoted, so the line still parses once uncommented.
        let (line, quoted) = (format!("{key}={default}"), format!("{key}=\"{default}\""));
        assert!(
            example.lines().any(|l| {
                let l = l.trim_start_matches("# ").trim();
                l == line || l == quoted
            }),
            "missing {line}"
        );
    }
}

#[test]
fn env_example_uncommented_is_a_valid_env_file_of_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env");
    let uncommented: String = include_str!("../../.env.example")
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once('=').is_some_and(|(key, _)| {
                key.starts_with("ORCH_")
                    && key
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, uncommented).unwrap();
    let vars = read_env_file(&file).unwrap();
    assert_eq!(vars.len(), KEYS.len());
    let from_file = Config::from_vars(vars).unwrap();
    let defaults = with(&[]).unwrap();
    assert_eq!(from_file.agents, defaults.agents);
    assert_eq!(from_file.bind, defaults.bind);
}

#[test]
fn telegram_is_off_by_default_and_a_token_needs_a_chat() {
    let c = with(&[]).unwrap();
    assert_eq!(c.telegram_bot_token, None);
    assert_eq!(c.telegram_api_url, "https://api.telegram.org");
    assert_eq!(c.tracker_mode, TrackerMode::Edit);

    let err = with(&[("ORCH_TELEGRAM_BOT_TOKEN", "123:abc")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid ORCH_TELEGRAM_CHAT_ID=\"\""),
        "{err}"
    );

    let c = with(&[
        ("ORCH_TELEGRAM_BOT_TOKEN", "123:abc"),
        ("ORCH_TELEGRAM_CHAT_ID", "-100123"),
        ("ORCH_TELEGRAM_API_URL", "http://127.0.0.1:9/"),
        ("ORCH_TRACKER_MODE", "bump"),
    ])
    .unwrap();
    assert_eq!(c.telegram_bot_token.as_deref(), Some("123:abc"));
    assert_eq!(c.telegram_chat_id.as_deref(), Some("-100123"));
    assert_eq!(c.telegram_api_url, "http://127.0.0.1:9");
    assert_eq!(c.tracker_mode, TrackerMode::Bump);
}

#[test]
fn bad_telegram_values_are_named_and_the_token_stays_hidden() {
    for (key, value, expected) in [
        ("ORCH_TRACKER_MODE", "Edit", "edit or bump"),
        (
            "ORCH_TELEGRAM_CHAT_ID",
            "my chat",
            "a number or @channelname",
        ),
        (
            "ORCH_TELEGRAM_API_URL",
            "api.telegram.org",
            "http:// or https://",
        ),
    ] {
        let err = with(&[(key, value)]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("invalid {key}=")), "{err}");
        assert!(err.contains(expected), "{err}");
    }
    let err = with(&[("ORCH_TELEGRAM_BOT_TOKEN", "secret token")])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid ORCH_TELEGRAM_BOT_TOKEN"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn the_task_budget_is_a_positive_dollar_amount_a_project_may_override() {
    assert_eq!(with(&[]).unwrap().task_budget_nano_usd, None);
    let projects = r#"[{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t"},
        {"repo":"a/c","origin":"o","prefix":"C","test_cmd":"t","budget_usd":0.25}]"#;
    let c = with(&[
        ("ORCH_TASK_BUDGET_USD", "2.5"),
        ("ORCH_PROJECTS_JSON", projects),
    ])
    .unwrap();
    assert_eq!(c.task_budget_nano_usd, Some(2_500_000_000));
    let cap = |repo: &str| c.projects.rules(repo).unwrap().budget_nano_usd;
    assert_eq!(cap("a/b"), Some(2_500_000_000), "the default applies");
    assert_eq!(cap("a/c"), Some(250_000_000), "the project's own wins");
    for bad in ["0", "-1", "NaN", "inf", "two"] {
        let err = with(&[("ORCH_TASK_BUDGET_USD", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORCH_TASK_BUDGET_USD") && err.contains("positive number"),
            "{bad}: {err}"
        );
    }
}
