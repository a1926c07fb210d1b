"""examples/: the three-host scripts, run on one machine.

The logger script and the three node scripts are started with every host
set to 127.0.0.1 and every port a free one (through the environment, as
the README says), with a fresh cluster key from `dmkv keygen`. The test
waits until node 1 sees 3 alive members, writes on node 1 through
client.sh, reads the write back on node 3, and stops exactly the processes
it started (the scripts exec dmkv, so each pid is the dmkv process)."""
import os
import signal
import subprocess

from dmkvtest import REPO, dmkv_bin, free_gossip_ports, free_port, run_dmkv, wait_until

EXAMPLES = os.path.join(REPO, "examples")


def script_env(tmp_path):
    (t1, u1), (t2, u2), (t3, u3) = free_gossip_ports(3)
    logger_port = free_port()
    http_port = free_port()
    while http_port in (logger_port, t1, t2, t3):
        http_port = free_port()
    env = dict(os.environ)
    for k in ("DMKV_NODES", "DMKV_LOGGER", "DMKV_PASSWORD", "BIND"):
        env.pop(k, None)
    env.update({
        "DMKV": dmkv_bin(),
        "LOGGER_HOST": "127.0.0.1", "LOGGER_PORT": str(logger_port), "LOGGER_HTTP_PORT": str(http_port),
        "NODE1_HOST": "127.0.0.1", "NODE1_TCP": str(t1), "NODE1_UDP": str(u1),
        "NODE2_HOST": "127.0.0.1", "NODE2_TCP": str(t2), "NODE2_UDP": str(u2),
        "NODE3_HOST": "127.0.0.1", "NODE3_TCP": str(t3), "NODE3_UDP": str(u3),
        "CLUSTER_KEY_FILE": str(tmp_path / "cluster.key"),
        "DATA_DIR": str(tmp_path / "data"),
        "INTERVAL": "0",
        "DMKV_DEV_STATE": str(tmp_path / "no-dev-cluster.env"),
    })
    return env


class Started:
    """The processes this test started, each stopped by its own pid."""

    def __init__(self, tmp_path, env):
        self.tmp_path = tmp_path
        self.env = env
        self.procs = []

    def start(self, name, *args):
        log = open(self.tmp_path / (name + ".log"), "wb")
        p = subprocess.Popen([os.path.join(EXAMPLES, args[0])] + list(args[1:]), cwd=self.tmp_path,
                             env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.procs.append((name, p))
        return p

    def logs(self):
        out = []
        for name, _ in self.procs:
            with open(self.tmp_path / (name + ".log"), "rb") as f:
                out.append("---- %s\n%s" % (name, f.read().decode("utf-8", "replace")[-3000:]))
        return "\n".join(out)

    def check_running(self):
        for name, p in self.procs:
            if p.poll() is not None:
                raise AssertionError("%s exited with %d:\n%s" % (name, p.returncode, self.logs()))

    def stop_all(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def client(env, *args):
    p = subprocess.run([os.path.join(EXAMPLES, "client.sh")] + list(args), env=env, capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def alive_count(members_output):
    return sum(1 for line in members_output.splitlines()[1:] if line.split()[3:4] == ["alive"])


def test_three_node_scripts_and_the_logger_form_one_cluster_on_loopback(tmp_path):
    env = script_env(tmp_path)
    key = run_dmkv("keygen")
    assert key.returncode == 0
    (tmp_path / "cluster.key").write_bytes(key.stdout)
    started = Started(tmp_path, env)
    try:
        started.start("logger", "logger.sh")
        for n in (1, 2, 3):
            started.start("node%d" % n, "node.sh", str(n))

        def three_alive():
            started.check_running()
            code, out, _ = client(env, "members", "--timeout", "1000")
            return code == 0 and alive_count(out) == 3
        wait_until(three_alive, 20, "node 1 to see 3 alive members", interval=0.1)

        assert client(env, "put", "--node", "1", "color", "red") == (0, "OK\n", "")
        wait_until(lambda: client(env, "get", "--node", "3", "color")[1] == "red\n", 10,
                   "node 3 to read the write made on node 1")
        # the logger got the nodes' events
        wait_until(lambda: all("node%d " % n in client(env, "trace", "--order", "lamport")[1] for n in (1, 2, 3)),
                   10, "the logger to hold events of all three nodes")
        started.check_running()
    finally:
        started.stop_all()


def test_node_script_refuses_a_bad_node_number_and_a_missing_key(tmp_path):
    env = script_env(tmp_path)
    for args in ((), ("4",), ("1", "2"), ("x",)):
        p = subprocess.run([os.path.join(EXAMPLES, "node.sh")] + list(args), env=env, capture_output=True,
                           timeout=10, cwd=tmp_path)
        assert p.returncode == 2 and p.stderr.count(b"\n") == 1 and b"usage" in p.stderr, args
    p = subprocess.run([os.path.join(EXAMPLES, "node.sh"), "1"], env=env, capture_output=True, timeout=10,
                       cwd=tmp_path)
    assert p.returncode == 2 and b"dmkv keygen > cluster.key" in p.stderr and p.stderr.count(b"\n") == 1
