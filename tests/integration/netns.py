"""A throw-away network of Linux network namespaces for fault tests.

    with NetnsLab(3) as lab:                  # hosts 1..3 on 10.231.0.0/24
        p = lab.spawn(1, [dmkv, "agent", ...], log_path)
        lab.partition(3, 1); lab.partition(3, 2)   # cut host 3 off
        lab.heal()
        lab.loss(2, 30)                       # 30 % loss on host 2's link
        with lab.resp(1, lab.addr(1), 7000) as c: c.call("PING")

Layout. A dedicated "switch" namespace holds a bridge; each host is its own
namespace with one veth pair whose other end is a port of that bridge, an
address 10.231.0.<i>/24 on eth0, and lo up. Nothing is created in the
namespace the tests run in, so the machine's own network is never touched,
and because every host has its own network stack the address plan and the
port numbers can be the same in every run: two runs never see each other.
Namespace names carry the pid and a per-process counter, so two runs (or
two labs in one run) can coexist.

Faults are nftables rules installed inside the host namespaces, in tables
of the netdev family on eth0, which is where a real NIC would lose a
packet: a drop there is silent, like loss on the wire (a drop in the
output hook would instead fail the sender's sendto() with EPERM, which no
real network does).
  - partition(a, b) drops, at a's ingress, packets from b, and at b's
    ingress, packets from a (one_way=True cuts only a -> b). The rules live
    in one table per namespace, dmkv_partition, so heal() deletes it.
  - loss(h, P) drops P % of the packets arriving at h (ingress) and P % of
    those h sends (egress hook) with `numgen random mod 100 < P drop`, in
    the table dmkv_loss; loss(h, 0) deletes it.
  - link_loss(a, b, P) drops P % of the packets on the link a-b, each way,
    at the receiver's ingress (table dmkv_linkloss), so a packet crosses
    exactly one such rule; link_loss(a, b, 0) removes it.
  - pause(p) / resume(p) stop and continue a process with SIGSTOP/SIGCONT;
    __exit__ continues every paused one before stopping it.
  - mount_tmpfs(path, size) mounts a small tmpfs (a disk that can be
    filled) before the processes that use it start; __exit__ unmounts it
    after stopping them (lazily if something still holds it).

Processes run in a host with `ip netns exec NAME argv...` (ip execs argv,
so the Popen's pid is the program's own). The lab keeps every Popen and in
__exit__ stops those still running, by pid (SIGTERM, then SIGKILL), before
it deletes the namespaces, so no namespace is kept alive by a straggler.
__exit__ runs whatever happened in the test; a lab whose __enter__ fails
half-way removes what it had created.

The test process itself stays in its own namespace. To talk to a server in
a host, connect() opens the socket from a short-lived thread that has
joined the host's namespace with setns(2): a socket belongs to the
namespace it was created in, so the test then uses it like any other, and
the thread's namespace change dies with the thread.

unavailable_reason() says why the lab cannot run here (not root, no `ip`
or `nft`, no namespace, veth, bridge or netdev hooks), by actually trying;
tests skip with that reason.
"""
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
SUBNET = "10.231.0"  # 10.231.0.<host>/24 inside the lab; private to the lab's namespaces
PREFIX_LEN = 24

_counter = itertools.count(1)
_libc = None
_unavailable = {}


def _run(argv, input=None, check=True, timeout=20):
    r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                   (r.stderr or r.stdout).decode(errors="replace").strip()))
    return r


def _setns(path):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


