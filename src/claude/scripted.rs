//! `orchestrator scripted-agent`: a dry-run stand-in for `claude -p … --output-format json`
//! for tests and demos. It takes the real CLI's flags, writes the role's artifacts the way
//! an agent would, and answers with one result object that says plainly it is a dry run.
//!
//! Exit codes follow the CLI: 0 done, 1 crashed (scripted `fail=`), and 2 for a missing or
//! invalid `ORCH_*` variable or a bad directive — always with a JSON result on stdout.

pub mod artifacts;
pub mod directives;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use orchestrator_actors::{Stage, WorkItemId};
use serde_json::json;

use directives::{Directives, Role};

/// The real CLI's flags, accepted so the orchestrator can launch this exactly as it launches
/// `claude`; all but the task text are ignored.
#[derive(clap::Args, Debug)]
pub struct ScriptedArgs {
    /// The task text (`scripted-agent:` lines in it steer the run). Unlike the real CLI,
    /// where `-p` is a switch and the prompt positional, the text must follow `-p`.
    /// Required: without it the run exits 2 with an error result.
    #[arg(
        short = 'p',
        long = "print",
        value_name = "TEXT",
        allow_hyphen_values = true
    )]
    pub print: Option<String>,
    /// Ignored: the answer is always the JSON result object.
    #[arg(long = "output-format", value_name = "FORMAT")]
    pub output_format: Option<String>,
    /// Ignored: no model is called.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Ignored: there is no system prompt to extend.
    #[arg(long = "append-system-prompt-file", value_name = "FILE")]
    pub append_system_prompt_file: Option<PathBuf>,
    /// Ignored: no tools are used.
    #[arg(long = "allowedTools", visible_alias = "allowed-tools", value_name = "TOOLS", num_args = 1..)]
    pub allowed_tools: Vec<String>,
    /// Ignored.
    #[arg(long = "permission-mode", value_name = "MODE")]
    pub permission_mode: Option<String>,
    /// Ignored: a scripted run always takes one turn.
    #[arg(long = "max-turns", value_name = "N")]
    pub max_turns: Option<String>,
    /// Ignored.
    #[arg(long, value_name = "LEVEL")]
    pub effort: Option<String>,
    /// Ignored.
    #[arg(long = "fallback-model", value_name = "MODEL")]
    pub fallback_model: Option<String>,
    /// Any further arguments (flags of newer CLI versions), ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

impl ScriptedArgs {
    /// The task text. An unknown flag before `-p` makes clap sweep everything after it into
    /// `rest`, so `-p TEXT` / `--print=TEXT` is looked for there too.
    pub fn task(&self) -> Option<&str> {
        if let Some(text) = &self.print {
            return Some(text);
        }
        let mut args = self.rest.iter();
        while let Some(arg) = args.next() {
            if arg == "-p" || arg == "--print" {
                return args.next().map(String::as_str);
            }
            if let Some(text) = arg.strip_prefix("--print=") {
                return Some(text);
            }
        }
        None
    }
}

/// The environment a scripted run is given by the orchestrator.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentEnv {
    /// `ORCH_ROLE`.
    pub role: Role,
    /// `ORCH_WORK_ITEM`.
    pub work_item: WorkItemId,
    /// `ORCH_ARTIFACTS_DIR`: absolute `docs/work-items/<ID>/` inside the worktree.
    pub artifacts_dir: PathBuf,
    /// `ORCH_ATTEMPT`: this role's run count on the task, from 1 (default 1).
    pub attempt: u32,
    /// `ORCH_STAGE`: required for the deployer only (`deploy-staging` or `deploy`).
    pub stage: Option<Stage>,
}

impl AgentEnv {
    /// Reads and checks the variables through `var`; the error names the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |key: &str| {
            var(key)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("{key} is not set"))
        };
        let role = required("ORCH_ROLE")?
            .trim()
            .parse::<Role>()
            .map_err(|e| format!("ORCH_ROLE: {e}"))?;
        let work_item = WorkItemId::parse(required("ORCH_WORK_ITEM")?.trim())
            .map_err(|e| format!("ORCH_WORK_ITEM: {e}"))?;
        let artifacts_dir = PathBuf::from(required("ORCH_ARTIFACTS_DIR")?);
        if !artifacts_dir.is_absolute() {
            return Err(format!(
                "ORCH_ARTIFACTS_DIR must be an absolute path, got {:?}",
                artifacts_dir
            ));
        }
        let attempt = match var("ORCH_ATTEMPT").filter(|v| !v.trim().is_empty()) {
            None => 1,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "ORCH_ATTEMPT must be a whole number from 1, got {text:?}"
                    ));
                }
            },
        };
        let stage = if role == Role::Deployer {
            let text = required("ORCH_STAGE")
                .map_err(|e| format!("{e} (the deployer needs deploy-staging or deploy)"))?;
            match text.trim().parse::<Stage>() {
                Ok(stage @ (Stage::DeployStaging | Stage::Deploy)) => Some(stage),
                _ => {
                    return Err(format!(
                        "ORCH_STAGE must be deploy-staging or deploy for the deployer, got {text:?}"
                    ));
                }
            }
        } else {
            None
        };
        Ok(Self {
            role,
            work_item,
            artifacts_dir,
            attempt,
            stage,
        })
    }
}

/// What a scripted run answers, before it becomes the JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The process exit code.
    pub exit: u8,
    /// The result text on success, or the error message.
    pub message: String,
    /// The HTTP status of a scripted API error: the CLI then reports `subtype: success`
    /// with `is_error: true`, `api_error_status` and `API Error: …` as the result.
    pub api_status: Option<u16>,
    /// What the run reports it cost, in US dollars (`cost=` directive; 0 otherwise).
    pub cost_usd: f64,
}

