//! `[digests.NAME]`: a schedule in a time zone, which events count, where
//! the summary goes and how it is written.

use super::raw::{RawDigest, RawDigestTemplate};
use super::types::{DestinationKind, DigestConfig, DigestTemplates, WhenEmpty};
use super::values::{condition, template_fits};
use crate::rules::Condition;
use crate::schedule::Schedule;
use std::collections::BTreeMap;

/// Validates one digest; each problem goes to `problem(field, message)`.
pub(super) fn build(
    name: &str,
    raw: RawDigest,
    destinations: &BTreeMap<String, Option<DestinationKind>>,
    problem: &mut dyn FnMut(&str, String),
) -> Option<DigestConfig> {
    let mut ok = true;
    let mut fail = |field: &str, message: String| {
        ok = false;
        problem(field, message)
    };
    let timezone = raw.timezone.as_deref().unwrap_or("UTC");
    let schedule = match raw.schedule.as_deref() {
        None => {
            fail("schedule", format!("digest \"{name}\": `schedule` is required (e.g. \"0 9 * * *\" for 09:00 daily)"));
            None
        }
        Some(cron) => match Schedule::parse(cron, timezone) {
            Ok(s) => Some(s),
            Err((field, e)) => {
                fail(field, format!("digest \"{name}\": {e}"));
                None
            }
        },
    };
    if raw.to.is_empty() {
        fail("to", format!("digest \"{name}\": `to` names no destination"));
    }
    for (i, dest) in raw.to.iter().enumerate() {
        if !destinations.contains_key(dest) {
            fail(&format!("to[{i}]"), format!("digest \"{name}\": unknown destination \"{dest}\""));
        }
    }
    let template = match raw.template {
        Some(RawDigestTemplate::One(t)) => DigestTemplates::One(t),
        Some(RawDigestTemplate::Each(by)) => DigestTemplates::Each(by),
        None => DigestTemplates::One(String::new()),
    };
    if template.all().iter().all(|t| t.trim().is_empty()) {
        fail("template", format!("digest \"{name}\": `template` is required (e.g. \"slack/digest.json.hbs\")"));
    } else {
        // Each destination gets a template written for its kind.
        for dest in &raw.to {
            let Some(Some(kind)) = destinations.get(dest) else { continue };
            match template.for_destination(dest, *kind) {
                None => fail(
                    "template",
                    format!(
                        "digest \"{name}\": `template` names none for destination \"{dest}\" ({}): add {dest} = \"...\" or {} = \"...\"",
                        kind.as_str(),
                        kind.as_str()
                    ),
                ),
                Some(rel) => {
                    if let Err(e) = template_fits(*kind, rel) {
                        fail("template", format!("digest \"{name}\" to destination \"{dest}\": {e}"));
                    }
                }
            }
        }
    }
    let empty = match raw.empty.as_deref() {
        None | Some("skip") => WhenEmpty::Skip,
        Some("send") => WhenEmpty::Send,
        Some(other) => {
            fail("empty", format!("digest \"{name}\": `empty` is \"skip\" or \"send\", not \"{other}\""));
            WhenEmpty::Skip
        }
    };
    let when = condition(raw.when.as_ref()).unwrap_or_else(|e| {
        fail("when", format!("digest \"{name}\": {e}"));
        Condition::Always
    });
    let schedule = schedule?;
    ok.then(|| DigestConfig {
        name: name.to_owned(),
        schedule,
        when,
        to: raw.to,
        template,
        html_template: raw.html_template,
        subject: raw.subject,
        empty,
        line: None,
    })
}
