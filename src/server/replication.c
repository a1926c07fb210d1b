/* Replication: push of local writes, anti-entropy, tombstone collection;
 * see replication.h and src/replicate/replicate.h.
 *
 * Push. Each local write is encoded, at once, into a pending batch for
 * every member that is alive at that moment. When the loop iteration's
 * store batch has committed, each pending batch becomes one DMKV.REPL call
 * on a persistent, pipelined link to that member, stamped with the node's
 * clocks (a send event) and sealed with the cluster key when there is one.
 * Without the mutex a member has at most REPL_WINDOW_BATCHES batches
 * unanswered: under load the writes of several iterations then travel,
 * and are committed by the receiver, together.
 * A receiver applies the records by the replicate module's rule in its own
 * store batch and answers only after that batch is durable. Pushes carry
 * the origin's write sequence numbers, so a receiver that gets them without
 * a gap raises its summary for that origin as it goes.
 *
 * Anti-entropy. Pushes are lost when a member is down, cut off or slow, or
 * when a link breaks. So every node also reads every live member's change
 * feed (DMKV.SYNC): it remembers, per member, where its last complete read
 * ended and asks for the rest, sending its summary so the member can skip
 * what the asker has already seen. A member that just became alive (a
 * join, a restart, the end of a partition) is read at once; the others in
 * turn, each at least every REPL_SYNC_INTERVAL_MS. The position is only
 * valid for one run of the member (its feed numbering restarts), and is
 * kept in memory only, so after either side restarts the first read is a
 * full one; that is also how a joining node receives the whole data set.
 * When a read is complete, the asker holds a version that dominates or
 * resolves each write the member had made itself, and raises its summary
 * for the member's own entry to the member's.
 *
 * Tombstones. A delete is a tombstone, kept until every member (alive or
 * dead, not those that left; the set is remembered across restarts) has
 * reported a summary that covers it, then removed. A record that arrives
 * for a key that is absent, and is covered by our own summary, is old news
 * about a collected key and is ignored. A merged tombstone (a delete that
 * won a conflict) also waits until every member has seen every write it
 * resolves, which its record lists (storeVersion.merged), and has read
 * this node's feed past it. */
#include "server/replication.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <uv.h>

#include "crypt/crypt.h"
#include "gossip/gossip.h"
#include "net/peer.h"
#include "replicate/replicate.h"
#include "server/cluster.h"
#include "server/events.h"
#include "server/internal.h"
#include "util/log.h"

#define REPL_PEER_MAX_QUEUED_BYTES (64u << 20)
#define REPL_MAX_PEERS             1024
#define REPL_SYNC_TICK_MS          250
#define REPL_SYNC_INTERVAL_MS      2000
#define REPL_SYNC_STARTS_PER_TICK  4
#define REPL_SYNC_PAGE_RECORDS     2000u
#define REPL_SYNC_PAGE_BYTES       (4u << 20)
#define REPL_SYNC_PAGE_SCAN        50000u /* feed entries examined per page */
#define REPL_GC_PER_TICK           2000u
#define REPL_LAG_SLOTS             256 /* send times of unacknowledged batches kept per peer */
/* Unserialized writes: while a member has this many batches unanswered,
 * the next waits and what comes meanwhile joins the one after it (fewer,
 * larger batches under load; no wait when the link is idle) ... */
#define REPL_WINDOW_BATCHES 1
/* ... unless that much is waiting. */
#define REPL_WINDOW_BYTES   (256u << 10)
#define REPL_PEERS_META_KEY "repl-peers"
#define REPL_OWED_META_KEY  "repl-recheck-owed"
/* A catch-up waits at most this long (longer than a feed request's call
 * timeout), so a member that moved or was forgotten cannot hold it. */
#define REPL_CATCH_UP_MAX_MS 6000

static const uint8_t AD_REPL[] = "dmkv-repl-v1";
static const uint8_t AD_SYNC_REQ[] = "dmkv-sync-req-v1";
static const uint8_t AD_SYNC_PAGE[] = "dmkv-sync-page-v1";
static const uint8_t AD_VERIFY_REQ[] = "dmkv-verify-req-v1";
static const uint8_t AD_VERIFY_ANS[] = "dmkv-verify-ans-v1";

typedef struct replPeer {
    uint32_t id;
    char host[64];
    int port;
    netPeer *link;
    buf pending; /* encoded records */
    uint32_t pending_count;
    buf stamped; /* the pending records as a batch with its send event's clocks */
    uint32_t stamped_count;
    uint64_t batches_sent, records_sent, failures, dropped, batches_held;
    /* Lag: when each unacknowledged batch was sent (replies come in order). */
    uint64_t sent_ms[REPL_LAG_SLOTS];
    uint32_t sent_head, sent_count;
    uint64_t last_ack_rtt_ms, max_ack_rtt_ms;
    /* Anti-entropy: reading this member's change feed. */
    bool alive, was_alive;
    bool sync_inflight, sync_wanted;
    uint64_t sync_started_ms, last_sync_ms;
    uint64_t generation;            /* replState.generation when the read began */
    uint64_t hw_epoch, hw_change;   /* where the last complete read ended */
    uint64_t cur_epoch, cur_change; /* the read in progress */
    vclock first_summary;           /* its summary at the first page of the read */
    bool have_first;
    uint64_t rounds, repaired, sync_failures;
    uint64_t reads_started, reads_ended; /* feed reads begun and ended, for catch-ups */
    /* Its summary as last reported, for tombstone collection. */
    vclock seen;
    bool have_seen;
    /* Where, in this run's feed, it has applied and committed everything,
     * as its last read request said (merged tombstones wait for it). */
    uint64_t fed_upto;
    bool member; /* in the cluster (not left) as of the last tick */
    /* It asked us to check our keys with it (it had forgotten us). */
    bool recheck_wanted;
} replPeer;

/* Writes waiting for every member's acknowledgement (serialized writes):
 * one group per flush, done when its last batch is answered. */
typedef struct ackWaiter {
    replicationAckedFn fn;
    void *ctx;
} ackWaiter;

typedef struct ackGroup {
    uint32_t outstanding;
    ackWaiter *w;
    size_t n;
} ackGroup;

/* A replicationCatchUp waiting for reads: per member, the read (numbered
 * by replPeer.reads_started) that must end. */
typedef struct catchUpNeed {
    uint32_t peer_id;
    uint64_t read;
} catchUpNeed;

typedef struct catchUpWaiter {
    struct catchUpWaiter *next;
    replicationCaughtUpFn fn;
    void *ctx;
    catchUpNeed *need;
    size_t nneed;
    uint64_t started_ms;
} catchUpWaiter;

typedef struct replState {
    server *srv;
    catchUpWaiter *catch_head;
    uint64_t catch_ups;
    ackWaiter *ack_pending; /* for the batch being built */
    size_t nack_pending, capack_pending;
    replPeer **peers;
    size_t npeers;
    uint64_t received_batches, applied, ignored, conflicts, rejected, stale, fenced;
    uint64_t sync_served, sync_pages_sent, tombstones_collected;
    uint64_t generation; /* advanced when a store batch fails */
    uint64_t epoch;      /* this run's change feed numbering */
    uint32_t rr;         /* round-robin position for periodic reads */
    uv_timer_t timer;
    bool timer_on;
    /* Checking what this node holds with a live member, once per run
     * (see replicate.h): where the pass is and what it found. */
    bool verify_done, verify_inflight, verify_begun, verify_more;
    buf verify_after;      /* the last key checked (when begun) */
    buf verify_next_after; /* the last key of the page in flight */
    buf verify_page;       /* the page in flight, as request entries */
    uint32_t verify_count;
    uint64_t verify_checked, verify_removed, verify_failures, verify_rechecks;
    /* The highest of this node's own write numbers a member reported
     * having seen, when above this node's own count (its data directory
     * is new or older than the cluster's record of it): writes wait
     * until a read of that member brings them back. 0 otherwise. */
    uint64_t self_behind;
    /* Member ids ever seen (not left), saved: tombstones wait for all. */
    uint32_t *known;
    size_t nknown;
    bool known_dirty;
    /* Members forgotten here (they left, or were forced to), saved: one
     * may come back holding keys whose deletes were collected meanwhile,
     * so our pages ask it to check its keys with us, until it does. */
    uint32_t *owed;
    size_t nowed;
    buf scratch;
} replState;