impl Reply {
    fn error(exit: u8, message: String) -> Self {
        Self {
            exit,
            message,
            api_status: None,
            cost_usd: 0.0,
        }
    }

    fn api_error(status: u16, message: String) -> Self {
        Self {
            exit: 1,
            message: format!("API Error: {status} {message}"),
            api_status: Some(status),
            cost_usd: 0.0,
        }
    }

    /// The result object, in the CLI's `--output-format json` shape. Errors use the CLI's
    /// `error_during_execution` form: `errors` instead of `result`.
    pub fn to_json(&self, duration_ms: u64) -> serde_json::Value {
        let mut reply = json!({
            "type": "result",
            "subtype": "success",
            "is_error": false,
            "num_turns": 1,
            "duration_ms": duration_ms,
            "duration_api_ms": 0,
            "session_id": session_id(),
            "total_cost_usd": self.cost_usd,
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0
            },
            "modelUsage": {
                "scripted-agent": {
                    "inputTokens": 0,
                    "outputTokens": 0,
                    "cacheReadInputTokens": 0,
                    "cacheCreationInputTokens": 0,
                    "costUSD": self.cost_usd
                }
            }
        });
        if self.exit == 0 {
            reply["result"] = json!(self.message);
        } else if let Some(status) = self.api_status {
            reply["is_error"] = json!(true);
            reply["api_error_status"] = json!(status);
            reply["result"] = json!(self.message);
        } else {
            reply["subtype"] = json!("error_during_execution");
            reply["is_error"] = json!(true);
            reply["errors"] = json!([self.message]);
        }
        reply
    }
}

/// Runs the scripted agent in this process and prints its result object. Needs no service
/// configuration: everything comes from the arguments and the `ORCH_*` agent variables.
pub fn main(args: &ScriptedArgs) -> ExitCode {
    let started = Instant::now();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let reply = match args.task() {
        Some(task) => answer(task, |key| std::env::var(key).ok(), &cwd),
        None => Reply::error(
            2,
            "[scripted-agent] dry run: no task text: pass it with -p/--print <TEXT>".to_string(),
        ),
    };
    if reply.exit != 0 {
        eprintln!("orchestrator scripted-agent: {}", reply.message);
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    println!("{}", reply.to_json(duration_ms));
    ExitCode::from(reply.exit)
}

/// Does one scripted run: reads the environment and the directives, waits if asked, then
/// crashes or writes the role's artifacts. `cwd` is the worktree root.
pub fn answer(task: &str, var: impl Fn(&str) -> Option<String>, cwd: &Path) -> Reply {
    let label = "[scripted-agent] dry run";
    let env = match AgentEnv::from_vars(var) {
        Ok(env) => env,
        Err(e) => return Reply::error(2, format!("{label}: {e}")),
    };
    let directives = match Directives::parse(task) {
        Ok(d) => d,
        Err(e) => return Reply::error(2, format!("{label}: {e}")),
    };
    let (role, attempt) = (env.role, env.attempt);
    if let Some(delay) = directives.sleep(role) {
        std::thread::sleep(delay);
    }
    if directives.usage_limited(role, attempt) {
        let resets = SystemTime::now() + directives.retry_after();
        return Reply::api_error(
            429,
            format!(
                "{{\"type\":\"error\",\"error\":{{\"type\":\"rate_limit_error\",\"message\":\"{label}: usage limit reached; resets at {}\"}}}}",
                humantime::format_rfc3339_millis(resets)
            ),
        );
    }
    if directives.rate_limited(role, attempt) {
        return Reply::api_error(
            429,
            format!(
                "{{\"type\":\"error\",\"error\":{{\"type\":\"rate_limit_error\",\"message\":\"{label}: rate limited (attempt {attempt}); retry-after: {}\"}}}}",
                directives.retry_after().as_secs_f64()
            ),
        );
    }
    if directives.fails(role, attempt) {
        return Reply::error(
            1,
            format!(
                "{label}: simulated crash of the {role} (attempt {attempt}), as scripted by fail="
            ),
        );
    }
    let verdict = directives.verdict(role, attempt);
    let job = artifacts::Job {
        role,
        work_item: &env.work_item,
        artifacts_dir: &env.artifacts_dir,
        worktree: cwd,
        attempt,
        stage: env.stage,
        task,
        verdict,
    };
    let written = artifacts::write(&job).and_then(|mut files| {
        if role == Role::Developer {
            for (path, content) in directives.code(attempt) {
                let file = cwd.join(path);
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&file, format!("{content}\n"))?;
                files.push(file);
            }
        }
        Ok(files)
    });
    match written {
        Ok(files) => {
            let names: Vec<String> = files
                .iter()
                .map(|f| f.strip_prefix(cwd).unwrap_or(f).display().to_string())
                .collect();
            Reply {
                exit: 0,
                api_status: None,
                cost_usd: directives.cost(),
                message: format!(
                    "{label}: {role} wrote {} (verdict {verdict}, attempt {attempt}); no model was called",
                    names.join(", ")
                ),
            }
        }
        Err(e) => Reply::error(
            1,
            format!(
                "{label}: {role} cannot write its artifacts under {}: {e}",
                env.artifacts_dir.display()
            ),
        ),
    }
}

/// Unique enough to tell runs apart in logs, and visibly not a CLI session.
fn session_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("scripted-{:016x}-{:08x}", nanos as u64, std::process::id())
}

#[cfg(test)]
mod tests;
