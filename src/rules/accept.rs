//! Findings accepted on purpose in `Domain.spec.accept`.
//!
//! A warning or note is accepted by naming its rule and a reason. An error
//! of the seed's rules means the configuration is unsupported; accepting one
//! also needs `acknowledgeUnsupported: true`, so that nobody silences it by
//! accident. asctl's own errors (reading, schema, structure) are never
//! accepted ([`Rule::acceptable`](super::Rule::acceptable)): an entry naming
//! one is an error and accepts nothing. Accepted findings stay in the
//! report, marked suppressed with the reason.

use super::find_rule;
use crate::catalog as cat;
use crate::diag::{Finding, Severity};
use crate::load::Loaded;
use crate::model::{Config, Kind};

/// Applies the acceptances of `config`'s Domain to the findings of its unit.
pub fn apply(loaded: &Loaded, config: &Config, findings: &mut Vec<Finding>) {
    let Some(domain) = &config.domain else {
        return;
    };
    let mut extra = Vec::new();
    for (i, acc) in domain.spec.accept.iter().enumerate() {
        let at = |field: &str| loaded.locate(domain.doc, &format!("/spec/accept/{i}/{field}"));
        let Some(rule) = find_rule(&acc.rule) else {
            extra.push(
                Finding::new(
                    &cat::ACCEPT_UNUSED,
                    format!("`{}` is not a rule of this asctl", acc.rule),
                    at("rule"),
                )
                .with_help("`asctl rules` lists every rule ID")
                .about(Kind::Domain, domain.name().as_str()),
            );
            continue;
        };
        if !rule.acceptable() {
            extra.push(
                Finding::new(
                    &cat::ACCEPT_NOT_ALLOWED,
                    format!(
                        "{} ({}) cannot be accepted: {}",
                        rule.id,
                        rule.name,
                        if std::ptr::eq(rule, &cat::ACCEPT_UNUSED) {
                            "it reports stale acceptances".to_owned()
                        } else {
                            format!(
                                "it is an error of asctl's own ({}), not a finding of the qualification",
                                rule.title
                            )
                        }
                    ),
                    at("rule"),
                )
                .with_help("fix the configuration and remove the entry; only the seed's rules (AS01xx, AS02xx) and asctl's warnings can be accepted")
                .about(Kind::Domain, domain.name().as_str()),
            );
            continue;
        }
        let unsupported = rule.severity == Severity::Error;
        if unsupported && !acc.acknowledge_unsupported {
            extra.push(
                Finding::new(
                    &cat::ACCEPT_ERROR_UNACKNOWLEDGED,
                    format!(
                        "{} is an error (the configuration is not supported); accepting it needs `acknowledgeUnsupported: true`",
                        rule.id
                    ),
                    at("rule"),
                )
                .about(Kind::Domain, domain.name().as_str()),
            );
            continue;
        }
        let mut used = false;
        for f in findings.iter_mut() {
            let matches = f.rule.id == rule.id
                && f.suppressed.is_none()
                && (acc.objects.is_empty() || f.objects.iter().any(|o| acc.objects.contains(o)));
            if matches {
                f.suppressed = Some(acc.reason.clone());
                used = true;
            }
        }
        if !used {
            extra.push(
                Finding::new(
                    &cat::ACCEPT_UNUSED,
                    format!("the acceptance of {} matches no finding", rule.id),
                    at("rule"),
                )
                .with_help("remove the entry: the finding it accepted is gone")
                .about(Kind::Domain, domain.name().as_str()),
            );
        }
    }
    findings.extend(extra);
}
