/* Gossip membership bound to libuv; see cluster.h.
 *
 * The SWIM state machine (src/gossip) decides everything; this file only
 * moves bytes and time: it feeds datagrams and uv_now() in, sends what
 * comes out, wakes at the machine's next deadline, and turns membership
 * events into log lines and a persisted incarnation. With a cluster key,
 * every datagram and push-pull blob is sealed with XChaCha20-Poly1305;
 * the associated data names the channel, so a gossip datagram cannot be
 * replayed as a push-pull message. */
#include "server/cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <uv.h>

#include "crypt/crypt.h"
#include "gossip/gossip.h"
#include "net/peer.h"
#include "server/events.h"
#include "server/internal.h"
#include "util/log.h"

#define CLUSTER_TICK_MAX_MS       50
#define CLUSTER_JOIN_RETRY_MS     1000
#define CLUSTER_JOIN_RETRY_MAX_MS 5000
#define CLUSTER_LEAVE_MAX_MS      1500
#define CLUSTER_REJOIN_CHECK_MS   30000
#define CLUSTER_META_VERSION      1
#define INCARNATION_META_KEY      "gossip_incarnation"

static const uint8_t AD_GOSSIP[] = "dmkv-gossip-v1";
static const uint8_t AD_PUSHPULL[] = "dmkv-pushpull-v1";

/* A --peers entry to join through. */
typedef serverPeer seedPeer;

struct cluster {
    server *srv;
    uv_loop_t *loop;
    gossip *g;
    void (*on_dead)(void *ctx, uint32_t id); /* the coordinator: release a dead node's locks */
    bool met_same_mode;                      /* a member with our --use-mutex was seen: we belong */
    void *on_dead_ctx;
    uv_udp_t udp;
    uv_timer_t tick_timer;
    uv_timer_t pushpull_timer;
    uv_timer_t join_timer;
    seedPeer *seeds;
    size_t nseeds;
    uint32_t join_delay_ms;
    bool joined;
    int exchanges_in_flight;
    buf scratch;
    buf sealed;
    /* counters of our own, beside the gossip module's */
    uint64_t dropped_auth;
    uint64_t dropped_send;
    uint64_t dropped_oversized;
    uint64_t pushpull_ok, pushpull_failed, pushpull_served;
    int stopping; /* 0 running, 1 leaving, 2 closing */
    int handles_open;
    void (*stop_done)(void *ctx);
    void *stop_ctx;
    uint64_t leave_deadline;
};

static void clusterDrain(cluster *c);

static uint64_t nowMs(cluster *c) {
    uv_update_time(c->loop);
    return uv_now(c->loop);
}

static int parseSeeds(cluster *c, const char *list, uint32_t self_id, char *err, size_t errlen) {
    char *copy = xstrdup(list), *save = NULL;
    for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        serverPeer p;
        if (serverParsePeer(e, &p, err, errlen) != 0) {
            free(copy);
            return -1;
        }
        if (p.id == self_id) continue;
        c->seeds = xrealloc(c->seeds, (c->nseeds + 1) * sizeof *c->seeds);
        c->seeds[c->nseeds++] = p;
    }
    free(copy);
    return 0;
}

/* ---- sealing ---- */

static const uint8_t *sealIfKeyed(cluster *c, const uint8_t *ad, size_t adlen, const uint8_t *data,
                                  size_t len, size_t *out_len) {
    if (!c->srv->keys) {
        *out_len = len;
        return data;
    }
    bufClear(&c->sealed);
    cryptSeal(c->srv->keys, ad, adlen, data, len, &c->sealed);
    *out_len = c->sealed.len;
    return (const uint8_t *)c->sealed.data;
}

/* ---- UDP ---- */

static int addrToSockaddr(const gossipAddr *a, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(a->host, a->udp_port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(a->host, a->udp_port, (struct sockaddr_in6 *)ss) == 0) return 0;
    return -1;
}

static void onUdpAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    (void)h;
    (void)suggested;
    static char slab[65536];
    b->base = slab;
    b->len = sizeof slab;
}

