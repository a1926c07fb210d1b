"""Fault scenarios: a 3-node dmkv cluster in network namespaces under
workload while nodes are killed, paused, cut off, starved of packets or of
disk, then checked (harness.py says what each checker asserts).

The short suite (ctest fault_short) runs every scenario with small counts;
DMKV_FAULT_MODE=long (make fault) runs the counts and durations of issue 8:
the leader killed 20 times, five 30 s majority/minority partitions, 5
minutes of 10 % loss on every link, and so on. Every scenario appends a
row to the results table before it asserts, so a failing run still says
what it saw.
"""
import os
import time

import pytest

from harness import (Cluster, Loads, LONG, faults_cell, pick, record, wait_for)

MiB = 1 << 20


def make_cluster(lab3, tmp_path, request, **kw):
    c = Cluster(lab3, tmp_path, **kw)
    request.node._agents = c.agents
    # Runs before the lab's teardown: no workload outlives its test.
    request.addfinalizer(lambda: [lo.stop_event.set() for lo in c.loads])
    return c.start()


def finish(c, loads, scenario, extra_faults="", heal_timeout=None, violations=()):
    """Stops the loads, checks, records the row, asserts."""
    loads.stop()
    rep = c.check(loads) if heal_timeout is None else c.check(loads, heal_timeout)
    for v in violations:
        rep.violation(v)
    record(scenario, loads.describe(), faults_cell(c, extra_faults), rep.acked, rep.lost,
           rep.violations_cell())
    print("%s: %s" % (scenario, rep.summary()))
    rep.assert_ok()
    return rep


# ------------------------------------------------------------- crashes ----

def test_leader_killed_repeatedly_during_lock_and_write_load(lab3, tmp_path, request):
    """kill -9 of the Raft leader, a new leader, the old one restarted and
    back in; repeated. Every other time the victim stays down until the
    others have declared it DEAD, so it comes back having missed writes it
    must catch up on before it writes under the mutex again. Writes (fsync
    always), INCR and locks on every node under --use-mutex 1."""
    kills = pick(12, 20)
    c = make_cluster(lab3, tmp_path, request, mutex=True)
    loads = Loads(c, writes=True, incr=True, locks=True).start()
    loads.wait_progress("before the first kill", amount=20)
    failovers = []
    for k in range(kills):
        victim = wait_for(lambda: c.leader(), 30, "a leader before kill %d" % (k + 1))
        c.kill9(victim)
        t = time.monotonic()
        new = wait_for(lambda: c.leader() not in (None, victim) and c.leader(), 30,
                       "a new leader after kill %d of node %d" % (k + 1, victim))
        failovers.append(time.monotonic() - t)
        c.log("kill %d: leader %d killed, node %d leads after %.2f s" % (k + 1, victim, new, failovers[-1]))
        loads.wait_progress("with node %d down (kill %d)" % (victim, k + 1), timeout=30, amount=5)
        if k % 2 == 1:
            others = [a for a in c.agents if a.node_id != victim]
            wait_for(lambda: all((c.members_of(a) or {}).get(victim, {}).get("state") == "dead" for a in others),
                     20, "node %d declared DEAD after kill %d" % (victim, k + 1), interval=0.1)
            loads.wait_progress("with node %d DEAD (kill %d)" % (victim, k + 1), timeout=30, amount=5)
        c.restart(victim)
        c.wait_whole("node %d back after kill %d" % (victim, k + 1))
        loads.wait_progress("after node %d came back (kill %d)" % (victim, k + 1), timeout=30, amount=5)
    c.log("failover times: %s" % ["%.2f" % f for f in failovers])
    finish(c, loads, "leader killed %d times" % kills,
           "new leader in %.1f-%.1f s" % (min(failovers), max(failovers)))


