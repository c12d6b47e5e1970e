//! `flotillactl`: administers a Flotilla cluster through the admin API
//! (`flotilla.v1.Admin`) on the nodes' cluster port.
//!
//! - `client`: reaching a node (first address that answers) and its errors.
//! - `status`: `status` and `replication` (cluster health and lag).
//! - `modules`: `modules list|show`.
//! - `members`: `members list|add|promote|remove` (the raft membership).
//! - `purge`: removing a version (asks first on a terminal).
//! - `audit`: the audit log.
//! - `warm`: prefetching versions through the primary's gateway.
//! - `verify`: every node re-hashes its blobs and repairs corrupt ones.
//! - `doctor`: troubleshooting: the mirror (`checkup`), or this machine's
//!   go settings (`doctor --client`).
//! - `output`: tables and human-readable sizes and ages.

mod audit;
mod checkup;
mod client;
mod doctor;
mod members;
mod modules;
mod output;
mod purge;
mod status;
mod verify;
mod warm;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use proto::tls::{ClusterTls, TlsFiles, Transport};

use crate::client::Admin;

#[derive(Parser)]
#[command(
    name = "flotillactl",
    version,
    about = "Administer a Flotilla cluster",
    long_about = "Administer a Flotilla cluster through the admin API on the nodes' cluster port (7000 by default).\n\n\
                  Any node will do: reads are answered by the node asked, calls that change the catalog are passed \
                  on to the primary. The nodes must have admin.token_file set; give its content as \
                  FLOTILLA_ADMIN_TOKEN or --token-file.",
    after_help = "Examples:\n  \
                  export FLOTILLA_CLUSTER=n1.example:7000,n2.example:7000,n3.example:7000\n  \
                  export FLOTILLA_ADMIN_TOKEN=$(cat /etc/flotilla/admin-token)\n  \
                  flotillactl status\n  \
                  flotillactl replication --watch\n  \
                  flotillactl modules list 'github.com/BurntSushi/*'\n  \
                  flotillactl modules show github.com/BurntSushi/toml@v1.3.2\n  \
                  flotillactl warm --file go.sum\n  \
                  flotillactl purge github.com/BurntSushi/toml@v1.3.2\n  \
                  flotillactl audit"
)]
struct Cli {
    /// Cluster addresses (host:port of the cluster port), comma-separated; tried in turn until one answers.
    #[arg(long, env = "FLOTILLA_CLUSTER", value_delimiter = ',', default_value = "127.0.0.1:7000", global = true)]
    cluster: Vec<String>,
    /// The admin token (one of the tokens in the nodes' admin.token_file).
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
    /// Print the answer as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cluster at a glance: every member, its role, indexes, gateway, lag and disk; the primary.
    ///
    /// Exits with status 2 when the cluster is degraded (a member unreachable,
    /// no primary, a member behind), with the reason on the last line.
    #[command(after_help = "Examples:\n  flotillactl status\n  flotillactl status --json | jq .primary")]
    Status,
    /// Replication lag: per node and overall, blobs and bytes behind, the oldest missing blob, failing pulls.
    #[command(visible_alias = "lag", after_help = "Examples:\n  flotillactl replication\n  flotillactl lag --watch --interval 1s")]
    Replication {
        /// Refresh in place until interrupted (Ctrl-C); shows transfer throughput.
        #[arg(long, short = 'w')]
        watch: bool,
        /// Time between refreshes with --watch.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
    /// What the mirror holds.
    #[command(subcommand)]
    Modules(modules::ModulesCommand),
    /// The cluster's members: raft voters and learners.
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// Remove a module version from the cache of every node.
    ///
    /// Its .info, .mod and .zip leave the catalog at once (through raft); every
    /// node deletes the zip's blob after replication.purge_grace unless another
    /// version still references it. The next request for the version fetches
    /// it from upstream again.
    ///
    /// On a terminal it asks for confirmation first. If the answer does not
    /// come in time the purge may or may not have happened: it is never
    /// repeated on another node; `flotillactl audit` shows what happened.
    #[command(after_help = "Examples:\n  flotillactl purge github.com/BurntSushi/toml@v1.3.2\n  \
                            flotillactl purge --yes example.com/m@v1.0.0   # no question (scripts)")]
    Purge {
        /// The module version, as `module@version` (e.g. `github.com/BurntSushi/toml@v1.3.2`).
        target: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Prefetch module versions into the mirror so CI never waits.
    ///
    /// Takes module@version arguments and files: a go.sum (every version in
    /// it; `/go.mod`-only lines warm the .mod only), a go.mod (every
    /// require), or any other file of module@version lines. Each version is
    /// requested from the primary's gateway, which fetches it from upstream
    /// once; versions the mirror already holds are skipped ("already
    /// cached"), so a second run fetches nothing.
    #[command(after_help = "Examples:\n  flotillactl warm github.com/BurntSushi/toml@v1.3.2 golang.org/x/text@v0.14.0\n  \
                            flotillactl warm --file go.sum\n  \
                            flotillactl warm --file go.mod --file extra-modules.txt")]
    Warm {
        /// Versions as module@version.
        targets: Vec<String>,
        /// A go.sum, go.mod or module@version-per-line file (repeatable).
        #[arg(long, short = 'f')]
        file: Vec<PathBuf>,
        /// Fetch through this gateway URL instead of the primary's.
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Every node re-hashes every zip blob it holds and repairs corrupt copies from a good one.
    ///
    /// A copy whose content does not match its sha256 is quarantined and
    /// fetched again from a peer before the node answers. Exits with status
    /// 2 when a node could not be verified, 1 when a copy could not be repaired.
    ///
    /// With --sumdb: instead, the primary re-checks every cached version
    /// (the h1: of its .mod and zip) against the checksum database it
    /// verifies with (the database's record, proven in its signed tree
    /// head). Mismatches are reported with both hashes (and recorded as
    /// security events in the audit log), versions the database does not
    /// know are listed; private modules (upstream.private) are skipped.
    /// Exits with status 2 when a mismatch is found or a version could not be checked.
    #[command(after_help = "Examples:\n  flotillactl verify\n  flotillactl verify --json\n  flotillactl verify --sumdb")]
    Verify {
        /// Check the cached versions against the checksum database instead of re-hashing blobs.
        #[arg(long)]
        sumdb: bool,
    },
    /// Troubleshoot the mirror, or (--client) this machine's go command.
    ///
    /// Without --client: every member reachable, a primary and a quorum,
    /// clock skew between the nodes, free disk, each node's upstream proxies
    /// (DNS, TCP, TLS and HTTP; an untrusted certificate names
    /// upstream.ca_file), each configured checksum database (its tree head
    /// fetched and verified now; the size and age of the newest verified
    /// one), and a real module fetched through the primary with its sha256
    /// and h1: checked against the catalog (--module).
    ///
    /// With --client: reads `go env GOPROXY GONOPROXY GONOSUMDB GOPRIVATE
    /// GOSUMDB GOFLAGS` and names every setting that keeps the go command
    /// from using the mirror (or from checking what it downloads), with the
    /// line that fixes it for bash, PowerShell, CMD and `go env -w`. The
    /// mirror's URLs are the cluster's gateway URLs, or --mirror.
    ///
    /// Exits with status 2 when something needs fixing.
    #[command(after_help = "Examples:\n  flotillactl doctor\n  flotillactl doctor --module golang.org/x/text@v0.14.0\n  \
                            flotillactl doctor --client\n  \
                            flotillactl doctor --client --mirror http://mirror.example.com:8080")]
    Doctor {
        /// Check the go command on this machine instead of the mirror.
        #[arg(long)]
        client: bool,
        /// With --client: the mirror's URL(s) as clients use them, instead of the cluster's gateway URLs.
        #[arg(long, requires = "client")]
        mirror: Option<String>,
        /// The module version fetched through the mirror as a round trip.
        #[arg(long, default_value = "rsc.io/quote@v1.5.2", conflicts_with = "client")]
        module: String,
    },
    /// Print a shell completion script (bash, zsh, fish, powershell).
    #[command(after_help = "Examples:\n  \
                            flotillactl completion bash > /etc/bash_completion.d/flotillactl\n  \
                            flotillactl completion zsh > \"${fpath[1]}/_flotillactl\"\n  \
                            flotillactl completion fish > ~/.config/fish/completions/flotillactl.fish\n  \
                            flotillactl completion powershell >> $PROFILE")]
    Completion { shell: clap_complete::Shell },
    /// The audit log: every admin call that changed the cluster, who made it (admin token name) and how it ended.
    #[command(after_help = "Examples:\n  flotillactl audit\n  flotillactl audit --limit 10 --json")]
    Audit {
        /// Show the newest this many records.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// How a command ended when it did not fail outright.
pub enum Outcome {
    Ok,
    /// The command worked but found the cluster unhealthy (exit status 2).
    Degraded,
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
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Degraded) => ExitCode::from(2),
        Err(e) => {
            eprintln!("flotillactl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome> {
    if let Command::Completion { shell } = &cli.command {
        clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "flotillactl", &mut std::io::stdout());
        return Ok(Outcome::Ok);
    }
    if let Command::Doctor { mirror: Some(mirror), .. } = &cli.command {
        return doctor::client(None, cli.json, Some(mirror)).await;
    }
    let admin = Admin::new(&cli.cluster, token(&cli)?, transport(&cli)?)?;
    match &cli.command {
        Command::Status => status::status(&admin, cli.json).await,
        Command::Replication { watch, interval } => status::replication(&admin, cli.json, *watch, *interval).await,
        Command::Modules(command) => modules::run(&admin, cli.json, command).await,
        Command::Members(command) => members::run(&admin, cli.json, command).await,
        Command::Purge { target, yes } => purge::purge(&admin, cli.json, target, *yes).await,
        Command::Warm { targets, file, gateway } => warm::warm(&admin, cli.json, targets, file, gateway.as_deref()).await,
        Command::Verify { sumdb: false } => verify::verify(&admin, cli.json).await,
        Command::Verify { sumdb: true } => verify::verify_sumdb(&admin, cli.json).await,
        Command::Completion { .. } => Ok(Outcome::Ok),
        Command::Doctor { client: true, mirror, .. } => doctor::client(Some(&admin), cli.json, mirror.as_deref()).await,
        Command::Doctor { module, .. } => checkup::doctor(&admin, cli.json, module).await,
        Command::Audit { limit } => audit::audit(&admin, cli.json, *limit).await,
    }
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
pub fn split_target(target: &str) -> Result<(&str, &str)> {
    match target.rsplit_once('@') {
        Some((module, version)) if !module.is_empty() && !version.is_empty() => Ok((module, version)),
        _ => bail!("{target:?} is not module@version (e.g. github.com/BurntSushi/toml@v1.3.2)"),
    }
}

/// Plaintext, or mutual TLS when the `--tls-*` files are given.
fn transport(cli: &Cli) -> Result<Transport> {
    Ok(match (&cli.tls_ca_file, &cli.tls_cert_file, &cli.tls_key_file) {
        (Some(ca), Some(cert), Some(key)) => {
            let files = TlsFiles { ca_file: ca.clone(), cert_file: cert.clone(), key_file: key.clone() };
            Transport::Tls(std::sync::Arc::new(ClusterTls::load(&files)?))
        }
        _ => Transport::Plaintext,
    })
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
