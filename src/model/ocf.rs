use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Name};

/// An OCF resource agent driving a data source: `ocf` names the agent as
/// `PROVIDER:TYPE` (e.g. `heartbeat:Filesystem`, found at
/// `$OCF_ROOT/resource.d/heartbeat/Filesystem`), `params` become its
/// `OCF_RESKEY_<name>` variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OcfAgent {
    /// The agent, as `PROVIDER:TYPE`, e.g. `heartbeat:Filesystem`.
    pub ocf: String,
    /// The agent's parameters (see its `meta-data`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamValue>,
    /// When the agent's `monitor` runs; the interval and timeout default to
    /// the agent's meta-data, else `10s` and `20s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<OcfMonitor>,
    /// Overrides of the `start`/`stop` timeouts of the agent's meta-data
    /// (else `20s`). An agent still running at its timeout is killed, with
    /// its whole process group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<OcfTimeouts>,
}

/// An OCF resource agent run with a resource group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OcfResource {
    /// The resource's name, unique within the group (`OCF_RESOURCE_INSTANCE`).
    pub name: Name,
    /// The agent, as `PROVIDER:TYPE`, e.g. `heartbeat:Dummy`.
    pub ocf: String,
    /// The agent's parameters (see its `meta-data`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamValue>,
    /// When the agent's `monitor` runs (defaults: the agent's meta-data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<OcfMonitor>,
    /// Overrides of the `start`/`stop` timeouts of the agent's meta-data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<OcfTimeouts>,
}

impl OcfResource {
    /// The agent part, as a data source's `agent` has it.
    pub fn agent(&self) -> OcfAgent {
        OcfAgent {
            ocf: self.ocf.clone(),
            params: self.params.clone(),
            monitor: self.monitor,
            timeouts: self.timeouts,
        }
    }
}

/// When an OCF agent's `monitor` action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OcfMonitor {
    /// Time between two monitors (default: the meta-data's, else `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time a monitor may take (default: the meta-data's, else `20s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Timeouts of an OCF agent's `start` and `stop` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OcfTimeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
}

/// A parameter value: YAML strings, numbers and booleans are all passed to
/// the agent as text (`true`, `42`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Bool(bool),
    Number(serde_json::Number),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Text(s) => f.write_str(s),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Number(n) => write!(f, "{n}"),
        }
    }
}

impl OcfAgent {
    /// `(provider, type)` when `ocf` has the `PROVIDER:TYPE` form with two
    /// names safe to use as path components.
    pub fn provider_and_type(&self) -> Option<(&str, &str)> {
        split_ocf(&self.ocf)
    }
}

/// Splits `PROVIDER:TYPE`; `None` unless both parts are non-empty and hold
/// only letters, digits, `-`, `_` and `.` (no `/`, no `..`), so they cannot
/// name a file outside `$OCF_ROOT/resource.d`.
pub fn split_ocf(ocf: &str) -> Option<(&str, &str)> {
    let (p, t) = ocf.split_once(':')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(p) && ok(t)).then_some((p, t))
}

#[cfg(test)]
mod tests {
    use super::split_ocf;

    #[test]
    fn ocf_names_split_and_refuse_paths() {
        assert_eq!(
            split_ocf("heartbeat:Filesystem"),
            Some(("heartbeat", "Filesystem"))
        );
        assert_eq!(split_ocf("Filesystem"), None);
        assert_eq!(split_ocf("heartbeat:../../bin/sh"), None);
        assert_eq!(split_ocf("..:x"), None);
        assert_eq!(split_ocf(":x"), None);
    }
}
