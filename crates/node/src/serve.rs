//! `flotilla serve`: start-up and shutdown, top to bottom.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use tokio::sync::watch;

use cluster::admin;

use crate::cluster_config;
use crate::config::Config;
use crate::ServeArgs;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn run(args: ServeArgs) -> Result<()> {
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(serve(config))
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

async fn serve(config: Config) -> Result<()> {
    if !config.cluster.peers.is_empty() {
        cluster::check_marker(&config.data_dir, &cluster_config::raft_config(&config)?.cluster_id)?;
    }
    let store = open_store(&config)?;
    let upstream = upstream::Upstream::new(upstream_config(&config)).context("invalid [upstream] configuration")?;
    tracing::info!(upstream = %upstream.describe(), "upstream configured");

    let (stop_tx, stop_rx) = watch::channel(false);
    // The admin API starts before the gateway state exists; it finds it here.
    let gateway_state = Arc::new(OnceLock::new());
    let clustered = if config.cluster.peers.is_empty() {
        None
    } else {
        Some(start_cluster(&config, &store, &upstream, &gateway_state, stop_rx.clone()).await?)
    };
    let cluster: Arc<dyn gateway::Cluster> = match &clustered {
        Some((raft, _)) => raft.clone(),
        None => gateway::Standalone::new(store.clone()),
    };

    let single_admin =
        if clustered.is_none() { start_single_admin(&config, &store, &upstream, &gateway_state, stop_rx.clone()).await? } else { None };
    let state = gateway::AppState::new(gateway_config(&config), store, upstream, cluster);
    let _ = gateway_state.set(state.clone());
    let listener = TcpListener::bind(config.gateway.listen)
        .await
        .with_context(|| format!("cannot listen on {} (gateway.listen)", config.gateway.listen))?;
    tracing::info!(addr = %listener.local_addr()?, node_id = config.node_id, "gateway listening");
    let limits = GatewayLimits { header_timeout: config.gateway.header_timeout, max_connections: config.gateway.max_connections };
    let served = serve_gateway(listener, gateway::router(state), limits, shutdown_signal()).await;

    let _ = stop_tx.send(true);
    if let Some(task) = single_admin {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
    }
    if let Some((raft, tasks)) = clustered {
        for task in tasks {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, raft.control().shutdown()).await.is_err() {
            tracing::warn!("raft did not stop in time");
        }
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

type Clustered = (Arc<cluster::RaftCluster>, Vec<tokio::task::JoinHandle<()>>);

/// Opens the raft control plane on the node's database, starts the blob
/// replicator, serves the cluster port and keeps this node's gateway URL
/// recorded through the primary.
async fn start_cluster(
    config: &Config,
    store: &Arc<store::Store>,
    upstream: &upstream::Upstream,
    gateway_state: &admin::GatewaySlot,
    stop: watch::Receiver<bool>,
) -> Result<Clustered> {
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
    let (replicator, mut tasks) = replicator::Replicator::start(config.replication.clone(), store, control.clone(), stop.clone())
        .map_err(|e| anyhow::anyhow!("cannot start the blob replicator: {e}"))?;
    let admin = admin::AdminService::new(admin::AdminParts {
        node: admin::Node::Cluster { control: control.clone(), replicator: replicator.clone() },
        store: store.clone(),
        upstream: upstream.clone(),
        gateway: gateway_state.clone(),
        tokens,
        leader_wait: config.gateway.leader_wait,
        purge_grace: config.replication.purge_grace,
        advertise_url: advertise_url.clone(),
    });
    let grpc = {
        let (control, replicator, stop) = (control.clone(), replicator.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(e) = cluster::serve_grpc(control, replicator, admin, addr, stop).await {
                tracing::error!("{e:#}");
            }
        })
    };
    let raft = cluster::RaftCluster::new(control, replicator, advertise_url);
    tasks.push(grpc);
    tasks.push(tokio::spawn(raft.clone().announce_gateway_url(stop)));
    Ok((raft, tasks))
}

/// A single node's admin API on `admin.listen` (if set), served until
/// `stop` turns true. A bad token file or a busy address stops start-up.
async fn start_single_admin(
    config: &Config,
    store: &Arc<store::Store>,
    upstream: &upstream::Upstream,
    gateway_state: &admin::GatewaySlot,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = config.admin.listen else { return Ok(None) };
    let tokens = config.admin.token_file.as_deref().map(admin::TokenFile::load).transpose()?;
    if tokens.is_none() {
        tracing::info!("admin API refuses every call: no admin.token_file");
    }
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (admin.listen)"))?;
    tracing::info!(%addr, "admin API listening");
    let service = admin::AdminService::new(admin::AdminParts {
        node: admin::Node::Single { node_id: config.node_id, listen: addr.to_string() },
        store: store.clone(),
        upstream: upstream.clone(),
        gateway: gateway_state.clone(),
        tokens,
        leader_wait: config.gateway.leader_wait,
        purge_grace: config.replication.purge_grace,
        advertise_url: advertise_url(config),
    });
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    Ok(Some(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service.server())
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!("admin API failed: {e}");
        }
    })))
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
        list_ttl: config.cache.list_ttl,
        negative_ttl: config.cache.negative_ttl,
        mode: config.gateway.mode,
        leader_wait: config.gateway.leader_wait,
        hot_zips_bytes: config.cache.memory,
        sumdb: config.sumdb.clone(),
        max_fills: config.gateway.max_fills,
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

/// Serves the gateway until `shutdown` resolves, then lets the requests in
/// flight finish. Every connection sets TCP_NODELAY, must send its request
/// headers within `header_timeout` (and is closed when idle that long), and
/// at most `max_connections` are served at once.
async fn serve_gateway(
    listener: TcpListener,
    app: axum::Router,
    limits: GatewayLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(limits.header_timeout).keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned: Option<std::time::Instant> = None;
    loop {
        if permits.available_permits() == 0 && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
            warned = Some(std::time::Instant::now());
            tracing::warn!(
                max = limits.max_connections,
                "gateway connection limit reached (gateway.max_connections); new connections wait"
            );
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.context("connection limit closed")?,
            _ = &mut shutdown => break,
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
            _ = &mut shutdown => break,
        };
        // Without TCP_NODELAY a response written in two parts (headers, then
        // a small body) waits for the client's delayed ACK on a keep-alive
        // connection: 20-40 ms for every small zip.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a gateway connection: {e}");
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "gateway connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT; a second signal, or in-flight requests
/// outliving the grace period, end the process at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "shutting down: finishing in-flight requests");
    tokio::spawn(async {
        tokio::select! {
            _ = wait_for_signal() => tracing::warn!("second signal: exiting now"),
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("grace period over: exiting now"),
        }
        std::process::exit(1);
    });
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
