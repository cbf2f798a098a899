//! The operating system as the service's adapters see it: the process table (`/proc`),
//! lock files whose locks outlive the service in the processes it starts, and how full the
//! filesystems are (`disk.rs`, for the disk watchdog).
//!
//! Both serve one purpose: work the service starts — an agent, a git process — must be
//! findable and must keep its claim on what it uses even after the service died without a
//! word (SIGKILL), so a later boot neither loses it nor runs something beside it.

pub mod disk;
pub mod lockfile;
pub mod procs;
