"""Replication of writes (--use-mutex 0): the seed prototype's scenarios on
a 3-node cluster, as asserting tests."""
import signal
import threading
import time

from dmkvtest import RespError, members, parse_info, run_dmkv, start_cluster, wait_until


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


def set_keys(agent, fmt, count):
    """SETs fmt % i = "v<i>" for i < count in one pipeline; all must be OK."""
    pipe = agent.redis().pipeline(transaction=False)
    for i in range(count):
        pipe.set(fmt % i, "v%d" % i)
    assert all(pipe.execute())


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
    set_keys(n[1], "k%04d", 1000)
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


def delete_after_gossip_forgot_node_3(make_agent):
    """A 3-node cluster holding "doomed"; node 3 killed, declared dead and
    then dropped from gossip's table altogether; "doomed" deleted."""
    n = start_cluster(make_agent, 3, flags=("--dead-retain-ms", "500"))
    wait_until(lambda: all(sum(1 for m in members(a).values() if m["state"] == "alive") == 3 for a in n),
               15, "every node to see 3 alive members")
    assert n[0].call("SET", "doomed", "v") == "OK"
    wait_until(lambda: all(a.call("GET", "doomed") == b"v" for a in n), 5, "the write everywhere")
    wait_until(lambda: all(int(repl_info(a)["members_known"]) == 2 for a in n), 5, "members noted")
    n[2].kill9()
    wait_until(lambda: all(3 not in members(a) for a in n[:2]), 20, "gossip to forget node 3")
    assert n[0].call("DEL", "doomed") == 1
    wait_until(lambda: n[1].call("GET", "doomed") is None, 5, "the delete on node 2")
    return n


def test_tombstones_still_wait_for_a_dead_member_after_gossip_forgets_it(make_agent):
    n = delete_after_gossip_forgot_node_3(make_agent)
    # Node 3 did not leave: it may come back holding the value, so the
    # tombstones stay.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        for a in n[:2]:
            info = repl_info(a)
            assert int(info["tombstones"]) == 1 and int(info["members_known"]) == 2, info
        time.sleep(0.1)
    n[2].start()
    wait_until(lambda: n[2].call("GET", "doomed") is None, 15, "the returning node to learn of the delete")
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n), 15, "tombstones collected")
    assert all(a.call("GET", "doomed") is None and a.call("DBSIZE") == 0 for a in n)


def test_force_leave_of_a_dead_member_lets_its_tombstones_be_collected(make_agent):
    n = cluster(make_agent)
    assert n[0].call("SET", "doomed", "v") == "OK"
    wait_until(lambda: all(a.call("GET", "doomed") == b"v" for a in n), 5, "the write everywhere")
    wait_until(lambda: all(int(repl_info(a)["members_known"]) == 2 for a in n), 5, "members noted")
    # Only a dead member can be forced out; bad ids are refused.
    for arg, text in (("3", "member 3 is alive"), ("1", "node 1 is this node"), ("99", "no member with id 99"),
                      ("x", "node id must be"), ("0", "node id must be")):
        reply = n[0].call("FORCE-LEAVE", arg)
        assert isinstance(reply, RespError) and text in reply.message, (arg, reply)
    n[2].kill9()
    wait_until(lambda: all(members(a)[3]["state"] == "dead" for a in n[:2]), 15, "node 3 declared dead")
    assert n[0].call("DEL", "doomed") == 1
    wait_until(lambda: n[1].call("GET", "doomed") is None, 5, "the delete on node 2")
    # Node 3 is dead, not gone: the tombstones wait for it (four ticks).
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        assert all(int(repl_info(a)["tombstones"]) == 1 for a in n[:2])
        time.sleep(0.1)
    done = run_dmkv("force-leave", "--nodes", n[0].address, "3")
    assert done.returncode == 0 and done.stdout.decode() == "node 1 (%s): OK\n" % n[0].address, done
    # Node 2 hears it through gossip; both stop waiting and collect.
    wait_until(lambda: all(members(a)[3]["state"] == "left" for a in n[:2]), 5, "node 3 left everywhere")
    wait_until(lambda: all(int(repl_info(a)["members_known"]) == 1 for a in n[:2]), 5, "node 3 forgotten")
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n[:2]), 5, "tombstones collected")
    assert all(a.call("GET", "doomed") is None and a.call("DBSIZE") == 0 for a in n[:2])
    # Doing it again is harmless; the CLI reports a refusal with exit code 1.
    assert n[1].call("FORCE-LEAVE", "3") == "OK"
    refused = run_dmkv("force-leave", "--nodes", n[0].address, "2")
    assert refused.returncode == 1 and b"member 2 is alive" in refused.stdout, refused


