"""Replication lag: time from a write's acknowledgement on the first
server until it is readable on every other, for Redis (master + replicas)
and dmkv, alternating write by write so both see the same machine load.

Each write stores a unique value; the two followers are then polled with
GET on open connections until both return it (bounded: a write not seen
within 5 s counts as lost). Prints p50/p99/max per system and the ratio.
"""
import argparse
import socket
import time


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def reply(self):
        ln = self.line()
        if ln[:1] == b"$":
            n = int(ln[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        return ln


def measure(ports, writes, tag):
    first, *others = [Conn(p) for p in ports]
    lags = []
    lost = 0
    for i in range(writes):
        key = "lag:%s:%d" % (tag, i % 100)
        val = b"%s-%d-%f" % (tag.encode(), i, time.time())
        first.call("SET", key, val)
        t0 = time.perf_counter()
        pending = list(others)
        deadline = t0 + 5
        while pending and time.perf_counter() < deadline:
            pending = [c for c in pending if c.call("GET", key) != val]
        if pending:
            lost += 1
        else:
            lags.append((time.perf_counter() - t0) * 1000)
    return lags, lost


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--redis", required=True)
    ap.add_argument("--dmkv", required=True)
    a = ap.parse_args()
    res = {}
    chunk = 100
    for sysname, ports in (("redis", a.redis), ("dmkv", a.dmkv)):
        res[sysname] = ([], 0)
    done = 0
    while done < a.writes:
        for sysname, ports in (("redis", a.redis), ("dmkv", a.dmkv)):
            lags, lost = measure([int(p) for p in ports.split(",")], chunk, sysname)
            res[sysname] = (res[sysname][0] + lags, res[sysname][1] + lost)
        done += chunk
    print("replication lag over %d writes each: ack on the first server -> readable on both others (ms)" % done)
    print("%-6s %8s %8s %8s %6s" % ("", "p50", "p99", "max", "lost"))
    for sysname in ("redis", "dmkv"):
        lags, lost = res[sysname]
        print("%-6s %8.3f %8.3f %8.3f %6d" % (sysname, pct(lags, 0.5), pct(lags, 0.99), max(lags), lost))
    r, d = res["redis"][0], res["dmkv"][0]
    print("p99 ratio dmkv/redis: %.2f" % (pct(d, 0.99) / pct(r, 0.99)))


if __name__ == "__main__":
    main()
