"""Gossip membership on loopback: real agents finding each other through
--peers, detecting a kill -9, welcoming a restarted node back, leaving
gracefully on SIGTERM, refusing nodes with another cluster key, and
shrugging off malformed datagrams and push-pull blobs.

Every agent gets a TCP and a UDP port found free at run time. Every wait
polls MEMBERS or INFO cluster against a deadline. Measured times are
printed (pytest -s shows them).

The detection bound. With the defaults (probe interval I = 500 ms,
suspicion_mult 3, gossip every 200 ms) gossip.h predicts that a kill -9'd
member of a 3-5 node cluster is DEAD everywhere after
T_first + T_suspicion + T_spread ≈ 0.8 + 1.5 + 0.4 ≈ 2.5-3 s. The
suspicion may last up to 3 x 1.5 s when no other member confirms it, so
we allow DEAD_BOUND_S = 6 s: that is the default-configuration promise a
loaded CI machine must still keep."""
import base64
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import (ConnectionClosed, RespError, cluster_info, dropped_total,  # noqa: E402
                      free_gossip_ports, free_port, free_udp_port, ipv6_loopback_available, members,
                      parse_members, peers_arg, run_dmkv, wait_until)

DEAD_BOUND_S = 6.0      # kill -9 -> DEAD at every other member (see above)
CONVERGE_S = 10.0       # start -> everyone alive everywhere
REJOIN_S = 10.0         # restart -> alive again everywhere
LEFT_BOUND_S = 5.0      # SIGTERM -> LEFT everywhere
PROBE_INTERVAL_S = 0.5  # the default --probe-interval-ms


# ----------------------------------------------------------- helpers ----

def make_cluster(make_agent, n, with_udp=False, flags=(), start=True, first_id=1, host="127.0.0.1"):
    """n agents on fresh ports, each given the full --peers list (itself
    included, as the prototype's scripts do). Returns them unstarted when
    start is False; otherwise each has .started_at, when its start began."""
    ports = free_gossip_ports(n, host)
    ids = list(range(first_id, first_id + n))
    entries = [(host, t, u, i) for i, (t, u) in zip(ids, ports)]
    peers = peers_arg(entries, with_udp=with_udp)
    agents = []
    for node_id, (t, u) in zip(ids, ports):
        a = make_agent("--udp", u, "--peers", peers, *flags, name="node%d" % node_id, node_id=node_id,
                       port=t, start=False, host=host)
        a.udp_port = u
        agents.append(a)
    if start:
        for a in agents:
            a.started_at = time.monotonic()
            a.start()
    return agents


def add_agent(make_agent, node_id, peers, flags=(), start=True):
    """One more agent with its own fresh ports and the given --peers."""
    (t, u), = free_gossip_ports(1)
    args = ("--udp", u) + (("--peers", peers) if peers else ()) + tuple(flags)
    a = make_agent(*args, name="node%d" % node_id, node_id=node_id, port=t, start=False)
    a.udp_port = u
    if start:
        a.started_at = time.monotonic()
        a.start()
    return a


def try_members(agent):
    """MEMBERS, or None while the agent cannot answer."""
    try:
        return members(agent, timeout=2)
    except (OSError, TimeoutError, ConnectionClosed):
        return None


def all_alive(observers, expected):
    """True when every observer sees exactly the `expected` agents, all
    alive, at their real addresses."""
    for o in observers:
        view = try_members(o)
        if view is None or set(view) != {a.node_id for a in expected}:
            return False
        for a in expected:
            row = view[a.node_id]
            if row["state"] != "alive" or row["tcp"] != a.port or row["udp"] != a.udp_port:
                return False
            if row["host"] != a.host or row["self"] != (a is o):
                return False
    return True


def wait_converged(observers, expected, timeout=CONVERGE_S, what="the cluster to converge", since=None):
    """Waits until all_alive; returns the seconds it took from `since`
    (default: now), e.g. from the moment the first agent was started."""
    t0 = time.monotonic()
    try:
        wait_until(lambda: all_alive(observers, expected), timeout,
                   "%s: %s" % (what, describe(observers)), interval=0.02)
    except AssertionError as e:
        raise AssertionError("%s\nviews (id: (state, incarnation)):\n%s" % (e, views_text(observers))) from None
    return time.monotonic() - (since if since is not None else t0)


