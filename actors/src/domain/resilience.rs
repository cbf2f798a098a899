//! What the queue does when an agent run fails, as pure functions of the failure, the job's
//! history and an explicit clock, so every timing rule is testable without waiting:
//!
//! - a **transient** failure (rate limit, overload) goes back to the queue after an
//!   exponential backoff — or exactly the retry-after the API stated — on a budget of its own,
//!   without using up one of the stage's attempts;
//! - a **usage limit** that says when it resets parks the whole queue until then;
//! - anything else is **permanent**: the attempt counts, and the task machine decides whether
//!   to try the stage again or block the task;
//! - a [`Breaker`] stops claims after too many transient failures in a row and lets them
//!   resume after a cool-down.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Why an agent run failed, as far as retrying is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FailureClass {
    /// The API was rate limited or overloaded; trying again later is expected to work.
    Transient {
        /// How long the API asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The account's usage limit was reached; it resets at this time.
    UsageLimit {
        /// When the limit resets.
        resets_at: SystemTime,
    },
    /// The agent program itself cannot be started (missing, not executable): nothing the
    /// agent did, and every job would fail the same way until an operator fixes it.
    AgentUnavailable,
    /// Anything else (a crash, a timeout, a bad request, malformed output).
    #[default]
    Permanent,
}

/// The knobs of the retry rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Transient retries a job gets before a transient failure counts as a permanent one.
    pub transient_budget: u32,
    /// First backoff; doubled for every further transient retry of the same job.
    pub backoff_base: Duration,
    /// Upper bound of the computed backoff (a stated retry-after is honoured as stated).
    pub backoff_max: Duration,
    /// Longest park a usage limit may impose; a reset time further away is capped.
    pub park_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            transient_budget: 5,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(15 * 60),
            park_max: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do with a failed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Back to the queue, claimable after `delay`.
    Retry {
        /// The wait.
        delay: Duration,
    },
    /// Back to the queue, and park the whole queue until `until_unix`.
    Park {
        /// Seconds since the epoch.
        until_unix: i64,
    },
    /// Back to the queue with its attempt given back, and hold the whole queue until the
    /// agent program can be started again.
    Hold,
    /// The job failed; the task decides what comes next.
    Fail {
        /// Added to the failure reason when the transient budget ran out.
        exhausted: bool,
    },
}

impl RetryPolicy {
    /// The wait before transient retry number `retry` (1 for the first): exactly the stated
    /// `retry_after` when there is one, else `base · 2^(retry−1)` capped at `backoff_max`.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(stated) = retry_after {
            return stated;
        }
        let exponent = retry.saturating_sub(1).min(30);
        self.backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max)
    }

    /// The plan for a job that failed with `class` after `transient_so_far` transient
    /// retries, at wall-clock time `now`.
    pub fn plan(&self, class: &FailureClass, transient_so_far: u32, now: SystemTime) -> Plan {
        match class {
            FailureClass::Permanent => Plan::Fail { exhausted: false },
            FailureClass::AgentUnavailable => Plan::Hold,
            FailureClass::UsageLimit { resets_at } if *resets_at > now => {
                let until = (*resets_at).min(now + self.park_max);
                Plan::Park {
                    until_unix: unix_seconds_ceil(until),
                }
            }
            // A reset time already past: the limit should be lifted; treat it as transient.
            FailureClass::UsageLimit { .. } => self.transient(None, transient_so_far),
            FailureClass::Transient { retry_after } => {
                self.transient(*retry_after, transient_so_far)
            }
        }
    }

    fn transient(&self, retry_after: Option<Duration>, so_far: u32) -> Plan {
        if so_far >= self.transient_budget {
            return Plan::Fail { exhausted: true };
        }
        Plan::Retry {
            delay: self.backoff(so_far + 1, retry_after),
        }
    }
}

/// Whole seconds since the epoch, rounded up so a park never ends before the reset.
fn unix_seconds_ceil(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = d.as_secs() as i64;
    if d.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    }
}

/// Stops dispatch after `threshold` transient failures in a row; claims resume after
/// `cooldown`. Any run that is not a transient failure closes it again.
#[derive(Clone, Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    consecutive: u32,
    open_until: Option<Instant>,
    opened_total: u64,
}

