#!/bin/sh
# The event logger of the example cluster: run it on LOGGER_HOST before
# (or after) the nodes; they stream their events to it. See README.md.
#
# Every variable can be overridden from the environment, e.g.
#   LOGGER_HOST=127.0.0.1 ./logger.sh
set -eu

# ---- The cluster: the same as in node.sh and client.sh ----
LOGGER_HOST=${LOGGER_HOST:-192.168.1.10}
LOGGER_PORT=${LOGGER_PORT:-5000}
# The space-time diagram in a browser, http://LOGGER_HOST:LOGGER_HTTP_PORT/;
# empty turns it off.
LOGGER_HTTP_PORT=${LOGGER_HTTP_PORT-5080}

# ---- This host ----
# The address to listen on; empty means LOGGER_HOST. BIND=0.0.0.0 when
# LOGGER_HOST is not an address of this machine (NAT).
BIND=${BIND:-}
DATA_DIR=${DATA_DIR:-./dmkv-data}
# Print the physical, Lamport and causal orderings every this many
# seconds, as the prototype's logger did; 0 = never.
INTERVAL=${INTERVAL:-3}
DMKV=${DMKV:-$(command -v dmkv || echo "$(dirname "$0")/../build/dmkv")}

if [ $# -ne 0 ]; then
    echo "usage: $0   (addresses and ports are set at the top of $0)" >&2
    exit 2
fi
if [ ! -x "$DMKV" ]; then
    echo "$0: no dmkv binary at $DMKV: build it (make) or set DMKV=/path/to/dmkv" >&2
    exit 2
fi

set -- --logger-tcp "$LOGGER_PORT" --host "${BIND:-$LOGGER_HOST}" --numnodes 3 \
    --interval "$INTERVAL" --log-file "$DATA_DIR/logger/events.jsonl"
if [ -n "$LOGGER_HTTP_PORT" ]; then
    set -- "$@" --http "$LOGGER_HTTP_PORT"
    echo "logger: diagram on http://$LOGGER_HOST:$LOGGER_HTTP_PORT/" >&2
fi
exec "$DMKV" logger "$@"
