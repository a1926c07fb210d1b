#!/bin/sh
# `make demo`: the seed prototype's three scenarios, and what was built
# since, on two local clusters started with `dmkv dev` (three nodes and a
# logger each; one eventually consistent, one with the distributed mutex):
#
#   1  a PUT on node 1 is read on node 2
#   2  two nodes PUT the same key at the same instant: every replica ends
#      with the same value and version (the conflict rule)
#   3  the same race under the mutex: serialized, every replica agrees
#   4  4 clients x 200 INCR over the 3 nodes without the mutex: updates lost
#   5  the same load with the mutex: exactly 800
#   6  kill -9 of a node: the others declare it dead; the cluster carries on
#
# Each scenario ends with one verdict line, `scenario N: PASS - ...` or
# `scenario N: FAIL - ...`; the exit code is 1 when any failed. The client
# verbs (dmkv put, get, race, getall, incr, members, trace) do the work, so
# the demo is also a tour of the client. At the end, each cluster's
# space-time diagram (a self-contained HTML page) and ShiViz log are saved
# under $DMKV_DEMO_OUT (./dmkv-demo-out by default).
#
# The binary is the first argument, else $DMKV_BIN, else build/dmkv.
# Only processes this script started are stopped, by pid, whatever way it
# ends; nothing is left running or in /tmp.
set -u

DMKV=${1:-${DMKV_BIN:-build/dmkv}}
if [ ! -x "$DMKV" ]; then
    echo "demo: no dmkv binary at $DMKV (run make build, or give its path)" >&2
    exit 2
fi
DMKV=$(cd "$(dirname "$DMKV")" && pwd)/$(basename "$DMKV")
OUT=${DMKV_DEMO_OUT:-dmkv-demo-out}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
# Debian's python3 has python3-redis (scripts/deps.sh); a pyenv or venv
# python3 first on PATH may not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import redis' 2>/dev/null; then
    echo "demo: $PY cannot import redis: run scripts/deps.sh (python3-redis)" >&2
    exit 2
fi
# The verbs must find the demo's clusters, not whatever the caller set.
unset DMKV_NODES DMKV_LOGGER DMKV_PASSWORD

CLIENTS=4
EACH=200
TOTAL=$((CLIENTS * EACH))

work=$(mktemp -d /tmp/dmkv-demo.XXXXXX)
passed=0
failed=0
t_start=0

now_ms() {
    t=$(date +%s%N)
    case "$t" in
    *N) echo $(($(date +%s) * 1000)) ;;
    *) echo $((t / 1000000)) ;;
    esac
}

# alive PID: running (not gone, not a zombie waiting to be reaped).
alive() {
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case "$st" in Z* | "") return 1 ;; esac
    return 0
}

