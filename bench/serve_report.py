#!/usr/bin/env python3
"""Turn bench/serve.sh's raw figures into its markdown report (Python 3 stdlib only).

    serve_report.py --meta META --runs RUNS_TSV --go GO_TSV --gen GEN_TXT --out FILE.md

META holds key=value lines written by serve.sh (setup, memory peaks, upstream
fetch counts); RUNS_TSV one line per wrk run (exact totals from report.lua
and the server's CPU ticks); GO_TSV one line per measured `go mod download`;
GEN_TXT gen_modules.py's output (zip sizes). Writes the full report to
--out and prints its summary (the tables) to stdout. Reads the figures
against the goals of issue 16; never fails because a goal is missed.
"""

import argparse
import csv
import statistics
import sys

WORKLOADS = ["meta", "zips", "zip1", "zipL", "mem"]


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                meta[k] = v
    return meta


def read_tsv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except FileNotFoundError:
        return []


class Run:
    def __init__(self, row, clk_tck):
        self.name = row["name"]
        self.workload, self.server = row["workload"], row["server"]
        self.conns = int(row["conns"])
        self.requests, self.bytes = int(row["requests"]), int(row["bytes"])
        self.seconds = int(row["duration_us"]) / 1e6
        self.errors = int(row["errors"])
        self.p50_ms, self.p99_ms = int(row["p50_us"]) / 1000, int(row["p99_us"]) / 1000
        self.cpu_s = int(row["cpu_ticks"]) / clk_tck
        self.load = row["load_start"]

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else None

    @property
    def mbps(self):
        return self.bytes / self.seconds / 1e6 if self.seconds else None

    @property
    def cpu_us_per_req(self):
        return self.cpu_s * 1e6 / self.requests if self.requests else None

    @property
    def cpu_s_per_gb(self):
        return self.cpu_s / (self.bytes / 1e9) if self.bytes else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, digits=2, thousands=False):
    if v is None:
        return "n/a"
    if thousands:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{digits}f}"


def judge(value, target, floor, higher_is_better):
    """'met' / 'not met (minimum met)' / 'not met' for a ratio against the issue's goal."""
    if value is None:
        return "n/a"
    ok = (lambda x: value >= x) if higher_is_better else (lambda x: value <= x)
    if ok(target):
        return "met"
    if floor is not None and ok(floor):
        return "not met (minimum met)"
    return "not met"