static void onUdpRecv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags) {
    cluster *c = h->data;
    /* nread == 0 with a sender is an empty datagram: malformed, and
     * counted like any other (the decoder calls it truncated). */
    if (nread < 0 || !from || c->stopping == 2) return;
    if (flags & UV_UDP_PARTIAL) {
        c->dropped_oversized++; /* larger than the receive buffer */
        return;
    }
    gossipAddr fa = {0};
    if (from->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)from, fa.host, sizeof fa.host);
        fa.udp_port = ntohs(((const struct sockaddr_in *)from)->sin_port);
    } else if (from->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)from, fa.host, sizeof fa.host);
        fa.udp_port = ntohs(((const struct sockaddr_in6 *)from)->sin6_port);
    } else {
        return;
    }
    const uint8_t *data = (const uint8_t *)b->base;
    size_t len = (size_t)nread;
    if (c->srv->keys) {
        bufClear(&c->scratch);
        int idx = 0;
        if (cryptOpen(c->srv->keys, AD_GOSSIP, sizeof AD_GOSSIP - 1, data, len, &c->scratch,
                      &idx) != 0) {
            c->dropped_auth++;
            return;
        }
        data = (const uint8_t *)c->scratch.data;
        len = c->scratch.len;
    }
    gossipOnPacket(c->g, nowMs(c), data, len, &fa);
    clusterDrain(c);
}

static void sendPackets(cluster *c) {
    gossipPacket pkt;
    while (gossipNextPacket(c->g, &pkt)) {
        struct sockaddr_storage ss;
        if (addrToSockaddr(&pkt.to, &ss) != 0) {
            c->dropped_send++;
            continue;
        }
        size_t len;
        const uint8_t *data =
            sealIfKeyed(c, AD_GOSSIP, sizeof AD_GOSSIP - 1, pkt.data, pkt.len, &len);
        uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
        /* UDP may drop anyway; a full socket buffer is one more loss. */
        if (uv_udp_try_send(&c->udp, &ub, 1, (const struct sockaddr *)&ss) < 0) c->dropped_send++;
    }
}

/* ---- events ---- */

static void saveIncarnation(cluster *c, uint64_t inc) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(inc >> (8 * i));
    if (storeMetaPut(c->srv->st, INCARNATION_META_KEY, le, 8) != STORE_OK)
        logWarn("cannot save the gossip incarnation: %s", storeError(c->srv->st));
}

/* Every node of a cluster must run the same --use-mutex: a node that
 * meets the other mode before any member of its own is the newcomer, and
 * is refused (it stops with exit status 1). */
static int clusterCheckMode(cluster *c, uint32_t id) {
    gossipMember m;
    if (!gossipLookup(c->g, id, &m) || m.meta_len < 2 || m.meta[0] != CLUSTER_META_VERSION)
        return 0;
    if (m.meta[1] == (uint8_t)c->srv->cfg.use_mutex) {
        c->met_same_mode = true;
        return 0;
    }
    if (c->met_same_mode) {
        logError("member %" PRIu32
                 " runs --use-mutex %u but this cluster runs --use-mutex %d: it is refused",
                 id, (unsigned)m.meta[1], c->srv->cfg.use_mutex);
        return 0;
    }
    logError("refused: this cluster runs --use-mutex %u (member %" PRIu32
             ") but this node runs --use-mutex %d; "
             "every node must use the same mode",
             (unsigned)m.meta[1], id, c->srv->cfg.use_mutex);
    c->srv->exit_code = 1;
    if (c->srv->request_stop) c->srv->request_stop(c->srv);
    return -1;
}

