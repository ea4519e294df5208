//! Escaping of values spliced into generated Groovy and XML, so a release named
//! `it's $HOME\n</script>` still means exactly that text and breaks nothing around it.

/// A single-quoted Groovy string literal meaning exactly `value`.
///
/// `\`, `'` and `$` are backslash-escaped; line breaks and control characters become
/// escapes, because a raw line break ends a single-quoted literal; `<` becomes `\u003c` so
/// no `</script>` appears in the text (Groovy decodes `\uXXXX` before lexing, which is
/// harmless for `<` but would not be for a quote or a line break: those never use it).
pub fn groovy_literal(value: &str) -> String {
    format!("'{}'", groovy_content(value))
}

/// The inside of a single-quoted Groovy literal (see [`groovy_literal`]); also safe in a
/// `//` comment, which only a line break or a `\u000a` escape could end.
pub fn groovy_content(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            c if needs_unicode_escape(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Control and line-separator characters: invisible or line-breaking in editors and logs.
fn needs_unicode_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// XML character data or attribute text meaning exactly `value`: `& < > " '` become
/// entities and a carriage return a character reference (parsers turn a raw one into a
/// line feed). Fails on characters XML 1.0 cannot carry at all (most C0 controls).
pub fn xml_text(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if !xml_char(c) => {
                return Err(format!(
                    "U+{:04X} cannot be written in XML 1.0 (Jenkins' config.xml)",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// XML 1.0's `Char` production, minus the whitespace handled by the caller.
fn xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groovy_escapes_what_would_end_or_change_the_literal() {
        assert_eq!(groovy_literal("plain"), "'plain'");
        assert_eq!(
            groovy_literal("it's \"q\" $x \\y"),
            r#"'it\'s "q" \$x \\y'"#
        );
        assert_eq!(groovy_literal("a\nb\r\t"), r"'a\nb\r\t'");
        assert_eq!(groovy_literal("</script>"), r"'\u003c/script>'");
        assert_eq!(groovy_literal("\u{1}\u{2028}"), r"'\u0001\u2028'");
    }

    #[test]
    fn groovy_never_writes_a_unicode_escape_of_a_quote_or_line_break() {
        // Groovy decodes `\u0027` before lexing: it would close the literal.
        let out = groovy_literal("'\n\\u0027");
        assert_eq!(out, r"'\'\n\\u0027'");
    }

    #[test]
    fn xml_escapes_markup_and_keeps_line_breaks() {
        assert_eq!(
            xml_text("a&b<c>d\"e'f").unwrap(),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f"
        );
        assert_eq!(xml_text("x\ny\r\tz").unwrap(), "x\ny&#xD;\tz");
        assert_eq!(xml_text("é ✓").unwrap(), "é ✓");
    }

    #[test]
    fn xml_refuses_what_xml_1_0_cannot_carry() {
        let err = xml_text("a\u{1}b").unwrap_err();
        assert!(err.contains("U+0001"), "{err}");
        assert!(xml_text("\u{0}").is_err());
    }
}
