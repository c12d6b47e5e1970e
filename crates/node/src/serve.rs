//! `flotilla serve`: start-up and shutdown, top to bottom.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::time::Instant;

use cluster::admin;

use crate::cluster_config;
use crate::config::Config;
use crate::ServeArgs;

pub fn run(args: ServeArgs) -> Result<()> {
    let config = load_config(&args)?;
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let result = runtime.block_on(serve(config));
    // Whatever still runs (a request or worker past the deadline, a blocking
    // read) is dropped, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Lets the process open as many files as its hard limit allows (as Go's
/// runtime and nginx's `worker_rlimit_nofile` do): every connection, blob
/// transfer and kept zip holds one, and a soft limit of 1024 (systemd's
/// default) would cap them long before memory does.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }) {
                tracing::debug!(error = %e, current, maximum, "cannot raise the open file limit");
            }
        }
    }
}

fn load_config(args: &ServeArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.gateway.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(upstream) = &args.upstream {
        config.upstream.proxies = upstream.clone();
    }
    Ok(config)
}

/// Start-up: store, raft, replicator and cluster port, the gateway.
/// Shutdown (SIGTERM/SIGINT), within one deadline (`shutdown_grace`): the
/// gateway drains its requests, the background workers stop in reverse
/// start order, raft stops. Past the deadline the process ends with an
/// error (exit status 1).
async fn serve(config: Config) -> Result<()> {
    if !config.cluster.peers.is_empty() {
        cluster::check_marker(&config.data_dir, &cluster_config::raft_config(&config)?.cluster_id)?;
    }
    let store = open_store(&config)?;
    let upstream = upstream::Upstream::new(upstream_config(&config)).context("invalid [upstream] configuration")?;
    tracing::info!(upstream = %upstream.describe(), "upstream configured");

    let workers = background::Workers::new();
    // The admin API starts before the gateway state exists; it finds it here.
    let gateway_state = Arc::new(OnceLock::new());
    let raft = if config.cluster.peers.is_empty() {
        start_single_admin(&config, &store, &upstream, &gateway_state, &workers).await?;
        None
    } else {
        Some(start_cluster(&config, &store, &upstream, &gateway_state, &workers).await?)
    };
    let cluster: Arc<dyn gateway::Cluster> = match &raft {
        Some(raft) => raft.clone(),
        None => gateway::Standalone::new(store.clone()),
    };

    let state = gateway::AppState::new(gateway_config(&config), store, upstream, cluster, workers.clone());
    let _ = gateway_state.set(state.clone());
    let listener = TcpListener::bind(config.gateway.listen)
        .await
        .with_context(|| format!("cannot listen on {} (gateway.listen)", config.gateway.listen))?;
    tracing::info!(addr = %listener.local_addr()?, node_id = config.node_id, "gateway listening");
    let limits = GatewayLimits { header_timeout: config.gateway.header_timeout, max_connections: config.gateway.max_connections };
    let deadline = serve_gateway(listener, gateway::Gateway::new(state), limits, shutdown_signal(config.shutdown_grace)).await?;

    workers.stop_all(deadline.at).await.map_err(|e| deadline.passed(&format!("the background worker {} was still running", e.worker)))?;
    if let Some(raft) = raft {
        tokio::time::timeout_at(deadline.at, raft.control().shutdown()).await.map_err(|_| deadline.passed("raft was still stopping"))?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// When shutdown must be over: `shutdown_grace` after the signal.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    grace: Duration,
}

impl Deadline {
    fn passed(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!("shutdown took longer than shutdown_grace ({}): {what}", humantime::format_duration(self.grace))
    }
}

/// Opens the raft control plane on the node's database, starts the blob
/// replicator, serves the cluster port and keeps this node's gateway URL
/// recorded through the primary.
async fn start_cluster(
    config: &Config,
    store: &Arc<store::Store>,
    upstream: &upstream::Upstream,
    gateway_state: &admin::GatewaySlot,
    workers: &background::Workers,
) -> Result<Arc<cluster::RaftCluster>> {
    let raft_cfg = cluster_config::raft_config(config)?;
    // Read before anything starts, so a bad token file stops the node at once.
    let tokens = config.admin.token_file.as_deref().map(admin::TokenFile::load).transpose()?;
    match &tokens {
        None => tracing::info!("admin API disabled: no admin.token_file"),
        Some(tokens) => tracing::info!(tokens = tokens.count(), "admin API enabled"),
    }
    let cluster_id = raft_cfg.cluster_id.clone();
    let addr = cluster_config::listen_addr(config, &raft_cfg)?;
    let peers = raft_cfg.peers.clone();
    let control = raft::ControlPlane::start(raft_cfg, store.catalog.db().clone()).await.context("cannot start the raft control plane")?;
    cluster::write_marker(store.data_dir(), &cluster_id)?;
    if let Some(drift) = control.peers_drift() {
        tracing::warn!("{drift}");
    }
    let advertise_url = advertise_url(config);
    tracing::info!(node_id = config.node_id, ?peers, %advertise_url, "cluster mode");
    let replicator = replicator::Replicator::start(config.replication.clone(), store, control.clone(), workers)
        .map_err(|e| anyhow::anyhow!("cannot start the blob replicator: {e}"))?;
    let admin = admin_service(
        config,
        admin::Node::Cluster { control: control.clone(), replicator: replicator.clone() },
        (store, upstream, gateway_state, workers),
        tokens,
        advertise_url.clone(),
    );
    {
        let (control, replicator) = (control.clone(), replicator.clone());
        workers.spawn("cluster-grpc", move |w| async move {
            w.working(format!("serving the cluster port on {addr}"));
            if let Err(e) = cluster::serve_grpc(control, replicator, admin, addr, w.stop_signal()).await {
                w.error(format_args!("{e:#}"));
                tracing::error!("{e:#}");
            }
        });
    }
    let raft = cluster::RaftCluster::new(control, replicator, advertise_url);
    let announcer = raft.clone();
    workers.spawn("announce", move |w| announcer.announce_gateway_url(w));
    Ok(raft)
}

/// A single node's admin API on `admin.listen` (if set), served by the
/// worker `admin-api`. A bad token file or a busy address stops start-up.
async fn start_single_admin(
    config: &Config,
    store: &Arc<store::Store>,
    upstream: &upstream::Upstream,
    gateway_state: &admin::GatewaySlot,
    workers: &background::Workers,
) -> Result<()> {
    let Some(addr) = config.admin.listen else { return Ok(()) };
    let tokens = config.admin.token_file.as_deref().map(admin::TokenFile::load).transpose()?;
    if tokens.is_none() {
        tracing::info!("admin API refuses every call: no admin.token_file");
    }
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (admin.listen)"))?;
    tracing::info!(%addr, "admin API listening");
    let service = admin_service(
        config,
        admin::Node::Single { node_id: config.node_id, listen: addr.to_string() },
        (store, upstream, gateway_state, workers),
        tokens,
        advertise_url(config),
    );
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    workers.spawn("admin-api", move |w| async move {
        w.working(format!("serving the admin API on {addr}"));
        let mut stop = w.stop_signal();
        let served = tonic::transport::Server::builder()
            .add_service(service.server())
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            w.error(format_args!("admin API failed: {e}"));
            tracing::error!("admin API failed: {e}");
        }
    });
    Ok(())
}