# Stops every `dmkv dev` this script started (each stops its logger and
# agents), then makes sure none of the pids they reported is left.
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    trap - EXIT INT TERM
    for f in "$work"/*.devpid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        if alive "$p"; then kill -TERM "$p" 2>/dev/null; fi
    done
    deadline=$(($(now_ms) + 10000))
    for f in "$work"/*.devpid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        while alive "$p" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
        if alive "$p"; then kill -KILL "$p" 2>/dev/null; fi
        wait "$p" 2>/dev/null
    done
    for f in "$work"/*.pids; do
        [ -f "$f" ] || continue
        pids=$(cat "$f")
        for p in $pids; do
            if alive "$p" && [ "$(ps -o comm= -p "$p" 2>/dev/null)" = dmkv ]; then
                echo "demo: pid $p outlived its dmkv dev; killing it" >&2
                kill -KILL "$p" 2>/dev/null
            fi
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "demo: $*" >&2
    exit 1
}

section() { printf '\n======== %s\n\n' "$*"; }
say() { printf '%s\n' "$@"; }

# show ARGS: prints `$ dmkv ARGS` the way a user would type it.
show() {
    printf '$ dmkv'
    for a in "$@"; do
        case "$a" in *" "*) printf " \"%s\"" "$a" ;; *) printf ' %s' "$a" ;; esac
    done
    printf '\n'
}

# run ARGS: shows the command, runs it, prints its output indented.
# Returns the command's exit code; its output stays in $work/last.
run() {
    show "$@"
    "$DMKV" "$@" >"$work/last" 2>&1
    rc=$?
    sed 's/^/    /' "$work/last"
    return $rc
}

verdict() { # N ok|fail TEXT
    if [ "$2" = ok ]; then
        printf '\nscenario %s: PASS - %s\n' "$1" "$3"
        passed=$((passed + 1))
    else
        printf '\nscenario %s: FAIL - %s\n' "$1" "$3"
        failed=$((failed + 1))
    fi
}

# use NAME: the verbs below talk to cluster NAME (through its state file).
use() {
    DMKV_DEV_STATE="$work/$1.env"
    export DMKV_DEV_STATE
}

# field NAME KEY: a value from cluster NAME's state (copied once ready).
field() { sed -n "s/^$2=//p" "$work/$1.state"; }

start_cluster() { # NAME MUTEX
    DMKV_DEV_STATE="$work/$1.env" "$DMKV" dev --nodes 3 --use-mutex "$2" >"$work/$1.out" 2>&1 &
    echo $! >"$work/$1.devpid"
}

# wait_cluster NAME: until its dmkv dev says it is ready (it writes the
# state file only then: members alive, coordinator leader elected).
wait_cluster() {
    p=$(cat "$work/$1.devpid")
    deadline=$(($(now_ms) + 45000))
    until grep -q '^data=' "$work/$1.env" 2>/dev/null; do
        if ! alive "$p"; then
            cat "$work/$1.out" >&2
            die "dmkv dev for the $1 cluster stopped before it was ready"
        fi
        [ "$(now_ms)" -lt "$deadline" ] || die "the $1 cluster was not ready within 45 s"
        sleep 0.05
    done
    cp "$work/$1.env" "$work/$1.state"
    echo "$p $(field "$1" logger_pid) $(field "$1" node_pids | tr , ' ')" >"$work/$1.pids"
}

describe_cluster() { # NAME
    sed -n 's/^ *\(export DMKV_NODES=.*\)/    \1/p; s/^ *\(lock coordinator: .*\)/    \1/p; s/^ *\(space-time diagram: .*\)/    \1/p' \
        "$work/$1.out"
    echo "    demo: cluster \"$1\" pids: $(cat "$work/$1.pids")"
}

# conflicts: the conflicts counter (INFO replication) summed over nodes.
conflicts() {
    sum=0
    for n in 1 2 3; do
        c=$("$DMKV" cmd --node "$n" "INFO replication" 2>/dev/null | sed -n 's/^conflicts:\([0-9]*\).*/\1/p')
        sum=$((sum + ${c:-0}))
    done
    echo "$sum"
}

