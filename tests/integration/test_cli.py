"""The client verbs (dmkv cmd/get/put/del) against live agents: output in
redis-cli's style, exit codes 0 ok / 1 error reply / 2 usage / 3
unreachable, one-line errors on stderr, --nodes / --node / $DMKV_NODES."""
import os
import socket
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import free_port, ipv6_loopback_available, run_dmkv  # noqa: E402


def dmkv(agent_or_nodes, *args, env=None):
    """Runs a verb with DMKV_NODES pointing at the agent (or a node list)."""
    nodes = agent_or_nodes if isinstance(agent_or_nodes, str) else agent_or_nodes.address
    e = {"DMKV_NODES": nodes}
    e.update(env or {})
    p = run_dmkv(*args, env=e)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def one_line(text):
    return text.count("\n") == 1 and text.endswith("\n")


def test_put_get_del_output_and_exit_codes(agent):
    assert dmkv(agent, "put", "color", "red") == (0, "OK\n", "")
    assert agent.call("GET", "color") == b"red"
    assert dmkv(agent, "get", "color") == (0, "red\n", "")
    assert dmkv(agent, "get", "missing") == (0, "(nil)\n", "")
    assert dmkv(agent, "put", "shape", "round") == (0, "OK\n", "")
    assert dmkv(agent, "del", "color", "shape", "missing") == (0, "(integer) 2\n", "")
    assert dmkv(agent, "get", "color") == (0, "(nil)\n", "")
    assert agent.call("EXISTS", "color", "shape") == 0


def test_values_with_spaces_and_binary_are_printed_readably(agent):
    assert dmkv(agent, "put", "msg", "hello world") == (0, "OK\n", "")
    assert dmkv(agent, "get", "msg") == (0, "hello world\n", "")
    assert agent.call("SET", "bin", b"a\x00b\x01") == "OK"
    assert dmkv(agent, "get", "bin") == (0, '"a\\x00b\\x01"\n', "")
    assert agent.call("SET", "empty", b"") == "OK"
    assert dmkv(agent, "get", "empty") == (0, '""\n', "")


def test_cmd_with_one_quoted_argument_is_split_like_redis_cli(agent):
    assert dmkv(agent, "cmd", 'SET msg "hello world"') == (0, "OK\n", "")
    assert agent.call("GET", "msg") == b"hello world"
    assert dmkv(agent, "cmd", r'SET esc "a\x41\tb"') == (0, "OK\n", "")
    assert agent.call("GET", "esc") == b"aA\tb"
    assert dmkv(agent, "cmd", "INCR n") == (0, "(integer) 1\n", "")
    assert dmkv(agent, "cmd", "PUT color red") == (0, "OK\n", "")


def test_cmd_with_several_arguments_sends_them_verbatim(agent):
    assert dmkv(agent, "cmd", "SET", "k", "a b") == (0, "OK\n", "")
    assert agent.call("GET", "k") == b"a b"
    assert dmkv(agent, "cmd", "SET", "quoted", '"x"') == (0, "OK\n", "")
    assert agent.call("GET", "quoted") == b'"x"'
    assert dmkv(agent, "cmd", "INCRBY", "n", "-5") == (0, "(integer) -5\n", "")
    assert dmkv(agent, "cmd", "MGET", "k", "nope", "n") == (0, "1) a b\n2) (nil)\n3) -5\n", "")
    assert dmkv(agent, "cmd", "PING") == (0, "PONG\n", "")


def test_cmd_prints_nested_and_empty_arrays(agent):
    assert dmkv(agent, "cmd", "SCAN 0") == (0, "1) 0\n2) (empty array)\n", "")
    agent.call("MSET", "a", "1", "b", "2")
    assert dmkv(agent, "cmd", "SCAN 0") == (0, "1) 0\n2) 1) a\n   2) b\n", "")


def test_error_reply_goes_to_stderr_with_exit_1(agent):
    agent.call("SET", "word", "abc")
    code, out, err = dmkv(agent, "cmd", "INCR word")
    assert (code, out) == (1, "")
    assert err == "(error) ERR value is not an integer or out of range\n"
    code, out, err = dmkv(agent, "cmd", "NOSUCHCMD x")
    assert code == 1 and out == "" and err.startswith("(error) ERR unknown command 'NOSUCHCMD'") and one_line(err)
    code, out, err = dmkv(agent, "cmd", "SET", "k" * 600, "v")
    assert code == 1 and err.startswith("(error) ERR key too long") and one_line(err)


def test_dmkv_nodes_is_the_default_and_nodes_flag_overrides_it(make_agent):
    a1 = make_agent()
    a2 = make_agent()
    a2.call("SET", "where", "two")
    a1.call("SET", "where", "one")
    assert dmkv(a1, "get", "where") == (0, "one\n", "")
    # --nodes beats $DMKV_NODES
    assert dmkv(a1, "get", "--nodes", a2.address, "where") == (0, "two\n", "")
    # and host:tcp:udp=id entries (the prototype's peer syntax) are accepted
    assert dmkv(a1, "get", "--nodes", "127.0.0.1:%d:6001=1" % a2.port, "where") == (0, "two\n", "")


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_agent_and_bracketed_node_address(make_agent):
    a = make_agent(host="::1")
    assert a.address.startswith("[::1]:")
    assert dmkv(a, "put", "six", "ipv6") == (0, "OK\n", "")
    assert dmkv(a, "get", "six") == (0, "ipv6\n", "")
    assert a.call("CONFIG", "GET", "bind") == [b"bind", b"::1"]


