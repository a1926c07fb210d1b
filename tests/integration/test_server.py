"""The agent as a server: command semantics and error texts, AUTH,
--maxclients, flag and data-directory errors, --help, clean stops."""
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import RespError, encode_command, free_port, run_dmkv, wait_until  # noqa: E402

ERR_NOT_INT = RespError("ERR value is not an integer or out of range")
ERR_OVERFLOW = RespError("ERR increment or decrement would overflow")
INT64_MAX = 2**63 - 1
INT64_MIN = -2**63


@pytest.fixture
def c(agent):
    with agent.conn() as conn:
        yield conn


# ------------------------------------------------------------ strings ----

def test_ping_echo_time(c):
    assert c.call("PING") == "PONG"
    assert c.call("PING", "hello") == b"hello"
    assert c.call("PING", "a", "b") == RespError("ERR wrong number of arguments for 'ping' command")
    assert c.call("ECHO", "x y") == b"x y"
    sec, usec = c.call("TIME")
    assert abs(int(sec) - time.time()) < 5 and 0 <= int(usec) < 1000000


def test_get_set_put_and_missing_key(c):
    assert c.call("GET", "color") is None
    assert c.call("SET", "color", "red") == "OK"
    assert c.call("GET", "color") == b"red"
    assert c.call("PUT", "color", "blue") == "OK"  # PUT is an alias of SET
    assert c.call("GET", "color") == b"blue"
    assert c.call("SET", "empty", "") == "OK"
    assert c.call("GET", "empty") == b""
    assert c.call("EXISTS", "empty") == 1


def test_set_nx_xx_get_options(c):
    assert c.call("SET", "k", "1", "NX") == "OK"
    assert c.call("SET", "k", "2", "NX") is None
    assert c.call("GET", "k") == b"1"
    assert c.call("SET", "k", "3", "XX") == "OK"
    assert c.call("GET", "k") == b"3"
    assert c.call("SET", "absent", "x", "XX") is None
    assert c.call("EXISTS", "absent") == 0
    assert c.call("SET", "k", "4", "GET") == b"3"
    assert c.call("GET", "k") == b"4"
    assert c.call("SET", "fresh", "v", "GET") is None
    assert c.call("GET", "fresh") == b"v"
    assert c.call("SET", "k", "5", "NX", "GET") == b"4"  # not set, old value returned
    assert c.call("GET", "k") == b"4"
    assert c.call("SET", "absent", "5", "XX", "GET") is None
    assert c.call("EXISTS", "absent") == 0
    assert c.call("SET", "k", "v", "nx", "xx") == RespError("ERR syntax error")
    assert c.call("SET", "k", "v", "BOGUS") == RespError("ERR syntax error")
    assert c.call("SET", "k", "v", "KEEPTTL") == "OK"


def test_set_ex_and_px_are_refused_because_keys_do_not_expire(c):
    for opt in ("EX", "PX"):
        r = c.call("SET", "k", "v", opt, "10")
        assert isinstance(r, RespError) and r.startswith("ERR SET %s is not supported" % opt), r
    assert c.call("EXISTS", "k") == 0


def test_setnx_getset_getdel(c):
    assert c.call("SETNX", "a", "1") == 1
    assert c.call("SETNX", "a", "2") == 0
    assert c.call("GET", "a") == b"1"
    assert c.call("GETSET", "a", "3") == b"1"
    assert c.call("GETSET", "new", "x") is None
    assert c.call("GET", "a") == b"3"
    assert c.call("GETDEL", "a") == b"3"
    assert c.call("GETDEL", "a") is None
    assert c.call("EXISTS", "a") == 0


def test_del_unlink_exists_count_keys(c):
    assert c.call("MSET", "a", "1", "b", "2", "c", "3") == "OK"
    assert c.call("EXISTS", "a", "b", "nope", "a") == 3  # repeats count, like Redis
    assert c.call("DEL", "a", "b", "nope") == 2
    assert c.call("UNLINK", "c", "c") == 1
    assert c.call("EXISTS", "a", "b", "c") == 0
    assert c.call("DEL", "a") == 0


