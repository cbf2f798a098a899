//! `disk-watchdog` — reads the filesystems holding the data directory, the clones and the
//! worktrees (each once) at start and every interval, in work it owns, and judges each
//! reading ([`crate::domain::disk::judge`]): one notice when a threshold is crossed, a
//! reminder after the cooldown, one when the fill is back below the warning threshold. While
//! any filesystem is critical, `dispatch` is told to start no new agent run (it says so in
//! `GET /queue`), until the fill is back below the warning threshold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::actors::describe::{Describe, Description};
use crate::actors::dispatch::{DISPATCH, DispatchMsg};
use crate::actors::owned::report_to;
use crate::actors::tracker;
use crate::domain::disk::{DiskLevel, DiskNotice, DiskRules, DiskState, judge};
use crate::ports::{DiskProbe, FsReading, Notice};

/// Registered name of the disk watchdog.
pub const DISK_WATCHDOG: &str = "disk-watchdog";

/// What the disk watchdog works with.
pub struct DiskWatchdogDeps {
    /// The filesystems.
    pub probe: Arc<dyn DiskProbe>,
    /// Thresholds and the reminder's cooldown.
    pub rules: DiskRules,
    /// Interval between readings (`ORCH_DISK_CHECK_S`).
    pub interval: Duration,
}

/// One filesystem as last read.
#[derive(Clone, Debug, serde::Serialize)]
struct Filesystem {
    /// What it holds.
    holds: String,
    /// Percent full at the last good reading.
    fill_pct: Option<f64>,
    /// Its level.
    level: DiskLevel,
    /// Why the last reading failed, if it did.
    error: Option<String>,
    /// Its standing for the judge.
    #[serde(skip)]
    state: DiskState,
}

/// The watchdog's bookkeeping.
pub struct DiskWatchdogState {
    /// By filesystem id.
    filesystems: BTreeMap<String, Filesystem>,
    /// Readings completed.
    readings: u64,
    /// Notices sent.
    notices: u64,
    /// The reading in progress, owned: it ends with the actor.
    reading: Option<AbortOnDropHandle<()>>,
}

/// Messages the disk watchdog handles.
pub enum DiskWatchdogMsg {
    /// The interval (and once at start): read unless a reading is under way.
    Tick,
    /// Self, from the reading it owns.
    Read(Vec<FsReading>),
    /// Anyone: reply with each filesystem's fill and level.
    Describe(RpcReplyPort<Description>),
}

impl Describe for DiskWatchdogMsg {
    const KIND: &'static str = "disk-watchdog";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        DiskWatchdogMsg::Describe(reply)
    }
}

/// The disk watchdog actor.
pub struct DiskWatchdog {
    deps: Arc<DiskWatchdogDeps>,
}

impl DiskWatchdog {
    /// A watchdog working with `deps`.
    pub fn new(deps: Arc<DiskWatchdogDeps>) -> Self {
        Self { deps }
    }

    /// What a notice says about filesystem `fs` at `fill`.
    fn text(&self, notice: DiskNotice, fs: &str, fill: f64) -> String {
        let r = &self.deps.rules;
        match notice {
            DiskNotice::Crossed {
                level: DiskLevel::Critical,
            }
            | DiskNotice::Reminder {
                level: DiskLevel::Critical,
            } => format!(
                "The filesystem holding {fs} is {fill:.1}% full (critical at {:.0}%): no new agent run starts until it is below {:.0}%.",
                r.critical_pct, r.warn_pct
            ),
            DiskNotice::Crossed { .. } | DiskNotice::Reminder { .. } => format!(
                "The filesystem holding {fs} is {fill:.1}% full (warning at {:.0}%; new agent runs stop at {:.0}%).",
                r.warn_pct, r.critical_pct
            ),
            DiskNotice::Recovered => format!(
                "The filesystem holding {fs} is back to {fill:.1}% full (below {:.0}%).",
                r.warn_pct
            ),
        }
    }
}

impl Actor for DiskWatchdog {
    type Msg = DiskWatchdogMsg;
    type State = DiskWatchdogState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DiskWatchdogState {
            filesystems: BTreeMap::new(),
            readings: 0,
            notices: 0,
            reading: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(DiskWatchdogMsg::Tick)?;
        myself.send_interval(self.deps.interval, || DiskWatchdogMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DiskWatchdogMsg::Tick => {
                if state.reading.is_some() {
                    return Ok(());
                }
                let probe = self.deps.probe.clone();
                state.reading = Some(report_to(&myself, async move {
                    DiskWatchdogMsg::Read(probe.read().await)
                }));
            }
            DiskWatchdogMsg::Read(readings) => {
                state.reading = None;
                state.readings += 1;
                let now = Instant::now();
                for reading in readings {
                    let fs = state
                        .filesystems
                        .entry(reading.id.clone())
                        .or_insert_with(|| Filesystem {
                            holds: reading.holds.clone(),
                            fill_pct: None,
                            level: DiskLevel::Normal,
                            error: None,
                            state: DiskState::default(),
                        });
                    fs.holds = reading.holds;
                    let fill = match reading.fill_pct {
                        Ok(fill) => fill,
                        Err(e) => {
                            // Nothing is known: the level stands as it was.
                            warn!(filesystem = %fs.holds, error = %e, "cannot read a filesystem's fill");
                            fs.error = Some(e);
                            continue;
                        }
                    };
                    let (next, notice) = judge(fs.state, fill, now, &self.deps.rules);
                    fs.state = next;
                    fs.level = next.level;
                    fs.fill_pct = Some(fill);
                    fs.error = None;
                    if let Some(notice) = notice {
                        let text = self.text(notice, &fs.holds, fill);
                        info!(filesystem = %fs.holds, fill, ?notice, "disk");
                        state.notices += 1;
                        tracker::notice(Notice {
                            topic: "disk".into(),
                            text,
                        });
                    }
                }
                let critical: Vec<String> = state
                    .filesystems
                    .values()
                    .filter(|fs| fs.level == DiskLevel::Critical)
                    .map(|fs| {
                        format!(
                            "the filesystem holding {} is {:.1}% full (critical at {:.0}%)",
                            fs.holds,
                            fs.fill_pct.unwrap_or_default(),
                            self.deps.rules.critical_pct
                        )
                    })
                    .collect();
                let pause = (!critical.is_empty()).then(|| critical.join("; "));
                // Said every reading, so a restarted dispatcher learns it within one.
                if let Some(dispatch) = ractor::registry::where_is(DISPATCH) {
                    let _ = dispatch.send_message(DispatchMsg::Disk(pause));
                }
            }
            DiskWatchdogMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    details: json!({
                        "interval_s": self.deps.interval.as_secs_f64(),
                        "warn_pct": self.deps.rules.warn_pct,
                        "critical_pct": self.deps.rules.critical_pct,
                        "filesystems": state.filesystems,
                        "readings": state.readings,
                        "notices": state.notices,
                    }),
                    ..Description::default()
                });
            }
        }
        Ok(())
    }
}
