"""Replication of writes (--use-mutex 0): the seed prototype's scenarios on
a 3-node cluster, as asserting tests."""
import threading

from dmkvtest import members, parse_info, start_cluster, wait_until


def cluster(make_agent):
    nodes = start_cluster(make_agent, 3)
    wait_until(lambda: all(sum(1 for m in members(a).values() if m["state"] == "alive") == 3 for a in nodes),
               15, "every node to see 3 alive members")
    return nodes


def values(nodes, key):
    return [a.call("GET", key) for a in nodes]


def test_put_on_node_1_is_read_on_node_2(make_agent):
    n = cluster(make_agent)
    assert n[0].call("PUT", "color", "red") == "OK"
    wait_until(lambda: n[1].call("GET", "color") == b"red", 5, "node 2 to read the write")
    wait_until(lambda: n[2].call("GET", "color") == b"red", 5, "node 3 to read the write")
    # The version travels with the value.
    assert n[1].call("VERSION", "color")[2] == n[0].node_id


def test_conflicting_puts_on_two_nodes_converge_everywhere(make_agent):
    n = cluster(make_agent)
    assert n[1].call("PUT", "color", "red") == "OK"
    assert n[2].call("PUT", "color", "blue") == "OK"
    wait_until(lambda: len(set(values(n, "color"))) == 1 and values(n, "color")[0] in (b"red", b"blue"), 5,
               "every node to hold the same value")
    versions = [a.call("VERSION", "color") for a in n]
    assert versions[0] == versions[1] == versions[2], versions


def test_100_races_of_concurrent_puts_always_converge_and_conflicts_are_counted(make_agent):
    n = cluster(make_agent)
    conns = [[a.conn() for _ in range(1)][0] for a in n[:2]]
    for r in range(100):
        barrier = threading.Barrier(2)
        replies = [None, None]

        def put(i):
            barrier.wait(timeout=5)
            replies[i] = conns[i].call("PUT", "race", "v%d-node%d" % (r, i + 1))

        threads = [threading.Thread(target=put, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert replies == ["OK", "OK"]
        wait_until(lambda: len(set(values(n, "race"))) == 1 and values(n, "race")[0].startswith(b"v%d-" % r),
                   5, "race %d to converge" % r)
        vs = [a.call("VERSION", "race") for a in n]
        assert vs[0] == vs[1] == vs[2]
    for c in conns:
        c.close()
    conflicts = sum(int(parse_info(a.call("INFO", "replication"))["conflicts"]) for a in n)
    print("conflicts detected over 100 races: %d" % conflicts)
    assert conflicts > 0


def test_redis_py_clients_writing_to_all_three_nodes_at_once_converge(make_agent):
    import redis
    n = cluster(make_agent)
    clients = [redis.Redis(host="127.0.0.1", port=a.port) for a in n]

    def writer(i):
        for k in range(200):
            clients[i].set("key:%d" % k, "node%d-%d" % (i + 1, k))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    def converged():
        for k in range(200):
            vals = {c.get("key:%d" % k) for c in clients}
            if len(vals) != 1:
                return False
        return True

    wait_until(converged, 15, "all 200 keys to converge on all 3 nodes")
