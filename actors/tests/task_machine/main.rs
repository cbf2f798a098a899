//! The pipeline's rules, driven through `decide` alone: a tiny driver applies each decision
//! to a task record and answers its effects from a script (agent outcomes, gate verdicts,
//! merge results), the way the actor and its adapters would.

use std::collections::VecDeque;

use orchestrator_actors::domain::gates::GateOutcome;
use orchestrator_actors::domain::task_machine::{
    Decision, Effect, Event, JobSnapshot, ProjectRules, decide, start_reads_job,
};
use orchestrator_actors::ports::merge_queue::Integration;
use orchestrator_actors::ports::{Phase, TaskRecord, TaskUpdate};
use orchestrator_actors::{Role, Stage, WorkItemId};

mod recovery;

fn task(labels: &[&str]) -> TaskRecord {
    TaskRecord {
        work_item_id: WorkItemId::parse("ACME-001").unwrap(),
        repo: "acme/app".into(),
        title: "Add a greeting".into(),
        description: "Say hello.".into(),
        stage: Stage::Created,
        paused: false,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        branch: None,
        phase: Phase::Idle,
        blocked_reason: None,
        developer_retries: 0,
        stage_attempts: 0,
        note: None,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

fn pass() -> GateOutcome {
    GateOutcome::Pass {
        reason: "ok".into(),
    }
}

fn fail(reason: &str, must_fix: &str) -> GateOutcome {
    GateOutcome::Fail {
        reason: reason.into(),
        must_fix: Some(must_fix.into()),
        back_to: None,
    }
}

/// Plays a task through the machine.
struct Driver {
    task: TaskRecord,
    rules: ProjectRules,
    /// Stage changes journaled, as (from, to).
    journal: Vec<(Stage, Stage)>,
    /// Every job enqueued, as (stage, role, task text).
    jobs: Vec<(Stage, Role, String)>,
    /// Scripted gate verdicts, per evaluation in order; `pass()` when the script runs out.
    verdicts: VecDeque<(Stage, GateOutcome)>,
    /// Scripted merge-queue news, one per join; a green candidate when the script runs out.
    queue: VecDeque<Integration>,
    /// Effects seen, for assertions.
    effects: Vec<Effect>,
    next_job: i64,
}

impl Driver {
    fn new(task: TaskRecord, rules: ProjectRules) -> Self {
        Self {
            task,
            rules,
            journal: Vec::new(),
            jobs: Vec::new(),
            verdicts: VecDeque::new(),
            queue: VecDeque::new(),
            effects: Vec::new(),
            next_job: 0,
        }
    }

    fn apply(&mut self, decision: Decision) -> Vec<Effect> {
        if let Some(update) = decision.update {
            if let Some((to, _)) = &update.to {
                self.journal.push((self.task.stage, *to));
            }
            update.apply_to(&mut self.task);
        }
        self.effects.extend(decision.effects.clone());
        decision.effects
    }

    /// Sends `event`, then keeps answering effects until the task waits for a human, is
    /// blocked or done. Returns how many events were processed.
    fn run(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        let mut budget = 200;
        while let Some(event) = events.pop_front() {
            budget -= 1;
            assert!(budget > 0, "the pipeline does not settle: {:?}", self.task);
            let decision = decide(&self.task, &self.rules, event);
            for effect in self.apply(decision) {
                match effect {
                    Effect::Enqueue {
                        stage,
                        role,
                        task_text,
                    } => {
                        self.next_job += 1;
                        self.jobs.push((stage, role, task_text));
                        if !self.task.paused {
                            events.push_back(Event::JobFinished {
                                job_id: self.next_job,
                                stage,
                                success: true,
                                reason: String::new(),
                            });
                        }
                    }
                    Effect::EvaluateGate { stage, .. } => {
                        let outcome = match self.verdicts.front() {
                            Some((s, _)) if *s == stage => self.verdicts.pop_front().unwrap().1,
                            _ => pass(),
                        };
                        events.push_back(Event::GateEvaluated {
                            stage,
                            outcome,
                            deferrals: 0,
                        });
                    }
                    Effect::JoinMergeQueue => {
                        let news = self
                            .queue
                            .pop_front()
                            .unwrap_or(Integration::CandidateGreen {
                                sha: "cand123".into(),
                            });
                        events.push_back(Event::Integrated(news));
                    }
                    Effect::Merge => {
                        events.push_back(Event::Integrated(Integration::Merged {
                            sha: "cand123".into(),
                        }));
                    }
                    _ => {}
                }
            }
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let mut v = vec![Stage::Created];
        v.extend(self.journal.iter().map(|(_, to)| *to));
        v
    }
}

fn start() -> Event {
    Event::Start {
        job: JobSnapshot::None,
    }
}

#[test]
fn the_happy_path_runs_every_stage_and_ends_merged() {
    let mut d = Driver::new(task(&["autoApprove"]), ProjectRules::default());
    d.run(start());
    assert_eq!(
        d.stages(),
        [
            Stage::Created,
            Stage::Analysis,
            Stage::Architecture,
            Stage::Development,
            Stage::Review,
            Stage::Testing,
            Stage::Deploy,
            Stage::Done
        ]
    );
    let roles: Vec<_> = d.jobs.iter().map(|(_, r, _)| *r).collect();
    use Role::*;
    assert_eq!(
        roles,
        [Analyst, Architect, Developer, Reviewer, Tester, Deployer]
    );
    assert!(d.effects.contains(&Effect::Stop));
    assert_eq!(d.task.developer_retries, 0);
}

#[test]
fn analysis_waits_for_a_human_and_a_second_approve_changes_nothing() {
    let mut d = Driver::new(task(&[]), ProjectRules::default());
    d.run(start());
    assert_eq!(
        (d.task.stage, d.task.phase),
        (Stage::Analysis, Phase::AwaitingApproval)
    );
    assert_eq!(d.jobs.len(), 1);
    // Human gates fail closed: a confirm-deploy or a resume does not pass analysis.
    d.run(Event::ConfirmDeploy);
    assert_eq!(d.task.phase, Phase::AwaitingApproval);

    d.run(Event::Approve);
    assert_eq!(d.task.stage, Stage::Done);
    let before = (d.journal.len(), d.jobs.len());
    assert_eq!(
        decide(&d.task, &d.rules, Event::Approve),
        Decision {
            update: None,
            effects: vec![Effect::Stop]
        }
    );
    let mut d2 = Driver::new(task(&[]), ProjectRules::default());
    d2.run(start());
    d2.task.phase = Phase::Working; // after the approve was processed, a replay is late
    assert_eq!(
        decide(&d2.task, &d2.rules, Event::Approve),
        Decision::default()
    );
    assert_eq!(before, (d.journal.len(), d.jobs.len()));
}

#[test]
fn a_rejected_analysis_relaunches_the_analyst_with_the_reason() {
    let mut d = Driver::new(task(&[]), ProjectRules::default());
    d.run(start());
    d.run(Event::Reject {
        reason: "the BRD misses the admin users".into(),
    });
    assert_eq!(d.jobs.len(), 2);
    let (stage, role, text) = &d.jobs[1];
    assert_eq!((*stage, *role), (Stage::Analysis, Role::Analyst));
    assert!(text.contains("the BRD misses the admin users"), "{text}");
    assert_eq!(
        (d.task.stage, d.task.phase),
        (Stage::Analysis, Phase::AwaitingApproval)
    );
    assert_eq!(d.journal.len(), 1, "a rejection stays in analysis");
}

#[test]
fn request_changes_once_rolls_back_exactly_once_with_the_findings() {
    let mut d = Driver::new(task(&["autoApprove"]), ProjectRules::default());
    d.verdicts.push_back((
        Stage::Review,
        fail(
            "12-review.md: verdict REQUEST_CHANGES",
            "### P1 — Must fix\n- handle the empty name",
        ),
    ));
    d.run(start());
    assert_eq!(d.task.stage, Stage::Done);
    assert_eq!(d.task.developer_retries, 1);
    let rollbacks: Vec<_> = d
        .journal
        .iter()
        .filter(|(_, to)| *to == Stage::Development)
        .collect();
    assert_eq!(
        rollbacks,
        [
            &(Stage::Architecture, Stage::Development),
            &(Stage::Review, Stage::Development)
        ]
    );
    let dev_runs: Vec<_> = d
        .jobs
        .iter()
        .filter(|(_, r, _)| *r == Role::Developer)
        .collect();
    assert_eq!(dev_runs.len(), 2);
    assert!(
        dev_runs[1].2.contains("handle the empty name"),
        "{}",
        dev_runs[1].2
    );
    assert!(!dev_runs[0].2.contains("Must fix"));
}

#[test]
fn three_red_rounds_park_the_task_and_launch_nothing_more() {
    let mut d = Driver::new(task(&["autoApprove"]), ProjectRules::default());
    for _ in 0..3 {
        d.verdicts.push_back((
            Stage::Testing,
            fail("13-test-report.md: result FAIL", "## Failed\n- login"),
        ));
    }
    d.run(start());
    assert_eq!(
        (d.task.stage, d.task.phase),
        (Stage::Testing, Phase::Blocked)
    );
    assert_eq!(d.task.developer_retries, 3);
    let reason = d.task.blocked_reason.clone().unwrap();
    assert!(reason.contains("13-test-report.md"), "{reason}");
    let jobs = d.jobs.len();
    d.run(start()); // a restart does not relaunch a blocked task
    d.run(Event::Approve);
    assert_eq!(d.jobs.len(), jobs);
    let devs = d
        .jobs
        .iter()
        .filter(|(_, r, _)| *r == Role::Developer)
        .count();
    assert_eq!(devs, 3);
}

#[test]
fn a_bug_skips_architecture() {
    let mut d = Driver::new(task(&["Bug", "autoApprove"]), ProjectRules::default());
    d.run(start());
    assert!(!d.stages().contains(&Stage::Architecture));
    assert_eq!(d.stages()[2], Stage::Development);
    assert_eq!(d.task.stage, Stage::Done);
}

#[test]
fn the_prod_deploy_waits_for_confirm_deploy_where_configured() {
    let rules = ProjectRules {
        has_staging: true,
        confirm_deploy: true,
        ..ProjectRules::default()
    };
    let mut d = Driver::new(task(&["autoApprove"]), rules.clone());
    d.run(start());
    assert_eq!(
        (d.task.stage, d.task.phase),
        (Stage::Deploy, Phase::AwaitingDeployConfirm)
    );
    let jobs = d.jobs.len();
    d.run(Event::Approve); // a plain approve on deploy is a no-op
    assert_eq!(
        (d.jobs.len(), d.task.phase),
        (jobs, Phase::AwaitingDeployConfirm)
    );
    d.run(Event::ConfirmDeploy);
    assert_eq!(d.task.stage, Stage::Done);

    let mut auto = Driver::new(task(&["autoApprove", "autoDeploy"]), rules);
    auto.run(start());
    assert_eq!(auto.task.stage, Stage::Done);
}

#[test]
fn pause_holds_and_resume_wakes_the_dispatcher() {
    let t = task(&[]);
    let paused = decide(&t, &ProjectRules::default(), Event::Pause);
    let update = paused.update.clone().unwrap();
    assert!(update.paused);
    let mut held = t.clone();
    update.apply_to(&mut held);
    assert_eq!(
        decide(&held, &ProjectRules::default(), Event::Pause),
        Decision::default()
    );
    let resumed = decide(&held, &ProjectRules::default(), Event::Resume);
    assert!(!resumed.update.unwrap().paused);
    assert_eq!(resumed.effects, [Effect::WakeDispatch]);
    assert_eq!(
        decide(&t, &ProjectRules::default(), Event::Resume),
        Decision::default()
    );
}

#[test]
fn late_and_replayed_events_change_nothing() {
    let mut d = Driver::new(task(&["autoApprove"]), ProjectRules::default());
    d.run(start());
    let mut t = task(&[]);
    t.stage = Stage::Review;
    t.phase = Phase::Working;
    let rules = ProjectRules::default();
    let late = Event::JobFinished {
        job_id: 7,
        stage: Stage::Development,
        success: true,
        reason: String::new(),
    };
    assert_eq!(decide(&t, &rules, late), Decision::default());
    let stale_gate = Event::GateEvaluated {
        stage: Stage::Review,
        outcome: pass(),
        deferrals: 0,
    };
    assert_eq!(
        decide(&t, &rules, stale_gate),
        Decision::default(),
        "not gating yet"
    );
    t.phase = Phase::Gating;
    let replay = Event::JobFinished {
        job_id: 8,
        stage: Stage::Review,
        success: true,
        reason: String::new(),
    };
    assert_eq!(
        decide(&t, &rules, replay),
        Decision::default(),
        "already gating"
    );
}

#[test]
fn an_architect_conflict_goes_back_to_analysis() {
    let mut d = Driver::new(task(&["autoApprove"]), ProjectRules::default());
    d.verdicts.push_back((
        Stage::Architecture,
        GateOutcome::Fail {
            reason: "architect reports a conflict with the requirements".into(),
            must_fix: Some("REQ-3 contradicts REQ-5".into()),
            back_to: Some(Stage::Analysis),
        },
    ));
    d.run(start());
    assert_eq!(d.journal[1], (Stage::Analysis, Stage::Architecture));
    assert_eq!(d.journal[2], (Stage::Architecture, Stage::Analysis));
    let analyst = &d.jobs[2];
    assert_eq!(analyst.1, Role::Analyst);
    assert!(analyst.2.contains("REQ-3 contradicts REQ-5"));
    assert_eq!(d.task.stage, Stage::Done);
    assert_eq!(
        d.task.developer_retries, 0,
        "a requirements conflict spends no developer retry"
    );
}

#[test]
fn green_tests_join_the_merge_queue_and_its_news_decides_what_follows() {
    let staging = ProjectRules {
        has_staging: true,
        ..ProjectRules::default()
    };
    let mut d = Driver::new(task(&["autoApprove"]), staging);
    d.queue.push_back(Integration::Conflict {
        files: vec!["src/app.sh".into()],
    });
    d.queue.push_back(Integration::CandidateRed {
        output: "FAILED test_greeting".into(),
    });
    d.run(start());
    assert_eq!(d.task.stage, Stage::Done);
    assert_eq!(
        d.task.developer_retries, 2,
        "a conflict and a red candidate each spend a developer retry"
    );
    let back: Vec<_> = d
        .journal
        .iter()
        .filter(|(from, to)| *from == Stage::Testing && *to == Stage::Development)
        .collect();
    assert_eq!(back.len(), 2, "{:?}", d.journal);
    let developer_notes: Vec<_> = d
        .jobs
        .iter()
        .filter(|(_, role, _)| *role == Role::Developer)
        .map(|(_, _, text)| text.clone())
        .collect();
    assert!(developer_notes[1].contains("conflicts in src/app.sh"));
    assert!(developer_notes[2].contains("FAILED test_greeting"));
    assert!(
        d.journal.ends_with(&[
            (Stage::Testing, Stage::DeployStaging),
            (Stage::DeployStaging, Stage::Deploy),
            (Stage::Deploy, Stage::Done)
        ]),
        "{:?}",
        d.journal
    );
    // Every way out of the queue's window gave the place up.
    let leaves = d
        .effects
        .iter()
        .filter(|e| **e == Effect::LeaveMergeQueue)
        .count();
    assert_eq!(leaves, 3, "two rollbacks and done");
}

#[test]
fn without_staging_or_deploy_a_green_candidate_goes_straight_to_the_fast_forward() {
    let rules = ProjectRules {
        skip_deploy: true,
        ..ProjectRules::default()
    };
    let mut d = Driver::new(task(&["autoApprove"]), rules);
    d.run(start());
    assert!(
        d.journal.ends_with(&[
            (Stage::Testing, Stage::Deploy),
            (Stage::Deploy, Stage::Done)
        ]),
        "{:?}",
        d.journal
    );
    assert!(
        !d.jobs.iter().any(|(_, role, _)| *role == Role::Deployer),
        "no deployer runs"
    );
}

#[test]
fn merge_queue_infrastructure_blocks_without_a_developer_retry_and_late_news_changes_nothing() {
    let mut d = Driver::new(task(&["autoApprove"]), ProjectRules::default());
    d.queue.push_back(Integration::Infrastructure {
        reason: "CI on the candidate: `make test` did not finish within 1s (6 tries)".into(),
    });
    d.run(start());
    assert_eq!(
        (d.task.stage, d.task.phase),
        (Stage::Testing, Phase::Blocked)
    );
    assert!(
        d.task
            .blocked_reason
            .as_deref()
            .unwrap()
            .starts_with("infrastructure: merge queue: CI on the candidate"),
        "{:?}",
        d.task.blocked_reason
    );
    assert_eq!(d.task.developer_retries, 0);
    assert_eq!(d.effects.last(), Some(&Effect::LeaveMergeQueue));

    // News for a moment that has passed changes nothing.
    for news in [
        Integration::CandidateGreen { sha: "x".into() },
        Integration::CandidateRed { output: "x".into() },
        Integration::Merged { sha: "x".into() },
    ] {
        assert_eq!(
            decide(&d.task, &ProjectRules::default(), Event::Integrated(news)),
            Decision::default()
        );
    }
}

#[test]
fn infrastructure_trouble_defers_without_touching_the_task() {
    let mut t = task(&[]);
    t.stage = Stage::Development;
    t.phase = Phase::Gating;
    let d = decide(
        &t,
        &ProjectRules::default(),
        Event::GateEvaluated {
            stage: Stage::Development,
            outcome: GateOutcome::Defer {
                reason: "git not found".into(),
            },
            deferrals: 0,
        },
    );
    assert_eq!(d.update, None);
    assert!(matches!(
        d.effects[..],
        [Effect::RetryGateLater {
            stage: Stage::Development,
            ..
        }]
    ));
}

#[test]
fn a_failing_agent_is_relaunched_then_the_task_is_parked() {
    let mut t = task(&[]);
    t.stage = Stage::Review;
    t.phase = Phase::Working;
    t.stage_attempts = 1;
    let rules = ProjectRules::default();
    for attempt in 1..=3 {
        let d = decide(
            &t,
            &rules,
            Event::JobFinished {
                job_id: attempt,
                stage: Stage::Review,
                success: false,
                reason: "exit 1".into(),
            },
        );
        let update: TaskUpdate = d.update.unwrap();
        update.apply_to(&mut t);
        if attempt < 3 {
            assert!(matches!(
                d.effects[..],
                [Effect::Enqueue {
                    role: Role::Reviewer,
                    ..
                }]
            ));
        } else {
            assert!(d.effects.is_empty());
            assert_eq!(t.phase, Phase::Blocked);
            assert!(
                t.blocked_reason
                    .as_deref()
                    .unwrap()
                    .contains("reviewer agent failed")
            );
        }
    }
}

#[test]
fn a_pull_request_merged_by_a_human_finishes_the_task_once_its_commit_is_on_main() {
    let merged = || Event::MergedOutside {
        sha: "m1".into(),
        by: "bob".into(),
    };
    let checked = |on_main: Result<bool, String>, failures: u32| Event::OutsideMergeChecked {
        sha: "m1".into(),
        by: "bob".into(),
        on_main,
        failures,
    };
    let rules = ProjectRules::default();
    let mut t = task(&[]);
    t.stage = Stage::Review;
    t.phase = Phase::Working;
    // The forge's word is checked first: nothing changes yet.
    let d = decide(&t, &rules, merged());
    assert_eq!(d.update, None);
    assert_eq!(
        d.effects,
        vec![Effect::CheckOutsideMerge {
            sha: "m1".into(),
            by: "bob".into()
        }]
    );
    // On origin/main: done.
    let d = decide(&t, &rules, checked(Ok(true), 0));
    let (to, reason) = d.update.unwrap().to.unwrap();
    assert_eq!(to, Stage::Done);
    assert!(reason.contains("bob") && reason.contains("m1"), "{reason}");
    assert_eq!(
        d.effects,
        vec![Effect::CancelJobs, Effect::RemoveWorktree, Effect::Stop]
    );
    // Not on origin/main (merged into another base, or history rewritten): ignored.
    assert_eq!(
        decide(&t, &rules, checked(Ok(false), 0)),
        Decision::default()
    );
    // The forge cannot tell: checked again later, then blocked as infrastructure.
    assert_eq!(
        decide(&t, &rules, checked(Err("fetch failed".into()), 0)).effects,
        vec![Effect::RetryOutsideMergeCheckLater {
            sha: "m1".into(),
            by: "bob".into()
        }]
    );
    let spent = rules.limits.merge_retries;
    let d = decide(&t, &rules, checked(Err("fetch failed".into()), spent));
    let u = d.update.unwrap();
    assert_eq!(u.phase, Phase::Blocked);
    assert!(
        u.blocked_reason.unwrap().starts_with("infrastructure:"),
        "blocked as infrastructure"
    );

    // In deploy the orchestrator merges itself: its own merge event changes nothing.
    t.stage = Stage::Deploy;
    t.phase = Phase::Merging;
    assert_eq!(decide(&t, &rules, merged()), Decision::default());
    assert_eq!(
        decide(&t, &rules, checked(Ok(true), 0)),
        Decision::default()
    );
}

fn blocked(stage: Stage, reason: &str) -> TaskRecord {
    let mut t = task(&[]);
    t.stage = stage;
    t.phase = Phase::Blocked;
    t.blocked_reason = Some(reason.into());
    t.developer_retries = 3;
    t.stage_attempts = 3;
    t.note = Some("FAILED test_login".into());
    t
}

fn retry(note: Option<&str>) -> Event {
    Event::Retry {
        by: "ops".into(),
        note: note.map(str::to_string),
    }
}

#[test]
fn a_retry_resumes_where_the_task_was_blocked_with_a_fresh_budget() {
    let rules = ProjectRules::default();
    // Out of rounds at testing: back to the developer, the note first, the findings after.
    let t = blocked(
        Stage::Testing,
        "blocked after 3 failed rounds; last, at testing: tests fail",
    );
    let d = decide(&t, &rules, retry(Some("use the staging DB")));
    let u = d.update.unwrap();
    assert_eq!(
        u.to,
        Some((
            Stage::Development,
            "retried by ops: use the staging DB".into()
        ))
    );
    assert_eq!(
        (u.phase, u.developer_retries, u.stage_attempts),
        (Phase::Working, 0, 1)
    );
    assert_eq!(u.blocked_reason, None);
    let Effect::Enqueue {
        role, task_text, ..
    } = &d.effects[0]
    else {
        panic!("{:?}", d.effects)
    };
    assert_eq!(*role, Role::Developer);
    let at = |s: &str| task_text.find(s).unwrap();
    assert!(
        at("use the staging DB") < at("FAILED test_login"),
        "{task_text}"
    );

    // Out of attempts of its own role: that role runs again.
    let t = blocked(
        Stage::Analysis,
        "blocked at analysis after 3 attempts: crashed",
    );
    let d = decide(&t, &rules, retry(None));
    assert!(matches!(
        d.effects[..],
        [Effect::Enqueue {
            role: Role::Analyst,
            ..
        }]
    ));
    assert_eq!(
        d.update.unwrap().to,
        Some((Stage::Analysis, "retried by ops".into()))
    );

    // Infrastructure: the step that failed, and no agent for work that is done.
    let t = blocked(
        Stage::Review,
        "infrastructure: the review gate could not be evaluated 21 times in a row; last: x",
    );
    let d = decide(&t, &rules, retry(None));
    assert!(
        matches!(d.effects[..], [Effect::EvaluateGate { .. }]),
        "{d:?}"
    );
    assert_eq!(d.update.unwrap().phase, Phase::Gating);
    let t = blocked(Stage::Development, "infrastructure: git push failed");
    let d = decide(&t, &rules, retry(None));
    assert_eq!(
        d.effects,
        vec![Effect::Republish {
            stage: Stage::Development,
            role: Role::Developer
        }]
    );
    let mut gating = t.clone();
    d.update.unwrap().apply_to(&mut gating);
    let ok = Event::Republished {
        stage: Stage::Development,
        result: Ok(()),
    };
    assert!(matches!(
        decide(&gating, &rules, ok).effects[..],
        [Effect::EvaluateGate { .. }]
    ));
    let failed = Event::Republished {
        stage: Stage::Development,
        result: Err("origin unreachable".into()),
    };
    let u = decide(&gating, &rules, failed).update.unwrap();
    assert_eq!(u.phase, Phase::Blocked);
    assert!(u.blocked_reason.unwrap().starts_with("infrastructure:"));
    let t = blocked(
        Stage::Testing,
        "infrastructure: merge queue: CI on the candidate: timeout (6 tries)",
    );
    let d = decide(&t, &rules, retry(None));
    assert_eq!(d.effects, vec![Effect::JoinMergeQueue]);
    assert_eq!(d.update.unwrap().phase, Phase::Queued);

    // Only a blocked task is retried.
    let mut working = task(&[]);
    working.stage = Stage::Review;
    working.phase = Phase::Working;
    assert_eq!(decide(&working, &rules, retry(None)), Decision::default());
}
