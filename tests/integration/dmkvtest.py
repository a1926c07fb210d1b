"""Helpers shared by the dmkv integration tests.

Every test runs real `dmkv agent` processes on 127.0.0.1, each on a port
found free at run time and with its own data directory. Nothing here
sleeps and hopes: every wait is a loop on a condition with a deadline
(wait_until), and every process an Agent starts is stopped by its pid
(SIGTERM, then SIGKILL after a deadline).

RespConn is a deliberately small RESP2 client on a raw socket, so tests can
send exactly the bytes they mean (malformed requests, pipelines, one byte
at a time) and see exactly what came back, error prefixes included.
"""
import os
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def dmkv_bin():
    """The binary under test: $DMKV_BIN (set by ctest), else a local build."""
    path = os.environ.get("DMKV_BIN")
    if path:
        return path
    for cand in ("build/dmkv", "build-it/dmkv"):
        full = os.path.join(REPO, cand)
        if os.access(full, os.X_OK):
            return full
    raise RuntimeError("set DMKV_BIN to the dmkv binary")


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now (another process may still
    take it before we do; Agent.start retries on EADDRINUSE)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# An agent's lock coordinator (Raft) listens on --tcp + an offset unless
# told otherwise (--tcp - offset when that would pass 65535;
# serverRaftPortFor). The offset is read from `dmkv agent --help`.
_raft_port_offset = None


def raft_port_offset():
    """The default distance of an agent's Raft port from its --tcp port, as
    `dmkv agent --help` states it ("[--tcp + N]"); 1000 if it does not say."""
    global _raft_port_offset
    if _raft_port_offset is None:
        import re
        try:
            out = subprocess.run([dmkv_bin(), "agent", "--help"], capture_output=True, timeout=10).stdout
            m = re.search(rb"\[--tcp \+ (\d+)\]", out)
            _raft_port_offset = int(m.group(1)) if m else 1000
        except (OSError, subprocess.SubprocessError, RuntimeError):
            _raft_port_offset = 1000
    return _raft_port_offset


def raft_port_for(tcp):
    """The Raft port an agent on client port tcp uses by default."""
    off = raft_port_offset()
    return tcp + off if tcp + off <= 65535 else tcp - off


