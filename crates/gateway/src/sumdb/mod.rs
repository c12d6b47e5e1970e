//! The checksum database side of the gateway: `/sumdb/<name>/…` proxied and
//! cached for the go command (`serve`), tiles and tree heads fetched,
//! authenticated and recorded (`log`), and every version the primary fetches
//! checked against the database before it is stored (`verify`).

mod admin;
mod config;
mod log;
mod serve;
mod verify;

pub use admin::{check_cached, health, verifying_database, SumdbCheck, SumdbHealth};
pub use config::{SumdbConfig, SumdbConfigError, SUM_GOLANG_ORG};
pub(crate) use serve::handle;
pub(crate) use verify::{check_go_mod, check_zip};
