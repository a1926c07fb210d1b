/* The SWIM state machine: probing, suspicion, refutation, dissemination
 * and push-pull, driven only by its arguments; see gossip.h.
 *
 * One protocol period is one probe (SWIM §3.1, Fig. 1): ping the target;
 * if no ack after probe_timeout_ms, ask indirect_checks members to ping it
 * for us; if still no ack when the period ends, suspect it. Every claim a
 * node hears (its own conclusions included) goes through the same three
 * rules, applyAlive, applySuspect and applyDown, which implement the
 * override order of SWIM §4.2 with incarnation numbers as memberlist does,
 * so a datagram, a push-pull entry and a local timer cannot disagree on
 * what a claim means. A rule that changes a record queues the claim for
 * dissemination and records an event. */
#include "gossip/internal.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ping-reqs served at once; more are dropped (counted as overload), so a
 * flood of them cannot make a node allocate. */
#define GOSSIP_MAX_RELAYS 64
/* suspicion_mult is capped at 16, so at most 14 confirmations are expected
 * (K = mult - 2), plus the accuser that started the suspicion. */
#define GOSSIP_MAX_CONFIRMERS 16
#define GOSSIP_MAX_FANOUT     16
/* Members heard to be suspect, waiting for a probe of their own. */
#define GOSSIP_PROBE_SOON_MAX 8
/* Expected number of members that re-probe a new suspect at once: all of
 * them in clusters up to this size, this many on average above it, so a
 * suspect in a 10,000-node cluster is not hit by 10,000 pings. */
#define GOSSIP_SUSPECT_PROBE_BURST 64

/* Lifeguard LHA-Suspicion: a suspicion and the distinct members that confirmed it. */
typedef struct suspicion {
    uint32_t member; /* pool index */
    uint32_t k;      /* confirmations that bring the timeout down to min */
    uint32_t n;      /* confirmations so far */
    uint64_t start_ms, min_ms, max_ms, deadline_ms;
    uint32_t confirmers[GOSSIP_MAX_CONFIRMERS]; /* [0] is the accuser */
} suspicion;

/* A ping-req we serve: our ping to the target, whose ack we relay. */
typedef struct relay {
    uint32_t seq;        /* of our ping */
    uint32_t origin_seq; /* of the requester's probe */
    gossipAddr origin;
    uint64_t nack_at_ms;
} relay;

/* Our probe of the current protocol period. */
typedef struct probe {
    bool active, acked, indirect_sent;
    uint32_t seq, target;
    uint64_t timeout_ms, end_ms;
    uint32_t expected_nacks, nacks;
} probe;

/* A queued event, with the address in binary: events are formatted for
 * the caller only as they are drained, and a join queues one per member. */
typedef struct eventRec {
    uint32_t id;
    uint8_t old_state, new_state, family;
    uint8_t ip[16];
    uint16_t udp_port, tcp_port;
    uint64_t incarnation, at_ms;
} eventRec;

typedef struct reapEntry {
    uint32_t id;
    uint64_t since_ms;
} reapEntry;

/* A FIFO of fixed-size elements that gives its memory back when drained,
 * because a simulator holds thousands of gossip nodes whose queues are
 * empty nearly all the time. */
typedef struct ring {
    uint8_t *a;
    size_t head, len, cap, size, keep;
} ring;

struct gossip {
    gossipConfig cfg;
    uint32_t self_id, self_idx;
    gossipRng rng;
    memberTable mt;
    bcastQueue bq;
    suspicion *susp;
    uint32_t susp_len, susp_cap;
    relay relays[GOSSIP_MAX_RELAYS];
    uint32_t relay_len;
    probe pr;
    uint32_t probe_soon[GOSSIP_PROBE_SOON_MAX];
    uint32_t probe_soon_len;
    bool last_probe_soon;
    uint32_t seq;
    uint32_t awareness;
    uint64_t next_probe_ms, next_gossip_ms;
    bool leaving;
    ring reap, pkts, events;
    gossipStats stats;
    gossipMsg msg; /* decoding scratch: too large for the stack */
};

/* ---- Ring ------------------------------------------------------------- */

static void ringInit(ring *r, size_t size, size_t keep) {
    memset(r, 0, sizeof *r);
    r->size = size;
    r->keep = keep;
}

static void ringFree(ring *r) {
    free(r->a);
    r->a = NULL;
    r->head = r->len = r->cap = 0;
}

static void *ringAt(const ring *r, size_t i) {
    return r->a + ((r->head + i) % r->cap) * r->size;
}

/* Makes room for `want` elements. An unwrapped ring grows in place with
 * realloc, which moves a large block by remapping it rather than copying:
 * a join into a large cluster queues one event per member. */
static void ringReserve(ring *r, size_t want) {
    if (want <= r->cap) return;
    size_t cap = r->cap ? r->cap : 4;
    while (cap < want) cap *= 2;
    if (r->head == 0) {
        r->a = xrealloc(r->a, cap * r->size);
    } else {
        uint8_t *a = xmalloc(cap * r->size);
        for (size_t i = 0; i < r->len; i++) memcpy(a + i * r->size, ringAt(r, i), r->size);
        free(r->a);
        r->a = a;
        r->head = 0;
    }
    r->cap = cap;
}

static void *ringPush(ring *r) {
    ringReserve(r, r->len + 1);
    r->len++;
    return ringAt(r, r->len - 1);
}

static void ringPop(ring *r) {
    assert(r->len > 0);
    r->head = (r->head + 1) % r->cap;
    if (--r->len == 0) {
        r->head = 0;
        if (r->cap > r->keep) ringFree(r);
    }
}

/* ---- Names and configuration ------------------------------------------ */

const char *gossipStateName(gossipState s) {
    switch (s) {
    case GOSSIP_NONE:
        return "none";
    case GOSSIP_ALIVE:
        return "alive";
    case GOSSIP_SUSPECT:
        return "suspect";
    case GOSSIP_DEAD:
        return "dead";
    case GOSSIP_LEFT:
        return "left";
    }
    return "?";
}

const char *gossipDropReasonName(gossipDropReason r) {
    switch (r) {
    case GOSSIP_DROP_TRUNCATED:
        return "truncated";
    case GOSSIP_DROP_BAD_VERSION:
        return "bad_version";
    case GOSSIP_DROP_UNKNOWN_TYPE:
        return "unknown_type";
    case GOSSIP_DROP_BAD_VALUE:
        return "bad_value";
    case GOSSIP_DROP_OVERSIZED:
        return "oversized";
    case GOSSIP_DROP_WRONG_TARGET:
        return "wrong_target";
    case GOSSIP_DROP_OVERLOAD:
        return "overload";
    case GOSSIP_DROP__COUNT:
        break;
    }
    return "?";
}

