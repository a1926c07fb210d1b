"""Real Redis clients against an agent, unchanged: redis-py (commands and a
10,000-command pipeline), redis-cli (one-shot, --scan, --pipe, and the
interactive prompt driven through a pseudo-terminal) and redis-benchmark."""
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time

import pytest
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REDIS_CLI = shutil.which("redis-cli")
REDIS_BENCHMARK = shutil.which("redis-benchmark")
need_cli = pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed")
need_bench = pytest.mark.skipif(REDIS_BENCHMARK is None, reason="redis-benchmark is not installed")


# ------------------------------------------------------------ redis-py ----

def test_redis_py_basic_commands(agent):
    r = agent.redis()
    assert r.ping() is True
    assert r.set("color", "red") is True
    assert r.get("color") == b"red"
    assert r.set("color", "blue", nx=True) is None
    assert r.set("color", "blue", xx=True) is True
    assert r.exists("color", "nope") == 1
    assert r.incr("n") == 1
    assert r.incr("n", 9) == 10
    assert r.decr("n", 3) == 7
    assert r.mset({"a": "1", "b": "2", "c": b"\x00\xff"}) is True
    assert r.mget("a", "nope", "b", "c") == [b"1", None, b"2", b"\x00\xff"]
    assert r.delete("a", "b", "nope") == 2
    assert r.exists("a", "b", "c") == 1
    assert r.getset("c", "new") == b"\x00\xff"
    assert r.strlen("c") == 3
    assert r.type("c") == b"string"
    assert r.dbsize() == 3
    assert sorted(r.keys("*")) == [b"c", b"color", b"n"]
    assert sorted(r.scan_iter(match="c*", count=1)) == [b"c", b"color"]
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert r.info("keyspace")["db0"]["keys"] == 3
    with pytest.raises(redis.exceptions.ResponseError, match="value is not an integer or out of range"):
        r.incr("color")
    assert r.client_setname("tester") is True
    assert r.client_getname() == "tester"
    assert r.flushall() is True
    assert r.dbsize() == 0
    r.close()


def test_redis_py_decode_responses_and_unicode(agent):
    r = agent.redis(decode_responses=True)
    assert r.set("ключ", "значение ✓") is True
    assert r.get("ключ") == "значение ✓"
    assert r.keys("*") == ["ключ"]
    r.close()


def test_redis_py_pipeline_of_10000_mixed_commands(agent):
    r = agent.redis()
    pipe = r.pipeline(transaction=False)
    expected = []
    counters = {}
    values = {}
    for i in range(10000):
        kind = i % 3
        if kind == 0:
            k = "pk:%d" % (i % 700)
            v = "v%d" % i
            pipe.set(k, v)
            values[k] = v.encode()
            expected.append(True)
        elif kind == 1:
            k = "cnt:%d" % (i % 13)
            counters[k] = counters.get(k, 0) + 1
            pipe.incr(k)
            expected.append(counters[k])
        else:
            k = "pk:%d" % ((i * 7) % 700)
            pipe.get(k)
            expected.append(values.get(k))
    replies = pipe.execute()
    assert len(replies) == 10000
    mismatches = [(i, got, want) for i, (got, want) in enumerate(zip(replies, expected)) if got != want]
    assert not mismatches, "first mismatches: %r" % mismatches[:5]
    keys = sorted(values) + sorted(counters)
    assert r.mget(keys) == [values[k] for k in sorted(values)] + [b"%d" % counters[k] for k in sorted(counters)]
    assert r.dbsize() == len(values) + len(counters)
    r.close()


def test_redis_py_many_connections_at_once(agent):
    clients = [agent.redis() for _ in range(50)]
    for i, c in enumerate(clients):
        assert c.incr("shared") == i + 1
    assert clients[0].info("clients")["connected_clients"] >= 50
    for c in clients:
        c.close()


# ----------------------------------------------------- redis-cli (once) ----

def cli(agent, *args, stdin=None, timeout=20):
    p = subprocess.run([REDIS_CLI, "-p", str(agent.port)] + [str(a) for a in args], input=stdin,
                       capture_output=True, timeout=timeout,
                       env=dict(os.environ, REDISCLI_HISTFILE="/dev/null"))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


@need_cli
def test_redis_cli_one_shot_commands(agent):
    assert cli(agent, "PING") == (0, "PONG\n", "")
    assert cli(agent, "SET", "color", "red") == (0, "OK\n", "")
    assert cli(agent, "GET", "color") == (0, "red\n", "")
    assert cli(agent, "--no-raw", "GET", "color") == (0, '"red"\n', "")
    assert cli(agent, "GET", "missing") == (0, "\n", "")
    assert cli(agent, "INCR", "n") == (0, "1\n", "")
    assert cli(agent, "--no-raw", "INCR", "n") == (0, "(integer) 2\n", "")
    assert cli(agent, "MSET", "a", "1", "b", "2") == (0, "OK\n", "")
    assert cli(agent, "MGET", "a", "missing", "b") == (0, "1\n\n2\n", "")
    assert cli(agent, "--no-raw", "MGET", "a", "missing") == (0, '1) "1"\n2) (nil)\n', "")
    assert cli(agent, "DBSIZE") == (0, "4\n", "")
    code, out, _ = cli(agent, "INCR", "color")
    assert out.strip() == "ERR value is not an integer or out of range"
    code, out, _ = cli(agent, "--no-raw", "INCR", "color")
    assert out == "(error) ERR value is not an integer or out of range\n"
    code, out, _ = cli(agent, "INFO", "keyspace")
    assert code == 0 and "db0:keys=4," in out