def test_force_leave_of_a_member_gossip_has_forgotten_is_told_to_every_node(make_agent):
    n = delete_after_gossip_forgot_node_3(make_agent)
    assert all(int(repl_info(a)["tombstones"]) == 1 for a in n[:2])
    # Gossip cannot spread it any more: the client tells each node (node 3
    # is down and skipped).
    out = run_dmkv("force-leave", "--nodes", ",".join(a.address for a in n), "3")
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 0, out
    assert lines[:2] == ["node 1 (%s): OK" % n[0].address, "node 2 (%s): OK" % n[1].address], lines
    assert lines[2].startswith("node 3 (%s): skipped, " % n[2].address), lines
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n[:2]), 5, "tombstones collected")
    assert all(int(repl_info(a)["members_known"]) == 1 for a in n[:2])
    # Told twice: nothing waits for it, and no member has that id.
    again = n[0].call("FORCE-LEAVE", "3")
    assert isinstance(again, RespError) and "no member with id 3" in again.message
    # It comes back after all, with the deleted key: its check drops it.
    n[2].start()
    wait_until(lambda: n[2].call("DBSIZE") == 0 and repl_info(n[2])["verify"] == "done", 15,
               "node 3 to drop the deleted key")
    wait_until(lambda: all(int(repl_info(a)["members_known"]) == 2 for a in n), 10, "node 3 counted again")
    assert all(a.call("GET", "doomed") is None for a in n)


def test_a_node_forced_out_while_cut_off_comes_back_and_drops_keys_deleted_meanwhile(make_agent):
    n = cluster(make_agent)
    set_keys(n[0], "key%03d", 300)
    wait_until(lambda: all(a.call("DBSIZE") == 300 for a in n), 10, "300 keys everywhere")
    wait_until(lambda: all(int(repl_info(a)["members_known"]) == 2 for a in n), 5, "members noted")
    wait_until(lambda: repl_info(n[2])["verify"] == "done", 10, "node 3's own key check at its start")
    # Node 3 stops answering (SIGSTOP keeps its sockets and state): the
    # others declare it dead and an operator forces it out.
    n[2].proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: all(members(a)[3]["state"] == "dead" for a in n[:2]), 15, "node 3 declared dead")
        assert n[0].call("FORCE-LEAVE", "3") == "OK"
        wait_until(lambda: all(members(a)[3]["state"] == "left" for a in n[:2]), 5, "node 3 left everywhere")
        assert n[0].call("DEL", *["key%03d" % i for i in range(0, 300, 3)]) == 100
        wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 and a.call("DBSIZE") == 200 for a in n[:2]),
                   10, "the deletes collected on nodes 1 and 2")
        # Node 2 restarts meanwhile: what it owes node 3 is on disk.
        n[1].kill9()
        n[1].start()
        wait_until(lambda: members(n[1]).get(1, {}).get("state") == "alive" and
                   members(n[0])[2]["state"] == "alive", 10, "node 2 back")
    finally:
        n[2].proc.send_signal(signal.SIGCONT)
    # It was running all along: it refutes the leave, is alive again, and
    # checks its keys with each member that forgot it, once that member
    # counts it again.
    # (Node 2 learns of node 3 afresh: it knew it only as gone before.)
    wait_until(lambda: all(members(a).get(3, {}).get("state") == "alive" for a in n[:2]), 15, "node 3 alive again")
    wait_until(lambda: all(a.call("DBSIZE") == 200 for a in n), 15, "200 keys everywhere")
    wait_until(lambda: int(repl_info(n[2])["verify_rechecks"]) == 2 and repl_info(n[2])["verify"] == "done", 15,
               "node 3 to check its keys with nodes 1 and 2")
    info = repl_info(n[2])
    assert int(info["verify_keys_removed"]) == 100, info
    for a in n:
        got = a.redis().mget(["key%03d" % i for i in range(300)])
        assert got == [None if i % 3 == 0 else b"v%d" % i for i in range(300)]
    wait_until(lambda: all(int(repl_info(a)["members_known"]) == 2 for a in n), 5, "node 3 counted again")