def in_netns(name, fn):
    """Runs fn() on a fresh thread inside network namespace `name` and
    returns its result (or raises its exception). Sockets fn creates stay
    in that namespace; the caller's thread never changes namespace."""
    box = {}

    def body():
        try:
            _setns("/run/netns/%s" % name)
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e
    t = threading.Thread(target=body, name="netns-%s" % name, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        raise TimeoutError("work inside namespace %s did not finish in 60 s" % name)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def unavailable_reason():
    """None when the lab can run here, else why not (for pytest.skip)."""
    if "reason" in _unavailable:
        return _unavailable["reason"]
    reason = None
    if os.geteuid() != 0:
        reason = "network namespace tests need root"
    elif not shutil.which("ip") or not shutil.which("nft"):
        reason = "network namespace tests need the ip (iproute2) and nft (nftables) commands"
    else:
        try:
            with NetnsLab(1, tag="probe") as lab:
                lab.loss(1, 10)       # netdev ingress and egress hooks in a host
                lab.partition(1, 1)   # and the partition table
                lab.heal()
                lab.loss(1, 0)
                lab.run(1, ["true"])
        except Exception as e:  # any failure means: cannot run here
            reason = "network namespaces are not usable here: %s" % str(e).strip().splitlines()[0]
    _unavailable["reason"] = reason
    return reason


class NetnsLab:
    """hosts namespaces (numbered 1..hosts) on one bridge; see the module
    comment."""

    def __init__(self, hosts, tag="lab"):
        assert 1 <= hosts <= 200
        self.hosts = hosts
        base = "dmkv%d-%s%d" % (os.getpid(), tag, next(_counter))
        self.switch = base + "-sw"
        self.names = {i: "%s-h%d" % (base, i) for i in range(1, hosts + 1)}
        self.created = []     # namespaces to delete, in creation order
        self.procs = []       # every Popen spawned, to stop in __exit__
        self.partitions = {}  # host -> set of hosts whose packets it drops
        self.lossy = set()
        self.link_losses = {}  # host -> {source host: percent dropped at its ingress}
        self.paused = set()    # Popens stopped with SIGSTOP, continued before __exit__ stops them
        self.mounts = []       # tmpfs mount points, unmounted in __exit__ after the processes

    # ---- life cycle ----

    def __enter__(self):
        try:
            self._netns_add(self.switch)
            self._ip(self.switch, "link", "set", "lo", "up")
            self._ip(self.switch, "link", "add", "name", "br0", "type", "bridge")
            self._ip(self.switch, "link", "set", "br0", "up")
            for i, name in self.names.items():
                self._netns_add(name)
                port = "p%d" % i
                self._ip(self.switch, "link", "add", "name", port, "type", "veth", "peer", "name", "eth0",
                         "netns", name)
                self._ip(self.switch, "link", "set", port, "master", "br0")
                self._ip(self.switch, "link", "set", port, "up")
                self._ip(name, "link", "set", "lo", "up")
                self._ip(name, "addr", "add", "%s/%d" % (self.addr(i), PREFIX_LEN), "dev", "eth0")
                self._ip(name, "link", "set", "eth0", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        errors = []
        for p in list(self.paused):
            try:
                self.resume(p)  # a stopped process would never act on SIGTERM
            except Exception as e:  # keep cleaning up
                errors.append(e)
        for p in self.procs:
            try:
                self.stop(p)
            except Exception as e:  # keep cleaning up
                errors.append(e)
        for name in reversed(self.created):
            r = _run(["ip", "netns", "del", name], check=False)
            if r.returncode != 0 and os.path.exists("/run/netns/%s" % name):
                errors.append(RuntimeError("ip netns del %s: %s" % (name, r.stderr.decode().strip())))
        self.created = []
        for path in reversed(self.mounts):
            try:
                self._umount(path)
            except Exception as e:  # keep cleaning up
                errors.append(e)
        self.mounts = []
        if errors and exc[0] is None:
            raise errors[0]
        return False

    def _netns_add(self, name):
        _run(["ip", "netns", "add", name])
        self.created.append(name)

    def _ip(self, ns, *args):
        return _run(["ip", "-n", ns] + list(args))

    # ---- addressing and processes ----

    def name(self, host):
        return self.names[host]

    def addr(self, host):
        return "%s.%d" % (SUBNET, host)

    def run(self, host, argv, check=True, timeout=20, input=None):
        """Runs argv to completion inside the host; returns CompletedProcess."""
        return _run(["ip", "netns", "exec", self.names[host]] + [str(a) for a in argv], check=check,
                    timeout=timeout, input=input)

    def spawn(self, host, argv, log_path=None):
        """Starts argv inside the host; output appended to log_path. The
        Popen is kept so __exit__ can stop it; stop/kill it by its pid."""
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            p = subprocess.Popen(["ip", "netns", "exec", self.names[host]] + [str(a) for a in argv],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            if log_path:
                log.close()
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, timeout=10):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                return p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
        return p.wait(timeout=10)

    @staticmethod
    def kill9(p):
        if p.poll() is None:
            p.kill()
        return p.wait(timeout=10)

    def pause(self, p):
        """Stops p with SIGSTOP (by pid): it keeps its sockets and state
        but does nothing, like a VM or a process frozen by the scheduler."""
        if p.poll() is None:
            os.kill(p.pid, signal.SIGSTOP)
            self.paused.add(p)

    def resume(self, p):
        """SIGCONT for a process pause() stopped."""
        self.paused.discard(p)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)

    # ---- disks ----

    def mount_tmpfs(self, path, size_bytes):
        """Mounts a tmpfs of size_bytes at path (created if missing), a
        small disk that can be filled. It is mounted in the test's own mount
        namespace before any process that uses it starts, so processes
        spawned later in a host (ip netns exec copies the mount table) see
        it; __exit__ unmounts it after stopping every process."""
        os.makedirs(path, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size_bytes, "tmpfs", path])
        self.mounts.append(path)
        return path

    @staticmethod
    def _umount(path):
        r = _run(["umount", path], check=False)
        if r.returncode != 0:
            # Busy (a straggler in another mount namespace): detach it now,
            # the kernel frees it when the last user goes.
            _run(["umount", "-l", path])

    # ---- talking to servers inside ----

    def connect(self, host, addr, port, timeout=5):
        """A TCP socket created inside `host` and connected to addr:port."""
        return in_netns(self.names[host], lambda: socket.create_connection((addr, port), timeout=timeout))

    def udp_socket(self, host, bind_addr=None):
        """A UDP socket inside `host`, bound to bind_addr (default: the
        host's address) on a free port."""
        bind_addr = bind_addr or self.addr(host)

        def make():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((bind_addr, 0))
            return s
        return in_netns(self.names[host], make)

    def resp(self, host, addr, port, timeout=5):
        """A dmkvtest.RespConn opened from inside `host`."""
        from dmkvtest import resp_from_socket
        return resp_from_socket(self.connect(host, addr, port, timeout))

    # ---- faults ----

    def _nft(self, host, script):
        self.run(host, ["nft", "-f", "-"], input=script.encode())

    def _install_partitions(self, host):
        srcs = sorted(self.partitions.get(host, ()))
        self.run(host, ["nft", "delete", "table", "netdev", "dmkv_partition"], check=False)
        if not srcs:
            return
        rules = "\n".join("    ip saddr %s drop" % self.addr(s) for s in srcs)
        self._nft(host, 'table netdev dmkv_partition {\n'
                        '  chain ingress {\n'
                        '    type filter hook ingress device "eth0" priority 0; policy accept;\n'
                        '%s\n  }\n}\n' % rules)

    def partition(self, a, b, one_way=False):
        """Drops packets from a to b, and (unless one_way) from b to a."""
        self.partitions.setdefault(b, set()).add(a)
        self._install_partitions(b)
        if not one_way:
            self.partitions.setdefault(a, set()).add(b)
            self._install_partitions(a)

    def isolate(self, host):
        """Cuts host off from every other host, both ways."""
        for other in self.names:
            if other != host:
                self.partition(host, other)

    def heal(self):
        """Removes every partition (loss stays; see loss(h, 0))."""
        hosts = list(self.partitions)
        self.partitions = {}
        for h in hosts:
            self._install_partitions(h)

    def loss(self, host, percent):
        """Drops percent % of the packets host receives and of those it
        sends (0 removes the loss)."""
        assert 0 <= percent <= 100
        self.run(host, ["nft", "delete", "table", "netdev", "dmkv_loss"], check=False)
        self.lossy.discard(host)
        if percent == 0:
            return
        rule = "drop" if percent == 100 else "numgen random mod 100 < %d drop" % percent
        self._nft(host, 'table netdev dmkv_loss {\n'
                        '  chain ingress {\n'
                        '    type filter hook ingress device "eth0" priority 0; policy accept;\n'
                        '    %s\n  }\n'
                        '  chain egress {\n'
                        '    type filter hook egress device "eth0" priority 0; policy accept;\n'
                        '    %s\n  }\n}\n' % (rule, rule))
        self.lossy.add(host)

    def _install_link_losses(self, host):
        srcs = self.link_losses.get(host, {})
        self.run(host, ["nft", "delete", "table", "netdev", "dmkv_linkloss"], check=False)
        if not srcs:
            return
        rules = "\n".join("    ip saddr %s %s" % (self.addr(s), "drop" if p == 100 else
                                                   "numgen random mod 100 < %d drop" % p)
                          for s, p in sorted(srcs.items()))
        self._nft(host, 'table netdev dmkv_linkloss {\n'
                        '  chain ingress {\n'
                        '    type filter hook ingress device "eth0" priority 0; policy accept;\n'
                        '%s\n  }\n}\n' % rules)

    def link_loss(self, a, b, percent):
        """Drops percent % of the packets on the link between a and b, in
        each direction (at the receiver's ingress, in the table
        dmkv_linkloss); 0 removes it. Unlike loss(h, P), a packet crosses
        one such rule, so the link loses exactly P %."""
        assert 0 <= percent <= 100 and a != b
        for src, dst in ((a, b), (b, a)):
            srcs = self.link_losses.setdefault(dst, {})
            if percent:
                srcs[src] = percent
            else:
                srcs.pop(src, None)
            self._install_link_losses(dst)

    def clear_link_losses(self):
        hosts = list(self.link_losses)
        self.link_losses = {}
        for h in hosts:
            self._install_link_losses(h)

    def clear_faults(self):
        self.heal()
        for h in list(self.lossy):
            self.loss(h, 0)
        if self.link_losses:
            self.clear_link_losses()

    def ruleset(self, host):
        """nft list ruleset of the host, for failure messages."""
        return self.run(host, ["nft", "list", "ruleset"], check=False).stdout.decode()