def test_incr_family(c):
    assert c.call("INCR", "n") == 1
    assert c.call("INCRBY", "n", "41") == 42
    assert c.call("DECR", "n") == 41
    assert c.call("DECRBY", "n", "50") == -9
    assert c.call("INCRBY", "n", "-1") == -10
    assert c.call("GET", "n") == b"-10"
    assert c.call("DECR", "fresh") == -1


def test_incr_on_non_integer_values_is_an_error_and_changes_nothing(c):
    for bad in ("abc", " 1", "1 ", "1.5", "", "01", "-0", "99999999999999999999"):
        assert c.call("SET", "s", bad) == "OK"
        assert c.call("INCR", "s") == ERR_NOT_INT, bad
        assert c.call("GET", "s") == bad.encode()
    assert c.call("INCRBY", "n", "abc") == ERR_NOT_INT
    assert c.call("DECRBY", "n", "1x") == ERR_NOT_INT
    assert c.call("EXISTS", "n") == 0


def test_incr_overflow_is_refused(c):
    assert c.call("SET", "n", str(INT64_MAX)) == "OK"
    assert c.call("INCR", "n") == ERR_OVERFLOW
    assert c.call("INCRBY", "n", "1") == ERR_OVERFLOW
    assert c.call("GET", "n") == str(INT64_MAX).encode()
    assert c.call("SET", "m", str(INT64_MIN)) == "OK"
    assert c.call("DECR", "m") == ERR_OVERFLOW
    assert c.call("DECRBY", "m", "1") == ERR_OVERFLOW
    assert c.call("INCRBY", "m", str(INT64_MAX)) == -1
    assert c.call("SET", "z", "1") == "OK"
    assert c.call("INCRBY", "z", str(INT64_MAX)) == ERR_OVERFLOW
    assert c.call("GET", "z") == b"1"


def test_decrby_int64_min_reports_overflow(c):
    # -(-2**63) does not fit: Redis answers "decrement would overflow"; the
    # argument itself is a valid integer, so "not an integer" would mislead.
    assert c.call("SET", "z", "0") == "OK"
    assert c.call("DECRBY", "z", str(INT64_MIN)) == RespError("ERR decrement would overflow")
    assert c.call("GET", "z") == b"0"


def test_mget_mset_strlen_type(c):
    assert c.call("MSET", "a", "1", "b", "22") == "OK"
    assert c.call("MGET", "a", "nope", "b") == [b"1", None, b"22"]
    assert c.call("MSET", "a", "1", "b") == RespError("ERR wrong number of arguments for 'mset' command")
    assert c.call("STRLEN", "b") == 2
    assert c.call("STRLEN", "nope") == 0
    assert c.call("TYPE", "a") == "string"
    assert c.call("TYPE", "nope") == "none"


def test_mset_with_one_bad_key_writes_nothing(c):
    r = c.call("MSET", "ok1", "1", "x" * 512, "2", "ok2", "3")
    assert isinstance(r, RespError) and r.startswith("ERR key too long")
    assert c.call("EXISTS", "ok1", "ok2") == 0


def test_key_length_limits(c):
    assert c.call("SET", "k" * 511, "v") == "OK"
    assert c.call("GET", "k" * 511) == b"v"
    r = c.call("SET", "k" * 512, "v")
    assert isinstance(r, RespError) and r.startswith("ERR key too long"), r
    assert c.call("GET", "k" * 512) is None
    r = c.call("INCR", "k" * 600)
    assert isinstance(r, RespError) and r.startswith("ERR key too long"), r
    r = c.call("SET", "", "v")
    assert isinstance(r, RespError) and r.startswith("ERR empty keys are not supported"), r
    assert c.call("GET", "") is None
    assert c.call("MGET", "", "k" * 511) == [None, b"v"]
    assert c.call("DBSIZE") == 1


