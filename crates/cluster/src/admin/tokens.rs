//! Admin tokens and their names (`admin.token_file`): one `name:token` per
//! line, so the audit log can say who did what. A file holding a single
//! token without a name (the first format) is one token named `admin`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use subtle::ConstantTimeEq;

/// The name given to the token of a single-token file.
pub const DEFAULT_NAME: &str = "admin";
const MIN_TOKEN_LEN: usize = 16;

#[derive(Clone, Debug)]
pub struct Tokens {
    named: Vec<(String, String)>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read admin.token_file {}", path.display()))?;
        Tokens::parse(&text).with_context(|| format!("admin.token_file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Tokens> {
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let named = match lines[..] {
            [single] if !single.contains(':') => vec![(DEFAULT_NAME.to_string(), single.to_string())],
            _ => lines
                .iter()
                .enumerate()
                .map(|(i, line)| match line.split_once(':') {
                    Some((name, token)) => Ok((name.trim().to_string(), token.trim().to_string())),
                    None => bail!("line {}: expected name:token", i + 1),
                })
                .collect::<Result<Vec<_>>>()?,
        };
        if named.is_empty() {
            bail!("holds no token: write one `name:token` per line (token: `openssl rand -hex 32`)");
        }
        for (i, (name, token)) in named.iter().enumerate() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) {
                bail!("token {}: the name {name:?} must be letters, digits, '-', '_', '.' or '@'", i + 1);
            }
            if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("token {name:?} must hold at least {MIN_TOKEN_LEN} printable characters (e.g. `openssl rand -hex 32`)");
            }
            if named[..i].iter().any(|(other, _)| other == name) {
                bail!("the name {name:?} is used twice");
            }
        }
        Ok(Tokens { named })
    }

    /// The name of the token `given`, compared in constant time with every token.
    pub fn who(&self, given: &str) -> Option<&str> {
        let mut found = None;
        for (name, token) in &self.named {
            if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(name.as_str());
            }
        }
        found
    }

    pub fn count(&self) -> usize {
        self.named.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_token_file_is_the_token_named_admin() {
        let tokens = Tokens::parse("0123456789abcdef0123\n").unwrap();
        assert_eq!(tokens.who("0123456789abcdef0123"), Some(DEFAULT_NAME));
        assert_eq!(tokens.who("0123456789abcdef012"), None);
    }

    #[test]
    fn named_tokens_say_who() {
        let tokens = Tokens::parse("# operators\nalice:aaaaaaaaaaaaaaaaaaaa\nci-bot: bbbbbbbbbbbbbbbbbbbb\n").unwrap();
        assert_eq!(tokens.count(), 2);
        assert_eq!(tokens.who("aaaaaaaaaaaaaaaaaaaa"), Some("alice"));
        assert_eq!(tokens.who("bbbbbbbbbbbbbbbbbbbb"), Some("ci-bot"));
        assert_eq!(tokens.who("cccccccccccccccccccc"), None);
    }

    #[test]
    fn bad_token_files_are_refused_with_the_reason() {
        let err = |text: &str| Tokens::parse(text).unwrap_err().to_string();
        assert!(err("").contains("holds no token"));
        assert!(err("short").contains("at least 16"));
        assert!(err("a:aaaaaaaaaaaaaaaaaaaa\nnoname\n").contains("line 2: expected name:token"));
        assert!(err("a:aaaaaaaaaaaaaaaaaaaa\na:bbbbbbbbbbbbbbbbbbbb\n").contains("used twice"));
        assert!(err("bad name:aaaaaaaaaaaaaaaaaaaa\nb:bbbbbbbbbbbbbbbbbbbb").contains("must be letters"));
    }
}
