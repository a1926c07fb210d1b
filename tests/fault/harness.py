"""The fault harness: a dmkv cluster in network namespaces, workloads that
record what was acknowledged, and checkers that compare it with what the
replicas hold afterwards.

    with NetnsLab(3) as lab:
        c = Cluster(lab, tmp_path, mutex=True).start()
        loads = Loads(c, writes=True, incr=True, locks=True).start()
        ... inject faults (c.kill9(id), lab.isolate(h), lab.link_loss(a, b, 10), c.pause(id)) ...
        loads.stop()
        report = c.check(loads)          # every checker; returns a Report
        record(...); report.assert_ok()

The lab (tests/integration/netns.py) gives every host its own network
stack; the agents are LabAgents on 10.231.0.<id>:7000. Every workload
client opens its connection from inside its node's host, so traffic never
leaves the lab's namespaces.

Workloads are threads bounded by an operation count and a deadline, and
stopped by an event. They keep a record of what they know:
  - writes: SET of a unique key to a unique value; acknowledged (+OK),
    refused (an error reply: nothing promised) or uncertain (no reply: the
    write may or may not have happened).
  - incr: INCR of one counter; each acknowledged reply is the counter's
    value after that increment, so under the mutex the replies are all
    different and the final value is at least their number.
  - locks: LOCK fence ttl wait / UNLOCK around a critical section on a
    FencingResource, which refuses tokens lower than the last it accepted
    and notes any overlap of two sections.
The gossip itself is the fourth workload: a Monitor polls every live
node's MEMBERS and notes each time a node that is running, not paused and
not cut off was held DEAD.

Checkers (Cluster.check) wait, with deadlines, for the cluster to be whole
again and the replicas to agree, then count: acknowledged writes missing or
wrong on some replica ("lost"), replicas that differ, an INCR total that
does not match, fencing violations.

MODE: DMKV_FAULT_MODE=long runs every scenario with its full counts and
durations (make fault); anything else runs the short version (ctest).
"""
import collections
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import netns  # noqa: E402
from dmkvtest import ConnectionClosed, RespError, parse_info, parse_members  # noqa: E402
from netns import FencingResource, LabAgent, NetnsLab, wait_for  # noqa: E402,F401

LONG = os.environ.get("DMKV_FAULT_MODE", "short") == "long"


def pick(short, long):
    """The short-suite value or the long-suite one."""
    return long if LONG else short


TCP_PORT = 7000
UDP_PORT = 7001
CONVERGE_S = 15.0      # fresh cluster: every member alive everywhere
COORDINATOR_S = 25.0   # every lock coordinator ready
HEAL_S = 45.0          # after a heal: alive everywhere (push-pull is every 30 s)
REPLICAS_S = 45.0      # replicas agree after the cluster is whole again
OP_TIMEOUT_S = 20.0    # one client request (a mutex write retries a lost leader up to 30 s)
LOCK_TTL_MS = 3000     # the lock load's lease

# ---------------------------------------------------------------- results --

RESULTS = []  # one dict per scenario run, for the table


def record(scenario, load, faults, acked, lost, violations):
    RESULTS.append({"scenario": scenario, "load": load, "faults": faults, "acked": acked,
                    "lost": lost, "violations": violations})


def results_table(rows=None):
    rows = RESULTS if rows is None else rows
    out = ["| scenario | load | faults injected | acknowledged ops | lost | violations |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [str(r[k]).replace("|", "/").replace("\n", " ")
                 for k in ("scenario", "load", "faults", "acked", "lost", "violations")]
        out.append("| %s |" % " | ".join(cells))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- cluster --

def _quiet(fn, default=None):
    try:
        return fn()
    except Exception:  # a node unreachable or stopped for the moment
        return default


