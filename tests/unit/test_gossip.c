/* Unit tests for src/gossip: the wire codec, the SWIM rules (incarnation
 * ordering, refutation, finality of death, leave), the piggyback
 * retransmit limit, probing (direct, indirect, failure timeline, Lifeguard
 * confirmations and local health), push-pull, join and reaping.
 *
 * A handful of instances run on a hand-driven network: time jumps from one
 * deadline to the next, every datagram is delivered at once unless its
 * link is cut or its destination is down, and every event is logged with
 * the node that saw it, so a test can assert exactly when a state changed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/codec.h"
#include "gossip/gossip.h"

/* ---- A hand-driven network -------------------------------------------- */

#define MAXN 8

typedef struct logged {
    int node; /* who saw it */
    gossipEvent ev;
} logged;

typedef struct tnet tnet;
typedef void (*packetHook)(tnet *net, int from, const gossipPacket *p);

struct tnet {
    gossipConfig cfg;
    int n;
    gossip *g[MAXN];
    gossipAddr addr[MAXN];
    bool up[MAXN];
    bool cut[MAXN][MAXN]; /* datagrams from a to b are lost */
    uint64_t now;
    logged *log;
    size_t nlog, caplog;
    packetHook hook;
    void *ctx;
};

static uint32_t idOf(int i) {
    return (uint32_t)(i + 1);
}

static void addrOf(int i, gossipAddr *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->host, sizeof a->host, "127.0.0.%d", i + 1);
    a->udp_port = (uint16_t)(7001 + i);
    a->tcp_port = (uint16_t)(5001 + i);
}

static int indexOfAddr(const tnet *net, const gossipAddr *a) {
    for (int i = 0; i < net->n; i++) {
        if (net->addr[i].udp_port == a->udp_port && strcmp(net->addr[i].host, a->host) == 0)
            return i;
    }
    return -1;
}

static void drainEvents(tnet *net, int i) {
    gossipEvent ev;
    while (gossipNextEvent(net->g[i], &ev)) {
        if (net->nlog == net->caplog) {
            net->caplog = net->caplog ? net->caplog * 2 : 256;
            net->log = realloc(net->log, net->caplog * sizeof *net->log);
            assert_non_null(net->log);
        }
        net->log[net->nlog].node = i;
        net->log[net->nlog].ev = ev;
        net->nlog++;
    }
}

/* Delivers every queued datagram, and whatever they cause, until quiet. */
static void netFlush(tnet *net) {
    gossipPacket p;
    for (bool busy = true; busy;) {
        busy = false;
        for (int i = 0; i < net->n; i++) {
            if (!net->g[i]) continue;
            while (gossipNextPacket(net->g[i], &p)) {
                busy = true;
                assert_true(p.len <= net->cfg.max_datagram_bytes);
                if (net->hook) net->hook(net, i, &p);
                int to = indexOfAddr(net, &p.to);
                if (!net->up[i] || to < 0 || !net->up[to] || net->cut[i][to]) continue;
                gossipOnPacket(net->g[to], net->now, p.data, p.len, &net->addr[i]);
                drainEvents(net, to);
            }
        }
    }
}

static uint64_t nodeDeadline(const tnet *net, int i) {
    return net->up[i] ? gossipNextDeadline(net->g[i]) : UINT64_MAX;
}

/* Runs every node's deadlines up to and including `until`. */
static void netRun(tnet *net, uint64_t until) {
    for (;;) {
        uint64_t d = UINT64_MAX;
        for (int i = 0; i < net->n; i++) {
            uint64_t x = nodeDeadline(net, i);
            if (x < d) d = x;
        }
        if (d > until) break;
        if (d > net->now) net->now = d;
        for (int i = 0; i < net->n; i++) {
            if (nodeDeadline(net, i) <= net->now) {
                gossipTick(net->g[i], net->now);
                drainEvents(net, i);
                /* The deadline contract: after a tick nothing is overdue. */
                assert_true(gossipNextDeadline(net->g[i]) > net->now);
            }
        }
        netFlush(net);
    }
    net->now = until;
}

static gossip *newNode(tnet *net, int i, uint64_t inc) {
    uint8_t meta[3] = {'n', (uint8_t)('0' + i), 0};
    return gossipCreate(&net->cfg, idOf(i), &net->addr[i], meta, 2, inc, 1000 + (uint64_t)i,
                        net->now);
}

/* A blob in which nodes [0, count) are ALIVE at incarnation 1. */
static void clusterBlob(const tnet *net, int count, buf *b) {
    gossipEncodeStateHeader(b, 999, (uint32_t)count);
    for (int i = 0; i < count; i++) {
        gossipUpdate u;
        memset(&u, 0, sizeof u);
        u.kind = GOSSIP_ALIVE;
        u.node = idOf(i);
        u.incarnation = 1;
        u.addr = net->addr[i];
        u.meta_len = 2;
        u.meta[0] = 'n';
        u.meta[1] = (uint8_t)('0' + i);
        gossipEncodeStateEntry(b, &u);
    }
}

/* n nodes; the first `joined` of them already know each other. */
static void netInit(tnet *net, int n, int joined, const gossipConfig *cfg) {
    memset(net, 0, sizeof *net);
    if (cfg)
        net->cfg = *cfg;
    else
        gossipConfigDefault(&net->cfg);
    net->n = n;
    net->now = 1000000;
    for (int i = 0; i < n; i++) addrOf(i, &net->addr[i]);
    buf b;
    bufInit(&b);
    clusterBlob(net, joined, &b);
    for (int i = 0; i < n; i++) {
        net->g[i] = newNode(net, i, 1);
        assert_non_null(net->g[i]);
        net->up[i] = true;
        if (i < joined)
            assert_int_equal(gossipRestoreState(net->g[i], net->now, (uint8_t *)b.data, b.len), 0);
        drainEvents(net, i);
    }
    bufFree(&b);
}

static void netFree(tnet *net) {
    for (int i = 0; i < net->n; i++) gossipFree(net->g[i]);
    free(net->log);
}

static gossipState stateAt(const tnet *net, int observer, int subject) {
    gossipMember m;
    if (!gossipLookup(net->g[observer], idOf(subject), &m)) return GOSSIP_NONE;
    return m.state;
}

static uint64_t incAt(const tnet *net, int observer, int subject) {
    gossipMember m;
    assert_true(gossipLookup(net->g[observer], idOf(subject), &m));
    return m.incarnation;
}

/* Time of the first logged change of `subject` to `st` seen by observer
 * (any observer when -1), at or after `after`; UINT64_MAX if none. */
static uint64_t firstEvent(const tnet *net, int observer, int subject, gossipState st,
                           uint64_t after) {
    for (size_t i = 0; i < net->nlog; i++) {
        const logged *l = &net->log[i];
        if ((observer < 0 || l->node == observer) && l->ev.id == idOf(subject) &&
            l->ev.new_state == st && l->ev.old_state != st && l->ev.at_ms >= after)
            return l->ev.at_ms;
    }
    return UINT64_MAX;
}

