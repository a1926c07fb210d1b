"""The agent's RESP2 / inline protocol over raw sockets: protocol errors get
Redis's message and close the connection, command errors do not, binary
data, pipelines, trickled and huge requests, slow readers and bad clients
never disturb other clients."""
import os
import random
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import RespError, encode_command  # noqa: E402

MB = 1 << 20


def assert_protocol_error_closes(agent, request, message):
    """Sends request on a fresh connection; the reply must be
    '-ERR Protocol error: <message>' and the server must then close."""
    with agent.conn() as c:
        c.send(request)
        reply = c.read_reply(timeout=5)
        assert reply == RespError("ERR Protocol error: " + message)
        assert c.wait_closed(timeout=5), "server kept the connection open after a protocol error"
        assert c.buf == b"", "bytes after the protocol error reply: %r" % bytes(c.buf[:100])
    # The server itself is unharmed.
    assert agent.call("PING") == "PONG"


def test_inline_request_over_64kib_without_newline_is_too_big(agent):
    assert_protocol_error_closes(agent, b"a" * (64 * 1024 + 100), "too big inline request")


def test_inline_line_limit_is_64kib(agent):
    with agent.conn() as c:  # 65,536 bytes before the LF (CR included) is the most
        assert c.inline(b"ECHO " + b"x" * (64 * 1024 - 6)) == b"x" * (64 * 1024 - 6)
    assert_protocol_error_closes(agent, b"ECHO " + b"x" * (64 * 1024 - 5) + b"\r\n", "too big inline request")


def test_overlong_count_lines_are_refused(agent):
    assert_protocol_error_closes(agent, b"*" + b"1" * 70000, "too big mbulk count string")
    assert_protocol_error_closes(agent, b"*1\r\n$" + b"1" * 70000, "too big bulk count string")
    assert_protocol_error_closes(agent, b"*" + b"1" * 30 + b"\r\n", "invalid multibulk length")
    assert_protocol_error_closes(agent, b"*1\r\n$" + b"1" * 30 + b"\r\n", "invalid bulk length")


def test_non_canonical_counts_are_invalid(agent):
    assert_protocol_error_closes(agent, b"*01\r\n$4\r\nPING\r\n", "invalid multibulk length")
    assert_protocol_error_closes(agent, b"*+1\r\n$4\r\nPING\r\n", "invalid multibulk length")
    assert_protocol_error_closes(agent, b"*1\n$4\r\nPING\r\n", "invalid multibulk length")
    assert_protocol_error_closes(agent, b"*1\r\n$04\r\nPING\r\n", "invalid bulk length")


def test_non_numeric_multibulk_count_is_invalid(agent):
    assert_protocol_error_closes(agent, b"*abc\r\n", "invalid multibulk length")


def test_multibulk_count_over_the_argument_limit_is_invalid(agent):
    assert_protocol_error_closes(agent, b"*3000000\r\n", "invalid multibulk length")


def test_bulk_header_without_dollar_names_the_byte(agent):
    assert_protocol_error_closes(agent, b"*1\r\nfoo\r\n", "expected '$', got 'f'")


def test_negative_bulk_length_is_invalid(agent):
    assert_protocol_error_closes(agent, b"*1\r\n$-1\r\n", "invalid bulk length")


def test_bulk_longer_than_declared_is_a_protocol_error(agent):
    assert_protocol_error_closes(agent, b"*1\r\n$3\r\nPINGx\r\n", "expected CRLF after bulk data")


def test_bulk_over_default_max_bulk_len_is_invalid(agent):
    # 512 MB is the default limit; the header alone must be refused.
    assert_protocol_error_closes(agent, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (512 * MB + 1),
                                 "invalid bulk length")


def test_unbalanced_quotes_in_inline_request(agent):
    assert_protocol_error_closes(agent, b'SET k "abc\r\n', "unbalanced quotes in request")
    assert_protocol_error_closes(agent, b"SET k 'abc\r\n", "unbalanced quotes in request")
    assert_protocol_error_closes(agent, b'SET k "a"b\r\n', "unbalanced quotes in request")


def test_max_bulk_len_1kb_refuses_a_2kb_bulk_but_takes_1kb(make_agent):
    a = make_agent("--max-bulk-len", "1kb")
    with a.conn() as c:
        assert c.call("SET", "k", b"x" * 1024) == "OK"
        assert c.call("GET", "k") == b"x" * 1024
    assert_protocol_error_closes(a, encode_command("SET", "k", b"y" * 2048), "invalid bulk length")
    assert a.call("CONFIG", "GET", "proto-max-bulk-len") == [b"proto-max-bulk-len", b"1024"]
    assert a.call("GET", "k") == b"x" * 1024


