//! A real browser for the console's tests: Debian's headless Chromium
//! driven through ChromeDriver (WebDriver), one of each per test.

use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Browser tests run one at a time: each starts a Chromium.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Browser {
    pub client: Client,
    driver: Stopped,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// A headless Chromium with a window of `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        Self::launch(width, height, false).await
    }

    /// A headless Chromium that shows pages as a phone of `width` ×
    /// `height` does (its viewport, and a touch screen).
    pub async fn phone(width: u32, height: u32) -> Browser {
        Self::launch(width, height, true).await
    }

    async fn launch(width: u32, height: u32, phone: bool) -> Browser {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ChromeDriver \"{driver_path}\": {e}"));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "ChromeDriver did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}"), "--hide-scrollbars"]
        });
        if phone {
            options["mobileEmulation"] = serde_json::json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": true}});
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if std::path::Path::new(&binary).exists() {
            options["binary"] = binary.into();
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::rustls()
            .expect("a TLS setup for the WebDriver client")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        Browser { client, driver: Stopped(driver) }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no \"{css}\": {e}")).text().await.unwrap()
    }

    /// The text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap());
        }
        out
    }

    pub async fn body(&self) -> String {
        self.text("body").await
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no \"{css}\": {e}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no \"{css}\": {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Signs in at `console` (".../console/") with `token`.
    pub async fn sign_in(&self, console: &str, token: &str) {
        self.goto(&format!("{console}login")).await;
        self.fill("input[name=token]", token).await;
        self.click("button[type=submit]").await;
        self.wait_for_text("h1", "Overview").await;
    }

    /// Waits until the first element matching `css` contains `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        let start = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if t.contains(text) {
                        return t;
                    }
                }
            }
            if start.elapsed() > Duration::from_secs(15) {
                let body = self.client.source().await.unwrap_or_default();
                panic!("\"{css}\" never showed \"{text}\"; the page:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's address contains `part` (a form submitted).
    pub async fn wait_for_url(&self, part: &str) {
        let start = Instant::now();
        while !self.client.current_url().await.map(|u| u.as_str().contains(part)).unwrap_or(false) {
            assert!(start.elapsed() < Duration::from_secs(15), "the address never contained \"{part}\"");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Whether a dialog (alert, confirm) is open.
    pub async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// Saves a screenshot of the page as `NAME.png` under
    /// `target/screenshots/`, or under `docs/screenshots/` (the ones the
    /// documentation shows) when `RAAFT_RELAY_UPDATE_SCREENSHOTS` is set.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = match std::env::var_os("RAAFT_RELAY_UPDATE_SCREENSHOTS") {
            Some(_) => root.join("docs/screenshots"),
            None => root.join("target/screenshots"),
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn finish(self) {
        let Browser { client, driver } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// Ends ChromeDriver and the browser it started (its process group).
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-s", "KILL", "--"]).arg(format!("-{}", self.0.id())).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
