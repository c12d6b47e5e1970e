//! Conformance of the upstream client against fake proxies on loopback.

mod common;

mod chain;
mod config;
mod download;
mod private;
mod tls;
