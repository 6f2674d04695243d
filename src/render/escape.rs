//! How inserted values are escaped, by where they land. Templates are
//! trusted (users write them); every value from the event is not.

/// The escaping applied to every `{{value}}` a template inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Nothing: Discord text, e-mail text bodies and subjects, webhook text.
    None,
    /// Slack mrkdwn: exactly `&`, `<`, `>`.
    SlackMrkdwn,
    /// A JSON string's content (`.json.hbs` templates).
    Json,
    /// Slack mrkdwn inside a JSON string (Slack `.json.hbs` templates).
    SlackMrkdwnJson,
    /// HTML (e-mail HTML bodies).
    Html,
}

impl Escape {
    pub fn apply(self, s: &str) -> String {
        match self {
            Escape::None => s.to_owned(),
            Escape::SlackMrkdwn => slack_mrkdwn(s),
            Escape::Json => json_string(s),
            Escape::SlackMrkdwnJson => json_string(&slack_mrkdwn(s)),
            Escape::Html => handlebars::html_escape(s),
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
    fn discord_and_text_get_no_html_entities() {
        assert_eq!(Escape::None.apply("Tom & \"Jerry\" <3"), "Tom & \"Jerry\" <3");
        assert_eq!(Escape::Json.apply("Tom & <3"), "Tom & <3");
        assert_eq!(Escape::Html.apply("<b>&"), "&lt;b&gt;&amp;");
    }
}
