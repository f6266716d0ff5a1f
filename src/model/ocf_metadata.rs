//! An OCF agent's `meta-data`: its parameters and its actions' timeouts
//! (the resource-agent API's XML, `ra-api.rng`).

use std::collections::BTreeMap;
use std::time::Duration;

/// Meta-data of the OCF agents a configuration names, by their `ocf` text;
/// `None` for an agent not installed where it was gathered. Gathered by the
/// validate command (I/O), judged by the rules (pure).
pub type OcfCatalog = BTreeMap<String, Option<Metadata>>;

/// What asctl uses of an agent's meta-data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    /// Parameters by name.
    pub params: BTreeMap<String, Param>,
    /// Actions by name (`start`, `stop`, `monitor`...).
    pub actions: BTreeMap<String, ActionHint>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Param {
    pub required: bool,
    pub default: Option<String>,
}

/// An `<action>` element. Its `timeout` is the agent author's minimum
/// advice, which asctl uses as the action's timeout unless overridden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionHint {
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("the meta-data is not XML: {0}")]
    Xml(String),
    #[error("the meta-data has no <resource-agent> root element")]
    NoRoot,
}

impl Metadata {
    pub fn parse(xml: &str) -> Result<Metadata, MetadataError> {
        // Agents declare `<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">`;
        // an external DTD is never fetched, only allowed.
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(xml, opts)
            .map_err(|e| MetadataError::Xml(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "resource-agent" {
            return Err(MetadataError::NoRoot);
        }
        let mut md = Metadata {
            name: root.attribute("name").unwrap_or_default().to_string(),
            ..Metadata::default()
        };
        if let Some(params) = child(root, "parameters") {
            for p in params.children().filter(|c| c.has_tag_name("parameter")) {
                let Some(name) = p.attribute("name") else {
                    continue;
                };
                let content = child(p, "content");
                md.params.insert(
                    name.to_string(),
                    Param {
                        required: matches!(p.attribute("required"), Some("1" | "true")),
                        default: content
                            .and_then(|c| c.attribute("default"))
                            .map(str::to_string),
                    },
                );
            }
        }
        if let Some(actions) = child(root, "actions") {
            for a in actions.children().filter(|c| c.has_tag_name("action")) {
                let Some(name) = a.attribute("name") else {
                    continue;
                };
                // A promotable agent lists `monitor` once per role; the first
                // (role-less) entry is the one a plain resource uses.
                md.actions.entry(name.to_string()).or_insert(ActionHint {
                    timeout: a.attribute("timeout").and_then(parse_ocf_duration),
                    interval: a.attribute("interval").and_then(parse_ocf_duration),
                });
            }
        }
        Ok(md)
    }

    /// The hinted timeout of `action`, if the agent gives one.
    pub fn timeout(&self, action: &str) -> Option<Duration> {
        self.actions.get(action).and_then(|a| a.timeout)
    }

    /// The hinted interval of `action` (for `monitor`), if non-zero.
    pub fn interval(&self, action: &str) -> Option<Duration> {
        self.actions
            .get(action)
            .and_then(|a| a.interval)
            .filter(|d| !d.is_zero())
    }
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == tag)
}

/// Durations as agents write them: `20s`, `20`, `2m`, `100ms`, `1h`
/// (a bare number is seconds, as Pacemaker reads it).
pub fn parse_ocf_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "s" | "sec" => n.checked_mul(1000)?,
        "ms" | "msec" => n,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" | "hr" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMMY_LIKE: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Filesystem" version="1.1">
<version>1.0</version>
<longdesc lang="en">Mounts a file system.</longdesc>
<parameters>
<parameter name="device" required="1" unique="0">
<content type="string" default="" />
</parameter>
<parameter name="fstype" required="1"><content type="string"/></parameter>
<parameter name="run_fsck" required="0"><content type="string" default="auto" /></parameter>
<parameter name="fast_stop"><content type="boolean" default="false"/></parameter>
</parameters>
<actions>
<action name="start" timeout="60s" />
<action name="stop" timeout="60" />
<action name="monitor" depth="0" timeout="40s" interval="20s" />
<action name="monitor" role="Promoted" timeout="10s" interval="5s" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>"#;

    #[test]
    fn reads_parameters_and_action_hints() {
        let md = Metadata::parse(DUMMY_LIKE).unwrap();
        assert_eq!(md.name, "Filesystem");
        assert!(md.params["device"].required);
        assert!(md.params["fstype"].required);
        assert!(!md.params["run_fsck"].required);
        assert_eq!(md.params["run_fsck"].default.as_deref(), Some("auto"));
        assert_eq!(md.params.len(), 4);
        assert_eq!(md.timeout("start"), Some(Duration::from_secs(60)));
        assert_eq!(
            md.timeout("stop"),
            Some(Duration::from_secs(60)),
            "bare seconds"
        );
        assert_eq!(
            md.timeout("monitor"),
            Some(Duration::from_secs(40)),
            "the role-less one"
        );
        assert_eq!(md.interval("monitor"), Some(Duration::from_secs(20)));
        assert_eq!(md.timeout("validate-all"), None);
    }

    #[test]
    fn refuses_what_is_not_meta_data() {
        assert!(matches!(
            Metadata::parse("not xml <"),
            Err(MetadataError::Xml(_))
        ));
        assert_eq!(Metadata::parse("<other/>"), Err(MetadataError::NoRoot));
    }

    #[test]
    fn durations_as_agents_write_them() {
        assert_eq!(parse_ocf_duration("20s"), Some(Duration::from_secs(20)));
        assert_eq!(parse_ocf_duration("20"), Some(Duration::from_secs(20)));
        assert_eq!(
            parse_ocf_duration("100ms"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_ocf_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_ocf_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_ocf_duration("soon"), None);
        assert_eq!(parse_ocf_duration("99999999999999999999h"), None);
    }
}
