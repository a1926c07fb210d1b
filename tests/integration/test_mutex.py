"""--use-mutex 1: writes serialized through the lock coordinator (a Raft-
replicated lock table), so concurrent read-modify-writes lose nothing and
every replica ends with the same value; the same load without the mutex
is run for comparison."""
import threading
import time

from dmkvtest import members, parse_info, start_cluster, wait_until


def cluster(make_agent, mode):
    nodes = start_cluster(make_agent, 3, flags=("--use-mutex", str(mode)))
    wait_until(lambda: all(sum(1 for m in members(a).values() if m["state"] == "alive") == 3 for a in nodes),
               15, "every node to see 3 alive members")
    wait_until(lambda: all(a.call("LEADER") not in (None, []) for a in nodes), 10, "a lock coordinator leader")
    wait_until(lambda: all(parse_info(a.call("INFO", "coordinator"))["coordinator_ready"] == 1 for a in nodes),
               10, "every coordinator ready")
    return nodes


def incr_load(nodes, clients=4, each=500):
    errors = []

    def worker(i):
        r = nodes[i % len(nodes)].redis()
        try:
            for _ in range(each):
                r.incr("counter")
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return time.monotonic() - t0, errors


def test_4_clients_x_500_incr_over_3_nodes_count_exactly_2000_with_the_mutex(make_agent):
    n = cluster(make_agent, 1)
    took, errors = incr_load(n)
    assert errors == []
    wait_until(lambda: all(a.call("GET", "counter") == b"2000" for a in n), 10, "2000 on every node")
    print("mutex: 4 x 500 INCR over 3 nodes -> 2000 on every node in %.2f s" % took)
    # The writes carried fencing tokens from grants of the coordinator;
    # every INCR ran under a grant, on its own or sharing its node's.
    v = n[0].call("VERSION", "counter")
    info = [parse_info(a.call("INFO", "coordinator")) for a in n]
    assert 0 < v[3] <= int(info[0]["last_token"]), v
    assert sum(int(i["mutex_writes"]) for i in info) == 2000
    grants = sum(int(i["mutex_grants"]) for i in info)
    shared = sum(int(i["mutex_shared_writes"]) for i in info)
    assert 0 < grants <= int(info[0]["last_token"])
    assert grants + shared == 2000, (grants, shared)
    print("mutex: %d grants, %d writes shared a grant" % (grants, shared))
    # Serialized writes wait for every member's answer: their batches are
    # never held back behind an earlier one.
    for a in n:
        repl = parse_info(a.call("INFO", "replication"))
        for name, line in repl.items():
            if name.startswith("peer") and name[4:].isdigit():
                assert ",batches_held=0," in line, line


