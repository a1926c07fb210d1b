/* The lock table state machine and its snapshot; see lock.h for the rules.
 *
 * Replicas must agree byte for byte, so nothing observable may depend on
 * memory layout or on the history of a replica's hash tables (a replica
 * restored from a snapshot has a different history than one that applied
 * every entry). Lookups go through hash tables; anything that visits more
 * than one lock, and so decides the order of grants and tokens, sorts by
 * name first. Queues are linked lists in FIFO order, which is part of the
 * state.
 *
 * Each place in a lock (holder or waiter) is one entry, linked both into
 * its lock (as the holder, or in the queue) and into its owner's list, so
 * a disconnect or a node death touches only the entries it removes,
 * never the whole table. */
#include "lock/lock.h"
#include "lock/wire.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct lockRec lockRec;
typedef struct ownerRec ownerRec;
typedef struct lockEntry lockEntry;

struct lockEntry {
    lockRec *lk;
    ownerRec *own;
    uint64_t req;
    uint64_t token;         /* holder only */
    uint64_t granted_index; /* holder only */
    uint32_t ttl_ms;
    lockEntry *qprev, *qnext; /* the lock's queue; waiters only */
    lockEntry *oprev, *onext; /* the owner's places */
};

struct lockRec {
    lockRec *hnext;
    uint64_t hash;
    lockEntry *holder; /* never NULL while the lock is in the table */
    lockEntry *qhead, *qtail;
    uint32_t n_waiters;
    uint16_t name_len;
    uint8_t name[]; /* name_len bytes and a NUL */
};

struct ownerRec {
    ownerRec *hnext;
    lockOwner owner;
    lockEntry *head;
    size_t n;
};

struct lockTable {
    lockRec **locks; /* hash buckets */
    size_t lock_mask, n_locks;
    ownerRec **owners;
    size_t owner_mask, n_owners;
    size_t n_waiters;
    uint64_t last_applied, last_token;

    /* The entry being applied. */
    uint64_t index;
    lockGrants *grants;

    /* Reused by owner and node evictions. */
    lockEntry **scratch;
    size_t scratch_cap;
};

#define INITIAL_BUCKETS 64

/* ---- Hashing ---------------------------------------------------------- */

