//! The `FLOTILLA_*` environment layer of the configuration.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// Variables that belong to other tools (flotillactl) or to logging, not to
/// the configuration; they share the prefix and must not be rejected.
const NOT_CONFIG: [&str; 4] = ["FLOTILLA_LOG", "FLOTILLA_CLUSTER", "FLOTILLA_ADMIN_TOKEN", "FLOTILLA_BIN"];

/// `FLOTILLA_NODE_ID`, `FLOTILLA_DATA_DIR`, `FLOTILLA_SHUTDOWN_GRACE` and `FLOTILLA_<SECTION>__<KEY>`.
pub(super) fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<()> {
    let vars: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("FLOTILLA_")).collect();
    for (name, value) in vars {
        if NOT_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let rest = &name["FLOTILLA_".len()..];
        let value = env_value(&value);
        match rest.split_once("__") {
            None if ["NODE_ID", "DATA_DIR", "SHUTDOWN_GRACE"].contains(&rest) => {
                table.insert(rest.to_ascii_lowercase(), value);
            }
            None if rest == "SUMDB" && value.as_str() == Some("") => continue,
            None if rest == "SUMDB" => {
                if value.as_str() != Some("off") {
                    bail!("{name} only takes \"off\" (no checksum database); configure databases with [[sumdb]] tables in the config file");
                }
                table.insert("sumdb".into(), toml::Value::Array(Vec::new()));
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
