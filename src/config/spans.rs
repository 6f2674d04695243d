//! Line numbers for config keys, so an error can say where in the file the
//! bad value is even after the file has been parsed into plain values.

use std::collections::HashMap;
use toml_edit::{Item, TableLike, Value};

/// Maps dotted key paths (`destinations.churn.url`, `routes[1].when`) to
/// 1-based line numbers in the source text.
#[derive(Debug, Default)]
pub struct KeyLines {
    lines: HashMap<String, usize>,
}

impl KeyLines {
    pub fn parse(text: &str) -> Self {
        let mut lines = HashMap::new();
        if let Ok(doc) = toml_edit::ImDocument::parse(text) {
            let starts = line_starts(text);
            walk_table(doc.as_table(), "", &starts, &mut lines);
        }
        KeyLines { lines }
    }

    /// The line of `path`, or of its closest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

fn line_at(starts: &[usize], offset: usize) -> usize {
    match starts.binary_search(&offset) {
        Ok(i) => i + 1,
        Err(i) => i,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(table: &dyn TableLike, prefix: &str, starts: &[usize], out: &mut HashMap<String, usize>) {
    for (key, item) in table.iter() {
        let path = join(prefix, key);
        if let Some((k, _)) = table.get_key_value(key) {
            if let Some(span) = k.span() {
                out.insert(path.clone(), line_at(starts, span.start));
            }
        }
        walk_item(item, &path, starts, out);
    }
}

fn walk_item(item: &Item, path: &str, starts: &[usize], out: &mut HashMap<String, usize>) {
    match item {
        Item::Table(t) => {
            if let Some(span) = t.span() {
                out.entry(path.to_owned()).or_insert(line_at(starts, span.start));
            }
            walk_table(t, path, starts, out);
        }
        Item::ArrayOfTables(array) => {
            for (i, t) in array.iter().enumerate() {
                let elem = format!("{path}[{i}]");
                if let Some(span) = t.span() {
                    out.insert(elem.clone(), line_at(starts, span.start));
                }
                walk_table(t, &elem, starts, out);
            }
        }
        Item::Value(v) => walk_value(v, path, starts, out),
        Item::None => {}
    }
}

fn walk_value(value: &Value, path: &str, starts: &[usize], out: &mut HashMap<String, usize>) {
    match value {
        Value::InlineTable(t) => walk_table(t, path, starts, out),
        Value::Array(array) => {
            for (i, v) in array.iter().enumerate() {
                let elem = format!("{path}[{i}]");
                if let Some(span) = v.span() {
                    out.insert(elem.clone(), line_at(starts, span.start));
                }
                walk_value(v, &elem, starts, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys_and_array_elements() {
        let text = "templates_dir = \"t\"\n\n[raaft]\ntokens = [\n  \"a\",\n  \"b\",\n]\n\n[destinations.churn]\nkind = \"slack\"\nurl = \"x\"\n\n[[routes]]\nname = \"r\"\nwhen = { outcome = \"canceled\" }\n";
        let lines = KeyLines::parse(text);
        assert_eq!(lines.line_of("templates_dir"), Some(1));
        assert_eq!(lines.line_of("raaft.tokens[1]"), Some(6));
        assert_eq!(lines.line_of("destinations.churn.url"), Some(11));
        assert_eq!(lines.line_of("routes[0].when.outcome"), Some(15));
        assert_eq!(lines.line_of("routes[0].name"), Some(14));
        // Unknown children fall back to their parent's line.
        assert_eq!(lines.line_of("destinations.churn.url.extra"), Some(11));
    }
}
