"""Gossip membership across a real network cut: three agents, each in its
own network namespace on a private bridge (netns.py), lose each other
when nftables drops their packets and find each other again when the
rules go.

Skipped, with the reason, where network namespaces cannot be made (not
root, no ip/nft, a kernel without netdev hooks): unavailable_reason()
finds out by actually building a small lab.

Bounds (defaults: probe interval 500 ms, suspicion_mult 3, push-pull
every 30 s):
  - the majority side (hosts 1 and 2) marks the cut-off host DEAD like a
    crashed one: ~2.5 s expected, DEAD_BOUND_S = 6 s allowed;
  - the cut-off host marks both others DEAD more slowly: every probe it
    makes fails, its indirect probes get no nacks, so Lifeguard raises its
    health score and stretches its probe interval and timeouts (up to 8x),
    and no other member can confirm its suspicions, so they run to the
    maximum (3 x 1.5 s). MINORITY_BOUND_S = 20 s allowed;
  - after the heal, each side holds the other DEAD. Gossip rounds still
    send a DEAD member its death notice and push-pull picks DEAD members,
    so the accused hears it and refutes with a higher incarnation; the
    push-pull alone guarantees it within one interval (30 s).
    HEAL_BOUND_S = 40 s allowed."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from netns import FencingResource, LabAgent, NetnsLab, wait_for  # noqa: E402

CONVERGE_S = 10.0
DEAD_BOUND_S = 6.0
MINORITY_BOUND_S = 20.0
HEAL_BOUND_S = 40.0


@pytest.fixture(scope="module", autouse=True)
def need_netns():
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab3(tmp_path, request):
    """A 3-host lab with one agent per host, every agent listing all three
    in --peers (host:tcp=id). Torn down, agents first, whatever happens;
    on failure the agents' logs are attached."""
    with NetnsLab(3) as lab:
        peers = ",".join("%s:7000=%d" % (lab.addr(h), h) for h in (1, 2, 3))
        agents = [LabAgent(lab, h, h, tmp_path, peers=peers) for h in (1, 2, 3)]
        request.node._dmkv_agents = agents  # conftest attaches their logs to a failure
        yield lab, agents


def try_members(agent):
    try:
        return agent.members(timeout=2)
    except Exception:  # unreachable for the moment
        return None


def views(agents):
    return {a.node_id: try_members(a) for a in agents}


def state_of(view, node_id):
    if view is None or node_id not in view:
        return None
    return view[node_id]["state"]


def all_alive_everywhere(agents):
    for a in agents:
        v = try_members(a)
        if v is None or set(v) != {b.node_id for b in agents}:
            return False
        for b in agents:
            if v[b.node_id]["state"] != "alive" or v[b.node_id]["host"] != b.addr or \
                    v[b.node_id]["udp"] != b.udp:
                return False
    return True


def summary(agents):
    out = []
    for a in agents:
        v = try_members(a)
        out.append("at %d: %s" % (a.node_id, None if v is None else
                                  {k: (r["state"], r["incarnation"]) for k, r in sorted(v.items())}))
    return "; ".join(out)


def test_partition_isolates_a_node_and_heal_brings_it_back(lab3):
    lab, agents = lab3
    n1, n2, n3 = agents
    t_start = time.monotonic()
    for a in agents:
        a.start()
    wait_for(lambda: all_alive_everywhere(agents), CONVERGE_S, "3 agents in 3 namespaces to converge")
    print("\n3 agents in 3 namespaces: all alive everywhere %.2f s after the first start"
          % (time.monotonic() - t_start))
    inc_before = {a.node_id: a.members()[a.node_id]["incarnation"] for a in agents}

    # ---- cut host 3 off from hosts 1 and 2, both ways ----
    lab.isolate(3)
    cut = time.monotonic()
    seen = {}  # (observer, member) -> first time DEAD
    wanted = {(1, 3), (2, 3), (3, 1), (3, 2)}
    while not wanted <= set(seen):
        elapsed = time.monotonic() - cut
        vs = views(agents)
        for (obs, mem) in wanted:
            if (obs, mem) not in seen and state_of(vs[obs], mem) == "dead":
                seen[(obs, mem)] = elapsed
        # The majority never loses each other.
        for obs, mem in ((1, 2), (2, 1)):
            assert state_of(vs[obs], mem) in ("alive", "suspect"), \
                "node %d holds node %d as %s during the cut" % (obs, mem, state_of(vs[obs], mem))
        if elapsed > MINORITY_BOUND_S or (elapsed > DEAD_BOUND_S and not {(1, 3), (2, 3)} <= set(seen)):
            raise AssertionError("after %.1f s of partition, DEAD seen only for %s; views: %s\n%s\n%s"
                                 % (elapsed, sorted(seen), summary(agents), lab.ruleset(3), lab.ruleset(1)))
        time.sleep(0.1)
    for (obs, mem), t in sorted(seen.items()):
        print("  partition: node %d marked node %d dead after %.2f s" % (obs, mem, t))
    assert max(seen[(1, 3)], seen[(2, 3)]) <= DEAD_BOUND_S
    assert max(seen[(3, 1)], seen[(3, 2)]) <= MINORITY_BOUND_S
    print("partition: majority saw node 3 dead after %.2f s (bound %.0f s), node 3 saw both dead after "
          "%.2f s (bound %.0f s)" % (max(seen[(1, 3)], seen[(2, 3)]), DEAD_BOUND_S,
                                     max(seen[(3, 1)], seen[(3, 2)]), MINORITY_BOUND_S))
    info3 = n3.info()
    assert info3["members_dead"] == 2 and info3["members_alive"] == 1, info3

    # ---- heal ----
    lab.heal()
    healed = time.monotonic()
    wait_for(lambda: all_alive_everywhere(agents), HEAL_BOUND_S,
             "all three alive at all three after the heal (%s)" % summary(agents), interval=0.1)
    took = time.monotonic() - healed
    inc_after = {a.node_id: a.members()[a.node_id]["incarnation"] for a in agents}
    print("heal: all three alive at all three after %.2f s (bound %.0f s); incarnations %s -> %s"
          % (took, HEAL_BOUND_S, inc_before, inc_after))
    # Each side had declared the other dead: coming back took a refutation.
    assert inc_after[3] > inc_before[3]
    assert inc_after[1] > inc_before[1] and inc_after[2] > inc_before[2]
    for a in agents:
        assert a.info()["members_alive"] == 3