static void replLoadKnown(replState *r);

/* The state, made on first use; NULL once the node is shutting down (what
 * arrives then is neither replicated nor applied). */
static replState *replOf(server *s) {
    if (!s->repl && s->stopping) return NULL;
    if (!s->repl) {
        replState *r = xcalloc(1, sizeof *r);
        r->srv = s;
        bufInit(&r->scratch);
        bufInit(&r->verify_after);
        bufInit(&r->verify_next_after);
        bufInit(&r->verify_page);
        while (r->epoch == 0) randombytes_buf(&r->epoch, sizeof r->epoch);
        s->repl = r;
        replLoadKnown(r);
    }
    return s->repl;
}

static replPeer *replPeerFind(replState *r, uint32_t id) {
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i]->id == id) return r->peers[i];
    return NULL;
}

static bool idsHas(const uint32_t *v, size_t n, uint32_t id) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == id) return true;
    return false;
}

static bool idsRemove(uint32_t *v, size_t *n, uint32_t id) {
    for (size_t i = 0; i < *n; i++) {
        if (v[i] != id) continue;
        v[i] = v[--*n];
        return true;
    }
    return false;
}

static void idsAdd(uint32_t **v, size_t *n, uint32_t id) {
    if (idsHas(*v, *n, id)) return;
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = id;
}

static bool replKnows(const replState *r, uint32_t id) {
    return idsHas(r->known, r->nknown, id);
}

static replPeer *replPeerFor(replState *r, uint32_t id, const char *host, int port) {
    replPeer *p = replPeerFind(r, id);
    if (p) {
        if (strcmp(p->host, host) != 0 || p->port != port) { /* the member moved */
            if (p->link) netPeerClose(p->link);
            p->link = NULL;
            p->sent_count = 0;
            p->sync_inflight = false;
            p->generation = 0;
            snprintf(p->host, sizeof p->host, "%s", host);
            p->port = port;
        }
        return p;
    }
    if (r->npeers >= REPL_MAX_PEERS) return NULL;
    r->peers = xrealloc(r->peers, (r->npeers + 1) * sizeof *r->peers);
    p = xcalloc(1, sizeof *p);
    r->peers[r->npeers++] = p;
    p->id = id;
    snprintf(p->host, sizeof p->host, "%s", host);
    p->port = port;
    bufInit(&p->pending);
    bufInit(&p->stamped);
    vclockInit(&p->first_summary);
    vclockInit(&p->seen);
    return p;
}

static void onAuthIgnored(void *ctx, const respReply *r, const char *err) {
    (void)ctx;
    (void)r;
    (void)err;
}

static netPeer *replLink(server *s, replPeer *p) {
    if (!p->link) {
        netPeerOptions o = {.connect_timeout_ms = 1000, .call_timeout_ms = 5000};
        p->link = netPeerCreate(s->loop, p->host, p->port, &o);
        p->sent_count = 0;
        if (s->cfg.requirepass[0]) {
            const char *av[2] = {"AUTH", s->cfg.requirepass};
            netPeerCall(p->link, 2, av, NULL, onAuthIgnored, NULL);
        }
    }
    return p->link;
}

/* Seals blob with the cluster key when there is one; returns what to send. */
static void replSeal(server *s, const uint8_t *ad, size_t adlen, const buf *plain, buf *sealed,
                     const char **out, size_t *outlen) {
    if (s->keys) {
        cryptSeal(s->keys, ad, adlen, (const uint8_t *)plain->data, plain->len, sealed);
        *out = sealed->data;
        *outlen = sealed->len;
    } else {
        *out = plain->data;
        *outlen = plain->len;
    }
}

/* Sends cmd with the (sealed) message on the member's link. */
static void replCall(server *s, replPeer *p, const char *cmd, const uint8_t *ad, size_t adlen,
                     const buf *plain, netPeerReplyFn fn, void *ctx) {
    buf sealed;
    bufInit(&sealed);
    const char *blob;
    size_t blen;
    replSeal(s, ad, adlen, plain, &sealed, &blob, &blen);
    const char *av[2] = {cmd, blob};
    size_t al[2] = {strlen(cmd), blen};
    netPeerCall(replLink(s, p), 2, av, al, fn, ctx);
    bufFree(&sealed);
}

/* ---- push ---- */

typedef struct queueCtx {
    replState *r;
    const void *key;
    size_t klen;
    const storeRecord *rec;
} queueCtx;

static void queueForMember(void *ctx, uint32_t id, const char *host, int tcp_port) {
    queueCtx *q = ctx;
    replPeer *p = replPeerFor(q->r, id, host, tcp_port);
    if (!p) return;
    if (p->pending.len + (p->link ? netPeerQueuedBytes(p->link) : 0) > REPL_PEER_MAX_QUEUED_BYTES) {
        p->dropped++; /* anti-entropy delivers it later */
        return;
    }
    replBatchAdd(&p->pending, q->key, q->klen, q->rec);
    p->pending_count++;
}

void replicationQueue(server *s, const void *key, size_t klen, const storeRecord *rec) {
    replState *r = s->cl ? replOf(s) : NULL;
    if (!r) return;
    queueCtx q = {r, key, klen, rec};
    clusterForEachAlive(s->cl, queueForMember, &q);
}

static void ackGroupFire(server *s, ackGroup *g, const char *err) {
    for (size_t i = 0; i < g->n; i++) g->w[i].fn(s, g->w[i].ctx, err);
    free(g->w);
    free(g);
}

void replicationOnAcked(server *s, replicationAckedFn fn, void *ctx) {
    replState *r = replOf(s);
    if (!r) {
        fn(s, ctx, "the node is shutting down");
        return;
    }
    if (r->nack_pending == r->capack_pending) {
        r->capack_pending = r->capack_pending ? r->capack_pending * 2 : 8;
        r->ack_pending = xrealloc(r->ack_pending, r->capack_pending * sizeof *r->ack_pending);
    }
    r->ack_pending[r->nack_pending++] = (ackWaiter){fn, ctx};
}

/* Takes the waiters of the batch just committed (or failed) into a group. */
static ackGroup *ackGroupTake(replState *r) {
    if (!r->nack_pending) return NULL;
    ackGroup *g = xcalloc(1, sizeof *g);
    g->w = r->ack_pending;
    g->n = r->nack_pending;
    r->ack_pending = NULL;
    r->nack_pending = r->capack_pending = 0;
    return g;
}

void replicationDiscard(server *s) {
    replState *r = s->repl;
    if (!r) return;
    ackGroup *g = ackGroupTake(r);
    if (g) ackGroupFire(s, g, "the write batch failed");
    /* Records applied in the failed batch are gone: every read position
     * that counted them is void, so the next reads start over. */
    r->generation++;
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = r->peers[i];
        bufClear(&p->pending);
        p->pending_count = 0;
        bufClear(&p->stamped);
        p->stamped_count = 0;
        p->hw_epoch = p->hw_change = 0;
        p->sync_wanted = true;
    }
}

typedef struct sendCtx {
    server *s;
    uint32_t peer_id;
    uint32_t records;
    ackGroup *group;
} sendCtx;

static void onReplReply(void *ctx, const respReply *reply, const char *err) {
    sendCtx *x = ctx;
    replState *r = x->s->repl;
    replPeer *p = r ? replPeerFind(r, x->peer_id) : NULL;
    if (p) {
        if (p->sent_count) {
            uint64_t rtt = timeMonoMs() - p->sent_ms[p->sent_head];
            p->sent_head = (p->sent_head + 1) % REPL_LAG_SLOTS;
            p->sent_count--;
            p->last_ack_rtt_ms = rtt;
            if (rtt > p->max_ack_rtt_ms) p->max_ack_rtt_ms = rtt;
        }
        if (err || reply->type == RESP_ERROR) {
            p->failures++;
            p->sync_wanted = true; /* what was lost comes back through anti-entropy */
            if (p->failures == 1 || p->failures % 100 == 0)
                logWarn("replication to node %" PRIu32 " failed: %s (%" PRIu32
                        " writes left to anti-entropy)",
                        p->id, err ? err : reply->str, x->records);
        } else {
            p->records_sent += x->records;
        }
    }
    /* A member that failed to answer is not live: it is left to
     * anti-entropy, and does not hold the write back. */
    if (x->group && --x->group->outstanding == 0) ackGroupFire(x->s, x->group, NULL);
    free(x);
}

