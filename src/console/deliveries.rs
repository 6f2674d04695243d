//! Deliveries: the list with its filters and pages, replaying every dead
//! one that matches (after a confirmation), and one delivery's detail with
//! its attempts, replay and discard.

use super::layout::{self, took, when};
use super::{field, link, ok_page, store_down, Ctx, Form};
use crate::state::AppState;
use crate::store::inspect::OUTCOMES;
use crate::store::{ListFilter, Status};
use maud::{html, Markup};
use std::time::Duration;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// Deliveries per page.
pub const PAGE: usize = 50;
/// Dead deliveries one "replay all matching" requeues at most.
pub const REPLAY_CAP: usize = 1000;

pub(super) fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("deliveries")
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and(warp::query::<Form>())
        .and_then(|ctx, q| async move { Ok::<_, Rejection>(list(ctx, q).await) });
    let confirm = warp::path!("deliveries" / "replay-dead")
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and(warp::query::<Form>())
        .and_then(|ctx, q| async move { Ok::<_, Rejection>(confirm_replay(ctx, q).await) });
    let replay_all = warp::path!("deliveries" / "replay-dead")
        .and(warp::post())
        .and(super::changing(state.clone()))
        .and_then(|ctx, form| async move { Ok::<_, Rejection>(replay_matching(ctx, form).await) });
    let detail = warp::path!("deliveries" / String)
        .and(warp::get())
        .and(super::signed_in(state.clone()))
        .and(warp::query::<Form>())
        .and_then(|id, ctx, q| async move { Ok::<_, Rejection>(detail(ctx, id, q).await) });
    let act = warp::path!("deliveries" / String / String)
        .and(warp::post())
        .and(super::changing(state.clone()))
        .and_then(|id, action, ctx, _form| async move { Ok::<_, Rejection>(act(ctx, id, action).await) });
    list.or(confirm).unify().or(replay_all).unify().or(detail).unify().or(act).unify()
}

/// The filters a list, its pages and its replay share.
struct Filters {
    status: String,
    destination: String,
    route: String,
    outcome: String,
    customer: String,
    since: String,
}

impl Filters {
    fn of(q: &Form) -> Filters {
        let get = |k: &str| field(q, k).unwrap_or("").to_owned();
        Filters {
            status: get("status"),
            destination: get("destination"),
            route: get("route"),
            outcome: get("outcome"),
            customer: get("customer"),
            since: get("since"),
        }
    }

    fn params(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("status", &self.status),
            ("destination", &self.destination),
            ("route", &self.route),
            ("outcome", &self.outcome),
            ("customer", &self.customer),
            ("since", &self.since),
        ]
    }

    /// The store's filter, or why one of these cannot be one.
    async fn to_filter(&self, store: &dyn crate::store::Store, limit: usize) -> Result<ListFilter, String> {
        let status = match self.status.as_str() {
            "" => None,
            s => Some(Status::parse(s).ok_or_else(|| format!("unknown status \"{s}\""))?),
        };
        let since = match self.since.as_str() {
            "" => None,
            s => Some(crate::config::parse_duration(s).map_err(|e| format!("since \"{s}\": {e}"))?),
        };
        let customer = match self.customer.as_str() {
            "" => None,
            typed => Some(super::events::customer_key(store, typed).await.map_err(|e| e.to_string())?),
        };
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(ListFilter {
            status,
            destination: text(&self.destination),
            since,
            limit,
            outcome: text(&self.outcome),
            customer,
            route: text(&self.route),
            event_id: None,
            before: None,
        })
    }

    fn form(&self, ctx: &Ctx) -> Markup {
        let loaded = ctx.state.loaded.load();
        let destinations: Vec<&String> = loaded.config.destinations.keys().collect();
        let routes: Vec<&String> = loaded.config.routes.iter().map(|r| &r.name).collect();
        let select = layout::select;
        let destinations: Vec<&str> = destinations.iter().map(|s| s.as_str()).collect();
        let routes: Vec<&str> = routes.iter().map(|s| s.as_str()).collect();
        html! {
            form.filters method="get" action="deliveries" {
                (select("status", "Status", &self.status, &["pending", "delivered", "dead"]))
                (select("destination", "Destination", &self.destination, &destinations))
                (select("route", "Route", &self.route, &routes))
                (select("outcome", "Outcome", &self.outcome, &OUTCOMES))
                label { "Customer" input type="search" name="customer" value=(self.customer) placeholder="id or e-mail"; }
                (select("since", "Created within", &self.since, &["1h", "24h", "7d", "30d"]))
                button type="submit" { "Filter" }
                a href="deliveries" { "Clear" }
            }
        }
    }
}

