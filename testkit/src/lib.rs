//! Test support for running the real Claude Code CLI offline: [`anthropic`] is a loopback stub
//! of the Anthropic Messages API that plays the orchestrator's roles (writing artifacts that
//! pass the gates) or injects API faults, and [`claude`] finds the pinned CLI and runs it
//! against the stub in an isolated environment. [`plane`], [`gitea`] and [`telegram`] are
//! loopback fakes of a self-hosted Plane and Gitea and of the Telegram Bot API: their REST
//! APIs, their exact error texts and (Plane, Gitea) their signed webhook deliveries.

pub mod anthropic;
pub mod claude;
pub mod gitea;
pub mod plane;
mod server;
pub mod telegram;

pub use anthropic::{AnthropicStub, Fault, RecordedRequest, StubConfig, Verdicts};
pub use claude::{ClaudeEnv, ClaudeRun, claude_bin, cli_fixture, scratch_git_repo};
pub use gitea::{GiteaFake, GiteaFakeConfig, WebhookTarget};
pub use plane::{PlaneFake, PlaneFakeConfig, PlaneRequest};
pub use telegram::{TelegramFake, TgMessage, TgRequest};