def describe(agents):
    """Names the agents and their ports, for failure messages."""
    return "agents %s" % ", ".join("%s(id %d, tcp %s, udp %s)" % (a.name, a.node_id, a.port,
                                                                   getattr(a, "udp_port", "?"))
                                   for a in agents)


def views_text(agents):
    out = []
    for a in agents:
        v = try_members(a)
        out.append("  at %d: %s" % (a.node_id, "unreachable" if v is None else
                                    {k: (r["state"], r["incarnation"]) for k, r in sorted(v.items())}))
    return "\n".join(out)


def watch_states(observers, node_id, seconds):
    """Polls the observers' record of node_id for `seconds`; returns the
    list of (elapsed, observer id, state) seen."""
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for o in observers:
            v = try_members(o)
            if v is not None and node_id in v:
                seen.append((time.monotonic() - t0, o.node_id, v[node_id]["state"]))
        time.sleep(0.05)
    return seen


# ------------------------------------------------- kill -9 and restart ----

def test_five_agents_detect_kill9_and_welcome_the_restart(make_agent):
    """5 agents with the prototype's host:tcp=id peers: all alive; one
    kill -9'd is DEAD at every other member within DEAD_BOUND_S; restarted
    with the same id and data dir it is alive again everywhere with a
    higher incarnation."""
    agents = make_cluster(make_agent, 5)
    took = wait_converged(agents, agents, since=agents[0].started_at)
    print("\n5 agents (host:tcp=id peers): all alive everywhere %.2f s after the first start" % took)

    victim = agents[2]
    others = [a for a in agents if a is not victim]
    old_inc = max(members(a)[victim.node_id]["incarnation"] for a in agents)

    victim.kill9()
    killed = time.monotonic()
    first_suspect, first_dead, last_state = {}, {}, {}
    while len(first_dead) < len(others):
        for o in others:
            if o.node_id in first_dead:
                continue
            v = members(o)
            state = v[victim.node_id]["state"]
            last_state[o.node_id] = state
            now = time.monotonic() - killed
            if state == "suspect" and o.node_id not in first_suspect:
                first_suspect[o.node_id] = now
            if state == "dead":
                first_dead[o.node_id] = now
            assert state in ("alive", "suspect", "dead"), \
                "node %d records the kill -9'd node %d as %r" % (o.node_id, victim.node_id, state)
            for o2 in others:  # nobody else is suspected to death meanwhile
                assert v[o2.node_id]["state"] in ("alive", "suspect"), \
                    "node %d holds live node %d as %s" % (o.node_id, o2.node_id, v[o2.node_id]["state"])
        if time.monotonic() - killed > DEAD_BOUND_S:
            raise AssertionError("kill -9'd node %d not DEAD everywhere within %.1f s; states %s\n%s"
                                 % (victim.node_id, DEAD_BOUND_S, last_state, views_text(others)))
        time.sleep(0.02)
    for o in others:
        print("  node %d: suspect after %s, dead after %.2f s" % (
            o.node_id, "%.2f s" % first_suspect[o.node_id] if o.node_id in first_suspect else "(not seen)",
            first_dead[o.node_id]))
    print("kill -9 of node %d: DEAD everywhere after %.2f s (bound %.1f s)"
          % (victim.node_id, max(first_dead.values()), DEAD_BOUND_S))
    for o in others:
        assert cluster_info(o)["members_dead"] == 1

    restarted = time.monotonic()
    victim.start()

    def back():
        for o in agents:
            v = try_members(o)
            if v is None or len(v) != 5:
                return False
            if any(r["state"] != "alive" for r in v.values()):
                return False
            if v[victim.node_id]["incarnation"] <= old_inc:
                return False
        return True
    wait_until(back, REJOIN_S, "the restarted node %d to be alive everywhere with an incarnation above %d"
               % (victim.node_id, old_inc), interval=0.05)
    new_inc = members(victim)[victim.node_id]["incarnation"]
    print("restart of node %d: alive everywhere after %.2f s, incarnation %d -> %d"
          % (victim.node_id, time.monotonic() - restarted, old_inc, new_inc))
    assert new_inc > old_inc
    assert cluster_info(victim)["incarnation"] == new_inc


