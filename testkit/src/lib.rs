//! Test support for running the real Claude Code CLI offline: [`anthropic`] is a loopback stub
//! of the Anthropic Messages API that plays the orchestrator's roles (writing artifacts that
//! pass the gates) or injects API faults, and [`claude`] finds the pinned CLI and runs it
//! against the stub in an isolated environment. [`plane`] and [`gitea`] are loopback fakes of
//! a self-hosted Plane and Gitea: their REST APIs and their signed webhook deliveries (the
//! Gitea fake optionally backed by a real bare git repository).

pub mod anthropic;
pub mod claude;
pub mod gitea;
pub mod plane;

pub use anthropic::{AnthropicStub, Fault, RecordedRequest, StubConfig, Verdicts};
pub use claude::{ClaudeEnv, ClaudeRun, claude_bin, cli_fixture, scratch_git_repo};
pub use gitea::{GiteaFake, GiteaFakeConfig, WebhookTarget};
pub use plane::{PlaneFake, PlaneFakeConfig, PlaneRequest};
