//! The Plane adapter: a REST client for Plane's API v1 (states, labels, issues, comments)
//! that follows Plane's pagination, honours its throttling and writes each role's comments
//! under that role's bot token, plus a TTL cache of each project's states.

pub mod board;
mod client;
mod error;
mod states;
mod types;

pub use client::{DEFAULT_PER_PAGE, MAX_PAGES, PlaneClient};
pub use error::PlaneError;
pub use states::StatesCache;
pub use types::{PlaneComment, PlaneIssue, PlaneLabel, PlaneState, StateGroup};
