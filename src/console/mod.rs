//! The web console at `/console/`: the relay's state for the people who
//! run it, as server-rendered pages (maud escapes every value inserted)
//! that read well without JavaScript; a vendored htmx makes the template
//! playground render as one types. It exists only when `[admin] tokens`
//! are set, and is served where the admin API is.
//!
//! Sign-in takes an admin token (wrong ones count against the admin
//! allowance) and sets a session cookie signed with a secret kept in the
//! store ([`session`]); sign-out revokes it in the store; every
//! state-changing form carries the session's CSRF token and must come from
//! the console's own origin. Every response carries a Content-Security-
//! Policy that allows no inline script.

mod deliveries;
mod destinations;
mod digests;
mod events;
mod layout;
mod outside;
mod overview;
mod playground;
mod preview;
pub mod session;

use crate::auth::{Refused, Scheme};
use crate::http::server::ClientAddr;
use crate::state::AppState;
use maud::Markup;
use outside::{outside, Outside};
use session::Session;
use std::collections::HashMap;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// The policy every console response carries: scripts, styles and frames
/// from the relay only, nothing inline, no framing by others.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; \
     base-uri 'self'";

/// A form's fields.
pub(crate) type Form = HashMap<String, String>;

/// What a page handler works with: the relay's state, the session and
/// where the console is as the browser addresses it (`/console/`, or
/// under `[server] public_url`'s path): every page's links are relative to
/// it (`<base href>`).
#[derive(Clone)]
pub(crate) struct Ctx {
    pub state: AppState,
    pub session: Session,
    pub base: String,
}

impl Ctx {
    /// A redirect to `rel`, a console page.
    pub fn redirect(&self, rel: &str) -> Response {
        redirect(&format!("{}{}", self.base, rel.trim_start_matches("./")))
    }
}

/// Why a console request was refused before its handler ran.
#[derive(Debug)]
enum Refusal {
    /// Not signed in: a page sends the browser to the sign-in page.
    SignIn,
    /// A state-changing request without this session's CSRF token, or
    /// from another origin.
    Forbidden(&'static str),
    /// The store, which keeps the sessions' secret, did not answer.
    StoreDown(String),
}

impl warp::reject::Reject for Refusal {}

/// Every console route; `secure`: the console is served over TLS (its
/// cookie says `Secure`).
pub fn routes(state: AppState, secure: bool) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let on = {
        let state = state.clone();
        warp::path("console").and_then(move || {
            let state = state.clone();
            async move {
                if state.loaded.load().config.admin_tokens.is_empty() {
                    Err(warp::reject::not_found())
                } else {
                    Ok(())
                }
            }
        })
    }
    .untuple_one();
    let root = warp::path::end()
        .and(warp::get())
        .and(warp::path::full())
        .and(outside(state.clone(), secure))
        .map(|full: warp::path::FullPath, outside: Outside| {
            // `/console` → `/console/`, where the overview is.
            if full.as_str().ends_with('/') {
                Err(())
            } else {
                Ok(redirect(&outside.url("./")))
            }
        })
        .and_then(|r: Result<Response, ()>| async move { r.map_err(|_| warp::reject::not_found()) });
    let assets = warp::path!("assets" / String).and(warp::get()).and_then(asset);
    let pages = root
        .or(overview::routes(state.clone()))
        .unify()
        .or(deliveries::routes(state.clone()))
        .unify()
        .or(events::routes(state.clone()))
        .unify()
        .or(destinations::routes(state.clone()))
        .unify()
        .or(playground::routes(state.clone()))
        .unify()
        .or(digests::routes(state.clone()))
        .unify();
    let refused = {
        let state = state.clone();
        move |rejection: Rejection| refused(outside::base(&state.loaded.load().config), rejection)
    };
    on.and(assets.or(sign_in_and_out(state.clone(), secure)).unify().or(pages).unify()).recover(refused).unify().map(
        |mut r: Response| {
            let headers = r.headers_mut();
            for (name, value) in security_headers().iter() {
                headers.insert(name, value.clone());
            }
            r
        },
    )
}

