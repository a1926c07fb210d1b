// ctest: replicas_agree crash_restart
/* Deterministic simulation of the replicated lock table (src/lock).
 *
 * Raft itself is not simulated, only what it promises the state machine:
 * one committed log, delivered to each replica as a growing prefix. A
 * leader appends entries (batches of ops from clients, lease expiries and
 * node deaths) and applies each at once to its own table, the oracle;
 * clients act on what the oracle's results and grants tell them, as the
 * glue on their node would. Five replicas receive the log with random
 * delays; partitions cut a replica off for a while; a replica far behind
 * gets the leader's snapshot instead of entries (InstallSnapshot). In
 * crash_restart replicas also crash: the in-memory table is lost, the
 * received log and the last snapshot survive, and the restart decodes the
 * snapshot and replays the suffix (a few entries before it, too, which
 * must be ignored as duplicates). A dead node's owners are cleaned up by
 * NODE_DEAD, proposed when "gossip" notices or when the node restarts.
 *
 * Checked at every step:
 *  - every replica gives, for every entry, the same apply status, results
 *    and grants as the oracle, and after every delivery its snapshot is
 *    byte-identical to the oracle's after the same prefix;
 *  - the clients' view and the table agree exactly: each holder of a lock
 *    is the one client that believes it holds it, with that token, and
 *    each waiter a client that is waiting; so no two clients ever hold
 *    one lock;
 *  - every grant's token is above every earlier one;
 *  - at the end (no new acquires, partitions healed, crashed replicas
 *    back), every wait ended in a grant, a cancel, or its owner going
 *    away, the table is empty, and all replicas equal the oracle.
 *
 *     sim_lock <scenario> [first seed] [seeds]     (default 1, 200)
 *
 * A failure prints the seed; run that seed alone to reproduce it. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lock/lock.h"

#include "simrng.h"

#define N_NODES        5
#define SLOTS_PER_NODE 4
#define N_SLOTS        (N_NODES * SLOTS_PER_NODE)
#define N_NAMES        6
#define MAX_OPS        (N_SLOTS * 2 + N_NAMES * 2 + N_NODES + 4)

#define ACTIVE_STEPS      1500 /* 1 step = 1 ms; new acquires only before this */
#define DRAIN_STEPS       6000 /* then at most this long to settle */
#define SNAPSHOT_EVERY    32   /* entries a replica applies between snapshots */
#define INSTALL_AFTER     200  /* entries behind that make the leader send a snapshot */
#define DEAD_DETECT_STEPS 30   /* from a crash to gossip's NODE_DEAD */

static const char *names[N_NAMES] = {"alpha", "beta", "orders/1", "orders/10", "z", "\x01\xff"};

/* ---- Generator -------------------------------------------------------- */

static bool simChance(simRng *r, unsigned per_mille) {
    return simBelow(r, 1000) < per_mille;
}

/* ---- State ------------------------------------------------------------ */

typedef enum { C_IDLE, C_WAITING, C_HOLDING } clientState;

/* A client connection slot; a new connection in the slot gets a new gen. */
typedef struct client {
    uint32_t node;
    uint32_t local;
    uint64_t gen;
    clientState st;
    int name;
    uint64_t req, token;
    uint32_t ttl_ms;
    uint64_t wait_until, release_at, renew_at;
    bool hung;       /* holds without renewing: only its lease frees it */
    bool retry_next; /* its ACQUIRE is proposed again in the next entry */
    bool waited;     /* this acquisition went through the queue */
} client;

typedef struct logEntry {
    uint64_t index;
    uint64_t time;
    buf data;
    lockApplyStatus status;
    uint64_t digest; /* of the oracle's results and grants */
} logEntry;

typedef struct replica {
    lockTable *t; /* NULL while crashed */
    bool cut;     /* partitioned away */
    size_t received, applied;
    buf snap;
    size_t snap_count; /* entries the snapshot covers; 0: none */
    uint64_t next_delivery, cut_until, restart_at, dead_at;
    bool dead_proposed;
} replica;

