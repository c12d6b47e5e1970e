//! Real-process test harness for Flotilla: generated Go modules
//! ([`modules`]), a fake upstream GOPROXY origin ([`origin`]), `flotilla`
//! node processes that can be stopped, killed and restarted ([`node`]), the
//! real `go` command in an isolated workspace ([`gocmd`]), a raw HTTP/1.1
//! client that sends paths verbatim ([`http`]), a test checksum database
//! ([`sumdb`]), an HTTPS server with an untrusted certificate ([`tls`]),
//! `flotillactl` runs ([`ctl`]) and condition waits with deadlines ([`wait`]); and for the container suite, the Docker engine and
//! a base image built without a registry ([`docker`]) and the repository's
//! compose file brought up on a private network ([`compose`]).
//!
//! The suites in `tests/tests/` run the `flotilla` binary: build it first
//! (`cargo build --bins`, same target dir) or point `FLOTILLA_BIN` at it:
//!
//! ```text
//! FLOTILLA_BIN=/path/to/flotilla cargo test -p flotilla-e2e
//! ```
//!
//! `go_client::origin_modules_are_valid_for_go` needs only the `go` command.

pub mod bulk;
pub mod cluster;
pub mod compose;
pub mod ctl;
pub mod docker;
pub mod escape;
pub mod gocmd;
pub mod http;
pub mod modules;
pub mod node;
pub mod origin;
pub mod sumdb;
pub mod tls;
pub mod wait;

pub use gocmd::{GoEnv, GoOutput};
pub use http::Response;
pub use modules::{ModuleSet, ModuleVersion, Program};
pub use node::{Node, NodeOptions};
pub use origin::{Origin, Tamper};
pub use sumdb::SumdbServer;
pub use wait::{wait_for, wait_until};

/// Lowercase hex sha256 of `bytes`, the content address Flotilla uses.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A fake origin serving `modules` and a node in front of it, configured by
/// `configure` (e.g. `|o| o.env("FLOTILLA_CACHE__LIST_TTL", "1s")`).
pub fn start_mirror(modules: ModuleSet, configure: impl FnOnce(NodeOptions) -> NodeOptions) -> (Origin, Node) {
    let origin = Origin::start(modules);
    let node = Node::start(configure(NodeOptions::new(origin.url())));
    (origin, node)
}