/// The sign-in page and form, and signing out.
fn sign_in_and_out(state: AppState, secure: bool) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let login_page = warp::path!("login")
        .and(warp::get())
        .and(outside(state.clone(), secure))
        .map(|outside: Outside| ok_page(layout::login(&outside.base, None)));
    let login = warp::path!("login")
        .and(warp::post())
        .and(origin_ok(state.clone(), secure))
        .and(not_blocked(state.clone()))
        .and(form(state.clone()))
        .and(crate::http::admin::credentials())
        .and(with(state.clone()))
        .then(
            move |outside: Outside,
                  form: Form,
                  _: Option<String>,
                  peer: Option<ClientAddr>,
                  forwarded: Option<String>,
                  state| async move { sign_in(&state, &outside, &form, peer, forwarded).await },
        );
    let logout = warp::path!("logout").and(warp::post()).and(changing_seen(state.clone(), secure)).then(
        move |outside: Outside, ctx: Ctx, _: Form| async move {
            // Every copy of the cookie ends, not only the browser's.
            if let Err(e) = ctx.state.store().revoke_session(&ctx.session.id, ctx.session.issued).await {
                return store_down(&ctx.base, e);
            }
            let mut r = ctx.redirect("login");
            set_header(&mut r, header::SET_COOKIE, &session::clear_cookie(outside.cookie_path(), outside.secure));
            r
        },
    );
    login_page.or(login).unify().or(logout).unify()
}

fn security_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it a browser's forms say `Origin: null`,
    // which the origin check must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}

fn with(state: AppState) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// How large a form may be: a template's text.
const FORM_MAX: u64 = 1024 * 1024;

/// A form body, read as every body is ([`crate::http::body`]: bounded in
/// size, in time and per client).
fn form(state: AppState) -> impl Filter<Extract = (Form,), Error = Rejection> + Clone {
    crate::http::body::read(state, |_| FORM_MAX)
        .map(|body: bytes::Bytes| url::form_urlencoded::parse(&body).into_owned().collect::<Form>())
}

/// Refuses a client past its admin allowance before its sign-in form is
/// read: the token is in the body, the allowance is not.
fn not_blocked(state: AppState) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    crate::http::admin::credentials()
        .and_then(move |_: Option<String>, peer: Option<ClientAddr>, forwarded: Option<String>| {
            let state = state.clone();
            async move {
                let guard = state.admin_auth.load();
                match guard.client(peer.map(|a| a.0.ip()), forwarded.as_deref()).and_then(|ip| guard.blocked(ip).err())
                {
                    Some(wait) => Err(warp::reject::custom(crate::http::ApiError::TooManyFailures(wait))),
                    None => Ok(()),
                }
            }
        })
        .untuple_one()
}

/// Passes a request whose `Origin` and `Sec-Fetch-Site` (when sent) say it
/// comes from the console's own pages, with how the browser sees it
/// ([`Outside`]). A refusal is logged: behind a proxy that rewrites `Host`
/// it is the sign that `[server] public_url` is missing.
fn origin_ok(state: AppState, tls: bool) -> impl Filter<Extract = (Outside,), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .and(outside(state, tls))
        .and_then(|origin: Option<String>, site: Option<String>, outside: Outside| async move {
            if outside.accepts(origin.as_deref(), site.as_deref()) {
                Ok(outside)
            } else {
                tracing::warn!(
                    origin = origin.as_deref().unwrap_or("-"),
                    sec_fetch_site = site.as_deref().unwrap_or("-"),
                    "console: cross-site request refused (behind a reverse proxy, set [server] public_url to the \
                     address people use)"
                );
                Err(warp::reject::custom(Refusal::Forbidden("cross-site request refused")))
            }
        })
}

