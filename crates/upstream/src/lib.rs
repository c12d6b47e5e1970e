//! The GOPROXY chain client: the go command's `,` / `|` fallback rules over
//! a list of upstream proxies, private-path routing to a separate chain,
//! custom CA bundles, deadlines and size caps; and `Group`, the per-key
//! singleflight the gateway runs each fill through (the client itself does
//! not deduplicate: a fill is shared once, around the whole of it).

mod chain;
mod client;
mod config;
mod error;
mod http;
mod probe;
mod singleflight;

pub use client::{Download, Fetched, Upstream};
pub use config::{Config, DEFAULT_PROXIES};
pub use error::{Error, Result};
pub use probe::Probe;
pub use singleflight::Group;
