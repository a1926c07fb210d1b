"""Every door of a dmkv agent, tried without the key and with it (issue 8).

One section per door. Each test first knocks without the password or the
cluster key and asserts that the door stays shut (an error reply, a
dropped connection, a counter that rises) and that nothing behind it
changed; then it knocks with the secret and asserts that the door opens,
so a test that forges its messages wrongly cannot pass by accident.

  door                          where else it is tested
  ----------------------------  ------------------------------------------
  --requirepass (clients)       test_server.py (AUTH, WRONGPASS), test_cli
                                (get/put with --password), test_clients
  cluster key on gossip         test_membership.py (another key, sealed-
                                looking datagrams, push-pull blobs)
  node-to-node commands         test_membership.py (DMKV.PUSHPULL only)
  Raft port                     tests/unit/test_raftnode.c (in-process)
  binding to 127.0.0.1          nowhere else

The rule for node-to-node commands (DMKV.REPL, DMKV.SYNC, DMKV.VERIFY, DMKV.PUSHPULL,
DMKV.LOCKOP; CMD_PEER in src/server/commands_kv.c): with a cluster key
their payload must be sealed with it, and then they need no AUTH (peers
prove the key instead); without a key they are ordinary commands behind
--requirepass, which the agents send before them. With neither, the agent
has no secret to check and says so at start (like Redis without a
password, or Consul without a gossip key); the test of that case asserts
the warning, not a refusal.

Sealed messages and Raft handshakes are built here with libsodium through
ctypes, exactly as src/crypt/crypt.c and src/lock/raftauth.c build them.
"""
import base64
import ctypes
import ctypes.util
import os
import re
import socket
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dmkvtest import (Agent, ConnectionClosed, RespError, cluster_info,  # noqa: E402
                      coordinator_info, free_gossip_ports, lock_leader, members, parse_info,
                      parse_locks, parse_members, peers_arg, raft_port_for, run_dmkv, start_cluster,
                      wait_until)

PASSWORD = "door-s3cret"
READY_S = 20.0           # start -> every member alive, one Raft leader
INTRUDER_WATCH_S = 6.0   # > 5 Raft election timeouts and 12 probe periods
HANDSHAKE_CLOSE_S = 6.0  # the Raft handshake deadline is 2 s


# ------------------------------------------------------------- sodium ----

_sodium = None


def sodium():
    global _sodium
    if _sodium is None:
        name = ctypes.util.find_library("sodium")
        if not name:
            pytest.skip("libsodium not found for ctypes")
        _sodium = ctypes.CDLL(name)
        assert _sodium.sodium_init() >= 0
    return _sodium


def keygen():
    out = run_dmkv("keygen")
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().strip()


def seal(key_b64, ad, plain):
    """cryptSeal: version 1 | 24-byte nonce | XChaCha20-Poly1305(plain),
    the tag covering the version byte and ad."""
    s = sodium()
    key = base64.b64decode(key_b64)
    nonce = os.urandom(24)
    out = ctypes.create_string_buffer(len(plain) + 16)
    outlen = ctypes.c_ulonglong(0)
    aad = b"\x01" + ad
    rc = s.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, ctypes.byref(outlen), plain, ctypes.c_ulonglong(len(plain)), aad,
        ctypes.c_ulonglong(len(aad)), None, nonce, key)
    assert rc == 0
    return b"\x01" + nonce + out.raw[:outlen.value]


def raft_auth_key(key_b64):
    """The Raft handshake key of a cluster key: keyringDerive(k, "dmkv-raft-v1")
    (BLAKE2b keyed by the cluster key) then raftAuthDeriveKey (crypto_kdf,
    context "dmkvraft", subkey 1)."""
    s = sodium()
    ctx = b"dmkv-raft-v1"
    raft_key = ctypes.create_string_buffer(32)
    assert s.crypto_generichash(raft_key, ctypes.c_size_t(32), ctx, ctypes.c_ulonglong(len(ctx)),
                                base64.b64decode(key_b64), ctypes.c_size_t(32)) == 0
    auth = ctypes.create_string_buffer(32)
    assert s.crypto_kdf_derive_from_key(auth, ctypes.c_size_t(32), ctypes.c_uint64(1), b"dmkvraft",
                                        raft_key.raw) == 0
    return auth.raw


