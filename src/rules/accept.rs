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
use crate::catalog::Rule;
use crate::diag::{Finding, Location, Severity};
use crate::load::Loaded;
use crate::model::{Acceptance, Config, DomainSpec, Kind, Object};

/// Applies the acceptances of `config`'s Domain to the findings of its unit.
pub fn apply(loaded: &Loaded, config: &Config, findings: &mut Vec<Finding>) {
    let Some(domain) = &config.domain else {
        return;
    };
    let mut extra = Vec::new();
    for (i, acc) in domain.spec.accept.iter().enumerate() {
        let at = |field: &str| loaded.locate(domain.doc, &format!("/spec/accept/{i}/{field}"));
        let rule = match accepted_rule(domain, acc, || at("rule")) {
            Ok(rule) => rule,
            Err(refused) => {
                extra.push(*refused);
                continue;
            }
        };
        extra.extend(suppress(domain, acc, rule, findings, || at("rule")));
    }
    findings.extend(extra);
}

/// The rule `acc` names, or the finding that refuses the entry: an unknown
/// rule, one never accepted, or an error accepted without acknowledging
/// that the configuration is unsupported.
fn accepted_rule(
    domain: &Object<DomainSpec>,
    acc: &Acceptance,
    at: impl Fn() -> Option<Location>,
) -> Result<&'static Rule, Box<Finding>> {
    let Some(rule) = find_rule(&acc.rule) else {
        return Err(Box::new(
            Finding::new(
                &cat::ACCEPT_UNUSED,
                format!("`{}` is not a rule of this asctl", acc.rule),
                at(),
            )
            .with_help("`asctl rules` lists every rule ID")
            .about(Kind::Domain, domain.name().as_str()),
        ));
    };
    if !rule.acceptable() {
        return Err(Box::new(
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
                at(),
            )
            .with_help("fix the configuration and remove the entry; only the seed's rules (AS01xx, AS02xx) and asctl's warnings can be accepted")
            .about(Kind::Domain, domain.name().as_str()),
        ));
    }
    let unsupported = rule.severity == Severity::Error;
    if unsupported && !acc.acknowledge_unsupported {
        return Err(Box::new(
            Finding::new(
                &cat::ACCEPT_ERROR_UNACKNOWLEDGED,
                format!(
                    "{} is an error (the configuration is not supported); accepting it needs `acknowledgeUnsupported: true`",
                    rule.id
                ),
                at(),
            )
            .about(Kind::Domain, domain.name().as_str()),
        ));
    }
    Ok(rule)
}

/// Marks the findings `acc` matches suppressed with its reason; the finding
/// that reports the entry unused when it matched none.
fn suppress(
    domain: &Object<DomainSpec>,
    acc: &Acceptance,
    rule: &Rule,
    findings: &mut [Finding],
    at: impl Fn() -> Option<Location>,
) -> Option<Finding> {
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
    if used {
        return None;
    }
    Some(
        Finding::new(
            &cat::ACCEPT_UNUSED,
            format!("the acceptance of {} matches no finding", rule.id),
            at(),
        )
        .with_help("remove the entry: the finding it accepted is gone")
        .about(Kind::Domain, domain.name().as_str()),
    )
}
