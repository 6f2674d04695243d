//! How inserted values are escaped, by where they land. Templates are
//! trusted (users write them); every value from the event is not.

/// The escaping applied to every `{{value}}` a template inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Nothing: e-mail text bodies and subjects, webhook and console text.
    None,
    /// Slack mrkdwn: exactly `&`, `<`, `>`.
    SlackMrkdwn,
    /// A JSON string's content (`.json.hbs` templates).
    Json,
    /// Slack mrkdwn inside a JSON string (Slack `.json.hbs` templates).
    SlackMrkdwnJson,
    /// HTML (e-mail HTML bodies).
    Html,
    /// Discord markdown (Discord text templates).
    DiscordMarkdown,
    /// Discord markdown inside a JSON string (Discord `.json.hbs`
    /// templates).
    DiscordMarkdownJson,
}

impl Escape {
    pub fn apply(self, s: &str) -> String {
        match self {
            Escape::None => s.to_owned(),
            Escape::SlackMrkdwn => slack_mrkdwn(s),
            Escape::Json => json_string(s),
            Escape::SlackMrkdwnJson => json_string(&slack_mrkdwn(s)),
            Escape::Html => handlebars::html_escape(s),
            Escape::DiscordMarkdown => discord_markdown(s),
            Escape::DiscordMarkdownJson => json_string(&discord_markdown(s)),
        }
    }
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` and nothing else, which also
/// disarms `<!channel>` and `<@U123>` in customer text.
pub fn slack_mrkdwn(s: &str) -> String {
    if !s.contains(['&', '<', '>']) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Discord markdown escaping, with backslashes (which Discord hides):
/// anywhere, the characters of emphasis, strikethrough, spoilers, code,
/// masked links and `<...>` tags (`\` `*` `_` `~` `` ` `` `|` `[` `]` `<`);
/// at the start of a line (spaces aside), those of headings, quotes and
/// lists (`#` `>` `-` `+`, and the `.` of `1.`). A value is taken to start
/// a line, since the template may put it there.
pub fn discord_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    // Only spaces so far on this line; only digits after them.
    let (mut line_start, mut digits) = (true, false);
    for c in s.chars() {
        let escape = match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' => true,
            '#' | '>' | '-' | '+' => line_start,
            '.' => digits,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
        match c {
            '\n' => (line_start, digits) = (true, false),
            ' ' | '\t' if line_start => {}
            '0'..='9' if line_start || digits => (line_start, digits) = (false, true),
            _ => (line_start, digits) = (false, false),
        }
    }
    out
}

/// The inside of a JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string always serializes");
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escapes_exactly_three_characters() {
        assert_eq!(slack_mrkdwn("<!channel> & \"co\" 'x' >"), "&lt;!channel&gt; &amp; \"co\" 'x' &gt;");
        assert_eq!(Escape::SlackMrkdwn.apply("@everyone *bold*"), "@everyone *bold*");
    }

    #[test]
    fn json_escape_keeps_payloads_valid() {
        let s = "quote \" backslash \\ newline \n tab \t nul \u{0}";
        let inner = json_string(s);
        let parsed: String = serde_json::from_str(&format!("\"{inner}\"")).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(Escape::SlackMrkdwnJson.apply("<a> \"b\""), "&lt;a&gt; \\\"b\\\"");
    }

    #[test]
    fn discord_markdown_is_disarmed() {
        let link = "Please [Verify account](https://evil.example/login)";
        assert_eq!(discord_markdown(link), "Please \\[Verify account\\](https://evil.example/login)");
        assert_eq!(
            discord_markdown("**bold** __u__ ~~s~~ ||spoiler|| `code`"),
            r"\*\*bold\*\* \_\_u\_\_ \~\~s\~\~ \|\|spoiler\|\| \`code\`"
        );
        assert_eq!(
            discord_markdown("# Heading\n> quote\n  - item\n+ item\n12. item\n-# small"),
            "\\# Heading\n\\> quote\n  \\- item\n\\+ item\n12\\. item\n\\-# small"
        );
        // Mid-line, those characters mean nothing and stay as they are.
        assert_eq!(discord_markdown("2024-10-07 v1.2 a > b #3"), "2024-10-07 v1.2 a > b #3");
        assert_eq!(discord_markdown(r"C:\path <t:0> <#123>"), r"C:\\path \<t:0> \<#123>");
        assert_eq!(discord_markdown("Ana Lima, São Paulo: 30% off!"), "Ana Lima, São Paulo: 30% off!");
        assert_eq!(Escape::DiscordMarkdownJson.apply("*a* \"b\""), r#"\\*a\\* \"b\""#);
    }

    #[test]
    fn text_gets_no_html_entities() {
        assert_eq!(Escape::None.apply("Tom & \"Jerry\" <3"), "Tom & \"Jerry\" <3");
        assert_eq!(Escape::Json.apply("Tom & <3"), "Tom & <3");
        assert_eq!(Escape::Html.apply("<b>&"), "&lt;b&gt;&amp;");
    }
}
