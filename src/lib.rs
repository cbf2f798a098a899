//! The orchestrator service: configuration, the SQLite store, the git workspace, agent
//! processes, the HTTP surface, signal handling and the CLI. The actor tree and the pipeline domain live in
//! `orchestrator-actors`; this crate provides the adapters they run on.

pub mod agent;
pub mod bench;
pub mod bench_dispatch;
pub mod bench_pipeline;
pub mod bench_seed;
pub mod bench_webhooks;
pub mod board;
pub mod cli;
pub mod config;
pub mod demo;
pub mod forge;
pub mod gitea;
pub mod http;
pub mod intake;
pub mod integrations;
pub mod logging;
pub mod plane;
pub mod projects;
pub mod server;
pub mod signals;
pub mod store;
pub mod telegram;
pub mod workspace;