def raft_mac(auth_key, is_ack, nonce_a, nonce_c, connector, acceptor):
    s = sodium()
    label = b"dmkv-raft-ack-v1" if is_ack else b"dmkv-raft-proof-v1"
    msg = bytes([len(label)]) + label + nonce_a + nonce_c + struct.pack(">QQ", connector, acceptor)
    mac = ctypes.create_string_buffer(32)
    assert s.crypto_auth_hmacsha512256(mac, msg, ctypes.c_ulonglong(len(msg)), auth_key) == 0
    return mac.raw


# ------------------------------------------------------ wire encoders ----

def vclock(entries):
    """Clock module encoding (varints): count, then (node delta, counter)."""
    def varint(v):
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)
    out = varint(len(entries))
    prev = 0
    for node, counter in sorted(entries.items()):
        out += varint(node - prev) + varint(counter)
        prev = node
    return out


def record(value, origin, lamport, vc, seq=1):
    """Store record, format 2 (src/store/record.c)."""
    return struct.pack("<BBIQQQQH", 2, 0, origin, lamport, 0, seq, 0, len(vc)) + vc + value


def repl_batch(sender, records, lamport=1 << 40):
    """DMKV.REPL payload (src/replicate/replicate.h): header then records."""
    vc = vclock({sender: 1 << 30})
    out = struct.pack("<BIQH", 1, sender, lamport, len(vc)) + vc + bytes([0])
    out += struct.pack("<I", len(records))
    for key, value in records:
        rec = record(value, sender, lamport, vclock({sender: 1 << 30}), seq=1 << 30)
        out += struct.pack("<H", len(key)) + key + struct.pack("<I", len(rec)) + rec
    return out


def sync_request(requester):
    """DMKV.SYNC payload: read the whole feed from the start."""
    vc = vclock({})
    return struct.pack("<BIQQIH", 1, requester, 0, 0, 100, len(vc)) + vc


def verify_request(requester, keys):
    """DMKV.VERIFY payload: (key, origin, seq) per key."""
    out = struct.pack("<BII", 1, requester, len(keys))
    for key, origin, seq in keys:
        out += struct.pack("<H", len(key)) + key + struct.pack("<IQ", origin, seq)
    return out


def state_blob(sender, udp_port=9):
    """DMKV.PUSHPULL payload (src/gossip/codec.h): a membership state in
    which node `sender` is ALIVE at 127.0.0.1, so merging it admits it."""
    host = b"127.0.0.1"
    entry = struct.pack("<BIQ", 1, sender, 1) + bytes([len(host)]) + host
    entry += struct.pack("<HH", udp_port, 9) + bytes([4, 1, 0, 0, 0])  # meta: version 1, no mutex
    return struct.pack("<BBII", 1, 16, sender, 1) + entry


def lockop_acquire(name, node, client, ttl_ms=60000, req=1):
    """DMKV.LOCKOP payload: one ACQUIRE (src/lock/lock.h)."""
    op = struct.pack("<BQ", 1, req) + struct.pack("<H", len(name)) + name
    op += struct.pack("<IQ", node, client) + struct.pack("<I", ttl_ms)
    return struct.pack("<BH", 1, 1) + op


AD = {"DMKV.REPL": b"dmkv-repl-v1", "DMKV.SYNC": b"dmkv-sync-req-v1",
      "DMKV.PUSHPULL": b"dmkv-pushpull-v1", "DMKV.LOCKOP": b"dmkv-lockop-v1",
      "DMKV.VERIFY": b"dmkv-verify-req-v1"}


def peer_payloads():
    """A well-formed plaintext payload for each internal command: what an
    intruder would send to write a key, read the data set, join the
    membership or take a lock."""
    return {
        "DMKV.REPL": repl_batch(99, [(b"victim", b"forged")]),
        "DMKV.SYNC": sync_request(99),
        "DMKV.PUSHPULL": state_blob(99),
        "DMKV.LOCKOP": lockop_acquire(b"intruded", 99, 1),
        "DMKV.VERIFY": verify_request(99, [(b"victim", 1, 1)]),
    }