/// Passes a signed-in request with its [`Ctx`]: a cookie signed with the
/// store's secret, made with a token still listed, within `[admin]
/// session` of its sign-in, and not signed out.
pub(crate) fn signed_in(state: AppState) -> impl Filter<Extract = (Ctx,), Error = Rejection> + Clone {
    warp::header::optional::<String>("cookie").and_then(move |cookie: Option<String>| {
        let state = state.clone();
        async move {
            let Some(value) = cookie.as_deref().and_then(session::from_cookie_header).map(str::to_owned) else {
                return Err(warp::reject::custom(Refusal::SignIn));
            };
            let down = |e: crate::store::StoreError| warp::reject::custom(Refusal::StoreDown(e.to_string()));
            let secret = state.store().secret(session::SECRET).await.map_err(down)?;
            let (tokens, lasts) = {
                let config = &state.loaded.load().config;
                (config.admin_tokens.clone(), config.admin_session)
            };
            let session = session::verify(&value, &secret, &tokens, lasts, chrono::Utc::now())
                .ok_or_else(|| warp::reject::custom(Refusal::SignIn))?;
            if state.store().session_revoked(&session.id).await.map_err(down)? {
                return Err(warp::reject::custom(Refusal::SignIn));
            }
            let base = outside::base(&state.loaded.load().config);
            Ok(Ctx { state, session, base })
        }
    })
}

/// Passes a signed-in, same-origin request whose form carries the
/// session's CSRF token, with the form.
pub(crate) fn changing(state: AppState) -> impl Filter<Extract = (Ctx, Form), Error = Rejection> + Clone {
    changing_seen(state, false).map(|_: Outside, ctx: Ctx, form: Form| (ctx, form)).untuple_one()
}

/// [`changing`], with how the browser sees the request (`tls`: the
/// listener serves TLS).
fn changing_seen(state: AppState, tls: bool) -> impl Filter<Extract = (Outside, Ctx, Form), Error = Rejection> + Clone {
    origin_ok(state.clone(), tls)
        .and(signed_in(state.clone()))
        .and(form(state))
        .and_then(|outside: Outside, ctx: Ctx, form: Form| async move {
            let presented = form.get("csrf").map(String::as_str).unwrap_or("");
            if session::csrf_ok(&ctx.session, presented) {
                Ok((outside, ctx, form))
            } else {
                Err(warp::reject::custom(Refusal::Forbidden(
                    "missing or wrong CSRF token: reload the page and try again",
                )))
            }
        })
        .untuple_one()
}

/// The answer to a request refused before its handler (`base`: where the
/// console is).
async fn refused(base: String, rejection: Rejection) -> Result<Response, Rejection> {
    if let Some(crate::http::ApiError::TooManyFailures(wait)) = rejection.find::<crate::http::ApiError>() {
        return Ok(too_many_wrong_tokens(&base, *wait));
    }
    match rejection.find::<Refusal>() {
        Some(Refusal::SignIn) => Ok(redirect(&format!("{base}login"))),
        Some(Refusal::Forbidden(why)) => {
            Ok(html_with(StatusCode::FORBIDDEN, layout::message(&base, "Request refused", why)))
        }
        Some(Refusal::StoreDown(why)) => {
            Ok(html_with(StatusCode::SERVICE_UNAVAILABLE, layout::message(&base, "The store did not answer", why)))
        }
        None => Err(rejection),
    }
}

/// The sign-in page, answered 429 to a client past its admin allowance.
fn too_many_wrong_tokens(base: &str, wait: std::time::Duration) -> Response {
    let why = format!("too many wrong tokens: try again in {} s", wait.as_secs().max(1));
    html_with(StatusCode::TOO_MANY_REQUESTS, layout::login(base, Some(&why)))
}