def test_node_restarted_before_it_is_declared_dead_loses_no_incr(lab3, tmp_path, request):
    """A follower kill -9'd and restarted at once, quicker than the
    suspicion timeout, again and again, while every node INCRs one counter
    under --use-mutex 1. The writes made while it was down were pushed to
    a process that was gone; the others still hold it live, so the next
    holder of the lock may be the restarted node itself: it must have those
    writes before the lock moves on, or its INCR reads a stale value."""
    restarts = pick(10, 40)
    c = make_cluster(lab3, tmp_path, request, mutex=True)
    loads = Loads(c, writes=True, incr=True).start()
    loads.wait_progress("before the first restart", amount=20)
    for k in range(restarts):
        leader = wait_for(lambda: c.leader(), 30, "a leader before restart %d" % (k + 1))
        victim = [i for i in sorted(c.by_id) if i != leader][k % 2]
        c.kill9(victim)
        c.restart(victim)
        loads.wait_progress("after quick restart %d of node %d" % (k + 1, victim), timeout=30, amount=10)
    finish(c, loads, "follower restarted within the suspicion timeout %d times" % restarts)


@pytest.mark.parametrize("fsync", ["always", "everysec"] if LONG else ["always"])
def test_all_nodes_killed_at_once_and_restarted(lab3, tmp_path, request, fsync):
    """Every agent kill -9'd within a few milliseconds, then all
    restarted: no acknowledged write or INCR is lost (with everysec the
    table reports what was), locks keep their fencing order."""
    rounds = pick(1, 5)
    c = make_cluster(lab3, tmp_path, request, mutex=True, fsync=fsync)
    loads = Loads(c, writes=True, incr=True, locks=True).start()
    for r in range(rounds):
        loads.wait_progress("before kill-all %d" % (r + 1), amount=30)
        for a in c.agents:
            c.kill9(a.node_id)
        c.log("round %d: all three killed" % (r + 1))
        for a in c.agents:
            c.restart(a.node_id)
        took = c.wait_whole("restart of all after round %d" % (r + 1))
        c.log("round %d: whole again %.2f s after the restarts" % (r + 1, took))
        loads.wait_progress("after kill-all %d" % (r + 1), timeout=30, amount=10)
    finish(c, loads, "all nodes killed at once, %d times (fsync %s)" % (rounds, fsync))


# ---------------------------------------------------------- partitions ----

def test_majority_minority_partitions_then_heal(lab3, tmp_path, request):
    """One node cut off from the other two (both ways), in turn, the lock
    leader among them; both sides keep taking writes (eventual mode), the
    majority keeps granting locks and the minority grants none; after each
    heal the cluster is whole again. Then one one-way cut."""
    rounds, cut_s = pick(2, 5), pick(6, 30)
    c = make_cluster(lab3, tmp_path, request, mutex=False)
    loads = Loads(c, writes=True, locks=True).start()
    loads.wait_progress("before the first partition", amount=20)
    heals = []
    for r in range(rounds):
        # The leader in odd rounds, another node in even ones.
        leader = wait_for(lambda: c.leader(), 30, "a leader before partition %d" % (r + 1))
        minority = leader if r % 2 == 0 else [i for i in c.by_id if i != leader][r % 2]
        majority = [a for a in c.agents if a.node_id != minority]
        c.isolate(minority)
        c.log("partition %d: node %d cut off (leader was %d)" % (r + 1, minority, leader))
        t_cut = time.monotonic()
        wait_for(lambda: c.leader(majority) not in (None, minority), 20,
                 "the majority to have a leader of its own (partition %d)" % (r + 1))
        # The majority keeps granting; the minority grants nothing.
        minority_agent = c.by_id[minority]
        loads.wait_progress("in the majority during partition %d" % (r + 1), timeout=20, amount=10)
        before = loads.locks.rounds[minority]
        time.sleep(max(0.0, cut_s - (time.monotonic() - t_cut)))  # hold the cut for its full duration
        granted_late = loads.locks.rounds[minority] - before
        c.log("partition %d: minority node %d completed %d lock rounds during the cut"
              % (r + 1, minority, granted_late))
        if minority_agent.node_id in c.cut and granted_late > 1:
            # One round may have been in flight when the cut came.
            raise AssertionError("the cut-off node %d granted %d locks" % (minority, granted_late))
        c.heal()
        heals.append(c.wait_whole("heal %d" % (r + 1)))
        c.log("heal %d: whole again after %.2f s" % (r + 1, heals[-1]))
        loads.wait_progress("after heal %d" % (r + 1), amount=10)
    # One-way: node 1's packets to node 2 are dropped, everything else
    # flows. Node 3 can relay SWIM's indirect probes, so nobody should be
    # declared DEAD, and nothing is lost.
    before = len(loads.monitor.false_dead)
    c.cut_one_way(1, 2)
    t = time.monotonic()
    time.sleep(cut_s)  # the Monitor watches for DEAD meanwhile
    one_way_dead = loads.monitor.false_dead[before:]
    c.log("one-way cut 1->2 for %.1f s: DEAD seen (t, observer, member): %s" % (time.monotonic() - t, one_way_dead))
    c.heal()
    rep_extra = "heal took %.1f-%.1f s; one-way cut 1->2 for %d s" % (min(heals), max(heals), cut_s)
    finish(c, loads, "majority/minority partition %d x %d s, then one-way" % (rounds, cut_s), rep_extra,
           violations=["live node declared DEAD during the one-way cut 1->2 (t, observer, member): %s"
                       % one_way_dead[:5]] if one_way_dead else [])