typedef struct stats {
    uint64_t entries, ops, grants, waits, waits_granted, cancels, waits_gone, expires,
        stale_expires, renews, retries, crashes, installs, duplicates, node_deads, owner_gones,
        malformed, max_waiters;
} stats;

typedef struct sim {
    uint64_t seed;
    simRng rng;
    bool crashes;
    uint64_t now;
    lockTable *lead;
    logEntry *log;
    size_t n_log, cap_log;
    buf *snaps; /* snaps[i]: the oracle after the first i entries */
    uint64_t last_grant;
    client cl[N_SLOTS];
    replica rep[N_NODES];
    uint64_t next_req;
    uint64_t expired[16]; /* expired tokens (a ring), for stale EXPIREs */
    size_t n_expired;
    lockResults rs, rrs;
    lockGrants gs, rgs;
    stats st;

    /* The entry being composed. */
    lockOp ops[MAX_OPS];
    int op_client[MAX_OPS]; /* -1: the leader's */
    size_t n_ops;
    bool node_dead[N_NODES];
} sim;

static void simFail(const sim *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL (seed %" PRIu64 ", step %" PRIu64 ", entry %zu): ", s->seed, s->now,
            s->n_log);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static lockOwner ownerOf(const client *c) {
    return (lockOwner){c->node, c->gen * SLOTS_PER_NODE + c->local + 1};
}

static client *clientOf(sim *s, lockOwner o) {
    if (o.node == 0 || o.node > N_NODES || o.client == 0) return NULL;
    uint32_t local = (uint32_t)((o.client - 1) % SLOTS_PER_NODE);
    client *c = &s->cl[(o.node - 1) * SLOTS_PER_NODE + local];
    return ownerOf(c).client == o.client ? c : NULL;
}

static bool nodeUp(const sim *s, uint32_t node) {
    return s->rep[node - 1].t != NULL;
}

/* ---- Digest of an apply's outputs --------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h;
}

static uint64_t digestOf(lockApplyStatus st, const lockResults *rs, const lockGrants *gs) {
    uint64_t h = mix(0xcbf29ce484222325ull, st);
    h = mix(h, rs->n);
    for (size_t i = 0; i < rs->n; i++) {
        const lockResult *r = &rs->r[i];
        h = mix(mix(mix(mix(h, r->kind), r->status), r->req), r->token);
    }
    h = mix(h, gs->n);
    for (size_t i = 0; i < gs->n; i++) {
        const lockGrant *g = &gs->g[i];
        for (size_t j = 0; j < g->name_len; j++) h = mix(h, g->name[j]);
        h = mix(mix(mix(mix(mix(h, g->owner.node), g->owner.client), g->req), g->token), g->ttl_ms);
    }
    return h;
}

/* ---- Replicas --------------------------------------------------------- */

static void replicaApply(sim *s, replica *r, size_t i) {
    const logEntry *e = &s->log[i];
    lockApplyStatus st = lockTableApply(r->t, e->index, (const uint8_t *)e->data.data, e->data.len,
                                        &s->rrs, &s->rgs);
    if (st != e->status) simFail(s, "replica status %d, leader %d at entry %zu", st, e->status, i);
    if (digestOf(st, &s->rrs, &s->rgs) != e->digest)
        simFail(s, "replica results or grants differ at entry %zu", i);
}

static void replicaCheck(sim *s, size_t who, replica *r) {
    buf b;
    bufInit(&b);
    lockTableEncode(r->t, &b);
    const buf *want = &s->snaps[r->applied];
    if (b.len != want->len || memcmp(b.data, want->data, b.len) != 0)
        simFail(s, "replica %zu snapshot after %zu entries differs from the leader's", who + 1,
                r->applied);
    bufFree(&b);
}