async fn list(ctx: Ctx, q: Form) -> Response {
    let filters = Filters::of(&q);
    let store = ctx.state.store().clone();
    let mut filter = match filters.to_filter(store.as_ref(), PAGE + 1).await {
        Ok(f) => f,
        Err(e) => return bad_filter(&ctx, &filters, &e),
    };
    filter.before = field(&q, "before").map(str::to_owned);
    let mut rows = match store.list(&filter).await {
        Ok(rows) => rows,
        Err(e) => return store_down(&ctx.base, e),
    };
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let params = filters.params();
    let next = rows.last().filter(|_| more).map(|last| {
        let mut p = params.clone();
        p.push(("before", &last.id));
        link("deliveries", &p)
    });
    let body = html! {
        (filters.form(&ctx))
        @if filters.status == "dead" {
            div.actions { a href=(link("deliveries/replay-dead", &params)) { "Replay all matching dead deliveries…" } }
        } @else {
            p.hint { "Choose status “dead” to replay every matching dead delivery at once." }
        }
        div.table-wrap { table #deliveries {
            thead { tr { th { "Delivery" } th.wide { "Created" } th { "Destination" } th.wide { "Routes" } th { "Outcome" } th.wide { "Customer" } th { "Status" } th { "Attempts" } th.wide { "Last error" } } }
            tbody {
                @for d in &rows {
                    tr {
                        td { a.mono href={ "deliveries/" (d.id) } { (d.id) } }
                        td.wide { (when(d.created_at)) }
                        td { (d.destination) }
                        td.wide { (d.routes.join(", ")) }
                        td { (d.outcome.as_deref().unwrap_or("–")) }
                        td.wide { (d.customer.as_deref().unwrap_or("–")) }
                        td { (layout::status(d.status)) }
                        td { (d.attempts) }
                        td.wide.error { (d.last_error.as_deref().map(|e| crate::text::truncate_chars(e, 140)).unwrap_or_default()) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="9" .muted { "No delivery matches." } } }
            }
        } }
        div.pager {
            @if filter.before.is_some() { a href=(link("deliveries", &params)) { "← Newest" } } @else { span {} }
            @if let Some(next) = next { a rel="next" href=(next) { "Older →" } }
        }
    };
    ok_page(layout::page("Deliveries", "deliveries", &ctx, super::flash(&q).as_deref(), body))
}

fn bad_filter(ctx: &Ctx, filters: &Filters, why: &str) -> Response {
    let body = html! { (filters.form(ctx)) p.error { (why) } };
    super::html_with(StatusCode::BAD_REQUEST, layout::page("Deliveries", "deliveries", ctx, None, body))
}

/// The dead deliveries a "replay all matching" would requeue (up to the
/// cap, and one more to tell there are more).
async fn matching_dead(ctx: &Ctx, filters: &Filters) -> Result<Vec<String>, Response> {
    let store = ctx.state.store().clone();
    let mut filter =
        filters.to_filter(store.as_ref(), REPLAY_CAP + 1).await.map_err(|e| bad_filter(ctx, filters, &e))?;
    filter.status = Some(Status::Dead);
    store.list(&filter).await.map(|rows| rows.into_iter().map(|d| d.id).collect()).map_err(|e| store_down(&ctx.base, e))
}

async fn confirm_replay(ctx: Ctx, q: Form) -> Response {
    let mut filters = Filters::of(&q);
    filters.status = "dead".into();
    let ids = match matching_dead(&ctx, &filters).await {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let n = ids.len().min(REPLAY_CAP);
    let body = html! {
        @if n == 0 {
            p { "No dead delivery matches these filters." }
            a href=(link("deliveries", &filters.params())) { "Back to the list" }
        } @else {
            p #replay-count {
                "Replay " strong { (n) } " dead " (if n == 1 { "delivery" } else { "deliveries" }) "?"
                @if ids.len() > REPLAY_CAP { " (the first " (REPLAY_CAP) " of more: run it again for the rest)" }
                " Each is sent again with the current templates and a fresh attempt budget."
            }
            form method="post" action="deliveries/replay-dead" {
                input type="hidden" name="csrf" value=(ctx.session.csrf);
                @for (k, v) in filters.params() { input type="hidden" name=(k) value=(v); }
                div.actions {
                    button type="submit" { "Replay " (n) }
                    a href=(link("deliveries", &filters.params())) { "Cancel" }
                }
            }
        }
    };
    ok_page(layout::page("Replay dead deliveries", "deliveries", &ctx, None, body))
}