/* A member's pending writes wait while its window is full. Writes someone
 * waits on (serialized writes) never do. */
static bool replHeld(server *s, const replState *r, const replPeer *p) {
    return !s->cfg.use_mutex && r->nack_pending == 0 && p->sent_count >= REPL_WINDOW_BATCHES &&
           p->pending.len < REPL_WINDOW_BYTES;
}

/* Before the commit: each member's pending writes become one batch, and
 * its send event ticks the clock now, so that the same commit saves the
 * tick (a tick after it would need a commit of its own). */
void replicationStamp(server *s) {
    replState *r = s->repl;
    if (!r) return;
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = r->peers[i];
        if (!p->pending_count || p->stamped_count) continue;
        if (replHeld(s, r, p)) {
            p->batches_held++;
            continue;
        }
        /* The send is an event: tick, and carry the clocks. */
        char msg_id[REPL_MAX_MSG_ID];
        nodeClockTick(&s->clock);
        s->clock_dirty = true;
        snprintf(msg_id, sizeof msg_id, "%" PRIu32 ":%" PRIu64, s->cfg.id,
                 vclockGet(&s->clock.vc, s->cfg.id));
        char detail[48];
        int dn = snprintf(detail, sizeof detail, "to %" PRIu32 ": %" PRIu32 " writes", p->id,
                          p->pending_count);
        eventsAtCurrentClock(s, "REPL_SEND", NULL, 0, detail, (size_t)dn, msg_id);
        bufClear(&p->stamped);
        size_t at = replBatchBegin(&p->stamped, s->cfg.id, s->clock.lamport, &s->clock.vc, msg_id);
        bufAppend(&p->stamped, p->pending.data, p->pending.len);
        replBatchEnd(&p->stamped, at, p->pending_count);
        p->stamped_count = p->pending_count;
        bufClear(&p->pending);
        p->pending_count = 0;
    }
}

bool replicationWaiting(server *s) {
    replState *r = s->repl;
    if (!r) return false;
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i]->pending_count && !replHeld(s, r, r->peers[i])) return true;
    return false;
}

void replicationFlush(server *s) {
    replState *r = s->repl;
    if (!r) return;
    ackGroup *g = ackGroupTake(r);
    if (g) {
        g->outstanding = 1; /* held until every send below is counted */
    }
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = r->peers[i];
        if (!p->stamped_count) continue;
        sendCtx *x = xcalloc(1, sizeof *x);
        x->s = s;
        x->peer_id = p->id;
        x->records = p->stamped_count;
        x->group = g;
        if (g) g->outstanding++;
        p->batches_sent++;
        if (p->sent_count < REPL_LAG_SLOTS) {
            p->sent_ms[(p->sent_head + p->sent_count) % REPL_LAG_SLOTS] = timeMonoMs();
            p->sent_count++;
        }
        replCall(s, p, "DMKV.REPL", AD_REPL, sizeof AD_REPL - 1, &p->stamped, onReplReply, x);
        bufClear(&p->stamped);
        p->stamped_count = 0;
    }
    if (g && --g->outstanding == 0) ackGroupFire(s, g, NULL);
}

/* ---- applying records (push and anti-entropy) ---- */

typedef struct applyResult {
    uint64_t changed; /* records that changed what this node holds */
    bool failed;      /* the store failed: the batch is lost */
} applyResult;

/* Applies a batch's records by the rule. push_sender is the node whose own
 * writes these are (a push), or 0 (an anti-entropy page). */
static applyResult replApply(server *s, replState *r, replBatchReader *rd, uint32_t push_sender) {
    applyResult res = {0, false};
    const uint8_t *k;
    size_t kl;
    storeRecord in;
    buf old_vc, old_merged, old_val;
    replResolveBufs merged;
    bufInit(&old_vc);
    bufInit(&old_merged);
    bufInit(&old_val);
    replResolveBufsInit(&merged);
    while (replBatchNext(rd, &k, &kl, &in) == 1) {
        uint64_t known = vclockGet(&s->summary, in.ver.origin);
        bool covered = in.ver.seq && in.ver.seq <= known;
        /* A gap-free run of the sender's own writes raises its summary. */
        if (push_sender && in.ver.origin == push_sender && in.ver.seq == known + 1) {
            vclockSet(&s->summary, push_sender, in.ver.seq);
            s->summary_dirty = true;
        }
        storeRecord cur;
        int rc = storeGet(s->st, k, kl, &cur);
        if (rc == STORE_ERR) {
            res.failed = true;
            break;
        }
        if (rc == STORE_NOTFOUND && covered) {
            /* Seen before, and its key is gone: a collected tombstone
             * superseded it. */
            r->stale++;
            continue;
        }
        /* A write under the mutex older than the one held is refused. */
        if (rc == STORE_OK && in.ver.token && cur.ver.token > in.ver.token) {
            r->fenced++;
            continue;
        }
        replDecision d = replDecide(rc == STORE_OK ? &cur.ver : NULL, &in.ver);
        if (d == REPL_KEEP) {
            r->ignored++;
            continue;
        }
        storeRecord put = in;
        if (d == REPL_CONFLICT) {
            /* Copy what is stored: the put may move it. */
            storeRecord stored = cur;
            bufClear(&old_vc);
            bufAppend(&old_vc, cur.ver.vclock, cur.ver.vclock_len);
            bufClear(&old_merged);
            bufAppend(&old_merged, cur.ver.merged, cur.ver.merged_len);
            bufClear(&old_val);
            bufAppend(&old_val, cur.value, cur.value_len);
            stored.ver.vclock = (const uint8_t *)old_vc.data;
            stored.ver.merged = (const uint8_t *)old_merged.data;
            stored.value = old_val.data;
            r->conflicts++;
            replResolve(&stored, &in, &put, &merged);
            char detail[160];
            int dn = snprintf(detail, sizeof detail,
                              "node%" PRIu32 "@L%" PRIu64 " || node%" PRIu32 "@L%" PRIu64
                              " -> node%" PRIu32,
                              stored.ver.origin, stored.ver.lamport, in.ver.origin, in.ver.lamport,
                              put.ver.origin);
            eventsLocal(s, "CONFLICT", (const char *)k, kl, detail, (size_t)dn);
        }
        if (storePut(s->st, k, kl, &put) != STORE_OK) {
            res.failed = true;
            break;
        }
        r->applied++;
        res.changed++;
        if (eventsEnabled(s))
            eventsLocal(s, "APPLY_LOCAL", (const char *)k, kl, put.value, put.value_len);
    }
    bufFree(&old_vc);
    bufFree(&old_merged);
    bufFree(&old_val);
    replResolveBufsFree(&merged);
    return res;
}

/* Unseals a peer message in place of data/len; -1 when it is not sealed
 * with this cluster's key. */
static int replUnseal(server *s, const uint8_t *ad, size_t adlen, const uint8_t **data, size_t *len,
                      buf *opened) {
    if (!s->keys) return 0;
    if (cryptOpen(s->keys, ad, adlen, *data, *len, opened, NULL) != 0) return -1;
    *data = (const uint8_t *)opened->data;
    *len = opened->len;
    return 0;
}

/* Opens a node-to-node request's payload (argv[1]): the replication
 * state, with data/len at the plaintext (in opened when it came sealed);
 * NULL after replying with the error. `what` names the message. */
