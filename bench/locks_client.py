"""One lock benchmark client for every system, so the systems are measured
by the same code: N clients take and release one named lock in a loop,
and each pair (acquire + release, waiting in line included) is timed.

Systems (each with its usual way of taking a lock):
  dmkv   LOCK name 0 0 -> token (blocks in the coordinator's FIFO line),
         UNLOCK name token; client i talks to endpoint i mod len.
  redis  SET name token NX PX 10000, retried every --retry-ms while
         another client holds it (Redis has no waiting line), released by
         a compare-and-delete script (EVALSHA).
  etcd   the v3 HTTP gateway's lock API: one lease per client
         (/v3/lease/grant, TTL 60 s), /v3/lock/lock {name, lease} -> key
         (blocks until held), /v3/lock/unlock {key}.

--mode pipelined (dmkv only) measures the coordinator's commit rate
instead: one thread drives --clients connections, each with --pipeline
LOCKs on names of its own (no contention) sent at once, then their
UNLOCKs at once.

Every run is bounded by --duration seconds and --max-pairs pairs. Prints
one JSON line: system, mode, clients, pairs, seconds, pairs_per_s,
p50_ms, p99_ms, errors.
"""
import argparse
import base64
import http.client
import json
import os
import selectors
import socket
import sys
import threading
import time

RELEASE_SCRIPT = (b"if redis.call('get', KEYS[1]) == ARGV[1] then "
                  b"return redis.call('del', KEYS[1]) else return 0 end")


class BenchError(Exception):
    pass


