//! Percent-decoding of URL-encoded values (OTLP header values, PostgreSQL URL parameters).

/// `%XX` sequences decoded; `None` for a malformed sequence or text that is not UTF-8.
pub(crate) fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_and_refuses_malformed_sequences() {
        assert_eq!(super::decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(super::decode("%zz"), None);
        assert_eq!(super::decode("%2"), None);
        assert_eq!(super::decode("%ff"), None);
    }
}