static size_t countEvents(const tnet *net, int subject, gossipState st) {
    size_t n = 0;
    for (size_t i = 0; i < net->nlog; i++) {
        if (net->log[i].ev.id == idOf(subject) && net->log[i].ev.new_state == st &&
            net->log[i].ev.old_state != st)
            n++;
    }
    return n;
}

/* Delivers a GOSSIP datagram from node `from` carrying the given updates. */
static void inject(tnet *net, int from, int to, const gossipUpdate *u, size_t n) {
    static gossipMsg m;
    memset(&m, 0, sizeof m);
    m.h.type = GOSSIP_MSG_GOSSIP;
    m.h.sender = idOf(from);
    m.n_updates = n;
    memcpy(m.updates, u, n * sizeof *u);
    uint8_t out[GOSSIP_MAX_DATAGRAM_BYTES];
    size_t len = gossipEncodePacket(&m, out, sizeof out);
    assert_true(len > 0);
    gossipOnPacket(net->g[to], net->now, out, len, &net->addr[from]);
    drainEvents(net, to);
}

static gossipUpdate claim(const tnet *net, gossipState kind, int node, uint64_t inc, int from) {
    gossipUpdate u;
    memset(&u, 0, sizeof u);
    u.kind = kind;
    u.node = idOf(node);
    u.incarnation = inc;
    u.from = idOf(from);
    if (kind == GOSSIP_ALIVE) u.addr = net->addr[node];
    return u;
}

/* ---- Codec ------------------------------------------------------------ */

static gossipUpdate sampleUpdate(gossipState kind, uint32_t node) {
    gossipUpdate u;
    memset(&u, 0, sizeof u);
    u.kind = kind;
    u.node = node;
    u.incarnation = 0x0102030405060708ull & GOSSIP_INCARNATION_MAX;
    if (kind == GOSSIP_SUSPECT || kind == GOSSIP_DEAD) u.from = 77;
    if (kind == GOSSIP_ALIVE) {
        strcpy(u.addr.host, node % 2 ? "10.1.2.3" : "fe80::1:2");
        u.addr.udp_port = 7946;
        u.addr.tcp_port = 5001;
        u.meta_len = 5;
        memcpy(u.meta, "hello", 5);
    }
    return u;
}

/* One valid datagram of each type, each with one update of each kind. */
static size_t samplePacket(gossipMsgType type, uint8_t *out, size_t cap) {
    static gossipMsg m;
    memset(&m, 0, sizeof m);
    m.h.type = type;
    m.h.sender = 4000000000u;
    m.h.seq = 0xdeadbeef;
    if (type == GOSSIP_MSG_PING || type == GOSSIP_MSG_PING_REQ) m.h.target = 42;
    if (type == GOSSIP_MSG_PING) m.h.flags = GOSSIP_PING_JOIN;
    if (type == GOSSIP_MSG_PING_REQ) {
        strcpy(m.h.target_addr.host, "192.168.10.20");
        m.h.target_addr.udp_port = 6001;
        m.h.target_addr.tcp_port = 5001;
    }
    m.n_updates = 4;
    for (int k = 0; k < 4; k++) m.updates[k] = sampleUpdate((gossipState)(k + 1), (uint32_t)k + 9);
    return gossipEncodePacket(&m, out, cap);
}

static void test_codec_round_trips_every_message_type(void **state) {
    for (int t = GOSSIP_MSG_PING; t <= GOSSIP_MSG_GOSSIP; t++) {
        uint8_t a[GOSSIP_MAX_DATAGRAM_BYTES], b[GOSSIP_MAX_DATAGRAM_BYTES];
        size_t n = samplePacket((gossipMsgType)t, a, sizeof a);
        assert_true(n > 0);
        static gossipMsg m;
        gossipDropReason why;
        assert_int_equal(gossipDecodePacket(a, n, &m, &why), 0);
        assert_int_equal(m.h.type, t);
        assert_int_equal(m.h.sender, 4000000000u);
        assert_int_equal(m.n_updates, 4);
        for (int k = 0; k < 4; k++) {
            gossipUpdate want = sampleUpdate((gossipState)(k + 1), (uint32_t)k + 9);
            assert_int_equal(m.updates[k].kind, want.kind);
            assert_int_equal(m.updates[k].node, want.node);
            assert_int_equal(m.updates[k].incarnation, want.incarnation);
            assert_int_equal(m.updates[k].from, want.from);
            assert_string_equal(m.updates[k].addr.host, want.addr.host);
            assert_int_equal(m.updates[k].addr.udp_port, want.addr.udp_port);
            assert_int_equal(m.updates[k].meta_len, want.meta_len);
            assert_memory_equal(m.updates[k].meta, want.meta, want.meta_len);
        }
        if (t == GOSSIP_MSG_PING_REQ) assert_string_equal(m.h.target_addr.host, "192.168.10.20");
        /* Canonical: decoding then encoding gives the same bytes. */
        assert_int_equal(gossipEncodePacket(&m, b, sizeof b), n);
        assert_memory_equal(a, b, n);
    }
}

static void test_codec_encode_refuses_what_does_not_fit(void **state) {
    uint8_t a[GOSSIP_MAX_DATAGRAM_BYTES];
    size_t n = samplePacket(GOSSIP_MSG_PING, a, sizeof a);
    for (size_t cap = 0; cap < n; cap++) assert_int_equal(samplePacket(GOSSIP_MSG_PING, a, cap), 0);
    gossipUpdate u = sampleUpdate(GOSSIP_ALIVE, 3);
    assert_int_equal(gossipEncodeUpdate(&u, a, gossipUpdateSize(&u) - 1), 0);
    assert_int_equal(gossipEncodeUpdate(&u, a, gossipUpdateSize(&u)), gossipUpdateSize(&u));
}

static void test_state_blob_round_trip(void **state) {
    buf b;
    bufInit(&b);
    gossipEncodeStateHeader(&b, 5, 4);
    for (int k = 0; k < 4; k++) {
        gossipUpdate u = sampleUpdate(GOSSIP_ALIVE, (uint32_t)k + 1);
        u.kind = (gossipState)(k + 1); /* every state carries address and meta */
        gossipEncodeStateEntry(&b, &u);
    }
    gossipStateReader r;
    gossipDropReason why;
    assert_int_equal(gossipStateOpen(&r, (uint8_t *)b.data, b.len, &why), 0);
    assert_int_equal(r.sender, 5);
    assert_int_equal(r.count, 4);
    gossipUpdate e;
    for (int k = 0; k < 4; k++) {
        assert_true(gossipStateNext(&r, &e));
        assert_int_equal(e.kind, k + 1);
        assert_int_equal(e.node, k + 1);
        assert_int_equal(e.addr.udp_port, 7946);
        assert_int_equal(e.meta_len, 5);
    }
    assert_false(gossipStateNext(&r, &e));
    /* Every proper prefix is rejected as truncated. */
    for (size_t len = 0; len < b.len; len++) {
        assert_int_equal(gossipStateOpen(&r, (uint8_t *)b.data, len, &why), -1);
        assert_int_equal(why, GOSSIP_DROP_TRUNCATED);
    }
    bufAppendChar(&b, 0);
    assert_int_equal(gossipStateOpen(&r, (uint8_t *)b.data, b.len, &why), -1);
    assert_int_equal(why, GOSSIP_DROP_BAD_VALUE);
    bufFree(&b);
}