static uint64_t hashName(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hashOwner(lockOwner o) {
    uint64_t z = o.client ^ ((uint64_t)o.node << 32 | o.node);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool ownerEqual(lockOwner a, lockOwner b) {
    return a.node == b.node && a.client == b.client;
}

static int nameCompare(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* ---- Locks by name ---------------------------------------------------- */

static lockRec *lockFind(const lockTable *t, const uint8_t *name, size_t len) {
    if (len == 0 || len > LOCK_NAME_MAX) return NULL;
    uint64_t h = hashName(name, len);
    for (lockRec *l = t->locks[h & t->lock_mask]; l; l = l->hnext)
        if (l->hash == h && l->name_len == len && memcmp(l->name, name, len) == 0) return l;
    return NULL;
}

static void lockBucketsGrow(lockTable *t) {
    size_t n = (t->lock_mask + 1) * 2;
    lockRec **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i <= t->lock_mask; i++) {
        lockRec *l = t->locks[i];
        while (l) {
            lockRec *next = l->hnext;
            l->hnext = b[l->hash & (n - 1)];
            b[l->hash & (n - 1)] = l;
            l = next;
        }
    }
    free(t->locks);
    t->locks = b;
    t->lock_mask = n - 1;
}

/* A lock with no holder yet: the caller installs one at once. */
static lockRec *lockInsert(lockTable *t, const uint8_t *name, size_t len) {
    assert(len > 0 && len <= LOCK_NAME_MAX);
    if (t->n_locks >= t->lock_mask + 1) lockBucketsGrow(t);
    lockRec *l = xcalloc(1, sizeof *l + len + 1);
    l->hash = hashName(name, len);
    l->name_len = (uint16_t)len;
    memcpy(l->name, name, len);
    l->hnext = t->locks[l->hash & t->lock_mask];
    t->locks[l->hash & t->lock_mask] = l;
    t->n_locks++;
    return l;
}

static void lockRemove(lockTable *t, lockRec *l) {
    assert(!l->holder && !l->qhead);
    lockRec **pp = &t->locks[l->hash & t->lock_mask];
    while (*pp != l) pp = &(*pp)->hnext;
    *pp = l->hnext;
    t->n_locks--;
    free(l);
}

static int lockPtrCompare(const void *a, const void *b) {
    const lockRec *x = *(lockRec *const *)a, *y = *(lockRec *const *)b;
    return nameCompare(x->name, x->name_len, y->name, y->name_len);
}

/* Every lock, in name order; the caller frees the array. */
static lockRec **locksSorted(const lockTable *t) {
    lockRec **v = xmalloc(t->n_locks * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i <= t->lock_mask; i++)
        for (lockRec *l = t->locks[i]; l; l = l->hnext) v[n++] = l;
    assert(n == t->n_locks);
    qsort(v, n, sizeof *v, lockPtrCompare);
    return v;
}

/* ---- Owners ----------------------------------------------------------- */

static ownerRec *ownerFind(const lockTable *t, lockOwner o) {
    for (ownerRec *r = t->owners[hashOwner(o) & t->owner_mask]; r; r = r->hnext)
        if (ownerEqual(r->owner, o)) return r;
    return NULL;
}

static void ownerBucketsGrow(lockTable *t) {
    size_t n = (t->owner_mask + 1) * 2;
    ownerRec **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i <= t->owner_mask; i++) {
        ownerRec *r = t->owners[i];
        while (r) {
            ownerRec *next = r->hnext;
            size_t at = hashOwner(r->owner) & (n - 1);
            r->hnext = b[at];
            b[at] = r;
            r = next;
        }
    }
    free(t->owners);
    t->owners = b;
    t->owner_mask = n - 1;
}

static ownerRec *ownerGet(lockTable *t, lockOwner o) {
    ownerRec *r = ownerFind(t, o);
    if (r) return r;
    if (t->n_owners >= t->owner_mask + 1) ownerBucketsGrow(t);
    r = xcalloc(1, sizeof *r);
    r->owner = o;
    size_t at = hashOwner(o) & t->owner_mask;
    r->hnext = t->owners[at];
    t->owners[at] = r;
    t->n_owners++;
    return r;
}

static void ownerRemove(lockTable *t, ownerRec *r) {
    assert(r->n == 0 && !r->head);
    ownerRec **pp = &t->owners[hashOwner(r->owner) & t->owner_mask];
    while (*pp != r) pp = &(*pp)->hnext;
    *pp = r->hnext;
    t->n_owners--;
    free(r);
}

/* ---- Entries ---------------------------------------------------------- */

/* A new place for owner in lock l, linked into the owner's list only. */
static lockEntry *entryNew(lockTable *t, lockRec *l, lockOwner o, uint64_t req, uint32_t ttl_ms) {
    ownerRec *own = ownerGet(t, o);
    lockEntry *e = xcalloc(1, sizeof *e);
    e->lk = l;
    e->own = own;
    e->req = req;
    e->ttl_ms = ttl_ms;
    e->onext = own->head;
    if (own->head) own->head->oprev = e;
    own->head = e;
    own->n++;
    return e;
}

/* Unlinks e from its owner (dropping an owner with no places left) and
 * frees it; the caller has already unlinked it from its lock. */
static void entryFree(lockTable *t, lockEntry *e) {
    ownerRec *own = e->own;
    if (e->oprev)
        e->oprev->onext = e->onext;
    else
        own->head = e->onext;
    if (e->onext) e->onext->oprev = e->oprev;
    own->n--;
    if (own->n == 0) ownerRemove(t, own);
    free(e);
}

static void queueAppend(lockTable *t, lockRec *l, lockEntry *e) {
    e->qprev = l->qtail;
    e->qnext = NULL;
    if (l->qtail)
        l->qtail->qnext = e;
    else
        l->qhead = e;
    l->qtail = e;
    l->n_waiters++;
    t->n_waiters++;
}

static void queueUnlink(lockTable *t, lockRec *l, lockEntry *e) {
    if (e->qprev)
        e->qprev->qnext = e->qnext;
    else
        l->qhead = e->qnext;
    if (e->qnext)
        e->qnext->qprev = e->qprev;
    else
        l->qtail = e->qprev;
    e->qprev = e->qnext = NULL;
    l->n_waiters--;
    t->n_waiters--;
}

/* The owner's place in l (holder or waiter), or NULL. Walks whichever is
 * shorter, the owner's places or the lock's queue. */
static lockEntry *placeFind(const lockTable *t, lockRec *l, lockOwner o) {
    if (ownerEqual(l->holder->own->owner, o)) return l->holder;
    ownerRec *own = ownerFind(t, o);
    if (!own) return NULL;
    if (own->n <= l->n_waiters) {
        for (lockEntry *e = own->head; e; e = e->onext)
            if (e->lk == l) return e;
    } else {
        for (lockEntry *e = l->qhead; e; e = e->qnext)
            if (e->own == own) return e;
    }
    return NULL;
}

/* ---- Grants and releases ---------------------------------------------- */

static void grantsAdd(lockGrants *gs, const lockRec *l, const lockEntry *e) {
    if (gs->n == gs->cap) {
        gs->cap = gs->cap ? gs->cap * 2 : 16;
        gs->g = xrealloc(gs->g, gs->cap * sizeof *gs->g);
    }
    lockGrant *g = &gs->g[gs->n++];
    g->name = NULL; /* set once the names buffer stops moving */
    g->name_len = l->name_len;
    g->owner = e->own->owner;
    g->req = e->req;
    g->token = e->token;
    g->ttl_ms = e->ttl_ms;
    bufAppend(&gs->names, l->name, l->name_len);
}

/* The fresh token a grant would take now: max(index, last + 1), so tokens
 * strictly increase even when one entry grants several times; 0 once
 * tokens are spent (past LOCK_TOKEN_MAX). */
static uint64_t nextToken(const lockTable *t) {
    if (t->last_token >= LOCK_TOKEN_MAX || t->index > LOCK_TOKEN_MAX) return 0;
    return t->index > t->last_token ? t->index : t->last_token + 1;
}

/* Makes e the holder of l with the next token (nextToken must not be 0). */
static void grant(lockTable *t, lockRec *l, lockEntry *e) {
    uint64_t token = nextToken(t);
    assert(token > t->last_token);
    t->last_token = token;
    l->holder = e;
    e->token = token;
    e->granted_index = t->index;
    if (t->grants) grantsAdd(t->grants, l, e);
}

/* Drops l's holder and grants l to the first waiter, or forgets l. */
static void releaseHolder(lockTable *t, lockRec *l) {
    entryFree(t, l->holder);
    l->holder = NULL;
    lockEntry *next = l->qhead;
    if (!next) {
        lockRemove(t, l);
        return;
    }
    if (!nextToken(t)) { /* tokens spent: nobody can be granted, the waiters go */
        while (l->qhead) {
            lockEntry *w = l->qhead;
            queueUnlink(t, l, w);
            entryFree(t, w);
        }
        lockRemove(t, l);
        return;
    }
    queueUnlink(t, l, next);
    grant(t, l, next);
}

static int entryPtrCompare(const void *a, const void *b) {
    const lockEntry *x = *(lockEntry *const *)a, *y = *(lockEntry *const *)b;
    if (x->lk == y->lk) return 0;
    return nameCompare(x->lk->name, x->lk->name_len, y->lk->name, y->lk->name_len);
}

static void scratchAdd(lockTable *t, size_t *n, lockEntry *e) {
    if (*n == t->scratch_cap) {
        t->scratch_cap = t->scratch_cap ? t->scratch_cap * 2 : 64;
        t->scratch = xrealloc(t->scratch, t->scratch_cap * sizeof *t->scratch);
    }
    t->scratch[(*n)++] = e;
}

/* Removes the n places in t->scratch. Lock by lock in name order, so the
 * grants this causes come in the same order on every replica; within a
 * lock the waiters go first, so a holder leaving never promotes a waiter
 * that is leaving too. */
static void evictScratch(lockTable *t, size_t n) {
    if (n == 0) return;
    qsort(t->scratch, n, sizeof *t->scratch, entryPtrCompare);
    size_t i = 0;
    while (i < n) {
        lockRec *l = t->scratch[i]->lk;
        size_t end = i;
        bool holder_leaves = false;
        while (end < n && t->scratch[end]->lk == l) {
            lockEntry *e = t->scratch[end++];
            if (e == l->holder) {
                holder_leaves = true;
                continue;
            }
            queueUnlink(t, l, e);
            entryFree(t, e);
        }
        if (holder_leaves) releaseHolder(t, l);
        i = end;
    }
}

/* ---- Operations ------------------------------------------------------- */

static void opAcquire(lockTable *t, const lockOp *op, lockResult *res) {
    lockRec *l = lockFind(t, op->name, op->name_len);
    if (!l) {
        if (t->n_locks >= LOCK_MAX_LOCKS || !nextToken(t)) {
            res->status = LOCK_ERR_FULL;
            return;
        }
        l = lockInsert(t, op->name, op->name_len);
        grant(t, l, entryNew(t, l, op->owner, op->req, op->ttl_ms));
        res->status = LOCK_OK;
        res->token = l->holder->token;
        return;
    }
    lockEntry *e = placeFind(t, l, op->owner);
    if (e == l->holder) {
        res->status = LOCK_OK;
        res->token = e->token;
        return;
    }
    if (e) {
        res->status = LOCK_QUEUED;
        return;
    }
    if (l->n_waiters >= LOCK_MAX_WAITERS || t->n_waiters >= LOCK_MAX_WAITERS_TOTAL) {
        res->status = LOCK_ERR_FULL;
        return;
    }
    queueAppend(t, l, entryNew(t, l, op->owner, op->req, op->ttl_ms));
    res->status = LOCK_QUEUED;
}

/* The lock op names, if that owner holds it with that token. */
static lockRec *heldBy(const lockTable *t, const lockOp *op, bool check_owner) {
    lockRec *l = lockFind(t, op->name, op->name_len);
    if (!l || l->holder->token != op->token) return NULL;
    if (check_owner && !ownerEqual(l->holder->own->owner, op->owner)) return NULL;
    return l;
}

static void opRelease(lockTable *t, const lockOp *op, lockResult *res, bool check_owner) {
    lockRec *l = heldBy(t, op, check_owner);
    if (!l) {
        res->status = LOCK_ERR_NOT_HOLDER;
        return;
    }
    res->status = LOCK_OK;
    res->token = op->token;
    releaseHolder(t, l);
}

static void opExpireLease(lockTable *t, const lockOp *op, lockResult *res) {
    lockRec *l = heldBy(t, op, false);
    if (!l || l->holder->granted_index != op->granted_index) {
        res->status = LOCK_ERR_NOT_HOLDER;
        return;
    }
    res->status = LOCK_OK;
    res->token = op->token;
    releaseHolder(t, l);
}

static void opRenew(lockTable *t, const lockOp *op, lockResult *res) {
    lockRec *l = heldBy(t, op, true);
    if (!l) {
        res->status = LOCK_ERR_NOT_HOLDER;
        return;
    }
    l->holder->ttl_ms = op->ttl_ms;
    l->holder->granted_index = t->index;
    res->status = LOCK_OK;
    res->token = op->token;
}

static void opCancel(lockTable *t, const lockOp *op, lockResult *res) {
    lockRec *l = lockFind(t, op->name, op->name_len);
    lockEntry *e = l ? placeFind(t, l, op->owner) : NULL;
    if (!e || e->req != op->req) {
        res->status = LOCK_ERR_NOT_WAITING;
        return;
    }
    if (e == l->holder) {
        res->status = LOCK_ALREADY_GRANTED;
        res->token = e->token;
        return;
    }
    queueUnlink(t, l, e);
    entryFree(t, e);
    res->status = LOCK_OK;
}

static void opOwnerGone(lockTable *t, const lockOp *op, lockResult *res) {
    ownerRec *own = ownerFind(t, op->owner);
    size_t n = 0;
    if (own)
        for (lockEntry *e = own->head; e; e = e->onext) scratchAdd(t, &n, e);
    evictScratch(t, n);
    res->status = LOCK_OK;
}

static void opNodeDead(lockTable *t, const lockOp *op, lockResult *res) {
    size_t n = 0;
    for (size_t i = 0; i <= t->owner_mask; i++)
        for (ownerRec *r = t->owners[i]; r; r = r->hnext)
            if (r->owner.node == op->owner.node)
                for (lockEntry *e = r->head; e; e = e->onext) scratchAdd(t, &n, e);
    evictScratch(t, n);
    res->status = LOCK_OK;
}

static void applyOp(lockTable *t, const lockOp *op, lockResult *res) {
    res->kind = (uint8_t)op->kind;
    res->req = op->req;
    res->token = 0;
    switch (op->kind) {
    case LOCK_OP_ACQUIRE:
        opAcquire(t, op, res);
        break;
    case LOCK_OP_RELEASE:
        opRelease(t, op, res, true);
        break;
    case LOCK_OP_EXPIRE:
        opRelease(t, op, res, false);
        break;
    case LOCK_OP_EXPIRE_LEASE:
        opExpireLease(t, op, res);
        break;
    case LOCK_OP_RENEW:
        opRenew(t, op, res);
        break;
    case LOCK_OP_CANCEL:
        opCancel(t, op, res);
        break;
    case LOCK_OP_OWNER_GONE:
        opOwnerGone(t, op, res);
        break;
    case LOCK_OP_NODE_DEAD:
        opNodeDead(t, op, res);
        break;
    }
}

static lockResult *resultsAdd(lockResults *rs) {
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->r = xrealloc(rs->r, rs->cap * sizeof *rs->r);
    }
    lockResult *r = &rs->r[rs->n++];
    memset(r, 0, sizeof *r);
    return r;
}

