//! E-mail to a real SMTP server: text and HTML parts, a Message-ID, safe
//! headers, and SMTP reply classes.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

fn config(smtp: &SmtpServer) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[destinations.founders]
kind = "email"
url = "smtp://127.0.0.1:{}"
from = "Raaft Relay <relay@example.com>"
to = ["founders@example.com", "Ops <ops@example.com>"]
subject = "{{{{customer.name}}}} canceled {{{{subscription.plan.name}}}}"
template = "email/canceled.hbs"
html_template = "email/canceled.html.hbs"
[[routes]]
name = "big-accounts"
when = 'outcome == "canceled" && subscription.plan.amount >= 100'
to = ["founders"]
"#,
        smtp.port
    ))
}

on_both_stores! {
    async fn big_cancellations_are_mailed_with_text_and_html(store) {
        let smtp = SmtpServer::start();
        let app = spawn_app(config(&smtp), &store).await;
        // 49 USD/month: not a big account.
        app.post_event(sample("canceled.json")).await;
        app.post_event(sample("canceled-annual-enterprise.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!(stats.delivered, 1);
        let mails = smtp.mails();
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.from, "relay@example.com");
        assert_eq!(mail.to, vec!["founders@example.com", "ops@example.com"]);
        let data = &mail.data;
        assert!(data.contains("Subject: Globex Corporation canceled Pro"), "{data}");
        assert!(data.contains("Message-ID: <"), "{data}");
        assert!(data.contains("multipart/alternative"), "{data}");
        let text_at = data.find("text/plain").expect("a text part");
        let html_at = data.find("text/html").expect("an HTML part");
        assert!(text_at < html_at, "text/plain first, HTML last");
        assert!(data.contains("$100.00/month"), "{data}");
    }
}

on_both_stores! {
    async fn line_breaks_in_customer_text_never_reach_the_headers(store) {
        let smtp = SmtpServer::start();
        let app = spawn_app(config(&smtp), &store).await;
        let mut event: Value = serde_json::from_str(&sample("canceled-annual-enterprise.json")).unwrap();
        event["customer"]["name"] = json!("Eve\r\nBcc: victim@example.com\r\nX-Evil: 1");
        event["feedback"] = json!("<script>alert(1)</script>");
        app.post_event(event.to_string()).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!(stats.delivered, 1);
        let data = &smtp.mails()[0].data;
        let headers = &data[..data.find("\r\n\r\n").unwrap()];
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:") || l.starts_with("X-Evil:")), "{headers}");
        assert!(!smtp.mails()[0].to.iter().any(|t| t.contains("victim")));
        let html = &data[data.find("text/html").unwrap()..];
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "HTML values are escaped: {html}");
    }
}

on_both_stores! {
    async fn smtp_5xx_is_permanent_and_4xx_is_retried(store) {
        let smtp = SmtpServer::start();
        smtp.then(550, "mailbox unavailable");
        let app = spawn_app(config(&smtp), &store).await;
        app.post_event(sample("canceled-annual-enterprise.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.dead, stats.attempts), (1, 1));
        assert!(app.dead_reasons().await[0].contains("550"), "{:?}", app.dead_reasons().await);

        let smtp = SmtpServer::start();
        smtp.then(451, "try again later");
        let app = spawn_app(config(&smtp), &store).await;
        app.post_event(sample("canceled-annual-enterprise.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 2));
        assert_eq!(smtp.mails().len(), 1);
        assert_eq!(smtp.attempts(), 2);
    }
}

on_both_stores! {
    async fn an_unreachable_mail_server_is_transient(store) {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let cfg = ConfigDir::new(&format!(
            "[destinations.m]\nkind = \"email\"\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"r@example.com\"\nto = [\"a@example.com\"]\ntemplate = \"email/canceled.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"m\"]\n"
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.dead, stats.attempts), (1, 4), "retried up to max_attempts");
    }
}
