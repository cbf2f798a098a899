//! What the startup bench (`orchestrator bench`) seeds, through the store's own API: either
//! tasks that are really idle at boot — each waiting on a human, as a long-running service
//! holds most of its open tasks — or tasks just created, every one of which starts its
//! pipeline at boot. After the run, [`Seeded::unchanged`] checks that an idle boot changed
//! nothing.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use futures::StreamExt;
use orchestrator_actors::domain::pipeline::{self, Labels};
use orchestrator_actors::domain::task_machine::task_text;
use orchestrator_actors::ports::{JobStore, NewJob, NewTask, Phase, Store, TaskRecord, TaskUpdate};
use orchestrator_actors::{Stage, WorkItemId};

use crate::store::SqliteStore;

/// What `orchestrator bench` seeds.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seed {
    /// Tasks waiting on a human, in equal parts: analysis awaiting approval, deploy awaiting
    /// confirmation, blocked in development, paused in development with its job queued.
    /// A boot starts, enqueues, renders and sends nothing for them.
    Idle,
    /// Tasks just created: every one starts its pipeline at boot (a cold start of N new
    /// pipelines — not idle).
    Created,
}

/// The kinds of idle task, seeded round-robin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Waiting {
    /// Analysis passed its gate; a human must approve or reject it.
    Approval,
    /// Everything up to staging passed; a human must confirm the production deploy.
    DeployConfirm,
    /// Sent back to development until the retries ran out; parked for a human.
    Blocked,
    /// A human paused it while its developer job waited in the queue.
    Paused,
}

impl Waiting {
    const ALL: [Waiting; 4] = [
        Waiting::Approval,
        Waiting::DeployConfirm,
        Waiting::Blocked,
        Waiting::Paused,
    ];

    fn describe(self) -> &'static str {
        match self {
            Waiting::Approval => "awaiting approval (analysis)",
            Waiting::DeployConfirm => "awaiting deploy confirmation (deploy)",
            Waiting::Blocked => "blocked (development)",
            Waiting::Paused => "paused with a queued job (development)",
        }
    }

    /// The stage the task waits in.
    fn stage(self) -> Stage {
        match self {
            Waiting::Approval => Stage::Analysis,
            Waiting::DeployConfirm => Stage::Deploy,
            Waiting::Blocked | Waiting::Paused => Stage::Development,
        }
    }
}

/// What was seeded, to print and to check the boot against.
pub struct Seeded {
    /// What kind of seed it was.
    seed: Seed,
    /// Tasks per kind (idle seeds only).
    kinds: BTreeMap<Waiting, usize>,
    /// Every task as written, by id.
    tasks: BTreeMap<WorkItemId, TaskRecord>,
    /// Jobs per status after seeding.
    jobs: BTreeMap<String, u64>,
}

impl Seeded {
    /// One line saying what was seeded, for the bench's output.
    pub fn describe(&self) -> String {
        match self.seed {
            Seed::Created => format!(
                "{} tasks just created: each starts its pipeline at boot (not idle)",
                self.tasks.len()
            ),
            Seed::Idle if self.tasks.is_empty() => "no tasks".to_string(),
            Seed::Idle => {
                let parts: Vec<_> = self
                    .kinds
                    .iter()
                    .map(|(kind, n)| format!("{n} {}", kind.describe()))
                    .collect();
                format!("{} idle tasks: {}", self.tasks.len(), parts.join(", "))
            }
        }
    }

    /// Checks, for an idle seed, that the boot left every task and the queue as seeded: an
    /// idle task reloads and waits. A `created` seed is expected to change everything.
    pub async fn unchanged(&self, store: &SqliteStore) -> anyhow::Result<()> {
        if self.seed != Seed::Idle {
            return Ok(());
        }
        let now = store.list_tasks().await?;
        if now.len() != self.tasks.len() {
            bail!(
                "seeded {} tasks, the store now has {}",
                self.tasks.len(),
                now.len()
            );
        }
        for task in now {
            let Some(seeded) = self.tasks.get(&task.work_item_id) else {
                bail!("task {} was not seeded", task.work_item_id);
            };
            if task != *seeded {
                bail!(
                    "the boot changed idle task {}: seeded {}/{}, now {}/{}",
                    task.work_item_id,
                    seeded.stage,
                    seeded.phase.as_str(),
                    task.stage,
                    task.phase.as_str()
                );
            }
        }
        let jobs = store.queue_overview().await?.counts;
        if jobs != self.jobs {
            bail!(
                "the boot changed the queue: seeded {:?}, now {:?}",
                self.jobs,
                jobs
            );
        }
        Ok(())
    }
}