lockApplyStatus lockTableApply(lockTable *t, uint64_t index, const uint8_t *data, size_t len,
                               lockResults *results, lockGrants *grants) {
    if (results) results->n = 0;
    if (grants) {
        grants->n = 0;
        bufClear(&grants->names);
    }
    if (index <= t->last_applied) return LOCK_APPLY_DUPLICATE;
    t->last_applied = index;
    t->index = index;
    t->grants = grants;

    lockApplyStatus st = LOCK_APPLY_OK;
    lockBatchReader r;
    if (lockBatchOpen(&r, data, len) != 0) {
        st = LOCK_APPLY_MALFORMED;
    } else {
        lockOp op;
        lockResult scrap;
        for (uint16_t i = 0; i < r.count; i++) {
            lockResult *res = results ? resultsAdd(results) : &scrap;
            if (lockBatchNext(&r, &op) != 1) {
                /* This op and every later one: kind 0, req 0. */
                memset(res, 0, sizeof *res);
                res->status = LOCK_ERR_MALFORMED;
                st = LOCK_APPLY_MALFORMED;
                continue;
            }
            applyOp(t, &op, res);
        }
    }

    /* The names buffer is complete: point each grant at its name. */
    if (grants) {
        size_t off = 0;
        for (size_t i = 0; i < grants->n; i++) {
            grants->g[i].name = (const uint8_t *)grants->names.data + off;
            off += grants->g[i].name_len;
        }
    }
    t->grants = NULL;
    return st;
}

