//! Handlebars' parse errors in plain words. Its parser says what grammar
//! rules it expected (`expected escape, expression, html_expression, ...`)
//! at the end of the file when a block is never closed; this reads the
//! tags itself to say which block, opened where.

/// Why `source` does not parse, with its line and column, when the tags
/// tell: a block never closed, closed by another's end, an end with no
/// block, or a `{{` with no `}}`.
pub fn explain(source: &str) -> Option<(String, usize, usize)> {
    let at = |offset: usize| {
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map(|n| before[n + 1..].chars().count()).unwrap_or(before.chars().count()) + 1;
        (line, column)
    };
    // Blocks still open: name, line, column.
    let mut open: Vec<(String, usize, usize)> = Vec::new();
    let mut rest = 0;
    while let Some(found) = source[rest..].find("{{") {
        let start = rest + found;
        // `\{{` is a literal.
        if start > 0 && source.as_bytes()[start - 1] == b'\\' {
            rest = start + 2;
            continue;
        }
        let body_start = start + 2;
        let (end_marker, body_from) =
            if source[body_start..].starts_with("!--") { ("--}}", body_start) } else { ("}}", body_start) };
        let Some(len) = source[body_from..].find(end_marker) else {
            let (line, column) = at(start);
            return Some((format!("`{{{{` at line {line}, column {column} is never closed with `}}}}`"), line, column));
        };
        let end = body_from + len + end_marker.len();
        let tag =
            source[body_start..body_from + len].trim_start_matches(['{', '~']).trim_end_matches(['}', '~']).trim();
        rest = end;
        let (line, column) = at(start);
        if let Some(opened) = tag.strip_prefix('#') {
            let name = opened.trim_start_matches(['>', '*']).split_whitespace().next().unwrap_or("").to_owned();
            open.push((name, line, column));
        } else if let Some(closed) = tag.strip_prefix('/') {
            let name = closed.trim();
            match open.pop() {
                Some((opened, ..)) if opened == name => {}
                Some((opened, l, c)) => {
                    return Some((
                        format!("`{{{{/{name}}}}}` at line {line}, column {column} closes `{{{{#{opened}}}}}`, opened at line {l}, column {c}: close it with `{{{{/{opened}}}}}` first"),
                        line,
                        column,
                    ));
                }
                None => {
                    return Some((
                        format!("`{{{{/{name}}}}}` at line {line}, column {column} closes no open block"),
                        line,
                        column,
                    ));
                }
            }
        }
    }
    open.pop().map(|(name, line, column)| {
        (
            format!("`{{{{#{name}}}}}` opened at line {line}, column {column} is never closed (add `{{{{/{name}}}}}`)"),
            line,
            column,
        )
    })
}

/// Handlebars' own message, shortened where it lists its grammar rules.
pub fn plain(reason: &str) -> String {
    if reason.contains("expected ") && reason.matches(',').count() > 3 {
        "Handlebars cannot read the tag here (a `{{` starts a tag; write `\\{{` for a literal one)".to_owned()
    } else {
        reason.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_closed_or_closed_by_another_are_named_with_their_line() {
        assert_eq!(
            explain("line1\n{{#if customer}}\nx\n").unwrap(),
            ("`{{#if}}` opened at line 2, column 1 is never closed (add `{{/if}}`)".into(), 2, 1)
        );
        assert_eq!(
            explain("{{#each path}}\n  {{#if type}}x{{/each}}").unwrap().0,
            "`{{/each}}` at line 2, column 16 closes `{{#if}}`, opened at line 2, column 3: close it with `{{/if}}` first"
        );
        assert_eq!(explain("a {{/if}}").unwrap().0, "`{{/if}}` at line 1, column 3 closes no open block");
        assert_eq!(
            explain("a\n  {{customer.name").unwrap(),
            ("`{{` at line 2, column 3 is never closed with `}}`".into(), 2, 3)
        );
        assert_eq!(explain("{{!-- {{#if}} --}} \\{{#x}} {{#with a}}{{~/with~}}"), None);
    }
}
