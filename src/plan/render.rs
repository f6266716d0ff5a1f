//! Renderers of a [`Plan`]. They format; they never recompute.

use std::fmt::Write;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{Action, FieldDiff, ObjectChange, Op, Plan, SENSITIVE};

/// Values longer than this on one line are shown as a line diff instead.
const INLINE_WIDTH: usize = 80;

/// The plan for people, in the style of `terraform plan`: objects with
/// `+ ~ - -/+` markers and their changed fields, the runtime actions, and a
/// summary line.
pub fn render_human(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. The domain matches the configuration.\n");
        let pending: Vec<&Action> = plan.actions.iter().filter(|a| a.is_change()).collect();
        if !pending.is_empty() {
            out.push_str("\nPending runtime actions (not caused by this configuration):\n");
            for a in pending {
                action_line(&mut out, a);
            }
        }
        return out;
    }

    let _ = writeln!(
        out,
        "asctl will apply the following changes (domain generation {}):",
        plan.base_generation
    );
    for change in &plan.changes {
        out.push('\n');
        object(&mut out, change);
    }
    if !plan.actions.is_empty() {
        out.push_str("\nRuntime actions:\n");
        for a in &plan.actions {
            action_line(&mut out, a);
        }
    }
    let s = plan.summary();
    let _ = writeln!(
        out,
        "\nPlan: {} to add, {} to change, {} to destroy.",
        s.add, s.change, s.destroy
    );
    out
}

/// The plan as JSON, documented in `docs/plan.md` and versioned by
/// `formatVersion`: the serde form of [`Plan`] (what a saved plan holds),
/// plus what a script would otherwise have to re-derive: the `summary`
/// counts, and each action's `description`, the line `render_human` prints.
pub fn render_json(plan: &Plan) -> String {
    // A Plan holds only JSON-representable data, so this cannot fail.
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    if let Some(actions) = value.get_mut("actions").and_then(Value::as_array_mut) {
        for (json, action) in actions.iter_mut().zip(&plan.actions) {
            if let Some(obj) = json.as_object_mut() {
                obj.insert("description".into(), Value::String(action.to_string()));
            }
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "summary".into(),
            serde_json::to_value(plan.summary()).unwrap_or_default(),
        );
    }
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}

fn object(out: &mut String, change: &ObjectChange) {
    let what = match change.op {
        Op::Create => "will be created",
        Op::Update => "will be updated in place",
        Op::Delete => "will be destroyed",
        Op::Replace => "must be replaced",
    };
    let _ = writeln!(out, "  # {} {what}", change.address());
    let _ = writeln!(out, "{:>3} {}", change.op.symbol(), change.address());
    for field in &change.fields {
        field_lines(out, field);
    }
}

fn field_lines(out: &mut String, f: &FieldDiff) {
    let marker = match (&f.before, &f.after) {
        (None, _) => "+",
        (_, None) => "-",
        _ => "~",
    };
    let note = if f.forces_replacement {
        " # forces replacement"
    } else {
        ""
    };
    let before = f.before.as_ref().map(inline);
    let after = f.after.as_ref().map(inline);
    let fits = |s: &Option<String>| s.as_ref().is_none_or(|s| s.len() <= INLINE_WIDTH);
    let multi_line =
        f.before.as_ref().is_some_and(is_multi_line) || f.after.as_ref().is_some_and(is_multi_line);
    if !multi_line && fits(&before) && fits(&after) {
        let value = match (before, after) {
            (Some(b), Some(a)) => format!("{b} -> {a}"),
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "      {marker} {} = {value}{note}", f.path);
        return;
    }
    // Long or multi-line values: a line diff reads better than two walls of text.
    let _ = writeln!(out, "      {marker} {}:{note}", f.path);
    let before = f.before.as_ref().map(block).unwrap_or_default();
    let after = f.after.as_ref().map(block).unwrap_or_default();
    let diff = TextDiff::from_lines(&before, &after);
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            ChangeTag::Delete => "-",
            ChangeTag::Insert => "+",
            ChangeTag::Equal => " ",
        };
        let line = change.value().trim_end_matches('\n');
        let _ = writeln!(out, "          {sign} {line}");
    }
}

/// A value on one line: JSON, except the sensitive marker, which is not a
/// string the user wrote and so is not quoted.
fn inline(v: &Value) -> String {
    match v {
        Value::String(s) if s == SENSITIVE => SENSITIVE.to_owned(),
        _ => serde_json::to_string(v).unwrap_or_default(),
    }
}

fn is_multi_line(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\n'))
}

/// A value over several lines: a string as its text, anything else as
/// pretty JSON.
fn block(v: &Value) -> String {
    let mut s = match v {
        Value::String(s) => s.clone(),
        _ => serde_json::to_string_pretty(v).unwrap_or_default(),
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn action_line(out: &mut String, a: &Action) {
    let marker = match a {
        Action::Start { .. } => "+",
        Action::Stop { .. } => "-",
        Action::Restart { .. } | Action::Move { .. } => "~",
        Action::Ip { from, to, .. } => match (from, to) {
            (None, Some(_)) => "+",
            (Some(_), None) => "-",
            _ => "~",
        },
        Action::Stay { .. } | Action::Offline { .. } => " ",
    };
    let _ = writeln!(out, "  {marker} {a}");
}
