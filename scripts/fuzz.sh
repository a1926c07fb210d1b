#!/bin/sh
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, starting from
# the committed seed corpus tests/fuzz/corpus/<name>/ (new inputs go to a
# scratch copy, so the committed corpus only changes on purpose).
set -eu
build=${1:-build-fuzz}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$build"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin" | sed 's/^fuzz_//')
    work=$(mktemp -d)
    if [ -d "$root/tests/fuzz/corpus/$name" ]; then cp -r "$root/tests/fuzz/corpus/$name/." "$work/"; fi
    echo "== fuzz $name for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/crash-$name-" "$work" 2>"$build/fuzz-$name.log"; then
        echo "fuzz $name FAILED; see $build/fuzz-$name.log"
        tail -30 "$build/fuzz-$name.log"
        status=1
    fi
    grep -E '^stat::number_of_executed_units' "$build/fuzz-$name.log" || true
    rm -rf "$work"
done
exit $status
