#!/bin/sh
# Replicated throughput and lag: a 3-node dmkv cluster against Redis with
# two replicas, side by side on loopback in the same run.
#
# Redis: one master (appendonly yes, appendfsync everysec) and two
# replicas (replicaof). dmkv: three agents (--fsync everysec) joined by
# --peers, every write pushed to the other two. For each, it runs
#   redis-benchmark -t set -n N -c 50 -P 1 and -P 16
# against the master / node 1, alternating, ROUNDS times (medians, and
# the median of the rounds' ratios), then
# bench/replication_lag.py: LAG_WRITES writes on the master / node 1, each
# timed until it is readable on both others (p50/p99).
#
# Usage: bench/replication.sh [path/to/dmkv]   (env: N=200000 ROUNDS=5 LAG_WRITES=2000)
set -eu
DMKV=${1:-build/dmkv}
N=${N:-200000}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-50}
LAG_WRITES=${LAG_WRITES:-2000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/dmkv-bench-repl.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do
        if kill -0 "$p" 2>/dev/null; then kill "$p"; wait "$p" 2>/dev/null || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
. "$(dirname "$0")/lib.sh"


# ---- Redis: master + 2 replicas ----
r1=$(freeport); r2=$(freeport); r3=$(freeport)
for p in $r1 $r2 $r3; do
    mkdir -p "$work/redis-$p"
    extra=""
    [ "$p" = "$r1" ] || extra="--replicaof 127.0.0.1 $r1"
    # shellcheck disable=SC2086
    redis-server --port "$p" --bind 127.0.0.1 --dir "$work/redis-$p" --save "" \
        --appendonly yes --appendfsync everysec --daemonize no --logfile "$work/redis-$p.log" $extra &
    pids="$pids $!"
    waitping "$p"
done
i=0
until [ "$(redis-cli -p "$r1" info replication | tr -d '\r' | sed -n 's/^connected_slaves://p')" = 2 ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "bench: Redis replicas did not connect" >&2; exit 1; }
    sleep 0.1
done

# ---- dmkv: 3 agents ----
d1=$(freeport); d2=$(freeport); d3=$(freeport)
u1=$(freeudp); u2=$(freeudp); u3=$(freeudp)
peers="127.0.0.1:$d1:$u1=1,127.0.0.1:$d2:$u2=2,127.0.0.1:$d3:$u3=3"
n=1
for pair in "$d1:$u1" "$d2:$u2" "$d3:$u3"; do
    "$DMKV" agent --id $n --tcp "${pair%%:*}" --udp "${pair##*:}" --peers "$peers" \
        --data-dir "$work/dmkv-$n" --fsync everysec 2>"$work/dmkv-$n.log" &
    pids="$pids $!"
    n=$((n + 1))
done
for p in $d1 $d2 $d3; do waitping "$p"; done
i=0
until [ "$(redis-cli -p "$d1" info cluster | tr -d '\r' | sed -n 's/^members_alive://p')" = 3 ]; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "bench: dmkv cluster did not form" >&2; exit 1; }
    sleep 0.1
done

results="$work/results"
: >"$results"
# Each round runs both systems back to back, the order swapped every
# round, so a drift in the machine's speed hits both alike; the ratio of
# a round compares two runs made a few seconds apart.
r=1
while [ $r -le "$ROUNDS" ]; do
    order="redis dmkv"; [ $((r % 2)) -eq 0 ] && order="dmkv redis"
    for p in 1 16; do
        for sys in $order; do
            port=$r1; [ $sys = dmkv ] && port=$d1
            redis-benchmark -p "$port" -t set -n "$N" -c "$CLIENTS" -P "$p" --csv 2>/dev/null |
                awk -F'","' -v s=$sys -v p="$p" -v r=$r \
                    'NR > 1 { gsub(/"/, "", $1); print s, $1, p, $2, r }' >>"$results"
        done
    done
    r=$((r + 1))
done

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "redis-benchmark -t set -n $N -c $CLIENTS on the master / node 1, $ROUNDS rounds (requests/s)"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') master + 2 replicas, appendonly everysec vs dmkv 3 nodes --fsync everysec"
echo "median of each system, and the median of the rounds' ratios dmkv/Redis:"
printf '%-8s %4s %14s %14s %8s %12s\n' test P redis dmkv ratio "round ratio"
for p in 1 16; do
    for sys in redis dmkv; do
        grep "^$sys SET $p " "$results" | sort -k5,5n | awk '{print $4}' >"$work/$sys.$p"
    done
    paste "$work/redis.$p" "$work/dmkv.$p" | awk '$1 > 0 { print $2 / $1 }' >"$work/ratio.$p"
    rv=$(median <"$work/redis.$p")
    dv=$(median <"$work/dmkv.$p")
    rr=$(median <"$work/ratio.$p")
    awk -v p="$p" -v r="$rv" -v d="$dv" -v rr="$rr" \
        'BEGIN { printf "%-8s %4s %14.0f %14.0f %8.2f %12.2f\n", "SET", p, r, d, (r > 0 ? d / r : 0), rr }'
done
echo "each round (redis/dmkv, thousands of requests/s):"
for p in 1 16; do
    printf '  -P %-3s' "$p"
    paste -d/ "$work/redis.$p" "$work/dmkv.$p" | awk -F/ '{printf "%.1f/%.1f ", $1 / 1000, $2 / 1000}'
    echo
done
echo
/usr/bin/python3 "$here/replication_lag.py" --writes "$LAG_WRITES" \
    --redis "$r1,$r2,$r3" --dmkv "$d1,$d2,$d3"
