//! The console over plain HTTP: where it lives, sign-in and its cookie,
//! the admin allowance, CSRF and origin checks, the headers of every page,
//! discarding, and saving a template.

use crate::helpers::*;
use crate::{Console, ADMIN};
use raaft_relay::store::Status;
use std::time::Duration;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in over HTTP: the `Cookie` header to send and the CSRF token.
pub async fn sign_in(console: &Console) -> (String, String) {
    let r = client().post(format!("{}login", console.url)).form(&[("token", ADMIN)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = get(console, "", &cookie).await;
    (cookie, csrf_of(&page))
}

pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// A console page's HTML (asserting 200).
pub async fn get(console: &Console, path: &str, cookie: &str) -> String {
    let r = client().get(format!("{}{path}", console.url)).header("cookie", cookie).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET /console/{path}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn the_console_lives_beside_the_admin_api_and_only_with_admin_tokens() {
    let console = Console::start("").await;
    let r = client().get(format!("{}login", console.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Not on the listener Raaft reaches when the operators have their own.
    let r = client().get(format!("{}/console/login", console.app.address)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // A page without a session sends the browser to sign in.
    let r = client().get(&console.url).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/console/login"));

    // Without an operators' listener, it is on the main one.
    let here = spawn_app(
        ConfigDir::new(&format!(
            "[admin]\ntokens = [\"{ADMIN}\"]\n[destinations.c]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n"
        )),
        &TestStore::Sqlite,
    )
    .await;
    let r = client().get(format!("{}/console/login", here.address)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("content-security-policy"));

    let without = spawn_app(
        ConfigDir::new("[destinations.c]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n"),
        &TestStore::Sqlite,
    )
    .await;
    let r = client().get(format!("{}/console/login", without.address)).send().await.unwrap();
    assert_eq!(r.status(), 404, "no admin token: no console");
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_session_and_wrong_tokens_count_against_the_allowance() {
    let console = Console::start("auth_failures = \"2/minute\"").await;
    let login = |token: &'static str| client().post(format!("{}login", console.url)).form(&[("token", token)]).send();
    let r = login(ADMIN).await.unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("raaft_console=v1."), "{set}");
    for attribute in ["Path=/console", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    let r = login("wrong-1").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("wrong admin token"));
    assert_eq!(login("wrong-2").await.unwrap().status(), 401);
    let r = login("wrong-3").await.unwrap();
    assert_eq!(r.status(), 429, "past the admin allowance");
    // The allowance is the admin API's too.
    let r = console
        .app
        .client()
        .get(format!("{}admin/deliveries", console.url.trim_end_matches("console/")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // A forged or stale cookie is no session.
    let r = client().get(&console.url).header("cookie", "raaft_console=v1.99999999999.abc.def").send().await.unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn a_session_ends_when_it_expires() {
    let console = Console::start("session = \"1s\"").await;
    let (cookie, _) = sign_in(&console).await;
    let signed_in_at = std::time::Instant::now();
    // The cookie names its expiry to the second: within two seconds of
    // sign-in the session is over.
    loop {
        let r = client().get(&console.url).header("cookie", &cookie).send().await.unwrap();
        if r.status() == 303 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(signed_in_at.elapsed() < Duration::from_secs(3), "the session outlived its second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn state_changes_need_this_sessions_csrf_token_and_this_origin() {
    let console = Console::start("").await;
    console.hook.then(Answer::new(400, "no such hook"));
    console.post("saved-discount.json", |_| {}).await;
    console.wait_for_status(Status::Dead, 1).await;
    let dead = console
        .app
        .store
        .list(&raaft_relay::store::ListFilter { status: Some(Status::Dead), limit: 1, ..Default::default() })
        .await
        .unwrap();
    let id = &dead[0].id;
    let (cookie, csrf) = sign_in(&console).await;
    let replay = format!("{}deliveries/{id}/replay", console.url);
    let post = |csrf: &str, origin: &str| {
        client().post(&replay).header("cookie", &cookie).header("origin", origin).form(&[("csrf", csrf)]).send()
    };
    let r = post("", &console.origin()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("CSRF"));
    let r = post(&csrf, "http://evil.test").await.unwrap();
    assert_eq!(r.status(), 403, "another origin is refused even with the token");
    let r = client()
        .post(&replay)
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, other_csrf) = sign_in(&console).await;
    assert_eq!(post(&other_csrf, &console.origin()).await.unwrap().status(), 403, "another session's token");
    assert_eq!(console.app.store.show(id).await.unwrap().unwrap().summary.status, Status::Dead, "nothing replayed yet");
    let r = post(&csrf, &console.origin()).await.unwrap();
    assert_eq!(r.status(), 303);
    console.wait_for_status(Status::Delivered, 1).await;
}

#[tokio::test]
async fn every_page_carries_the_policy_and_no_inline_script() {
    let console = Console::start("").await;
    console.post("canceled.json", |_| {}).await;
    console.wait_for_status(Status::Delivered, 2).await;
    let (cookie, _) = sign_in(&console).await;
    let delivery =
        console.app.store.list(&raaft_relay::store::ListFilter { limit: 1, ..Default::default() }).await.unwrap();
    let pages = [
        String::new(),
        "deliveries".into(),
        format!("deliveries/{}", delivery[0].id),
        "events".into(),
        format!("events/{}", delivery[0].event_id),
        "destinations".into(),
        "templates".into(),
        "digests".into(),
        "digests/daily".into(),
        "deliveries/replay-dead?status=dead".into(),
    ];
    for page in pages.iter().map(String::as_str).chain(["login"]) {
        let r = client().get(format!("{}{page}", console.url)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 200, "/console/{page}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let html = r.text().await.unwrap();
        for inline in ["<script>", " onclick=", " onerror=", " onload=", " style=", "hx-on"] {
            assert!(!html.contains(inline), "/console/{page} has {inline}");
        }
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=\"/console/assets/htmx.min.js\"").count()
        );
    }
    let r = client().get(format!("{}assets/htmx.min.js", console.url)).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn discard_stops_a_pending_delivery_for_good() {
    let console = Console::start("").await;
    // The webhook fails and is retried much later: pending meanwhile.
    for _ in 0..3 {
        console.hook.then(Answer::new(503, "busy").header("retry-after", "600"));
    }
    console.post("aborted.json", |_| {}).await;
    wait_until(Duration::from_secs(10), "a first attempt", || console.hook.count() >= 1).await;
    let pending = console
        .app
        .store
        .list(&raaft_relay::store::ListFilter { status: Some(Status::Pending), limit: 1, ..Default::default() })
        .await
        .unwrap();
    let id = pending[0].id.clone();
    let (cookie, csrf) = sign_in(&console).await;
    let page = get(&console, &format!("deliveries/{id}"), &cookie).await;
    assert!(page.contains("id=\"discard\""));
    let r = client()
        .post(format!("{}deliveries/{id}/discard", console.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let shown = console.app.store.show(&id).await.unwrap().unwrap().summary;
    assert_eq!((shown.status, shown.last_error.as_deref()), (Status::Dead, Some("discarded from the console")));
    let page = get(&console, &format!("deliveries/{id}?done=discarded"), &cookie).await;
    assert!(page.contains("Discarded: it will not be tried again"));
    // Only a pending one can be discarded.
    let r = client()
        .post(format!("{}deliveries/{id}/discard", console.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.headers()["location"].to_str().unwrap().ends_with("done=not-pending"));
}

#[tokio::test]
async fn saving_a_template_checks_it_first_and_is_off_unless_allowed() {
    let console = Console::start("edit_templates = true").await;
    let (cookie, csrf) = sign_in(&console).await;
    let file = console.app.config_path().parent().unwrap().join("templates/webhook/event.json.hbs");
    let before = std::fs::read_to_string(&file).unwrap();
    let save = |source: &'static str| {
        client()
            .post(format!("{}templates/save", console.url))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("destination", "hook"),
                ("template", "webhook/event.json.hbs"),
                ("source", source),
            ])
            .send()
    };
    let r = save("{\"broken\": {{#if outcome}}").await.unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("Not saved"), "{page}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "a broken edit never reaches the file");
    let r = save("{\"saved_from_console\": \"{{outcome}}\"}").await.unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("and reloaded"), "{page}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"saved_from_console\": \"{{outcome}}\"}");
    console.post("saved-discount.json", |_| {}).await;
    let got = console.hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json(), serde_json::json!({"saved_from_console": "saved"}));

    let off = Console::start("").await;
    let (cookie, csrf) = sign_in(&off).await;
    let r = client()
        .post(format!("{}templates/save", off.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("destination", "hook"), ("source", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
