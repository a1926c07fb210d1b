"""The event logger (`dmkv logger`) and the agents' push to it, on real
processes on loopback:

- events of a live 3-node cluster arrive with the right node, kind, key
  and detail, each node's seq numbers run 1..n without gaps, and each
  node's Lamport times and vector clocks only grow;
- the physical, Lamport and causal (vector) orders, the concurrent-write
  pairs and the ShiViz export of a hand-built history whose concurrency is
  known in advance;
- a restarted logger keeps its history (same --log-file) and appends;
- malformed batches are rejected whole, close the connection and are
  counted, while the logger keeps serving; duplicates are stored once;
- `dmkv trace` output and exit codes;
- a slow or absent logger never slows a client request (PUT p99 with no
  logger, a refused logger, and a logger that accepts and never reads);
  the agent's queue is bounded and drains once a logger appears.

Tests whose docstring starts with "BUG (reported)" reproduce defects found
while writing them; they fail until the C code is fixed.

Every wait is a loop on a condition with a deadline; every process is
started by a fixture that stops it by pid. Measured latencies are printed
(pytest -s shows them).
"""
import datetime
import json
import os
import re
import socket
import statistics
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import (RespError, event_line, free_port, http_get, parse_info, run_dmkv,  # noqa: E402
                      start_cluster, wait_until)

DELIVERY_S = 15.0  # an event recorded -> held by the logger (flush 50 ms, backoff up to 5 s)
CLIENT_KINDS = {"PUT", "GET", "INCR", "DEL"}
KINDS = {"GET", "PUT", "DEL", "INCR", "APPLY_LOCAL", "REPL_SEND", "REPL_RECV", "MUTEX_REQ", "MUTEX_GOT",
         "MUTEX_REL", "MEMBER", "CONFLICT"}  # trace.h


def events_info(agent):
    return parse_info(agent.call("INFO", "events"))


def by_node(events):
    out = {}
    for e in events:
        out.setdefault(e["node"], []).append(e)
    for evs in out.values():
        evs.sort(key=lambda e: e["seq"])
    return out


def ident(e):
    return (e["node"], e["seq"])


def vc_leq(a, b):
    """a <= b componentwise (sparse clocks: a missing entry is 0)."""
    return all(v <= b.get(k, 0) for k, v in a.items())


# ------------------------------------------- a hand-built history ----
#
# Three fake nodes. 101 writes x=v1 and sends it to 102 (message "101:2");
# 102 receives it, reads x, then writes x=v3. 103 writes x twice without
# hearing from anyone. 102's wall clock runs behind, so its receive is
# physically *before* the send: physical order disagrees with causality.
#
#   101:  #1 PUT x=v1 {101:1} L1 t2000 -> #2 REPL_SEND {101:2} L2 t3000
#   102:  #1 REPL_RECV {101:2,102:1} L3 t2500 -> #2 GET {..102:2} L4 t3500
#         -> #3 PUT x=v3 {101:2,102:3} L5 t4500
#   103:  #1 PUT x=w1 {103:1} L1 t1000 -> #2 PUT x=w2 {103:2} L2 t5000
#
# Concurrent writes to x: 101#1 with 103#1 and 103#2; 102#3 with 103#1
# and 103#2 (102#3 happened after 101#1, so that pair is not concurrent).

T0 = 1700000000000000  # 2023-11-14 22:13:20 UTC, in microseconds

HISTORY = [
    dict(node=101, seq=1, vc={101: 1}, kind="PUT", lamport=1, ts_us=T0 + 2000, key="x", detail="v1"),
    dict(node=101, seq=2, vc={101: 2}, kind="REPL_SEND", lamport=2, ts_us=T0 + 3000, key="x", detail="v1",
         msg="101:2"),
    dict(node=102, seq=1, vc={101: 2, 102: 1}, kind="REPL_RECV", lamport=3, ts_us=T0 + 2500, key="x",
         detail="v1", msg="101:2"),
    dict(node=102, seq=2, vc={101: 2, 102: 2}, kind="GET", lamport=4, ts_us=T0 + 3500, key="x", detail="v1"),
    dict(node=102, seq=3, vc={101: 2, 102: 3}, kind="PUT", lamport=5, ts_us=T0 + 4500, key="x", detail="v3"),
    dict(node=103, seq=1, vc={103: 1}, kind="PUT", lamport=1, ts_us=T0 + 1000, key="x", detail="w1"),
    dict(node=103, seq=2, vc={103: 2}, kind="PUT", lamport=2, ts_us=T0 + 5000, key="x", detail="w2"),
]
HIST = {(e["node"], e["seq"]): e for e in HISTORY}

PHYSICAL = [(103, 1), (101, 1), (102, 1), (101, 2), (102, 2), (102, 3), (103, 2)]
LAMPORT = [(101, 1), (103, 1), (101, 2), (103, 2), (102, 1), (102, 2), (102, 3)]
LAYERS = [[(101, 1), (103, 1)], [(101, 2), (103, 2)], [(102, 1)], [(102, 2)], [(102, 3)]]
CONCURRENT = [((101, 1), (103, 1)), ((101, 1), (103, 2)), ((102, 3), (103, 1)), ((102, 3), (103, 2))]


def history_batch(events=HISTORY):
    return "\n".join(event_line(**e) for e in events) + "\n"


def load_history(logger, events=HISTORY):
    with logger.conn() as c:
        assert c.call("LOG.EVENTS", history_batch(events)) == "OK"


