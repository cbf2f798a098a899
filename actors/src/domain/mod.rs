//! The pipeline's rules, as data and pure functions: ids and stages, the stage table, the
//! artifacts and their front matter, the gates (QG-0 included), what a task does next
//! ([`task_machine`]) and what becomes of a job ([`job_machine`]), retry and restart
//! policies, what the board and the chat hear, branch names, board statuses, the project
//! registry and the one rule that creates a task.

pub mod artifacts;
pub mod branch;
pub mod card;
pub mod creation;
pub mod disk;
pub mod frontmatter;
pub mod gates;
pub mod housekeeping;
pub mod ids;
pub mod job_machine;
pub mod merge_queue;
pub mod notice;
pub mod pipeline;
pub mod projects;
pub mod reconcile;
pub mod resilience;
pub mod restart;
pub mod stage;
pub mod statuses;
pub mod task_machine;
pub mod usage;
pub mod waiting;
