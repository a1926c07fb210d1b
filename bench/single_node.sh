#!/bin/sh
# Single-node throughput: dmkv against redis-server, side by side.
#
# Starts redis-server (appendonly yes, appendfsync everysec) and a dmkv
# agent (--fsync everysec) on loopback, then runs
#   redis-benchmark -t set,get -n N -c 50 [-P 16]
# against each, alternating between the two servers, ROUNDS times, and
# prints the median requests/s of each and the ratio dmkv/Redis.
#
# With PIN=1 each server runs on CPU 1 and the benchmark client on CPU 0
# (taskset), the same for both servers: on a small virtual machine that
# takes the scheduler's placement out of the figures.
#
# Usage: bench/single_node.sh [path/to/dmkv]   (env: N=200000 ROUNDS=3 PIN=0)
set -eu
DMKV=${1:-build/dmkv}
N=${N:-200000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
server_cpu=""
client_cpu=""
if [ "${PIN:-0}" = 1 ]; then
    if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
        echo "bench: PIN=1 needs taskset and two CPUs" >&2
        exit 1
    fi
    server_cpu="taskset -c 1"
    client_cpu="taskset -c 0"
fi
work=$(mktemp -d /tmp/dmkv-bench.XXXXXX)
redis_pid=""
dmkv_pid=""
cleanup() {
    for p in $redis_pid $dmkv_pid; do
        if kill -0 "$p" 2>/dev/null; then kill "$p"; wait "$p" 2>/dev/null || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
. "$(dirname "$0")/lib.sh"

rport=$(freeport)
mkdir -p "$work/redis"
$server_cpu redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis" --save "" \
    --appendonly yes --appendfsync everysec --daemonize no --logfile "$work/redis.log" &
redis_pid=$!
dport=$(freeport)
dudp=$(freeudp)
$server_cpu "$DMKV" agent --id 1 --tcp "$dport" --udp "$dudp" --data-dir "$work/dmkv" --fsync everysec 2>"$work/dmkv.log" &
dmkv_pid=$!
waitping "$rport"
waitping "$dport"

# one run: prints "SET rps" and "GET rps" lines
runbench() { # port pipeline
    $client_cpu redis-benchmark -p "$1" -t set,get -n "$N" -c "$CLIENTS" -P "$2" --csv 2>/dev/null |
        awk -F'","' 'NR > 1 { gsub(/"/, "", $1); print $1, $2 }'
}

results="$work/results"
: >"$results"
r=1
while [ $r -le "$ROUNDS" ]; do
    for p in 1 16; do
        runbench "$rport" "$p" | while read -r t v; do echo "redis $t $p $v"; done >>"$results"
        runbench "$dport" "$p" | while read -r t v; do echo "dmkv $t $p $v"; done >>"$results"
    done
    r=$((r + 1))
done

echo "redis-benchmark -t set,get -n $N -c $CLIENTS, $ROUNDS rounds, medians (requests/s)${server_cpu:+, servers on CPU 1, client on CPU 0}"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') appendonly everysec vs dmkv --fsync everysec"
printf '%-8s %4s %14s %14s %8s\n' test P redis dmkv ratio
for t in SET GET; do
    for p in 1 16; do
        med() { grep "^$1 $t $p " "$results" | awk '{print $4}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
        rv=$(med redis)
        dv=$(med dmkv)
        awk -v t="$t" -v p="$p" -v r="$rv" -v d="$dv" \
            'BEGIN { printf "%-8s %4s %14.0f %14.0f %8.2f\n", t, p, r, d, (r > 0 ? d / r : 0) }'
    done
done