static replState *peerRequestOpen(client *c, const uint8_t *ad, size_t adlen, const char *what,
                                  const uint8_t **data, size_t *len, buf *opened) {
    server *s = c->srv;
    replState *r = replOf(s);
    if (!r) {
        respAddError(c->out, "ERR the node is shutting down");
        return NULL;
    }
    *data = (const uint8_t *)c->argv[1].p;
    *len = c->argv[1].len;
    if (replUnseal(s, ad, adlen, data, len, opened) != 0) {
        r->rejected++;
        respAddErrorFmt(c->out, "ERR %s not sealed with this cluster's key", what);
        return NULL;
    }
    return r;
}

/* Serving a peer's read: committed data only, since what is in the open
 * batch could still be lost and the asker would then hold versions nobody
 * else has. False after replying with the error. */
static bool peerServeCommitted(client *c, const char *what) {
    if (serverCommitNow(c->srv) == STORE_OK) return true;
    respAddErrorFmt(c->out, "ERR cannot read the %s: %s", what, storeError(c->srv->st));
    return false;
}

/* Checks every record of the batch before any is applied. */
static bool replBatchWellFormed(const replBatchReader *rd) {
    replBatchReader probe = *rd;
    const uint8_t *k;
    size_t kl;
    storeRecord rec;
    int rc;
    while ((rc = replBatchNext(&probe, &k, &kl, &rec)) == 1) {
    }
    return rc == 0;
}

void cmdRepl(client *c) {
    server *s = c->srv;
    const uint8_t *data;
    size_t len;
    buf opened;
    bufInit(&opened);
    replHeader h;
    vclockInit(&h.vc);
    replBatchReader rd;
    replState *r =
        peerRequestOpen(c, AD_REPL, sizeof AD_REPL - 1, "replication batch", &data, &len, &opened);
    if (!r) goto out;
    if (replBatchOpen(data, len, &h, &rd) != 0 || h.sender == s->cfg.id ||
        !replBatchWellFormed(&rd)) {
        r->rejected++;
        respAddError(c->out, "ERR malformed replication batch");
        goto out;
    }
    r->received_batches++;
    nodeClockReceive(&s->clock, h.lamport, &h.vc);
    s->clock_dirty = true;
    eventsAtCurrentClock(s, "REPL_RECV", NULL, 0, NULL, 0, h.msg_id[0] ? h.msg_id : NULL);
    serverWriteBegin(c);
    applyResult res = replApply(s, r, &rd, h.sender);
    if (res.failed)
        serverStoreFailed(c);
    else
        serverReplyOk(c);
out:
    vclockFree(&h.vc);
    bufFree(&opened);
}

/* ---- anti-entropy: serving a read of our change feed ---- */

typedef struct pageCtx {
    server *s;
    const vclock *asker_summary;
    uint32_t asker;
    buf *out;
    uint32_t count, max_records;
    uint32_t examined;
    uint64_t last_change;
    bool full;
} pageCtx;

static int pageCollect(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    pageCtx *pc = ctx;
    pc->examined++;
    pc->last_change = rec->ver.change_seq;
    /* Skip what the asker has already seen: the writes its summary covers
     * (its own included: a node whose data directory was replaced gets
     * its earlier writes back). A merge is new to anyone who has not made
     * it. */
    bool seen = rec->ver.seq && rec->ver.seq <= vclockGet(pc->asker_summary, rec->ver.origin);
    if (!seen || (rec->ver.flags & STORE_FLAG_MERGED)) {
        replBatchAdd(pc->out, key, klen, rec);
        pc->count++;
    }
    if (pc->count >= pc->max_records || pc->out->len >= REPL_SYNC_PAGE_BYTES ||
        pc->examined >= REPL_SYNC_PAGE_SCAN) {
        pc->full = true;
        return 1;
    }
    return 0;
}

/* A member's summary says how many of this node's own writes it has seen;
 * more than this node has made means its data directory lost them. */
static void replCheckSelf(server *s, replState *r, uint32_t id, const vclock *summary) {
    uint64_t theirs = vclockGet(summary, s->cfg.id), mine = vclockGet(&s->summary, s->cfg.id);
    if (theirs <= mine || theirs <= r->self_behind) return;
    if (!r->self_behind)
        logWarn("node %" PRIu32 " has seen %" PRIu64 " writes of this node, which holds %" PRIu64
                ": the data directory is new or older than the cluster's copy; writes wait "
                "until this node has read its earlier writes back",
                id, theirs, mine);
    r->self_behind = theirs;
    replPeer *p = replPeerFind(r, id);
    if (p) p->sync_wanted = true;
}

static void replRememberSeen(replState *r, uint32_t id, const vclock *summary, uint64_t fed_upto) {
    replPeer *p = replPeerFind(r, id);
    if (!p) return;
    vclockCopy(&p->seen, summary);
    p->have_seen = true;
    p->fed_upto = fed_upto;
}

/* DMKV.SYNC <request>: one page of our change feed after the asker's
 * position, without what its summary says it has seen. */
void cmdSync(client *c) {
    server *s = c->srv;
    const uint8_t *data;
    size_t len;
    buf opened, page, sealed;
    bufInit(&opened);
    bufInit(&page);
    bufInit(&sealed);
    replSyncRequest q;
    vclockInit(&q.summary);
    replState *r = peerRequestOpen(c, AD_SYNC_REQ, sizeof AD_SYNC_REQ - 1, "anti-entropy request",
                                   &data, &len, &opened);
    if (!r) goto out;
    if (replSyncRequestDecode(data, len, &q) != 0 || q.requester == s->cfg.id) {
        r->rejected++;
        respAddError(c->out, "ERR malformed anti-entropy request");
        goto out;
    }
    if (!peerServeCommitted(c, "change feed")) goto out;
    /* A position in another epoch was in our feed before a restart
     * renumbered it: the read starts over. */
    uint64_t from = q.epoch == r->epoch ? q.after : 0;
    replRememberSeen(r, q.requester, &q.summary, from);
    replCheckSelf(s, r, q.requester, &q.summary);
    /* Only once it counts as a member here again: from then on no delete
     * is collected here without it, so its check with us is complete. */
    replSyncPage pg = {.done = true,
                       .epoch = r->epoch,
                       .recheck =
                           idsHas(r->owed, r->nowed, q.requester) && replKnows(r, q.requester)};
    vclockInit(&pg.summary);
    vclockCopy(&pg.summary, &s->summary);
    /* The records first: only a page that carries some is a send event
     * (a tick of the clock, which numbers this node's events). */
    buf records, batch;
    bufInit(&records);
    bufInit(&batch);
    pageCtx pc = {.s = s,
                  .asker_summary = &q.summary,
                  .asker = q.requester,
                  .out = &records,
                  .max_records = q.max_records,
                  .last_change = from};
    if (storeScanChanges(s->st, from, pageCollect, &pc) != STORE_OK) {
        respAddErrorFmt(c->out, "ERR cannot read the change feed: %s", storeError(s->st));
        vclockFree(&pg.summary);
        bufFree(&records);
        bufFree(&batch);
        goto out;
    }
    char msg_id[REPL_MAX_MSG_ID] = "";
    if (pc.count) {
        nodeClockTick(&s->clock);
        s->clock_dirty = true;
        snprintf(msg_id, sizeof msg_id, "%" PRIu32 ":%" PRIu64, s->cfg.id,
                 vclockGet(&s->clock.vc, s->cfg.id));
    }
    size_t at = replBatchBegin(&batch, s->cfg.id, s->clock.lamport, &s->clock.vc, msg_id);
    bufAppend(&batch, records.data, records.len);
    replBatchEnd(&batch, at, pc.count);
    pg.done = !pc.full;
    pg.next = pc.last_change;
    replSyncPageEncodeHead(&pg, &page);
    bufAppend(&page, batch.data, batch.len);
    vclockFree(&pg.summary);
    bufFree(&records);
    bufFree(&batch);
    r->sync_pages_sent++;
    if (pc.count) {
        char detail[64];
        int dn = snprintf(detail, sizeof detail, "anti-entropy to %" PRIu32 ": %" PRIu32 " records",
                          q.requester, pc.count);
        eventsAtCurrentClock(s, "REPL_SEND", NULL, 0, detail, (size_t)dn, msg_id);
    }
    const char *blob;
    size_t blen;
    replSeal(s, AD_SYNC_PAGE, sizeof AD_SYNC_PAGE - 1, &page, &sealed, &blob, &blen);
    respAddBulk(c->out, blob, blen);
out:
    vclockFree(&q.summary);
    bufFree(&opened);
    bufFree(&page);
    bufFree(&sealed);
}