def wait_for(cond, timeout, what, interval=0.05):
    """Like dmkvtest.wait_until (kept here so the harness stands alone)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class LabAgent:
    """One `dmkv agent` in a lab host, listening on the host's address.
    Every host has its own port space, so the ports need no search: in a
    namespace made for this run nothing else can hold them. Output goes to
    <workdir>/<name>.log, appended across restarts. Queries are made from
    inside the agent's own host (its own address is never cut off), or from
    another host with from_host."""

    def __init__(self, lab, host, node_id, workdir, peers="", tcp=7000, udp=7001, args=()):
        self.lab = lab
        self.host = host
        self.node_id = node_id
        self.addr = lab.addr(host)
        self.tcp = tcp
        self.udp = udp
        self.name = "node%d" % node_id
        self.data_dir = os.path.join(str(workdir), self.name + "-data")
        self.log_path = os.path.join(str(workdir), self.name + ".log")
        self.peers = peers
        self.args = [str(a) for a in args]
        self.proc = None

    def command_line(self):
        from dmkvtest import dmkv_bin
        cmd = [dmkv_bin(), "agent", "--id", str(self.node_id), "--host", self.addr, "--tcp", str(self.tcp),
               "--udp", str(self.udp), "--data-dir", self.data_dir]
        if self.peers:
            cmd += ["--peers", self.peers]
        return cmd + self.args

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10):
        assert not self.running()
        with open(self.log_path, "ab") as f:
            f.write(("---- start in %s: %s\n" % (self.lab.name(self.host), " ".join(self.command_line()))).encode())
        self.proc = self.lab.spawn(self.host, self.command_line(), self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %d before it was ready:\n%s"
                                     % (self.name, self.proc.returncode, self.read_log()[-3000:]))
            try:
                return self.call("PING", timeout=1) == "PONG"
            except (OSError, TimeoutError, EOFError, AssertionError):
                return False
            except Exception as e:  # dmkvtest.ConnectionClosed
                if type(e).__name__ == "ConnectionClosed":
                    return False
                raise
        wait_for(ready, timeout, "%s to answer PING on %s:%d" % (self.name, self.addr, self.tcp))
        return self

    def stop(self, timeout=10):
        return self.lab.stop(self.proc, timeout) if self.proc else None

    def kill9(self):
        return self.lab.kill9(self.proc) if self.proc else None

    def pause(self):
        self.lab.pause(self.proc)

    def resume(self):
        self.lab.resume(self.proc)

    def call(self, *args, timeout=5, from_host=None):
        with self.lab.resp(from_host or self.host, self.addr, self.tcp, timeout=timeout) as c:
            return c.call(*args, timeout=timeout)

    def members(self, timeout=5):
        from dmkvtest import parse_members
        return parse_members(self.call("MEMBERS", timeout=timeout))

    def info(self, section="cluster"):
        from dmkvtest import parse_info
        return parse_info(self.call("INFO", section))


class FencingResource:
    """Accepts a critical section only with a token at least the last one
    it accepted; notes refusals and overlapping sections."""

    def __init__(self):
        self.mu = threading.Lock()
        self.last = 0
        self.inside = None
        self.inside_who = None
        self.inside_t = 0.0
        self.sections = []  # (token, begin, end)
        self.rejected = []
        self.overlaps = []

    def begin(self, token, who=None, t0=None):
        """who (a node id) and t0 (when the section starts, on the
        harness's clock) only label the records."""
        with self.mu:
            if token < self.last:
                self.rejected.append((token, self.last, who))
                return None
            if self.inside is not None:
                self.overlaps.append((self.inside, self.inside_who, round(self.inside_t, 3), token, who,
                                      round(time.monotonic() - (t0 or 0), 3)))
            self.last = token
            self.inside = token
            self.inside_who = who
            self.inside_t = time.monotonic() - (t0 or 0)
            return time.monotonic()

    def end(self, token, began):
        with self.mu:
            if self.inside == token:
                self.inside = None
            self.sections.append((token, began, time.monotonic()))
