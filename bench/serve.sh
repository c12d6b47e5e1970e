#!/usr/bin/env bash
# Serving benchmark: Flotilla against nginx serving the same files from disk,
# side by side on this machine, measured with wrk. See bench/README.md.
#
#   bench/serve.sh [--duration 10s] [--quick] [--keep]
#
# Environment:
#   FLOTILLA_BIN      flotilla binary (default: $CARGO_TARGET_DIR/release/flotilla,
#                     CARGO_TARGET_DIR defaulting to ~/.cache/flotilla-target;
#                     built with `cargo build --release -p flotilla-node` if missing)
#   TMPDIR            where the temporary tree, nginx and flotilla data go
#
# Figures are printed (and written to bench/results/serve-<date>.md), never
# asserted: the exit status says whether the benchmark ran, not whether a
# goal was met.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
MODULE=example.com/bench
SMALL_V=v1.0.0 # .info, .mod and the ~1 MiB zip
LARGE_V=v1.1.0 # the large zip

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --duration D   wrk duration of every measured run (wrk syntax: 10s, 1m; default 10s, 3s with --quick)
  --quick        smoke run: 3 s runs and a 20 MiB "large" zip instead of 100 MiB (under two minutes)
  --keep         keep the temporary directory (tree, configs, logs, raw wrk output)
  -h, --help     this text
EOF
}

