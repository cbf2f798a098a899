//! The preflight: what an unattended instance needs before it can do any work — the agent
//! program runs (and its version), git is there, the data directory is writable, each Plane
//! project answers with the token and its board has the statuses the pipeline steers by,
//! Gitea answers and each `gitea_repo` exists, the Telegram token is valid. `serve` logs it
//! at start; `orchestrator doctor` prints it as a checklist and fails when a check fails.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use orchestrator_actors::domain::statuses::StatusNames;
use tracing::{info, warn};

use crate::claude::program;
use crate::config::Config;
use crate::gitea::GiteaClient;
use crate::plane::PlaneClient;
use crate::telegram::TelegramNotifier;

/// How long a program may take to print its version.
const VERSION_LIMIT: Duration = Duration::from_secs(20);

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// As it should be.
    Ok,
    /// Works, with less than it could (a board column that falls back to a base status).
    Warn,
    /// Something the pipeline needs is missing or unreachable.
    Fail,
}

/// One line of the checklist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// How it came out.
    pub level: Level,
    /// What was found: a version, a name, or what is wrong.
    pub detail: String,
}

impl Check {
    fn new(what: impl Into<String>, level: Level, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            level,
            detail: detail.into(),
        }
    }

    fn of(what: impl Into<String>, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self::new(what, Level::Ok, detail),
            Err(detail) => Self::new(what, Level::Fail, detail),
        }
    }
}

/// Runs every check `config` calls for.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut checks = vec![
        Check::of(
            "agent program",
            program::version(Path::new(&config.claude_bin), VERSION_LIMIT)
                .await
                .map_err(|why| program::agent_unavailable(&why)),
        ),
        Check::of(
            "git",
            program::version(Path::new("git"), VERSION_LIMIT).await,
        ),
        Check::of("data directory", writable(&config.data_dir)),
    ];
    checks.extend(plane(config).await);
    checks.extend(gitea(config).await);
    if let (Some(token), Some(chat)) = (&config.telegram_bot_token, &config.telegram_chat_id) {
        let telegram = TelegramNotifier::new(&config.telegram_api_url, token, chat);
        let answer = telegram
            .bot_name()
            .await
            .map_err(|e| format!("the bot token (ORCH_TELEGRAM_BOT_TOKEN) was not accepted: {e}"));
        checks.push(Check::of("Telegram", answer));
    }
    checks
}

/// Whether a file can be created in `dir` (created first if need be).
fn writable(dir: &Path) -> Result<String, String> {
    let shown = dir.display();
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create {shown} (ORCH_DATA_DIR): {e}"))?;
    let probe = dir.join(format!(".preflight-{}", std::process::id()));
    std::fs::write(&probe, b"ok")
        .map_err(|e| format!("cannot write in {shown} (ORCH_DATA_DIR): {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{shown} is writable"))
}

/// Each Plane project of the registry: its states read with the token, and the statuses
/// its board lacks.
async fn plane(config: &Config) -> Vec<Check> {
    let Some(settings) = &config.integrations.plane else {
        return Vec::new();
    };
    let client = match PlaneClient::new(
        &settings.api_url,
        &settings.workspace,
        &settings.token,
        HashMap::new(),
    ) {
        Ok(client) => client,
        Err(e) => return vec![Check::new("Plane", Level::Fail, e.to_string())],
    };
    let mut checks = Vec::new();
    for project in config.projects.iter() {
        let Some(id) = &project.plane_project_id else {
            continue;
        };
        let what = format!("Plane project of {} ({id})", project.repo);
        let states = match client.list_states(id).await {
            Ok(states) => states,
            Err(e) => {
                let why = format!("cannot read its states with ORCH_PLANE_API_TOKEN: {e}");
                checks.push(Check::new(what, Level::Fail, why));
                continue;
            }
        };
        let present: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
        checks.push(board(
            what,
            &project.plane_states,
            &present,
            project.confirm_deploy,
        ));
    }
    checks
}

