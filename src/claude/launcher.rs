//! The [`AgentRunner`] port over agent processes: builds the Claude Code CLI argv for a role
//! (`-p <task text> --output-format json --model … --append-system-prompt-file …
//! --allowedTools … --permission-mode … --max-turns …`, plus any configured leading
//! arguments such as `scripted-agent`), the agent's environment, and turns the process
//! outcome into a report with usage, cost and a failure class.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;
use orchestrator_actors::Role;
use orchestrator_actors::domain::resilience::FailureClass;
use orchestrator_actors::ports::workbench::{
    AgentReport, AgentRequest, AgentRunner, RunTrace, SpawnNotice,
};
use orchestrator_actors::ports::{RunFinish, RunOutcome};

use super::classify::classify;
use super::program;
use super::runner::{self, AgentCommand, OnDrop};
use super::settings::AgentSettings;
use super::strays::Marks;

/// Launches agent processes.
pub struct CliLauncher {
    /// The agent program.
    program: PathBuf,
    /// Arguments before the CLI's own (e.g. `scripted-agent`).
    lead_args: Vec<String>,
    /// Where run logs go.
    runs_dir: PathBuf,
    /// Per-role settings.
    settings: AgentSettings,
    /// Each role's system-prompt file.
    prompts: BTreeMap<Role, PathBuf>,
    /// The binary the agents' shim runs from.
    shim: PathBuf,
    /// What a shutdown does to running agents (`ORCH_SHUTDOWN_AGENTS`).
    on_drop: OnDrop,
    /// This instance's agents, as marked in their environment.
    marks: Marks,
}

/// `--max-budget-usd <left>`: the CLI's own stop once a run's cost passes what is left under
/// the task's cap. Rounded up to the next micro-dollar, never to zero.
pub fn max_budget_args(left_nano_usd: u64) -> [String; 2] {
    let micros = left_nano_usd.div_ceil(1_000).max(1);
    [
        "--max-budget-usd".to_string(),
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
    ]
}

impl CliLauncher {
    /// A launcher of `program` with `lead_args`, logging under `runs_dir`, with each role's
    /// `settings` and prompt file.
    pub fn new(
        program: PathBuf,
        lead_args: Vec<String>,
        runs_dir: PathBuf,
        settings: AgentSettings,
        prompts: BTreeMap<Role, PathBuf>,
    ) -> Self {
        let runs_dir = std::path::absolute(&runs_dir).unwrap_or(runs_dir);
        let marks = Marks::new(&runs_dir, settings.term_grace);
        let on_drop = if settings.keep_on_shutdown {
            OnDrop::Keep
        } else {
            OnDrop::Kill
        };
        Self {
            program,
            lead_args,
            runs_dir,
            settings,
            prompts,
            shim: runner::this_binary(),
            on_drop,
            marks,
        }
    }

    /// Runs the agents' shim from `binary` instead of this executable (a program that is not
    /// the `orchestrator` binary itself, such as an example, points it at one).
    pub fn with_shim(mut self, binary: PathBuf) -> Self {
        self.shim = binary;
        self
    }

    /// The full argv after the program for a run of `role` with `task_text`.
    pub fn args(&self, role: Role, task_text: &str) -> Vec<String> {
        let r = self.settings.role(role);
        let mut args = self.lead_args.clone();
        args.extend([
            "-p".to_string(),
            task_text.to_string(),
            "--output-format".into(),
            "json".into(),
            "--model".into(),
            r.model.clone(),
        ]);
        if let Some(prompt) = self.prompts.get(&role) {
            args.push("--append-system-prompt-file".into());
            args.push(prompt.display().to_string());
        }
        // One argv element per tool rule: `Bash(git diff:*)` contains a space.
        args.push("--allowedTools".into());
        args.extend(r.allowed_tools.iter().cloned());
        args.extend([
            "--permission-mode".into(),
            self.settings.permission_mode.clone(),
            "--max-turns".into(),
            r.max_turns.to_string(),
        ]);
        if let Some(effort) = &r.effort {
            args.extend(["--effort".into(), effort.clone()]);
        }
        if let Some(fallback) = self
            .settings
            .fallback_model
            .as_ref()
            .filter(|f| **f != r.model)
        {
            args.extend(["--fallback-model".into(), fallback.clone()]);
        }
        args
    }
}

