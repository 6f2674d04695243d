//! The template playground: a destination's template rendered against a
//! sample or a stored event, shown as its platform shows it beside the
//! payload and the limits it breaks, updated as one types. Nothing is
//! saved unless `[admin] edit_templates = true`. A save is all or
//! nothing: the whole configuration as it would be with the new file must
//! compile and render every sample before the file is touched; the file
//! is then replaced atomically and reloaded, and put back if the reload
//! fails.

use super::layout;
use super::{field, ok_page, store_down, Ctx, Form};
use crate::channels::Destination;
use crate::loaded_config::LoadedConfig;
use crate::render::EventContext;
use crate::state::AppState;
use maud::{html, Markup};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub(super) fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let page = warp::path!("templates")
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and(warp::query::<Form>())
        .and_then(|ctx, q| async move { Ok::<_, Rejection>(show(ctx, q, None).await) });
    let render_page = warp::path!("templates")
        .and(warp::post())
        .and(super::changing(state.clone()))
        .and_then(|ctx, form| async move { Ok::<_, Rejection>(show(ctx, form, None).await) });
    let fragment = warp::path!("templates" / "render").and(warp::post()).and(super::changing(state.clone())).and_then(
        |ctx: Ctx, form: Form| async move {
            let loaded = ctx.state.loaded.load_full();
            let pick = Pick::of(&loaded, &form);
            Ok::<_, Rejection>(ok_page(result(&ctx, &loaded, &pick, &form).await))
        },
    );
    let save = warp::path!("templates" / "save")
        .and(warp::post())
        .and(super::changing(state.clone()))
        .and_then(|ctx, form| async move { Ok::<_, Rejection>(save(ctx, form).await) });
    page.or(render_page).unify().or(fragment).unify().or(save).unify()
}

/// What the operator picked: a destination, a template file and an event.
struct Pick {
    destination: String,
    template: String,
    event: String,
}

impl Pick {
    fn of(loaded: &LoadedConfig, q: &Form) -> Pick {
        let destination = field(q, "destination")
            .filter(|d| loaded.destination(d).is_some())
            .map(str::to_owned)
            .or_else(|| loaded.destinations().next().map(|d| d.name.clone()))
            .unwrap_or_default();
        let own = loaded.destination(&destination).map(|d| d.body_template().to_owned()).unwrap_or_default();
        let files = template_files(&loaded.config.templates_dir);
        // Only a file the templates folder holds: never a path from outside.
        let template = field(q, "template").filter(|t| files.iter().any(|f| f == t)).map(str::to_owned).unwrap_or(own);
        let event = field(q, "event").unwrap_or("sample:canceled.json").to_owned();
        Pick { destination, template, event }
    }
}

