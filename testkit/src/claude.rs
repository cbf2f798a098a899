//! Runs the real Claude Code CLI against an [`AnthropicStub`]: finds the pinned binary
//! (panicking with the install command when it is missing, so no test passes without it),
//! builds an environment that reaches nothing but the stub, and runs the CLI under a hard
//! timeout that kills its whole process group.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::AnthropicStub;

/// The CLI version the tests are written against (the last one that runs on Node 20).
pub const CLAUDE_CODE_VERSION: &str = "2.1.197";

/// Environment variable naming a CLI binary to use instead of the pinned install.
pub const CLAUDE_BIN_ENV: &str = "ORCH_TEST_CLAUDE_BIN";

/// The install command, run from the workspace root.
pub const INSTALL_COMMAND: &str =
    "npm install --prefix .tools/claude-code @anthropic-ai/claude-code@2.1.197";

/// The pinned install's binary, relative to the workspace root.
pub const PINNED_BIN: &str = ".tools/claude-code/node_modules/.bin/claude";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).to_path_buf()
}

/// The Claude Code CLI to test with: `$ORCH_TEST_CLAUDE_BIN` when set, else the pinned
/// install under `<workspace root>/.tools/claude-code`.
///
/// # Panics
/// When that file does not exist, with the command that installs it: a test of the real CLI
/// must fail, never pass silently, on a machine without it.
pub fn claude_bin() -> PathBuf {
    let (path, origin) = match std::env::var_os(CLAUDE_BIN_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), format!("${CLAUDE_BIN_ENV}")),
        _ => (
            workspace_root().join(PINNED_BIN),
            "the pinned install".to_string(),
        ),
    };
    if !path.is_file() {
        panic!(
            "the Claude Code CLI ({origin}) is not at {}. Install it from the workspace root \
             with `{INSTALL_COMMAND}` (bash .ci/run does this), or set {CLAUDE_BIN_ENV} to a \
             claude binary.",
            path.display()
        );
    }
    path
}

/// An isolated environment for the CLI against a stub: only `PATH` is inherited; `HOME` and
/// `CLAUDE_CONFIG_DIR` point into a scratch directory removed on drop; the API key is a dummy
/// and nonessential traffic (telemetry, update checks, title generation) is off, so the CLI
/// connects to nothing but the stub.
pub struct ClaudeEnv {
    /// Scratch `HOME`; `CLAUDE_CONFIG_DIR` is its `.claude`.
    home: tempfile::TempDir,
    /// Every variable set for the CLI, in order; later entries win.
    vars: Vec<(String, String)>,
}

impl ClaudeEnv {
    /// The environment for running the CLI against `stub`.
    ///
    /// # Panics
    /// When the scratch directory cannot be created.
    pub fn new(stub: &AnthropicStub) -> ClaudeEnv {
        Self::for_base_url(&stub.base_url())
    }

    /// The environment for running the CLI against the API at `base_url`.
    ///
    /// # Panics
    /// When the scratch directory cannot be created.
    pub fn for_base_url(base_url: &str) -> ClaudeEnv {
        let home = tempfile::Builder::new()
            .prefix("claude-home-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a scratch HOME for the CLI: {e}"));
        let config_dir = home.path().join(".claude");
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let vars = [
            ("PATH", path),
            ("HOME", home.path().display().to_string()),
            ("CLAUDE_CONFIG_DIR", config_dir.display().to_string()),
            ("ANTHROPIC_BASE_URL", base_url.to_string()),
            ("ANTHROPIC_API_KEY", "sk-test".to_string()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ClaudeEnv { home, vars }
    }

    /// Adds or replaces one variable (e.g. `CLAUDE_CODE_MAX_RETRIES`).
    pub fn set(mut self, key: &str, value: &str) -> ClaudeEnv {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    /// The variables, in the order they are set.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The scratch `HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A command for the CLI in `cwd` with exactly this environment and stdin from
    /// `/dev/null` (an open stdin makes the CLI wait for input).
    pub fn command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(claude_bin());
        cmd.current_dir(cwd).env_clear().stdin(Stdio::null());
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs the CLI in `cwd` with `args`, killing its process group after `timeout`.
    ///
    /// # Panics
    /// When the CLI cannot be started.
    pub fn run(&self, cwd: &Path, args: &[&str], timeout: Duration) -> ClaudeRun {
        let mut cmd = self.command(cwd);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", claude_bin().display()));
        let stdout = drain(&mut child, true);
        let stderr = drain(&mut child, false);
        let (status, timed_out) = wait(&mut child, timeout);
        let elapsed = started.elapsed();
        ClaudeRun {
            exit_code: status.and_then(|s| s.code()),
            timed_out,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            elapsed,
        }
    }
}

/// Reads one of the child's pipes to its end on a thread of its own.
fn drain(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let pipe: Option<Box<dyn Read + Send>> = if stdout {
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>)
    } else {
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>)
    };
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Waits for the child up to `timeout`, then kills its process group (the CLI starts `git`,
/// `rg` and others, which would otherwise hold the pipes open). Returns the exit status, if
/// any, and whether the timeout struck.
fn wait(child: &mut Child, timeout: Duration) -> (Option<std::process::ExitStatus>, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                kill_group(child.id());
                return (Some(status), false);
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                kill_group(child.id());
                let status = child.wait().ok();
                return (status, true);
            }
        }
    }
}