/// The admin service of this node, cluster member or single node alike.
fn admin_service(
    config: &Config,
    node: admin::Node,
    (store, upstream, gateway, workers): (&Arc<store::Store>, &upstream::Upstream, &admin::GatewaySlot, &background::Workers),
    tokens: Option<admin::TokenFile>,
    advertise_url: String,
) -> admin::AdminService {
    admin::AdminService::new(admin::AdminParts {
        node,
        store: store.clone(),
        upstream: upstream.clone(),
        gateway: gateway.clone(),
        tokens,
        leader_wait: config.gateway.leader_wait,
        purge_grace: config.replication.purge_grace,
        advertise_url,
        workers: workers.clone(),
    })
}

/// `gateway.advertise_url`, or `http://<listen address>` with the host name
/// when listening on all interfaces.
fn advertise_url(config: &Config) -> String {
    if let Some(url) = &config.gateway.advertise_url {
        return url.trim_end_matches('/').to_string();
    }
    let listen = config.gateway.listen;
    let host = if listen.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
    } else {
        listen.ip().to_string()
    };
    let url = format!("http://{host}:{}", listen.port());
    tracing::warn!(%url, "gateway.advertise_url not set; other nodes will redirect clients to {url}");
    url
}

fn gateway_config(config: &Config) -> gateway::GatewayConfig {
    gateway::GatewayConfig {
        node_id: config.node_id,
        gateway: config.gateway.clone(),
        cache: config.cache.clone(),
        sumdb: config.sumdb.clone(),
        ..Default::default()
    }
}