def text_time(ts_us):
    t = datetime.datetime.fromtimestamp(ts_us // 1000000, datetime.timezone.utc)
    return "[%s.%06d]" % (t.strftime("%Y-%m-%d %H:%M:%S"), ts_us % 1000000)


def text_line(e):
    """One event line of the text view, as trace.h documents it."""
    vc = "{" + ",".join("%d:%d" % (k, e["vc"][k]) for k in sorted(e["vc"])) + "}"
    s = "%s node%d #%d L=%d vc=%s %s" % (text_time(e["ts_us"]), e["node"], e["seq"], e["lamport"], vc, e["kind"])
    if e.get("key") is not None:
        s += " " + e["key"]
    if e.get("detail") is not None:
        s += " " + e["detail"]
    if e.get("msg") is not None:
        s += " (msg %s)" % e["msg"]
    return s


def short(i, detail=False):
    e = HIST[i]
    s = "node%d#%d %s %s" % (e["node"], e["seq"], e["kind"], e["key"])
    return s + ("=" + e["detail"] if detail else "")


def layers_text(layers):
    return ["layer %d: %s" % (n + 1, " | ".join(short(i) for i in layer)) for n, layer in enumerate(layers)]


def concurrent_text(pairs):
    return ["concurrent writes: %d" % len(pairs)] + [
        "  %s || %s" % (short(a, True), short(b, True)) for a, b in pairs]


def check_json_view(doc, order_name, order, layers, pairs):
    """A TRACE FORMAT json document against the expected order, layers and
    concurrent pairs (all given as (node, seq))."""
    assert doc["order"] == order_name
    assert doc["count"] == len(order)
    evs = doc["events"]
    assert [ident(e) for e in evs] == order
    for e in evs:  # every field comes back as it went in
        want = dict(HIST[ident(e)])
        want["vc"] = {str(k): v for k, v in want["vc"].items()}
        assert {k: v for k, v in e.items() if k != "layer"} == want
    layer_of = {i: n + 1 for n, layer in enumerate(layers) for i in layer}
    assert {ident(e): e["layer"] for e in evs} == layer_of
    assert [[ident(evs[k]) for k in layer] for layer in doc["layers"]] == layers
    assert [(ident(evs[a]), ident(evs[b])) for a, b in doc["concurrent"]] == pairs
    assert doc["concurrent_total"] == len(pairs)


# ------------------------------------------------- ShiViz checker ----

SHIVIZ_REGEX = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"


def parse_shiviz(text):
    """A ShiViz log as dmkv writes it -> [(description, host, clock)].
    Checks the layout: the regex line, the empty delimiter line, then
    pairs of lines `description` / `host {json clock}`."""
    lines = text.split("\n")
    assert lines[0] == SHIVIZ_REGEX, "first line is not the parsing regex: %r" % lines[0]
    assert lines[1] == "", "second line (multiple-executions delimiter) is not empty: %r" % lines[1]
    assert lines[-1] == "", "the log does not end with a newline"
    body = lines[2:-1]
    assert len(body) % 2 == 0, "odd number of entry lines: %r" % body
    out = []
    for k in range(0, len(body), 2):
        desc, clock_line = body[k], body[k + 1]
        m = re.fullmatch(r"(\S*) (\{.*\})", clock_line)
        assert m, "not a `host {clock}` line: %r" % clock_line
        clock = json.loads(m.group(2))
        assert isinstance(clock, dict) and all(isinstance(v, int) and v >= 1 for v in clock.values()), clock_line
        out.append((desc, m.group(1), clock))
    return out


def check_shiviz_clocks(entries):
    """What ShiViz requires of the clocks: each host's own counter runs
    1, 2, 3... in file order; an entry for another host names an event of
    that host that is already in the file; a host's clocks only grow; and
    an event's clock covers the clock of every event it names."""
    seen = {}  # host -> clocks of its events so far, in order
    for desc, host, clock in entries:
        mine = seen.setdefault(host, [])
        assert clock.get(host) == len(mine) + 1, "%s: own counter %r, expected %d (%s)" % (
            host, clock.get(host), len(mine) + 1, desc)
        if mine:
            assert vc_leq(mine[-1], clock), "%s: clock went back: %r then %r" % (host, mine[-1], clock)
        for other, c in clock.items():
            if other == host:
                continue
            theirs = seen.get(other, [])
            assert c <= len(theirs), "%s names %s:%d, which is not (yet) in the log" % (desc, other, c)
            assert vc_leq(theirs[c - 1], clock), "%s does not cover the clock of %s:%d" % (desc, other, c)
        mine.append(clock)
    return seen


# ======================================================== the tests ====

def test_events_of_three_agents_arrive_in_order_with_growing_clocks(make_logger, make_agent):
    lg = make_logger()
    nodes = start_cluster(make_agent, 3, flags=("--logger-addr", lg.address))
    expected = {}  # node id -> [(kind, key, detail)] of the client operations, in order
    for a in nodes:
        i = a.node_id
        r = a.redis()
        ops = expected.setdefault(i, [])
        assert r.set("k%d" % i, "v%d" % i) is True
        ops.append(("PUT", "k%d" % i, "v%d" % i))
        assert r.get("k%d" % i) == b"v%d" % i
        ops.append(("GET", "k%d" % i, "v%d" % i))
        assert r.get("missing%d" % i) is None
        ops.append(("GET", "missing%d" % i, None))
        assert r.incr("n%d" % i) == 1
        ops.append(("INCR", "n%d" % i, "1"))
        assert r.set("k%d" % i, "w%d" % i) is True
        ops.append(("PUT", "k%d" % i, "w%d" % i))
        assert r.delete("k%d" % i) == 1
        ops.append(("DEL", "k%d" % i, None))
        r.close()

    def operations_logged():
        ev = by_node(lg.events())
        got = {i: [(e["kind"], e.get("key"), e.get("detail")) for e in ev.get(i, []) if e["kind"] in CLIENT_KINDS]
               for i in expected}
        return ev if got == expected else None

    ev = wait_until(operations_logged, DELIVERY_S, "every client operation at the logger")
    assert set(ev) == {1, 2, 3}, "events from unexpected nodes: %r" % sorted(ev)
    for i, evs in ev.items():
        assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1)), "node %d seq has gaps: %r" % (
            i, [e["seq"] for e in evs])
        assert {e["kind"] for e in evs} <= KINDS, "node %d: unknown kinds" % i
        for prev, cur in zip(evs, evs[1:]):
            assert cur["lamport"] > prev["lamport"], "node %d: Lamport time did not grow: %r -> %r" % (
                i, prev, cur)
            own = str(i)
            assert cur["vc"][own] > prev["vc"][own], "node %d: own vc entry did not grow: %r -> %r" % (
                i, prev, cur)
            assert vc_leq(prev["vc"], cur["vc"]), "node %d: vc went back: %r -> %r" % (i, prev, cur)
        for e in evs:
            assert str(i) in e["vc"] and e["ts_us"] > 0 and e["lamport"] >= 1
    # The agents agree with the logger about what was sent.
    for a in nodes:
        def delivered():
            info = events_info(a)
            held = len(by_node(lg.events())[a.node_id])
            return info if info["events_queued"] == 0 and info["events_sent"] == held else None
        info = wait_until(delivered, DELIVERY_S, "node %d events_sent to match the logger" % a.node_id)
        assert info["events_dropped"] == 0, info
        assert info["logger_failures"] == 0, info
        assert info["logger"] == lg.address, info
    # The text view lists the same events, one line each.
    # (Anti-entropy may still be logging: compare with the events held at
    # the moment the text was made.)
    def text_matches():
        before = len(lg.events())
        text = lg.trace("ORDER", "lamport")
        after = len(lg.events())
        lines = [l for l in text.split("\n") if re.match(r"^\[.*\] node\d+ #\d+ ", l)]
        return text.startswith("== Lamport order ==\n") and before == after == len(lines)

    wait_until(text_matches, DELIVERY_S, "the text view to list every event once")


