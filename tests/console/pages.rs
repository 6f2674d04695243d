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
    assert!(set.starts_with("raaft_console=v2."), "{set}");
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
    // The cookie names its issue time to the second, so a session of three
    // seconds lasts at least two and at most three: a page asked for within
    // a second of sign-in is shown (a second to spare for a busy machine),
    // one asked for three seconds after it is not.
    let console = Console::start("session = \"3s\"").await;
    let signed_in_at = std::time::Instant::now();
    let r = client().post(format!("{}login", console.url)).form(&[("token", ADMIN)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let mut shown = 0;
    loop {
        let asked_at = signed_in_at.elapsed();
        let r = client().get(&console.url).header("cookie", &cookie).send().await.unwrap();
        if asked_at < Duration::from_secs(1) {
            assert_eq!(r.status(), 200, "asked {asked_at:?} after sign-in");
        }
        if r.status() == 303 {
            break;
        }
        assert_eq!(r.status(), 200);
        shown += 1;
        assert!(asked_at < Duration::from_secs(3), "the session outlived its three seconds ({asked_at:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shown > 0, "the page was never shown while the session lasted");
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
        assert_eq!(html.matches("<script").count(), html.matches("<script src=\"assets/htmx.min.js\"").count());
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

/// Posts a save of `source` as the file `template`, picked through
/// `destination`; returns the page.
async fn save_as(
    console: &Console,
    cookie: &str,
    csrf: &str,
    destination: &str,
    template: &str,
    source: &str,
) -> String {
    let r = client()
        .post(format!("{}templates/save", console.url))
        .header("cookie", cookie)
        .form(&[("csrf", csrf), ("destination", destination), ("template", template), ("source", source)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_save_checks_every_destination_that_uses_the_file_before_writing_it() {
    let console = Console::start(
        "edit_templates = true\n[destinations.screen]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n",
    )
    .await;
    let (cookie, csrf) = sign_in(&console).await;
    let file = console.app.config_path().parent().unwrap().join("templates/slack/canceled.json.hbs");
    let before = std::fs::read_to_string(&file).unwrap();
    // Fine as console text; not JSON, which the Slack destination needs.
    let page = save_as(&console, &cookie, &csrf, "screen", "slack/canceled.json.hbs", "canceled: {{outcome}}").await;
    assert!(page.contains("Not saved"), "{page}");
    assert!(page.contains("destination &quot;team&quot;") || page.contains("destination \"team\""), "{page}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "the file is untouched");
    raaft_relay::check::check(&console.app.config_path()).expect("the configuration still checks");
    console.post("canceled.json", |_| {}).await;
    let got = console.slack.wait_for(1, Duration::from_secs(10)).await;
    assert!(got[0].json()["blocks"].is_array(), "sent with the running template");
}

#[tokio::test]
async fn a_save_whose_reload_fails_puts_the_previous_file_back() {
    // The relay serves TLS on its main listener; the console is on the
    // operators' own plain listener. Saving does not look at the
    // certificate: a key broken on disk makes the reload after the write
    // fail, the one thing the check before it cannot see.
    let hook = Receiver::start(Answer::new(200, "ok")).await;
    let config = ConfigDir::new(&format!(
        "[admin]\ntokens = [\"{ADMIN}\"]\nlisten = \"127.0.0.1:0\"\nedit_templates = true\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"everything\"\nto = [\"hook\"]\n",
        hook.url("/hook")
    ));
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(config.dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(config.dir.path().join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    let text = std::fs::read_to_string(config.path()).unwrap().replace(
        "listen = \"127.0.0.1:0\"\n[raaft]",
        "listen = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n[raaft]",
    );
    std::fs::write(config.path(), text).unwrap();
    let app = spawn_app(config, &TestStore::Sqlite).await;
    let url = format!("{}/console/", app.admin_address.clone().unwrap());
    let slack = Receiver::slack().await;
    let console = Console { app, url, slack, hook };
    let (cookie, csrf) = sign_in(&console).await;
    let dir = console.app.config_path().parent().unwrap().to_path_buf();
    let file = dir.join("templates/webhook/event.json.hbs");
    let before = std::fs::read_to_string(&file).unwrap();
    std::fs::write(dir.join("key.pem"), "not a key").unwrap();
    let page = save_as(&console, &cookie, &csrf, "hook", "webhook/event.json.hbs", "{\"edited\": true}").await;
    assert!(page.contains("Not saved"), "{page}");
    let shown = page.split("save-result").nth(1).unwrap_or_default();
    assert!(shown.contains("key.pem"), "the reload's problem is shown: {shown}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "the previous file is back");
}

/// Whether the console answers `cookie` with a page (200) rather than the
/// sign-in (303).
async fn signed_in(console: &Console, cookie: &str) -> bool {
    let r = client().get(&console.url).header("cookie", cookie).send().await.unwrap();
    match r.status().as_u16() {
        200 => true,
        303 => false,
        other => panic!("the console answered {other}"),
    }
}

#[tokio::test]
async fn a_shorter_session_setting_ends_sessions_already_issued() {
    let console = Console::start("session = \"12h\"").await;
    let (cookie, _) = sign_in(&console).await;
    let signed = std::time::Instant::now();
    assert!(signed_in(&console, &cookie).await);
    let config = console.app.config_path();
    let text = std::fs::read_to_string(&config).unwrap().replace("session = \"12h\"", "session = \"1s\"");
    std::fs::write(&config, text).unwrap();
    // Once reloaded, and once the cookie is older than a second, it is over.
    let deadline = Duration::from_secs(10);
    while signed_in(&console, &cookie).await {
        assert!(signed.elapsed() < deadline, "a 12h cookie still works {deadline:?} after session became 1s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_leaked_cookie_confirms_no_guess_of_the_token_offline() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let console = Console::start("").await;
    let (cookie, _) = sign_in(&console).await;
    let value = cookie.strip_prefix("raaft_console=").unwrap();
    assert!(!value.contains(ADMIN));
    let (message, signature) = value.rsplit_once('.').unwrap();
    // A guesser holding the cookie tries keys made from candidate tokens,
    // as a cookie keyed by the token would allow: none confirms the token.
    for guess in ["wrong-guess", ADMIN] {
        for key in [
            Sha256::new().chain_update(b"raaft-relay console session v1\0").chain_update(guess).finalize().to_vec(),
            guess.as_bytes().to_vec(),
        ] {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(message.as_bytes());
            let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_ne!(hex, signature, "the cookie confirms the guess {guess:?}");
        }
    }
    // And a cookie made that way is no session.
    let mut mac = Hmac::<Sha256>::new_from_slice(ADMIN.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!signed_in(&console, &format!("raaft_console={message}.{hex}")).await);
}

async fn wait_until_async<F, Fut>(deadline: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !cond().await {
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn replicas_of_one_store_share_sessions_and_sign_outs() {
    let store = TestStore::postgres();
    let config = || {
        ConfigDir::new(&format!(
            "[admin]\ntokens = [\"{ADMIN}\"]\n[destinations.c]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n"
        ))
    };
    let (first, second) = (config(), config());
    let url = store.fresh_url(first.dir.path()).await;
    first.set_store(&url);
    second.set_store(&url);
    let (a, b) = (spawn_on(first).await, spawn_on(second).await);
    let console_of = |app: &TestApp| format!("{}/console/", app.address);
    let r = client().post(format!("{}login", console_of(&a))).form(&[("token", ADMIN)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = |app: &TestApp| client().get(console_of(app)).header("cookie", &cookie).send();
    assert_eq!(page(&b).await.unwrap().status(), 200, "a session made on one replica is good on another");
    let html = page(&b).await.unwrap().text().await.unwrap();
    let r = client()
        .post(format!("{}logout", console_of(&b)))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(page(&a).await.unwrap().status(), 303, "signed out on one replica, signed out on all");
}

// Sign-outs and the sessions' secret are kept in the store.
on_both_stores! {
    async fn signing_out_ends_every_copy_of_the_cookie(store) {
        let console = Console::start_on("", &store).await;
        let (cookie, csrf) = sign_in(&console).await;
        let copy = cookie.clone();
        assert!(signed_in(&console, &copy).await);
        let r = client()
            .post(format!("{}logout", console.url))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
        assert!(!signed_in(&console, &copy).await, "a copy of the cookie outlived the sign-out");
        let (other, _) = sign_in(&console).await;
        assert!(signed_in(&console, &other).await, "signing out ends one session, not the others");
    }

    async fn removing_an_admin_token_ends_the_sessions_and_signs_with_a_new_secret(store) {
        let console = Console::start_on("", &store).await;
        let config = console.app.config_path();
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!("tokens = [\"{ADMIN}\"]"), &format!("tokens = [\"{ADMIN}\", \"second-admin-token-77\"]"));
        std::fs::write(&config, text).unwrap();
        let second = |token: &'static str| client().post(format!("{}login", console.url)).form(&[("token", token)]).send();
        let r = loop {
            let r = second("second-admin-token-77").await.unwrap();
            if r.status() == 303 {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let with_second = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let (with_first, _) = sign_in(&console).await;
        let secret = console.app.store.secret("console-session").await.unwrap();
        assert!(signed_in(&console, &with_second).await && signed_in(&console, &with_first).await);
        let text = std::fs::read_to_string(&config).unwrap().replace(", \"second-admin-token-77\"", "");
        std::fs::write(&config, text).unwrap();
        wait_until_async(Duration::from_secs(10), "the removed token's session to end", || {
            let cookie = with_second.clone();
            let console = &console;
            async move { !signed_in(console, &cookie).await }
        })
        .await;
        wait_until_async(Duration::from_secs(10), "a new secret", || async {
            console.app.store.secret("console-session").await.unwrap() != secret
        })
        .await;
        assert!(!signed_in(&console, &with_first).await, "signed with the old secret");
        let (fresh, _) = sign_in(&console).await;
        assert!(signed_in(&console, &fresh).await);
    }

}