/* ---- Life cycle ------------------------------------------------------- */

lockTable *lockTableCreate(void) {
    lockTable *t = xcalloc(1, sizeof *t);
    t->locks = xcalloc(INITIAL_BUCKETS, sizeof *t->locks);
    t->lock_mask = INITIAL_BUCKETS - 1;
    t->owners = xcalloc(INITIAL_BUCKETS, sizeof *t->owners);
    t->owner_mask = INITIAL_BUCKETS - 1;
    return t;
}

void lockTableFree(lockTable *t) {
    if (!t) return;
    for (size_t i = 0; i <= t->lock_mask; i++) {
        lockRec *l = t->locks[i];
        while (l) {
            lockRec *next = l->hnext;
            free(l->holder);
            for (lockEntry *e = l->qhead, *en; e; e = en) {
                en = e->qnext;
                free(e);
            }
            free(l);
            l = next;
        }
    }
    for (size_t i = 0; i <= t->owner_mask; i++) {
        ownerRec *r = t->owners[i];
        while (r) {
            ownerRec *next = r->hnext;
            free(r);
            r = next;
        }
    }
    free(t->locks);
    free(t->owners);
    free(t->scratch);
    free(t);
}

void lockGrantsInit(lockGrants *gs) {
    gs->g = NULL;
    gs->n = gs->cap = 0;
    bufInit(&gs->names);
}

