//! What a filesystem's fill means: below the warning threshold all is well; at it, warn; at
//! the critical threshold, no new agent run starts until the fill is back below the warning
//! threshold (so a disk hovering at the critical line does not flap). Each change of level is
//! said once, a level that lasts is recalled after a cooldown, and the way back is said once.

use std::time::{Duration, Instant};

/// The thresholds and the reminder's cooldown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskRules {
    /// Percent full that warns (`ORCH_DISK_WARN_PCT`).
    pub warn_pct: f64,
    /// Percent full that stops new agent runs (`ORCH_DISK_CRITICAL_PCT`).
    pub critical_pct: f64,
    /// How long a level lasts before it is recalled (`ORCH_DISK_REMINDER_S`).
    pub reminder: Duration,
}

/// How full a filesystem is, as far as the pipeline cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskLevel {
    /// Below the warning threshold.
    #[default]
    Normal,
    /// At or above the warning threshold.
    Warn,
    /// Reached the critical threshold and not yet back below the warning one.
    Critical,
}

/// One filesystem's standing between two readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskState {
    /// Its level.
    pub level: DiskLevel,
    /// When its level was last said (the crossing or a reminder).
    pub said_at: Option<Instant>,
}

/// What to tell a human about a reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DiskNotice {
    /// The fill crossed up into `level`.
    Crossed {
        /// The new level.
        level: DiskLevel,
    },
    /// Still at `level` after the cooldown.
    Reminder {
        /// The level that lasts.
        level: DiskLevel,
    },
    /// Back below the warning threshold.
    Recovered,
}

/// The level `fill_pct` comes to from `level`.
fn level_of(level: DiskLevel, fill_pct: f64, rules: &DiskRules) -> DiskLevel {
    if fill_pct >= rules.critical_pct {
        DiskLevel::Critical
    } else if fill_pct < rules.warn_pct {
        DiskLevel::Normal
    } else if level == DiskLevel::Critical {
        // Hysteresis: critical holds until the fill is back below the warning threshold.
        DiskLevel::Critical
    } else {
        DiskLevel::Warn
    }
}

/// Judges a reading of `fill_pct` at `now` for a filesystem standing at `state`: its new
/// standing and what to say, if anything.
pub fn judge(
    state: DiskState,
    fill_pct: f64,
    now: Instant,
    rules: &DiskRules,
) -> (DiskState, Option<DiskNotice>) {
    let level = level_of(state.level, fill_pct, rules);
    let said = DiskState {
        level,
        said_at: Some(now),
    };
    if level > state.level {
        return (said, Some(DiskNotice::Crossed { level }));
    }
    if level == DiskLevel::Normal {
        let notice = (state.level != DiskLevel::Normal).then_some(DiskNotice::Recovered);
        return (DiskState::default(), notice);
    }
    // Critical down to warn cannot happen (hysteresis); the same level may be recalled.
    let due = state
        .said_at
        .is_none_or(|at| now.saturating_duration_since(at) >= rules.reminder);
    if due {
        return (said, Some(DiskNotice::Reminder { level }));
    }
    (state, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: DiskRules = DiskRules {
        warn_pct: 85.0,
        critical_pct: 95.0,
        reminder: Duration::from_secs(3600),
    };

    /// Feeds `fills`, one a minute, and collects what was said.
    fn walk(fills: &[f64]) -> (DiskState, Vec<Option<DiskNotice>>) {
        let start = Instant::now();
        let mut state = DiskState::default();
        let mut said = Vec::new();
        for (i, fill) in fills.iter().enumerate() {
            let now = start + Duration::from_secs(60 * i as u64);
            let (next, notice) = judge(state, *fill, now, &RULES);
            state = next;
            said.push(notice);
        }
        (state, said)
    }

    #[test]
    fn crossing_up_is_said_once_and_the_way_back_once() {
        let (state, said) = walk(&[50.0, 86.0, 87.0, 96.0, 97.0, 80.0, 81.0]);
        assert_eq!(
            said,
            vec![
                None,
                Some(DiskNotice::Crossed {
                    level: DiskLevel::Warn
                }),
                None,
                Some(DiskNotice::Crossed {
                    level: DiskLevel::Critical
                }),
                None,
                Some(DiskNotice::Recovered),
                None,
            ]
        );
        assert_eq!(state.level, DiskLevel::Normal);
    }

    #[test]
    fn critical_holds_until_the_fill_is_below_warn() {
        let (state, said) = walk(&[96.0, 90.0, 86.0]);
        assert_eq!(state.level, DiskLevel::Critical);
        assert_eq!(&said[1..], &[None, None]);
        let (state, _) = walk(&[96.0, 84.9]);
        assert_eq!(state.level, DiskLevel::Normal);
    }

    #[test]
    fn a_level_that_lasts_is_recalled_after_the_cooldown() {
        let start = Instant::now();
        let (state, first) = judge(DiskState::default(), 90.0, start, &RULES);
        assert!(matches!(first, Some(DiskNotice::Crossed { .. })));
        let (state, quiet) = judge(state, 90.0, start + Duration::from_secs(3599), &RULES);
        assert_eq!(quiet, None);
        let (_, again) = judge(state, 90.0, start + Duration::from_secs(3600), &RULES);
        assert_eq!(
            again,
            Some(DiskNotice::Reminder {
                level: DiskLevel::Warn
            })
        );
    }
}