static void test_decode_rejects_every_truncation_and_the_node_counts_it(void **state) {
    tnet net;
    netInit(&net, 1, 1, NULL);
    uint64_t expected = 0;
    for (int t = GOSSIP_MSG_PING; t <= GOSSIP_MSG_GOSSIP; t++) {
        uint8_t a[GOSSIP_MAX_DATAGRAM_BYTES];
        size_t n = samplePacket((gossipMsgType)t, a, sizeof a);
        for (size_t len = 0; len < n; len++) {
            static gossipMsg m;
            gossipDropReason why;
            assert_int_equal(gossipDecodePacket(a, len, &m, &why), -1);
            assert_int_equal(why, GOSSIP_DROP_TRUNCATED);
            gossipOnPacket(net.g[0], net.now, a, len, &net.addr[0]);
            expected++;
        }
    }
    const gossipStats *s = gossipGetStats(net.g[0]);
    assert_int_equal(s->dropped[GOSSIP_DROP_TRUNCATED], expected);
    assert_int_equal(gossipMemberCount(net.g[0]), 1);
    netFree(&net);
}

/* Feeds a mutated copy of a valid GOSSIP datagram and expects `why`. */
static void expectDrop(tnet *net, const uint8_t *p, size_t len, gossipDropReason why) {
    static gossipMsg m;
    gossipDropReason got;
    assert_int_equal(gossipDecodePacket(p, len, &m, &got), -1);
    assert_int_equal(got, why);
    uint64_t before = gossipGetStats(net->g[0])->dropped[why];
    gossipOnPacket(net->g[0], net->now, p, len, &net->addr[1]);
    assert_int_equal(gossipGetStats(net->g[0])->dropped[why], before + 1);
}

static void test_malformed_packets_are_dropped_and_counted_by_reason(void **state) {
    tnet net;
    netInit(&net, 2, 2, NULL);
    /* GOSSIP from node 2 with one alive update: header 6, count 1, then
     * kind 1, node 4, inc 8, host_len at offset 20. */
    gossipUpdate u = claim(&net, GOSSIP_ALIVE, 1, 5, 1);
    static gossipMsg m;
    memset(&m, 0, sizeof m);
    m.h.type = GOSSIP_MSG_GOSSIP;
    m.h.sender = idOf(1);
    m.n_updates = 1;
    m.updates[0] = u;
    uint8_t ok[GOSSIP_MAX_DATAGRAM_BYTES], p[GOSSIP_MAX_DATAGRAM_BYTES + 8];
    size_t n = gossipEncodePacket(&m, ok, sizeof ok);
    assert_true(n > 0);
    size_t host_len_at = 20, meta_len_at = 20 + 1 + strlen(u.addr.host) + 4;

#define MUTATE(off, val, why)                                                                      \
    do {                                                                                           \
        memcpy(p, ok, n);                                                                          \
        p[off] = (uint8_t)(val);                                                                   \
        expectDrop(&net, p, n, why);                                                               \
    } while (0)
    MUTATE(0, 2, GOSSIP_DROP_BAD_VERSION);
    MUTATE(1, 9, GOSSIP_DROP_UNKNOWN_TYPE);
    MUTATE(1, 0, GOSSIP_DROP_UNKNOWN_TYPE);
    MUTATE(7, 0, GOSSIP_DROP_BAD_VALUE);   /* update kind 0 */
    MUTATE(7, 5, GOSSIP_DROP_BAD_VALUE);   /* update kind 5 */
    MUTATE(6, 200, GOSSIP_DROP_OVERSIZED); /* update count */
    MUTATE(host_len_at, 46, GOSSIP_DROP_OVERSIZED);
    MUTATE(host_len_at, 0, GOSSIP_DROP_BAD_VALUE);
    MUTATE(host_len_at + 1, 'x', GOSSIP_DROP_BAD_VALUE); /* not an IP literal */
    MUTATE(host_len_at + 1, 0, GOSSIP_DROP_BAD_VALUE);   /* NUL inside host */
    MUTATE(meta_len_at, 65, GOSSIP_DROP_OVERSIZED);
    MUTATE(meta_len_at, 200, GOSSIP_DROP_OVERSIZED);
#undef MUTATE
    /* Zero sender, zero node, incarnation beyond the limit. */
    memcpy(p, ok, n);
    memset(p + 2, 0, 4);
    expectDrop(&net, p, n, GOSSIP_DROP_BAD_VALUE);
    memcpy(p, ok, n);
    memset(p + 8, 0, 4);
    expectDrop(&net, p, n, GOSSIP_DROP_BAD_VALUE);
    memcpy(p, ok, n);
    memset(p + 12, 0xff, 8);
    expectDrop(&net, p, n, GOSSIP_DROP_BAD_VALUE);
    /* Trailing byte. */
    memcpy(p, ok, n);
    p[n] = 0;
    expectDrop(&net, p, n + 1, GOSSIP_DROP_BAD_VALUE);
    /* Larger than any datagram. */
    memset(p, 0, sizeof p);
    memcpy(p, ok, n);
    expectDrop(&net, p, GOSSIP_MAX_DATAGRAM_BYTES + 1, GOSSIP_DROP_OVERSIZED);

    /* A ping with an unknown flag, and one meant for another node id. */
    memset(&m, 0, sizeof m);
    m.h.type = GOSSIP_MSG_PING;
    m.h.sender = idOf(1);
    m.h.target = idOf(0);
    m.h.flags = 0x80;
    n = gossipEncodePacket(&m, p, sizeof p);
    expectDrop(&net, p, n, GOSSIP_DROP_BAD_VALUE);
    m.h.flags = 0;
    m.h.target = 77;
    n = gossipEncodePacket(&m, p, sizeof p);
    uint64_t before = gossipGetStats(net.g[0])->dropped[GOSSIP_DROP_WRONG_TARGET];
    gossipOnPacket(net.g[0], net.now, p, n, &net.addr[1]);
    assert_int_equal(gossipGetStats(net.g[0])->dropped[GOSSIP_DROP_WRONG_TARGET], before + 1);
    gossipPacket out;
    assert_false(gossipNextPacket(net.g[0], &out)); /* and is not answered */

    /* Nothing malformed changed the member's record. */
    assert_int_equal(incAt(&net, 0, 1), 1);
    netFree(&net);
}

/* ---- SWIM rules ------------------------------------------------------- */