def test_unknown_command_and_wrong_arity_keep_the_connection_usable(agent):
    with agent.conn() as c:
        assert c.inline("FOO bar baz") == RespError(
            "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ")
        assert c.call("nosuchcmd") == RespError("ERR unknown command 'nosuchcmd', with args beginning with: ")
        assert c.call("GET") == RespError("ERR wrong number of arguments for 'get' command")
        assert c.call("SET", "k") == RespError("ERR wrong number of arguments for 'set' command")
        assert c.inline("GET a b") == RespError("ERR wrong number of arguments for 'get' command")
        assert c.call("SET", "k", "v") == "OK"
        assert c.call("GET", "k") == b"v"
        assert not c.wait_closed(timeout=0.2)


def test_binary_values_and_keys_round_trip(agent):
    value = b"a\r\nb\x00c\r\n\xff\xfe" + bytes(range(256))
    key = b"bin\x00key\r\n"
    with agent.conn() as c:
        assert c.call("SET", key, value) == "OK"
        assert c.call("GET", key) == value
        assert c.call("STRLEN", key) == len(value)
        assert c.call("EXISTS", key) == 1
        assert c.call("GET", b"bin") is None  # the NUL does not truncate the key
        assert c.call("MGET", key, b"bin\x00") == [value, None]
        assert c.call("ECHO", value) == value


def test_pipeline_of_1000_commands_in_one_send_is_answered_in_order(agent):
    cmds, expected = [], []
    counter = 0
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            cmds.append(encode_command("SET", "p:%d" % i, "v%d" % i))
            expected.append("OK")
        elif kind == 1:
            cmds.append(encode_command("GET", "p:%d" % (i - 1)))
            expected.append(b"v%d" % (i - 1))
        elif kind == 2:
            counter += 1
            cmds.append(encode_command("INCR", "p:counter"))
            expected.append(counter)
        else:
            cmds.append(b"ECHO e%d\r\n" % i)  # inline commands mixed in
            expected.append(b"e%d" % i)
    with agent.conn() as c:
        c.send(b"".join(cmds))
        replies = c.read_replies(1000, timeout=30)
        assert replies == expected
        assert c.call("GET", "p:counter") == b"250"


def test_request_sent_one_byte_at_a_time(agent):
    req = encode_command("SET", "trickle", "hello") + b"GET trickle\r\n"
    assert len(req) <= 60
    with agent.conn() as c:
        for i in range(len(req)):
            c.send(req[i:i + 1])
            time.sleep(0.003)  # pacing only: 60 sends at most
        assert c.read_replies(2, timeout=5) == ["OK", b"hello"]


def test_pipeline_split_at_random_byte_boundaries(agent):
    rnd = random.Random(11)
    cmds, expected = [], []
    for i in range(150):
        v = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 40)))  # may hold \r\n, \0
        if i % 3 == 0:
            cmds += [encode_command("SET", "r%d" % i, v), encode_command("GET", "r%d" % i)]
            expected += ["OK", v]
        elif i % 3 == 1:
            cmds.append(b"ECHO inline%d\r\n" % i)
            expected.append(b"inline%d" % i)
        else:
            cmds.append(encode_command("ECHO", v))
            expected.append(v)
    data = b"".join(cmds)
    with agent.conn() as c:
        pos = sends = 0
        while pos < len(data):
            k = rnd.randint(1, 60)
            c.send(data[pos:pos + k])
            pos += k
            sends += 1
            time.sleep(0.0005)  # pacing only, so pieces arrive in separate reads
        assert sends < 400
        assert c.read_replies(len(expected), timeout=10) == expected


