//! What receivers answer, at its worst: a Retry-After far in the future,
//! a body that never ends, a redirect to another host.

use crate::helpers::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn webhook_config(url: &str, retry: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{url}\"\ntemplate = \"webhook/event.json.hbs\"\nrate_limit = \"none\"\n\
         [[routes]]\nname = \"all\"\nto = [\"hook\"]\n{retry}"
    ))
}

on_both_stores! {
    async fn a_retry_after_in_the_year_9999_waits_max_backoff_at_most(store) {
        let slack = Receiver::slack().await;
        slack.then(Answer::new(429, "rate_limited").header("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"));
        let cfg = ConfigDir::new(&format!(
            "[destinations.churn]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\nrate_limit = \"none\"\n\
             [[routes]]\nname = \"all\"\nto = [\"churn\"]\n\
             [retry]\nmax_attempts = 5\ninitial_backoff = \"10ms\"\nmax_backoff = \"1s\"\nattempt_timeout = \"2s\"\n",
            slack.url("/services/x")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        // The 429 is recorded (the pause is set before the record).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while app.stats().await.attempts < 1 {
            assert!(std::time::Instant::now() < deadline, "the 429 was not recorded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The retry and a second event both go out once max_backoff (1 s)
        // has passed: neither the delivery nor the destination is parked.
        app.post_event(sample("saved-discount.json")).await;
        let got = slack.wait_for(3, Duration::from_secs(10)).await;
        let waited = got[1].at - got[0].at;
        assert!(waited >= Duration::from_millis(900), "the 429 was not honoured at all: {waited:?}");
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.dead), (2, 0));
    }
}

/// A receiver that answers `500` and then streams `x` forever (or until the
/// client goes away); returns its URL and the bytes it managed to write.
async fn endless_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
                while socket.write_all(chunk.as_bytes()).await.is_ok() {
                    counter.fetch_add(64 * 1024, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    (url, written)
}

on_both_stores! {
    async fn a_reply_that_never_ends_is_read_up_to_the_cap_and_no_further(store) {
        let (url, written) = endless_receiver().await;
        let retry = "[retry]\nmax_attempts = 1\ninitial_backoff = \"10ms\"\nmax_backoff = \"1s\"\nattempt_timeout = \"10s\"\n";
        let app = spawn_app(webhook_config(&url, retry), &store).await;
        app.post_event(sample("canceled.json")).await;
        // Read whole, the body would hold the attempt until its timeout
        // (10 s) and fail as "timed out"; read bounded, the 500 is known at
        // once.
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.dead, 1);
        let reasons = app.dead_reasons().await;
        assert!(reasons[0].contains("HTTP 500: xxx"), "{reasons:?}");
        let sent = written.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent < 32 * 1024 * 1024, "the relay kept reading: {sent} bytes");
    }
}

on_both_stores! {
    async fn a_redirect_is_not_followed_and_says_where_it_pointed(store) {
        let elsewhere = Receiver::start(Answer::new(200, "")).await;
        let target = elsewhere.url("/collect");
        let hook = Receiver::start(Answer::new(302, "").header("location", &target)).await;
        let app = spawn_app(webhook_config(&hook.url("/hook"), ""), &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.dead, stats.attempts), (1, 1), "a redirect is permanent");
        let reasons = app.dead_reasons().await;
        assert!(reasons[0].contains("HTTP 302") && reasons[0].contains(&target), "{reasons:?}");
        assert_eq!(elsewhere.count(), 0, "the message went to the redirect's host");
    }
}
