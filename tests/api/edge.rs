//! The HTTP edge against hostile clients, over raw sockets: slow headers
//! and slow bodies are cut off, thousands of idle connections do not lock
//! out a client with an event to deliver, and malformed bodies get a 400
//! (or a closed connection) while the relay goes on serving.

use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A console destination with `[server]` settings added.
fn edge_config(server: &str) -> ConfigDir {
    let config = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n",
    );
    let text = std::fs::read_to_string(config.path())
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:0\"\n{server}"));
    std::fs::write(config.path(), text).unwrap();
    config
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the peer closes the connection (or `deadline` passes, which
/// fails the test); returns what arrived.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> String {
    read_until(stream, deadline, |_| false).await
}

/// Reads one answer's head (within 5 s, or the test fails).
async fn read_until_closed_or_answered(stream: &mut TcpStream) -> String {
    read_until(stream, Duration::from_secs(5), |got| got.contains("\r\n\r\n")).await
}

/// Reads until `done` holds for what arrived or the peer closes.
async fn read_until(stream: &mut TcpStream, deadline: Duration, done: impl Fn(&str) -> bool) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 4096];
        while !done(&String::from_utf8_lossy(&got)) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer and no close within {deadline:?}");
    String::from_utf8_lossy(&got).into_owned()
}

/// A raw POST of `body` to the webhook, with the right token.
fn raw_post(body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /webhooks/raaft HTTP/1.1\r\nhost: relay\r\nx-raaft-token: {TOKEN}\r\ncontent-length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test]
async fn headers_that_never_finish_get_the_connection_closed() {
    let app = spawn_app(edge_config("header_timeout = \"1s\""), &TestStore::Sqlite).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"POST /webhooks/raaft HTTP/1.1\r\nhost: relay\r\n").await.unwrap();
    let started = Instant::now();
    read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());
    assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_and_a_closed_connection() {
    let app = spawn_app(edge_config("body_timeout = \"1s\""), &TestStore::Sqlite).await;
    let mut slow = connect(&app).await;
    let full = raw_post(sample("canceled.json").as_bytes(), "content-type: application/json\r\n");
    // Headers and half the body, then silence.
    slow.write_all(&full[..full.len() - 200]).await.unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body not received within 1 second"), "{answer}");
    assert_eq!(app.stats().await.events, 0);
    assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
}

#[tokio::test]
async fn thousands_of_idle_connections_do_not_lock_out_a_sender() {
    // Fewer slots than idle sockets: the cap is reached and must make room.
    let app = spawn_app(edge_config("max_connections = 256"), &TestStore::Sqlite).await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(connect(&app).await);
    }
    let response = tokio::time::timeout(Duration::from_secs(5), app.post_event(sample("canceled.json")))
        .await
        .expect("a sender got no answer while idle connections held the relay");
    assert_eq!(response.status(), 200);
    // A connection with a request under way is never the one closed.
    let mut busy = connect(&app).await;
    busy.write_all(&raw_post(sample("saved-discount.json").as_bytes(), "")).await.unwrap();
    let answer = read_until_closed_or_answered(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
}

