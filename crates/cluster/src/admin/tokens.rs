//! Admin tokens and their names (`admin.token_file`): one `name:token` per
//! line, so the audit log can say who did what. A file holding a single
//! token without a name (the first format) is one token named `admin`.
//!
//! The file is watched ([`TokenFile`]): an operator rotates a token by
//! adding the new one, switching clients and removing the old one, without
//! a restart. A file that no longer reads or parses keeps the tokens read
//! before (logged), so a bad edit neither locks everybody out nor opens
//! the API.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use subtle::ConstantTimeEq;

/// The name given to the token of a single-token file.
pub const DEFAULT_NAME: &str = "admin";
const MIN_TOKEN_LEN: usize = 16;
/// How often an admin call may look at the file's metadata.
const RECHECK: Duration = Duration::from_secs(1);
/// A file modified this recently is read again at the next check, even
/// when its metadata looks unchanged: a second write within the file
/// system's timestamp resolution changes neither size nor time.
const SETTLE: Duration = Duration::from_secs(2);

/// Why a token file was refused.
#[derive(Debug)]
pub enum TokensError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Group or others may read it (the message says which `chmod` to run).
    NotPrivate(proto::tls::TlsError),
    Empty,
    NotNamed {
        line: usize,
    },
    BadName {
        index: usize,
        name: String,
    },
    BadToken {
        name: String,
    },
    Duplicate {
        name: String,
    },
    /// A problem of the file at `path`.
    InFile {
        path: PathBuf,
        problem: Box<TokensError>,
    },
}

impl fmt::Display for TokensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokensError::Read { path, source } => write!(f, "cannot read admin.token_file {}: {source}", path.display()),
            TokensError::NotPrivate(e) => e.fmt(f),
            TokensError::Empty => f.write_str("holds no token: write one `name:token` per line (token: `openssl rand -hex 32`)"),
            TokensError::NotNamed { line } => write!(f, "line {line}: expected name:token"),
            TokensError::BadName { index, name } => {
                write!(f, "token {index}: the name {name:?} must be letters, digits, '-', '_', '.' or '@'")
            }
            TokensError::BadToken { name } => {
                write!(f, "token {name:?} must hold at least {MIN_TOKEN_LEN} printable characters (e.g. `openssl rand -hex 32`)")
            }
            TokensError::Duplicate { name } => write!(f, "the name {name:?} is used twice"),
            TokensError::InFile { path, problem } => write!(f, "admin.token_file {}: {problem}", path.display()),
        }
    }
}

/// The message holds every cause, so none is chained.
impl std::error::Error for TokensError {}

/// A parsed set of named tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    named: Vec<(String, String)>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        proto::tls::check_private(path, "admin.token_file").map_err(TokensError::NotPrivate)?;
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read { path: path.into(), source })?;
        Tokens::parse(&text).map_err(|e| TokensError::InFile { path: path.into(), problem: Box::new(e) })
    }

    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let named = match lines[..] {
            [single] if !single.contains(':') => vec![(DEFAULT_NAME.to_string(), single.to_string())],
            _ => lines
                .iter()
                .enumerate()
                .map(|(i, line)| match line.split_once(':') {
                    Some((name, token)) => Ok((name.trim().to_string(), token.trim().to_string())),
                    None => Err(TokensError::NotNamed { line: i + 1 }),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if named.is_empty() {
            return Err(TokensError::Empty);
        }
        for (i, (name, token)) in named.iter().enumerate() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) {
                return Err(TokensError::BadName { index: i + 1, name: name.clone() });
            }
            if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(TokensError::BadToken { name: name.clone() });
            }
            if named[..i].iter().any(|(other, _)| other == name) {
                return Err(TokensError::Duplicate { name: name.clone() });
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

/// `admin.token_file`, read at start-up and again whenever it changes
/// (its size, times or inode; looked at, at most once per second, by the
/// admin call that needs it).
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<Watched>,
}

struct Watched {
    tokens: Arc<Tokens>,
    stamp: Option<Stamp>,
    checked: Instant,
}

/// What tells a changed file: a rewrite changes the size or the times, a
/// replacement by rename the inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp { len: meta.len(), modified: meta.modified().ok(), changed: (meta.ctime(), meta.ctime_nsec()), inode: meta.ino() })
    }

    fn settled(&self) -> bool {
        self.modified.and_then(|m| m.elapsed().ok()).is_some_and(|age| age >= SETTLE)
    }
}

impl TokenFile {
    /// Reads the file; a file that cannot be used stops start-up.
    pub fn load(path: &Path) -> Result<TokenFile, TokensError> {
        let stamp = Stamp::of(path);
        let tokens = Arc::new(Tokens::load(path)?);
        Ok(TokenFile { path: path.into(), state: Mutex::new(Watched { tokens, stamp, checked: Instant::now() }) })
    }

    /// The tokens in force, after reading the file again if it changed.
    pub fn current(&self) -> Arc<Tokens> {
        let mut watched = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if watched.checked.elapsed() >= RECHECK {
            watched.checked = Instant::now();
            let stamp = Stamp::of(&self.path);
            let settled = watched.stamp.is_some_and(|s| s.settled());
            if stamp != watched.stamp || !settled {
                let changed = stamp != watched.stamp;
                watched.stamp = stamp;
                self.reload(&mut watched, changed);
            }
        }
        watched.tokens.clone()
    }

    fn reload(&self, watched: &mut Watched, changed: bool) {
        match Tokens::load(&self.path) {
            Ok(tokens) if tokens != *watched.tokens => {
                tracing::info!(file = %self.path.display(), tokens = tokens.count(), "admin.token_file changed: its tokens are in force now");
                watched.tokens = Arc::new(tokens);
            }
            Ok(_) => {}
            Err(e) if changed => {
                tracing::error!("{e}; the admin tokens read before stay in force until the file is fixed");
            }
            Err(_) => {}
        }
    }

    /// The name of the token `given` among the tokens in force.
    pub fn who(&self, given: &str) -> Option<String> {
        self.current().who(given).map(str::to_string)
    }

    pub fn count(&self) -> usize {
        self.current().count()
    }
}

#[cfg(test)]
mod tests;