static void replicaDeliver(sim *s, size_t who) {
    replica *r = &s->rep[who];
    if (!r->t || r->cut || s->now < r->next_delivery) return;
    r->next_delivery = s->now + 1 + simBelow(&s->rng, 15);
    size_t behind = s->n_log - r->received;
    if (behind == 0) return;
    if (behind > INSTALL_AFTER) {
        /* InstallSnapshot: decoded over the stale table. */
        const buf *snap = &s->snaps[s->n_log];
        if (lockTableDecode(r->t, (const uint8_t *)snap->data, snap->len) != 0)
            simFail(s, "replica %zu refused the leader's snapshot", who + 1);
        r->received = r->applied = s->n_log;
        bufClear(&r->snap);
        bufAppend(&r->snap, snap->data, snap->len);
        r->snap_count = s->n_log;
        s->st.installs++;
    } else {
        r->received += 1 + simBelow(&s->rng, behind < 8 ? behind : 8);
        while (r->applied < r->received) replicaApply(s, r, r->applied++);
    }
    /* Raft may hand the same entry over again: it must change nothing. */
    if (simChance(&s->rng, 100)) {
        const logEntry *e = &s->log[r->applied - 1];
        if (lockTableApply(r->t, e->index, (const uint8_t *)e->data.data, e->data.len, &s->rrs,
                           &s->rgs) != LOCK_APPLY_DUPLICATE ||
            s->rrs.n != 0 || s->rgs.n != 0)
            simFail(s, "entry %zu applied twice", r->applied - 1);
        s->st.duplicates++;
    }
    replicaCheck(s, who, r);
    if (r->applied - r->snap_count >= SNAPSHOT_EVERY) {
        bufClear(&r->snap);
        lockTableEncode(r->t, &r->snap);
        r->snap_count = r->applied;
    }
}

static void replicaCrash(sim *s, size_t who) {
    replica *r = &s->rep[who];
    lockTableFree(r->t);
    r->t = NULL;
    r->applied = 0;
    r->cut = false;
    r->restart_at = s->now + 20 + simBelow(&s->rng, 300);
    r->dead_at = s->now + DEAD_DETECT_STEPS;
    r->dead_proposed = false;
    s->st.crashes++;
}

/* From the snapshot and the received log; a few entries the snapshot
 * already covers are replayed too and must be ignored. */
static void replicaRestart(sim *s, size_t who) {
    replica *r = &s->rep[who];
    r->t = lockTableCreate();
    size_t from = 0;
    if (r->snap_count) {
        if (lockTableDecode(r->t, (const uint8_t *)r->snap.data, r->snap.len) != 0)
            simFail(s, "replica %zu cannot decode its own snapshot", who + 1);
        if (lockTableLastApplied(r->t) != s->log[r->snap_count - 1].index)
            simFail(s, "replica %zu snapshot has the wrong last index", who + 1);
        size_t back = simBelow(&s->rng, 4);
        from = r->snap_count > back ? r->snap_count - back : 0;
    }
    for (size_t i = from; i < r->snap_count; i++) {
        const logEntry *e = &s->log[i];
        if (lockTableApply(r->t, e->index, (const uint8_t *)e->data.data, e->data.len, NULL,
                           NULL) != LOCK_APPLY_DUPLICATE)
            simFail(s, "replica %zu re-applied entry %zu after restart", who + 1, i);
    }
    r->applied = r->snap_count;
    while (r->applied < r->received) replicaApply(s, r, r->applied++);
    replicaCheck(s, who, r);
    r->next_delivery = s->now + 1;
}

/* ---- Composing an entry ----------------------------------------------- */

