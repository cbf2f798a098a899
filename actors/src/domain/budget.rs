//! The spend cap of a task: which cap applies (the task's own, set by the operator, else its
//! project's, else `ORCH_TASK_BUDGET_USD`), what the task has spent by stage, and the words a
//! human reads when it waits for more. Amounts are whole nano-dollars, as in
//! [`crate::domain::usage`], so a cap compares exactly with the sum of the runs.

use serde::Serialize;

use crate::Stage;
use crate::domain::task_machine::ProjectRules;
use crate::domain::usage::cost_nanos;
use crate::ports::{RunRecord, TaskRecord};

/// Nano-dollars in one US dollar.
const NANOS_PER_USD: f64 = 1e9;

/// What a task's agent runs cost so far, by stage in pipeline order (stages that cost
/// nothing are left out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spend {
    /// Each stage's cost in nano-dollars, in pipeline order.
    by_stage: Vec<(Stage, u64)>,
}

impl Spend {
    /// The spend of `runs`.
    pub fn of<'a>(runs: impl IntoIterator<Item = &'a RunRecord>) -> Self {
        let mut sums = [0u64; Stage::ALL.len()];
        for run in runs {
            if let Some(i) = Stage::ALL.iter().position(|s| *s == run.stage) {
                sums[i] = sums[i].saturating_add(cost_nanos(run.cost_usd));
            }
        }
        Self {
            by_stage: Stage::ALL
                .into_iter()
                .zip(sums)
                .filter(|(_, nanos)| *nanos > 0)
                .collect(),
        }
    }

    /// A spend of `nanos` at `stage` alone (tests, and whoever knows no more).
    pub fn at(stage: Stage, nanos: u64) -> Self {
        Self {
            by_stage: if nanos > 0 {
                vec![(stage, nanos)]
            } else {
                Vec::new()
            },
        }
    }

    /// The total in nano-dollars.
    pub fn total(&self) -> u64 {
        self.by_stage
            .iter()
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n))
    }

    /// `analysis $0.50, development $1.20` (or `nothing yet`).
    pub fn by_stage_text(&self) -> String {
        if self.by_stage.is_empty() {
            return "nothing yet".into();
        }
        self.by_stage
            .iter()
            .map(|(stage, nanos)| format!("{stage} {}", usd(*nanos)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The cap that applies to `task`: its own (the operator's), else its project's rule.
pub fn cap(task: &TaskRecord, rules: &ProjectRules) -> Option<u64> {
    task.budget_nano_usd.or(rules.budget_nano_usd)
}

/// Dollars as a human reads them: `$1.50`, or more digits for amounts under a cent.
pub fn usd(nanos: u64) -> String {
    let dollars = nanos as f64 / NANOS_PER_USD;
    if nanos != 0 && nanos < 10_000_000 {
        format!("${dollars:.6}")
    } else {
        format!("${dollars:.2}")
    }
}

/// Whole nano-dollars of a cap given in dollars; refused unless a positive, finite number
/// of at least one nano-dollar.
pub fn cap_from_usd(usd: f64) -> Result<u64, String> {
    if !usd.is_finite() || usd <= 0.0 {
        return Err(format!(
            "must be a positive number of US dollars, not {usd}"
        ));
    }
    match cost_nanos(usd) {
        0 => Err(format!("{usd} is below one nano-dollar")),
        nanos => Ok(nanos),
    }
}

/// Why a task waits: the cap, the spend by stage, and by how much a run overshot it.
pub fn waiting_reason(spend: &Spend, cap: u64) -> String {
    let spent = spend.total();
    let mut text = format!(
        "budget: spent {} of the {} cap ({})",
        usd(spent),
        usd(cap),
        spend.by_stage_text()
    );
    if spent > cap {
        text.push_str(&format!("; over the cap by {}", usd(spent - cap)));
    }
    text.push_str("; raise it (POST /tasks/{id}/budget) or stop the task");
    text
}

/// A task's cap and spend as the API shows them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Standing {
    /// The cap that applies, in dollars; `None` when there is none.
    pub cap_usd: Option<f64>,
    /// Where the cap comes from: `task` (the operator's), `project` (its project or
    /// `ORCH_TASK_BUDGET_USD`), or `none`.
    pub cap_source: &'static str,
    /// What its runs cost so far, in dollars.
    pub spent_usd: f64,
    /// What is left under the cap (0 at or over it); `None` without a cap.
    pub left_usd: Option<f64>,
    /// By how much the runs overshot the cap (0 when they did not).
    pub overshoot_usd: f64,
}

impl Standing {
    /// The standing of `task` under `rules` after `spend`.
    pub fn of(task: &TaskRecord, rules: &ProjectRules, spend: &Spend) -> Self {
        let cap = cap(task, rules);
        let spent = spend.total();
        let dollars = |n: u64| n as f64 / NANOS_PER_USD;
        Self {
            cap_usd: cap.map(dollars),
            cap_source: match (task.budget_nano_usd, rules.budget_nano_usd) {
                (Some(_), _) => "task",
                (None, Some(_)) => "project",
                (None, None) => "none",
            },
            spent_usd: dollars(spent),
            left_usd: cap.map(|c| dollars(c.saturating_sub(spent))),
            overshoot_usd: cap.map_or(0.0, |c| dollars(spent.saturating_sub(c))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_positive_dollars_and_reasons_name_the_spend_by_stage() {
        assert_eq!(cap_from_usd(1.5), Ok(1_500_000_000));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12] {
            assert!(cap_from_usd(bad).is_err(), "{bad} must be refused");
        }
        let spend = Spend {
            by_stage: vec![
                (Stage::Analysis, 500_000_000),
                (Stage::Development, 700_000_000),
            ],
        };
        assert_eq!(spend.total(), 1_200_000_000);
        let reason = waiting_reason(&spend, 1_000_000_000);
        assert!(reason.contains("spent $1.20 of the $1.00 cap"), "{reason}");
        assert!(
            reason.contains("analysis $0.50, development $0.70"),
            "{reason}"
        );
        assert!(reason.contains("over the cap by $0.20"), "{reason}");
        assert!(!waiting_reason(&spend, 1_200_000_000).contains("over the cap"));
        assert_eq!(usd(1_000), "$0.000001");
    }
}