# ------------------------------------------------------------ joining ----

def test_join_through_one_peer_learns_everyone(make_agent):
    """Node 4 lists only node 1 (host:tcp=id): it learns every member with
    its UDP port, and every member learns node 4."""
    first = make_cluster(make_agent, 3)
    wait_converged(first, first)
    n1 = first[0]
    n4 = add_agent(make_agent, 4, "127.0.0.1:%d=1" % n1.port)
    everyone = first + [n4]
    took = wait_converged(everyone, everyone, since=n4.started_at)
    print("\nnode 4 joined through node 1 only: all 4 alive everywhere %.2f s after its start" % took)
    v4 = members(n4)
    for a in first:
        assert v4[a.node_id]["udp"] == a.udp_port and v4[a.node_id]["tcp"] == a.port

    out = run_dmkv("members", "--nodes", "127.0.0.1:%d" % n4.port)
    assert out.returncode == 0, out.stderr
    table = out.stdout.decode()
    rows = [l for l in table.splitlines() if l.strip() and l.split()[0].isdigit()]
    assert len(rows) == 4, table
    for a in everyone:
        line = [r for r in rows if r.split()[0] == str(a.node_id)]
        assert line, table
        assert "alive" in line[0] and str(a.udp_port) in line[0] and "127.0.0.1:%d" % a.port in line[0], table


def test_peers_with_explicit_udp_ports(make_agent):
    """The host:tcp:udp=id form forms a cluster too."""
    agents = make_cluster(make_agent, 3, with_udp=True)
    took = wait_converged(agents, agents, since=agents[0].started_at)
    print("\n3 agents (host:tcp:udp=id peers): all alive everywhere %.2f s after the first start" % took)


def test_udp_join_works_when_the_tcp_port_is_wrong(make_agent):
    """host:tcp:udp=id also joins over UDP: with a TCP port nobody listens
    on, the join ping still introduces the two nodes, and gossip or a
    periodic push-pull with the member found that way brings in the
    rest."""
    first = make_cluster(make_agent, 2)
    wait_converged(first, first)
    n1 = first[0]
    closed_tcp = free_port()
    n3 = add_agent(make_agent, 3, "127.0.0.1:%d:%d=1" % (closed_tcp, n1.udp_port),
                   flags=("--push-pull-interval-ms", "1000"))
    everyone = first + [n3]
    took = wait_converged(everyone, everyone, since=n3.started_at)
    print("\nnode 3 joined over UDP only (wrong TCP port): all alive everywhere %.2f s after its start" % took)
    assert members(n3)[1]["tcp"] == n1.port  # learned from node 1's own record


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
@pytest.mark.parametrize("with_udp", [False, True], ids=["host:tcp=id", "host:tcp:udp=id"])
def test_ipv6_peers(make_agent, with_udp):
    """The agent listens on ::1 and gossip addresses are IPv4 or IPv6
    literals, so --peers must take [::1]:tcp=id and [::1]:tcp:udp=id (the
    bracket form cluster.c's parser already expects)."""
    agents = make_cluster(make_agent, 3, with_udp=with_udp, host="::1")
    took = wait_converged(agents, agents, since=agents[0].started_at)
    print("\n3 agents on ::1: all alive everywhere %.2f s after the first start" % took)


# ------------------------------------------------------------ leaving ----

