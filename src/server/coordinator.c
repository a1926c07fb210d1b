/* The lock coordinator; see coordinator.h, src/lock/lock.h and
 * src/lock/raftnode.h.
 *
 * Every agent runs a Raft server over its copy of the lock table. The Raft
 * leader is the coordinator: only it proposes entries. A client's request
 * becomes one lock operation, proposed directly on the leader or, on a
 * follower, forwarded to the leader's client port (DMKV.LOCKOP, sealed
 * with the cluster key) which proposes it and answers with the result.
 * A request whose leader crashed, stepped down or cannot be reached stays
 * queued and is sent again, to whoever leads then, until it completes or
 * OP_GIVE_UP_MS passes; every operation is safe to repeat (an ACQUIRE
 * carries its request id, so a repeat never queues twice).
 *
 * A waiting client learns of its grant when this node's own copy of the
 * table applies it (the grants list of lockTableApply), or from the
 * result of its own proposal, whichever comes first; nothing polls. Work
 * that results from an apply (waking clients, releasing a grant nobody
 * waits for any more) is deferred to the next loop iteration, so libraft
 * is never re-entered from its own callback.
 *
 * Leases are decided by the leader alone, with its monotonic clock: a
 * lease starts when the leader applies the grant (or when it becomes
 * leader, for every current holder), and when it runs out the leader
 * proposes EXPIRE_LEASE, which applies only if that grant still holds and
 * was not renewed since the lease the leader timed. A node
 * that gossip declares DEAD has its owners released by NODE_DEAD, proposed
 * by the leader; a closed connection by OWNER_GONE, proposed by its node.
 * Owners carry a random number drawn at start, and a starting node first
 * proposes NODE_DEAD for itself, so nothing held by a previous run of the
 * node survives it. */
#include "server/coordinator.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "crypt/crypt.h"
#include "gossip/gossip.h"
#include "lock/lock.h"
#include "lock/raftnode.h"
#include "net/peer.h"
#include "server/cluster.h"
#include "server/events.h"
#include "server/internal.h"
#include "util/log.h"

#define COORD_TICK_MS      50
#define OP_GIVE_UP_MS      30000
#define COORD_MAX_PEERS    256
#define LOCK_TTL_MAX_MS    86400000u
#define NODE_DEAD_GRACE_MS 2000 /* a DEAD claim must stand this long before NODE_DEAD */
/* A wait behind another node's hold is pushed to followers with a barrier
 * only if the leader appends nothing else for this long: any entry's
 * message carries the commit index too, and under contention entries
 * flow all the time. */
#define COORD_WAIT_PUSH_MS 2

static const uint8_t AD_LOCKOP[] = "dmkv-lockop-v1";

typedef struct coord coord;

/* What to do with an operation's result. r is NULL when it failed (err). */
typedef void (*opDoneFn)(coord *co, uint64_t ctx, const lockResult *r, const char *err);

typedef struct coordOp {
    coord *co;
    buf bytes; /* a batch of one op */
    opDoneFn done;
    uint64_t ctx;
    uint64_t first_ms;
    bool inflight;
    struct coordOp *next;
} coordOp;

/* A local client waiting in a lock's queue (LOCK, or a serialized write). */
typedef struct coordWait {
    uint64_t client;
    uint64_t req;
    buf name;
    uint32_t ttl_ms;
    uint64_t deadline_ms; /* 0: no limit */
    coordAcquireFn cb;    /* NULL: a LOCK command, answered on the client */
    void *cb_ctx;
    bool submitted, cancelling;
    bool confirming;       /* granted here as a follower: checking it still holds */
    bool delivered;        /* told of its grant by the leader's result; kept until this
                              node applies the grant, which then only ends it */
    uint64_t submitted_ms; /* when the ACQUIRE went out: no lease can end before ttl after it */
    struct coordWait *next;
} coordWait;

typedef struct coordWake {
    uint64_t client;
    uint64_t token; /* 0: nil (the wait ran out) */
    coordAcquireFn cb;
    void *cb_ctx;
    char err[160];
    /* For a grant: the wait it ends, to ask again if this node stalls
     * before it can answer (see onKick). */
    char *name;
    size_t name_len;
    uint32_t ttl_ms;
    uint64_t deadline_ms;
    uint64_t at_ms;
} coordWake;

typedef struct coordDeadNode {
    uint32_t id;
    uint64_t due_ms;
} coordDeadNode;

typedef struct coordLease {
    buf name;
    uint64_t token;
    uint64_t granted_index; /* the holder's when the lease (re)started: a RENEW changes it */
    uint64_t deadline_ms;
    bool expiring;
} coordLease;

struct coord {
    server *s;
    raftNode *raft;
    lockTable *table;
    lockResults results;
    lockGrants grants;
    uint32_t run;
    uint64_t next_req;
    bool ready, leader, stopping;
    bool push_commit;         /* a grant went to another node: tell followers now */
    uint64_t wait_push_index; /* last log index when a wait push was armed */
    bool leases_dirty;        /* a RENEW applied: the leader looks at the leases again */
    coordOp *queue;
    coordWait *waits;
    coordWake *wakes;
    size_t nwakes, capwakes;
    coordLease *leases;
    size_t nleases, capleases;
    coordDeadNode *dead; /* members declared DEAD, waiting out the grace period */
    size_t ndead, capdead;
    uv_timer_t tick, kick, wait_push;
    netPeer *fwd;
    uint32_t fwd_id;
    void (*stop_done)(void *ctx);
    void *stop_ctx;
    int handles_open;
    uint64_t proposed, forwarded, retried, grants_seen, expired, given_up, lockops_served,
        stale_grants, grants_from_results, dead_refuted, stalled_grants;
};

static coord *coordOf(server *s) {
    return s->coord;
}

static uint64_t ownerClient(coord *co, uint64_t client_id) {
    return (uint64_t)co->run << 32 | (client_id & 0xffffffffu);
}

static lockOwner ownerOf(coord *co, uint64_t client_id) {
    lockOwner o = {co->s->cfg.id, ownerClient(co, client_id)};
    return o;
}

/* ---- submitting operations ---- */

static void onKick(uv_timer_t *t);

static void coordKick(coord *co) {
    if (!co->stopping) uv_timer_start(&co->kick, onKick, 0, 0);
}

static void coordSubmit(coord *co, const lockOp *op, opDoneFn done, uint64_t ctx) {
    coordOp *o = xcalloc(1, sizeof *o);
    bufInit(&o->bytes);
    lockBatchWriter w;
    lockBatchBegin(&w, &o->bytes);
    if (lockBatchAdd(&w, op) != 0) {
        const char *why = lockOpCheck(op);
        bufFree(&o->bytes);
        free(o);
        if (done) done(co, ctx, NULL, why ? why : "invalid lock operation");
        return;
    }
    lockBatchEnd(&w);
    o->co = co;
    o->done = done;
    o->ctx = ctx;
    o->first_ms = timeMonoMs();
    coordOp **pp = &co->queue;
    while (*pp) pp = &(*pp)->next;
    *pp = o;
    coordKick(co);
}

static void opFinish(coord *co, coordOp *o, const lockResult *r, const char *err) {
    for (coordOp **pp = &co->queue; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }
    if (o->done) o->done(co, o->ctx, r, err);
    bufFree(&o->bytes);
    free(o);
}

static bool opQueued(coord *co, coordOp *o) {
    for (coordOp *x = co->queue; x; x = x->next)
        if (x == o) return true;
    return false;
}