def parse_endpoints(text):
    out = []
    for part in text.split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit("locks_client: bad endpoint %r (expected host:port)" % part)
        out.append((host, int(port)))
    return out


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Resp:
    """A blocking RESP2 connection: enough for integers, bulk strings,
    simple strings, errors and nil."""

    def __init__(self, host, port, timeout):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.s.close()

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln, self.buf = self.buf[:i], self.buf[i + 2:]
                return ln
            chunk = self.s.recv(65536)
            if not chunk:
                raise BenchError("connection closed")
            self.buf += chunk

    def reply(self):
        ln = self._line()
        kind = ln[:1]
        if kind == b":":
            return int(ln[1:])
        if kind == b"+":
            return ln[1:].decode()
        if kind == b"-":
            raise BenchError(ln[1:].decode())
        if kind == b"$":
            n = int(ln[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise BenchError("connection closed")
                self.buf += chunk
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if kind == b"*" and int(ln[1:]) < 0:
            return None
        raise BenchError("unexpected reply %r" % ln[:80])

    def call(self, *args):
        self.s.sendall(encode(*args))
        return self.reply()


# ---- one client per system: acquire() then release() ----

class DmkvClient:
    def __init__(self, ep, name, timeout, _args):
        self.c = Resp(ep[0], ep[1], timeout)
        self.name = name
        self.token = None

    def acquire(self):
        t = self.c.call("LOCK", self.name, 0, 0)
        if not isinstance(t, int):
            raise BenchError("LOCK answered %r" % (t,))
        self.token = t

    def release(self):
        if self.c.call("UNLOCK", self.name, self.token) != 1:
            raise BenchError("UNLOCK of token %d answered 0" % self.token)

    def close(self):
        self.c.close()


class RedisClient:
    def __init__(self, ep, name, timeout, args):
        self.c = Resp(ep[0], ep[1], timeout)
        self.name = name
        self.retry_s = args.retry_ms / 1000.0
        self.sha = self.c.call("SCRIPT", "LOAD", RELEASE_SCRIPT)
        self.me = os.urandom(8).hex()
        self.n = 0
        self.token = None
        self.deadline = None

    def acquire(self):
        self.n += 1
        self.token = "%s-%d" % (self.me, self.n)
        while self.c.call("SET", self.name, self.token, "NX", "PX", 10000) != "OK":
            if time.monotonic() > self.deadline:
                raise BenchError("lock not acquired before the run's deadline")
            time.sleep(self.retry_s)

    def release(self):
        if self.c.call("EVALSHA", self.sha, 1, self.name, self.token) != 1:
            raise BenchError("compare-and-delete found another token")

    def close(self):
        self.c.close()


class EtcdClient:
    def __init__(self, ep, name, timeout, _args):
        self.h = http.client.HTTPConnection(ep[0], ep[1], timeout=timeout)
        self.name = base64.b64encode(name.encode()).decode()
        self.lease = self._post("/v3/lease/grant", {"TTL": 60})["ID"]
        self.key = None

    def _post(self, path, body):
        self.h.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = self.h.getresponse()
        data = r.read()
        if r.status != 200:
            raise BenchError("%s: HTTP %d %s" % (path, r.status, data[:200]))
        return json.loads(data)

    def acquire(self):
        self.key = self._post("/v3/lock/lock", {"name": self.name, "lease": self.lease})["key"]

    def release(self):
        self._post("/v3/lock/unlock", {"key": self.key})

    def close(self):
        try:
            self._post("/v3/lease/revoke", {"ID": self.lease})
        except (BenchError, OSError, ValueError):
            pass
        self.h.close()


CLIENTS = {"dmkv": DmkvClient, "redis": RedisClient, "etcd": EtcdClient}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def run_contended(a, endpoints):
    clients = [CLIENTS[a.system](endpoints[i % len(endpoints)], a.name, a.timeout, a) for i in range(a.clients)]
    per_client = max(1, a.max_pairs // a.clients)
    lat = [[] for _ in clients]
    errors = []
    start = threading.Barrier(len(clients) + 1)
    t_end = [0.0]

    def loop(i):
        c = clients[i]
        start.wait()
        deadline = t_end[0]
        c.deadline = deadline + a.timeout
        try:
            while len(lat[i]) < per_client and time.monotonic() < deadline:
                t0 = time.perf_counter()
                c.acquire()
                c.release()
                lat[i].append((time.perf_counter() - t0) * 1000.0)
        except (BenchError, OSError, ValueError, KeyError) as e:
            errors.append("client %d: %s" % (i, e))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    t_end[0] = t0 + a.duration
    start.wait()
    for t in threads:
        t.join(a.duration + 2 * a.timeout)
    secs = time.monotonic() - t0
    for c in clients:
        try:
            c.close()
        except (BenchError, OSError):
            pass
    return [x for l in lat for x in l], secs, errors


def run_pipelined(a, endpoints):
    """One thread, --clients non-blocking connections, each alternating a
    batch of --pipeline LOCKs and the batch of their UNLOCKs."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.clients):
        host, port = endpoints[i % len(endpoints)]
        s = socket.create_connection((host, port), timeout=a.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        st = {"s": s, "i": i, "buf": b"", "want": 0, "phase": "lock", "tokens": [], "t0": 0.0}
        conns.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    names = [["%s-%d-%d" % (a.name, i, k) for k in range(a.pipeline)] for i in range(a.clients)]
    lat = []
    errors = []
    pairs = 0

    def send_locks(st):
        st["phase"] = "lock"
        st["want"] = a.pipeline
        st["tokens"] = []
        st["t0"] = time.perf_counter()
        st["s"].sendall(b"".join(encode("LOCK", n, 0, 0) for n in names[st["i"]]))

    def send_unlocks(st):
        st["phase"] = "unlock"
        st["want"] = a.pipeline
        st["s"].sendall(b"".join(encode("UNLOCK", n, t) for n, t in zip(names[st["i"]], st["tokens"])))

    t0 = time.monotonic()
    deadline = t0 + a.duration
    for st in conns:
        send_locks(st)
    stopping = False
    active = len(conns)
    hard_deadline = deadline + a.timeout
    while active and time.monotonic() < hard_deadline:
        if not stopping and (time.monotonic() >= deadline or pairs >= a.max_pairs):
            stopping = True
        for key, _ in sel.select(timeout=0.5):
            st = key.data
            try:
                chunk = st["s"].recv(1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                errors.append("connection %d closed" % st["i"])
                sel.unregister(st["s"])
                active -= 1
                continue
            st["buf"] += chunk
            while st["want"]:
                i = st["buf"].find(b"\r\n")
                if i < 0:
                    break
                ln, st["buf"] = st["buf"][:i], st["buf"][i + 2:]
                st["want"] -= 1
                if ln[:1] != b":":
                    errors.append("connection %d: %r" % (st["i"], ln[:100]))
                    continue
                if st["phase"] == "lock":
                    st["tokens"].append(int(ln[1:]))
                elif ln != b":1":
                    errors.append("connection %d: UNLOCK answered %r" % (st["i"], ln))
            if st["want"]:
                continue
            if st["phase"] == "lock":
                send_unlocks(st)
                continue
            pairs += a.pipeline
            lat.append((time.perf_counter() - st["t0"]) * 1000.0)
            if stopping:
                sel.unregister(st["s"])
                active -= 1
            else:
                send_locks(st)
    secs = time.monotonic() - t0
    if active:
        errors.append("%d connections still busy at the deadline" % active)
    for st in conns:
        st["s"].close()
    # lat holds batch times; report them per pair count, not per batch.
    return lat, secs, errors, pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--system", choices=sorted(CLIENTS), required=True)
    ap.add_argument("--endpoints", required=True, help="host:port,host:port,...")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--name", default="bench-lock")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per run [5]")
    ap.add_argument("--max-pairs", type=int, default=1000000)
    ap.add_argument("--mode", choices=["contended", "pipelined"], default="contended")
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--retry-ms", type=float, default=1.0, help="redis: wait between SET NX tries [1]")
    ap.add_argument("--timeout", type=float, default=10.0, help="socket timeout, seconds [10]")
    a = ap.parse_args()
    if not (1 <= a.clients <= 1024 and 0 < a.duration <= 600 and a.max_pairs >= 1 and 1 <= a.pipeline <= 1024):
        raise SystemExit("locks_client: --clients 1..1024, --duration 0..600 s, --pipeline 1..1024")
    if a.mode == "pipelined" and a.system != "dmkv":
        raise SystemExit("locks_client: --mode pipelined is for dmkv only")
    endpoints = parse_endpoints(a.endpoints)
    if a.mode == "pipelined":
        batch_ms, secs, errors, pairs = run_pipelined(a, endpoints)
        p50, p99 = pct(batch_ms, 0.5), pct(batch_ms, 0.99)
    else:
        lat, secs, errors = run_contended(a, endpoints)
        pairs = len(lat)
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    print(json.dumps({"system": a.system, "mode": a.mode, "clients": a.clients,
                      "pipeline": a.pipeline if a.mode == "pipelined" else 1, "pairs": pairs,
                      "seconds": round(secs, 3), "pairs_per_s": round(pairs / secs, 1) if secs > 0 else 0,
                      "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "errors": errors[:5]}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
