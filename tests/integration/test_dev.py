"""`dmkv dev`: a whole local cluster from one command, stopped cleanly."""
import os
import re
import signal
import subprocess
import time

from dmkvtest import dmkv_bin, run_dmkv, wait_until


def read_until(proc, marker, timeout):
    """Reads the process's stdout lines until one contains marker."""
    out = []
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
            if marker.encode() in buf:
                return buf.decode()
        elif proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError("no %r within %ss; output so far:\n%s" % (marker, timeout, buf.decode(errors="replace")))


def port_open(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_dev_starts_a_cluster_the_verbs_use_and_stops_everything(tmp_path):
    state = str(tmp_path / "dev.env")
    env = dict(os.environ, DMKV_DEV_STATE=state)
    env.pop("DMKV_NODES", None)
    proc = subprocess.Popen([dmkv_bin(), "dev", "--nodes", "3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        out = read_until(proc, "Press Ctrl-C", 30)
        nodes = re.search(r"export DMKV_NODES=(\S+)", out).group(1).split(",")
        logger = re.search(r"export DMKV_LOGGER=(\S+)", out).group(1)
        http = int(re.search(r"http://127\.0\.0\.1:(\d+)/", out).group(1))
        data_dir = re.search(r"data in (\S+?)[,)]", out).group(1)
        assert len(nodes) == 3 and os.path.isdir(data_dir)
        # The verbs find the cluster through the state file, without DMKV_NODES.
        with open(state) as f:
            assert "nodes=" + ",".join(nodes) in f.read()
        r = run_dmkv("put", "color", "red", env={"DMKV_DEV_STATE": state})
        assert r.returncode == 0 and r.stdout == b"OK\n", r
        r = run_dmkv("members", env={"DMKV_DEV_STATE": state})
        assert r.returncode == 0 and r.stdout.count(b"alive") == 3, r.stdout
        r = run_dmkv("trace", "--last", "50", "--format", "json", env={"DMKV_DEV_STATE": state})
        assert r.returncode == 0
        assert port_open(http)
        # Ready means a lock coordinator leader too: the summary names it, the
        # nodes agree, and a lock is granted at once.
        m = re.search(r"lock coordinator:\s+node (\d+) \((\S+)\)", out)
        assert m, out
        r = run_dmkv("leader", env={"DMKV_DEV_STATE": state})
        assert r.returncode == 0 and r.stdout.startswith(b"node %s at %s" % (m.group(1).encode(), m.group(2).encode())), r
        r = run_dmkv("cmd", "LOCK dev-lock 0 1000", env={"DMKV_DEV_STATE": state})
        assert r.returncode == 0 and r.stdout.startswith(b"(integer) "), r
        ports = [int(n.split(":")[1]) for n in nodes] + [int(logger.split(":")[1]), http]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
    # Every process it started is gone, and so are its files.
    wait_until(lambda: not any(port_open(p) for p in ports), 5, "every dev port to close")
    assert not os.path.exists(data_dir)
    assert not os.path.exists(state)


def test_dev_rejects_bad_flags():
    r = subprocess.run([dmkv_bin(), "dev", "--nodes", "0"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"--nodes must be" in r.stderr
    r = subprocess.run([dmkv_bin(), "dev", "--bogus"], capture_output=True, timeout=10)
    assert r.returncode == 2
    r = subprocess.run([dmkv_bin(), "dev", "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"--use-mutex" in r.stdout
