//! Text leaving the program: the one place that decides which characters of captured data
//! (function names, file paths, labels, capture names) are safe to print.
//!
//! A capture is untrusted input: a Go function or file name may hold any Unicode. Printed
//! raw, an ESC starts a terminal control sequence (`\x1b[2J` clears the screen, OSC 8
//! rewrites links, some terminals answer queries), a newline or carriage return breaks a
//! table row or overwrites a line, and a bidirectional override (`U+202E`) makes text read
//! differently from what it is ("Trojan Source"). [`escape_control`] makes every such
//! character visible as an escape instead:
//!
//! | characters | shown as |
//! |---|---|
//! | newline, carriage return, tab | `\n`, `\r`, `\t` |
//! | other C0 controls, DEL, C1 controls (U+0080..U+009F) | `\x1b`, `\x7f`, `\u{85}` |
//! | bidirectional formatting: U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069 | `\u{202e}` |
//! | line and paragraph separators U+2028, U+2029 | `\u{2028}` |
//!
//! Everything else, including any other non-ASCII text, is kept. The escapes are for
//! people and are not reversible (a name that holds a backslash followed by `n` prints like
//! one that holds a newline). Each output format adds its own markup escaping on top:
//! [`markdown_cell`] for markdown (`|`, backticks, `<`, `>`), HTML its entities,
//! Slack its `&<>`. Machine formats (JSON, CSV, Parquet, pprof) carry the exact values:
//! JSON escapes control characters itself, and CSV quotes fields as RFC 4180 says.

pub mod compare;
pub mod export;
pub mod fleet;
pub mod json;
pub mod render;
pub mod report;
pub mod results;
pub mod words;

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a document as it is (see the module docs).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// The visible escape of one unsafe character (`\n`, `\x1b`, `\u{202e}`).
pub fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` with every control, bidirectional-formatting and line-separator character shown as
/// a visible escape; borrowed unchanged when there is none (the common case).
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            escape_char(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for a whole document written by the program: like [`escape_control`] but keeping
/// the newlines the program itself wrote. The last line of defence for text that mixes the
/// program's layout with captured data; fields should be escaped with [`escape_control`]
/// first, so that their newlines do not break the layout.
pub fn escape_document(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && is_unsafe(c) {
            escape_char(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value for a markdown table cell or running markdown text: controls escaped, and the
/// characters that would end a cell, open a code span or start HTML escaped (`\|`, `` \` ``,
/// `&lt;`, `&gt;`). Backslashes are kept: they are common in paths and escape nothing
/// before a letter.
pub fn markdown_cell(s: &str) -> String {
    let s = escape_control(s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '`' => out.push_str("\\`"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline, and bidi overrides, are shown as
            // escapes (see the module docs).
            c if c != '\n' && c != '\t' && is_unsafe(c) => escape_char(c, &mut out),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hostile name of the tests: clear screen, newline, carriage return, table pipe,
    /// backticks and a right-to-left override.
    const HOSTILE: &str = "main.\u{1b}[2Jevil\nrow\rx|y`z`\u{202e}cod.exe";

    #[test]
    fn every_unsafe_character_becomes_visible() {
        let e = escape_control(HOSTILE);
        assert_eq!(e, "main.\\x1b[2Jevil\\nrow\\rx|y`z`\\u{202e}cod.exe");
        assert!(!e.chars().any(is_unsafe));
        for c in [
            '\0', '\u{7f}', '\u{85}', '\u{9b}', '\u{2028}', '\u{2066}', '\u{61c}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
            assert!(!escape_control(&c.to_string()).chars().any(is_unsafe));
        }
        assert!(matches!(
            escape_control("main.(*T).run é 日本"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn documents_keep_their_own_newlines_only() {
        assert_eq!(
            escape_document("a\u{1b}[0m\nb\r\u{202e}"),
            "a\\x1b[0m\nb\\r\\u{202e}"
        );
    }

    #[test]
    fn markdown_cells_cannot_end_the_cell_or_open_code() {
        let m = markdown_cell(HOSTILE);
        assert_eq!(m, "main.\\x1b[2Jevil\\nrow\\rx\\|y\\`z\\`\\u{202e}cod.exe");
        assert_eq!(markdown_cell("<script>"), "&lt;script&gt;");
    }
}