def test_dbsize_keys_flushall_flushdb(c):
    keys = ["user:1", "user:2", "user:10", "hello", "hallo", "hxllo", "other"]
    for k in keys:
        assert c.call("SET", k, "v") == "OK"
    assert c.call("DBSIZE") == len(keys)
    assert sorted(c.call("KEYS", "*")) == sorted(k.encode() for k in keys)
    assert sorted(c.call("KEYS", "user:*")) == [b"user:1", b"user:10", b"user:2"]
    assert sorted(c.call("KEYS", "user:?")) == [b"user:1", b"user:2"]
    assert sorted(c.call("KEYS", "h[ae]llo")) == [b"hallo", b"hello"]
    assert c.call("KEYS", "nomatch*") == []
    assert c.call("FLUSHDB") == "OK"
    assert c.call("DBSIZE") == 0
    assert c.call("SET", "again", "1") == "OK"
    assert c.call("FLUSHALL") == "OK"
    assert c.call("KEYS", "*") == []
    assert c.call("GET", "again") is None
    assert c.call("FLUSHALL", "BOGUS") == RespError("ERR syntax error")


def scan_all(c, *opts, page_limit=None):
    seen, calls, cursor = [], 0, b"0"
    while True:
        cursor, page = c.call("SCAN", cursor, *opts)
        calls += 1
        assert calls < 1000, "SCAN does not terminate"
        if page_limit is not None:
            assert len(page) <= page_limit
        seen += page
        if cursor == b"0":
            return seen, calls


def test_scan_iterates_250_keys_with_count_and_match(c):
    keys = ["scan:%03d" % i for i in range(250)]
    for i in range(0, 250, 50):
        args = []
        for k in keys[i:i + 50]:
            args += [k, "v"]
        assert c.call("MSET", *args) == "OK"
    for i in range(30):
        assert c.call("SET", "other:%d" % i, "v") == "OK"

    seen, calls = scan_all(c, "COUNT", "10", page_limit=10)
    assert len(seen) == len(set(seen)) == 280
    assert calls >= 28

    seen, calls = scan_all(c, "MATCH", "scan:*", "COUNT", "10", page_limit=10)
    assert len(seen) == len(set(seen)), "SCAN returned duplicates"
    assert set(seen) == {k.encode() for k in keys}

    seen, _ = scan_all(c, "MATCH", "scan:1?7", "COUNT", "10")
    assert sorted(seen) == [b"scan:%d" % i for i in range(107, 200, 10)]

    seen, calls = scan_all(c)  # default COUNT
    assert len(set(seen)) == 280


def test_scan_bad_cursor_and_options(c):
    assert c.call("SCAN", "abc") == RespError("ERR invalid cursor")
    r = c.call("SCAN", "987654")
    assert isinstance(r, RespError) and r.startswith("ERR invalid cursor")
    assert c.call("SCAN", "0", "COUNT", "0") == ERR_NOT_INT
    assert c.call("SCAN", "0", "BOGUS") == RespError("ERR syntax error")
    assert c.call("SCAN", "0") == [b"0", []]


# ---------------------------------------------------- introspection ----

def parse_info(text):
    out = {}
    for line in text.decode().split("\r\n"):
        if line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v
    return out


def test_info_sections_and_keyspace_count(agent, c):
    full = c.call("INFO")
    for section in ("# Server", "# Clients", "# Persistence", "# Stats", "# Keyspace"):
        assert section.encode() in full
    server = c.call("INFO", "server")
    assert server.startswith(b"# Server") and b"# Clients" not in server
    info = parse_info(server)
    assert info["tcp_port"] == str(agent.port)
    assert info["process_id"] == str(agent.pid)
    assert int(parse_info(c.call("INFO", "clients"))["connected_clients"]) >= 1
    assert parse_info(c.call("INFO", "persistence"))["fsync"] == "everysec"
    assert "total_commands_processed" in parse_info(c.call("INFO", "stats"))
    assert b"db0:" not in c.call("INFO", "keyspace")
    for i in range(7):
        assert c.call("SET", "k%d" % i, "v") == "OK"
    assert c.call("DEL", "k0") == 1
    ks = parse_info(c.call("INFO", "keyspace"))
    assert ks["db0"].startswith("keys=6,"), ks