def test_orders_layers_and_concurrent_writes_of_a_known_history(make_logger):
    lg = make_logger()
    load_history(lg)

    # Text views: exactly the documented lines.
    assert lg.trace("ORDER", "physical").split("\n") == (
        ["== physical order =="] + [text_line(HIST[i]) for i in PHYSICAL] + concurrent_text(CONCURRENT) + [""])
    assert lg.trace("ORDER", "lamport").split("\n") == (
        ["== Lamport order =="] + [text_line(HIST[i]) for i in LAMPORT] + concurrent_text(CONCURRENT) + [""])
    assert lg.trace("ORDER", "vector").split("\n") == (
        ["== causal layers =="] + layers_text(LAYERS) + concurrent_text(CONCURRENT) + [""])
    # No ORDER: Lamport, as the logger's default.
    assert lg.trace() == lg.trace("ORDER", "lamport")

    # JSON views: same orders, with layers and pairs as indices.
    check_json_view(lg.trace_json("ORDER", "physical"), "physical", PHYSICAL, LAYERS, CONCURRENT)
    check_json_view(lg.trace_json("ORDER", "lamport"), "lamport", LAMPORT, LAYERS, CONCURRENT)
    vec = lg.trace_json("ORDER", "vector")
    check_json_view(vec, "vector", [i for layer in LAYERS for i in layer], LAYERS, CONCURRENT)

    # Filters: another key has nothing; the last 3 (physical) are a window
    # whose predecessors are missing, so they start again at layer 1.
    empty = lg.trace_json("KEY", "y")
    assert empty["count"] == 0 and empty["events"] == [] and empty["concurrent_total"] == 0
    assert lg.trace("ORDER", "vector", "KEY", "y") == "== causal layers ==\nconcurrent writes: 0\n"
    win = lg.trace_json("ORDER", "lamport", "LAST", 3)
    assert [ident(e) for e in win["events"]] == [(103, 2), (102, 2), (102, 3)]
    assert [[ident(win["events"][k]) for k in layer] for layer in win["layers"]] == [[(102, 2), (103, 2)], [(102, 3)]]
    assert [(ident(win["events"][a]), ident(win["events"][b])) for a, b in win["concurrent"]] == [((102, 3), (103, 2))]

    # Bad arguments are errors, not silently a default view.
    with lg.conn() as c:
        assert c.call("TRACE", "ORDER", "causal") == RespError("ERR ORDER must be physical, lamport or vector")
        assert c.call("TRACE", "FORMAT", "xml") == RespError("ERR FORMAT must be text, json or shiviz")
        assert c.call("TRACE", "LAST", "-1") == RespError("ERR LAST must be a number of events")
        assert c.call("TRACE", "ORDER").startswith("ERR syntax")
        assert c.call("PING") == "PONG"


def test_orders_do_not_depend_on_arrival_order(make_logger):
    """Events of different nodes, and of one node, may arrive in any order
    (trace.h): the same history sent newest first, in two batches, gives
    the same views."""
    lg = make_logger()
    backwards = list(reversed(HISTORY))
    load_history(lg, backwards[:4])
    load_history(lg, backwards[4:])
    check_json_view(lg.trace_json("ORDER", "physical"), "physical", PHYSICAL, LAYERS, CONCURRENT)
    check_json_view(lg.trace_json("ORDER", "lamport"), "lamport", LAMPORT, LAYERS, CONCURRENT)
    check_json_view(lg.trace_json("ORDER", "vector"), "vector", [i for layer in LAYERS for i in layer], LAYERS,
                    CONCURRENT)
    assert lg.trace("ORDER", "vector").split("\n") == (
        ["== causal layers =="] + layers_text(LAYERS) + concurrent_text(CONCURRENT) + [""])


