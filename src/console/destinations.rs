//! Destinations: each one's health over the last hour and day, what waits
//! for it, whether it is paused, and a test message sent on request.

use super::layout::{self, rate, took, when};
use super::{ok_page, store_down, Ctx};
use crate::retry::Outcome;
use crate::state::AppState;
use maud::html;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub(super) fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let page = warp::path!("destinations")
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and_then(|ctx| async move { Ok::<_, Rejection>(page(ctx, None).await) });
    let test = warp::path!("destinations" / String / "test")
        .and(warp::post())
        .and(super::changing(state.clone()))
        .and_then(|name, ctx, _form| async move { Ok::<_, Rejection>(send_test(ctx, name).await) });
    page.or(test).unify()
}

/// The result of a test message: (destination, delivered, what happened).
type Tested = (String, bool, String);

async fn page(ctx: Ctx, tested: Option<Tested>) -> Response {
    let store = ctx.state.store().clone();
    let loaded = ctx.state.loaded.load_full();
    let names: Vec<String> = loaded.destinations().map(|d| d.name.clone()).collect();
    let (health, stats) = match tokio::try_join!(store.destination_health(&names), store.destination_stats()) {
        Ok(read) => read,
        Err(e) => return store_down(&ctx.base, e),
    };
    let pacer = &ctx.state.services.pacer;
    let body = html! {
        @if let Some((name, ok, text)) = &tested {
            p.flash #test-result role="status" {
                @if *ok { span.badge.ok { "delivered" } } @else { span.badge.bad { "not delivered" } }
                " Test message to " strong { (name) } ": " (text)
            }
        }
        div.table-wrap { table #destinations {
            thead { tr {
                th { "Destination" } th { "Kind" } th { "Success 1 h" } th { "Success 24 h" } th { "Last success" }
                th { "Last failure" } th { "Failing in a row" } th { "Paused" } th { "Pending" } th { "Dead" } th {}
            } }
            tbody {
                @for dest in loaded.destinations() {
                    @let h = health.iter().find(|h| h.destination == dest.name).cloned().unwrap_or_default();
                    @let s = stats.iter().find(|s| s.destination == dest.name).cloned().unwrap_or_default();
                    tr data-destination=(dest.name) {
                        td { a href={ "deliveries?destination=" (dest.name) } { (dest.name) } }
                        td { (dest.kind.as_str()) }
                        td { (rate(h.delivered_1h, h.attempts_1h)) span.muted { " of " (h.attempts_1h) } }
                        td { (rate(h.delivered_24h, h.attempts_24h)) span.muted { " of " (h.attempts_24h) } }
                        td { (h.last_success.map(when).unwrap_or_else(|| "–".into())) }
                        td {
                            (h.last_failure.map(when).unwrap_or_else(|| "–".into()))
                            @if let Some(e) = &h.last_error { br; span.error { (crate::text::truncate_chars(e, 200)) } }
                        }
                        td { (h.consecutive_failures) }
                        td { @match pacer.paused_for(&dest.name) { Some(d) => { "for " (took(d)) }, None => { "no" } } }
                        td { (s.pending) @if s.pending > 0 { span.muted { " (oldest " (took(s.oldest_pending_age)) ")" } } }
                        td { (s.dead) }
                        td {
                            form method="post" action={ "destinations/" (dest.name) "/test" } {
                                input type="hidden" name="csrf" value=(ctx.session.csrf);
                                button.plain type="submit" { "Send test" }
                            }
                        }
                    }
                }
            }
        } }
        p.hint { "Success rates count attempts (a retried delivery counts each try). “Send test” sends the first sample event of "
            code { "config/events/" } " that a route to the destination matches (else " code { "canceled.json" } ") now, \
            outside the queue, as " code { "raaft-relay send-test" } " does." }
    };
    ok_page(layout::page("Destinations", "destinations", &ctx, None, body))
}

async fn send_test(ctx: Ctx, name: String) -> Response {
    let loaded = ctx.state.loaded.load_full();
    let sample = crate::samples::for_destination(&loaded.router, &name);
    let sent = sample.describe(&name);
    let tested = match crate::delivery::send_test(&loaded, &name, sample.event).await {
        None => return super::not_found(&ctx.base, "destination", &name),
        Some(Err(e)) => (name, false, format!("cannot render {sent}: {e}")),
        Some(Ok(report)) => {
            let status = report.status.map(|s| format!(" ({s})")).unwrap_or_default();
            let latency = report.latency.as_millis();
            match report.outcome {
                Outcome::Delivered => (name, true, format!("{sent}: delivered{status} in {latency} ms")),
                Outcome::Retry { reason, .. } => (name, false, format!("{sent}: transient failure{status}: {reason}")),
                Outcome::Permanent { reason } => (name, false, format!("{sent}: permanent failure{status}: {reason}")),
            }
        }
    };
    page(ctx, Some(tested)).await
}
