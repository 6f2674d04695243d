//! What `check` finds in routes that would never work as meant: a CEL
//! condition reading a name events do not have (an unquoted value, a
//! misspelt field), a table comparing a field no event has, a value of a
//! type the field never has, or one value where a list was meant, and a
//! route that matches none of the samples.

use super::fields::KnownFields;
use crate::loaded_config::LoadedConfig;
use crate::problems::{Problem, Problems};
use crate::rules::Verdict;
use serde_json::Value;

/// Errors for what can never hold, warnings for what looks unintended.
pub fn check_routes(
    loaded: &LoadedConfig,
    known: &KnownFields,
    samples: &[(&str, Value)],
    problems: &mut Problems,
    warnings: &mut Vec<String>,
) {
    let config = &loaded.config;
    let mut refused = Vec::new();
    for (i, route) in config.routes.iter().enumerate() {
        let at = |message: String| {
            Problem::new(&config.path, message).at_line(route.line).with_key(format!("routes[{i}].when"))
        };
        for name in route.when.cel_names() {
            if known.has_top_level(&name) {
                continue;
            }
            let hint = if known.is_value(&name) {
                format!("did you mean \"{name}\"? (a value is quoted)")
            } else if let Some(near) = known.nearest(&name) {
                format!("did you mean {near}?")
            } else {
                format!("events have no such field; for one Raaft adds later, write event.{name}")
            };
            problems.push(at(format!("route \"{}\": `{name}` is not a field of Raaft's events: {hint}", route.name)));
            refused.push(i);
        }
        for path in route.when.table_paths() {
            let dotted = dotted(path);
            if known.has(&dotted) {
                continue;
            }
            let hint = known.nearest(&dotted).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            warnings.push(format!("route \"{}\": `{path}` is not a field of any sample event{hint}", route.name));
        }
        for (path, expected) in route.when.table_values() {
            if let Some(warning) = wrong_shape(known, &route.name, path, expected) {
                warnings.push(warning);
                continue;
            }
            if let Some(text) = expected.as_str().filter(|t| t.contains(',') && !known.is_value(t)) {
                let list: Vec<String> = text.split(',').map(|v| format!("\"{}\"", v.trim())).collect();
                warnings.push(format!(
                    "route \"{}\": `{path} = \"{text}\"` compares with that one value; for any of several, write a list: {path} = [{}]",
                    route.name,
                    list.join(", ")
                ));
            }
        }
    }
    unmatched_routes(loaded, samples, &refused, warnings);
}

/// A warning when `path = expected` can never hold for the type the
/// field has in every sample (`amount = "49"` for a number, `outcome = {
/// ... }` for a string).
fn wrong_shape(known: &KnownFields, route: &str, path: &str, expected: &Value) -> Option<String> {
    let dotted = dotted(path);
    let field_types = known.types(&dotted)?;
    let wanted: Vec<&Value> = match expected {
        Value::Array(options) if !field_types.contains("list") => options.iter().collect(),
        one => vec![one],
    };
    if wanted.iter().any(|w| field_types.contains(super::fields::type_name(w))) {
        return None;
    }
    let holds: Vec<&str> = field_types.iter().copied().collect();
    let given: Vec<&str> = wanted.iter().map(|w| super::fields::type_name(w)).collect();
    let hint = match (holds.as_slice(), expected) {
        (["number"], Value::String(s)) if s.trim().parse::<f64>().is_ok() => format!(": write {path} = {}", s.trim()),
        (["string"], Value::Number(n)) => format!(": write {path} = \"{n}\""),
        _ => String::new(),
    };
    Some(format!(
        "route \"{route}\": `{path}` is a {} in every sample event, and the condition compares it with a {}, which never matches{hint}",
        holds.join(" or "),
        given.join(" or ")
    ))
}

/// `path` as [`KnownFields`] spells it: array indexes as `[]`.
fn dotted(path: &str) -> String {
    crate::rules::parse_path(path)
        .into_iter()
        .map(|s| if s.chars().all(|c| c.is_ascii_digit()) { "[]".to_owned() } else { s })
        .collect::<Vec<_>>()
        .join(".")
}

/// A warning per route no sample event reaches, with why for the first.
/// (Routes in `refused` have their error already.)
fn unmatched_routes(loaded: &LoadedConfig, samples: &[(&str, Value)], refused: &[usize], warnings: &mut Vec<String>) {
    let mut first_miss: Vec<Option<String>> = vec![None; loaded.config.routes.len()];
    let mut matched = vec![false; loaded.config.routes.len()];
    for (_, event) in samples {
        let (_, reports) = loaded.router.explain(event);
        for (i, report) in reports.iter().enumerate().take(matched.len()) {
            match (&report.verdict, report.skipped) {
                (Verdict::Matched, false) => matched[i] = true,
                (Verdict::NotMatched { condition, saw }, _) if first_miss[i].is_none() => {
                    first_miss[i] = Some(format!("`{condition}` did not hold (saw {saw})"))
                }
                _ => {}
            }
        }
    }
    for (i, route) in loaded.config.routes.iter().enumerate() {
        if !matched[i] && !refused.contains(&i) {
            let why = first_miss[i].clone().unwrap_or_else(|| "an earlier route with stop = true took them all".into());
            warnings.push(format!(
                "route \"{}\" matches none of the {} sample events in config/events/: {why}",
                route.name,
                crate::samples::SAMPLE_EVENTS.len()
            ));
        }
    }
}
