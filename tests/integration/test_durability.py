"""Durability: what an agent acknowledged is there after it restarts on
the same --data-dir, whether it was stopped cleanly or killed with
SIGKILL in the middle of a stream of writes."""
import os
import signal
import socket
import sys
import threading
import time

import pytest
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import RespError, encode_command, wait_until  # noqa: E402


def info_field(agent, section, field):
    text = agent.call("INFO", section).decode()
    for line in text.split("\r\n"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    raise AssertionError("INFO %s has no %s:\n%s" % (section, field, text))


def read_all(agent, keys, chunk=500):
    """MGET in chunks; returns {key: value or None}."""
    out = {}
    with agent.conn() as c:
        for i in range(0, len(keys), chunk):
            part = keys[i:i + chunk]
            values = c.call("MGET", *part, timeout=30)
            assert isinstance(values, list), values
            out.update(zip(part, values))
    return out


def write_dataset(agent, n=400):
    """Plain, binary, empty and counter values; returns what was written."""
    expected = {}
    with agent.conn() as c:
        for i in range(n):
            k = "key:%d" % i
            v = (b"value-%d-" % i) * (i % 7) + bytes([i % 256, 0, 13, 10])
            assert c.call("SET", k, v) == "OK"
            expected[k] = v
        assert c.call("SET", "empty", "") == "OK"
        expected["empty"] = b""
        for _ in range(25):
            c.call("INCR", "counter")
        expected["counter"] = b"25"
        assert c.call("DEL", "key:0", "key:1") == 2
        expected["key:0"] = expected["key:1"] = None
        assert c.call("SET", "key:2", "overwritten") == "OK"
        expected["key:2"] = b"overwritten"
    return expected


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_sigterm_then_restart_keeps_every_key_and_value(make_agent, fsync):
    a = make_agent("--fsync", fsync)
    expected = write_dataset(a)
    lamport_before = int(info_field(a, "persistence", "lamport_clock"))
    assert a.stop() == 0
    a.start()
    assert read_all(a, list(expected)) == expected
    assert a.call("DBSIZE") == sum(v is not None for v in expected.values())
    # The node clock is persisted with the data: no version is reused.
    assert int(info_field(a, "persistence", "lamport_clock")) >= lamport_before
    assert a.call("INCR", "counter") == 26
    ready = [l for l in a.read_log().splitlines() if " ready: clients on " in l]
    assert ready and "%d keys" % a.call("DBSIZE") in ready[-1], ready


class Writer(threading.Thread):
    """One redis-py connection writing key_i = value_i for i = 0, 1, 2...
    Records i once SET i was acknowledged. On a connection error the same
    i is retried (it is in doubt until acknowledged) after reconnecting."""

    def __init__(self, agent, total, deadline_s=90, prefix="key"):
        super().__init__(daemon=True)
        self.agent = agent
        self.prefix = prefix
        self.total = total
        self.deadline = time.monotonic() + deadline_s
        self.acked = []
        self.in_doubt = set()
        self.connection_errors = 0
        self.failure = None
        self.stop_now = threading.Event()

    def run(self):
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.failure = e

    def _run(self):
        r = None
        i = 0
        while i < self.total and not self.stop_now.is_set():
            if time.monotonic() > self.deadline:
                raise AssertionError("writer ran out of time at i=%d" % i)
            if r is None:
                r = redis.Redis(host=self.agent.host, port=self.agent.port, socket_timeout=10,
                                socket_connect_timeout=2)
            try:
                ok = r.set("%s_%d" % (self.prefix, i), "value_%d" % i)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                self.connection_errors += 1
                self.in_doubt.add(i)
                r.close()
                r = None
                time.sleep(0.005)  # the test restarts the agent; poll until it is back
                continue
            if ok is not True:
                raise AssertionError("SET %s_%d answered %r" % (self.prefix, i, ok))
            self.in_doubt.discard(i)
            self.acked.append(i)
            i += 1
        if r is not None:
            r.close()


def verify_acknowledged(agent, writer):
    attempted = (writer.acked[-1] + 1) if writer.acked else 0
    attempted = max([attempted] + [i + 1 for i in writer.in_doubt])
    name = lambda i: "%s_%d" % (writer.prefix, i)  # noqa: E731
    got = read_all(agent, [name(i) for i in range(attempted + 50)])
    acked = set(writer.acked)
    lost = [i for i in acked if got[name(i)] != b"value_%d" % i]
    assert not lost, "%d acknowledged writes lost or changed, first: %s" % (len(lost), lost[:10])
    for i in range(attempted + 50):
        v = got[name(i)]
        if i in acked:
            continue
        if i in writer.in_doubt:
            assert v in (None, b"value_%d" % i)
        else:
            assert v is None, "%s was never written but reads %r" % (name(i), v)
    assert agent.call("DBSIZE") >= len(acked)


def test_kill9_with_fsync_always_loses_no_acknowledged_write(make_agent):
    a = make_agent("--fsync", "always")
    kill_at = [300, 550, 800, 1050, 1280]  # acknowledged writes when SIGKILL lands
    w = Writer(a, total=1400)
    w.start()
    kills = 0
    try:
        for target in kill_at:
            wait_until(lambda: len(w.acked) >= target or w.failure or not w.is_alive(), 60,
                       "%d acknowledged writes" % target, interval=0.001)
            assert w.failure is None, w.failure
            assert a.kill9() == -9
            kills += 1
            a.start()  # same port, same data dir
        w.join(timeout=90)
        assert not w.is_alive(), "writer did not finish"
        assert w.failure is None, w.failure
        assert a.kill9() == -9  # and once more after the last write
        kills += 1
        a.start()
    finally:
        w.stop_now.set()
        w.join(timeout=30)
    print("fsync always: %d kills, %d acknowledged writes, %d connection errors, %d still in doubt"
          % (kills, len(w.acked), w.connection_errors, len(w.in_doubt)))
    assert kills >= 4 and len(w.acked) >= 1000
    assert w.connection_errors >= len(kill_at), "the kills did not interrupt the writer"
    verify_acknowledged(a, w)


@pytest.mark.parametrize("fsync", ["everysec", "no"])
def test_kill9_loses_nothing_acknowledged_when_only_the_process_dies(make_agent, fsync):
    a = make_agent("--fsync", fsync)
    expected = {}
    r = a.redis()
    for i in range(300):  # one at a time
        assert r.set("seq_%d" % i, "v%d" % i) is True
        expected["seq_%d" % i] = b"v%d" % i
    pipe = r.pipeline(transaction=False)  # and a burst of pipelined writes
    for i in range(3000):
        pipe.set("pipe_%d" % i, "p%d" % i)
        expected["pipe_%d" % i] = b"p%d" % i
    assert pipe.execute() == [True] * 3000
    r.close()
    # Killed before the everysec flush could run (or with no flush at all):
    # the writes live only in the page cache, which a process crash keeps.
    unsynced = int(info_field(a, "persistence", "commits_not_yet_synced"))
    assert a.kill9() == -9
    a.start()
    assert read_all(a, list(expected)) == expected
    assert a.call("DBSIZE") == len(expected)
    print("fsync %s: %d writes acknowledged, %d commits not yet synced at the kill; all present"
          % (fsync, len(expected), unsynced))


def test_kill9_during_large_and_pipelined_writes_restarts_cleanly(make_agent):
    a = make_agent("--fsync", "everysec")
    big = os.urandom(1 << 20)
    assert a.call("SET", "before", big) == "OK"
    c = a.conn()
    try:
        c.send(b"".join(encode_command("SET", "burst_%d" % i, big) for i in range(40)))
        wait_until(lambda: int(info_field(a, "persistence", "writes_committed")) > 5, 20,
                   "some of the burst to commit")
        a.kill9()
    finally:
        c.close()
    a.start()
    assert a.call("GET", "before") == big
    n = 0
    for i in range(40):
        v = a.call("GET", "burst_%d" % i)
        assert v in (None, big)
        n += v is not None
    assert n >= 5
    assert a.call("SET", "after", "1") == "OK"


def test_restarted_agent_keeps_refusing_a_second_process(make_agent, tmp_path):
    a = make_agent()
    assert a.call("SET", "k", "v") == "OK"
    a.kill9()
    a.start()  # the lock of the dead process does not block the restart
    b = make_agent(data_dir=a.data_dir, start=False)
    b.port = None
    with pytest.raises(AssertionError, match="is in use by another process"):
        b.start(timeout=10)
    assert a.call("GET", "k") == b"v"


def test_kill9_with_concurrent_writers_and_fsync_always(make_agent):
    """Group commit: writes of several connections share one fsync; none
    may be acknowledged before it."""
    a = make_agent("--fsync", "always")
    writers = [Writer(a, total=400, prefix="w%d" % n) for n in range(4)]
    for w in writers:
        w.start()
    total = lambda: sum(len(w.acked) for w in writers)  # noqa: E731
    try:
        for target in (250, 600, 1000):
            wait_until(lambda: total() >= target or any(w.failure or not w.is_alive() for w in writers), 60,
                       "%d acknowledged writes" % target, interval=0.001)
            assert all(w.failure is None for w in writers), [w.failure for w in writers]
            a.kill9()
            a.start()
        for w in writers:
            w.join(timeout=90)
            assert not w.is_alive() and w.failure is None, w.failure
        a.kill9()
        a.start()
    finally:
        for w in writers:
            w.stop_now.set()
            w.join(timeout=30)
    assert total() == 1600
    for w in writers:
        verify_acknowledged(a, w)
    assert a.call("DBSIZE") == 1600


def test_sigterm_during_a_stream_of_writes_keeps_every_acknowledged_one(make_agent):
    a = make_agent("--fsync", "everysec")
    w = Writer(a, total=100000)
    w.start()
    try:
        wait_until(lambda: len(w.acked) >= 500 or w.failure, 30, "500 acknowledged writes", interval=0.001)
        a.proc.send_signal(signal.SIGTERM)
        assert a.wait_exit(10) == 0
        w.stop_now.set()
        w.join(timeout=30)
    finally:
        w.stop_now.set()
        w.join(timeout=30)
    assert w.failure is None, w.failure
    a.start()
    verify_acknowledged(a, w)


def test_everysec_flushes_to_disk_within_about_a_second(make_agent):
    a = make_agent("--fsync", "everysec")
    for i in range(20):
        assert a.call("SET", "k%d" % i, "v") == "OK"
    assert int(info_field(a, "persistence", "commits_not_yet_synced")) > 0
    wait_until(lambda: info_field(a, "persistence", "commits_not_yet_synced") == "0", 5,
               "the everysec flush")
    assert int(info_field(a, "persistence", "fsyncs")) >= 1


def test_fsync_always_leaves_nothing_unsynced(make_agent):
    a = make_agent("--fsync", "always")
    for i in range(20):
        assert a.call("SET", "k%d" % i, "v") == "OK"
    assert info_field(a, "persistence", "commits_not_yet_synced") == "0"


def test_slow_reader_writes_are_durable_when_their_replies_arrive(make_agent):
    """Writes run after the agent paused a client that was not reading are
    still answered only once committed: kill -9 right after the last reply."""
    a = make_agent("--fsync", "always")
    big = b"z" * (1 << 20)
    assert a.call("SET", "mb", big) == "OK"
    n = 60
    with a.conn() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(b"".join(encode_command("GET", "mb") + encode_command("INCR", "ctr") +
                        encode_command("SET", "last", str(i)) for i in range(n)))
        wait_until(lambda: int(info_field(a, "stats", "total_commands_processed")) > 30, 10,
                   "the agent to start on the pipeline")
        replies = c.read_replies(3 * n, timeout=30)
    a.kill9()
    assert replies[0::3] == [big] * n
    assert replies[1::3] == list(range(1, n + 1))
    assert replies[2::3] == ["OK"] * n
    a.start()
    assert a.call("GET", "ctr") == b"%d" % n
    assert a.call("GET", "last") == b"%d" % (n - 1)


def test_full_database_refuses_writes_without_losing_acknowledged_ones(make_agent):
    """--max-db-size 1mb and four pipelining writers: every acknowledged
    write survives a restart and no refused or unanswered write was applied."""
    a = make_agent("--max-db-size", "1mb")
    acked, unacked, errors = {}, set(), []
    lock = threading.Lock()

    def writer(w):
        with a.conn() as c:
            for batch in range(200):
                keys = ["w%d:%d" % (w, batch * 20 + j) for j in range(20)]
                vals = {k: (k.encode() * 200)[:2000] for k in keys}
                c.send(b"".join(encode_command("SET", k, vals[k]) for k in keys))
                for n, k in enumerate(keys):
                    try:
                        r = c.read_reply(timeout=20)
                    except Exception:
                        with lock:
                            unacked.update(keys[n:])
                        return
                    with lock:
                        if r == "OK":
                            acked[k] = vals[k]
                        else:
                            unacked.add(k)
                            errors.append(r)
    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert errors, "the database never filled up"
    for e in errors:
        assert isinstance(e, RespError) and e.startswith("ERR write not applied: database is full"), e
    assert len(acked) > 100
    assert a.call("PING") == "PONG"
    assert a.stop() == 0
    a.start()
    got = read_all(a, sorted(acked) + sorted(unacked), chunk=100)
    lost = [k for k in acked if got[k] != acked[k]]
    assert not lost, "acknowledged writes lost: %s" % lost[:10]
    applied = [k for k in unacked if got[k] is not None]
    assert not applied, "refused writes were applied: %s" % applied[:10]
    assert a.call("DBSIZE") == len(acked)
    print("full database: %d acknowledged, %d refused or unanswered" % (len(acked), len(unacked)))
    assert a.call("FLUSHALL") == "OK"  # and the way out works
    assert a.call("SET", "after", b"x" * 2000) == "OK"
