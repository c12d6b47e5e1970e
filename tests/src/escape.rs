//! Case-encoding (`!x` for `X`) and percent-decoding of GOPROXY paths,
//! written independently of the `gomod` crate so that the harness does not
//! share the server's bugs.

/// Encodes every ASCII uppercase letter `X` as `!x`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes `!x` back to `X`; `None` for raw uppercase, non-ASCII, or a `!`
/// not followed by a lowercase letter.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '!' => match chars.next() {
                Some(l) if l.is_ascii_lowercase() => out.push(l.to_ascii_uppercase()),
                _ => return None,
            },
            c if !c.is_ascii() || c.is_ascii_uppercase() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// RFC 3986 percent-decoding (`+` stays `+`); `None` for a malformed escape
/// or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_uppercase() {
        assert_eq!(escape("example.com/Upper/mod"), "example.com/!upper/mod");
        assert_eq!(escape("v1.1.0-RC1"), "v1.1.0-!r!c1");
        assert_eq!(unescape("example.com/!upper/mod").as_deref(), Some("example.com/Upper/mod"));
    }

    #[test]
    fn unescape_rejects_what_x_mod_rejects() {
        for bad in ["a/!Azure", "a/Azure", "a/!!azure", "a/azure!", "a/!1x", "a/ü"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_decode_keeps_plus_and_decodes_bang() {
        assert_eq!(percent_decode("%21upper/v2.0.0+incompatible").as_deref(), Some("!upper/v2.0.0+incompatible"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
    }
}