async fn sign_in(
    state: &AppState,
    outside: &Outside,
    form: &Form,
    peer: Option<ClientAddr>,
    forwarded: Option<String>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    let guard = state.admin_auth.load();
    let client = guard.client(peer.map(|a| a.0.ip()), forwarded.as_deref());
    let presented = Some(token.as_bytes()).filter(|t| !t.is_empty());
    match guard.verify(Scheme::AdminToken, client, presented, &state.loaded.load().config.admin_tokens) {
        Ok(()) => {
            let secret = match state.store().secret(session::SECRET).await {
                Ok(secret) => secret,
                Err(e) => return store_down(&outside.base, e),
            };
            let lasts = state.loaded.load().config.admin_session;
            let (value, _) = session::start(&secret, token, chrono::Utc::now(), lasts);
            let mut r = redirect(&outside.url("./"));
            let cookie = session::set_cookie(&value, lasts, outside.cookie_path(), outside.secure);
            set_header(&mut r, header::SET_COOKIE, &cookie);
            r
        }
        Err(Refused::TooManyFailures(wait)) => too_many_wrong_tokens(&outside.base, wait),
        Err(Refused::Unauthorized(_)) => {
            html_with(StatusCode::UNAUTHORIZED, layout::login(&outside.base, Some("wrong admin token")))
        }
    }
}

async fn asset(name: String) -> Result<Response, Rejection> {
    let (body, kind): (&'static [u8], &str) = match name.as_str() {
        "htmx.min.js" => (include_bytes!("assets/htmx.min.js"), "text/javascript; charset=utf-8"),
        "console.css" => (include_bytes!("assets/console.css"), "text/css; charset=utf-8"),
        _ => return Err(warp::reject::not_found()),
    };
    let mut r = Response::new(body.into());
    set_header(&mut r, header::CONTENT_TYPE, kind);
    Ok(r)
}

pub(crate) fn ok_page(markup: Markup) -> Response {
    html_with(StatusCode::OK, markup)
}

pub(crate) fn html_with(status: StatusCode, markup: Markup) -> Response {
    let mut r = warp::reply::html(markup.into_string()).into_response();
    *r.status_mut() = status;
    r
}

/// A `303 See Other` to `to` (after a form, the browser GETs the page).
pub(crate) fn redirect(to: &str) -> Response {
    let mut r = Response::new(Default::default());
    *r.status_mut() = StatusCode::SEE_OTHER;
    set_header(&mut r, header::LOCATION, to);
    r
}

fn set_header(r: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// A query string's value for `key`, when not empty.
pub(crate) fn field<'a>(form: &'a Form, key: &str) -> Option<&'a str> {
    form.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The message a page shows after a form sent the browser to it (`done`
/// names what happened; the text is the console's own, never the link's).
pub(crate) fn flash(q: &Form) -> Option<String> {
    let n = field(q, "n").and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    Some(match field(q, "done")? {
        "replayed" => "Replay queued".into(),
        "replay-waits" => "Replay queued: it starts once the attempt under way is recorded".into(),
        "replayed-all" => format!("{n} dead deliveries queued again"),
        "discarded" => "Discarded: it will not be tried again".into(),
        "not-pending" => "Only a pending delivery can be discarded".into(),
        "missing" => "No such delivery".into(),
        _ => return None,
    })
}

/// What a query string's value keeps as it is.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `to` with `params` as its query string (empty values left out).
pub(crate) fn link(to: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    if query.is_empty() {
        to.to_owned()
    } else {
        format!("{to}?{}", query.join("&"))
    }
}

/// A 404 page: no `what` named `name` (`base`: where the console is).
pub(crate) fn not_found(base: &str, what: &str, name: &str) -> Response {
    let (title, text) = (format!("No such {what}"), format!("no {what} \"{name}\""));
    html_with(StatusCode::NOT_FOUND, layout::message(base, &title, &text))
}

/// A page telling that the store could not answer.
pub(crate) fn store_down(base: &str, e: crate::store::StoreError) -> Response {
    html_with(StatusCode::SERVICE_UNAVAILABLE, layout::message(base, "The store did not answer", &e.to_string()))
}
