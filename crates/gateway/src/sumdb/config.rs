use gomod::sumdb::Verifier;
use serde::{Deserialize, Deserializer};

/// The go command's default database and its key (from Go's
/// `cmd/go/internal/modfetch/key.go`).
pub const SUM_GOLANG_ORG: (&str, &str, &str) =
    ("sum.golang.org", "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", "https://sum.golang.org");

/// One `[[sumdb]]` table: a checksum database this mirror proxies, and
/// (the first one) checks every fetched version against.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SumdbConfig {
    /// The name clients use (`GOSUMDB`), e.g. `sum.golang.org`.
    pub name: String,
    /// Its verifier key, `<name>+<hash>+<key>`.
    #[serde(deserialize_with = "verifier")]
    pub key: Verifier,
    /// Where the database answers, e.g. `https://sum.golang.org`.
    pub url: String,
}

fn verifier<'de, D: Deserializer<'de>>(d: D) -> Result<Verifier, D::Error> {
    Verifier::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// What is wrong with a `[[sumdb]]` table.
#[derive(Debug, thiserror::Error)]
pub enum SumdbConfigError {
    #[error("sumdb {name:?}: key {key:?} is for {key_name:?}; name and key must belong together")]
    KeyName { name: String, key: String, key_name: String },
    #[error("sumdb {name:?}: url {url:?} must be http:// or https://")]
    Url { name: String, url: String },
}

impl SumdbConfig {
    pub fn sum_golang_org() -> SumdbConfig {
        let (name, key, url) = SUM_GOLANG_ORG;
        SumdbConfig {
            name: name.to_string(),
            key: Verifier::parse(key).unwrap_or_else(|e| panic!("built-in key: {e}")),
            url: url.to_string(),
        }
    }

    /// `Err` says what is wrong with the table.
    pub fn validate(&self) -> Result<(), SumdbConfigError> {
        if self.key.name() != self.name {
            return Err(SumdbConfigError::KeyName {
                name: self.name.clone(),
                key: self.key.as_str().to_string(),
                key_name: self.key.name().to_string(),
            });
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(SumdbConfigError::Url { name: self.name.clone(), url: self.url.clone() });
        }
        Ok(())
    }

    /// `<url>/<path>`.
    pub(crate) fn url_of(&self, path: &str) -> String {
        format!("{}/{path}", self.url.trim_end_matches('/'))
    }
}
