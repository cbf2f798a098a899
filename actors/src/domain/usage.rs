//! What agent runs consumed, summed in one typed place: tokens by kind, cost in whole
//! nano-dollars (so the sums of stages add up to the total to the last digit), and runs.
//! The API's `usage_by_stage`/`usage_total` and the live card's figures come from here.

use serde::Serialize;

use crate::ports::RunRecord;

const NANOS_PER_USD: f64 = 1e9;

/// A run's cost in whole nano-dollars, rounded once; nonsense (negative, NaN) counts as 0.
pub fn cost_nanos(cost_usd: f64) -> u64 {
    if cost_usd.is_finite() && cost_usd > 0.0 {
        // `as` saturates at u64::MAX, which no real cost reaches.
        (cost_usd * NANOS_PER_USD).round() as u64
    } else {
        0
    }
}

/// Tokens, cost and runs of some agent runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Cache-creation input tokens.
    pub cache_creation_tokens: u64,
    /// Cost in whole nano-dollars (exact sums).
    pub cost_nano_usd: u64,
    /// Cost in US dollars, derived from `cost_nano_usd`.
    pub cost_usd: f64,
    /// Runs counted.
    pub runs: u64,
}

impl Usage {
    /// Adds one run.
    pub fn add(&mut self, run: &RunRecord) {
        self.input_tokens += run.input_tokens;
        self.output_tokens += run.output_tokens;
        self.cache_read_tokens += run.cache_read_tokens;
        self.cache_creation_tokens += run.cache_creation_tokens;
        self.cost_nano_usd += cost_nanos(run.cost_usd);
        self.cost_usd = self.cost_nano_usd as f64 / NANOS_PER_USD;
        self.runs += 1;
    }

    /// The sum of `runs`.
    pub fn of<'a>(runs: impl IntoIterator<Item = &'a RunRecord>) -> Self {
        let mut usage = Self::default();
        for run in runs {
            usage.add(run);
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stage;

    fn run(stage: Stage, cost_usd: f64) -> RunRecord {
        RunRecord {
            run_id: "r".into(),
            role: "developer".into(),
            stage,
            status: "succeeded".into(),
            exit_code: Some(0),
            started_at: String::new(),
            finished_at: None,
            model: None,
            input_tokens: 100,
            output_tokens: 10,
            cache_read_tokens: 5,
            cache_creation_tokens: 1,
            cost_usd,
            reason: None,
            launched_by: None,
            adopted_by: None,
        }
    }

    #[test]
    fn sums_are_exact_in_nano_dollars() {
        let runs = [run(Stage::Development, 0.1), run(Stage::Review, 0.2)];
        let total = Usage::of(&runs);
        assert_eq!(total.cost_nano_usd, 300_000_000);
        assert_eq!(total.cost_usd, 0.3, "0.1 + 0.2 in floats would not be 0.3");
        assert_eq!(
            (total.input_tokens, total.output_tokens, total.runs),
            (200, 20, 2)
        );
        assert_eq!(
            (total.cache_read_tokens, total.cache_creation_tokens),
            (10, 2)
        );
        assert_eq!(cost_nanos(-1.0), 0);
        assert_eq!(cost_nanos(f64::NAN), 0);
    }
}
