//! Render and wrap: any event through every shipped template and the
//! channel's wrapping and limits. A payload or an error naming the
//! template, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raaft_relay::event::Event;
use raaft_relay::LoadedConfig;
use std::sync::OnceLock;

fn loaded() -> &'static LoadedConfig {
    static LOADED: OnceLock<(tempfile::TempDir, LoadedConfig)> = OnceLock::new();
    &LOADED
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
            let mut config = format!(
                "templates_dir = \"{}\"\n[raaft]\ntokens = [\"t\"]\n[store]\nurl = \"sqlite://{}/f.db\"\n",
                templates.display(),
                dir.path().display()
            );
            for (name, kind, url, template) in [
                ("slack_text", "slack", "https://hooks.slack.com/services/x", "slack/saved.hbs"),
                ("slack_blocks", "slack", "https://hooks.slack.com/services/x", "slack/canceled.json.hbs"),
                ("discord_text", "discord", "https://discord.com/api/webhooks/1/x", "discord/canceled.hbs"),
                ("discord_embeds", "discord", "https://discord.com/api/webhooks/1/x", "discord/saved.json.hbs"),
                ("hook", "webhook", "https://example.com/hook", "webhook/event.json.hbs"),
            ] {
                config.push_str(&format!(
                    "[destinations.{name}]\nkind = \"{kind}\"\nurl = \"{url}\"\ntemplate = \"{template}\"\n"
                ));
            }
            config.push_str("[destinations.console]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
            config.push_str("[[routes]]\nname = \"all\"\nto = [\"slack_text\", \"slack_blocks\", \"discord_text\", \"discord_embeds\", \"hook\", \"console\"]\n");
            let path = dir.path().join("relay.toml");
            std::fs::write(&path, config).unwrap();
            let loaded = LoadedConfig::load(&path).unwrap_or_else(|p| panic!("{p}"));
            (dir, loaded)
        })
        .1
}

fuzz_target!(|body: &[u8]| {
    let Ok(event) = Event::parse(body) else { return };
    for dest in loaded().destinations() {
        if let Err(e) = dest.payload(&event.raw) {
            assert!(dest.templates().any(|t| t.name == e.template), "{e}");
        }
    }
});
