#!/usr/bin/env bash
# Serving benchmark: Flotilla against nginx serving the same files from disk,
# side by side on this machine, in one run. See bench/README.md.
#
#   bench/serve.sh [--quick] [--duration 10s] [--go-runs 5] [--modules 200] [--no-go] [--keep]
#
# Workloads, each measured on nginx and then on Flotilla with wrk over
# kept-alive connections: the metadata mix (.info, .mod and @v/list of many
# modules in turn), zips of 5-200 KiB (many modules in turn), a 1 MiB zip,
# a 100 MiB zip (20 MiB with --quick; CPU per GB, and peak RSS with 64
# clients); then the wall time of `go mod download` of the generated modules
# with GOPROXY pointed at Flotilla and at nginx (median of --go-runs each).
#
# Environment:
#   FLOTILLA_BIN      flotilla binary (default: $CARGO_TARGET_DIR/release/flotilla,
#                     CARGO_TARGET_DIR defaulting to ~/.cache/flotilla-target;
#                     built with `cargo build --release -p flotilla-node` if missing)
#   TMPDIR            where the temporary tree, nginx and flotilla data go
#   GO_TMPDIR         where each `go mod download` writes its module cache
#                     (default /dev/shm when it is a writable tmpfs, else
#                     TMPDIR): on a disk, the writeback of earlier runs'
#                     caches slowed every later run (0.6 s to 1.2 s over six
#                     runs against the same nginx, flat at 0.33 s on tmpfs),
#                     which measured the client's disk, not the server
#
# Figures are printed (and written to bench/results/serve-<date>.md), never
# asserted: the exit status says whether the benchmark ran, not whether a
# goal was met.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
MODULE=example.com/bench # the 1 MiB (v1.0.0) and large (v1.1.0) zips
MANY_PREFIX=example.com/gen
SMALL_V=v1.0.0
LARGE_V=v1.1.0

usage() {
    sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF2'
Options:
  --duration D   wrk duration of every measured run (wrk syntax: 10s, 1m; default 10s, 3s with --quick)
  --quick        smoke run: 3 s runs, a 20 MiB "large" zip, 3 go runs per server (about 2 minutes)
  --go-runs N    measured `go mod download` runs per server (default 5, 3 with --quick)
  --modules N    generated small modules: the metadata mix, the small zips, the go set (default 200)
  --no-go        skip the `go mod download` measurement (no go command needed)
  --keep         keep the temporary directory (tree, configs, logs, raw wrk and go output)
  -h, --help     this text
EOF2
}

DURATION=
QUICK=0
KEEP=0
GO_RUNS=
MANY=200
NO_GO=0
while (($#)); do
    case $1 in
    --duration) (($# >= 2)) || { usage >&2; exit 2; }; DURATION=$2; shift 2 ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --go-runs) (($# >= 2)) || { usage >&2; exit 2; }; GO_RUNS=$2; shift 2 ;;
    --go-runs=*) GO_RUNS=${1#*=}; shift ;;
    --modules) (($# >= 2)) || { usage >&2; exit 2; }; MANY=$2; shift 2 ;;
    --modules=*) MANY=${1#*=}; shift ;;
    --no-go) NO_GO=1; shift ;;
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "serve.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if ((QUICK)); then
    DURATION=${DURATION:-3s}
    LARGE_MIB=20
    GO_RUNS=${GO_RUNS:-3}
else
    DURATION=${DURATION:-10s}
    LARGE_MIB=100
    GO_RUNS=${GO_RUNS:-5}
fi
SMALL_MIB=1
WARMUP=1s
CONNS=64       # metadata mix, small zips, 1 MiB zip
LARGE_CONNS=4  # large zip: req/s and CPU per GB
MEM_CONNS=64   # large zip: peak RSS
THREADS=2
LIST_TTL=1h    # flotilla's list_ttl: lists stay cache hits for the whole run, like the other files

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'serve.sh: warning: %s\n' "$*" >&2; }
die() { printf 'serve.sh: %s\n' "$*" >&2; exit 1; }

[[ $GO_RUNS =~ ^[0-9]+$ ]] && ((GO_RUNS >= 1 && GO_RUNS <= 100)) || die "--go-runs must be a number from 1 to 100"
[[ $MANY =~ ^[0-9]+$ ]] && ((MANY >= 1 && MANY <= 5000)) || die "--modules must be a number from 1 to 5000"

# wrk duration -> whole seconds, for bounding loops.
dur_secs() {
    local d=$1
    [[ $d =~ ^([0-9]+)([smh]?)$ ]] || die "bad duration '$d' (use e.g. 10s, 2m)"
    local n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in
    m) echo $((n * 60)) ;;
    h) echo $((n * 3600)) ;;
    *) echo "$n" ;;
    esac
}
DUR_S=$(dur_secs "$DURATION")
((DUR_S >= 1)) || die "duration must be at least 1s"