def test_a_node_that_left_and_returns_drops_keys_deleted_while_it_was_away(make_agent):
    n = cluster(make_agent)
    set_keys(n[0], "key%04d", 3000)
    wait_until(lambda: all(a.call("DBSIZE") == 3000 for a in n), 10, "3,000 keys everywhere")
    # A graceful stop is a leave: the others stop waiting for node 3.
    n[2].stop()
    wait_until(lambda: all(members(a).get(3, {}).get("state") == "left" for a in n[:2]), 10, "node 3 to leave")
    assert n[0].call("DEL", *["key%04d" % i for i in range(0, 3000, 3)]) == 1000
    assert n[1].call("SET", "key0001", "new") == "OK"
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n[:2]), 15, "tombstones collected")
    # It comes back with the deleted keys, which no one can send it a
    # delete for any more: it asks a member, and drops them.
    n[2].start()
    wait_until(lambda: repl_info(n[2])["verify"] == "done", 15, "node 3 to check its keys")
    info = repl_info(n[2])
    assert int(info["verify_keys_checked"]) == 3000, info
    assert int(info["verify_keys_removed"]) == 1000, info
    wait_until(lambda: all(a.call("DBSIZE") == 2000 for a in n), 10, "2,000 keys everywhere")
    for a in n:
        got = a.redis().mget(["key%04d" % i for i in range(3000)])
        assert got == [None if i % 3 == 0 else b"new" if i == 1 else b"v%d" % i for i in range(3000)]
    # The others checked nothing away: they never left.
    assert all(int(repl_info(a)["verify_keys_removed"]) == 0 for a in n[:2])


