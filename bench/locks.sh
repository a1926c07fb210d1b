#!/bin/sh
# Distributed locks: dmkv's Raft-backed LOCK/UNLOCK on 3 nodes against the
# two locks an operator would otherwise reach for, side by side on loopback
# in the same run, every system driven by the same client
# (bench/locks_client.py):
#   - Redis: one redis-server, SET name token NX PX 10000 + compare-and-
#     delete script (not replicated, not fault tolerant: the speed bound);
#   - etcd: 3 members, the v3 HTTP gateway's lock API with a lease
#     (Debian package etcd-server, installed with apt-get when missing;
#     skipped with a message when that fails).
# For each: LOCK+UNLOCK pairs/s and the pair latency p50/p99 with 1 and 8
# clients on one lock name (dmkv and etcd clients spread over the nodes),
# DURATION seconds each. Then dmkv alone: the raw LOCK+UNLOCK rate from 64
# pipelined clients on names of their own (the coordinator's commit-rate
# limit), and SET throughput on node 1 (redis-benchmark -t set -c 50 -P 1)
# with --use-mutex 0 and with --use-mutex 1.
#
# Usage: bench/locks.sh [path/to/dmkv]
#   env: DURATION=5 (s per run) SET_N=20000 (SETs per redis-benchmark run)
#        SET_TIMEOUT=120 (s) NO_ETCD=1 (skip etcd)
set -eu
DMKV=${1:-build/dmkv}
DURATION=${DURATION:-5}
SET_N=${SET_N:-20000}
SET_TIMEOUT=${SET_TIMEOUT:-120}
here=$(cd "$(dirname "$0")" && pwd)
client="$here/locks_client.py"
[ -x "$DMKV" ] || { echo "bench: $DMKV is not an executable dmkv binary" >&2; exit 2; }
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "bench: needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2
    exit 2