static void test_higher_incarnation_wins(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    gossipUpdate u;
    u = claim(&net, GOSSIP_SUSPECT, 2, 4, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_SUSPECT);
    assert_int_equal(incAt(&net, 0, 2), 4);
    /* alive at the same incarnation does not clear a suspicion ... */
    u = claim(&net, GOSSIP_ALIVE, 2, 4, 2);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_SUSPECT);
    /* ... a higher one does */
    u = claim(&net, GOSSIP_ALIVE, 2, 5, 2);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_ALIVE);
    assert_int_equal(incAt(&net, 0, 2), 5);
    /* a suspicion of an older incarnation is ignored, of the same one not */
    u = claim(&net, GOSSIP_SUSPECT, 2, 4, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_ALIVE);
    u = claim(&net, GOSSIP_SUSPECT, 2, 5, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_SUSPECT);
    /* an older alive changes nothing */
    u = claim(&net, GOSSIP_ALIVE, 2, 3, 2);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_SUSPECT);
    assert_int_equal(incAt(&net, 0, 2), 5);
    /* alive with a higher incarnation updates address and metadata */
    u = claim(&net, GOSSIP_ALIVE, 2, 9, 2);
    strcpy(u.addr.host, "::1");
    u.addr.udp_port = 9999;
    u.meta_len = 3;
    memcpy(u.meta, "new", 3);
    inject(&net, 1, 0, &u, 1);
    gossipMember mm;
    assert_true(gossipLookup(net.g[0], idOf(2), &mm));
    assert_int_equal(mm.state, GOSSIP_ALIVE);
    assert_string_equal(mm.addr.host, "::1");
    assert_int_equal(mm.addr.udp_port, 9999);
    assert_int_equal(mm.meta_len, 3);
    assert_memory_equal(mm.meta, "new", 3);
    netFree(&net);
}

static void test_dead_is_final_for_its_incarnation(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    gossipUpdate u = claim(&net, GOSSIP_DEAD, 2, 4, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_DEAD);
    gossipUpdate later[] = {claim(&net, GOSSIP_ALIVE, 2, 4, 2),
                            claim(&net, GOSSIP_SUSPECT, 2, 5, 1), claim(&net, GOSSIP_DEAD, 2, 6, 1),
                            claim(&net, GOSSIP_ALIVE, 2, 3, 2)};
    inject(&net, 1, 0, later, 4);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_DEAD);
    assert_int_equal(incAt(&net, 0, 2), 4);
    /* Only a higher incarnation, as from a restarted node, resurrects. */
    u = claim(&net, GOSSIP_ALIVE, 2, 5, 2);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_ALIVE);
    assert_int_equal(incAt(&net, 0, 2), 5);
    /* Claims about unknown members other than alive are ignored. */
    u = claim(&net, GOSSIP_DEAD, 2, 5, 1);
    u.node = 555;
    inject(&net, 1, 0, &u, 1);
    u.kind = GOSSIP_SUSPECT;
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(gossipMemberCount(net.g[0]), 3);
    netFree(&net);
}

static void test_refutation_beats_suspicion(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    netRun(&net, net.now + 2000);
    uint64_t t0 = net.now;
    /* Node 1 tells node 0 that node 2 is suspect. */
    gossipUpdate u = claim(&net, GOSSIP_SUSPECT, 2, 1, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_SUSPECT);
    netFlush(&net);
    netRun(&net, net.now + 10000);
    /* Node 2 heard it and raised its incarnation; everyone took that. */
    assert_int_equal(gossipSelfIncarnation(net.g[2]), 2);
    assert_int_equal(gossipGetStats(net.g[2])->suspicions_refuted, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(stateAt(&net, i, 2), GOSSIP_ALIVE);
        assert_int_equal(incAt(&net, i, 2), 2);
    }
    uint64_t back = firstEvent(&net, 0, 2, GOSSIP_ALIVE, t0);
    assert_true(back < t0 + 1000); /* well within the 1.5 s suspicion */
    assert_int_equal(countEvents(&net, 2, GOSSIP_DEAD), 0);
    netFree(&net);
}