# ------------------------------------------------------------ helpers ----

def wait_leader(agents, timeout=READY_S, password=None):
    """Every agent agrees on one Raft leader and its coordinator is ready."""
    def leader_of(a):
        with a.conn() as c:
            if password:
                assert c.call("AUTH", password) == "OK"
            r = c.call("LEADER")
            ready = parse_info(c.call("INFO", "coordinator"))["coordinator_ready"] == 1
        return (r[0], r[1].decode(), r[2]) if isinstance(r, list) and ready else None

    def ready():
        try:
            leaders = {leader_of(a) for a in agents}
            if len(leaders) != 1 or None in leaders:
                return None
            return leaders.pop()
        except (OSError, ConnectionClosed, TimeoutError):
            return None
    return wait_until(ready, timeout, "one Raft leader and ready coordinators", interval=0.05)


def all_alive(agents):
    ids = {a.node_id for a in agents}
    for a in agents:
        view = members(a)
        if set(view) != ids or any(r["state"] != "alive" for r in view.values()):
            return False
    return True


def keyed_cluster(make_agent, n=3, key=None):
    key = key or keygen()
    agents = start_cluster(make_agent, n, flags=("--cluster-key", key))
    wait_until(lambda: all_alive(agents), READY_S, "a keyed cluster to converge", interval=0.05)
    leader = wait_leader(agents)
    return key, agents, leader


def by_id(agents, node_id):
    return next(a for a in agents if a.node_id == node_id)


def raft_port(agent):
    return coordinator_info(agent)["raft_port"]


# ---------------------------------------------------- --requirepass ----

def test_requirepass_refuses_every_command_but_the_handshake_ones_before_auth(make_agent):
    """Every command in the table, sent before AUTH with arguments that
    would make it run, answers NOAUTH and changes nothing; only AUTH,
    HELLO (which itself insists on AUTH), PING and QUIT are let through.
    A wrong password keeps the door shut; the right one opens it."""
    a = make_agent("--requirepass", PASSWORD)
    with a.conn() as admin:
        assert admin.call("AUTH", PASSWORD) == "OK"
        assert admin.call("SET", "victim", "original") == "OK"
        table = admin.call("COMMAND")
    no_auth = {row[0].decode() for row in table if "no_auth" in row[2]}
    assert no_auth == {"auth", "hello", "ping", "quit"}, no_auth

    payloads = peer_payloads()
    with a.conn() as c:
        for row in table:
            name, arity = row[0].decode(), row[1]
            if name in no_auth:
                continue
            nargs = (arity if arity > 0 else -arity) - 1  # the fewest that run it
            args = (["victim"] + ["1"] * (nargs - 1))[:nargs]
            if name.upper() in payloads:
                args = [payloads[name.upper()]]
            r = c.call(name, *args)
            assert r == RespError("NOAUTH Authentication required."), (name, r)
        # The handshake commands: PING answers, HELLO and a wrong AUTH do not open.
        assert c.call("PING") == "PONG"
        r = c.call("HELLO", "2")
        assert isinstance(r, RespError) and r.startswith("NOAUTH"), r
        for wrong in ("wrong", PASSWORD + "x", PASSWORD[:-1], ""):
            r = c.call("AUTH", wrong)
            assert isinstance(r, RespError) and r.startswith("WRONGPASS"), (wrong, r)
            assert c.call("GET", "victim") == RespError("NOAUTH Authentication required.")
        r = c.call("HELLO", "2", "AUTH", "default", "wrong")
        assert isinstance(r, RespError) and r.startswith("WRONGPASS"), r
        assert c.call("GET", "victim") == RespError("NOAUTH Authentication required.")
        # The right password opens it, and nothing the sweep sent got in.
        assert c.call("AUTH", PASSWORD) == "OK"
        assert c.call("GET", "victim") == b"original"
        assert c.call("DBSIZE") == 1
        assert parse_locks(c.call("LOCKS")) == {}
        assert set(parse_members(c.call("MEMBERS"))) == {a.node_id}
    assert a.running(), "a command sent before AUTH stopped the agent"
    with a.conn() as c:  # HELLO with AUTH opens it in one step
        reply = c.call("HELLO", "2", "AUTH", "default", PASSWORD)
        assert isinstance(reply, list), reply
        assert c.call("SET", "victim", "changed") == "OK"