#[async_trait]
impl AgentRunner for CliLauncher {
    fn model(&self, role: Role) -> Option<String> {
        Some(self.settings.role(role).model.clone())
    }

    fn log_path(&self, run_id: &str) -> PathBuf {
        self.runs_dir.join(format!("{run_id}.log"))
    }

    fn trace(&self, run_id: &str) -> RunTrace {
        self.marks.trace(run_id, &self.log_path(run_id))
    }

    async fn end_strays(&self, keep: &[String]) -> Vec<String> {
        self.marks.end_strays(keep).await
    }

    async fn available(&self) -> Result<(), String> {
        program::resolve(&self.program)
            .map(|_| ())
            .map_err(|why| program::agent_unavailable(&why))
    }

    async fn run(&self, request: AgentRequest, spawned: SpawnNotice) -> AgentReport {
        let mut args = self.args(request.role, &request.task_text);
        if let Some(left) = request.budget_left_nano_usd {
            args.extend(max_budget_args(left));
        }
        let mut env = vec![
            ("ORCH_ROLE".to_string(), request.role.as_str().to_string()),
            ("ORCH_WORK_ITEM".into(), request.work_item_id.to_string()),
            (
                "ORCH_ARTIFACTS_DIR".into(),
                request.workplace.artifacts_dir.display().to_string(),
            ),
            ("ORCH_STAGE".into(), request.stage.as_str().to_string()),
            ("ORCH_ATTEMPT".into(), request.attempt.to_string()),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                "1".into(),
            ),
        ];
        if let Some(dir) = &self.settings.config_dir {
            env.push((
                "CLAUDE_CONFIG_DIR".into(),
                dir.join(&request.run_id).display().to_string(),
            ));
        }
        env.extend(self.marks.of(&request.run_id, &request.workplace.worktree));
        let log_path = self.log_path(&request.run_id);
        let cmd = AgentCommand {
            program: self.program.clone(),
            args,
            cwd: request.workplace.worktree.clone(),
            env,
            log_path: log_path.clone(),
            timeout: self.settings.role(request.role).timeout,
            term_grace: self.settings.term_grace,
            shim: self.shim.clone(),
        };
        let outcome = if request.adopted {
            let shim = self.marks.shim_of(&request.run_id);
            runner::attach(&cmd, shim, Some(spawned), self.on_drop).await
        } else if let Err(why) = program::resolve(&self.program) {
            return unavailable(program::agent_unavailable(&why), log_path);
        } else {
            match self.marks.claim_worktree(&request.workplace.worktree).await {
                Ok(lock) => runner::launch(&cmd, Some(lock), Some(spawned), self.on_drop).await,
                Err(reason) => return AgentReport::infrastructure(reason, log_path),
            }
        };
        let success = outcome.success();
        let mut finish = RunFinish {
            exit_code: outcome.exit_code,
            ..RunFinish::default()
        };
        let reason = match &outcome.result {
            Ok(result) => {
                finish.subtype = Some(result.subtype.clone());
                finish.is_error = Some(result.is_error);
                finish.num_turns = result.num_turns;
                finish.duration_ms = result.duration_ms;
                finish.session_id = result.session_id.clone();
                finish.model = result.primary_model().map(str::to_string);
                for usage in result.model_usage.values() {
                    finish.input_tokens += usage.input_tokens;
                    finish.output_tokens += usage.output_tokens;
                    finish.cache_read_tokens += usage.cache_read_input_tokens;
                    finish.cache_creation_tokens += usage.cache_creation_input_tokens;
                }
                finish.cost_usd = result.cost_usd();
                if success {
                    String::new()
                } else {
                    result
                        .error_message()
                        .unwrap_or_else(|| format!("the agent exited with {:?}", outcome.exit_code))
                }
            }
            Err(e) => format!("{e}; log tail: {}", outcome.log_tail.trim()),
        };
        finish.outcome = if outcome.timed_out {
            // Journaled as killed, whichever signal ended it: the run was stopped by us.
            finish.exit_code = Some(-9);
            RunOutcome::Timeout
        } else if success {
            RunOutcome::Succeeded
        } else {
            RunOutcome::Failed
        };
        let class = if success || outcome.timed_out {
            FailureClass::Permanent
        } else if !request.adopted && outcome.pid.is_none() && outcome.exit_code.is_none() {
            // The program was found but could not be started (not runnable, its interpreter
            // missing): nothing the agent did.
            FailureClass::AgentUnavailable
        } else {
            classify(
                outcome.result.as_ref().ok(),
                &outcome.log_tail,
                SystemTime::now(),
            )
        };
        if !success {
            finish.reason = Some(reason.clone());
        }
        AgentReport {
            success,
            reason,
            class,
            model: finish.model.clone(),
            log_path: log_path.display().to_string(),
            finish,
            infrastructure: false,
        }
    }
}

