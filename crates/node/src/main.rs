//! `flotilla`: a highly available Go module mirror.

mod certs;
mod cluster_config;
mod config;
mod devcluster;
mod logging;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "flotilla", version, about = "A highly available Go module mirror (GOPROXY server)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a mirror node. Works with no configuration at all: gateway on
    /// 0.0.0.0:8080, data in ./flotilla-data, upstream https://proxy.golang.org.
    ///
    /// Settings come from defaults, then --config FILE, then environment
    /// variables FLOTILLA_<SECTION>__<KEY> (e.g. FLOTILLA_CACHE__LIST_TTL=30s),
    /// then these flags. Log level: FLOTILLA_LOG (e.g. info, debug).
    Serve(ServeArgs),
    /// Start a cluster of N nodes on this machine (gateways on 8080…,
    /// cluster ports 7000…, data under one folder), print the GOPROXY line
    /// to use, and stop them all on Ctrl-C.
    DevCluster(devcluster::DevClusterArgs),
    /// Make a cluster CA and certificates for the nodes (node-<id>) and for
    /// flotillactl, for mutual TLS on the cluster port. Keys are written
    /// 0600; an existing CA in the folder is reused (to renew or add nodes).
    Certs(certs::CertsArgs),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (see deploy/flotilla.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address the HTTP gateway listens on [gateway.listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the catalog and blobs [data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Upstream proxy chain in GOPROXY syntax [upstream.proxies],
    /// e.g. "https://proxy.golang.org" or "http://a:8080|https://b".
    #[arg(long, value_name = "GOPROXY")]
    pub upstream: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::DevCluster(args) => devcluster::run(args),
        Command::Certs(args) => certs::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("flotilla: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