def test_trace_order_value_is_case_insensitive_like_format(make_logger):
    """BUG (reported): TRACE keywords and FORMAT values are matched
    case-insensitively (FORMAT JSON works), but ORDER values are not:
    TRACE ORDER VECTOR answers "ERR ORDER must be physical, lamport or
    vector"."""
    lg = make_logger()
    load_history(lg)
    assert lg.trace("format", "JSON", "order", "lamport") == lg.trace("FORMAT", "json", "ORDER", "lamport")
    r = lg.call("TRACE", "ORDER", "VECTOR")
    assert isinstance(r, bytes), "TRACE ORDER VECTOR answered %r" % (r,)
    assert r.decode() == lg.trace("ORDER", "vector")


def test_shiviz_export_has_regex_header_and_consistent_clocks(make_logger):
    lg = make_logger(http=True)
    load_history(lg)
    text = lg.trace("FORMAT", "shiviz")
    entries = parse_shiviz(text)
    seen = check_shiviz_clocks(entries)
    assert {h: len(c) for h, c in seen.items()} == {"node101": 2, "node102": 3, "node103": 2}
    # In Lamport order, with the documented descriptions and these clocks.
    assert [(d, h, c) for d, h, c in entries] == [
        ("PUT x v1 (node101#1 L=1)", "node101", {"node101": 1}),
        ("PUT x w1 (node103#1 L=1)", "node103", {"node103": 1}),
        ("REPL_SEND x v1 (node101#2 L=2 msg 101:2)", "node101", {"node101": 2}),
        ("PUT x w2 (node103#2 L=2)", "node103", {"node103": 2}),
        ("REPL_RECV x v1 (node102#1 L=3 msg 101:2)", "node102", {"node102": 1, "node101": 2}),
        ("GET x v1 (node102#2 L=4)", "node102", {"node102": 2, "node101": 2}),
        ("PUT x v3 (node102#3 L=5)", "node102", {"node102": 3, "node101": 2}),
    ]
    status, ctype, body = http_get(lg.url + "/shiviz.log")
    assert status == 200 and ctype.startswith("text/plain")
    assert body.decode() == text

    # A window (the last 4 in physical time) is renumbered: own counters
    # start at 1 again and 102's entry for 101 points at the send it saw.
    win = parse_shiviz(lg.trace("FORMAT", "shiviz", "LAST", 4))
    check_shiviz_clocks(win)
    assert [(h, c) for _, h, c in win] == [
        ("node101", {"node101": 1}), ("node103", {"node103": 1}),
        ("node102", {"node102": 1, "node101": 1}), ("node102", {"node102": 2, "node101": 1})]

    # A node whose queue dropped events (seq and own counter 2 and 5 only)
    # and a receiver whose clock names a tick that was never logged (104:4):
    # the entry points at the latest logged event at or before it.
    gaps = [
        dict(node=104, seq=2, vc={104: 2}, kind="PUT", lamport=20, ts_us=T0 + 9000, key="g", detail="a"),
        dict(node=104, seq=5, vc={104: 5}, kind="REPL_SEND", lamport=23, ts_us=T0 + 9100, key="g", msg="104:5"),
        dict(node=105, seq=1, vc={104: 4, 105: 1}, kind="REPL_RECV", lamport=24, ts_us=T0 + 9200, key="g",
             msg="104:4"),
    ]
    load_history(lg, gaps)
    g = parse_shiviz(lg.trace("FORMAT", "shiviz", "KEY", "g"))
    check_shiviz_clocks(g)
    assert [(h, c) for _, h, c in g] == [
        ("node104", {"node104": 1}), ("node104", {"node104": 2}), ("node105", {"node105": 1, "node104": 1})]
    check_shiviz_clocks(parse_shiviz(lg.trace("FORMAT", "shiviz")))


def test_http_routes(make_logger):
    import urllib.error
    import urllib.request
    lg = make_logger(http=True)
    load_history(lg)
    status, ctype, body = http_get(lg.url + "/")
    assert status == 200 and ctype.startswith("text/html"), (status, ctype)
    assert b'id="placement"' in body and b"/events.json" in body
    status, ctype, body = http_get(lg.url + "/events.json")
    assert status == 200 and ctype == "application/json"
    doc = json.loads(body)
    check_json_view(doc, "lamport", LAMPORT, LAYERS, CONCURRENT)
    assert json.loads(http_get(lg.url + "/events.json?key=y")[2])["count"] == 0
    assert json.loads(http_get(lg.url + "/events.json?key=x")[2]) == doc
    for path, method, code in (("/nope", "GET", 404), ("/events.json", "POST", 405)):
        req = urllib.request.Request(lg.url + path, method=method, data=b"" if method == "POST" else None)
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=5)
        assert ei.value.code == code, (path, method, ei.value.code)