static void test_node_refutes_death_and_left_about_itself(void **state) {
    tnet net;
    netInit(&net, 2, 2, NULL);
    gossipUpdate u = claim(&net, GOSSIP_DEAD, 0, 1, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(gossipSelfIncarnation(net.g[0]), 2);
    u = claim(&net, GOSSIP_LEFT, 0, 7, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(gossipSelfIncarnation(net.g[0]), 8);
    /* Stale claims about an older incarnation are ignored. */
    u = claim(&net, GOSSIP_SUSPECT, 0, 3, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(gossipSelfIncarnation(net.g[0]), 8);
    assert_int_equal(stateAt(&net, 0, 0), GOSSIP_ALIVE);
    /* Each refutation is an event about self carrying the new value. */
    uint64_t last = 0;
    for (size_t i = 0; i < net.nlog; i++) {
        if (net.log[i].node == 0 && net.log[i].ev.id == idOf(0)) last = net.log[i].ev.incarnation;
    }
    assert_int_equal(last, 8);
    netFree(&net);
}

static void test_leave_is_left_not_dead(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    netRun(&net, net.now + 3000);
    uint64_t t0 = net.now;
    gossipLeave(net.g[3], net.now);
    drainEvents(&net, 3);
    assert_int_equal(stateAt(&net, 3, 3), GOSSIP_LEFT);
    netFlush(&net);
    while (!gossipLeaveDone(net.g[3])) {
        assert_true(net.now < t0 + 5000);
        netRun(&net, net.now + 50);
    }
    net.up[3] = false; /* the process exits */
    netRun(&net, net.now + 60000);
    for (int i = 0; i < 3; i++) assert_int_equal(stateAt(&net, i, 3), GOSSIP_LEFT);
    assert_int_equal(countEvents(&net, 3, GOSSIP_DEAD), 0);
    assert_int_equal(countEvents(&net, 3, GOSSIP_SUSPECT), 0);
    netFree(&net);
}

static void test_force_leave_takes_only_a_dead_member_and_spreads_left(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    netRun(&net, net.now + 3000);
    assert_int_equal(gossipForceLeave(net.g[0], net.now, idOf(0)), GOSSIP_FORCE_LEAVE_SELF);
    assert_int_equal(gossipForceLeave(net.g[0], net.now, 99), GOSSIP_FORCE_LEAVE_UNKNOWN);
    assert_int_equal(gossipForceLeave(net.g[0], net.now, idOf(3)), GOSSIP_FORCE_LEAVE_NOT_FAILED);
    assert_int_equal(stateAt(&net, 0, 3), GOSSIP_ALIVE);
    net.up[3] = false; /* crashes */
    uint64_t t0 = net.now;
    while (stateAt(&net, 0, 3) != GOSSIP_DEAD) {
        assert_true(net.now < t0 + 20000);
        netRun(&net, net.now + 100);
    }
    assert_int_equal(gossipForceLeave(net.g[0], net.now, idOf(3)), GOSSIP_FORCE_LEAVE_OK);
    assert_int_equal(stateAt(&net, 0, 3), GOSSIP_LEFT);
    netRun(&net, net.now + 5000);
    for (int i = 0; i < 3; i++) assert_int_equal(stateAt(&net, i, 3), GOSSIP_LEFT);
    /* Again: already done. */
    assert_int_equal(gossipForceLeave(net.g[1], net.now, idOf(3)), GOSSIP_FORCE_LEAVE_OK);
    netFree(&net);
}

static void test_a_running_member_forced_out_refutes_and_is_alive_again(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    netRun(&net, net.now + 3000);
    /* Node 2 is cut off from both others (it keeps running). */
    for (int i = 0; i < 2; i++) net.cut[i][2] = net.cut[2][i] = true;
    uint64_t t0 = net.now;
    while (stateAt(&net, 0, 2) != GOSSIP_DEAD || stateAt(&net, 1, 2) != GOSSIP_DEAD) {
        assert_true(net.now < t0 + 20000);
        netRun(&net, net.now + 100);
    }
    assert_int_equal(gossipForceLeave(net.g[0], net.now, idOf(2)), GOSSIP_FORCE_LEAVE_OK);
    netRun(&net, net.now + 2000);
    assert_int_equal(stateAt(&net, 1, 2), GOSSIP_LEFT);
    uint64_t inc = gossipSelfIncarnation(net.g[2]);
    for (int i = 0; i < 2; i++) net.cut[i][2] = net.cut[2][i] = false;
    t0 = net.now;
    while (stateAt(&net, 0, 2) != GOSSIP_ALIVE || stateAt(&net, 1, 2) != GOSSIP_ALIVE) {
        assert_true(net.now < t0 + 60000);
        netRun(&net, net.now + 100);
    }
    assert_true(gossipSelfIncarnation(net.g[2]) > inc);
    netFree(&net);
}

static void test_left_replaces_dead_but_dead_never_replaces_left(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    gossipUpdate u = claim(&net, GOSSIP_DEAD, 2, 1, 1);
    inject(&net, 1, 0, &u, 1);
    u = claim(&net, GOSSIP_LEFT, 2, 1, 2);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_LEFT);
    u = claim(&net, GOSSIP_DEAD, 2, 1, 1);
    inject(&net, 1, 0, &u, 1);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_LEFT);
    netFree(&net);
}

/* ---- Dissemination ---------------------------------------------------- */

typedef struct countCtx {
    uint32_t about;
    uint64_t inc;
    int sends[MAXN];
} countCtx;

static void countUpdateHook(tnet *net, int from, const gossipPacket *p) {
    countCtx *c = net->ctx;
    static gossipMsg m;
    gossipDropReason why;
    assert_int_equal(gossipDecodePacket(p->data, p->len, &m, &why), 0);
    for (size_t i = 0; i < m.n_updates; i++) {
        if (m.updates[i].node == c->about && m.updates[i].incarnation == c->inc &&
            m.updates[i].kind == GOSSIP_ALIVE)
            c->sends[from]++;
    }
}

static void test_piggyback_retransmit_limit_is_respected(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    netRun(&net, net.now + 2000);
    countCtx c = {.about = idOf(0), .inc = 2};
    net.hook = countUpdateHook;
    net.ctx = &c;
    uint8_t meta[] = "v2";
    assert_int_equal(gossipUpdateMeta(net.g[0], net.now, meta, 2), 0);
    netRun(&net, net.now + 20000);
    /* N = 4: retransmit_mult * ceil(log10(5)) = 4 sends per node. */
    for (int i = 0; i < 4; i++) assert_int_equal(c.sends[i], 4);
    for (int i = 1; i < 4; i++) assert_int_equal(incAt(&net, i, 0), 2);
    netFree(&net);
}

static void test_newer_update_replaces_older_in_queue(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    countCtx c = {.about = idOf(0), .inc = 2};
    net.hook = countUpdateHook;
    net.ctx = &c;
    /* Two metadata changes before anything is sent: only the newer one
     * (incarnation 3) is ever transmitted. */
    assert_int_equal(gossipUpdateMeta(net.g[0], net.now, (const uint8_t *)"a", 1), 0);
    assert_int_equal(gossipUpdateMeta(net.g[0], net.now, (const uint8_t *)"b", 1), 0);
    netRun(&net, net.now + 20000);
    assert_int_equal(c.sends[0], 0);
    for (int i = 1; i < 4; i++) assert_int_equal(incAt(&net, i, 0), 3);
    netFree(&net);
}

/* ---- Probing ---------------------------------------------------------- */

static void test_direct_ping_ack_keeps_member_alive(void **state) {
    tnet net;
    netInit(&net, 2, 2, NULL);
    netRun(&net, net.now + 30000);
    for (int i = 0; i < 2; i++) {
        const gossipStats *s = gossipGetStats(net.g[i]);
        assert_true(s->probes_sent >= 55); /* one per 500 ms period */
        assert_int_equal(s->acks_received, s->probes_sent);
        assert_int_equal(s->probes_failed, 0);
        assert_int_equal(s->indirect_probes_sent, 0);
        assert_int_equal(gossipHealthScore(net.g[i]), 0);
        assert_int_equal(stateAt(&net, i, 1 - i), GOSSIP_ALIVE);
    }
    netFree(&net);
}

static void test_silent_member_goes_suspect_then_dead_on_the_timeline(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    netRun(&net, net.now + 5000);
    uint64_t t0 = net.now;
    net.up[2] = false; /* kill -9 */
    netRun(&net, net.now + 20000);
    for (int i = 0; i < 2; i++) {
        uint64_t ts = firstEvent(&net, i, 2, GOSSIP_SUSPECT, t0);
        uint64_t td = firstEvent(&net, i, 2, GOSSIP_DEAD, t0);
        assert_true(ts != UINT64_MAX && td != UINT64_MAX);
        /* Round-robin over 2 members: probed within 2(N-1) = 4 periods,
         * suspected at the end of that period. */
        assert_true(ts - t0 <= 5 * 500);
        /* N = 3, suspicion_mult 3: min 1.5 s, max 4.5 s, K = 1. */
        assert_true(td - ts <= 4500);
        assert_int_equal(stateAt(&net, i, 2), GOSSIP_DEAD);
    }
    /* The first to suspect waited at least the minimum. */
    uint64_t first_s = firstEvent(&net, -1, 2, GOSSIP_SUSPECT, t0);
    uint64_t first_d = firstEvent(&net, -1, 2, GOSSIP_DEAD, t0);
    assert_true(first_d - first_s >= 1500);
    /* Both declare it dead within ~3 s of the crash on average; allow the
     * worst case of this schedule. */
    uint64_t last_d = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t td = firstEvent(&net, i, 2, GOSSIP_DEAD, t0);
        if (td > last_d) last_d = td;
    }
    assert_true(last_d - t0 <= 5 * 500 + 4500);
    assert_true(gossipGetStats(net.g[0])->suspicions_raised +
                    gossipGetStats(net.g[1])->suspicions_raised >=
                1);
    netFree(&net);
}

static void test_indirect_probe_rescues_member_with_cut_direct_path(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    net.cut[0][2] = net.cut[2][0] = true;
    netRun(&net, net.now + 30000);
    const gossipStats *s = gossipGetStats(net.g[0]);
    assert_true(s->indirect_probes_sent > 0);
    assert_true(gossipGetStats(net.g[1])->indirect_probes_relayed > 0);
    assert_int_equal(s->probes_failed, 0);
    assert_int_equal(s->acks_received, s->probes_sent);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) assert_int_equal(stateAt(&net, i, j), GOSSIP_ALIVE);
    }
    assert_int_equal(countEvents(&net, 2, GOSSIP_SUSPECT), 0);
    assert_int_equal(countEvents(&net, 0, GOSSIP_SUSPECT), 0);
    netFree(&net);
}

/* Lifeguard LHA-Suspicion on an isolated node 0 whose own probes all fail. With
 * five members, K = suspicion_mult - 2 = 1: a suspicion waits the maximum
 * (4.5 s) until one independent confirmation, then the minimum (1.5 s). */
