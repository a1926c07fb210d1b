#!/bin/sh
# Installs the Debian packages dmkv needs to build, test, demo and benchmark.
# Idempotent: only packages that are missing are installed, so a second run
# costs one dpkg query. redis-server is used only by the side-by-side
# benchmarks and tests; its system service is never enabled or started.
set -eu

PACKAGES="
build-essential cmake pkg-config clang valgrind
libuv1-dev liblmdb-dev lmdb-utils libsodium-dev libcjson-dev libraft-dev libedit-dev
libcmocka-dev libmicrohttpd-dev
redis-tools redis-server
python3 python3-pytest python3-redis chromium
nftables iproute2 procps
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps.sh: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deps.sh: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
fi

# policy-rc.d keeps Debian's maintainer scripts from starting redis-server
# as a system service during installation.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    added_policy=1
fi
cleanup() {
    if [ "$added_policy" -eq 1 ]; then $SUDO rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends $missing
fi