def test_restarted_logger_keeps_its_history_and_appends(make_logger, make_agent):
    lg = make_logger()
    a = make_agent("--logger-addr", lg.address, node_id=7)
    r = a.redis()
    for k in range(5):
        r.set("before%d" % k, str(k))
    load_history(lg)
    wait_until(lambda: len([e for e in lg.events() if e["node"] == 7 and e["kind"] == "PUT"]) == 5,
               DELIVERY_S, "the 5 PUTs at the logger")
    before = lg.events()
    count_before = lg.info()["events"]
    assert count_before == len(before) == 5 + len(HISTORY) + len([e for e in before if e["kind"] == "MEMBER"])
    with open(lg.log_file) as f:
        assert len(f.read().splitlines()) == count_before

    assert lg.stop() == 0
    # While it is down, the agent keeps answering and queues its events.
    for k in range(3):
        assert r.set("during%d" % k, str(k)) is True
    wait_until(lambda: events_info(a)["events_queued"] >= 3, 5, "events queued while the logger is down")

    lg.start()
    info = lg.info()
    assert info["loaded_from_file"] == count_before and info["file_lines_skipped"] == 0, info
    after_restart = lg.events()
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731
    strip = lambda evs: sorted(key({k: v for k, v in e.items() if k != "layer"}) for e in evs)  # noqa: E731
    # Right after the restart, before the agent's retry lands, nothing is
    # lost; afterwards the queued events append.
    assert set(strip(before)) <= set(strip(after_restart))
    wait_until(lambda: lg.info()["events"] == count_before + 3, DELIVERY_S, "the 3 queued PUTs after restart")
    after = lg.events()
    assert set(strip(before)) < set(strip(after))
    mine = [e for e in by_node(after)[7]]
    assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))
    assert [(e["key"], e["detail"]) for e in mine if e["kind"] == "PUT"][-3:] == [
        ("during0", "0"), ("during1", "1"), ("during2", "2")]
    wait_until(lambda: events_info(a)["events_queued"] == 0, 5, "the agent's queue to drain")

    # A replayed old event is a duplicate even though it came from the file.
    with lg.conn() as c:
        assert c.call("LOG.EVENTS", history_batch(HISTORY[:2])) == "OK"
    assert lg.info()["events"] == count_before + 3
    # A new one is appended to the file.
    new = dict(node=103, seq=3, vc={103: 3}, kind="DEL", lamport=3, ts_us=T0 + 6000, key="x")
    load_history(lg, [new])
    assert lg.info()["events"] == count_before + 4
    with open(lg.log_file) as f:
        lines = f.read().splitlines()
    assert len(lines) == count_before + 4
    assert json.loads(lines[-1]) == json.loads(event_line(**new))
    r.close()

    # And a second restart still has all of them.
    lg.restart()
    assert lg.info()["events"] == count_before + 4
    assert strip(lg.events()) == sorted(strip(after) + [key(json.loads(event_line(**new)))])


def test_seq_numbers_continue_after_an_agent_restart(make_logger, make_agent):
    """A node's seq (its own clock entry) must never be reused, or the
    logger drops the next life's events as duplicates and two events share
    one vector time. events.c says so ("the event's tick must survive a
    restart"). Checked across SIGTERM and across kill -9.

    BUG (reported) for kill -9: a GET (or MEMBER) event ticks the clock
    but opens no write batch, so the tick is only persisted by a later
    commit; the events leave for the logger before that. Killed then, the
    node restarts at the last committed clock and reuses those seqs."""
    lg = make_logger()
    a = make_agent("--logger-addr", lg.address, node_id=4)

    def commits():
        return parse_info(a.call("INFO", "persistence"))["commits"]

    def held():
        return [(e["seq"], e["kind"]) for e in by_node(lg.events()).get(4, [])]

    def settle(n):
        # Let the start-up commits pass, so that none of them happens to
        # persist the ticks below: a fresh node saves its first clock and
        # its gossip incarnation (2); a restarted one at least the new
        # incarnation (1; other start-up saves may share its commit).
        wait_until(lambda: commits() >= n, 5, "the agent's start-up commits")

    settle(2)
    assert a.call("SET", "a", "1") == "OK"
    for _ in range(3):
        assert a.call("GET", "a") == b"1"
    wait_until(lambda: len(held()) == 4, DELIVERY_S, "the first life's 4 events")
    assert a.stop() == 0
    a.start()
    settle(1)
    assert a.call("GET", "a") == b"1"
    wait_until(lambda: len(held()) == 5, DELIVERY_S, "the GET after a SIGTERM restart")
    assert held() == [(1, "PUT"), (2, "GET"), (3, "GET"), (4, "GET"), (5, "GET")]

    for _ in range(2):
        assert a.call("GET", "a") == b"1"
    wait_until(lambda: len(held()) == 7, DELIVERY_S, "two more GETs")
    commits_before_kill = commits()
    a.kill9()
    a.start()
    for _ in range(2):
        assert a.call("GET", "a") == b"1"
    wait_until(lambda: events_info(a)["events_sent"] == 2, DELIVERY_S, "the restarted agent to send its 2 GETs")
    info = lg.info()
    assert held() == [(1, "PUT")] + [(k, "GET") for k in range(2, 10)] and info["duplicates"] == 0, (
        "after kill -9 the node reused seq numbers: logger holds %r, duplicates %d (agent commits before "
        "the kill: %d)" % (held(), info["duplicates"], commits_before_kill))


MALFORMED = [
    ("bad JSON", '{"node":201,"seq":1,', "line 1"),
    ("missing field", json.dumps({"node": 201, "seq": 1, "ts_us": 1, "lamport": 1, "kind": "PUT"}), '"vc"'),
    ("wrong type", json.dumps({"node": 201, "seq": "1", "ts_us": 1, "lamport": 1, "vc": {"201": 1},
                               "kind": "PUT"}), '"seq"'),
    ("vc without own node", event_line(201, 1, {202: 1}, "PUT", 1, T0), "own node"),
    ("unknown kind", event_line(201, 1, {201: 1}, "JUMP", 1, T0), '"kind"'),
    ("key too long", event_line(201, 1, {201: 1}, "PUT", 1, T0, key="k" * 513), "key"),
    ("array, not object", "[1,2,3]", "line 1"),
    ("one good line, then a bad one", event_line(201, 1, {201: 1}, "PUT", 1, T0) + "\n" +
     event_line(201, 2, {201: 2}, "PUT", 2, T0, key=7), "line 2"),
]


def test_malformed_batches_are_rejected_whole_and_the_logger_keeps_serving(make_logger):
    lg = make_logger()
    load_history(lg)
    before = lg.events()
    rejected = lg.info()["batches_rejected"]
    for name, batch, mention in MALFORMED:
        with lg.conn() as c:
            r = c.call("LOG.EVENTS", batch)
            assert isinstance(r, RespError) and r.startswith("ERR malformed batch: "), (name, r)
            assert mention in r.message, (name, r)
            assert c.wait_closed(5), "%s: the connection stayed open after a rejected batch" % name
        rejected += 1
        assert lg.info()["batches_rejected"] == rejected, name
        with lg.conn() as c:
            assert c.call("PING") == "PONG"
    assert lg.running()
    # Nothing of a rejected batch was kept (not even its good first line).
    assert lg.events() == before
    assert lg.trace("ORDER", "vector").startswith("== causal layers ==\nlayer 1: ")
    with open(lg.log_file) as f:
        assert len(f.read().splitlines()) == len(HISTORY)


