//! The orchestrator's core: the supervised actor tree, the pipeline domain and the ports
//! (traits) through which actors reach the outside world. This crate never depends on the
//! service crate; adapters live there and are handed in through [`ports`].

pub mod artifacts;
pub mod branch;
pub mod card;
pub mod creation;
pub mod describe;
pub mod dispatch;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod frontmatter;
pub mod gates;
pub mod ids;
pub mod job_machine;
pub mod notice;
pub mod pipeline;
pub mod ports;
pub mod projects;
pub mod reaper;
pub mod resilience;
pub mod restart;
pub mod run;
pub mod stage;
pub mod statuses;
pub mod supervisor;
pub mod task;
pub mod task_machine;
pub mod tracker;
pub mod tree;
pub mod workbench;

pub use ids::WorkItemId;
pub use pipeline::{GateKind, Role};
pub use stage::Stage;