class Cluster:
    """n agents, agent i on lab host i with node id i, each listing all in
    --peers. args go to every agent; fsync is always unless told."""

    def __init__(self, lab, workdir, n=3, mutex=False, fsync="always", args=(), tmpfs=None):
        self.lab = lab
        self.workdir = str(workdir)
        peers = ",".join("%s:%d:%d=%d" % (lab.addr(h), TCP_PORT, UDP_PORT, h) for h in range(1, n + 1))
        flags = ["--use-mutex", "1" if mutex else "0", "--fsync", fsync] + [str(a) for a in args]
        self.mutex = mutex
        self.fsync = fsync
        self.agents = [LabAgent(lab, h, h, workdir, peers=peers, tcp=TCP_PORT, udp=UDP_PORT, args=flags)
                       for h in range(1, n + 1)]
        self.by_id = {a.node_id: a for a in self.agents}
        self.paused = set()
        self.down = set()  # node ids killed on purpose, not restarted yet
        self.crashes = []  # (t, node id, exit status) of agents that exited on their own
        self.cut = set()  # node ids cut off from some other node right now
        self.faults = collections.Counter()
        self.loads = []  # stopped (signalled) when the test ends, whatever happens
        self.t0 = time.monotonic()
        for node_id, size in (tmpfs or {}).items():
            lab.mount_tmpfs(self.by_id[node_id].data_dir, size)

    def log(self, msg):
        print("[%7.2f] %s" % (time.monotonic() - self.t0, msg), flush=True)

    # ---- life cycle ----

    def start(self):
        for a in self.agents:
            a.start(timeout=15)
        self.wait_whole("the cluster to form", CONVERGE_S)
        return self

    def reachable(self, a):
        return a.running() and a.node_id not in self.paused

    def note_crashes(self):
        """Notes (once) every agent that exited without being killed."""
        for a in self.agents:
            if a.proc is not None and a.node_id not in self.down and a.proc.poll() is not None and \
                    not any(cr[1] == a.node_id and cr[3] is a.proc for cr in self.crashes):
                self.crashes.append((round(time.monotonic() - self.t0, 2), a.node_id, a.proc.returncode, a.proc))
                self.log("node %d EXITED on its own with status %d" % (a.node_id, a.proc.returncode))
        return self.crashes

    def members_of(self, a, timeout=2):
        return _quiet(lambda: parse_members(a.call("MEMBERS", timeout=timeout)))

    def alive_everywhere(self):
        for a in self.agents:
            v = self.members_of(a)
            if v is None or set(v) != set(self.by_id):
                return False
            if any(r["state"] != "alive" for r in v.values()):
                return False
        return True

    def coordinators_ready(self):
        return all(_quiet(lambda: parse_info(a.call("INFO", "coordinator", timeout=2))
                          .get("coordinator_ready") == 1, False) for a in self.agents)

    def raft_synced(self):
        """A probe lock taken and given back through the leader, then every
        node has applied the leader's commit index: Raft reaches every
        follower (a follower whose link to the leader is stalled fails)."""
        leader = self.leader()
        if leader is None:
            return False
        a = self.by_id[leader]

        def probe():
            with self.lab.resp(a.host, a.addr, a.tcp, timeout=3) as conn:
                tok = conn.call("LOCK", "harness-probe", 1000, 2000, timeout=5)
                if not isinstance(tok, int):
                    return None
                conn.call("UNLOCK", "harness-probe", tok, timeout=5)
                return parse_info(conn.call("INFO", "coordinator", timeout=5))["raft_commit_index"]
        commit = _quiet(probe)
        if not commit:
            return False
        return all(_quiet(lambda: parse_info(b.call("INFO", "coordinator", timeout=2))["raft_last_applied"]
                          >= commit, False) for b in self.agents)

    def wait_whole(self, what, timeout=HEAL_S):
        """Every member alive at every member and every coordinator ready."""
        t = time.monotonic()

        def whole():
            if self.note_crashes():
                raise AssertionError("%s: agents exited on their own (t, node, status): %s"
                                     % (what, [cr[:3] for cr in self.crashes]))
            return self.alive_everywhere() and self.coordinators_ready() and self.raft_synced()
        wait_for(whole, timeout,
                 "%s: every member alive everywhere, every coordinator ready and in step with the "
                 "Raft leader (%s)"
                 % (what, self.views()), interval=0.1)
        return time.monotonic() - t

    def views(self):
        out = []
        for a in self.agents:
            v = self.members_of(a) if self.reachable(a) else None
            out.append("at %d: %s" % (a.node_id, None if v is None else
                                      {k: (r["state"], r["incarnation"]) for k, r in sorted(v.items())}))
        return "; ".join(out)

    def leader(self, among=None):
        """The Raft leader's node id as some reachable node in among sees it."""
        for a in among or self.agents:
            if not self.reachable(a):
                continue
            r = _quiet(lambda: a.call("LEADER", timeout=2))
            if r:
                return r[0]
        return None

    # ---- faults ----

    def kill9(self, node_id):
        self.down.add(node_id)
        self.by_id[node_id].kill9()
        self.log("node %d killed" % node_id)
        self.faults["kill -9"] += 1

    def restart(self, node_id):
        self.by_id[node_id].start(timeout=20)
        self.down.discard(node_id)
        self.faults["restart"] += 1
        self.log("node %d restarted" % node_id)

    def pause(self, node_id):
        self.paused.add(node_id)
        self.by_id[node_id].pause()
        self.faults["pause"] += 1

    def resume(self, node_id):
        self.by_id[node_id].resume()
        self.paused.discard(node_id)

    def isolate(self, node_id):
        self.lab.isolate(self.by_id[node_id].host)
        self.cut.add(node_id)
        self.faults["partition"] += 1

    def cut_one_way(self, a, b):
        # Not added to self.cut: with a third node to relay SWIM's indirect
        # probes, both ends must stay ALIVE everywhere (the Monitor checks).
        self.lab.partition(self.by_id[a].host, self.by_id[b].host, one_way=True)
        self.faults["one-way partition"] += 1

    def heal(self):
        self.lab.heal()
        self.cut = set()

    # ---- reading the replicas ----

    def dump(self, a, timeout=30):
        """{key: (value, version)} of every live key on agent a."""
        with self.lab.resp(a.host, a.addr, a.tcp, timeout=10) as c:
            keys = c.call("KEYS", "*", timeout=timeout)
            if isinstance(keys, RespError):
                raise AssertionError("KEYS at node %d: %s" % (a.node_id, keys.message))
            out = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                for k in chunk:
                    c.send_command("GET", k)
                    c.send_command("VERSION", k)
                replies = c.read_replies(2 * len(chunk), timeout=timeout)
                for j, k in enumerate(chunk):
                    v, ver = replies[2 * j], replies[2 * j + 1]
                    if v is not None:  # deleted between KEYS and GET
                        out[k] = (v, repr(ver))
            return out

    def dumps(self):
        return {a.node_id: self.dump(a) for a in self.agents}

    def check(self, loads, heal_timeout=HEAL_S):
        """Heals the network, waits for the cluster to be whole and the
        replicas to agree, and checks every record of loads against them."""
        rep = Report()
        if self.note_crashes():
            rep.violation("agents crashed (t, node, exit status): %s" % [cr[:3] for cr in self.crashes])
            rep.acked = loads.acked()
            return rep
        self.lab.clear_faults()
        self.cut = set()
        for node_id in list(self.paused):
            self.resume(node_id)
        try:
            self.wait_whole("after the faults", heal_timeout)
        except AssertionError as e:  # recorded in the table like any violation
            rep.violation(str(e).splitlines()[0][:400])
            rep.acked = loads.acked()
            return rep
        t = time.monotonic()
        deadline = t + REPLICAS_S
        last = None
        while True:
            dumps = _quiet(self.dumps)
            if dumps is not None:
                last = dumps
                missing = loads.writes.missing(dumps) if loads.writes else {}
                if all(dumps[i] == dumps[self.agents[0].node_id] for i in dumps) and not missing:
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert last is not None, "no replica could be read after the faults"
        rep.converge_s = time.monotonic() - t
        ref = last[self.agents[0].node_id]
        for node_id, d in last.items():
            if d != ref:
                diff = sorted(set(d.items()) ^ set(ref.items()))[:5]
                rep.violation("replica %d differs from replica %d in %d keys, e.g. %r" % (
                    node_id, self.agents[0].node_id, len(set(d.items()) ^ set(ref.items())), diff))
        if loads.writes:
            loads.writes.check(last, rep, self.fsync)
        if loads.incr:
            loads.incr.check(last, rep, self.mutex)
        if loads.locks:
            loads.locks.check(rep)
        if loads.monitor:
            loads.monitor.check(rep)
        rep.acked = loads.acked()
        self.log("checked: %s" % rep.summary())
        return rep


