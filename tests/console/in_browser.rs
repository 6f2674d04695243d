//! The console in a real headless Chromium: sign-in, filters, the detail
//! page, replaying a dead delivery, the playground as one types, hostile
//! event data, a cross-site form, and a phone-sized window. The tests
//! take the screenshots the documentation shows (`docs/screenshots/`).

use crate::browser::{Browser, ONE_AT_A_TIME};
use crate::helpers::*;
use crate::{Console, ADMIN};
use raaft_relay::store::{ListFilter, Status};
use std::time::Duration;
use warp::Filter;

macro_rules! browser_test {
    ($(async fn $name:ident() $body:block)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(browser_tests), ignore = "install Debian's chromium and chromium-driver to run the browser tests")]
            async fn $name() {
                let _one = ONE_AT_A_TIME.lock().await;
                $body
            }
        )*
    };
}

const HOSTILE_NAME: &str = "<img src=x onerror=\"window.__pwned='name';alert(1)\">";
const HOSTILE_FEEDBACK: &str = "<script>window.__pwned='feedback';alert(2)</script>*bold* `code`";

/// Posts a few events: delivered, one dead (the webhook refuses the
/// first), a pending one is not needed.
async fn some_traffic(console: &Console) {
    console.hook.then(Answer::new(400, "no such hook"));
    console.post("saved-discount.json", |_| {}).await;
    console.post("canceled.json", |_| {}).await;
    console.post("canceled-annual-enterprise.json", |e| e["customer"]["id"] = "cus_big_1".into()).await;
    console.post("aborted.json", |_| {}).await;
    console.wait_for_status(Status::Dead, 1).await;
    console.wait_for_status(Status::Delivered, 5).await;
}