def dmkv_verb(agent, *args, env=None):
    p = run_dmkv(args[0], "--nodes", agent.address, *args[1:], env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


VERBS = [("cmd", "SET", "k", "v"), ("put", "k", "v"), ("get", "k"), ("del", "k"), ("incr", "n"),
         ("getall", "k"), ("members",), ("leader",), ("lock", "name", "--", "true")]


@pytest.mark.parametrize("verb", VERBS, ids=[v[0] for v in VERBS])
def test_client_verbs_need_the_password(make_agent, verb):
    a = make_agent("--requirepass", PASSWORD)
    wait_leader([a], password=PASSWORD)
    code, out, err = dmkv_verb(a, *verb)
    assert code != 0 and "NOAUTH" in out + err, (code, out, err)
    code, out, err = dmkv_verb(a, verb[0], "--password", "wrong", *verb[1:])
    assert code != 0 and "WRONGPASS" in out + err, (code, out, err)
    code, out, err = dmkv_verb(a, verb[0], "--password", PASSWORD, *verb[1:])
    assert code == 0, (code, out, err)
    code, out, err = dmkv_verb(a, *verb, env={"DMKV_PASSWORD": PASSWORD})
    assert code == 0, (code, out, err)


# ------------------------------------------------ node-to-node commands ----

def test_internal_commands_on_a_keyed_node_need_a_seal_with_its_key(make_agent):
    """Without AUTH (no --requirepass) a client may send DMKV.* commands
    to a keyed node, but only a payload sealed with the cluster key is
    read: a well-formed plaintext one, one sealed with another key, or
    garbage is refused and writes, reads, joins and locks nothing. The
    same payloads sealed with the node's key are taken."""
    key = keygen()
    a = make_agent("--cluster-key", key)
    wait_leader([a])
    assert a.call("SET", "victim", "original") == "OK"
    other = keygen()
    before = cluster_info(a)["dropped_auth"]
    for cmd, plain in peer_payloads().items():
        for payload in (plain, seal(other, AD[cmd], plain), b"garbage", b"",
                        seal(key, b"dmkv-wrong-purpose-v1", plain)):
            r = a.call(cmd, payload)
            assert isinstance(r, RespError) and r.startswith("ERR"), (cmd, payload[:16], r)
            assert "sealed" in r.message or cmd == "DMKV.PUSHPULL", (cmd, r)
    # A seal made for one command is not accepted by another (the
    # associated data names the purpose).
    r = a.call("DMKV.REPL", seal(key, AD["DMKV.SYNC"], repl_batch(99, [(b"victim", b"forged")])))
    assert isinstance(r, RespError) and "sealed" in r.message, r
    assert a.call("GET", "victim") == b"original"
    assert a.call("DBSIZE") == 1
    assert parse_locks(a.call("LOCKS")) == {}
    assert set(members(a)) == {a.node_id}
    assert cluster_info(a)["dropped_auth"] >= before + 5  # the five refused push-pulls

    # Nothing a client may read gives the key away.
    own_output = a.read_log().split("\n", 1)[1]  # after the harness's command line
    leaks = [a.call("INFO", "all"), a.call("CONFIG", "GET", "*"), own_output]
    raw = base64.b64decode(key)
    for text in leaks:
        blob = text if isinstance(text, (bytes, str)) else repr(text)
        blob = blob.encode() if isinstance(blob, str) else blob
        assert key.encode() not in blob and raw not in blob, "the cluster key leaks: %r" % blob[:200]

    # With the key, each door opens.
    assert a.call("DMKV.REPL", seal(key, AD["DMKV.REPL"], repl_batch(99, [(b"victim", b"forged")]))) == "OK"
    assert a.call("GET", "victim") == b"forged"
    page = a.call("DMKV.SYNC", seal(key, AD["DMKV.SYNC"], sync_request(99)))
    assert isinstance(page, bytes) and len(page) > 41, page
    blob = a.call("DMKV.PUSHPULL", seal(key, AD["DMKV.PUSHPULL"], state_blob(99)))
    assert isinstance(blob, bytes) and blob[:1] == b"\x01", blob
    assert 99 in members(a), "a sealed state naming node 99 did not admit it"
    r = a.call("DMKV.LOCKOP", seal(key, AD["DMKV.LOCKOP"], lockop_acquire(b"opened", 99, 777, 1000)))
    # Results: u8 format | u16 count | (u8 kind | u8 status | u64 req | u64 token)...
    assert isinstance(r, bytes) and len(r) == 3 + 18, r
    fmt, count, kind, status, req, token = struct.unpack("<BHBBQQ", r)
    assert (fmt, count, kind, status, req) == (1, 1, 1, 0, 1) and token > 0, r
    # The answer (one key: u8 format | u32 count | one byte of bits) comes sealed.
    r = a.call("DMKV.VERIFY", seal(key, AD["DMKV.VERIFY"], verify_request(99, [(b"victim", 99, 1)])))
    assert isinstance(r, bytes) and len(r) == len(seal(key, b"any", bytes(6))), r


def test_internal_commands_without_a_key_are_behind_requirepass(make_agent):
    """No cluster key: the DMKV.* commands are ordinary commands, so a
    client that has not AUTHed gets NOAUTH for every well-formed payload
    and nothing changes; after AUTH they run (the agents AUTH with the
    same password before they replicate, sync, push-pull or forward)."""
    a = make_agent("--requirepass", PASSWORD)
    wait_leader([a], password=PASSWORD)
    with a.conn() as admin:
        assert admin.call("AUTH", PASSWORD) == "OK"
        assert admin.call("SET", "victim", "original") == "OK"
    with a.conn() as c:
        for cmd, payload in peer_payloads().items():
            r = c.call(cmd, payload)
            assert r == RespError("NOAUTH Authentication required."), (cmd, r)
        assert c.call("AUTH", PASSWORD) == "OK"
        assert c.call("GET", "victim") == b"original"
        assert parse_locks(c.call("LOCKS")) == {}
        assert c.call("DMKV.REPL", repl_batch(99, [(b"victim", b"forged")])) == "OK"
        assert c.call("GET", "victim") == b"forged"


def test_without_key_or_password_the_agent_warns_that_peers_are_not_authenticated(make_agent):
    """With no secret configured there is nothing to check a peer against;
    the agent must say so rather than look protected."""
    a = make_agent()
    wait_until(lambda: "set --cluster-key" in a.read_log(), 5, "the unencrypted-gossip warning")
    assert re.search(r"warn: raft: no cluster key: any host that can reach \S+ can take part",
                     a.read_log()), a.read_log()
    assert cluster_info(a)["encrypted"] == 0
    b = make_agent("--cluster-key", keygen())
    wait_leader([b])
    assert "no cluster key" not in b.read_log() and "set --cluster-key" not in b.read_log()


# ------------------------------------------------ gossip and Raft intruders ----

@pytest.mark.parametrize("intruder_key", ["none", "other"])
def test_a_node_without_the_key_cannot_join_gossip_or_disturb_raft(make_agent, intruder_key):
    """A fourth node that lists the three members in --peers, and so also
    puts them in its Raft configuration and campaigns for leadership, but
    has no cluster key (or another one). For several election timeouts and
    probe periods: it never appears in any member's MEMBERS and learns none
    of them, its datagrams are counted as dropped_auth, its Raft
    connections are dropped at the handshake (raft_auth_rejected), the
    leader and term do not move, there are still 3 voters, and LOCK works."""
    key, agents, leader = keyed_cluster(make_agent, 3)
    before_drop = {a.node_id: cluster_info(a)["dropped_auth"] for a in agents}
    before_rej = {a.node_id: coordinator_info(a)["raft_auth_rejected"] for a in agents}

    peers = peers_arg([("127.0.0.1", a.port, a.udp_port, a.node_id) for a in agents], with_udp=True)
    (t, u), = free_gossip_ports(1)
    flags = ["--udp", u, "--peers", peers]
    if intruder_key == "other":
        flags += ["--cluster-key", keygen()]
    intruder = make_agent(*flags, name="intruder", node_id=4, port=t)
    assert cluster_info(intruder)["encrypted"] == (1 if intruder_key == "other" else 0)

    t0 = time.monotonic()
    while time.monotonic() - t0 < INTRUDER_WATCH_S:
        for a in agents:
            assert 4 not in members(a), "node %d admitted the intruder" % a.node_id
            assert lock_leader(a) == leader, "the Raft leader moved: %r -> %r" % (leader, lock_leader(a))
        assert set(members(intruder)) == {4}, "the intruder learned %s" % members(intruder)
        time.sleep(0.2)
    for a in agents:
        info = coordinator_info(a)
        assert info["raft_voters"] == 3, info
        assert info["raft_term"] == leader[2], info
        assert cluster_info(a)["dropped_auth"] > before_drop[a.node_id], "node %d counted no drop" % a.node_id
    rejected = sum(coordinator_info(a)["raft_auth_rejected"] - before_rej[a.node_id] for a in agents)
    assert rejected > 0, "no Raft connection of the intruder was dropped at the handshake"
    il = lock_leader(intruder)
    assert il is None or il[0] == 4, "the intruder follows the cluster's leader: %r" % (il,)
    with by_id(agents, leader[0]).conn() as c:
        token = c.call("LOCK", "after-intruder", 5000)
        assert isinstance(token, int) and token > 0, token
        assert c.call("UNLOCK", "after-intruder", token) == 1


def raft_preamble(node_id, address):
    """libraft's TCP preamble: u64 protocol 1, u64 server id, u64 address
    buffer size (NUL included, padded to 8), the address (little-endian)."""
    addr = address.encode() + b"\0"
    addr += b"\0" * (-len(addr) % 8)
    return struct.pack("<QQQ", 1, node_id, len(addr)) + addr


def read_exact(sock, n, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_by_peer(sock, timeout=HANDSHAKE_CLOSE_S):
    """True when the other end closes (EOF or reset) before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(4096) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def test_forged_raft_handshakes_are_dropped_and_only_the_key_opens_the_port(make_agent):
    """Raw connections to the leader's Raft port: garbage, a preamble then
    silence, a preamble then a proof with a made-up MAC, a proof that is
    valid but for another id than the preamble claims, and a proof made
    with another key are all dropped (and counted); a proof made with the
    cluster key is answered with an ACK that verifies, which shows that the
    forgeries were refused for what they lacked. The leader keeps leading
    and LOCK works throughout."""
    key, agents, leader = keyed_cluster(make_agent, 3)
    target = by_id(agents, leader[0])
    port = raft_port(target)
    rejected0 = coordinator_info(target)["raft_auth_rejected"]
    claimed = next(a.node_id for a in agents if a.node_id != target.node_id)
    addr = "127.0.0.1:%d" % raft_port(by_id(agents, claimed))
    right = raft_auth_key(key)

    def hello(sock, node_id=claimed):
        sock.sendall(raft_preamble(node_id, addr))
        h = read_exact(sock, 40)
        assert len(h) == 40 and h[:8] == b"DMKVRA01", h
        return h[8:]

    cases = 0
    # 1. Garbage instead of libraft's preamble.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(os.urandom(4096))
        assert closed_by_peer(s), "garbage on the Raft port was not dropped"
    # 2. A preamble, then nothing: the handshake deadline drops it.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        hello(s)
        assert closed_by_peer(s), "a silent connection outlived the handshake deadline"
        cases += 1
    # 3. A proof with a made-up MAC.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        hello(s)
        s.sendall(struct.pack(">Q", claimed) + os.urandom(32) + os.urandom(32))
        assert closed_by_peer(s), "a made-up proof was not dropped"
        cases += 1
    # 4. A proof valid for another id than the preamble claims.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        nonce_a = hello(s)
        nonce_c = os.urandom(32)
        other_id = 4242
        s.sendall(struct.pack(">Q", other_id) + nonce_c
                  + raft_mac(right, False, nonce_a, nonce_c, other_id, target.node_id))
        assert closed_by_peer(s), "a proof for another id was accepted"
        cases += 1
    # 5. A proof made with another cluster key.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        nonce_a = hello(s)
        nonce_c = os.urandom(32)
        s.sendall(struct.pack(">Q", claimed) + nonce_c
                  + raft_mac(raft_auth_key(keygen()), False, nonce_a, nonce_c, claimed, target.node_id))
        assert closed_by_peer(s), "a proof made with another key was accepted"
        cases += 1
    wait_until(lambda: coordinator_info(target)["raft_auth_rejected"] >= rejected0 + cases, 5,
               "the %d refused handshakes to be counted" % cases)

    # With the key the port opens: the ACK proves the node holds it too.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        nonce_a = hello(s)
        nonce_c = os.urandom(32)
        s.sendall(struct.pack(">Q", claimed) + nonce_c
                  + raft_mac(right, False, nonce_a, nonce_c, claimed, target.node_id))
        ack = read_exact(s, 32)
        assert ack == raft_mac(right, True, nonce_a, nonce_c, claimed, target.node_id), ack

    for a in agents:
        assert lock_leader(a) == leader, "the Raft leader moved"
        assert coordinator_info(a)["raft_voters"] == 3
    token = target.call("LOCK", "after-forgery", 5000)
    assert isinstance(token, int) and token > 0, token


# --------------------------------------------------------------- binding ----

class DefaultBindAgent(Agent):
    """An agent started without --host, so its listen address is the default."""

    def command_line(self):
        cmd = super().command_line()
        i = cmd.index("--host")
        return cmd[:i] + cmd[i + 2:]


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            out.add(m.group(1))
    return out


def bound_sockets(pid):
    """[(proto, local ip, port)] of the process's listening TCP sockets and
    bound UDP sockets, IPv4 and IPv6, read from /proc/net."""
    inodes = socket_inodes(pid)
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with open("/proc/net/" + proto) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode not in inodes:
                    continue
                if proto.startswith("tcp") and state != "0A":  # LISTEN
                    continue
                hexip, hexport = local.split(":")
                raw = bytes.fromhex(hexip)
                if len(raw) == 4:
                    ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
                else:
                    ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                found.append((proto.rstrip("6"), ip, int(hexport, 16)))
    return found


@pytest.mark.parametrize("bind", [None, "127.0.0.2"], ids=["default", "bind-127.0.0.2"])
def test_agent_listens_only_on_its_bind_address(tmp_path, request, bind):
    """With the default flags the client port, the gossip port and the Raft
    port are bound to 127.0.0.1 and nothing listens on 0.0.0.0 or ::;
    --bind moves all three."""
    if bind is None:
        a = DefaultBindAgent(tmp_path, name="default-bind", node_id=1)
        want = "127.0.0.1"
    else:
        a = Agent(tmp_path, name="bind", node_id=1, host=bind)
        want = bind
    request.node._dmkv_agents = [a]
    try:
        a.start()
        wait_leader([a])
        socks = bound_sockets(a.pid)
        ports = {(p, port) for p, _, port in socks}
        raft = raft_port_for(a.port)
        assert ("tcp", a.port) in ports and ("tcp", raft) in ports and ("udp", a.udp_port) in ports, socks
        for proto, ip, port in socks:
            assert ip == want, "%s port %d listens on %s, not %s: %r" % (proto, port, ip, want, socks)
        assert parse_info(a.call("INFO", "coordinator"))["raft_port"] == raft
    finally:
        a.stop()


def test_logger_listens_only_on_loopback_by_default(make_logger):
    """The event logger (RESP port for the nodes' batches and TRACE, HTTP
    port for the diagram) binds 127.0.0.1 unless --host says otherwise."""
    lg = make_logger(http=True)
    socks = bound_sockets(lg.pid)
    ports = {port for _, _, port in socks}
    assert lg.port in ports and lg.http_port in ports, socks
    for proto, ip, port in socks:
        assert ip == "127.0.0.1", "logger %s port %d listens on %s: %r" % (proto, port, ip, socks)
