//! The layout docs/development.md draws holds: no import cycle between
//! src's files, and so none between its top-level modules either. A file
//! imports another when its code names it (`crate::a::b`, `super::b`,
//! `use super::{b, ..}`, `use super::*`) or, in a folder's `mod.rs`,
//! re-exports from it (`pub use b::..`); declaring a child (`mod b;`) is
//! not an import, and unit tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every file of src as its module path (`store::queue`), with its text.
fn modules() -> BTreeMap<String, (String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(parts.join("::"), (rel.display().to_string(), text));
        }
    }
    out
}

/// The longest module of `known` that `path` starts with.
fn resolve(known: &BTreeMap<String, (String, String)>, path: &[&str]) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains_key(m))
}

/// Every file's imports of other files, each with the line that makes it.
fn imports(known: &BTreeMap<String, (String, String)>) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (module, (file, text)) in known {
        let own: Vec<&str> = module.split("::").collect();
        let parent = &own[..own.len() - 1];
        let is_folder = file.ends_with("mod");
        let lines: Vec<&str> = text.lines().collect();
        let mut found = |to: Option<String>, n: usize, line: &str| {
            if let Some(to) = to.filter(|to| to != module) {
                edges.entry(module.clone()).or_default().entry(to).or_insert_with(|| format!("{file}.rs:{n}: {line}"));
            }
        };
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("#[cfg(test)]") {
                let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
                let declares_a_file = next.ends_with(';') && next.trim_start_matches("pub ").starts_with("mod ");
                if declares_a_file {
                    continue;
                }
                break;
            }
            if trimmed.starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let path: Vec<&str> = line[at + 7..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .collect();
                found(resolve(known, &path), i + 1, trimmed);
            }
            for (at, _) in line.match_indices("super::") {
                let rest = &line[at + 7..];
                let mut base: Vec<&str> = parent.to_vec();
                if let Some(list) = rest.strip_prefix('{') {
                    for name in list.split('}').next().unwrap_or("").split(',') {
                        let name = name.trim().split("::").next().unwrap_or("").trim();
                        let path: Vec<&str> = base.iter().copied().chain([name]).collect();
                        found(resolve(known, &path), i + 1, trimmed);
                    }
                    continue;
                }
                if rest.starts_with('*') {
                    found(resolve(known, &base), i + 1, trimmed);
                    continue;
                }
                let names = rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).next().unwrap_or("");
                base.extend(names.split("::").filter(|s| !s.is_empty()));
                found(resolve(known, &base), i + 1, trimmed);
            }
            if is_folder {
                if let Some(child) = trimmed.strip_prefix("pub use ").and_then(|r| r.split("::").next()) {
                    let path: Vec<&str> = own.iter().copied().chain([child]).collect();
                    found(resolve(known, &path), i + 1, trimmed);
                }
            }
        }
    }
    edges
}

/// The groups of files that import each other (Tarjan's strongly
/// connected components with more than one file).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        cycles: Vec<BTreeSet<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|x| *x == v).unwrap();
                let group: BTreeSet<String> = self.stack.drain(at..).map(str::to_owned).collect();
                if group.len() > 1 {
                    self.cycles.push(group);
                }
            }
        }
    }
    let mut walk = Walk { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), cycles: Vec::new() };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.cycles
}

#[test]
fn no_file_of_src_imports_one_that_imports_it_back() {
    let known = modules();
    let edges = imports(&known);
    assert!(edges.get("delivery::attempt").is_some_and(|e| e.contains_key("store")), "the check reads imports");
    let mut report = String::new();
    for group in cycles(&edges) {
        report.push_str(&format!("cycle: {}\n", group.iter().cloned().collect::<Vec<_>>().join(" <-> ")));
        for from in &group {
            for (to, line) in &edges[from] {
                if group.contains(to) {
                    report.push_str(&format!("  {from} -> {to}   {line}\n"));
                }
            }
        }
    }
    assert!(report.is_empty(), "import cycles in src:\n{report}");
}

#[test]
fn a_cycle_between_two_files_is_found() {
    let edges: BTreeMap<String, BTreeMap<String, String>> = [
        ("a".to_owned(), BTreeMap::from([("b".to_owned(), "a.rs:1".to_owned())])),
        ("b".to_owned(), BTreeMap::from([("a".to_owned(), "b.rs:1".to_owned()), ("c".to_owned(), String::new())])),
    ]
    .into();
    assert_eq!(cycles(&edges), [BTreeSet::from(["a".to_owned(), "b".to_owned()])]);
}
