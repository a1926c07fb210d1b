"""The multi-node client verbs against live agents: dmkv race (commands
released together, one per node, then each key read from every node),
dmkv bench (JSON report, pipelining, errors by kind, --duration bound) and
dmkv repl (piped script, and a pseudo-terminal with history recall).

The agents here do not replicate to each other, so after a race each node
holds what it was sent and the nodes DIFFER; the tests assert exactly that,
checking each node's value with a direct RESP client."""
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
from dmkvtest import dmkv_bin, free_port, run_dmkv  # noqa: E402


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
    assert out.splitlines() == [
        "OK",
        "1",
        "node 1 (%s): (nil)" % a1.address,
        "node 2 (%s): 1" % a2.address,
        "DIFFER",
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


def test_repl_on_a_terminal_recalls_history_with_up_arrow(agent, tmp_path):
    env = dict(os.environ)
    env.pop("DMKV_PASSWORD", None)
    env.update({"DMKV_NODES": agent.address, "HOME": str(tmp_path), "TERM": "xterm"})
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
        assert hist[-3:] == ["INCR hits", "INCR hits", "quit"]
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
