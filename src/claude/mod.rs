//! The agent-process layer: starting one role agent (the Claude Code CLI, headless) as a
//! supervised child process, and reading the single JSON result object it prints. Also the
//! `scripted-agent` dry-run stand-in that speaks the same contract for tests and demos.

pub mod classify;
pub mod launcher;
pub mod process;
pub mod program;
pub mod result;
pub mod runner;
pub mod scripted;
pub mod settings;
pub mod shim;
pub mod strays;

pub use result::{CliResult, ModelUsage, parse_stdout};
pub use runner::{AgentCommand, AgentOutcome, OnDrop, attach, launch, run, run_announced};