static void handleEvents(cluster *c) {
    gossipEvent ev;
    uint32_t self = gossipSelfId(c->g);
    while (gossipNextEvent(c->g, &ev)) {
        if (ev.id == self) {
            saveIncarnation(c, ev.incarnation);
            if (ev.old_state != ev.new_state && ev.old_state != GOSSIP_NONE)
                logInfo("this node is %s (incarnation %" PRIu64 ")", gossipStateName(ev.new_state),
                        ev.incarnation);
            continue;
        }
        if (ev.old_state == ev.new_state) continue;
        if (ev.new_state == GOSSIP_ALIVE && clusterCheckMode(c, ev.id) != 0) return;
        if (ev.new_state == GOSSIP_DEAD && c->on_dead) c->on_dead(c->on_dead_ctx, ev.id);
        if (eventsEnabled(c->srv)) {
            char detail[96];
            int n = snprintf(detail, sizeof detail, "%" PRIu32 " %s->%s inc=%" PRIu64, ev.id,
                             gossipStateName(ev.old_state), gossipStateName(ev.new_state),
                             ev.incarnation);
            eventsLocal(c->srv, "MEMBER", NULL, 0, detail, (size_t)n);
        }
        enum logLevel lvl =
            (ev.new_state == GOSSIP_DEAD || ev.new_state == GOSSIP_SUSPECT) ? LOG_WARN : LOG_INFO;
        if (ev.new_state == GOSSIP_NONE)
            logMsg(lvl, "member %" PRIu32 " (%s:%u) forgotten", ev.id, ev.addr.host,
                   ev.addr.tcp_port);
        else
            logMsg(lvl, "member %" PRIu32 " (%s:%u) %s -> %s (incarnation %" PRIu64 ")", ev.id,
                   ev.addr.host, ev.addr.tcp_port, gossipStateName(ev.old_state),
                   gossipStateName(ev.new_state), ev.incarnation);
    }
}

static void onTick(uv_timer_t *t);

static void armTick(cluster *c) {
    if (c->stopping == 2) return;
    uint64_t now = nowMs(c);
    uint64_t next = gossipNextDeadline(c->g);
    uint64_t wait = next <= now ? 0 : next - now;
    if (wait > CLUSTER_TICK_MAX_MS) wait = CLUSTER_TICK_MAX_MS;
    uv_timer_start(&c->tick_timer, onTick, wait, 0);
}

static void clusterDrain(cluster *c) {
    sendPackets(c);
    handleEvents(c);
    armTick(c);
}

static void clusterFinishStop(cluster *c);

static void onTick(uv_timer_t *t) {
    cluster *c = t->data;
    uint64_t now = nowMs(c);
    gossipTick(c->g, now);
    sendPackets(c);
    handleEvents(c);
    if (c->stopping == 1 && (gossipLeaveDone(c->g) || now >= c->leave_deadline)) {
        clusterFinishStop(c);
        return;
    }
    armTick(c);
}

/* ---- push-pull over the peers' client ports ---- */

typedef struct exchange {
    cluster *c;
    netPeer *peer;
    uint32_t target_id; /* 0 for a seed known only by address */
    bool auth_sent;
} exchange;

static void onExchangeReply(void *ctx, const respReply *r, const char *err) {
    exchange *x = ctx;
    cluster *c = x->c;
    c->exchanges_in_flight--;
    const char *why = err;
    char msg[300];
    if (!why && r->type == RESP_ERROR) {
        snprintf(msg, sizeof msg, "%s", r->str);
        why = msg;
    }
    if (!why && r->type != RESP_BULK) why = "unexpected reply type";
    if (!why && c->stopping != 2) {
        const uint8_t *data = (const uint8_t *)r->str;
        size_t len = r->len;
        buf opened;
        bufInit(&opened);
        if (c->srv->keys) {
            int idx;
            if (cryptOpen(c->srv->keys, AD_PUSHPULL, sizeof AD_PUSHPULL - 1, data, len, &opened,
                          &idx) != 0) {
                c->dropped_auth++;
                why = "reply not sealed with our cluster key";
            }
            data = (const uint8_t *)opened.data;
            len = opened.len;
        }
        if (!why && gossipMergeState(c->g, nowMs(c), data, len) != 0)
            why = "malformed membership state";
        bufFree(&opened);
        if (!why) {
            c->pushpull_ok++;
            clusterDrain(c);
        }
    }
    if (why) {
        c->pushpull_failed++;
        logDebug("push-pull with %s failed: %s", netPeerAddress(x->peer), why);
    }
    netPeerClose(x->peer);
    free(x);
}

static void onAuthReply(void *ctx, const respReply *r, const char *err) {
    (void)ctx;
    (void)r;
    (void)err; /* the push-pull reply that follows says whether it worked */
}