def udp_delivered(lab, src, dst, n=200):
    """How many of n datagrams sent from host src reach host dst."""
    import socket
    rx, tx = lab.udp_socket(dst), lab.udp_socket(src)
    try:
        rx.settimeout(0.3)
        for i in range(n):
            tx.sendto(b"%d" % i, rx.getsockname())
        got = 0
        while True:
            try:
                rx.recv(64)
            except socket.timeout:
                return got
            got += 1
    finally:
        rx.close()
        tx.close()


def test_lab_faults_cut_exactly_what_they_say(tmp_path):
    """The harness itself: partition, one-way partition, heal and loss do
    what the reliability tests will rely on, and nothing more."""
    with NetnsLab(3) as lab:
        assert udp_delivered(lab, 1, 2) == 200
        lab.partition(1, 2)
        assert udp_delivered(lab, 1, 2) == 0 and udp_delivered(lab, 2, 1) == 0
        assert udp_delivered(lab, 1, 3) == 200 and udp_delivered(lab, 3, 2) == 200
        lab.heal()
        assert udp_delivered(lab, 1, 2) == 200 and udp_delivered(lab, 2, 1) == 200
        lab.partition(1, 2, one_way=True)
        assert udp_delivered(lab, 1, 2) == 0 and udp_delivered(lab, 2, 1) == 200
        lab.heal()
        lab.loss(2, 30)  # 30 % each way at host 2: ~70 % of 200 expected
        for src, dst in ((1, 2), (2, 1)):
            got = udp_delivered(lab, src, dst)
            assert 90 <= got <= 180, "%d of 200 datagrams %d->%d under 30 %% loss" % (got, src, dst)
        assert udp_delivered(lab, 1, 3) == 200
        lab.loss(2, 100)
        assert udp_delivered(lab, 1, 2) == 0
        lab.clear_faults()
        assert udp_delivered(lab, 1, 2) == 200
        names = list(lab.names.values()) + [lab.switch]
    left = set(os.listdir("/run/netns")) & set(names)
    assert not left, "namespaces left behind: %s" % left


def replicas_identical(agents, keys):
    try:
        for k in keys:
            seen = {(a.call("GET", k, timeout=2), tuple(a.call("VERSION", k, timeout=2) or ())) for a in agents}
            if len(seen) != 1:
                return False
        return len({a.call("DBSIZE", timeout=2) for a in agents}) == 1
    except Exception:  # a node unreachable for the moment
        return False


def test_writes_on_both_sides_of_a_partition_converge_after_the_heal(lab3):
    lab, agents = lab3
    n1, n2, n3 = agents
    for a in agents:
        a.start()
    wait_for(lambda: all_alive_everywhere(agents), CONVERGE_S, "3 agents in 3 namespaces to converge")
    for i in range(20):
        assert n1.call("SET", "old%d" % i, "before") == "OK"
    wait_for(lambda: all(a.call("DBSIZE") == 20 for a in agents), 10, "the first writes everywhere")

    lab.isolate(3)
    # Both sides keep taking writes: new keys, the same keys, and deletes.
    for i in range(100):
        assert n1.call("SET", "maj%d" % i, "m%d" % i) == "OK"
        assert n3.call("SET", "min%d" % i, "n%d" % i) == "OK"
        assert n2.call("SET", "both%d" % i, "majority%d" % i) == "OK"
        assert n3.call("SET", "both%d" % i, "minority%d" % i) == "OK"
    assert n1.call("DEL", "old0", "old1") == 2
    assert n3.call("DEL", "old2") == 1
    assert n3.call("SET", "old3", "changed-in-minority") == "OK"
    assert n3.call("GET", "maj0") is None and n1.call("GET", "min0") is None  # the cut is real

    lab.heal()
    healed = time.monotonic()
    keys = ["old%d" % i for i in range(20)] + ["maj%d" % i for i in range(100)] + \
           ["min%d" % i for i in range(100)] + ["both%d" % i for i in range(100)]
    wait_for(lambda: replicas_identical(agents, keys), HEAL_BOUND_S,
             "all three replicas to be identical after the heal", interval=0.5)
    print("partition with writes on both sides: replicas identical %.2f s after the heal"
          % (time.monotonic() - healed))
    for a in agents:
        assert a.call("DBSIZE") == 20 - 3 + 300
        assert a.call("GET", "maj99") == b"m99" and a.call("GET", "min99") == b"n99"
        assert a.call("GET", "old0") is None and a.call("GET", "old2") is None
        assert a.call("GET", "old3") == b"changed-in-minority"
        assert a.call("GET", "both7") in (b"majority7", b"minority7")