def test_duplicate_events_are_stored_once(make_logger):
    lg = make_logger()
    load_history(lg)
    dups = lg.info()["duplicates"]
    with lg.conn() as c:
        # The same batch again (a node's retry after a lost reply) ...
        assert c.call("LOG.EVENTS", history_batch()) == "OK"
        # ... and one (node, seq) twice inside one batch.
        twice = dict(node=104, seq=1, vc={104: 1}, kind="PUT", lamport=1, ts_us=T0, key="d", detail="a")
        assert c.call("LOG.EVENTS", history_batch([twice, dict(twice, detail="b")])) == "OK"
        assert c.call("PING") == "PONG"  # the connection stays usable
    info = lg.info()
    assert info["events"] == len(HISTORY) + 1, info
    assert info["duplicates"] == dups + len(HISTORY) + 1, info
    held = [e for e in lg.events() if e["node"] == 104]
    assert len(held) == 1 and held[0]["detail"] == "a", held
    assert sorted(ident(e) for e in lg.events()) == sorted(list(HIST) + [(104, 1)])
    with open(lg.log_file) as f:
        assert len(f.read().splitlines()) == len(HISTORY) + 1


def test_log_events_with_wrong_arity_says_so(make_logger):
    """BUG (reported): LOG.EVENTS with no batch or two arguments answers
    "ERR unknown logger command 'LOG.EVENTS' (try TRACE, INFO, PING)": the
    command exists, the argument count is what is wrong, and STYLE.md asks
    for errors that say what was wrong."""
    lg = make_logger()
    with lg.conn() as c:
        for args in (("LOG.EVENTS",), ("LOG.EVENTS", "a", "b")):
            r = c.call(*args)
            assert isinstance(r, RespError), r
            assert "unknown" not in r.message and "argument" in r.message, (args, r)


def test_dmkv_trace_cli_output_and_exit_codes(make_logger):
    lg = make_logger()
    load_history(lg)
    p = run_dmkv("trace", "--logger", lg.address, "--order", "vector", "--last", 5)
    assert p.returncode == 0, p
    # The last 5 in physical time: 102#1, 101#2, 102#2, 102#3, 103#2.
    assert p.stdout.decode().rstrip("\n").split("\n") == (
        ["== causal layers =="] + layers_text([[(101, 2), (103, 2)], [(102, 1)], [(102, 2)], [(102, 3)]])
        + concurrent_text([((102, 3), (103, 2))]))
    assert p.stderr == b""

    p = run_dmkv("trace", "--logger", lg.address, "--order", "physical", "--format", "json", "--key", "x")
    assert p.returncode == 0, p
    assert [ident(e) for e in json.loads(p.stdout)["events"]] == PHYSICAL

    p = run_dmkv("trace", "--logger", lg.address, "--format", "shiviz")
    assert p.returncode == 0, p
    check_shiviz_clocks(parse_shiviz(p.stdout.decode().rstrip("\n") + "\n"))

    # The order is checked by the logger, which answers an error: exit 1.
    p = run_dmkv("trace", "--logger", lg.address, "--order", "sideways")
    assert (p.returncode, p.stdout, p.stderr) == (
        1, b"", b"(error) ERR ORDER must be physical, lamport or vector\n"), p

    # Nothing listens: exit 3, and a message naming the address.
    port = free_port()
    p = run_dmkv("trace", "--logger", "127.0.0.1:%d" % port)
    assert p.returncode == 3, p
    assert ("127.0.0.1:%d" % port).encode() in p.stderr, p
    # A malformed address is bad usage: exit 2.
    p = run_dmkv("trace", "--logger", "nowhere")
    assert p.returncode == 2, p
    assert lg.running()


# ------------------------------------------------------ non-blocking ----

PUTS = 2000
WARMUP = 200
ROUNDS = 5


