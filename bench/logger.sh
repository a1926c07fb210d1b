#!/bin/sh
# Logger-side costs of the trace module: ordering and concurrent-write
# detection at 10k, 100k and 1M events, JSON encode and decode rates, and
# the seed prototype's naive layering against ours (1k, 2k, 5k events).
# Pure computation on synthetic histories from tests/sim/sim_trace.c (five
# nodes, seeded, so every run orders the same events); no servers.
#
# Usage: bench/logger.sh [path/to/sim_trace]   (default build/sim_trace)
set -eu
SIM=${1:-build/sim_trace}
if [ ! -x "$SIM" ]; then
    echo "logger.sh: no sim_trace at $SIM; build it with" >&2
    echo "  cmake -S . -B build && cmake --build build --target sim_trace" >&2
    exit 1
fi
echo "== trace orderings and JSON ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)) =="
"$SIM" bench