static void startExchange(cluster *c, const char *host, int tcp_port, uint32_t target_id) {
    exchange *x = xcalloc(1, sizeof *x);
    x->c = c;
    x->target_id = target_id;
    netPeerOptions o = {
        .connect_timeout_ms = 1000, .call_timeout_ms = 3000, .max_reply_bytes = 16u << 20};
    x->peer = netPeerCreate(c->loop, host, tcp_port, &o);
    if (c->srv->cfg.requirepass[0]) {
        const char *av[2] = {"AUTH", c->srv->cfg.requirepass};
        netPeerCall(x->peer, 2, av, NULL, onAuthReply, NULL);
    }
    bufClear(&c->scratch);
    gossipEncodeState(c->g, &c->scratch);
    size_t len;
    const uint8_t *blob = sealIfKeyed(c, AD_PUSHPULL, sizeof AD_PUSHPULL - 1,
                                      (const uint8_t *)c->scratch.data, c->scratch.len, &len);
    const char *av[2] = {"DMKV.PUSHPULL", (const char *)blob};
    size_t lens[2] = {13, len};
    c->exchanges_in_flight++;
    netPeerCall(x->peer, 2, av, lens, onExchangeReply, x);
}

static void onPushPullTimer(uv_timer_t *t) {
    cluster *c = t->data;
    gossipMember m;
    if (c->exchanges_in_flight < 4 && gossipPickPushPullTarget(c->g, &m) && m.addr.tcp_port)
        startExchange(c, m.addr.host, m.addr.tcp_port, m.id);
    uv_timer_start(&c->pushpull_timer, onPushPullTimer, gossipPushPullIntervalMs(c->g), 0);
}

int clusterPushPull(cluster *c, const char *blob, size_t len, buf *reply, char *err,
                    size_t errlen) {
    const uint8_t *data = (const uint8_t *)blob;
    buf opened;
    bufInit(&opened);
    int rc = -1;
    if (c->srv->keys) {
        int idx;
        if (cryptOpen(c->srv->keys, AD_PUSHPULL, sizeof AD_PUSHPULL - 1, data, len, &opened,
                      &idx) != 0) {
            c->dropped_auth++;
            snprintf(err, errlen, "membership state not sealed with this cluster's key");
            goto out;
        }
        data = (const uint8_t *)opened.data;
        len = opened.len;
    }
    if (gossipMergeState(c->g, nowMs(c), data, len) != 0) {
        snprintf(err, errlen, "malformed membership state");
        goto out;
    }
    c->pushpull_served++;
    /* Merge first, then answer: the reply carries any refutation. */
    bufClear(&c->scratch);
    gossipEncodeState(c->g, &c->scratch);
    size_t slen;
    const uint8_t *sealed = sealIfKeyed(c, AD_PUSHPULL, sizeof AD_PUSHPULL - 1,
                                        (const uint8_t *)c->scratch.data, c->scratch.len, &slen);
    bufAppend(reply, sealed, slen);
    clusterDrain(c);
    rc = 0;
out:
    bufFree(&opened);
    return rc;
}

/* ---- joining ---- */

static void onJoinTimer(uv_timer_t *t) {
    cluster *c = t->data;
    size_t missing = 0;
    uint64_t now = nowMs(c);
    for (size_t i = 0; i < c->nseeds; i++) {
        seedPeer *sp = &c->seeds[i];
        gossipMember m;
        if (sp->id && gossipLookup(c->g, sp->id, &m) && m.state != GOSSIP_NONE) continue;
        missing++;
        if (c->exchanges_in_flight < 16) startExchange(c, sp->host, sp->tcp_port, sp->id);
        if (sp->udp_port) {
            gossipAddr a = {0};
            snprintf(a.host, sizeof a.host, "%s", sp->host);
            a.udp_port = (uint16_t)sp->udp_port;
            a.tcp_port = (uint16_t)sp->tcp_port;
            gossipJoin(c->g, now, sp->id, &a);
        }
    }
    clusterDrain(c);
    if (missing == 0) {
        if (!c->joined) logInfo("joined: every peer in --peers is known");
        c->joined = true;
        /* Keep watching: a peer forgotten after a long partition (dead
         * members are reaped) is joined again through --peers. */
        c->join_delay_ms = CLUSTER_REJOIN_CHECK_MS;
        uv_timer_start(&c->join_timer, onJoinTimer, c->join_delay_ms, 0);
        return;
    }
    c->join_delay_ms = c->join_delay_ms * 2 > CLUSTER_JOIN_RETRY_MAX_MS ? CLUSTER_JOIN_RETRY_MAX_MS
                                                                        : c->join_delay_ms * 2;
    uv_timer_start(&c->join_timer, onJoinTimer, c->join_delay_ms, 0);
}