browser_test! {
    async fn signs_in_filters_shows_a_delivery_and_replays_it() {
        let console = Console::start("").await;
        some_traffic(&console).await;
        let b = Browser::start(1280, 900).await;
        b.goto(&console.url).await;
        b.wait_for_text("h1", "raaft-relay console").await;
        b.fill("input[name=token]", "not-the-token").await;
        b.click("button[type=submit]").await;
        b.wait_for_text("p.error", "wrong admin token").await;
        b.sign_in(&console.url, ADMIN).await;
        assert_eq!(b.eval("return document.cookie").await, "", "the session cookie is HttpOnly");
        assert_eq!(b.text("#dead").await, "1");
        b.screenshot("overview").await;

        // Filter: dead ones of the webhook.
        b.goto(&format!("{}deliveries", console.url)).await;
        assert_eq!(b.texts("#deliveries tbody tr").await.len(), 6);
        b.screenshot("deliveries").await;
        b.client.find(fantoccini::Locator::Css("select[name=status]")).await.unwrap()
            .select_by_value("dead").await.unwrap();
        b.client.find(fantoccini::Locator::Css("select[name=destination]")).await.unwrap()
            .select_by_value("hook").await.unwrap();
        b.click("form.filters button[type=submit]").await;
        b.wait_for_url("status=dead&destination=hook").await;
        b.wait_for_text("#deliveries tbody", "dead").await;
        let rows = b.texts("#deliveries tbody tr").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains("hook") && rows[0].contains("saved"), "{rows:?}");
        // Replay all matching: a confirmation that says how many.
        b.click("div.actions a").await;
        b.wait_for_text("#replay-count", "Replay 1 dead delivery?").await;
        b.goto(&format!("{}deliveries?status=dead", console.url)).await;

        // The detail page.
        b.click("#deliveries tbody a").await;
        b.wait_for_text("h1", "Delivery ").await;
        let page = b.body().await;
        assert!(page.contains("Attempt 1") && page.contains("status 400"), "{page}");
        assert!(page.contains("no such hook"), "the start of the reply is shown");
        assert!(page.contains("route everything: matched → hook"), "{page}");
        b.screenshot("delivery").await;
        b.click("#replay").await;
        b.wait_for_text("p.flash", "Replay queued").await;
        console.wait_for_status(Status::Delivered, 6).await;
        b.client.refresh().await.unwrap();
        b.wait_for_text("#status", "delivered").await;
        assert_eq!(console.hook.count(), 5, "the replay sent it once more");
        b.finish().await;
    }

    async fn the_playground_renders_as_one_types_and_other_pages_show() {
        let console = Console::start("").await;
        some_traffic(&console).await;
        let b = Browser::start(1280, 1000).await;
        b.sign_in(&console.url, ADMIN).await;
        b.goto(&format!("{}templates?destination=team", console.url)).await;
        b.wait_for_text("#payload", "\"blocks\"").await;
        b.fill("#source", "{\"text\": \"Typed here for {{customer.name}}\", \"blocks\": [{\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": \"*Live* preview\"}}]}").await;
        b.wait_for_text("#payload", "Typed here for").await;
        b.wait_for_text("#result .preview.slack strong", "Live").await;
        // A template that does not compile says why, as one types.
        b.fill("#source", "{{#if outcome}}").await;
        b.wait_for_text("#render-error", "template").await;
        // Nothing was saved: the file is as shipped.
        let file = console.app.config_path().parent().unwrap().join("templates/slack/canceled.json.hbs");
        assert_eq!(std::fs::read_to_string(file).unwrap(), std::fs::read_to_string(repo_path("templates/slack/canceled.json.hbs")).unwrap());
        b.goto(&format!("{}templates?destination=team", console.url)).await;
        b.wait_for_text("#payload", "\"blocks\"").await;
        b.screenshot("templates").await;
        for (page, heading, shot) in [
            ("events", "Events", "events"),
            ("destinations", "Destinations", "destinations"),
            ("digests/daily", "Digest daily", "digests"),
        ] {
            b.goto(&format!("{}{page}", console.url)).await;
            b.wait_for_text("h1", heading).await;
            b.screenshot(shot).await;
        }
        b.goto(&format!("{}destinations", console.url)).await;
        b.click("tr[data-destination=hook] button").await;
        b.wait_for_text("#test-result", "sample event canceled.json (the first a route to \"hook\" matches): delivered").await;
        b.finish().await;
    }

    async fn hostile_event_data_shows_as_text_and_runs_nothing() {
        let console = Console::start("").await;
        console.post("canceled.json", |e| {
            e["customer"]["name"] = HOSTILE_NAME.into();
            e["customer"]["id"] = "cus_<b>hostile</b>".into();
            e["feedback"] = HOSTILE_FEEDBACK.into();
        }).await;
        console.wait_for_status(Status::Delivered, 2).await;
        let deliveries = console.app.store.list(&ListFilter { limit: 0, ..Default::default() }).await.unwrap();
        let slack = deliveries.iter().find(|d| d.destination == "team").unwrap();
        let b = Browser::start(1280, 900).await;
        b.sign_in(&console.url, ADMIN).await;
        let pages = [
            "events".to_owned(),
            format!("events/{}", slack.event_id),
            "deliveries".to_owned(),
            format!("deliveries/{}", slack.id),
            format!("templates?destination=team&event=event:{}", slack.event_id),
            "digests/daily".to_owned(),
        ];
        for page in &pages {
            b.goto(&format!("{}{page}", console.url)).await;
            b.wait_for_text("h1", "").await;
            assert!(!b.dialog_open().await, "a dialog opened on {page}");
            assert_eq!(b.eval("return window.__pwned === undefined").await, true, "a hostile script ran on {page}");
            assert_eq!(b.eval("return document.querySelectorAll('main img, main script').length").await, 0, "{page}");
        }
        b.goto(&format!("{}events/{}", console.url, slack.event_id)).await;
        let text = b.body().await;
        assert!(text.contains("cus_<b>hostile</b>"), "the customer id shows as typed");
        assert!(text.contains("<script>window.__pwned"), "the feedback shows as text");
        b.goto(&format!("{}templates?destination=team&event=event:{}", console.url, slack.event_id)).await;
        b.wait_for_text("#result .preview", "onerror").await;
        assert_eq!(b.eval("return window.__pwned === undefined").await, true);
        b.finish().await;
    }

    async fn a_cross_site_form_is_refused() {
        let console = Console::start("").await;
        console.hook.then(Answer::new(400, "no such hook"));
        console.post("saved-discount.json", |_| {}).await;
        console.wait_for_status(Status::Dead, 1).await;
        let dead = console.app.store.list(&ListFilter { status: Some(Status::Dead), limit: 1, ..Default::default() }).await.unwrap();
        let id = dead[0].id.clone();
        // Another site's page that posts to the console as soon as it opens.
        let target = format!("{}deliveries/replay-dead", console.url);
        let attack = format!(
            "<!doctype html><form id=f method=post action=\"{target}\"><input name=status value=dead>\
             <input name=csrf value=guess></form><script>document.getElementById('f').submit()</script>"
        );
        let (attacker, server) = warp::serve(warp::any().map(move || warp::reply::html(attack.clone())))
            .bind_ephemeral(([127, 0, 0, 1], 0));
        tokio::spawn(server);
        let b = Browser::start(1280, 900).await;
        b.sign_in(&console.url, ADMIN).await;
        // `localhost` is another site than 127.0.0.1 to the browser.
        b.goto(&format!("http://localhost:{}/", attacker.port())).await;
        let start = std::time::Instant::now();
        while !b.client.current_url().await.unwrap().as_str().contains("/console/") {
            assert!(start.elapsed() < Duration::from_secs(10), "the attacker's form never submitted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = b.body().await;
        assert!(text.contains("Request refused") || text.contains("Admin token"), "{text}");
        // The refusal was answered before the browser showed it: a replay
        // would have been queued by then.
        let shown = console.app.store.show(&id).await.unwrap().unwrap().summary;
        assert_eq!((shown.status, shown.attempts), (Status::Dead, 1), "nothing was replayed");
        b.finish().await;
    }

    async fn a_phone_sized_window_is_usable() {
        let console = Console::start("").await;
        some_traffic(&console).await;
        let b = Browser::phone(390, 844).await;
        b.sign_in(&console.url, ADMIN).await;
        for page in ["", "deliveries", "destinations", "templates"] {
            b.goto(&format!("{}{page}", console.url)).await;
            b.wait_for_text("h1", "").await;
            let wide = b.eval("return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))").await;
            assert_eq!(b.eval("return window.innerWidth").await, 390, "/console/{page}: wider than the phone: {wide}");
            let fits = b.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1").await;
            assert_eq!(fits, true, "/console/{page} scrolls sideways on a phone");
        }
        b.goto(&format!("{}deliveries", console.url)).await;
        // Every navigation link can be reached and tapped.
        let visible = b.eval("return [...document.querySelectorAll('header nav a')].every(a => { const r = a.getBoundingClientRect(); return r.width > 0 && r.right <= window.innerWidth; })").await;
        assert_eq!(visible, true);
        b.click("#deliveries tbody a").await;
        b.wait_for_text("h1", "Delivery ").await;
        b.goto(&format!("{}deliveries", console.url)).await;
        b.screenshot("phone").await;
        b.finish().await;
    }
}
