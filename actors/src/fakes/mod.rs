//! In-memory stand-ins for the ports, for tests only (compiled with `cfg(test)` or the
//! `fakes` feature, never into the service): stores with the SQLite semantics, and a forge, an
//! agent runner, a chat and an OS that do as a test tells them.

mod idle;
pub mod memory_cards;
pub mod memory_jobs;
pub mod memory_merge_queue;
pub mod memory_store;
mod scripted;

pub use idle::{NoChat, NoForge, NoProcesses, NoRunner};
pub use memory_cards::MemoryCards;
pub use memory_jobs::MemoryJobs;
pub use memory_merge_queue::MemoryMergeQueue;
pub use memory_store::MemoryStore;
pub use scripted::{RunScript, SCRIPTED_CANDIDATE, SCRIPTED_MAIN, ScriptedForge, ScriptedRunner};
