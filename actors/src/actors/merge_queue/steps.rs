//! The merge queue's steps: what a repository's queue does next ([`MergeQueue::drive`]) and
//! what each piece of owned work's report comes to. The lease is held by a **batch** — the
//! first up to `ORCH_MERGE_BATCH_MAX` tasks in line (one when the queue is short or batching
//! is off): their candidates are stacked (each built onto the one before), the top is tested
//! once, and a red top is bisected to find the culprit.

use std::time::Instant;

use ractor::{ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::work::Builds;
use super::{
    Bisect, GUARD, MergeQueue, MergeQueueMsg, MergeQueueState, RepoQueue, Report, journal, notice,
    tell,
};
use crate::WorkItemId;
use crate::actors::owned::owned;
use crate::domain::gates::CiOutcome;
use crate::domain::merge_queue::{Bisection, RedCandidate, bisect_next, judge_red};
use crate::ports::merge_queue::{CandidateBuild, EntryState, FastForward, FreezeKind, Integration};

/// The first 12 characters of a commit id.
pub(super) fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

impl MergeQueue {
    /// Starts whatever `repo`'s queue should be doing and is not: its batch's next step, the
    /// next lease, or a frozen queue's look at `main`. Does nothing while work or a timed
    /// retry is in flight.
    pub(super) async fn drive(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        repo: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = state.repos.get_mut(repo) else {
            return Ok(());
        };
        if queue.busy() {
            return Ok(());
        }
        if let Some(frozen) = queue.state.frozen.clone() {
            // A frozen queue holds: its batch's next step and the next lease wait. The
            // runaway guard's freeze looks at `main` again every interval.
            if frozen.kind == FreezeKind::MainRed
                && queue
                    .last_main_check
                    .is_none_or(|at| at.elapsed() >= self.deps.main_recheck)
            {
                queue.last_main_check = Some(Instant::now());
                let red = queue
                    .main_verdict
                    .as_ref()
                    .filter(|(_, green)| !green)
                    .map(|(sha, _)| sha.clone());
                self.start_main_test(myself, queue, repo, red);
            }
            return Ok(());
        }
        let mut members = queue.members();
        if members.is_empty() {
            let batch: Vec<WorkItemId> = queue
                .entries
                .iter()
                .filter(|e| e.state == EntryState::Waiting)
                .take(if self.deps.forge.batches(repo) {
                    self.deps.batch_max.max(1)
                } else {
                    1
                })
                .map(|e| e.work_item_id.clone())
                .collect();
            if batch.is_empty() {
                return Ok(());
            }
            for id in &batch {
                let entry = queue.entry_mut(id).expect("waiting above");
                entry.state = EntryState::Building;
                entry.candidate = None;
                entry.base = None;
                let entry = entry.clone();
                self.deps.store.save_queue_entry(&entry).await?;
            }
            info!(%repo, batch = ?batch, "the merge lease is granted");
            members = queue.members();
        }
        let ids: Vec<WorkItemId> = members.iter().map(|m| m.work_item_id.clone()).collect();
        if members.iter().any(|m| m.state == EntryState::Building) {
            self.start_build(myself, queue, repo, ids);
        } else if queue.pending_red.is_some() {
            self.start_main_test(myself, queue, repo, None);
        } else if let Some(bisect) = &queue.bisect {
            let index = bisect_next(bisect.lo, bisect.hi);
            let sha = members[index - 1].candidate.clone().unwrap_or_default();
            self.start_test(myself, queue, repo, index, sha);
        } else if queue.publish_pending {
            self.start_publish(myself, queue, repo, &members);
        } else if members.iter().all(|m| m.state == EntryState::Testing) {
            let sha = members
                .last()
                .and_then(|m| m.candidate.clone())
                .unwrap_or_default();
            self.start_test(myself, queue, repo, members.len(), sha);
        } else if members.iter().all(|m| m.state == EntryState::Merging) {
            self.start_fast_forward(myself, queue, repo, &members);
        }
        // Otherwise the batch's top deploys its candidate; it says when it is done.
        Ok(())
    }

    pub(super) async fn on_published(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        report: Report<Result<(), String>>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = Self::current(state, &report) else {
            return Ok(());
        };
        let repo = report.repo.clone();
        if let Err(e) = report.result {
            return self
                .infrastructure(
                    myself,
                    state,
                    &repo,
                    None,
                    format!("publishing the candidate: {e}"),
                )
                .await;
        }
        queue.infra_failures = 0;
        queue.publish_pending = false;
        let n = queue.members().len();
        self.green(state, &repo, n).await?;
        self.drive(myself, state, &repo).await
    }

    /// The queue of a report that is still current: its work ended.
    fn current<'a, T>(
        state: &'a mut MergeQueueState,
        report: &Report<T>,
    ) -> Option<&'a mut RepoQueue> {
        let queue = state.repos.get_mut(&report.repo)?;
        if queue.generation != report.generation {
            return None; // superseded (a member left, or the queue moved on)
        }
        queue.work = None;
        Some(queue)
    }

    pub(super) async fn on_built(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        report: Report<Builds>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = Self::current(state, &report) else {
            return Ok(());
        };
        let repo = report.repo.clone();
        let Builds { built, error } = report.result;
        if let Some((id, e)) = error {
            return self
                .infrastructure(
                    myself,
                    state,
                    &repo,
                    Some(&id),
                    format!("building the candidate of {id}: {e}"),
                )
                .await;
        }
        queue.infra_failures = 0;
        let mut conflicts = Vec::new();
        for (id, outcome) in built {
            match outcome {
                CandidateBuild::Built { sha, base } => {
                    queue.counts.built += 1;
                    let Some(entry) = queue.entry_mut(&id) else {
                        continue;
                    };
                    entry.state = EntryState::Testing;
                    entry.candidate = Some(sha.clone());
                    entry.base = Some(base.clone());
                    let entry = entry.clone();
                    self.deps.store.save_queue_entry(&entry).await?;
                    info!(task = %id, %repo, candidate = %short(&sha), base = %short(&base), "candidate built");
                }
                CandidateBuild::Conflict { files } => conflicts.push((id, files)),
            }
        }
        for (id, files) in conflicts {
            if let Some(queue) = state.repos.get_mut(&repo) {
                queue.counts.bounced += 1;
            }
            self.remove(state, &repo, &id).await?;
            journal(
                &*self.deps.store,
                &repo,
                Some(&id),
                "conflict",
                GUARD,
                &files.join(", "),
            )
            .await;
            tell(&id, Integration::Conflict { files });
        }
        self.drive(myself, state, &repo).await
    }

    pub(super) async fn on_tested(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        report: Report<(usize, String, CiOutcome)>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = Self::current(state, &report) else {
            return Ok(());
        };
        let repo = report.repo.clone();
        let (index, sha, outcome) = report.result;
        let members = queue.members();
        match outcome {
            CiOutcome::ToolError { message } => {
                return self
                    .infrastructure(
                        myself,
                        state,
                        &repo,
                        None,
                        format!("CI on the candidate: {message}"),
                    )
                    .await;
            }
            CiOutcome::Green { summary } => {
                queue.counts.ci_runs += 1;
                queue.infra_failures = 0;
                info!(%repo, candidate = %short(&sha), %summary, "candidate is green");
                match queue.bisect.as_mut() {
                    None => queue.publish_pending = true,
                    Some(bisect) => {
                        bisect.lo = index;
                        self.bisect_step(state, &repo).await?;
                    }
                }
            }
            CiOutcome::Red { output_tail } => {
                queue.counts.ci_runs += 1;
                queue.infra_failures = 0;
                if let Some(bisect) = queue.bisect.as_mut() {
                    bisect.hi = index;
                    bisect.outputs.insert(index, output_tail);
                    self.bisect_step(state, &repo).await?;
                } else {
                    let base = members
                        .first()
                        .and_then(|m| m.base.clone())
                        .unwrap_or_default();
                    match judge_red(&base, queue.main_verdict.as_ref()) {
                        RedCandidate::Bounce => {
                            queue.bisect = Some(Bisect::new(members.len(), output_tail));
                            self.bisect_step(state, &repo).await?;
                        }
                        RedCandidate::Freeze => self.freeze_red(state, &repo, &base).await?,
                        RedCandidate::TestMain => {
                            info!(%repo, base = %short(&base), "candidate is red; testing main alone");
                            queue.pending_red = Some(output_tail);
                        }
                    }
                }
            }
        }
        self.drive(myself, state, &repo).await
    }

    /// The batch's first `n` members passed (the top of them tested green): the top deploys
    /// its candidate, the others wait for it; members already deployed merge at once.
    async fn green(
        &self,
        state: &mut MergeQueueState,
        repo: &str,
        n: usize,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = state.repos.get_mut(repo) else {
            return Ok(());
        };
        let members = queue.members();
        let Some(top) = members.get(n.saturating_sub(1)).cloned() else {
            return Ok(());
        };
        for (i, member) in members.iter().take(n).enumerate() {
            let entry = queue.entry_mut(&member.work_item_id).expect("a member");
            entry.state = if entry.ready {
                EntryState::Merging
            } else {
                EntryState::Deploying
            };
            let entry = entry.clone();
            self.deps.store.save_queue_entry(&entry).await?;
            if entry.ready {
                continue;
            }
            let sha = entry.candidate.clone().unwrap_or_default();
            if i + 1 == n {
                tell(&entry.work_item_id, Integration::CandidateGreen { sha });
            } else {
                tell(
                    &entry.work_item_id,
                    Integration::BatchedGreen {
                        sha,
                        top: top.work_item_id.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// One step of a bisection: the culprit is found (the first red member), or the next
    /// member is tested.
    async fn bisect_step(
        &self,
        state: &mut MergeQueueState,
        repo: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = state.repos.get_mut(repo) else {
            return Ok(());
        };
        let Some(bisect) = queue.bisect.clone() else {
            return Ok(());
        };
        let Bisection::Culprit(culprit) = Bisection::of(bisect.lo, bisect.hi) else {
            return Ok(()); // drive tests the next one
        };
        queue.bisect = None;
        let members = queue.members();
        let output = bisect.outputs.get(&culprit).cloned().unwrap_or_default();
        let culprit_id = members[culprit - 1].work_item_id.clone();
        // Those after the culprit were built on it: back in line, first, to be rebuilt.
        for member in &members[culprit..] {
            let entry = queue.entry_mut(&member.work_item_id).expect("a member");
            entry.state = EntryState::Waiting;
            entry.candidate = None;
            entry.base = None;
            let entry = entry.clone();
            self.deps.store.save_queue_entry(&entry).await?;
        }
        queue.counts.bounced += 1;
        self.remove(state, repo, &culprit_id).await?;
        journal(
            &*self.deps.store,
            repo,
            Some(&culprit_id),
            "red",
            GUARD,
            "candidate red on a green main",
        )
        .await;
        info!(task = %culprit_id, %repo, "candidate is red on a green main; back to development");
        tell(&culprit_id, Integration::CandidateRed { output });
        // Those before it are green together: they go on, once published.
        if culprit > 1
            && let Some(queue) = state.repos.get_mut(repo)
        {
            queue.publish_pending = true;
        }
        Ok(())
    }

    pub(super) async fn on_main_tested(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        report: Report<Result<(String, Option<CiOutcome>), String>>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = Self::current(state, &report) else {
            return Ok(());
        };
        let repo = report.repo.clone();
        let pending = queue.pending_red.clone();
        match report.result {
            Ok((sha, Some(CiOutcome::Green { .. }))) => {
                queue.counts.ci_runs += 1;
                queue.infra_failures = 0;
                queue.main_verdict = Some((sha.clone(), true));
                queue.state.last_green_main = Some(sha.clone());
                let saved = queue.state.clone();
                self.deps.store.save_repo_queue(&saved).await?;
                if let Some(output) = pending {
                    queue.pending_red = None;
                    queue.bisect = Some(Bisect::new(queue.members().len(), output));
                    self.bisect_step(state, &repo).await?;
                } else if queue
                    .state
                    .frozen
                    .as_ref()
                    .is_some_and(|f| f.kind == FreezeKind::MainRed)
                {
                    notice(format!(
                        "main of {repo} is green again at {}: its merge queue is unfrozen.",
                        short(&sha)
                    ));
                    self.thaw(
                        myself,
                        state,
                        &repo,
                        GUARD,
                        &format!("main is green at {sha}"),
                    )
                    .await
                    .map_err(ActorProcessingErr::from)?;
                    return Ok(());
                }
            }
            Ok((sha, None | Some(CiOutcome::Red { .. }))) => {
                if pending.is_some() {
                    queue.counts.ci_runs += 1;
                }
                queue.infra_failures = 0;
                queue.main_verdict = Some((sha.clone(), false));
                if pending.is_some() {
                    queue.pending_red = None;
                    self.freeze_red(state, &repo, &sha).await?;
                }
            }
            Ok((sha, Some(CiOutcome::ToolError { message }))) => {
                let what = format!("CI on main alone at {}: {message}", short(&sha));
                return self.main_trouble(myself, state, &repo, pending, what).await;
            }
            Err(e) => {
                let what = format!("cannot read main: {e}");
                return self.main_trouble(myself, state, &repo, pending, what).await;
            }
        }
        self.drive(myself, state, &repo).await
    }

    /// A test of `main` alone could not run: for the runaway guard, infrastructure trouble of
    /// the batch's step; for a frozen queue's recheck, tried again next interval.
    async fn main_trouble(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        repo: &str,
        pending: Option<String>,
        what: String,
    ) -> Result<(), ActorProcessingErr> {
        if pending.is_some() {
            return self.infrastructure(myself, state, repo, None, what).await;
        }
        warn!(%repo, error = %what, "cannot look at main of a frozen merge queue");
        if let Some(queue) = state.repos.get_mut(repo) {
            queue.last_error = Some(what);
        }
        Ok(())
    }

    pub(super) async fn on_fast_forwarded(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        report: Report<Result<FastForward, String>>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = Self::current(state, &report) else {
            return Ok(());
        };
        let repo = report.repo.clone();
        let members = queue.members();
        match report.result {
            Ok(FastForward::Merged) => {
                queue.infra_failures = 0;
                let top = members
                    .last()
                    .and_then(|m| m.candidate.clone())
                    .unwrap_or_default();
                // What was tested green is `main` now.
                queue.main_verdict = Some((top.clone(), true));
                queue.state.last_green_main = Some(top.clone());
                let saved = queue.state.clone();
                self.deps.store.save_repo_queue(&saved).await?;
                for member in &members {
                    queue.counts.merged += 1;
                    let entry = queue.entry_mut(&member.work_item_id).expect("a member");
                    entry.state = EntryState::Merged;
                    let entry = entry.clone();
                    self.deps.store.save_queue_entry(&entry).await?;
                    let sha = entry.candidate.clone().unwrap_or_default();
                    journal(
                        &*self.deps.store,
                        &repo,
                        Some(&entry.work_item_id),
                        "merged",
                        GUARD,
                        &sha,
                    )
                    .await;
                    tell(&entry.work_item_id, Integration::Merged { sha });
                }
                info!(%repo, main = %short(&top), merged = members.len(), "main fast-forwarded");
            }
            Ok(FastForward::MainMoved { main }) => {
                queue.infra_failures = 0;
                for member in &members {
                    let entry = queue.entry_mut(&member.work_item_id).expect("a member");
                    entry.state = EntryState::Building;
                    entry.candidate = None;
                    entry.base = None;
                    entry.ready = true;
                    let entry = entry.clone();
                    self.deps.store.save_queue_entry(&entry).await?;
                }
                journal(
                    &*self.deps.store,
                    &repo,
                    None,
                    "rebuild",
                    GUARD,
                    &format!("main moved to {main}"),
                )
                .await;
                info!(%repo, %main, "main moved under the batch; rebuilding its candidates");
            }
            Err(e) => {
                return self
                    .infrastructure(
                        myself,
                        state,
                        &repo,
                        None,
                        format!("fast-forward of main: {e}"),
                    )
                    .await;
            }
        }
        self.drive(myself, state, &repo).await
    }

    /// Infrastructure trouble in the batch's step: tried again after the retry delay, on a
    /// budget; once spent, the task it was about (`who`, else every member) is told — it
    /// blocks with an `infrastructure:` reason — the rest go back in line, and the lease
    /// passes on. Never a developer retry.
    async fn infrastructure(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        repo: &str,
        who: Option<&WorkItemId>,
        what: String,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = state.repos.get_mut(repo) else {
            return Ok(());
        };
        queue.infra_failures += 1;
        queue.last_error = Some(what.clone());
        let failures = queue.infra_failures;
        if failures > self.deps.infra_retries {
            let members: Vec<WorkItemId> = queue
                .members()
                .into_iter()
                .map(|m| m.work_item_id)
                .collect();
            let blocked: Vec<WorkItemId> = match who {
                Some(id) => vec![id.clone()],
                None => members.clone(),
            };
            warn!(%repo, error = %what, failures, ?blocked, "merge-queue step failed past its budget");
            self.requeue_members(state, repo).await?;
            let first = what.lines().next().unwrap_or_default().trim().to_string();
            for id in &blocked {
                self.remove(state, repo, id).await?;
                journal(
                    &*self.deps.store,
                    repo,
                    Some(id),
                    "infrastructure",
                    GUARD,
                    &what,
                )
                .await;
                tell(
                    id,
                    Integration::Infrastructure {
                        reason: format!("{first} ({failures} tries)"),
                    },
                );
            }
            return self.drive(myself, state, repo).await;
        }
        warn!(%repo, error = %what, failures, "merge-queue step failed; retrying");
        let (me, delay) = (myself.clone(), self.deps.retry_delay);
        queue.timer = Some(owned(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(MergeQueueMsg::Tick);
        }));
        Ok(())
    }

    /// `main` itself is red at `sha`: freeze the queue and put the batch back in line (its
    /// places first), every retry untouched.
    async fn freeze_red(
        &self,
        state: &mut MergeQueueState,
        repo: &str,
        sha: &str,
    ) -> Result<(), ActorProcessingErr> {
        let reason = format!("main is red at {sha}");
        self.requeue_members(state, repo).await?;
        if let Some(queue) = state.repos.get_mut(repo) {
            queue.main_verdict = Some((sha.to_string(), false));
            queue.last_main_check = Some(Instant::now());
        }
        self.freeze(state, repo, FreezeKind::MainRed, GUARD, &reason)
            .await
            .map_err(ActorProcessingErr::from)?;
        notice(format!(
            "{reason} ({repo}): its merge queue is frozen — nothing merges until main tests green again or an operator unfreezes it."
        ));
        Ok(())
    }

    /// Ends the batch: its work stops and its members wait again in their places, their
    /// candidates to be rebuilt (a member that already deployed stays `ready`).
    pub(super) async fn requeue_members(
        &self,
        state: &mut MergeQueueState,
        repo: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(queue) = state.repos.get_mut(repo) else {
            return Ok(());
        };
        queue.stop_work();
        for member in queue.members() {
            let entry = queue.entry_mut(&member.work_item_id).expect("a member");
            entry.state = EntryState::Waiting;
            entry.candidate = None;
            entry.base = None;
            let entry = entry.clone();
            self.deps.store.save_queue_entry(&entry).await?;
        }
        Ok(())
    }

    /// Removes `id` from `repo`'s queue and the journal of entries.
    async fn remove(
        &self,
        state: &mut MergeQueueState,
        repo: &str,
        id: &WorkItemId,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(queue) = state.repos.get_mut(repo) {
            queue.entries.retain(|e| &e.work_item_id != id);
        }
        self.deps.store.remove_queue_entry(id).await?;
        Ok(())
    }
}
