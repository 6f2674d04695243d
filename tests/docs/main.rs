//! The documentation cannot drift from the code: every configuration it
//! shows (a `toml` block, laid over the shipped `config/relay.toml`)
//! passes `check`, or fails it when marked `toml,wrong`; every
//! `raaft-relay` command it shows parses with the real command line; every
//! URL path it sends `curl` to is one the relay serves; every relative link
//! points at a file that exists. And the code keeps the layout
//! docs/development.md draws: no import cycle in src ([`layers`]).

mod layers;

use clap::Parser;
use raaft_relay::cli::Cli;
use std::path::{Path, PathBuf};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// A fenced block: its info string, its text and the line it starts on.
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => open = Some(Block { info: info.trim().to_owned(), text: String::new(), line: i + 1 }),
            (Some(_), Some(_)) => out.push(open.take().unwrap()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    out
}

/// `block` laid over the shipped config: its tables merged into the
/// shipped ones (a destination added beside `console`), its arrays
/// (`[[routes]]`) and values in place of the shipped ones.
fn over_shipped(block: &str) -> Result<String, String> {
    let mut base: toml_edit::DocumentMut = std::fs::read_to_string(repo("config/relay.toml")).unwrap().parse().unwrap();
    let over: toml_edit::DocumentMut = block.parse().map_err(|e| format!("not TOML: {e}"))?;
    for (key, item) in over.iter() {
        match (base.get_mut(key).and_then(|b| b.as_table_mut()), item.as_table()) {
            (Some(base_table), Some(table)) => {
                for (k, v) in table.iter() {
                    base_table.insert(k, v.clone());
                }
            }
            _ => {
                base.insert(key, item.clone());
            }
        }
    }
    base.insert("templates_dir", toml_edit::value(repo("templates").display().to_string()));
    Ok(base.to_string())
}

/// Gives every `${NAME}` the config reads a value of the right shape.
fn set_env_for(config: &str) {
    let mut rest = config;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let end = after.find('}').unwrap_or(after.len());
        let reference = &after[..end];
        let name = reference.split(":-").next().unwrap();
        let has_default = reference.contains(":-");
        if !has_default && !name.starts_with("file:") && std::env::var(name).is_err() {
            let value = if name.ends_with("URL") && name.contains("SMTP") {
                "smtp://mail.example.test:587"
            } else if name.ends_with("URL") {
                "https://hooks.example.test/services/T000/B000/XXXX"
            } else {
                "placeholder-value-for-docs"
            };
            // One test runs in this binary: nothing reads the environment beside it.
            std::env::set_var(name, value);
        }
        rest = &after[end..];
    }
}

fn check_config(block: &Block, page: &Path) -> Result<(), String> {
    let config = over_shipped(&block.text)?;
    set_env_for(&config);
    let dir = tempfile::tempdir().unwrap();
    // Files a config may name beside it, so that what is checked is the
    // configuration rather than this machine's files.
    for (rel, text) in [("secrets/raaft-token", "docs-token"), ("secrets/admin-token", "docs-admin-token")] {
        std::fs::create_dir_all(dir.path().join(rel).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(rel), text).unwrap();
    }
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, &config).unwrap();
    raaft_relay::check::check(&path).map(|_| ()).map_err(|p| {
        format!("{}:{}: the configuration does not pass check:\n{p}\n---\n{}", page.display(), block.line, block.text)
    })
}

/// The commands of a shell block: continuation lines joined, comments
/// dropped, one entry per command (`&&`, `;` and `|` separate them).
fn commands(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| l.split("&&").flat_map(|c| c.split(';')).flat_map(|c| c.split('|')).map(|c| c.trim().to_owned()))
        .filter(|c| !c.is_empty())
        .collect()
}

/// Splits a command into words, with quotes.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        out.push(word);
    }
    out
}

/// The relay's arguments in a command, when it runs the relay.
fn relay_args(command: &str) -> Option<Vec<String>> {
    let words: Vec<String> =
        words(command).into_iter().skip_while(|w| w.contains('=') && !w.starts_with('-')).collect();
    let first = words.first()?;
    if first == "raaft-relay" || first.ends_with("/raaft-relay") {
        return Some(words[1..].to_vec());
    }
    let dashes = words.iter().position(|w| w == "--")?;
    (first == "cargo" && words.get(1).is_some_and(|w| w == "run")).then(|| words[dashes + 1..].to_vec())
}

/// The paths the relay serves (a prefix each).
const ROUTES: [&str; 7] = ["/webhooks/raaft", "/admin/", "/metrics", "/healthz", "/readyz", "/console/", "/console"];