def test_config_get(agent, c):
    assert c.call("CONFIG", "GET", "appendfsync") == [b"appendfsync", b"everysec"]
    assert c.call("CONFIG", "GET", "port") == [b"port", str(agent.port).encode()]
    assert c.call("CONFIG", "GET", "nothing-like-this") == []
    everything = c.call("CONFIG", "GET", "*")
    assert len(everything) % 2 == 0
    pairs = dict(zip(everything[::2], everything[1::2]))
    assert pairs[b"maxclients"] == b"10000"
    assert pairs[b"dir"] == agent.data_dir.encode()
    r = c.call("CONFIG", "SET", "maxclients", "5")
    assert isinstance(r, RespError) and r.startswith("ERR CONFIG SET is not supported")


def test_config_get_reports_fsync_always(make_agent):
    a = make_agent("--fsync", "always")
    assert a.call("CONFIG", "GET", "appendfsync") == [b"appendfsync", b"always"]


def test_command_count_info_docs(c):
    table = c.call("COMMAND")
    assert c.call("COMMAND", "COUNT") == len(table)
    names = {entry[0] for entry in table}
    for name in (b"get", b"set", b"put", b"incr", b"scan", b"hello", b"shutdown"):
        assert name in names
    assert c.call("COMMAND", "INFO", "get", "nope") == [[b"get", 2, ["readonly", "fast"], 1, 1, 1], None]
    docs = c.call("COMMAND", "DOCS", "set")
    assert docs[0] == b"set" and b"summary" in docs[1]
    assert sorted(c.call("COMMAND", "LIST")) == sorted(names)


def test_hello_2_and_hello_3(c):
    reply = c.call("HELLO", "2")
    hello = dict(zip(reply[::2], reply[1::2]))
    assert hello[b"server"] == b"dmkv"
    assert hello[b"proto"] == 2
    assert hello[b"id"] == c.call("CLIENT", "ID")
    assert hello[b"mode"] == b"standalone"
    assert hello[b"role"] == b"master"
    assert hello[b"modules"] == []
    assert c.call("HELLO") == reply
    r = c.call("HELLO", "3")
    assert isinstance(r, RespError) and r.startswith("NOPROTO"), r
    reply = c.call("HELLO", "2", "SETNAME", "via-hello")
    assert c.call("CLIENT", "GETNAME") == b"via-hello"


def test_client_id_setname_getname_setinfo_list(c):
    cid = c.call("CLIENT", "ID")
    assert isinstance(cid, int) and cid > 0
    assert c.call("CLIENT", "GETNAME") is None
    assert c.call("CLIENT", "SETNAME", "worker-7") == "OK"
    assert c.call("CLIENT", "GETNAME") == b"worker-7"
    r = c.call("CLIENT", "SETNAME", "has space")
    assert isinstance(r, RespError) and r.startswith("ERR Client names cannot contain spaces")
    assert c.call("CLIENT", "GETNAME") == b"worker-7"
    assert c.call("CLIENT", "SETINFO", "lib-name", "mylib") == "OK"
    listing = c.call("CLIENT", "LIST").decode()
    mine = [line for line in listing.splitlines() if line.startswith("id=%d " % cid)]
    assert len(mine) == 1 and "name=worker-7" in mine[0] and "lib-name=mylib" in mine[0], listing
    r = c.call("CLIENT", "BOGUS")
    assert isinstance(r, RespError) and r.startswith("ERR unknown subcommand")


def test_select_only_db_0(c):
    assert c.call("SELECT", "0") == "OK"
    r = c.call("SELECT", "1")
    assert isinstance(r, RespError) and r.startswith("ERR DB index is out of range"), r
    assert c.call("SELECT", "x") == ERR_NOT_INT


def test_auth_without_a_password_configured_is_an_error(c):
    r = c.call("AUTH", "secret")
    assert isinstance(r, RespError) and r.startswith("ERR AUTH <password> called without any password")


# -------------------------------------------------------------- AUTH ----