DURATION=
QUICK=0
KEEP=0
while (($#)); do
    case $1 in
    --duration) (($# >= 2)) || { usage >&2; exit 2; }; DURATION=$2; shift 2 ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "serve.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if ((QUICK)); then
    DURATION=${DURATION:-3s}
    LARGE_MIB=20
else
    DURATION=${DURATION:-10s}
    LARGE_MIB=100
fi
SMALL_MIB=1
WARMUP=1s
SMALL_CONNS=64    # .info, .mod, 1 MiB zip
LARGE_CONNS=4     # large zip, CPU per GB
MEM_CONNS=64      # large zip, flotilla memory
THREADS=2

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'serve.sh: warning: %s\n' "$*" >&2; }
die() { printf 'serve.sh: %s\n' "$*" >&2; exit 1; }

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
for t in sha256sum getconf awk; do
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
NGINX_PID=
FLOTILLA_PID=
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
    for p in "${SAMPLER_PIDS[@]}"; do stop_pid "$p" 10; done
    stop_pid "$FLOTILLA_PID" 120 # flotilla's own grace period is 10 s
    stop_pid "$NGINX_PID" 50
    for p in "${NGINX_CHILDREN[@]}"; do # workers outlive a SIGKILLed master
        if [[ $(cat "/proc/$p/comm" 2>/dev/null) == nginx ]]; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
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

# awk arithmetic helpers
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
ratio() { # a / b, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# ---------------------------------------------------------------- tree

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench.XXXXXX")
chmod 755 "$WORK" # nginx workers run as an unprivileged user and must reach the tree
mkdir -p "$WORK/tree" "$WORK/nginx" "$WORK/data" "$WORK/warm" "$WORK/wrk"
log "working in $WORK"
log "generating $MODULE: $SMALL_V (~${SMALL_MIB} MiB zip), $LARGE_V (~${LARGE_MIB} MiB zip)"
python3 "$HERE/gen_modules.py" --out "$WORK/tree" --module "$MODULE" \
    --small-mib "$SMALL_MIB" --large-mib "$LARGE_MIB" >"$WORK/gen.txt"
chmod -R a+rX "$WORK/tree"
SMALL_ZIP_BYTES=$(awk -v v="$SMALL_V" '$1 == v { print $2 }' "$WORK/gen.txt")
LARGE_ZIP_BYTES=$(awk -v v="$LARGE_V" '$1 == v { print $2 }' "$WORK/gen.txt")

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
cat >"$N/nginx.conf" <<EOF
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
EOF
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
FLOTILLA_LOG=warn "$BIN" serve --listen "127.0.0.1:$FLOTILLA_PORT" --data-dir "$WORK/data" \
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

# Warm the cache: every file once through flotilla, compared with nginx's bytes.
log "warming flotilla's cache (the $LARGE_MIB MiB zip is fetched and verified once; a debug build takes a while)"
for f in "$SMALL_V.info" "$SMALL_V.mod" "$SMALL_V.zip" "$LARGE_V.info" "$LARGE_V.mod" "$LARGE_V.zip" list; do
    path=/$MODULE/@v/$f
    curl -fsS --max-time 600 -o "$WORK/warm/nginx-$f" "$NGINX_URL$path" || die "nginx failed on $path"
    if ! curl -fsS --max-time 600 -o "$WORK/warm/flotilla-$f" "$FLOTILLA_URL$path"; then
        tail -n 20 "$WORK/flotilla.log" >&2 || true
        die "flotilla failed on $path"
    fi
    a=$(sha256sum <"$WORK/warm/nginx-$f" | cut -d' ' -f1)
    b=$(sha256sum <"$WORK/warm/flotilla-$f" | cut -d' ' -f1)
    if [[ $a != "$b" ]]; then
        if [[ $f == list ]]; then # a list is merged with the catalog, not a copy
            warn "@v/list differs between flotilla and nginx (not benchmarked)"
        else
            die "flotilla served different bytes for $path (sha256 $b, nginx $a)"
        fi
    fi
    rm -f "$WORK/warm/nginx-$f" "$WORK/warm/flotilla-$f"
done
FETCHES_BEFORE=$(upstream_fetches)
log "cache warm: every file matches nginx byte for byte ($FETCHES_BEFORE upstream fetches so far)"

# ---------------------------------------------------------------- wrk runs

# Results, by run name (e.g. nginx-info): wrk's Requests/sec and Transfer/sec,
# the exact totals from report.lua, and the server's CPU seconds.
declare -A RPS XFER REQS BYTES DUR_US ERRS P50 P99 CPU_S

server_pids() {
    case $1 in
    nginx) nginx_pids ;;
    flotilla) echo "$FLOTILLA_PID" ;;
    esac
}

# run_wrk NAME SERVER PATH CONNS DURATION TIMEOUT
run_wrk() {
    local name=$1 server=$2 path=$3 conns=$4 dur=$5 timeout=$6 url out before after pids
    case $server in
    nginx) url=$NGINX_URL$path ;;
    flotilla) url=$FLOTILLA_URL$path ;;
    esac
    out=$WORK/wrk/$name.txt
    mapfile -t pids < <(server_pids "$server")
    log "wrk -t$THREADS -c$conns -d$dur  $server  $path"
    before=$(cpu_ticks "${pids[@]}")
    if ! wrk -t"$THREADS" -c"$conns" -d"$dur" --timeout "$timeout" -s "$HERE/report.lua" "$url" >"$out" 2>&1; then
        warn "wrk failed for $name:"
        cat "$out" >&2
    fi
    after=$(cpu_ticks "${pids[@]}")
    local now
    now=$(server_pids "$server" | sort | tr '\n' ' ')
    if [[ $now != "$(printf '%s\n' "${pids[@]}" | sort | tr '\n' ' ')" ]]; then
        warn "$server's processes changed during $name; its CPU figure is unreliable"
    fi
    CPU_S[$name]=$(calc "($after - $before) / $CLK_TCK" 2)
    RPS[$name]=$(awk '$1 == "Requests/sec:" { print $2 }' "$out")
    XFER[$name]=$(awk '$1 == "Transfer/sec:" { print $2 }' "$out")
    local line k v kv
    line=$(awk '$1 == "BENCH"' "$out")
    REQS[$name]=0 BYTES[$name]=0 DUR_US[$name]=0 ERRS[$name]=0 P50[$name]=0 P99[$name]=0
    for kv in $line; do
        k=${kv%%=*} v=${kv#*=}
        case $k in
        requests) REQS[$name]=$v ;;
        bytes) BYTES[$name]=$v ;;
        duration_us) DUR_US[$name]=$v ;;
        connect | read | write | status | timeout) ERRS[$name]=$((ERRS[$name] + v)) ;;
        p50_us) P50[$name]=$v ;;
        p99_us) P99[$name]=$v ;;
        esac
    done
    if [[ -z ${RPS[$name]} ]]; then
        RPS[$name]=$(awk -v r="${REQS[$name]}" -v d="${DUR_US[$name]}" 'BEGIN { if (d > 0) printf "%.2f", r / (d / 1e6); else print 0 }')
    fi
    if ((ERRS[$name] > 0)); then
        warn "$name: ${ERRS[$name]} errors (socket errors, timeouts or non-2xx answers); see below"
        awk '/Socket errors|Non-2xx/' "$out" >&2
    fi
    printf '    %-24s %10s req/s  %10s/s  %8s s CPU  %s errors\n' "$name" "${RPS[$name]}" "${XFER[$name]:-?}" "${CPU_S[$name]}" "${ERRS[$name]}" >&2
}

INFO=/$MODULE/@v/$SMALL_V.info
MOD=/$MODULE/@v/$SMALL_V.mod
ZIP1=/$MODULE/@v/$SMALL_V.zip
ZIPL=/$MODULE/@v/$LARGE_V.zip
LARGE_TIMEOUT=$((DUR_S + 120))s

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for s in nginx flotilla; do
    run_wrk "$s-warmup" "$s" "$INFO" "$SMALL_CONNS" "$WARMUP" 5s
