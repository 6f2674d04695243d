//! The overview: events and deliveries of the last hour and day, the
//! backlog, the dead, and the last reload.

use super::layout::{self, took, when};
use super::{ok_page, store_down, Ctx};
use crate::state::AppState;
use crate::store::inspect::OUTCOMES;
use crate::store::Status;
use maud::html;
use std::time::Duration;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub(super) fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and_then(|ctx: Ctx| async move { Ok::<_, Rejection>(page(ctx).await) })
}

async fn page(ctx: Ctx) -> Response {
    let store = ctx.state.store().clone();
    let periods = [Duration::from_secs(3600), Duration::from_secs(24 * 3600)];
    let (activity, stats) = match tokio::try_join!(store.activity(&periods), store.destination_stats()) {
        Ok(read) => read,
        Err(e) => return store_down(&ctx.base, e),
    };
    let (hour, day) = (&activity[0], &activity[1]);
    let backlog: u64 = stats.iter().map(|s| s.pending).sum();
    let oldest = stats.iter().map(|s| s.oldest_pending_age).max().unwrap_or_default();
    let dead: u64 = stats.iter().map(|s| s.dead).sum();
    let reload = ctx.state.last_reload.lock().expect("not poisoned").clone();
    let count = |a: &crate::store::inspect::Activity, outcome: &str| {
        a.events.iter().filter(|(o, _)| o == outcome).map(|(_, n)| *n).sum::<u64>()
    };
    let body = html! {
        div.cards {
            div.card { div.label { "Backlog" } div.figure #backlog { (backlog) } div.label { "oldest waiting " (took(oldest)) } }
            div.card { div.label { "Dead deliveries" } div.figure #dead { (dead) }
                @if dead > 0 { a href="deliveries?status=dead" { "See them" } } }
            div.card { div.label { "Events, last hour" } div.figure { (hour.events_total()) } div.label { "last day " (day.events_total()) } }
            div.card { div.label { "Last reload" }
                @match &reload {
                    None => div.figure { "–" } div.label { "none since start" },
                    Some(r) if r.problems.is_empty() => div.figure { span.badge.ok { "ok" } } div.label { (when(r.at)) " (" (r.trigger) ")" },
                    Some(r) => div.figure { span.badge.bad { "failed" } } div.label { (when(r.at)) " (" (r.trigger) "): the running configuration stayed" },
                }
            }
        }
        @if let Some(r) = reload.as_ref().filter(|r| !r.problems.is_empty()) {
            h2 { "Why the last reload failed" }
            ul { @for p in &r.problems { li.error { (p) } } }
        }
        h2 { "Events by outcome" }
        div.table-wrap { table #events-by-outcome {
            thead { tr { th { "Outcome" } th { "Last hour" } th { "Last day" } } }
            tbody {
                @for outcome in OUTCOMES {
                    tr { td { a href={ "events?outcome=" (outcome) } { (outcome) } } td { (count(hour, outcome)) } td { (count(day, outcome)) } }
                }
                @if count(day, "other") > 0 {
                    tr { td { "other" } td { (count(hour, "other")) } td { (count(day, "other")) } }
                }
            }
        } }
        h2 { "Deliveries by status" }
        p.hint { "Delivered, gone dead, or queued and retried within the period." }
        div.table-wrap { table #deliveries-by-status {
            thead { tr { th { "Status" } th { "Changed last hour" } th { "Changed last day" } } }
            tbody {
                @for status in [Status::Delivered, Status::Pending, Status::Dead] {
                    tr {
                        td { a href={ "deliveries?status=" (status.as_str()) } { (layout::status(status)) } }
                        td { (hour.deliveries_with(status)) } td { (day.deliveries_with(status)) }
                    }
                }
            }
        } }
        h2 { "Waiting per destination" }
        div.table-wrap { table {
            thead { tr { th { "Destination" } th { "Pending" } th { "Oldest" } th { "Dead" } } }
            tbody {
                @for s in &stats {
                    tr { td { a href={ "deliveries?destination=" (s.destination) } { (s.destination) } }
                         td { (s.pending) } td { (took(s.oldest_pending_age)) } td { (s.dead) } }
                }
                @if stats.is_empty() { tr { td colspan="4" .muted { "Nothing waits." } } }
            }
        } }
    };
    ok_page(layout::page("Overview", "./", &ctx, None, body))
}