class Report:
    def __init__(self):
        self.violations = []
        self.lost = 0
        self.lost_everysec = 0
        self.acked = 0
        self.converge_s = 0.0
        self.notes = []

    def violation(self, text):
        self.violations.append(text)

    def summary(self):
        return "acked %d, lost %d, violations %d %s %s" % (self.acked, self.lost, len(self.violations),
                                                          self.violations[:3], self.notes)

    def violations_cell(self):
        if not self.violations:
            return "0"
        return "%d: %s" % (len(self.violations), "; ".join(v[:120] for v in self.violations[:3]))

    def assert_ok(self):
        assert not self.violations, "\n".join(self.violations)


# -------------------------------------------------------------- workloads --

class Client(threading.Thread):
    """One workload client on node `agent`, talking from the agent's own
    host; reconnects (after a pause) whenever a request fails. At most
    max_ops requests and until the loads' deadline."""

    def __init__(self, loads, agent, max_ops):
        super().__init__(daemon=True, name="%s-%d" % (type(self).__name__, agent.node_id))
        self.loads = loads
        self.cluster = loads.cluster
        self.agent = agent
        self.max_ops = max_ops
        self.conn = None
        self.ops = 0
        self.errors = 0

    def call(self, *args):
        if self.conn is None:
            self.conn = self.cluster.lab.resp(self.agent.host, self.agent.addr, self.agent.tcp, timeout=3)
        return self.conn.call(*args, timeout=OP_TIMEOUT_S)

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(self):
        stop, deadline = self.loads.stop_event, self.loads.deadline
        while self.ops < self.max_ops and not stop.is_set() and time.monotonic() < deadline:
            if not self.cluster.reachable(self.agent):
                self.drop()
                stop.wait(0.1)
                continue
            self.ops += 1
            try:
                self.step()
            except (OSError, TimeoutError, ConnectionClosed, EOFError, RuntimeError):
                self.errors += 1
                self.drop()
                stop.wait(0.2)
        self.drop()


