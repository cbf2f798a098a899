//! How each role's agent is launched: model, effort, turns, tools and time budget, plus the
//! settings every role shares (permission mode, fallback model, prompts, config directory).
//! The defaults live here; `ORCH_AGENT_*` keys override them (see `config.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orchestrator_actors::Role;

/// One role's launch settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSettings {
    /// `--model` (`ORCH_AGENT_MODEL_<ROLE>`); always passed.
    pub model: String,
    /// `--effort` when set (`ORCH_AGENT_EFFORT_<ROLE>`).
    pub effort: Option<String>,
    /// Wall-clock budget of one run (`ORCH_AGENT_TIMEOUT_<ROLE>_S`).
    pub timeout: Duration,
    /// `--max-turns` (`ORCH_AGENT_MAX_TURNS_<ROLE>`).
    pub max_turns: u32,
    /// `--allowedTools` (`ORCH_AGENT_ALLOWED_TOOLS_<ROLE>`), one entry per tool rule.
    pub allowed_tools: Vec<String>,
}

/// Every role's settings and the shared ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    /// Per role.
    pub roles: BTreeMap<Role, RoleSettings>,
    /// `--permission-mode` (`ORCH_AGENT_PERMISSION_MODE`).
    pub permission_mode: String,
    /// `--fallback-model` when set and different from the role's model
    /// (`ORCH_AGENT_FALLBACK_MODEL`).
    pub fallback_model: Option<String>,
    /// Directory with `<role>.md` prompts overriding the embedded ones
    /// (`ORCH_AGENT_PROMPTS_DIR`).
    pub prompts_dir: Option<PathBuf>,
    /// When set, each run gets `CLAUDE_CONFIG_DIR=<dir>/<run id>` (`ORCH_AGENT_CONFIG_DIR`).
    pub config_dir: Option<PathBuf>,
    /// How long an agent's process group has between SIGTERM and SIGKILL, whether a timeout,
    /// the reaper or the startup sweep stops it (`ORCH_AGENT_TERM_GRACE_S`).
    pub term_grace: Duration,
    /// A shutdown leaves running agents to the next boot to adopt (`ORCH_SHUTDOWN_AGENTS=
    /// adopt`, the default) instead of killing them (`stop`).
    pub keep_on_shutdown: bool,
}

/// Values `--permission-mode` accepts (Claude Code 2.1.197).
pub const PERMISSION_MODES: [&str; 6] = [
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "default",
    "dontAsk",
    "plan",
];

/// Values `--effort` accepts.
pub const EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "max"];

/// The prompts compiled into the binary, so a fresh machine needs no checkout of
/// `.openclaw/`.
pub fn embedded_prompt(role: Role) -> &'static str {
    match role {
        Role::Analyst => include_str!("../../.openclaw/agents/analyst.md"),
        Role::Architect => include_str!("../../.openclaw/agents/architect.md"),
        Role::Developer => include_str!("../../.openclaw/agents/developer.md"),
        Role::Reviewer => include_str!("../../.openclaw/agents/reviewer.md"),
        Role::Tester => include_str!("../../.openclaw/agents/tester.md"),
        Role::Deployer => include_str!("../../.openclaw/agents/deployer.md"),
    }
}

/// Splits an allowed-tools value at commas that are not inside parentheses
/// (`Bash(git diff:*)` keeps its own punctuation).
pub fn split_tools(value: &str) -> Vec<String> {
    let mut tools = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == ',' && depth == 0 {
            tools.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    tools.push(current);
    tools
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `model` may be used: a `claude-…` id (letters, digits, `-`, `.`, `_`, and a
/// bracketed suffix such as `[1m]`), or a name on the explicit allow-list.
pub fn model_allowed(model: &str, allow: &[String]) -> bool {
    if allow.iter().any(|a| a == model) {
        return true;
    }
    let Some(rest) = model.strip_prefix("claude-") else {
        return false;
    };
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']'))
}

impl AgentSettings {
    /// The settings of `role`.
    pub fn role(&self, role: Role) -> &RoleSettings {
        self.roles
            .get(&role)
            .expect("settings exist for every role")
    }

    /// The longest budget of any role: with [`Self::term_grace`], the reaper's backstop is
    /// above it.
    pub fn longest_timeout(&self) -> Duration {
        self.roles
            .values()
            .map(|r| r.timeout)
            .max()
            .unwrap_or_default()
    }

    /// Writes each role's prompt to `<dir>/<role>.md` — the override from
    /// [`Self::prompts_dir`] when it has one for the role, else the embedded prompt — and
    /// returns the files by role. Done once at startup so every run reads a stable file.
    pub fn install_prompts(&self, dir: &Path) -> std::io::Result<BTreeMap<Role, PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for role in Role::ALL {
            let name = format!("{}.md", role.as_str());
            let text = match &self.prompts_dir {
                Some(over) if over.join(&name).is_file() => {
                    std::fs::read_to_string(over.join(&name))?
                }
                _ => embedded_prompt(role).to_string(),
            };
            let path = dir.join(&name);
            std::fs::write(&path, text)?;
            files.insert(role, path);
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lists_split_outside_parentheses() {
        assert_eq!(
            split_tools("Read, Write,Bash(git diff:*),Bash(a,b) ,"),
            ["Read", "Write", "Bash(git diff:*)", "Bash(a,b)"]
        );
        assert!(split_tools(" ").is_empty());
    }

    #[test]
    fn models_must_be_claude_ids_or_explicitly_allowed() {
        for ok in ["claude-sonnet-4-5", "claude-opus-4-8[1m]", "claude-3.5_x"] {
            assert!(model_allowed(ok, &[]), "{ok}");
        }
        for bad in ["gpt-4", "claude-", "sonnet", "claude-x y", "Claude-sonnet"] {
            assert!(!model_allowed(bad, &[]), "{bad}");
        }
        assert!(model_allowed("sonnet", &["sonnet".to_string()]));
    }

    #[test]
    fn every_role_has_an_embedded_prompt_that_names_its_artifacts() {
        for role in Role::ALL {
            let prompt = embedded_prompt(role);
            assert!(prompt.len() > 500, "{role} prompt is too short");
            assert!(prompt.contains("docs/work-items"), "{role} prompt");
        }
    }
}