fn open_store(config: &Config) -> Result<Arc<store::Store>> {
    let dir = &config.data_dir;
    let store = store::Store::open(dir).with_context(|| format!("cannot open the store in {} (data_dir)", dir.display()))?;
    let stats = store.blobs.stats();
    tracing::info!(data_dir = %dir.display(), blobs = stats.count, bytes = stats.bytes, "store opened");
    Ok(Arc::new(store))
}

fn upstream_config(config: &Config) -> upstream::Config {
    upstream::Config { user_agent: format!("flotilla/{}", env!("CARGO_PKG_VERSION")), ..config.upstream.clone() }
}

/// What one gateway connection may take.
struct GatewayLimits {
    /// Longest wait for a request's headers, also between requests on a
    /// kept-alive connection (slowloris; idle connections).
    header_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    max_connections: usize,
}

/// Serves the gateway until `shutdown` resolves with the shutdown deadline,
/// then lets the requests in flight finish until then (an error if they do
/// not). Every connection sets TCP_NODELAY, must send its request headers
/// within `header_timeout` (and is closed when idle that long), and at most
/// `max_connections` are served at once.
async fn serve_gateway(
    listener: TcpListener,
    app: gateway::Gateway,
    limits: GatewayLimits,
    shutdown: impl std::future::Future<Output = Deadline>,
) -> Result<Deadline> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(limits.header_timeout).keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    // Every connection below writes through ZeroCopyTcp, so large zips may
    // be sent with sendfile.
    let app = app.with_zero_copy();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned: Option<std::time::Instant> = None;
    let deadline = loop {
        if permits.available_permits() == 0 && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
            warned = Some(std::time::Instant::now());
            tracing::warn!(
                max = limits.max_connections,
                "gateway connection limit reached (gateway.max_connections); new connections wait"
            );
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.context("connection limit closed")?,
            deadline = &mut shutdown => break deadline,
        };
        let (tcp, _remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a gateway connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            deadline = &mut shutdown => break deadline,
        };
        // Without TCP_NODELAY a response written in two parts (headers, then
        // a small body) waits for the client's delayed ACK on a keep-alive
        // connection: 20-40 ms for every small zip.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a gateway connection: {e}");
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(gateway::zerocopy::ZeroCopyTcp::new(tcp)), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "gateway connection ended with an error");
            }
            drop(permit);
        });
    };
    drop(listener);
    match tokio::time::timeout_at(deadline.at, graceful.shutdown()).await {
        Ok(()) => Ok(deadline),
        Err(_) => Err(deadline.passed("requests were still in flight")),
    }
}

/// Resolves on SIGTERM or SIGINT with the shutdown deadline, `grace` from
/// now; a second signal ends the process at once (exit status 1).
async fn shutdown_signal(grace: Duration) -> Deadline {
    wait_for_signal().await;
    let deadline = Deadline { at: Instant::now() + grace, grace };
    // Listening before the log line, so a second signal sent once it is
    // logged is never missed.
    let second = next_signal();
    tracing::info!(
        grace = %humantime::format_duration(grace),
        "shutting down: finishing in-flight requests, then stopping the background workers and raft"
    );
    tokio::spawn(async {
        second.await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
    deadline
}

pub async fn wait_for_signal() {
    next_signal().await
}

/// Listens for SIGTERM and SIGINT from now on; resolves on the first.
fn next_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listeners = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = listeners else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}
