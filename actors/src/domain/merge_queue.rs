//! The merge queue's rules that need no actor: what a red candidate means (the runaway
//! guard) and how a queue's state reads for people.

use crate::ports::merge_queue::{EntryState, Freeze};

/// What to do about a candidate that tested red.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedCandidate {
    /// `main` alone is green at the candidate's base: the change is to blame. It goes back
    /// to development with the failing output, spending a developer retry.
    Bounce,
    /// `main` alone is red at the base: nobody's change is to blame. The queue freezes and
    /// the task waits, its retries untouched.
    Freeze,
    /// Nothing is known of `main` at the base yet: test it alone, once for that commit.
    TestMain,
}

/// The runaway guard: a red candidate whose base is `base`, given the last verdict on
/// `main` alone (its commit and whether it was green).
pub fn judge_red(base: &str, main_verdict: Option<&(String, bool)>) -> RedCandidate {
    match main_verdict {
        Some((sha, true)) if sha == base => RedCandidate::Bounce,
        Some((sha, false)) if sha == base => RedCandidate::Freeze,
        _ => RedCandidate::TestMain,
    }
}

/// Where a bisection of a red batch stands: members `1..=lo` are known green together
/// (`lo = 0`: `main` alone), members `1..=hi` known red together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bisection {
    /// The first red member is `hi`: the culprit.
    Culprit(usize),
    /// Test the candidate of this member next.
    Test(usize),
}

impl Bisection {
    /// The next step between `lo` (green) and `hi` (red).
    pub fn of(lo: usize, hi: usize) -> Self {
        if hi <= lo + 1 {
            Bisection::Culprit(hi)
        } else {
            Bisection::Test(bisect_next(lo, hi))
        }
    }
}

/// The member to test between `lo` (green) and `hi` (red): the middle.
pub fn bisect_next(lo: usize, hi: usize) -> usize {
    lo + (hi - lo) / 2
}

/// A queue's state in one word, for `GET /queue`: `frozen` wins, then what its holder is
/// doing, else `idle`.
pub fn queue_state(frozen: Option<&Freeze>, holder: Option<EntryState>) -> &'static str {
    match (frozen, holder) {
        (Some(_), _) => "frozen",
        (None, Some(state)) => state.as_str(),
        (None, None) => "idle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_is_tested_once_per_commit_and_its_verdict_decides() {
        assert_eq!(judge_red("a", None), RedCandidate::TestMain);
        assert_eq!(
            judge_red("a", Some(&("b".into(), true))),
            RedCandidate::TestMain,
            "a verdict on another main says nothing about this one"
        );
        assert_eq!(
            judge_red("a", Some(&("a".into(), true))),
            RedCandidate::Bounce
        );
        assert_eq!(
            judge_red("a", Some(&("a".into(), false))),
            RedCandidate::Freeze
        );
    }

    #[test]
    fn bisection_finds_the_first_red_member_in_log2_tests() {
        // Members 1..=8, the culprit is 5: red from 5 on.
        for culprit in 1..=8usize {
            let (mut lo, mut hi, mut tests) = (0, 8, 0);
            loop {
                match Bisection::of(lo, hi) {
                    Bisection::Culprit(found) => {
                        assert_eq!(found, culprit);
                        break;
                    }
                    Bisection::Test(m) => {
                        assert!(lo < m && m < hi);
                        tests += 1;
                        if m >= culprit { hi = m } else { lo = m }
                    }
                }
            }
            assert!(tests <= 3, "{culprit}: {tests} tests");
        }
        assert_eq!(Bisection::of(0, 1), Bisection::Culprit(1));
    }

    #[test]
    fn a_frozen_queue_reads_frozen_whatever_its_holder_does() {
        let freeze = Freeze {
            kind: crate::ports::merge_queue::FreezeKind::Operator,
            by: "ops".into(),
            reason: "release".into(),
            at: "2026-12-03T00:00:00Z".into(),
        };
        assert_eq!(
            queue_state(Some(&freeze), Some(EntryState::Testing)),
            "frozen"
        );
        assert_eq!(queue_state(None, Some(EntryState::Testing)), "testing");
        assert_eq!(queue_state(None, None), "idle");
    }
}