/* A flight: the queued operations sent together as one entry (proposed
 * on the leader, or forwarded to it in one DMKV.LOCKOP). While one is in
 * the air the next ones queue, so under load many operations share one
 * Raft commit. */
typedef struct coordFlight {
    coord *co;
    size_t n;
    coordOp *ops[LOCK_MAX_OPS_PER_BATCH];
} coordFlight;

/* The entry's results are the flight's, in order. */
static void flightDone(coordFlight *f, const uint8_t *data, size_t len, bool ok) {
    coord *co = f->co;
    lockResults rs;
    lockResultsInit(&rs);
    bool decoded = ok && lockResultsDecode(&rs, data, len) == 0 && rs.n == f->n;
    for (size_t i = 0; i < f->n; i++) {
        coordOp *o = f->ops[i];
        if (!opQueued(co, o)) continue;
        o->inflight = false;
        if (decoded)
            opFinish(co, o, &rs.r[i], NULL);
        else
            co->retried++; /* not applied, or not known to be: it goes again, to whoever leads */
    }
    lockResultsFree(&rs);
    free(f);
}

static void onProposed(void *ctx, const raftNodeResult *res) {
    coordFlight *f = ctx;
    if (res->status == RAFT_NODE_NO_SPACE || res->status == RAFT_NODE_TOO_BIG) {
        for (size_t i = 0; i < f->n; i++)
            if (opQueued(f->co, f->ops[i])) opFinish(f->co, f->ops[i], NULL, res->err);
        free(f);
        return;
    }
    flightDone(f, res->data, res->len, res->status == RAFT_NODE_OK);
}

static void onForwarded(void *ctx, const respReply *reply, const char *err) {
    coordFlight *f = ctx;
    bool ok = !err && reply->type == RESP_BULK;
    flightDone(f, ok ? (const uint8_t *)reply->str : NULL, ok ? reply->len : 0, ok);
}

static netPeer *coordLinkTo(coord *co, uint32_t leader) {
    if (co->fwd && co->fwd_id == leader) return co->fwd;
    char host[256];
    int port = 0;
    if (clusterMemberState(co->s->cl, leader, host, sizeof host, &port) < 0 || !port) return NULL;
    if (co->fwd) netPeerClose(co->fwd);
    netPeerOptions o = {.connect_timeout_ms = 1000, .call_timeout_ms = 3000};
    co->fwd = netPeerCreate(co->s->loop, host, port, &o);
    co->fwd_id = leader;
    if (co->s->cfg.requirepass[0]) {
        const char *av[2] = {"AUTH", co->s->cfg.requirepass};
        netPeerCall(co->fwd, 2, av, NULL, NULL, NULL);
    }
    return co->fwd;
}

static void flightMark(coordFlight *f, bool inflight) {
    for (size_t i = 0; i < f->n; i++) f->ops[i]->inflight = inflight;
}

/* Sends the flight's batch; false when it could not go now (no leader) and
 * f is still the caller's. On true f belongs to its callback, which may
 * already have run (a forwarding link can fail at once): the caller must
 * not touch f again. */
static bool flightSend(coord *co, coordFlight *f, const buf *batch) {
    if (raftNodeIsLeader(co->raft)) {
        flightMark(f, true);
        if (raftNodePropose(co->raft, batch->data, batch->len, onProposed, f) != RAFT_NODE_OK) {
            flightMark(f, false);
            return false;
        }
        co->proposed += f->n;
        return true;
    }
    uint32_t leader = (uint32_t)raftNodeLeaderId(co->raft);
    if (!leader || leader == co->s->cfg.id) return false; /* no leader yet: the tick tries again */
    netPeer *link = coordLinkTo(co, leader);
    if (!link) return false;
    buf sealed;
    bufInit(&sealed);
    const char *blob = batch->data;
    size_t blen = batch->len;
    if (co->s->keys) {
        cryptSeal(co->s->keys, AD_LOCKOP, sizeof AD_LOCKOP - 1, (const uint8_t *)blob, blen,
                  &sealed);
        blob = sealed.data;
        blen = sealed.len;
    }
    const char *av[2] = {"DMKV.LOCKOP", blob};
    size_t al[2] = {11, blen};
    co->forwarded += f->n;
    flightMark(f, true);
    netPeerCall(link, 2, av, al, onForwarded, f);
    bufFree(&sealed);
    return true;
}

static void coordSendQueued(coord *co) {
    uint64_t now = timeMonoMs();
    coordFlight *f = NULL;
    buf batch;
    bufInit(&batch);
    for (coordOp *o = co->queue, *next; o; o = next) {
        next = o->next;
        if (o->inflight) continue;
        if (now - o->first_ms > OP_GIVE_UP_MS) {
            co->given_up++;
            opFinish(co, o, NULL,
                     "no lock coordinator (Raft leader) could be reached; check LEADER and INFO "
                     "coordinator");
            continue;
        }
        if (!f) {
            f = xcalloc(1, sizeof *f);
            f->co = co;
            bufClear(&batch);
            uint8_t head[LOCK_BATCH_HEADER_BYTES] = {LOCK_BATCH_V1, 0, 0};
            bufAppend(&batch, head, sizeof head);
        }
        /* Each op is a batch of one: append its body. */
        bufAppend(&batch, o->bytes.data + LOCK_BATCH_HEADER_BYTES,
                  o->bytes.len - LOCK_BATCH_HEADER_BYTES);
        f->ops[f->n++] = o;
        if (f->n == LOCK_MAX_OPS_PER_BATCH || batch.len > (1u << 20) || !next) {
            batch.data[1] = (char)(f->n & 0xff);
            batch.data[2] = (char)(f->n >> 8);
            bool sent = flightSend(co, f, &batch);
            if (!sent) free(f);
            f = NULL;
            if (!sent) break;
        }
    }
    if (f) { /* the last op was in flight or given up: send what was gathered */
        batch.data[1] = (char)(f->n & 0xff);
        batch.data[2] = (char)(f->n >> 8);
        if (!flightSend(co, f, &batch)) free(f);
    }
    bufFree(&batch);
}

/* ---- waiting clients ---- */

static coordWait *waitByReq(coord *co, uint64_t req) {
    for (coordWait *w = co->waits; w; w = w->next)
        if (w->req == req) return w;
    return NULL;
}