done
for t in info:$INFO mod:$MOD zip1:$ZIP1; do
    for s in nginx flotilla; do
        run_wrk "$s-${t%%:*}" "$s" "${t#*:}" "$SMALL_CONNS" "$DURATION" 10s
    done
done
for s in nginx flotilla; do
    run_wrk "$s-zipL" "$s" "$ZIPL" "$LARGE_CONNS" "$DURATION" "$LARGE_TIMEOUT"
done

# Memory: 64 clients download the large zip at once while flotilla's VmRSS
# (and, for comparison, the summed VmRSS of nginx's processes) is sampled.
declare -A MEM_KB
mem_run() {
    local s=$1 pidfile=$WORK/$1.pids peakfile=$WORK/$1.peak
    server_pids "$s" >"$pidfile"
    rss_sampler "$pidfile" "$peakfile" $(((DUR_S + 60) * 10)) &
    SAMPLER_PIDS+=($!)
    run_wrk "$s-mem" "$s" "$ZIPL" "$MEM_CONNS" "$DURATION" "$LARGE_TIMEOUT"
    stop_pid "${SAMPLER_PIDS[-1]}" 10
    MEM_KB[$s]=$(cat "$peakfile")
}
FLOTILLA_IDLE_KB=$(proc_status_kb "$FLOTILLA_PID" VmRSS)
mem_run nginx
mem_run flotilla
NGINX_MEM_KB=${MEM_KB[nginx]}
FLOTILLA_MEM_KB=${MEM_KB[flotilla]}
FLOTILLA_HWM_KB=$(proc_status_kb "$FLOTILLA_PID" VmHWM)
FETCHES_AFTER=$(upstream_fetches)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$FLOTILLA_PID" 2>/dev/null || die "flotilla exited during the benchmark (log: $WORK/flotilla.log)"

# ---------------------------------------------------------------- report

cpu_per_gb() { # name -> CPU seconds per GB
    awk -v c="${CPU_S[$1]}" -v b="${BYTES[$1]}" 'BEGIN { if (b > 0) printf "%.3f", c / (b / 1e9); else print "n/a" }'
}
mbps() { # name -> MB/s from exact totals
    awk -v b="${BYTES[$1]}" -v d="${DUR_US[$1]}" 'BEGIN { if (d > 0) printf "%.0f", b / d; else print "n/a" }'
}
mib() { [[ -n $1 ]] && calc "$1 / 1024" 1 || echo n/a; }
meets() { # value op goal -> yes/no
    awk -v v="$1" -v g="$3" -v op="$2" 'BEGIN { if (v == "n/a" || v == "") { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= g + 0) : (v + 0 <= g + 0); print ok ? "yes" : "no" }'
}