static lockOp *addOp(sim *s, int who, lockOpKind kind) {
    if (s->n_ops == MAX_OPS) simFail(s, "too many ops in one entry");
    s->op_client[s->n_ops] = who;
    lockOp *op = &s->ops[s->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->req = ++s->next_req;
    return op;
}

static void setName(lockOp *op, int name) {
    op->name = (const uint8_t *)names[name];
    op->name_len = strlen(names[name]);
}

static void clientAcquireOp(sim *s, int i) {
    client *c = &s->cl[i];
    lockOp *op = addOp(s, i, LOCK_OP_ACQUIRE);
    setName(op, c->name);
    op->owner = ownerOf(c);
    op->req = c->req;
    op->ttl_ms = c->ttl_ms;
}

/* What client i does this step, if anything. */
static void clientAct(sim *s, int i, bool active) {
    client *c = &s->cl[i];
    lockOp *op;
    if (c->retry_next) {
        /* The proposal went to a leader that lost its job: sent again. */
        c->retry_next = false;
        clientAcquireOp(s, i);
        s->st.retries++;
        return;
    }
    switch (c->st) {
    case C_IDLE:
        if (!active || !simChance(&s->rng, 30)) return;
        c->name = (int)simBelow(&s->rng, N_NAMES);
        c->req = ++s->next_req;
        c->ttl_ms = simChance(&s->rng, 100) ? 0 : 30 + (uint32_t)simBelow(&s->rng, 120);
        c->hung = c->ttl_ms > 0 && simChance(&s->rng, 80);
        c->waited = false;
        clientAcquireOp(s, i);
        if (simChance(&s->rng, 50)) {
            clientAcquireOp(s, i); /* a duplicate committed right behind it */
            s->st.retries++;
        } else if (simChance(&s->rng, 50)) {
            c->retry_next = true;
        }
        return;
    case C_WAITING:
        if (s->now < c->wait_until) return;
        op = addOp(s, i, LOCK_OP_CANCEL);
        setName(op, c->name);
        op->owner = ownerOf(c);
        op->req = c->req;
        return;
    case C_HOLDING:
        if (c->hung) return;
        if (s->now >= c->release_at) {
            op = addOp(s, i, LOCK_OP_RELEASE);
        } else if (c->ttl_ms && s->now >= c->renew_at) {
            op = addOp(s, i, LOCK_OP_RENEW);
            op->ttl_ms = c->ttl_ms;
        } else {
            return;
        }
        setName(op, c->name);
        op->owner = ownerOf(c);
        op->token = c->token;
        return;
    }
}

static uint64_t timeOfIndex(const sim *s, uint64_t index) {
    size_t lo = 0, hi = s->n_log;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->log[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->n_log || s->log[lo].index != index)
        simFail(s, "no entry at index %" PRIu64, index);
    return s->log[lo].time;
}

/* The leader's lease clock: the grant or renewal's entry time + ttl. */
static void expireIfDue(void *ctx, const lockHolder *h) {
    sim *s = ctx;
    if (h->ttl_ms == 0 || s->now < timeOfIndex(s, h->granted_index) + h->ttl_ms) return;
    lockOp *op = addOp(s, -1, LOCK_OP_EXPIRE_LEASE);
    op->name = h->name; /* the entry is encoded before the table changes */
    op->name_len = h->name_len;
    op->token = h->token;
    op->granted_index = h->granted_index;
    s->expired[s->n_expired++ % 16] = h->token;
}

/* ---- Applying at the leader and following the clients ----------------- */

static void clientReset(sim *s, client *c) {
    if (c->st == C_WAITING) s->st.waits_gone++;
    c->st = C_IDLE;
    c->retry_next = false;
    c->gen++;
}

static void startHolding(sim *s, client *c, uint64_t token) {
    if (c->st == C_HOLDING) {
        if (c->token != token) simFail(s, "client told of a second token for one acquisition");
        return;
    }
    if (c->st == C_WAITING) s->st.waits_granted++;
    c->st = C_HOLDING;
    c->token = token;
    c->release_at = s->now + 1 + simBelow(&s->rng, 40);
    c->renew_at = s->now + c->ttl_ms / 2;
}

static void onResult(sim *s, const lockOp *op, int who, const lockResult *r) {
    if (r->kind != op->kind || r->req != op->req) simFail(s, "result does not match its op");
    if (who < 0) {
        bool expire = op->kind == LOCK_OP_EXPIRE || op->kind == LOCK_OP_EXPIRE_LEASE;
        if (expire && r->status == LOCK_OK) {
            client *c = NULL;
            for (int i = 0; i < N_SLOTS; i++)
                if (s->cl[i].st == C_HOLDING && s->cl[i].token == op->token) c = &s->cl[i];
            if (!c) simFail(s, "expired token %" PRIu64 " held by no client", op->token);
            /* A client that renews at half its ttl never loses its lease,
             * unless its node is down and cannot renew. */
            if (!c->hung && nodeUp(s, c->node)) simFail(s, "a lease renewed in time expired");
            c->st = C_IDLE;
            s->st.expires++;
        } else if (expire) {
            s->st.stale_expires++;
        } else if (op->kind == LOCK_OP_NODE_DEAD) {
            for (int i = 0; i < N_SLOTS; i++)
                if (s->cl[i].node == op->owner.node) clientReset(s, &s->cl[i]);
        }
        return;
    }
    client *c = &s->cl[who];
    switch (op->kind) {
    case LOCK_OP_ACQUIRE:
        if (r->status == LOCK_OK) {
            startHolding(s, c, r->token);
        } else if (r->status == LOCK_QUEUED) {
            if (c->st == C_HOLDING) simFail(s, "a holder's retry was queued");
            if (c->st == C_IDLE) {
                c->st = C_WAITING;
                c->waited = true;
                c->wait_until = s->now + 20 + simBelow(&s->rng, 200);
                s->st.waits++;
            }
        } else {
            simFail(s, "ACQUIRE got %s", lockStatusName(r->status));
        }
        break;
    case LOCK_OP_CANCEL:
        if (r->status == LOCK_OK && c->st == C_WAITING) {
            c->st = C_IDLE;
            s->st.cancels++;
        } else if (r->status == LOCK_ALREADY_GRANTED) {
            startHolding(s, c, r->token);
            c->release_at = s->now; /* it gave up: give the lock back at once */
        } else {
            simFail(s, "CANCEL of a waiting client got %s", lockStatusName(r->status));
        }
        break;
    case LOCK_OP_RELEASE:
    case LOCK_OP_RENEW:
        if (r->status == LOCK_OK) {
            if (c->st != C_HOLDING || c->token != op->token) simFail(s, "a non-holder released");
            if (op->kind == LOCK_OP_RELEASE) c->st = C_IDLE;
            if (op->kind == LOCK_OP_RENEW) {
                c->renew_at = s->now + c->ttl_ms / 2;
                s->st.renews++;
            }
        } else if (c->st == C_HOLDING && c->token == op->token) {
            simFail(s, "%s of a valid holder refused", lockOpKindName(op->kind));
        }
        break;
    case LOCK_OP_OWNER_GONE:
        clientReset(s, c);
        break;
    default:
        simFail(s, "client sent %s", lockOpKindName(op->kind));
    }
}

static void onGrant(sim *s, const lockGrant *g) {
    if (g->token <= s->last_grant)
        simFail(s, "token %" PRIu64 " after %" PRIu64, g->token, s->last_grant);
    if (g->token < s->log[s->n_log - 1].index) simFail(s, "token below its entry's index");
    s->last_grant = g->token;
    s->st.grants++;
    client *c = clientOf(s, g->owner);
    if (!c) return; /* its owner went away later in the same entry */
    if (c->st == C_WAITING) {
        if (g->req != c->req || g->name_len != strlen(names[c->name]) ||
            memcmp(g->name, names[c->name], g->name_len) != 0)
            simFail(s, "grant for another request of the client");
        startHolding(s, c, g->token);
    } else if (c->st != C_HOLDING || c->token != g->token) {
        simFail(s, "grant to a client that was not waiting");
    }
}

typedef struct agreeCheck {
    sim *s;
    size_t holders, waiters;
} agreeCheck;

static void checkLock(void *ctx, const lockView *v) {
    agreeCheck *a = ctx;
    sim *s = a->s;
    client *c = clientOf(s, v->holder.owner);
    if (!c || c->st != C_HOLDING || c->token != v->holder.token ||
        v->holder.name_len != strlen(names[c->name]) ||
        memcmp(v->holder.name, names[c->name], v->holder.name_len) != 0)
        simFail(s, "the table's holder of %.*s is not the client that believes it holds it",
                (int)v->holder.name_len, (const char *)v->holder.name);
    for (size_t i = 0; i < v->n_waiters; i++) {
        c = clientOf(s, v->waiters[i].owner);
        if (!c || c->st != C_WAITING || c->req != v->waiters[i].req)
            simFail(s, "the table's waiter %zu of %.*s is not a waiting client", i,
                    (int)v->holder.name_len, (const char *)v->holder.name);
    }
    a->holders++;
    a->waiters += v->n_waiters;
    if (v->n_waiters > s->st.max_waiters) s->st.max_waiters = v->n_waiters;
}

/* Each holder in the table is exactly one client that believes it holds
 * that lock with that token, and each waiter one that waits: together
 * with the counts this means no lock ever has two holders. */
static void checkClientsAgree(sim *s) {
    agreeCheck a = {s, 0, 0};
    lockTableForEach(s->lead, checkLock, &a);
    size_t holding = 0, waiting = 0;
    for (int i = 0; i < N_SLOTS; i++) {
        holding += s->cl[i].st == C_HOLDING;
        waiting += s->cl[i].st == C_WAITING;
    }
    if (holding != a.holders || waiting != a.waiters)
        simFail(s, "%zu clients hold and %zu wait, the table has %zu holders and %zu waiters",
                holding, waiting, a.holders, a.waiters);
}

static void appendEntry(sim *s, const uint8_t *data, size_t len) {
    if (s->n_log == s->cap_log) {
        s->cap_log = s->cap_log ? s->cap_log * 2 : 1024;
        s->log = xrealloc(s->log, s->cap_log * sizeof *s->log);
        s->snaps = xrealloc(s->snaps, (s->cap_log + 1) * sizeof *s->snaps);
    }
    logEntry *e = &s->log[s->n_log];
    /* Raft spends some indexes on entries of its own (barriers, config). */
    uint64_t prev = s->n_log ? s->log[s->n_log - 1].index : 0;
    e->index = prev + 1 + (simChance(&s->rng, 100) ? simBelow(&s->rng, 3) : 0);
    e->time = s->now;
    bufInit(&e->data);
    bufAppend(&e->data, data, len);
    s->n_log++;
    e->status = lockTableApply(s->lead, e->index, data, len, &s->rs, &s->gs);
    e->digest = digestOf(e->status, &s->rs, &s->gs);
    bufInit(&s->snaps[s->n_log]);
    lockTableEncode(s->lead, &s->snaps[s->n_log]);
    s->st.entries++;
}

static void leaderStep(sim *s, bool active) {
    s->n_ops = 0;
    memset(s->node_dead, 0, sizeof s->node_dead);

    /* Node deaths: gossip noticing a crash, a restarted node cleaning up
     * after its previous life, or (replicas_agree) a live node declared
     * dead by mistake. */
    for (uint32_t n = 1; n <= N_NODES; n++) {
        replica *r = &s->rep[n - 1];
        bool dead = false;
        if (!r->dead_proposed && (r->t || s->now >= r->dead_at)) dead = true;
        if (!s->crashes && active && simChance(&s->rng, 1)) dead = true;
        if (dead) {
            addOp(s, -1, LOCK_OP_NODE_DEAD)->owner.node = n;
            s->node_dead[n - 1] = true;
            r->dead_proposed = true;
            s->st.node_deads++;
        }
    }
    lockTableForEachHolder(s->lead, expireIfDue, s);
    if (s->n_expired && simChance(&s->rng, 20)) {
        /* A second expiry of a lease that already ended, in the older
         * form that ignores renewals. */
        uint64_t tok = s->expired[simBelow(&s->rng, s->n_expired < 16 ? s->n_expired : 16)];
        lockOp *op = addOp(s, -1, LOCK_OP_EXPIRE);
        setName(op, (int)simBelow(&s->rng, N_NAMES));
        op->token = tok;
    }
    for (int i = 0; i < N_SLOTS; i++) {
        client *c = &s->cl[i];
        if (!nodeUp(s, c->node) || s->node_dead[c->node - 1]) continue;
        if (active && simChance(&s->rng, 2)) {
            lockOp *op = addOp(s, i, LOCK_OP_OWNER_GONE);
            op->owner = ownerOf(c);
            s->st.owner_gones++;
            continue;
        }
        clientAct(s, i, active);
    }
    if (s->n_ops == 0 && (!active || !simChance(&s->rng, 50))) return;

    if (active && simChance(&s->rng, 3)) {
        /* Garbage in the log: every replica must skip it the same way. */
        uint8_t junk[] = {LOCK_BATCH_V1, 2, 0, 0, 1, 2, 3};
        appendEntry(s, junk, sizeof junk);
        if (s->log[s->n_log - 1].status != LOCK_APPLY_MALFORMED || s->rs.n != 2 ||
            s->rs.r[0].status != LOCK_ERR_MALFORMED || s->gs.n != 0)
            simFail(s, "garbage entry not reported as malformed");
        s->st.malformed++;
    }
    buf b;
    bufInit(&b);
    lockBatchWriter w;
    lockBatchBegin(&w, &b);
    for (size_t i = 0; i < s->n_ops; i++)
        if (lockBatchAdd(&w, &s->ops[i]) != 0) simFail(s, "op refused by the encoder");
    lockBatchEnd(&w);
    appendEntry(s, (const uint8_t *)b.data, b.len);
    bufFree(&b);
    s->st.ops += s->n_ops;

    if (s->n_ops != s->rs.n || s->log[s->n_log - 1].status != LOCK_APPLY_OK)
        simFail(s, "%zu results for %zu ops", s->rs.n, s->n_ops);
    for (size_t i = 0; i < s->n_ops; i++) onResult(s, &s->ops[i], s->op_client[i], &s->rs.r[i]);
    for (size_t i = 0; i < s->gs.n; i++) onGrant(s, &s->gs.g[i]);
    checkClientsAgree(s);
}

/* ---- Faults ----------------------------------------------------------- */

static void faultStep(sim *s, bool active) {
    for (size_t i = 0; i < N_NODES; i++) {
        replica *r = &s->rep[i];
        if (!r->t) {
            if (s->now >= r->restart_at) replicaRestart(s, i);
            continue;
        }
        if (r->cut && (s->now >= r->cut_until || !active)) r->cut = false;
        if (!active) continue;
        if (!r->cut && simChance(&s->rng, 2)) {
            r->cut = true;
            r->cut_until = s->now + 50 + simBelow(&s->rng, 400);
        }
        if (s->crashes && simChance(&s->rng, 2)) replicaCrash(s, i);
    }
}

static bool settled(const sim *s) {
    for (int i = 0; i < N_SLOTS; i++)
        if (s->cl[i].st != C_IDLE || s->cl[i].retry_next) return false;
    for (int i = 0; i < N_NODES; i++)
        if (!s->rep[i].t || s->rep[i].applied != s->n_log) return false;
    return lockTableLockCount(s->lead) == 0;
}

/* ---- One run ---------------------------------------------------------- */

static void statsAdd(stats *t, const stats *s) {
    t->entries += s->entries;
    t->ops += s->ops;
    t->grants += s->grants;
    t->waits += s->waits;
    t->waits_granted += s->waits_granted;
    t->cancels += s->cancels;
    t->waits_gone += s->waits_gone;
    t->expires += s->expires;
    t->stale_expires += s->stale_expires;
    t->renews += s->renews;
    t->retries += s->retries;
    t->crashes += s->crashes;
    t->installs += s->installs;
    t->duplicates += s->duplicates;
    t->node_deads += s->node_deads;
    t->owner_gones += s->owner_gones;
    t->malformed += s->malformed;
    if (s->max_waiters > t->max_waiters) t->max_waiters = s->max_waiters;
}

static void simRun(uint64_t seed, bool crashes, stats *total) {
    sim *s = xcalloc(1, sizeof *s);
    s->seed = seed;
    s->rng.s = seed * 0x9e3779b97f4a7c15ull + 17;
    s->crashes = crashes;
    s->lead = lockTableCreate();
    lockResultsInit(&s->rs);
    lockResultsInit(&s->rrs);
    lockGrantsInit(&s->gs);
    lockGrantsInit(&s->rgs);
    s->snaps = xcalloc(1, sizeof *s->snaps);
    bufInit(&s->snaps[0]);
    lockTableEncode(s->lead, &s->snaps[0]);
    for (uint32_t i = 0; i < N_SLOTS; i++) {
        s->cl[i].node = i / SLOTS_PER_NODE + 1;
        s->cl[i].local = i % SLOTS_PER_NODE;
    }
    for (int i = 0; i < N_NODES; i++) {
        s->rep[i].t = lockTableCreate();
        s->rep[i].dead_proposed = true; /* nothing to clean up before a first crash */
        bufInit(&s->rep[i].snap);
    }

    for (s->now = 0;; s->now++) {
        bool active = s->now < ACTIVE_STEPS;
        faultStep(s, active);
        leaderStep(s, active);
        for (size_t i = 0; i < N_NODES; i++) replicaDeliver(s, i);
        if (!active && settled(s)) break;
        if (s->now >= ACTIVE_STEPS + DRAIN_STEPS)
            simFail(s, "not settled %d ms after the last acquire: %zu locks, %zu waiters",
                    DRAIN_STEPS, lockTableLockCount(s->lead), lockTableWaiterCount(s->lead));
    }
    for (size_t i = 0; i < N_NODES; i++) replicaCheck(s, i, &s->rep[i]);
    if (s->st.waits != s->st.waits_granted + s->st.cancels + s->st.waits_gone)
        simFail(
            s, "%" PRIu64 " waits but %" PRIu64 " granted, %" PRIu64 " cancelled, %" PRIu64 " gone",
            s->st.waits, s->st.waits_granted, s->st.cancels, s->st.waits_gone);

    statsAdd(total, &s->st);

    for (size_t i = 0; i < s->n_log; i++) bufFree(&s->log[i].data);
    for (size_t i = 0; i <= s->n_log; i++) bufFree(&s->snaps[i]);
    for (int i = 0; i < N_NODES; i++) {
        lockTableFree(s->rep[i].t);
        bufFree(&s->rep[i].snap);
    }
    free(s->log);
    free(s->snaps);
    lockTableFree(s->lead);
    lockResultsFree(&s->rs);
    lockResultsFree(&s->rrs);
    lockGrantsFree(&s->gs);
    lockGrantsFree(&s->rgs);
    free(s);
}

static double wallSecs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sim_lock replicas_agree|crash_restart [first seed] [seeds]\n");
        return 2;
    }
    const char *sc = argv[1];
    uint64_t first = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
    uint64_t count = argc > 3 ? strtoull(argv[3], NULL, 0) : 200;
    if (getenv("SIM_SEED")) {
        first = strtoull(getenv("SIM_SEED"), NULL, 0);
        count = 1;
    }
    bool crashes;
    if (strcmp(sc, "replicas_agree") == 0)
        crashes = false;
    else if (strcmp(sc, "crash_restart") == 0)
        crashes = true;
    else {
        fprintf(stderr, "sim_lock: unknown scenario '%s'\n", sc);
        return 2;
    }
    double w0 = wallSecs();
    stats t;
    memset(&t, 0, sizeof t);
    for (uint64_t seed = first; seed < first + count; seed++) simRun(seed, crashes, &t);
    printf("%s: PASS (seeds %" PRIu64 "..%" PRIu64 ", %.2f s wall)\n", sc, first, first + count - 1,
           wallSecs() - w0);
    printf("  entries %" PRIu64 ", ops %" PRIu64 ", grants %" PRIu64 ", waits %" PRIu64
           " (granted %" PRIu64 ", cancelled %" PRIu64 ", owner gone %" PRIu64 ")\n",
           t.entries, t.ops, t.grants, t.waits, t.waits_granted, t.cancels, t.waits_gone);
    printf("  expired %" PRIu64 " (stale expires %" PRIu64 "), renewed %" PRIu64
           ", retries %" PRIu64 ", owner gone %" PRIu64 ", node dead %" PRIu64 "\n",
           t.expires, t.stale_expires, t.renews, t.retries, t.owner_gones, t.node_deads);
    printf("  crashes %" PRIu64 ", snapshot installs %" PRIu64 ", duplicate deliveries %" PRIu64
           ", malformed entries %" PRIu64 ", longest queue %" PRIu64 "\n",
           t.crashes, t.installs, t.duplicates, t.malformed, t.max_waiters);
    return 0;
}