class WriteClient(Client):
    def step(self):
        key = "w:%d:%d" % (self.agent.node_id, self.ops)
        value = "v%d-%d-%08x" % (self.agent.node_id, self.ops, random.getrandbits(32))
        rec = self.loads.writes
        rec.tried += 1
        try:
            r = self.call("SET", key, value)
        except BaseException:
            with rec.mu:
                rec.uncertain[key] = value.encode()
            raise
        if r == "OK":
            with rec.mu:
                rec.acked[key] = value.encode()
        else:
            rec.refused.append((key, r))


class Writes:
    def __init__(self):
        self.mu = threading.Lock()
        self.acked = {}
        self.uncertain = {}
        self.refused = []
        self.tried = 0

    def missing(self, dumps):
        """{node: [acked keys it lacks or holds with another value]}"""
        with self.mu:
            acked = dict(self.acked)
        out = {}
        for node, d in dumps.items():
            bad = [k for k, v in acked.items() if d.get(k.encode(), (None,))[0] != v]
            if bad:
                out[node] = bad
        return out

    def check(self, dumps, rep, fsync):
        missing = self.missing(dumps)
        lost = set()
        for node, keys in missing.items():
            lost.update(keys)
        # A write that was not acknowledged may be anywhere or nowhere, but
        # never with a value nobody wrote.
        known = dict(self.uncertain)
        known.update(self.acked)
        for k, (v, _) in dumps[min(dumps)].items():
            if k.startswith(b"w:") and known.get(k.decode()) != v:
                rep.violation("key %r holds %r, which no client wrote" % (k, v))
                break
        if fsync == "always":
            rep.lost += len(lost)
            if lost:
                rep.violation("%d acknowledged writes missing (fsync always): %s" % (
                    len(lost), {n: ks[:5] for n, ks in missing.items()}))
        else:
            rep.lost_everysec += len(lost)
            rep.lost += len(lost)
            rep.notes.append("everysec: %d acknowledged writes lost" % len(lost))
        rep.notes.append("writes: %d acked, %d refused, %d uncertain" % (
            len(self.acked), len(self.refused), len(self.uncertain)))