def test_sigterm_leaves_gracefully_and_a_restart_rejoins(make_agent):
    agents = make_cluster(make_agent, 3)
    wait_converged(agents, agents)
    leaver = agents[2]
    others = agents[:2]
    inc_before = members(leaver)[leaver.node_id]["incarnation"]

    leaver.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    seen = []
    left_at = {}
    while len(left_at) < len(others) and time.monotonic() - t0 < LEFT_BOUND_S:
        for o in others:
            st = members(o)[leaver.node_id]["state"]
            seen.append((round(time.monotonic() - t0, 2), o.node_id, st))
            if st == "left" and o.node_id not in left_at:
                left_at[o.node_id] = time.monotonic() - t0
        time.sleep(0.02)
    assert len(left_at) == len(others), "not LEFT everywhere within %.1f s: %s" % (LEFT_BOUND_S, seen[-6:])
    code = leaver.wait_exit(5)
    print("\nSIGTERM of node %d: left at %s after %s s; exit code %d"
          % (leaver.node_id, sorted(left_at), ["%.2f" % left_at[k] for k in sorted(left_at)], code))
    assert code == 0
    # Keep watching for several suspicion timeouts: LEFT must stay LEFT.
    seen += [(round(t + time.monotonic() - t0, 2), o, s) for t, o, s in
             watch_states(others, leaver.node_id, 8 * PROBE_INTERVAL_S)]
    states = {s for _, _, s in seen}
    assert "dead" not in states, "a node that left was reported dead: %s" % [x for x in seen if x[2] == "dead"]
    assert states <= {"alive", "left"}, states
    for o in others:
        info = cluster_info(o)
        assert info["members_left"] == 1 and info["members_dead"] == 0, info

    # It comes back: alive again everywhere, with a higher incarnation.
    leaver.start()
    wait_until(lambda: all_alive(agents, agents) and
               all(members(o)[leaver.node_id]["incarnation"] > inc_before for o in agents),
               REJOIN_S, "node %d to rejoin after leaving" % leaver.node_id, interval=0.05)


# -------------------------------------------------------- cluster keys ----

def keygen():
    out = run_dmkv("keygen")
    assert out.returncode == 0, out.stderr
    key = out.stdout.decode().strip()
    assert len(base64.b64decode(key, validate=True)) == 32, key
    return key


def test_keygen_prints_a_fresh_key_each_time():
    keys = {keygen() for _ in range(3)}
    assert len(keys) == 3


def test_a_node_with_another_key_is_never_admitted(make_agent):
    k1, k2 = keygen(), keygen()
    agents = make_cluster(make_agent, 3, with_udp=True, flags=("--cluster-key", k1))
    took = wait_converged(agents, agents, since=agents[0].started_at)
    print("\n3 agents with a cluster key: all alive %.2f s after the first start" % took)
    for a in agents:
        assert cluster_info(a)["encrypted"] == 1
    before = {a.node_id: cluster_info(a)["dropped_auth"] for a in agents}

    peers = peers_arg([("127.0.0.1", a.port, a.udp_port, a.node_id) for a in agents], with_udp=True)
    intruder = add_agent(make_agent, 4, peers, flags=("--cluster-key", k2))
    assert cluster_info(intruder)["encrypted"] == 1
    # Its join (TCP push-pull and UDP join pings) retries at 0, 1, 3 s...:
    # watch for 8 probe periods and a few of those retries.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8 * PROBE_INTERVAL_S:
        for a in agents:
            assert 4 not in members(a), "node %d admitted the node with another key" % a.node_id
        assert set(members(intruder)) == {4}, "the node with another key learned %s" % members(intruder)
        time.sleep(0.1)
    for a in agents:
        after = cluster_info(a)["dropped_auth"]
        assert after > before[a.node_id], "node %d: dropped_auth %d -> %d" % (a.node_id, before[a.node_id], after)
    assert all_alive(agents, agents)