async fn replay_matching(ctx: Ctx, form: Form) -> Response {
    let mut filters = Filters::of(&form);
    filters.status = "dead".into();
    let mut ids = match matching_dead(&ctx, &filters).await {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    ids.truncate(REPLAY_CAP);
    match ctx.state.store().replay(&ids).await {
        Ok(replayed) => {
            ctx.state.wake.notify_one();
            let n = replayed.len().to_string();
            let mut params = filters.params();
            params.retain(|(k, _)| *k != "status");
            params.extend([("done", "replayed-all"), ("n", n.as_str())]);
            ctx.redirect(&link("deliveries", &params))
        }
        Err(e) => store_down(&ctx.base, e),
    }
}

async fn detail(ctx: Ctx, id: String, q: Form) -> Response {
    let store = ctx.state.store().clone();
    let detail = match store.show(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return super::not_found(&ctx.base, "delivery", &id),
        Err(e) => return store_down(&ctx.base, e),
    };
    let s = &detail.summary;
    let loaded = ctx.state.loaded.load_full();
    let event = crate::history::with_facts(detail.event.clone(), Some(&detail.facts));
    let explanation = super::events::explanation(&loaded, &event);
    let body = html! {
        dl.facts {
            dt { "Status" } dd #status { (layout::status(s.status)) }
            dt { "Destination" } dd { (s.destination) }
            dt { "Routes" } dd { (s.routes.join(", ")) }
            dt { "Event" } dd { a.mono href={ "events/" (s.event_id) } { (s.event_id) } }
            dt { "Outcome" } dd { (s.outcome.as_deref().unwrap_or("–")) }
            dt { "Customer" } dd { (s.customer.as_deref().unwrap_or("–")) }
            dt { "Created" } dd { (when(s.created_at)) }
            dt { "Attempts" } dd { (s.attempts) }
            @if s.status == Status::Pending { dt { "Next attempt" } dd { (when(s.next_attempt_at)) } }
            @if let Some(e) = &s.last_error { dt { "Last error" } dd.error { (e) } }
        }
        div.actions {
            form method="post" action={ "deliveries/" (s.id) "/replay" } {
                input type="hidden" name="csrf" value=(ctx.session.csrf);
                button #replay type="submit" { "Replay" }
            }
            @if s.status == Status::Pending {
                form method="post" action={ "deliveries/" (s.id) "/discard" } {
                    input type="hidden" name="csrf" value=(ctx.session.csrf);
                    button.danger #discard type="submit" { "Discard" }
                }
            }
        }
        h2 { "Attempts" }
        @if detail.attempt_log.is_empty() { p.muted { "No attempt yet." } }
        @for a in &detail.attempt_log {
            div.card.attempt {
                p {
                    strong { "Attempt " (a.number) } " · " (when(a.at)) " · "
                    @match a.status_code { Some(c) => { "status " (c) }, None => { "no status" } }
                    " · " (took(Duration::from_millis(a.latency_ms)))
                    @if a.error.is_none() { " · " span.badge.ok { "delivered" } }
                }
                @if let Some(e) = &a.error { p.error { (e) } }
                @if let Some(p) = &a.payload { details { summary { "Payload sent" } pre { (p) } } }
                @if let Some(r) = &a.response {
                    details { summary { "Start of the reply" } pre { (crate::text::shown(r)) } }
                }
            }
        }
        h2 { "Routes under the current rules" }
        (explanation)
        h2 { "Event" }
        (layout::json(&detail.event))
        h2 { "What the relay computed at receipt" }
        (layout::json(&detail.facts))
    };
    let title = format!("Delivery {}", s.id);
    ok_page(layout::page(&title, "deliveries", &ctx, super::flash(&q).as_deref(), body))
}

async fn act(ctx: Ctx, id: String, action: String) -> Response {
    let store = ctx.state.store().clone();
    let done = match action.as_str() {
        "replay" => match store.replay(std::slice::from_ref(&id)).await {
            Ok(r) if r.is_empty() => "missing",
            Ok(r) => {
                ctx.state.wake.notify_one();
                if r[0].after_attempt_under_way {
                    "replay-waits"
                } else {
                    "replayed"
                }
            }
            Err(e) => return store_down(&ctx.base, e),
        },
        "discard" => match store.discard(std::slice::from_ref(&id), "discarded from the console").await {
            Ok(d) if d.is_empty() => "not-pending",
            Ok(_) => "discarded",
            Err(e) => return store_down(&ctx.base, e),
        },
        _ => return super::not_found(&ctx.base, "action", &action),
    };
    ctx.redirect(&link(&format!("deliveries/{id}"), &[("done", done)]))
}