void lockGrantsFree(lockGrants *gs) {
    free(gs->g);
    bufFree(&gs->names);
    lockGrantsInit(gs);
}

/* ---- Queries ---------------------------------------------------------- */

static void holderView(const lockRec *l, lockHolder *h) {
    const lockEntry *e = l->holder;
    h->name = l->name;
    h->name_len = l->name_len;
    h->owner = e->own->owner;
    h->req = e->req;
    h->token = e->token;
    h->ttl_ms = e->ttl_ms;
    h->granted_index = e->granted_index;
}

bool lockTableHolder(const lockTable *t, const uint8_t *name, size_t name_len, lockHolder *out) {
    const lockRec *l = lockFind(t, name, name_len);
    if (!l) return false;
    if (out) holderView(l, out);
    return true;
}

static size_t waitersCopy(const lockRec *l, lockWaiter *out, size_t max) {
    size_t i = 0;
    for (const lockEntry *e = l->qhead; e && i < max; e = e->qnext, i++) {
        out[i].owner = e->own->owner;
        out[i].req = e->req;
        out[i].ttl_ms = e->ttl_ms;
    }
    return i;
}

size_t lockTableWaiters(const lockTable *t, const uint8_t *name, size_t name_len, lockWaiter *out,
                        size_t max) {
    const lockRec *l = lockFind(t, name, name_len);
    if (!l) return 0;
    waitersCopy(l, out, max);
    return l->n_waiters;
}

