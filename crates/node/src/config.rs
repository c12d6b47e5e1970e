//! Configuration: defaults, then a TOML file, then `FLOTILLA_*` environment
//! variables, then command-line flags — each layer overrides the one before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub gateway: GatewaySection,
    pub upstream: UpstreamSection,
    pub cache: CacheSection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    pub listen: SocketAddr,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSection {
    /// GOPROXY syntax: `,` falls through on 404/410, `|` on any error.
    pub proxies: String,
    /// GOPRIVATE-style globs of private module paths.
    pub private: String,
    /// The chain private paths are fetched from; they never go to `proxies`.
    pub private_proxies: String,
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    #[serde(with = "humantime_serde")]
    pub list_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("./flotilla-data"),
            gateway: GatewaySection::default(),
            upstream: UpstreamSection::default(),
            cache: CacheSection::default(),
        }
    }
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection { listen: SocketAddr::from(([0, 0, 0, 0], 8080)) }
    }
}

impl Default for UpstreamSection {
    fn default() -> Self {
        UpstreamSection {
            proxies: "https://proxy.golang.org".into(),
            private: String::new(),
            private_proxies: String::new(),
            ca_file: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection { list_ttl: Duration::from_secs(60), negative_ttl: Duration::from_secs(600) }
    }
}

/// Variables that belong to other tools (flotillactl) or to logging, not to
/// the configuration; they share the prefix and must not be rejected.
const NOT_CONFIG: [&str; 4] = ["FLOTILLA_LOG", "FLOTILLA_CLUSTER", "FLOTILLA_ADMIN_TOKEN", "FLOTILLA_BIN"];

impl Config {
    /// Loads the configuration from an optional file and the environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "environment".into());
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration ({source}): {}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.node_id == 0 {
            bail!("node_id must be 1 or more");
        }
        if self.cache.list_ttl.is_zero() {
            bail!("cache.list_ttl must be more than 0 (e.g. \"60s\")");
        }
        Ok(())
    }
}

/// `FLOTILLA_NODE_ID`, `FLOTILLA_DATA_DIR` and `FLOTILLA_<SECTION>__<KEY>`.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<()> {
    let vars: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("FLOTILLA_")).collect();
    for (name, value) in vars {
        if NOT_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let rest = &name["FLOTILLA_".len()..];
        let value = env_value(&value);
        match rest.split_once("__") {
            None if rest == "NODE_ID" || rest == "DATA_DIR" => {
                table.insert(rest.to_ascii_lowercase(), value);
            }
            None => continue,
            Some((section, key)) => {
                let section = section.to_ascii_lowercase();
                let entry = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(section_table) = entry.as_table_mut() else {
                    bail!("environment variable {name}: [{section}] is not a section");
                };
                section_table.insert(key.to_ascii_lowercase(), value);
            }
        }
    }
    Ok(())
}

/// Environment values are strings; numbers and booleans are typed so that
/// `FLOTILLA_NODE_ID=2` works like `node_id = 2`.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.gateway.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.data_dir, PathBuf::from("./flotilla-data"));
        assert_eq!(c.upstream.proxies, "https://proxy.golang.org");
        assert_eq!(c.cache.list_ttl, Duration::from_secs(60));
        assert_eq!(c.cache.negative_ttl, Duration::from_secs(600));
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flotilla.toml");
        std::fs::write(&path, "node_id = 3\n[cache]\nlist_ttl = \"5s\"\n[upstream]\nproxies = \"http://a.example,http://b.example\"\n").unwrap();
        let c = Config::load(Some(&path), env(&[("FLOTILLA_CACHE__LIST_TTL", "2s"), ("FLOTILLA_DATA_DIR", "/var/lib/x")])).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.cache.list_ttl, Duration::from_secs(2));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/x"));
        assert_eq!(c.upstream.proxies, "http://a.example,http://b.example");
    }

    #[test]
    fn other_tools_variables_are_ignored() {
        let c = Config::load(None, env(&[("FLOTILLA_CLUSTER", "n1:7000"), ("FLOTILLA_ADMIN_TOKEN", "x"), ("FLOTILLA_LOG", "debug"), ("FLOTILLA_NODE_ID", "2")])).unwrap();
        assert_eq!(c.node_id, 2);
    }

    #[test]
    fn typos_are_reported() {
        let err = Config::load(None, env(&[("FLOTILLA_CACHE__LIST_TT", "2s")])).unwrap_err().to_string();
        assert!(err.contains("list_tt"), "{err}");
        let err = Config::load(None, env(&[("FLOTILLA_CACHE__LIST_TTL", "soon")])).unwrap_err().to_string();
        assert!(err.contains("invalid configuration"), "{err}");
    }

    #[test]
    fn shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/flotilla.toml");
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/flotilla"));
    }
}
