//! A task actor's start: it resumes where the task stood, saves nothing it need not, and
//! reads the queue only where the decision depends on it.

use super::*;

#[test]
fn recovery_on_start_resumes_where_the_task_stood() {
    let rules = ProjectRules::default();
    let mut t = task(&[]);
    t.stage = Stage::Testing;
    t.phase = Phase::Working;
    t.stage_attempts = 1;
    assert_eq!(
        decide(
            &t,
            &rules,
            Event::Start {
                job: JobSnapshot::Active
            }
        )
        .effects,
        [Effect::WakeDispatch]
    );
    let finished = decide(
        &t,
        &rules,
        Event::Start {
            job: JobSnapshot::Finished {
                job_id: 3,
                success: true,
            },
        },
    );
    assert!(matches!(
        finished.effects[..],
        [Effect::EvaluateGate {
            stage: Stage::Testing,
            ..
        }]
    ));
    let lost = decide(
        &t,
        &rules,
        Event::Start {
            job: JobSnapshot::None,
        },
    );
    assert!(matches!(
        lost.effects[..],
        [Effect::Enqueue {
            role: Role::Tester,
            ..
        }]
    ));
    t.phase = Phase::AwaitingApproval;
    assert_eq!(
        decide(
            &t,
            &rules,
            Event::Start {
                job: JobSnapshot::None
            }
        ),
        Decision::default()
    );
    let cancel = decide(
        &t,
        &rules,
        Event::Cancel {
            reason: "no longer needed".into(),
        },
    );
    assert_eq!(
        cancel.effects,
        [
            Effect::StopWork {
                reason: "no longer needed".into()
            },
            Effect::DiscardWork,
            Effect::Stop
        ]
    );
    assert_eq!(cancel.update.unwrap().to.unwrap().0, Stage::Cancelled);
}

#[test]
fn a_restart_that_resumes_where_the_task_stood_saves_nothing() {
    let rules = ProjectRules::default();
    let mut t = task(&[]);
    t.stage = Stage::Review;
    t.branch = Some("feature/ACME-001-add-a-greeting".into());
    t.stage_attempts = 1;

    // Gating: the gate is evaluated again; the task is saved (and announced) as it was.
    t.phase = Phase::Gating;
    let d = decide(&t, &rules, start());
    assert_eq!(d.update, None);
    assert!(matches!(
        d.effects[..],
        [Effect::EvaluateGate {
            stage: Stage::Review,
            ..
        }]
    ));

    // Working and its job lost: the job is queued again, the task unchanged.
    t.phase = Phase::Working;
    let d = decide(&t, &rules, start());
    assert_eq!(d.update, None);
    assert!(matches!(
        d.effects[..],
        [Effect::Enqueue {
            stage: Stage::Review,
            role: Role::Reviewer,
            ..
        }]
    ));

    // Working with its job still queued: the dispatcher is woken, unless the task is paused
    // (its job is not claimed until a resume, which wakes the dispatcher itself).
    let active = || Event::Start {
        job: JobSnapshot::Active,
    };
    assert_eq!(decide(&t, &rules, active()).effects, [Effect::WakeDispatch]);
    t.paused = true;
    assert_eq!(decide(&t, &rules, active()), Decision::default());
    let resumed = decide(&t, &rules, Event::Resume);
    assert_eq!(resumed.effects, [Effect::WakeDispatch]);
    t.paused = false;

    // Merging: the merge runs again.
    t.stage = Stage::Deploy;
    t.phase = Phase::Merging;
    assert_eq!(
        decide(&t, &rules, start()),
        Decision {
            update: None,
            effects: vec![Effect::Merge]
        }
    );

    // A start that does change the task still saves it: a finished job goes to its gate.
    t.stage = Stage::Review;
    t.phase = Phase::Working;
    let finished = Event::Start {
        job: JobSnapshot::Finished {
            job_id: 4,
            success: true,
        },
    };
    assert_eq!(
        decide(&t, &rules, finished).update.map(|u| u.phase),
        Some(Phase::Gating)
    );
}

#[test]
fn a_start_that_does_not_read_the_job_snapshot_decides_the_same_whatever_it_says() {
    let rules = ProjectRules::default();
    let snapshots = [
        JobSnapshot::None,
        JobSnapshot::Active,
        JobSnapshot::Finished {
            job_id: 1,
            success: true,
        },
        JobSnapshot::Finished {
            job_id: 1,
            success: false,
        },
    ];
    let mut read = 0;
    for stage in Stage::ALL {
        for phase in Phase::ALL {
            let mut t = task(&[]);
            t.stage = stage;
            t.phase = phase;
            t.stage_attempts = 1;
            let decisions: Vec<_> = snapshots
                .iter()
                .map(|job| decide(&t, &rules, Event::Start { job: job.clone() }))
                .collect();
            if start_reads_job(&t) {
                read += 1;
            } else {
                assert!(
                    decisions.iter().all(|d| *d == decisions[0]),
                    "{stage}/{phase:?} looks at the job snapshot: {decisions:?}"
                );
            }
        }
    }
    // Only a task at work on an agent's stage asks where its job stands.
    assert!(read > 0);
    for phase in [
        Phase::AwaitingApproval,
        Phase::AwaitingDeployConfirm,
        Phase::Blocked,
        Phase::Gating,
        Phase::Merging,
    ] {
        let mut t = task(&[]);
        t.stage = Stage::Development;
        t.phase = phase;
        assert!(!start_reads_job(&t), "{phase:?}");
    }
}
