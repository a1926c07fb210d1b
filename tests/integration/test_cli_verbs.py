"""The multi-node client verbs against live agents: dmkv race (commands
released together, one per node, then each key read from every node),
dmkv getall (one key's value and version on every node, and the verdict),
dmkv incr, dmkv bench (JSON report, pipelining, errors by kind, --duration
bound) and dmkv repl (piped script, and a pseudo-terminal with history
recall).

Most agents here do not replicate to each other, so after a race each node
holds what it was sent and the nodes DIFFER; the tests assert exactly that,
checking each node's value with a direct RESP client. The getall tests that
need agreement start a replicating 3-node cluster."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import dmkv_bin, free_port, members, run_dmkv, start_cluster, wait_until  # noqa: E402


def nodes_of(*agents):
    return ",".join(a.address for a in agents)


def dmkv(nodes, *args, env=None, timeout=15, stdin=None):
    e = {"DMKV_NODES": nodes}
    e.update(env or {})
    p = run_dmkv(*args, env=e, timeout=timeout, stdin=stdin)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


# ---------------------------------------------------------------- race ----

def test_race_puts_on_two_nodes_report_each_reply_and_each_nodes_value(make_agent):
    a1, a2 = make_agent(), make_agent()
    code, out, err = dmkv(nodes_of(a1, a2), "race", "PUT color red", "PUT color blue")
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"node 1 \(127\.0\.0\.1:%d\) PUT color red -> OK  \d+\.\d\d ms" % a1.port, lines[0])
    assert re.fullmatch(r"node 2 \(127\.0\.0\.1:%d\) PUT color blue -> OK  \d+\.\d\d ms" % a2.port, lines[1])
    assert a1.call("GET", "color") == b"red"
    assert a2.call("GET", "color") == b"blue"
    assert lines[2] == "key color: node1=red node2=blue  DIFFER"
    assert len(lines) == 3


def test_race_reports_agreement_when_nodes_hold_the_same_value(make_agent):
    a1, a2, a3 = make_agent(), make_agent(), make_agent()
    code, out, err = dmkv(nodes_of(a1, a2, a3), "race", "SET k same", "SET k same")
    assert code == 0, err
    # node 3 took no command and holds nothing, so the three differ
    assert out.splitlines()[-1] == "key k: node1=same node2=same node3=(nil)  DIFFER"
    code, out, err = dmkv(nodes_of(a1, a2), "race", "SET k same", "SET k same")
    assert out.splitlines()[-1] == "key k: node1=same node2=same  agree"


def test_race_error_reply_exits_1(make_agent):
    a1, a2 = make_agent(), make_agent()
    a1.call("SET", "s", "text")
    code, out, err = dmkv(nodes_of(a1, a2), "race", "INCR s", "INCR s")
    assert code == 1
    assert "-> (error) ERR" in out.splitlines()[0]
    assert "-> (integer) 1" in out.splitlines()[1]


def test_race_with_fewer_nodes_than_commands_is_a_usage_error(make_agent):
    a1, a2 = make_agent(), make_agent()
    code, out, err = dmkv(nodes_of(a1, a2), "race", "PUT a 1", "PUT a 2", "PUT a 3")
    assert (code, out) == (2, "")
    assert "3 commands need 3 nodes" in err and err.count("\n") == 1
    code, out, err = dmkv(nodes_of(a1, a2), "race", "PUT a 1")
    assert code == 2 and "at least 2 commands" in err
    assert a1.call("GET", "a") is None


def test_race_with_an_unreachable_node_exits_3_and_sends_nothing(make_agent):
    a1 = make_agent()
    dead = "127.0.0.1:%d" % free_port()
    code, out, err = dmkv(a1.address + "," + dead, "race", "PUT a 1", "PUT a 2")
    assert code == 3
    assert "node 2" in err and err.count("\n") == 1
    assert a1.call("GET", "a") is None


# -------------------------------------------------------------- getall ----

VERSION_RE = r"\{[0-9:,]*\} lamport \d+ origin \d+"


def replicating_cluster(make_agent):
    nodes = start_cluster(make_agent, 3)
    wait_until(lambda: all(sum(1 for m in members(a).values() if m["state"] == "alive") == 3 for a in nodes),
               15, "every node to see 3 alive members")
    return nodes


def test_getall_after_a_put_on_a_cluster_shows_one_value_and_version_and_exits_0(make_agent):
    n = replicating_cluster(make_agent)
    assert n[0].call("PUT", "color", "red") == "OK"
    # replication is asynchronous: wait until every node holds the write
    wait_until(lambda: len({repr(a.call("VERSION", "color")) for a in n}) == 1
               and all(a.call("GET", "color") == b"red" for a in n), 10, "the write to reach every node")
    code, out, err = dmkv(nodes_of(*n), "getall", "color")
    assert (code, err) == (0, ""), (code, out, err)
    lines = out.splitlines()
    assert len(lines) == 4
    version = n[0].call("VERSION", "color")
    text = "%s lamport %d origin %d" % (version[0].decode(), version[1], version[2])
    assert version[2] == n[0].node_id
    for i, a in enumerate(n):
        assert lines[i] == "node %d (%s): red  version %s" % (i + 1, a.address, text)
    assert lines[3] == "agree: all 3 nodes hold the same value and version"


def standalone_agents(make_agent):
    """Three agents with no peers (so no replication) and the same node id,
    so the same first write gives each the same version."""
    return [make_agent(node_id=1) for _ in range(3)]


def test_getall_names_the_node_that_holds_another_value_and_exits_1(make_agent):
    a1, a2, a3 = standalone_agents(make_agent)
    for a in (a1, a3):
        assert a.call("SET", "color", "red") == "OK"
    assert a2.call("SET", "color", "blue") == "OK"
    assert a1.call("VERSION", "color") == a3.call("VERSION", "color")  # the premise
    code, out, err = dmkv(nodes_of(a1, a2, a3), "getall", "color")
    assert (code, err) == (1, ""), (code, out, err)
    lines = out.splitlines()
    assert re.fullmatch(r"node 1 \(%s\): red  version %s" % (re.escape(a1.address), VERSION_RE), lines[0])
    assert re.fullmatch(r"node 2 \(%s\): blue  version %s" % (re.escape(a2.address), VERSION_RE), lines[1])
    assert re.fullmatch(r"node 3 \(%s\): red  version %s" % (re.escape(a3.address), VERSION_RE), lines[2])
    assert lines[3] == "DIFFER: node 2 (%s) differs from nodes 1, 3" % a2.address
    assert len(lines) == 4


def test_getall_counts_the_same_value_at_another_version_as_a_difference(make_agent):
    a1, a2 = make_agent(node_id=1), make_agent(node_id=2)
    for a in (a1, a2):
        assert a.call("SET", "k", "same") == "OK"
    code, out, err = dmkv(nodes_of(a1, a2), "getall", "k")
    assert code == 1
    assert "origin 1" in out.splitlines()[0] and "origin 2" in out.splitlines()[1]
    assert out.splitlines()[2] == "DIFFER: node 2 (%s) differs from node 1" % a2.address


def test_getall_with_a_node_down_reports_it_unreachable_and_exits_1(make_agent):
    a1, a2, a3 = standalone_agents(make_agent)
    for a in (a1, a2, a3):
        assert a.call("SET", "color", "red") == "OK"
    assert a3.stop() == 0
    code, out, err = dmkv(nodes_of(a1, a2, a3), "getall", "color")
    assert (code, err) == (1, ""), (code, out, err)
    lines = out.splitlines()
    assert lines[0].startswith("node 1 (%s): red  version " % a1.address)
    assert lines[1].startswith("node 2 (%s): red  version " % a2.address)
    assert lines[2].startswith("node 3 (%s): unreachable (cannot connect to %s" % (a3.address, a3.address))
    assert lines[3] == "DIFFER: node 3 (%s) is unreachable (nodes 1, 2 agree)" % a3.address


def test_getall_json_parses_and_says_the_same(make_agent):
    a1, a2, a3 = standalone_agents(make_agent)
    a1.call("SET", "k", "v\u00e9\n1")
    a2.call("SET", "k", b"\xff\x00")
    a3.stop()
    code, out, err = dmkv(nodes_of(a1, a2, a3), "getall", "--json", "k")
    assert code == 1, err
    r = json.loads(out)
    assert r["key"] == "k" and r["agree"] is False
    assert [x["node"] for x in r["nodes"]] == [1, 2, 3]
    n1, n2, n3 = r["nodes"]
    assert n1["status"] == "ok" and n1["value"] == "v\u00e9\n1" and n1["address"] == a1.address
    version = a1.call("VERSION", "k")
    assert n1["version"] == {"vclock": version[0].decode(), "lamport": version[1], "origin": 1, "token": 0,
                             "tombstone": False}
    assert "value" not in n2 and n2["value_hex"] == "ff00"  # not UTF-8
    assert n3["status"] == "unreachable" and "cannot connect" in n3["error"]
    assert r["differ"] == [2] and r["unreachable"] == [3] and r["errors"] == []
    assert r["verdict"].startswith("DIFFER: node 2 (%s) differs from node 1; node 3" % a2.address)
    # agreement in JSON, and a key no node holds
    code, out, err = dmkv(nodes_of(a1), "getall", "--json", "missing")
    assert code == 0, err
    r = json.loads(out)
    assert r["agree"] is True and r["nodes"][0]["value"] is None and r["nodes"][0]["version"] is None


def test_getall_usage_errors_exit_2_with_one_line(agent):
    for args in ((), ("a", "b"), ("",), ("k" * 512,), ("--bogus", "k"), ("--nodes", "nope", "k")):
        code, out, err = dmkv(agent.address, "getall", *args)
        assert (code, out) == (2, ""), args
        assert err.startswith("dmkv getall: ") and err.count("\n") == 1, (args, err)
    code, out, err = dmkv(agent.address, "getall", "--help")
    assert code == 0 and out.startswith("Usage: dmkv getall") and "--json" in out
    assert "Exit codes: 0 every node holds the same value and version, 1 they" in out


# ---------------------------------------------------------------- incr ----

def test_incr_prints_the_new_integer(make_agent):
    a1, a2 = make_agent(), make_agent()
    assert dmkv(nodes_of(a1, a2), "incr", "hits") == (0, "1\n", "")
    assert dmkv(nodes_of(a1, a2), "incr", "hits") == (0, "2\n", "")
    assert dmkv(nodes_of(a1, a2), "incr", "hits", "40") == (0, "42\n", "")
    assert dmkv(nodes_of(a1, a2), "incr", "hits", "-50") == (0, "-8\n", "")
    assert a1.call("GET", "hits") == b"-8"
    # --node picks the node
    assert dmkv(nodes_of(a1, a2), "incr", "--node", "2", "hits") == (0, "1\n", "")
    assert a2.call("GET", "hits") == b"1"


def test_incr_errors_from_the_node_exit_1_with_its_message(agent):
    code, out, err = dmkv(agent.address, "incr", "k", "notanumber")
    assert (code, out) == (1, "")
    assert err == "(error) ERR value is not an integer or out of range\n"
    agent.call("SET", "s", "text")
    code, out, err = dmkv(agent.address, "incr", "s")
    assert (code, out) == (1, "")
    assert err == "(error) ERR value is not an integer or out of range\n"
    assert agent.call("GET", "s") == b"text"
    agent.call("SET", "big", str(2 ** 63 - 1))
    code, out, err = dmkv(agent.address, "incr", "big")
    assert code == 1 and "overflow" in err and err.count("\n") == 1


def test_incr_usage_and_unreachable(agent):
    for args in ((), ("a", "1", "2"), ("",), ("--node", "5", "k")):
        code, out, err = dmkv(agent.address, "incr", *args)
        assert (code, out) == (2, ""), args
        assert err.startswith("dmkv incr: ") and err.count("\n") == 1, (args, err)
    code, out, err = dmkv(agent.address, "incr", "--help")
    assert code == 0 and out.startswith("Usage: dmkv incr [--node I] [--nodes LIST] KEY [BY]")
    code, out, err = dmkv("127.0.0.1:%d" % free_port(), "incr", "k")
    assert code == 3 and out == "" and err.count("\n") == 1


def test_help_lists_the_new_verbs():
    p = run_dmkv("--help")
    out = p.stdout.decode()
    assert p.returncode == 0 and "\n  getall " in out and "\n  incr " in out


# --------------------------------------------------------------- bench ----

def bench_json(nodes, *args, **kw):
    code, out, err = dmkv(nodes, "bench", "--json", *args, **kw)
    return code, json.loads(out), err


def test_bench_json_counts_every_request_and_orders_percentiles(make_agent):
    a1, a2 = make_agent(), make_agent()
    code, r, err = bench_json(nodes_of(a1, a2), "--ops", 2000, "--clients", 4)
    assert code == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    assert r["ops"] == 2000 and r["errors"] == {}
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["p999_ms"] <= r["max_ms"]
    assert r["ops_per_sec"] > 0 and r["seconds"] > 0
    # both nodes took writes (clients are spread round-robin)
    assert a1.call("DBSIZE") > 0 and a2.call("DBSIZE") > 0


def test_bench_with_a_pipeline_still_counts_exactly(agent):
    code, r, err = bench_json(agent.address, "--ops", 2000, "--clients", 4, "--pipeline", 8, "--put-ratio", 1,
                              "--keys", 50, "--value-size", 5)
    assert code == 0, err
    assert r["ops"] == 2000 and r["errors"] == {}
    assert r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert agent.call("DBSIZE") <= 50
    assert agent.call("GET", "key:0") in (None, b"xxxxx")


def test_bench_without_password_counts_noauth_errors_and_exits_1(make_agent):
    a = make_agent("--requirepass", "s3cret")
    code, r, err = bench_json(a.address, "--ops", 200, "--clients", 2)
    assert code == 1
    assert r["errors"] == {"NOAUTH": 200}
    code, r, err = bench_json(a.address, "--ops", 200, "--clients", 2, "--password", "s3cret")
    assert code == 0 and r["errors"] == {} and r["ops"] == 200


def test_bench_duration_bounds_the_run(agent):
    start = time.monotonic()
    code, r, err = bench_json(agent.address, "--ops", 10 ** 12, "--clients", 2, "--duration", 1)
    took = time.monotonic() - start
    assert code == 0, err
    assert 0.9 <= r["seconds"] < 2.0
    assert took < 5
    assert 0 < r["ops"] < 10 ** 12


def test_bench_bad_flags_and_unreachable_node(agent):
    code, out, err = dmkv(agent.address, "bench", "--pipeline", "0")
    assert code == 2 and "--pipeline" in err and err.count("\n") == 1
    code, out, err = dmkv(agent.address, "bench", "--put-ratio", "1.5")
    assert code == 2 and "--put-ratio" in err
    code, out, err = dmkv("127.0.0.1:%d" % free_port(), "bench", "--ops", 10)
    assert code == 3 and err.count("\n") == 1


# ---------------------------------------------------------------- repl ----

def test_repl_runs_a_piped_script(make_agent, tmp_path):
    a1, a2 = make_agent(), make_agent()
    script = tmp_path / "script.txt"
    script.write_text("use 2\ncmd PUT a 1\nGET a\ngetall a\nnodes\nBOGUS\nquit\nGET never\n")
    with open(script, "rb") as f:
        code, out, err = dmkv(nodes_of(a1, a2), "repl", stdin=f)
    assert code == 0, err
    lines = out.splitlines()
    # getall prints what dmkv getall prints: one line per node, then the verdict
    assert re.fullmatch(r"node 2 \(%s\): 1  version \{[0-9:,]*\} lamport \d+ origin 2" % re.escape(a2.address),
                        lines[3]), lines[3]
    lines[3] = "node 2 ..."
    assert lines == [
        "OK",
        "1",
        "node 1 (%s): (nil)  version none" % a1.address,
        "node 2 ...",
        "DIFFER: node 2 (%s) differs from node 1" % a2.address,
        "  1 %s" % a1.address,
        "* 2 %s" % a2.address,
        "(error) ERR unknown command 'BOGUS', with args beginning with: ",
    ]
    assert a2.call("GET", "a") == b"1" and a1.call("GET", "a") is None
    assert "dmkv[" not in out  # no prompt without a terminal


def test_repl_race_and_refused_long_line(make_agent, tmp_path):
    a1, a2 = make_agent(), make_agent()
    script = tmp_path / "script.txt"
    script.write_text("race PUT r x | PUT r y\nGET " + "k" * 70000 + "\nGET r\n")
    with open(script, "rb") as f:
        code, out, err = dmkv(nodes_of(a1, a2), "repl", stdin=f)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("node 1 (%s) PUT r x -> OK" % a1.address)
    assert lines[1].startswith("node 2 (%s) PUT r y -> OK" % a2.address)
    assert lines[2] == "key r: node1=x node2=y  DIFFER"
    assert lines[3] == "x"
    assert "longer than 65536 bytes" in err


def pty_read_until(fd, want, deadline, seen):
    while want not in seen[0]:
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for %r; got %r" % (want, seen[0])
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            assert chunk, "repl closed the terminal; got %r" % seen[0]
            seen[0] += chunk
    return seen[0]


def test_repl_on_a_terminal_recalls_history_uses_another_node_races_and_quits(make_agent, tmp_path):
    agent, a2 = make_agent(), make_agent()
    env = dict(os.environ)
    env.pop("DMKV_PASSWORD", None)
    env.update({"DMKV_NODES": nodes_of(agent, a2), "HOME": str(tmp_path), "TERM": "xterm"})
    # an old, over-long history: the repl keeps only the newest 1000 lines
    (tmp_path / ".dmkv_history").write_text("_HiStOrY_V2_\n" + "".join("GET\\040old%d\n" % i for i in range(1500)))
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(dmkv_bin(), [dmkv_bin(), "repl"], env)
    try:
        deadline = time.monotonic() + 10
        seen = [b""]
        pty_read_until(fd, b"dmkv[node 1]> ", deadline, seen)
        os.write(fd, b"INCR hits\r")
        pty_read_until(fd, b"(integer) 1", deadline, seen)
        os.write(fd, b"\x1b[A\r")
        pty_read_until(fd, b"(integer) 2", deadline, seen)
        assert agent.call("GET", "hits") == b"2"
        os.write(fd, b"use 2\r")
        pty_read_until(fd, b"dmkv[node 2]> ", deadline, seen)
        os.write(fd, b"SET where two\r")
        pty_read_until(fd, b"OK", deadline, seen)
        assert a2.call("GET", "where") == b"two" and agent.call("GET", "where") is None
        os.write(fd, b"race SET r one | SET r two\r")
        pty_read_until(fd, b"key r: node1=one node2=two  DIFFER", deadline, seen)
        assert agent.call("GET", "r") == b"one" and a2.call("GET", "r") == b"two"
        os.write(fd, b"quit\r")
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "repl did not exit"
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                break
            select.select([fd], [], [], 0.05)
            try:
                os.read(fd, 4096)
            except OSError:
                pass
        pid = None
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        # libedit writes spaces as \040
        hist = (tmp_path / ".dmkv_history").read_text().replace("\\040", " ").splitlines()
        assert hist[-6:] == ["INCR hits", "INCR hits", "use 2", "SET where two", "race SET r one | SET r two",
                             "quit"]
        assert len([h for h in hist if not h.startswith("_HiStOrY")]) == 1000
        assert "GET old1499" in hist and "GET old0" not in hist
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_bench_draws_a_progress_bar_only_on_a_terminal(agent):
    master, slave = pty.openpty()
    env = dict(os.environ, DMKV_NODES=agent.address)
    env.pop("DMKV_PASSWORD", None)
    p = subprocess.Popen([dmkv_bin(), "bench", "--ops", "20000", "--clients", "2", "--json"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    out, _ = p.communicate(timeout=30)
    drawn = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert p.returncode == 0
    assert json.loads(out)["ops"] == 20000  # stdout stays clean JSON
    assert b"\r[" in drawn and b"100%" in drawn