def zip_stats(gen_path, prefix):
    sizes = []
    with open(gen_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith(prefix + "/"):
                sizes.append(int(parts[1]))
    if not sizes:
        return None
    sizes.sort()
    return {"n": len(sizes), "min": sizes[0], "median": statistics.median(sizes), "mean": statistics.mean(sizes), "max": sizes[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for a in ("--meta", "--runs", "--go", "--gen", "--out"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()

    m = read_meta(args.meta)
    clk = int(m["clk_tck"])
    runs = {}
    for row in read_tsv(args.runs):
        r = Run(row, clk)
        runs[(r.workload, r.server)] = r
    missing = [f"{s}-{w}" for w in WORKLOADS for s in ("nginx", "flotilla") if (w, s) not in runs]
    if missing:
        raise SystemExit(f"serve_report.py: no figures for {', '.join(missing)}")
    go_rows = read_tsv(args.go)
    stats = zip_stats(args.gen, m["many_prefix"])

    large = f"{m['large_mib']} MiB zip"
    many = m["many"]
    kib = (lambda b: f"{b / 1024:.0f}") if stats else None
    labels = {
        "meta": f"metadata mix (`.info`, `.mod`, `@v/list` of {many} modules)",
        "zips": f"zips of 5–200 KiB ({many} modules" + (f", median {kib(stats['median'])} KiB)" if stats else ")"),
        "zip1": "1 MiB zip",
        "zipL": f"{large}, -c{m['large_conns']}",
        "mem": f"{large}, -c{m['mem_conns']}",
    }

    def pair(w, attr):
        n, f = runs[(w, "nginx")], runs[(w, "flotilla")]
        return getattr(n, attr), getattr(f, attr)

    # go mod download: medians of the measured runs
    go = {}
    for s in ("nginx", "flotilla"):
        ms = [int(r["wall_ms"]) for r in go_rows if r["server"] == s]
        cpu = [int(r["cpu_ticks"]) / clk for r in go_rows if r["server"] == s]
        go[s] = {"ms": ms, "median": statistics.median(ms) if ms else None, "cpu": statistics.median(cpu) if cpu else None}

    mem_mb = {s: int(m[f"mem_kb_{s}"]) * 1024 / 1e6 if m.get(f"mem_kb_{s}") else None for s in ("nginx", "flotilla")}

    # ---- goals table
    goals = []
    for w, what in (("meta", "metadata mix"), ("zips", "zips of 5–200 KiB"), ("zip1", "1 MiB zip"), ("zipL", large)):
        n, f = pair(w, "rps")
        c = runs[(w, "nginx")].conns
        r = ratio(f, n)
        goals.append((f"{what}, req/s (wrk -c{c})", fmt(n, thousands=True), fmt(f, thousands=True), fmt(r), "≥ 1.0× (at least 0.8×)", judge(r, 1.0, 0.8, True)))
    n, f = pair("zipL", "cpu_s_per_gb")
    r = ratio(f, n)
    goals.append((f"{large}, server CPU s per GB (wrk -c{m['large_conns']})", fmt(n, 3), fmt(f, 3), fmt(r), "≤ 1.5× (at most 2×)", judge(r, 1.5, 2.0, False)))
    goals.append(
        (
            f"peak RSS, {m['mem_conns']} clients downloading the {large}",
            f"{fmt(mem_mb['nginx'], 1)} MB¹",
            f"{fmt(mem_mb['flotilla'], 1)} MB",
            "—",
            "flotilla ≤ 150 MB",
            judge(mem_mb["flotilla"], 150, None, False),
        )
    )
    if go["nginx"]["median"] is not None:
        r = ratio(go["flotilla"]["median"], go["nginx"]["median"])
        goals.append(
            (
                f"`go mod download` of {many} modules, median wall time of {m['go_runs']} runs",
                f"{go['nginx']['median'] / 1000:.2f} s",
                f"{go['flotilla']['median'] / 1000:.2f} s",
                fmt(r),
                "≤ 1.05× (within 5 %)",
                judge(r, 1.05, None, False),
            )
        )
    goals_md = ["| measurement | nginx | flotilla | flotilla / nginx | goal | met |", "| --- | ---: | ---: | ---: | --- | --- |"]
    goals_md += ["| " + " | ".join(row) + " |" for row in goals]

    # ---- per-workload table
    work_md = [
        "| workload | server | req/s | MB/s | CPU µs per request | CPU s per GB | p50 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in WORKLOADS:
        n, f = runs[(w, "nginx")], runs[(w, "flotilla")]
        for r in (n, f):
            work_md.append(
                f"| {labels[w] if r is n else ''} | {r.server} | {fmt(r.rps, thousands=True)} | {fmt(r.mbps, 1)} | {fmt(r.cpu_us_per_req, 1)} | "
                f"{fmt(r.cpu_s_per_gb, 3)} | {fmt(r.p50_ms, 2)} | {fmt(r.p99_ms, 2)} | {r.errors} |"
            )
        work_md.append(
            f"| | *flotilla / nginx* | *{fmt(ratio(f.rps, n.rps))}* | *{fmt(ratio(f.mbps, n.mbps))}* | *{fmt(ratio(f.cpu_us_per_req, n.cpu_us_per_req))}* | "
            f"*{fmt(ratio(f.cpu_s_per_gb, n.cpu_s_per_gb))}* | *{fmt(ratio(f.p50_ms, n.p50_ms))}* | *{fmt(ratio(f.p99_ms, n.p99_ms))}* | |"
        )

    # ---- go table
    go_md = []
    if go_rows:
        go_md = [
            "| GOPROXY | median wall s | runs (s, in order) | server CPU s per run (median) |",
            "| --- | ---: | --- | ---: |",
        ]
        for s in ("nginx", "flotilla"):
            g = go[s]
            go_md.append(f"| {s} | {g['median'] / 1000:.2f} | {', '.join(f'{x / 1000:.2f}' for x in g['ms'])} | {fmt(g['cpu'], 2)} |")

    errors = sum(r.errors for r in runs.values())
    fetches_wrk = int(m["fetches_after_wrk"]) - int(m["fetches_before"])
    fetches_go = int(m["fetches_after_go"]) - int(m["fetches_after_wrk"])
    quick = m["quick"] == "1"

    title = f"# Flotilla serving benchmark, {m['day']}" + (" (quick smoke run)" if quick else "")
    notes = [
        "¹ nginx: summed VmRSS of master and workers (shared pages counted once per process); for comparison only.",
        "",
        f"Flotilla RSS: {m.get('flotilla_idle_kb') or '?'} kB idle before the {m['mem_conns']}-client run, peak VmRSS "
        f"{m.get('mem_kb_flotilla') or '?'} kB sampled every 100 ms during it, VmHWM {m.get('flotilla_hwm_kb') or '?'} kB over "
        "the whole process lifetime (includes the cache fill).",
        f"Upstream fetches by flotilla during the wrk runs: {fetches_wrk}; during the go runs: {fetches_go} "
        "(0 means every request was a cache hit).",
    ]
    if errors:
        notes.append(f"**wrk counted {errors} errors** (socket errors, timeouts or non-2xx answers): those rows are not a fair comparison.")

    setup = [
        f"- started {m['start']}; {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; shared machine: "
        f"load average {m['load_before']} at the start, {m['load_after']} at the end (each run's starting load is in the last table)",
        f"- flotilla: {m['flotilla_version']}, {m['profile']} build ({m['bin']}), git {m['git_rev']}, FLOTILLA_LOG=warn, "
        f"cache.list_ttl={m['list_ttl']} (so lists stay cache hits during the run), other settings default (e.g. cache.memory), one node, upstream = the nginx below",
        f"- nginx {m['nginx_version']}: worker_processes auto, sendfile on, tcp_nopush on, access_log off, keepalive_requests 1000000, "
        "serving the generated tree from disk; it is also flotilla's upstream",
        f"- wrk {m['wrk_version']}, -t{m['threads']}, {m['duration']} per measured run, kept-alive connections, all on 127.0.0.1; "
        f"a {m['warmup']} warm-up per server first; nginx then flotilla for each workload",
        f"- cache fill before measuring: {m['warm'].split()[0]} files fetched through flotilla and compared with nginx's copy "
        "(sha256; `@v/list` as a set of lines)",
        f"- metadata mix: `.info`, `.mod` and `@v/list` of {many} modules {m['many_prefix']}/m*, requested in turn (bench/rotate.lua)",
    ]
    if stats:
        setup.append(
            f"- small zips: {stats['n']} zips, sizes log-uniform in 5–200 KiB: min {stats['min']}, median {stats['median']:.0f}, "
            f"mean {stats['mean']:.0f}, max {stats['max']} bytes, requested in turn"
        )
    setup += [
        f"- {m['module']}: 1 MiB zip ({m['zip1_bytes']} bytes), {large} ({m['large_bytes']} bytes); ZIP_STORED random payload",
        "- CPU: utime+stime from /proc/PID/stat (nginx: master + workers; flotilla: all threads) before and after each run; "
        "GB = 10^9 bytes read by wrk (headers included)",
    ]
    if go_rows:
        setup.append(
            f"- go mod download: {m['go_version']}, a main module requiring the {many} generated modules, "
            f"fresh GOMODCACHE per run (on {m.get('go_fs', 'disk')}), "
            "GOPROXY=<server> (no fallback), GOSUMDB=off, GOFLAGS=-mod=mod; one unmeasured run per server, then "
            f"{m['go_runs']} measured runs each, alternating nginx / flotilla"
        )
    else:
        setup.append("- go mod download: skipped (--no-go)")

    every = [
        "| run | conns | requests | MB read | seconds | req/s | server CPU s | p99 ms | errors | load average at start |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for w in WORKLOADS:
        for s in ("nginx", "flotilla"):
            r = runs[(w, s)]
            every.append(
                f"| {r.name} | {r.conns} | {r.requests} | {r.bytes / 1e6:.1f} | {r.seconds:.2f} | {fmt(r.rps, 1)} | {r.cpu_s:.2f} | "
                f"{r.p99_ms:.2f} | {r.errors} | {r.load} |"
            )
    go_every = []
    if go_rows:
        go_every = ["| go run | GOPROXY | wall s | server CPU s | load average at start |", "| ---: | --- | ---: | ---: | --- |"]
        for r in go_rows:
            go_every.append(f"| {r['run']} | {r['server']} | {int(r['wall_ms']) / 1000:.2f} | {int(r['cpu_ticks']) / clk:.2f} | {r['load_start']} |")

    summary = ["## Goals (issue 16)", "", *goals_md, "", "## Per workload", "", *work_md]
    if go_md:
        summary += ["", "## go mod download", "", *go_md]
    doc = [title, "", *summary, "", *notes, "", "## Setup", "", *setup, "", "## Every run", "", *every]
    if go_every:
        doc += ["", *go_every]
    with open(args.out, "w") as f:
        f.write("\n".join(doc) + "\n")

    print()
    print(
        f"Flotilla serving benchmark ({m['profile']} build{', quick smoke run' if quick else ''}; {m['duration']} runs; "
        f"load average {m['load_before']} -> {m['load_after']})"
    )
    print()
    print("\n".join(summary))
    print()
    print("\n".join(notes))
    print()
    print(f"written to {m['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
