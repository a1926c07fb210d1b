#!/bin/sh
# Logger-side costs of the trace module: ordering and concurrent-write
# detection at 10k, 100k and 1M events, JSON encode and decode rates, and
# the seed prototype's naive layering against ours (1k, 2k, 5k events).
# Pure computation on synthetic histories from tests/sim/sim_trace.c (five
# nodes, seeded, so every run orders the same events); no servers.
#
# Then the ingest rate of a real `dmkv logger` (bench/logger_ingest.py).
#
# Usage: bench/logger.sh [path/to/sim_trace] [path/to/dmkv]   (defaults build/...)
set -eu
SIM=${1:-build/sim_trace}
if [ ! -x "$SIM" ]; then
    echo "logger.sh: no sim_trace at $SIM; build it with" >&2
    echo "  cmake -S . -B build && cmake --build build --target sim_trace" >&2
    exit 1
fi
echo "== trace orderings and JSON ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)) =="
"$SIM" bench

DMKV=${2:-build/dmkv}
echo
echo "== logger ingest (dmkv logger, 3 concurrent senders) =="
/usr/bin/python3 "$(dirname "$0")/logger_ingest.py" "$DMKV"