void lockTableForEachHolder(const lockTable *t, void (*fn)(void *ctx, const lockHolder *h),
                            void *ctx) {
    lockRec **v = locksSorted(t);
    for (size_t i = 0; i < t->n_locks; i++) {
        lockHolder h;
        holderView(v[i], &h);
        fn(ctx, &h);
    }
    free(v);
}

void lockTableForEach(const lockTable *t, void (*fn)(void *ctx, const lockView *v), void *ctx) {
    lockRec **v = locksSorted(t);
    lockWaiter *w = NULL;
    size_t wcap = 0;
    for (size_t i = 0; i < t->n_locks; i++) {
        if (v[i]->n_waiters > wcap) {
            wcap = v[i]->n_waiters;
            w = xrealloc(w, wcap * sizeof *w);
        }
        lockView view;
        holderView(v[i], &view.holder);
        view.n_waiters = waitersCopy(v[i], w, wcap);
        view.waiters = w;
        fn(ctx, &view);
    }
    free(w);
    free(v);
}

size_t lockTableLockCount(const lockTable *t) {
    return t->n_locks;
}

size_t lockTableWaiterCount(const lockTable *t) {
    return t->n_waiters;
}

uint64_t lockTableLastApplied(const lockTable *t) {
    return t->last_applied;
}

uint64_t lockTableLastToken(const lockTable *t) {
    return t->last_token;
}

/* ---- Snapshot --------------------------------------------------------- */

/* Smallest encodings, to bound counts by the bytes left before looping. */
#define SNAP_HOLDER_BYTES (4 + 8 + 8 + 8 + 4 + 8)
#define SNAP_WAITER_BYTES (4 + 8 + 8 + 4)
#define SNAP_LOCK_MIN     (2 + 1 + SNAP_HOLDER_BYTES + 4)

void lockTableEncode(const lockTable *t, buf *out) {
    putLE(out, LOCK_SNAPSHOT_V1, 1);
    putLE(out, t->last_applied, 8);
    putLE(out, t->last_token, 8);
    putLE(out, t->n_locks, 4);
    lockRec **v = locksSorted(t);
    for (size_t i = 0; i < t->n_locks; i++) {
        const lockRec *l = v[i];
        const lockEntry *h = l->holder;
        putLE(out, l->name_len, 2);
        bufAppend(out, l->name, l->name_len);
        putLE(out, h->own->owner.node, 4);
        putLE(out, h->own->owner.client, 8);
        putLE(out, h->req, 8);
        putLE(out, h->token, 8);
        putLE(out, h->ttl_ms, 4);
        putLE(out, h->granted_index, 8);
        putLE(out, l->n_waiters, 4);
        for (const lockEntry *e = l->qhead; e; e = e->qnext) {
            putLE(out, e->own->owner.node, 4);
            putLE(out, e->own->owner.client, 8);
            putLE(out, e->req, 8);
            putLE(out, e->ttl_ms, 4);
        }
    }
    free(v);
}