def test_a_delete_that_wins_a_conflict_is_collected_once_everyone_holds_the_resolution(make_agent):
    n = cluster(make_agent)
    assert n[0].call("SET", "k", "v") == "OK"
    wait_until(lambda: all(a.call("GET", "k") == b"v" for a in n), 5, "the write everywhere")
    # Node 3 has noted its members (a restarted node keeps waiting for them).
    wait_until(lambda: int(repl_info(n[2])["members_known"]) == 2, 5, "node 3 to note both members")
    # Node 3 is down while node 1 overwrites the key...
    n[2].kill9()
    assert n[0].call("SET", "k", "overwritten") == "OK"
    wait_until(lambda: n[1].call("GET", "k") == b"overwritten", 5, "the overwrite on node 2")
    put_lamport = n[0].call("VERSION", "k")[1]
    n[0].kill9()
    n[1].kill9()
    # ...then deletes it alone, without having seen the overwrite, at a
    # later Lamport time: the delete wins the conflict everywhere.
    n[2].start()
    # Alone after its restart, it still counts the others as members (they
    # are down, they did not leave), so a delete stays a tombstone for them.
    deadline = time.monotonic() + 1  # four replication ticks
    while time.monotonic() < deadline:
        assert int(repl_info(n[2])["members_known"]) == 2
        time.sleep(0.1)
    r = n[2].redis()
    for i in range(200):
        pipe = r.pipeline(transaction=False)
        for j in range(100):
            pipe.set("filler", "%d" % (i * 100 + j))
        pipe.execute()
        if n[2].call("VERSION", "filler")[1] > put_lamport:
            break
    assert n[2].call("VERSION", "filler")[1] > put_lamport
    assert n[2].call("DEL", "k") == 1
    assert int(repl_info(n[2])["tombstones"]) == 1
    n[0].start()
    n[1].start()
    wait_until(lambda: all(a.call("GET", "k") is None for a in n), 15, "the delete to win everywhere")
    assert sum(int(repl_info(a)["conflicts"]) for a in n) >= 1
    # The merged tombstone goes too, on every node, once each holds it and
    # has seen both writes; the key stays deleted.
    wait_until(lambda: all(int(repl_info(a)["tombstones"]) == 0 for a in n), 20, "merged tombstones collected")
    for a in n:
        assert int(repl_info(a)["tombstones_collected"]) >= 1
        assert a.call("VERSION", "k") is None
        assert a.call("GET", "k") is None
        assert a.call("GET", "filler") is not None
    assert n[0].call("SET", "k", "back") == "OK"
    wait_until(lambda: all(a.call("GET", "k") == b"back" for a in n), 5, "a new write of the key")


def test_a_node_whose_data_directory_was_replaced_reads_its_writes_back_and_numbers_new_ones_after(make_agent):
    import shutil
    n = cluster(make_agent)
    set_keys(n[2], "mine%02d", 20)
    wait_until(lambda: all(a.call("DBSIZE") == 20 for a in n), 5, "node 3's writes everywhere")
    n[2].kill9()
    shutil.rmtree(n[2].data_dir)
    n[2].start()
    # Its own earlier writes come back from the others...
    wait_until(lambda: n[2].call("DBSIZE") == 20, 15, "node 3 to read its writes back")
    assert n[2].redis().mget(["mine%02d" % i for i in range(20)]) == [b"v%d" % i for i in range(20)]
    wait_until(lambda: int(repl_info(n[2])["write_seq"]) >= 20, 5, "node 3 to count them")
    # ...and its new writes are numbered after them, so the others take them.
    wait_until(lambda: n[2].call("SET", "fresh", "x") == "OK", 10, "node 3 to take writes")
    assert n[2].call("SET", "mine01", "new") == "OK"
    wait_until(lambda: all(a.call("GET", "fresh") == b"x" and a.call("GET", "mine01") == b"new" for a in n),
               10, "the new writes everywhere")
    wait_until(lambda: same_everywhere(n, ["fresh", "mine01", "mine02"]), 10, "identical versions")
    assert all(a.call("DBSIZE") == 21 for a in n)


def test_a_node_joining_an_existing_cluster_receives_the_full_data_set(make_agent):
    from dmkvtest import free_gossip_ports, peers_arg
    n = cluster(make_agent)
    set_keys(n[0], "j%03d", 500)
    wait_until(lambda: all(a.call("DBSIZE") == 500 for a in n), 10, "500 keys on every node")
    assert n[1].call("DEL", "j000") == 1
    (t, u), = free_gossip_ports(1)
    seed = peers_arg([("127.0.0.1", n[0].port, n[0].udp_port, n[0].node_id)], with_udp=True)
    new = make_agent("--udp", u, "--peers", seed, name="node9", node_id=9, port=t)
    wait_until(lambda: new.call("DBSIZE") == 499, 20, "the new node to receive all 499 keys")
    assert new.call("GET", "j000") is None
    assert new.call("GET", "j499") == b"v499"
    wait_until(lambda: same_everywhere(n + [new], ["j001", "j250", "j499"]), 10, "identical versions")