# ---------------------------------------------------------------- tools

need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((!NO_GO)) && ! command -v go >/dev/null 2>&1; then
    die "the go command is not on PATH: install Go, or pass --no-go to skip the go mod download measurement"
fi
if ((${#need[@]})); then
    if ((EUID == 0)); then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "missing ${need[*]}; install them (apt-get install -y ${need[*]}) or run as root"
    fi
    log "installing ${need[*]} with apt-get"
    "${SUDO[@]}" apt-get update -qq || warn "apt-get update failed; trying the install anyway"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
for t in getconf awk find timeout; do
    command -v "$t" >/dev/null 2>&1 || die "missing $t"
done
CLK_TCK=$(getconf CLK_TCK)

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}
if [[ -n ${FLOTILLA_BIN:-} ]]; then
    BIN=$FLOTILLA_BIN
    [[ -x $BIN ]] || die "FLOTILLA_BIN=$BIN is not an executable file"
else
    BIN=$TARGET_DIR/release/flotilla
    if [[ ! -x $BIN ]]; then
        log "no release binary at $BIN: running cargo build --release -p flotilla-node"
        log "the first release build compiles RocksDB from source: expect 15-25 minutes on 2 cores"
        (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p flotilla-node)
        [[ -x $BIN ]] || die "cargo build finished but $BIN is missing"
    fi
fi
PROFILE=release
case $BIN in */debug/*) PROFILE=debug ;; esac
if [[ $PROFILE == debug ]]; then
    warn "$BIN looks like a debug build: its figures say nothing about release performance"
fi

# ---------------------------------------------------------------- cleanup

WORK=
GO_WORK=
GO_FS=none
NGINX_PID=
FLOTILLA_PID=
CHILD_PID=
SAMPLER_PIDS=()
NGINX_CHILDREN=()

# Stops one process this script started: SIGTERM, then SIGKILL after
# $2 tenths of a second.
stop_pid() {
    local pid=$1 tenths=${2:-50} i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local p
    stop_pid "$CHILD_PID" 50 # wrk, go or the cache fill
    for p in "${SAMPLER_PIDS[@]}"; do stop_pid "$p" 10; done
    stop_pid "$FLOTILLA_PID" 120 # flotilla's own grace period is 10 s
    stop_pid "$NGINX_PID" 50
    for p in "${NGINX_CHILDREN[@]}"; do # workers outlive a SIGKILLed master
        if [[ $(cat "/proc/$p/comm" 2>/dev/null) == nginx ]]; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    [[ -n $GO_WORK && -d $GO_WORK ]] && rm -rf "$GO_WORK"
    if [[ -n $WORK && -d $WORK ]]; then
        if ((KEEP)); then
            log "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- /proc helpers

# utime+stime, in clock ticks, summed over the given pids (all threads of each).
cpu_ticks() {
    local total=0 pid line f
    for pid in "$@"; do
        read -r line 2>/dev/null <"/proc/$pid/stat" || continue
        # after "(comm) " come fields 3 (state), 4 (ppid), ... 14 (utime), 15 (stime)
        read -ra f <<<"${line##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# nginx master and its current children (the workers).
nginx_pids() {
    local s pid line f
    echo "$NGINX_PID"
    for s in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$s" || continue
        read -ra f <<<"${line##*) }"
        if [[ ${f[1]} == "$NGINX_PID" ]]; then
            pid=${s#/proc/}
            echo "${pid%/stat}"
        fi
    done
}

# A status field of /proc/PID/status, in kB (empty if the process is gone).
proc_status_kb() {
    local pid=$1 want=$2 k v rest
    {
        while read -r k v rest; do
            if [[ $k == "$want:" ]]; then
                echo "$v"
                break
            fi
        done
    } 2>/dev/null <"/proc/$pid/status" || true
}

# Background sampler: every 100 ms, the summed VmRSS (kB) of the pids named in
# file $1 (re-read each time), keeping the peak in file $2; stops after $3
# samples or when every process is gone.
rss_sampler() {
    trap - EXIT INT TERM # this is a subshell: the cleanup belongs to the main script
    local pidfile=$1 out=$2 max=$3 i peak=0 sum v pid alive
    echo 0 >"$out"
    for ((i = 0; i < max; i++)); do
        sum=0
        alive=0
        while read -r pid; do
            v=$(proc_status_kb "$pid" VmRSS)
            if [[ -n $v ]]; then
                sum=$((sum + v))
                alive=1
            fi
        done <"$pidfile"
        ((alive)) || break
        if ((sum > peak)); then
            peak=$sum
            echo "$peak" >"$out"
        fi
        sleep 0.1
    done
}

# Runs a command in the background (so a signal reaches the traps at once,
# and the cleanup can stop it) and waits for it; returns its status.
run_child() {
    local rc=0
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=
    return "$rc"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------- tree

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench.XXXXXX")
chmod 755 "$WORK" # nginx workers run as an unprivileged user and must reach the tree
mkdir -p "$WORK/tree" "$WORK/nginx" "$WORK/data" "$WORK/wrk" "$WORK/go"
log "working in $WORK"
log "generating $MODULE@$SMALL_V (~${SMALL_MIB} MiB zip), $MODULE@$LARGE_V (~${LARGE_MIB} MiB zip) and $MANY modules $MANY_PREFIX/m* (5-200 KiB zips)"
python3 "$HERE/gen_modules.py" --out "$WORK/tree" --module "$MODULE" --small-mib "$SMALL_MIB" --large-mib "$LARGE_MIB" \
    --many "$MANY" --many-prefix "$MANY_PREFIX" --many-min-kib 5 --many-max-kib 200 \
    --require-file "$WORK/go/go.mod" >"$WORK/gen.txt" || die "gen_modules.py failed"
chmod -R a+rX "$WORK/tree"
SMALL_ZIP_BYTES=$(awk -v m="$MODULE@$SMALL_V" '$1 == m { print $2 }' "$WORK/gen.txt")
LARGE_ZIP_BYTES=$(awk -v m="$MODULE@$LARGE_V" '$1 == m { print $2 }' "$WORK/gen.txt")

# Path lists: the metadata mix (.info, .mod, list of every generated module),
# the small zips, and everything (for the cache fill).
awk -v p="$MANY_PREFIX/" 'index($1, p) == 1 { split($1, a, "@"); m = "/" a[1] "/@v/"
    print m a[2] ".info"; print m a[2] ".mod"; print m "list" }' "$WORK/gen.txt" >"$WORK/paths-meta.txt"
awk -v p="$MANY_PREFIX/" 'index($1, p) == 1 { split($1, a, "@"); print "/" a[1] "/@v/" a[2] ".zip" }' "$WORK/gen.txt" >"$WORK/paths-zips.txt"
INFO=/$MODULE/@v/$SMALL_V.info
ZIP1=/$MODULE/@v/$SMALL_V.zip
ZIPL=/$MODULE/@v/$LARGE_V.zip
{
    cat "$WORK/paths-meta.txt" "$WORK/paths-zips.txt"
    for v in "$SMALL_V" "$LARGE_V"; do printf '/%s/@v/%s.%s\n' "$MODULE" "$v" info "$MODULE" "$v" mod "$MODULE" "$v" zip; done
    echo "/$MODULE/@v/list"
} >"$WORK/paths-all.txt"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
NGINX_PORT=$(free_port)
FLOTILLA_PORT=$(free_port)
for ((i = 0; i < 20 && FLOTILLA_PORT == NGINX_PORT; i++)); do FLOTILLA_PORT=$(free_port); done
((FLOTILLA_PORT != NGINX_PORT)) || die "could not find two free ports"
NGINX_URL=http://127.0.0.1:$NGINX_PORT
FLOTILLA_URL=http://127.0.0.1:$FLOTILLA_PORT

# Waits (at most $2 tenths of a second) for URL $1 to answer 200; $3: pid that must stay alive.
wait_200() {
    local url=$1 tenths=$2 pid=$3 i code
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- nginx (the origin)

N=$WORK/nginx
cat >"$N/nginx.conf" <<EOF2
# Minimal static server for the benchmark; written by bench/serve.sh.
daemon off;
worker_processes auto;
pid $N/nginx.pid;
error_log $N/error.log warn;
events {
    worker_connections 4096;
}
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $N/body;
    proxy_temp_path $N/proxy;
    fastcgi_temp_path $N/fastcgi;
    uwsgi_temp_path $N/uwsgi;
    scgi_temp_path $N/scgi;
    types {
        application/json info;
        text/plain mod;
        application/zip zip;
    }
    default_type text/plain;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/tree;
    }
}
EOF2
"$NGINX" -t -q -p "$N/" -c "$N/nginx.conf" -e "$N/error.log" || die "nginx rejected $N/nginx.conf (see $N/error.log)"
log "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -p "$N/" -c "$N/nginx.conf" -e "$N/error.log" >"$N/stdout.log" 2>&1 &
NGINX_PID=$!
if ! wait_200 "$NGINX_URL/$MODULE/@v/list" 100 "$NGINX_PID"; then
    cat "$N/error.log" >&2 || true
    die "nginx did not come up on 127.0.0.1:$NGINX_PORT"
fi
mapfile -t NGINX_CHILDREN < <(nginx_pids | tail -n +2)
log "nginx: master $NGINX_PID, workers ${NGINX_CHILDREN[*]}"

# ---------------------------------------------------------------- flotilla

log "starting flotilla ($BIN) on 127.0.0.1:$FLOTILLA_PORT, upstream $NGINX_URL"
FLOTILLA_LOG=warn FLOTILLA_SUMDB=off FLOTILLA_CACHE__LIST_TTL=$LIST_TTL "$BIN" serve --listen "127.0.0.1:$FLOTILLA_PORT" --data-dir "$WORK/data" \
    --upstream "$NGINX_URL" >"$WORK/flotilla.log" 2>&1 &
FLOTILLA_PID=$!
if ! wait_200 "$FLOTILLA_URL/healthz" 300 "$FLOTILLA_PID"; then
    tail -n 50 "$WORK/flotilla.log" >&2 || true
    if ! kill -0 "$FLOTILLA_PID" 2>/dev/null; then
        rc=0
        wait "$FLOTILLA_PID" || rc=$?
        FLOTILLA_PID=
        die "flotilla exited with status $rc before answering GET /healthz (log above)"
    fi
    die "flotilla did not answer GET /healthz with 200 within 30 s"
fi
FLOTILLA_VERSION=$("$BIN" --version 2>/dev/null | head -n 1 || echo unknown)

upstream_fetches() {
    curl -fsS --max-time 10 "$FLOTILLA_URL/metrics" 2>/dev/null |
        awk '/^flotilla_upstream_fetches_total/ { s += $NF } END { print s + 0 }'
}
flotilla_alive() {
    kill -0 "$FLOTILLA_PID" 2>/dev/null || die "flotilla exited during the benchmark (log: $WORK/flotilla.log; rerun with --keep to keep it)"
}

# Warm the cache: every file once through flotilla, compared with nginx's bytes.
log "filling flotilla's cache: $(wc -l <"$WORK/paths-all.txt") files, each compared with nginx's copy"
if ! run_child python3 "$HERE/warm.py" --reference "$NGINX_URL" --through "$FLOTILLA_URL" --paths "$WORK/paths-all.txt" \
    >"$WORK/warm.txt"; then
    tail -n 20 "$WORK/flotilla.log" >&2 || true
    die "the cache fill failed: flotilla did not serve nginx's files (above)"
fi
FETCHES_BEFORE=$(upstream_fetches)
log "cache warm: $(cut -d' ' -f1 "$WORK/warm.txt") files match nginx's ($FETCHES_BEFORE upstream fetches so far)"

# ---------------------------------------------------------------- wrk runs

server_pids() {
    case $1 in
    nginx) nginx_pids ;;
    flotilla) echo "$FLOTILLA_PID" ;;
    esac
}
server_url() {
    case $1 in
    nginx) echo "$NGINX_URL" ;;
    flotilla) echo "$FLOTILLA_URL" ;;
    esac
}

# One line per measured run, read by serve_report.py.
RUNS=$WORK/runs.tsv
printf 'name\tworkload\tserver\tconns\trequests\tbytes\tduration_us\terrors\tp50_us\tp99_us\tcpu_ticks\tload_start\n' >"$RUNS"

# run_wrk WORKLOAD SERVER CONNS DURATION TIMEOUT (PATH | @PATHS_FILE) [record]
run_wrk() {
    local workload=$1 server=$2 conns=$3 dur=$4 timeout=$5 target=$6 record=${7:-record}
    local name=$server-$workload url out before after pids now load rc=0 script args=()
    url=$(server_url "$server")
    if [[ $target == @* ]]; then
        script=$HERE/rotate.lua
        args=(-- "${target#@}")
        url=$url/
    else
        script=$HERE/report.lua
        url=$url$target
    fi
    out=$WORK/wrk/$name.txt
    mapfile -t pids < <(server_pids "$server")
    load=$(loadavg)
    log "wrk -t$THREADS -c$conns -d$dur  $server  $target  (load $load)"
    before=$(cpu_ticks "${pids[@]}")
    run_child wrk -t"$THREADS" -c"$conns" -d"$dur" --timeout "$timeout" -s "$script" "$url" "${args[@]}" >"$out" 2>&1 || rc=$?
    after=$(cpu_ticks "${pids[@]}")
    if ((rc != 0)) || ! grep -q '^BENCH ' "$out"; then
        cat "$out" >&2
        die "wrk failed for $name (status $rc; output above)"
    fi
    now=$(server_pids "$server" | sort | tr '\n' ' ')
    if [[ $now != "$(printf '%s\n' "${pids[@]}" | sort | tr '\n' ' ')" ]]; then
        warn "$server's processes changed during $name; its CPU figure is unreliable"
    fi
    [[ $server == flotilla ]] && flotilla_alive
    local line kv k v reqs=0 bytes=0 dus=0 errs=0 p50=0 p99=0
    line=$(awk '$1 == "BENCH"' "$out")
    for kv in $line; do
        k=${kv%%=*} v=${kv#*=}
        case $k in
        requests) reqs=$v ;;
        bytes) bytes=$v ;;
        duration_us) dus=$v ;;
        connect | read | write | status | timeout) errs=$((errs + v)) ;;
        p50_us) p50=$v ;;
        p99_us) p99=$v ;;
        esac
    done
    if ((errs > 0)); then
        warn "$name: $errs errors (socket errors, timeouts or non-2xx answers):"
        awk '/Socket errors|Non-2xx/' "$out" >&2
    fi
    if [[ $record == record ]]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$workload" "$server" "$conns" "$reqs" "$bytes" "$dus" \
            "$errs" "$p50" "$p99" "$((after - before))" "$load" >>"$RUNS"
    fi
    awk -v n="$name" -v r="$reqs" -v b="$bytes" -v d="$dus" -v c="$((after - before))" -v t="$CLK_TCK" -v e="$errs" -v p="$p99" \
        'BEGIN { s = d / 1e6; printf "    %-20s %10.0f req/s %9.1f MB/s %7.2f s CPU  p99 %8.2f ms  %d errors\n", n, r / s, b / s / 1e6, c / t, p / 1000, e }' >&2
}

LARGE_TIMEOUT=$((DUR_S + 120))s
LOAD_BEFORE=$(loadavg)
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for s in nginx flotilla; do
    run_wrk warmup "$s" "$CONNS" "$WARMUP" 5s "@$WORK/paths-meta.txt" no-record
done
for w in "meta:@$WORK/paths-meta.txt" "zips:@$WORK/paths-zips.txt" "zip1:$ZIP1"; do
    for s in nginx flotilla; do
        run_wrk "${w%%:*}" "$s" "$CONNS" "$DURATION" 10s "${w#*:}"
    done
done
for s in nginx flotilla; do
    run_wrk zipL "$s" "$LARGE_CONNS" "$DURATION" "$LARGE_TIMEOUT" "$ZIPL"
done

# Memory: 64 clients download the large zip at once while flotilla's VmRSS
# (and, for comparison, the summed VmRSS of nginx's processes) is sampled.
declare -A MEM_KB
mem_run() {
    local s=$1 pidfile=$WORK/$1.pids peakfile=$WORK/$1.peak
    server_pids "$s" >"$pidfile"
    rss_sampler "$pidfile" "$peakfile" $(((DUR_S + 60) * 10)) &
    SAMPLER_PIDS+=($!)
    run_wrk mem "$s" "$MEM_CONNS" "$DURATION" "$LARGE_TIMEOUT" "$ZIPL"
    stop_pid "${SAMPLER_PIDS[-1]}" 10
    MEM_KB[$s]=$(cat "$peakfile")
}
FLOTILLA_IDLE_KB=$(proc_status_kb "$FLOTILLA_PID" VmRSS)
mem_run nginx
mem_run flotilla
FLOTILLA_HWM_KB=$(proc_status_kb "$FLOTILLA_PID" VmHWM)
FETCHES_AFTER_WRK=$(upstream_fetches)

# ---------------------------------------------------------------- go mod download

GO_TSV=$WORK/go.tsv
printf 'server\trun\twall_ms\tcpu_ticks\tload_start\tzips\n' >"$GO_TSV"
GO_VERSION=none
FETCHES_AFTER_GO=$FETCHES_AFTER_WRK

# go_download SERVER RUN [record]: `go mod download` of the generated set into
# a fresh module cache, GOPROXY = that server only.
go_download() {
    local server=$1 run=$2 record=${3:-record} dir=$GO_WORK/$1-$2 url load before after t0 t1 rc=0 pids zips
    url=$(server_url "$server")
    mkdir -p "$dir/work" "$dir/modcache" "$dir/home" "$dir/gopath"
    cp "$WORK/go/go.mod" "$dir/work/go.mod"
    mapfile -t pids < <(server_pids "$server")
    load=$(loadavg)
    before=$(cpu_ticks "${pids[@]}")
    t0=$(date +%s%N)
    (
        cd "$dir/work" &&
            exec env -i PATH="$PATH" HOME="$dir/home" GOPATH="$dir/gopath" GOMODCACHE="$dir/modcache" GOCACHE="$GO_WORK/gocache" \
                GOENV=off GOPROXY="$url" GOSUMDB=off GONOSUMDB= GONOSUMCHECK=1 GONOPROXY= GOPRIVATE= GOFLAGS="-mod=mod -modcacherw" \
                GO111MODULE=on GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 timeout 600 go mod download
    ) >"$dir/out.txt" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=
    t1=$(date +%s%N)
    after=$(cpu_ticks "${pids[@]}")
    if ((rc != 0)); then
        tail -n 20 "$dir/out.txt" >&2
        die "go mod download through $server ($url) failed with status $rc (output above)"
    fi
    zips=$(find "$dir/modcache/cache/download" -name '*.zip' | wc -l)
    ((zips == MANY)) || die "go mod download through $server left $zips zips in the module cache, expected $MANY"
    [[ $server == flotilla ]] && flotilla_alive
    local ms=$(((t1 - t0) / 1000000))
    log "go mod download via $server, run $run: $ms ms (load $load)"
    if [[ $record == record ]]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$run" "$ms" "$((after - before))" "$load" "$zips" >>"$GO_TSV"
    fi
    rm -rf "$dir"
}

if ((NO_GO)); then
    log "skipping go mod download (--no-go)"
else
    GO_VERSION=$(go version 2>/dev/null | awk '{ print $3 }')
    GO_BASE=${GO_TMPDIR:-}
    if [[ -z $GO_BASE ]]; then
        GO_BASE=$WORK
        [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs && -w /dev/shm ]] && GO_BASE=/dev/shm
    fi
    GO_WORK=$(mktemp -d "$GO_BASE/flotilla-bench-go.XXXXXX") || die "cannot create a directory in $GO_BASE (GO_TMPDIR)"
    GO_FS=$(stat -f -c %T "$GO_WORK")
    log "go module caches in $GO_WORK ($GO_FS)"
    log "go mod download of $MANY modules ($GO_VERSION): one unmeasured run per server, then $GO_RUNS each, alternating"
    go_download nginx 0 no-record
    go_download flotilla 0 no-record
    for ((r = 1; r <= GO_RUNS; r++)); do
        go_download nginx "$r"
        go_download flotilla "$r"
    done
    FETCHES_AFTER_GO=$(upstream_fetches)
    rm -rf "$GO_WORK"
    GO_WORK=
fi
LOAD_AFTER=$(loadavg)
flotilla_alive

# ---------------------------------------------------------------- report

RESULTS_DIR=$HERE/results
mkdir -p "$RESULTS_DIR"
DAY=$(date +%Y-%m-%d)
SUFFIX=
((QUICK)) && SUFFIX=-quick
OUT=$RESULTS_DIR/serve-$DAY$SUFFIX.md
[[ -e $OUT ]] && OUT=$RESULTS_DIR/serve-$DAY$SUFFIX-$(date +%H%M%S).md

GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ $GIT_REV != "no commit" ]] && [[ -n $(git -C "$REPO" status --porcelain -- . ':!bench/results' 2>/dev/null | head -n 1) ]]; then
    GIT_REV="$GIT_REV (dirty)"
fi

META=$WORK/meta.txt
{
    echo "quick=$QUICK"
    echo "day=$DAY"
    echo "duration=$DURATION"
    echo "warmup=$WARMUP"
    echo "threads=$THREADS"
    echo "conns=$CONNS"
    echo "large_conns=$LARGE_CONNS"
    echo "mem_conns=$MEM_CONNS"
    echo "clk_tck=$CLK_TCK"
    echo "large_mib=$LARGE_MIB"
    echo "zip1_bytes=$SMALL_ZIP_BYTES"
    echo "large_bytes=$LARGE_ZIP_BYTES"
    echo "module=$MODULE"
    echo "many=$MANY"
    echo "many_prefix=$MANY_PREFIX"
    echo "list_ttl=$LIST_TTL"
    echo "go_runs=$GO_RUNS"
    echo "no_go=$NO_GO"
    echo "go_version=$GO_VERSION"
    echo "go_fs=$GO_FS"
    echo "start=$START_TS"
    echo "load_before=$LOAD_BEFORE"
    echo "load_after=$LOAD_AFTER"
    echo "nproc=$(nproc)"
    echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "profile=$PROFILE"
    echo "bin=$BIN"
    echo "flotilla_version=$FLOTILLA_VERSION"
    echo "git_rev=$GIT_REV"
    echo "nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo "wrk_version=$(wrk --version 2>&1 | head -n 1 | awk '{ print $2 }' || true)"
    echo "flotilla_idle_kb=${FLOTILLA_IDLE_KB:-}"
    echo "flotilla_hwm_kb=${FLOTILLA_HWM_KB:-}"
    echo "mem_kb_nginx=${MEM_KB[nginx]}"
    echo "mem_kb_flotilla=${MEM_KB[flotilla]}"
    echo "fetches_before=$FETCHES_BEFORE"
    echo "fetches_after_wrk=$FETCHES_AFTER_WRK"
    echo "fetches_after_go=$FETCHES_AFTER_GO"
    echo "warm=$(cat "$WORK/warm.txt")"
    echo "out=${OUT#"$REPO"/}"
} >"$META"

python3 "$HERE/serve_report.py" --meta "$META" --runs "$RUNS" --go "$GO_TSV" --gen "$WORK/gen.txt" --out "$OUT" ||
    die "serve_report.py failed (raw figures in $WORK with --keep)"
