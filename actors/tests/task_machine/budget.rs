//! The spend cap: before any agent run is queued the task's spend is held against its cap —
//! at or over it nothing is queued and the task waits in `awaiting-budget`, saying what it
//! spent by stage; the operator's cap launches exactly the run that was due.

use orchestrator_actors::domain::budget::Spend;
use orchestrator_actors::domain::task_machine::decide_spending;

use super::*;

const DOLLAR: u64 = 1_000_000_000;

fn capped(dollars: u64) -> ProjectRules {
    ProjectRules {
        budget_nano_usd: Some(dollars * DOLLAR),
        ..ProjectRules::default()
    }
}

/// A task whose reviewer just passed: its next step queues the tester.
fn reviewed() -> TaskRecord {
    let mut t = task(&[]);
    t.stage = Stage::Review;
    t.phase = Phase::Gating;
    t.stage_attempts = 1;
    t
}

fn passed() -> Event {
    Event::GateEvaluated {
        stage: Stage::Review,
        outcome: pass(),
        deferrals: 0,
    }
}

fn enqueued(d: &Decision) -> Vec<(Stage, Role)> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Enqueue { stage, role, .. } => Some((*stage, *role)),
            _ => None,
        })
        .collect()
}

fn after(t: &TaskRecord, d: &Decision) -> TaskRecord {
    let mut t = t.clone();
    if let Some(u) = &d.update {
        u.apply_to(&mut t);
    }
    t
}

#[test]
fn under_the_cap_the_next_run_is_queued() {
    let t = reviewed();
    let d = decide_spending(&t, &capped(2), &Spend::at(Stage::Review, DOLLAR), passed());
    assert_eq!(enqueued(&d), [(Stage::Testing, Role::Tester)]);
    assert_eq!(after(&t, &d).phase, Phase::Working);
}

#[test]
fn at_or_over_the_cap_no_run_is_queued_and_the_task_waits_saying_what_it_spent() {
    let t = reviewed();
    for spent in [2 * DOLLAR, 2 * DOLLAR + 1] {
        let d = decide_spending(&t, &capped(2), &Spend::at(Stage::Review, spent), passed());
        assert_eq!(enqueued(&d), [], "spent {spent}");
        let waiting = after(&t, &d);
        // The stage change is kept: raising the cap launches the tester, not the reviewer.
        assert_eq!(
            (waiting.stage, waiting.phase, waiting.stage_attempts),
            (Stage::Testing, Phase::AwaitingBudget, 1)
        );
        let reason = waiting.blocked_reason.unwrap();
        assert!(
            reason.contains("of the $2.00 cap (review $2.00"),
            "{reason}"
        );
        assert_eq!(
            reason.contains("over the cap by"),
            spent > 2 * DOLLAR,
            "{reason}"
        );
    }
    // Without a cap, or with a spend nobody read, nothing is held.
    let free = decide_spending(
        &t,
        &ProjectRules::default(),
        &Spend::at(Stage::Review, 99 * DOLLAR),
        passed(),
    );
    assert_eq!(enqueued(&free), [(Stage::Testing, Role::Tester)]);
    assert_eq!(
        enqueued(&decide(&t, &capped(2), passed())),
        [(Stage::Testing, Role::Tester)]
    );
}

#[test]
fn a_failed_run_past_the_cap_is_not_retried_until_the_cap_is_raised() {
    let mut t = task(&[]);
    t.stage = Stage::Development;
    t.phase = Phase::Working;
    t.stage_attempts = 1;
    let spend = Spend::at(Stage::Development, 3 * DOLLAR);
    let failed = Event::JobFinished {
        job_id: 7,
        stage: Stage::Development,
        success: false,
        reason: "Reached maximum budget ($0.2)".into(),
    };
    let d = decide_spending(&t, &capped(3), &spend, failed);
    assert_eq!(enqueued(&d), []);
    let waiting = after(&t, &d);
    assert_eq!(waiting.phase, Phase::AwaitingBudget);
    assert_eq!(
        waiting.stage_attempts, 2,
        "the retry that is due is counted once"
    );
    assert!(waiting.note.unwrap().contains("Reached maximum budget"));

    // A cap at or below the spend is kept, and the task keeps waiting.
    let low = Event::SetBudget {
        cap_nano_usd: 3 * DOLLAR,
    };
    let kept = decide_spending(&after(&t, &d), &capped(3), &spend, low);
    assert_eq!(enqueued(&kept), []);
    let still = after(&after(&t, &d), &kept);
    assert_eq!(
        (still.phase, still.budget_nano_usd),
        (Phase::AwaitingBudget, Some(3 * DOLLAR))
    );

    // A cap above it launches the developer again, with its note, counting no attempt.
    let raise = Event::SetBudget {
        cap_nano_usd: 5 * DOLLAR,
    };
    let w = after(&t, &d);
    let go = decide_spending(&w, &capped(3), &spend, raise);
    assert_eq!(enqueued(&go), [(Stage::Development, Role::Developer)]);
    let Effect::Enqueue { task_text, .. } = &go.effects[0] else {
        unreachable!()
    };
    assert!(task_text.contains("Reached maximum budget"), "{task_text}");
    let working = after(&w, &go);
    assert_eq!(
        (
            working.phase,
            working.stage_attempts,
            working.budget_nano_usd
        ),
        (Phase::Working, 2, Some(5 * DOLLAR))
    );
    assert_eq!(working.blocked_reason, None);
}

#[test]
fn the_tasks_own_cap_overrides_its_projects_and_is_saved_whatever_the_phase() {
    let mut t = reviewed();
    let spend = Spend::at(Stage::Review, 4 * DOLLAR);
    let set = decide_spending(
        &t,
        &capped(2),
        &spend,
        Event::SetBudget {
            cap_nano_usd: 6 * DOLLAR,
        },
    );
    assert_eq!(set.effects, [], "not waiting: the cap is only saved");
    t = after(&t, &set);
    assert_eq!(
        (t.phase, t.budget_nano_usd),
        (Phase::Gating, Some(6 * DOLLAR))
    );
    let d = decide_spending(&t, &capped(2), &spend, passed());
    assert_eq!(enqueued(&d), [(Stage::Testing, Role::Tester)]);
}

#[test]
fn a_restart_while_waiting_holds_again_or_launches_under_a_new_cap_and_stop_ends_it() {
    let mut t = task(&[]);
    t.stage = Stage::Testing;
    t.phase = Phase::AwaitingBudget;
    t.stage_attempts = 1;
    let spend = Spend::at(Stage::Development, 2 * DOLLAR);
    t.blocked_reason = Some(orchestrator_actors::domain::budget::waiting_reason(
        &spend,
        2 * DOLLAR,
    ));
    let start = || Event::Start {
        job: JobSnapshot::None,
    };
    assert_eq!(
        decide_spending(&t, &capped(2), &spend, start()),
        Decision::default(),
        "still at the cap: nothing saved, nothing launched"
    );
    let more = decide_spending(&t, &capped(9), &spend, start());
    assert_eq!(enqueued(&more), [(Stage::Testing, Role::Tester)]);
    assert_eq!(after(&t, &more).blocked_reason, None);
    let stop = decide_spending(
        &t,
        &capped(2),
        &spend,
        Event::Cancel {
            reason: "too dear".into(),
        },
    );
    assert_eq!(after(&t, &stop).stage, Stage::Cancelled);
    assert!(stop.effects.contains(&Effect::Stop));
}
