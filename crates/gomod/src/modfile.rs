//! What a mirror must know of a `.mod` before keeping it forever: that it
//! is a go.mod at all. UTF-8 text with one `module` directive, read the way
//! the go command's lexer reads it (`//` comments, `"quoted"` and
//! `` `raw` `` paths, `verb (` … `)` blocks).
//!
//! The declared path is returned, not compared with the requested one: a
//! fork used through `replace` keeps its original path, and reporting that
//! is the go command's business.

use crate::error::{clip, Error, Result};

/// The module path a go.mod declares in its `module` directive.
pub fn go_mod_module_path(data: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(data).map_err(|e| invalid(format!("is not UTF-8 text (bad byte at offset {})", e.valid_up_to())))?;
    let first = text.trim_start();
    if first.is_empty() {
        return Err(invalid("is empty; a go.mod starts with a module directive".into()));
    }
    if first.starts_with('<') {
        return Err(invalid(
            "is an HTML or XML page, not a go.mod (a captive portal or an intercepting proxy answering for upstream?)".into(),
        ));
    }
    let mut found: Option<String> = None;
    let mut block: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        let tokens = tokens(line, n + 1)?;
        let Some(current) = block.as_mut() else {
            match tokens.as_slice() {
                [verb, open] if open == "(" => block = Some(Block { module: verb == "module", paths: Vec::new(), line: n + 1 }),
                [verb, rest @ ..] if verb == "module" => record(&mut found, module_args(rest, n + 1)?, n + 1)?,
                _ => {}
            }
            continue;
        };
        if tokens.first().is_some_and(|t| t == ")") {
            let done = block.take().filter(|b| b.module);
            if let Some(b) = done {
                let path = match b.paths.as_slice() {
                    [one] => one.clone(),
                    [] => return Err(invalid(format!("line {}: module ( ) block names no path", b.line))),
                    _ => return Err(invalid(format!("line {}: module ( ) block names more than one path", b.line))),
                };
                record(&mut found, path, b.line)?;
            }
        } else if current.module && !tokens.is_empty() {
            current.paths.push(module_args(&tokens, n + 1)?);
        }
    }
    if let Some(b) = block {
        return Err(invalid(format!("line {}: block is not closed with ')'", b.line)));
    }
    found.ok_or_else(|| invalid("has no module directive".into()))
}

/// The `require` directives of a go.mod (one-line and `require ( … )`
/// blocks), as (module path, version) in file order. Versions are returned
/// as written; the caller checks them.
pub fn go_mod_requires(data: &[u8]) -> Result<Vec<(String, String)>> {
    let text = std::str::from_utf8(data).map_err(|e| invalid(format!("is not UTF-8 text (bad byte at offset {})", e.valid_up_to())))?;
    let mut out = Vec::new();
    let mut in_block: Option<bool> = None;
    for (n, line) in text.lines().enumerate() {
        let tokens = tokens(line, n + 1)?;
        let require = match (in_block, tokens.as_slice()) {
            (Some(_), [close, ..]) if close == ")" => {
                in_block = None;
                continue;
            }
            (Some(true), [path, version, ..]) => Some((path, version)),
            (Some(_), _) => None,
            (None, [verb, open]) if open == "(" => {
                in_block = Some(verb == "require");
                None
            }
            (None, [verb, path, version, ..]) if verb == "require" => Some((path, version)),
            _ => None,
        };
        if let Some((path, version)) = require {
            out.push((path.clone(), version.clone()));
        }
    }
    Ok(out)
}

/// An open `verb (` block; only a `module` block's lines matter.
struct Block {
    module: bool,
    paths: Vec<String>,
    line: usize,
}

fn record(found: &mut Option<String>, path: String, line: usize) -> Result<()> {
    if found.is_some() {
        return Err(invalid(format!("line {line}: repeated module directive")));
    }
    *found = Some(path);
    Ok(())
}

/// The arguments of a `module` directive on line `line`: exactly one path.
fn module_args(args: &[String], line: usize) -> Result<String> {
    let why = match args {
        [] => "module directive without a path".to_string(),
        [path] if path.is_empty() => "module directive with an empty path".to_string(),
        [path] if path.chars().any(char::is_control) => format!("module path {:?} contains a control character", clip(path)),
        [path] => return Ok(path.clone()),
        _ => "module directive with more than one path".to_string(),
    };
    Err(invalid(format!("line {line}: {why}")))
}

/// Splits line number `n` into tokens: words, unquoted strings, `(` and
/// `)`; a `//` at the start of a token begins a comment.
fn tokens(line: &str, n: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if line[i..].starts_with("//") {
            break;
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            out.push(quoted(&mut chars, c).map_err(|why| invalid(format!("line {n}: {why}")))?);
        } else {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || matches!(c, '(' | ')' | '"' | '`') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(word);
        }
    }
    Ok(out)
}

