//! Go's `path.Match` and x/mod `module.MatchPrefixPatterns` (GOPRIVATE globs).

/// A malformed pattern (Go's `path.ErrBadPattern`).
struct BadPattern;

type Matched<T> = std::result::Result<T, BadPattern>;

/// Go's `path.Match`: `*` (any run without `/`), `?` (one char but `/`),
/// `[...]` classes with ranges and `^`, `\` escapes. `None` if the pattern is
/// malformed.
pub fn path_match(pattern: &str, name: &str) -> Option<bool> {
    match_bytes(pattern.as_bytes(), name.as_bytes()).ok()
}

/// `module.MatchPrefixPatterns`: does any comma-separated glob match a prefix
/// of `path`? A glob with N slashes is matched against the first N+1 path
/// elements; empty globs and trailing slashes are ignored; malformed globs never match.
pub fn match_prefix_patterns(globs: &str, path: &str) -> bool {
    globs
        .split(',')
        .map(|g| g.strip_suffix('/').unwrap_or(g))
        .filter(|g| !g.is_empty())
        .any(|glob| leading_elements(path, glob.matches('/').count()).is_some_and(|p| path_match(glob, p) == Some(true)))
}

/// Checks a comma-separated glob list (GOPRIVATE syntax) that decides what
/// must stay private: a glob with spaces around it or a malformed one would
/// silently match nothing (as in Go), so it is refused with the fix.
pub fn check_prefix_patterns(globs: &str) -> crate::Result<()> {
    let parts: Vec<&str> = globs.split(',').collect();
    if parts.iter().any(|g| g.trim() != *g && !g.trim().is_empty()) {
        let fixed: Vec<&str> = parts.iter().map(|g| g.trim()).filter(|g| !g.is_empty()).collect();
        return Err(crate::Error::InvalidPattern(format!(
            "{globs:?} has spaces around a glob, which then matches nothing (Go does not trim them either); write {:?}",
            fixed.join(",")
        )));
    }
    for glob in parts.iter().filter(|g| !g.is_empty()) {
        if !valid_glob(glob.as_bytes()) {
            return Err(crate::Error::InvalidPattern(format!(
                "glob {glob:?} in {globs:?} is malformed (an unclosed or empty [class], a trailing \\, or a range with - or ] as an end), so it would match nothing"
            )));
        }
    }
    Ok(())
}

/// Syntax of a `path.Match` pattern, checked whole.
fn valid_glob(p: &[u8]) -> bool {
    // One character of a class: an escape or anything but `-` and `]`.
    fn class_char(p: &[u8], i: &mut usize) -> bool {
        match p.get(*i) {
            Some(b'\\') if *i + 1 < p.len() => {
                *i += 2;
                true
            }
            Some(b'-' | b']' | b'\\') | None => false,
            Some(_) => {
                *i += 1;
                true
            }
        }
    }
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => {
                if i + 1 >= p.len() {
                    return false;
                }
                i += 2;
            }
            b'[' => {
                i += 1;
                if p.get(i) == Some(&b'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if p.get(i) == Some(&b']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    if !class_char(p, &mut i) {
                        return false;
                    }
                    if p.get(i) == Some(&b'-') {
                        i += 1;
                        if !class_char(p, &mut i) {
                            return false;
                        }
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// The first `n + 1` slash-separated elements of `path`, or `None` if it has fewer.
fn leading_elements(path: &str, n: usize) -> Option<&str> {
    let mut slashes = path.match_indices('/').map(|(i, _)| i);
    match slashes.nth(n) {
        Some(end) => Some(&path[..end]),
        None if path.matches('/').count() >= n => Some(path),
        None => None,
    }
}

fn match_bytes(mut pattern: &[u8], mut name: &[u8]) -> Matched<bool> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        match match_chunk(chunk, name)? {
            Some(t) if t.is_empty() || !pattern.is_empty() => {
                name = t;
                continue;
            }
            _ => {}
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'chunks;
                }
                i += 1;
            }
        }
        return check_rest(pattern).map(|()| false);
    }
    Ok(name.is_empty())
}

/// Validates the syntax of the unmatched rest of a pattern.
fn check_rest(mut pattern: &[u8]) -> Matched<()> {
    while !pattern.is_empty() {
        let (_, chunk, rest) = scan_chunk(pattern);
        match_chunk(chunk, b"")?;
        pattern = rest;
    }
    Ok(())
}

/// Splits off leading stars and the chunk up to the next unbracketed `*`.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pattern.split_at(i);
    (star, chunk, rest)
}

