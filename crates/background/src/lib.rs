//! Background work, visible: every long-running loop of a node (replication
//! workers, anti-entropy, scrub, placement reports, announce, the cluster
//! gRPC server) is started through one [`Workers`] runner with a name.
//!
//! - `runner`: [`Workers`] spawns each loop in a `tracing` span named after
//!   it, lists their status for `/api/v1/status` (`api::WorkerStatus`) and,
//!   at shutdown, stops them one by one in reverse start order under one
//!   deadline.
//! - `worker`: [`Worker`], the handle a loop gets: its stop signal, and
//!   where it says what it does (idle, working on X, an error, a unit of
//!   work done).

mod runner;
mod worker;

pub use runner::{Overdue, Workers};
pub use worker::Worker;