def tcp_port_is_free(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_agent_port(host="127.0.0.1", avoid=()):
    """A client port for an agent: free right now, and so is its Raft port
    (raft_port_for), neither of them in avoid."""
    for _ in range(200):
        p = free_port(host)
        r = raft_port_for(p)
        if p in avoid or r in avoid:
            continue
        if tcp_port_is_free(r, host):
            return p
    raise AssertionError("no free client port whose Raft port (+%d) is free too" % raft_port_offset())


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_until(cond, timeout, what, interval=0.01):
    """Polls cond() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def run_dmkv(*args, env=None, timeout=15, stdin=None):
    """Runs the dmkv binary to completion; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("DMKV_NODES", None)
    full_env.pop("DMKV_PASSWORD", None)
    full_env.pop("DMKV_LOGGER", None)
    # A developer's running `dmkv dev` must not become the tests' default.
    full_env["DMKV_DEV_STATE"] = os.path.join(REPO, "build", "no-dev-cluster.env")
    if env:
        full_env.update(env)
    return subprocess.run([dmkv_bin()] + [str(a) for a in args], capture_output=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL if stdin is None else stdin)


# ---------------------------------------------------------------- RESP ----

class RespError:
    """An error reply; .message is the full text after '-' (e.g. 'ERR ...')."""

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return "RespError(%r)" % self.message

    def __eq__(self, other):
        return isinstance(other, RespError) and other.message == self.message

    def startswith(self, prefix):
        return self.message.startswith(prefix)


class ConnectionClosed(Exception):
    pass


def encode_command(*args):
    """RESP multibulk encoding of args (str, bytes or int)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n" % len(a))
        out.append(a)
        out.append(b"\r\n")
    return b"".join(out)


def parse_reply(buf, pos=0):
    """Parses one reply from buf[pos:]. Returns (value, next_pos), or None
    when the reply is not complete yet. Simple strings come back as str,
    bulk strings as bytes, errors as RespError, nil as None."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind = buf[pos:pos + 1]
    line = bytes(buf[pos + 1:nl])
    nxt = nl + 2
    if kind == b"+":
        return line.decode("utf-8", "replace"), nxt
    if kind == b"-":
        return RespError(line.decode("utf-8", "replace")), nxt
    if kind == b":":
        return int(line), nxt
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            return None
        if buf[nxt + n:nxt + n + 2] != b"\r\n":
            raise AssertionError("bulk reply not followed by CRLF")
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            r = parse_reply(buf, nxt)
            if r is None:
                return None
            v, nxt = r
            items.append(v)
        return items, nxt
    raise AssertionError("unexpected reply type byte %r in %r" % (kind, bytes(buf[pos:pos + 80])))


class RespConn:
    """A RESP2 connection on a raw socket; every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_command(self, *args):
        self.send(encode_command(*args))

    def _fill(self, deadline):
        """Reads once more into buf; returns False at EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete reply before the deadline; have %r" % bytes(self.buf[:200]))
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("no complete reply before the deadline; have %r" % bytes(self.buf[:200]))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_reply(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            r = parse_reply(self.buf) if self.buf else None
            if r is not None:
                v, used = r
                del self.buf[:used]
                return v
            if self.eof or not self._fill(deadline):
                raise ConnectionClosed("connection closed; unparsed %r" % bytes(self.buf[:200]))

    def read_replies(self, n, timeout=10):
        """Reads n replies (parsing the buffer in one pass per read)."""
        deadline = time.monotonic() + timeout
        out = []
        pos = 0
        while len(out) < n:
            r = parse_reply(self.buf, pos) if pos < len(self.buf) else None
            if r is not None:
                v, pos = r
                out.append(v)
                continue
            del self.buf[:pos]
            pos = 0
            if self.eof or not self._fill(deadline):
                raise ConnectionClosed("connection closed after %d of %d replies" % (len(out), n))
        del self.buf[:pos]
        return out

    def call(self, *args, timeout=10):
        self.send_command(*args)
        return self.read_reply(timeout)

    def inline(self, line, timeout=10):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def wait_closed(self, timeout=5):
        """True when the server closes the connection before the deadline
        (recv returns b'' or the connection is reset); bytes that arrive
        first are kept in buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                if not self._fill(deadline):
                    return True
            except TimeoutError:
                return False
        return True


# --------------------------------------------------------------- agent ----

class AgentExited(AssertionError):
    pass


class Agent:
    """One `dmkv agent` process. Its stderr (and stdout) go to
    <workdir>/<name>.log, appended across restarts."""

    def __init__(self, workdir, name="agent1", node_id=1, args=(), data_dir=None, port=None,
                 host="127.0.0.1"):
        self.workdir = str(workdir)
        self.host = host
        self.name = name
        self.node_id = node_id
        self.args = [str(a) for a in args]
        self.data_dir = str(data_dir) if data_dir else os.path.join(self.workdir, name + "-data")
        self.log_path = os.path.join(self.workdir, name + ".log")
        self.port = port
        # Every agent also binds a UDP gossip port; tests that do not choose
        # one get a free one, so agents with the same id do not collide.
        self.udp_port = None
        self.proc = None
        self.starts = 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command_line(self):
        udp = [] if "--udp" in self.args else ["--udp", str(self.udp_port)]
        return [dmkv_bin(), "agent", "--id", str(self.node_id), "--host", self.host, "--tcp", str(self.port),
                "--data-dir", self.data_dir] + udp + self.args

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10):
        """Starts the agent and waits until it answers PING. A port taken
        in the meantime by someone else means a new port and a new try."""
        assert not self.running(), "agent %s is already running" % self.name
        for attempt in range(5):
            if self.port is None:
                self.port = free_agent_port(self.host)
            if self.udp_port is None and "--udp" not in self.args:
                # The agent refuses a gossip port equal to its Raft port.
                self.udp_port = free_udp_port(self.host)
                while self.udp_port == raft_port_for(self.port):
                    self.udp_port = free_udp_port(self.host)
            self.starts += 1
            with open(self.log_path, "ab") as log:
                log.write(("---- start %d: %s\n" % (self.starts, " ".join(self.command_line()))).encode())
                log.flush()
                self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log)
            try:
                self.wait_ready(timeout)
                return self
            except AgentExited:
                if "address already in use" in self.read_log().split("---- start %d" % self.starts)[-1]:
                    self.port = None
                    self.udp_port = None
                    continue
                raise
        raise AssertionError("agent %s: no free port after 5 tries" % self.name)

    def wait_ready(self, timeout=10):
        def ping():
            code = self.proc.poll()
            if code is not None:
                raise AgentExited("agent %s exited with %d before it was ready:\n%s"
                                  % (self.name, code, self.read_log()[-3000:]))
            try:
                with RespConn(self.port, host=self.host, timeout=1) as c:
                    return c.call("PING", timeout=1) == "PONG"
            except (OSError, ConnectionClosed, TimeoutError):
                return False
        wait_until(ping, timeout, "agent %s to answer PING on port %s" % (self.name, self.port))

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("agent %s (pid %d) did not exit within %.0fs" % (self.name, self.pid, timeout))

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after the deadline. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("agent %s ignored SIGTERM for %.0fs; killed" % (self.name, timeout))
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=10)

    def restart(self, timeout=10):
        self.stop()
        return self.start(timeout)

    def conn(self, timeout=10):
        return RespConn(self.port, host=self.host, timeout=timeout)

    def call(self, *args, timeout=10):
        with self.conn() as c:
            return c.call(*args, timeout=timeout)

    def redis(self, **kw):
        import redis
        return redis.Redis(host=self.host, port=self.port, socket_timeout=kw.pop("socket_timeout", 30), **kw)

    @property
    def address(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)


# ------------------------------------------------------------- cluster ----
# Helpers for the membership tests (test_membership.py, test_netns.py).

def free_udp_port(host="127.0.0.1"):
    """A UDP port nothing is bound to right now (same caveat as free_port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_gossip_ports(n, host="127.0.0.1"):
    """n (tcp, udp) pairs, each free right now, no two alike, so n agents
    can be given each other's addresses before any of them starts. Each
    tcp port's Raft port (raft_port_for) is free too and clashes with no
    other chosen port."""
    tcps, udps = set(), set()  # tcps: the client ports and their Raft ports
    out = []
    for _ in range(n):
        t = free_agent_port(host, avoid=tcps)
        for _ in range(100):
            u = free_udp_port(host)
            if u not in udps and u != raft_port_for(t):
                break
        tcps.update((t, raft_port_for(t)))
        udps.add(u)
        out.append((t, u))
    return out


def peers_arg(entries, with_udp=False):
    """--peers value from (host, tcp, udp, id) tuples: host:tcp=id, or
    host:tcp:udp=id when with_udp."""
    parts = []
    for host, tcp, udp, node_id in entries:
        h = "[%s]" % host if ":" in host else host
        parts.append("%s:%d:%d=%d" % (h, tcp, udp, node_id) if with_udp else "%s:%d=%d" % (h, tcp, node_id))
    return ",".join(parts)


def parse_members(reply):
    """MEMBERS reply -> {id: {"host", "tcp", "udp", "state", "incarnation",
    "since_ms", "self"}}. Checks the shape of every row."""
    if not isinstance(reply, list):
        raise AssertionError("MEMBERS did not return an array: %r" % (reply,))
    out = {}
    for row in reply:
        if not (isinstance(row, list) and len(row) == 8):
            raise AssertionError("MEMBERS row is not an array of 8: %r" % (row,))
        node_id, host, tcp, udp, state, inc, since, me = row
        out[node_id] = {"host": host.decode(), "tcp": tcp, "udp": udp, "state": state.decode(),
                        "incarnation": inc, "since_ms": since, "self": me == b"self"}
    return out


def members(agent, timeout=5):
    """The agent's MEMBERS as parse_members returns it."""
    return parse_members(agent.call("MEMBERS", timeout=timeout))


def parse_info(text):
    """INFO text (bytes or str) -> {field: value}; numbers become ints."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.split("\r\n"):
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


def cluster_info(agent, timeout=5):
    """INFO cluster as a dict."""
    return parse_info(agent.call("INFO", "cluster", timeout=timeout))


def dropped_total(info):
    """Sum of every dropped_* counter of the gossip decoder (dropped_auth
    and dropped_send are the agent's own and not included)."""
    return sum(v for k, v in info.items()
               if k.startswith("dropped_") and k not in ("dropped_auth", "dropped_send"))


def resp_from_socket(sock):
    """A RespConn over a socket someone else connected (for example one
    opened inside a network namespace)."""
    c = RespConn.__new__(RespConn)
    c.sock = sock
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.buf = bytearray()
    c.eof = False
    return c


# -------------------------------------------------------------- logger ----
# Helpers for the logger tests (test_logger.py, test_browser.py).

class LoggerExited(AssertionError):
    pass


class Logger:
    """One `dmkv logger` process on 127.0.0.1: a RESP port (--logger-tcp),
    optionally an HTTP port (--http), its JSON-lines file under workdir
    (kept across restart(), like a real deployment) and --interval 0 so
    its stdout stays quiet. Output goes to <workdir>/<name>.log."""

    def __init__(self, workdir, name="logger", port=None, http=False, log_file=None, args=()):
        self.workdir = str(workdir)
        self.name = name
        self.port = port
        self.http = http
        self.http_port = None
        self.log_file = str(log_file) if log_file else os.path.join(self.workdir, name + "-events.jsonl")
        self.log_path = os.path.join(self.workdir, name + ".log")
        self.args = [str(a) for a in args]
        self.proc = None
        self.starts = 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def command_line(self):
        cmd = [dmkv_bin(), "logger", "--logger-tcp", str(self.port), "--interval", "0",
               "--log-file", self.log_file]
        if self.http:
            cmd += ["--http", str(self.http_port)]
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
        """Starts the logger and waits until it answers PING (and, with
        HTTP, until the page is served). A port taken in the meantime
        means new ports and a new try."""
        assert not self.running(), "logger %s is already running" % self.name
        # New ports on a clash only for a first start on ports we chose: a
        # restart must come back where the agents send.
        may_move = self.starts == 0 and self.port is None and self.http_port is None
        for attempt in range(5):
            if self.port is None:
                self.port = free_port()
            if self.http and self.http_port is None:
                self.http_port = free_port()
                while self.http_port == self.port:
                    self.http_port = free_port()
            self.starts += 1
            with open(self.log_path, "ab") as log:
                log.write(("---- start %d: %s\n" % (self.starts, " ".join(self.command_line()))).encode())
                log.flush()
                self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log)
            try:
                self.wait_ready(timeout)
                return self
            except LoggerExited:
                tail = self.read_log().split("---- start %d" % self.starts)[-1].lower()
                if may_move and "in use" in tail:
                    self.port = None
                    self.http_port = None
                    continue
                raise
        raise AssertionError("logger %s: no free port after 5 tries" % self.name)

    def wait_ready(self, timeout=10):
        def ready():
            code = self.proc.poll()
            if code is not None:
                raise LoggerExited("logger %s exited with %d before it was ready:\n%s"
                                   % (self.name, code, self.read_log()[-3000:]))
            try:
                with RespConn(self.port, timeout=1) as c:
                    if c.call("PING", timeout=1) != "PONG":
                        return False
                if self.http:
                    http_get(self.url + "/", timeout=1)
                return True
            except (OSError, ConnectionClosed, TimeoutError):
                return False
        wait_until(ready, timeout, "logger %s to answer PING on port %s" % (self.name, self.port))

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after the deadline. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("logger %s ignored SIGTERM for %.0fs; killed" % (self.name, timeout))
        return self.proc.returncode

    def restart(self, timeout=10):
        self.stop()
        return self.start(timeout)

    def conn(self, timeout=10):
        return RespConn(self.port, timeout=timeout)

    def call(self, *args, timeout=10):
        with self.conn() as c:
            return c.call(*args, timeout=timeout)

    def info(self):
        return parse_info(self.call("INFO"))

    def trace(self, *args):
        """TRACE args... -> the reply as text (fails on an error reply)."""
        r = self.call("TRACE", *args)
        if not isinstance(r, bytes):
            raise AssertionError("TRACE %s answered %r" % (" ".join(map(str, args)), r))
        return r.decode("utf-8")

    def trace_json(self, *args):
        import json
        return json.loads(self.trace("FORMAT", "json", *args))

    def events(self):
        """Every event the logger holds (TRACE FORMAT json ORDER lamport)."""
        return self.trace_json("ORDER", "lamport")["events"]


def http_get(url, timeout=5):
    """GET url -> (status, content type, body bytes)."""
    import urllib.request
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def event_line(node, seq, vc, kind, lamport, ts_us, key=None, detail=None, msg=None):
    """One event in the logger's JSON-lines wire form (see trace.h)."""
    import json
    d = {"node": node, "seq": seq, "ts_us": ts_us, "lamport": lamport,
         "vc": {str(k): v for k, v in vc.items()}, "kind": kind}
    if key is not None:
        d["key"] = key
    if detail is not None:
        d["detail"] = detail
    if msg is not None:
        d["msg"] = msg
    return json.dumps(d, separators=(",", ":"))


def start_cluster(make_agent, n, flags=(), first_id=1):
    """n agents on fresh TCP and UDP ports, each with the full --peers
    list (host:tcp:udp=id), started in order. Extra flags go to every one."""
    ports = free_gossip_ports(n)
    ids = list(range(first_id, first_id + n))
    peers = peers_arg([("127.0.0.1", t, u, i) for i, (t, u) in zip(ids, ports)], with_udp=True)
    agents = []
    for node_id, (t, u) in zip(ids, ports):
        a = make_agent("--udp", u, "--peers", peers, *flags, name="node%d" % node_id, node_id=node_id,
                       port=t, start=False)
        a.udp_port = u
        agents.append(a)
    for a in agents:
        a.start()
    return agents


# --------------------------------------------------------------- locks ----
# Helpers for the lock coordinator tests (test_locks.py).

def lock_leader(agent, timeout=5):
    """LEADER as (node id, "host:port", term), or None when the agent
    knows of no leader."""
    r = agent.call("LEADER", timeout=timeout)
    if r is None:
        return None
    if not (isinstance(r, list) and len(r) == 3 and isinstance(r[0], int) and isinstance(r[2], int)):
        raise AssertionError("LEADER did not return [id, address, term]: %r" % (r,))
    return r[0], r[1].decode(), r[2]


def coordinator_info(agent, timeout=5):
    """INFO coordinator as a dict."""
    return parse_info(agent.call("INFO", "coordinator", timeout=timeout))


def parse_locks(reply):
    """LOCKS reply -> {name (str): {"node", "client", "token", "ttl_ms",
    "waiters": ["node:client", ...]}}. Checks the shape of every row."""
    if not isinstance(reply, list):
        raise AssertionError("LOCKS did not return an array: %r" % (reply,))
    out = {}
    for row in reply:
        if not (isinstance(row, list) and len(row) == 6 and isinstance(row[5], list)):
            raise AssertionError("LOCKS row is not [name, node, client, token, ttl, waiters]: %r" % (row,))
        name, node, client, token, ttl, waiters = row
        out[name.decode()] = {"node": node, "client": client, "token": token, "ttl_ms": ttl,
                              "waiters": [w.decode() for w in waiters]}
    return out


def no_reply_within(conn, seconds):
    """True when conn receives no reply for seconds; fails if one comes."""
    try:
        v = conn.read_reply(timeout=seconds)
    except TimeoutError:
        return True
    raise AssertionError("expected no reply yet, got %r" % (v,))