class SilentListener:
    """A TCP listener that accepts every connection and never reads: the
    logger that hangs. Accepted sockets stay open until close()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_listener():
    s = SilentListener()
    yield s
    s.close()


def put_p99_ms(agent, tag):
    """p99 of PUTS sequential SETs over one redis-py connection, in ms."""
    r = agent.redis(socket_timeout=10)
    for k in range(WARMUP):
        r.set("warm%d" % k, "v")
    lat = []
    for k in range(PUTS):
        t = time.perf_counter_ns()
        r.set("%s:%d" % (tag, k), "value-%d" % k)
        lat.append(time.perf_counter_ns() - t)
    r.close()
    lat.sort()
    return lat[int(len(lat) * 0.99) - 1] / 1e6, lat[len(lat) // 2] / 1e6


def test_slow_or_absent_logger_does_not_slow_puts(make_agent, silent_listener):
    dead_port = free_port()  # nothing listens there
    agents = {
        "a: no logger": make_agent(name="nolog", node_id=1),
        "b: refused": make_agent("--logger-addr", "127.0.0.1:%d" % dead_port, name="refused", node_id=2),
        "c: never reads": make_agent("--logger-addr", "127.0.0.1:%d" % silent_listener.port, name="silent",
                                     node_id=3),
    }
    p99 = {name: [] for name in agents}
    p50 = {name: [] for name in agents}
    names = list(agents)
    for rnd in range(ROUNDS):  # interleaved, rotating, so drift hits all three alike
        for name in names[rnd % 3:] + names[:rnd % 3]:
            hi, mid = put_p99_ms(agents[name], "r%d" % rnd)
            p99[name].append(hi)
            p50[name].append(mid)
    med = {name: statistics.median(v) for name, v in p99.items()}
    print("\nPUT latency over %d sequential SETs x %d rounds (ms):" % (PUTS, ROUNDS))
    for name in names:
        print("  %-16s p99 %s  median p99 %.3f  p50 %s" % (
            name, " ".join("%.3f" % v for v in p99[name]), med[name], " ".join("%.3f" % v for v in p50[name])))

    base = med["a: no logger"]
    for name in names[1:]:
        assert med[name] <= base * 1.10 + 1.0, "%s: p99 %.3f ms vs %.3f ms without a logger" % (
            name, med[name], base)

    total = ROUNDS * (PUTS + WARMUP)
    b = events_info(agents["b: refused"])
    c = events_info(agents["c: never reads"])
    print("  b INFO events: %r\n  c INFO events: %r\n  silent listener accepted %d connection(s)" % (
        b, c, len(silent_listener.accepted)))
    assert b["events_sent"] == 0 and b["logger_failures"] >= 1, b
    assert b["events_queued"] + b["events_dropped"] == b["events_total"] >= total, b
    # The hung logger took the connection and never answered: every event
    # is still queued (or dropped), none counted as sent, none slowed a PUT.
    assert len(silent_listener.accepted) >= 1
    assert c["events_sent"] == 0, c
    assert c["events_queued"] + c["events_dropped"] == c["events_total"] >= total, c
    assert c["events_queued_bytes"] > 0 or c["events_dropped"] > 0, c
    # The agents still answer at once.
    for a in agents.values():
        with a.conn(timeout=2) as conn:
            assert conn.call("PING", timeout=2) == "PONG"


def test_events_queue_is_bounded_and_drains_when_the_logger_appears(make_agent, make_logger):
    """With the logger away, the agent queues up to its byte bound
    (8 MiB), then drops and counts; once a logger listens on the address,
    the queue drains and the logger holds exactly what was not dropped."""
    port = free_port()
    a = make_agent("--logger-addr", "127.0.0.1:%d" % port, node_id=9)
    r = a.redis(socket_timeout=30)
    big_key = "k" * 400
    value = "v" * 256  # the agent keeps at most 256 bytes of detail
    n = 12000          # ~12000 x ~800 bytes of JSON: well past 8 MiB
    pipe = r.pipeline(transaction=False)
    for k in range(n):
        pipe.set("%s%06d" % (big_key, k), value)
        if k % 1000 == 999:
            assert all(x is True for x in pipe.execute())
    info = events_info(a)
    print("\nafter %d PUTs with no logger: %r" % (n, info))
    assert info["events_total"] == n and info["events_sent"] == 0, info
    assert info["events_dropped"] > 0, "12000 large events did not overflow the 8 MiB queue: %r" % info
    assert info["events_queued"] + info["events_dropped"] == n, info
    assert info["events_queued_bytes"] <= (8 << 20) + 4096, info
    with a.conn(timeout=2) as c:
        assert c.call("PING", timeout=2) == "PONG"

    lg = make_logger(port=port)
    queued = info["events_queued"]
    wait_until(lambda: events_info(a)["events_queued"] == 0, DELIVERY_S, "the queue to drain into the logger")
    after = events_info(a)
    assert after["events_sent"] == queued and after["events_dropped"] == info["events_dropped"], after
    held = [e for e in lg.events() if e["node"] == 9]
    assert len(held) == queued
    # The oldest events were kept and the newest dropped: seq 1..queued.
    assert sorted(e["seq"] for e in held) == list(range(1, queued + 1))
    r.close()


def test_logger_file_with_a_torn_last_line_keeps_later_events(make_logger):
    """BUG (reported). A logger killed in the middle of a write leaves a last line without
    its newline. The next life skips that line (file_lines_skipped) and
    must not glue its first new event onto it, or that event is lost at
    the restart after."""
    lg = make_logger()
    load_history(lg, HISTORY[:3])
    lg.stop()
    with open(lg.log_file, "a") as f:
        f.write('{"node":150,"seq":1,"ts_us":17')  # torn: no newline
    lg.start()
    info = lg.info()
    assert info["events"] == 3 and info["file_lines_skipped"] == 1, info
    load_history(lg, HISTORY[3:])
    assert lg.info()["events"] == len(HISTORY)
    lg.restart()
    info = lg.info()
    assert sorted(ident(e) for e in lg.events()) == sorted(HIST), (
        "events sent after a torn line were lost at the next restart; INFO %r; file tail %r" % (
            info, open(lg.log_file).read()[-400:]))


def test_binary_key_with_nul_is_not_logged_as_another_key(make_logger, make_agent):
    """BUG (reported). Keys are binary-safe. A write to "a\\x00b" must not be logged as a
    write to key "a" (the agent copies the key as a C string): the logger
    would then report a concurrent write with node 2's PUT of "a"."""
    lg = make_logger()
    n1 = make_agent("--logger-addr", lg.address, node_id=1, name="n1")
    n2 = make_agent("--logger-addr", lg.address, node_id=2, name="n2")
    assert n1.call("SET", b"a\x00b", "one") == "OK"
    assert n2.call("SET", "a", "two") == "OK"
    evs = wait_until(lambda: (lambda e: e if len(e) == 2 else None)(
        [e for e in lg.events() if e["kind"] == "PUT"]), DELIVERY_S, "both PUTs at the logger")
    keys = {e["node"]: e["key"] for e in evs}
    doc = lg.trace_json("KEY", "a")
    assert keys[1] != "a" and doc["concurrent_total"] == 0, (
        "node 1's PUT of b'a\\x00b' was logged with key %r; TRACE KEY a reports %d concurrent write(s)" % (
            keys[1], doc["concurrent_total"]))


