//! Templates that would crash or stall the relay, tried through the real
//! binary with the console on the main listener (the default layout): a
//! loop of partials in the playground, behind a condition in a save, made
//! by editing partial files, and loops nested until a render runs for
//! hours. Each is an error for that render alone: the process lives, and
//! its probes answer.

use crate::helpers::*;
use crate::pages::csrf_of;
use crate::ADMIN;
use std::time::{Duration, Instant};

const INLINE_LOOP: &str = r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#;

/// 13 loops over the event's `path`, nested: 4^13 passes on a sample.
fn nested_loops() -> String {
    "{{#each @root.path}}".repeat(13) + "." + &"{{/each}}".repeat(13)
}

/// The binary on a config with the console (saving allowed), a webhook
/// destination that every event reaches, and a console destination whose
/// template includes the shipped partial `monthly_value`.
struct Relay {
    process: RelayProcess,
    config: ConfigDir,
    hook: Receiver,
    cookie: String,
    csrf: String,
}

impl Relay {
    async fn start() -> Relay {
        let hook = Receiver::start(Answer::new(200, "ok")).await;
        let config = ConfigDir::new(&format!(
            "[admin]\ntokens = [\"{ADMIN}\"]\nedit_templates = true\n\
             [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [destinations.screen]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"hook\"]\n",
            hook.url("/hook"),
        ));
        let process = RelayProcess::start(&config.path()).await;
        let base = format!("http://127.0.0.1:{}", process.port);
        let r = client().post(format!("{base}/console/login")).form(&[("token", ADMIN)]).send().await.unwrap();
        assert_eq!(r.status(), 303, "sign-in");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let page = client().get(format!("{base}/console/templates")).header("cookie", &cookie).send().await.unwrap();
        let csrf = csrf_of(&page.text().await.unwrap());
        Relay { process, config, hook, cookie, csrf }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.process.port)
    }

    /// What the playground answers for `source` as the webhook's template.
    async fn render(&self, source: &str) -> String {
        self.form("/console/templates/render", source).await
    }

    async fn save(&self, source: &str) -> String {
        self.form("/console/templates/save", source).await
    }

    async fn form(&self, path: &str, source: &str) -> String {
        let r = client()
            .post(self.url(path))
            .header("cookie", &self.cookie)
            .form(&[
                ("csrf", self.csrf.as_str()),
                ("destination", "hook"),
                ("template", "webhook/event.json.hbs"),
                ("event", "sample:canceled.json"),
                ("source", source),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("the relay answers {path}: {e}\n{}", self.process.logs()));
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// How long `/healthz` takes to answer 200.
    async fn health(&self) -> Duration {
        let started = Instant::now();
        let r = client().get(self.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        started.elapsed()
    }

    /// The process is alive and its probe answers: a stalled process
    /// would not answer within the client's deadline. (How fast probes
    /// answer is measured by the benchmarks, not asserted here.)
    async fn assert_alive(&mut self) {
        assert!(self.process.child.try_wait().unwrap().is_none(), "the relay died:\n{}", self.process.logs());
        let r = client().get(self.url("/healthz")).timeout(Duration::from_secs(5)).send().await;
        let r = r.unwrap_or_else(|e| panic!("/healthz did not answer: {e}\n{}", self.process.logs()));
        assert_eq!(r.status(), 200);
    }

    async fn post(&self, feedback: &str) {
        let mut event: serde_json::Value = serde_json::from_str(&sample("canceled.json")).unwrap();
        event["feedback"] = feedback.into();
        let r = self.process.post(event.to_string()).await;
        assert_eq!(r.status(), 200);
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_inline_partials_in_the_playground_is_refused_not_a_crash() {
    let mut relay = Relay::start().await;
    let answer = relay.render(INLINE_LOOP).await;
    assert!(answer.contains("partials include each other in a loop: a → b → a"), "{answer}");
    relay.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_saved_behind_a_condition_is_refused_so_no_event_can_crash_a_delivery() {
    let mut relay = Relay::start().await;
    let file = relay.config.dir.path().join("templates/webhook/event.json.hbs");
    let before = std::fs::read_to_string(&file).unwrap();
    let guarded = format!("{{{{#if (eq feedback \"boom\")}}}}{INLINE_LOOP}{{{{/if}}}}{before}");
    let answer = relay.save(&guarded).await;
    assert!(answer.contains("Not saved") && answer.contains("a → b → a"), "{answer}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "nothing written");
    relay.post("boom").await;
    let got = relay.hook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0].json()["feedback"], "boom", "delivered with the running template");
    relay.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partials_edited_into_a_loop_keep_the_running_set() {
    let mut relay = Relay::start().await;
    let partials = relay.config.dir.path().join("templates/partials");
    let monthly = std::fs::read_to_string(partials.join("monthly_value.hbs")).unwrap();
    std::fs::write(partials.join("echo.hbs"), "{{> monthly_value}}").unwrap();
    std::fs::write(partials.join("monthly_value.hbs"), format!("{monthly}{{{{> echo}}}}")).unwrap();
    wait_until(Duration::from_secs(10), "the reload to fail", || {
        relay.process.logs().contains("configuration reload failed")
    })
    .await;
    let logs = relay.process.logs();
    assert!(logs.contains("partials include each other in a loop"), "{logs}");
    relay.assert_alive().await;
    relay.post("still running").await;
    let got = relay.hook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0].json()["feedback"], "still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_loops_stop_at_the_budget_and_never_hold_the_probes() {
    let mut relay = Relay::start().await;
    let source = nested_loops();
    let started = Instant::now();
    let (first, second, slowest_probe) = tokio::join!(relay.render(&source), relay.render(&source), async {
        let mut slowest = Duration::ZERO;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..5 {
            slowest = slowest.max(relay.health().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    });
    for answer in [first, second] {
        assert!(answer.contains("render stopped: it ran longer than 1 second"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "the renders took {:?}", started.elapsed());
    assert!(slowest_probe < Duration::from_secs(1), "/healthz took {slowest_probe:?} while two renders ran");
    relay.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_past_the_budget_goes_dead_naming_it() {
    let mut relay = Relay::start().await;
    let file = relay.config.dir.path().join("templates/webhook/event.json.hbs");
    let before = std::fs::read_to_string(&file).unwrap();
    // Saved through the console: the samples render (their feedback is
    // not "slow"), so the save passes.
    let slow = format!("{{{{#if (eq feedback \"slow\")}}}}{}{{{{/if}}}}{before}", nested_loops());
    let answer = relay.save(&slow).await;
    assert!(answer.contains("and reloaded"), "{answer}");
    relay.post("slow").await;
    relay.post("fast").await;
    let got = relay.hook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0].json()["feedback"], "fast");
    let config = relay.config.path();
    let mut dead = String::new();
    wait_until(Duration::from_secs(15), "the slow delivery to go dead", || {
        dead = deliveries_cli(&config, &["list", "--status", "dead"]);
        dead.contains("render stopped")
    })
    .await;
    assert!(dead.contains("render stopped: it ran longer than 1 second"), "{dead}");
    assert_eq!(relay.hook.count(), 1, "the slow one was never sent");
    relay.assert_alive().await;
}
