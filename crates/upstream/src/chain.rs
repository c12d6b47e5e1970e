//! A GOPROXY-syntax proxy list and the go command's rules for walking it.

use crate::{Error, Result};
use reqwest::Url;

/// One entry of a proxy list.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Proxy(Base),
    /// `off`: fail with [`Error::Disabled`] when the walk reaches it.
    Off,
}

/// A proxy's base URL, trailing `/` trimmed, with a masked form for messages.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub url: String,
    pub masked: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub target: Target,
    /// The separator after this entry was `|`: go on after any error, not
    /// only after 404/410.
    pub fall_back_on_error: bool,
}

/// A parsed proxy list, in the order it is tried.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub entries: Vec<Entry>,
}

impl Chain {
    /// Parses `list` like the go command's `proxyList`, refusing `direct`
    /// and `file://`, which a mirror cannot serve from. `setting` names the
    /// configuration key in error messages.
    pub fn parse(setting: &str, list: &str) -> Result<Chain> {
        let mut entries = Vec::new();
        let mut rest = list;
        while !rest.is_empty() {
            let (item, fall_back_on_error) = match rest.find([',', '|']) {
                Some(i) => {
                    let sep = rest.as_bytes()[i];
                    let item = &rest[..i];
                    rest = &rest[i + 1..];
                    (item, sep == b'|')
                }
                None => (std::mem::take(&mut rest), false),
            };
            let item = item.trim();
            match item {
                "" => continue,
                "off" => {
                    entries.push(Entry { target: Target::Off, fall_back_on_error });
                    break;
                }
                "direct" => return Err(direct_refused(setting)),
                _ => {
                    let base = parse_base(setting, item)?;
                    entries.push(Entry { target: Target::Proxy(base), fall_back_on_error });
                }
            }
        }
        if entries.is_empty() {
            return Err(Error::Config(format!("{setting} = {list:?} contains no proxy")));
        }
        Ok(Chain { entries })
    }

    /// The list as it is used, credentials masked.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, entry) in self.entries.iter().enumerate() {
            out.push_str(match &entry.target {
                Target::Proxy(base) => &base.masked,
                Target::Off => "off",
            });
            if i + 1 < self.entries.len() {
                out.push(if entry.fall_back_on_error { '|' } else { ',' });
            }
        }
        out
    }
}

fn direct_refused(setting: &str) -> Error {
    Error::Config(format!(
        "{setting} contains \"direct\", but Flotilla is a proxy and cannot fetch from version control; \
         list only proxies here and let clients fall back themselves with GOPROXY=<mirror>,direct"
    ))
}

fn parse_base(setting: &str, item: &str) -> Result<Base> {
    let with_scheme = if item.contains(":/") || !item.contains(['.', ':', '/']) || item.starts_with('/') {
        item.to_string()
    } else {
        format!("https://{item}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| Error::Config(format!("{setting}: invalid proxy URL {item:?}: {e} (write it as https://host[/prefix])")))?;
    match url.scheme() {
        "https" => {}
        "http" if url.username().is_empty() && url.password().is_none() => {}
        "http" => {
            return Err(Error::Config(format!("{setting}: refusing to pass credentials to insecure URL {}; use https", masked(&url))))
        }
        other => {
            return Err(Error::Config(format!("{setting}: proxy URL {item:?} has scheme {other:?}; only http and https are supported")))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("{setting}: proxy URL {item:?} has no host")));
    }
    Ok(Base { url: trim(url.as_str()), masked: masked(&url) })
}

fn masked(url: &Url) -> String {
    let mut shown = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = shown.set_password(None);
        let _ = shown.set_username("***");
    }
    trim(shown.as_str())
}

fn trim(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// Which error a failed walk reports, ranked like the go command's
/// `TryProxies`: a real failure outranks "not found", so a broken proxy is
/// never hidden behind a later proxy's 404, and `is_not_found` means that no
/// proxy had it.
#[derive(Default)]
pub(crate) struct Failures {
    best: Option<Error>,
}

impl Failures {
    /// Records a failed entry; returns whether the walk goes on.
    pub fn record(&mut self, entry: &Entry, err: Error) -> bool {
        let not_found = err.is_not_found();
        let go_on = not_found || entry.fall_back_on_error;
        if go_on {
            tracing::debug!(error = %err, "upstream failed, trying the next proxy");
        }
        let best_is_real = self.best.as_ref().is_some_and(|b| !b.is_not_found());
        if !not_found || !best_is_real {
            self.best = Some(err);
        }
        go_on
    }

    pub fn into_error(self) -> Error {
        self.best.unwrap_or(Error::Disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(list: &str) -> String {
        Chain::parse("upstream.proxies", list).unwrap().describe()
    }

    fn config_error(list: &str) -> String {
        match Chain::parse("upstream.proxies", list) {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error for {list:?}, got {other:?}"),
        }
    }

    #[test]
    fn separators_and_schemes_follow_the_go_command() {
        assert_eq!(
            described("https://a.example/,b.example|http://c:8080/prefix/"),
            "https://a.example,https://b.example|http://c:8080/prefix"
        );
        assert_eq!(described(" https://a.example , ,off,https://ignored.example"), "https://a.example,off");
        assert_eq!(described("localhost:3000"), "https://localhost:3000");
    }

    #[test]
    fn direct_is_refused_with_advice() {
        let m = config_error("https://proxy.golang.org,direct");
        assert!(m.contains("cannot fetch from version control"), "{m}");
        assert!(m.contains("GOPROXY=<mirror>,direct"), "{m}");
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(config_error("myproxy").contains("invalid proxy URL"));
        assert!(config_error("file:///srv/goproxy").contains("only http and https"));
        assert!(config_error(",,").contains("contains no proxy"));
        assert!(config_error("http://u:p@insecure.example").contains("refusing to pass credentials"));
    }

    #[test]
    fn credentials_are_masked() {
        let d = described("https://user:secret@a.example/p,https://token@b.example");
        assert_eq!(d, "https://***@a.example/p,https://***@b.example");
        let chain = Chain::parse("upstream.proxies", "https://user:secret@a.example").unwrap();
        let Target::Proxy(base) = &chain.entries[0].target else { panic!() };
        assert_eq!(base.url, "https://user:secret@a.example");
    }
}