/// Matches one star-free chunk at the start of `s`; `Some(rest)` on success.
/// Keeps parsing after a mismatch so malformed patterns are always reported.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Matched<Option<&'a [u8]>> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        failed |= s.is_empty();
        match c {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (rune, n) = decode_rune(s);
                    r = rune;
                    s = &s[n..];
                }
                let (matched, rest) = match_class(&chunk[1..], r)?;
                chunk = rest;
                failed |= !matched;
            }
            b'?' => {
                if !failed {
                    failed = s.first() == Some(&b'/');
                    s = &s[decode_rune(s).1..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                let lit = if c == b'\\' { chunk.get(1).copied().ok_or(BadPattern)? } else { c };
                chunk = &chunk[if c == b'\\' { 2 } else { 1 }..];
                if !failed {
                    failed = s.first() != Some(&lit);
                    s = &s[1..];
                }
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// A `[...]` class after its `[`: whether `r` matches, and the rest of the chunk.
fn match_class(mut chunk: &[u8], r: u32) -> Matched<(bool, &[u8])> {
    let negated = chunk.first() == Some(&b'^');
    if negated {
        chunk = &chunk[1..];
    }
    let mut matched = false;
    let mut ranges = 0;
    loop {
        if chunk.first() == Some(&b']') && ranges > 0 {
            return Ok((matched != negated, &chunk[1..]));
        }
        let (lo, rest) = get_esc(chunk)?;
        chunk = rest;
        let mut hi = lo;
        if chunk.first() == Some(&b'-') {
            (hi, chunk) = get_esc(&chunk[1..])?;
        }
        matched |= lo <= r && r <= hi;
        ranges += 1;
    }
}

/// One possibly escaped character of a class; must be followed by more pattern.
fn get_esc(chunk: &[u8]) -> Matched<(u32, &[u8])> {
    let chunk = match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(b'\\') => &chunk[1..],
        Some(_) => chunk,
    };
    if chunk.is_empty() {
        return Err(BadPattern);
    }
    let (r, n) = decode_rune(chunk);
    if r == 0xFFFD && n == 1 {
        return Err(BadPattern);
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

/// Go's `utf8.DecodeRune`: `(U+FFFD, 1)` for an invalid byte, `(U+FFFD, 0)` for empty.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    let Some(&b0) = s.first() else {
        return (0xFFFD, 0);
    };
    let width = match b0 {
        0x00..=0x7F => return (u32::from(b0), 1),
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (0xFFFD, 1),
    };
    match s.get(..width).and_then(|w| std::str::from_utf8(w).ok()).and_then(|w| w.chars().next()) {
        Some(c) => (u32::from(c), width),
        None => (0xFFFD, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_glob_lists_that_would_fail_open_are_refused() {
        for ok in ["", "*.corp.example,git.internal/*", "example.com/[a-c]*", "x/\\*", "a,,b", "example.com/[^x]"] {
            check_prefix_patterns(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        let err = check_prefix_patterns("*.corp.example, git.internal/*").unwrap_err().to_string();
        assert!(err.contains("\"*.corp.example,git.internal/*\""), "{err}");
        for bad in ["example.com/[a-", "example.com/[]", "x\\", "example.com/[z-]", "[-a]"] {
            let err = check_prefix_patterns(bad).unwrap_err().to_string();
            assert!(err.contains("malformed"), "{bad:?}: {err}");
            assert!(!match_prefix_patterns(bad, "example.com/abc"), "{bad:?} is malformed in Go too: never matches");
        }
    }

    #[test]
    fn go_path_match_table() {
        // (pattern, name, Some(matched) or None for ErrBadPattern), from Go's path.Match tests
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*", "ab/c", Some(false)),
            ("a*/b", "abc/b", Some(true)),
            ("a*/b", "a/c/b", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("a[^a][^a][^a]b", "a☺b", Some(false)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "x", Some(true)),
            ("[\\-x]", "-", Some(true)),
            ("[\\-x]", "a", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[x-]", "-", None),
            ("[x-]", "z", None),
            ("[-x]", "x", None),
            ("[-x]", "-", None),
            ("[-x]", "a", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "a", None),
            ("a[", "ab", None),
            ("a[", "x", None),
            ("a/b[", "x", None),
            ("*x", "xxx", Some(true)),
        ];
        for &(pattern, name, want) in cases {
            assert_eq!(path_match(pattern, name), want, "Match({pattern:?}, {name:?})");
        }
    }

    #[test]
    fn prefix_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.corp.example.com", "git.corp.example.com/a/b", true),
            ("*.corp.example.com", "corp.example.com/a", false),
            ("rsc.io/private", "rsc.io/private", true),
            ("rsc.io/private", "rsc.io/private/sub/pkg", true),
            ("rsc.io/private", "rsc.io/privateer", false),
            ("rsc.io/private", "rsc.io", false),
            ("rsc.io/private/", "rsc.io/private/x", true),
            ("github.com/org/*", "github.com/org/repo/sub", true),
            ("github.com/org/*", "github.com/other/repo", false),
            ("a.com,b.com", "b.com/x", true),
            (",,a.com,", "a.com", true),
            ("", "a.com", false),
            (",", "a.com", false),
            ("[", "a.com", false),
            ("*", "anything.com/x/y", true),
            ("example.com", "example.com", true),
        ];
        for &(globs, path, want) in cases {
            assert_eq!(match_prefix_patterns(globs, path), want, "{globs:?} vs {path:?}");
        }
    }
}