# ------------------------------------------------ query arguments ----
#
# TRACE's arguments and the HTTP query parameters are read by one function
# (src/logger/query.c): the same values are refused the same way, a
# refusal says why, and nothing is cut down into an accepted value.


def http_status(url, timeout=5):
    """GET url -> (status, content type, body), error statuses included."""
    import urllib.error
    try:
        return http_get(url, timeout)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers.get("Content-Type", ""), e.read()


def test_trace_refuses_bad_last_long_key_and_nul_bytes_and_the_connection_stays_usable(make_logger):
    lg = make_logger()
    load_history(lg)
    at_most = "ERR LAST must be at most 100000000 events"
    with lg.conn() as c:
        for args, want in (
                (("LAST", "9" * 70), at_most),
                (("LAST", "100000001"), at_most),
                (("LAST", "18446744073709551616"), at_most),  # 2^64 would wrap a size_t
                (("LAST", "3x"), "ERR LAST must be a number of events"),
                (("LAST", " 3"), "ERR LAST must be a number of events"),
                (("KEY", "k" * 513), "ERR key too long (513 bytes; KEY is at most 512 bytes)"),
                (("KEY", b"x\x00y"), "ERR KEY holds a NUL byte"),
                (("ORDER", b"lamport\x00junk"), "ERR ORDER holds a NUL byte"),
                (("ORDER", "lamport" + "x" * 60), "ERR ORDER must be physical, lamport or vector"),
                (("FORMAT", b"json\x00"), "ERR FORMAT holds a NUL byte"),
                (("ORDER", "vector", "ORDER", "lamport"), "ERR ORDER given twice")):
            assert c.call("TRACE", *args) == RespError(want), args
            assert c.call("PING") == "PONG", args
        r = c.call("TRACE", "LIMIT", "3")
        assert isinstance(r, RespError) and r.startswith("ERR syntax: unknown argument 'LIMIT'"), r
        # The same connection answers valid queries, the largest key and LAST included.
        doc = json.loads(c.call("TRACE", "FORMAT", "json", "LAST", "3"))
        assert doc["count"] == 3 and len(doc["events"]) == 3
        assert json.loads(c.call("TRACE", "FORMAT", "json", "KEY", "k" * 512, "LAST", "100000000")) == (
            lg.trace_json("KEY", "nothing"))
        assert json.loads(c.call("TRACE", "FORMAT", "json", "LAST", "100000000")) == lg.trace_json()
    assert lg.running()


def test_http_query_parameters_are_checked_like_trace_arguments(make_logger):
    from urllib.parse import quote
    lg = make_logger(http=True)
    load_history(lg)
    ev = lg.url + "/events.json"

    def refused(path, mention):
        status, ctype, body = http_status(lg.url + path)
        text = body.decode("utf-8", "replace")
        assert status == 400 and ctype.startswith("text/plain"), (path, status, ctype, text)
        assert text.startswith("bad query: ") and text.endswith("\n") and text.count("\n") == 1, (path, text)
        assert mention in text, (path, text)

    refused("/events.json?key=" + "k" * 513, "key too long (513 bytes")
    refused("/events.json?order=bogus", "ORDER must be physical, lamport or vector")
    refused("/events.json?order=lamport%00junk", "ORDER holds a NUL byte")
    refused("/events.json?key=x%00y", "KEY holds a NUL byte")
    refused("/events.json?last=" + "9" * 70, "LAST must be at most 100000000 events")
    refused("/events.json?last=-1", "LAST must be a number of events")
    refused("/events.json?key", "KEY needs a value")
    refused("/events.json?limit=3", "unknown argument 'limit'")
    refused("/events.json?format=json", "format is set by the path")
    refused("/events.json?order=vector&order=lamport", "ORDER given twice")
    refused("/shiviz.log?last=x", "LAST must be a number of events")
    refused("/shiviz.log?format=shiviz", "format is set by the path")

    # The page's own request, and an empty last or last=0: every event
    # (up to the endpoint's cap of 5000).
    doc = json.loads(http_get(ev)[2])
    check_json_view(doc, "lamport", LAMPORT, LAYERS, CONCURRENT)
    assert json.loads(http_get(ev + "?last=0")[2]) == doc
    # last=3: at most 3 events, the same as TRACE LAST 3.
    win = json.loads(http_get(ev + "?last=3")[2])
    assert win["count"] == 3 and len(win["events"]) == 3
    assert win == lg.trace_json("LAST", 3)
    # order, any case, in the name and in the value.
    assert json.loads(http_get(ev + "?Order=VECTOR")[2]) == lg.trace_json("ORDER", "vector")
    # The key filter still works, alone and combined.
    assert json.loads(http_get(ev + "?key=x")[2]) == doc
    assert json.loads(http_get(ev + "?key=y")[2])["count"] == 0
    assert json.loads(http_get(ev + "?key=" + "k" * 512)[2])["count"] == 0
    both = json.loads(http_get(ev + "?key=x&order=physical&last=2")[2])
    assert [ident(e) for e in both["events"]] == PHYSICAL[-2:]
    odd = dict(node=106, seq=1, vc={106: 1}, kind="PUT", lamport=1, ts_us=T0 + 7000, key="a b&c=d/é",
               detail="v")
    load_history(lg, [odd])
    only = json.loads(http_get(ev + "?key=" + quote(odd["key"], safe=""))[2])
    assert [ident(e) for e in only["events"]] == [(106, 1)]
    # /shiviz.log takes the same parameters.
    text = http_get(lg.url + "/shiviz.log?last=4&key=x")[2].decode()
    assert text == lg.trace("FORMAT", "shiviz", "LAST", 4, "KEY", "x")
    check_shiviz_clocks(parse_shiviz(text))
    assert lg.running()
