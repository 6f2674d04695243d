//! The store commands (`deliveries`, `history`, `forget`, `digest`) as an
//! operator runs them on a server: with the store's settings and nothing
//! else (the destinations' secrets live in the service's environment), and
//! never changing the schema; `migrate` upgrades, and `serve` on
//! PostgreSQL does not upgrade beneath a replica of an older release.

use crate::helpers::*;
use crate::upgrade::release_store;
use raaft_relay::config::StoreLocation;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Runs the binary on `config` with `args`, in an environment without
/// the service's variables.
fn relay_cli(config: &Path, args: &[&str]) -> Output {
    relay_command().args(["--config", config.to_str().unwrap()]).args(args).output().unwrap()
}

/// The schema version the store is at, read directly.
async fn schema_version(location: &StoreLocation) -> i64 {
    let sql = match location {
        StoreLocation::Sqlite(_) => "SELECT user_version FROM pragma_user_version",
        StoreLocation::Postgres(_) => "SELECT COUNT(*) FROM _sqlx_migrations",
    };
    query_number(location, sql).await.unwrap()
}

#[test]
fn store_commands_run_without_the_destinations_secrets() {
    // A production config: every secret comes from the service's
    // environment, which an operator's shell does not have.
    let cfg = ConfigDir::new(
        "[destinations.churn]\nkind = \"slack\"\nurl = \"${SLACK_CHURN_URL}\"\ntemplate = \"slack/canceled.json.hbs\"\n\
         [destinations.crm]\nkind = \"webhook\"\nurl = \"${CRM_URL}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         headers = { Authorization = \"Bearer ${CRM_API_KEY}\" }\n\
         [destinations.founders]\nkind = \"email\"\nurl = \"smtp://relay:${SMTP_PASSWORD}@smtp.example.com:587?tls=required\"\n\
         template = \"email/canceled.hbs\"\nfrom = \"relay@example.com\"\nto = [\"founders@example.com\"]\n\
         [[routes]]\nname = \"all\"\nto = [\"churn\", \"crm\", \"founders\"]\n\
         [digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"churn\"]\ntemplate = \"slack/digest.json.hbs\"\n\
         [admin]\ntokens = [\"${ADMIN_TOKEN}\"]\n",
    );
    let check = relay_cli(&cfg.path(), &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", said(&check));
    for variable in ["SLACK_CHURN_URL", "CRM_URL", "CRM_API_KEY", "SMTP_PASSWORD", "ADMIN_TOKEN"] {
        assert!(said(&check).contains(variable), "check still names {variable}: {}", said(&check));
    }

    let created = relay_cli(&cfg.path(), &["migrate"]);
    assert!(created.status.success() && said(&created).contains("created the store at"), "{}", said(&created));
    for args in [
        &["deliveries", "list"][..],
        &["history", "cus_Q1w2E3r4"],
        &["forget", "ana@northwind.example"],
        &["digest", "preview", "daily", "--at", "2026-12-07T10:00:00Z"],
    ] {
        let out = relay_cli(&cfg.path(), args);
        assert!(out.status.success(), "{args:?}: {}", said(&out));
        assert!(!said(&out).contains("not set") && !said(&out).contains("invalid"), "{args:?}: {}", said(&out));
    }
    let preview = said(&relay_cli(&cfg.path(), &["digest", "preview", "daily", "--at", "2026-12-07T10:00:00Z"]));
    assert!(preview.contains("== destination \"churn\"") && preview.contains("\"blocks\""), "{preview}");

    // What the command does need is still checked, with its key.
    let text =
        std::fs::read_to_string(cfg.path()).unwrap().replace("[store]\n", "[store]\nretention = \"${RETAIN}\"\n");
    std::fs::write(cfg.path(), text).unwrap();
    let out = relay_cli(&cfg.path(), &["deliveries", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).contains("`store.retention`") && said(&out).contains("RETAIN"), "{}", said(&out));
    assert!(!said(&out).contains("SLACK_CHURN_URL"), "{}", said(&out));
}

#[test]
fn a_store_command_does_not_create_a_store_that_is_not_there() {
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    let out = relay_cli(&cfg.path(), &["deliveries", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("there is no store at") && said(&out).contains("data/relay.db"), "{}", said(&out));
    assert!(!cfg.dir.path().join("data").exists(), "nothing was created");
}

on_both_stores! {
    async fn store_commands_leave_an_older_store_as_it_is_and_migrate_upgrades_it(store) {
        let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n\
            [digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"out\"]\ntemplate = \"console/event.hbs\"\n");
        let location = release_store("console-release", &store, cfg.dir.path()).await;
        cfg.set_store(&store_url(&location));
        let before = count(&location).await;
        for args in [
            &["deliveries", "list"][..],
            &["deliveries", "replay", "--dead"],
            &["history", "cus_Q1w2E3r4"],
            &["forget", "cus_Q1w2E3r4"],
            &["digest", "preview", "daily"],
        ] {
            let out = relay_cli(&cfg.path(), args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", said(&out));
            assert!(
                said(&out).contains(
                    "the store is at version 4, this release needs version 5: run `raaft-relay migrate` \
                     (stop every replica first on PostgreSQL)"
                ),
                "{args:?}: {}",
                said(&out)
            );
        }
        assert_eq!(schema_version(&location).await, 4, "no command changed the schema");
        let after = count(&location).await;
        assert_eq!((after.pending, after.dead, after.events), (before.pending, before.dead, before.events));

        let migrated = relay_cli(&cfg.path(), &["migrate"]);
        assert!(migrated.status.success(), "{}", said(&migrated));
        assert!(said(&migrated).contains("from version 4 to 5"), "{}", said(&migrated));
        assert_eq!(schema_version(&location).await, 5);
        let listed = deliveries_cli(&cfg.path(), &["list"]);
        assert_eq!(listed.lines().count(), 9, "every delivery of the older release: {listed}");
        let again = relay_cli(&cfg.path(), &["migrate"]);
        assert!(said(&again).contains("is at version 5 already"), "{}", said(&again));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn serve_does_not_upgrade_postgres_beneath_a_replica_of_an_older_release() {
    use sqlx::Connection;
    let store = TestStore::postgres();
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    let location = release_store("console-release", &store, cfg.dir.path()).await;
    let url = store_url(&location);
    cfg.set_store(&url);
    // The older release connects without naming itself.
    let older_replica = sqlx::PgConnection::connect(&url).await.unwrap();
    let refused = tokio::task::spawn_blocking({
        let path = cfg.path();
        move || relay_cli(&path, &["serve"])
    })
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused)
            .contains("1 other connection(s) to the database look like raaft-relay replicas of an older release"),
        "{}",
        said(&refused)
    );
    assert_eq!(schema_version(&location).await, 4, "the schema was left as the older replica knows it");

    // Once it is stopped, serve upgrades and delivers.
    older_replica.close().await.unwrap();
    let relay = RelayProcess::start(&cfg.path()).await;
    assert_eq!(schema_version(&location).await, 5);
    assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
    let delivered = wait_for_counts(&location, Duration::from_secs(20), "the new event", |s| s.events == 4).await;
    assert_eq!(delivered.events, 4);
}

#[test]
fn the_version_names_the_release_and_its_commit() {
    let out = relay_command().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success());
    let expected = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_path(""))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(version, format!("raaft-relay {} (commit {expected})", env!("CARGO_PKG_VERSION")));
}
