//! Digests: each one's schedule, next run and last window, and a preview
//! of the window in progress (the figures so far, rendered for each
//! destination; nothing is sent).

use super::layout::{self, when};
use super::{ok_page, store_down, Ctx};
use crate::schedule::Window;
use crate::state::AppState;
use maud::html;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub(super) fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("digests")
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and_then(|ctx| async move { Ok::<_, Rejection>(list(ctx).await) });
    let one = warp::path!("digests" / String)
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and_then(|name, ctx| async move { Ok::<_, Rejection>(preview(ctx, name).await) });
    list.or(one).unify()
}

async fn list(ctx: Ctx) -> Response {
    let loaded = ctx.state.loaded.load_full();
    let store = ctx.state.store().clone();
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for digest in loaded.digests() {
        match store.last_digest_window(&digest.config.name).await {
            Ok(last) => rows.push((digest, last)),
            Err(e) => return store_down(&ctx.base, e),
        }
    }
    let body = html! {
        @if rows.is_empty() { p.muted { "No digest is configured (" code { "[digests.NAME]" } " in the config)." } }
        @else {
            div.table-wrap { table #digests {
                thead { tr { th { "Digest" } th { "Schedule" } th { "To" } th { "Next run" } th { "Last window" } } }
                tbody {
                    @for (digest, last) in &rows {
                        @let c = &digest.config;
                        tr {
                            td { a href={ "digests/" (c.name) } { (c.name) } }
                            td { code { (c.schedule.source()) } " " (c.schedule.timezone().name()) }
                            td { (c.to.join(", ")) }
                            td { (c.schedule.next_after(now).map(when).unwrap_or_else(|| "never".into())) }
                            td { @match last {
                                Some(w) => { (when(w.start)) " → " (when(w.end)) @if w.event_id.is_none() { " (skipped)" } },
                                None => { "none yet" },
                            } }
                        }
                    }
                }
            } }
        }
    };
    ok_page(layout::page("Digests", "digests", &ctx, None, body))
}

async fn preview(ctx: Ctx, name: String) -> Response {
    let loaded = ctx.state.loaded.load_full();
    let Some(digest) = loaded.digest(&name) else {
        return super::not_found(&ctx.base, "digest", &name);
    };
    let store = ctx.state.store().clone();
    let now = chrono::Utc::now();
    let start = match store.last_digest_window(&name).await {
        Ok(Some(last)) => last.end,
        Ok(None) => digest.config.schedule.last_at_or_before(now).unwrap_or(now),
        Err(e) => return store_down(&ctx.base, e),
    };
    let window = Window { start: start.min(now), end: now };
    let context = match digest.context(store.as_ref(), window).await {
        Ok(c) => c,
        Err(e) => return store_down(&ctx.base, e),
    };
    let payloads = crate::digest_scheduler::payloads_off_workers(&loaded, &name, &context).await;
    let body = html! {
        p { "The window in progress: " (when(window.start)) " → now. Next run: "
            (digest.config.schedule.next_after(now).map(when).unwrap_or_else(|| "never".into())) ". Nothing is sent from this page." }
        @for (destination, payload) in &payloads {
            h2 { "To " (destination) }
            @match payload {
                Ok(p) => {
                    @let kind = loaded.destination(destination).map(|d| d.kind);
                    (super::preview::payload(kind, p))
                    details { summary { "As sent" } pre { (p.display()) } }
                }
                Err(e) => p.error { "cannot render: " (e) },
            }
        }
        h2 { "Figures" }
        (layout::json(&context))
    };
    ok_page(layout::page(&format!("Digest {name}"), "digests", &ctx, None, body))
}