/// Every template file under `dir` (partials aside), as paths under it.
fn template_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "partials") {
                    walk(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e == "hbs") {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The event picked, as templates see it: a shipped sample (with the facts
/// of a first flow) or a stored event (with the facts of its receipt).
async fn event_of(ctx: &Ctx, pick: &str) -> Result<Value, String> {
    if let Some(name) = pick.strip_prefix("sample:") {
        return crate::samples::first_flows()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, event)| event)
            .ok_or_else(|| format!("no sample \"{name}\""));
    }
    let id = pick.strip_prefix("event:").unwrap_or(pick);
    match ctx.state.store().event(id).await {
        Ok(Some(detail)) => Ok(detail.event),
        Ok(None) => Err(format!("no stored event \"{id}\"")),
        Err(e) => Err(e.to_string()),
    }
}

async fn show(ctx: Ctx, q: Form, outcome: Option<Markup>) -> Response {
    let loaded = ctx.state.loaded.load_full();
    let pick = Pick::of(&loaded, &q);
    let Some(dest) = loaded.destination(&pick.destination) else {
        let body = html! { p.muted { "No destination is configured." } };
        return ok_page(layout::page("Templates", "templates", &ctx, None, body));
    };
    let source = match q.get("source") {
        Some(typed) => typed.clone(),
        None => std::fs::read_to_string(loaded.config.templates_dir.join(&pick.template)).unwrap_or_default(),
    };
    let stored = match ctx
        .state
        .store()
        .list_events(&crate::store::inspect::EventFilter {
            source: Some("raaft".into()),
            limit: 20,
            ..Default::default()
        })
        .await
    {
        Ok(events) => events,
        Err(e) => return store_down(&ctx.base, e),
    };
    let mut q = q.clone();
    q.insert("source".into(), source.clone());
    let result = result(&ctx, &loaded, &pick, &q).await;
    let files = template_files(&loaded.config.templates_dir);
    let editable = loaded.config.edit_templates;
    let body = html! {
        form.filters method="get" action="templates" {
            label { "Destination"
                select name="destination" {
                    @for d in loaded.destinations() { option value=(d.name) selected[d.name == dest.name] { (d.name) " (" (d.kind.as_str()) ")" } }
                }
            }
            label { "Template file"
                select name="template" {
                    @for f in &files { option value=(f) selected[*f == pick.template] { (f) } }
                }
            }
            button.plain type="submit" { "Open" }
        }
        form #playground method="post" action="templates" {
            input type="hidden" name="csrf" value=(ctx.session.csrf);
            input type="hidden" name="destination" value=(dest.name);
            input type="hidden" name="template" value=(pick.template);
            div.playground {
                div {
                    label { "Event "
                        select #event name="event" hx-post="templates/render" hx-trigger="change"
                            hx-target="#result" hx-include="closest form" {
                            optgroup label="Samples" {
                                @for (name, _) in crate::samples::SAMPLE_EVENTS {
                                    @let value = format!("sample:{name}");
                                    option value=(value) selected[value == pick.event] { (name) }
                                }
                            }
                            @if !stored.is_empty() {
                                optgroup label="Received" {
                                    @for e in &stored {
                                        @let value = format!("event:{}", e.id);
                                        option value=(value) selected[value == pick.event] {
                                            (e.outcome.as_deref().unwrap_or("?")) " · " (e.customer.as_deref().unwrap_or("-")) " · " (layout::when(e.received_at))
                                        }
                                    }
                                }
                            }
                        }
                    }
                    textarea #source name="source" spellcheck="false" aria-label="Template"
                        hx-post="templates/render" hx-trigger="input delay:250ms" hx-target="#result"
                        hx-include="closest form" { (source) }
                    div.actions {
                        button.plain type="submit" { "Render" }
                        @if editable {
                            button #save type="submit" formaction="templates/save" { "Save to " (pick.template) }
                        } @else {
                            span.hint { "Edits are not saved (" code { "[admin] edit_templates = true" } " allows saving)." }
                        }
                    }
                    @if let Some(outcome) = &outcome { (outcome) }
                }
                div #result aria-live="polite" { (result) }
            }
        }
    };
    ok_page(layout::page("Templates", "templates", &ctx, None, body))
}

/// The template `rel` compiled from the form's text (or the file's).
fn compiled(
    loaded: &LoadedConfig,
    dest: &Destination,
    rel: &str,
    form: &Form,
) -> Result<crate::render::Template, String> {
    let source = match form.get("source") {
        Some(s) => s.clone(),
        None => std::fs::read_to_string(loaded.config.templates_dir.join(rel)).map_err(|e| e.to_string())?,
    };
    dest.compile_body(&loaded.config.templates_dir, rel, &source).map_err(|p| p.to_string())
}