/* ---- anti-entropy: reading a member's change feed ---- */

typedef struct syncCtx {
    server *s;
    uint32_t peer_id;
    uint64_t generation;
} syncCtx;

static void syncRequest(server *s, replState *r, replPeer *p);

static void catchUpOnRead(server *s, replState *r, replPeer *p);

static void syncEnd(server *s, replPeer *p, bool ok) {
    p->sync_inflight = false;
    p->last_sync_ms = timeMonoMs();
    p->reads_ended = p->reads_started;
    if (!ok) {
        p->sync_failures++;
        p->sync_wanted = true;
    }
    replState *r = s->repl;
    if (r && r->catch_head) catchUpOnRead(s, r, p);
}

static void onSyncPage(void *ctx, const respReply *reply, const char *err) {
    syncCtx *x = ctx;
    server *s = x->s;
    replState *r = s->repl;
    replPeer *p = r ? replPeerFind(r, x->peer_id) : NULL;
    uint64_t generation = x->generation;
    free(x);
    if (!p || !p->sync_inflight) return;
    if (err || reply->type != RESP_BULK) {
        if (p->sync_failures == 0 || p->sync_failures % 100 == 99)
            logWarn("anti-entropy with node %" PRIu32 " failed: %s", p->id,
                    err                         ? err
                    : reply->type == RESP_ERROR ? reply->str
                                                : "unexpected reply");
        syncEnd(s, p, false);
        return;
    }
    if (generation != r->generation) { /* a batch failed meanwhile: start over later */
        syncEnd(s, p, false);
        return;
    }
    const uint8_t *data = (const uint8_t *)reply->str;
    size_t len = reply->len;
    buf opened;
    bufInit(&opened);
    replSyncPage pg;
    vclockInit(&pg.summary);
    replHeader h;
    vclockInit(&h.vc);
    replBatchReader rd;
    size_t at = 0;
    bool ok = replUnseal(s, AD_SYNC_PAGE, sizeof AD_SYNC_PAGE - 1, &data, &len, &opened) == 0 &&
              replSyncPageDecodeHead(data, len, &pg, &at) == 0 &&
              replBatchOpen(data + at, len - at, &h, &rd) == 0 && h.sender == p->id &&
              replBatchWellFormed(&rd);
    if (!ok) {
        r->rejected++;
        logWarn("anti-entropy with node %" PRIu32 ": malformed or unsealed page", p->id);
        syncEnd(s, p, false);
        goto out;
    }
    if (rd.left) {
        nodeClockReceive(&s->clock, h.lamport, &h.vc);
        s->clock_dirty = true;
        eventsAtCurrentClock(s, "REPL_RECV", NULL, 0, NULL, 0, h.msg_id[0] ? h.msg_id : NULL);
    }
    if (p->cur_epoch != pg.epoch) { /* its feed was renumbered: this page starts a full read */
        p->cur_epoch = pg.epoch;
        p->have_first = false;
    }
    if (pg.recheck && !p->recheck_wanted) {
        logInfo("node %" PRIu32 " collected deletes while this node was out of the cluster: "
                "checking this node's keys with it",
                p->id);
        p->recheck_wanted = true;
    }
    if (!p->have_first) {
        vclockCopy(&p->first_summary, &pg.summary);
        p->have_first = true;
    }
    vclockCopy(&p->seen, &pg.summary);
    p->have_seen = true;
    replCheckSelf(s, r, p->id, &pg.summary);
    applyResult res = replApply(s, r, &rd, 0);
    if (res.failed) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", storeError(s->st));
        serverCommitNow(s); /* runs the batch-failure handling */
        syncEnd(s, p, false);
        goto out;
    }
    p->repaired += res.changed;
    p->cur_change = pg.next;
    if (!pg.done) {
        syncRequest(s, r, p);
        goto out;
    }
    /* A complete read: we hold what it had seen of its own writes. */
    p->hw_epoch = p->cur_epoch;
    p->hw_change = p->cur_change;
    uint64_t theirs = vclockGet(&p->first_summary, p->id);
    if (theirs > vclockGet(&s->summary, p->id)) {
        vclockSet(&s->summary, p->id, theirs);
        s->summary_dirty = true;
    }
    /* Likewise for this node's own writes, which a node whose data
     * directory was replaced has just read back: its next write is
     * numbered after every one the member had seen. */
    uint64_t mine = vclockGet(&p->first_summary, s->cfg.id);
    if (mine > vclockGet(&s->summary, s->cfg.id)) {
        logInfo("read this node's writes up to %" PRIu64 " back from node %" PRIu32, mine, p->id);
        vclockSet(&s->summary, s->cfg.id, mine);
        s->summary_dirty = true;
    }
    p->rounds++;
    syncEnd(s, p, true);
out:
    vclockFree(&pg.summary);
    vclockFree(&h.vc);
    bufFree(&opened);
}

static void syncRequest(server *s, replState *r, replPeer *p) {
    /* The request tells the member how far we hold its feed, and it may
     * then collect the merged tombstones up to there: what we applied
     * goes to disk first. A failed commit voids the read. */
    if (serverCommitNow(s) != STORE_OK || p->generation != r->generation) {
        syncEnd(s, p, false);
        return;
    }
    replSyncRequest q = {.requester = s->cfg.id,
                         .epoch = p->cur_epoch,
                         .after = p->cur_change,
                         .max_records = REPL_SYNC_PAGE_RECORDS};
    vclockInit(&q.summary);
    vclockCopy(&q.summary, &s->summary);
    buf plain;
    bufInit(&plain);
    replSyncRequestEncode(&q, &plain);
    syncCtx *x = xcalloc(1, sizeof *x);
    x->s = s;
    x->peer_id = p->id;
    x->generation = p->generation;
    replCall(s, p, "DMKV.SYNC", AD_SYNC_REQ, sizeof AD_SYNC_REQ - 1, &plain, onSyncPage, x);
    vclockFree(&q.summary);
    bufFree(&plain);
}

static void syncStart(server *s, replState *r, replPeer *p) {
    p->sync_inflight = true;
    p->reads_started++;
    p->sync_wanted = false;
    p->sync_started_ms = timeMonoMs();
    p->generation = r->generation;
    p->cur_epoch = p->hw_epoch;
    p->cur_change = p->hw_change;
    p->have_first = false;
    syncRequest(s, r, p);
}

/* ---- checking what this node holds, after a return ---- */

/* DMKV.VERIFY <request>: for each of the asker's writes, whether this node
 * collected it: no record for the key, and the summary covers the write. */
void cmdVerify(client *c) {
    server *s = c->srv;
    const uint8_t *data;
    size_t len;
    buf opened, answer, sealed;
    bufInit(&opened);
    bufInit(&answer);
    bufInit(&sealed);
    uint32_t requester = 0;
    replVerifyReader rd;
    const uint8_t *k;
    size_t kl;
    uint32_t origin;
    uint64_t seq;
    int rc = -1;
    replState *r = peerRequestOpen(c, AD_VERIFY_REQ, sizeof AD_VERIFY_REQ - 1,
                                   "verification request", &data, &len, &opened);
    if (!r) goto out;
    if (replVerifyOpen(data, len, &requester, &rd) == 0 && requester != s->cfg.id) {
        replVerifyReader probe = rd; /* every key checked before any is looked up */
        while ((rc = replVerifyNext(&probe, &k, &kl, &origin, &seq)) == 1) {
        }
    }
    if (rc != 0) {
        r->rejected++;
        respAddError(c->out, "ERR malformed verification request");
        goto out;
    }
    if (!peerServeCommitted(c, "store")) goto out;
    if (idsRemove(r->owed, &r->nowed, requester)) r->known_dirty = true; /* saved next tick */
    uint8_t bits[(REPL_VERIFY_MAX_KEYS + 7) / 8] = {0};
    uint32_t i = 0;
    while (replVerifyNext(&rd, &k, &kl, &origin, &seq) == 1) {
        storeRecord cur;
        int got = storeGet(s->st, k, kl, &cur);
        if (got == STORE_ERR) {
            respAddErrorFmt(c->out, "ERR cannot read the store: %s", storeError(s->st));
            goto out;
        }
        if (got == STORE_NOTFOUND && seq <= vclockGet(&s->summary, origin))
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
        i++;
    }
    replVerifyAnswerEncode(&answer, i, bits);
    const char *blob;
    size_t blen;
    replSeal(s, AD_VERIFY_ANS, sizeof AD_VERIFY_ANS - 1, &answer, &sealed, &blob, &blen);
    respAddBulk(c->out, blob, blen);
out:
    bufFree(&opened);
    bufFree(&answer);
    bufFree(&sealed);
}

