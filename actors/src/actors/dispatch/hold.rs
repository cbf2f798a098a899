//! The hold: while the agent program cannot be started, every claim would fail the same
//! way, so `dispatch` claims nothing. A run that found the program unable to start gives its
//! attempt back ([`crate::domain::job_machine`]'s `hold`), one alert goes out, and each tick
//! asks the runner, in work the dispatcher owns, whether the program can start again; when it
//! can, claims resume. `GET /queue` shows the hold and its reason.

use ractor::ActorRef;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use super::{Dispatch, DispatchMsg, DispatchState};
use crate::actors::owned::report_to;
use crate::actors::tracker;
use crate::ports::{Alert, AlertKind, Job};

/// The queue held for an agent program that cannot start.
pub(super) struct Hold {
    /// Why, as the last run or probe said.
    pub(super) reason: String,
    /// When the hold began, RFC 3339 UTC.
    pub(super) since: String,
    /// The probe in flight, owned.
    probing: Option<AbortOnDropHandle<()>>,
}

impl Dispatch {
    /// Holds the queue: `job`'s run found the agent program unable to start. One alert per
    /// hold, about the task whose run found it.
    pub(super) fn hold(&self, state: &mut DispatchState, job: &Job, reason: String) {
        if let Some(hold) = &mut state.hold {
            hold.reason = reason;
            return;
        }
        warn!(task = %job.work_item_id, %reason, "the agent program cannot start; the queue is held");
        tracker::alert(Alert {
            work_item_id: job.work_item_id.clone(),
            kind: AlertKind::AgentUnavailable,
            text: format!(
                "The agent program cannot start, so no agent runs until it can (no attempt is spent): {reason}"
            ),
        });
        state.hold = Some(Hold {
            reason,
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            probing: None,
        });
    }

    /// While held, asks the runner whether the program can start now (one probe at a time).
    pub(super) fn probe(&self, myself: &ActorRef<DispatchMsg>, state: &mut DispatchState) {
        let Some(hold) = &mut state.hold else {
            return;
        };
        if hold.probing.is_some() {
            return;
        }
        let runner = self.deps.runner.clone();
        hold.probing = Some(report_to(myself, async move {
            DispatchMsg::AgentProbed(runner.available().await)
        }));
    }

    /// The probe's answer: lift the hold, or keep it with the latest reason.
    pub(super) fn probed(&self, state: &mut DispatchState, result: Result<(), String>) -> bool {
        let Some(hold) = &mut state.hold else {
            return false;
        };
        hold.probing = None;
        match result {
            Ok(()) => {
                info!(since = %hold.since, "the agent program starts again; claims resume");
                state.hold = None;
                true
            }
            Err(reason) => {
                hold.reason = reason;
                false
            }
        }
    }
}