def test_requirepass_noauth_wrongpass_and_auth(make_agent):
    a = make_agent("--requirepass", "s3cret")
    with a.conn() as c:
        assert c.call("GET", "k") == RespError("NOAUTH Authentication required.")
        assert c.call("SET", "k", "v") == RespError("NOAUTH Authentication required.")
        assert c.call("PING") == "PONG"
        r = c.call("AUTH", "wrong")
        assert isinstance(r, RespError) and r.startswith("WRONGPASS"), r
        r = c.call("AUTH", "nobody", "s3cret")
        assert isinstance(r, RespError) and r.startswith("WRONGPASS"), r
        assert c.call("GET", "k") == RespError("NOAUTH Authentication required.")
        r = c.call("HELLO", "2")
        assert isinstance(r, RespError) and r.startswith("NOAUTH"), r
        assert c.call("AUTH", "s3cret") == "OK"
        assert c.call("SET", "k", "v") == "OK"
        assert c.call("GET", "k") == b"v"
    with a.conn() as c:
        assert c.call("AUTH", "default", "s3cret") == "OK"
        assert c.call("GET", "k") == b"v"
    with a.conn() as c:
        reply = c.call("HELLO", "2", "AUTH", "default", "s3cret")
        assert dict(zip(reply[::2], reply[1::2]))[b"proto"] == 2
        assert c.call("GET", "k") == b"v"
    with a.conn() as c:  # QUIT is allowed before AUTH
        assert c.call("QUIT") == "OK"
        assert c.wait_closed()
    with a.conn() as c:
        assert c.call("AUTH", "s3cret") == "OK"
        assert parse_info(c.call("INFO", "stats"))["auth_failures"] == "2"


def test_redis_py_with_password(make_agent):
    import redis
    a = make_agent("--requirepass", "pw")
    r = a.redis(password="pw")
    assert r.set("a", "1") is True
    assert r.incr("a") == 2
    assert r.get("a") == b"2"
    with pytest.raises(redis.exceptions.ResponseError, match="^WRONGPASS"):
        a.redis(password="nope").get("a")
    with pytest.raises(redis.exceptions.AuthenticationError):
        a.redis().get("a")
    r.close()


# -------------------------------------------------------- maxclients ----

def connect_served(agent):
    """A connection that got PONG. A connection the client closed a moment
    ago may still hold a slot until the server reads its EOF, so a refusal
    here is retried until the deadline."""
    def attempt():
        c = agent.conn()
        if c.call("PING") == "PONG":
            return c
        c.close()
        return None
    return wait_until(attempt, 10, "the agent to accept a client")


def test_maxclients_refuses_the_extra_connection(make_agent):
    a = make_agent("--maxclients", "2")
    c1 = connect_served(a)
    c2 = connect_served(a)
    try:
        with a.conn() as c3:
            assert c3.read_reply(timeout=5) == RespError("ERR max number of clients reached")
            assert c3.wait_closed()
        assert c1.call("SET", "k", "1") == "OK"
        assert c2.call("GET", "k") == b"1"
        info = parse_info(c1.call("INFO", "clients"))
        assert info["connected_clients"] == "2" and info["maxclients"] == "2"
        c2.close()
        c4 = connect_served(a)  # the slot c2 left is free again
        assert c4.call("GET", "k") == b"1"
        c4.close()
        assert c1.call("PING") == "PONG"
        assert int(parse_info(c1.call("INFO", "stats"))["rejected_connections"]) >= 1
    finally:
        c1.close()
        c2.close()


# -------------------------------------------------------------- flags ----

