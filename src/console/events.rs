//! Events: every event received, routed or not, newest first; one event
//! with the routing explanation `render` prints, its deliveries and the
//! customer's history.

use super::layout::{self, when};
use super::{field, link, ok_page, store_down, Ctx, Form};
use crate::loaded_config::LoadedConfig;
use crate::routing::RouteReport;
use crate::rules::Verdict;
use crate::state::AppState;
use crate::store::inspect::{EventFilter, OUTCOMES};
use crate::store::{ListFilter, Store, StoreError};
use maud::{html, Markup};
use serde_json::Value;
use warp::reply::Response;
use warp::{Filter, Rejection};

const PAGE: usize = 50;

pub(super) fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("events")
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and(warp::query::<Form>())
        .and_then(|ctx, q| async move { Ok::<_, Rejection>(list(ctx, q).await) });
    let detail = warp::path!("events" / String)
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and_then(|id, ctx| async move { Ok::<_, Rejection>(detail(ctx, id).await) });
    list.or(detail).unify()
}

/// The history key of the customer an operator typed (an id, or an e-mail
/// address in any case): the key that has flows, else as typed.
pub(super) async fn customer_key(store: &dyn Store, typed: &str) -> Result<String, StoreError> {
    let keys = crate::store::typed_keys(typed);
    for key in &keys {
        if store.history(key, 1).await?.flows > 0 {
            return Ok(key.clone());
        }
    }
    Ok(keys[0].clone())
}

/// How the current rules route `event` (with its facts), as `render`
/// explains it.
pub(super) fn explanation(loaded: &LoadedConfig, event: &Value) -> Markup {
    let (targets, reports) = loaded.router.explain(event);
    let to = |report: &RouteReport| {
        loaded.config.routes.iter().find(|r| r.name == report.route).map(|r| r.to.join(", ")).unwrap_or_default()
    };
    html! {
        ul.routes.explanation {
            @for report in &reports {
                @if report.skipped {
                    li.not-matched { "route " code { (report.route) } ": skipped (an earlier matching route has stop = true)" }
                } @else {
                    @match &report.verdict {
                        Verdict::Matched => li.matched { "route " code { (report.route) } ": matched → " (to(report)) },
                        Verdict::NotMatched { condition, saw } => li.not-matched {
                            "route " code { (report.route) } ": not matched: " code { (condition) } " did not hold (saw " (saw) ")"
                        },
                    }
                }
            }
            @if targets.is_empty() { li.not-matched { "no route matches: the relay answers 200 and sends nothing" } }
        }
    }
}

async fn list(ctx: Ctx, q: Form) -> Response {
    let store = ctx.state.store().clone();
    let outcome = field(&q, "outcome").unwrap_or("").to_owned();
    let customer = field(&q, "customer").unwrap_or("").to_owned();
    let source = field(&q, "source").unwrap_or("").to_owned();
    let key = match customer.as_str() {
        "" => None,
        typed => match customer_key(store.as_ref(), typed).await {
            Ok(k) => Some(k),
            Err(e) => return store_down(&ctx.base, e),
        },
    };
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let filter = EventFilter {
        outcome: text(&outcome),
        customer: key,
        source: text(&source),
        before: field(&q, "before").map(str::to_owned),
        limit: PAGE + 1,
    };
    let mut rows = match store.list_events(&filter).await {
        Ok(rows) => rows,
        Err(e) => return store_down(&ctx.base, e),
    };
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let params = [("outcome", outcome.as_str()), ("customer", customer.as_str()), ("source", source.as_str())];
    let next = rows.last().filter(|_| more).map(|last| {
        let mut p = params.to_vec();
        p.push(("before", &last.id));
        link("events", &p)
    });
    let body = html! {
        form.filters method="get" action="events" {
            (layout::select("outcome", "Outcome", &outcome, &OUTCOMES))
            label { "Customer" input type="search" name="customer" value=(customer) placeholder="id or e-mail"; }
            (layout::select("source", "Source", &source, &["raaft", "digest"]))
            button type="submit" { "Filter" }
            a href="events" { "Clear" }
        }
        div.table-wrap { table #events {
            thead { tr { th { "Event" } th { "Received" } th { "Outcome" } th { "Customer" } th { "Deliveries" } th.wide { "Source" } } }
            tbody {
                @for e in &rows {
                    tr {
                        td { a.mono href={ "events/" (e.id) } { (e.id) } }
                        td { (when(e.received_at)) }
                        td { (e.outcome.as_deref().unwrap_or("–")) }
                        td { (e.customer.as_deref().unwrap_or("–")) }
                        td { @if e.deliveries == 0 { span.muted { "none (no route matched)" } } @else { (e.deliveries) } }
                        td.wide { (e.source) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="6" .muted { "No event matches." } } }
            }
        } }
        div.pager {
            @if filter.before.is_some() { a href=(link("events", &params)) { "← Newest" } } @else { span {} }
            @if let Some(next) = next { a rel="next" href=(next) { "Older →" } }
        }
    };
    ok_page(layout::page("Events", "events", &ctx, None, body))
}