class IncrClient(Client):
    def step(self):
        rec = self.loads.incr
        try:
            r = self.call("INCR", rec.key)
        except BaseException:
            with rec.mu:
                rec.uncertain += 1
            raise
        if isinstance(r, int):
            with rec.mu:
                rec.replies.append(r)
                rec.who[r].append((self.agent.node_id, round(time.monotonic() - self.cluster.t0, 3)))
        else:
            rec.refused.append(r)


class Incr:
    key = "counter"

    def __init__(self):
        self.mu = threading.Lock()
        self.replies = []
        self.who = collections.defaultdict(list)  # reply -> [(node, t)] of the INCRs that returned it
        self.uncertain = 0
        self.refused = []

    def check(self, dumps, rep, mutex):
        vals = {n: d.get(self.key.encode(), (b"0",))[0] for n, d in dumps.items()}
        final = int(vals[min(vals)])
        acked = len(self.replies)
        dup = len(self.replies) - len(set(self.replies))
        rep.notes.append("incr: %d acked, %d uncertain, final %d" % (acked, self.uncertain, final))
        if not mutex:
            return
        if dup:
            rep.lost += dup
            dups = {v: w for v, w in sorted(self.who.items()) if len(w) > 1}
            rep.violation("%d acknowledged INCRs returned a value another one returned (lost updates); "
                          "value: [(node, t)]: %s" % (dup, dict(list(dups.items())[:6])))
        if not acked <= final <= acked + self.uncertain or (self.replies and max(self.replies) > final):
            rep.lost += max(0, acked - final)
            rep.violation("INCR total %d, but %d acknowledged and %d uncertain (max reply %s)"
                          % (final, acked, self.uncertain, max(self.replies) if self.replies else None))


class LockClient(Client):
    def step(self):
        rec = self.loads.locks
        t_req = time.monotonic()
        token = self.call("LOCK", "fence", LOCK_TTL_MS, 5000)
        if token is None:
            rec.timeouts += 1
            return
        if not isinstance(token, int):
            rec.refused.append(token)
            self.loads.stop_event.wait(0.1)
            return
        t_got = time.monotonic()
        rec.grants.append((self.agent.node_id, token, round(t_req - self.cluster.t0, 3),
                           round(t_got - self.cluster.t0, 3)))
        if t_got - t_req >= LOCK_TTL_MS / 1000.0:
            # A lease runs from the request: a grant heard of later than
            # the TTL after asking (the node or the network stalled in
            # between) may already be someone else's. A careful client
            # gives it back unused, as docs/LOCKS.md says.
            rec.late.append((self.agent.node_id, token, round(t_got - t_req, 3)))
            self.call("UNLOCK", "fence", token)
            return
        began = rec.resource.begin(token, self.agent.node_id, self.cluster.t0)
        if began is not None:
            time.sleep(0.005)
            rec.resource.end(token, began)
        self.call("UNLOCK", "fence", token)
        with rec.mu:
            rec.rounds[self.agent.node_id] += 1


class Locks:
    def __init__(self):
        self.mu = threading.Lock()
        self.resource = FencingResource()
        self.rounds = collections.Counter()
        self.grants = []  # (node, token, asked at, answered at)
        self.timeouts = 0
        self.refused = []
        self.late = []  # (node, token, seconds from request to reply): grants not used

    def progress(self):
        with self.mu:
            return sum(self.rounds.values())

    def check(self, rep):
        res = self.resource
        tokens = [s[0] for s in res.sections]
        rep.notes.append("locks: %d sections, rounds %s, %d waits timed out, %d refused, %d grants too "
                         "late to use %s" % (len(res.sections), dict(self.rounds), self.timeouts,
                                             len(self.refused), len(self.late), self.late[:3]))
        if res.rejected:
            rep.violation("fencing resource refused %d stale tokens, e.g. %s" % (len(res.rejected), res.rejected[:3]))
        if res.overlaps:
            bad = {o[0] for o in res.overlaps} | {o[3] for o in res.overlaps}
            rep.violation("%d overlapping critical sections (token, node, began at)x2: %s; LOCK replies "
                          "(node, token, asked, answered): %s" % (len(res.overlaps), res.overlaps[:3],
                                                                  [g for g in self.grants if g[1] in bad][:6]))
        bad = [(a, b) for a, b in zip(tokens, tokens[1:]) if b <= a]
        if bad:
            rep.violation("fencing tokens not strictly increasing: %s" % bad[:3])
        if not res.sections:
            rep.violation("no critical section completed")