def test_node_flag_picks_from_a_two_node_list(make_agent):
    a1 = make_agent()
    a2 = make_agent()
    nodes = "%s,%s" % (a1.address, a2.address)
    assert dmkv(nodes, "put", "--node", "2", "only-on-two", "x") == (0, "OK\n", "")
    assert a2.call("GET", "only-on-two") == b"x"
    assert a1.call("GET", "only-on-two") is None
    assert dmkv(nodes, "get", "--node", "2", "only-on-two") == (0, "x\n", "")
    assert dmkv(nodes, "get", "--node", "1", "only-on-two") == (0, "(nil)\n", "")
    assert dmkv(nodes, "get", "only-on-two") == (0, "(nil)\n", "")  # default: node 1
    assert dmkv(nodes, "cmd", "--node", "2", "CONFIG GET port") == (0, "1) port\n2) %d\n" % a2.port, "")
    code, out, err = dmkv(nodes, "get", "--node", "3", "k")
    assert code == 2 and out == "" and one_line(err) and "only 2 nodes" in err


def test_unreachable_node_exits_3_with_one_line(tmp_path):
    port = free_port()
    code, out, err = dmkv("127.0.0.1:%d" % port, "get", "k")
    assert code == 3 and out == "" and one_line(err), err
    assert err.startswith("dmkv get: ") and "127.0.0.1:%d" % port in err
    for verb in (["put", "k", "v"], ["del", "k"], ["cmd", "PING"]):
        code, out, err = dmkv("127.0.0.1:%d" % port, *verb)
        assert code == 3 and out == "" and one_line(err), (verb, err)


def test_node_that_never_answers_times_out_with_exit_3():
    """A listener that accepts and then says nothing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    held = []

    def accept():
        try:
            held.append(srv.accept()[0])
        except OSError:
            pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        code, out, err = dmkv("127.0.0.1:%d" % port, "get", "--timeout", "300", "k")
        assert code == 3 and out == "" and one_line(err) and "timed out" in err, err
    finally:
        srv.close()
        t.join(timeout=5)
        for s in held:
            s.close()


def test_node_that_closes_the_connection_exits_3():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def accept_and_close():
        try:
            s, _ = srv.accept()
            s.recv(100)
            s.close()
        except OSError:
            pass
    t = threading.Thread(target=accept_and_close, daemon=True)
    t.start()
    try:
        code, out, err = dmkv("127.0.0.1:%d" % port, "cmd", "PING")
        assert code == 3 and out == "" and one_line(err) and "closed" in err, err
    finally:
        srv.close()
        t.join(timeout=5)


@pytest.mark.parametrize("nodes", ["bad", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:x",
                                   "127.0.0.1:5001,,127.0.0.1:5002", ""])
def test_bad_nodes_list_exits_2(nodes):
    code, out, err = dmkv("127.0.0.1:1", "get", "--nodes", nodes, "k")
    assert code == 2 and out == "" and one_line(err) and err.startswith("dmkv get: --nodes"), err


@pytest.mark.parametrize("args", [["get"], ["get", "a", "b"], ["put", "k"], ["put", "k", "v", "x"], ["del"],
                                  ["cmd"], ["cmd", ""], ["cmd", 'SET k "unbalanced'],
                                  ["get", "--node", "0", "k"], ["get", "--bogus", "k"], ["get", "--timeout", "0", "k"]])
def test_wrong_arity_and_bad_options_exit_2(agent, args):
    code, out, err = dmkv(agent, *args)
    assert code == 2 and out == "" and one_line(err) and err.startswith("dmkv %s: " % args[0]), (args, err)


def test_keys_that_look_like_options_after_double_dash(agent):
    assert dmkv(agent, "put", "--", "-1", "minus") == (0, "OK\n", "")
    assert agent.call("GET", "-1") == b"minus"
    assert dmkv(agent, "get", "--", "-1") == (0, "minus\n", "")
    assert dmkv(agent, "cmd", "DECRBY", "n", "-3") == (0, "(integer) 3\n", "")


def test_password_flag_and_env(make_agent):
    a = make_agent("--requirepass", "pw")
    code, out, err = dmkv(a, "get", "k")
    assert code == 1 and err == "(error) NOAUTH Authentication required.\n"
    assert dmkv(a, "put", "--password", "pw", "k", "v") == (0, "OK\n", "")
    assert dmkv(a, "get", "k", env={"DMKV_PASSWORD": "pw"}) == (0, "v\n", "")
    code, out, err = dmkv(a, "get", "--password", "wrong", "k")
    assert code == 1 and out == "" and one_line(err) and "WRONGPASS" in err


@pytest.mark.parametrize("verb", ["cmd", "get", "put", "del"])
def test_verb_help_exits_0(verb):
    p = run_dmkv(verb, "--help")
    assert p.returncode == 0 and p.stdout.decode().startswith("Usage: dmkv %s" % verb)
    assert "--nodes" in p.stdout.decode() and "Exit codes" in p.stdout.decode()


def test_top_level_help_version_and_unknown_verb():
    p = run_dmkv("--help")
    assert p.returncode == 0
    for verb in ("agent", "cmd", "get", "put", "del"):
        assert "  %s " % verb in p.stdout.decode()
    p = run_dmkv("version")
    assert p.returncode == 0 and p.stdout.decode().startswith("dmkv ")
    p = run_dmkv("frobnicate")
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode() == "dmkv: unknown command 'frobnicate' (see dmkv --help)\n"
    p = run_dmkv()
    assert p.returncode == 2 and b"Usage: dmkv" in p.stderr
