//! The relay behind the reverse proxies people put in front of it,
//! Debian's nginx and Caddy, run with the blocks docs/deployment.md gives:
//! signing in to the console, replaying from it, an event from Raaft, and
//! wrong tokens counted against the client's own address.

use crate::browser::{Browser, ONE_AT_A_TIME};
use crate::helpers::*;
use crate::pages::csrf_of;
use crate::ADMIN;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The code block docs/deployment.md marks `<!-- tested: NAME -->`.
fn documented(name: &str) -> String {
    let doc = std::fs::read_to_string(repo_path("docs/deployment.md")).unwrap();
    let marker = format!("<!-- tested: {name} -->\n");
    let after =
        &doc[doc.find(&marker).unwrap_or_else(|| panic!("no {marker:?} in docs/deployment.md")) + marker.len()..];
    let body = &after[after.find('\n').unwrap() + 1..];
    body[..body.find("\n```").unwrap()].to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A proxy process, stopped when dropped.
struct Proxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// nginx in the foreground, one process, with the documented `block`
    /// listening on `port` and passing to the relay on `relay`.
    async fn nginx(block: &str, port: u16, relay: u16) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let server = block
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{relay}"));
        let temp = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {temp}/nginx.pid;\nerror_log stderr;\nevents {{}}\n\
             http {{\n access_log off;\n client_body_temp_path {temp}/body;\n proxy_temp_path {temp}/proxy;\n\
             fastcgi_temp_path {temp}/fastcgi;\n uwsgi_temp_path {temp}/uwsgi;\n scgi_temp_path {temp}/scgi;\n{server}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &temp.to_string(), "-c", &format!("{temp}/nginx.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (Debian: apt-get install nginx)");
        Self::listening(child, port, dir).await
    }

    /// Caddy with the documented site block, served over https on `port`
    /// with its internal certificate authority, passing to `relay`.
    async fn caddy(block: &str, port: u16, relay: u16) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let site = block
            .replace("relay.example.com {", &format!("https://127.0.0.1:{port} {{\n    tls internal"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{relay}"));
        let conf = format!("{{\n    admin off\n    skip_install_trust\n}}\n{site}\n");
        std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.path().join("Caddyfile"))
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy (Debian: apt-get install caddy)");
        Self::listening(child, port, dir).await
    }

    async fn listening(mut child: Child, port: u16, dir: tempfile::TempDir) -> Proxy {
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the proxy exited: {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the proxy did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Proxy { child, _dir: dir }
    }
}

/// A relay with the console on its main listener (as behind a proxy),
/// `server` added to `[server]`, and destination `crm` (a webhook to
/// `hook`) for every event.
async fn relay_behind_proxy(server: &str, hook: &Receiver) -> (RelayProcess, ConfigDir) {
    let cfg = ConfigDir::new(&format!(
        "[admin]\ntokens = [\"{ADMIN}\"]\nauth_failures = \"3/min\"\n\
         [destinations.crm]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"crm\"]\n",
        hook.url("/crm")
    ));
    let text = std::fs::read_to_string(cfg.path()).unwrap().replace("[server]\n", &format!("[server]\n{server}\n"));
    std::fs::write(cfg.path(), text).unwrap();
    (RelayProcess::start(&cfg.path()).await, cfg)
}

/// A client that does not follow redirects, from `local` (a loopback
/// address of its own), trusting any certificate (Caddy's internal CA).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local.parse::<IpAddr>().unwrap())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// Signs in at `console` (".../console/") as a browser of `origin` would;
/// returns the answer.
async fn sign_in(client: &reqwest::Client, console: &str, origin: &str, token: &str) -> reqwest::Response {
    client
        .post(format!("{console}login"))
        .header("origin", origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// Posts a sample event through the proxy (`base`: where the relay is).
async fn post_event(client: &reqwest::Client, base: &str) -> serde_json::Value {
    let r = client
        .post(format!("{base}/webhooks/raaft"))
        .header("x-raaft-token", TOKEN)
        .body(sample("canceled.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Wrong tokens count against the client that sent them, not the proxy:
/// one client locked out, another signs in.
async fn wrong_tokens_count_per_client(console: &str, origin: &str) {
    let (mallory, alice) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(sign_in(&mallory, console, origin, "wrong-token").await.status().as_u16());
    }
    assert!(statuses.contains(&429), "past the allowance: {statuses:?}");
    let r = sign_in(&alice, console, origin, ADMIN).await;
    assert_eq!(r.status(), 303, "another client behind the same proxy is not locked out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(proxy_tests), ignore = "install Debian's nginx and caddy to run it")]
async fn the_console_signs_in_behind_nginx_with_its_default_proxy_settings() {
    let hook = Receiver::start(Answer::new(200, "ok")).await;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    // Without public_url, nginx's Host (the upstream's address) cannot be
    // told from another site: refused, and logged.
    let (relay, _cfg) = relay_behind_proxy("trusted_proxies = [\"127.0.0.1\"]", &hook).await;
    let proxy = Proxy::nginx(&documented("nginx"), port, relay.port).await;
    let console = format!("{origin}/console/");
    let r = sign_in(&client_from("127.0.0.3"), &console, &origin, ADMIN).await;
    assert_eq!(r.status(), 403);
    wait_until(Duration::from_secs(5), "the refusal to be logged", || {
        relay.logs().contains("cross-site request refused") && relay.logs().contains("public_url")
    })
    .await;
    drop((relay, proxy));

    let (relay, _cfg) =
        relay_behind_proxy(&format!("trusted_proxies = [\"127.0.0.1\"]\npublic_url = \"{origin}\""), &hook).await;
    let _proxy = Proxy::nginx(&documented("nginx"), port, relay.port).await;
    let client = client_from("127.0.0.3");
    let r = sign_in(&client, &console, &origin, ADMIN).await;
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/console/"));
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Path=/console;") && !cookie.contains("Secure"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = client.get(&console).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<base href=\"/console/\">"));

    assert_eq!(post_event(&client, &origin).await["deliveries"], 1);
    hook.wait_for(1, Duration::from_secs(10)).await;
    wrong_tokens_count_per_client(&console, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(proxy_tests), ignore = "install Debian's nginx and caddy to run it")]
#[cfg_attr(not(browser_tests), ignore = "install Debian's chromium and chromium-driver to run it")]
async fn in_a_browser_the_console_works_under_a_path_of_nginx() {
    let _one = ONE_AT_A_TIME.lock().await;
    let hook = Receiver::start(Answer::new(200, "ok")).await;
    hook.then(Answer::new(410, "gone"));
    let port = free_port();
    let site = format!("http://127.0.0.1:{port}/raaft");
    let (relay, _cfg) =
        relay_behind_proxy(&format!("trusted_proxies = [\"127.0.0.1\"]\npublic_url = \"{site}\""), &hook).await;
    let _proxy = Proxy::nginx(&documented("nginx-path"), port, relay.port).await;

    // Raaft posts under the path; the receiver refuses it for good.
    assert_eq!(post_event(&client_from("127.0.0.1"), &site).await["deliveries"], 1);
    hook.wait_for(1, Duration::from_secs(10)).await;

    let browser = Browser::start(1280, 900).await;
    browser.goto(&format!("{site}/console/")).await;
    browser.wait_for_url("/raaft/console/login").await;
    browser.sign_in(&format!("{site}/console/"), ADMIN).await;
    browser.click("nav a[href='deliveries']").await;
    browser.wait_for_text("h1", "Deliveries").await;
    browser.wait_for_url("/raaft/console/deliveries").await;
    browser.click("td a.mono").await;
    browser.wait_for_text("h1", "Delivery").await;
    browser.click("#replay").await;
    browser.wait_for_text(".flash", "Replay queued").await;
    browser.wait_for_url("/raaft/console/deliveries/").await;
    hook.wait_for(2, Duration::from_secs(10)).await;
    browser.click("form.signout button").await;
    browser.wait_for_url("/raaft/console/login").await;
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(proxy_tests), ignore = "install Debian's nginx and caddy to run it")]
async fn behind_caddy_over_https_the_forwarded_headers_say_how_the_browser_sees_it() {
    let hook = Receiver::start(Answer::new(200, "ok")).await;
    hook.then(Answer::new(410, "gone"));
    let port = free_port();
    let origin = format!("https://127.0.0.1:{port}");
    // No public_url: Caddy's X-Forwarded-Proto makes the cookie Secure.
    let (relay, cfg) = relay_behind_proxy("trusted_proxies = [\"127.0.0.1\"]", &hook).await;
    let _proxy = Proxy::caddy(&documented("caddy"), port, relay.port).await;
    let console = format!("{origin}/console/");
    let client = client_from("127.0.0.3");

    assert_eq!(post_event(&client, &origin).await["deliveries"], 1);
    hook.wait_for(1, Duration::from_secs(10)).await;

    let r = sign_in(&client, &console, &origin, ADMIN).await;
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/console/"));
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("; Path=/console;") && set.ends_with("; Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    // A replay from the console, through the proxy.
    let dead = deliveries_cli(&cfg.path(), &["list", "--status", "dead"]);
    let id = dead.split_whitespace().next().expect("the refused delivery is dead").to_owned();
    let page = client.get(format!("{console}deliveries/{id}")).header("cookie", &cookie).send().await.unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = client
        .post(format!("{console}deliveries/{id}/replay"))
        .header("cookie", &cookie)
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), format!("/console/deliveries/{id}?done=replayed"));
    hook.wait_for(2, Duration::from_secs(10)).await;

    // A form from another site is still refused.
    let r = client
        .post(format!("{console}logout"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    wrong_tokens_count_per_client(&console, &origin).await;
}
