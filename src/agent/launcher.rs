//! The [`AgentRunner`] port over agent processes: builds the Claude Code CLI argv for a role
//! (`-p <task text> --output-format json …`, plus any configured leading arguments such as
//! `scripted-agent`), the agent's environment, and turns the process outcome into a report
//! with usage and cost.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::Role;
use orchestrator_actors::ports::RunFinish;
use orchestrator_actors::workbench::{AgentReport, AgentRequest, AgentRunner};

use super::runner::{self, AgentCommand};

/// Launches agent processes.
pub struct CliLauncher {
    /// The agent program.
    program: PathBuf,
    /// Arguments before the CLI's own (e.g. `scripted-agent`).
    lead_args: Vec<String>,
    /// Where run logs go.
    runs_dir: PathBuf,
    /// Budget of one run.
    timeout: Duration,
}

impl CliLauncher {
    /// A launcher of `program` with `lead_args`, logging under `runs_dir`.
    pub fn new(
        program: PathBuf,
        lead_args: Vec<String>,
        runs_dir: PathBuf,
        timeout: Duration,
    ) -> Self {
        Self {
            program,
            lead_args,
            runs_dir,
            timeout,
        }
    }
}

#[async_trait]
impl AgentRunner for CliLauncher {
    fn model(&self, _role: Role) -> Option<String> {
        None
    }

    fn log_path(&self, run_id: &str) -> PathBuf {
        self.runs_dir.join(format!("{run_id}.log"))
    }

    async fn run(&self, request: AgentRequest) -> AgentReport {
        let mut args = self.lead_args.clone();
        args.extend([
            "-p".to_string(),
            request.task_text.clone(),
            "--output-format".into(),
            "json".into(),
        ]);
        let env = vec![
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
        let log_path = self.log_path(&request.run_id);
        let outcome = runner::run(AgentCommand {
            program: self.program.clone(),
            args,
            cwd: request.workplace.worktree.clone(),
            env,
            log_path: log_path.clone(),
            timeout: self.timeout,
        })
        .await;
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
            "timeout"
        } else if success {
            "succeeded"
        } else {
            "failed"
        }
        .into();
        if !success {
            finish.reason = Some(reason.clone());
        }
        AgentReport {
            success,
            reason,
            model: finish.model.clone(),
            log_path: log_path.display().to_string(),
            finish,
        }
    }
}