static void test_suspicion_timeout_shrinks_with_confirmations(void **state) {
    tnet net;
    netInit(&net, 5, 5, NULL);
    for (int j = 1; j < 5; j++) net.cut[0][j] = net.cut[j][0] = true;
    uint64_t t0 = net.now;
    gossipUpdate u = claim(&net, GOSSIP_SUSPECT, 2, 1, 1);
    inject(&net, 1, 0, &u, 1);
    u = claim(&net, GOSSIP_SUSPECT, 2, 1, 3);
    net.now += 100;
    inject(&net, 3, 0, &u, 1);
    netRun(&net, t0 + 10000);
    assert_int_equal(firstEvent(&net, 0, 2, GOSSIP_DEAD, t0), t0 + 1500);

    /* One accusation only: dead at max, unless node 0's own failed probe
     * of node 3 confirms it first, which it finds at the end of its probe
     * period; from then the minimum applies. */
    tnet b;
    netInit(&b, 5, 5, NULL);
    for (int j = 1; j < 5; j++) b.cut[0][j] = b.cut[j][0] = true;
    t0 = b.now;
    u = claim(&b, GOSSIP_SUSPECT, 3, 1, 1);
    inject(&b, 1, 0, &u, 1);
    b.hook = NULL;
    /* Find when node 0 probes node 3 by watching its pings. */
    uint64_t ping_at = UINT64_MAX, next_probe_at = UINT64_MAX;
    while (b.now < t0 + 10000 && next_probe_at == UINT64_MAX) {
        uint64_t d = gossipNextDeadline(b.g[0]);
        b.now = d;
        gossipTick(b.g[0], b.now);
        drainEvents(&b, 0);
        gossipPacket p;
        while (gossipNextPacket(b.g[0], &p)) {
            static gossipMsg m;
            gossipDropReason why;
            assert_int_equal(gossipDecodePacket(p.data, p.len, &m, &why), 0);
            if (m.h.type != GOSSIP_MSG_PING) continue;
            if (ping_at != UINT64_MAX && next_probe_at == UINT64_MAX) next_probe_at = b.now;
            if (m.h.target == idOf(3) && ping_at == UINT64_MAX) ping_at = b.now;
        }
        if (firstEvent(&b, 0, 3, GOSSIP_DEAD, t0) != UINT64_MAX) break;
    }
    netRun(&b, t0 + 10000);
    uint64_t dead = firstEvent(&b, 0, 3, GOSSIP_DEAD, t0);
    uint64_t confirm = next_probe_at; /* the failed probe ends as the next starts */
    uint64_t want = t0 + 4500;
    if (confirm < want) want = confirm > t0 + 1500 ? confirm : t0 + 1500;
    assert_int_equal(dead, want);
    netFree(&b);
    netFree(&net);
}

/* Lifeguard LHA-Probe: an isolated node misses the nacks of its ping-reqs,
 * raises its score and slows down; back on the network, successful probes
 * bring it down again, and the suspicions it raised and suffered are
 * refuted (the others declared it dead meanwhile: the first ack it gets
 * carries that news, and it refutes). */
static void test_health_score_rises_when_isolated_and_recovers(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    netRun(&net, net.now + 2000);
    for (int j = 1; j < 4; j++) net.cut[0][j] = net.cut[j][0] = true;
    netRun(&net, net.now + 3000);
    assert_true(gossipHealthScore(net.g[0]) >= 3);
    for (int i = 1; i < 4; i++) assert_int_equal(gossipHealthScore(net.g[i]), 0);
    for (int j = 1; j < 4; j++) net.cut[0][j] = net.cut[j][0] = false;
    netRun(&net, net.now + 60000);
    assert_int_equal(gossipHealthScore(net.g[0]), 0);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) assert_int_equal(stateAt(&net, i, j), GOSSIP_ALIVE);
    }
    netFree(&net);
}

/* ---- Push-pull, join, reaping ----------------------------------------- */

static void exchange(tnet *net, int a, int b) {
    buf sa, sb;
    bufInit(&sa);
    bufInit(&sb);
    gossipEncodeState(net->g[a], &sa);
    assert_int_equal(gossipMergeState(net->g[b], net->now, (uint8_t *)sa.data, sa.len), 0);
    drainEvents(net, b);
    gossipEncodeState(net->g[b], &sb);
    assert_int_equal(gossipMergeState(net->g[a], net->now, (uint8_t *)sb.data, sb.len), 0);
    drainEvents(net, a);
    bufFree(&sa);
    bufFree(&sb);
}

static void test_push_pull_teaches_newcomer_every_member_and_port(void **state) {
    tnet net;
    netInit(&net, 5, 4, NULL); /* node 4 knows only itself */
    netRun(&net, net.now + 2000);
    assert_int_equal(gossipMemberCount(net.g[4]), 1);
    exchange(&net, 4, 0);
    assert_int_equal(gossipMemberCount(net.g[4]), 5);
    for (int j = 0; j < 4; j++) {
        gossipMember m;
        assert_true(gossipLookup(net.g[4], idOf(j), &m));
        assert_int_equal(m.state, GOSSIP_ALIVE);
        assert_int_equal(m.addr.udp_port, 7001 + j);
        assert_int_equal(m.addr.tcp_port, 5001 + j);
        assert_string_equal(m.addr.host, net.addr[j].host);
        assert_int_equal(m.meta_len, 2);
        assert_int_equal(m.meta[1], '0' + j);
    }
    assert_int_equal(stateAt(&net, 0, 4), GOSSIP_ALIVE);
    /* The rest learn the newcomer by gossip. */
    netRun(&net, net.now + 3000);
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 5; j++) assert_int_equal(stateAt(&net, i, j), GOSSIP_ALIVE);
    }
    netFree(&net);
}

static void test_merge_of_malformed_state_applies_nothing(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    gossip *lonely = net.g[3];
    buf b;
    bufInit(&b);
    gossipEncodeState(net.g[0], &b);
    b.data[b.len - 3] = 0x7f; /* corrupt the end: meta length now overruns */
    gossipFree(lonely);
    net.g[3] = newNode(&net, 3, 1);
    assert_int_equal(gossipMergeState(net.g[3], net.now, (uint8_t *)b.data, b.len), -1);
    assert_int_equal(gossipMemberCount(net.g[3]), 1);
    assert_int_equal(gossipGetStats(net.g[3])->states_rejected, 1);
    /* Truncated, and one claiming to be from ourselves. */
    assert_int_equal(gossipMergeState(net.g[3], net.now, (uint8_t *)b.data, 9), -1);
    bufClear(&b);
    gossipEncodeState(net.g[3], &b);
    assert_int_equal(gossipMergeState(net.g[3], net.now, (uint8_t *)b.data, b.len), -1);
    bufFree(&b);
    netFree(&net);
}