CPU_GB_N=$(cpu_per_gb nginx-zipL)
CPU_GB_F=$(cpu_per_gb flotilla-zipL)
R_INFO=$(ratio "${RPS[flotilla-info]}" "${RPS[nginx-info]}")
R_MOD=$(ratio "${RPS[flotilla-mod]}" "${RPS[nginx-mod]}")
R_ZIP1=$(ratio "${RPS[flotilla-zip1]}" "${RPS[nginx-zip1]}")
R_CPU=$(ratio "$CPU_GB_F" "$CPU_GB_N")
R_MBPS=$(ratio "$(mbps flotilla-zipL)" "$(mbps nginx-zipL)")
MEM_MIB=$(mib "$FLOTILLA_MEM_KB")
MEM_MB=$(awk -v k="$FLOTILLA_MEM_KB" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
LARGE_LABEL="${LARGE_MIB} MiB zip"

TABLE=$(
    cat <<EOF
| Measurement | nginx | flotilla | flotilla / nginx | goal | met |
| --- | ---: | ---: | ---: | --- | --- |
| cached \`.info\`, req/s (wrk -c$SMALL_CONNS) | ${RPS[nginx-info]} | ${RPS[flotilla-info]} | $R_INFO | ratio ≥ 0.8 | $(meets "$R_INFO" ">=" 0.8) |
| cached \`.mod\`, req/s (wrk -c$SMALL_CONNS) | ${RPS[nginx-mod]} | ${RPS[flotilla-mod]} | $R_MOD | ratio ≥ 0.8 | $(meets "$R_MOD" ">=" 0.8) |
| cached 1 MiB zip, req/s (wrk -c$SMALL_CONNS) | ${RPS[nginx-zip1]} | ${RPS[flotilla-zip1]} | $R_ZIP1 | ratio ≥ 1.0 | $(meets "$R_ZIP1" ">=" 1.0) |
| $LARGE_LABEL, CPU s per GB served (wrk -c$LARGE_CONNS) | $CPU_GB_N | $CPU_GB_F | $R_CPU | ratio ≤ 2.0 | $(meets "$R_CPU" "<=" 2.0) |
| $LARGE_LABEL, throughput MB/s (wrk -c$LARGE_CONNS) | $(mbps nginx-zipL) | $(mbps flotilla-zipL) | $R_MBPS | — | — |
| peak RSS, $MEM_CONNS clients × $LARGE_LABEL at once | $(mib "$NGINX_MEM_KB") MiB¹ | $MEM_MIB MiB ($MEM_MB MB) | — | flotilla ≤ 150 MB | $(meets "$MEM_MB" "<=" 150) |
EOF
)

RESULTS_DIR=$HERE/results
mkdir -p "$RESULTS_DIR"
DAY=$(date +%Y-%m-%d)
SUFFIX=
((QUICK)) && SUFFIX=-quick
OUT=$RESULTS_DIR/serve-$DAY$SUFFIX.md
[[ -e $OUT ]] && OUT=$RESULTS_DIR/serve-$DAY$SUFFIX-$(date +%H%M%S).md

GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ $GIT_REV != "no commit" ]] && [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1) ]]; then
    GIT_REV="$GIT_REV (dirty)"
fi
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$(wrk --version 2>&1 | head -n 1 | awk '{ print $2 }' || true)

details_row() {
    local n=$1
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${RPS[$n]}" "${XFER[$n]:-?}" "${REQS[$n]}" \
        "$(calc "${BYTES[$n]} / 1e6" 1)" "$(calc "${DUR_US[$n]} / 1e6" 2)" "$(calc "${P50[$n]} / 1000" 3)" "$(calc "${P99[$n]} / 1000" 3)" \
        "${CPU_S[$n]}" "${ERRS[$n]}"
}

{
    echo "# Flotilla serving benchmark, $DAY${SUFFIX:+ (quick smoke run)}"
    echo
    echo "$TABLE"
    echo
    echo "¹ nginx: summed VmRSS of master and workers (shared pages counted once per process); for comparison only."
    echo
    echo "Flotilla RSS: ${FLOTILLA_IDLE_KB:-?} kB idle before the $MEM_CONNS-client run, peak VmRSS ${FLOTILLA_MEM_KB} kB"
    echo "sampled every 100 ms during it, VmHWM ${FLOTILLA_HWM_KB:-?} kB over the whole process lifetime (includes the cache fill)."
    echo "Upstream fetches by flotilla during the measured runs: $((FETCHES_AFTER - FETCHES_BEFORE)) (0 means every request was a cache hit)."
    echo
    echo "## Setup"
    echo
    echo "- started $START_TS, $(nproc) CPUs ($CPU_MODEL), Linux $(uname -r), load average $LOAD_BEFORE before, $LOAD_AFTER after"
    echo "- flotilla: $FLOTILLA_VERSION, $PROFILE build (judged from the path $BIN), git $GIT_REV, FLOTILLA_LOG=warn"
    echo "- nginx $NGINX_VERSION: worker_processes auto, sendfile on, tcp_nopush on, access_log off, keepalive_requests 1000000"
    echo "- wrk $WRK_VERSION, -t$THREADS, $DURATION per measured run (after a $WARMUP warm-up per server), all on 127.0.0.1 on this machine"
    echo "- files: $MODULE@$SMALL_V .info/.mod and zip ($SMALL_ZIP_BYTES bytes), $MODULE@$LARGE_V zip ($LARGE_ZIP_BYTES bytes, ZIP_STORED random data)"
    echo "- CPU: utime+stime from /proc/PID/stat (nginx: master + workers; flotilla: all threads) before and after the run; GB = 10^9 bytes read by wrk"
    echo
    echo "## Every run"
    echo
    echo "| run | req/s | transfer/s | requests | MB read | seconds | p50 ms | p99 ms | server CPU s | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for n in nginx-info flotilla-info nginx-mod flotilla-mod nginx-zip1 flotilla-zip1 nginx-zipL flotilla-zipL nginx-mem flotilla-mem; do
        details_row "$n"
    done
} >"$OUT"

echo
echo "Flotilla serving benchmark ($PROFILE build${SUFFIX:+, quick smoke run}; $DURATION runs; load average $LOAD_BEFORE -> $LOAD_AFTER)"
echo
echo "$TABLE"
echo
echo "flotilla RSS: idle ${FLOTILLA_IDLE_KB:-?} kB, peak ${FLOTILLA_MEM_KB} kB during the $MEM_CONNS-client run, lifetime VmHWM ${FLOTILLA_HWM_KB:-?} kB"
echo "upstream fetches during the measured runs: $((FETCHES_AFTER - FETCHES_BEFORE))"
echo "written to ${OUT#"$REPO"/}"
