//! The orchestrator's core, in three parts: [`actors`] — the supervised actor tree, one actor
//! per file, each the only writer of its state; [`domain`] — the pipeline's rules as data and
//! pure functions (stages, gates, what a task or a job does next), tested without actors;
//! [`ports`] — the traits through which actors reach the world. This crate never depends on
//! the service crate; adapters live there and are handed in through the ports. In-memory
//! stand-ins for the ports are in `fakes`, for tests only (the `fakes` feature).

pub mod actors;
pub mod domain;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod ports;

pub use domain::ids::WorkItemId;
pub use domain::pipeline::{GateKind, Role};
pub use domain::stage::Stage;