/// The breaker as shown in `GET /queue`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreakerView {
    /// `closed` or `open`.
    pub state: &'static str,
    /// Transient failures in a row so far.
    pub consecutive_transient: u32,
    /// The threshold that opens it.
    pub threshold: u32,
    /// Seconds until claims resume, while open.
    pub resumes_in_s: Option<f64>,
    /// Times it opened since start.
    pub opened_total: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            consecutive: 0,
            open_until: None,
            opened_total: 0,
        }
    }

    /// Records a transient failure at `now`; returns true if this opened the breaker.
    pub fn record_transient(&mut self, now: Instant) -> bool {
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive >= self.threshold && !self.is_open(now) {
            self.open_until = Some(now + self.cooldown);
            self.opened_total += 1;
            return true;
        }
        false
    }

    /// Records a run that was not a transient failure: the streak is over.
    pub fn record_other(&mut self) {
        self.consecutive = 0;
        self.open_until = None;
    }

    /// Whether claims are stopped at `now`. After the cool-down the breaker lets claims
    /// through again ("half-open"): the next transient failure reopens it at once, since
    /// the streak is still counted, and anything else closes it.
    pub fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|until| now < until)
    }

    /// Its state at `now`.
    pub fn view(&self, now: Instant) -> BreakerView {
        let open = self.is_open(now);
        BreakerView {
            state: if open { "open" } else { "closed" },
            consecutive_transient: self.consecutive,
            threshold: self.threshold,
            resumes_in_s: self
                .open_until
                .filter(|_| open)
                .map(|until| until.saturating_duration_since(now).as_secs_f64()),
            opened_total: self.opened_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            transient_budget: 3,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(60),
            park_max: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_a_stated_retry_after_wins() {
        let p = policy();
        let waits: Vec<u64> = (1..=5).map(|n| p.backoff(n, None).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
        assert_eq!(p.backoff(4, Some(Duration::from_secs(7))).as_secs(), 7);
        assert_eq!(p.backoff(1, Some(Duration::from_secs(120))).as_secs(), 120);
        assert_eq!(p.backoff(u32::MAX, None).as_secs(), 60);
    }

    #[test]
    fn transient_failures_retry_until_their_own_budget_is_spent() {
        let p = policy();
        let now = SystemTime::now();
        let t = FailureClass::Transient {
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            p.plan(&t, 0, now),
            Plan::Retry {
                delay: Duration::from_secs(2)
            }
        );
        let no_hint = FailureClass::Transient { retry_after: None };
        assert_eq!(
            p.plan(&no_hint, 2, now),
            Plan::Retry {
                delay: Duration::from_secs(40)
            }
        );
        assert_eq!(p.plan(&t, 3, now), Plan::Fail { exhausted: true });
        assert_eq!(
            p.plan(&FailureClass::Permanent, 0, now),
            Plan::Fail { exhausted: false }
        );
    }

    #[test]
    fn a_usage_limit_parks_until_its_reset_rounded_up_and_capped() {
        let p = policy();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let resets_at = now + Duration::from_millis(90_500);
        assert_eq!(
            p.plan(&FailureClass::UsageLimit { resets_at }, 0, now),
            Plan::Park {
                until_unix: 1_000_091
            }
        );
        let far = now + Duration::from_secs(86_400 * 3);
        assert_eq!(
            p.plan(&FailureClass::UsageLimit { resets_at: far }, 0, now),
            Plan::Park {
                until_unix: 1_003_600
            }
        );
        // A reset already past is an ordinary transient failure.
        let past = now - Duration::from_secs(5);
        assert_eq!(
            p.plan(&FailureClass::UsageLimit { resets_at: past }, 0, now),
            Plan::Retry {
                delay: Duration::from_secs(10)
            }
        );
        // Parking spends no budget: even an exhausted job parks.
        assert!(matches!(
            p.plan(&FailureClass::UsageLimit { resets_at }, 99, now),
            Plan::Park { .. }
        ));
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_resumes_after_the_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(300));
        assert!(!b.record_transient(t0));
        assert!(!b.record_transient(t0));
        assert!(!b.is_open(t0));
        assert!(b.record_transient(t0 + Duration::from_secs(1)));
        assert!(b.is_open(t0 + Duration::from_secs(1)));
        assert!(b.is_open(t0 + Duration::from_secs(300)));
        let view = b.view(t0 + Duration::from_secs(101));
        assert_eq!(view.state, "open");
        assert_eq!(view.resumes_in_s, Some(200.0));
        assert_eq!(view.opened_total, 1);
        // Cool-down over: claims go through (half-open).
        let later = t0 + Duration::from_secs(302);
        assert!(!b.is_open(later));
        // One more transient failure reopens it at once…
        assert!(b.record_transient(later));
        assert!(b.is_open(later));
        // …and anything else closes it and resets the streak.
        b.record_other();
        assert!(!b.is_open(later));
        assert_eq!(b.view(later).consecutive_transient, 0);
        assert_eq!(b.view(later).opened_total, 2);
    }
}
