#!/usr/bin/python3
"""Logger ingest rate: events/s that one `dmkv logger` accepts from three
concurrent senders.

Starts a logger on a free loopback port with a temporary --log-file,
prepares EVENTS events per sender (each sender is one node; its events
carry a valid vector clock), sends them as LOG.EVENTS batches of BATCH
events, each sender waiting for +OK before its next batch, and prints the
rate over the whole transfer (the logger validates, stores in memory and
appends to its file before answering).

Usage: bench/logger_ingest.py [path/to/dmkv]   (env: EVENTS=200000 BATCH=5000)
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

DMKV = sys.argv[1] if len(sys.argv) > 1 else "build/dmkv"
EVENTS = int(os.environ.get("EVENTS", "200000"))
BATCH = int(os.environ.get("BATCH", "5000"))
SENDERS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batches(node):
    out, lines = [], []
    base = 1795500000000000
    for seq in range(1, EVENTS + 1):
        lines.append('{"node":%d,"seq":%d,"ts_us":%d,"lamport":%d,"vc":{"%d":%d},'
                     '"kind":"PUT","key":"k%d","detail":"v%d"}\n'
                     % (node, seq, base + seq, seq, node, seq, seq % 100, seq))
        if len(lines) == BATCH:
            out.append("".join(lines).encode())
            lines = []
    if lines:
        out.append("".join(lines).encode())
    return [b"*2\r\n$10\r\nLOG.EVENTS\r\n$%d\r\n%s\r\n" % (len(b), b) for b in out]


def send(port, reqs, errors):
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rb")
        for r in reqs:
            s.sendall(r)
            line = f.readline()
            if not line.startswith(b"+OK"):
                errors.append(line)
                return


def main():
    work = tempfile.mkdtemp(prefix="dmkv-logger-bench.")
    port = free_port()
    proc = subprocess.Popen([DMKV, "logger", "--logger-tcp", str(port), "--interval", "0",
                             "--max-events", str(SENDERS * EVENTS + 1000),
                             "--log-file", os.path.join(work, "events.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("logger did not start")
                time.sleep(0.05)
        reqs = [batches(100 + i) for i in range(SENDERS)]
        errors = []
        threads = [threading.Thread(target=send, args=(port, reqs[i], errors)) for i in range(SENDERS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.monotonic() - t0
        if errors:
            raise SystemExit("logger refused a batch: %r" % errors[0])
        total = SENDERS * EVENTS
        print("logger ingest: %d senders x %d events in batches of %d: %.0f events/s (%.2f s)"
              % (SENDERS, EVENTS, BATCH, total / dt, dt))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)


if __name__ == "__main__":
    main()
