//! `check` catches what people get wrong, once each, in plain words: the
//! mistakes a new user made that `check` passed and the relay then quietly
//! never matched, never filled or never started with.

use crate::helpers::*;

/// `check` on `cfg`: its standard output, its standard error (the path of
/// the config folder shown as `DIR`) and whether it passed.
fn check(cfg: &ConfigDir, env: &[(&str, &str)]) -> (String, String, bool) {
    let mut command = relay_command();
    command.args(["--config", cfg.path().to_str().unwrap(), "check"]);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let dir = cfg.dir.path().display().to_string();
    let text = |b: &[u8]| String::from_utf8_lossy(b).replace(&dir, "DIR");
    (text(&out.stdout), text(&out.stderr), out.status.success())
}

/// The line of `cfg`'s config that starts with `start`.
fn line_of(cfg: &ConfigDir, start: &str) -> usize {
    let text = std::fs::read_to_string(cfg.path()).unwrap();
    text.lines().position(|l| l.starts_with(start)).unwrap_or_else(|| panic!("{start:?} in:\n{text}")) + 1
}

const CONSOLE: &str = "[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n";

#[test]
fn a_listen_address_without_a_host_is_refused_with_the_fix() {
    let cfg = ConfigDir::new(CONSOLE);
    std::fs::write(cfg.path(), std::fs::read_to_string(cfg.path()).unwrap().replace("\"127.0.0.1:0\"", "\"19202\""))
        .unwrap();
    let (_, stderr, ok) = check(&cfg, &[]);
    assert!(!ok);
    let line = line_of(&cfg, "listen =");
    assert_eq!(
        stderr,
        format!(
            "DIR/relay.toml:{line}: `server.listen`: \"19202\" is not an address to listen on: write host:port, \
             e.g. \"127.0.0.1:19202\" (this machine only) or \"0.0.0.0:19202\" (every interface)\nDIR/relay.toml: 1 problem(s) found\n"
        )
    );
}

#[test]
fn one_mistake_is_one_problem() {
    // A variable not set: said once, not again as an invalid URL.
    let cfg = ConfigDir::new(&format!(
        "{CONSOLE}[destinations.churn]\nkind = \"slack\"\nurl = \"${{SLACK_CHURN_URL}}\"\ntemplate = \"slack/canceled.json.hbs\"\n\
         [[routes]]\nname = \"churn\"\nto = [\"churn\", \"out\"]\n"
    ));
    let (_, stderr, _) = check(&cfg, &[]);
    let line = line_of(&cfg, "url = \"${SLACK_CHURN_URL}\"");
    assert_eq!(
        stderr,
        format!(
            "DIR/relay.toml:{line}: `destinations.churn.url`: environment variable `SLACK_CHURN_URL` is not set \
             (write ${{SLACK_CHURN_URL:-default}} to give a default)\nDIR/relay.toml: 1 problem(s) found\n"
        )
    );

    // A mistyped kind: the destination is wrong, not every route naming it.
    let cfg = ConfigDir::new(&format!(
        "{CONSOLE}[destinations.wins]\nkind = \"discrod\"\nurl = \"https://discord.com/api/webhooks/1/x\"\ntemplate = \"discord/saved.json.hbs\"\n\
         [[routes]]\nname = \"saves\"\nwhen = {{ outcome = \"saved\" }}\nto = [\"wins\"]\n\
         [[routes]]\nname = \"all\"\nto = [\"wins\", \"out\"]\n"
    ));
    let (_, stderr, _) = check(&cfg, &[]);
    let line = line_of(&cfg, "kind = \"discrod\"");
    assert_eq!(
        stderr,
        format!(
            "DIR/relay.toml:{line}: `destinations.wins.kind`: destination \"wins\": unknown kind \"discrod\" \
             (slack, discord, email, webhook or console)\nDIR/relay.toml: 1 problem(s) found\n"
        )
    );

    // An unknown helper fails on every sample: one problem, with the count.
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"shout.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n",
    );
    cfg.write_template("shout.hbs", "Hi {{shout customer.name}}\n");
    let (_, stderr, ok) = check(&cfg, &[]);
    assert!(!ok);
    assert_eq!(
        stderr,
        "DIR/templates/shout.hbs: destination \"out\", every sample event (8): line 1: unknown helper \"shout\" \
         (the helpers are money, monthly, interval, date, html_to_text, truncate, default, json, percent, if, unless, \
         each, with, lookup, log, eq, ne, gt, gte, lt, lte, and, or, not, len; see docs/templates.md)\n\
         DIR/relay.toml: 1 problem(s) found\n"
    );
}

#[test]
fn a_block_never_closed_is_named_with_the_line_it_opened_on() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"open.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n",
    );
    cfg.write_template("open.hbs", "Customer:\n{{customer.name}}\n{{#if feedback}}\nFeedback: {{feedback}}\n");
    let (_, stderr, _) = check(&cfg, &[]);
    assert_eq!(
        stderr,
        "DIR/templates/open.hbs:3: invalid template: `{{#if}}` opened at line 3, column 1 is never closed (add `{{/if}}`)\n\
         DIR/relay.toml: 1 problem(s) found\n"
    );
    cfg.write_template("open.hbs", "{{#each path}}\n{{#if stepType}}{{stepType}}{{/each}}\n{{/if}}\n");
    let (_, stderr, _) = check(&cfg, &[]);
    assert_eq!(
        stderr,
        "DIR/templates/open.hbs:2: invalid template: `{{/each}}` at line 2, column 29 closes `{{#if}}`, opened at line 2, \
         column 1: close it with `{{/if}}` first\nDIR/relay.toml: 1 problem(s) found\n"
    );
}

