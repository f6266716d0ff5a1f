//! Desired configuration vs live state: placement, the plan, saved plans.
//!
//! Pure: no I/O, no clock, no async. The domain leader uses [`place`] to
//! decide where groups run; `asctl plan` and `asctl apply` use
//! [`Plan::compute`], which calls the same [`place`], so the plan shows what
//! the leader will do.
//!
//! A [`Plan`] is a value computed once. Renderers ([`render_human`],
//! [`render_json`]) only format it, never recompute it; a [`SavedPlan`]
//! carries it to a later `apply`, which refuses it when the domain has moved
//! on or is another one ([`SavedPlan::check_current`]).
//!
//! Not here: fetching the live state, committing a configuration, waiting
//! for convergence (the CLI and the domain do that around these values).

mod actions;
mod diff;
pub mod documents;
pub mod overrides;
mod place;
mod render;
mod saved;
pub mod whatif;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use actions::{Action, needs_restart, restart_reasons};
pub use diff::{FieldDiff, ObjectChange, Op, SENSITIVE, diff_configs, forces_replacement};
pub use place::{
    GroupPlacement, Health, NodeState, Placement, Unclean, carry_over, is_eligible, place,
    place_with, standby_nodes,
};
pub use render::{render_human, render_json};
pub use saved::{PlanMismatch, SAVED_PLAN_VERSION, SavedPlan, SavedPlanError};

use crate::model::Config;

/// The version of the JSON forms of [`Plan`], [`LiveState`] and
/// [`SavedPlan`] (`formatVersion`). Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// What the domain runs now, as fetched from any member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    /// The generation of the applied configuration; 0 before the first apply.
    pub generation: u64,
    /// The applied configuration; `None` before the first apply.
    pub config: Option<Config>,
    /// Where every group of `config` is.
    pub placement: Placement,
    /// The state of every node.
    pub health: Health,
    /// The operator's overrides in the domain database
    /// ([`overrides::Overrides`]); `plan` predicts with them.
    pub overrides: overrides::Overrides,
    /// When the answering member read the state (ms since the Unix epoch;
    /// 0: unknown, every override counts as in force): what `plan` judges
    /// the overrides' expiry by.
    pub now_ms: u64,
}

/// The JSON form of [`LiveState`]: versioned, the configuration as canonical
/// documents ([`documents`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LiveStateOut<'a> {
    format_version: u32,
    generation: u64,
    config: Option<Vec<serde_json::Value>>,
    placement: &'a Placement,
    health: &'a Health,
    #[serde(skip_serializing_if = "overrides::Overrides::is_empty")]
    overrides: &'a overrides::Overrides,
    #[serde(skip_serializing_if = "is_zero")]
    now_ms: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LiveStateIn {
    format_version: u32,
    generation: u64,
    #[serde(default, with = "documents::option_config")]
    config: Option<Config>,
    #[serde(default)]
    placement: Placement,
    #[serde(default)]
    health: Health,
    #[serde(default)]
    overrides: overrides::Overrides,
    #[serde(default)]
    now_ms: u64,
}

impl Serialize for LiveState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LiveStateOut {
            format_version: FORMAT_VERSION,
            generation: self.generation,
            config: self.config.as_ref().map(documents::to_documents),
            placement: &self.placement,
            health: &self.health,
            overrides: &self.overrides,
            now_ms: self.now_ms,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LiveState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = LiveStateIn::deserialize(d)?;
        if w.format_version != FORMAT_VERSION {
            return Err(serde::de::Error::custom(format!(
                "live state format version {} is not supported (this build reads {FORMAT_VERSION})",
                w.format_version
            )));
        }
        Ok(LiveState {
            generation: w.generation,
            config: w.config,
            placement: w.placement,
            health: w.health,
            overrides: w.overrides,
            now_ms: w.now_ms,
        })
    }
}

/// The difference between a desired configuration and the live state, and
/// what applying it will do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The live generation the plan was computed against.
    pub base_generation: u64,
    /// Objects to add, change, replace or remove, by kind then name.
    pub changes: Vec<ObjectChange>,
    /// Runtime actions, by group name (IP addresses after their group).
    pub actions: Vec<Action>,
    /// Where every group of the desired configuration will be once the plan
    /// is applied: what `apply` waits for.
    pub placement: Placement,
    /// The operator's overrides the placement was predicted with (the live
    /// domain's `asctl move`/`standby`); absent when there are none.
    #[serde(default, skip_serializing_if = "overrides::Overrides::is_empty")]
    pub overrides: overrides::Overrides,
}

impl Plan {
    /// Plans `desired` (already validated) against `live`.
    ///
    /// The predicted placement is [`place`] applied to the live placement as
    /// the leader will see it after the commit ([`carry_over`]), with the
    /// operator's overrides in force when the live state was read
    /// ([`place_with`]).
    pub fn compute(desired: &Config, live: &LiveState) -> Plan {
        let old = live.config.as_ref();
        let carried = carry_over(old, desired, &live.placement);
        let placement = place_with(
            desired,
            &live.health,
            &carried,
            &Unclean::new(),
            &live.overrides,
            live.now_ms,
        );
        Plan {
            format_version: FORMAT_VERSION,
            base_generation: live.generation,
            changes: diff_configs(old, desired),
            actions: actions::actions(old, desired, &live.health, &live.placement, &placement),
            placement,
            overrides: live.overrides.clone(),
        }
    }

    /// No object changes: applying would commit nothing. (Actions may still
    /// be pending, e.g. a failover the leader has not carried out yet.)
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Objects to add, change and destroy, counted as Terraform does: a
    /// replacement is one to add and one to destroy.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.op {
                Op::Create => s.add += 1,
                Op::Update => s.change += 1,
                Op::Delete => s.destroy += 1,
                Op::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
            }
        }
        s
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}
