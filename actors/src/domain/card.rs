//! Builds a task's tracker [`Card`] from what the store holds: the task record and its agent
//! runs. Pure, so every rule about what the card shows is tested here, away from any chat.

use crate::Stage;
use crate::ports::{Card, CardState, CardTotals, RowStatus, RunRecord, StageRow, TaskRecord};

/// The stages an agent works, in pipeline order: the card's rows.
const WORKING: [Stage; 7] = [
    Stage::Analysis,
    Stage::Architecture,
    Stage::Development,
    Stage::Review,
    Stage::Testing,
    Stage::DeployStaging,
    Stage::Deploy,
];

pub use crate::domain::usage::cost_nanos;

fn position(stage: Stage) -> usize {
    Stage::ALL
        .iter()
        .position(|s| *s == stage)
        .expect("every stage is in Stage::ALL")
}

/// The card of `task`, whose runs (oldest first) are `runs`.
pub fn build(task: &TaskRecord, runs: &[RunRecord]) -> Card {
    let state = CardState::of(
        task.stage,
        task.phase,
        task.paused,
        task.blocked_reason.as_deref(),
    );
    let current = position(task.stage);
    let mut rows = Vec::new();
    for stage in WORKING {
        let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.stage == stage).collect();
        let last_status = mine.last().map(|r| r.status.as_str());
        let here = position(stage);
        let status = match task.stage {
            Stage::Done if mine.is_empty() => RowStatus::Skipped,
            Stage::Done => RowStatus::Passed,
            Stage::Cancelled => match last_status {
                None => continue,
                Some("succeeded") => RowStatus::Passed,
                Some("running") => RowStatus::Cancelled,
                Some(_) => RowStatus::Failed,
            },
            _ if here < current && mine.is_empty() => RowStatus::Skipped,
            _ if here < current => RowStatus::Passed,
            // Ran, yet the task is back before it: its gate sent the task back.
            _ if here > current && mine.is_empty() => continue,
            _ if here > current => RowStatus::Failed,
            _ => current_row(&state, last_status),
        };
        let model = mine.iter().rev().find_map(|r| r.model.clone());
        rows.push(StageRow {
            stage,
            status,
            attempt: mine.len() as u32,
            input_tokens: mine.iter().map(|r| r.input_tokens).sum(),
            output_tokens: mine.iter().map(|r| r.output_tokens).sum(),
            cost_nanos: mine.iter().map(|r| cost_nanos(r.cost_usd)).sum(),
            model,
        });
    }
    let totals = rows.iter().fold(CardTotals::default(), |t, r| CardTotals {
        input_tokens: t.input_tokens + r.input_tokens,
        output_tokens: t.output_tokens + r.output_tokens,
        cost_nanos: t.cost_nanos + r.cost_nanos,
    });
    Card {
        work_item_id: task.work_item_id.clone(),
        title: task.title.clone(),
        stage: task.stage,
        state,
        rows,
        totals,
    }
}

