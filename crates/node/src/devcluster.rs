//! `flotilla dev-cluster`: a whole cluster on this machine with one command,
//! for trying Flotilla out and for development.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(clap::Args, Debug)]
pub struct DevClusterArgs {
    /// Number of nodes (3 or 5 make sense: a majority must survive).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Upstream proxy chain in GOPROXY syntax.
    #[arg(long, value_name = "GOPROXY", default_value = "https://proxy.golang.org")]
    pub upstream: String,
    /// Folder holding every node's data (node1/, node2/, …), the cluster secret and the admin token.
    #[arg(long, value_name = "DIR", default_value = "./flotilla-dev")]
    pub data_dir: PathBuf,
    /// First gateway port; node N listens on this + N - 1.
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// First cluster (gRPC) port; node N listens on this + N - 1.
    #[arg(long, default_value_t = 7000)]
    pub cluster_port: u16,
    /// Address every node binds and advertises.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Run the cluster port without TLS (by default dev-cluster makes a CA
    /// and node certificates in <data-dir>/certs and uses mutual TLS).
    #[arg(long)]
    pub insecure_plaintext: bool,
}

pub fn run(args: DevClusterArgs) -> Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be between 1 and 9, got {}", args.nodes);
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let secret = ensure_random_file(&args.data_dir, "cluster-secret")?;
    let admin_token = ensure_random_file(&args.data_dir, "admin-token")?;
    let certs = args.data_dir.join("certs");
    if !args.insecure_plaintext {
        let missing = (1..=u64::from(args.nodes)).any(|i| !certs.join(format!("node-{i}.crt")).exists()) || !certs.join("ca.crt").exists();
        if missing {
            crate::certs::make(&certs, &(1..=u64::from(args.nodes)).collect::<Vec<_>>(), 2)?;
        }
    }
    let exe = std::env::current_exe().context("cannot find the flotilla executable")?;
    let peers: Vec<String> = (1..=args.nodes).map(|i| format!("{i}={}:{}", args.host, args.cluster_port + i - 1)).collect();
    let urls: Vec<String> = (1..=args.nodes).map(|i| format!("http://{}:{}", args.host, args.gateway_port + i - 1)).collect();

    let mut children = Vec::new();
    for i in 1..=args.nodes {
        let files = NodeFiles { secret: &secret, admin_token: &admin_token, certs: (!args.insecure_plaintext).then_some(certs.as_path()) };
        let child = spawn_node(&exe, &args, i, &peers.join(","), files, &urls[usize::from(i - 1)])?;
        children.push((i, child));
    }
    println!("Flotilla dev cluster: {} nodes, upstream {}", args.nodes, args.upstream);
    for (i, url) in urls.iter().enumerate() {
        println!(
            "  node {}: gateway {url}  cluster {}:{}  data {}",
            i + 1,
            args.host,
            args.cluster_port + i as u16,
            node_dir(&args.data_dir, i as u16 + 1).display()
        );
    }
    println!("\nUse it from Go with:\n  export GOPROXY=\"{}\"", urls.join("|"));
    let cluster_ports: Vec<String> = (1..=args.nodes).map(|i| format!("{}:{}", args.host, args.cluster_port + i - 1)).collect();
    let tls = if args.insecure_plaintext {
        String::new()
    } else {
        let c = certs.display();
        format!(
            " \\\n    FLOTILLA_TLS_CA_FILE={c}/ca.crt FLOTILLA_TLS_CERT_FILE={c}/flotillactl.crt FLOTILLA_TLS_KEY_FILE={c}/flotillactl.key"
        )
    };
    println!(
        "Administer it with:\n  export FLOTILLA_CLUSTER={} FLOTILLA_ADMIN_TOKEN=\"$(cat {})\"{tls}\n  flotillactl status\n  flotillactl purge <module>@<version>",
        cluster_ports.join(","),
        admin_token.display()
    );
    println!("Status: curl {}/api/v1/status    Stop: Ctrl-C\n", urls[0]);
    wait_then_stop(children)
}

