//! The process table as `/proc` shows it: a process's state, group and start time (so a
//! reused pid is never mistaken for the process that was started), and its environment (so
//! processes the service marked when it started them can be found again by a later boot).

use std::collections::BTreeMap;

/// One line of `/proc/<pid>/stat`, the fields we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `Z`…
    pub state: char,
    /// Parent pid.
    pub ppid: i64,
    /// Process group.
    pub pgrp: i64,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

impl Stat {
    /// Running or sleeping: not a zombie, not dead.
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Parses `pid (comm) state ppid pgrp … starttime …`; `comm` may contain anything, so the
/// fields are counted after its closing parenthesis.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After comm: [0]=state [1]=ppid [2]=pgrp … [19]=starttime (field 22 overall).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat`, or `None` when the process is gone (or there is no `/proc`).
pub fn stat_of(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of `pid` in clock ticks after boot; 0 when it cannot be read (the process
/// is already gone, or there is no `/proc`).
pub fn start_ticks(pid: u32) -> u64 {
    stat_of(pid).map_or(0, |s| s.start_ticks)
}

/// The pids in `/proc`, in no particular order; empty where there is no `/proc`.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// Whether group `pgid` has a running (not zombie) member that started at or after
/// `since` clock ticks; `None` where there is no `/proc` to look in.
pub fn live_member_since(pgid: i64, since: u64) -> Option<bool> {
    std::fs::metadata("/proc/self").ok()?;
    Some(pids().into_iter().any(|pid| {
        // None also when it exited while we looked.
        stat_of(pid).is_some_and(|s| s.pgrp == pgid && s.is_live() && s.start_ticks >= since)
    }))
}

/// The variables of `pid`'s environment whose names start with `prefix` (as it was when
/// the process started: a process cannot change what `/proc` shows of it). `None` when the
/// process is gone or not ours to read.
pub fn environ_with_prefix(pid: u32, prefix: &str) -> Option<BTreeMap<String, String>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|entry| entry.starts_with(prefix.as_bytes()))
            .filter_map(|entry| {
                let text = String::from_utf8_lossy(entry);
                let (name, value) = text.split_once('=')?;
                Some((name.to_string(), value.to_string()))
            })
            .collect(),
    )
}

/// A living process found by the marker the service put in its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    /// Its pid.
    pub pid: u32,
    /// Its `/proc` stat when found.
    pub stat: Stat,
    /// Its environment variables that start with the marker's prefix.
    pub marks: BTreeMap<String, String>,
}

/// Every living process (zombies excluded) whose environment has `name=value`, with the
/// rest of its variables starting with `prefix` (which `name` should start with).
pub fn marked(prefix: &str, name: &str, value: &str) -> Vec<Marked> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let marks = environ_with_prefix(pid, prefix)?;
            if marks.get(name).map(String::as_str) != Some(value) {
                return None;
            }
            let stat = stat_of(pid).filter(Stat::is_live)?;
            Some(Marked { pid, stat, marks })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_after_the_command_name() {
        let line = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_marked_child_is_found_by_its_marker_and_an_unmarked_one_is_not() {
        let value = format!("test-{}", std::process::id());
        let mut marked_child = std::process::Command::new("sleep")
            .arg("30")
            .env("ORCH_TEST_MARK", &value)
            .env("ORCH_TEST_OTHER", "x")
            .spawn()
            .unwrap();
        let mut plain = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut found = Vec::new();
        for _ in 0..100 {
            found = marked("ORCH_TEST_", "ORCH_TEST_MARK", &value);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = marked_child.kill();
        let _ = plain.kill();
        let _ = marked_child.wait();
        let _ = plain.wait();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, marked_child.id());
        assert_eq!(found[0].marks["ORCH_TEST_OTHER"], "x");
        assert!(marked("ORCH_TEST_", "ORCH_TEST_MARK", &value).is_empty());
    }
}
