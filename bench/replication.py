#!/usr/bin/env python3
"""Blob replication benchmark of a three-node Flotilla cluster on this machine.

Starts a static GOPROXY upstream (the one bench/failover.py uses) over a tree
of generated module zips and three `flotilla serve` nodes on 127.0.0.1, then
measures:

1. lag: small zips are fetched through the primary one after another at a
   steady rate; right after each 200 (the catalog entry is committed by then)
   both followers' /api/v1/blobs/<sha256> are polled until the blob is local
   (verified) on both. lag = slower follower's first "local" - the 200.
2. catch-up: follower 3 is stopped, >= 1 GB of incompressible zips is warmed
   through the primary (and waited for on follower 2), follower 3 is started
   again and timed until it holds every blob; throughput = bytes / time.

Figures are printed and written to bench/results/replication-<date>.md.
Python 3 standard library only; everything it starts is stopped on exit.

    bench/replication.py [--quick] [--small N] [--catchup-mib N] [--rate R] [--keep]
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import failover as fo  # noqa: E402  (process, HTTP and upstream helpers)
import gen_modules  # noqa: E402

HOST = fo.HOST
GOAL_LAG_P99_MS = 500
GOAL_CATCHUP_MBPS = 200
TIME = "2024-01-02T03:04:05Z"


def log(msg):
    print(f"[replication {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def binary():
    if os.environ.get("FLOTILLA_BIN"):
        return os.environ["FLOTILLA_BIN"], "given by FLOTILLA_BIN"
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/flotilla-target"))
    for profile in ("release", "debug"):
        path = os.path.join(target, profile, "flotilla")
        if os.path.exists(path):
            return path, profile
    raise fo.BenchError("no flotilla binary: build it with `cargo build --release -p flotilla-node` or set FLOTILLA_BIN")


def add_version(tree, module, size, seed):
    """One module version (v1.0.0) with a zip of about `size` bytes; returns (path, sha256, bytes)."""
    vdir = os.path.join(tree, *module.split("/"), "@v")
    os.makedirs(vdir, exist_ok=True)
    go_mod = f"module {module}\n".encode()
    with open(os.path.join(vdir, "v1.0.0.info"), "w") as f:
        f.write(json.dumps({"Version": "v1.0.0", "Time": TIME}))
    with open(os.path.join(vdir, "v1.0.0.mod"), "wb") as f:
        f.write(go_mod)
    with open(os.path.join(vdir, "list"), "w") as f:
        f.write("v1.0.0\n")
    zpath = os.path.join(vdir, "v1.0.0.zip")
    zsize = gen_modules.write_zip(zpath, module, "v1.0.0", go_mod, size, seed)
    h = hashlib.sha256()
    with open(zpath, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"/{module}/@v/v1.0.0.zip", h.hexdigest(), zsize


class Cluster:
    def __init__(self, binary, tmp, upstream_port, workers):
        self.binary, self.tmp, self.upstream_port, self.workers = binary, tmp, upstream_port, workers
        ports = fo.free_ports(6)
        self.gport = {nid: ports[nid - 1] for nid in (1, 2, 3)}
        self.cport = {nid: ports[nid + 2] for nid in (1, 2, 3)}
        self.procs = {}
        self.secret = os.path.join(tmp, "cluster-secret")
        with open(self.secret, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(self.secret, 0o600)

    def start(self, nid):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
        env.update({
            "FLOTILLA_NODE_ID": str(nid),
            "FLOTILLA_CLUSTER__LISTEN": f"{HOST}:{self.cport[nid]}",
            "FLOTILLA_CLUSTER__PEERS": ",".join(f"{n}={HOST}:{p}" for n, p in self.cport.items()),
            "FLOTILLA_CLUSTER__SECRET_FILE": self.secret,
            # Loopback only: the figures are for the plaintext cluster port.
            "FLOTILLA_CLUSTER__INSECURE_PLAINTEXT": "true",
            "FLOTILLA_GATEWAY__ADVERTISE_URL": f"http://{HOST}:{self.gport[nid]}",
            "FLOTILLA_REPLICATION__WORKERS": str(self.workers),
            "FLOTILLA_LOG": "warn",
            # generated modules are in no checksum database
            "FLOTILLA_SUMDB": "off",
        })
        argv = [self.binary, "serve", "--listen", f"{HOST}:{self.gport[nid]}",
                "--data-dir", os.path.join(self.tmp, f"n{nid}"), "--upstream", f"http://{HOST}:{self.upstream_port}"]
        self.procs[nid] = fo.spawn(argv, env, os.path.join(self.tmp, f"n{nid}.log"))
        fo.wait_port(self.gport[nid], self.procs[nid], 30, f"node {nid}")
        return time.monotonic()

    def stop(self, nid):
        fo.stop_proc(self.procs[nid])

    def primary(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for nid, port in self.gport.items():
                st = fo.fetch_json(port, "/api/v1/status")
                ready = fo.get_once(port, "/readyz", 0.5, max_redirects=0).status == 200
                if st and ready and st["cluster"].get("acting_primary") and st["cluster"].get("primary_url"):
                    return nid
            time.sleep(0.1)
        raise fo.BenchError("no ready primary within 30 s")

    def wait_ready(self, nids, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(fo.get_once(self.gport[n], "/readyz", 0.5, max_redirects=0).status == 200 for n in nids):
                return
            time.sleep(0.1)
        raise fo.BenchError(f"nodes {nids} not ready within {timeout} s")


def local(conn, sha):
    r = conn.get(f"/api/v1/blobs/{sha}")
    if r.status != 200:
        return False
    try:
        return json.loads(r.body).get("local") is True
    except ValueError:
        return False


def measure_lag(cl, primary, zips, rate):
    followers = [n for n in (1, 2, 3) if n != primary]
    client = fo.KeepAlive(cl.gport[primary], 30)
    polls = {n: fo.KeepAlive(cl.gport[n], 5) for n in followers}
    lags, poll_gaps = [], []
    interval = 1.0 / rate
    next_at = time.monotonic()
    for path, sha, _ in zips:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        r = client.get(path)
        t0 = time.monotonic()
        if r.status != 200:
            raise fo.BenchError(f"GET {path} on the primary: {r.outcome()} {r.body[:200]!r}")
        pending = set(followers)
        done = t0
        while pending:
            if time.monotonic() - t0 > 30:
                raise fo.BenchError(f"blob {sha} not on followers {sorted(pending)} after 30 s")
            for n in sorted(pending):
                before = time.monotonic()
                if local(polls[n], sha):
                    pending.discard(n)
                    done = time.monotonic()
                poll_gaps.append(time.monotonic() - before)
        lags.append(done - t0)
    return lags, fo.pct(poll_gaps, 50)


def measure_catchup(cl, primary, zips, follower):
    other = [n for n in (1, 2, 3) if n not in (primary, follower)][0]
    cl.stop(follower)
    client = fo.KeepAlive(cl.gport[primary], 120)
    for path, sha, _ in zips:
        r = client.get(path)
        if r.status != 200:
            raise fo.BenchError(f"GET {path}: {r.outcome()}")
    other_conn = fo.KeepAlive(cl.gport[other], 5)
    deadline = time.monotonic() + 600
    while not all(local(other_conn, sha) for _, sha, _ in zips):
        if time.monotonic() > deadline:
            raise fo.BenchError(f"node {other} did not get every blob")
        time.sleep(0.2)
    started = cl.start(follower)
    healthy = time.monotonic()
    conn = fo.KeepAlive(cl.gport[follower], 5)
    remaining = [sha for _, sha, _ in zips]
    while remaining:
        if time.monotonic() - started > 900:
            raise fo.BenchError(f"follower {follower} still lacks {len(remaining)} blobs after 900 s")
        remaining = [sha for sha in remaining if not local(conn, sha)]
        if remaining:
            time.sleep(0.02)
    finished = time.monotonic()
    st = fo.fetch_json(cl.gport[follower], "/api/v1/status", timeout=2)
    received = st["cluster"]["replication"]["received_bytes"] if st else None
    return finished - started, finished - healthy, received


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 small zips, 256 MiB catch-up")
    ap.add_argument("--small", type=int, default=300, help="small zips in the lag run")
    ap.add_argument("--small-kib", type=int, default=32)
    ap.add_argument("--rate", type=float, default=20.0, help="lag run: zips per second")
    ap.add_argument("--catchup-mib", type=int, default=1024)
    ap.add_argument("--zip-mib", type=int, default=16, help="size of each catch-up zip")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.small, args.catchup_mib = 60, 256

    flotilla, profile = binary()
    tmp = tempfile.mkdtemp(prefix="flotilla-repl-bench-")
    fo.STATE.update(tmp=tmp, keep=args.keep)
    import atexit
    atexit.register(fo.cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, fo.on_signal)

    tree = os.path.join(tmp, "upstream")
    log(f"generating {args.small} x {args.small_kib} KiB and {args.catchup_mib} MiB of {args.zip_mib} MiB zips")
    small = [add_version(tree, f"example.com/lag/m{i}", args.small_kib << 10, i) for i in range(args.small)]
    big_count = max(1, args.catchup_mib // args.zip_mib)
    big = [add_version(tree, f"example.com/bulk/m{i}", args.zip_mib << 20, 10_000 + i) for i in range(big_count)]
    upstream_port = fo.free_ports(1)[0]
    up = fo.spawn([sys.executable, os.path.join(HERE, "failover.py"), "--serve-upstream", tree, str(upstream_port)],
                  dict(os.environ), os.path.join(tmp, "upstream.log"))
    fo.wait_port(upstream_port, up, 10, "upstream")

    cl = Cluster(flotilla, tmp, upstream_port, args.workers)
    for nid in (1, 2, 3):
        cl.start(nid)
    primary = cl.primary()
    cl.wait_ready([1, 2, 3])
    log(f"binary {flotilla} ({profile}); primary is node {primary}")

    lags, poll = measure_lag(cl, primary, small, args.rate)
    lag_ms = sorted(x * 1000 for x in lags)
    p50, p90, p99, mx = (fo.pct(lag_ms, 50), fo.pct(lag_ms, 90), fo.pct(lag_ms, 99), lag_ms[-1])
    log(f"lag over {len(lags)} zips: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {mx:.1f} ms (poll round {poll * 1000:.1f} ms)")

    follower = [n for n in (1, 2, 3) if n != primary][-1]
    total = sum(z[2] for z in big)
    secs, secs_healthy, received = measure_catchup(cl, primary, big, follower)
    mbps = total / secs / 1e6
    log(f"catch-up of {len(big)} blobs, {total / 1e6:.0f} MB: {secs:.2f} s from process start "
        f"({mbps:.0f} MB/s), {secs_healthy:.2f} s from listening ({total / secs_healthy / 1e6:.0f} MB/s); received {received} bytes")

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    date = datetime.date.today().isoformat()
    lines = [
        f"# Replication benchmark, {date}",
        "",
        f"- machine: {os.cpu_count()} cores, {cpu}; load average at the end {os.getloadavg()[0]:.2f}",
        f"- binary: `{flotilla}` ({profile} profile{'; our code unoptimized, dependencies at opt-level 2' if profile == 'debug' else ''})",
        f"- three nodes on 127.0.0.1, default settings, replication.workers = {args.workers}, upstream: Python http.server",
        "",
        "| figure | value | goal | met |",
        "| --- | --- | --- | --- |",
        f"| lag p50 ({len(lags)} zips of {args.small_kib} KiB at {args.rate:g}/s) | {p50:.1f} ms | | |",
        f"| lag p90 | {p90:.1f} ms | | |",
        f"| lag p99 | {p99:.1f} ms | < {GOAL_LAG_P99_MS} ms | {'yes' if p99 < GOAL_LAG_P99_MS else 'no'} |",
        f"| lag max | {mx:.1f} ms | | |",
        f"| catch-up, {len(big)} × {args.zip_mib} MiB = {total / 1e6:.0f} MB, from process start | {secs:.2f} s = {mbps:.0f} MB/s | ≥ {GOAL_CATCHUP_MBPS} MB/s | {'yes' if mbps >= GOAL_CATCHUP_MBPS else 'no'} |",
        f"| catch-up from the gateway listening | {secs_healthy:.2f} s = {total / secs_healthy / 1e6:.0f} MB/s | | |",
        "",
        f"Lag is measured from the moment the primary's 200 arrived (the entry is committed before it answers) to the slower "
        f"follower's first `local: true` on `/api/v1/blobs/<sha256>`; one poll round of both followers took {poll * 1000:.1f} ms (p50), "
        "which bounds the resolution. Bytes received by the catching-up follower: " + str(received) + ".",
        "",
    ]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"replication-{date}.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    log(f"written {out}")
    fo.STATE["failed"] = False
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except fo.BenchError as e:
        print(f"[replication] FAILED: {e}", file=sys.stderr)
        sys.exit(1)