class Monitor(threading.Thread):
    """Polls MEMBERS on every reachable node every interval and notes each
    time a node that is up (running, not paused, not cut off) was held
    DEAD by another such node."""

    def __init__(self, loads, interval=0.5):
        super().__init__(daemon=True, name="monitor")
        self.loads = loads
        self.cluster = loads.cluster
        self.interval = interval
        self.false_dead = []  # (t, observer, member)
        self.polls = 0
        self.enforce = True

    def healthy(self, a):
        return self.cluster.reachable(a) and a.node_id not in self.cluster.cut

    def run(self):
        c = self.cluster
        stop = self.loads.stop_event
        while not stop.is_set() and time.monotonic() < self.loads.deadline:
            c.note_crashes()
            for a in c.agents:
                if not self.healthy(a):
                    continue
                v = c.members_of(a, timeout=2)
                if v is None:
                    continue
                self.polls += 1
                for b in c.agents:
                    # Both ends must still be healthy after the read: a fault
                    # injected while we asked is not a false accusation.
                    if b is not a and v.get(b.node_id, {}).get("state") == "dead" and \
                            self.healthy(b) and self.healthy(a):
                        self.false_dead.append((round(time.monotonic() - c.t0, 2), a.node_id, b.node_id))
            stop.wait(self.interval)

    def check(self, rep):
        rep.notes.append("gossip: %d polls, %d false DEAD" % (self.polls, len(self.false_dead)))
        if self.enforce and self.false_dead:
            rep.violation("live nodes declared DEAD (t, observer, member): %s" % self.false_dead[:5])


class Loads:
    """The workloads of one scenario: `clients` clients of each enabled
    kind on every node, each bounded by max_ops and the loads' deadline."""

    def __init__(self, cluster, writes=False, incr=False, locks=False, monitor=True, max_s=900,
                 max_ops=200000, monitor_enforce=False):
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + max_s
        self.writes = Writes() if writes else None
        self.incr = Incr() if incr else None
        self.locks = Locks() if locks else None
        self.threads = []
        for a in cluster.agents:
            if writes:
                self.threads.append(WriteClient(self, a, max_ops))
            if incr:
                self.threads.append(IncrClient(self, a, max_ops))
            if locks:
                self.threads.append(LockClient(self, a, max_ops))
        cluster.loads.append(self)
        self.monitor = Monitor(self) if monitor else None
        if self.monitor:
            self.monitor.enforce = monitor_enforce
            self.threads.append(self.monitor)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(OP_TIMEOUT_S + 10)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, "workload threads did not stop: %s" % stuck

    def acked(self):
        n = 0
        if self.writes:
            n += len(self.writes.acked)
        if self.incr:
            n += len(self.incr.replies)
        if self.locks:
            n += len(self.locks.resource.sections)
        return n

    def progress(self):
        """A number that grows while any workload makes progress."""
        n = self.acked()
        if self.locks:
            n += self.locks.progress() - len(self.locks.resource.sections)
        return n

    def wait_progress(self, what, timeout=30, amount=1):
        before = self.progress()
        wait_for(lambda: self.progress() >= before + amount, timeout, "workload progress %s" % what, interval=0.05)

    def describe(self):
        kinds = [k for k, on in (("writes", self.writes), ("INCR", self.incr), ("locks", self.locks)) if on]
        return "%s on %d nodes%s" % (" + ".join(kinds), len(self.cluster.agents),
                                     ", mutex" if self.cluster.mutex else "")


def faults_cell(cluster, extra=""):
    parts = ["%d x %s" % (n, k) for k, n in sorted(cluster.faults.items())]
    if extra:
        parts.append(extra)
    return ", ".join(parts) or "none"
