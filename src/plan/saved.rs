//! A plan saved to a file (`asctl plan -o plan.json`) and applied later.
//!
//! The file carries the plan and the exact desired documents it was computed
//! from, so `apply plan.json` commits what was reviewed even if the YAML
//! changed since. It is bound to the domain it was computed against: the
//! domain's name, its generation and a fingerprint of its live documents.
//! Once the domain has moved on — or it is another domain, or the file was
//! edited so that its documents no longer give its changes — the plan no
//! longer says what would happen, and applying it is refused
//! ([`SavedPlan::check_current`]).
//!
//! The plan part masks secrets, but the documents cannot (they are what
//! will be applied): a saved plan file is as sensitive as the configuration.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::documents::{self, DocumentError};
use super::{FORMAT_VERSION, LiveState, Plan, diff_configs};
use crate::load::{Loaded, load_texts};
use crate::model::Config;

/// The version of the saved plan file (`formatVersion`). 2 added the
/// domain binding (`domain`, `liveFingerprint`); the plan inside keeps
/// [`FORMAT_VERSION`].
pub const SAVED_PLAN_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedPlan {
    /// [`SAVED_PLAN_VERSION`] of the file.
    pub format_version: u32,
    /// The domain generation the plan is valid for.
    pub base_generation: u64,
    /// The name of the domain the plan was computed against (its applied
    /// Domain object); `None` before the domain's first apply, when it has
    /// no name yet.
    pub domain: Option<String>,
    /// [`documents::fingerprint`] of the live configuration the plan was
    /// computed against.
    pub live_fingerprint: String,
    pub plan: Plan,
    /// The desired configuration, one canonical JSON document per entry
    /// ([`documents`]).
    pub documents: Vec<String>,
}

/// Why a saved plan may not be applied to the domain as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanMismatch {
    #[error(
        "the saved plan was computed against generation {planned} of the domain, which is now \
         at generation {live}; run `asctl plan` again and review the new plan"
    )]
    Stale { planned: u64, live: u64 },
    #[error(
        "the saved plan is for {}, but this is {}; run `asctl plan` against this domain",
        domain_text(planned),
        domain_text(live)
    )]
    OtherDomain {
        planned: Option<String>,
        live: Option<String>,
    },
    #[error(
        "the saved plan was computed against another configuration than the one this domain \
         runs at generation {generation} (another domain of the same name, or one rebuilt \
         since); run `asctl plan` against this domain"
    )]
    OtherConfiguration { generation: u64 },
    #[error(
        "the saved plan's changes are not what its documents change in this domain: the file \
         was edited after `asctl plan` wrote it; run `asctl plan` again"
    )]
    Tampered,
}

fn domain_text(name: &Option<String>) -> String {
    match name {
        Some(n) => format!("domain {n}"),
        None => "a domain with nothing applied yet".into(),
    }
}

#[derive(Debug, Error)]
pub enum SavedPlanError {
    #[error("not a saved plan: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "saved plan format version {found} is not supported (this build reads \
         {SAVED_PLAN_VERSION}); compute the plan again with this version of asctl"
    )]
    Version { found: u32 },
    #[error(
        "the saved plan is inconsistent: its plan is for generation {plan} but the file is bound \
         to generation {file}"
    )]
    Inconsistent { plan: u64, file: u64 },
    #[error("the saved plan's configuration is invalid: {0}")]
    Document(#[from] DocumentError),
}

/// The live domain's name: its applied Domain object's.
fn live_domain(live: &LiveState) -> Option<String> {
    live.config
        .as_ref()
        .and_then(|c| c.domain.as_ref())
        .map(|d| d.name().to_string())
}

impl SavedPlan {
    /// Binds `plan` to the configuration it was computed from and to the
    /// live state it was computed against.
    pub fn new(plan: Plan, desired: &Config, live: &LiveState) -> SavedPlan {
        SavedPlan {
            format_version: SAVED_PLAN_VERSION,
            base_generation: plan.base_generation,
            domain: live_domain(live),
            live_fingerprint: documents::fingerprint(live.config.as_ref()),
            documents: documents::to_document_texts(desired),
            plan,
        }
    }

    pub fn to_json(&self) -> String {
        // Only strings, numbers and plain data: serialising cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a saved plan, refusing other format versions and files whose
    /// plan and binding disagree (a hand-edited file).
    pub fn from_json(text: &str) -> Result<SavedPlan, SavedPlanError> {
        // Check the version before the shape, so that a future format is
        // reported as such rather than as a field error.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Version {
            format_version: u32,
        }
        let Version { format_version } = serde_json::from_str(text)?;
        if format_version != SAVED_PLAN_VERSION {
            return Err(SavedPlanError::Version {
                found: format_version,
            });
        }
        let saved: SavedPlan = serde_json::from_str(text)?;
        if saved.plan.base_generation != saved.base_generation {
            return Err(SavedPlanError::Inconsistent {
                plan: saved.plan.base_generation,
                file: saved.base_generation,
            });
        }
        if saved.plan.format_version != FORMAT_VERSION {
            return Err(SavedPlanError::Version {
                found: saved.plan.format_version,
            });
        }
        Ok(saved)
    }

    /// Ok when `live` is still the domain and the state the plan was
    /// computed against — same name, generation and configuration — and
    /// `desired` (the file's documents, validated) still gives the plan's
    /// changes against it. Only the object changes are checked against the
    /// documents: the runtime actions and the predicted placement depend on
    /// the node health of the plan's moment.
    pub fn check_current(&self, live: &LiveState, desired: &Config) -> Result<(), PlanMismatch> {
        let domain = live_domain(live);
        if domain != self.domain {
            return Err(PlanMismatch::OtherDomain {
                planned: self.domain.clone(),
                live: domain,
            });
        }
        if live.generation != self.base_generation {
            return Err(PlanMismatch::Stale {
                planned: self.base_generation,
                live: live.generation,
            });
        }
        if documents::fingerprint(live.config.as_ref()) != self.live_fingerprint {
            return Err(PlanMismatch::OtherConfiguration {
                generation: live.generation,
            });
        }
        if diff_configs(live.config.as_ref(), desired) != self.plan.changes {
            return Err(PlanMismatch::Tampered);
        }
        Ok(())
    }

    /// The desired configuration, typed (types only; see [`Self::load`] for
    /// a full validation).
    pub fn desired(&self) -> Result<Config, SavedPlanError> {
        let docs = self
            .documents
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<serde_json::Value>, _>>()?;
        Ok(documents::from_documents(&docs)?)
    }

    /// The documents through the loader, as if read from files named
    /// `saved-plan/<n>.json`, so that `apply` validates them exactly as it
    /// validates YAML (`crate::rules::validate`).
    pub fn load(&self) -> Loaded {
        let names: Vec<String> = (0..self.documents.len())
            .map(|i| format!("saved-plan/{i}.json"))
            .collect();
        load_texts(
            names
                .iter()
                .zip(&self.documents)
                .map(|(n, d)| (n.as_str(), d.as_bytes())),
        )
    }
}
