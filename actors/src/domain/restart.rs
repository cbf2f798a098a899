//! The restart policy every supervisor applies: a failed child is restarted after an
//! exponential backoff, and a child that fails more than `max_restarts` times within
//! `window` is left stopped and reported, so a restart storm cannot spin.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a supervisor treats failing children.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestartPolicy {
    /// A child failing more than this many times within `window` is given up on.
    pub max_restarts: u32,
    /// The sliding window over which failures are counted.
    #[serde(serialize_with = "ser_ms")]
    pub window: Duration,
    /// Delay before the first restart; doubled for each further failure in the window.
    #[serde(serialize_with = "ser_ms")]
    pub backoff_initial: Duration,
    /// Upper bound of the backoff delay.
    #[serde(serialize_with = "ser_ms")]
    pub backoff_max: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// What to do about one failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start the child again after this delay.
    Restart {
        /// Backoff delay before the restart.
        after: Duration,
    },
    /// Too many failures in the window: leave it stopped.
    GiveUp {
        /// Failures counted within the window, this one included.
        failures: u32,
    },
}

/// A child that was given up on, as reported by its supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GaveUp {
    /// The child's registered name.
    pub name: String,
    /// Failures within the window when it was given up on.
    pub failures: u32,
    /// The last failure's message.
    pub last_error: String,
}

#[derive(Default, Debug)]
struct History {
    /// Times of recent failures, oldest first, pruned to the window.
    failures: VecDeque<Instant>,
    /// Restarts performed over the supervisor's lifetime.
    restarts: u32,
}

/// Per-child failure history under one [`RestartPolicy`].
#[derive(Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    /// Only children that ever failed have an entry.
    children: HashMap<String, History>,
}

impl RestartTracker {
    /// A tracker with no history.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            children: HashMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// Records a failure of `name` at `now` and decides what to do.
    pub fn on_failure(&mut self, name: &str, now: Instant) -> Decision {
        let window = self.policy.window;
        let history = self.children.entry(name.to_string()).or_default();
        while history
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            history.failures.pop_front();
        }
        history.failures.push_back(now);
        let failures = history.failures.len() as u32;
        if failures > self.policy.max_restarts {
            return Decision::GiveUp { failures };
        }
        let exp = (failures - 1).min(20);
        let after = self
            .policy
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.policy.backoff_max);
        Decision::Restart { after }
    }

    /// Counts a restart actually performed.
    pub fn on_restart(&mut self, name: &str) {
        self.children.entry(name.to_string()).or_default().restarts += 1;
    }

    /// Restarts performed for `name` so far.
    pub fn restarts(&self, name: &str) -> u32 {
        self.children.get(name).map_or(0, |h| h.restarts)
    }

    /// Every child with at least one restart, by name.
    pub fn restart_counts(&self) -> BTreeMap<String, u32> {
        self.children
            .iter()
            .filter(|(_, h)| h.restarts > 0)
            .map(|(n, h)| (n.clone(), h.restarts))
            .collect()
    }

    /// Drops the history of a child that left for good (stopped normally).
    pub fn forget(&mut self, name: &str) {
        self.children.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up() {
        let mut t = RestartTracker::new(policy());
        let now = Instant::now();
        let delays: Vec<_> = (0..3).map(|_| t.on_failure("c", now)).collect();
        assert_eq!(
            delays,
            [100, 200, 300].map(|ms| Decision::Restart {
                after: Duration::from_millis(ms)
            })
        );
        assert_eq!(t.on_failure("c", now), Decision::GiveUp { failures: 4 });
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let mut t = RestartTracker::new(policy());
        let start = Instant::now();
        for _ in 0..3 {
            t.on_failure("c", start);
        }
        let later = start + Duration::from_secs(11);
        assert_eq!(
            t.on_failure("c", later),
            Decision::Restart {
                after: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn children_are_counted_separately_and_forget_clears() {
        let mut t = RestartTracker::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            t.on_failure("a", now);
            t.on_restart("a");
        }
        assert!(matches!(t.on_failure("b", now), Decision::Restart { .. }));
        assert_eq!(t.restarts("a"), 3);
        assert_eq!(t.restarts("b"), 0);
        assert_eq!(
            t.restart_counts().into_iter().collect::<Vec<_>>(),
            [("a".to_string(), 3)]
        );
        t.forget("a");
        assert_eq!(t.restarts("a"), 0);
        assert!(matches!(t.on_failure("a", now), Decision::Restart { .. }));
    }
}