def test_key_rotation_two_keys_in_either_order_form_a_cluster(make_agent):
    """Each node seals with its first key and opens with every key."""
    k1, k2 = keygen(), keygen()
    a = add_agent(make_agent, 1, None, flags=("--cluster-key", "%s,%s" % (k1, k2)), start=False)
    b = add_agent(make_agent, 2, None, flags=("--cluster-key", "%s,%s" % (k2, k1)), start=False)
    peers = peers_arg([("127.0.0.1", x.port, x.udp_port, x.node_id) for x in (a, b)])
    t0 = time.monotonic()
    for x in (a, b):
        x.args += ["--peers", peers]
        x.start()
    took = wait_converged([a, b], [a, b], since=t0)
    print("\nK1,K2 and K2,K1: cluster formed %.2f s after the first start" % took)
    # They keep talking (probes both ways succeed) for a few periods.
    seen = watch_states([a, b], 1, 4 * PROBE_INTERVAL_S) + watch_states([a, b], 2, 2 * PROBE_INTERVAL_S)
    assert {s for _, _, s in seen} == {"alive"}
    for x in (a, b):
        info = cluster_info(x)
        assert info["encrypted"] == 1 and info["dropped_auth"] == 0 and info["acks_received"] > 0, info


def test_rolling_key_rotation_keeps_the_cluster_whole(make_agent):
    """docs/GOSSIP.md's procedure, one node restart at a time: [old] ->
    [old,new] -> [new,old] -> [new]. After every restart both nodes are
    alive at both, so at no step did one stop understanding the other."""
    old, new = keygen(), keygen()
    a = add_agent(make_agent, 1, None, flags=("--cluster-key", old), start=False)
    b = add_agent(make_agent, 2, None, flags=("--cluster-key", old), start=False)
    peers = peers_arg([("127.0.0.1", x.port, x.udp_port, x.node_id) for x in (a, b)])
    for x in (a, b):
        x.args += ["--peers", peers]
        x.start()
    wait_converged([a, b], [a, b])
    t0 = time.monotonic()
    for keys in ("%s,%s" % (old, new), "%s,%s" % (new, old), new):
        for x in (a, b):
            x.args[x.args.index("--cluster-key") + 1] = keys
            x.restart()
            wait_converged([a, b], [a, b], timeout=REJOIN_S,
                           what="node %d back after its restart with %d key(s)" % (x.node_id, keys.count(",") + 1))
    print("\nrolling key rotation, 6 restarts: cluster whole after each; %.2f s in all" % (time.monotonic() - t0))
    # Only the new key is left: a node with the old one alone is refused.
    c = add_agent(make_agent, 3, peers, flags=("--cluster-key", old))
    t1 = time.monotonic()
    while time.monotonic() - t1 < 4 * PROBE_INTERVAL_S:
        assert 3 not in members(a) and 3 not in members(b) and set(members(c)) == {3}
        time.sleep(0.1)


def test_cluster_key_file(make_agent, tmp_path):
    key = keygen()
    path = tmp_path / "cluster.key"
    path.write_text("# dmkv cluster key\n\n%s\n" % key)
    a = add_agent(make_agent, 1, None, flags=("--cluster-key-file", str(path)), start=False)
    b = add_agent(make_agent, 2, None, flags=("--cluster-key", key), start=False)
    peers = peers_arg([("127.0.0.1", x.port, x.udp_port, x.node_id) for x in (a, b)])
    for x in (a, b):
        x.args += ["--peers", peers]
        x.start()
    wait_converged([a, b], [a, b])
    assert cluster_info(a)["encrypted"] == 1


def run_agent_expecting_failure(tmp_path, *flags):
    """Runs an agent that must refuse to start: returns (code, stderr). An
    agent that starts anyway is killed after 5 s and reported."""
    tcp, udp = free_port(), free_udp_port()
    try:
        out = run_dmkv("agent", "--id", 7, "--tcp", tcp, "--udp", udp, "--data-dir", tmp_path / "refused",
                       *flags, timeout=5)
    except subprocess.TimeoutExpired as e:  # subprocess.run has killed it
        raise AssertionError("dmkv agent %s started instead of refusing (output: %r)"
                             % (" ".join(map(str, flags)), (e.stderr or b"")[-400:])) from None
    return out.returncode, out.stderr.decode()


