//! The orchestrator's core: the supervised actor tree, the pipeline domain and the ports
//! (traits) through which actors reach the outside world. This crate never depends on the
//! service crate; adapters live there and are handed in through [`ports`].

pub mod describe;
pub mod ids;
pub mod memory_store;
pub mod ports;
pub mod restart;
pub mod stage;
pub mod supervisor;
pub mod task;
pub mod tree;

pub use ids::WorkItemId;
pub use stage::Stage;