/* ---- life cycle ---- */

static uint64_t loadIncarnation(server *s) {
    buf b;
    bufInit(&b);
    uint64_t inc = 0;
    if (storeMetaGet(s->st, INCARNATION_META_KEY, &b) == STORE_OK && b.len == 8)
        for (int i = 0; i < 8; i++) inc |= (uint64_t)(uint8_t)b.data[i] << (8 * i);
    bufFree(&b);
    storeCommit(s->st);
    return inc;
}

cluster *clusterStart(server *s, uv_loop_t *loop, char *err, size_t errlen) {
    cluster *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->loop = loop;
    bufInit(&c->scratch);
    bufInit(&c->sealed);
    if (parseSeeds(c, s->cfg.peers, s->cfg.id, err, errlen) != 0) goto fail;

    gossipAddr self = {0};
    snprintf(self.host, sizeof self.host, "%s", s->cfg.advertise);
    self.udp_port = (uint16_t)s->cfg.udp_port;
    self.tcp_port = (uint16_t)s->cfg.tcp_port;
    uint8_t meta[4] = {CLUSTER_META_VERSION, (uint8_t)s->cfg.use_mutex, 0, 0};
    /* A restarted node must outrank every rumour about its old self. */
    uint64_t inc = loadIncarnation(s) + 1;
    uint64_t seed = 0;
    randombytes_buf(&seed, sizeof seed);
    c->g = gossipCreate(&s->cfg.gossip, s->cfg.id, &self, meta, sizeof meta, inc, seed, nowMs(c));
    if (!c->g) {
        snprintf(err, errlen, "invalid gossip settings");
        goto fail;
    }
    saveIncarnation(c, inc);

    struct sockaddr_storage ss;
    gossipAddr bind_addr = self;
    snprintf(bind_addr.host, sizeof bind_addr.host, "%s", s->cfg.host);
    if (!strcmp(s->cfg.host, "localhost"))
        snprintf(bind_addr.host, sizeof bind_addr.host, "127.0.0.1");
    if (addrToSockaddr(&bind_addr, &ss) != 0) {
        snprintf(err, errlen, "cannot use %s as a gossip address", s->cfg.host);
        goto fail;
    }
    uv_udp_init(loop, &c->udp);
    c->udp.data = c;
    c->handles_open++;
    int rc = uv_udp_bind(&c->udp, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_udp_recv_start(&c->udp, onUdpAlloc, onUdpRecv);
    if (rc != 0) {
        snprintf(err, errlen, "cannot bind gossip port %s:%d (udp): %s", s->cfg.host,
                 s->cfg.udp_port, uv_strerror(rc));
        uv_close((uv_handle_t *)&c->udp, NULL);
        c->handles_open = 0;
        goto fail_g;
    }
    uv_timer_init(loop, &c->tick_timer);
    uv_timer_init(loop, &c->pushpull_timer);
    uv_timer_init(loop, &c->join_timer);
    c->tick_timer.data = c->pushpull_timer.data = c->join_timer.data = c;
    c->handles_open += 3;
    armTick(c);
    uv_timer_start(&c->pushpull_timer, onPushPullTimer, gossipPushPullIntervalMs(c->g), 0);
    c->join_delay_ms = CLUSTER_JOIN_RETRY_MS / 2;
    if (c->nseeds) uv_timer_start(&c->join_timer, onJoinTimer, 0, 0);
    logInfo("gossip on %s:%d/udp (incarnation %" PRIu64 ", %zu peer%s to join%s)", s->cfg.host,
            s->cfg.udp_port, inc, c->nseeds, c->nseeds == 1 ? "" : "s",
            s->keys ? ", encrypted" : ", not encrypted: set --cluster-key");
    return c;
fail_g:
    gossipFree(c->g);
fail:
    bufFree(&c->scratch);
    bufFree(&c->sealed);
    free(c->seeds);
    free(c);
    return NULL;
}

static void onHandleClosed(uv_handle_t *h) {
    cluster *c = h->data;
    if (--c->handles_open == 0 && c->stop_done) {
        void (*done)(void *) = c->stop_done;
        c->stop_done = NULL;
        done(c->stop_ctx);
    }
}

static void clusterFinishStop(cluster *c) {
    c->stopping = 2;
    uv_timer_stop(&c->tick_timer);
    uv_timer_stop(&c->pushpull_timer);
    uv_timer_stop(&c->join_timer);
    uv_udp_recv_stop(&c->udp);
    uv_close((uv_handle_t *)&c->udp, onHandleClosed);
    uv_close((uv_handle_t *)&c->tick_timer, onHandleClosed);
    uv_close((uv_handle_t *)&c->pushpull_timer, onHandleClosed);
    uv_close((uv_handle_t *)&c->join_timer, onHandleClosed);
}

void clusterStop(cluster *c, void (*done)(void *ctx), void *ctx) {
    if (c->stopping) return;
    c->stop_done = done;
    c->stop_ctx = ctx;
    c->stopping = 1;
    uint64_t now = nowMs(c);
    c->leave_deadline = now + CLUSTER_LEAVE_MAX_MS;
    uv_timer_stop(&c->pushpull_timer);
    uv_timer_stop(&c->join_timer);
    gossipLeave(c->g, now);
    sendPackets(c);
    handleEvents(c);
    if (gossipLeaveDone(c->g))
        clusterFinishStop(c);
    else
        armTick(c);
}

void clusterFree(cluster *c) {
    if (!c) return;
    gossipFree(c->g);
    bufFree(&c->scratch);
    bufFree(&c->sealed);
    free(c->seeds);
    free(c);
}

/* ---- views ---- */

static int memberCmp(const void *a, const void *b) {
    const gossipMember *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void clusterReplyMembers(cluster *c, buf *out) {
    size_t n = gossipMemberCount(c->g);
    gossipMember *ms = xcalloc(n ? n : 1, sizeof *ms);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (gossipMemberAt(c->g, i, &ms[k])) k++;
    qsort(ms, k, sizeof *ms, memberCmp);
    uint64_t now = nowMs(c);
    respAddArrayLen(out, (long long)k);
    for (size_t i = 0; i < k; i++) {
        gossipMember *m = &ms[i];
        respAddArrayLen(out, 8);
        respAddInt(out, m->id);
        respAddBulkStr(out, m->addr.host);
        respAddInt(out, m->addr.tcp_port);
        respAddInt(out, m->addr.udp_port);
        respAddBulkStr(out, gossipStateName(m->state));
        respAddInt(out, (long long)m->incarnation);
        respAddInt(out, (long long)(now >= m->since_ms ? now - m->since_ms : 0));
        respAddBulkStr(out, m->is_self ? "self" : "");
    }
    free(ms);
}

void clusterInfo(cluster *c, buf *out) {
    const gossipStats *st = gossipGetStats(c->g);
    bufPrintf(out,
              "members_alive:%zu\r\nmembers_suspect:%zu\r\nmembers_dead:%zu\r\nmembers_left:%zu\r\n"
              "incarnation:%" PRIu64 "\r\nhealth_score:%" PRIu32 "\r\nencrypted:%d\r\n"
              "probes_sent:%" PRIu64 "\r\nacks_received:%" PRIu64 "\r\nprobes_failed:%" PRIu64
              "\r\nindirect_probes_sent:%" PRIu64 "\r\nsuspicions_raised:%" PRIu64
              "\r\nsuspicions_refuted:%" PRIu64 "\r\nmembers_declared_dead:%" PRIu64
              "\r\ngossip_msgs_sent:%" PRIu64 "\r\ngossip_msgs_received:%" PRIu64
              "\r\npushpull_ok:%" PRIu64 "\r\npushpull_failed:%" PRIu64
              "\r\npushpull_served:%" PRIu64 "\r\ndropped_auth:%" PRIu64 "\r\ndropped_send:%" PRIu64
              "\r\ndropped_udp_oversized:%" PRIu64 "\r\n",
              gossipCountState(c->g, GOSSIP_ALIVE), gossipCountState(c->g, GOSSIP_SUSPECT),
              gossipCountState(c->g, GOSSIP_DEAD), gossipCountState(c->g, GOSSIP_LEFT),
              gossipSelfIncarnation(c->g), gossipHealthScore(c->g), c->srv->keys != NULL,
              st->probes_sent, st->acks_received, st->probes_failed, st->indirect_probes_sent,
              st->suspicions_raised, st->suspicions_refuted, st->members_declared_dead,
              st->msgs_sent, st->msgs_received, c->pushpull_ok, c->pushpull_failed,
              c->pushpull_served, c->dropped_auth, c->dropped_send, c->dropped_oversized);
    for (int r = 0; r < GOSSIP_DROP__COUNT; r++)
        bufPrintf(out, "dropped_%s:%" PRIu64 "\r\n", gossipDropReasonName((gossipDropReason)r),
                  st->dropped[r]);
}

void clusterForEachAlive(cluster *c, clusterMemberFn fn, void *ctx) {
    size_t n = gossipMemberCount(c->g);
    for (size_t i = 0; i < n; i++) {
        gossipMember m;
        if (!gossipMemberAt(c->g, i, &m) || m.is_self || m.state != GOSSIP_ALIVE ||
            !m.addr.tcp_port)
            continue;
        fn(ctx, m.id, m.addr.host, m.addr.tcp_port);
    }
}

void clusterForEachMember(cluster *c, clusterMemberFn fn, void *ctx) {
    size_t n = gossipMemberCount(c->g);
    for (size_t i = 0; i < n; i++) {
        gossipMember m;
        if (!gossipMemberAt(c->g, i, &m) || m.is_self || m.state == GOSSIP_LEFT) continue;
        fn(ctx, m.id, m.addr.host, m.addr.tcp_port);
    }
}

int clusterMemberState(cluster *c, uint32_t id, char *host, size_t hostlen, int *tcp_port) {
    gossipMember m;
    if (!gossipLookup(c->g, id, &m)) return -1;
    if (host) snprintf(host, hostlen, "%s", m.addr.host);
    if (tcp_port) *tcp_port = m.addr.tcp_port;
    return (int)m.state;
}

int clusterForceLeave(cluster *c, uint32_t id, char *err, size_t errlen) {
    gossipMember m;
    bool known = gossipLookup(c->g, id, &m);
    switch (gossipForceLeave(c->g, nowMs(c), id)) {
    case GOSSIP_FORCE_LEAVE_OK:
        break;
    case GOSSIP_FORCE_LEAVE_UNKNOWN:
        snprintf(err, errlen, "no member with id %" PRIu32, id);
        return -2;
    case GOSSIP_FORCE_LEAVE_SELF:
        snprintf(err, errlen, "node %" PRIu32 " is this node: stop it to make it leave", id);
        return -1;
    case GOSSIP_FORCE_LEAVE_NOT_FAILED:
        snprintf(err, errlen, "member %" PRIu32 " is %s; only a dead member can be forced to leave",
                 id, known ? gossipStateName(m.state) : "not dead");
        return -1;
    }
    if (known && m.state != GOSSIP_LEFT)
        logWarn("member %" PRIu32 " (%s:%u) forced to leave by an operator", id, m.addr.host,
                m.addr.tcp_port);
    clusterDrain(c);
    return 0;
}

void clusterOnMemberDead(cluster *c, void (*fn)(void *ctx, uint32_t id), void *ctx) {
    c->on_dead = fn;
    c->on_dead_ctx = ctx;
}
