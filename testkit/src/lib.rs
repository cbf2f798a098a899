//! Test support for running the real Claude Code CLI offline: [`anthropic`] is a loopback stub
//! of the Anthropic Messages API that plays the orchestrator's roles (writing artifacts that
//! pass the gates) or injects API faults, and [`claude`] finds the pinned CLI and runs it
//! against the stub in an isolated environment. [`plane`] is a loopback fake of a self-hosted
//! Plane: its REST API v1 and its signed webhook deliveries.

pub mod anthropic;
pub mod claude;
pub mod plane;

pub use anthropic::{AnthropicStub, Fault, RecordedRequest, StubConfig, Verdicts};
pub use claude::{ClaudeEnv, ClaudeRun, claude_bin, cli_fixture, scratch_git_repo};
pub use plane::{PlaneFake, PlaneFakeConfig, PlaneRequest};