static void test_merge_turns_remote_death_into_suspicion_and_self_refutes(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    buf b;
    bufInit(&b);
    gossipEncodeStateHeader(&b, idOf(1), 2);
    gossipUpdate u = claim(&net, GOSSIP_DEAD, 2, 1, 1);
    u.addr = net.addr[2];
    gossipEncodeStateEntry(&b, &u);
    u = claim(&net, GOSSIP_DEAD, 0, 1, 1);
    u.addr = net.addr[0];
    gossipEncodeStateEntry(&b, &u);
    assert_int_equal(gossipMergeState(net.g[0], net.now, (uint8_t *)b.data, b.len), 0);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_SUSPECT);
    assert_int_equal(gossipSelfIncarnation(net.g[0]), 2);
    bufFree(&b);
    netFree(&net);
}

static void test_join_ping_exchanges_records(void **state) {
    tnet net;
    netInit(&net, 2, 0, NULL);
    assert_int_equal(gossipJoin(net.g[1], net.now, idOf(0), &net.addr[0]), 0);
    assert_int_equal(gossipJoin(net.g[1], net.now, idOf(1), &net.addr[0]), -1);
    netFlush(&net);
    for (int i = 0; i < 2; i++) {
        gossipMember m;
        assert_true(gossipLookup(net.g[i], idOf(1 - i), &m));
        assert_int_equal(m.state, GOSSIP_ALIVE);
        assert_int_equal(m.addr.udp_port, 7001 + (1 - i));
        assert_int_equal(m.meta[1], '0' + (1 - i));
    }
    netFree(&net);
}

/* A node that joined through one member, whose rumour of the join never
 * reaches the others (here its datagrams to them are lost), is still
 * learned by every member it probes: they ask it for its record. */
static void test_member_probed_by_an_unknown_node_learns_it(void **state) {
    tnet net;
    netInit(&net, 4, 3, NULL);
    netRun(&net, net.now + 2000);
    exchange(&net, 3, 0);
    assert_int_equal(gossipMemberCount(net.g[3]), 4);
    net.cut[0][1] = net.cut[0][2] = true;
    netRun(&net, net.now + 3000);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(stateAt(&net, i, 3), GOSSIP_ALIVE);
        gossipMember m;
        assert_true(gossipLookup(net.g[i], idOf(3), &m));
        assert_int_equal(m.addr.udp_port, 7004);
        assert_int_equal(m.addr.tcp_port, 5004);
    }
    assert_true(
        gossipGetStats(net.g[1])->unknown_probers + gossipGetStats(net.g[2])->unknown_probers >= 1);
    netFree(&net);
}

static void test_dead_member_is_reaped_after_retention(void **state) {
    gossipConfig cfg;
    gossipConfigDefault(&cfg);
    cfg.dead_retain_ms = 10000;
    tnet net;
    netInit(&net, 3, 3, &cfg);
    uint64_t t0 = net.now;
    gossipUpdate u = claim(&net, GOSSIP_DEAD, 2, 1, 1);
    inject(&net, 1, 0, &u, 1);
    net.up[2] = false;
    netRun(&net, t0 + 9999);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_DEAD);
    netRun(&net, t0 + 10000);
    assert_int_equal(stateAt(&net, 0, 2), GOSSIP_NONE);
    assert_int_equal(gossipMemberCount(net.g[0]), 2);
    assert_int_equal(firstEvent(&net, 0, 2, GOSSIP_NONE, t0), t0 + 10000);
    netFree(&net);
}

static void test_push_pull_target_is_a_live_or_retained_dead_member(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    gossipMember m;
    int seen[4] = {0};
    for (int k = 0; k < 300; k++) {
        assert_true(gossipPickPushPullTarget(net.g[0], &m));
        assert_false(m.is_self);
        seen[m.id - 1]++;
    }
    assert_true(seen[1] > 0 && seen[2] > 0 && seen[3] > 0);
    gossipUpdate u[] = {claim(&net, GOSSIP_DEAD, 1, 1, 2), claim(&net, GOSSIP_LEFT, 2, 1, 2)};
    inject(&net, 3, 0, u, 2);
    int dead = 0;
    for (int k = 0; k < 300; k++) {
        assert_true(gossipPickPushPullTarget(net.g[0], &m));
        assert_true(m.state == GOSSIP_ALIVE || m.state == GOSSIP_DEAD);
        dead += m.state == GOSSIP_DEAD;
    }
    assert_true(dead > 100 && dead < 200); /* probability 1/2 */
    /* Alone: nobody. */
    tnet one;
    netInit(&one, 1, 1, NULL);
    assert_false(gossipPickPushPullTarget(one.g[0], &m));
    netFree(&one);
    netFree(&net);
}

static void test_ipv4_parser_agrees_with_inet_pton(void **state) {
    const char *cases[] = {"0.0.0.0", "127.0.0.1", "255.255.255.255", "1.2.3.4",  "10.0.0.256",
                           "1.2.3",   "1.2.3.4.5", "01.2.3.4",        "1.2.3.04", "1..2.3",
                           ".1.2.3",  "1.2.3.",    "1.2.3.4 ",        " 1.2.3.4", "1.2.3.4x",
                           "",        "0.0.0.00",  "1234.1.1.1",      "1.2.3.-4", "192.168.100.200",
                           "::1",     "a.b.c.d"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t a[4] = {0}, b[4] = {0};
        bool mine = gossipParseIPv4(cases[i], a);
        bool libc = inet_pton(AF_INET, cases[i], b) == 1;
        if (mine != libc) fail_msg("\"%s\": parser says %d, inet_pton %d", cases[i], mine, libc);
        if (mine) assert_memory_equal(a, b, 4);
    }
}

/* Collects the datagrams node `from` sent, without delivering them. */
static size_t takePackets(tnet *net, int from, gossipPacket *out, size_t max) {
    size_t n = 0;
    while (n < max && gossipNextPacket(net->g[from], &out[n])) n++;
    return n;
}

static bool packetCarries(const gossipPacket *p, gossipState kind, uint32_t node, uint64_t inc) {
    static gossipMsg m;
    gossipDropReason why;
    assert_int_equal(gossipDecodePacket(p->data, p->len, &m, &why), 0);
    for (size_t i = 0; i < m.n_updates; i++) {
        if (m.updates[i].kind == kind && m.updates[i].node == node &&
            m.updates[i].incarnation == inc)
            return true;
    }
    return false;
}

static void test_stale_claim_is_answered_with_the_newer_record(void **state) {
    tnet net;
    netInit(&net, 3, 3, NULL);
    gossipUpdate u = claim(&net, GOSSIP_ALIVE, 2, 2, 2);
    inject(&net, 2, 0, &u, 1);
    assert_int_equal(incAt(&net, 0, 2), 2);
    gossipPacket drop[8];
    takePackets(&net, 0, drop, 8);
    /* Node 1 still suspects node 2 at incarnation 1 and says so. */
    u = claim(&net, GOSSIP_SUSPECT, 2, 1, 1);
    inject(&net, 1, 0, &u, 1);
    gossipPacket p[8];
    size_t n = takePackets(&net, 0, p, 8);
    assert_int_equal(n, 1);
    assert_int_equal(indexOfAddr(&net, &p[0].to), 1);
    assert_true(packetCarries(&p[0], GOSSIP_ALIVE, idOf(2), 2));
    assert_int_equal(gossipGetStats(net.g[0])->corrections_sent, 1);
    /* A claim that is not older gets no answer. */
    u = claim(&net, GOSSIP_SUSPECT, 1, 1, 2);
    inject(&net, 2, 0, &u, 1);
    n = takePackets(&net, 0, p, 8);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(indexOfAddr(&net, &p[i].to), 2);
    netFree(&net);
}