# agree_within MS KEY: polls `dmkv getall KEY` until every node agrees.
agree_within() {
    deadline=$(($(now_ms) + $1))
    until "$DMKV" getall "$2" >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# value_everywhere KEY: the value all nodes agree on (getall's first row).
value_everywhere() {
    "$DMKV" getall "$1" 2>/dev/null | sed -n '1s/^node 1 ([^)]*): \([^ ]*\) .*/\1/p'
}

incr_load() { # prints the seconds the load took; fails on a client error
    "$PY" - "$(field "$1" nodes)" "$CLIENTS" "$EACH" <<'EOF'
import sys, threading, time
import redis
ports = [int(a.rsplit(":", 1)[1]) for a in sys.argv[1].split(",")]
clients, each = int(sys.argv[2]), int(sys.argv[3])
errors = []

def client(i):
    r = redis.Redis(host="127.0.0.1", port=ports[i % len(ports)], socket_timeout=30)
    try:
        for _ in range(each):
            r.incr("counter")
    except Exception as e:
        errors.append(repr(e))
    finally:
        r.close()

threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
t0 = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
print("%.2f" % (time.monotonic() - t0))
if errors:
    sys.exit("a client failed: " + errors[0])
EOF
}

t_start=$(now_ms)
section "Two local clusters, started with dmkv dev"
say "dmkv dev starts a logger and three agents on free loopback ports and" \
    "returns once every node sees the others alive and the lock coordinator" \
    "(Raft) has a leader. The client verbs below take no --nodes: they read" \
    "the running cluster from the state file dmkv dev writes (\$DMKV_DEV_STATE)."
echo
start_cluster eventual 0
start_cluster mutex 1
wait_cluster eventual
wait_cluster mutex
say '$ dmkv dev --nodes 3 --use-mutex 0     # "eventual": writes go anywhere, replicas converge'
describe_cluster eventual
say '$ dmkv dev --nodes 3 --use-mutex 1     # "mutex": every write takes a lock first'
describe_cluster mutex

# ---------------------------------------------------------------- 1 ----
use eventual
section "Scenario 1: PUT on node 1, GET on node 2 (eventual mode)"
say "Node 1 commits the write, answers, and pushes it to every live member;" \
    "node 2 serves it from its own copy."
echo
run put --node 1 greeting hello
t0=$(now_ms)
deadline=$((t0 + 5000))
until [ "$("$DMKV" get --node 2 greeting 2>/dev/null)" = hello ] || [ "$(now_ms)" -gt "$deadline" ]; do
    sleep 0.01
done
took=$(($(now_ms) - t0))
run get --node 2 greeting
if [ "$(cat "$work/last")" = hello ]; then
    verdict 1 ok "node 2 returned node 1's write (there within ${took} ms)"
else
    verdict 1 fail "node 2 answered '$(cat "$work/last")', not hello"
fi

# ---------------------------------------------------------------- 2 ----
section "Scenario 2: conflicting PUTs on two nodes at the same instant (eventual mode)"
say "dmkv race releases both writes at once. Each node takes its own write," \
    "then receives the other's: two versions neither of which saw the other" \
    "(concurrent vector clocks). Every replica resolves them by the same rule," \
    "higher Lamport time, then higher node id, so all end with one winner."
echo
c0=$(conflicts)
run race "PUT color red" "PUT color blue"
round=1
while [ "$(conflicts)" -eq "$c0" ] && [ $round -lt 10 ]; do
    round=$((round + 1))
    "$DMKV" race "PUT color red" "PUT color blue" >/dev/null 2>&1
done
if [ $round -gt 1 ]; then
    if [ "$(conflicts)" -gt "$c0" ]; then again="round $round did"; else again="none did"; fi
    say "(These writes did not overlap: one reached the other node before it wrote" \
        "its own. Raced again, quietly, until two overlapped: $again.)"
fi
agree_within 5000 color
run getall color
agreed=$?
c1=$(conflicts)
if [ "$c1" -gt "$c0" ]; then
    deadline=$(($(now_ms) + 3000))
    until [ "$("$DMKV" trace --key color 2>/dev/null | grep -c ' CONFLICT ')" -ge $((c1 - c0)) ] ||
        [ "$(now_ms)" -gt "$deadline" ]; do
        sleep 0.05
    done
    say "Each replica logged its resolution: the two versions (origin node @ Lamport" \
        "time) and, after the arrow, the winner."
    show trace --key color --order lamport
    "$DMKV" trace --key color --order lamport 2>/dev/null | grep ' CONFLICT ' | tail -3 | sed 's/^/    /'
fi
winner=$(value_everywhere color)
if [ "$c1" -gt "$c0" ]; then
    how="the concurrent writes were resolved by the rule on every replica ($((c1 - c0)) resolutions counted)"
else
    how="no race overlapped on this busy machine, so the later write replaced the earlier one everywhere"
fi
if [ $agreed -eq 0 ] && { [ "$winner" = red ] || [ "$winner" = blue ]; }; then
    verdict 2 ok "all 3 replicas hold color=$winner with the same version; $how"
else
    verdict 2 fail "the replicas do not agree on color (getall above)"
fi

# ---------------------------------------------------------------- 3 ----
use mutex
section "Scenario 3: the same race under the distributed mutex (--use-mutex 1)"
say "Now each write first takes the lock kv:color from the lock coordinator" \
    "(the Raft leader), gets a fencing token, is applied and acknowledged by" \
    "every live replica, and only then releases the lock. The second writer" \
    "waits: the writes are serialized, and there is nothing to resolve."
echo
c0=$(conflicts)
run race "PUT color red" "PUT color blue"
run getall color
agreed=$?
tokens=$(grep -c 'token [1-9]' "$work/last")
deadline=$(($(now_ms) + 5000))
until [ "$("$DMKV" trace --key color 2>/dev/null | grep -c 'MUTEX_REL color')" -ge 2 ] || [ "$(now_ms)" -gt "$deadline" ]; do
    sleep 0.05
done
say "The lock's events in physical order: each grant comes after the previous release."
show trace --key color --order physical
"$DMKV" trace --key color --order physical 2>/dev/null |
    grep -E '^\[[^]]*\] node[0-9]+ #[0-9]+ .* (MUTEX_(REQ|GOT|REL)|PUT) color' >"$work/mutex-events"
sed 's/^/    /' "$work/mutex-events"
# Serialized: GOT and REL alternate, each pair on one node, two grants.
pattern=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^MUTEX_(GOT|REL)$/) printf "%s:%s ", $i, $3}' "$work/mutex-events")
serial=$(echo "$pattern" | awk '{
    if (NF != 4) { print "no"; exit }
    for (i = 1; i <= NF; i += 2) {
        split($i, g, ":"); split($(i + 1), r, ":")
        if (g[1] != "MUTEX_GOT" || r[1] != "MUTEX_REL" || g[2] != r[2]) { print "no"; exit }
    }
    print "yes" }')