async fn detail(ctx: Ctx, id: String) -> Response {
    let store = ctx.state.store().clone();
    let detail = match store.event(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return super::not_found(&ctx.base, "event", &id),
        Err(e) => return store_down(&ctx.base, e),
    };
    let deliveries = ListFilter { event_id: Some(detail.summary.id.clone()), limit: 100, ..Default::default() };
    let deliveries = match store.list(&deliveries).await {
        Ok(d) => d,
        Err(e) => return store_down(&ctx.base, e),
    };
    let history = match &detail.summary.customer {
        Some(key) => match store.history(key, 20).await {
            Ok(h) => Some(h),
            Err(e) => return store_down(&ctx.base, e),
        },
        None => None,
    };
    let loaded = ctx.state.loaded.load_full();
    let s = &detail.summary;
    let facts_history = detail.event.get("history").and_then(|h| h.get("summary")).and_then(Value::as_str);
    let body = html! {
        dl.facts {
            dt { "Received" } dd { (when(s.received_at)) }
            dt { "Outcome" } dd { (s.outcome.as_deref().unwrap_or("–")) }
            dt { "Customer" } dd { (s.customer.as_deref().unwrap_or("–")) }
            dt { "Source" } dd { (s.source) }
            @if let Some(h) = facts_history { dt { "History at receipt" } dd { (h) } }
        }
        @if s.source == "raaft" {
            h2 { "Routing under the current rules" }
            (explanation(&loaded, &detail.event))
        }
        h2 { "Deliveries" }
        div.table-wrap { table {
            thead { tr { th { "Delivery" } th { "Destination" } th { "Routes" } th { "Status" } th { "Attempts" } } }
            tbody {
                @for d in &deliveries {
                    tr { td { a.mono href={ "deliveries/" (d.id) } { (d.id) } } td { (d.destination) }
                         td { (d.routes.join(", ")) } td { (layout::status(d.status)) } td { (d.attempts) } }
                }
                @if deliveries.is_empty() { tr { td colspan="5" .muted { "None: no route matched." } } }
            }
        } }
        @if let Some(h) = &history {
            h2 { "The customer's history" }
            p { (h.flows) " flows kept: " (h.saved) " saved, " (h.canceled) " canceled." }
            div.table-wrap { table {
                thead { tr { th { "Received" } th { "Outcome" } th { "Plan" } th { "Monthly" } th { "Motivator" } th { "Offer" } } }
                tbody {
                    @for f in &h.recent {
                        tr {
                            td { a href={ "events/" (f.event) } { (when(f.at)) } }
                            td { (f.outcome.as_deref().unwrap_or("–")) } td { (f.plan.as_deref().unwrap_or("–")) }
                            td { @match (f.monthly, &f.currency) { (Some(m), Some(c)) => { (format!("{m:.2} ")) (c) }, (Some(m), None) => { (format!("{m:.2}")) }, _ => { "–" } } }
                            td { (f.motivator.as_deref().unwrap_or("–")) } td { (f.offer.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            } }
        }
        h2 { "Event, with what the relay computed at receipt" }
        (layout::json(&detail.event))
    };
    ok_page(layout::page(&format!("Event {}", s.id), "events", &ctx, None, body))
}