/// The row of the stage the task is at.
fn current_row(state: &CardState, last_run: Option<&str>) -> RowStatus {
    match state {
        CardState::Blocked { .. } => RowStatus::Blocked,
        CardState::Paused => RowStatus::Paused,
        CardState::AwaitingApproval | CardState::AwaitingDeployConfirm => RowStatus::Waiting,
        CardState::Gating | CardState::Merging | CardState::InMergeQueue => RowStatus::Gating,
        _ if last_run == Some("running") => RowStatus::Running,
        _ => RowStatus::Queued,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkItemId;
    use crate::ports::Phase;

    fn task(stage: Stage, phase: Phase) -> TaskRecord {
        TaskRecord {
            work_item_id: WorkItemId::parse("ORCH-7").unwrap(),
            repo: "acme/app".into(),
            title: "Fix <1m & co".into(),
            description: String::new(),
            stage,
            paused: false,
            labels: Vec::new(),
            branch: None,
            phase,
            blocked_reason: None,
            developer_retries: 0,
            stage_attempts: 0,
            note: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn run(stage: Stage, status: &str, tokens: (u64, u64), cost_usd: f64) -> RunRecord {
        RunRecord {
            run_id: format!("run-{stage}"),
            role: "r".into(),
            stage,
            status: status.into(),
            exit_code: None,
            started_at: String::new(),
            finished_at: None,
            model: Some(format!("claude-{stage}")),
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            cache_read_tokens: 0,
            cache_creation_tokens: 0,
            cost_usd,
            reason: None,
            launched_by: None,
            adopted_by: None,
        }
    }

    fn statuses(card: &Card) -> Vec<(Stage, RowStatus, u32)> {
        card.rows
            .iter()
            .map(|r| (r.stage, r.status, r.attempt))
            .collect()
    }

    #[test]
    fn a_new_task_has_no_rows_and_zero_totals() {
        let card = build(&task(Stage::Created, Phase::Idle), &[]);
        assert!(card.rows.is_empty());
        assert_eq!(card.totals, CardTotals::default());
        assert_eq!(card.state, CardState::Idle);
        assert_eq!(card.title, "Fix <1m & co", "escaping is the renderer's job");
    }

    #[test]
    fn rows_follow_the_pipeline_with_attempts_tokens_and_the_latest_model() {
        let runs = [
            run(Stage::Analysis, "succeeded", (100, 10), 0.1),
            run(Stage::Development, "failed", (200, 20), 0.2),
            run(Stage::Development, "running", (0, 0), 0.0),
        ];
        let card = build(&task(Stage::Development, Phase::Working), &runs);
        assert_eq!(
            statuses(&card),
            [
                (Stage::Analysis, RowStatus::Passed, 1),
                (Stage::Architecture, RowStatus::Skipped, 0),
                (Stage::Development, RowStatus::Running, 2),
            ]
        );
        let dev = &card.rows[2];
        assert_eq!((dev.input_tokens, dev.output_tokens), (200, 20));
        assert_eq!(dev.model.as_deref(), Some("claude-development"));
        assert_eq!(card.totals.input_tokens, 300);
        assert_eq!(card.totals.output_tokens, 30);
    }

    #[test]
    fn costs_are_whole_nanodollars_and_totals_are_the_exact_sum_of_rows() {
        // 0.1 + 0.2 is not 0.3 in floating point; in nano-dollars it is.
        let runs = [
            run(Stage::Analysis, "succeeded", (0, 0), 0.1),
            run(Stage::Architecture, "succeeded", (0, 0), 0.2),
        ];
        let card = build(&task(Stage::Development, Phase::Working), &runs);
        assert_eq!(card.rows[0].cost_nanos, 100_000_000);
        assert_eq!(card.totals.cost_nanos, 300_000_000);
        assert_eq!(cost_nanos(0.000_000_000_6), 1);
        assert_eq!(cost_nanos(-1.0), 0);
        assert_eq!(cost_nanos(f64::NAN), 0);
    }

    #[test]
    fn the_current_row_shows_human_waits_blocks_and_pauses() {
        let analysed = [run(Stage::Analysis, "succeeded", (1, 1), 0.0)];
        let card = build(&task(Stage::Analysis, Phase::AwaitingApproval), &analysed);
        assert_eq!(card.state, CardState::AwaitingApproval);
        assert_eq!(card.rows[0].status, RowStatus::Waiting);

        let mut blocked = task(Stage::Analysis, Phase::Blocked);
        blocked.blocked_reason = Some("out of attempts".into());
        let card = build(&blocked, &analysed);
        assert_eq!(
            card.state,
            CardState::Blocked {
                reason: "out of attempts".into()
            }
        );
        assert_eq!(card.rows[0].status, RowStatus::Blocked);

        let mut paused = task(Stage::Analysis, Phase::Working);
        paused.paused = true;
        let card = build(&paused, &analysed);
        assert_eq!(card.state, CardState::Paused);
        assert_eq!(card.rows[0].status, RowStatus::Paused);

        let card = build(&task(Stage::Deploy, Phase::AwaitingDeployConfirm), &[]);
        assert_eq!(card.state, CardState::AwaitingDeployConfirm);
        assert_eq!(card.rows.last().unwrap().status, RowStatus::Waiting);
    }

    #[test]
    fn a_stage_that_sent_the_task_back_shows_as_failed() {
        let runs = [
            run(Stage::Development, "succeeded", (1, 1), 0.0),
            run(Stage::Review, "succeeded", (1, 1), 0.0),
        ];
        let card = build(&task(Stage::Development, Phase::Working), &runs);
        assert_eq!(
            statuses(&card)[2..],
            [
                (Stage::Development, RowStatus::Queued, 1),
                (Stage::Review, RowStatus::Failed, 1),
            ]
        );
    }

    #[test]
    fn done_and_cancelled_tasks() {
        let runs = [
            run(Stage::Analysis, "succeeded", (1, 1), 0.0),
            run(Stage::Development, "running", (1, 1), 0.0),
        ];
        let card = build(&task(Stage::Cancelled, Phase::Idle), &runs);
        assert_eq!(card.state, CardState::Cancelled);
        assert_eq!(
            statuses(&card),
            [
                (Stage::Analysis, RowStatus::Passed, 1),
                (Stage::Development, RowStatus::Cancelled, 1),
            ]
        );
        let card = build(&task(Stage::Done, Phase::Idle), &runs[..1]);
        assert_eq!(card.state, CardState::Done);
        assert_eq!(card.rows.len(), 7);
        assert_eq!(card.rows[0].status, RowStatus::Passed);
        assert!(
            card.rows[1..]
                .iter()
                .all(|r| r.status == RowStatus::Skipped)
        );
    }
}