@pytest.mark.parametrize("flags, message", [
    (["--tcp", "0"], "--tcp must be a port"),
    (["--tcp", "abc"], "--tcp must be a port"),
    (["--tcp", "70000"], "--tcp must be a port"),
    (["--id", "0"], "--id must be"),
    (["--fsync", "sometimes"], "--fsync must be always, everysec or no"),
    (["--maxclients", "0"], "--maxclients must be"),
    (["--max-bulk-len", "10"], "--max-bulk-len must be"),
    (["--max-bulk-len", "12zb"], "--max-bulk-len must be"),
    (["--max-query-buffer", "1k"], "--max-query-buffer must be"),
    (["--max-output-buffer", "lots"], "--max-output-buffer must be"),
    (["--peers", "nonsense"], "--peers:"),
    (["--use-mutex", "2"], "--use-mutex must be 0 or 1"),
    (["--logger-addr", "nocolon"], "--logger-addr must be HOST:PORT"),
    (["--numnodes", "-1"], "--numnodes must be"),
    (["--bogus"], "unknown flag --bogus"),
    (["stray"], "unexpected argument 'stray'"),
    (["--tcp"], "--tcp needs a value"),
])
def test_bad_agent_flag_exits_2_with_one_line(tmp_path, flags, message):
    p = run_dmkv("agent", "--data-dir", tmp_path / "d", *flags)
    assert p.returncode == 2, p
    err = p.stderr.decode()
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("dmkv agent: ") and message in err, err
    assert not (tmp_path / "d").exists(), "a refused start must not create the data directory"


def test_agent_help_lists_every_flag_and_exits_0():
    p = run_dmkv("agent", "--help")
    assert p.returncode == 0
    out = p.stdout.decode()
    for flag in ("--id", "--host", "--bind", "--tcp", "--udp", "--peers", "--logger-addr", "--use-mutex",
                 "--numnodes", "--data-dir", "--fsync", "--requirepass", "--maxclients", "--max-bulk-len",
                 "--max-query-buffer", "--max-output-buffer"):
        assert flag in out, flag
    assert "[everysec]" in out and "[10000]" in out and "[512mb]" in out


def test_prototype_flags_are_accepted(make_agent):
    udp = free_port()
    a = make_agent("--udp", udp, "--host", "127.0.0.1", "--peers", "127.0.0.1:5002:6002=2,127.0.0.1:5003=3",
                   "--logger-addr", "127.0.0.1:5000", "--use-mutex", "1", "--numnodes", "3")
    assert a.call("PING") == "PONG"
    assert a.call("CONFIG", "GET", "node-id") == [b"node-id", b"1"]


# ---------------------------------------------------- data directory ----

def run_agent_to_exit(tmp_path, data_dir, *flags):
    return run_dmkv("agent", "--tcp", free_port(), "--data-dir", data_dir, *flags, timeout=15)


def assert_one_line_exit_1(p, fragment):
    assert p.returncode == 1, p
    err = p.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("dmkv agent: ") and fragment in err, err


def test_data_dir_in_use_by_a_running_agent(agent, tmp_path):
    p = run_agent_to_exit(tmp_path, agent.data_dir)
    assert_one_line_exit_1(p, "is in use by another process")
    assert str(agent.pid) in p.stderr.decode()
    assert agent.call("PING") == "PONG"


def test_garbage_data_file_is_reported_corrupt(tmp_path):
    d = tmp_path / "garbage"
    d.mkdir()
    (d / "data.mdb").write_bytes(os.urandom(20000))
    assert_one_line_exit_1(run_agent_to_exit(tmp_path, d), "corrupt or not an LMDB store")
    (d / "data.mdb").write_bytes(b"hello\n")
    assert_one_line_exit_1(run_agent_to_exit(tmp_path, d), "corrupt or not an LMDB store")


def test_data_dir_under_a_regular_file_cannot_be_created(tmp_path):
    (tmp_path / "plainfile").write_text("x")
    p = run_agent_to_exit(tmp_path, tmp_path / "plainfile" / "sub")
    assert_one_line_exit_1(p, "cannot create data directory")
    p = run_agent_to_exit(tmp_path, tmp_path / "plainfile")
    assert_one_line_exit_1(p, "cannot create data directory")


def test_port_in_use_is_a_one_line_error(agent, tmp_path):
    p = run_dmkv("agent", "--tcp", agent.port, "--data-dir", tmp_path / "other", timeout=15)
    assert p.returncode == 1, p
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "address already in use" in err, err