/// Seeds `n` tasks into a fresh store at `path`.
pub async fn seed(path: &std::path::Path, n: usize, seed: Seed) -> anyhow::Result<Seeded> {
    let store = SqliteStore::open(path).await?;
    let result = seed_into(&store, n, seed).await;
    store.close().await;
    result
}

async fn seed_into(store: &SqliteStore, n: usize, seed: Seed) -> anyhow::Result<Seeded> {
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| async move {
            let kind = Waiting::ALL[i % Waiting::ALL.len()];
            let task = store
                .create_task(NewTask {
                    work_item_id: WorkItemId::parse(&format!("BENCH-{i}")).expect("valid id"),
                    repo: "bench/repo".into(),
                    title: format!("benchmark task {i}"),
                    description: String::new(),
                    labels: Vec::new(),
                })
                .await?;
            let task = match seed {
                Seed::Created => task,
                Seed::Idle => wait(store, task, kind).await?,
            };
            anyhow::Ok((kind, task))
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut seeded = Seeded {
        seed,
        kinds: BTreeMap::new(),
        tasks: BTreeMap::new(),
        jobs: BTreeMap::new(),
    };
    for result in results {
        let (kind, task) = result?;
        *seeded.kinds.entry(kind).or_default() += 1;
        seeded.tasks.insert(task.work_item_id.clone(), task);
    }
    seeded.jobs = store.queue_overview().await?.counts;
    Ok(seeded)
}

/// Walks a created task through the pipeline to where `kind` waits, one journaled transition
/// per stage as the pipeline would have made them, and leaves it waiting there. Returns the
/// task as stored.
async fn wait(store: &SqliteStore, task: TaskRecord, kind: Waiting) -> anyhow::Result<TaskRecord> {
    let id = task.work_item_id.clone();
    let labels = Labels::new(&task.labels);
    let mut record = task;
    record.branch = Some(format!("feature/{id}"));
    while record.stage != kind.stage() {
        let next = pipeline::next_stage(record.stage, &labels)
            .with_context(|| format!("no stage after {} for {id}", record.stage))?;
        let mut update = TaskUpdate::keep(&record);
        update.to = Some((next, format!("{} passed its gate", record.stage)));
        update.phase = Phase::Working;
        update.stage_attempts = 1;
        if next == kind.stage() {
            settle(&mut update, kind);
        }
        if !store.update_task(&id, record.stage, update.clone()).await? {
            bail!("task {id} moved while it was being seeded");
        }
        update.apply_to(&mut record);
    }
    if kind == Waiting::Paused {
        let role = pipeline::spec(record.stage)
            .role
            .with_context(|| format!("{} has no role", record.stage))?;
        store
            .enqueue_job(NewJob {
                work_item_id: id.clone(),
                stage: record.stage,
                role,
                task_text: task_text(&record, role, None),
            })
            .await?;
    }
    store
        .load_task(&id)
        .await?
        .with_context(|| format!("seeded task {id} is gone"))
}

/// The fields of a task waiting as `kind` does.
fn settle(update: &mut TaskUpdate, kind: Waiting) {
    match kind {
        Waiting::Approval => update.phase = Phase::AwaitingApproval,
        Waiting::DeployConfirm => {
            update.phase = Phase::AwaitingDeployConfirm;
            update.stage_attempts = 0;
        }
        Waiting::Blocked => {
            update.phase = Phase::Blocked;
            update.developer_retries = pipeline::MAX_DEVELOPER_RETRIES;
            update.blocked_reason = Some(format!(
                "blocked after {} failed rounds; last, at review: the change breaks the API",
                pipeline::MAX_DEVELOPER_RETRIES
            ));
        }
        Waiting::Paused => {
            update.phase = Phase::Working;
            update.paused = true;
        }
    }
}