# --------------------------------------------------------------- loss ----

def test_ten_percent_loss_on_every_link(lab3, tmp_path, request):
    """10 % of the packets on every link dropped (each direction) while
    writes, INCR and locks run under --use-mutex 1: no live node is ever
    declared DEAD, and nothing is lost."""
    loss_s = pick(20, 300)
    c = make_cluster(lab3, tmp_path, request, mutex=True)
    loads = Loads(c, writes=True, incr=True, locks=True, monitor_enforce=True).start()
    loads.wait_progress("before the loss", amount=20)
    for a, b in ((1, 2), (1, 3), (2, 3)):
        lab3.link_loss(a, b, 10)
    c.faults["10%% loss on every link for %d s" % loss_s] += 1
    t_end = time.monotonic() + loss_s
    p0 = loads.progress()
    while time.monotonic() < t_end and not c.note_crashes():  # the monitor checks DEAD meanwhile
        time.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
    c.log("%d s of 10%% loss: %d ops completed meanwhile" % (loss_s, loads.progress() - p0))
    if not c.crashes:
        assert loads.progress() - p0 > 10, "hardly any progress under 10 % loss"
    finish(c, loads, "10%% loss on every link for %d s" % loss_s)


# ---------------------------------------------------------------- pause ----

def test_paused_node_refutes_or_rejoins(lab3, tmp_path, request):
    """A node (the lock leader first) stopped with SIGSTOP for longer than
    the suspicion timeout: the others declare it DEAD; after SIGCONT it is
    alive everywhere again with a higher incarnation, and nothing written
    before, during or after is lost or corrupted."""
    pauses, pause_s = pick(1, 3), pick(8, 15)
    c = make_cluster(lab3, tmp_path, request, mutex=False)
    loads = Loads(c, writes=True, locks=True).start()
    loads.wait_progress("before the first pause", amount=20)
    for r in range(pauses):
        leader = wait_for(lambda: c.leader(), 30, "a leader before pause %d" % (r + 1))
        victim = leader if r % 2 == 0 else [i for i in c.by_id if i != leader][0]
        inc = c.members_of(c.by_id[victim])[victim]["incarnation"]
        others = [a for a in c.agents if a.node_id != victim]
        c.pause(victim)
        t = time.monotonic()
        wait_for(lambda: all((c.members_of(a) or {}).get(victim, {}).get("state") == "dead" for a in others),
                 pause_s, "the others to declare paused node %d DEAD" % victim, interval=0.1)
        c.log("pause %d: node %d (leader %d) DEAD at the others after %.2f s" % (r + 1, victim, leader,
                                                                               time.monotonic() - t))
        loads.wait_progress("while node %d is paused" % victim, timeout=20, amount=10)
        time.sleep(max(0.0, pause_s - (time.monotonic() - t)))
        c.resume(victim)
        took = c.wait_whole("node %d resumed after pause %d" % (victim, r + 1))
        inc2 = c.members_of(c.by_id[victim])[victim]["incarnation"]
        c.log("pause %d: whole again %.2f s after SIGCONT; incarnation %d -> %d" % (r + 1, took, inc, inc2))
        assert inc2 > inc, "node %d came back without refuting (incarnation %d -> %d)" % (victim, inc, inc2)
        loads.wait_progress("after pause %d" % (r + 1), amount=10)
    finish(c, loads, "node paused %d x %d s (> suspicion timeout)" % (pauses, pause_s))


# ------------------------------------------------------------ disk full ----