fn curl_path(command: &str) -> Option<String> {
    let words = words(command);
    if words.first()? != "curl" {
        return None;
    }
    let url =
        words.iter().find(|w| w.starts_with("http://") || w.starts_with("https://") || w.starts_with("\"http"))?;
    let after_scheme = url.split("://").nth(1)?;
    Some(format!("/{}", after_scheme.split_once('/').map(|(_, p)| p).unwrap_or("")))
}

fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = markdown;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        out.push(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

// In a runtime, as the relay checks a config: an e-mail destination's
// connection pool is made there.
#[tokio::test]
async fn every_config_command_route_and_link_in_the_docs_is_real() {
    let mut failures = Vec::new();
    let (mut configs, mut commands_seen) = (0, 0);
    for page in pages() {
        let markdown = std::fs::read_to_string(&page).unwrap();
        for block in blocks(&markdown) {
            let kind = block.info.split(',').next().unwrap_or("").trim().to_owned();
            let wrong = block.info.split(',').any(|f| f.trim() == "wrong");
            match kind.as_str() {
                "toml" => {
                    configs += 1;
                    match (check_config(&block, &page), wrong) {
                        (Err(e), false) => failures.push(e),
                        (Ok(()), true) => failures.push(format!(
                            "{}:{}: marked `toml,wrong` but passes check",
                            page.display(),
                            block.line
                        )),
                        _ => {}
                    }
                }
                "sh" | "bash" | "shell" => {
                    for command in commands(&block.text) {
                        if let Some(args) = relay_args(&command) {
                            commands_seen += 1;
                            let argv = std::iter::once("raaft-relay".to_owned()).chain(args);
                            if let Err(e) = Cli::try_parse_from(argv) {
                                failures.push(format!("{}:{}: `{command}`: {e}", page.display(), block.line));
                            }
                        }
                        if let Some(path) = curl_path(&command) {
                            if !ROUTES.iter().any(|r| path.starts_with(r)) {
                                failures.push(format!(
                                    "{}:{}: `{command}`: the relay serves no {path}",
                                    page.display(),
                                    block.line
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for link in links(&markdown) {
            if link.starts_with("http") || link.starts_with('#') || link.starts_with("mailto:") {
                continue;
            }
            let file = link.split('#').next().unwrap();
            if !page.parent().unwrap().join(file).exists() {
                failures.push(format!("{}: the link \"{link}\" points at nothing", page.display()));
            }
        }
    }
    assert!(configs >= 15 && commands_seen >= 15, "too few blocks found ({configs} configs, {commands_seen} commands)");
    assert!(failures.is_empty(), "{} problem(s) in the docs:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// Every file under config/ (recursively).
fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(config_files(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The relative file paths a text names, links or not: words with a `/`
/// ending in a file type the project ships.
fn named_paths(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)))
        .filter(|w| w.contains('/') && !w.contains("//"))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| [".md", ".toml", ".hbs", ".json"].iter().any(|t| w.ends_with(t)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_file_the_config_folder_names_exists() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for file in config_files(&repo("config")) {
        if !file.extension().is_some_and(|e| e == "md" || e == "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let mut named = named_paths(&text);
        named.extend(links(&text).into_iter().filter(|l| !l.starts_with("http") && !l.starts_with('#')));
        for path in named {
            seen += 1;
            let path = path.split('#').next().unwrap();
            // Beside the file, from the project's top, or a template name.
            let found = [file.parent().unwrap().to_path_buf(), repo(""), repo("templates")]
                .iter()
                .any(|base| base.join(path).exists());
            if !found {
                failures.push(format!("{}: \"{path}\" points at nothing", file.display()));
            }
        }
    }
    assert!(seen >= 10, "only {seen} paths found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(named_paths("see ../PLATFORMS.md. and [x](docs/a.md)"), ["../PLATFORMS.md", "docs/a.md"]);
}

#[tokio::test]
async fn the_checker_finds_what_it_is_for() {
    assert_eq!(
        commands("a && raaft-relay check \\\n  --config x.toml # c\n# only a comment\nb | c"),
        ["a", "raaft-relay check    --config x.toml", "b", "c"]
    );
    assert_eq!(relay_args("RAAFT_TOKEN=x cargo run --release -- serve").unwrap(), ["serve"]);
    assert!(Cli::try_parse_from(["raaft-relay", "deliveries", "replay", "--dead", "--destination", "x"]).is_ok());
    assert!(Cli::try_parse_from(["raaft-relay", "deliveries", "resend"]).is_err(), "a made-up command is caught");
    assert_eq!(
        curl_path("curl -s http://127.0.0.1:9090/admin/deliveries?status=dead").unwrap(),
        "/admin/deliveries?status=dead"
    );
    let block = Block { info: "toml".into(), text: "[retry]\nmax_attempts = \"many\"\n".into(), line: 1 };
    assert!(check_config(&block, Path::new("x.md")).is_err(), "a wrong key's value is caught");
}