/* The reasoning behind each number is in gossip.h. */
void gossipConfigDefault(gossipConfig *c) {
    c->probe_interval_ms = 500;
    c->probe_timeout_ms = 200;
    c->indirect_checks = 3;
    c->suspicion_mult = 3;
    c->suspicion_max_timeout_mult = 3;
    c->retransmit_mult = 4;
    c->gossip_interval_ms = 200;
    c->gossip_nodes = 3;
    c->push_pull_interval_ms = 30000;
    c->dead_retain_ms = 300000;
    c->max_datagram_bytes = GOSSIP_MAX_DATAGRAM_BYTES - 41;
    c->awareness_max_multiplier = 8;
}

static int configError(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int gossipConfigCheck(const gossipConfig *c, char *err, size_t errlen) {
    static const struct {
        const char *name;
        size_t off;
        uint32_t lo, hi;
    } ranges[] = {
        {"probe_interval_ms", offsetof(gossipConfig, probe_interval_ms), 10, 60000},
        {"indirect_checks", offsetof(gossipConfig, indirect_checks), 0, GOSSIP_MAX_FANOUT},
        {"suspicion_mult", offsetof(gossipConfig, suspicion_mult), 1, GOSSIP_MAX_CONFIRMERS},
        {"suspicion_max_timeout_mult", offsetof(gossipConfig, suspicion_max_timeout_mult), 1, 100},
        {"retransmit_mult", offsetof(gossipConfig, retransmit_mult), 1, 32},
        {"gossip_interval_ms", offsetof(gossipConfig, gossip_interval_ms), 10, 60000},
        {"gossip_nodes", offsetof(gossipConfig, gossip_nodes), 0, GOSSIP_MAX_FANOUT},
        {"push_pull_interval_ms", offsetof(gossipConfig, push_pull_interval_ms), 100, 86400000},
        {"dead_retain_ms", offsetof(gossipConfig, dead_retain_ms), 0, 7 * 86400000u},
        {"max_datagram_bytes", offsetof(gossipConfig, max_datagram_bytes),
         GOSSIP_MIN_DATAGRAM_BYTES, GOSSIP_MAX_DATAGRAM_BYTES},
        {"awareness_max_multiplier", offsetof(gossipConfig, awareness_max_multiplier), 1, 64},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        uint32_t v;
        memcpy(&v, (const char *)c + ranges[i].off, sizeof v);
        if (v < ranges[i].lo || v > ranges[i].hi)
            return configError(err, errlen, "gossip: %s is %u, must be between %u and %u",
                               ranges[i].name, v, ranges[i].lo, ranges[i].hi);
    }
    if (c->probe_timeout_ms < 1 || c->probe_timeout_ms >= c->probe_interval_ms)
        return configError(err, errlen,
                           "gossip: probe_timeout_ms is %u, must be at least 1 and below "
                           "probe_interval_ms (%u)",
                           c->probe_timeout_ms, c->probe_interval_ms);
    return 0;
}

/* ---- Small helpers ---------------------------------------------------- */

static member *selfMember(const gossip *g) {
    return membersGet(&g->mt, g->self_idx);
}

/* Members taking part in the protocol, self included: N in the paper's
 * formulas. DEAD and LEFT ones are not counted, so a cluster that lost
 * half its members scales its timeouts to the half that remains. */
static uint32_t liveCount(const gossip *g) {
    return membersCount(&g->mt, GOSSIP_ALIVE) + membersCount(&g->mt, GOSSIP_SUSPECT);
}

/* SWIM §4.1: lambda * log(N) transmissions; memberlist's
 * retransmit_mult * ceil(log10(N + 1)), where ceil(log10(N + 1)) is the
 * number of decimal digits of N. */
static uint32_t retransmitLimit(const gossip *g) {
    uint32_t digits = 1;
    for (uint32_t n = liveCount(g); n >= 10; n /= 10) digits++;
    uint32_t limit = g->cfg.retransmit_mult * digits;
    return limit > GOSSIP_MAX_TRANSMITS ? GOSSIP_MAX_TRANSMITS : limit;
}

/* Lifeguard LHA-Probe: timing is stretched by (score + 1). */
static uint64_t healthScaled(const gossip *g, uint32_t ms) {
    return (uint64_t)ms * (g->awareness + 1);
}

static void healthAdjust(gossip *g, int delta) {
    int64_t v = (int64_t)g->awareness + delta;
    int64_t max = (int64_t)g->cfg.awareness_max_multiplier - 1;
    g->awareness = (uint32_t)(v < 0 ? 0 : v > max ? max : v);
}

static void memberToUpdate(const gossip *g, uint32_t idx, gossipUpdate *u) {
    const member *m = membersGet(&g->mt, idx);
    memset(u, 0, sizeof *u);
    u->kind = (gossipState)m->state;
    u->node = m->id;
    u->incarnation = m->inc;
    u->from = g->self_id;
    if (m->susp_idx != GOSSIP_NO_INDEX) u->from = g->susp[m->susp_idx].confirmers[0];
    memberGetAddr(m, &u->addr);
    u->meta_len = m->meta_len;
    if (m->meta_len) memcpy(u->meta, m->meta, m->meta_len);
}

static void memberToPublic(const gossip *g, uint32_t idx, gossipMember *out) {
    const member *m = membersGet(&g->mt, idx);
    memset(out, 0, sizeof *out);
    out->id = m->id;
    memberGetAddr(m, &out->addr);
    out->meta_len = m->meta_len;
    if (m->meta_len) memcpy(out->meta, m->meta, m->meta_len);
    out->state = (gossipState)m->state;
    out->incarnation = m->inc;
    out->since_ms = m->since_ms;
    out->is_self = m->is_self;
}

static void emitEvent(gossip *g, uint32_t idx, gossipState old, gossipState now_state,
                      uint64_t now) {
    const member *m = membersGet(&g->mt, idx);
    eventRec *ev = ringPush(&g->events);
    ev->id = m->id;
    ev->old_state = (uint8_t)old;
    ev->new_state = (uint8_t)now_state;
    ev->family = m->family;
    memcpy(ev->ip, m->ip, sizeof ev->ip);
    ev->udp_port = m->udp_port;
    ev->tcp_port = m->tcp_port;
    ev->incarnation = m->inc;
    ev->at_ms = now;
}

/* Queues the member's current record for dissemination. from names the
 * accuser carried by a suspect or dead claim. */
static void queueBroadcast(gossip *g, uint32_t idx, uint32_t from) {
    gossipUpdate u;
    memberToUpdate(g, idx, &u);
    u.from = from;
    uint8_t bytes[GOSSIP_UPDATE_MAX_BYTES];
    size_t n = gossipEncodeUpdate(&u, bytes, sizeof bytes);
    assert(n > 0);
    bcastPush(&g->bq, &g->mt, idx, bytes, n);
}

/* ---- Outgoing datagrams ----------------------------------------------- */

/* Builds one datagram: the header, then the forced updates (buddy-system
 * suspicions, a join's records, corrections, a dead member's own record),
 * then as many queued broadcasts as fit. Forced updates are addressed to
 * this one destination and do not count against the retransmit limit. A
 * gossip message with nothing to carry is not sent. */
static void sendMsg(gossip *g, const gossipAddr *to, uint32_t to_id, const gossipMsgHeader *h,
                    const gossipUpdate *forced, size_t nforced) {
    gossipPacket *p = ringPush(&g->pkts);
    size_t cap = g->cfg.max_datagram_bytes;
    size_t n = gossipEncodeMsgHeader(h, p->data, cap);
    assert(n > 0);
    size_t count_at = n - 1;
    uint32_t count = 0, skip[4];
    size_t nskip = 0;
    assert(nforced <= 4);
    for (size_t i = 0; i < nforced; i++) {
        size_t u = gossipEncodeUpdate(&forced[i], p->data + n, cap - n);
        if (u == 0) continue;
        n += u;
        count++;
        skip[nskip++] = forced[i].node;
    }
    size_t used = 0;
    count += bcastFill(&g->bq, &g->mt, retransmitLimit(g), p->data + n, cap - n, skip, nskip,
                       GOSSIP_MAX_UPDATES_PER_PACKET - count, &used);
    n += used;
    if (h->type == GOSSIP_MSG_GOSSIP && count == 0) {
        g->pkts.len--; /* take back the slot just pushed */
        if (g->pkts.len == 0) g->pkts.head = 0;
        return;
    }
    p->data[count_at] = (uint8_t)count;
    p->len = n;
    p->to = *to;
    p->to_id = to_id;
    g->stats.msgs_sent++;
    g->stats.bytes_sent += n;
    g->stats.updates_sent += count;
}

static void sendSimple(gossip *g, const gossipAddr *to, uint32_t to_id, gossipMsgType type,
                       uint32_t seq) {
    gossipMsgHeader h = {.type = type, .sender = g->self_id, .seq = seq};
    sendMsg(g, to, to_id, &h, NULL, 0);
}

/* A ping; to a suspect it carries the suspicion (Lifeguard's Buddy
 * System), so the suspect hears of it from the member that probes it. */
static void sendPing(gossip *g, const gossipAddr *to, uint32_t target, uint32_t seq,
                     uint8_t flags) {
    gossipMsgHeader h = {.type = GOSSIP_MSG_PING,
                         .sender = g->self_id,
                         .seq = seq,
                         .target = target,
                         .flags = flags};
    gossipUpdate forced[2];
    size_t nforced = 0;
    if (flags & GOSSIP_PING_JOIN) memberToUpdate(g, g->self_idx, &forced[nforced++]);
    uint32_t idx = membersFind(&g->mt, target);
    if (idx != GOSSIP_NO_INDEX && membersGet(&g->mt, idx)->state == GOSSIP_SUSPECT)
        memberToUpdate(g, idx, &forced[nforced++]);
    sendMsg(g, to, target, &h, forced, nforced);
}

/* ---- Suspicion (Lifeguard LHA-Suspicion) ----------------------------- */

/* SWIM §4.2's suspicion timeout, scaled with log N as memberlist does:
 * the larger the cluster, the longer a refutation takes to reach every
 * member that heard the suspicion. */
static uint64_t suspicionMinMs(const gossip *g) {
    uint32_t n = liveCount(g);
    double scale = n > 10 ? log10((double)n) : 1.0;
    return (uint64_t)(g->cfg.suspicion_mult * scale * g->cfg.probe_interval_ms);
}

/* memberlist's remainingSuspicionTime: max - (max - min) * log(C+1) /
 * log(K+1), so the first confirmations shorten the wait the most. */
static uint64_t suspicionTimeout(const suspicion *s) {
    if (s->k == 0) return s->min_ms;
    double frac = log((double)s->n + 1.0) / log((double)s->k + 1.0);
    double raw = (double)s->max_ms - frac * (double)(s->max_ms - s->min_ms);
    uint64_t t = raw <= (double)s->min_ms ? s->min_ms : (uint64_t)floor(raw);
    return t < s->min_ms ? s->min_ms : t;
}

static void suspicionStart(gossip *g, uint32_t idx, uint32_t accuser, uint64_t now) {
    if (g->susp_len == g->susp_cap) {
        g->susp_cap = g->susp_cap ? g->susp_cap * 2 : 8;
        g->susp = xrealloc(g->susp, g->susp_cap * sizeof *g->susp);
    }
    suspicion *s = &g->susp[g->susp_len];
    memset(s, 0, sizeof *s);
    s->member = idx;
    /* memberlist: expect suspicion_mult - 2 confirmations, none when the
     * cluster is too small to supply them. */
    uint32_t k = g->cfg.suspicion_mult > 2 ? g->cfg.suspicion_mult - 2 : 0;
    if (liveCount(g) < k + 2) k = 0;
    s->k = k;
    s->start_ms = now;
    s->min_ms = suspicionMinMs(g);
    s->max_ms = s->min_ms * g->cfg.suspicion_max_timeout_mult;
    s->confirmers[0] = accuser;
    s->deadline_ms = now + suspicionTimeout(s);
    membersGet(&g->mt, idx)->susp_idx = g->susp_len++;
}

/* Counts an accusation from a member not heard before; true if it was new,
 * in which case it is worth passing on. */
static bool suspicionConfirm(gossip *g, uint32_t idx, uint32_t from) {
    suspicion *s = &g->susp[membersGet(&g->mt, idx)->susp_idx];
    if (s->n >= s->k) return false;
    for (uint32_t i = 0; i <= s->n; i++) {
        if (s->confirmers[i] == from) return false;
    }
    s->confirmers[++s->n] = from;
    s->deadline_ms = s->start_ms + suspicionTimeout(s);
    return true;
}

static void suspicionStop(gossip *g, uint32_t idx) {
    member *m = membersGet(&g->mt, idx);
    uint32_t pos = m->susp_idx;
    if (pos == GOSSIP_NO_INDEX) return;
    m->susp_idx = GOSSIP_NO_INDEX;
    if (pos != --g->susp_len) {
        g->susp[pos] = g->susp[g->susp_len];
        membersGet(&g->mt, g->susp[pos].member)->susp_idx = pos;
    }
}

/* ---- State changes ---------------------------------------------------- */

static void reapPush(gossip *g, uint32_t id, uint64_t now) {
    reapEntry *e = ringPush(&g->reap);
    e->id = id;
    e->since_ms = now;
}

/* Moves a member to a new state, keeping the lists, the suspicion and the
 * reap queue in step. */
static void setState(gossip *g, uint32_t idx, gossipState st, uint64_t now) {
    member *m = membersGet(&g->mt, idx);
    if (m->state == st) return;
    if (m->state == GOSSIP_SUSPECT) suspicionStop(g, idx);
    membersSetState(&g->mt, idx, st);
    m->since_ms = now;
    if (st == GOSSIP_DEAD || st == GOSSIP_LEFT) reapPush(g, m->id, now);
}

/* SWIM §4.2: a member that hears itself suspected (or declared dead)
 * raises its incarnation above the accusation and says it is alive, which
 * overrides the claim everywhere it spread. Lifeguard LHA-Probe counts it
 * against local health: being suspected hints that we are slow. */
static void refute(gossip *g, uint64_t accused, uint64_t now) {
    member *self = selfMember(g);
    uint64_t base = accused > self->inc ? accused : self->inc;
    self->inc = base < GOSSIP_INCARNATION_MAX ? base + 1 : GOSSIP_INCARNATION_MAX;
    queueBroadcast(g, g->self_idx, g->self_id);
    healthAdjust(g, 1);
    g->stats.suspicions_refuted++;
    emitEvent(g, g->self_idx, GOSSIP_ALIVE, GOSSIP_ALIVE, now);
}

/* Puts a member heard to be suspect at the front of our probe order.
 * Our ping carries the suspicion (buddy system), so a live suspect answers
 * with its refutation even if the refutation's broadcast missed us; a dead
 * one fails our probe, which is the independent confirmation Lifeguard
 * LHA-Suspicion waits for. Either way the suspicion is settled about one period
 * after we hear it, instead of by whichever rumour arrives first. */
static void probeSoon(gossip *g, uint32_t id) {
    uint32_t n = liveCount(g);
    if (n > GOSSIP_SUSPECT_PROBE_BURST && gossipRngBelow(&g->rng, n) >= GOSSIP_SUSPECT_PROBE_BURST)
        return;
    if (g->probe_soon_len == GOSSIP_PROBE_SOON_MAX) return;
    for (uint32_t i = 0; i < g->probe_soon_len; i++) {
        if (g->probe_soon[i] == id) return;
    }
    g->probe_soon[g->probe_soon_len++] = id;
}

/* alive(inc): adds an unknown member (that is how joins spread); for a
 * known one it overrides every state held at a lower incarnation, so only
 * a higher incarnation resurrects a DEAD or LEFT member. */
static void applyAlive(gossip *g, uint64_t now, const gossipUpdate *u, bool quiet) {
    if (u->node == g->self_id) {
        if (g->leaving) return;
        const member *self = selfMember(g);
        bool differs = !memberAddrEqual(self, &u->addr) || u->meta_len != self->meta_len ||
                       (u->meta_len && memcmp(u->meta, self->meta, u->meta_len) != 0);
        /* Someone holds a newer (or conflicting) record of us: perhaps from
         * before a restart that reused an incarnation. Ours must win. */
        if (u->incarnation > self->inc || (u->incarnation == self->inc && differs))
            refute(g, u->incarnation, now);
        return;
    }
    uint32_t idx = membersFind(&g->mt, u->node);
    if (idx == GOSSIP_NO_INDEX) {
        idx = membersAdd(&g->mt, &g->rng, u->node, GOSSIP_ALIVE, false);
        member *m = membersGet(&g->mt, idx);
        memberSetAddr(m, &u->addr);
        memberSetMeta(m, u->meta, u->meta_len);
        m->inc = u->incarnation;
        m->since_ms = now;
        emitEvent(g, idx, GOSSIP_NONE, GOSSIP_ALIVE, now);
        if (!quiet) queueBroadcast(g, idx, g->self_id);
        return;
    }
    member *m = membersGet(&g->mt, idx);
    if (u->incarnation <= m->inc) return;
    gossipState old = (gossipState)m->state;
    m->inc = u->incarnation;
    memberSetAddr(m, &u->addr);
    memberSetMeta(m, u->meta, u->meta_len);
    setState(g, idx, GOSSIP_ALIVE, now);
    emitEvent(g, idx, old, GOSSIP_ALIVE, now);
    if (!quiet) queueBroadcast(g, idx, g->self_id);
}

/* suspect(inc) from an accuser: overrides ALIVE at inc or lower; on a
 * member already suspected at that incarnation it counts as a
 * confirmation (Lifeguard LHA-Suspicion) and is passed on if new, so that
 * independent accusations reach everyone. Ignored for unknown, DEAD and
 * LEFT members. */
static void applySuspect(gossip *g, uint64_t now, uint32_t node, uint64_t inc, uint32_t from,
                         bool quiet) {
    if (node == g->self_id) {
        if (!g->leaving && inc >= selfMember(g)->inc) refute(g, inc, now);
        return;
    }
    uint32_t idx = membersFind(&g->mt, node);
    if (idx == GOSSIP_NO_INDEX) return;
    member *m = membersGet(&g->mt, idx);
    if (inc < m->inc) return;
    if (m->state == GOSSIP_SUSPECT) {
        if (inc == m->inc) {
            if (suspicionConfirm(g, idx, from) && !quiet) queueBroadcast(g, idx, from);
            return;
        }
        /* A suspicion of a newer incarnation starts over. */
        suspicionStop(g, idx);
        m->inc = inc;
        suspicionStart(g, idx, from, now);
        emitEvent(g, idx, GOSSIP_SUSPECT, GOSSIP_SUSPECT, now);
        if (!quiet) queueBroadcast(g, idx, from);
        return;
    }
    if (m->state != GOSSIP_ALIVE) return;
    m->inc = inc;
    setState(g, idx, GOSSIP_SUSPECT, now);
    suspicionStart(g, idx, from, now);
    emitEvent(g, idx, GOSSIP_ALIVE, GOSSIP_SUSPECT, now);
    if (!quiet) queueBroadcast(g, idx, from);
    if (from != g->self_id && !quiet) probeSoon(g, node);
}

/* dead(inc) or left(inc): overrides ALIVE and SUSPECT at inc or lower and
 * is final for that incarnation. LEFT also replaces DEAD, because it is the
 * member's own word and explains its silence, so a member that left is
 * LEFT everywhere even where a timer fired first; DEAD never replaces LEFT.
 * Claims about us are refuted unless we are leaving. */
static void applyDown(gossip *g, uint64_t now, uint32_t node, uint64_t inc, uint32_t from,
                      gossipState st, bool quiet) {
    assert(st == GOSSIP_DEAD || st == GOSSIP_LEFT);
    if (node == g->self_id) {
        if (!g->leaving && inc >= selfMember(g)->inc) refute(g, inc, now);
        return;
    }
    uint32_t idx = membersFind(&g->mt, node);
    if (idx == GOSSIP_NO_INDEX) return;
    member *m = membersGet(&g->mt, idx);
    if (inc < m->inc || m->state == GOSSIP_LEFT) return;
    if (m->state == GOSSIP_DEAD && st == GOSSIP_DEAD) return;
    gossipState old = (gossipState)m->state;
    m->inc = inc;
    setState(g, idx, st, now);
    emitEvent(g, idx, old, st, now);
    if (!quiet) queueBroadcast(g, idx, from);
}

static void applyUpdate(gossip *g, uint64_t now, const gossipUpdate *u) {
    switch (u->kind) {
    case GOSSIP_ALIVE:
        applyAlive(g, now, u, false);
        break;
    case GOSSIP_SUSPECT:
        applySuspect(g, now, u->node, u->incarnation, u->from, false);
        break;
    case GOSSIP_DEAD:
    case GOSSIP_LEFT:
        applyDown(g, now, u->node, u->incarnation, u->from, u->kind, false);
        break;
    default:
        break;
    }
}

/* ---- Creation --------------------------------------------------------- */

gossip *gossipCreate(const gossipConfig *cfg, uint32_t self_id, const gossipAddr *self,
                     const uint8_t *meta, size_t meta_len, uint64_t incarnation, uint64_t seed,
                     uint64_t now_ms) {
    if (!cfg || gossipConfigCheck(cfg, NULL, 0) == -1) return NULL;
    if (self_id == 0 || !self || !gossipAddrValid(self)) return NULL;
    if (meta_len > GOSSIP_META_MAX || (meta_len && !meta)) return NULL;
    if (incarnation > GOSSIP_INCARNATION_MAX) return NULL;

    gossip *g = xcalloc(1, sizeof *g);
    g->cfg = *cfg;
    g->self_id = self_id;
    gossipRngSeed(&g->rng, seed);
    membersInit(&g->mt);
    bcastInit(&g->bq);
    ringInit(&g->reap, sizeof(reapEntry), 16);
    ringInit(&g->pkts, sizeof(gossipPacket), 4);
    ringInit(&g->events, sizeof(eventRec), 16);

    g->self_idx = membersAdd(&g->mt, &g->rng, self_id, GOSSIP_ALIVE, true);
    member *m = selfMember(g);
    memberSetAddr(m, self);
    memberSetMeta(m, meta, meta_len);
    m->inc = incarnation;
    m->since_ms = now_ms;
    emitEvent(g, g->self_idx, GOSSIP_NONE, GOSSIP_ALIVE, now_ms);

    g->seq = (uint32_t)gossipRngNext(&g->rng);
    /* Random phases, so that nodes started together do not probe and
     * gossip in lockstep. */
    g->next_probe_ms = now_ms + gossipRngBelow(&g->rng, cfg->probe_interval_ms);
    g->next_gossip_ms = now_ms + gossipRngBelow(&g->rng, cfg->gossip_interval_ms);
    return g;
}

void gossipFree(gossip *g) {
    if (!g) return;
    membersFree(&g->mt);
    bcastFree(&g->bq);
    free(g->susp);
    ringFree(&g->reap);
    ringFree(&g->pkts);
    ringFree(&g->events);
    free(g);
}

/* ---- Probing (SWIM §3.1, §4.3; Lifeguard LHA-Probe) ------------------ */

/* The next member to probe: one heard to be suspect, else the next in
 * the randomised round-robin order. At most every other probe goes to a
 * suspect, so that when many members fail at once (a partition) the
 * round-robin still finds the rest of them at half speed or better. */
static uint32_t probeTarget(gossip *g) {
    bool soon_turn = !g->last_probe_soon;
    g->last_probe_soon = false;
    while (soon_turn && g->probe_soon_len > 0) {
        uint32_t id = g->probe_soon[0];
        memmove(g->probe_soon, g->probe_soon + 1, --g->probe_soon_len * sizeof *g->probe_soon);
        uint32_t idx = membersFind(&g->mt, id);
        if (idx != GOSSIP_NO_INDEX && membersGet(&g->mt, idx)->state == GOSSIP_SUSPECT) {
            g->last_probe_soon = true;
            return idx;
        }
    }
    return membersNextProbe(&g->mt, &g->rng);
}

static void probeStart(gossip *g, uint64_t now) {
    uint32_t idx = probeTarget(g);
    g->next_probe_ms = now + healthScaled(g, g->cfg.probe_interval_ms);
    if (idx == GOSSIP_NO_INDEX) return;
    member *m = membersGet(&g->mt, idx);
    probe *p = &g->pr;
    memset(p, 0, sizeof *p);
    p->active = true;
    p->seq = ++g->seq;
    p->target = m->id;
    p->timeout_ms = now + healthScaled(g, g->cfg.probe_timeout_ms);
    p->end_ms = g->next_probe_ms;
    gossipAddr to;
    memberGetAddr(m, &to);
    sendPing(g, &to, m->id, p->seq, 0);
    g->stats.probes_sent++;
}

/* No ack within the probe timeout: ask k random ALIVE members to ping the
 * target for us; each answers with the target's ack or, per Lifeguard,
 * with a nack when it got none, which tells us our own link works. */
static void probeIndirect(gossip *g) {
    probe *p = &g->pr;
    p->indirect_sent = true;
    uint32_t tidx = membersFind(&g->mt, p->target);
    if (tidx == GOSSIP_NO_INDEX) return;
    gossipMsgHeader h = {
        .type = GOSSIP_MSG_PING_REQ, .sender = g->self_id, .seq = p->seq, .target = p->target};
    memberGetAddr(membersGet(&g->mt, tidx), &h.target_addr);
    /* A ping-req about a suspect carries the suspicion, so a relay that
     * already heard the refutation sends it to us (see gossipOnPacket). */
    gossipUpdate forced;
    size_t nforced = 0;
    if (membersGet(&g->mt, tidx)->state == GOSSIP_SUSPECT) {
        memberToUpdate(g, tidx, &forced);
        nforced = 1;
    }
    uint32_t picks[GOSSIP_MAX_FANOUT];
    uint32_t n = membersRandom(&g->mt, &g->rng, GOSSIP_MASK(GOSSIP_ALIVE), p->target,
                               g->cfg.indirect_checks, picks);
    for (uint32_t i = 0; i < n; i++) {
        const member *r = membersGet(&g->mt, picks[i]);
        gossipAddr to;
        memberGetAddr(r, &to);
        sendMsg(g, &to, r->id, &h, &forced, nforced);
    }
    p->expected_nacks = n;
    g->stats.indirect_probes_sent += n;
}

/* End of the protocol period. Without an ack the target becomes SUSPECT
 * (SWIM §4.2), and our health score rises by the nacks we missed, or by
 * one when nobody could have sent us any (Lifeguard LHA-Probe, as in memberlist). */
static void probeFinish(gossip *g, uint64_t now) {
    probe *p = &g->pr;
    p->active = false;
    if (p->acked) return;
    g->stats.probes_failed++;
    if (p->expected_nacks > 0)
        healthAdjust(g, (int)(p->expected_nacks -
                              (p->nacks < p->expected_nacks ? p->nacks : p->expected_nacks)));
    else
        healthAdjust(g, 1);
    uint32_t idx = membersFind(&g->mt, p->target);
    if (idx == GOSSIP_NO_INDEX) return;
    const member *m = membersGet(&g->mt, idx);
    if (m->state == GOSSIP_ALIVE) g->stats.suspicions_raised++;
    if (m->state == GOSSIP_ALIVE || m->state == GOSSIP_SUSPECT)
        applySuspect(g, now, m->id, m->inc, g->self_id, false);
}

static void probeStep(gossip *g, uint64_t now) {
    probe *p = &g->pr;
    if (p->active) {
        if (!p->acked && !p->indirect_sent && now >= p->timeout_ms) probeIndirect(g);
        if (now >= p->end_ms) probeFinish(g, now);
    }
    if (!p->active && !g->leaving && now >= g->next_probe_ms) probeStart(g, now);
}

/* ---- Tick ------------------------------------------------------------- */

static void relayRemove(gossip *g, uint32_t i) {
    g->relays[i] = g->relays[--g->relay_len];
}

static void reapStep(gossip *g, uint64_t now) {
    while (g->reap.len > 0) {
        reapEntry e = *(reapEntry *)ringAt(&g->reap, 0);
        if (e.since_ms + g->cfg.dead_retain_ms > now) break;
        ringPop(&g->reap);
        uint32_t idx = membersFind(&g->mt, e.id);
        if (idx == GOSSIP_NO_INDEX) continue;
        const member *m = membersGet(&g->mt, idx);
        /* Stale entry: the member came back, or changed state since. */
        if (m->is_self || (m->state != GOSSIP_DEAD && m->state != GOSSIP_LEFT) ||
            m->since_ms != e.since_ms)
            continue;
        bcastDrop(&g->bq, &g->mt, idx);
        emitEvent(g, idx, (gossipState)m->state, GOSSIP_NONE, now);
        membersRemove(&g->mt, idx);
    }
}

/* memberlist's gossip tick: every gossip_interval_ms, send queued updates
 * to gossip_nodes random members, so news spreads faster than by probes
 * alone. A round with nothing queued is skipped, and since the schedule
 * is kept even when idle, fresh news goes out at once if the last round
 * was a full interval ago. DEAD members are also picked, as memberlist
 * gossips to the dead: the datagram carries our DEAD record of it, so a
 * member wrongly declared dead, or cut off by a partition that has since
 * healed, refutes, and its correction reaches us directly. Targets are
 * drawn uniformly, so each dead member gets about gossip_nodes datagrams
 * per round from the whole cluster, whatever its size. */
static void gossipRound(gossip *g, uint64_t now) {
    if (now < g->next_gossip_ms) return;
    g->next_gossip_ms = now + g->cfg.gossip_interval_ms;
    bool queued = g->bq.count > 0;
    if (g->cfg.gossip_nodes == 0 || (!queued && membersCount(&g->mt, GOSSIP_DEAD) == 0)) return;
    uint32_t picks[GOSSIP_MAX_FANOUT];
    unsigned mask =
        GOSSIP_MASK(GOSSIP_ALIVE) | GOSSIP_MASK(GOSSIP_SUSPECT) | GOSSIP_MASK(GOSSIP_DEAD);
    uint32_t n = membersRandom(&g->mt, &g->rng, mask, 0, g->cfg.gossip_nodes, picks);
    gossipMsgHeader h = {.type = GOSSIP_MSG_GOSSIP, .sender = g->self_id};
    for (uint32_t i = 0; i < n; i++) {
        const member *m = membersGet(&g->mt, picks[i]);
        gossipAddr to;
        memberGetAddr(m, &to);
        if (m->state == GOSSIP_DEAD) {
            gossipUpdate dead;
            memberToUpdate(g, picks[i], &dead);
            sendMsg(g, &to, m->id, &h, &dead, 1);
        } else if (g->bq.count > 0) {
            sendMsg(g, &to, m->id, &h, NULL, 0);
        }
    }
}

void gossipTick(gossip *g, uint64_t now) {
    probeStep(g, now);

    for (uint32_t i = 0; i < g->relay_len;) {
        relay *r = &g->relays[i];
        if (r->nack_at_ms > now) {
            i++;
            continue;
        }
        sendSimple(g, &r->origin, 0, GOSSIP_MSG_NACK, r->origin_seq);
        relayRemove(g, i);
    }

    /* SWIM §4.2: a suspicion not refuted in time becomes a death. */
    for (uint32_t i = 0; i < g->susp_len;) {
        if (g->susp[i].deadline_ms > now) {
            i++;
            continue;
        }
        uint32_t idx = g->susp[i].member;
        const member *m = membersGet(&g->mt, idx);
        g->stats.members_declared_dead++;
        /* Ends the suspicion, which moves another one into slot i. */
        applyDown(g, now, m->id, m->inc, g->self_id, GOSSIP_DEAD, false);
    }

    gossipRound(g, now);
    reapStep(g, now);
}

uint64_t gossipNextDeadline(const gossip *g) {
    uint64_t d = UINT64_MAX;
#define EARLIER(t)                                                                                 \
    do {                                                                                           \
        if ((t) < d) d = (t);                                                                      \
    } while (0)
    const probe *p = &g->pr;
    if (p->active)
        EARLIER(!p->acked && !p->indirect_sent ? p->timeout_ms : p->end_ms);
    else if (!g->leaving)
        EARLIER(g->next_probe_ms);
    for (uint32_t i = 0; i < g->relay_len; i++) EARLIER(g->relays[i].nack_at_ms);
    for (uint32_t i = 0; i < g->susp_len; i++) EARLIER(g->susp[i].deadline_ms);
    if (g->cfg.gossip_nodes > 0 && (g->bq.count > 0 || membersCount(&g->mt, GOSSIP_DEAD) > 0))
        EARLIER(g->next_gossip_ms);
    if (g->reap.len > 0) {
        const reapEntry *e = ringAt(&g->reap, 0);
        EARLIER(e->since_ms + g->cfg.dead_retain_ms);
    }
#undef EARLIER
    return d;
}

/* ---- Incoming datagrams ----------------------------------------------- */

/* Answers a ping. The ack carries our own record when the sender is
 * joining, and the sender's record when we hold it as anything but ALIVE,
 * so a member wrongly suspected, declared dead or thought to have left
 * learns it from the first member it talks to, and refutes; plus any
 * corrections owed to the sender (see gossipOnPacket). */
static void onPing(gossip *g, const gossipMsg *msg, const gossipAddr *from,
                   const gossipUpdate *corrections, size_t ncorr) {
    gossipMsgHeader h = {.type = GOSSIP_MSG_ACK, .sender = g->self_id, .seq = msg->h.seq};
    gossipUpdate forced[4];
    size_t nforced = 0;
    if (msg->h.flags & GOSSIP_PING_JOIN) memberToUpdate(g, g->self_idx, &forced[nforced++]);
    uint32_t idx = membersFind(&g->mt, msg->h.sender);
    if (idx != GOSSIP_NO_INDEX && membersGet(&g->mt, idx)->state != GOSSIP_ALIVE)
        memberToUpdate(g, idx, &forced[nforced++]);
    for (size_t i = 0; i < ncorr && nforced < 4; i++) {
        bool dup = false;
        for (size_t k = 0; k < nforced; k++) dup |= forced[k].node == corrections[i].node;
        if (!dup) forced[nforced++] = corrections[i];
    }
    sendMsg(g, from, msg->h.sender, &h, forced, nforced);
}

static void onAck(gossip *g, uint32_t seq) {
    probe *p = &g->pr;
    if (p->active && !p->acked && seq == p->seq) {
        p->acked = true;
        g->stats.acks_received++;
        healthAdjust(g, -1);
        return;
    }
    for (uint32_t i = 0; i < g->relay_len; i++) {
        if (g->relays[i].seq == seq) {
            sendSimple(g, &g->relays[i].origin, 0, GOSSIP_MSG_ACK, g->relays[i].origin_seq);
            relayRemove(g, i);
            return;
        }
    }
    g->stats.stale_acks++;
}

static void onPingReq(gossip *g, uint64_t now, const gossipMsg *msg, const gossipAddr *from) {
    if (msg->h.target == g->self_id) {
        sendSimple(g, from, msg->h.sender, GOSSIP_MSG_ACK, msg->h.seq);
        return;
    }
    if (g->relay_len == GOSSIP_MAX_RELAYS) {
        g->stats.dropped[GOSSIP_DROP_OVERLOAD]++;
        return;
    }
    relay *r = &g->relays[g->relay_len++];
    r->seq = ++g->seq;
    r->origin_seq = msg->h.seq;
    r->origin = *from;
    /* memberlist's relay waits the un-stretched probe timeout, so its nack
     * reaches the requester before the requester's period ends. */
    r->nack_at_ms = now + g->cfg.probe_timeout_ms;
    sendPing(g, &msg->h.target_addr, msg->h.target, r->seq, 0);
    g->stats.indirect_probes_relayed++;
}

void gossipOnPacket(gossip *g, uint64_t now, const uint8_t *data, size_t len,
                    const gossipAddr *from) {
    g->stats.msgs_received++;
    g->stats.bytes_received += len;
    gossipDropReason why;
    gossipMsg *msg = &g->msg;
    if (gossipDecodePacket(data, len, msg, &why) == -1) {
        g->stats.dropped[why]++;
        return;
    }
    if (msg->h.sender == g->self_id) {
        g->stats.dropped[GOSSIP_DROP_BAD_VALUE]++;
        return;
    }
    /* A node restarted under another id at this address: not for us. */
    if (msg->h.type == GOSSIP_MSG_PING && msg->h.target != g->self_id) {
        g->stats.dropped[GOSSIP_DROP_WRONG_TARGET]++;
        return;
    }
    /* Updates first, so a refutation riding on an ack is seen with it. */
    for (size_t i = 0; i < msg->n_updates; i++) applyUpdate(g, now, &msg->updates[i]);
    g->stats.updates_received += msg->n_updates;

    /* A claim older than our record means its sender missed a newer one,
     * typically a refutation: a rumour is sent a bounded number of times,
     * and under loss a few members miss it, which would let their
     * suspicion timers turn a live member DEAD. Answer with our record
     * (push-pull per rumour, as in Demers et al.'s anti-entropy); only a
     * node that still holds the old claim sends it, so this costs nothing
     * when nobody is behind. */
    gossipUpdate corr[2];
    size_t ncorr = 0;
    for (size_t i = 0; i < msg->n_updates && ncorr < 2; i++) {
        const gossipUpdate *u = &msg->updates[i];
        uint32_t idx = membersFind(&g->mt, u->node);
        if (idx == GOSSIP_NO_INDEX || (idx == g->self_idx && g->leaving)) continue;
        if (membersGet(&g->mt, idx)->inc > u->incarnation) memberToUpdate(g, idx, &corr[ncorr++]);
    }
    if (ncorr > 0 && msg->h.type != GOSSIP_MSG_PING) {
        gossipMsgHeader h = {.type = GOSSIP_MSG_GOSSIP, .sender = g->self_id};
        sendMsg(g, from, msg->h.sender, &h, corr, ncorr);
        g->stats.corrections_sent++;
    }

    switch (msg->h.type) {
    case GOSSIP_MSG_PING:
        onPing(g, msg, from, corr, ncorr);
        if (ncorr) g->stats.corrections_sent++;
        /* A prober we have never heard of joined through someone else, and
         * the rumour of its join ran out before it reached us (or is still
         * on its way). Ask it directly: a join ping is answered with the
         * member's own record. */
        if (!g->leaving && membersFind(&g->mt, msg->h.sender) == GOSSIP_NO_INDEX) {
            sendPing(g, from, msg->h.sender, ++g->seq, GOSSIP_PING_JOIN);
            g->stats.unknown_probers++;
        }
        break;
    case GOSSIP_MSG_ACK:
        onAck(g, msg->h.seq);
        break;
    case GOSSIP_MSG_NACK:
        if (g->pr.active && msg->h.seq == g->pr.seq) {
            g->pr.nacks++;
            g->stats.nacks_received++;
        }
        break;
    case GOSSIP_MSG_PING_REQ:
        onPingReq(g, now, msg, from);
        break;
    default:
        break;
    }
}

bool gossipNextPacket(gossip *g, gossipPacket *out) {
    if (g->pkts.len == 0) return false;
    const gossipPacket *p = ringAt(&g->pkts, 0);
    out->to = p->to;
    out->to_id = p->to_id;
    out->len = p->len;
    memcpy(out->data, p->data, p->len);
    ringPop(&g->pkts);
    return true;
}

bool gossipNextEvent(gossip *g, gossipEvent *ev) {
    if (g->events.len == 0) return false;
    const eventRec *r = ringAt(&g->events, 0);
    member addr; /* only the address fields, for memberGetAddr */
    addr.family = r->family;
    memcpy(addr.ip, r->ip, sizeof addr.ip);
    addr.udp_port = r->udp_port;
    addr.tcp_port = r->tcp_port;
    ev->id = r->id;
    memberGetAddr(&addr, &ev->addr);
    ev->old_state = (gossipState)r->old_state;
    ev->new_state = (gossipState)r->new_state;
    ev->incarnation = r->incarnation;
    ev->at_ms = r->at_ms;
    ringPop(&g->events);
    return true;
}

/* ---- Queries ---------------------------------------------------------- */

uint32_t gossipSelfId(const gossip *g) {
    return g->self_id;
}

uint64_t gossipSelfIncarnation(const gossip *g) {
    return selfMember(g)->inc;
}

size_t gossipMemberCount(const gossip *g) {
    return g->mt.slot_used;
}

size_t gossipCountState(const gossip *g, gossipState s) {
    return membersCount(&g->mt, s);
}

bool gossipMemberAt(const gossip *g, size_t i, gossipMember *out) {
    uint32_t idx = membersAt(&g->mt, i);
    if (idx == GOSSIP_NO_INDEX) return false;
    memberToPublic(g, idx, out);
    return true;
}

bool gossipLookup(const gossip *g, uint32_t id, gossipMember *out) {
    uint32_t idx = membersFind(&g->mt, id);
    if (idx == GOSSIP_NO_INDEX) return false;
    memberToPublic(g, idx, out);
    return true;
}

uint32_t gossipHealthScore(const gossip *g) {
    return g->awareness;
}

const gossipStats *gossipGetStats(const gossip *g) {
    return &g->stats;
}

/* ---- Own record ------------------------------------------------------- */

int gossipUpdateMeta(gossip *g, uint64_t now, const uint8_t *meta, size_t meta_len) {
    if (g->leaving || meta_len > GOSSIP_META_MAX || (meta_len && !meta)) return -1;
    member *self = selfMember(g);
    memberSetMeta(self, meta, meta_len);
    if (self->inc < GOSSIP_INCARNATION_MAX) self->inc++;
    queueBroadcast(g, g->self_idx, g->self_id);
    emitEvent(g, g->self_idx, GOSSIP_ALIVE, GOSSIP_ALIVE, now);
    return 0;
}

int gossipJoin(gossip *g, uint64_t now, uint32_t peer_id, const gossipAddr *peer) {
    (void)now;
    if (g->leaving || peer_id == 0 || peer_id == g->self_id || !peer || !gossipAddrValid(peer))
        return -1;
    sendPing(g, peer, peer_id, ++g->seq, GOSSIP_PING_JOIN);
    return 0;
}

void gossipLeave(gossip *g, uint64_t now) {
    if (g->leaving) return;
    g->leaving = true;
    g->pr.active = false;
    setState(g, g->self_idx, GOSSIP_LEFT, now);
    emitEvent(g, g->self_idx, GOSSIP_ALIVE, GOSSIP_LEFT, now);
    queueBroadcast(g, g->self_idx, g->self_id);
    /* Tell a few members now rather than at the next gossip round. */
    g->next_gossip_ms = now;
    gossipRound(g, now);
}

bool gossipLeaveDone(const gossip *g) {
    if (!g->leaving) return false;
    return selfMember(g)->bcast_idx == GOSSIP_NO_INDEX || liveCount(g) == 0;
}

gossipForceLeaveResult gossipForceLeave(gossip *g, uint64_t now, uint32_t id) {
    if (id == g->self_id) return GOSSIP_FORCE_LEAVE_SELF;
    uint32_t idx = membersFind(&g->mt, id);
    if (idx == GOSSIP_NO_INDEX) return GOSSIP_FORCE_LEAVE_UNKNOWN;
    const member *m = membersGet(&g->mt, idx);
    if (m->state == GOSSIP_LEFT) return GOSSIP_FORCE_LEAVE_OK;
    if (m->state != GOSSIP_DEAD) return GOSSIP_FORCE_LEAVE_NOT_FAILED;
    applyDown(g, now, id, m->inc, g->self_id, GOSSIP_LEFT, false);
    return GOSSIP_FORCE_LEAVE_OK;
}

/* ---- Push-pull -------------------------------------------------------- */

bool gossipPickPushPullTarget(gossip *g, gossipMember *out) {
    const member *self = selfMember(g);
    uint32_t alive = membersCount(&g->mt, GOSSIP_ALIVE) - (self->state == GOSSIP_ALIVE ? 1 : 0);
    uint32_t dead = membersCount(&g->mt, GOSSIP_DEAD);
    if (alive + dead == 0) return false;
    uint32_t idx;
    if (gossipRngBelow(&g->rng, alive + dead) < dead) {
        idx = g->mt.bystate[GOSSIP_DEAD][gossipRngBelow(&g->rng, dead)];
    } else if (membersRandom(&g->mt, &g->rng, GOSSIP_MASK(GOSSIP_ALIVE), 0, 1, &idx) == 0) {
        return false;
    }
    memberToPublic(g, idx, out);
    return true;
}

uint64_t gossipPushPullIntervalMs(const gossip *g) {
    uint32_t n = liveCount(g);
    uint64_t base = g->cfg.push_pull_interval_ms;
    if (n <= 32) return base;
    return base * (uint64_t)(ceil(log2((double)n) - log2(32.0)) + 1.0);
}

void gossipEncodeState(const gossip *g, buf *out) {
    uint32_t count = g->mt.slot_used;
    bufReserve(out, GOSSIP_STATE_HEADER_BYTES + (size_t)count * 40);
    gossipEncodeStateHeader(out, g->self_id, count);
    gossipUpdate u;
    for (uint32_t i = 0; i < count; i++) {
        memberToUpdate(g, membersAt(&g->mt, i), &u);
        gossipEncodeStateEntry(out, &u);
    }
}

static int mergeState(gossip *g, uint64_t now, const uint8_t *data, size_t len, bool quiet) {
    gossipStateReader r;
    gossipDropReason why;
    if (gossipStateOpen(&r, data, len, &why) == -1 || r.sender == g->self_id) {
        g->stats.states_rejected++;
        return -1;
    }
    /* Size the table for the members that will be added, so a join into a
     * large cluster grows it once and exactly. */
    gossipUpdate e;
    size_t unknown = r.count;
    if (g->mt.slot_used > 1) {
        gossipStateReader pre = r;
        unknown = 0;
        while (gossipStateNext(&pre, &e)) {
            if (e.kind == GOSSIP_ALIVE && membersFind(&g->mt, e.node) == GOSSIP_NO_INDEX) unknown++;
        }
    }
    membersReserve(&g->mt, unknown);
    ringReserve(&g->events, g->events.len + unknown);

    while (gossipStateNext(&r, &e)) {
        switch (e.kind) {
        case GOSSIP_ALIVE:
            applyAlive(g, now, &e, quiet);
            break;
        case GOSSIP_SUSPECT:
        case GOSSIP_DEAD:
            /* The sender's DEAD may be stale: suspect, so the member can
             * still refute (memberlist's mergeState does the same). */
            applySuspect(g, now, e.node, e.incarnation, r.sender, quiet);
            break;
        case GOSSIP_LEFT:
            applyDown(g, now, e.node, e.incarnation, r.sender, GOSSIP_LEFT, quiet);
            break;
        default:
            break;
        }
    }
    g->stats.states_merged++;
    return 0;
}

int gossipMergeState(gossip *g, uint64_t now, const uint8_t *data, size_t len) {
    return mergeState(g, now, data, len, false);
}

int gossipRestoreState(gossip *g, uint64_t now, const uint8_t *data, size_t len) {
    return mergeState(g, now, data, len, true);
}
