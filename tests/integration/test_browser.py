"""The logger's space-time page in a real browser: headless Chromium loads
http://127.0.0.1:<http port>/ of a logger fed by a live 3-node cluster
(plus an injected batch with messages, so there are arrows), and the DOM
it renders after its fetch of /events.json must match that document: one
lane per node, one circle per event at its node's lane and its rank in
physical time, one arrow per (send, receive) pair of a message starting
at the send, and the concurrent-write pairs highlighted. A screenshot is
saved in the test's tmp dir (and copied to $DMKV_ARTIFACTS when set).

Chromium is Debian's /usr/bin/chromium, installed by scripts/deps.sh; a
missing browser is a failure that says so, not a skip.
"""
import collections
import html.parser
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import event_line, http_get, members, parse_info, start_cluster, wait_until  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--mute-audio"]
BROWSER_TIMEOUT_S = 60
VIRTUAL_TIME_MS = 5000

# Geometry of page.c: lanes LANE_H apart from TOP, events STEP apart from LEFT.
LANE_H, LEFT, TOP, STEP = 56, 84, 30, 30


def chromium_path():
    for cand in (os.environ.get("DMKV_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if cand and os.access(cand, os.X_OK):
            return cand
    pytest.fail("chromium is not installed: run scripts/deps.sh (it installs Debian's chromium package), "
                "or point $DMKV_CHROMIUM at a Chromium binary", pytrace=False)


def run_chromium(tmp_path, url, *extra):
    """Runs headless Chromium to completion in its own session, with a
    fresh profile and HOME under tmp_path. On timeout its whole process
    group (the one it was started in, by its pid) is killed."""
    prof = tmp_path / "chromium-profile"
    home = tmp_path / "chromium-home"
    prof.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"))
    cmd = [chromium_path()] + CHROMIUM_FLAGS + ["--user-data-dir=%s" % prof] + list(extra) + [url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=BROWSER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate(timeout=10)
        raise AssertionError("chromium did not finish within %ds: %s" % (BROWSER_TIMEOUT_S, " ".join(cmd)))
    finally:
        try:  # helpers it left behind in its group (it normally leaves none)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert p.returncode == 0, "chromium exited with %d:\n%s" % (p.returncode, err.decode("utf-8", "replace")[-3000:])
    return out


class DomCollector(html.parser.HTMLParser):
    """The elements the page draws: lanes, event circles, arrows, the
    placement button and the status line's text."""

    def __init__(self):
        super().__init__()
        self.lanes, self.circles, self.arrows, self.buttons = [], [], [], {}
        self.status = ""
        self._in_status = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "g" and "lane" in classes:
            self.lanes.append(a)
        elif tag == "circle" and "event" in classes:
            self.circles.append(a)
        elif tag == "line" and "arrow" in classes:
            self.arrows.append(a)
        elif tag == "button" and a.get("id"):
            self.buttons[a["id"]] = a
        if tag == "span" and a.get("id") == "status":
            self._in_status = 1
        elif self._in_status and tag == "span":
            self._in_status += 1

    def handle_endtag(self, tag):
        if self._in_status and tag == "span":
            self._in_status -= 1

    def handle_data(self, data):
        if self._in_status:
            self.status += data


def expected_arrows(events):
    """(msg, send index, receive index) for every arrow, as page.c pairs
    them: from each REPL_SEND to every other event with the same msg; a
    message without its send starts at its earliest event in Lamport time."""
    by_msg = collections.OrderedDict()
    for i, e in enumerate(events):
        if "msg" in e:
            by_msg.setdefault(e["msg"], []).append(i)
    out = []
    for msg, members_ in by_msg.items():
        sends = [i for i in members_ if events[i]["kind"] == "REPL_SEND"]
        if not sends:
            sends = [min(members_, key=lambda i: (events[i]["lamport"], members_.index(i)))]
        out += [(msg, s, t) for s in sends for t in members_ if t not in sends]
    return out


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def injected_messages(now_us):
    """Fake nodes 101..103: 101 sends "101:2" to 102, then broadcasts
    "101:3" to 102 and 103; 103 also writes key x concurrently with
    everyone. Clocks follow dmkv's rules (own entry +1 per event, merge on
    receive)."""
    ev = [
        dict(node=101, seq=1, vc={101: 1}, kind="PUT", lamport=1, key="m", detail="1"),
        dict(node=101, seq=2, vc={101: 2}, kind="REPL_SEND", lamport=2, key="m", detail="1", msg="101:2"),
        dict(node=102, seq=1, vc={101: 2, 102: 1}, kind="REPL_RECV", lamport=3, key="m", detail="1", msg="101:2"),
        dict(node=101, seq=3, vc={101: 3}, kind="REPL_SEND", lamport=3, key="m", detail="1", msg="101:3"),
        dict(node=102, seq=2, vc={101: 3, 102: 2}, kind="REPL_RECV", lamport=4, key="m", detail="1", msg="101:3"),
        dict(node=103, seq=1, vc={101: 3, 103: 1}, kind="REPL_RECV", lamport=4, key="m", detail="1", msg="101:3"),
        dict(node=103, seq=2, vc={101: 3, 103: 2}, kind="PUT", lamport=5, key="x", detail="fake"),
    ]
    return "\n".join(event_line(ts_us=now_us + 1000 * k, **e) for k, e in enumerate(ev)) + "\n", len(ev)


@pytest.fixture
def fed_logger(make_logger, make_agent):
    """A logger with HTTP, three live agents streaming to it, client
    operations (x written on nodes 1 and 2), and an injected batch with
    messages and a PUT x concurrent with the live ones. Returns the
    logger once every event is in and the history has stopped changing."""
    lg = make_logger(http=True)
    nodes = start_cluster(make_agent, 3, flags=("--logger-addr", lg.address))

    def converged():
        for a in nodes:
            try:
                view = members(a, timeout=2)
            except (OSError, TimeoutError, AssertionError):
                return False
            if set(view) != {1, 2, 3} or any(m["state"] != "alive" for m in view.values()):
                return False
        return True
    wait_until(converged, 15, "the 3 agents to see each other alive")
    nodes[0].call("SET", "x", "from-1")
    nodes[1].call("SET", "x", "from-2")
    nodes[2].call("GET", "x")
    nodes[2].call("INCR", "hits")
    nodes[0].call("GET", "x")
    batch, n_injected = injected_messages(int(time.time() * 1e6))
    with lg.conn() as c:
        assert c.call("LOG.EVENTS", batch) == "OK"

    def all_delivered():
        infos = [parse_info(a.call("INFO", "events")) for a in nodes]
        if any(i["events_queued"] for i in infos):
            return False
        return lg.info()["events"] == sum(i["events_sent"] for i in infos) + n_injected
    wait_until(all_delivered, 15, "every agent's events at the logger")
    return lg


def events_doc(lg):
    status, ctype, body = http_get(lg.url + "/events.json")
    assert status == 200 and ctype.startswith("application/json"), (status, ctype)
    return body, json.loads(body)


def render(lg, tmp_path):
    """The page's DOM after its fetches, and the /events.json it drew from
    (read before and after the browser; retried if the history moved)."""
    for _ in range(3):
        before, doc = events_doc(lg)
        dom = run_chromium(tmp_path, lg.url + "/", "--virtual-time-budget=%d" % VIRTUAL_TIME_MS, "--dump-dom")
        after, _ = events_doc(lg)
        if before == after:
            return dom.decode("utf-8"), doc
    raise AssertionError("the logger's history kept changing while the page was rendered")


def test_page_draws_one_lane_per_node_one_circle_per_event_and_the_arrows(fed_logger, tmp_path):
    lg = fed_logger
    dom_text, doc = render(lg, tmp_path)
    (tmp_path / "page-dom.html").write_text(dom_text)
    events = doc["events"]
    dom = DomCollector()
    dom.feed(dom_text)
    print("\n/events.json: %d events, %d nodes, %d concurrent pairs; DOM: %d lanes, %d circles, %d arrows" % (
        len(events), len({e["node"] for e in events}), doc["concurrent_total"],
        len(dom.lanes), len(dom.circles), len(dom.arrows)))

    # The JSON the page reads is the logger's JSON view.
    assert doc["order"] == "lamport" and doc["count"] == len(events)
    assert json.loads(lg.trace("ORDER", "lamport", "FORMAT", "json", "LAST", 5000)) == doc

    # One lane per node, in increasing node order.
    nodes = sorted({e["node"] for e in events})
    assert {1, 2, 3, 101, 102, 103} <= set(nodes), nodes
    assert [int(g["data-node"]) for g in dom.lanes] == nodes

    # One circle per event, on its node's lane, at the rank of its time
    # among the distinct physical times (the initial placement).
    assert len(dom.circles) == len(events)
    assert sorted(int(c["data-index"]) for c in dom.circles) == list(range(len(events)))
    ranks = {t: k for k, t in enumerate(sorted({e["ts_us"] for e in events}))}
    lane = {n: k for k, n in enumerate(nodes)}
    at = {}
    for c in dom.circles:
        i = int(c["data-index"])
        e = events[i]
        assert (int(c["data-node"]), int(c["data-seq"])) == (e["node"], e["seq"]), (c, e)
        assert float(c["cx"]) == LEFT + ranks[e["ts_us"]] * STEP, (c, e)
        assert float(c["cy"]) == TOP + lane[e["node"]] * LANE_H, (c, e)
        at[i] = (float(c["cx"]), float(c["cy"]))
        kind_class = {"REPL_SEND": "send", "REPL_RECV": "recv"}.get(
            e["kind"], "data" if e["kind"] in ("PUT", "DEL", "INCR", "APPLY_LOCAL", "GET") else "other")
        assert kind_class in c["class"].split(), (c, e)

    # One arrow per (send, receive) pair with the same msg, leaving the send.
    want = expected_arrows(events)
    injected = [w for w in want if w[0].startswith("101:")]
    assert len(injected) == 3, want  # 101:2 -> 102, 101:3 -> 102 and 103
    # The live cluster replicates its writes: each PUT's batch is one send
    # and one receive at each of the two other nodes.
    live = [w for w in want if not w[0].startswith("101:")]
    assert len(live) >= 2, want
    assert collections.Counter(a["data-msg"] for a in dom.arrows) == collections.Counter(m for m, _, _ in want)
    starts = collections.Counter((a["data-msg"], float(a["x1"]), float(a["y1"])) for a in dom.arrows)
    assert starts == collections.Counter((m, at[s][0], at[s][1]) for m, s, _ in want)
    for a in dom.arrows:  # and each ends near one of the message's receives (cut short by the head)
        ends = [at[t] for m, _, t in want if m == a["data-msg"]]
        assert any(abs(float(a["x2"]) - x) <= 10 and abs(float(a["y2"]) - y) <= 10 for x, y in ends), a

    # Concurrent writes: both events of every listed pair, and only those.
    assert doc["concurrent_total"] >= 1 and doc["concurrent"], doc["concurrent"]
    pairs = {(events[a]["node"], events[b]["node"], events[a]["key"]) for a, b in doc["concurrent"]}
    # The injected PUT x of node 103 saw none of the live nodes' writes.
    assert {(1, 103, "x"), (2, 103, "x")} <= pairs, pairs
    flagged = {int(c["data-index"]) for c in dom.circles if "concurrent" in c["class"].split()}
    assert flagged == {i for p in doc["concurrent"] for i in p}

    # The placement button starts in physical mode; the status line counts.
    assert dom.buttons.get("placement", {}).get("data-mode") == "physical", dom.buttons
    assert dom.status.startswith("%d events on %d nodes, %d causal layers, %d concurrent write pairs" % (
        len(events), len(nodes), len(doc["layers"]), doc["concurrent_total"])), dom.status


def test_page_screenshot(fed_logger, tmp_path):
    shot = tmp_path / "dmkv-trace-page.png"
    run_chromium(tmp_path, fed_logger.url + "/", "--virtual-time-budget=%d" % VIRTUAL_TIME_MS,
                 "--hide-scrollbars", "--window-size=1400,900", "--screenshot=%s" % shot)
    assert shot.exists(), "chromium wrote no screenshot"
    assert png_size(shot) == (1400, 900)
    assert shot.stat().st_size > 5000, "screenshot suspiciously small (%d bytes)" % shot.stat().st_size
    print("\nscreenshot: %s" % shot)
    dest = os.environ.get("DMKV_ARTIFACTS")
    if dest:
        os.makedirs(dest, exist_ok=True)
        copy = shutil.copy(str(shot), os.path.join(dest, shot.name))
        print("copied to: %s" % copy)
