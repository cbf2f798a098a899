//! Test support for running the real Claude Code CLI offline: [`anthropic`] is a loopback stub
//! of the Anthropic Messages API that plays the orchestrator's roles (writing artifacts that
//! pass the gates) or injects API faults, and [`claude`] finds the pinned CLI and runs it
//! against the stub in an isolated environment.

pub mod anthropic;
pub mod claude;

pub use anthropic::{AnthropicStub, Fault, RecordedRequest, StubConfig, Verdicts};
pub use claude::{ClaudeEnv, ClaudeRun, claude_bin, cli_fixture, scratch_git_repo};
