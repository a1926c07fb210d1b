"""VERSION key: the stored version every write carries (vector clock,
Lamport time, origin node, fencing token, tombstone), kept across
restarts."""


def test_every_write_gets_a_new_version_from_the_node_clock(make_agent):
    a = make_agent(node_id=7)
    assert a.call("VERSION", "k") is None
    assert a.call("SET", "k", "1") == "OK"
    v1 = a.call("VERSION", "k")
    assert v1[0] == b"{7:1}" and v1[1] == 1 and v1[2] == 7 and v1[3] == 0 and v1[4] == 0
    assert a.call("INCR", "k") == 2
    assert a.call("MSET", "x", "1", "k", "5") == "OK"
    v2 = a.call("VERSION", "k")
    assert v2[0] == b"{7:4}" and v2[1] == 4 and v2[2] == 7
    assert a.call("VERSION", "x")[1] == 3


def test_the_node_clock_survives_a_restart_so_versions_keep_rising(make_agent):
    a = make_agent(node_id=3)
    for i in range(5):
        assert a.call("SET", "k%d" % i, "v") == "OK"
    a.restart()
    assert a.call("VERSION", "k4")[1] == 5
    assert a.call("SET", "k", "after") == "OK"
    v = a.call("VERSION", "k")
    assert v[0] == b"{3:6}" and v[1] == 6