fi
work=$(mktemp -d /tmp/dmkv-bench-locks.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do
        if kill -0 "$p" 2>/dev/null; then kill "$p"; fi
    done
    for p in $pids; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

# A dmkv agent's Raft port is --tcp + this offset, as its --help says.
raft_offset=$("$DMKV" agent --help | sed -n 's/.*\[--tcp + \([0-9]*\)\].*/\1/p')
raft_offset=${raft_offset:-1000}
# Ports: n TCP ports, each free together with port+offset (a dmkv agent's
# Raft port), none equal to another's; then UDP ports.
freeports() {
    /usr/bin/python3 - "$1" "$2" "$raft_offset" <<'EOF'
import socket, sys
ntcp, nudp, off = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def free(kind, port=0):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
taken, out = set(), []
for _ in range(1000):
    if len(out) == ntcp:
        break
    p = free(socket.SOCK_STREAM)
    if p + off <= 65535 and p not in taken and p + off not in taken and free(socket.SOCK_STREAM, p + off):
        taken.update((p, p + off))
        out.append(p)
for _ in range(1000):
    if len(out) == ntcp + nudp:
        break
    u = free(socket.SOCK_DGRAM)
    if u not in taken:
        taken.add(u)
        out.append(u)
print(" ".join(map(str, out)))
EOF
}
field() { # field NAME JSON-LINE
    /usr/bin/python3 -c 'import json,sys; v=json.loads(sys.argv[2])[sys.argv[1]]; print(v if not isinstance(v, list) else "; ".join(v))' "$1" "$2"
}
results="$work/results"
: >"$results"
run() { # run LABEL args...: one locks_client run, its JSON kept under LABEL
    label=$1
    shift
    if out=$(timeout $((DURATION * 2 + 60)) /usr/bin/python3 "$client" --duration "$DURATION" "$@"); then :; else
        echo "bench: $label reported errors: $(field errors "$out" 2>/dev/null || echo "$out")" >&2
    fi
    if [ -n "$out" ]; then echo "$label $out" >>"$results"; fi
}

# ---- dmkv: 3 agents ----
dmkv_start() { # dmkv_start USE_MUTEX TAG
    # shellcheck disable=SC2046 # the ports are words on purpose
    set -- "$1" "$2" $(freeports 3 3)
    mutex=$1 tag=$2 d1=$3 d2=$4 d3=$5 u1=$6 u2=$7 u3=$8
    peers="127.0.0.1:$d1:$u1=1,127.0.0.1:$d2:$u2=2,127.0.0.1:$d3:$u3=3"
    dpids=""
    n=1
    for pair in "$d1:$u1" "$d2:$u2" "$d3:$u3"; do
        "$DMKV" agent --id $n --tcp "${pair%%:*}" --udp "${pair##*:}" --peers "$peers" --use-mutex "$mutex" \
            --data-dir "$work/dmkv-$tag-$n" --fsync everysec 2>"$work/dmkv-$tag-$n.log" &
        pids="$pids $!"
        dpids="$dpids $!"
        n=$((n + 1))
    done
    for p in $d1 $d2 $d3; do waitping "$p" || return 1; done
    i=0
    until [ "$(redis-cli -p "$d1" info cluster | tr -d '\r' | sed -n 's/^members_alive://p')" = 3 ] &&
        [ "$(redis-cli -p "$d1" info coordinator | tr -d '\r' | sed -n 's/^raft_leader://p')" -gt 0 ] 2>/dev/null &&
        (for p in $d1 $d2 $d3; do
            [ "$(redis-cli -p "$p" info coordinator | tr -d '\r' | sed -n 's/^coordinator_ready://p')" = 1 ] || exit 1
        done); do
        i=$((i + 1)); [ $i -lt 300 ] || { echo "bench: dmkv cluster ($tag) did not form" >&2; return 1; }
        sleep 0.1
    done
    dmkv_eps="127.0.0.1:$d1,127.0.0.1:$d2,127.0.0.1:$d3"
    dmkv_node1=$d1
}
dmkv_stop() {
    for p in $dpids; do kill "$p" 2>/dev/null || true; done
    for p in $dpids; do wait "$p" 2>/dev/null || true; done
}

dmkv_start 0 m0 || exit 1
echo "dmkv cluster: $dmkv_eps (leader: node $(redis-cli -p "$dmkv_node1" info coordinator | tr -d '\r' | sed -n 's/^raft_leader://p'))" >&2

# ---- Redis: one server ----
# shellcheck disable=SC2046
set -- $(freeports 1 0)
rport=$1
mkdir -p "$work/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis" --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
pids="$pids $!"
waitping "$rport" || exit 1

# ---- etcd: 3 members ----
etcd_ok=0
if [ -z "${NO_ETCD:-}" ]; then
    if ! command -v etcd >/dev/null; then
        echo "bench: etcd not found; installing the Debian package etcd-server" >&2
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo -n"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >"$work/apt.log" 2>&1 ||
            { $sudo apt-get update >>"$work/apt.log" 2>&1 &&
                $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >>"$work/apt.log" 2>&1; } ||
            echo "bench: could not install etcd-server (see apt-get's output above); skipping etcd" >&2
    fi
    if command -v etcd >/dev/null; then
        # shellcheck disable=SC2046
        set -- $(freeports 6 0)
        cluster="e1=http://127.0.0.1:$4,e2=http://127.0.0.1:$5,e3=http://127.0.0.1:$6"
        etcd_eps="127.0.0.1:$1,127.0.0.1:$2,127.0.0.1:$3"
        for spec in "1:$1:$4" "2:$2:$5" "3:$3:$6"; do
            n=${spec%%:*} pp=${spec##*:} cp=${spec#*:}
            cp=${cp%:*}
            etcd --name "e$n" --data-dir "$work/etcd-$n" \
                --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
                --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
                --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token dmkv-bench \
                >"$work/etcd-$n.log" 2>&1 &
            pids="$pids $!"
        done
        i=0
        until [ "$(for cp in $1 $2 $3; do
            /usr/bin/python3 -c 'import sys,urllib.request; print(b"true" in urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1).read())' "$cp" 2>/dev/null
        done | grep -c True)" = 3 ]; do
            i=$((i + 1)); [ $i -lt 100 ] || { echo "bench: etcd cluster did not become healthy; skipping etcd" >&2; break; }
            sleep 0.2
        done
        [ $i -lt 100 ] && etcd_ok=1
        etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p')
    fi
fi

# ---- lock pairs: 1 and 8 clients on one name, alternating systems ----
for c in 1 8; do
    run "dmkv-$c" --system dmkv --endpoints "$dmkv_eps" --clients "$c" --name "bench-$c"
    run "redis-$c" --system redis --endpoints "127.0.0.1:$rport" --clients "$c" --name "bench-$c"
    if [ $etcd_ok = 1 ]; then run "etcd-$c" --system etcd --endpoints "$etcd_eps" --clients "$c" --name "bench-$c"; fi
done
run "dmkv-raw" --system dmkv --endpoints "$dmkv_eps" --clients 64 --mode pipelined --pipeline 16 --name raw

# ---- SET with and without the mutex ----
setbench() { # setbench TAG: requests/s of SET on node 1, or a reason
    if out=$(timeout "$SET_TIMEOUT" redis-benchmark -p "$dmkv_node1" -t set -n "$SET_N" -c 50 -P 1 --csv 2>&1); then
        echo "$out" | awk -F'","' '/^"SET"/ { gsub(/"/, "", $2); print $2 }'
    else
        echo "no result: redis-benchmark did not finish $SET_N SETs within ${SET_TIMEOUT}s"
    fi
}
grants() { redis-cli -p "$dmkv_node1" info coordinator | tr -d '\r' | sed -n 's/^grants://p'; }
g0=$(grants)
set0=$(setbench m0)
note0="lock grants during the run: $(($(grants) - g0))"
dmkv_stop
note1=""
if dmkv_start 1 m1 2>"$work/mutex.err"; then
    g0=$(grants)
    set1=$(setbench m1)
    note1="lock grants during the run: $(($(grants) - g0))"
else
    set1="no result: the agents did not start with --use-mutex 1 ($(tail -1 "$work/mutex.err"; tail -1 "$work"/dmkv-m1-1.log))"
fi

# ---- report ----
echo "Locks: $(nproc) CPUs, $(date -u +%Y-%m-%d), ${DURATION}s per run; pair = acquire + release, waiting included"
echo "dmkv 3 nodes (--fsync everysec) | redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (SET NX PX + compare-and-delete, retry every 1 ms) |" \
    "etcd ${etcd_version:-not run} 3 members (v3 gateway lock API)"
/usr/bin/python3 - "$results" "$etcd_ok" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    label, js = line.split(" ", 1)
    rows[label] = json.loads(js)
etcd = sys.argv[2] == "1"
def cell(label, key, fmt):
    r = rows.get(label)
    return fmt % r[key] if r and r.get("pairs") else "-"
def ratio(a, b):
    ra, rb = rows.get(a), rows.get(b)
    if not (ra and rb and ra.get("pairs_per_s") and rb.get("pairs_per_s")):
        return "-"
    return "%.2f" % (ra["pairs_per_s"] / rb["pairs_per_s"])
print()
print("%-8s %-7s %12s %9s %9s   %s" % ("system", "clients", "pairs/s", "p50 ms", "p99 ms", "errors"))
for c in (1, 8):
    for s in ("dmkv", "redis", "etcd"):
        if s == "etcd" and not etcd:
            continue
        lb = "%s-%d" % (s, c)
        r = rows.get(lb, {})
        print("%-8s %-7d %12s %9s %9s   %s" % (s, c, cell(lb, "pairs_per_s", "%.0f"), cell(lb, "p50_ms", "%.2f"),
                                             cell(lb, "p99_ms", "%.2f"), "; ".join(r.get("errors", [])) or "none"))
print()
print("%-8s %14s %14s" % ("clients", "dmkv/etcd", "dmkv/redis"))
for c in (1, 8):
    print("%-8d %14s %14s" % (c, ratio("dmkv-%d" % c, "etcd-%d" % c) if etcd else "-",
                              ratio("dmkv-%d" % c, "redis-%d" % c)))
r = rows.get("dmkv-raw")
if r:
    print()
    print("dmkv commit-rate limit: 64 pipelined clients x 16 LOCKs then 16 UNLOCKs on names of their own:")
    print("  %.0f LOCK+UNLOCK pairs/s (%.0f lock operations/s); batch of 16 pairs p50 %.1f ms, p99 %.1f ms; errors: %s"
          % (r["pairs_per_s"], 2 * r["pairs_per_s"], r["p50_ms"], r["p99_ms"], "; ".join(r["errors"]) or "none"))
EOF
echo
echo "dmkv SET on node 1, redis-benchmark -t set -n $SET_N -c 50 -P 1 (requests/s):"
echo "  --use-mutex 0: $set0 ($note0)"
echo "  --use-mutex 1: $set1${note1:+ ($note1)}"
case "$set0 $set1" in
*"no result"*) ;;
*) awk -v a="$set0" -v b="$set1" 'BEGIN { if (a > 0) printf "  mutex / no mutex: %.3f\n", b / a }' ;;
esac