static void waitRemove(coord *co, coordWait *w) {
    for (coordWait **pp = &co->waits; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    bufFree(&w->name);
    free(w);
}

static void wakeAdd(coord *co, const coordWait *w, uint64_t token, const char *err);

/* Ends a wait: the client hears of it on the next loop iteration. */
static void waitEnd(coord *co, coordWait *w, uint64_t token, const char *err) {
    wakeAdd(co, w, token, err);
    waitRemove(co, w);
}

static void wakeAdd(coord *co, const coordWait *w, uint64_t token, const char *err) {
    if (co->nwakes == co->capwakes) {
        co->capwakes = co->capwakes ? co->capwakes * 2 : 16;
        co->wakes = xrealloc(co->wakes, co->capwakes * sizeof *co->wakes);
    }
    coordWake *k = &co->wakes[co->nwakes++];
    memset(k, 0, sizeof *k);
    k->client = w->client;
    k->token = token;
    k->cb = w->cb;
    k->cb_ctx = w->cb_ctx;
    if (err) snprintf(k->err, sizeof k->err, "%s", err);
    if (token && !err) {
        k->name = xmalloc(w->name.len);
        memcpy(k->name, w->name.data, w->name.len);
        k->name_len = w->name.len;
        k->ttl_ms = w->ttl_ms;
        k->deadline_ms = w->deadline_ms;
        k->at_ms = timeMonoMs();
    }
    coordKick(co);
}

/* A grant this node learned of at least half its lease (or a second) ago
 * and has not answered yet: the node stalled in between (stopped, starved
 * of CPU), and the leader may have expired the lease meanwhile. The grant
 * is given back and the wait asks again, so the client never gets a token
 * that may already be someone else's. */
static void submitRelease(coord *co, const lockOwner *owner, const uint8_t *name, size_t len,
                          uint64_t token);
static coordWait *waitAdd(coord *co, uint64_t client_id, const char *name, size_t len,
                          uint32_t ttl_ms, uint64_t wait_ms);

static bool wakeStale(coord *co, const coordWake *k) {
    uint64_t bound = k->ttl_ms ? k->ttl_ms / 2 : 1000;
    if (bound > 1000) bound = 1000;
    if (!k->token || !k->name || timeMonoMs() - k->at_ms < bound) return false;
    co->stalled_grants++;
    lockOwner o = ownerOf(co, k->client);
    submitRelease(co, &o, (const uint8_t *)k->name, k->name_len, k->token);
    coordWait *w = waitAdd(co, k->client, k->name, k->name_len, k->ttl_ms, 0);
    w->deadline_ms = k->deadline_ms;
    w->cb = k->cb;
    w->cb_ctx = k->cb_ctx;
    return true;
}

static void submitRelease(coord *co, const lockOwner *owner, const uint8_t *name, size_t len,
                          uint64_t token) {
    lockOp op = {.kind = LOCK_OP_RELEASE,
                 .req = ++co->next_req,
                 .name = name,
                 .name_len = len,
                 .owner = *owner,
                 .token = token};
    coordSubmit(co, &op, NULL, 0);
}

static bool grantFresh(const coordWait *w);

static void onAcquireResult(coord *co, uint64_t req, const lockResult *r, const char *err) {
    coordWait *w = waitByReq(co, req);
    if (!w || w->delivered) return; /* woken by the grant already, or gone */
    if (!r) {
        waitEnd(co, w, 0, err);
        return;
    }
    /* A lock granted at once: the result comes from the leader once the
     * grant is committed and applied there, which on a follower is usually
     * before its own apply (it may still be writing the entry to disk).
     * The client hears of it now, if the lease cannot have run out yet;
     * the wait stays, marked, so that the local apply of the grant ends
     * it instead of waking the client twice or giving the lock back. A
     * grant after queueing reaches the client through the apply. */
    if (r->status == LOCK_OK && !w->cancelling && !w->confirming && grantFresh(w)) {
        w->delivered = true;
        co->grants_from_results++;
        wakeAdd(co, w, r->token, NULL);
        return;
    }
    if (r->status != LOCK_OK && r->status != LOCK_QUEUED)
        waitEnd(co, w, 0, lockStatusMessage((lockStatus)r->status));
}

static void waitSubmit(coord *co, coordWait *w);

/* A follower may apply a grant late: after a partition, or while catching
 * up, the lease may have run out at the leader and the lock moved on. So
 * before the client hears of it, a RENEW through the log checks that the
 * grant still holds and starts its lease again; if it does not, the wait
 * asks again. */
static void onConfirmResult(coord *co, uint64_t req, const lockResult *r, const char *err) {
    coordWait *w = waitByReq(co, req);
    if (!w || !w->confirming) return;
    w->confirming = false;
    if (r && r->status == LOCK_OK) {
        waitEnd(co, w, r->token, NULL);
    } else if (r && r->status == LOCK_ERR_NOT_HOLDER) {
        co->stale_grants++;
        w->req = ++co->next_req;
        waitSubmit(co, w);
    } else {
        waitEnd(co, w, 0, err ? err : lockStatusMessage((lockStatus)r->status));
    }
}

/* The leader starts a lease when it applies the grant, which is after the
 * ACQUIRE was sent; a node that gossip declares DEAD takes seconds to be
 * found out. So a grant applied within half the lease (or a second) of the
 * request cannot have been taken back yet: it needs no check. */
static bool grantFresh(const coordWait *w) {
    uint64_t bound = w->ttl_ms ? w->ttl_ms / 2 : 1000;
    if (bound > 1000) bound = 1000;
    return timeMonoMs() - w->submitted_ms < bound;
}

static void waitConfirm(coord *co, coordWait *w, uint64_t token) {
    w->confirming = true;
    lockOp op = {.kind = LOCK_OP_RENEW,
                 .req = w->req,
                 .name = (const uint8_t *)w->name.data,
                 .name_len = w->name.len,
                 .owner = ownerOf(co, w->client),
                 .token = token,
                 .ttl_ms = w->ttl_ms};
    coordSubmit(co, &op, onConfirmResult, w->req);
}

static void waitSubmit(coord *co, coordWait *w) {
    w->submitted = true;
    w->submitted_ms = timeMonoMs();
    lockOp op = {.kind = LOCK_OP_ACQUIRE,
                 .req = w->req,
                 .name = (const uint8_t *)w->name.data,
                 .name_len = w->name.len,
                 .owner = ownerOf(co, w->client),
                 .ttl_ms = w->ttl_ms};
    coordSubmit(co, &op, onAcquireResult, w->req);
}

static coordWait *waitAdd(coord *co, uint64_t client_id, const char *name, size_t len,
                          uint32_t ttl_ms, uint64_t wait_ms) {
    coordWait *w = xcalloc(1, sizeof *w);
    w->client = client_id;
    w->req = ++co->next_req;
    bufInit(&w->name);
    bufAppend(&w->name, name, len);
    w->ttl_ms = ttl_ms;
    w->deadline_ms = wait_ms ? timeMonoMs() + wait_ms : 0;
    w->next = co->waits;
    co->waits = w;
    if (co->ready) waitSubmit(co, w);
    return w;
}

static void onCancelResult(coord *co, uint64_t req, const lockResult *r, const char *err) {
    (void)err;
    coordWait *w = waitByReq(co, req);
    if (!w) return; /* the grant was applied here first: the client holds it */
    if (r && r->status == LOCK_ALREADY_GRANTED) {
        /* Granted just as the wait ran out, not yet applied here: the
         * client gets nil, and the grant is given back. */
        lockOwner o = ownerOf(co, w->client);
        submitRelease(co, &o, (const uint8_t *)w->name.data, w->name.len, r->token);
    }
    waitEnd(co, w, 0, NULL);
}

/* ---- the state machine ---- */

static void leaseAdd(coord *co, const uint8_t *name, size_t len, uint64_t token, uint32_t ttl_ms,
                     uint64_t granted_index) {
    if (co->nleases == co->capleases) {
        co->capleases = co->capleases ? co->capleases * 2 : 16;
        co->leases = xrealloc(co->leases, co->capleases * sizeof *co->leases);
    }
    coordLease *l = &co->leases[co->nleases++];
    bufInit(&l->name);
    bufAppend(&l->name, name, len);
    l->token = token;
    l->granted_index = granted_index;
    l->deadline_ms = timeMonoMs() + ttl_ms;
    l->expiring = false;
}

static void leasesClear(coord *co) {
    for (size_t i = 0; i < co->nleases; i++) bufFree(&co->leases[i].name);
    co->nleases = 0;
}

/* A grant made by its own ACQUIRE in this entry: the node that asked reads
 * it in the entry's results, which the leader sends back at once. */
static bool grantInResults(const coord *co, const lockGrant *g) {
    for (size_t i = 0; i < co->results.n; i++) {
        const lockResult *r = &co->results.r[i];
        if (r->kind == LOCK_OP_ACQUIRE && r->status == LOCK_OK && r->req == g->req &&
            r->token == g->token)
            return true;
    }
    return false;
}

/* An ACQUIRE of this entry queued behind another node's serialized
 * writes. That node lets its writes share the grant (mutex.c) until it
 * sees someone waiting, which it learns from its own apply. A client's
 * lock is given back by the client, whoever waits. */
static bool queuedBehindOtherNode(const coord *co, const uint8_t *data, size_t len) {
    size_t queued = 0;
    for (size_t i = 0; i < co->results.n; i++) queued += co->results.r[i].status == LOCK_QUEUED;
    lockBatchReader rd;
    lockOp op;
    if (!queued || lockBatchOpen(&rd, data, len) != 0) return false;
    for (size_t i = 0; i < co->results.n && lockBatchNext(&rd, &op) == 1; i++) {
        lockHolder h;
        if (op.kind == LOCK_OP_ACQUIRE && co->results.r[i].status == LOCK_QUEUED &&
            lockTableHolder(co->table, op.name, op.name_len, &h) && h.owner.node != co->s->cfg.id &&
            (h.owner.client & 0xffffffffu) == COORD_NODE_CLIENT)
            return true;
    }
    return false;
}

static void onBarrier(void *ctx, const raftNodeResult *res);

static void onWaitPush(uv_timer_t *t) {
    coord *co = t->data;
    if (co->stopping || !raftNodeIsLeader(co->raft)) return;
    struct raftNodeStats st;
    raftNodeStats(co->raft, &st);
    if (st.last_index == co->wait_push_index) raftNodeBarrier(co->raft, onBarrier, NULL);
}

static void fsmApply(void *ctx, uint64_t index, const uint8_t *data, size_t len, buf *out) {
    coord *co = ctx;
    lockTableApply(co->table, index, data, len, &co->results, &co->grants);
    lockResultsEncode(co->results.r, co->results.n, out);
    /* Followers learn of a commit with the leader's next message, at the
     * latest a heartbeat later: a holder elsewhere should learn of its
     * waiter soon, so that it stops sharing the lock. */
    if (co->leader && !co->stopping && !uv_is_active((uv_handle_t *)&co->wait_push) &&
        queuedBehindOtherNode(co, data, len)) {
        struct raftNodeStats st;
        raftNodeStats(co->raft, &st);
        co->wait_push_index = st.last_index;
        uv_timer_start(&co->wait_push, onWaitPush, COORD_WAIT_PUSH_MS, 0);
    }
    for (size_t i = 0; co->leader && i < co->results.n; i++)
        if (co->results.r[i].kind == LOCK_OP_RENEW && co->results.r[i].status == LOCK_OK)
            co->leases_dirty = true;
    for (size_t i = 0; i < co->grants.n; i++) {
        const lockGrant *g = &co->grants.g[i];
        co->grants_seen++;
        if (co->leader && g->ttl_ms) leaseAdd(co, g->name, g->name_len, g->token, g->ttl_ms, index);
        if (g->owner.node != co->s->cfg.id) {
            /* A grant to a waiter in line reaches its node only through
             * that node's apply: push the commit to it now. One granted at
             * once goes back in the results, and a barrier would only delay
             * the entries behind it. */
            if (co->leader && !grantInResults(co, g)) {
                co->push_commit = true;
                coordKick(co);
            }
            continue;
        }
        coordWait *w = NULL;
        if ((uint32_t)(g->owner.client >> 32) == co->run) {
            uint64_t cid = g->owner.client & 0xffffffffu;
            for (coordWait *x = co->waits; x; x = x->next)
                if (x->req == g->req && x->client == cid && x->name.len == g->name_len &&
                    !memcmp(x->name.data, g->name, g->name_len)) {
                    w = x;
                    break;
                }
        }
        if (!w)
            submitRelease(co, &g->owner, g->name, g->name_len, g->token); /* nobody waits for it */
        else if (w->delivered)
            waitRemove(co, w); /* the client has it already */
        else if (co->leader || grantFresh(w))
            waitEnd(co, w, g->token, NULL);
        else
            waitConfirm(co, w, g->token);
    }
}

static int fsmSnapshot(void *ctx, buf *out) {
    coord *co = ctx;
    lockTableEncode(co->table, out);
    return 0;
}

static int fsmRestore(void *ctx, const uint8_t *data, size_t len) {
    coord *co = ctx;
    if (lockTableDecode(co->table, data, len) != 0) return -1;
    /* A snapshot replaces the entries: grants already delivered will not
     * be applied one by one any more. */
    for (coordWait *w = co->waits, *next; w; w = next) {
        next = w->next;
        if (w->delivered) waitRemove(co, w);
    }
    return 0;
}

/* ---- leadership, leases, dead nodes ---- */

static void submitNodeDead(coord *co, uint32_t node) {
    lockOp op = {.kind = LOCK_OP_NODE_DEAD, .req = ++co->next_req, .owner = {node, 0}};
    coordSubmit(co, &op, NULL, 0);
}

static void learnLease(void *ctx, const lockHolder *h) {
    coord *co = ctx;
    if (h->ttl_ms) leaseAdd(co, h->name, h->name_len, h->token, h->ttl_ms, h->granted_index);
    if (h->owner.node != co->s->cfg.id && co->s->cl) {
        int st = clusterMemberState(co->s->cl, h->owner.node, NULL, 0, NULL);
        if (st == GOSSIP_DEAD || st == GOSSIP_LEFT) submitNodeDead(co, h->owner.node);
    }
}

static void onLeaderChange(void *ctx, uint64_t leader_id) {
    coord *co = ctx;
    bool was = co->leader;
    co->leader = leader_id == co->s->cfg.id;
    if (leader_id)
        logInfo("lock coordinator: node %" PRIu64 " leads (term %" PRIu64 ")", leader_id,
                raftNodeTerm(co->raft));
    else
        logInfo("lock coordinator: no leader");
    if (co->leader && !was) {
        /* Every current lease starts now: we cannot know how much of it
         * the old leader had seen run. */
        leasesClear(co);
        lockTableForEachHolder(co->table, learnLease, co);
    } else if (!co->leader) {
        leasesClear(co);
    }
    coordKick(co);
}

/* Gossip declared a member DEAD. A declaration can be wrong and refuted a
 * moment later (a node just back from a partition may hear, or make, a
 * stale claim), and NODE_DEAD would take away the locks of a live node.
 * So the leader waits NODE_DEAD_GRACE_MS and proposes NODE_DEAD only if
 * the member is still DEAD (or has left) then. */
static void onMemberDead(void *ctx, uint32_t id) {
    coord *co = ctx;
    if (!co->leader) return;
    for (size_t i = 0; i < co->ndead; i++)
        if (co->dead[i].id == id) return;
    if (co->ndead == co->capdead) {
        co->capdead = co->capdead ? co->capdead * 2 : 8;
        co->dead = xrealloc(co->dead, co->capdead * sizeof *co->dead);
    }
    co->dead[co->ndead++] = (coordDeadNode){id, timeMonoMs() + NODE_DEAD_GRACE_MS};
}

static void deadCheck(coord *co, uint64_t now) {
    for (size_t i = 0; i < co->ndead;) {
        coordDeadNode d = co->dead[i];
        if (co->leader && now < d.due_ms) {
            i++;
            continue;
        }
        co->dead[i] = co->dead[--co->ndead];
        if (!co->leader) continue; /* the next leader hears of it from gossip */
        int st = co->s->cl ? clusterMemberState(co->s->cl, d.id, NULL, 0, NULL) : -1;
        if (st == GOSSIP_ALIVE || st == GOSSIP_SUSPECT) {
            co->dead_refuted++;
            continue;
        }
        submitNodeDead(co, d.id);
    }
}

static void onExpireResult(coord *co, uint64_t token, const lockResult *r, const char *err) {
    (void)err;
    for (size_t i = 0; i < co->nleases; i++) {
        if (co->leases[i].token != token) continue;
        if (r && r->status == LOCK_OK) {
            bufFree(&co->leases[i].name);
            co->leases[i] = co->leases[--co->nleases];
            co->expired++;
        } else {
            /* Renewed meanwhile (leasesCheck restarts the lease), released
             * (leasesCheck forgets it), or not committed (tried again). */
            co->leases[i].expiring = false;
        }
        break;
    }
}

/* A RENEW may give a lease to a lock that had none. */
static void leaseLearnRenewed(void *ctx, const lockHolder *h) {
    coord *co = ctx;
    if (!h->ttl_ms) return;
    for (size_t i = 0; i < co->nleases; i++)
        if (co->leases[i].token == h->token) return;
    leaseAdd(co, h->name, h->name_len, h->token, h->ttl_ms, h->granted_index);
}

static void leasesCheck(coord *co, uint64_t now) {
    if (co->leases_dirty) {
        co->leases_dirty = false;
        lockTableForEachHolder(co->table, leaseLearnRenewed, co);
    }
    for (size_t i = 0; i < co->nleases;) {
        coordLease *l = &co->leases[i];
        lockHolder h;
        bool held = lockTableHolder(co->table, (const uint8_t *)l->name.data, l->name.len, &h);
        if (!held || h.token != l->token || !h.ttl_ms) { /* released, or renewed without a lease */
            bufFree(&l->name);
            co->leases[i] = co->leases[--co->nleases];
            continue;
        }
        if (h.granted_index != l->granted_index) { /* renewed: the lease starts again */
            l->granted_index = h.granted_index;
            l->deadline_ms = now + h.ttl_ms;
            l->expiring = false;
        }
        if (!l->expiring && now >= l->deadline_ms) {
            l->expiring = true;
            lockOp op = {.kind = LOCK_OP_EXPIRE_LEASE,
                         .req = ++co->next_req,
                         .name = (const uint8_t *)l->name.data,
                         .name_len = l->name.len,
                         .token = l->token,
                         .granted_index = l->granted_index};
            coordSubmit(co, &op, onExpireResult, l->token);
        }
        i++;
    }
}

static void waitsCheck(coord *co, uint64_t now) {
    for (coordWait *w = co->waits; w; w = w->next) {
        if (!w->deadline_ms || w->cancelling || w->delivered || now < w->deadline_ms) continue;
        w->cancelling = true;
        if (!w->submitted) continue; /* ended below */
        lockOp op = {.kind = LOCK_OP_CANCEL,
                     .req = w->req,
                     .name = (const uint8_t *)w->name.data,
                     .name_len = w->name.len,
                     .owner = ownerOf(co, w->client)};
        coordSubmit(co, &op, onCancelResult, w->req);
    }
    for (coordWait *w = co->waits, *next; w; w = next) {
        next = w->next;
        if (w->cancelling && !w->submitted) waitEnd(co, w, 0, NULL);
    }
}

static void onTick(uv_timer_t *t) {
    coord *co = t->data;
    uint64_t now = timeMonoMs();
    if (co->leader) leasesCheck(co, now);
    if (co->ndead) deadCheck(co, now);
    waitsCheck(co, now);
    coordSendQueued(co);
}

static void onBarrier(void *ctx, const raftNodeResult *res) {
    (void)ctx;
    (void)res;
}

/* Deferred work: wake clients, then send what is queued. */
static void onKick(uv_timer_t *t) {
    coord *co = t->data;
    server *s = co->s;
    /* Followers learn that an entry committed with the next message from
     * the leader, a heartbeat away. A grant to a client on another node
     * should not wait for it: an appended barrier carries the commit. */
    if (co->push_commit) {
        co->push_commit = false;
        if (raftNodeIsLeader(co->raft)) raftNodeBarrier(co->raft, onBarrier, NULL);
    }
    /* Take the list: waking a client may run its next command, which may
     * end another wait and add to a fresh list. */
    coordWake *wakes = co->wakes;
    size_t nwakes = co->nwakes;
    co->wakes = NULL;
    co->nwakes = co->capwakes = 0;
    for (size_t i = 0; i < nwakes; i++) {
        coordWake k = wakes[i];
        client *c = k.cb ? NULL : serverFindClient(s, k.client);
        bool wanted = k.cb || (c && c->blocked); /* else gone: OWNER_GONE gives back what it held */
        bool stale = wanted && wakeStale(co, &k);
        free(k.name);
        if (!wanted || stale) continue;
        if (k.cb) {
            k.cb(s, k.cb_ctx, k.token, k.err[0] ? k.err : NULL);
            continue;
        }
        if (k.err[0])
            respAddErrorFmt(c->out, "ERR %s", k.err);
        else if (k.token)
            respAddInt(c->out, (long long)k.token);
        else
            respAddNil(c->out);
        serverUnblock(c);
    }
    free(wakes);
    coordSendQueued(co);
}

static void onStartupClean(coord *co, uint64_t ctx, const lockResult *r, const char *err) {
    (void)ctx;
    if (!r) {
        logWarn("lock coordinator: could not release a previous run's locks (%s); retrying", err);
        submitNodeDead(co, co->s->cfg.id);
        return;
    }
    co->ready = true;
    for (coordWait *w = co->waits; w; w = w->next)
        if (!w->submitted && !w->cancelling) waitSubmit(co, w);
    logInfo("lock coordinator ready");
}

/* ---- start and stop ---- */

int coordStart(server *s, char *err, size_t errlen) {
    /* libraft's TCP transport speaks IPv4 only. */
    struct in_addr v4;
    bool any6 = strcmp(s->cfg.host, "::") == 0;
    if (inet_pton(AF_INET, s->cfg.advertise, &v4) != 1 ||
        (!any6 && inet_pton(AF_INET, s->cfg.host, &v4) != 1 &&
         strcmp(s->cfg.host, "localhost") != 0)) {
        if (s->cfg.use_mutex) {
            snprintf(err, errlen,
                     "--use-mutex 1 needs the lock coordinator, whose Raft transport needs IPv4 "
                     "addresses "
                     "(--host %s, --advertise %s)",
                     s->cfg.host, s->cfg.advertise);
            return -1;
        }
        logWarn(
            "lock coordinator off: its Raft transport needs IPv4 addresses (--host %s); LOCK and "
            "--use-mutex 1 are unavailable on this node",
            s->cfg.host);
        return 0;
    }
    coord *co = xcalloc(1, sizeof *co);
    co->s = s;
    co->table = lockTableCreate();
    lockResultsInit(&co->results);
    lockGrantsInit(&co->grants);
    while (co->run == 0) randombytes_buf(&co->run, sizeof co->run);
    co->run &= 0x7fffffffu;
    if (!co->run) co->run = 1;

    /* The initial configuration: --peers and this node, Raft ports by the
     * common offset. */
    uint64_t ids[COORD_MAX_PEERS];
    char addrs[COORD_MAX_PEERS][300];
    const char *addrp[COORD_MAX_PEERS];
    size_t n = 0;
    char self_addr[300];
    snprintf(self_addr, sizeof self_addr, "%s:%d", s->cfg.advertise, s->cfg.raft_port);
    if (!s->cfg.raft_join) {
        ids[n] = s->cfg.id;
        snprintf(addrs[n], sizeof addrs[n], "%s", self_addr);
        n++;
        char *copy = xstrdup(s->cfg.peers), *save = NULL;
        for (char *e = strtok_r(copy, ",", &save); e && n < COORD_MAX_PEERS;
             e = strtok_r(NULL, ",", &save)) {
            serverPeer p;
            char why[200];
            if (serverParsePeer(e, &p, why, sizeof why) != 0 || p.id == s->cfg.id) continue;
            bool dup = false;
            for (size_t i = 0; i < n; i++) dup = dup || ids[i] == p.id;
            if (dup) continue;
            ids[n] = p.id;
            snprintf(addrs[n], sizeof addrs[n], "%s:%d", p.host,
                     serverRaftPortFor(&s->cfg, p.tcp_port));
            n++;
        }
        free(copy);
    }
    for (size_t i = 0; i < n; i++) addrp[i] = addrs[i];
    uint8_t keys[KEYRING_MAX_KEYS][RAFT_NODE_KEY_BYTES];
    size_t nkeys = s->keys ? keyringCount(s->keys) : 0;
    for (size_t i = 0; i < nkeys; i++) keyringDerive(s->keys, i, "dmkv-raft-v1", keys[i]);
    char bind_addr[300];
    const char *bind_host = any6                                    ? "0.0.0.0"
                            : strcmp(s->cfg.host, "localhost") == 0 ? "127.0.0.1"
                                                                    : s->cfg.host;
    snprintf(bind_addr, sizeof bind_addr, "%s:%d", bind_host, s->cfg.raft_port);
    raftNodeConfig rc = {.id = s->cfg.id,
                         .address = self_addr,
                         .bind_address = bind_addr,
                         .data_dir = s->cfg.data_dir,
                         .npeers = n,
                         .peer_ids = ids,
                         .peer_addresses = addrp,
                         .join = s->cfg.raft_join,
                         .cluster_keys = nkeys ? &keys[0][0] : NULL,
                         .ncluster_keys = nkeys};
    raftNodeFsm fsm = {
        .ctx = co, .apply = fsmApply, .snapshot = fsmSnapshot, .restore = fsmRestore};
    char rerr[400];
    if (raftNodeStart(s->loop, &rc, &fsm, &co->raft, rerr, sizeof rerr) != RAFT_NODE_OK) {
        snprintf(err, errlen, "lock coordinator (Raft on %s): %s", bind_addr, rerr);
        sodium_memzero(keys, sizeof keys);
        lockResultsFree(&co->results);
        lockGrantsFree(&co->grants);
        lockTableFree(co->table);
        free(co);
        return -1;
    }
    sodium_memzero(keys, sizeof keys);
    raftNodeOnLeaderChange(co->raft, onLeaderChange, co);
    uv_timer_init(s->loop, &co->tick);
    uv_timer_init(s->loop, &co->kick);
    uv_timer_init(s->loop, &co->wait_push);
    co->tick.data = co->kick.data = co->wait_push.data = co;
    uv_timer_start(&co->tick, onTick, COORD_TICK_MS, COORD_TICK_MS);
    s->coord = co;
    /* Nothing a previous run of this node held may outlive it. */
    lockOp op = {.kind = LOCK_OP_NODE_DEAD, .req = ++co->next_req, .owner = {s->cfg.id, 0}};
    coordSubmit(co, &op, onStartupClean, 0);
    logInfo("lock coordinator: Raft on %s, %zu initial voters%s", self_addr, n,
            s->cfg.raft_join ? " (waiting to be added)" : "");
    return 0;
}

static void onHandleClosed(uv_handle_t *h) {
    coord *co = h->data;
    if (--co->handles_open > 0) return;
    while (co->queue) opFinish(co, co->queue, NULL, "the node is shutting down");
    /* Serialized writes still waiting for a lock, or for the wake of one,
     * hear that it will not come. */
    for (size_t i = 0; i < co->nwakes; i++) {
        free(co->wakes[i].name);
        if (co->wakes[i].cb)
            co->wakes[i].cb(co->s, co->wakes[i].cb_ctx, 0, "the node is shutting down");
    }
    co->nwakes = 0;
    while (co->waits) {
        coordWait *w = co->waits;
        coordAcquireFn cb = w->cb;
        void *cb_ctx = w->cb_ctx;
        waitRemove(co, w);
        if (cb) cb(co->s, cb_ctx, 0, "the node is shutting down");
    }
    leasesClear(co);
    free(co->leases);
    free(co->dead);
    free(co->wakes);
    lockResultsFree(&co->results);
    lockGrantsFree(&co->grants);
    lockTableFree(co->table);
    void (*done)(void *) = co->stop_done;
    void *ctx = co->stop_ctx;
    free(co);
    if (done) done(ctx);
}

static void onRaftClosed(void *ctx) {
    coord *co = ctx;
    co->handles_open = 3;
    uv_close((uv_handle_t *)&co->tick, onHandleClosed);
    uv_close((uv_handle_t *)&co->kick, onHandleClosed);
    uv_close((uv_handle_t *)&co->wait_push, onHandleClosed);
}

void coordStop(server *s, void (*done)(void *ctx), void *ctx) {
    coord *co = coordOf(s);
    if (!co) {
        if (done) done(ctx);
        return;
    }
    s->coord = NULL;
    co->stopping = true;
    co->stop_done = done;
    co->stop_ctx = ctx;
    uv_timer_stop(&co->tick);
    uv_timer_stop(&co->kick);
    uv_timer_stop(&co->wait_push);
    if (s->cl) clusterOnMemberDead(s->cl, NULL, NULL);
    if (co->fwd) netPeerClose(co->fwd);
    co->fwd = NULL;
    raftNodeClose(co->raft, onRaftClosed, co);
}

void coordWatchMembers(server *s) {
    if (s->coord && s->cl) clusterOnMemberDead(s->cl, onMemberDead, s->coord);
}

void coordClientClosed(server *s, client *c) {
    coord *co = coordOf(s);
    if (!co || !c->holds_locks) return;
    for (coordWait *w = co->waits, *next; w; w = next) {
        next = w->next;
        if (w->client == c->id && !w->cb) waitRemove(co, w);
    }
    lockOp op = {.kind = LOCK_OP_OWNER_GONE, .req = ++co->next_req, .owner = ownerOf(co, c->id)};
    coordSubmit(co, &op, NULL, 0);
}

uint32_t coordLeader(server *s, char *addr, size_t addrlen) {
    coord *co = coordOf(s);
    if (addr && addrlen) addr[0] = '\0';
    if (!co) return 0;
    uint32_t id = (uint32_t)raftNodeLeaderId(co->raft);
    if (!id || !addr) return id;
    if (id == s->cfg.id) {
        snprintf(addr, addrlen, "%s:%d", s->cfg.advertise, s->cfg.tcp_port);
    } else if (s->cl) {
        char host[256];
        int port = 0;
        if (clusterMemberState(s->cl, id, host, sizeof host, &port) >= 0 && port)
            snprintf(addr, addrlen, "%s:%d", host, port);
    }
    return id;
}

void coordInfo(server *s, buf *out) {
    coord *co = coordOf(s);
    if (!co) {
        bufPrintf(out, "coordinator:off\r\n");
        return;
    }
    struct raftNodeStats st;
    raftNodeStats(co->raft, &st);
    char addr[300];
    uint32_t leader = coordLeader(s, addr, sizeof addr);
    size_t waiting = 0;
    for (coordWait *w = co->waits; w; w = w->next) waiting += !w->delivered;
    size_t queued = 0;
    for (coordOp *o = co->queue; o; o = o->next) queued++;
    bufPrintf(out,
              "raft_state:%s\r\nraft_term:%" PRIu64 "\r\nraft_leader:%" PRIu32
              "\r\nraft_leader_addr:%s\r\n"
              "raft_commit_index:%" PRIu64 "\r\nraft_last_applied:%" PRIu64 "\r\nraft_voters:%u\r\n"
              "raft_snapshots_taken:%" PRIu64 "\r\nraft_auth_rejected:%" PRIu64
              "\r\nraft_port:%d\r\n"
              "coordinator_ready:%d\r\nlocks:%zu\r\nlock_waiters:%zu\r\nlast_token:%" PRIu64
              "\r\nlocal_waiting:%zu\r\nops_queued:%zu\r\nops_proposed:%" PRIu64
              "\r\nops_forwarded:%" PRIu64 "\r\nops_retried:%" PRIu64 "\r\nops_given_up:%" PRIu64
              "\r\nlockops_served:%" PRIu64 "\r\ngrants:%" PRIu64 "\r\nleases_expired:%" PRIu64
              "\r\nstale_grants:%" PRIu64 "\r\ngrants_from_results:%" PRIu64
              "\r\ndead_claims_refuted:%" PRIu64 "\r\nstalled_grants:%" PRIu64 "\r\n",
              raftNodeStateName(st.state), st.term, leader, addr, st.commit_index, st.last_applied,
              st.voters, st.snapshots_taken, st.auth_rejected, s->cfg.raft_port, co->ready,
              lockTableLockCount(co->table), lockTableWaiterCount(co->table),
              lockTableLastToken(co->table), waiting, queued, co->proposed, co->forwarded,
              co->retried, co->given_up, co->lockops_served, co->grants_seen, co->expired,
              co->stale_grants, co->grants_from_results, co->dead_refuted, co->stalled_grants);
}

/* ---- serialized writes ---- */

void coordAcquire(server *s, uint64_t client_id, const char *name, size_t len, uint32_t ttl_ms,
                  coordAcquireFn cb, void *ctx) {
    coord *co = coordOf(s);
    if (!co) {
        cb(s, ctx, 0, "the lock coordinator is not running");
        return;
    }
    coordWait *w = waitAdd(co, client_id, name, len, ttl_ms, 0);
    w->cb = cb;
    w->cb_ctx = ctx;
}

void coordRelease(server *s, uint64_t client_id, const char *name, size_t len, uint64_t token) {
    coord *co = coordOf(s);
    if (!co) return;
    lockOwner o = ownerOf(co, client_id);
    submitRelease(co, &o, (const uint8_t *)name, len, token);
}

size_t coordWaiters(server *s, const char *name, size_t len) {
    coord *co = coordOf(s);
    return co ? lockTableWaiters(co->table, (const uint8_t *)name, len, NULL, 0) : 0;
}

/* ---- commands ---- */

static bool argU32(const cmdArg *a, uint32_t max, uint32_t *out) {
    long long v;
    if (!argToLongLong(a, &v) || v < 0 || (unsigned long long)v > max) return false;
    *out = (uint32_t)v;
    return true;
}

static bool lockNameValid(client *c, const cmdArg *a) {
    if (a->len == 0 || a->len > LOCK_NAME_MAX) {
        respAddErrorFmt(c->out, "ERR lock names are 1 to %u bytes", LOCK_NAME_MAX);
        return false;
    }
    return true;
}

static coord *coordFor(client *c) {
    coord *co = coordOf(c->srv);
    if (!co) respAddError(c->out, "ERR the lock coordinator is not running on this node");
    return co;
}

static void onBlockedLockFree(client *c) {
    coordClientClosed(c->srv, c);
}

/* LOCK name [ttl_ms] [wait_ms]: the fencing token once granted, or nil
 * when wait_ms (0: no limit) ran out first. */
void cmdLock(client *c) {
    coord *co = coordFor(c);
    if (!co) return;
    if (c->argc > 4) {
        replyWrongArity(c);
        return;
    }
    uint32_t ttl = 0, wait = 0;
    if (!lockNameValid(c, &c->argv[1])) return;
    if (c->argc > 2 && !argU32(&c->argv[2], LOCK_TTL_MAX_MS, &ttl)) {
        respAddErrorFmt(c->out, "ERR ttl_ms must be an integer from 0 (no lease) to %u",
                        LOCK_TTL_MAX_MS);
        return;
    }
    if (c->argc > 3 && !argU32(&c->argv[3], LOCK_TTL_MAX_MS, &wait)) {
        respAddErrorFmt(c->out, "ERR wait_ms must be an integer from 0 (no limit) to %u",
                        LOCK_TTL_MAX_MS);
        return;
    }
    c->holds_locks = true;
    waitAdd(co, c->id, c->argv[1].p, c->argv[1].len, ttl, wait);
    serverBlock(c, onBlockedLockFree);
}

/* Replies to a blocked client with an op's outcome: 1 done, 0 not held. */
static void onOpForClient(coord *co, uint64_t client_id, const lockResult *r, const char *err) {
    client *c = serverFindClient(co->s, client_id);
    if (!c || !c->blocked) return;
    if (!r)
        respAddErrorFmt(c->out, "ERR %s", err);
    else if (r->status == LOCK_OK)
        respAddInt(c->out, 1);
    else if (r->status == LOCK_ERR_NOT_HOLDER)
        respAddInt(c->out, 0);
    else
        respAddErrorFmt(c->out, "ERR %s", lockStatusMessage((lockStatus)r->status));
    serverUnblock(c);
}

static void cmdLockTokenOp(client *c, lockOpKind kind) {
    coord *co = coordFor(c);
    if (!co) return;
    if (!lockNameValid(c, &c->argv[1])) return;
    long long token;
    if (!argToLongLong(&c->argv[2], &token) || token <= 0) {
        respAddError(c->out, "ERR token must be a positive integer (the reply of LOCK)");
        return;
    }
    uint32_t ttl = 0;
    if (kind == LOCK_OP_RENEW) {
        if (c->argc != 4 || !argU32(&c->argv[3], LOCK_TTL_MAX_MS, &ttl)) {
            respAddErrorFmt(c->out, "ERR RENEW name token ttl_ms, with ttl_ms from 0 to %u",
                            LOCK_TTL_MAX_MS);
            return;
        }
    }
    lockOp op = {.kind = kind,
                 .req = ++co->next_req,
                 .name = (const uint8_t *)c->argv[1].p,
                 .name_len = c->argv[1].len,
                 .owner = ownerOf(co, c->id),
                 .token = (uint64_t)token,
                 .ttl_ms = ttl};
    serverBlock(c, NULL);
    coordSubmit(co, &op, onOpForClient, c->id);
}

/* UNLOCK name token: 1 released, 0 when that token does not hold it. */
void cmdUnlock(client *c) {
    cmdLockTokenOp(c, LOCK_OP_RELEASE);
}

/* RENEW name token ttl_ms: 1 renewed, 0 when that token does not hold it. */
void cmdRenew(client *c) {
    cmdLockTokenOp(c, LOCK_OP_RENEW);
}

static void locksOne(void *ctx, const lockView *v) {
    buf *b = ctx;
    respAddArrayLen(b, 6);
    respAddBulk(b, (const char *)v->holder.name, v->holder.name_len);
    respAddInt(b, v->holder.owner.node);
    respAddInt(b, (long long)(v->holder.owner.client & 0xffffffffu));
    respAddInt(b, (long long)v->holder.token);
    respAddInt(b, v->holder.ttl_ms);
    respAddArrayLen(b, (long long)v->n_waiters);
    for (size_t i = 0; i < v->n_waiters; i++) {
        char who[48];
        int n = snprintf(who, sizeof who, "%" PRIu32 ":%" PRIu64, v->waiters[i].owner.node,
                         v->waiters[i].owner.client & 0xffffffffu);
        respAddBulk(b, who, (size_t)n);
    }
}

/* LOCKS: [name, holder node, holder client, token, ttl_ms, [waiters]] per
 * lock, from this node's copy of the table. */
void cmdLocks(client *c) {
    coord *co = coordFor(c);
    if (!co) return;
    buf b;
    bufInit(&b);
    lockTableForEach(co->table, locksOne, &b);
    respAddArrayLen(c->out, (long long)lockTableLockCount(co->table));
    bufAppend(c->out, b.data, b.len);
    bufFree(&b);
}

/* LEADER: [node id, client address, term], or nil when none is known. */
void cmdLeader(client *c) {
    coord *co = coordFor(c);
    if (!co) return;
    char addr[300];
    uint32_t id = coordLeader(c->srv, addr, sizeof addr);
    if (!id) {
        respAddNilArray(c->out);
        return;
    }
    respAddArrayLen(c->out, 3);
    respAddInt(c->out, id);
    respAddBulk(c->out, addr, strlen(addr));
    respAddInt(c->out, (long long)raftNodeTerm(co->raft));
}

typedef struct raftCmdCtx {
    server *s;
    uint64_t client;
} raftCmdCtx;

static void onRaftCmd(void *ctx, const raftNodeResult *res) {
    raftCmdCtx *x = ctx;
    client *c = serverFindClient(x->s, x->client);
    free(x);
    if (!c || !c->blocked) return;
    if (res->status == RAFT_NODE_OK)
        respAddSimple(c->out, "OK");
    else
        respAddErrorFmt(c->out, "ERR %s", res->err[0] ? res->err : raftNodeStatusName(res->status));
    serverUnblock(c);
}

/* RAFT ADD id host:port | RAFT REMOVE id: membership changes, on the
 * leader. */
void cmdRaft(client *c) {
    coord *co = coordFor(c);
    if (!co) return;
    bool add = argIs(&c->argv[1], "add"), remove = argIs(&c->argv[1], "remove");
    if ((!add && !remove) || (add && c->argc != 4) || (remove && c->argc != 3)) {
        respAddError(c->out, "ERR usage: RAFT ADD id host:raftport | RAFT REMOVE id");
        return;
    }
    long long id;
    if (!argToLongLong(&c->argv[2], &id) || id <= 0 || id > UINT32_MAX) {
        respAddError(c->out, "ERR node id must be 1..4294967295");
        return;
    }
    if (!raftNodeIsLeader(co->raft)) {
        char addr[300];
        uint32_t leader = coordLeader(c->srv, addr, sizeof addr);
        respAddErrorFmt(c->out, "ERR not the leader; run it on node %" PRIu32 " (%s)", leader,
                        addr[0] ? addr : "unknown");
        return;
    }
    char address[RAFT_NODE_MAX_ADDRESS + 1];
    if (add) {
        if (c->argv[3].len == 0 || c->argv[3].len > RAFT_NODE_MAX_ADDRESS ||
            !memchr(c->argv[3].p, ':', c->argv[3].len)) {
            respAddError(c->out, "ERR address must be host:raftport");
            return;
        }
        memcpy(address, c->argv[3].p, c->argv[3].len);
        address[c->argv[3].len] = '\0';
    }
    raftCmdCtx *x = xcalloc(1, sizeof *x);
    x->s = c->srv;
    x->client = c->id;
    int rc = add ? raftNodeAddVoter(co->raft, (uint64_t)id, address, onRaftCmd, x)
                 : raftNodeRemove(co->raft, (uint64_t)id, onRaftCmd, x);
    if (rc != RAFT_NODE_OK) {
        free(x);
        respAddErrorFmt(c->out, "ERR %s", raftNodeErrmsg(co->raft));
        return;
    }
    serverBlock(c, NULL);
}

typedef struct lockopCtx {
    server *s;
    uint64_t client;
} lockopCtx;

static void onLockopProposed(void *ctx, const raftNodeResult *res) {
    lockopCtx *x = ctx;
    client *c = serverFindClient(x->s, x->client);
    free(x);
    if (!c || !c->blocked) return;
    if (res->status == RAFT_NODE_OK)
        respAddBulk(c->out, (const char *)res->data, res->len);
    else
        respAddErrorFmt(c->out, "NOTLEADER %s",
                        res->err[0] ? res->err : raftNodeStatusName(res->status));
    serverUnblock(c);
}

/* DMKV.LOCKOP <sealed batch>: a follower's lock operation, proposed here
 * if this node leads; the reply is the results. */
void cmdLockop(client *c) {
    coord *co = coordOf(c->srv);
    if (!co || !raftNodeIsLeader(co->raft)) {
        respAddError(c->out, "NOTLEADER this node does not lead the lock coordinator");
        return;
    }
    const uint8_t *data = (const uint8_t *)c->argv[1].p;
    size_t len = c->argv[1].len;
    buf opened;
    bufInit(&opened);
    if (c->srv->keys) {
        if (cryptOpen(c->srv->keys, AD_LOCKOP, sizeof AD_LOCKOP - 1, data, len, &opened, NULL) !=
            0) {
            respAddError(c->out, "ERR lock operation not sealed with this cluster's key");
            bufFree(&opened);
            return;
        }
        data = (const uint8_t *)opened.data;
        len = opened.len;
    }
    lockBatchReader rd;
    if (lockBatchOpen(&rd, data, len) != 0) {
        respAddError(c->out, "ERR malformed lock operation");
        bufFree(&opened);
        return;
    }
    lockopCtx *x = xcalloc(1, sizeof *x);
    x->s = c->srv;
    x->client = c->id;
    if (raftNodePropose(co->raft, data, len, onLockopProposed, x) != RAFT_NODE_OK) {
        free(x);
        respAddErrorFmt(c->out, "NOTLEADER %s", raftNodeErrmsg(co->raft));
    } else {
        co->lockops_served++;
        serverBlock(c, NULL);
    }
    bufFree(&opened);
}
