//! The web console, tested from outside: its HTTP answers (sessions,
//! CSRF, headers, saving templates), what the store reads for it on both
//! engines, and its pages in a real headless Chromium.

#[macro_use]
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod browser;
mod hostile_templates;
mod in_browser;
mod pages;
mod proxies;
mod reads;

use helpers::*;
use std::time::Duration;

pub const ADMIN: &str = "admin-token-4b1d";

/// A relay with the console on its admin listener: destination `team`
/// (Slack), `hook` (a webhook) and a daily digest; `extra` goes into
/// `[admin]`.
pub struct Console {
    pub app: TestApp,
    /// `http://127.0.0.1:PORT/console/`
    pub url: String,
    pub slack: Receiver,
    pub hook: Receiver,
}

impl Console {
    pub async fn start(extra_admin: &str) -> Console {
        Self::start_on(extra_admin, &TestStore::Sqlite).await
    }

    pub async fn start_on(extra_admin: &str, store: &TestStore) -> Console {
        let slack = Receiver::slack().await;
        let hook = Receiver::start(Answer::new(200, "ok")).await;
        let config = ConfigDir::new(&format!(
            "[admin]\ntokens = [\"{ADMIN}\"]\nlisten = \"127.0.0.1:0\"\n{extra_admin}\n\
             [destinations.team]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/canceled.json.hbs\"\n\
             [destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [digests.daily]\nschedule = \"0 9 * * *\"\ntimezone = \"Europe/Lisbon\"\nto = [\"team\"]\ntemplate = \"slack/digest.json.hbs\"\n\
             [[routes]]\nname = \"cancellations\"\nwhen = \"outcome == 'canceled'\"\nto = [\"team\"]\n\
             [[routes]]\nname = \"everything\"\nto = [\"hook\"]\n",
            slack.url("/slack"),
            hook.url("/hook"),
        ));
        let app = spawn_app(config, store).await;
        let url = format!("{}/console/", app.admin_address.clone().expect("an admin listener"));
        Console { app, url, slack, hook }
    }

    /// The console's origin (`http://127.0.0.1:PORT`).
    pub fn origin(&self) -> String {
        self.url.trim_end_matches("/console/").to_owned()
    }

    /// Posts a sample, made unique, with `customer.name` and feedback
    /// replaced when given; returns the relay's answer.
    pub async fn post(&self, sample_name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut event: serde_json::Value = serde_json::from_str(&sample(sample_name)).unwrap();
        edit(&mut event);
        let r = self.app.post_event(event.to_string()).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Waits until the store has `n` deliveries with `status`.
    pub async fn wait_for_status(&self, status: raaft_relay::store::Status, n: usize) {
        let store = self.app.store.clone();
        let start = std::time::Instant::now();
        loop {
            let filter = raaft_relay::store::ListFilter { status: Some(status), limit: 0, ..Default::default() };
            let found = store.list(&filter).await.unwrap().len();
            if found >= n {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "{found} deliveries {status:?}, waited for {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