typedef struct verifyScan {
    replState *r;
    uint32_t examined;
    bool full;
} verifyScan;

static int verifyCollect(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    verifyScan *v = ctx;
    replState *r = v->r;
    v->examined++;
    /* Tombstones are collected in the usual way; a write without a seq
     * cannot be asked about. */
    if (!(rec->ver.flags & STORE_FLAG_TOMBSTONE) && rec->ver.seq && rec->ver.origin) {
        replVerifyAdd(&r->verify_page, key, klen, rec->ver.origin, rec->ver.seq);
        r->verify_count++;
    }
    v->full = r->verify_count >= REPL_VERIFY_MAX_KEYS || v->examined >= REPL_SYNC_PAGE_SCAN;
    if (v->full) { /* where the next page starts */
        bufClear(&r->verify_next_after);
        bufAppend(&r->verify_next_after, key, klen);
    }
    return v->full;
}

/* The page was dealt with: the next one starts after its last key. */
static void verifyAdvance(replState *r) {
    bufClear(&r->verify_after);
    bufAppend(&r->verify_after, r->verify_next_after.data, r->verify_next_after.len);
    r->verify_begun = true;
}

typedef struct verifyCtx {
    server *s;
    uint32_t peer_id;
} verifyCtx;

static void verifyPage(server *s, replState *r, replPeer *p);

static void verifyFinish(replState *r, uint32_t peer_id) {
    r->verify_done = true;
    /* Pages it sent before it saw the pass asked for it again. */
    replPeer *p = replPeerFind(r, peer_id);
    if (p) p->recheck_wanted = false;
    if (r->verify_removed)
        logInfo("checked %" PRIu64 " keys with node %" PRIu32 ": removed %" PRIu64
                " deleted while this node was away",
                r->verify_checked, peer_id, r->verify_removed);
}

/* Removes the keys the member collected, if they still hold the write
 * asked about. */
static void verifyApply(server *s, replState *r, const uint8_t *bits) {
    replVerifyReader rd = {.p = (const uint8_t *)r->verify_page.data,
                           .len = r->verify_page.len,
                           .pos = 0,
                           .left = r->verify_count};
    const uint8_t *k;
    size_t kl;
    uint32_t origin;
    uint64_t seq;
    for (uint32_t i = 0; replVerifyNext(&rd, &k, &kl, &origin, &seq) == 1; i++) {
        if (!(bits[i / 8] & (1u << (i % 8)))) continue;
        storeRecord cur;
        if (storeGet(s->st, k, kl, &cur) != STORE_OK || (cur.ver.flags & STORE_FLAG_TOMBSTONE) ||
            cur.ver.origin != origin || cur.ver.seq != seq)
            continue;
        if (storeDelete(s->st, k, kl) == STORE_ERR) {
            serverCommitNow(s); /* runs the batch-failure handling */
            return;
        }
        r->verify_removed++;
        if (eventsEnabled(s)) eventsLocal(s, "VERIFY_REMOVE", (const char *)k, kl, NULL, 0);
    }
}

static void onVerifyAnswer(void *ctx, const respReply *reply, const char *err) {
    verifyCtx *x = ctx;
    server *s = x->s;
    uint32_t peer_id = x->peer_id;
    free(x);
    replState *r = s->repl;
    if (!r || !r->verify_inflight) return;
    r->verify_inflight = false;
    const uint8_t *data = reply && !err ? (const uint8_t *)reply->str : NULL;
    size_t len = data ? reply->len : 0;
    const uint8_t *bits = NULL;
    buf opened;
    bufInit(&opened);
    if (err || reply->type != RESP_BULK ||
        replUnseal(s, AD_VERIFY_ANS, sizeof AD_VERIFY_ANS - 1, &data, &len, &opened) != 0 ||
        replVerifyAnswerDecode(data, len, r->verify_count, &bits) != 0) {
        /* Tried again from the same page on a later tick. */
        if (r->verify_failures++ % 100 == 0)
            logWarn("checking keys with node %" PRIu32 " failed: %s", peer_id,
                    err                                  ? err
                    : reply && reply->type == RESP_ERROR ? reply->str
                                                         : "malformed answer");
        bufFree(&opened);
        return;
    }
    verifyApply(s, r, bits);
    bufFree(&opened);
    r->verify_checked += r->verify_count;
    if (!r->verify_more) {
        verifyFinish(r, peer_id);
        return;
    }
    verifyAdvance(r);
    replPeer *p = replPeerFind(r, peer_id);
    if (p && p->alive) verifyPage(s, r, p);
}

/* Sends the next page of keys to p, or ends the pass at the last key. */
static void verifyPage(server *s, replState *r, replPeer *p) {
    for (;;) {
        bufClear(&r->verify_page);
        r->verify_count = 0;
        verifyScan v = {.r = r};
        if (storeScan(s->st, r->verify_begun ? r->verify_after.data : NULL,
                      r->verify_begun ? r->verify_after.len : 0, verifyCollect, &v) != STORE_OK)
            return; /* tried again on a later tick */
        r->verify_more = v.full;
        if (r->verify_count) break;
        if (!v.full) { /* nothing (more) to ask about */
            verifyFinish(r, p->id);
            return;
        }
        verifyAdvance(r); /* a page of tombstones only: skip it */
    }
    buf plain;
    bufInit(&plain);
    size_t at = replVerifyBegin(&plain, s->cfg.id);
    bufAppend(&plain, r->verify_page.data, r->verify_page.len);
    replVerifyEnd(&plain, at, r->verify_count);
    verifyCtx *x = xcalloc(1, sizeof *x);
    x->s = s;
    x->peer_id = p->id;
    r->verify_inflight = true;
    replCall(s, p, "DMKV.VERIFY", AD_VERIFY_REQ, sizeof AD_VERIFY_REQ - 1, &plain, onVerifyAnswer,
             x);
    bufFree(&plain);
}

/* Starts (or resumes) the pass with the first live member. */
static void verifyTick(server *s, replState *r) {
    if (r->verify_inflight) return;
    if (r->verify_done) { /* a member that forgot us asks for another pass */
        for (size_t i = 0; i < r->npeers; i++) {
            replPeer *p = r->peers[i];
            if (!p->alive || !p->recheck_wanted) continue;
            r->verify_done = false;
            r->verify_begun = false;
            r->verify_rechecks++;
            verifyPage(s, r, p);
            return;
        }
        return;
    }
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i]->alive) {
            verifyPage(s, r, r->peers[i]);
            return;
        }
}

/* ---- catching up before a serialized write ---- */

typedef struct catchUpCtx {
    server *s;
    replState *r;
    catchUpWaiter *w;
} catchUpCtx;

static void catchUpMember(void *ctx, uint32_t id, const char *host, int tcp_port) {
    catchUpCtx *q = ctx;
    replPeer *p = replPeerFor(q->r, id, host, tcp_port);
    if (!p) return;
    /* A read already under way may have begun before the call: the one
     * after it is needed, and catchUpOnRead starts it. */
    uint64_t need = p->reads_started + 1;
    if (!p->sync_inflight) syncStart(q->s, q->r, p);
    q->w->need = xrealloc(q->w->need, (q->w->nneed + 1) * sizeof *q->w->need);
    q->w->need[q->w->nneed++] = (catchUpNeed){id, need};
}

