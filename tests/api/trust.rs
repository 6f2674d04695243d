//! Outbound TLS as operators expect: the system's authorities, a
//! destination's own `ca_file`, and a refused certificate that says why and
//! is not retried. The authority is made in the test.

use crate::helpers::*;
use std::time::Duration;

const ONCE: &str =
    "[retry]\nmax_attempts = 3\ninitial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nattempt_timeout = \"5s\"\n";

/// A webhook destination at `url`, trusting `ca_file` when given.
fn webhook(url: &str, ca_file: Option<&str>) -> ConfigDir {
    let ca = ca_file.map(|f| format!("ca_file = \"{f}\"\n")).unwrap_or_default();
    ConfigDir::new(&format!(
        "[destinations.internal]\nkind = \"webhook\"\nurl = \"{url}\"\ntemplate = \"webhook/event.json.hbs\"\n{ca}\
         [[routes]]\nname = \"all\"\nto = [\"internal\"]\n{ONCE}"
    ))
}

#[tokio::test]
async fn a_destination_trusts_its_ca_file_and_a_refused_certificate_is_permanent_and_explained() {
    let ca = TestCa::new();
    let cases = [
        ("trusted", ca.issue(&["localhost"]), Some("ca.pem"), None),
        ("not trusted", ca.issue(&["localhost"]), None, Some("unknown issuer")),
        ("expired", ca.issue_expired(&["localhost"]), Some("ca.pem"), Some("expired")),
        ("wrong name", ca.issue(&["elsewhere.example"]), Some("ca.pem"), Some("wrong name")),
    ];
    for (case, issued, ca_file, refused) in cases {
        let hook = Receiver::start_tls(Answer::new(200, ""), &issued.cert, &issued.key).await;
        let cfg = webhook(&hook.https_url("localhost", "/hook"), ca_file);
        std::fs::write(cfg.dir.path().join("ca.pem"), ca.pem()).unwrap();
        let app = spawn_app(cfg, &TestStore::Sqlite).await;
        assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        match refused {
            None => {
                assert_eq!((stats.delivered, stats.attempts), (1, 1), "{case}");
                assert_eq!(hook.count(), 1, "{case}");
            }
            Some(why) => {
                assert_eq!((stats.dead, stats.attempts), (1, 1), "{case}: a certificate problem is not retried");
                let reasons = app.dead_reasons().await;
                let expected = format!("certificate of \"localhost\" not accepted: {why}");
                assert!(reasons[0].contains(&expected), "{case}: {reasons:?}");
                assert_eq!(hook.count(), 0, "{case}");
            }
        }
    }
}

#[tokio::test]
async fn the_systems_trust_store_is_used() {
    // rustls-native-certs reads SSL_CERT_FILE as OpenSSL does: the relay
    // trusts what the machine trusts, without a ca_file.
    let ca = TestCa::new();
    let issued = ca.issue(&["localhost"]);
    let hook = Receiver::start_tls(Answer::new(200, ""), &issued.cert, &issued.key).await;
    let cfg = webhook(&hook.https_url("localhost", "/hook"), None);
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let bundle = cfg.dir.path().join("system-bundle.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();
    let mut command = relay_command();
    command.env("SSL_CERT_FILE", &bundle);
    let relay = RelayProcess::start_with(command, &cfg.path()).await;
    assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
    hook.wait_for(1, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn smtp_starttls_with_a_private_authority() {
    let ca = TestCa::new();
    let issued = ca.issue(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, chain) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert, &issued.cert).unwrap();
    std::fs::write(&key, &issued.key).unwrap();
    std::fs::write(&chain, ca.pem()).unwrap();
    for trusted in [true, false] {
        let smtp = SmtpServer::start_starttls(&cert, &key, &chain);
        let ca_line = if trusted { "ca_file = \"ca.pem\"\n" } else { "" };
        let cfg = ConfigDir::new(&format!(
            "[destinations.founders]\nkind = \"email\"\nurl = \"smtp://127.0.0.1:{}?tls=required\"\n\
             from = \"relay@example.com\"\nto = [\"founders@example.com\"]\ntemplate = \"email/canceled.hbs\"\n{ca_line}\
             [[routes]]\nname = \"all\"\nto = [\"founders\"]\n{ONCE}",
            smtp.port
        ));
        std::fs::write(cfg.dir.path().join("ca.pem"), ca.pem()).unwrap();
        let app = spawn_app(cfg, &TestStore::Sqlite).await;
        assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        if trusted {
            assert_eq!((stats.delivered, stats.attempts), (1, 1));
            assert_eq!(smtp.mails().len(), 1);
        } else {
            assert_eq!((stats.dead, stats.attempts), (1, 1), "a certificate problem is not retried");
            let reasons = app.dead_reasons().await;
            assert!(reasons[0].contains("certificate of \"127.0.0.1\" not accepted: unknown issuer"), "{reasons:?}");
            assert!(smtp.mails().is_empty());
        }
    }
}

#[test]
fn a_ca_file_that_cannot_be_used_is_a_config_problem_naming_its_key() {
    let cfg = webhook("https://localhost:1/hook", Some("missing.pem"));
    let problems = raaft_relay::LoadedConfig::load(&cfg.path()).unwrap_err().to_string();
    assert!(problems.contains("destinations.internal.ca_file") && problems.contains("missing.pem"), "{problems}");
    let cfg = webhook("https://localhost:1/hook", Some("junk.pem"));
    std::fs::write(cfg.dir.path().join("junk.pem"), "not a certificate").unwrap();
    let problems = raaft_relay::LoadedConfig::load(&cfg.path()).unwrap_err().to_string();
    assert!(problems.contains("destinations.internal.ca_file") && problems.contains("junk.pem"), "{problems}");
}
