//! YAML 1.2 core-schema resolution of scalars: `true`, `12`, `0x1f`, `.inf`
//! and `~` mean what YAML 1.2 says, and nothing else (no YAML 1.1 `yes`).

use std::borrow::Cow;

use super::Value;

/// The prefix of the YAML core schema's tags (`!!int` is
/// `tag:yaml.org,2002:int`).
const CORE_TAG: &str = "tag:yaml.org,2002:";

/// YAML 1.2 core schema resolution of a scalar (`plain`: written without
/// quotes or block indicators; `tag`: its resolved tag, if any).
pub(super) fn resolve_scalar<'t>(text: Cow<'t, str>, plain: bool, tag: Option<&str>) -> Value<'t> {
    // A string keeps the parser's own buffer when it made one (escapes,
    // folded lines); otherwise it borrows the file's text.
    let string = Value::Str;
    if let Some(core) = tag.and_then(|t| t.strip_prefix(CORE_TAG)) {
        return match core {
            "null" => Value::Null,
            "bool" => parse_bool(&text).map_or_else(|| string(text), Value::Bool),
            "int" => parse_int(&text).map_or_else(|| string(text), Value::Int),
            "float" => parse_float(&text).map_or_else(|| string(text), Value::Float),
            _ => string(text),
        };
    }
    if !plain {
        return string(text);
    }
    match &*text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Some(b) = parse_bool(&text) {
        return Value::Bool(b);
    }
    if let Some(i) = parse_int(&text) {
        return Value::Int(i);
    }
    if let Some(f) = parse_float(&text) {
        return Value::Float(f);
    }
    string(text)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    None
}

fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    // Core schema: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = unsigned.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac_digits = digits(&mut i);
    } else if int_digits == 0 {
        return None;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    text.parse().ok()
}