def test_a_node_busy_with_one_key_lets_another_node_write_it(make_agent):
    """Pipelining clients on a follower keep the key's lock busy (their
    writes share the node's hold); a writer on the Raft leader still gets
    its turn, because the follower closes its hold once it sees the writer
    waiting, and no update is lost. The follower learns of the wait from
    its own apply of the leader's entry, so the leader must not leave that
    to its next heartbeat: the hold would fall idle first."""
    nodes = cluster(make_agent, 1)
    leader_id = nodes[0].call("LEADER")[0]
    leader = next(a for a in nodes if a.node_id == leader_id)
    busy = next(a for a in nodes if a is not leader)
    n = [busy, leader] + [a for a in nodes if a is not leader and a is not busy]
    stop = threading.Event()
    done = [0] * 6
    errors = []

    def hammer(i):
        r = n[0].redis()
        try:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                # Pipelined: the next INCR is already there when one is
                # answered, so the follower's hold seldom falls idle
                # (only while every client is between two pipelines).
                p = r.pipeline(transaction=False)
                for _ in range(20):
                    p.incr("hot")
                p.execute()
                done[i] += 20
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sum(done) >= 400, 20, "the follower's clients to get going")
        other = n[1].redis()
        worst = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            other.incr("hot")
            worst = max(worst, time.monotonic() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    # The follower's hold stops taking writes as soon as the leader's
    # writer waits (or after 1 s at most), so none of its INCRs waits long.
    assert worst < 3.0, worst
    total = sum(done) + 10
    wait_until(lambda: all(a.call("GET", "hot") == str(total).encode() for a in n), 10,
               "%d on every node" % total)
    info = parse_info(n[0].call("INFO", "coordinator"))
    assert int(info["mutex_shared_writes"]) > 0, info
    # Most of the leader's INCRs find the follower's hold busy and close it
    # (one that comes while every client is between pipelines finds it
    # idle instead). A follower that learned of the wait only at the next
    # heartbeat often let the hold fall idle first: 0 or 1 closed.
    assert int(info["mutex_holds_closed"]) >= 5, info
    print("follower: %d INCRs by 6 clients, %d grants, %d holds closed; leader: 10 INCRs, slowest %.3f s"
          % (sum(done), int(info["mutex_grants"]), int(info["mutex_holds_closed"]), worst))


def test_the_same_load_without_the_mutex_is_reported(make_agent):
    n = cluster(make_agent, 0)
    took, errors = incr_load(n)
    assert errors == []
    wait_until(lambda: len({a.call("GET", "counter") for a in n}) == 1, 15, "replicas to converge")
    final = int(n[0].call("GET", "counter"))
    print("no mutex: 4 x 500 INCR over 3 nodes -> %d (%d updates lost) in %.2f s" % (final, 2000 - final, took))
    assert 0 < final <= 2000


def test_prototype_test3_race_of_two_puts_50_times_every_replica_agrees(make_agent):
    n = cluster(make_agent, 1)
    conns = [n[0].conn(), n[1].conn()]
    for r in range(50):
        barrier = threading.Barrier(2)
        replies = [None, None]
        vals = ["blue%d" % r, "green%d" % r]

        def put(i):
            barrier.wait(timeout=5)
            replies[i] = conns[i].call("PUT", "color", vals[i])

        ts = [threading.Thread(target=put, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=20)
        assert replies == ["OK", "OK"], replies
        # Serialized: both writes were acknowledged by every replica
        # before their replies, so all hold the same, later value now.
        got = [a.call("GET", "color") for a in n]
        assert len(set(got)) == 1 and got[0].decode() in vals, got
        versions = [a.call("VERSION", "color") for a in n]
        assert versions[0] == versions[1] == versions[2]
    for c in conns:
        c.close()
    conflicts = sum(int(parse_info(a.call("INFO", "replication"))["conflicts"]) for a in n)
    assert conflicts == 0


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _vclock(entries):
    out, prev = _varint(len(entries)), 0
    for node, counter in sorted(entries.items()):
        out += _varint(node - prev) + _varint(counter)
        prev = node
    return out


def repl_batch(sender, key, value, token, lamport, clock):
    """A DMKV.REPL batch holding one record, in the documented wire forms
    (src/replicate/replicate.h, src/store/record.c)."""
    import struct
    vc = _vclock(clock)
    rec = struct.pack("<BBIQQQQH", 2, 0, sender, lamport, token, 1, 0, len(vc)) + vc + value
    head = struct.pack("<BIQH", 1, sender, lamport, len(vc)) + vc + bytes([0])
    return head + struct.pack("<I", 1) + struct.pack("<H", len(key)) + key + struct.pack("<I", len(rec)) + rec


def test_a_replica_refuses_a_write_older_than_the_token_it_holds(make_agent):
    n = cluster(make_agent, 1)
    assert n[0].call("SET", "fenced", "new") == "OK"
    wait_until(lambda: all(a.call("GET", "fenced") == b"new" for a in n), 5, "the write everywhere")
    token = n[0].call("VERSION", "fenced")[3]
    assert token > 0
    # A write whose clock dominates everything but whose token is older
    # than the one held (a holder that lost its lock) is refused...
    big = {1: 10**6, 2: 10**6, 3: 10**6, 99: 1}
    stale = repl_batch(99, b"fenced", b"stale", token - 1, 10**6, big)
    assert n[2].call("DMKV.REPL", stale) == "OK"
    assert n[2].call("GET", "fenced") == b"new"
    assert parse_info(n[2].call("INFO", "replication"))["writes_fenced"] == 1
    # ... while the same write with a newer token replaces the value.
    fresh = repl_batch(99, b"fenced", b"fresh", token + 1, 10**6, big)
    assert n[2].call("DMKV.REPL", fresh) == "OK"
    assert n[2].call("GET", "fenced") == b"fresh"


def test_every_lock_is_released_after_each_serialized_write(make_agent):
    n = cluster(make_agent, 1)
    for i in range(20):
        assert n[i % 3].call("SET", "k%d" % (i % 4), "v%d" % i) == "OK"
    wait_until(lambda: all(a.call("LOCKS") == [] for a in n), 5, "no lock left held")


def test_a_node_with_the_other_mode_is_refused_at_join(make_agent):
    from dmkvtest import free_gossip_ports, peers_arg
    n = cluster(make_agent, 1)
    (t, u), = free_gossip_ports(1)
    seed = peers_arg([("127.0.0.1", n[0].port, n[0].udp_port, n[0].node_id)], with_udp=True)
    odd = make_agent("--udp", u, "--peers", seed, "--use-mutex", "0", name="node9", node_id=9, port=t)
    wait_until(lambda: odd.proc.poll() is not None, 15, "the node with the other mode to stop")
    assert odd.proc.returncode == 1
    assert "refused: this cluster runs --use-mutex 1" in odd.read_log()
    # The cluster itself carries on, in its mode.
    assert n[0].call("INCR", "still") == 1
    assert all(a.proc.poll() is None for a in n)


def test_a_fourth_node_is_added_to_the_coordinator_with_raft_add(make_agent):
    from dmkvtest import free_gossip_ports, peers_arg
    n = cluster(make_agent, 0)
    (t, u), = free_gossip_ports(1)
    seed = peers_arg([("127.0.0.1", n[0].port, n[0].udp_port, n[0].node_id)], with_udp=True)
    new = make_agent("--udp", u, "--peers", seed, "--raft-join", name="node4", node_id=4, port=t)
    leader_id, leader_addr, _ = n[0].call("LEADER")
    leader = next(a for a in n if a.node_id == leader_id)
    # Not the leader: the command says where to go.
    follower = next(a for a in n if a.node_id != leader_id)
    err = follower.call("RAFT", "ADD", 4, "127.0.0.1:%d" % (t + 2000))
    assert "not the leader" in str(err)
    assert leader.call("RAFT", "ADD", 4, "127.0.0.1:%d" % (t + 2000)) == "OK"
    wait_until(lambda: parse_info(new.call("INFO", "coordinator"))["raft_voters"] == 4, 10,
               "the new node to see 4 voters")
    wait_until(lambda: parse_info(new.call("INFO", "coordinator"))["raft_leader"] == leader_id, 10,
               "the new node to know the leader")
    wait_until(lambda: parse_info(new.call("INFO", "coordinator"))["coordinator_ready"] == 1, 10,
               "the new node's coordinator ready")
    with new.conn() as c:
        token = c.call("LOCK", "after-add", 0, 5000)
        assert isinstance(token, int) and token > 0
        assert n[0].call("LOCK", "after-add", 0, 300) is None  # held through node 4
