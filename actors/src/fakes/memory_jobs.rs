//! An in-memory [`JobStore`] with the SQLite queue's semantics (FIFO claims under a limit,
//! one active job per task, requeue without traces), for actor tests.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::WorkItemId;
use crate::ports::{
    Job, JobStatus, JobStore, NewJob, NewRun, ProcessId, QueueOverview, QueuePark, Requeue,
    RunFinish, RunRecord, RunningJob, StoreError,
};

/// Jobs (with the boot that claimed them) and runs (with their task).
type Queue = (Vec<(Job, Option<String>)>, Vec<(WorkItemId, RunRecord)>);

/// Jobs and runs in a mutex; paused tasks are not known here, so nothing is skipped.
#[derive(Default)]
pub struct MemoryJobs {
    /// Jobs with the boot that claimed them, and runs with their task.
    inner: Mutex<Queue>,
}

impl MemoryJobs {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every job ever enqueued, in order.
    pub fn all(&self) -> Vec<Job> {
        self.inner
            .lock()
            .expect("poisoned")
            .0
            .iter()
            .map(|(j, _)| j.clone())
            .collect()
    }
}

fn active(status: JobStatus) -> bool {
    matches!(status, JobStatus::Queued | JobStatus::Running)
}

#[async_trait]
impl JobStore for MemoryJobs {
    async fn enqueue_job(&self, job: NewJob) -> Result<i64, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        if inner
            .0
            .iter()
            .any(|(j, _)| j.work_item_id == job.work_item_id && active(j.status))
        {
            return Err(StoreError::Duplicate(format!(
                "an active job for task {}",
                job.work_item_id
            )));
        }
        let id = inner.0.len() as i64 + 1;
        inner.0.push((
            Job {
                id,
                work_item_id: job.work_item_id,
                stage: job.stage,
                role: job.role,
                status: JobStatus::Queued,
                attempts: 0,
                task_text: job.task_text,
                run_id: None,
                transient_attempts: 0,
            },
            None,
        ));
        Ok(id)
    }

    async fn claim_jobs(&self, max_running: usize, boot_id: &str) -> Result<Vec<Job>, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let running = inner
            .0
            .iter()
            .filter(|(j, _)| j.status == JobStatus::Running)
            .count();
        let mut slots = max_running.saturating_sub(running);
        let mut claimed = Vec::new();
        for (job, boot) in inner.0.iter_mut() {
            if slots == 0 {
                break;
            }
            if job.status == JobStatus::Queued {
                job.status = JobStatus::Running;
                job.attempts += 1;
                job.run_id = Some(format!("run-{}-{}-{boot_id}", job.id, job.attempts));
                *boot = Some(boot_id.to_string());
                claimed.push(job.clone());
                slots -= 1;
            }
        }
        Ok(claimed)
    }

    async fn finish_job(
        &self,
        job_id: i64,
        run_id: &str,
        status: JobStatus,
        _error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let Some((job, _)) = inner.0.iter_mut().find(|(j, _)| {
            j.id == job_id && j.status == JobStatus::Running && j.run_id.as_deref() == Some(run_id)
        }) else {
            return Ok(false);
        };
        job.status = status;
        Ok(true)
    }

    async fn set_job_process(
        &self,
        _job_id: i64,
        _run_id: &str,
        _process: ProcessId,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn requeue_job(
        &self,
        job_id: i64,
        run_id: &str,
        how: Requeue,
        _reason: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let Some((job, boot)) = inner.0.iter_mut().find(|(j, _)| {
            j.id == job_id && j.status == JobStatus::Running && j.run_id.as_deref() == Some(run_id)
        }) else {
            return Ok(false);
        };
        job.status = JobStatus::Queued;
        job.run_id = None;
        *boot = None;
        match how {
            Requeue::Transient { .. } => {
                job.transient_attempts += 1;
                job.attempts = job.attempts.saturating_sub(1);
            }
            Requeue::Parked => job.attempts = job.attempts.saturating_sub(1),
            Requeue::Lost => {}
        }
        Ok(true)
    }

    async fn running_jobs(&self) -> Result<Vec<RunningJob>, StoreError> {
        let inner = self.inner.lock().expect("poisoned");
        Ok(inner
            .0
            .iter()
            .filter(|(j, _)| j.status == JobStatus::Running)
            .map(|(job, boot)| RunningJob {
                job: job.clone(),
                boot_id: boot.clone(),
                process: None,
                running_s: 0.0,
                run_outcome: None,
                run_reason: None,
            })
            .collect())
    }

    async fn park_queue(&self, _until_unix: i64, _reason: &str) -> Result<(), StoreError> {
        Err(StoreError::Backend(
            "the in-memory queue cannot be parked".into(),
        ))
    }

    async fn queue_park(&self) -> Result<Option<QueuePark>, StoreError> {
        Ok(None)
    }

    async fn queue_overview(&self) -> Result<QueueOverview, StoreError> {
        let inner = self.inner.lock().expect("poisoned");
        let mut overview = QueueOverview::default();
        for (job, _) in &inner.0 {
            *overview
                .counts
                .entry(job.status.as_str().to_string())
                .or_default() += 1;
        }
        Ok(overview)
    }

    async fn cancel_queued_jobs(&self, id: &WorkItemId) -> Result<u32, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let mut n = 0;
        for (job, _) in inner.0.iter_mut() {
            if &job.work_item_id == id && job.status == JobStatus::Queued {
                job.status = JobStatus::Cancelled;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn requeue_stale_jobs(&self, boot_id: &str) -> Result<u32, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let mut n = 0;
        for (job, boot) in inner.0.iter_mut() {
            if job.status == JobStatus::Running && boot.as_deref() != Some(boot_id) {
                job.status = JobStatus::Queued;
                job.run_id = None;
                *boot = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn adopt_job(
        &self,
        job_id: i64,
        run_id: &str,
        boot_id: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let (jobs, runs) = &mut *inner;
        let Some((_, boot)) = jobs.iter_mut().find(|(j, _)| {
            j.id == job_id && j.status == JobStatus::Running && j.run_id.as_deref() == Some(run_id)
        }) else {
            return Ok(false);
        };
        *boot = Some(boot_id.to_string());
        if let Some((_, run)) = runs.iter_mut().find(|(_, r)| r.run_id == run_id) {
            run.adopted_by = Some(boot_id.to_string());
        }
        Ok(true)
    }

    async fn active_job(&self, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
        let inner = self.inner.lock().expect("poisoned");
        Ok(inner
            .0
            .iter()
            .rev()
            .map(|(j, _)| j)
            .find(|j| &j.work_item_id == id && active(j.status))
            .cloned())
    }

    async fn last_job(&self, id: &WorkItemId) -> Result<Option<Job>, StoreError> {
        let inner = self.inner.lock().expect("poisoned");
        Ok(inner
            .0
            .iter()
            .rev()
            .map(|(j, _)| j)
            .find(|j| &j.work_item_id == id)
            .cloned())
    }

    async fn start_run(&self, run: NewRun) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        inner.1.push((
            run.work_item_id.clone(),
            RunRecord {
                run_id: run.run_id,
                role: run.role.as_str().to_string(),
                stage: run.stage,
                status: "running".into(),
                exit_code: None,
                started_at: String::new(),
                finished_at: None,
                model: run.model,
                input_tokens: 0,
                output_tokens: 0,
                cache_read_tokens: 0,
                cache_creation_tokens: 0,
                cost_usd: 0.0,
                reason: None,
                launched_by: Some(run.boot_id),
                adopted_by: None,
            },
        ));
        Ok(())
    }

    async fn finish_run(&self, run_id: &str, finish: RunFinish) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("poisoned");
        let run = inner
            .1
            .iter_mut()
            .map(|(_, r)| r)
            .find(|r| r.run_id == run_id)
            .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))?;
        run.status = finish.outcome.as_str().to_string();
        run.reason = finish.reason;
        run.exit_code = finish.exit_code;
        run.model = finish.model.or(run.model.take());
        run.input_tokens = finish.input_tokens;
        run.output_tokens = finish.output_tokens;
        run.cache_read_tokens = finish.cache_read_tokens;
        run.cache_creation_tokens = finish.cache_creation_tokens;
        run.cost_usd = finish.cost_usd;
        Ok(())
    }

    async fn runs(&self, id: &WorkItemId) -> Result<Vec<RunRecord>, StoreError> {
        let inner = self.inner.lock().expect("poisoned");
        Ok(inner
            .1
            .iter()
            .filter(|(task, _)| task == id)
            .map(|(_, r)| r.clone())
            .collect())
    }
}