static void test_member_heard_to_be_suspect_is_probed_next(void **state) {
    tnet net;
    netInit(&net, 6, 6, NULL);
    netRun(&net, net.now + 3000);
    gossipUpdate u = claim(&net, GOSSIP_SUSPECT, 4, 1, 1);
    inject(&net, 1, 0, &u, 1);
    gossipPacket p[16];
    takePackets(&net, 0, p, 16);
    /* Tick node 0 alone until its next probe: it goes to node 4 and
     * carries the suspicion. */
    for (;;) {
        net.now = gossipNextDeadline(net.g[0]);
        gossipTick(net.g[0], net.now);
        size_t n = takePackets(&net, 0, p, 16);
        bool probed = false;
        for (size_t i = 0; i < n; i++) {
            static gossipMsg m;
            gossipDropReason why;
            assert_int_equal(gossipDecodePacket(p[i].data, p[i].len, &m, &why), 0);
            if (m.h.type != GOSSIP_MSG_PING) continue;
            assert_int_equal(m.h.target, idOf(4));
            assert_true(packetCarries(&p[i], GOSSIP_SUSPECT, idOf(4), 1));
            probed = true;
        }
        if (probed) break;
    }
    netFree(&net);
}

/* Counts GOSSIP datagrams from node 0 to node 3 that tell it it is dead:
 * node 0 holds node 3 DEAD, so it sends it gossip only when a round picks
 * it as a dead member. */
static void deadGossipHook(tnet *net, int from, const gossipPacket *p) {
    static gossipMsg m;
    gossipDropReason why;
    if (from != 0 || indexOfAddr(net, &p->to) != 3) return;
    assert_int_equal(gossipDecodePacket(p->data, p->len, &m, &why), 0);
    if (m.h.type == GOSSIP_MSG_GOSSIP && packetCarries(p, GOSSIP_DEAD, idOf(3), 1))
        (*(int *)net->ctx)++;
}

static void test_member_held_dead_is_told_and_refutes(void **state) {
    tnet net;
    netInit(&net, 4, 4, NULL);
    netRun(&net, net.now + 2000);
    uint64_t t0 = net.now;
    int told = 0;
    net.hook = deadGossipHook;
    net.ctx = &told;
    /* Node 0 alone believes node 3 is dead. */
    gossipUpdate u = claim(&net, GOSSIP_DEAD, 3, 1, 1);
    inject(&net, 1, 0, &u, 1);
    netRun(&net, t0 + 3000);
    assert_true(told >= 1);
    assert_int_equal(gossipSelfIncarnation(net.g[3]), 2);
    for (int i = 0; i < 4; i++) assert_int_equal(stateAt(&net, i, 3), GOSSIP_ALIVE);
    assert_true(firstEvent(&net, 0, 3, GOSSIP_ALIVE, t0) < t0 + 1000);
    netFree(&net);
}

static void test_config_check_and_create_reject_bad_values(void **state) {
    gossipConfig c;
    gossipConfigDefault(&c);
    char err[160];
    assert_int_equal(gossipConfigCheck(&c, err, sizeof err), 0);
    c.probe_timeout_ms = c.probe_interval_ms;
    assert_int_equal(gossipConfigCheck(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "probe_timeout_ms"));
    gossipConfigDefault(&c);
    c.max_datagram_bytes = 1401;
    assert_int_equal(gossipConfigCheck(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_datagram_bytes"));
    gossipConfigDefault(&c);
    gossipAddr a;
    addrOf(0, &a);
    assert_null(gossipCreate(&c, 0, &a, NULL, 0, 1, 1, 0));
    assert_null(gossipCreate(&c, 1, &a, NULL, 65, 1, 1, 0));
    assert_null(gossipCreate(&c, 1, &a, NULL, 0, GOSSIP_INCARNATION_MAX + 1, 1, 0));
    strcpy(a.host, "localhost");
    assert_null(gossipCreate(&c, 1, &a, NULL, 0, 1, 1, 0));
    addrOf(0, &a);
    a.udp_port = 0;
    assert_null(gossipCreate(&c, 1, &a, NULL, 0, 1, 1, 0));
    assert_string_equal(gossipStateName(GOSSIP_SUSPECT), "suspect");
    assert_string_equal(gossipDropReasonName(GOSSIP_DROP_OVERSIZED), "oversized");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_round_trips_every_message_type),
        cmocka_unit_test(test_codec_encode_refuses_what_does_not_fit),
        cmocka_unit_test(test_state_blob_round_trip),
        cmocka_unit_test(test_decode_rejects_every_truncation_and_the_node_counts_it),
        cmocka_unit_test(test_malformed_packets_are_dropped_and_counted_by_reason),
        cmocka_unit_test(test_higher_incarnation_wins),
        cmocka_unit_test(test_dead_is_final_for_its_incarnation),
        cmocka_unit_test(test_refutation_beats_suspicion),
        cmocka_unit_test(test_node_refutes_death_and_left_about_itself),
        cmocka_unit_test(test_leave_is_left_not_dead),
        cmocka_unit_test(test_force_leave_takes_only_a_dead_member_and_spreads_left),
        cmocka_unit_test(test_a_running_member_forced_out_refutes_and_is_alive_again),
        cmocka_unit_test(test_left_replaces_dead_but_dead_never_replaces_left),
        cmocka_unit_test(test_piggyback_retransmit_limit_is_respected),
        cmocka_unit_test(test_newer_update_replaces_older_in_queue),
        cmocka_unit_test(test_direct_ping_ack_keeps_member_alive),
        cmocka_unit_test(test_silent_member_goes_suspect_then_dead_on_the_timeline),
        cmocka_unit_test(test_indirect_probe_rescues_member_with_cut_direct_path),
        cmocka_unit_test(test_suspicion_timeout_shrinks_with_confirmations),
        cmocka_unit_test(test_health_score_rises_when_isolated_and_recovers),
        cmocka_unit_test(test_push_pull_teaches_newcomer_every_member_and_port),
        cmocka_unit_test(test_merge_of_malformed_state_applies_nothing),
        cmocka_unit_test(test_merge_turns_remote_death_into_suspicion_and_self_refutes),
        cmocka_unit_test(test_join_ping_exchanges_records),
        cmocka_unit_test(test_member_probed_by_an_unknown_node_learns_it),
        cmocka_unit_test(test_dead_member_is_reaped_after_retention),
        cmocka_unit_test(test_push_pull_target_is_a_live_or_retained_dead_member),
        cmocka_unit_test(test_ipv4_parser_agrees_with_inet_pton),
        cmocka_unit_test(test_stale_claim_is_answered_with_the_newer_record),
        cmocka_unit_test(test_member_heard_to_be_suspect_is_probed_next),
        cmocka_unit_test(test_member_held_dead_is_told_and_refutes),
        cmocka_unit_test(test_config_check_and_create_reject_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