/// What a board with the statuses `present` lacks, as a check.
fn board(what: String, names: &StatusNames, present: &[&str], confirm_deploy: bool) -> Check {
    let (triggers, columns) = names.missing_on(present, confirm_deploy);
    if !triggers.is_empty() {
        let mut detail = format!(
            "the board lacks the statuses a human steers by: {}",
            triggers.join(", ")
        );
        if !columns.is_empty() {
            detail.push_str(&format!("; and the columns {}", columns.join(", ")));
        }
        return Check::new(what, Level::Fail, detail);
    }
    if !columns.is_empty() {
        let detail = format!(
            "the board lacks the columns {} (cards fall back to a base status)",
            columns.join(", ")
        );
        return Check::new(what, Level::Warn, detail);
    }
    Check::new(what, Level::Ok, format!("{} statuses", present.len()))
}

/// Each `gitea_repo` of the registry, read with the token.
async fn gitea(config: &Config) -> Vec<Check> {
    let Some(settings) = &config.integrations.gitea else {
        return Vec::new();
    };
    let client = match GiteaClient::new(&settings.url, &settings.token) {
        Ok(client) => client,
        Err(e) => return vec![Check::new("Gitea", Level::Fail, e.to_string())],
    };
    let mut checks = Vec::new();
    for project in config.projects.iter() {
        let Some(repo) = &project.gitea_repo else {
            continue;
        };
        let what = format!("Gitea repository {repo}");
        let answer = client
            .open_pulls(repo)
            .await
            .map(|pulls| format!("reachable ({} open pull requests)", pulls.len()))
            .map_err(|e| format!("cannot read it with ORCH_GITEA_TOKEN: {e}"));
        checks.push(Check::of(what, answer));
    }
    checks
}

/// The checklist as `doctor` prints it.
pub fn render(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| {
            let mark = match c.level {
                Level::Ok => "[ok]  ",
                Level::Warn => "[warn]",
                Level::Fail => "[FAIL]",
            };
            format!("{mark} {}: {}\n", c.what, c.detail)
        })
        .collect()
}

/// `orchestrator doctor`: prints the checklist; an error when a check failed.
pub async fn doctor(config: &Config) -> anyhow::Result<()> {
    let checks = run(config).await;
    print!("{}", render(&checks));
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}

/// `serve`'s preflight: each check logged, what is wrong as a warning.
pub async fn log(config: Config) {
    for check in run(&config).await {
        match check.level {
            Level::Ok => info!(check = %check.what, detail = %check.detail, "preflight"),
            Level::Warn | Level::Fail => {
                warn!(check = %check.what, problem = %check.detail, "preflight")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_without_a_trigger_fails_and_without_a_column_warns() {
        let names = StatusNames::default();
        let all: Vec<&str> = [
            "To Analyse",
            "In Progress",
            "Approved",
            "Rejected",
            "Confirm Deploy",
            "STOP",
            "Analysis",
            "In Review",
            "Architecture",
            "Development",
            "Review",
            "Testing",
            "Deploying",
            "Awaiting Deploy",
            "Done",
            "Blocked",
            "Cancelled",
        ]
        .to_vec();
        assert_eq!(board("b".into(), &names, &all, true).level, Level::Ok);
        let no_column: Vec<&str> = all.iter().copied().filter(|n| *n != "Testing").collect();
        let warned = board("b".into(), &names, &no_column, true);
        assert_eq!(warned.level, Level::Warn);
        assert!(warned.detail.contains("Testing"), "{}", warned.detail);
        let no_stop: Vec<&str> = all.iter().copied().filter(|n| *n != "STOP").collect();
        let failed = board("b".into(), &names, &no_stop, true);
        assert_eq!(failed.level, Level::Fail);
        assert!(failed.detail.contains("STOP"), "{}", failed.detail);
        let rendered = render(&[failed, warned]);
        assert!(rendered.starts_with("[FAIL] b: "), "{rendered}");
        assert!(rendered.contains("\n[warn] b: "), "{rendered}");
    }

    #[test]
    fn an_unwritable_data_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = writable(&file.join("data")).unwrap_err();
        assert!(err.contains("ORCH_DATA_DIR"), "{err}");
        assert!(writable(&dir.path().join("data")).is_ok());
    }
}
