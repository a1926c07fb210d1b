#!/bin/sh
# SWIM membership at scale, in the deterministic simulator.
#
# Runs the bench mode of the gossip simulator (tests/sim/sim_gossip.c): for
# N = 10, 100, 1,000 and 10,000 simulated nodes running the real state
# machine, it prints the protocol periods an update needs to reach every
# member, the time from a crash to the first suspicion and to DEAD at every
# member (next to SWIM's expected first detection, e/(e-1) periods, and to
# memberlist's LAN defaults scaled to our probe interval), the live members
# wrongly declared DEAD under 5% and 10% datagram loss, and the messages
# and bytes each member sends per second. It builds nothing: pass the
# simulator binary. N = 10,000 needs about 10 GB of memory and a few
# minutes; MAX_N=1000 stops earlier.
#
# Usage: bench/gossip.sh [path/to/sim_gossip]   (env: SEED=1 MAX_N=10000)
set -eu
SIM=${1:-build/sim_gossip}
SEED=${SEED:-1}
MAX_N=${MAX_N:-10000}
if [ ! -x "$SIM" ]; then
    echo "bench/gossip.sh: $SIM is not an executable; build the sim_gossip target first" >&2
    exit 1
fi
exec "$SIM" bench "$SEED" "$MAX_N"
