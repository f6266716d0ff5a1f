//! Configuration documents as the domain stores them: read back into a
//! [`Config`], and validated before any of them is committed.

use crate::load::load_texts;
use crate::model::Config;

/// Reads canonical documents back into a configuration. They go through the
/// same loader as files (JSON is YAML), so there is one way to turn text into
/// a [`Config`].
pub fn config_from_documents(documents: &[String]) -> Result<Config, String> {
    let names: Vec<String> = (0..documents.len())
        .map(|i| format!("domain/{i}.json"))
        .collect();
    let loaded = load_texts(
        names
            .iter()
            .zip(documents)
            .map(|(n, d)| (n.as_str(), d.as_bytes())),
    );
    if let Some(f) = loaded
        .findings
        .iter()
        .find(|f| f.severity == crate::diag::Severity::Error)
    {
        return Err(f.message.clone());
    }
    Ok(loaded.config)
}

/// Validates documents before they are committed: the loader and every rule,
/// as `asctl validate` runs them. `Err` carries the findings, rendered (the
/// documents are named `apply/<n>.json`).
///
/// The one gate for every configuration the domain commits, whichever way it
/// came (`POST /v1/apply`, a raw `POST /v1/write`, a member forwarding):
/// [`super::Replica::write_local`] runs it before raft sees the command. The
/// state machine ([`DomainState::apply`]) does not: it replays committed
/// entries, and a rule added by a newer asctl must not make members disagree
/// about an entry committed under an older one.
pub fn validate_documents(documents: &[String]) -> Result<(), String> {
    let names: Vec<String> = (0..documents.len())
        .map(|i| format!("apply/{i}.json"))
        .collect();
    let loaded = load_texts(
        names
            .iter()
            .zip(documents)
            .map(|(n, d)| (n.as_str(), d.as_bytes())),
    );
    // What the domain runs is one whole domain: the checks `plan` and
    // `apply` make first, made again here for every route a write comes by.
    if let Err(e) = loaded.single_domain() {
        return Err(format!(
            "the configuration is not one domain: {e}; nothing was applied"
        ));
    }
    let validation = crate::rules::validate(loaded);
    if !validation.has_errors() {
        return Ok(());
    }
    let text = crate::diag::render_human(
        &validation.findings,
        &validation.loaded.sources,
        validation.loaded.docs.len(),
    );
    Err(format!(
        "the configuration has errors; nothing was applied\n{text}"
    ))
}