c1=$(conflicts)
if [ $agreed -eq 0 ] && [ "$tokens" -eq 3 ] && [ "$serial" = yes ] && [ "$c1" -eq "$c0" ]; then
    verdict 3 ok "the two writes held the lock one after the other; all 3 replicas hold color=$(value_everywhere color), same version and fencing token, no conflict"
else
    verdict 3 fail "agree=$agreed tokens=$tokens serialized=$serial conflicts=$((c1 - c0)) (see above)"
fi

# ---------------------------------------------------------------- 4 ----
use eventual
section "Scenario 4: $CLIENTS clients x $EACH INCR over 3 nodes, without the mutex"
say "INCR reads, adds one and writes on one replica. When two nodes increment" \
    "the same value at the same time, their versions are concurrent and the" \
    "rule keeps one: the other increment is lost. Replicas still converge."
echo
say "\$ $PY - (redis-py: $CLIENTS threads, client i on node i mod 3, $EACH x INCR counter each)"
if took=$(incr_load eventual); then
    agree_within 10000 counter
    run getall counter
    agreed=$?
    got=$(value_everywhere counter)
    if [ $agreed -eq 0 ] && [ "${got:-0}" -gt 0 ] && [ "$got" -le $TOTAL ]; then
        verdict 4 ok "$TOTAL INCRs in ${took} s; every replica converged on $got: $((TOTAL - got)) updates lost, as expected without the mutex"
    else
        verdict 4 fail "the replicas did not converge on one count (getall above)"
    fi
else
    verdict 4 fail "the INCR clients failed"
fi

# ---------------------------------------------------------------- 5 ----
use mutex
section "Scenario 5: the same load with the mutex"
say "Each INCR holds kv:counter while it reads, writes and waits for every" \
    "replica's acknowledgement, so the next one reads the latest value."
echo
say "\$ $PY - (the same $CLIENTS x $EACH INCR counter)"
if took=$(incr_load mutex); then
    agree_within 5000 counter
    run getall counter
    agreed=$?
    got=$(value_everywhere counter)
    if [ $agreed -eq 0 ] && [ "$got" = "$TOTAL" ]; then
        verdict 5 ok "$TOTAL INCRs in ${took} s; every replica holds exactly $TOTAL: no update lost"
    else
        verdict 5 fail "expected $TOTAL on every node, got '${got}' (getall above)"
    fi
else
    verdict 5 fail "the INCR clients failed"
fi

# ---------------------------------------------------------------- 6 ----
section "Scenario 6: kill -9 of a node (mutex cluster)"
leader=$("$DMKV" leader 2>/dev/null | sed -n 's/^node \([0-9]*\) .*/\1/p')
victim=${leader:-3}
vpid=$(field mutex node_pids | cut -d, -f"$victim")
survivors=""
for n in 1 2 3; do [ "$n" = "$victim" ] || survivors="$survivors $n"; done
if [ -n "$leader" ]; then role="leads the lock coordinator"; else role="is the victim"; fi
say "Node $victim (pid $vpid, from the dev state file) $role." \
    "It gets no chance to say goodbye. The others find out by gossip (SWIM):" \
    "a probe and indirect probes go unanswered, it is suspected, and after" \
    "the suspicion timeout declared dead. Raft elects another leader."
echo
say "\$ kill -9 $vpid"
kill -KILL "$vpid"
t0=$(now_ms)
deadline=$((t0 + 20000))
detail=""
dead_all=yes
for s in $survivors; do
    until [ "$("$DMKV" members --node "$s" 2>/dev/null | awk -v id="$victim" '$1 == id {print $4}')" = dead ]; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            dead_all=no
            break
        fi
        sleep 0.05
    done
    [ $dead_all = yes ] || break
    ms=$(($(now_ms) - t0))
    secs="$((ms / 1000)).$(printf '%02d' $((ms % 1000 / 10)))"
    say "node $s marks node $victim dead after $secs s"
    detail="${detail:+$detail, }node $s after $secs s"
