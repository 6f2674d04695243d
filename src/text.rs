//! Character-safe text limits: platforms count characters (Unicode code
//! points), and a cut must never split one, nor an HTML entity that Slack
//! escaping produced.

/// The ellipsis that marks a cut.
pub const ELLIPSIS: char = '…';

/// A duration as people write it: whole days, hours, minutes, seconds
/// and milliseconds, the zero ones left out ("400 days", "1 day 6 hours",
/// "1.5 s" is "1 second 500 ms"), never months or years of a guessed
/// length.
pub fn duration(d: std::time::Duration) -> String {
    const UNITS: [(u128, &str, &str); 5] = [
        (86_400_000, "day", "days"),
        (3_600_000, "hour", "hours"),
        (60_000, "minute", "minutes"),
        (1_000, "second", "seconds"),
        (1, "ms", "ms"),
    ];
    let mut left = d.as_millis();
    if left == 0 {
        return "0 seconds".into();
    }
    let mut parts = Vec::new();
    for (size, one, many) in UNITS {
        let n = left / size;
        left %= size;
        if n > 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    parts.join(" ")
}

/// `s` cut to at most `max` characters, the last being an ellipsis when
/// anything was cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    truncate_with(s, max, |_| false)
}

/// As [`truncate_chars`], never leaving half of a Slack entity (`&amp;`,
/// `&lt;`, `&gt;`) at the end.
pub fn truncate_escaped(s: &str, max: usize) -> String {
    truncate_with(s, max, |kept| {
        kept.rfind('&').is_some_and(|amp| {
            let tail = &kept[amp + 1..];
            ["amp;", "lt;", "gt;"].iter().any(|e| e.starts_with(tail) && e.len() > tail.len())
        })
    })
}

fn truncate_with(s: &str, max: usize, splits_entity: impl Fn(&str) -> bool) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let cut = s.char_indices().nth(max - 1).map(|(i, _)| i).unwrap_or(s.len());
    let mut kept = &s[..cut];
    if splits_entity(kept) {
        kept = &kept[..kept.rfind('&').unwrap_or(0)];
    }
    let mut out = String::with_capacity(kept.len() + 3);
    out.push_str(kept);
    out.push(ELLIPSIS);
    out
}

/// Removes CR and LF, which must never reach an e-mail header.
pub fn single_line(s: &str) -> String {
    s.split(['\r', '\n']).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Bytes as they can be shown on a terminal without being misread or
/// acting on it: control characters other than line breaks and tabs (NUL,
/// escape sequences), Unicode line separators and bidirectional overrides
/// written as `\0`, `\r`, `\x1b`, `\u{85}`, and bytes that are not UTF-8
/// as `\xNN`. Everything else is left as it is.
pub fn shown(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_shown(&mut out, chunk.valid(), true);
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// [`shown`] for text that must stay on one line (a log field): line
/// breaks and tabs are escaped too (`\n`, `\t`).
pub fn shown_on_one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c, false)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_shown(&mut out, text, false);
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char, keep_breaks: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_breaks,
        c => c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
    }
}

fn push_shown(out: &mut String, text: &str, keep_breaks: bool) {
    for c in text.chars() {
        if !needs_escape(c, keep_breaks) {
            out.push(c);
            continue;
        }
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(truncate_chars("héllo", 5), "héllo");
    }

    #[test]
    fn cuts_on_character_boundaries_with_an_ellipsis() {
        assert_eq!(truncate_chars("héllo wörld", 5), "héll…");
        let emoji = "😀".repeat(10);
        let cut = truncate_chars(&emoji, 4);
        assert_eq!(cut, "😀😀😀…");
        assert_eq!(cut.chars().count(), 4);
        assert_eq!(truncate_chars("abc", 0), "");
    }

    #[test]
    fn escaped_cut_never_leaves_half_an_entity() {
        let s = "ab&amp;cd";
        assert_eq!(truncate_escaped(s, 5), "ab…");
        assert_eq!(truncate_escaped(s, 8), "ab&amp;…");
        assert_eq!(truncate_escaped("a & b and more", 5), "a & …");
        assert_eq!(truncate_escaped("x &lt;y", 5), "x …");
        assert_eq!(truncate_escaped("Q&A session", 4), "Q&A…");
    }

    #[test]
    fn single_line_drops_cr_and_lf() {
        assert_eq!(single_line("a\r\nBcc: x@y\nz"), "a Bcc: x@y z");
    }

    #[test]
    fn shown_text_escapes_what_a_terminal_would_act_on() {
        assert_eq!(shown(b"plain \xc3\xa9t\xc3\xa9\nline\ttab"), "plain \u{e9}t\u{e9}\nline\ttab");
        assert_eq!(shown(b"a\0b\r\x1b[31mred"), "a\\0b\\r\\x1b[31mred");
        assert_eq!(shown(b"bad \xff\xfe bytes"), "bad \\xff\\xfe bytes");
        assert_eq!(shown("c1 \u{85}".as_bytes()), "c1 \\u{85}");
        assert_eq!(shown("x\u{2028}y\u{202e}z".as_bytes()), "x\\u{2028}y\\u{202e}z");
    }

    #[test]
    fn one_line_text_escapes_breaks_too() {
        assert_eq!(shown_on_one_line("cus_1 São Paulo"), "cus_1 São Paulo");
        assert_eq!(shown_on_one_line("a\nb\r\tc\u{1b}[31m"), "a\\nb\\r\\tc\\x1b[31m");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        use std::time::Duration;
        assert_eq!(super::duration(Duration::from_secs(400 * 86_400)), "400 days");
        assert_eq!(super::duration(Duration::from_secs(86_400 + 6 * 3600)), "1 day 6 hours");
        assert_eq!(super::duration(Duration::from_secs(60)), "1 minute");
        assert_eq!(super::duration(Duration::from_millis(1500)), "1 second 500 ms");
        assert_eq!(super::duration(Duration::ZERO), "0 seconds");
    }
}