/// The files every node of the dev cluster shares.
#[derive(Clone, Copy)]
struct NodeFiles<'a> {
    secret: &'a Path,
    admin_token: &'a Path,
    /// The folder of `flotilla certs` output; `None`: plaintext.
    certs: Option<&'a Path>,
}

fn spawn_node(exe: &Path, args: &DevClusterArgs, i: u16, peers: &str, files: NodeFiles<'_>, url: &str) -> Result<Child> {
    let dir = node_dir(&args.data_dir, i);
    let mut cmd = Command::new(exe);
    match files.certs {
        Some(certs) => cmd
            .env("FLOTILLA_CLUSTER__TLS_CA_FILE", certs.join("ca.crt"))
            .env("FLOTILLA_CLUSTER__TLS_CERT_FILE", certs.join(format!("node-{i}.crt")))
            .env("FLOTILLA_CLUSTER__TLS_KEY_FILE", certs.join(format!("node-{i}.key"))),
        None => cmd.env("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true"),
    };
    cmd.arg("serve")
        .args(["--listen", &format!("{}:{}", args.host, args.gateway_port + i - 1)])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--upstream", &args.upstream])
        .env("FLOTILLA_NODE_ID", i.to_string())
        .env("FLOTILLA_CLUSTER__LISTEN", format!("{}:{}", args.host, args.cluster_port + i - 1))
        .env("FLOTILLA_CLUSTER__PEERS", peers)
        .env("FLOTILLA_CLUSTER__SECRET_FILE", files.secret)
        .env("FLOTILLA_ADMIN__TOKEN_FILE", files.admin_token)
        .env("FLOTILLA_GATEWAY__ADVERTISE_URL", url)
        .stdin(Stdio::null())
        // Own process group: Ctrl-C reaches only dev-cluster, which then
        // stops the nodes one SIGTERM each (a second signal would hurry them).
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start node {i}"))
}

fn node_dir(root: &Path, i: u16) -> PathBuf {
    root.join(format!("node{i}"))
}

/// A random secret file (`cluster-secret`, `admin-token`), made once per
/// data folder, readable by its owner only.
fn ensure_random_file(root: &Path, name: &str) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(name);
    if !path.exists() {
        let mut bytes = [0u8; 32];
        let mut urandom = std::fs::File::open("/dev/urandom").context("cannot open /dev/urandom")?;
        std::io::Read::read_exact(&mut urandom, &mut bytes).context("cannot read /dev/urandom")?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(hex::encode(bytes).as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(path)
}

/// Runs until Ctrl-C/SIGTERM, then stops every node with SIGTERM (SIGKILL
/// after 15 s). A node that exits meanwhile (say, killed to try a failover)
/// is reported and the others keep serving; when none is left, it returns.
fn wait_then_stop(mut children: Vec<(u16, Child)>) -> Result<()> {
    let total = children.len();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let all_exited = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = crate::serve::wait_for_signal() => return false,
                _ = tick.tick() => {
                    let mut exited = Vec::new();
                    children.retain_mut(|(i, child)| match child.try_wait() {
                        Ok(Some(status)) => {
                            exited.push((*i, status));
                            false
                        }
                        _ => true,
                    });
                    for (i, status) in exited {
                        let left = children.len();
                        let state = if left * 2 > total {
                            "a majority: the mirror still serves and fetches"
                        } else {
                            "no majority: cached content is served, misses fail until nodes return"
                        };
                        eprintln!("node {i} exited ({status}); {left} of {total} nodes left ({state})");
                    }
                    if children.is_empty() {
                        return true;
                    }
                }
            }
        }
    });
    if all_exited {
        bail!("every node exited; see their logs above");
    }
    for (_, child) in &children {
        // SAFETY: kill(2) on a child we spawned and still own.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM)
        };
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (i, child) in children.iter_mut() {
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                eprintln!("node {i} did not stop in time; killing it");
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}