def test_full_data_disk_refuses_writes_serves_reads_and_recovers(lab3, tmp_path, request):
    """Node 3's --data-dir is a small tmpfs. Filled up, it answers writes
    with errors, still serves what it holds, and the writes the other nodes
    take meanwhile reach it once space returns."""
    size = 96 * MiB
    c = make_cluster(lab3, tmp_path, request, mutex=False, tmpfs={3: size})
    n1, n3 = c.by_id[1], c.by_id[3]
    before = {"pre:%d" % i: "p%d" % i for i in range(200)}
    for k, v in before.items():
        assert n1.call("SET", k, v) == "OK"
    wait_for(lambda: n3.call("GET", "pre:199") == b"p199", 15, "the first writes on node 3")

    # Fill the disk: a file taking all but 256 KiB, from the test's side of
    # the mount.
    filler = os.path.join(n3.data_dir, "filler")
    st = os.statvfs(n3.data_dir)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        left = free - 256 * 1024
        chunk = b"\0" * MiB
        while left > 0:
            n = min(left, len(chunk))
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            left -= n
    c.faults["data disk filled (%d MiB tmpfs)" % (size // MiB)] += 1
    c.log("disk full: %d KiB free on node 3" % (os.statvfs(n3.data_dir).f_bavail * os.statvfs(n3.data_dir).f_frsize // 1024))

    # Writes on node 3 fail with an error (bounded: at most 200 tries of
    # 64 KiB each, far more than 256 KiB).
    refused = acked3 = 0
    big = "x" * (64 * 1024)
    acked_full = {}
    refusals = []
    for i in range(200):
        r = n3.call("SET", "full:%d" % i, big, timeout=10)
        if r == "OK":
            acked3 += 1
            acked_full["full:%d" % i] = big
        else:
            assert hasattr(r, "message") and r.message.startswith("ERR"), r
            refusals.append(r.message)
            refused += 1
            if refused >= 5:
                break
    c.log("disk full: node 3 acknowledged %d big writes, then refused %d (last: %s)" % (acked3, refused, r))
    assert refused >= 5, "node 3 never refused a write on a full disk"
    # The refusal must say what is wrong (LMDB reports a short write as EIO).
    assert any("no space left on the data disk" in m for m in refusals), refusals
    assert c.by_id[3].running(), "node 3 died on a full disk"
    # Reads still served, and correct.
    for k in list(before)[::20]:
        assert n3.call("GET", k) == before[k].encode()
    assert n3.call("PING") == "PONG"
    # Writes elsewhere are acknowledged meanwhile (they cannot land on node 3).
    during = {"during:%d" % i: "d%d" % i for i in range(100)}
    for k, v in during.items():
        assert n1.call("SET", k, v) == "OK"
    time.sleep(1.0)  # let anti-entropy try (and fail) against the full disk
    assert c.by_id[3].running(), "node 3 died on a full disk"

    # Space returns: writes succeed again and node 3 catches up.
    os.unlink(filler)
    wait_for(lambda: n3.call("SET", "after:3", "a3") == "OK", 15, "node 3 to take writes again")
    wait_for(lambda: all(n3.call("GET", k) == v.encode() for k, v in during.items()), 30,
             "node 3 to receive the writes it missed while full")
    expected = dict(before)
    expected.update(during)
    expected.update(acked_full)
    expected["after:3"] = "a3"
    lost, violations = 0, []
    wait_for(lambda: c.alive_everywhere(), 30, "every member alive")
    dumps = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dumps = c.dumps()
        if all(d == dumps[1] for d in dumps.values()):
            break
        time.sleep(0.5)
    for node, d in dumps.items():
        miss = [k for k, v in expected.items() if d.get(k.encode(), (None,))[0] != v.encode()]
        lost = max(lost, len(miss))
        if miss:
            violations.append("node %d lacks %d acknowledged keys, e.g. %s" % (node, len(miss), miss[:3]))
        if d != dumps[1]:
            violations.append("node %d differs from node 1" % node)
    record("full data disk on one node", "writes on 2 nodes, eventual",
           faults_cell(c, "%d writes refused while full" % refused), len(expected), lost,
           "0" if not violations else "%d: %s" % (len(violations), "; ".join(violations)))
    assert not violations, violations
