//! Rules about composite data sources (AS02xx): what a composite may group,
//! and that it groups at least two.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::profile::Profile;
use crate::catalog as cat;
use crate::diag::Finding;
use crate::model::{DataSourceType, Kind, Name};

pub(super) fn composites(ctx: &mut Ctx, profile: &Profile) {
    for ds in &ctx.config.data_sources {
        if ds.spec.kind != DataSourceType::Composite {
            continue;
        }
        let mut distinct: Vec<&Name> = Vec::new();
        for (i, m) in ds.spec.members.iter().enumerate() {
            if !distinct.contains(&m) {
                distinct.push(m);
            }
            let Some(member) = ctx.config.data_sources.get(m.as_str()) else {
                continue;
            };
            if profile.composite_members.contains(&member.spec.kind) {
                continue;
            }
            let allowed: Vec<&str> = profile
                .composite_members
                .iter()
                .map(|t| t.as_str())
                .collect();
            let f = Finding::new(
                &cat::COMPOSITE_MEMBER_TYPE,
                format!(
                    "composite `{}` groups `{m}`, a {} data source: a composite can group only {}",
                    ds.name(),
                    member.spec.kind,
                    allowed.join(", ")
                ),
                ctx.at(ds.doc, &format!("/spec/members/{i}")),
            )
            .with_related(ctx.at(member.doc, "/spec/type"), "its type")
            .with_help("list the data source in the group directly instead of in the composite")
            .about(Kind::DataSource, ds.name().as_str());
            ctx.report(f);
        }
        if distinct.len() < 2 {
            let loc = if ds.spec.members.is_empty() {
                ctx.at(ds.doc, "/spec/type")
            } else {
                ctx.at(ds.doc, "/spec/members")
            };
            let f = Finding::new(
                &cat::COMPOSITE_TOO_FEW_MEMBERS,
                format!(
                    "composite `{}` groups {} data source{}: a composite groups two or more",
                    ds.name(),
                    distinct.len(),
                    if distinct.len() == 1 { "" } else { "s" }
                ),
                loc,
            )
            .with_help("add members, or use the single data source directly")
            .about(Kind::DataSource, ds.name().as_str());
            ctx.report(f);
        }
    }
}