done
first=${survivors# }
first=${first%% *}
run members --node "$first"
deadline=$(($(now_ms) + 10000))
until newl=$("$DMKV" leader --node "$first" 2>/dev/null | sed -n 's/^node \([0-9]*\) .*/\1/p') &&
    [ -n "$newl" ] && [ "$newl" != "$victim" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.05
done
run leader --node "$first"
say "The survivors still serialize writes through the new coordinator:"
run incr --node "$first" counter
after=$(cat "$work/last")
newl=${newl:-}
if [ $dead_all = yes ] && [ -n "$newl" ] && [ "$newl" != "$victim" ] && [ "$after" = $((TOTAL + 1)) ]; then
    verdict 6 ok "node $victim killed: dead at $detail; coordinator moved to node $newl; INCR under the mutex gave $after"
else
    verdict 6 fail "dead everywhere: $dead_all; leader now: ${newl:-none}; INCR gave '$after'"
fi

# ------------------------------------------------------------- save ----
section "The event history, saved"
say "Each cluster's logger holds every event of the run: its space-time page" \
    "(saved with the events inside, so it opens offline) and its ShiViz log."
echo
saved=yes
for name in eventual mutex; do
    use "$name"
    # Events arrive in batches: wait until the logger's count stops moving.
    prev=-1
    deadline=$(($(now_ms) + 5000))
    while :; do
        n=$("$DMKV" trace --order lamport 2>/dev/null | grep -c '^\[')
        if [ "$n" = "$prev" ] || [ "$(now_ms)" -ge "$deadline" ]; then break; fi
        prev=$n
        sleep 0.3
    done
    show trace --format shiviz ">" "$OUT/$name.shiviz.log"
    "$DMKV" trace --format shiviz >"$OUT/$name.shiviz.log" || saved=no
    show trace --format json --order lamport ">" "$OUT/$name.events.json"
    "$DMKV" trace --format json --order lamport >"$OUT/$name.events.json" || saved=no
    # The page as the logger serves it, made to read the saved events.
    if ! "$PY" - "$(field "$name" http)" "$OUT/$name.events.json" "$OUT/$name.html" <<'EOF'; then
import json, sys, urllib.request
url, json_path, html_path = sys.argv[1:4]
page = urllib.request.urlopen(url, timeout=10).read().decode("utf-8")
with open(json_path) as f:
    events = f.read()
count = len(json.loads(events)["events"])
# The live page fetches /events.json (the latest 5,000 events) from its
# server every 2 s; the saved copy answers that fetch with the whole
# history embedded here. "<" is escaped (JSON allows \u003c) so no event
# text can end the script element early.
inline = events.replace("<", "\\u003c")
shim = ('<script type="application/json" id="dmkv-saved-events">' + inline + '</script>\n'
        '<script>/* saved by scripts/demo.sh: the events are in this file */\n'
        'window.fetch = () => Promise.resolve(new Response('
        'document.getElementById("dmkv-saved-events").textContent, {status: 200}));\n</script>\n')
at = page.find("<script>")
if at < 0:
    sys.exit("the logger's page has no <script> to feed")
with open(html_path, "w") as f:
    f.write(page[:at] + shim + page[at:])
print("    %s: the diagram, %d events" % (html_path, count))
EOF
        saved=no
    fi
    echo "    $OUT/$name.shiviz.log: $(wc -l <"$OUT/$name.shiviz.log") lines"
    head -c 2 "$OUT/$name.shiviz.log" | grep -qF '(?' || saved=no
done

section "Stopping the clusters"
stopped=yes
for name in eventual mutex; do
    p=$(cat "$work/$name.devpid")
    kill -TERM "$p" 2>/dev/null
    wait "$p"
    rc=$?
    # dmkv dev reports the node killed in scenario 6; that is expected.
    [ $rc -eq 0 ] || {
        stopped=no
        cat "$work/$name.out" >&2
    }
    rm -f "$work/$name.devpid"
    left=""
    pids=$(cat "$work/$name.pids")
    for q in $pids; do
        if alive "$q"; then left="$left $q"; fi
    done
    if [ -n "$left" ]; then
        stopped=no
        echo "    $name: still running:$left"
    else
        echo "    $name: dmkv dev exited with $rc; none of its pids ($pids) is running"
    fi
done
[ $stopped = yes ] || failed=$((failed + 1))
[ $saved = yes ] || {
    echo "demo: the diagrams or ShiViz logs were not saved" >&2
    failed=$((failed + 1))
}

total_ms=$(($(now_ms) - t_start))
echo
echo "The space-time diagrams (open in a browser) and ShiViz logs (paste at"
echo "https://bestchai.bitbucket.io/shiviz/) are in: $OUT"
if [ $failed -eq 0 ]; then
    printf 'demo: all %d scenarios passed in %d.%d s\n' "$passed" $((total_ms / 1000)) $((total_ms % 1000 / 100))
    exit 0
fi
printf 'demo: FAILED: %d check(s) failed, %d scenarios passed (%d.%d s)\n' "$failed" "$passed" \
    $((total_ms / 1000)) $((total_ms % 1000 / 100))
exit 1
