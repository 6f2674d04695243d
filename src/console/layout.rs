//! The console's page shell (head, navigation, sign-out) and the pages
//! that stand alone: sign-in and messages.

use super::Ctx;
use maud::{html, Markup, DOCTYPE};

/// The navigation's entries: (path, label). Every link of the console is
/// relative to its folder (the page's `<base>`), so that it works under
/// the path a reverse proxy mounts it at.
const NAV: [(&str, &str); 6] = [
    ("./", "Overview"),
    ("deliveries", "Deliveries"),
    ("events", "Events"),
    ("destinations", "Destinations"),
    ("templates", "Templates"),
    ("digests", "Digests"),
];

/// The page's head; `base`: the console's folder as the browser
/// addresses it.
fn head(base: &str, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            base href=(base);
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx under a policy without inline code: no injected style, no eval.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
            title { (title) " · raaft-relay" }
            link rel="stylesheet" href="assets/console.css";
            script src="assets/htmx.min.js" defer {}
        }
    }
}

/// A signed-in page: navigation with `current` marked, a flash message,
/// the title and `body`.
pub fn page(title: &str, current: &str, ctx: &Ctx, flash: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&ctx.base, title))
            body {
                header.top {
                    a.brand href="./" { "raaft-relay" }
                    nav {
                        @for (path, label) in NAV {
                            @if path == current {
                                a.current href=(path) aria-current="page" { (label) }
                            } @else {
                                a href=(path) { (label) }
                            }
                        }
                    }
                    form.signout method="post" action="logout" {
                        input type="hidden" name="csrf" value=(ctx.session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    @if let Some(flash) = flash {
                        p.flash role="status" { (flash) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page, with why the last try failed.
pub fn login(base: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(base, "Sign in"))
            body.login {
                main {
                    h1 { "raaft-relay console" }
                    form method="post" action="login" {
                        label for="token" { "Admin token" }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        @if let Some(error) = error {
                            p.error role="alert" { (error) }
                        }
                        button type="submit" { "Sign in" }
                    }
                    p.hint { "Any token of " code { "[admin] tokens" } " signs in." }
                }
            }
        }
    }
}

/// A page with one message (a refusal, an error).
pub fn message(base: &str, title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(base, title))
            body.login {
                main {
                    h1 { (title) }
                    p.error { (text) }
                    p { a href="./" { "Back to the console" } }
                }
            }
        }
    }
}

/// A filter's drop-down: "any", then `options`, with `current` chosen.
pub fn select(name: &str, label: &str, current: &str, options: &[&str]) -> Markup {
    html! {
        label { (label)
            select name=(name) {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[*o == current] { (o) }
                }
            }
        }
    }
}

/// A time for people: RFC 3339 in UTC, to the second.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration for people ("3m 20s").
pub fn took(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{} ms", d.as_millis()),
        1..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A status as a badge.
pub fn status(s: crate::store::Status) -> Markup {
    html! { span class={ "badge " (s.as_str()) } { (s.as_str()) } }
}

/// JSON, pretty, as text.
pub fn json(value: &serde_json::Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(value).unwrap_or_default()) } }
}

/// A percentage of `part` in `whole`, or a dash.
pub fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}
