//! The orchestrator service: configuration, the SQLite store, the git workspace, agent
//! processes, the HTTP surface, signal handling and the CLI. The actor tree and the pipeline domain live in
//! `orchestrator-actors`; this crate provides the adapters they run on.

pub(crate) mod bench;
pub mod claude;
pub mod cli;
pub mod config;
pub(crate) mod demo;
pub(crate) mod forge;
pub mod git;
pub mod gitea;
pub(crate) mod housekeeping;
pub(crate) mod http;
pub mod intake;

pub(crate) mod integrations;
pub(crate) mod logging;
pub(crate) mod metrics;
pub mod os;
pub mod plane;
pub(crate) mod preflight;
pub(crate) mod server;
pub(crate) mod signals;
pub mod store;
pub mod telegram;
