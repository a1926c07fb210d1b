#!/bin/sh
# The client side of the example cluster, from any machine that reaches
# the nodes. With arguments it runs one dmkv client verb against the
# cluster:
#   ./client.sh members
#   ./client.sh put color red
#   ./client.sh getall color
#   ./client.sh race "PUT color blue" "PUT color green"
#   ./client.sh trace --order vector
# Without arguments it runs a short tour of those. See README.md.
set -eu

# ---- The cluster: the same as in node.sh and logger.sh ----
LOGGER_HOST=${LOGGER_HOST:-192.168.1.10}
LOGGER_PORT=${LOGGER_PORT:-5000}
NODE1_HOST=${NODE1_HOST:-192.168.1.11}
NODE1_TCP=${NODE1_TCP:-5001}
NODE2_HOST=${NODE2_HOST:-192.168.1.12}
NODE2_TCP=${NODE2_TCP:-5002}
NODE3_HOST=${NODE3_HOST:-192.168.1.13}
NODE3_TCP=${NODE3_TCP:-5003}
DMKV=${DMKV:-$(command -v dmkv || echo "$(dirname "$0")/../build/dmkv")}

addr() {
    case "$1" in *:*) printf '[%s]:%s' "$1" "$2" ;; *) printf '%s:%s' "$1" "$2" ;; esac
}

if [ ! -x "$DMKV" ]; then
    echo "$0: no dmkv binary at $DMKV: build it (make) or set DMKV=/path/to/dmkv" >&2
    exit 2
fi
# The client verbs read the node list and the logger from these.
DMKV_NODES="$(addr "$NODE1_HOST" "$NODE1_TCP"),$(addr "$NODE2_HOST" "$NODE2_TCP"),$(addr "$NODE3_HOST" "$NODE3_TCP")"
DMKV_LOGGER=$(addr "$LOGGER_HOST" "$LOGGER_PORT")
export DMKV_NODES DMKV_LOGGER

if [ $# -gt 0 ]; then
    exec "$DMKV" "$@"
fi

run() {
    echo "\$ dmkv $*"
    "$DMKV" "$@" || true
    echo
}
run members
run put --node 1 color red
run getall color
run race "PUT color blue" "PUT color green"
sleep 1 # replication is asynchronous: give the race's writes a moment to spread
run getall color
run incr --node 3 visits
run trace --order vector --last 10
