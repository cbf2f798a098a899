//! Connects the configured integrations — Plane (tracker board and webhook intake), Gitea
//! (forge and webhook intake) — and hands each part of the service the adapter it needs:
//! the board for task actors, the Gitea half of the forge, the intake for the webhook
//! routes. Unconfigured integrations fall back to the local tracker and forge.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use orchestrator_actors::actors::task::TaskCreator;
use orchestrator_actors::ports::{Board, LocalBoard};
use tracing::warn;

use crate::config::Config;
use crate::forge::GiteaForge;
use crate::gitea::GiteaClient;
use crate::intake::{BotAccounts, GiteaIntake, Intake, PlaneIntake, Settler};
use crate::plane::board::PlaneBoard;
use crate::plane::{PlaneClient, StatesCache};
use crate::store::SqliteStore;

/// The live connections to the configured integrations (their settings are
/// [`crate::config::Integrations`]).
pub struct Connections {
    /// The Plane API and its states cache, when configured.
    plane: Option<(Arc<PlaneClient>, Arc<StatesCache>)>,
    /// The Gitea API, when configured.
    gitea: Option<Arc<GiteaClient>>,
    /// The orchestrator's own Plane accounts.
    bots: Arc<BotAccounts>,
    /// The board task actors report to.
    pub board: Arc<dyn Board>,
}

impl Connections {
    /// Builds the clients the configuration asks for.
    pub fn connect(config: &Config, store: Arc<SqliteStore>) -> anyhow::Result<Self> {
        let settings = &config.integrations;
        if settings.allow_unsigned_webhooks {
            if settings
                .plane
                .as_ref()
                .is_some_and(|p| p.webhook_secret.is_none())
            {
                warn!(
                    "ORCH_ALLOW_UNSIGNED_WEBHOOKS=true and no ORCH_PLANE_WEBHOOK_SECRET: anyone who can reach /webhook/plane can steer tasks"
                );
            }
            if settings
                .gitea
                .as_ref()
                .is_some_and(|g| g.webhook_secret.is_none())
            {
                warn!(
                    "ORCH_ALLOW_UNSIGNED_WEBHOOKS=true and no ORCH_GITEA_WEBHOOK_SECRET: anyone who can reach /webhook/gitea can move tasks"
                );
            }
        }
        let bots = Arc::new(BotAccounts::new(
            settings
                .plane
                .iter()
                .flat_map(|p| p.bot_user_ids.iter().cloned()),
        ));
        let plane = match &settings.plane {
            Some(p) => {
                let bot_tokens: HashMap<_, _> = p.bot_tokens.clone().into_iter().collect();
                let client = Arc::new(
                    PlaneClient::new(&p.api_url, &p.workspace, &p.token, bot_tokens)
                        .context("cannot set up the Plane client")?,
                );
                let states = Arc::new(StatesCache::new((*client).clone(), p.states_ttl));
                Some((client, states))
            }
            None => None,
        };
        let gitea = match &settings.gitea {
            Some(g) => Some(Arc::new(
                GiteaClient::new(&g.url, &g.token).context("cannot set up the Gitea client")?,
            )),
            None => None,
        };
        let board: Arc<dyn Board> = match &plane {
            Some((client, states)) => Arc::new(PlaneBoard::new(
                client.clone(),
                states.clone(),
                store,
                config.projects.clone(),
                bots.clone(),
            )),
            None => Arc::new(LocalBoard),
        };
        Ok(Self {
            plane,
            gitea,
            bots,
            board,
        })
    }

    /// The Gitea half of the forge, when Gitea is configured.
    pub fn gitea_forge(&self, config: &Config) -> Option<GiteaForge> {
        self.gitea.as_ref().map(|client| GiteaForge {
            client: client.clone(),
            ci_poll: config.integrations.ci_poll,
            ci_wait: config.integrations.ci_wait,
        })
    }

    /// The webhook intake, creating tasks through `creator`.
    pub fn intake(
        &self,
        config: &Config,
        store: Arc<SqliteStore>,
        creator: Arc<TaskCreator>,
    ) -> Arc<Intake> {
        let settings = &config.integrations;
        Arc::new(Intake {
            settler: Settler::start(store.clone()),
            journal: store.clone(),
            store: store.clone(),
            links: store.clone(),
            heads: store,
            creator,
            board: self.board.clone(),
            projects: config.projects.clone(),
            settings: settings.clone(),
            plane: self.plane.as_ref().map(|(client, states)| PlaneIntake {
                client: client.clone(),
                states: states.clone(),
                secret: settings
                    .plane
                    .as_ref()
                    .and_then(|p| p.webhook_secret.clone()),
            }),
            gitea: self.gitea.as_ref().map(|client| GiteaIntake {
                client: client.clone(),
                secret: settings
                    .gitea
                    .as_ref()
                    .and_then(|g| g.webhook_secret.clone()),
            }),
            bots: self.bots.clone(),
        })
    }
}
