//! Acceptances in `Domain.spec.accept` (`rules::accept`).

use crate::catalog::Origin::Asctl;

rules! {
    ACCEPT_FAMILY;
    ACCEPT_ERROR_UNACKNOWLEDGED = {
        id: "AS0017",
        name: "accept-error-unacknowledged",
        severity: Error,
        title: "an error is accepted without `acknowledgeUnsupported: true`",
        origin: Asctl,
        scope: Structural,
        fix: "add `acknowledgeUnsupported: true` to the entry if you really run an unsupported configuration, or fix the configuration",
        explanation: "Warnings can be accepted with a reason. An error of the seed's rules (its tables, AS01xx, and prose, AS02xx) means the qualification does not support the configuration; accepting one must be an explicit, visible decision, so the entry must also say `acknowledgeUnsupported: true`. (asctl's own errors cannot be accepted at all: `accept-not-allowed`.)",
    }
    ACCEPT_UNUSED = {
        id: "AS0018",
        name: "accept-unused",
        severity: Warning,
        title: "an acceptance names an unknown rule or matches no finding",
        origin: Asctl,
        scope: Structural,
        fix: "remove the entry, or correct the rule ID or object names",
        explanation: "Stale acceptances hide future findings of the same rule without anyone deciding so. An entry that matches nothing is reported so that it can be removed.",
    }
    ACCEPT_NOT_ALLOWED = {
        id: "AS0019",
        name: "accept-not-allowed",
        severity: Error,
        title: "an acceptance names a rule whose findings cannot be accepted",
        origin: Asctl,
        scope: Structural,
        fix: "fix the configuration and remove the entry: only the seed's rules (AS01xx, AS02xx) and asctl's warnings can be accepted",
        explanation: "`Domain.spec.accept` is for findings of the qualification — the seed's tables (AS01xx) and prose rules (AS02xx), whose errors can be accepted with `acknowledgeUnsupported: true` when you knowingly run an unsupported configuration — and for asctl's own warnings. asctl's own errors are different: a file that cannot be read, a field that is not part of the format, a dangling reference, a managed IP outside its line's subnet (AS00xx, AS03xx) describe a configuration that asctl cannot read or that cannot run, and accepting one would let `validate` pass it. An entry naming such a rule (or `accept-unused`) is itself an error, at the entry, and accepts nothing, even with `acknowledgeUnsupported: true`.",
    }
}
