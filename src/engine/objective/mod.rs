//! What can happen to an objective — start, steer, ask, publish, finish — as one service that
//! both the webhook handlers and the agents' MCP tools call, so the rules hold whichever way
//! a change comes in.

pub mod followups;
pub mod lifecycle;
pub mod publish;
pub mod pulls;
pub mod questions;
pub mod requests;

use std::sync::Arc;

use crate::engine::identity::Identity;
use crate::engine::runtime::{AgentSettings, Runtime};
use crate::model::{Clock, Objective};
use crate::store::Store;

/// What the objective services take: the store and clock, the agents' settings (budgets,
/// posting limits, the manager's and workers' agents), foreman's GitHub identity (to publish),
/// and the runtime that runs the sessions they start and stop.
pub struct Objectives {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub agents: AgentSettings,
    pub github: Arc<Identity>,
    pub runtime: Arc<Runtime>,
}

impl Objectives {
    /// The caller's objective, when an agent may still act for it: not ended, not held. Every
    /// tool call checks this first, and publishing again just before it opens a pull request,
    /// so nothing is done on GitHub for an objective a human stopped meanwhile.
    pub async fn still_live(&self, caller: &crate::model::Session) -> anyhow::Result<Objective> {
        let Some(objective) = self.store.objective(caller.objective_id).await? else {
            crate::refuse!("your objective is gone");
        };
        if objective.status.is_terminal() {
            crate::refuse!(
                "the objective has ended ({}); there is nothing more to do for it. End your turn.",
                objective.status.as_str()
            );
        }
        if let Some(why) = &objective.held {
            crate::refuse!("the work is stopped ({why}); end your turn");
        }
        Ok(objective)
    }
}

/// A request the objective service turns down, and why, in words meant for whoever asked (an
/// agent's tool call shows them as they are). What goes wrong otherwise is not a refusal.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Returns a [`Refused`] error with a formatted reason (the `bail!` of refusals).
#[macro_export]
#[doc(hidden)]
macro_rules! refuse {
    ($($reason:tt)*) => {
        return Err(anyhow::Error::new($crate::engine::objective::Refused(
            std::fmt::format(format_args!($($reason)*)),
        )))
    };
}
