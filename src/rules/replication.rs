//! Rules about array replication (AS02xx): MirrorView and SRDF combined
//! with the right partner data source, and used with it in the group.
//!
//! Limits come from the profile in force, so that a later qualification
//! changes data, not these checks.

use super::Ctx;
use super::topology;
use crate::catalog as cat;
use crate::diag::{Finding, Location};
use crate::model::{Backing, DataSourceSpec, DataSourceType, Kind, Name, Object};

/// MirrorView/SRDF and the data source they are combined with (seed,
/// "MirrorView", "SRDF"): in RDM mode a Shared Disk on the RDM device, in
/// VMFS mode the VMFS data source; and a group that uses one uses the other.
pub(super) fn replication_pairing(ctx: &mut Ctx) {
    // Correctly paired data sources: (MirrorView/SRDF, its partner).
    let mut paired: Vec<(&Object<DataSourceSpec>, &Object<DataSourceSpec>)> = Vec::new();
    for ds in &ctx.config.data_sources {
        if !matches!(
            ds.spec.kind,
            DataSourceType::MirrorView | DataSourceType::Srdf
        ) {
            continue;
        }
        if let Some(partner) = pairing(ctx, ds) {
            paired.push((ds, partner));
        }
    }
    partners_in_groups(ctx, &paired);
}

/// Checks what a MirrorView/SRDF data source is paired with, reporting a
/// wrong or missing partner; returns the partner when it is the right kind
/// (or, without a device, either kind).
fn pairing<'a>(
    ctx: &mut Ctx<'a>,
    ds: &'a Object<DataSourceSpec>,
) -> Option<&'a Object<DataSourceSpec>> {
    let target = ds
        .spec
        .paired_with
        .as_ref()
        .and_then(|p| ctx.config.data_sources.get(p.as_str()));
    let Some(dev) = &ds.spec.device else {
        // No device (`data-source-field-missing`): the mode is unknown,
        // but a partner of either kind still belongs in the group.
        if let Some(t) = target
            && matches!(
                t.spec.kind,
                DataSourceType::SharedDisk | DataSourceType::Vmfs
            )
        {
            return Some(t);
        }
        return None;
    };
    let need = if dev.backing.is_rdm() {
        DataSourceType::SharedDisk
    } else {
        DataSourceType::Vmfs
    };
    let (loc, problem, related) = match (&ds.spec.paired_with, target) {
        (None, _) => (
            ctx.at(ds.doc, "/spec/device/backing"),
            "has no `pairedWith`".to_owned(),
            None,
        ),
        // A dangling name is `dangling-reference`.
        (Some(_), None) => return None,
        (Some(p), Some(target)) if target.spec.kind != need => (
            ctx.at(ds.doc, "/spec/pairedWith"),
            format!("is paired with `{p}`, a {} data source", target.spec.kind),
            Some((ctx.at(target.doc, "/spec/type"), "its type")),
        ),
        // RDM mode: the shared disk is the replicated LUN, mapped as an
        // RDM; a virtual disk on a VMFS volume is not that LUN.
        (Some(p), Some(target))
            if need == DataSourceType::SharedDisk
                && target.spec.device.as_ref().map(|d| d.backing) == Some(Backing::Vmfs) =>
        {
            (
                ctx.at(ds.doc, "/spec/pairedWith"),
                format!("is paired with `{p}`, a sharedDisk on a VMFS virtual disk"),
                Some((ctx.at(target.doc, "/spec/device/backing"), "its backing")),
            )
        }
        (Some(_), Some(target)) => return Some(target),
    };
    report_pairing(ctx, ds, need, loc, &problem, related);
    None
}

/// Reports `ds` paired wrongly (`problem`, found at `loc`): in its mode it
/// needs a partner of type `need`.
fn report_pairing(
    ctx: &mut Ctx,
    ds: &Object<DataSourceSpec>,
    need: DataSourceType,
    loc: Option<Location>,
    problem: &str,
    related: Option<(Option<Location>, &str)>,
) {
    // `need` is a shared disk exactly when the device is an RDM.
    let mode = if need == DataSourceType::SharedDisk {
        "RDM"
    } else {
        "VMFS"
    };
    let need_text = match need {
        DataSourceType::SharedDisk => {
            "Shared Disk data source on the RDM device (`backing: rdm-physical` or `rdm-virtual`)"
        }
        _ => "VMFS data source (`type: vmfs`)",
    };
    let mut f = Finding::new(
        &cat::REPLICATION_PAIRING,
        format!(
            "{} `{}` in {mode} mode {problem}: in {mode} mode it must be combined with a {need_text}",
            ds.spec.kind,
            ds.name()
        ),
        loc,
    )
    .with_help(format!(
        "set `pairedWith:` to a data source of `type: {need}`{}",
        if need == DataSourceType::SharedDisk {
            " whose device is the same RDM"
        } else {
            ""
        }
    ))
    .about(Kind::DataSource, ds.name().as_str());
    if let Some((at, label)) = related {
        f = f.with_related(at, label);
    }
    ctx.report(f);
}

/// The two work together in the resource group (the VMFS data source adds
/// and removes the disks when the group goes online or offline): a group
/// that uses MirrorView/SRDF uses its partner too, which is then checked
/// like any data source of the group (tables, bus sharing, VMotion).
fn partners_in_groups(
    ctx: &mut Ctx,
    paired: &[(&Object<DataSourceSpec>, &Object<DataSourceSpec>)],
) {
    if paired.is_empty() {
        return;
    }
    for group in &ctx.config.groups {
        let mut used: Vec<&Name> = Vec::new();
        for name in &group.spec.data_sources {
            if let Some(ds) = ctx.config.data_sources.get(name.as_str()) {
                used.extend(topology::expand(ctx, ds).into_iter().map(|d| d.name()));
            }
        }
        for (i, name) in group.spec.data_sources.iter().enumerate() {
            let Some((ds, partner)) = paired.iter().find(|(d, _)| d.name() == name) else {
                continue;
            };
            if used.contains(&partner.name()) {
                continue;
            }
            let f = Finding::new(
                &cat::REPLICATION_PARTNER_IN_GROUP,
                format!(
                    "group `{}` uses {} `{}` but not `{}`, the {} data source it is combined with: the two work together in the group",
                    group.name(),
                    ds.spec.kind,
                    ds.name(),
                    partner.name(),
                    partner.spec.kind
                ),
                ctx.at(group.doc, &format!("/spec/dataSources/{i}")),
            )
            .with_related(ctx.at(ds.doc, "/spec/pairedWith"), "paired here")
            .with_help(format!(
                "add `{}` to the group's `dataSources`",
                partner.name()
            ))
            .about(Kind::ResourceGroup, group.name().as_str())
            .about(Kind::DataSource, ds.name().as_str())
            .about(Kind::DataSource, partner.name().as_str());
            ctx.report(f);
        }
    }
}
