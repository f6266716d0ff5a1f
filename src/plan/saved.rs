//! A plan saved to a file (`asctl plan -o plan.json`) and applied later.
//!
//! The file carries the plan and the exact desired documents it was computed
//! from, so `apply plan.json` commits what was reviewed even if the YAML
//! changed since. It is bound to the domain generation it was computed
//! against: once the domain has moved on, the plan no longer says what would
//! happen, and applying it is refused.
//!
//! The plan part masks secrets, but the documents cannot (they are what
//! will be applied): a saved plan file is as sensitive as the configuration.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::documents::{self, DocumentError};
use super::{FORMAT_VERSION, Plan};
use crate::load::{Loaded, load_texts};
use crate::model::Config;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SavedPlan {
    /// [`FORMAT_VERSION`] of the file.
    pub format_version: u32,
    /// The domain generation the plan is valid for.
    pub base_generation: u64,
    pub plan: Plan,
    /// The desired configuration, one canonical JSON document per entry
    /// ([`documents`]).
    pub documents: Vec<String>,
}

/// The saved plan was computed against a generation the domain has left.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the saved plan was computed against generation {planned} of the domain, which is now at \
     generation {live}; run `asctl plan` again and review the new plan"
)]
pub struct StalePlan {
    pub planned: u64,
    pub live: u64,
}

#[derive(Debug, Error)]
pub enum SavedPlanError {
    #[error("not a saved plan: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "saved plan format version {found} is not supported (this build reads {FORMAT_VERSION}); \
         compute the plan again with this version of asctl"
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

impl SavedPlan {
    /// Binds `plan` to the configuration it was computed from.
    pub fn new(plan: Plan, desired: &Config) -> SavedPlan {
        SavedPlan {
            format_version: FORMAT_VERSION,
            base_generation: plan.base_generation,
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
        if format_version != FORMAT_VERSION {
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

    /// Ok when the domain is still at the generation the plan was computed
    /// against.
    pub fn check_current(&self, live_generation: u64) -> Result<(), StalePlan> {
        if live_generation == self.base_generation {
            Ok(())
        } else {
            Err(StalePlan {
                planned: self.base_generation,
                live: live_generation,
            })
        }
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
