//! How Slack's mrkdwn and Discord's markdown show, as HTML for the
//! console's previews: the marks each platform reads become tags, and
//! every character of the text is escaped, so a message can never bring
//! markup of its own.

/// HTML text: `&`, `<`, `>`, `"` and `'` as entities.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Slack mrkdwn: `<url|label>` links and mentions, `*bold*`, `_italic_`,
/// `~strike~`, `` `code` ``; `&amp;`, `&lt;` and `&gt;` are Slack's own
/// escapes of the characters themselves.
pub fn slack_text(s: &str) -> String {
    let mut out = String::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        let mut rest = line;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else { break };
            inline(&slack_unescape(&rest[..open]), SLACK_MARKS, false, &mut out);
            let inside = &rest[open + 1..open + close];
            let (target, label) = inside.split_once('|').unwrap_or((inside, inside));
            out.push_str("<span class=\"link\" title=\"");
            escape(&slack_unescape(target), &mut out);
            out.push_str("\">");
            escape(&slack_unescape(label), &mut out);
            out.push_str("</span>");
            rest = &rest[open + close + 1..];
        }
        inline(&slack_unescape(rest), SLACK_MARKS, false, &mut out);
    }
    out
}

fn slack_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Discord markdown: `**bold**`, `*italic*`, `__underline__`, `_italic_`,
/// `~~strike~~`, `` `code` ``, and backslash escapes.
pub fn discord_text(s: &str) -> String {
    let mut out = String::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        inline(line, DISCORD_MARKS, true, &mut out);
    }
    out
}

const SLACK_MARKS: &[(&str, &str)] = &[("`", "code"), ("*", "strong"), ("_", "em"), ("~", "del")];
const DISCORD_MARKS: &[(&str, &str)] =
    &[("`", "code"), ("**", "strong"), ("__", "u"), ("~~", "del"), ("*", "em"), ("_", "em")];

/// Writes `text` with its paired marks as tags (the longest mark first,
/// code spans verbatim), every character of it escaped.
fn inline(text: &str, marks: &[(&str, &str)], backslashes: bool, out: &mut String) {
    let mut i = 0;
    let mut plain = String::new();
    while i < text.len() {
        let rest = &text[i..];
        if backslashes && rest.starts_with('\\') {
            if let Some(c) = rest[1..].chars().next().filter(|c| c.is_ascii_punctuation()) {
                plain.push(c);
                i += 1 + c.len_utf8();
                continue;
            }
        }
        let found = marks.iter().find_map(|(mark, tag)| {
            let after = rest.strip_prefix(mark)?;
            let end = after.find(mark)?;
            (end > 0 && !after.starts_with(' ')).then_some((mark.len(), end, *tag))
        });
        if let Some((len, end, tag)) = found {
            escape(&plain, out);
            plain.clear();
            let inner = &rest[len..len + end];
            out.push_str(&format!("<{tag}>"));
            if tag == "code" {
                escape(inner, out);
            } else {
                inline(inner, marks, backslashes, out);
            }
            out.push_str(&format!("</{tag}>"));
            i += len + end + len;
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        plain.push(c);
        i += c.len_utf8();
    }
    escape(&plain, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_markup_is_made_from_escaped_values() {
        let shown =
            slack_text("*Bold* &lt;script&gt;alert(1)&lt;/script&gt; <https://x.test/?a=1&amp;b=\"2\"|the \"link\">");
        assert_eq!(
            shown,
            "<strong>Bold</strong> &lt;script&gt;alert(1)&lt;/script&gt; \
             <span class=\"link\" title=\"https://x.test/?a=1&amp;b=&quot;2&quot;\">the &quot;link&quot;</span>"
        );
        assert_eq!(slack_text("a\n_b_ `&lt;i&gt;`"), "a<br><em>b</em> <code>&lt;i&gt;</code>");
    }

    #[test]
    fn discord_markup_keeps_escaped_marks_as_text() {
        assert_eq!(
            discord_text("**Big** \\*not\\* <img src=x onerror=alert(1)>"),
            "<strong>Big</strong> *not* &lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(discord_text("~~old~~ __new__"), "<del>old</del> <u>new</u>");
    }
}