# --------------------------------------------------------------- stop ----

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_agent_cleanly_with_exit_0(agent, sig):
    with agent.conn() as idle:
        assert idle.call("SET", "k", "v") == "OK"
        agent.proc.send_signal(sig)
        assert agent.wait_exit(10) == 0
        assert idle.wait_closed()
    assert "stopped; data is on disk" in agent.read_log()


def test_shutdown_command_stops_the_process(agent):
    with agent.conn() as other:
        assert other.call("PING") == "PONG"
        with agent.conn() as c:
            c.send_command("SHUTDOWN")
            assert agent.wait_exit(10) == 0
            assert c.wait_closed()
        assert other.wait_closed()
    log = agent.read_log()
    assert "SHUTDOWN requested" in log and "stopped; data is on disk" in log


def test_shutdown_with_bad_argument_is_a_syntax_error(agent):
    assert agent.call("SHUTDOWN", "BOGUS") == RespError("ERR syntax error")
    assert agent.running()


def stop_with_a_client_not_reading(agent, how):
    """Leaves ~10 MB of replies unread on one connection, then asks the
    agent to stop. Returns the exit code, or None if it was still running
    after 5 s (then it is killed)."""
    assert agent.call("SET", "mb", b"z" * (1 << 20)) == "OK"
    lazy = agent.conn()
    try:
        lazy.send_command("GET", "mb")  # first reply arrives: the client is healthy
        assert len(lazy.read_reply(timeout=10)) == 1 << 20
        lazy.send(encode_command("GET", "mb") * 10)  # and these it never reads
        wait_until(lambda: int(parse_info(agent.call("INFO", "stats"))["total_commands_processed"]) >= 13, 10,
                   "the agent to run the unread GETs")
        if how == "SIGTERM":
            agent.proc.send_signal(signal.SIGTERM)
        else:
            with agent.conn() as c:
                c.send_command("SHUTDOWN")
                assert c.wait_closed(timeout=10)
        try:
            return agent.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None
    finally:
        lazy.close()
        if agent.running():
            agent.kill9()


def test_sigterm_exits_promptly_while_a_client_is_not_reading(agent):
    assert stop_with_a_client_not_reading(agent, "SIGTERM") == 0, \
        "the agent was still running 5 s after SIGTERM while a client had unread replies"


def test_shutdown_exits_promptly_while_a_client_is_not_reading(agent):
    assert stop_with_a_client_not_reading(agent, "SHUTDOWN") == 0, \
        "the agent was still running 5 s after SHUTDOWN while a client had unread replies"


def test_query_buffer_limit_closes_a_client_with_too_much_unparsed_input(make_agent):
    a = make_agent("--max-query-buffer", "64kb", "--max-bulk-len", "1kb")
    with a.conn() as c:
        # A 100,000-argument command whose first 20,000 arguments (140 KB) arrived.
        c.send(b"*100000\r\n" + b"$1\r\na\r\n" * 20000)
        assert c.read_reply(timeout=5) == RespError(
            "ERR Protocol error: client query buffer exceeds --max-query-buffer")
        assert c.wait_closed()
    with a.conn() as c:  # well under the limit: waits for the rest and runs it
        c.send(b"*5001\r\n$4\r\nMGET\r\n" + b"$1\r\na\r\n" * 4000)
        c.send(b"$1\r\na\r\n" * 1000)
        assert c.read_reply(timeout=10) == [None] * 5000
    assert parse_info(a.call("INFO", "stats"))["client_query_limit_disconnections"] == "1"


def test_error_replies_cannot_smuggle_a_second_reply(c):
    # An unknown command named with CR LF inside must still give one error line.
    r = c.call(b"FOO\r\n+OK\r\n", b"x\r\n:1")
    assert isinstance(r, RespError) and r.startswith("ERR unknown command 'FOO  +OK  '"), r
    assert c.call("PING") == "PONG"
    r = c.call("CLIENT", "SETINFO", b"lib\r\n-ERR", "v")
    assert isinstance(r, RespError) and "\n" not in r.message and "\r" not in r.message
    assert c.call("ECHO", "next") == b"next"
