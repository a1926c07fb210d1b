#!/bin/sh
# Runs every unit test program of BUILD_DIR under valgrind memcheck with
# leak checking; any error or leak fails the run.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for t in "$build"/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    printf '== valgrind %s: ' "$name"
    if valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 --suppressions="$root/tests/valgrind.supp" "$t" >"$build/valgrind-$name.log" 2>&1; then
        echo clean
    else
        echo "FAILED (see $build/valgrind-$name.log)"
        grep -E '^==[0-9]+==' "$build/valgrind-$name.log" | head -40
        status=1
    fi
done
exit $status