#[test]
fn what_would_never_match_or_never_fill_is_found() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"typo.hbs\"\n\
         [[routes]]\nname = \"saves\"\nwhen = { outcomes = \"saved\" }\nto = [\"out\"]\n\
         [[routes]]\nname = \"several\"\nwhen = { outcome = \"saved,canceled\" }\nto = [\"out\"]\n\
         [[routes]]\nname = \"ok\"\nwhen = { outcome = [\"saved\", \"canceled\"] }\nto = [\"out\"]\n\
         [[routes]]\nname = \"amount\"\nwhen = { subscription.plan.amount = \"49\" }\nto = [\"out\"]\n",
    );
    cfg.write_template("typo.hbs", "{{customer.nmae}} left\n{{#each path}}{{stepType}} {{type}}{{/each}}\n");
    let (stdout, stderr, ok) = check(&cfg, &[]);
    assert!(ok, "warnings only: {stdout}{stderr}");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning: ") && (l.contains("route \"") || l.contains("typo.hbs")))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: DIR/templates/typo.hbs:1: destination \"out\": {{customer.nmae}} is not a field of any sample event: it renders empty (did you mean customer.name?)",
            "warning: DIR/templates/typo.hbs:2: destination \"out\": {{type}} is not a field of any sample event: it renders empty",
            "warning: route \"saves\": `outcomes` is not a field of any sample event (did you mean `outcome`?)",
            "warning: route \"several\": `outcome = \"saved,canceled\"` compares with that one value; for any of several, write a list: outcome = [\"saved\", \"canceled\"]",
            "warning: route \"amount\": `subscription.plan.amount` is a number in every sample event, and the condition compares it with a string, which never matches: write subscription.plan.amount = 49",
            "warning: route \"saves\" matches none of the 8 sample events in config/events/: `outcomes = \"saved\"` did not hold (saw missing)",
            "warning: route \"several\" matches none of the 8 sample events in config/events/: `outcome = \"saved,canceled\"` did not hold (saw \"canceled\")",
            "warning: route \"amount\" matches none of the 8 sample events in config/events/: `subscription.plan.amount = \"49\"` did not hold (saw 49)",
        ]
    );

    // CEL reading a word as a field: it can never hold.
    let cfg = ConfigDir::new(&format!(
        "{CONSOLE}[[routes]]\nname = \"cancels\"\nwhen = 'outcome == canceled'\nto = [\"out\"]\n\
         [[routes]]\nname = \"typo\"\nwhen = 'custmer.email != \"\"'\nto = [\"out\"]\n\
         [[routes]]\nname = \"offers\"\nwhen = 'path.exists(p, p.stepType == \"offer\")'\nto = [\"out\"]\n"
    ));
    let (_, stderr, ok) = check(&cfg, &[]);
    assert!(!ok);
    let (cancels, typo) = (line_of(&cfg, "name = \"cancels\"") - 1, line_of(&cfg, "name = \"typo\"") - 1);
    assert_eq!(
        stderr,
        format!(
            "DIR/relay.toml:{cancels}: `routes[0].when`: route \"cancels\": `canceled` is not a field of Raaft's events: did you mean \"canceled\"? (a value is quoted)\n\
             DIR/relay.toml:{typo}: `routes[1].when`: route \"typo\": `custmer` is not a field of Raaft's events: did you mean customer?\n\
             DIR/relay.toml: 2 problem(s) found\n"
        )
    );
}

#[test]
fn a_digest_has_a_template_for_each_kind_it_goes_to() {
    let destinations = "[destinations.churn]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/x\"\ntemplate = \"slack/canceled.json.hbs\"\n\
         [destinations.founders]\nkind = \"email\"\nurl = \"smtp://relay:pw@smtp.example.com:587?tls=required\"\nfrom = \"relay@example.com\"\n\
         to = [\"founders@example.com\"]\ntemplate = \"email/canceled.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"churn\", \"founders\"]\n";
    let one = ConfigDir::new(&format!(
        "{destinations}[digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"churn\", \"founders\"]\ntemplate = \"slack/digest.json.hbs\"\n"
    ));
    let (_, stderr, ok) = check(&one, &[]);
    assert!(!ok);
    let line = line_of(&one, "template = \"slack/digest.json.hbs\"");
    assert_eq!(
        stderr,
        format!(
            "DIR/relay.toml:{line}: `digests.daily.template`: digest \"daily\" to destination \"founders\": \"slack/digest.json.hbs\" is JSON, \
             which an e-mail would show as its text: use a text template (e.g. email/canceled.hbs)\nDIR/relay.toml: 1 problem(s) found\n"
        )
    );
    let each = ConfigDir::new(&format!(
        "{destinations}[digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"churn\", \"founders\"]\n\
         template = {{ slack = \"slack/digest.json.hbs\", email = \"email/digest.hbs\" }}\nhtml_template = \"email/digest.html.hbs\"\n"
    ));
    let (stdout, stderr, ok) = check(&each, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ok (2 destinations, 1 routes, 18 sample renders)"), "{stdout}");
    // A Slack template on Discord is refused for a destination too.
    let discord = ConfigDir::new(
        "[destinations.wins]\nkind = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\ntemplate = \"slack/saved.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"wins\"]\n",
    );
    let (_, stderr, _) = check(&discord, &[]);
    assert!(
        stderr.contains("`destinations.wins.template`: destination \"wins\": \"slack/saved.hbs\" is written for slack destinations, not discord ones"),
        "{stderr}"
    );
}
