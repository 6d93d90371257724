//! Text from the logs made inert before it reaches a terminal: run ids, steps, models and
//! error texts are written by other people, and a raw escape sequence would clear a screen,
//! retitle a window or write to the clipboard.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters longer text is cut to.
pub(crate) const MAX_CHARS: usize = 256;

/// Whether `c` must not reach a terminal raw: C0 controls (tab too: it breaks a table's
/// columns), DEL, C1 controls, and the bidirectional formatting characters that reorder what
/// is shown.
fn dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every dangerous character escaped visibly (`\u{1b}`), and cut after
/// 256 characters with an ellipsis and its full length. Plain text is borrowed.
pub fn terminal(s: &str) -> Cow<'_, str> {
    let long = s.len() > MAX_CHARS && s.chars().count() > MAX_CHARS;
    if !long && !s.chars().any(dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_CHARS * 4) + 16);
    for (i, c) in s.chars().enumerate() {
        if i == MAX_CHARS {
            let _ = write!(out, "… ({} characters)", s.chars().count());
            break;
        }
        if dangerous(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_and_long_text_cut() {
        assert!(matches!(terminal("plain step"), Cow::Borrowed(_)));
        assert_eq!(
            terminal("evil\u{1b}[2J\u{1b}]0;pwned\u{7}step"),
            "evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}step"
        );
        assert_eq!(
            terminal("a\tb\u{7f}\u{9b}c\u{202e}d\n"),
            "a\\u{9}b\\u{7f}\\u{9b}c\\u{202e}d\\u{a}"
        );
        let long = "x".repeat(300);
        let cut = terminal(&long);
        assert_eq!(cut, format!("{}… (300 characters)", "x".repeat(256)));
        assert_eq!(terminal(&"é".repeat(256)), "é".repeat(256));
    }
}