void replicationCatchUp(server *s, replicationCaughtUpFn fn, void *ctx) {
    replState *r = s->cl ? replOf(s) : NULL;
    if (!r) {
        fn(s, ctx);
        return;
    }
    r->catch_ups++;
    catchUpWaiter *w = xcalloc(1, sizeof *w);
    w->fn = fn;
    w->ctx = ctx;
    w->started_ms = timeMonoMs();
    catchUpCtx q = {s, r, w};
    clusterForEachAlive(s->cl, catchUpMember, &q);
    /* A read may have ended inside syncStart (a failed send). */
    for (size_t i = 0; i < w->nneed;) {
        replPeer *p = replPeerFind(r, w->need[i].peer_id);
        if (!p || p->reads_ended >= w->need[i].read)
            w->need[i] = w->need[--w->nneed];
        else
            i++;
    }
    if (!w->nneed) {
        free(w->need);
        free(w);
        fn(s, ctx);
        return;
    }
    w->next = r->catch_head;
    r->catch_head = w;
}

/* A read of p's feed ended (p NULL: a tick): settles the catch-ups it
 * completes and those waiting REPL_CATCH_UP_MAX_MS, and starts the next
 * read for those that need one begun after they asked. */
static void catchUpOnRead(server *s, replState *r, replPeer *p) {
    catchUpWaiter *done = NULL, **pw = &r->catch_head;
    bool again = false;
    uint64_t now = timeMonoMs();
    while (*pw) {
        catchUpWaiter *w = *pw;
        if (now - w->started_ms >= REPL_CATCH_UP_MAX_MS) w->nneed = 0;
        for (size_t i = 0; i < w->nneed;) {
            if (!p || w->need[i].peer_id != p->id) {
                i++;
            } else if (p->reads_ended >= w->need[i].read) {
                w->need[i] = w->need[--w->nneed];
            } else {
                again = true;
                i++;
            }
        }
        if (w->nneed) {
            pw = &w->next;
        } else {
            *pw = w->next;
            w->next = done;
            done = w;
        }
    }
    if (again && p && !p->sync_inflight) syncStart(s, r, p);
    while (done) { /* after the walk: fn may ask again */
        catchUpWaiter *w = done;
        done = w->next;
        free(w->need);
        w->fn(s, w->ctx);
        free(w);
    }
}

static void markMember(void *ctx, uint32_t id, const char *host, int tcp_port);

bool replicationBehindSelf(server *s) {
    replState *r = s->repl;
    return r && r->self_behind > vclockGet(&s->summary, s->cfg.id);
}

bool replicationHasMembers(server *s) {
    if (!s->cl) return false;
    replState *r = replOf(s);
    if (!r) return true; /* shutting down: keep the cluster's rules */
    /* Members gossip has just learned of count at once, not a tick later. */
    if (r->nknown == 0) clusterForEachMember(s->cl, markMember, r);
    return r->nknown > 0;
}

/* ---- the tick: who is alive, whom to read, what to collect ---- */

static void markAlive(void *ctx, uint32_t id, const char *host, int tcp_port) {
    replState *r = ctx;
    replPeer *p = replPeerFor(r, id, host, tcp_port);
    if (p) p->alive = true;
}

static void markMember(void *ctx, uint32_t id, const char *host, int tcp_port) {
    replState *r = ctx;
    replPeer *p = replPeerFor(r, id, host, tcp_port);
    if (p) p->member = true;
    if (replKnows(r, id)) return;
    idsAdd(&r->known, &r->nknown, id);
    r->known_dirty = true;
}

/* A saved id list: u32 little-endian ids. */
static void idsLoad(store *st, const char *meta_key, uint32_t **v, size_t *n) {
    buf b;
    bufInit(&b);
    if (storeMetaGet(st, meta_key, &b) == STORE_OK && b.len % 4 == 0) {
        for (size_t i = 0; i < b.len / 4; i++) {
            const uint8_t *q = (const uint8_t *)b.data + 4 * i;
            idsAdd(v, n,
                   (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                       (uint32_t)q[3] << 24);
        }
    }
    bufFree(&b);
}

static int idsSave(store *st, const char *meta_key, const uint32_t *v, size_t n) {
    buf b;
    bufInit(&b);
    for (size_t i = 0; i < n; i++) {
        uint8_t q[4] = {(uint8_t)v[i], (uint8_t)(v[i] >> 8), (uint8_t)(v[i] >> 16),
                        (uint8_t)(v[i] >> 24)};
        bufAppend(&b, q, 4);
    }
    int rc = storeMetaPut(st, meta_key, b.data, b.len);
    bufFree(&b);
    return rc;
}

static void replLoadKnown(replState *r) {
    idsLoad(r->srv->st, REPL_PEERS_META_KEY, &r->known, &r->nknown);
    idsLoad(r->srv->st, REPL_OWED_META_KEY, &r->owed, &r->nowed);
}

/* The members waited for, and those owed a key check. */
static void replSaveKnown(replState *r) {
    if (idsSave(r->srv->st, REPL_PEERS_META_KEY, r->known, r->nknown) == STORE_OK &&
        idsSave(r->srv->st, REPL_OWED_META_KEY, r->owed, r->nowed) == STORE_OK)
        r->known_dirty = false;
}

/* Stops waiting for a member, and owes it a key check. */
static bool replForget(replState *r, uint32_t id) {
    if (!idsRemove(r->known, &r->nknown, id)) return false;
    idsAdd(&r->owed, &r->nowed, id);
    r->known_dirty = true;
    return true;
}

bool replicationForget(server *s, uint32_t id) {
    replState *r = replOf(s);
    if (!r || !replForget(r, id)) return false;
    replSaveKnown(r);
    logWarn("member %" PRIu32 " forced to leave by an operator: deletes no longer wait for it", id);
    return true;
}

/* Members that left are forgotten: tombstones no longer wait for them.
 * Only a leave counts: a member gossip does not know (this node has just
 * restarted and not yet heard of it, or gossip stopped keeping a member
 * dead for long) may still come back with writes of its own. */
static void replForgetLeft(server *s, replState *r) {
    for (size_t i = r->nknown; i-- > 0;)
        if (clusterMemberState(s->cl, r->known[i], NULL, 0, NULL) == GOSSIP_LEFT)
            replForget(r, r->known[i]);
}

typedef struct gcCtx {
    server *s;
    replState *r;
    vclock writes; /* scratch: a merged tombstone's merged writes */
    buf keys;      /* u16 length + key, for each collectable tombstone */
    uint32_t n;
} gcCtx;

/* The sequence number up to which every member has seen origin's writes. */
static uint64_t gcBound(server *s, replState *r, uint32_t origin) {
    uint64_t bound = vclockGet(&s->summary, origin);
    for (size_t i = 0; i < r->nknown; i++) {
        replPeer *p = replPeerFind(r, r->known[i]);
        if (!p || !p->have_seen) return 0;
        uint64_t v = vclockGet(&p->seen, origin);
        if (v < bound) bound = v;
    }
    return bound;
}

/* A merged tombstone goes once every member has read our feed past it
 * (pages always carry merged records, so each then holds it or a version
 * that dominates it) and has seen every write it resolves (so any of them
 * arriving later is old news). Without its merged writes (made by an
 * older dmkv, or from a write without a seq) it stays. */
static bool gcMergedSeen(gcCtx *g, const storeVersion *v) {
    replState *r = g->r;
    for (size_t i = 0; i < r->nknown; i++) {
        replPeer *p = replPeerFind(r, r->known[i]);
        if (!p || p->fed_upto < v->change_seq) return false;
    }
    if (!replResolvedWrites(v, &g->writes)) return false;
    for (size_t i = 0; i < g->writes.n; i++)
        if (gcBound(g->s, r, g->writes.e[i].node) < g->writes.e[i].counter) return false;
    return true;
}

static int gcCollect(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    gcCtx *g = ctx;
    if ((rec->ver.flags & STORE_FLAG_MERGED) && !gcMergedSeen(g, &rec->ver)) return 0;
    uint16_t n = (uint16_t)klen;
    bufAppend(&g->keys, &n, sizeof n);
    bufAppend(&g->keys, key, klen);
    return ++g->n >= REPL_GC_PER_TICK;
}

static void replCollectTombstones(server *s, replState *r) {
    storeStats st;
    storeGetStats(s->st, &st);
    if (st.tombstones == 0) return;
    gcCtx g = {.s = s, .r = r, .n = 0};
    vclockInit(&g.writes);
    bufInit(&g.keys);
    /* Origins are the summary's entries (every write has one there). */
    for (size_t i = 0; i < s->summary.n && g.n < REPL_GC_PER_TICK; i++) {
        uint32_t origin = s->summary.e[i].node;
        uint64_t bound = gcBound(s, r, origin);
        if (bound && storeScanTombstones(s->st, origin, bound, gcCollect, &g) != STORE_OK) break;
    }
    for (size_t at = 0; at < g.keys.len;) {
        uint16_t kl;
        memcpy(&kl, g.keys.data + at, sizeof kl);
        if (storeDelete(s->st, g.keys.data + at + sizeof kl, kl) == STORE_ERR) {
            serverCommitNow(s); /* runs the batch-failure handling */
            break;
        }
        r->tombstones_collected++;
        at += sizeof kl + kl;
    }
    vclockFree(&g.writes);
    bufFree(&g.keys);
}

static void onReplTick(uv_timer_t *t) {
    replState *r = t->data;
    server *s = r->srv;
    if (!s->cl || s->stopping) return;
    if (r->catch_head) catchUpOnRead(s, r, NULL); /* settles the overdue */
    for (size_t i = 0; i < r->npeers; i++) {
        r->peers[i]->was_alive = r->peers[i]->alive;
        r->peers[i]->alive = false;
        r->peers[i]->member = false;
    }
    clusterForEachAlive(s->cl, markAlive, r);
    clusterForEachMember(s->cl, markMember, r);
    replForgetLeft(s, r);
    if (r->known_dirty) replSaveKnown(r);
    uint64_t now = timeMonoMs();
    unsigned started = 0;
    /* Members that just became alive first, then the longest unread. */
    for (size_t i = 0; i < r->npeers && started < REPL_SYNC_STARTS_PER_TICK; i++) {
        replPeer *p = r->peers[i];
        if (!p->alive || p->sync_inflight) continue;
        if (!p->was_alive || p->sync_wanted) {
            syncStart(s, r, p);
            started++;
        }
    }
    for (size_t k = 0; k < r->npeers && started < REPL_SYNC_STARTS_PER_TICK; k++) {
        replPeer *p = r->peers[(r->rr + k) % r->npeers];
        if (!p->alive || p->sync_inflight || now - p->last_sync_ms < REPL_SYNC_INTERVAL_MS)
            continue;
        syncStart(s, r, p);
        started++;
    }
    if (r->npeers) r->rr = (r->rr + 1) % (uint32_t)r->npeers;
    verifyTick(s, r);
    replCollectTombstones(s, r);
}

void replicationStart(server *s) {
    replState *r = replOf(s);
    if (!r || r->timer_on) return;
    uv_timer_init(s->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, onReplTick, REPL_SYNC_TICK_MS, REPL_SYNC_TICK_MS);
    r->timer_on = true;
}

static void replStateFree(replState *r) {
    bufFree(&r->scratch);
    bufFree(&r->verify_after);
    bufFree(&r->verify_next_after);
    bufFree(&r->verify_page);
    free(r->known);
    free(r->owed);
    free(r);
}

static void onTimerClosed(uv_handle_t *h) {
    replStateFree(h->data);
}

void replicationStop(server *s) {
    replState *r = s->repl;
    if (!r) return;
    s->repl = NULL;
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = r->peers[i];
        if (p->link) netPeerClose(p->link);
        bufFree(&p->pending);
        bufFree(&p->stamped);
        vclockFree(&p->first_summary);
        vclockFree(&p->seen);
        free(p);
    }
    free(r->peers);
    r->peers = NULL;
    r->npeers = 0;
    /* Catch-ups will not get their reads; their writes fail on their own. */
    while (r->catch_head) {
        catchUpWaiter *w = r->catch_head;
        r->catch_head = w->next;
        free(w->need);
        w->fn(s, w->ctx);
        free(w);
    }
    /* Writes waiting for acknowledgements will not get them. */
    ackGroup *g = ackGroupTake(r);
    if (g) ackGroupFire(s, g, "the node is shutting down");
    if (r->timer_on) {
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, onTimerClosed);
    } else {
        replStateFree(r);
    }
}