/// The rest of a string opened by `quote`; `"` strings take `\"` and `\\`.
fn quoted(chars: &mut impl Iterator<Item = (usize, char)>, quote: char) -> std::result::Result<String, Quoted> {
    let mut out = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            c if c == quote => return Ok(out),
            '\\' if quote == '"' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((_, e)) => return Err(Quoted::Escape(e)),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(Quoted::Unterminated)
}

/// What is wrong with a quoted string.
#[derive(Debug, thiserror::Error)]
enum Quoted {
    #[error("unsupported escape \\{0} in a quoted string")]
    Escape(char),
    #[error("unterminated quoted string")]
    Unterminated,
}

fn invalid(reason: String) -> Error {
    Error::InvalidGoMod(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_are_read_from_lines_and_blocks() {
        let go_mod = b"module example.com/app\n\ngo 1.21\n\nrequire golang.org/x/text v0.14.0 // indirect\n\
                       require (\n\tgithub.com/BurntSushi/toml v1.3.2\n\t\"example.com/quoted\" v0.1.0 // indirect\n)\n\
                       replace example.com/quoted => ../quoted\nexclude (\n\texample.com/bad v1.0.0\n)\n";
        let requires = go_mod_requires(go_mod).unwrap();
        let expected = [("golang.org/x/text", "v0.14.0"), ("github.com/BurntSushi/toml", "v1.3.2"), ("example.com/quoted", "v0.1.0")];
        assert_eq!(requires, expected.map(|(p, v)| (p.to_string(), v.to_string())));
    }

    fn path(text: &str) -> Result<String> {
        go_mod_module_path(text.as_bytes())
    }

    #[test]
    fn reads_the_module_path() {
        let cases = [
            ("module example.com/m\n", "example.com/m"),
            ("module example.com/m", "example.com/m"),
            ("\n\n  module   example.com/m   \n\ngo 1.21\n", "example.com/m"),
            ("// Deprecated: use example.com/n.\nmodule example.com/m // the old one\n", "example.com/m"),
            ("module \"example.com/quoted\"\n", "example.com/quoted"),
            ("module `example.com/raw`\n", "example.com/raw"),
            ("module \"example.com/a\\\"b\"\n", "example.com/a\"b"),
            ("module example.com/crlf\r\n\r\ngo 1.18\r\n", "example.com/crlf"),
            ("go 1.21\n\nrequire (\n\tmodule.example/x v1.0.0\n\texample.com/y v1.0.0\n)\n\nmodule example.com/late\n", "example.com/late"),
            ("module github.com/upstream/original\n", "github.com/upstream/original"),
            ("module foo\n", "foo"),
            ("module (\n\texample.com/block\n)\n", "example.com/block"),
            ("module example.com/m\nrequire example.com/x v1.0.0 // module example.com/other\n", "example.com/m"),
        ];
        for (text, want) in cases {
            assert_eq!(path(text).as_deref(), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_go_mod() {
        let cases = [
            ("<!DOCTYPE html>\n<html><head><title>Sign in to the Wi-Fi</title></head></html>\n", "HTML"),
            ("  <html>\nmodule example.com/m\n</html>", "HTML"),
            ("", "is empty"),
            (" \n\t\n", "is empty"),
            ("go 1.21\n", "no module directive"),
            ("// module example.com/m\n", "no module directive"),
            ("modulex example.com/m\n", "no module directive"),
            ("{\"Version\":\"v1.0.0\"}", "no module directive"),
            ("module\n", "line 1: module directive without a path"),
            ("module \"\"\n", "empty path"),
            ("module a b\n", "more than one path"),
            ("module example.com/a\nmodule example.com/b\n", "line 2: repeated module directive"),
            ("module \"example.com/open\n", "unterminated"),
            ("module \"a\\nb\"\n", "unsupported escape"),
            ("module (\n)\n", "names no path"),
            ("module (\n\texample.com/a\n\texample.com/b\n)\n", "more than one path"),
            ("module (\n\texample.com/a\n", "line 1: block is not closed"),
            ("module example.com/a\nmodule (\n\texample.com/b\n)\n", "line 2: repeated module directive"),
        ];
        for (text, want) in cases {
            let err = path(text).expect_err(text).to_string();
            assert!(err.starts_with("invalid go.mod: "), "{err}");
            assert!(err.contains(want), "{text:?}: want {want:?} in {err:?}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }

    #[test]
    fn refuses_bytes_that_are_not_utf8() {
        let err = go_mod_module_path(b"module example.com/m\n\xff\xfe").unwrap_err().to_string();
        assert!(err.contains("not UTF-8 text (bad byte at offset 21)"), "{err}");
    }
}
