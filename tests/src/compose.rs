//! The repository's own `docker-compose.yml` brought up by a test: three
//! nodes (`n1`..`n3`) and the HAProxy front (`front`) on a private Docker
//! network the test creates first, so that a fake origin can listen on that
//! network's gateway address. The image is the test base image with the
//! cargo-built binaries mounted in; a go client container on the same
//! network runs the host's go command. Dropping a [`Deployment`] removes its
//! containers, volumes and network, also when the test failed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use crate::cluster::{probe_status, Status};
use crate::docker::{
    check, compose_command, docker, ensure_base_image, go_mounts, project_prefix, repo_root, run, sweep_stale_projects, Run,
};
use crate::http::{self, Response};
use crate::node::{binary, ctl_binary, free_port};
use crate::wait::wait_until;

/// The node services of the compose file, in node-id order.
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// One compose project and its network.
pub struct Deployment {
    project: String,
    network: String,
    gateway: IpAddr,
    dir: TempDir,
    image: &'static str,
    upstream: String,
    front_port: u16,
    containers: BTreeMap<String, String>,
    client: Option<String>,
}

impl Deployment {
    /// Creates the private network of a new deployment (nothing runs yet).
    pub fn new() -> Deployment {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        sweep_stale_projects();
        let image = ensure_base_image();
        let project = format!("{}{}-{}", project_prefix(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let network = format!("{project}-net");
        let dir = tempfile::Builder::new().prefix("flotilla-compose-").tempdir().expect("create compose temp dir");
        std::fs::create_dir_all(dir.path().join("work")).expect("create the client's work dir");
        check(&mut docker(&["network", "create", "--label", "flotilla-test=1", &network]));
        let mut d = Deployment {
            project,
            network,
            gateway: IpAddr::from([0, 0, 0, 0]),
            dir,
            image,
            upstream: String::new(),
            front_port: free_port(),
            containers: BTreeMap::new(),
            client: None,
        };
        let gw = check(&mut docker(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", &d.network]));
        d.gateway = gw.trim().parse().unwrap_or_else(|e| panic!("gateway address {gw:?} of {}: {e}", d.network));
        d
    }

    /// The host's address on the deployment's network: where a test origin
    /// listens so that the nodes reach it.
    pub fn gateway_ip(&self) -> IpAddr {
        self.gateway
    }

    /// `docker compose up -d` with the repository's compose file and
    /// `upstream` as the nodes' upstream proxy.
    pub fn up(&mut self, upstream: &str) {
        self.upstream = upstream.to_owned();
        let secret = self.dir.path().join("cluster-secret");
        std::fs::write(&secret, "container-test-secret-0123456789abcdef\n").expect("write the cluster secret");
        // As README says: readable by the nodes' user (uid 10001) only.
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod the cluster secret");
        std::os::unix::fs::chown(&secret, Some(10001), None).expect("chown the cluster secret to uid 10001 (the tests run as root)");
        std::fs::write(self.override_file(), self.override_yaml()).expect("write the compose override");
        let out = run(self.compose().args(["up", "-d"]));
        assert!(out.success, "compose up failed:\n{}\n{}\n{}", out.stdout, out.stderr, self.report());
        for service in NODES.iter().chain(&["front"]) {
            let id = check(self.compose().args(["ps", "-q", service]));
            let id = id.trim();
            assert!(!id.is_empty(), "compose started no {service} container\n{}", self.report());
            self.containers.insert(service.to_string(), id.to_owned());
        }
    }

    fn override_file(&self) -> PathBuf {
        self.dir.path().join("test-override.yml")
    }

    /// The cargo-built binaries over the image's, and the test's network as
    /// the project's default network.
    fn override_yaml(&self) -> String {
        let (bin, ctl) = (binary(), ctl_binary());
        let mut yaml = String::from("services:\n");
        for node in NODES {
            yaml.push_str(&format!(
                "  {node}:\n    volumes:\n      - {}:/usr/local/bin/flotilla:ro\n      - {}:/usr/local/bin/flotillactl:ro\n",
                bin.display(),
                ctl.display()
            ));
        }
        yaml.push_str(&format!("networks:\n  default:\n    external: true\n    name: {}\n", self.network));
        yaml
    }

    fn compose(&self) -> Command {
        let mut cmd = compose_command();
        cmd.current_dir(repo_root())
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(repo_root().join("docker-compose.yml"))
            .arg("-f")
            .arg(self.override_file())
            .env("FLOTILLA_IMAGE", self.image)
            .env("HAPROXY_IMAGE", self.image)
            .env("FLOTILLA_UPSTREAM", &self.upstream)
            .env("FLOTILLA_SUMDB", "off")
            .env("FLOTILLA_CLUSTER_SECRET_FILE", self.dir.path().join("cluster-secret"))
            .env("FLOTILLA_FRONT_PORT", format!("127.0.0.1:{}", self.front_port))
            .env("FLOTILLA_LOG", "info,openraft=warn");
        cmd
    }

    /// The container of `service`.
    pub fn container(&self, service: &str) -> &str {
        self.containers.get(service).unwrap_or_else(|| panic!("no container for {service} (is the deployment up?)"))
    }

    /// The address of `service` on the test network; `None` while it is
    /// stopped or disconnected.
    pub fn ip(&self, service: &str) -> Option<IpAddr> {
        let template = format!("{{{{with index .NetworkSettings.Networks {:?}}}}}{{{{.IPAddress}}}}{{{{end}}}}", self.network);
        let out = run(&mut docker(&["inspect", "-f", &template, self.container(service)]));
        out.stdout.trim().parse().ok()
    }

    /// What Docker says of the compose health check of `service`
    /// (`starting`, `healthy`, `unhealthy`).
    pub fn health(&self, service: &str) -> String {
        run(&mut docker(&["inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", self.container(service)]))
            .stdout
            .trim()
            .to_owned()
    }

    /// `/api/v1/status` of node `service`, read over the test network.
    pub fn status(&self, service: &str) -> Result<Status, String> {
        let ip = self.ip(service).ok_or_else(|| format!("{service} has no address on {}", self.network))?;
        probe_status(SocketAddr::new(ip, 8080))
    }

    /// `GET path` on node `service` over the test network.
    pub fn get(&self, service: &str, path: &str) -> std::io::Result<Response> {
        let ip = self.ip(service).ok_or_else(|| std::io::Error::other(format!("{service} has no address")))?;
        http::get_with_timeout(SocketAddr::new(ip, 8080), path, Duration::from_secs(30))
    }

    /// `curl` inside the container of `service` (works while it is cut
    /// off from the network): the status code and the body.
    pub fn curl_inside(&self, service: &str, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:8080{path}");
        let out = run(&mut docker(&["exec", self.container(service), "curl", "-s", "-m", "20", "-w", "\n%{http_code}", &url]));
        let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// `docker <verb> <container of service>` (kill, stop, start, …).
    pub fn docker_on(&self, verb: &[&str], service: &str) {
        let mut args = verb.to_vec();
        args.push(self.container(service));
        let out = run(&mut docker(&args));
        assert!(out.success, "docker {args:?}: {}\n{}", out.stderr, self.report());
    }

    /// Cuts `service` off the test network (a real partition: it reaches
    /// no peer and no client, and nothing reaches it).
    pub fn disconnect(&self, service: &str) {
        check(&mut docker(&["network", "disconnect", &self.network, self.container(service)]));
    }

    /// Joins `service` to the test network again under its service name.
    pub fn connect(&self, service: &str) {
        check(&mut docker(&["network", "connect", "--alias", service, &self.network, self.container(service)]));
    }

    /// Waits until the nodes `services` agree on one acting primary and
    /// all answer `/readyz`; returns the primary's service name.
    pub fn wait_converged(&self, services: &[&str], timeout: Duration) -> String {
        let mut last = BTreeMap::new();
        let mut primary = None;
        let ok = wait_until(timeout, || {
            last = services.iter().map(|s| (s.to_string(), self.status(s))).collect::<BTreeMap<_, _>>();
            let Some(statuses) = last.values().map(|s| s.as_ref().ok()).collect::<Option<Vec<&Status>>>() else { return false };
            let leaders: Vec<&&Status> = statuses.iter().filter(|s| s.is_leader() && s.acting_primary).collect();
            let [leader] = leaders[..] else { return false };
            let id = leader.node_id;
            let agree = statuses.iter().all(|s| s.primary_id == Some(id) && s.primary_url == Some(format!("http://n{id}:8080")));
            let ready = services.iter().all(|s| self.get(s, "/readyz").is_ok_and(|r| r.status == 200));
            if agree && ready {
                primary = Some(format!("n{id}"));
            }
            primary.is_some()
        });
        match (ok, primary) {
            (true, Some(p)) => p,
            _ => panic!("nodes {services:?} did not agree on one ready primary within {timeout:?}: {last:#?}\n{}", self.report()),
        }
    }

    /// Starts the go client container: the host's go command (mounted
    /// read-only), GOPROXY the front, the work dir [`Deployment::work_dir`]
    /// at `/work`, the shared build cache, checksums off.
    pub fn start_client(&mut self) {
        let name = format!("{}-client", self.project);
        let mut cmd = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "flotilla-test=1",
            "--network",
            &self.network,
            "--user",
            "0",
            "--workdir",
            "/work",
        ]);
        let goroot = go_mounts();
        for dir in &goroot {
            cmd.arg("-v").arg(format!("{}:{}:ro", dir.display(), dir.display()));
        }
        cmd.arg("-v").arg(format!("{}:/work", self.work_dir().display()));
        cmd.arg("-v").arg(format!("{}:/gocache", crate::gocmd::shared_gocache().display()));
        let path = format!("{}/bin:/usr/local/bin:/usr/bin:/bin", goroot[0].display());
        let env = [
            ("PATH", path.as_str()),
            ("HOME", "/tmp"),
            ("GOPATH", "/tmp/gopath"),
            ("GOCACHE", "/gocache"),
            ("GOPROXY", "http://front:8080"),
            ("GOSUMDB", "off"),
            ("GOFLAGS", "-modcacherw"),
            ("GOENV", "off"),
            ("GO111MODULE", "on"),
            ("GOWORK", "off"),
            ("GOTOOLCHAIN", "local"),
            ("CGO_ENABLED", "0"),
        ];
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.args([self.image, "sleep", "infinity"]);
        self.client = Some(name);
        check(&mut cmd);
    }

    /// The host directory the client sees as `/work`.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Runs `script` with `sh -c` in the client container.
    pub fn client(&self, script: &str) -> Run {
        let client = self.client.as_deref().expect("start_client first");
        run(&mut docker(&["exec", client, "sh", "-c", script]))
    }

    /// `go mod download specs...` in a fresh module cache, so that every
    /// file really comes through the front.
    pub fn go_download(&self, specs: &[String]) -> Run {
        let script = format!(
            "set -e; export GOMODCACHE=$(mktemp -d); cd $(mktemp -d); printf 'module example.com/load\\n\\ngo 1.18\\n' > go.mod; \
             trap 'rm -rf $GOMODCACHE $PWD' EXIT; go mod download {}",
            specs.join(" ")
        );
        self.client(&script)
    }

    /// Statuses and log tails of every service, for failure messages.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (service, id) in &self.containers {
            let status = if NODES.contains(&service.as_str()) { format!("{:?}", self.status(service)) } else { String::new() };
            let logs = run(&mut docker(&["logs", "--tail", "30", id]));
            out.push_str(&format!("--- {service} {status}\n{}{}\n", logs.stdout, logs.stderr));
        }
        out
    }
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment::new()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(client) = &self.client {
            run(&mut docker(&["rm", "-f", "-v", client]));
        }
        if self.override_file().exists() {
            run(self.compose().args(["down", "-v", "--remove-orphans", "-t", "2"]));
        }
        run(&mut docker(&["network", "rm", &self.network]));
    }
}