# ---- lock safety under leader crashes and a partition ----

def leader_of(agents):
    for a in agents:
        if not a.running():
            continue
        try:
            r = a.call("LEADER", timeout=2)
        except Exception:
            continue
        if r:
            return r[0]
    return None


def coordinators_ready(agents):
    try:
        return all(a.info("coordinator")["coordinator_ready"] == 1 for a in agents)
    except Exception:
        return False


def test_lock_safety_while_the_leader_is_killed_5_times_and_partitioned_once(lab3):
    import threading
    lab, agents = lab3
    for a in agents:
        a.start()
    wait_for(lambda: all_alive_everywhere(agents), CONVERGE_S, "3 agents to converge")
    wait_for(lambda: coordinators_ready(agents), 20, "every lock coordinator ready")
    res = FencingResource()
    stop = threading.Event()
    rounds = {a.node_id: 0 for a in agents}
    errors = {a.node_id: 0 for a in agents}
    history = []

    def client(agent):
        conn = None
        deadline = time.monotonic() + 240
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = lab.resp(agent.host, agent.addr, agent.tcp, timeout=10)
                t_req = time.monotonic()
                token = conn.call("LOCK", "fence", 3000, 5000, timeout=10)
                history.append((agent.node_id, token, round(t_req, 3), round(time.monotonic(), 3)))
                if token is None:
                    continue
                began = res.begin(token)
                if began is not None:
                    time.sleep(0.005)
                    res.end(token, began)
                conn.call("UNLOCK", "fence", token, timeout=10)
                rounds[agent.node_id] += 1
            except Exception:
                errors[agent.node_id] += 1
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                conn = None
                time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    try:
        by_id = {a.node_id: a for a in agents}
        for k in range(5):
            wait_for(lambda: leader_of(agents) is not None, 20, "a leader before kill %d" % (k + 1))
            victim = by_id[leader_of(agents)]
            before = dict(rounds)
            victim.kill9()
            t0 = time.monotonic()
            wait_for(lambda: leader_of(agents) not in (None, victim.node_id), 20,
                     "a new leader after kill %d" % (k + 1))
            print("kill %d: node %d (leader) killed, new leader node %d after %.2f s"
                  % (k + 1, victim.node_id, leader_of(agents), time.monotonic() - t0))
            victim.start()
            wait_for(lambda: all_alive_everywhere(agents) and coordinators_ready(agents), 30,
                     "all three back after kill %d" % (k + 1))
            wait_for(lambda: sum(rounds.values()) > sum(before.values()), 20, "lock progress after kill %d" % (k + 1))
        victim = by_id[leader_of(agents)]
        lab.isolate(victim.host)
        t0 = time.monotonic()
        wait_for(lambda: leader_of([a for a in agents if a is not victim]) not in (None, victim.node_id), 20,
                 "the majority to elect a leader without node %d" % victim.node_id)
        print("partition: node %d (leader) cut off; majority elected node %d after %.2f s"
              % (victim.node_id, leader_of([a for a in agents if a is not victim]), time.monotonic() - t0))
        before = sum(rounds.values())
        wait_for(lambda: sum(rounds.values()) > before + 10, 20, "the majority to keep granting")
        lab.heal()
        wait_for(lambda: all_alive_everywhere(agents) and coordinators_ready(agents), HEAL_BOUND_S, "heal")
        before = dict(rounds)
        wait_for(lambda: all(rounds[i] > before[i] for i in rounds), 30, "every client to make progress after the heal")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    tokens = [s[0] for s in res.sections]
    print("lock safety: %d critical sections, rounds per client %s, client errors %s, last token %d"
          % (len(res.sections), rounds, errors, res.last))
    if res.rejected:
        print("LOCK replies of the rejected tokens (node, token, asked, answered):",
              [h for h in history if h[1] in {r[0] for r in res.rejected}])
    assert res.rejected == [], res.rejected[:5]
    assert res.overlaps == [], res.overlaps[:5]
    assert all(b > a for a, b in zip(tokens, tokens[1:])), "tokens not strictly increasing"
    assert all(r > 10 for r in rounds.values()), rounds