/* Reads an owner and the req and ttl every place has, and links a new
 * place for it into l's owner list; NULL when the owner is invalid or
 * already has a place in l. Places of one lock are decoded together and
 * pushed at the head of their owner's list, so a second place of the same
 * owner in l would find the first at the head. */
static lockEntry *snapPlace(lockTable *t, cursor *c, lockRec *l, bool holder) {
    uint64_t node, client, req, token = 0, ttl, granted = 0;
    if (!getLE(c, 4, &node) || !getLE(c, 8, &client) || !getLE(c, 8, &req)) return NULL;
    if (holder && !getLE(c, 8, &token)) return NULL;
    if (!getLE(c, 4, &ttl)) return NULL;
    if (holder && !getLE(c, 8, &granted)) return NULL;
    lockOwner o = {(uint32_t)node, client};
    if (o.node == 0) return NULL;
    if (holder && (token == 0 || token > t->last_token || granted > t->last_applied)) return NULL;
    ownerRec *own = ownerFind(t, o);
    if (own && own->head && own->head->lk == l) return NULL;
    lockEntry *e = entryNew(t, l, o, req, (uint32_t)ttl);
    e->token = token;
    e->granted_index = granted;
    return e;
}

/* One lock; prev is the lock before it, whose name must sort lower. */
static lockRec *snapLock(lockTable *t, cursor *c, const lockRec *prev) {
    uint64_t name_len, n_waiters;
    if (!getLE(c, 2, &name_len) || name_len == 0 || name_len > LOCK_NAME_MAX ||
        c->len - c->pos < name_len)
        return NULL;
    const uint8_t *name = c->p + c->pos;
    c->pos += name_len;
    if (prev && nameCompare(prev->name, prev->name_len, name, name_len) >= 0) return NULL;
    lockRec *l = lockInsert(t, name, name_len);
    /* From here l is in the table, so lockTableFree reclaims it on failure. */
    l->holder = snapPlace(t, c, l, true);
    if (!l->holder) {
        lockRemove(t, l);
        return NULL;
    }
    if (!getLE(c, 4, &n_waiters) || n_waiters > LOCK_MAX_WAITERS ||
        n_waiters > (c->len - c->pos) / SNAP_WAITER_BYTES ||
        t->n_waiters + n_waiters > LOCK_MAX_WAITERS_TOTAL)
        return NULL;
    for (uint64_t i = 0; i < n_waiters; i++) {
        lockEntry *e = snapPlace(t, c, l, false);
        if (!e) return NULL;
        queueAppend(t, l, e);
    }
    return l;
}

int lockTableDecode(lockTable *t, const uint8_t *p, size_t len) {
    cursor c = {p, len, 0};
    uint64_t format, n_locks;
    lockTable *fresh = lockTableCreate();
    if (!getLE(&c, 1, &format) || format != LOCK_SNAPSHOT_V1 ||
        !getLE(&c, 8, &fresh->last_applied) || !getLE(&c, 8, &fresh->last_token) ||
        fresh->last_token > LOCK_TOKEN_MAX || !getLE(&c, 4, &n_locks) || n_locks > LOCK_MAX_LOCKS ||
        n_locks > (len - c.pos) / SNAP_LOCK_MIN)
        goto err;
    const lockRec *prev = NULL;
    for (uint64_t i = 0; i < n_locks; i++) {
        prev = snapLock(fresh, &c, prev);
        if (!prev) goto err;
    }
    if (c.pos != len) goto err;

    lockTable old = *t;
    *t = *fresh;
    *fresh = old;
    lockTableFree(fresh);
    return 0;
err:
    lockTableFree(fresh);
    return -1;
}
