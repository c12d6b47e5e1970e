//! `flotillactl`: administers a Flotilla cluster through the admin API
//! (`flotilla.v1.Admin`) on the nodes' cluster port.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use proto::tls::{ClusterTls, TlsFiles, Transport, ANY_NODE};
use proto::{AdminClient, PurgeRequest};
use tonic::{Code, Request, Status};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(
    name = "flotillactl",
    version,
    about = "Administer a Flotilla cluster",
    long_about = "Administer a Flotilla cluster through the admin API on the nodes' cluster port (7000 by default).\n\n\
                  Any node will do: calls that change the catalog are passed on to the primary. The nodes must \
                  have admin.token_file set; give its content as FLOTILLA_ADMIN_TOKEN or --token-file."
)]
struct Cli {
    /// Cluster addresses (host:port of the cluster port), comma-separated; tried in turn until one answers.
    #[arg(long, env = "FLOTILLA_CLUSTER", value_delimiter = ',', default_value = "127.0.0.1:7000", global = true)]
    cluster: Vec<String>,
    /// The admin token (the content of the nodes' admin.token_file).
    #[arg(long, env = "FLOTILLA_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Read the admin token from this file instead.
    #[arg(long, conflicts_with = "token", global = true)]
    token_file: Option<PathBuf>,
    /// The cluster CA certificate (PEM): speak mutual TLS to the cluster port
    /// (with --tls-cert-file and --tls-key-file, e.g. flotillactl.crt/.key from `flotilla certs`).
    #[arg(long, env = "FLOTILLA_TLS_CA_FILE", global = true, requires_all = ["tls_cert_file", "tls_key_file"])]
    tls_ca_file: Option<PathBuf>,
    /// flotillactl's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "FLOTILLA_TLS_CERT_FILE", global = true, requires = "tls_ca_file")]
    tls_cert_file: Option<PathBuf>,
    /// flotillactl's private key (PEM, not readable by group or others).
    #[arg(long, env = "FLOTILLA_TLS_KEY_FILE", global = true, requires = "tls_ca_file")]
    tls_key_file: Option<PathBuf>,
    /// Print the answer as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Remove a module version from the cache of every node.
    ///
    /// Its .info, .mod and .zip leave the catalog at once (through raft); every
    /// node deletes the zip's blob after replication.purge_grace unless another
    /// version still references it. The next request for the version fetches
    /// it from upstream again.
    Purge {
        /// The module version, as `module@version` (e.g. `github.com/BurntSushi/toml@v1.3.2`).
        target: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flotillactl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flotillactl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let token = token(&cli)?;
    let transport = match (&cli.tls_ca_file, &cli.tls_cert_file, &cli.tls_key_file) {
        (Some(ca), Some(cert), Some(key)) => {
            let files = TlsFiles { ca_file: ca.clone(), cert_file: cert.clone(), key_file: key.clone() };
            Transport::Tls(std::sync::Arc::new(ClusterTls::load(&files).map_err(anyhow::Error::msg)?))
        }
        _ => Transport::Plaintext,
    };
    match &cli.command {
        Command::Purge { target } => {
            let (module, version) = split_target(target)?;
            let request = PurgeRequest { module: module.into(), version: version.into() };
            let reply = call(&cli.cluster, &transport, &token, |mut client, req| async move { client.purge(req).await }, request).await?;
            if cli.json {
                let json = serde_json::json!({
                    "module": module,
                    "version": version,
                    "zip_sha256": reply.zip_sha256,
                    "index": reply.index,
                    "primary": reply.primary,
                    "grace_seconds": reply.grace_seconds,
                });
                println!("{json}");
            } else {
                println!("purged {module}@{version} (raft index {}, primary node {})", reply.index, reply.primary);
                if !reply.zip_sha256.is_empty() {
                    println!(
                        "its zip blob {} is deleted on every node in {} s unless another version uses it",
                        reply.zip_sha256, reply.grace_seconds
                    );
                }
            }
        }
    }
    Ok(())
}

fn token(cli: &Cli) -> Result<String> {
    let token = match (&cli.token, &cli.token_file) {
        (_, Some(path)) => std::fs::read_to_string(path).with_context(|| format!("cannot read --token-file {}", path.display()))?,
        (Some(token), None) => token.clone(),
        (None, None) => {
            bail!("no admin token: set FLOTILLA_ADMIN_TOKEN (or pass --token-file) to the content of the nodes' admin.token_file")
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("the admin token must be printable characters without spaces (the content of admin.token_file)");
    }
    Ok(token)
}

/// `module@version`, split at the last `@` (module paths never contain one).
fn split_target(target: &str) -> Result<(&str, &str)> {
    match target.rsplit_once('@') {
        Some((module, version)) if !module.is_empty() && !version.is_empty() => Ok((module, version)),
        _ => bail!("{target:?} is not module@version (e.g. github.com/BurntSushi/toml@v1.3.2)"),
    }
}

/// Sends one admin call to the first address that answers; a node that is
/// down or has no primary is skipped.
async fn call<T, R, F, Fut>(addrs: &[String], transport: &Transport, token: &str, rpc: F, message: T) -> Result<R>
where
    T: Clone,
    F: Fn(AdminClient<tonic::transport::Channel>, Request<T>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
{
    let mut failures = Vec::new();
    for addr in addrs.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        let host_port = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        let endpoint = transport.endpoint(host_port, ANY_NODE).map_err(anyhow::Error::msg)?;
        let channel = match endpoint.connect_timeout(CONNECT_TIMEOUT).timeout(CALL_TIMEOUT).connect().await {
            Ok(channel) => channel,
            Err(e) => {
                let hint =
                    if transport.is_tls() { "" } else { "; if the nodes use TLS, give --tls-ca-file, --tls-cert-file, --tls-key-file" };
                failures.push(format!("{addr}: cannot connect ({}){hint}", with_sources(&e)));
                continue;
            }
        };
        let mut request = Request::new(message.clone());
        let bearer = format!("Bearer {token}").parse().context("the admin token is not valid in a header")?;
        request.metadata_mut().insert("authorization", bearer);
        match rpc(AdminClient::new(channel), request).await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) if status.code() == Code::Unavailable => failures.push(format!("{addr}: {}", status.message())),
            Err(status) => {
                // A TLS port answers a plaintext HTTP/2 client with garbage.
                let garbled = ["h2 protocol error", "transport error"].iter().any(|m| status.message().contains(m));
                let tls_hint = if !transport.is_tls() && garbled {
                    " (the node speaks TLS: give --tls-ca-file, --tls-cert-file, --tls-key-file)"
                } else {
                    ""
                };
                bail!("{addr}: {}{tls_hint}", explain(&status))
            }
        }
    }
    if failures.is_empty() {
        bail!("no cluster address given: set FLOTILLA_CLUSTER or --cluster to host:port of the nodes' cluster port");
    }
    bail!("no node could answer (check FLOTILLA_CLUSTER / --cluster):\n  {}", failures.join("\n  "))
}

/// An error and its causes, `outer: inner: innermost`.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn explain(status: &Status) -> String {
    // An HTTP server that is not a gRPC one (say, a node's gateway port)
    // answers with a plain HTTP status, which tonic reports like this.
    let not_grpc = status.code() == Code::Unimplemented || status.message().contains("while receiving response with status");
    let hint = if not_grpc { " (is this the cluster port of a Flotilla node? the gateway port does not serve the admin API)" } else { "" };
    format!("{}{hint}", status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_at_the_last_at() {
        assert_eq!(split_target("github.com/BurntSushi/toml@v1.3.2").unwrap(), ("github.com/BurntSushi/toml", "v1.3.2"));
        assert!(split_target("github.com/x/y").is_err());
        assert!(split_target("@v1.0.0").is_err());
        assert!(split_target("example.com/m@").is_err());
    }

    #[test]
    fn help_explains_every_option() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