def test_10mb_value_round_trips(agent):
    value = bytes(random.Random(7).getrandbits(8) for _ in range(4096)) * (10 * MB // 4096)
    assert len(value) == 10 * MB
    with agent.conn() as c:
        assert c.call("SET", "big", value, timeout=30) == "OK"
        assert c.call("STRLEN", "big") == 10 * MB
        assert c.call("GET", "big", timeout=30) == value


def test_slow_reader_gets_every_reply_and_does_not_block_others(agent):
    value = bytes(random.Random(3).getrandbits(8) for _ in range(1024)) * 1024
    assert agent.call("SET", "mb", value) == "OK"
    n = 300
    reader = agent.conn()
    try:
        reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        reader.send(encode_command("GET", "mb") * n)
        # While the reader reads nothing, the server keeps serving others.
        for i in range(20):
            with agent.conn() as other:
                assert other.call("PING", timeout=5) == "PONG"
                assert other.call("SET", "other%d" % i, "x", timeout=5) == "OK"
        # Now read all 300 replies, checking each as it streams in.
        one = b"$%d\r\n" % len(value) + value + b"\r\n"
        total = len(one) * n
        got = 0
        deadline = time.monotonic() + 60
        chunk = bytearray(4 * MB)
        view = memoryview(chunk)
        reader.sock.settimeout(10)
        while got < total:
            assert time.monotonic() < deadline, "read only %d of %d bytes" % (got, total)
            k = reader.sock.recv_into(view, min(len(chunk), total - got))
            assert k > 0, "connection closed after %d of %d bytes" % (got, total)
            off = got % len(one)
            pos = 0
            while pos < k:  # compare against the repeating expected reply
                take = min(k - pos, len(one) - off)
                if view[pos:pos + take] != one[off:off + take]:
                    pytest.fail("reply bytes differ at stream offset %d" % (got + pos))
                pos += take
                off = 0
            got += k
        assert reader.call("PING") == "PONG"
    finally:
        reader.close()


def test_bad_client_does_not_stop_the_server_serving_others(agent):
    with agent.conn() as good:
        assert good.call("SET", "g", "1") == "OK"
        with agent.conn() as bad:
            bad.send(b"*1\r\n$5\r\n\x00\x01\x02garbage-garbage\r\n\r\n")
            assert isinstance(bad.read_reply(), RespError)
            assert bad.wait_closed()
        assert good.call("INCR", "g") == 2
        with agent.conn() as fresh:
            assert fresh.call("GET", "g") == b"2"


def test_random_garbage_never_crashes_the_server(agent):
    rnd = random.Random(1234)
    prefixes = [b"*", b"$", b"*2\r\n$", b"*1\r\n$4\r\n", b"", b"SET ", b'"', b"*-5\r\n", b"*2\r\n$3\r\nGET\r\n"]
    for i in range(150):
        junk = rnd.choice(prefixes) + bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
        with agent.conn() as c:
            c.send(junk)
            c.sock.shutdown(socket.SHUT_WR)
            c.wait_closed(timeout=5)
    assert agent.running()
    with agent.conn() as c:
        assert c.call("PING") == "PONG"
        assert c.call("SET", "after-garbage", "ok") == "OK"


def test_inline_commands_with_quotes_and_escapes(agent):
    with agent.conn() as c:
        assert c.inline('SET k "a b"') == "OK"
        assert c.call("GET", "k") == b"a b"
        assert c.inline(r'SET k3 "tab\there\x41\n"') == "OK"
        assert c.call("GET", "k3") == b"tab\thereA\n"
        assert c.inline("SET k4 'single \"quoted\"'") == "OK"
        assert c.call("GET", "k4") == b'single "quoted"'
        # Empty lines are skipped; spaces around arguments do not matter.
        assert c.inline('\r\n\r\n  GET   k  ') == b"a b"


def test_requests_then_half_close_still_get_every_reply(agent):
    """Like `printf 'SET a 1\\r\\nGET a\\r\\n' | nc -N host port`."""
    with agent.conn() as c:
        c.send(b"".join(encode_command("SET", "hc:%d" % i, "v") for i in range(3000)) + b"GET hc:0\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        replies = c.read_replies(3001, timeout=20)
        assert replies == ["OK"] * 3000 + [b"v"]
        assert c.wait_closed()
    assert agent.call("DBSIZE") == 3000


def test_writes_before_a_protocol_error_are_kept_and_answered(agent):
    with agent.conn() as c:
        c.send(b"SET before-error 1\r\nINCR before-error\r\n*abc\r\nSET after-error 1\r\n")
        assert c.read_replies(2) == ["OK", 2]
        assert c.read_reply() == RespError("ERR Protocol error: invalid multibulk length")
        assert c.wait_closed()
    assert agent.call("GET", "before-error") == b"2"
    assert agent.call("EXISTS", "after-error") == 0


def test_quit_replies_ok_and_closes_without_running_the_rest(agent):
    with agent.conn() as c:
        c.send(b"QUIT\r\nSET after-quit 1\r\n")
        assert c.read_reply() == "OK"
        assert c.wait_closed()
    assert agent.call("EXISTS", "after-quit") == 0