/// A run that did not start because the agent program cannot be started.
fn unavailable(reason: String, log_path: PathBuf) -> AgentReport {
    AgentReport {
        success: false,
        reason: reason.clone(),
        class: FailureClass::AgentUnavailable,
        model: None,
        log_path: log_path.display().to_string(),
        finish: RunFinish {
            outcome: RunOutcome::Failed,
            reason: Some(reason),
            ..RunFinish::default()
        },
        infrastructure: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn launcher(vars: &[(&str, &str)]) -> CliLauncher {
        let config =
            Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let prompts = Role::ALL
            .into_iter()
            .map(|r| (r, PathBuf::from(format!("/p/{}.md", r.as_str()))))
            .collect();
        CliLauncher::new(
            PathBuf::from("claude"),
            Vec::new(),
            PathBuf::from("/runs"),
            config.agents,
            prompts,
        )
    }

    #[test]
    fn each_role_is_launched_with_its_model_prompt_tools_mode_and_turns() {
        let l = launcher(&[]);
        assert_eq!(
            l.args(Role::Reviewer, "review it"),
            [
                "-p",
                "review it",
                "--output-format",
                "json",
                "--model",
                "claude-opus-4-8",
                "--append-system-prompt-file",
                "/p/reviewer.md",
                "--allowedTools",
                "Read",
                "Glob",
                "Grep",
                "Write",
                "Bash(git diff:*)",
                "Bash(git log:*)",
                "--permission-mode",
                "acceptEdits",
                "--max-turns",
                "60",
            ]
        );
        assert_eq!(
            l.model(Role::Developer).as_deref(),
            Some("claude-sonnet-4-5")
        );
    }

    #[test]
    fn effort_and_fallback_are_passed_only_when_configured_and_distinct() {
        let l = launcher(&[
            ("ORCH_AGENT_EFFORT_DEVELOPER", "high"),
            ("ORCH_AGENT_FALLBACK_MODEL", "claude-sonnet-4-5"),
            ("ORCH_AGENT_PERMISSION_MODE", "bypassPermissions"),
        ]);
        let dev = l.args(Role::Developer, "x").join(" ");
        assert!(dev.contains("--effort high"), "{dev}");
        assert!(dev.contains("--permission-mode bypassPermissions"), "{dev}");
        // The fallback equals the developer's own model: not passed (the CLI refuses it).
        assert!(!dev.contains("--fallback-model"), "{dev}");
        let architect = l.args(Role::Architect, "x").join(" ");
        assert!(
            architect.ends_with("--fallback-model claude-sonnet-4-5"),
            "{architect}"
        );
        assert!(!architect.contains("--effort"), "{architect}");
    }

    #[test]
    fn max_budget_usd_is_what_is_left_rounded_up_to_a_micro_dollar_never_zero() {
        assert_eq!(
            max_budget_args(200_000_000),
            ["--max-budget-usd", "0.200000"]
        );
        assert_eq!(max_budget_args(1_500_000_001)[1], "1.500001");
        assert_eq!(max_budget_args(1)[1], "0.000001");
    }
}
