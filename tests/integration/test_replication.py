"""Replication of writes (--use-mutex 0): the seed prototype's scenarios on
a 3-node cluster, as asserting tests."""
import threading
import time

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



def peer_fields(info, peer_id):
    return dict(kv.split("=", 1) for kv in info["peer%d" % peer_id].split(","))


def test_writes_under_load_travel_in_fewer_batches_and_every_one_arrives(make_agent):
    """While a member's batch is unanswered, the writes that follow wait and
    go together: fewer batches than writes, and none lost."""
    import redis
    n = cluster(make_agent)
    writers, rounds, per_round = 8, 20, 50

    def writer(i):
        c = redis.Redis(host="127.0.0.1", port=n[0].port)
        for r in range(rounds):
            p = c.pipeline(transaction=False)
            for k in range(per_round):
                p.set("w%d:%d:%d" % (i, r, k), "v%d" % k)
            assert p.execute() == [True] * per_round

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    total = writers * rounds * per_round
    wait_until(lambda: all(a.call("DBSIZE") == total for a in n), 15,
               "all %d writes on every node" % total)
    for other in n[1:]:
        f = peer_fields(repl_info(n[0]), other.node_id)
        assert int(f["writes_sent"]) == total, f
        assert int(f["batches_held"]) > 0, f
        assert int(f["batches_sent"]) < total, f
        assert int(f["failures"]) == 0 and int(f["dropped"]) == 0, f


# ---- anti-entropy, tombstones, joining ----

def repl_info(a):
    return parse_info(a.call("INFO", "replication"))


def same_everywhere(nodes, keys):
    """Every node holds the same value and version for each key."""
    for k in keys:
        vals = {(a.call("GET", k), tuple(a.call("VERSION", k) or ())) for a in nodes}
        if len(vals) != 1:
            return False
    return True


def test_node_killed_while_1000_keys_are_written_elsewhere_gets_them_all_after_restart(make_agent):
    n = cluster(make_agent)
    assert n[2].call("PUT", "before", "x") == "OK"
    wait_until(lambda: n[0].call("GET", "before") == b"x", 5, "the first write to reach node 1")
    assert n[0].kill9() != 0
    r = n[1].redis()
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.set("k%04d" % i, "v%d" % i)
    assert all(pipe.execute())
    wait_until(lambda: n[2].call("DBSIZE") == 1001, 10, "node 3 to hold all 1,001 keys")
    n[0].start()
    t0 = time.monotonic()
    wait_until(lambda: n[0].call("DBSIZE") == 1001, 20, "the restarted node to hold all 1,001 keys")
    took = time.monotonic() - t0
    print("restarted node held all 1,001 keys %.2f s after its restart" % took)
    got = n[0].redis().mget(["k%04d" % i for i in range(1000)])
    assert got == [b"v%d" % i for i in range(1000)]
    info = repl_info(n[0])
    assert int(info["anti_entropy_keys_repaired"]) >= 1000, info
    wait_until(lambda: same_everywhere(n, ["k0000", "k0500", "k0999", "before"]), 10, "identical versions")


def test_delete_is_a_replicated_tombstone_and_is_collected_once_everyone_saw_it(make_agent):
    n = cluster(make_agent)
    assert n[0].call("MSET", "a", "1", "b", "2", "c", "3") == "OK"
    wait_until(lambda: all(a.call("DBSIZE") == 3 for a in n), 5, "3 keys everywhere")
    assert n[1].call("DEL", "a", "b", "nope") == 2
    wait_until(lambda: all(a.call("GET", "a") is None and a.call("GET", "b") is None for a in n), 5,
               "the delete to reach every node")
    for a in n:
        assert a.call("DBSIZE") == 1
        assert a.call("KEYS", "*") == [b"c"]
        assert a.call("EXISTS", "a", "b", "c") == 1
    # Every node has seen the delete: the tombstones go, everywhere.
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n), 15, "tombstones to be collected")
    assert all(a.call("VERSION", "a") is None for a in n)
    assert sum(int(repl_info(a)["tombstones_collected"]) for a in n) == 6
    # The key can be written again afterwards, and that replicates too.
    assert n[2].call("SET", "a", "again") == "OK"
    wait_until(lambda: all(a.call("GET", "a") == b"again" for a in n), 5, "the new write of a")
    assert n[0].call("FLUSHALL") == "OK"
    wait_until(lambda: all(a.call("DBSIZE") == 0 for a in n), 5, "FLUSHALL to reach every node")


def test_tombstones_wait_for_a_dead_member_and_the_delete_reaches_it_when_it_returns(make_agent):
    n = cluster(make_agent)
    assert n[0].call("SET", "doomed", "v") == "OK"
    wait_until(lambda: all(a.call("GET", "doomed") == b"v" for a in n), 5, "the write everywhere")
    n[2].kill9()
    assert n[0].call("DEL", "doomed") == 1
    wait_until(lambda: n[1].call("GET", "doomed") is None, 5, "the delete on node 2")
    # Node 3 has not seen the delete: nobody may forget it.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert int(repl_info(n[0])["tombstones"]) == 1
        time.sleep(0.2)
    n[2].start()
    wait_until(lambda: n[2].call("GET", "doomed") is None, 15, "the restarted node to learn of the delete")
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n), 15, "tombstones collected")
    assert all(a.call("GET", "doomed") is None for a in n)


def test_a_node_joining_an_existing_cluster_receives_the_full_data_set(make_agent):
    from dmkvtest import free_gossip_ports, peers_arg
    n = cluster(make_agent)
    r = n[0].redis()
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set("j%03d" % i, "v%d" % i)
    pipe.execute()
    wait_until(lambda: all(a.call("DBSIZE") == 500 for a in n), 10, "500 keys on every node")
    assert n[1].call("DEL", "j000") == 1
    (t, u), = free_gossip_ports(1)
    seed = peers_arg([("127.0.0.1", n[0].port, n[0].udp_port, n[0].node_id)], with_udp=True)
    new = make_agent("--udp", u, "--peers", seed, name="node9", node_id=9, port=t)
    wait_until(lambda: new.call("DBSIZE") == 499, 20, "the new node to receive all 499 keys")
    assert new.call("GET", "j000") is None
    assert new.call("GET", "j499") == b"v499"
    wait_until(lambda: same_everywhere(n + [new], ["j001", "j250", "j499"]), 10, "identical versions")
