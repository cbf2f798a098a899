//! The actor tree: `root` → `singletons` (`dispatch` → `run:<job>`, `reaper`, `tracker`,
//! `reconciler`, `disk-watchdog`, `housekeeper`) and `tasks` → `task:<id>`. Each actor owns
//! its state and the work it starts; everything else sends it messages. See
//! `docs/architecture.md` for the tree and who writes what.

pub mod describe;
pub mod disk_watchdog;
pub mod dispatch;
pub mod housekeeper;
pub mod merge_queue;
pub mod owned;
pub mod reaper;
pub mod reconciler;
pub mod run;
pub mod supervisor;
pub mod task;
pub mod tracker;
pub mod tree;