@pytest.mark.parametrize("flags", [
    ("--cluster-key", "not-base64!!"),
    ("--cluster-key", base64.b64encode(b"sixteen byte key").decode()),  # wrong length
    ("--cluster-key", "%s,garbage" % base64.b64encode(bytes(32)).decode()),
    ("--cluster-key", ",,,"),
    ("--cluster-key-file", "/nonexistent/dmkv.key"),
], ids=["not-base64", "16-bytes", "second-key-bad", "only-commas", "missing-file"])
def test_bad_cluster_key_is_a_one_line_error(tmp_path, flags):
    code, err = run_agent_expecting_failure(tmp_path, *flags)
    assert code in (1, 2), (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "key" in lines[0], err


def test_empty_cluster_key_is_refused_not_ignored(tmp_path):
    """`--cluster-key ""` (say, from an unset $KEY) must not start a node
    that silently runs unencrypted; ",,," is refused with "no cluster key
    found", and so must the empty value be. Same for an empty
    --cluster-key-file path."""
    for flags in (("--cluster-key", ""), ("--cluster-key-file", "")):
        code, err = run_agent_expecting_failure(tmp_path, *flags)
        assert code in (1, 2), (flags, code, err)
        assert len(err.strip().splitlines()) == 1, err


def test_empty_key_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "empty.key"
    path.write_text("# no key here\n\n")
    code, err = run_agent_expecting_failure(tmp_path, "--cluster-key-file", str(path))
    assert code in (1, 2) and len(err.strip().splitlines()) == 1, (code, err)


# --------------------------------------------------- hostile datagrams ----

def encode_ping(sender, seq, target, flags=0, count=0, updates=b""):
    # u8 version | u8 type (1 ping) | u32 sender | u32 seq | u32 target | u8 flags | u8 n | updates
    return struct.pack("<BBIIIBB", 1, 1, sender, seq, target, flags, count) + updates


def alive_update(node, inc, host, udp, tcp):
    h = host.encode()
    return struct.pack("<BIQB", 1, node, inc, len(h)) + h + struct.pack("<HHB", udp, tcp, 0)


def crafted_datagrams(target_id):
    """(datagram, the dropped_* counter it must raise)."""
    ping = encode_ping(4242, 1, target_id)
    return [
        (b"\x01", "dropped_truncated"),
        (b"\x01\x01\x05", "dropped_truncated"),
        (ping[:-3], "dropped_truncated"),
        (encode_ping(4242, 1, target_id, count=1), "dropped_truncated"),  # promises an update
        (b"\x02" + ping[1:], "dropped_bad_version"),
        (b"\xff" * 40, "dropped_bad_version"),
        (b"\x01\x63" + bytes(12), "dropped_unknown_type"),
        (b"\x01\x10" + bytes(12), "dropped_unknown_type"),  # a push-pull blob type as a datagram
        (encode_ping(0, 1, target_id), "dropped_bad_value"),  # sender 0
        (encode_ping(target_id, 1, target_id), "dropped_bad_value"),  # claims to be the receiver
        (encode_ping(4242, 1, target_id, flags=0x80), "dropped_bad_value"),
        (ping + b"\x00", "dropped_bad_value"),  # trailing byte
        (encode_ping(4242, 1, target_id, count=1,
                     updates=alive_update(99, 1, "not-an-ip", 7000, 7001)), "dropped_bad_value"),
        (encode_ping(4242, 1, target_id, count=1,
                     updates=alive_update(99, 1, "127.0.0.1", 0, 7001)), "dropped_bad_value"),  # udp port 0
        (encode_ping(4242, 1, target_id, count=200, updates=bytes(1300)), "dropped_oversized"),
        (b"\x01" * 1401, "dropped_oversized"),
        (os.urandom(65507), "dropped_oversized"),
        (encode_ping(4242, 1, target_id + 1000), "dropped_wrong_target"),
    ]


def send_paced(agent, sock, datagrams, counter):
    """Sends datagrams to the agent's UDP port, waiting after every few
    until counter(info) has risen by as many, so that a full socket buffer
    cannot lose one. Returns the INFO cluster before and after."""
    before = cluster_info(agent)
    base = counter(before)
    sent = 0
    for i, d in enumerate(datagrams):
        sock.sendto(d, ("127.0.0.1", agent.udp_port))
        sent += 1
        if sent % 16 == 0 or i == len(datagrams) - 1:
            wait_until(lambda: counter(cluster_info(agent)) - base >= sent, 5,
                       "node %d to count %d hostile datagrams" % (agent.node_id, sent), interval=0.02)
    after = cluster_info(agent)
    assert counter(after) - base == sent, "counted %d of %d" % (counter(after) - base, sent)
    return before, after


def expect_ack(sock, seq, sender, timeout=3):
    """Waits for an ACK (type 2) with this seq from node `sender`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            return False
        if len(data) >= 10:
            version, kind, frm, got_seq = struct.unpack("<BBII", data[:10])
            if version == 1 and kind == 2 and frm == sender and got_seq == seq:
                return True


def test_malformed_datagrams_are_counted_and_harmless(make_agent):
    agents = make_cluster(make_agent, 2)
    wait_converged(agents, agents)
    target = agents[0]
    rng = random.Random(20261124)
    crafted = crafted_datagrams(target.node_id)
    noise = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 1400))) for _ in range(150)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        before, after = send_paced(target, s, [d for d, _ in crafted] + noise, dropped_total)
        want = {}
        for _, field in crafted:
            want[field] = want.get(field, 0) + 1
        for field, n in want.items():
            assert after[field] - before[field] >= n, "%s rose by %d, expected at least %d" % (
                field, after[field] - before[field], n)
        # Still serving: TCP, MEMBERS, and a well-formed ping gets its ack.
        assert target.call("PING") == "PONG"
        s.sendto(encode_ping(4242, 0xC0FFEE, target.node_id), ("127.0.0.1", target.udp_port))
        assert expect_ack(s, 0xC0FFEE, target.node_id), "no ack to a well-formed ping after the garbage"
    assert target.running()
    assert all_alive(agents, agents), views_text(agents)
    assert 4242 not in members(target) and 99 not in members(target)


def test_unauthenticated_datagrams_raise_dropped_auth(make_agent):
    key = keygen()
    agents = make_cluster(make_agent, 2, flags=("--cluster-key", key))
    wait_converged(agents, agents)
    target = agents[0]
    rng = random.Random(7)
    datagrams = [d for d, _ in crafted_datagrams(target.node_id)]
    datagrams += [bytes([1]) + bytes(rng.getrandbits(8) for _ in range(24 + 16 + rng.randint(0, 200)))
                  for _ in range(30)]  # sealed-looking: version 1, nonce, ciphertext, tag
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        before, after = send_paced(target, s, datagrams, lambda i: i["dropped_auth"])
        assert dropped_total(after) == dropped_total(before), "unauthenticated bytes reached the decoder"
        # A plaintext ping is not answered by a keyed node.
        s.sendto(encode_ping(4242, 77, target.node_id), ("127.0.0.1", target.udp_port))
        assert not expect_ack(s, 77, target.node_id, timeout=1)
    assert target.call("PING") == "PONG"
    assert all_alive(agents, agents), views_text(agents)


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
def test_empty_datagrams_are_counted(make_agent, keyed):
    """A zero-length datagram is the shortest truncated (or unauthenticated)
    one: docs/GOSSIP.md says such datagrams are dropped and counted."""
    flags = ("--cluster-key", keygen()) if keyed else ()
    a = add_agent(make_agent, 1, None, flags=flags)
    counter = (lambda i: i["dropped_auth"]) if keyed else dropped_total
    base = counter(cluster_info(a))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(5):
            s.sendto(b"", ("127.0.0.1", a.udp_port))
        s.sendto(b"\x01", ("127.0.0.1", a.udp_port))  # a 1-byte marker, counted for sure
        # Datagrams are read in order: once the marker is counted, so are
        # the empty ones before it, if they are counted at all.
        wait_until(lambda: counter(cluster_info(a)) > base, 5, "the marker datagram to be counted")
    got = counter(cluster_info(a)) - base
    assert got == 6, "5 empty datagrams and a 1-byte one: %d counted as dropped" % got
    assert a.call("PING") == "PONG"


# ----------------------------------------------------------- push-pull ----

def test_pushpull_garbage_from_a_client_is_an_error(make_agent):
    agents = make_cluster(make_agent, 2)
    wait_converged(agents, agents)
    target = agents[0]
    served = cluster_info(target)["pushpull_served"]
    blobs = [
        b"", b"garbage", b"\x01", b"\x01\x10",
        struct.pack("<BBII", 1, 16, 77, 0xFFFFFFFF),        # state header claiming 4 billion entries
        struct.pack("<BBII", 1, 16, 77, 1) + b"\x01" * 10,  # one entry, cut short
        struct.pack("<BBII", 2, 16, 77, 0),                 # wrong version
        encode_ping(4242, 1, target.node_id),              # a datagram is not a state blob
        os.urandom(1 << 20),
    ]
    with target.conn() as c:
        for blob in blobs:
            r = c.call("DMKV.PUSHPULL", blob)
            assert isinstance(r, RespError) and r.startswith("ERR"), (blob[:20], r)
            assert c.call("PING") == "PONG"
        r = c.call("DMKV.PUSHPULL")
        assert isinstance(r, RespError), r
        r = c.call("DMKV.PUSHPULL", "a", "b")
        assert isinstance(r, RespError), r
        assert c.call("PING") == "PONG"
    assert cluster_info(target)["pushpull_served"] == served
    assert all_alive(agents, agents), views_text(agents)


def test_pushpull_on_a_keyed_node_needs_the_key(make_agent):
    key = keygen()
    agents = make_cluster(make_agent, 2, flags=("--cluster-key", key))
    wait_converged(agents, agents)
    target = agents[0]
    before = cluster_info(target)["dropped_auth"]
    # An unsealed but well-formed state blob is refused.
    blob = struct.pack("<BBII", 1, 16, 77, 0)
    for data in (b"garbage", blob, b"\x01" + os.urandom(24 + 16 + 30)):
        r = target.call("DMKV.PUSHPULL", data)
        assert isinstance(r, RespError) and r.startswith("ERR"), r
    assert cluster_info(target)["dropped_auth"] >= before + 3
    assert target.call("PING") == "PONG"
    assert all_alive(agents, agents), views_text(agents)


def test_requirepass_cluster_forms_and_pushpull_needs_auth(make_agent):
    """Without a cluster key, DMKV.PUSHPULL is a command like any other:
    --requirepass protects it, and the agents AUTH before they push-pull."""
    agents = make_cluster(make_agent, 3, flags=("--requirepass", "s3cret"), start=False)
    for a in agents:
        a.start()
    def converged():
        for o in agents:
            with o.conn() as c:
                assert c.call("AUTH", "s3cret") == "OK"
                v = parse_members(c.call("MEMBERS"))
            if set(v) != {1, 2, 3} or any(r["state"] != "alive" for r in v.values()):
                return False
        return True
    wait_until(converged, CONVERGE_S, "a --requirepass cluster to converge", interval=0.05)
    r = agents[0].call("DMKV.PUSHPULL", struct.pack("<BBII", 1, 16, 77, 0))
    assert isinstance(r, RespError) and r.startswith("NOAUTH"), r
    # A follower forwards lock operations to the leader over a link that
    # sends AUTH first and drops its reply: a LOCK and UNLOCK on every node
    # (two of them followers) works, and every agent is still running.
    tokens = []
    for a in agents:
        with a.conn() as c:
            assert c.call("AUTH", "s3cret") == "OK"
            deadline = time.monotonic() + 20
            while True:
                t = c.call("LOCK", "pw-lock", 5000, 5000, timeout=15)
                if isinstance(t, int) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)  # no leader known yet: ask again
            assert isinstance(t, int), t
            assert c.call("UNLOCK", "pw-lock", t) == 1
            tokens.append(t)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3, tokens
    assert all(a.running() for a in agents), [a.read_log()[-2000:] for a in agents if not a.running()]