void replicationInfo(server *s, buf *out) {
    replState *r = s->repl;
    storeStats st;
    storeGetStats(s->st, &st);
    bufPrintf(out, "mode:%s\r\n", s->cfg.use_mutex ? "mutex" : "eventual");
    bufPrintf(out, "write_seq:%" PRIu64 "\r\ntombstones:%" PRIu64 "\r\n",
              vclockGet(&s->summary, s->cfg.id), st.tombstones);
    buf sum;
    bufInit(&sum);
    vclockFormat(&s->summary, &sum);
    bufPrintf(out, "summary:%.*s\r\n", (int)sum.len, sum.data);
    bufFree(&sum);
    if (!r) {
        bufPrintf(out, "peers:0\r\n");
        return;
    }
    uint64_t rounds = 0, repaired = 0;
    for (size_t i = 0; i < r->npeers; i++) {
        rounds += r->peers[i]->rounds;
        repaired += r->peers[i]->repaired;
    }
    bufPrintf(out,
              "peers:%zu\r\nbatches_received:%" PRIu64 "\r\nwrites_applied:%" PRIu64
              "\r\nwrites_ignored:%" PRIu64 "\r\nwrites_stale:%" PRIu64 "\r\nwrites_fenced:%" PRIu64
              "\r\nconflicts:%" PRIu64 "\r\nbatches_rejected:%" PRIu64
              "\r\nanti_entropy_rounds:%" PRIu64 "\r\nanti_entropy_keys_repaired:%" PRIu64
              "\r\nanti_entropy_pages_served:%" PRIu64 "\r\ntombstones_collected:%" PRIu64
              "\r\nmembers_known:%zu\r\nmutex_catch_ups:%" PRIu64
              "\r\nverify:%s\r\nverify_keys_checked:%" PRIu64 "\r\nverify_keys_removed:%" PRIu64
              "\r\nverify_rechecks:%" PRIu64 "\r\n",
              r->npeers, r->received_batches, r->applied, r->ignored, r->stale, r->fenced,
              r->conflicts, r->rejected, rounds, repaired, r->sync_pages_sent,
              r->tombstones_collected, r->nknown, r->catch_ups,
              r->verify_done       ? "done"
              : r->verify_inflight ? "running"
                                   : "waiting",
              r->verify_checked, r->verify_removed, r->verify_rechecks);
    uint64_t now = timeMonoMs();
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = r->peers[i];
        uint64_t lag = p->sent_count ? now - p->sent_ms[p->sent_head] : 0;
        bufPrintf(out,
                  "peer%" PRIu32 ":addr=%s:%d,state=%s,queued_bytes=%zu,batches_sent=%" PRIu64
                  ",batches_held=%" PRIu64 ",writes_sent=%" PRIu64 ",failures=%" PRIu64
                  ",dropped=%" PRIu64 ",unacked_batches=%" PRIu32 ",lag_ms=%" PRIu64
                  ",last_ack_ms=%" PRIu64 ",max_ack_ms=%" PRIu64 ",sync_rounds=%" PRIu64
                  ",sync_repaired=%" PRIu64 ",sync_failures=%" PRIu64 ",seen_mine=%" PRIu64 "\r\n",
                  p->id, p->host, p->port,
                  p->alive                           ? "alive"
                  : p->member || replKnows(r, p->id) ? "down"
                                                     : "left",
                  p->pending.len + (p->link ? netPeerQueuedBytes(p->link) : 0), p->batches_sent,
                  p->batches_held, p->records_sent, p->failures, p->dropped, p->sent_count, lag,
                  p->last_ack_rtt_ms, p->max_ack_rtt_ms, p->rounds, p->repaired, p->sync_failures,
                  p->have_seen ? vclockGet(&p->seen, s->cfg.id) : 0);
    }
}
