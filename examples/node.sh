#!/bin/sh
# One node of the example cluster: run `./node.sh 1` on NODE1_HOST,
# `./node.sh 2` on NODE2_HOST and `./node.sh 3` on NODE3_HOST. The same
# script, with the same addresses below, runs on every host; only the
# node number changes. See README.md.
#
# Every variable can be overridden from the environment, e.g.
#   NODE1_HOST=127.0.0.1 NODE2_HOST=127.0.0.1 NODE3_HOST=127.0.0.1 ./node.sh 2
set -eu

# ---- The cluster: the same on every host ----
LOGGER_HOST=${LOGGER_HOST:-192.168.1.10}
LOGGER_PORT=${LOGGER_PORT:-5000}
NODE1_HOST=${NODE1_HOST:-192.168.1.11}
NODE1_TCP=${NODE1_TCP:-5001}
NODE1_UDP=${NODE1_UDP:-6001}
NODE2_HOST=${NODE2_HOST:-192.168.1.12}
NODE2_TCP=${NODE2_TCP:-5002}
NODE2_UDP=${NODE2_UDP:-6002}
NODE3_HOST=${NODE3_HOST:-192.168.1.13}
NODE3_TCP=${NODE3_TCP:-5003}
NODE3_UDP=${NODE3_UDP:-6003}
# Made once with `dmkv keygen > cluster.key`, then copied to every node host.
CLUSTER_KEY_FILE=${CLUSTER_KEY_FILE:-./cluster.key}
# 0: eventual replication; 1: writes take the distributed lock first.
USE_MUTEX=${USE_MUTEX:-0}

# ---- This host ----
# The address to listen on; empty means this node's own NODEn_HOST. Set
# BIND=0.0.0.0 when NODEn_HOST is not an address of this machine (a cloud
# VM behind NAT): the node then listens everywhere and still tells the
# others to use NODEn_HOST.
BIND=${BIND:-}
DATA_DIR=${DATA_DIR:-./dmkv-data}
# The dmkv binary: on PATH, else the repository's build.
DMKV=${DMKV:-$(command -v dmkv || echo "$(dirname "$0")/../build/dmkv")}

usage() {
    echo "usage: $0 1|2|3   (the node number; addresses are set at the top of $0)" >&2
    exit 2
}
[ $# -eq 1 ] || usage
case "$1" in 1 | 2 | 3) id=$1 ;; *) usage ;; esac

# host:tcp:udp=id, with brackets around an IPv6 address.
peer() {
    case "$1" in *:*) printf '[%s]:%s:%s=%s' "$1" "$2" "$3" "$4" ;; *) printf '%s:%s:%s=%s' "$1" "$2" "$3" "$4" ;; esac
}
addr() {
    case "$1" in *:*) printf '[%s]:%s' "$1" "$2" ;; *) printf '%s:%s' "$1" "$2" ;; esac
}

case "$id" in
1) host=$NODE1_HOST tcp=$NODE1_TCP udp=$NODE1_UDP ;;
2) host=$NODE2_HOST tcp=$NODE2_TCP udp=$NODE2_UDP ;;
3) host=$NODE3_HOST tcp=$NODE3_TCP udp=$NODE3_UDP ;;
esac
peers="$(peer "$NODE1_HOST" "$NODE1_TCP" "$NODE1_UDP" 1),$(peer "$NODE2_HOST" "$NODE2_TCP" "$NODE2_UDP" 2),$(peer "$NODE3_HOST" "$NODE3_TCP" "$NODE3_UDP" 3)"

if [ ! -r "$CLUSTER_KEY_FILE" ]; then
    echo "$0: no cluster key file $CLUSTER_KEY_FILE: make one with 'dmkv keygen > cluster.key' on one host and copy it to every node host" >&2
    exit 2
fi
if [ ! -x "$DMKV" ]; then
    echo "$0: no dmkv binary at $DMKV: build it (make) or set DMKV=/path/to/dmkv" >&2
    exit 2
fi

echo "node $id: clients on $(addr "$host" "$tcp"), gossip on UDP $udp, events to $(addr "$LOGGER_HOST" "$LOGGER_PORT")" >&2
exec "$DMKV" agent \
    --id "$id" \
    --host "${BIND:-$host}" \
    --advertise "$host" \
    --tcp "$tcp" \
    --udp "$udp" \
    --peers "$peers" \
    --logger-addr "$(addr "$LOGGER_HOST" "$LOGGER_PORT")" \
    --cluster-key-file "$CLUSTER_KEY_FILE" \
    --use-mutex "$USE_MUTEX" \
    --numnodes 3 \
    --data-dir "$DATA_DIR/node-$id"
