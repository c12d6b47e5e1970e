#!/usr/bin/env python3
"""Failover, commit-latency and write-throughput benchmark of a three-node
Flotilla cluster on this machine.

Starts a static GOPROXY upstream (Python's http.server file handler over a
generated tree) and three `flotilla serve` nodes on 127.0.0.1, then measures:

1. failover: SIGKILL the acting primary, poll the two survivors with cache
   misses of never-requested `.mod` files (1 s client timeout each) until one
   answers 200; kill -> 200 per trial; the killed node is restarted with its
   data dir and must rejoin as a ready follower before the next trial;
2. commit latency: sequential cache misses on the primary's gateway, next to
   the same files fetched from the upstream directly;
3. writes per second: N client threads issuing cache misses to the primary.

The results are printed and written to bench/results/failover-<date>.md.
Python 3 standard library only. Every process it starts is stopped on exit
(normal exit, error, Ctrl-C, SIGTERM, SIGHUP). See bench/README.md.
"""

import argparse
import atexit
import collections
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOST = "127.0.0.1"
MODULE = "example.com/fo"
MOD_BODY = b"module example.com/fo\n"
NODE_IDS = (1, 2, 3)

GOAL_P50 = 1.5
GOAL_MAX = 3.0


def log(msg):
    print(f"[failover {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def warn(msg):
    print(f"[failover {time.strftime('%H:%M:%S')}] WARNING: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

PROCS = []          # every Popen this script started (upstream and nodes, restarts included)
PROCS_LOCK = threading.Lock()
STATE = {"tmp": None, "keep": False, "failed": True, "cleaned": False}


def spawn(argv, env, logfile):
    out = open(logfile, "ab", buffering=0)
    out.write(f"\n=== {datetime.datetime.now().isoformat(timespec='milliseconds')} start: {' '.join(argv)}\n".encode())
    # Own session: a Ctrl-C on the terminal reaches only this script, which
    # then stops the children itself (in order, by pid).
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    out.close()
    with PROCS_LOCK:
        PROCS.append(p)
    return p


def stop_proc(p, grace=3.0):
    if p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            p.kill()
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            warn(f"pid {p.pid} did not exit after SIGKILL")


def cleanup():
    if STATE["cleaned"]:
        return
    STATE["cleaned"] = True
    with PROCS_LOCK:
        procs = list(PROCS)
    for p in procs:
        stop_proc(p)
    tmp = STATE["tmp"]
    if tmp and os.path.isdir(tmp):
        if STATE["keep"] or STATE["failed"]:
            print(f"[failover] temp dir kept (logs, data dirs, upstream tree): {tmp}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def on_signal(signum, _frame):
    print(f"\n[failover] caught signal {signum}; stopping everything", file=sys.stderr, flush=True)
    cleanup()
    os._exit(128 + signum)


def free_ports(n):
    """n distinct free ports on 127.0.0.1 (all held open until all are picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(port, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s")


# ---------------------------------------------------------------- HTTP

class Reply:
    __slots__ = ("status", "body", "port", "hops", "error", "headers")

    def __init__(self, status=None, body=b"", port=None, hops=0, error=None, headers=None):
        self.status, self.body, self.port, self.hops, self.error, self.headers = status, body, port, hops, error, headers or {}

    def outcome(self):
        """Short label for tallies: '200', '503', 'timeout', 'refused', ..."""
        if self.error:
            return self.error
        return str(self.status)


def get_once(port, path, timeout, max_redirects=3):
    """GET on a fresh connection, following redirects to 127.0.0.1 only; the
    whole exchange (all hops) is bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    hops = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Reply(port=port, hops=hops, error="timeout")
        conn = http.client.HTTPConnection(HOST, port, timeout=remaining)
        try:
            conn.connect()
            conn.request("GET", path, headers={"Connection": "close"})
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
            resp = conn.getresponse()
            body = resp.read()
            status = resp.status
            headers = {k.lower(): v for k, v in resp.getheaders()}
        except (socket.timeout, TimeoutError):
            return Reply(port=port, hops=hops, error="timeout")
        except ConnectionRefusedError:
            return Reply(port=port, hops=hops, error="refused")
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            return Reply(port=port, hops=hops, error=type(e).__name__)
        finally:
            conn.close()
        if status in (301, 302, 303, 307, 308) and "location" in headers and hops < max_redirects:
            loc = urllib.parse.urlsplit(headers["location"])
            if loc.hostname not in (HOST, None) or (loc.scheme and loc.scheme != "http"):
                return Reply(status, body, port, hops, error=f"redirect-off-host:{headers['location']}", headers=headers)
            port = loc.port or port
            path = (loc.path or "/") + (f"?{loc.query}" if loc.query else "")
            hops += 1
            continue
        return Reply(status, body, port, hops, headers=headers)


class KeepAlive:
    """One persistent HTTP/1.1 connection (reconnects after errors); no redirects."""

    def __init__(self, port, timeout):
        self.port, self.timeout, self.conn = port, timeout, None

    def get(self, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.close()
                return Reply(resp.status, body, self.port, headers={k.lower(): v for k, v in resp.getheaders()})
            except (socket.timeout, TimeoutError):
                self.close()
                return Reply(port=self.port, error="timeout")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # a kept-alive connection the server closed: retry once on a new one
                self.close()
                if attempt == 1:
                    return Reply(port=self.port, error=type(e).__name__)
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.close()
                return Reply(port=self.port, error=type(e).__name__)
        return Reply(port=self.port, error="unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def fetch_json(port, path, timeout=0.5):
    r = get_once(port, path, timeout, max_redirects=0)
    if r.status != 200:
        return None
    try:
        return json.loads(r.body)
    except ValueError:
        return None


# ---------------------------------------------------------------- upstream tree

def gen_tree(root, versions):
    vdir = os.path.join(root, *MODULE.split("/"), "@v")
    os.makedirs(vdir, exist_ok=True)
    names = []
    for n in range(versions):
        v = f"v1.0.{n}"
        with open(os.path.join(vdir, f"{v}.info"), "w") as f:
            f.write(json.dumps({"Version": v, "Time": "2024-01-02T03:04:05Z"}))
        with open(os.path.join(vdir, f"{v}.mod"), "wb") as f:
            f.write(MOD_BODY)
        names.append(v)
    with open(os.path.join(vdir, "list"), "w") as f:
        f.write("".join(v + "\n" for v in names))


class Versions:
    """Hands out versions nobody has requested yet (thread-safe)."""

    def __init__(self, count):
        self.count, self.next_n, self.lock = count, 0, threading.Lock()

    def take(self):
        with self.lock:
            if self.next_n >= self.count:
                return None
            n = self.next_n
            self.next_n += 1
        return f"v1.0.{n}"

    def used(self):
        with self.lock:
            return self.next_n


def mod_path(v):
    return f"/{MODULE}/@v/{v}.mod"


def direct_path(v, kind="mod"):
    """The file as this script fetches it from the upstream itself: the query
    string is ignored by the server but keeps these fetches apart from
    Flotilla's in the upstream log."""
    return f"/{MODULE}/@v/{v}.{kind}?direct"


def serve_upstream(tree, port):
    """The static GOPROXY upstream: http.server's file handler, threaded, but
    with HTTP/1.1 keep-alive and a listen backlog of 512 (python -m http.server
    has a backlog of 5, so 16 concurrent new connections lose SYNs and wait
    the kernel's 1 s retransmit)."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes: with Nagle on, the body waits
        # for the client's delayed ACK (~40 ms) on a kept-alive connection
        disable_nagle_algorithm = True

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 512
        daemon_threads = True

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = Server((HOST, port), functools.partial(Handler, directory=tree))
    print(f"upstream: serving {tree} on http://{HOST}:{port}/", file=sys.stderr, flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- cluster

class Node:
    def __init__(self, nid, gport, cport):
        self.nid, self.gport, self.cport = nid, gport, cport
        self.proc = None
        self.starts = 0


class Cluster:
    def __init__(self, binary, tmp, upstream_port, versions):
        self.binary, self.tmp = binary, tmp
        ports = free_ports(7)
        self.upstream_port = upstream_port or ports[6]
        self.nodes = {nid: Node(nid, ports[i], ports[3 + i]) for i, nid in enumerate(NODE_IDS)}
        self.by_gport = {n.gport: n.nid for n in self.nodes.values()}
        self.logs = os.path.join(tmp, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.secret = os.path.join(tmp, "cluster-secret")
        with open(self.secret, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(self.secret, 0o600)
        self.tree = os.path.join(tmp, "upstream")
        self.versions = versions
        self.upstream = None
        self.anomalies = []   # (what, detail): things the server did wrong
        self.caught_up = False  # settled() also requires followers' logs to reach the primary's commit

    # -- processes

    def start_upstream(self):
        gen_tree(self.tree, self.versions)
        self.upstream_log = os.path.join(self.logs, "upstream.log")
        self.upstream = spawn([sys.executable, os.path.abspath(__file__), "--serve-upstream", self.tree, str(self.upstream_port)],
                              dict(os.environ), self.upstream_log)
        wait_port(self.upstream_port, self.upstream, 10, "upstream http.server")

    def node_env(self, node):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
        peers = ",".join(f"{n.nid}={HOST}:{n.cport}" for n in self.nodes.values())
        env.update({
            "FLOTILLA_NODE_ID": str(node.nid),
            "FLOTILLA_CLUSTER__LISTEN": f"{HOST}:{node.cport}",
            "FLOTILLA_CLUSTER__PEERS": peers,
            "FLOTILLA_CLUSTER__SECRET_FILE": self.secret,
            # Loopback only: the figures are for the plaintext cluster port.
            "FLOTILLA_CLUSTER__INSECURE_PLAINTEXT": "true",
            "FLOTILLA_GATEWAY__ADVERTISE_URL": f"http://{HOST}:{node.gport}",
            "FLOTILLA_LOG": "warn",
            # generated modules are in no checksum database
            "FLOTILLA_SUMDB": "off",
        })
        return env

    def start_node(self, nid):
        node = self.nodes[nid]
        argv = [self.binary, "serve", "--listen", f"{HOST}:{node.gport}",
                "--data-dir", os.path.join(self.tmp, f"n{nid}"), "--upstream", f"http://{HOST}:{self.upstream_port}"]
        node.proc = spawn(argv, self.node_env(node), self.log_path(nid))
        node.starts += 1

    def log_path(self, nid):
        return os.path.join(self.logs, f"n{nid}.log")

    def check_alive(self, nids):
        for nid in nids:
            p = self.nodes[nid].proc
            if p is None or p.poll() is not None:
                raise BenchError(f"node {nid} exited (status {p.returncode if p else '?'}); see {self.log_path(nid)}:\n"
                                 + tail(self.log_path(nid), 15))

    # -- cluster state

    def snapshot(self, nids):
        """{nid: (status-json or None, ready bool)} for the given nodes."""
        out = {}
        for nid in nids:
            port = self.nodes[nid].gport
            st = fetch_json(port, "/api/v1/status")
            rz = get_once(port, "/readyz", 0.5, max_redirects=0)
            out[nid] = (st, rz.status == 200)
        return out

    def settled(self, snap):
        """The primary's id if the nodes in snap agree on one acting primary,
        all are ready and every follower knows its URL; else None and why."""
        acting = [nid for nid, (st, _) in snap.items() if st and st.get("cluster", {}).get("acting_primary")]
        if len(acting) > 1:
            terms = {nid: snap[nid][0]["cluster"].get("term") for nid in acting}
            self.anomalies.append(("two acting primaries", f"status reports acting_primary=true on nodes {acting} (terms {terms})"))
        if len(acting) != 1:
            return None, f"acting primaries: {acting}"
        p = acting[0]
        for nid, (st, ready) in snap.items():
            if not st or not ready:
                return None, f"node {nid} not ready"
            c = st.get("cluster", {})
            if st.get("node_id") not in (nid, None):
                self.anomalies.append(("wrong node_id", f"gateway of node {nid} reports node_id {st.get('node_id')}"))
            if c.get("primary_id") != p:
                return None, f"node {nid} sees primary {c.get('primary_id')}, not {p}"
            if nid != p:
                if str(c.get("role", "")).lower() != "follower":
                    return None, f"node {nid} role {c.get('role')}"
                if c.get("primary_url") != f"http://{HOST}:{self.nodes[p].gport}":
                    return None, f"node {nid} primary_url {c.get('primary_url')}"
        if self.caught_up:
            behind = lagging(snap, p)
            if behind:
                return None, f"followers behind the primary's commit: {fmt_behind(behind)}"
        return p, "ok"

    def wait_settled(self, nids, timeout, what):
        deadline = time.monotonic() + timeout
        why = "no answer yet"
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            self.check_alive(nids)
            snap = self.snapshot(nids)
            p, why = self.settled(snap)
            if p is not None:
                return p, time.monotonic() - t0, snap
            time.sleep(0.05)
        raise BenchError(f"{what}: cluster not settled within {timeout:.0f} s (last: {why})")


def tail(path, n):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    " + line for line in lines[-n:])
    except OSError as e:
        return f"    (cannot read {path}: {e})"


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def tally(labels):
    c = collections.Counter(labels)
    return ", ".join(f"{n}×{k}" for k, n in c.most_common()) or "—"


def metric_sum(port, name, **labels):
    """Sum of a Prometheus counter on a node's /metrics over series matching labels."""
    r = get_once(port, "/metrics", 2.0, max_redirects=0)
    if r.status != 200:
        return None
    total = 0.0
    for line in r.body.decode("utf-8", "replace").splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) not in (name, name + "_total"):
            continue
        lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(lab.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def upstream_gets(log_path, suffix):
    """Successful GETs of paths ending in suffix in the http.server log: {path: count}."""
    counts = collections.Counter()
    try:
        with open(log_path, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                m = re.search(r'"GET (\S+) HTTP/[\d.]+" (\d{3})', line)
                if m and m.group(1).endswith(suffix) and m.group(2) == "200":
                    counts[m.group(1)] += 1
    except OSError:
        pass
    return counts


# ---------------------------------------------------------------- phases

def failover_trial(cl, vers, trial, args):
    nids = list(NODE_IDS)
    primary, _, snap = cl.wait_settled(nids, args.settle_timeout, f"trial {trial} start")
    old_term = snap[primary][0]["cluster"].get("term")
    behind = lagging(snap, primary)
    survivors = [n for n in nids if n != primary]
    victim = cl.nodes[primary].proc

    attempts = []
    t_kill = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    done = None
    i = 0
    while time.monotonic() - t_kill < args.trial_timeout and i < args.max_attempts:
        nid = survivors[i % 2]
        i += 1
        v = vers.take()
        if v is None:
            raise BenchError("out of fresh versions; raise --versions")
        t0 = time.monotonic()
        r = get_once(cl.nodes[nid].gport, mod_path(v), args.poll_timeout)
        t1 = time.monotonic()
        served_by = cl.by_gport.get(r.port, r.port)
        attempts.append({"node": nid, "version": v, "outcome": r.outcome(), "secs": t1 - t0,
                         "at": t0 - t_kill, "served_by": served_by, "hops": r.hops,
                         "body": r.body[:200], "retry_after": r.headers.get("retry-after")})
        if r.status == 200:
            if r.body != MOD_BODY:
                cl.anomalies.append(("wrong .mod body", f"GET {mod_path(v)} via node {nid} -> 200 {r.body[:100]!r}"))
                continue
            if served_by == primary:
                cl.anomalies.append(("200 from the killed primary", f"GET {mod_path(v)} via node {nid} served by port {r.port}"))
            done = t1 - t_kill
            break
        if r.status is not None and r.status not in (503, 307) :
            cl.anomalies.append((f"unexpected {r.status} during failover",
                                 f"trial {trial}: GET http://{HOST}:{cl.nodes[nid].gport}{mod_path(v)} -> {r.status} "
                                 f"(after {r.hops} redirect(s), final port {r.port}) body {r.body[:200]!r}"))
        if t1 - t0 < 0.02:
            time.sleep(0.02)   # an instant refusal: do not spin
    victim.wait(timeout=10)
    if done is None:
        raise BenchError(f"trial {trial}: no 200 within {args.trial_timeout:.0f} s / {len(attempts)} attempts after killing node {primary} "
                         f"(outcomes: {tally(a['outcome'] for a in attempts)})")

    # who took over, as the survivors see it right after the 200
    new_primary, _, snap2 = cl.wait_settled(survivors, args.settle_timeout, f"trial {trial} after failover")
    new_term = snap2[new_primary][0]["cluster"].get("term")

    # restart the killed node with its data; it must rejoin as a ready follower
    t_restart = time.monotonic()
    cl.start_node(primary)
    p_after, _, snap3 = cl.wait_settled(nids, args.settle_timeout, f"trial {trial} rejoin of node {primary}")
    rejoin = time.monotonic() - t_restart
    rejoin_lag = lagging(snap3, p_after).get(primary)
    if rejoin_lag:
        cl.anomalies.append(("ready before caught up",
                             f"trial {trial}: restarted node {primary} answered /readyz 200 as a follower of node {p_after} "
                             f"{rejoin:.2f} s after its start while its log ended at index {rejoin_lag[0]} and the primary had "
                             f"committed {rejoin_lag[1]} (status: {json.dumps(snap3[primary][0].get('cluster'))})"))
    if p_after == primary:
        # allowed by raft (it can win a later election), but notable: the
        # restarted node should have come back as a follower of new_primary
        cl.anomalies.append(("restarted node became primary again",
                             f"trial {trial}: node {primary} was restarted and is primary again (term {snap3[p_after][0]['cluster'].get('term')})"))
    failed = [a for a in attempts if a["outcome"] != "200"]
    return {
        "trial": trial, "killed": primary, "old_term": old_term, "new_primary": new_primary, "new_term": new_term,
        "secs": done, "attempts": len(attempts), "failed": tally(a["outcome"] for a in failed),
        "first_200_via": attempts[-1]["node"], "first_200_served_by": attempts[-1]["served_by"],
        "rejoin": rejoin, "primary_after_rejoin": p_after, "log": attempts,
        "behind": behind, "rejoin_lag": rejoin_lag,
    }


def lagging(snap, primary):
    """{follower: (its last_log_index, primary's committed)} for followers whose
    log ends before the primary's committed index, from one status snapshot."""
    pc = (snap.get(primary, (None,))[0] or {}).get("cluster", {}).get("committed")
    out = {}
    for nid, (st, _) in snap.items():
        if nid == primary or not st:
            continue
        last = st.get("cluster", {}).get("last_log_index")
        if isinstance(pc, int) and isinstance(last, int) and last < pc:
            out[nid] = (last, pc)
    return out


def commit_latency(cl, vers, args):
    p, _, _ = cl.wait_settled(list(NODE_IDS), args.settle_timeout, "commit-latency start")
    client = KeepAlive(cl.nodes[p].gport, timeout=10)
    for _ in range(5):                      # warm-up: connection, upstream client pool
        v = vers.take()
        client.get(mod_path(v))
    lat, used, errors = [], [], []
    t_end = time.monotonic() + args.phase_timeout
    for _ in range(args.commits):
        if time.monotonic() > t_end:
            warn(f"commit-latency phase hit its {args.phase_timeout:.0f} s bound after {len(lat)} requests")
            break
        v = vers.take()
        if v is None:
            raise BenchError("out of fresh versions; raise --versions")
        t0 = time.perf_counter()
        r = client.get(mod_path(v))
        dt = time.perf_counter() - t0
        if r.status == 200 and r.body == MOD_BODY:
            lat.append(dt)
            used.append(v)
        else:
            errors.append(r.outcome())
            if len(errors) <= 3:
                cl.anomalies.append(("commit-latency miss failed", f"GET http://{HOST}:{cl.nodes[p].gport}{mod_path(v)} -> {r.outcome()} {r.body[:200]!r}"))
    client.close()
    # the same files straight from the upstream, on one kept-alive connection
    # (as Flotilla's pooled upstream client does)
    up = []
    uc = KeepAlive(cl.upstream_port, timeout=10)
    uc.get(direct_path("v1.0.0"))
    for v in used:
        t0 = time.perf_counter()
        r = uc.get(direct_path(v))
        dt = time.perf_counter() - t0
        if r.status == 200:
            up.append(dt)
    uc.close()
    return {"primary": p, "lat": lat, "errors": errors, "up": up, "versions": used}


def write_rate(cl, vers, args):
    p, _, _ = cl.wait_settled(list(NODE_IDS), args.settle_timeout, "writes/s start")
    port = cl.nodes[p].gport
    before = metric_sum(port, "flotilla_upstream_fetches_total", kind="mod")
    before_cm = metric_sum(port, "flotilla_cache_misses_total", kind="mod")
    results = [None] * args.threads
    start = threading.Barrier(args.threads + 1)
    per_thread_cap = args.max_writes // args.threads + 1

    def worker(k):
        client = KeepAlive(port, timeout=10)
        ok, lat, errs, used = 0, [], [], []
        start.wait()
        end = t_start[0] + args.write_seconds
        last = time.monotonic()
        while time.monotonic() < end and ok + len(errs) < per_thread_cap:
            v = vers.take()
            if v is None:
                errs.append("out-of-versions")
                break
            t0 = time.perf_counter()
            r = client.get(mod_path(v))
            lat.append(time.perf_counter() - t0)
            last = time.monotonic()
            if r.status == 200 and r.body == MOD_BODY:
                ok += 1
                used.append(v)
            else:
                errs.append(r.outcome())
        client.close()
        results[k] = (ok, lat, errs, last, used)

    t_start = [0.0]
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(args.threads)]
    for t in threads:
        t.start()
    t_start[0] = time.monotonic()
    start.wait()
    for t in threads:
        t.join(timeout=args.write_seconds + 30)
    if any(t.is_alive() for t in threads):
        raise BenchError("a writes/s client thread did not finish in time")
    t_last = max(r[3] for r in results)
    elapsed = t_last - t_start[0]
    ok = sum(r[0] for r in results)
    lat = [x for r in results for x in r[1]]
    errs = [x for r in results for x in r[2]]
    used = [v for r in results for v in r[4]]
    after = metric_sum(port, "flotilla_upstream_fetches_total", kind="mod")
    after_cm = metric_sum(port, "flotilla_cache_misses_total", kind="mod")
    if errs:
        cl.anomalies.append(("writes/s misses failed", f"{len(errs)} of {len(lat)} requests: {tally(errs)}"))
    if len(lat) >= per_thread_cap * args.threads:
        warn(f"the writes/s run hit its --max-writes bound ({args.max_writes}) after {elapsed:.2f} s; raise it for a full-length run")

    # for comparison: the upstream alone, same client threads, same duration
    up_res = [0] * args.threads
    up_end = [0.0]

    def up_worker(k):
        n = 0
        uc = KeepAlive(cl.upstream_port, timeout=10)
        while time.monotonic() < up_end[0] and n < per_thread_cap * 4:
            v = used[(k * 7919 + n) % len(used)] if used else "v1.0.0"
            r = uc.get(direct_path(v))
            if r.status == 200:
                n += 1
            else:
                time.sleep(0.01)
        uc.close()
        up_res[k] = n

    up_secs = min(args.write_seconds, 3.0)
    up_end[0] = time.monotonic() + up_secs
    t0 = time.monotonic()
    uts = [threading.Thread(target=up_worker, args=(k,), daemon=True) for k in range(args.threads)]
    for t in uts:
        t.start()
    for t in uts:
        t.join(timeout=up_secs + 30)
    up_elapsed = time.monotonic() - t0

    return {"primary": p, "ok": ok, "elapsed": elapsed, "rate": ok / elapsed if elapsed > 0 else 0.0,
            "lat": lat, "errors": errs, "versions": used,
            "upstream_fetches": None if before is None or after is None else after - before,
            "cache_misses": None if before_cm is None or after_cm is None else after_cm - before_cm,
            "upstream_rate": sum(up_res) / up_elapsed if up_elapsed > 0 else 0.0}


def check_replicated(cl, versions, timeout):
    """Every node must serve these versions from its own catalog (200 without a redirect)."""
    deadline = time.monotonic() + timeout
    missing = {}
    for nid in NODE_IDS:
        for v in versions:
            while True:
                r = get_once(cl.nodes[nid].gport, mod_path(v), 2.0, max_redirects=0)
                if r.status == 200 and r.body == MOD_BODY:
                    break
                if time.monotonic() > deadline:
                    missing.setdefault(nid, []).append(f"{v}: {r.outcome()}")
                    break
                time.sleep(0.05)
    return missing


# ---------------------------------------------------------------- report

def fmt_behind(b):
    return ", ".join(f"node {n}: log ends {last} < committed {pc}" for n, (last, pc) in sorted(b.items())) or "none"


def fmt_s(x):
    return f"{x:.3f} s"


def fmt_ms(x):
    return f"{x * 1000:.1f} ms"


def setup_lines(args, started, load_before, load_after):
    version = "unknown"
    try:
        version = subprocess.run([args.bin, "--version"], capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    profile = "debug" if "/debug/" in args.bin else ("release" if "/release/" in args.bin else "unknown")
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or "no commit"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain"], capture_output=True, text=True, timeout=10).stdout.strip()
        if dirty and rev != "no commit":
            rev += " (dirty)"
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [
        f"- started {started}, {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"load average {load_before} before, {load_after} after",
        f"- flotilla: {version}, {profile} build (judged from the path {args.bin}), git {rev}, FLOTILLA_LOG=warn, "
        f"default raft timing (heartbeat 100 ms, elections 300–600 ms), gateway.mode redirect, leader_wait 5 s",
        f"- three nodes, the client and the upstream (Python {sys.version.split()[0]} http.server file handler, threaded, HTTP/1.1 keep-alive, "
        f"listen backlog 512), all on 127.0.0.1 on this machine",
        f"- failover: {args.trials} trials, each started once all nodes answered /readyz 200 with one acting primary"
        + (" and every follower's log had reached the primary's committed index" if args.settle_caught_up else "")
        + f"; each request a never-requested `.mod` with a {args.poll_timeout:g} s client timeout "
        f"(whole exchange, redirects included), alternating between the two survivors; time from SIGKILL to the first 200",
        f"- commit latency: {args.commits} sequential misses on one kept-alive connection to the primary (after 5 warm-up misses); "
        f"upstream: the same `.mod` files from the upstream directly, one kept-alive connection",
        f"- writes/s: {args.threads} threads, one kept-alive connection each, for {args.write_seconds:g} s; "
        f"upstream alone: same threads, kept-alive connections, {min(args.write_seconds, 3.0):g} s",
    ]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = os.environ.get("FLOTILLA_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/flotilla-target"), "debug", "flotilla")
    ap.add_argument("--bin", default=default_bin, help="flotilla binary (default: $FLOTILLA_BIN or %(default)s)")
    ap.add_argument("--trials", type=int, default=10, help="failover trials (default %(default)s)")
    ap.add_argument("--commits", type=int, default=200, help="sequential misses for the commit latency (default %(default)s)")
    ap.add_argument("--threads", type=int, default=16, help="client threads for writes/s (default %(default)s)")
    ap.add_argument("--write-seconds", type=float, default=5.0, help="duration of the writes/s run (default %(default)s)")
    ap.add_argument("--versions", type=int, help="versions in the upstream tree (default: enough for every bound of the run)")
    ap.add_argument("--poll-timeout", type=float, default=1.0, help="client timeout per failover request, s (default %(default)s)")
    ap.add_argument("--trial-timeout", type=float, default=30.0, help="give up on a failover trial after this, s (default %(default)s)")
    ap.add_argument("--max-attempts", type=int, default=500, help="requests per failover trial at most (default %(default)s)")
    ap.add_argument("--settle-timeout", type=float, default=60.0, help="wait this long for a settled cluster, s (default %(default)s)")
    ap.add_argument("--phase-timeout", type=float, default=300.0, help="bound of the commit-latency phase, s (default %(default)s)")
    ap.add_argument("--max-writes", type=int, default=20000, help="requests of the writes/s run at most (default %(default)s)")
    ap.add_argument("--settle-caught-up", action="store_true",
                    help="before each trial also wait until every follower's log reaches the primary's committed index "
                         "(by default a trial starts once all nodes answer /readyz 200, as the brief asks)")
    ap.add_argument("--out", help="results file (default bench/results/failover-<date>.md)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data dirs, upstream tree)")
    args = ap.parse_args()
    if args.trials < 1 or args.commits < 1 or args.threads < 1:
        ap.error("--trials, --commits and --threads must be at least 1")
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        ap.error(f"flotilla binary not found or not executable: {args.bin} (set FLOTILLA_BIN or --bin; "
                 f"build with cargo build -p flotilla-node)")
    need = 6 + 5 + args.commits + args.max_writes + args.threads + args.trials * args.max_attempts
    if args.versions is None:
        args.versions = need
    elif args.versions < need:
        warn(f"--versions {args.versions} is fewer than this run may need ({need}); it stops with an error if they run out")

    STATE["keep"] = args.keep
    atexit.register(cleanup)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_before = loadavg()
    if "/debug/" in args.bin:
        warn(f"{args.bin} looks like a debug build: its latency and throughput figures say little about a release build")
    tmp = tempfile.mkdtemp(prefix="flotilla-failover-")
    STATE["tmp"] = tmp
    cl = Cluster(args.bin, tmp, None, args.versions)
    cl.caught_up = args.settle_caught_up
    vers = Versions(args.versions)

    log(f"generating {args.versions} versions of {MODULE} and starting the upstream on {HOST}:{cl.upstream_port}")
    cl.start_upstream()
    for nid in NODE_IDS:
        n = cl.nodes[nid]
        log(f"starting node {nid}: gateway {HOST}:{n.gport}, cluster {HOST}:{n.cport}")
        cl.start_node(nid)
    for nid in NODE_IDS:
        wait_port(cl.nodes[nid].gport, cl.nodes[nid].proc, 60, f"node {nid}")
    p, secs, _ = cl.wait_settled(list(NODE_IDS), args.settle_timeout, "initial election")
    log(f"cluster settled in {secs:.2f} s after the gateways listened: node {p} is the primary")
    # make sure every gateway can already serve a miss, then begin
    r = get_once(cl.nodes[p].gport, mod_path(vers.take()), 10)
    if r.status != 200:
        raise BenchError(f"first miss on the primary failed: {r.outcome()} {r.body[:200]!r}")

    # 1. failover
    trials = []
    for t in range(1, args.trials + 1):
        res = failover_trial(cl, vers, t, args)
        trials.append(res)
        log(f"trial {t:2d}: killed node {res['killed']} (term {res['old_term']}) -> first 200 after {res['secs']:.3f} s "
            f"({res['attempts']} requests; before it: {res['failed']}); followers behind at the kill: {fmt_behind(res['behind'])}; "
            f"new primary node {res['new_primary']} term {res['new_term']}; "
            f"node {res['killed']} back as ready follower after {res['rejoin']:.2f} s")
    fo = [r["secs"] for r in trials]
    f50, f90, fmax = pct(fo, 50), pct(fo, 90), max(fo)
    log(f"failover: p50 {f50:.3f} s, p90 {f90:.3f} s, max {fmax:.3f} s  (goal: p50 ≤ {GOAL_P50} s, max ≤ {GOAL_MAX} s)")

    # 2. commit latency
    log(f"commit latency: {args.commits} sequential misses on the primary")
    cr = commit_latency(cl, vers, args)
    c50, c99 = pct(cr["lat"], 50), pct(cr["lat"], 99)
    u50, u99 = pct(cr["up"], 50), pct(cr["up"], 99)
    log(f"commit latency (node {cr['primary']}): p50 {fmt_ms(c50)}, p99 {fmt_ms(c99)}, {len(cr['errors'])} errors; "
        f"upstream alone p50 {fmt_ms(u50)}, p99 {fmt_ms(u99)}")

    # 3. writes/s
    log(f"writes/s: {args.threads} threads for {args.write_seconds:g} s on the primary")
    wr = write_rate(cl, vers, args)
    log(f"writes/s (node {wr['primary']}): {wr['ok']} misses in {wr['elapsed']:.2f} s = {wr['rate']:.1f}/s, "
        f"p50 {fmt_ms(pct(wr['lat'], 50))}, p99 {fmt_ms(pct(wr['lat'], 99))}, {len(wr['errors'])} errors; "
        f"upstream alone {wr['upstream_rate']:.0f} req/s")

    # checks: replicated everywhere, one upstream fetch per file
    sample = cr["versions"][-10:] + wr["versions"][-10:]
    missing = check_replicated(cl, sample, 10)
    for nid, vs in missing.items():
        cl.anomalies.append(("committed version not served by a node",
                             f"node {nid} does not serve {len(vs)} of {len(sample)} committed versions after 10 s: {vs[:3]}"))
    gets = upstream_gets(cl.upstream_log, ".mod")   # Flotilla's only: ours end in "?direct"
    dup = {path: n for path, n in gets.items() if n > 1}
    wr_fetch_note = (f"{wr['upstream_fetches']:.0f} upstream `.mod` fetches and {wr['cache_misses']:.0f} `.mod` misses counted by the primary's /metrics "
                     f"for {wr['ok'] + len(wr['errors'])} requests" if wr["upstream_fetches"] is not None and wr["cache_misses"] is not None
                     else "upstream fetch counter not found on /metrics")
    if dup:
        cl.anomalies.append(("a file fetched from upstream more than once",
                             f"{len(dup)} `.mod` paths, e.g. {sorted(dup.items())[:3]}"))

    # log lines at warn/error level
    log_findings = {}
    for nid in NODE_IDS:
        try:
            with open(cl.log_path(nid), "rb") as f:
                lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if re.search(r"\b(WARN|ERROR)\b", l)]
        except OSError:
            lines = []
        if lines:
            log_findings[nid] = lines

    load_after = loadavg()
    met = lambda ok: "yes" if ok else "no"
    table = [
        "| Measurement | value | goal | met |",
        "| --- | ---: | --- | --- |",
        f"| failover, SIGKILL of the primary → first 200 on a new miss, p50 ({len(fo)} trials) | {f50:.3f} s | ≤ {GOAL_P50} s | {met(f50 <= GOAL_P50)} |",
        f"| failover, p90 | {f90:.3f} s | — | — |",
        f"| failover, max | {fmax:.3f} s | ≤ {GOAL_MAX} s | {met(fmax <= GOAL_MAX)} |",
        f"| commit latency: `.mod` miss on the primary (upstream fetch + raft commit), p50 | {fmt_ms(c50)} | — | — |",
        f"| commit latency, p99 ({len(cr['lat'])} sequential misses) | {fmt_ms(c99)} | — | — |",
        f"| upstream alone: same `.mod` fetched directly, p50 / p99 | {fmt_ms(u50)} / {fmt_ms(u99)} | — | — |",
        f"| commit latency minus upstream, p50 | {fmt_ms(c50 - u50)} | — | — |",
        f"| writes/s: completed misses, {args.threads} threads, {wr['elapsed']:.1f} s | {wr['rate']:.1f} /s | — | — |",
        f"| writes/s run: latency p50 / p99 | {fmt_ms(pct(wr['lat'], 50))} / {fmt_ms(pct(wr['lat'], 99))} | — | — |",
        f"| upstream alone, {args.threads} threads (`.mod` req/s) | {wr['upstream_rate']:.0f} /s | — | — |",
    ]

    trial_rows = [
        "| trial | killed | term | new primary | term | kill → 200 | requests | before the 200 | 200 via → served by | followers behind at the kill | rejoin → ready follower |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for r in trials:
        trial_rows.append(f"| {r['trial']} | {r['killed']} | {r['old_term']} | {r['new_primary']} | {r['new_term']} | {r['secs']:.3f} s | "
                          f"{r['attempts']} | {r['failed']} | node {r['first_200_via']} → node {r['first_200_served_by']} | "
                          f"{fmt_behind(r['behind'])} | {r['rejoin']:.2f} s{' (log behind)' if r['rejoin_lag'] else ''} |")

    print()
    print("\n".join(table))
    print()
    print("\n".join(trial_rows))
    print()
    if cl.anomalies:
        print("Server anomalies:")
        for what, detail in cl.anomalies:
            print(f"  - {what}: {detail}")
    else:
        print("Server anomalies: none seen")
    print(f"Writes run: {wr_fetch_note}; errors: {tally(wr['errors'])}. Commit-latency errors: {tally(cr['errors'])}.")
    for nid, lines in log_findings.items():
        print(f"node {nid}: {len(lines)} WARN/ERROR log lines, last: {lines[-1][:300]}")

    # results file
    day = datetime.date.today().isoformat()
    out = args.out
    if not out:
        rdir = os.path.join(HERE, "results")
        os.makedirs(rdir, exist_ok=True)
        out = os.path.join(rdir, f"failover-{day}.md")
        if os.path.exists(out):
            out = os.path.join(rdir, f"failover-{day}-{time.strftime('%H%M%S')}.md")
    md = [f"# Flotilla failover benchmark, {day}", ""] + table + [
        "",
        "Goals are only read against the figures; the script never fails because one is missed.",
        "",
        "## Setup", "",
    ] + setup_lines(args, started, load_before, load_after) + [
        "", "## Failover trials", "",
        "`term` is the raft term before the kill and of the new primary; `before the 200` tallies the answers "
        "to the earlier requests of the trial (`timeout` = no answer within the client timeout).", "",
    ] + trial_rows + ["", "## Checks", ""]
    md.append(f"- replication: the last 10 versions of the latency run and of the writes run, read from every node without redirects: "
              + ("all served by all nodes" if not missing else f"MISSING on {sorted(missing)}"))
    md.append(f"- upstream `.mod` fetches per file by Flotilla (upstream log): "
              + ("at most 1 for every file" if not dup else f"{len(dup)} files fetched more than once"))
    md.append(f"- writes run: {wr_fetch_note}; errors: {tally(wr['errors'])}")
    md.append(f"- commit-latency run errors: {tally(cr['errors'])}")
    md += ["", "## Server anomalies", ""]
    md += [f"- {what}: {detail}" for what, detail in cl.anomalies] or ["- none seen"]
    md += ["", "## WARN/ERROR log lines (FLOTILLA_LOG=warn)", ""]
    if log_findings:
        for nid, lines in log_findings.items():
            md.append(f"- node {nid}: {len(lines)} lines; first and last:")
            md.append("")
            md.append("  ```")
            for line in (lines[:3] + (["  ..."] if len(lines) > 6 else []) + lines[-3:] if len(lines) > 6 else lines):
                md.append("  " + line[:400])
            md.append("  ```")
    else:
        md.append("- none")
    md += ["", "## Every failover request", "",
           "| trial | # | at (s after kill) | to node | answer | took | served by | Retry-After | body |",
           "| ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- |"]
    for r in trials:
        for k, a in enumerate(r["log"], 1):
            body = a["body"].decode("utf-8", "replace").strip().replace("|", "\\|").replace("\n", " ")[:120]
            md.append(f"| {r['trial']} | {k} | {a['at']:.3f} | {a['node']} | {a['outcome']} | {a['secs']:.3f} s | {a['served_by']} | "
                      f"{a['retry_after'] or ''} | {body} |")
    with open(out, "w") as f:
        f.write("\n".join(md) + "\n")
    log(f"results written to {os.path.relpath(out, REPO)}")
    STATE["failed"] = False
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-upstream":
        serve_upstream(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"[failover] FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