@need_cli
def test_redis_cli_scan_and_pipe_mass_insert(agent):
    lines = "".join("SET mass:%d %d\r\n" % (i, i) for i in range(5000))
    code, out, err = cli(agent, "--pipe", stdin=lines.encode())
    assert code == 0, err
    assert "errors: 0, replies: 5000" in out
    assert agent.call("DBSIZE") == 5000
    assert agent.call("GET", "mass:4999") == b"4999"
    agent.call("SET", "other", "x")
    code, out, _ = cli(agent, "--scan", "--pattern", "mass:1*")
    assert code == 0
    assert sorted(out.split()) == sorted("mass:%d" % i for i in range(5000) if str(i).startswith("1"))


@need_cli
def test_redis_cli_with_password(make_agent):
    a = make_agent("--requirepass", "pw")
    code, out, _ = cli(a, "--no-auth-warning", "-a", "pw", "SET", "k", "v")
    assert (code, out) == (0, "OK\n")
    code, out, _ = cli(a, "GET", "k")
    assert out.startswith("NOAUTH")


# ------------------------------------------------ redis-cli (interactive) ----

class PtySession:
    """A program on a pseudo-terminal; expect() waits for text with a deadline."""

    def __init__(self, argv, env):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.out = bytearray()
        self.pos = 0  # expect() searches from here

    def expect(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            i = self.out.find(text, self.pos)
            if i >= 0:
                self.pos = i + len(text)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("did not see %r; terminal shows %r" % (text, bytes(self.out[-600:])))
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the program exited
                    chunk = b""
                if not chunk:
                    raise AssertionError("terminal closed before %r; it showed %r" % (text, bytes(self.out[-600:])))
                self.out += chunk

    def type(self, line):
        os.write(self.master, line.encode() + b"\r")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


@need_cli
def test_redis_cli_interactive_session_through_a_pty(agent):
    env = dict(os.environ, REDISCLI_HISTFILE="/dev/null", TERM="xterm")
    s = PtySession([REDIS_CLI, "-p", str(agent.port)], env)
    try:
        prompt = b"127.0.0.1:%d> " % agent.port
        s.expect(prompt)
        for line, reply in [("SET color red", b"\r\nOK\r\n"),
                            ("GET color", b'\r\n"red"\r\n'),
                            ("INCR n", b"\r\n(integer) 1\r\n"),
                            ("GET nothing", b"\r\n(nil)\r\n"),
                            ("INCR color", b"\r\n(error) ERR value is not an integer or out of range\r\n")]:
            s.type(line)
            s.expect(reply)
            s.expect(prompt)
        s.type("quit")
        assert s.proc.wait(timeout=10) == 0
    finally:
        s.close()
    assert agent.call("GET", "color") == b"red"
    assert agent.call("GET", "n") == b"1"


# ----------------------------------------------------- redis-benchmark ----

BENCH_TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"]


def run_benchmark(agent, *extra):
    argv = [REDIS_BENCHMARK, "-p", str(agent.port), "-t", "set,get,incr,mset,ping", "-n", "20000",
            "-c", "20", "-q"] + list(extra)
    p = subprocess.run(argv, capture_output=True, timeout=120)
    out = p.stdout.decode()
    err = p.stderr.decode()
    assert p.returncode == 0, (out, err)
    # Progress lines are overwritten with \r; keep the final one of each.
    lines = [seg.strip() for seg in re.split(r"[\r\n]", out) if seg.strip()]
    rates = {}
    for line in lines:
        m = re.match(r"^(.+?): ([0-9.]+) requests per second", line)
        if m:
            rates[m.group(1)] = float(m.group(2))
    bad = [line for line in lines + err.splitlines() if re.search(r"error|ERR|WARN", line, re.I)]
    assert not bad, bad
    assert sorted(rates) == sorted(BENCH_TESTS), out
    assert all(rate > 0 for rate in rates.values()), rates
    return rates


@need_bench
def test_redis_benchmark_runs_clean(agent):
    rates = run_benchmark(agent)
    print("redis-benchmark -c 20:", rates)
    # Each INCR hit the same key; none was lost.
    assert agent.call("GET", "counter:__rand_int__") == b"20000"
    assert agent.call("STRLEN", "key:__rand_int__") == 3  # -d 3, the default payload size


@need_bench
def test_redis_benchmark_pipelined_runs_clean(agent):
    rates = run_benchmark(agent, "-P", "16")
    print("redis-benchmark -c 20 -P 16:", rates)
    assert agent.call("GET", "counter:__rand_int__") == b"20000"