#[tokio::test]
async fn malformed_bodies_get_400_and_the_relay_keeps_serving() {
    let app = spawn_app(edge_config(""), &TestStore::Sqlite).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deeply nested arrays", nested.into_bytes()),
        ("deeply nested objects", deep_object.into_bytes()),
        ("invalid UTF-8", b"{\"outcome\": \"canceled\xff\xfe\"}".to_vec()),
        ("a NUL byte", b"{\"outcome\": \"canceled\"}\0".to_vec()),
        ("a NUL byte inside a string", b"{\"outcome\": \"can\0celed\"}".to_vec()),
        ("truncated JSON", b"{\"outcome\": \"canc".to_vec()),
        ("not an object", b"[1, 2, 3]".to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, body) in cases {
        let response = app.post_event(body).await;
        assert_eq!(response.status(), 400, "{what}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {answer}");
    }
    // Duplicate keys are JSON: the last one counts, as in JavaScript's
    // JSON.parse (what Raaft's side speaks), so this is a saved event.
    let response = app.post_event(r#"{"outcome": "canceled", "outcome": "saved", "flowId": "dup"}"#).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.metrics.events.with_label_values(&["saved", "accepted"]).get(), 1);
    assert_eq!(app.metrics.events.with_label_values(&["canceled", "accepted"]).get(), 0);
    // A number no float can hold is not something JSON.stringify writes:
    // refused with the reason, like any malformed body.
    for number in ["1e999999".to_owned(), "9".repeat(5000)] {
        let response = app.post_event(format!(r#"{{"outcome": "canceled", "n": {number}}}"#)).await;
        assert_eq!(response.status(), 400, "{number:.20}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap().contains("number out of range"), "{answer}");
    }

    // A body shorter than its Content-Length: the relay waits for the rest
    // (up to body_timeout); a client that closes gets nothing stored.
    let mut short = connect(&app).await;
    let full = raw_post(b"{\"outcome\": \"canceled\", \"flowId\": \"short\"}", "");
    short.write_all(&full[..full.len() - 10]).await.unwrap();
    short.shutdown().await.unwrap();
    read_until_closed(&mut short, Duration::from_secs(5)).await;
    // A body longer than its Content-Length: the extra bytes are the next
    // request, which is garbage, answered 400 and closed.
    let mut long = connect(&app).await;
    let mut request = raw_post(b"{\"outcome\": \"canceled\", \"flowId\": \"long\"}", "");
    request.extend_from_slice(b"trailing garbage that is no request\r\n\r\n");
    long.write_all(&request).await.unwrap();
    let answer = read_until_closed(&mut long, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("HTTP/1.1 400"), "the garbage after the body was not refused: {answer}");

    // Content-Type is not required to be exactly application/json.
    for content_type in ["application/json; charset=utf-8", "text/plain", ""] {
        let mut stream = connect(&app).await;
        let header = if content_type.is_empty() { String::new() } else { format!("content-type: {content_type}\r\n") };
        let body = format!(r#"{{"outcome": "canceled", "flowId": "ct-{content_type}"}}"#);
        stream.write_all(&raw_post(body.as_bytes(), &header)).await.unwrap();
        let answer = read_until_closed_or_answered(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "content-type {content_type:?}: {answer}");
    }
    assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
    assert!(app.stats().await.events >= 5);
}

/// A POST with `token`, claiming to come from `forwarded_for`.
async fn post_from(app: &TestApp, token: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/raaft", app.address))
        .header("x-raaft-token", token)
        .body(sample("canceled.json"));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn past_its_allowance_an_address_gets_429_whatever_token_it_sends_until_it_refills() {
    // Three failures at once, then one more every 3 s (long enough for the
    // next requests to land inside the block on a loaded machine).
    let app = spawn_app(edge_config("auth_failures = \"3/9s\""), &TestStore::Sqlite).await;
    for _ in 0..3 {
        assert_eq!(post_from(&app, "guess", None).await.status(), 401);
    }
    let limited = post_from(&app, "guess", None).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((2..=3).contains(&retry_after), "{retry_after}");
    let limited_body = limited.text().await.unwrap();
    assert!(limited_body.contains("too many failed authentications"), "{limited_body}");
    // The right token gets the same answer: a guess cannot tell right from
    // wrong while the address is limited, and nothing is stored.
    let right = post_from(&app, TOKEN, None).await;
    assert_eq!(right.status(), 429);
    assert!(right.text().await.unwrap().contains("too many failed authentications"));
    assert_eq!(app.stats().await.events, 0);
    // The allowance refills: the right token is accepted again (Raaft
    // retries what was not answered 200), and a wrong one is a plain 401.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match post_from(&app, TOKEN, None).await.status().as_u16() {
            200 => break,
            429 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("still limited after 10 s (last answer {other})"),
        }
    }
    assert_eq!(app.stats().await.events, 1);
    assert_eq!(post_from(&app, "guess", None).await.status(), 401);
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let app =
        spawn_app(edge_config("auth_failures = \"2/min\"\ntrusted_proxies = [\"127.0.0.1\"]"), &TestStore::Sqlite)
            .await;
    assert_eq!(post_from(&app, "guess", Some("2001:db8:aa:1::1")).await.status(), 401);
    assert_eq!(post_from(&app, "guess", Some("2001:db8:aa:1::2")).await.status(), 401);
    // Every address of the /64 shares the allowance.
    assert_eq!(post_from(&app, "guess", Some("2001:db8:aa:1:ffff:1:2:3")).await.status(), 429);
    assert_eq!(post_from(&app, TOKEN, Some("2001:db8:aa:1::99")).await.status(), 429);
    // The next /64 is another client.
    assert_eq!(post_from(&app, "guess", Some("2001:db8:aa:2::1")).await.status(), 401);
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let behind_proxy =
        spawn_app(edge_config("auth_failures = \"2/min\"\ntrusted_proxies = [\"127.0.0.1\"]"), &TestStore::Sqlite)
            .await;
    for _ in 0..2 {
        assert_eq!(post_from(&behind_proxy, "guess", Some("198.51.100.1")).await.status(), 401);
    }
    assert_eq!(post_from(&behind_proxy, "guess", Some("198.51.100.1")).await.status(), 429);
    // Another client behind the same proxy has its own allowance.
    assert_eq!(post_from(&behind_proxy, "guess", Some("198.51.100.2")).await.status(), 401);

    // Without the proxy trusted, the header is the client's own claim and
    // changing it does not buy new attempts.
    let direct = spawn_app(edge_config("auth_failures = \"2/min\""), &TestStore::Sqlite).await;
    for n in 0..2 {
        assert_eq!(post_from(&direct, "guess", Some(&format!("198.51.100.{n}"))).await.status(), 401);
    }
    assert_eq!(post_from(&direct, "guess", Some("198.51.100.9")).await.status(), 429);
}

/// A self-signed certificate for `localhost`, written beside the config.
fn self_signed(config: &ConfigDir) -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(config.dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(config.dir.path().join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    certified.cert.pem()
}

#[tokio::test]
async fn the_relay_terminates_tls_with_the_configured_certificate() {
    let config = edge_config("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"");
    let cert = self_signed(&config);
    let app = spawn_app(config, &TestStore::Sqlite).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = client
        .post(format!("https://localhost:{port}/webhooks/raaft"))
        .header("x-raaft-token", TOKEN)
        .body(sample("canceled.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.stats().await.events, 1);
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .post(format!("{}/webhooks/raaft", app.address))
        .header("x-raaft-token", TOKEN)
        .body(sample("saved-discount.json"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // A client that does not trust the certificate cannot connect.
    let error = reqwest::Client::new()
        .post(format!("https://localhost:{port}/webhooks/raaft"))
        .header("x-raaft-token", TOKEN)
        .body(sample("saved-discount.json"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error}");
    assert_eq!(app.stats().await.events, 1);
}

#[tokio::test]
async fn a_certificate_that_cannot_be_used_is_a_config_problem() {
    let config = edge_config("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"");
    self_signed(&config);
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(config.dir.path().join("key.pem"), other.key_pair.serialize_pem()).unwrap();
    let problems = raaft_relay::LoadedConfig::load(&config.path()).unwrap_err().to_string();
    assert!(problems.contains("server.tls_cert") && problems.contains("do not go together"), "{problems}");
    std::fs::write(config.dir.path().join("key.pem"), "not a key").unwrap();
    let problems = raaft_relay::LoadedConfig::load(&config.path()).unwrap_err().to_string();
    assert!(problems.contains("server.tls_key") && problems.contains("key.pem"), "{problems}");
    let only_cert = edge_config("tls_cert = \"cert.pem\"");
    let problems = raaft_relay::LoadedConfig::load(&only_cert.path()).unwrap_err().to_string();
    assert!(problems.contains("needs server.tls_key"), "{problems}");
}

#[tokio::test]
async fn the_admin_api_has_its_own_allowance_and_logs_a_guesser_once() {
    let cfg = edge_config("");
    let text = std::fs::read_to_string(cfg.path()).unwrap()
        + "[admin]\ntokens = [\"0123456789abcdef-admin\"]\nauth_failures = \"3/min\"\n";
    std::fs::write(cfg.path(), text).unwrap();
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let relay = RelayProcess::start(&cfg.path()).await;
    let client = reqwest::Client::new();
    let get = |token: &'static str| {
        client
            .get(format!("http://127.0.0.1:{}/admin/deliveries", relay.port))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get("guess").await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    // Past the allowance the right token waits too.
    assert_eq!(get("0123456789abcdef-admin").await.unwrap().status(), 429);
    // The ingest allowance is not the admin one.
    assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
    wait_until(Duration::from_secs(5), "the rejection to be logged", || {
        relay.logs().contains("rejected admin request")
    })
    .await;
    let logs = relay.logs();
    assert_eq!(logs.matches("rejected admin request").count(), 1, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_door_says_which_token_it_wants_and_a_guesser_is_logged_once_a_minute() {
    let cfg = edge_config("");
    let text = std::fs::read_to_string(cfg.path()).unwrap() + "[admin]\ntokens = [\"0123456789abcdef-admin\"]\n";
    std::fs::write(cfg.path(), text).unwrap();
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let relay = RelayProcess::start(&cfg.path()).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .post(format!("http://127.0.0.1:{}/webhooks/raaft", relay.port))
            .header("x-raaft-token", "guess")
            .body(sample("canceled.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("www-authenticate").is_none());
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "missing or invalid x-raaft-token");
    }
    let r = client.get(format!("http://127.0.0.1:{}/admin/deliveries", relay.port)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"raaft-relay\"");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "missing or invalid bearer token");
    wait_until(Duration::from_secs(5), "the rejections to be logged", || {
        let logs = relay.logs();
        logs.contains("rejected webhook") && logs.contains("rejected admin request")
    })
    .await;
    let logs = relay.logs();
    assert_eq!(logs.matches("rejected webhook: wrong token").count(), 1, "{logs}");
    assert_eq!(logs.matches("rejected admin request: missing token").count(), 1, "{logs}");
}

/// A client that trusts only `cert` (PEM) and sends to `localhost`.
fn trusting(cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn tls_post(client: &reqwest::Client, port: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
    client
        .post(format!("https://localhost:{port}/webhooks/raaft"))
        .header("x-raaft-token", TOKEN)
        .body(sample("canceled.json"))
        .send()
        .await
        .map(|r| r.status())
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_pair_keeps_the_old_one() {
    let config = edge_config("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"");
    let first = self_signed(&config);
    let dir = config.dir.path().to_path_buf();
    let app = spawn_app(config, &TestStore::Sqlite).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    assert_eq!(tls_post(&trusting(&first), &port).await.unwrap(), 200);

    // Renewal: new files in place, as certbot or a secret manager writes them.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("key.pem.new"), renewed.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem.new"), renewed.cert.pem()).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    let second = trusting(&renewed.cert.pem());
    let deadline = Instant::now() + Duration::from_secs(5);
    while tls_post(&second, &port).await.is_err() {
        assert!(Instant::now() < deadline, "the renewed certificate is not served after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tls_post(&trusting(&first), &port).await.is_err(), "the old certificate is still served");

    // A broken pair (a key that does not belong to the certificate): the
    // reload fails, saying why, and the renewed certificate stays.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("key.pem"), other.key_pair.serialize_pem()).unwrap();
    let errors = || app.metrics.reloads.with_label_values(&["error"]).get();
    wait_until(Duration::from_secs(5), "the failed reload", || errors() >= 1).await;
    assert_eq!(tls_post(&second, &port).await.unwrap(), 200);
}

/// A config with the console on the listener Raaft reaches (the default
/// layout: `[admin] tokens`, no `[admin] listen`), `server` in `[server]`
/// and the local address trusted as a proxy, so each test client can name
/// itself in `X-Forwarded-For`.
fn console_edge_config(server: &str) -> ConfigDir {
    let config = ConfigDir::new(
        "[admin]\ntokens = [\"admin-token-4b1d\"]\n\
         [destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n",
    );
    let text = std::fs::read_to_string(config.path()).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n{server}"),
    );
    std::fs::write(config.path(), text).unwrap();
    config
}

/// Opens a connection that sends a sign-in's headers, announcing a body of
/// 1000 bytes, and never the body.
async fn stalled_sign_in(app: &TestApp, client: &str) -> TcpStream {
    let mut s = connect(app).await;
    let head = format!(
        "POST /console/login HTTP/1.1\r\nhost: relay\r\nx-forwarded-for: {client}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_bodies_that_never_come_cannot_starve_ingest() {
    let app = spawn_app(console_edge_config("max_connections = 8\nbody_timeout = \"2s\""), &TestStore::Sqlite).await;
    let mut stalled = Vec::new();
    for _ in 0..16 {
        stalled.push(stalled_sign_in(&app, "203.0.113.9").await);
    }
    for i in 0..10 {
        let answer = tokio::time::timeout(Duration::from_secs(5), app.post_event(sample("canceled.json")))
            .await
            .unwrap_or_else(|_| panic!("event {i} got no answer while sign-ins held the connections"));
        assert_eq!(answer.status(), 200);
    }
    // Past its share the client was answered at once; the rest at the
    // body deadline; every connection is closed.
    let mut statuses = Vec::new();
    for mut s in stalled {
        let answer = read_until_closed(&mut s, Duration::from_secs(10)).await;
        statuses.push(answer.get(9..12).unwrap_or_default().to_owned());
    }
    let refused = statuses.iter().filter(|s| *s == "429").count();
    let timed_out = statuses.iter().filter(|s| *s == "408").count();
    assert_eq!((refused, timed_out), (14, 2), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_connection_just_accepted_is_never_the_one_evicted() {
    let app = spawn_app(console_edge_config("max_connections = 8\nbody_timeout = \"3s\""), &TestStore::Sqlite).await;
    // Seven connections with a body under way (two per client, their
    // share), then a fresh one that has sent nothing yet.
    let mut busy = Vec::new();
    for client in ["198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.2", "198.51.100.3"] {
        busy.push(stalled_sign_in(&app, client).await);
    }
    for client in ["198.51.100.3", "198.51.100.4"] {
        busy.push(stalled_sign_in(&app, client).await);
    }
    let mut fresh = connect(&app).await;
    // Another client arrives at the cap. The relay must not make room by
    // closing the fresh connection, which is about to send its request:
    // give it the time it takes to accept both.
    let _next = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    fresh.write_all(&raw_post(sample("canceled.json").as_bytes(), "")).await.unwrap();
    let answer = read_until_closed_or_answered(&mut fresh).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "the fresh connection was closed: {answer:?}");
    drop(busy);
}