/// The rendering of the picked template: warnings, preview, payload.
/// Compiled and rendered off the async workers, within the render budget.
async fn result(ctx: &Ctx, loaded: &Arc<LoadedConfig>, pick: &Pick, form: &Form) -> Markup {
    if loaded.destination(&pick.destination).is_none() {
        return html! { p.error { "no destination \"" (pick.destination) "\"" } };
    }
    let event = match event_of(ctx, &pick.event).await {
        Ok(e) => e,
        Err(e) => return html! { p.error { (e) } },
    };
    let (for_render, destination, rel, form) =
        (loaded.clone(), pick.destination.clone(), pick.template.clone(), form.clone());
    let rendered = crate::render::off_workers(move || {
        let dest = for_render.destination(&destination).expect("looked up above");
        let template = compiled(&for_render, dest, &rel, &form)?;
        let rendered = dest.render_with(&template, &EventContext::new(event)).map_err(|e| e.to_string())?;
        let warnings = super::preview::warnings(dest.kind, &rendered);
        let payload = dest.wrap(rendered, &rel).map_err(|e| e.to_string())?;
        Ok::<_, String>((dest.kind, warnings, payload))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match rendered {
        Err(e) => html! { p.error #render-error { (e) } },
        Ok((kind, warnings, payload)) => html! {
            @if !warnings.is_empty() {
                ul.warnings { @for w in &warnings { li { (w) } } }
            }
            h2 { "Preview" }
            (super::preview::payload(Some(kind), &payload))
            h2 { "Payload" }
            pre #payload { (payload.display()) }
        },
    }
}

/// One save at a time: a save's write, reload and putting back are one
/// step that another save must not interleave with.
static SAVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn save(ctx: Ctx, form: Form) -> Response {
    let loaded = ctx.state.loaded.load_full();
    if !loaded.config.edit_templates {
        return super::html_with(
            StatusCode::FORBIDDEN,
            layout::message(
                &ctx.base,
                "Saving is off",
                "set [admin] edit_templates = true to save templates from the console",
            ),
        );
    }
    let pick = Pick::of(&loaded, &form);
    if loaded.destination(&pick.destination).is_none() {
        return super::not_found(&ctx.base, "destination", &pick.destination);
    }
    let refused = |problems: Vec<String>| {
        html! {
            div #save-result {
                p.error { "Not saved: the running templates and the file stay." }
                ul { @for p in &problems { li.error { (p) } } }
            }
        }
    };
    let source = form.get("source").cloned().unwrap_or_default();
    let _one_at_a_time = SAVING.lock().await;
    let (for_check, rel, text) = (loaded.clone(), pick.template.clone(), source.clone());
    let picked = pick.destination.clone();
    let checked = crate::render::off_workers(move || check_edit(&for_check, &picked, &rel, &text))
        .await
        .map_err(|e| vec![e.to_string()])
        .and_then(|checked| checked);
    if let Err(problems) = checked {
        return show(ctx, form, Some(refused(problems))).await;
    }
    let path = loaded.config.templates_dir.join(&pick.template);
    // The file as it is, byte for byte, to put back: none only when there
    // is no such file (any other failure to read it refuses the save).
    let previous = match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let why = format!("cannot read \"{}\" to keep it: {e}", path.display());
            return show(ctx, form, Some(refused(vec![why]))).await;
        }
    };
    if let Err(e) = write_atomically(&path, source.as_bytes()) {
        return show(ctx, form, Some(refused(vec![format!("cannot write \"{}\": {e}", path.display())]))).await;
    }
    let outcome = match crate::reload::reload(&ctx.state, "template saved from the console").await {
        Ok(()) => html! { p.flash #save-result { "Saved " (pick.template) " and reloaded: new messages use it." } },
        Err(mut problems) => {
            // Something else changed since the check: the file goes back
            // to what it was, so the next start or reload finds what runs
            // now.
            let restored = match &previous {
                Some(bytes) => write_atomically(&path, bytes),
                None => std::fs::remove_file(&path),
            };
            if let Err(e) = restored {
                problems.push(format!("cannot put the previous \"{}\" back: {e}", path.display()));
            }
            refused(problems)
        }
    };
    let mut form = form;
    form.remove("source");
    show(ctx, form, Some(outcome)).await
}

/// Checks `source` as the template file `rel` before it is written: as the
/// picked destination's message against every sample, and the whole
/// configuration as it would be with it (every destination and digest that
/// uses the file, every sample), as a reload checks it.
fn check_edit(loaded: &LoadedConfig, picked: &str, rel: &str, source: &str) -> Result<(), Vec<String>> {
    let dest = loaded.destination(picked).ok_or_else(|| vec![format!("no destination \"{picked}\"")])?;
    let template = dest.compile_body(&loaded.config.templates_dir, rel, source).map_err(|p| vec![p.to_string()])?;
    for (name, event) in crate::samples::first_flows() {
        let context = EventContext::new(event);
        if let Err(e) = dest.render_with(&template, &context).and_then(|r| dest.wrap(r, rel)) {
            return Err(vec![format!("destination \"{picked}\", sample event {name}: {e}")]);
        }
    }
    let candidate = LoadedConfig::load_with_edit(&loaded.config.path, rel, source)
        .map_err(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    crate::check::check_loaded(&candidate).map_err(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(())
}

/// Writes `bytes` to `path` by way of a file beside it, renamed over it:
/// a reader (the relay's watcher) sees the old file or the new, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp: PathBuf = dir.join(format!(".{name}.{}.tmp", crate::store::new_id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