/// Kills whatever is left in the process group the CLI leads.
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
        // The group was created for this child alone (`process_group(0)`).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The outcome of one CLI run.
#[derive(Clone, Debug)]
pub struct ClaudeRun {
    /// The exit code; `None` when killed by a signal (the timeout, for one).
    pub exit_code: Option<i32>,
    /// Whether the run was killed for exceeding its timeout.
    pub timed_out: bool,
    /// Everything the CLI printed on stdout.
    pub stdout: String,
    /// Everything the CLI printed on stderr.
    pub stderr: String,
    /// Wall time from spawn to exit (or kill).
    pub elapsed: Duration,
}

impl ClaudeRun {
    /// The stdout as the single JSON object of `--output-format json`.
    ///
    /// # Panics
    /// When stdout is not JSON, showing what the CLI printed.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "the CLI's stdout is not one JSON object ({e}); exit {:?}, timed out: {}\n\
                 stdout:\n{}\nstderr:\n{}",
                self.exit_code, self.timed_out, self.stdout, self.stderr
            )
        })
    }
}

/// A fresh git repository in a temporary directory (removed on drop), for the CLI to run in
/// the way it runs in a task's worktree.
///
/// # Panics
/// When the directory cannot be created or `git init` fails.
pub fn scratch_git_repo() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("claude-repo-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a scratch repository: {e}"));
    let status = Command::new("git")
        .args(["init", "--quiet", "--initial-branch=main"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run git init in {}: {e}", dir.path().display()));
    assert!(
        status.success(),
        "git init in {} failed: {status}",
        dir.path().display()
    );
    dir
}

/// The stdout the pinned CLI printed in one recorded case (`success`, `bad-request`,
/// `overloaded`, … — the names in `testkit/fixtures/cli-<version>/`), for tests of code that
/// classifies CLI results. `testkit/README.md` says how each was produced.
///
/// # Panics
/// When there is no such fixture.
pub fn cli_fixture(case: &str) -> String {
    let path = workspace_root()
        .join("testkit/fixtures")
        .join(format!("cli-{CLAUDE_CODE_VERSION}"))
        .join(format!("{case}.json"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no CLI fixture {case:?} at {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_the_cli_result_objects() {
        let success: Value = serde_json::from_str(&cli_fixture("success")).unwrap();
        assert_eq!(success["is_error"], false);
        let bad: Value = serde_json::from_str(&cli_fixture("bad-request")).unwrap();
        assert_eq!(bad["api_error_status"], 400);
    }

    #[test]
    fn an_isolated_environment_reaches_only_the_stub() {
        let env = ClaudeEnv::for_base_url("http://127.0.0.1:9").set("CLAUDE_CODE_MAX_RETRIES", "0");
        let get = |key: &str| {
            env.vars()
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ANTHROPIC_BASE_URL"), Some("http://127.0.0.1:9"));
        assert_eq!(get("ANTHROPIC_API_KEY"), Some("sk-test"));
        assert_eq!(get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"), Some("1"));
        assert_eq!(get("CLAUDE_CODE_MAX_RETRIES"), Some("0"));
        assert_eq!(get("HOME"), Some(env.home().to_str().unwrap()));
        assert!(
            get("CLAUDE_CONFIG_DIR")
                .unwrap()
                .starts_with(get("HOME").unwrap())
        );
    }
}
