/* Unit tests of the lock table state machine and its wire forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lock/lock.h"

/* ---- Helpers ---------------------------------------------------------- */

/* A table and the outputs of its last apply. Each apply uses the next
 * Raft index unless told otherwise. */
typedef struct fixture {
    lockTable *t;
    uint64_t index;
    lockResults rs;
    lockGrants gs;
    lockApplyStatus last;
} fixture;

static fixture *fixtureNew(void) {
    fixture *f = calloc(1, sizeof *f);
    f->t = lockTableCreate();
    lockResultsInit(&f->rs);
    lockGrantsInit(&f->gs);
    return f;
}

static void fixtureFree(fixture *f) {
    lockTableFree(f->t);
    lockResultsFree(&f->rs);
    lockGrantsFree(&f->gs);
    free(f);
}

static lockOwner own(uint32_t node, uint64_t client) {
    return (lockOwner){node, client};
}

static lockOp acquireOp(const char *name, lockOwner o, uint64_t req, uint32_t ttl_ms) {
    return (lockOp){.kind = LOCK_OP_ACQUIRE,
                    .req = req,
                    .name = (const uint8_t *)name,
                    .name_len = strlen(name),
                    .owner = o,
                    .ttl_ms = ttl_ms};
}

static lockOp releaseOp(const char *name, lockOwner o, uint64_t token) {
    return (lockOp){.kind = LOCK_OP_RELEASE,
                    .req = 900,
                    .name = (const uint8_t *)name,
                    .name_len = strlen(name),
                    .owner = o,
                    .token = token};
}

static lockOp cancelOp(const char *name, lockOwner o, uint64_t req) {
    return (lockOp){.kind = LOCK_OP_CANCEL,
                    .req = req,
                    .name = (const uint8_t *)name,
                    .name_len = strlen(name),
                    .owner = o};
}

static lockOp expireOp(const char *name, uint64_t token) {
    return (lockOp){.kind = LOCK_OP_EXPIRE,
                    .req = 901,
                    .name = (const uint8_t *)name,
                    .name_len = strlen(name),
                    .token = token};
}

static lockOp expireLeaseOp(const char *name, uint64_t token, uint64_t granted_index) {
    return (lockOp){.kind = LOCK_OP_EXPIRE_LEASE,
                    .req = 903,
                    .name = (const uint8_t *)name,
                    .name_len = strlen(name),
                    .token = token,
                    .granted_index = granted_index};
}

static lockOp renewOp(const char *name, lockOwner o, uint64_t token, uint32_t ttl_ms) {
    return (lockOp){.kind = LOCK_OP_RENEW,
                    .req = 902,
                    .name = (const uint8_t *)name,
                    .name_len = strlen(name),
                    .owner = o,
                    .token = token,
                    .ttl_ms = ttl_ms};
}

static lockOp ownerGoneOp(lockOwner o) {
    return (lockOp){.kind = LOCK_OP_OWNER_GONE, .req = 903, .owner = o};
}

static lockOp nodeDeadOp(uint32_t node) {
    return (lockOp){.kind = LOCK_OP_NODE_DEAD, .req = 904, .owner = {node, 0}};
}

static void encodeBatch(buf *b, const lockOp *ops, size_t n) {
    lockBatchWriter w;
    lockBatchBegin(&w, b);
    for (size_t i = 0; i < n; i++) assert_int_equal(lockBatchAdd(&w, &ops[i]), 0);
    lockBatchEnd(&w);
}

/* Applies ops as one entry at the given index. */
static void applyAt(fixture *f, uint64_t index, const lockOp *ops, size_t n) {
    buf b;
    bufInit(&b);
    encodeBatch(&b, ops, n);
    f->last = lockTableApply(f->t, index, (const uint8_t *)b.data, b.len, &f->rs, &f->gs);
    if (index > f->index) f->index = index;
    bufFree(&b);
}

static void applyOps(fixture *f, const lockOp *ops, size_t n) {
    applyAt(f, f->index + 1, ops, n);
    assert_int_equal(f->rs.n, n);
}

/* Applies one op as its own entry and returns its result. */
static lockResult apply1(fixture *f, lockOp op) {
    applyOps(f, &op, 1);
    return f->rs.r[0];
}

static lockHolder holderOf(fixture *f, const char *name) {
    lockHolder h;
    assert_true(lockTableHolder(f->t, (const uint8_t *)name, strlen(name), &h));
    return h;
}

static bool isHeld(fixture *f, const char *name) {
    return lockTableHolder(f->t, (const uint8_t *)name, strlen(name), NULL);
}

static size_t waitersOf(fixture *f, const char *name, lockWaiter *w, size_t max) {
    return lockTableWaiters(f->t, (const uint8_t *)name, strlen(name), w, max);
}

static void assertGrant(const lockGrant *g, const char *name, lockOwner o, uint64_t req,
                        uint64_t token) {
    assert_int_equal(g->name_len, strlen(name));
    assert_memory_equal(g->name, name, g->name_len);
    assert_int_equal(g->owner.node, o.node);
    assert_int_equal(g->owner.client, o.client);
    assert_int_equal(g->req, req);
    assert_int_equal(g->token, token);
}

static void assertResultsEqual(const lockResult *a, const lockResult *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].kind, b[i].kind);
        assert_int_equal(a[i].status, b[i].status);
        assert_int_equal(a[i].req, b[i].req);
        assert_int_equal(a[i].token, b[i].token);
    }
}

static void snapshotOf(const lockTable *t, buf *b) {
    bufInit(b);
    lockTableEncode(t, b);
}

/* ---- Acquire, release, queue ------------------------------------------ */

static void test_acquire_of_a_free_lock_grants_with_the_entry_index_as_token(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    f->index = 41;
    lockResult r = apply1(f, acquireOp("orders", own(1, 7), 11, 5000));
    assert_int_equal(r.status, LOCK_OK);
    assert_int_equal(r.kind, LOCK_OP_ACQUIRE);
    assert_int_equal(r.req, 11);
    assert_int_equal(r.token, 42);
    assert_int_equal(f->gs.n, 1);
    assertGrant(&f->gs.g[0], "orders", own(1, 7), 11, 42);
    assert_int_equal(f->gs.g[0].ttl_ms, 5000);
    lockHolder h = holderOf(f, "orders");
    assert_int_equal(h.owner.node, 1);
    assert_int_equal(h.owner.client, 7);
    assert_int_equal(h.token, 42);
    assert_int_equal(h.ttl_ms, 5000);
    assert_int_equal(h.granted_index, 42);
    assert_int_equal(lockTableLockCount(f->t), 1);
    assert_int_equal(lockTableLastToken(f->t), 42);
    assert_int_equal(lockTableLastApplied(f->t), 42);
    fixtureFree(f);
}

static void test_waiters_are_granted_in_fifo_order(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t tok = apply1(f, acquireOp("k", own(1, 1), 1, 0)).token;
    assert_int_equal(apply1(f, acquireOp("k", own(2, 1), 2, 100)).status, LOCK_QUEUED);
    assert_int_equal(f->gs.n, 0);
    assert_int_equal(apply1(f, acquireOp("k", own(3, 1), 3, 200)).status, LOCK_QUEUED);
    assert_int_equal(apply1(f, acquireOp("k", own(1, 2), 4, 300)).status, LOCK_QUEUED);
    lockWaiter w[4];
    assert_int_equal(waitersOf(f, "k", w, 4), 3);
    assert_int_equal(w[0].owner.node, 2);
    assert_int_equal(w[1].owner.node, 3);
    assert_int_equal(w[2].owner.client, 2);
    assert_int_equal(lockTableWaiterCount(f->t), 3);

    lockOwner expect[] = {own(2, 1), own(3, 1), own(1, 2)};
    uint64_t reqs[] = {2, 3, 4};
    for (int i = 0; i < 3; i++) {
        lockOwner holder = i == 0 ? own(1, 1) : expect[i - 1];
        lockResult r = apply1(f, releaseOp("k", holder, tok));
        assert_int_equal(r.status, LOCK_OK);
        assert_int_equal(f->gs.n, 1);
        assertGrant(&f->gs.g[0], "k", expect[i], reqs[i], f->index);
        assert_int_equal(f->gs.g[0].ttl_ms, 100 * (i + 1));
        tok = f->gs.g[0].token;
        assert_int_equal(holderOf(f, "k").granted_index, f->index);
    }
    assert_int_equal(apply1(f, releaseOp("k", own(1, 2), tok)).status, LOCK_OK);
    assert_int_equal(f->gs.n, 0);
    assert_false(isHeld(f, "k"));
    assert_int_equal(lockTableLockCount(f->t), 0);
    assert_int_equal(lockTableWaiterCount(f->t), 0);
    fixtureFree(f);
}

static void test_release_with_wrong_token_or_owner_is_refused(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t tok = apply1(f, acquireOp("k", own(1, 1), 1, 0)).token;
    apply1(f, acquireOp("k", own(2, 1), 2, 0));
    buf before, after;
    snapshotOf(f->t, &before);
    lockResult r = apply1(f, releaseOp("k", own(1, 1), tok + 1));
    assert_int_equal(r.status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(r.token, 0);
    assert_int_equal(apply1(f, releaseOp("k", own(2, 1), tok)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(apply1(f, releaseOp("k", own(1, 2), tok)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(apply1(f, releaseOp("other", own(1, 1), tok)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(f->gs.n, 0);
    snapshotOf(f->t, &after);
    /* Only the last applied index (bytes 1-8) moved. */
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data + 9, after.data + 9, before.len - 9);
    assert_int_equal(holderOf(f, "k").token, tok);
    bufFree(&before);
    bufFree(&after);
    fixtureFree(f);
}

static void test_expire_applies_only_to_the_current_token(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t t1 = apply1(f, acquireOp("k", own(1, 1), 1, 1000)).token;
    apply1(f, acquireOp("k", own(2, 1), 2, 1000));
    lockResult r = apply1(f, expireOp("k", t1));
    assert_int_equal(r.status, LOCK_OK);
    assert_int_equal(r.token, t1);
    assert_int_equal(f->gs.n, 1);
    uint64_t t2 = f->gs.g[0].token;
    assertGrant(&f->gs.g[0], "k", own(2, 1), 2, f->index);
    /* A second EXPIRE of the old token (a leader retrying) changes nothing. */
    r = apply1(f, expireOp("k", t1));
    assert_int_equal(r.status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(f->gs.n, 0);
    assert_int_equal(holderOf(f, "k").token, t2);
    /* The expired holder cannot release or renew any more. */
    assert_int_equal(apply1(f, releaseOp("k", own(1, 1), t1)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(apply1(f, renewOp("k", own(1, 1), t1, 10)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(apply1(f, expireOp("k", t2)).status, LOCK_OK);
    assert_false(isHeld(f, "k"));
    fixtureFree(f);
}

static void test_renew_extends_only_the_holders_lease(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t tok = apply1(f, acquireOp("k", own(1, 1), 1, 1000)).token;
    f->index = 20;
    lockResult r = apply1(f, renewOp("k", own(1, 1), tok, 3000));
    assert_int_equal(r.status, LOCK_OK);
    assert_int_equal(r.token, tok);
    lockHolder h = holderOf(f, "k");
    assert_int_equal(h.ttl_ms, 3000);
    assert_int_equal(h.granted_index, 21);
    assert_int_equal(h.token, tok); /* a renewal is not a new grant */
    assert_int_equal(f->gs.n, 0);
    assert_int_equal(apply1(f, renewOp("k", own(2, 1), tok, 9)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(apply1(f, renewOp("k", own(1, 1), tok + 1, 9)).status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(holderOf(f, "k").ttl_ms, 3000);
    fixtureFree(f);
}

/* The leader times a lease from the entry that started it; a RENEW
 * committed after the leader decided the lease ran out, but before its
 * EXPIRE_LEASE, keeps the lock: the expiry names a lease that is gone. */
static void test_expire_lease_spares_a_lease_renewed_after_the_leader_decided(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t tok = apply1(f, acquireOp("k", own(1, 1), 1, 1000)).token;
    apply1(f, acquireOp("k", own(2, 1), 2, 1000));
    uint64_t started = holderOf(f, "k").granted_index;
    assert_int_equal(apply1(f, renewOp("k", own(1, 1), tok, 1000)).status, LOCK_OK);
    uint64_t renewed = holderOf(f, "k").granted_index;
    assert_true(renewed > started);
    lockResult r = apply1(f, expireLeaseOp("k", tok, started));
    assert_int_equal(r.status, LOCK_ERR_NOT_HOLDER);
    assert_int_equal(r.token, 0);
    assert_int_equal(f->gs.n, 0);
    assert_int_equal(holderOf(f, "k").token, tok);
    /* Wrong token, right lease: refused too. */
    assert_int_equal(apply1(f, expireLeaseOp("k", tok + 1, renewed)).status, LOCK_ERR_NOT_HOLDER);
    /* The renewed lease itself, once it runs out, expires and the waiter
     * is granted. */
    r = apply1(f, expireLeaseOp("k", tok, renewed));
    assert_int_equal(r.status, LOCK_OK);
    assert_int_equal(r.token, tok);
    assert_int_equal(f->gs.n, 1);
    assertGrant(&f->gs.g[0], "k", own(2, 1), 2, f->index);
    /* The older EXPIRE, still replayed from old logs, ignores renewals. */
    uint64_t t2 = f->gs.g[0].token;
    assert_int_equal(apply1(f, renewOp("k", own(2, 1), t2, 1000)).status, LOCK_OK);
    assert_int_equal(apply1(f, expireOp("k", t2)).status, LOCK_OK);
    assert_false(isHeld(f, "k"));
    fixtureFree(f);
}

/* Tokens stop at LOCK_TOKEN_MAX: the last grant takes it, after which a
 * free lock is refused and a released lock's waiters are dropped; every
 * table the apply produces still encodes to a snapshot that decodes, and
 * a snapshot claiming more is refused. */
static void test_tokens_stop_at_the_maximum_and_nothing_wraps(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    lockOwner a = own(1, 1), b = own(2, 1), c = own(3, 1);
    uint64_t ta = apply1(f, acquireOp("k", a, 1, 0)).token;
    apply1(f, acquireOp("k", b, 2, 0));
    apply1(f, acquireOp("k", c, 3, 0));
    buf snap;
    snapshotOf(f->t, &snap);
    uint64_t last = LOCK_TOKEN_MAX - 1; /* bytes 9..16: the last token */
    for (int i = 0; i < 8; i++) snap.data[9 + i] = (char)(uint8_t)(last >> (8 * i));
    assert_int_equal(lockTableDecode(f->t, (uint8_t *)snap.data, snap.len), 0);
    /* a leaves: b gets the very last token; then nobody can be granted. */
    apply1(f, ownerGoneOp(a));
    assert_int_equal(f->gs.n, 1);
    uint64_t tb = f->gs.g[0].token;
    assert_true(tb == LOCK_TOKEN_MAX && tb > ta);
    assert_int_equal(lockTableLastToken(f->t), LOCK_TOKEN_MAX);
    assert_int_equal(apply1(f, acquireOp("other", a, 4, 0)).status, LOCK_ERR_FULL);
    assert_int_equal(apply1(f, releaseOp("k", b, tb)).status, LOCK_OK);
    assert_int_equal(f->gs.n, 0);
    assert_false(isHeld(f, "k"));
    assert_int_equal(lockTableWaiters(f->t, (const uint8_t *)"k", 1, NULL, 0), 0);
    assert_int_equal(lockTableLockCount(f->t), 0);
    /* What the table holds now round-trips; one token more does not. */
    bufFree(&snap);
    snapshotOf(f->t, &snap);
    lockTable *t2 = lockTableCreate();
    assert_int_equal(lockTableDecode(t2, (uint8_t *)snap.data, snap.len), 0);
    uint64_t over = LOCK_TOKEN_MAX + 1;
    for (int i = 0; i < 8; i++) snap.data[9 + i] = (char)(uint8_t)(over >> (8 * i));
    assert_int_equal(lockTableDecode(t2, (uint8_t *)snap.data, snap.len), -1);
    lockTableFree(t2);
    bufFree(&snap);
    fixtureFree(f);
}

/* ---- Owners and nodes going away -------------------------------------- */

static void test_owner_gone_releases_holds_and_waits_and_promotes_next_waiters(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    lockOwner gone = own(1, 5), b = own(2, 1), c = own(3, 1);
    lockOp setup[] = {
        acquireOp("m", gone, 1, 0), acquireOp("m", b, 2, 0),    /* b waits behind gone */
        acquireOp("a", b, 3, 0),    acquireOp("a", gone, 4, 0), /* gone waits behind b */
        acquireOp("a", c, 5, 0),    acquireOp("z", gone, 6, 0), /* nobody behind gone */
    };
    applyOps(f, setup, 6);
    assert_int_equal(lockTableWaiterCount(f->t), 3);
    f->index = 20;
    lockResult r = apply1(f, ownerGoneOp(gone));
    assert_int_equal(r.status, LOCK_OK);
    /* m goes to b; z is forgotten; gone leaves a's queue, c moves up. */
    assert_int_equal(f->gs.n, 1);
    assertGrant(&f->gs.g[0], "m", b, 2, 21);
    assert_false(isHeld(f, "z"));
    lockWaiter w[4];
    assert_int_equal(waitersOf(f, "a", w, 4), 1);
    assert_int_equal(w[0].owner.node, 3);
    assert_int_equal(waitersOf(f, "m", w, 4), 0);
    assert_int_equal(lockTableLockCount(f->t), 2);
    assert_int_equal(lockTableWaiterCount(f->t), 1);
    /* Nothing of it is left to remove. */
    assert_int_equal(apply1(f, ownerGoneOp(gone)).status, LOCK_OK);
    assert_int_equal(f->gs.n, 0);
    fixtureFree(f);
}

static void test_node_dead_releases_every_owner_on_the_node_in_name_order(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    lockOwner d1 = own(4, 1), d2 = own(4, 2), live = own(5, 1), live2 = own(6, 9);
    lockOp setup[] = {
        acquireOp("b", d1, 1, 0),   acquireOp("b", d2, 2, 0), /* d2 must not inherit b */
        acquireOp("b", live, 3, 0), acquireOp("a", d2, 4, 0), acquireOp("a", live2, 5, 0),
        acquireOp("c", live, 6, 0), acquireOp("c", d1, 7, 0),
    };
    applyOps(f, setup, 7);
    f->index = 99;
    apply1(f, nodeDeadOp(4));
    /* Grants in name order, with increasing tokens from index 100. */
    assert_int_equal(f->gs.n, 2);
    assertGrant(&f->gs.g[0], "a", live2, 5, 100);
    assertGrant(&f->gs.g[1], "b", live, 3, 101);
    assert_int_equal(holderOf(f, "c").owner.node, 5);
    assert_int_equal(waitersOf(f, "c", NULL, 0), 0);
    assert_int_equal(lockTableWaiterCount(f->t), 0);
    assert_int_equal(lockTableLastToken(f->t), 101);
    /* The next entry still gets its own index: tokens keep increasing. */
    lockResult r = apply1(f, acquireOp("d", live, 8, 0));
    assert_int_equal(r.token, 102);
    r = apply1(f, acquireOp("e", live, 9, 0));
    assert_int_equal(r.token, 103);
    fixtureFree(f);
}

static void test_several_grants_in_one_entry_get_distinct_increasing_tokens(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    f->index = 9;
    lockOp ops[] = {acquireOp("x", own(1, 1), 1, 0), acquireOp("y", own(1, 1), 2, 0),
                    acquireOp("x", own(2, 1), 3, 0)};
    applyOps(f, ops, 3);
    assert_int_equal(f->rs.r[0].token, 10);
    assert_int_equal(f->rs.r[1].token, 11);
    assert_int_equal(f->rs.r[2].status, LOCK_QUEUED);
    /* x granted twice in one entry (a release, then the promoted waiter's
     * owner goes away): the two holders never share a token. */
    apply1(f, acquireOp("x", own(3, 1), 4, 0));
    f->index = 11; /* the next entry is 12, not above the last token + 1 */
    lockOp chain[] = {releaseOp("x", own(1, 1), 10), ownerGoneOp(own(2, 1))};
    applyOps(f, chain, 2);
    assert_int_equal(f->gs.n, 2);
    assertGrant(&f->gs.g[0], "x", own(2, 1), 3, 12);
    assertGrant(&f->gs.g[1], "x", own(3, 1), 4, 13);
    assert_int_equal(holderOf(f, "x").token, 13);
    fixtureFree(f);
}

/* ---- Retries and cancellation ----------------------------------------- */

static void test_acquire_retry_with_same_req_does_not_double_queue(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t tok = apply1(f, acquireOp("k", own(1, 1), 1, 0)).token;
    /* The holder retrying gets the token it has: no second grant. */
    lockResult r = apply1(f, acquireOp("k", own(1, 1), 1, 0));
    assert_int_equal(r.status, LOCK_OK);
    assert_int_equal(r.token, tok);
    assert_int_equal(f->gs.n, 0);
    assert_int_equal(apply1(f, acquireOp("k", own(2, 1), 2, 0)).status, LOCK_QUEUED);
    assert_int_equal(apply1(f, acquireOp("k", own(3, 1), 3, 0)).status, LOCK_QUEUED);
    /* The first waiter retrying stays first, and is queued once. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(apply1(f, acquireOp("k", own(2, 1), 2, 0)).status, LOCK_QUEUED);
    lockWaiter w[8];
    assert_int_equal(waitersOf(f, "k", w, 8), 2);
    assert_int_equal(w[0].owner.node, 2);
    assert_int_equal(w[0].req, 2);
    assert_int_equal(w[1].owner.node, 3);
    /* Both in one entry: also one place. */
    lockOp twice[] = {acquireOp("n", own(4, 1), 7, 0), acquireOp("n", own(4, 1), 7, 0)};
    applyOps(f, twice, 2);
    assert_int_equal(f->rs.r[0].token, f->rs.r[1].token);
    assert_int_equal(f->gs.n, 1);
    fixtureFree(f);
}

static void test_cancel_removes_a_waiter_but_reports_an_existing_grant(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    uint64_t tok = apply1(f, acquireOp("k", own(1, 1), 1, 0)).token;
    apply1(f, acquireOp("k", own(2, 1), 2, 0));
    apply1(f, acquireOp("k", own(3, 1), 3, 0));
    /* Still waiting: removed, and the queue closes up. */
    lockResult r = apply1(f, cancelOp("k", own(2, 1), 2));
    assert_int_equal(r.status, LOCK_OK);
    assert_int_equal(r.token, 0);
    lockWaiter w[4];
    assert_int_equal(waitersOf(f, "k", w, 4), 1);
    assert_int_equal(w[0].owner.node, 3);
    /* Again: it has no place any more. */
    assert_int_equal(apply1(f, cancelOp("k", own(2, 1), 2)).status, LOCK_ERR_NOT_WAITING);
    /* Granted meanwhile: the result says so, with the token to release. */
    apply1(f, releaseOp("k", own(1, 1), tok));
    uint64_t t3 = f->gs.g[0].token;
    r = apply1(f, cancelOp("k", own(3, 1), 3));
    assert_int_equal(r.status, LOCK_ALREADY_GRANTED);
    assert_int_equal(r.token, t3);
    assert_int_equal(holderOf(f, "k").token, t3);
    /* A stale cancel (another req) never touches a newer place. */
    assert_int_equal(apply1(f, cancelOp("k", own(3, 1), 2)).status, LOCK_ERR_NOT_WAITING);
    apply1(f, acquireOp("k", own(4, 1), 10, 0));
    assert_int_equal(apply1(f, cancelOp("k", own(4, 1), 9)).status, LOCK_ERR_NOT_WAITING);
    assert_int_equal(waitersOf(f, "k", NULL, 0), 1);
    assert_int_equal(apply1(f, cancelOp("nope", own(4, 1), 10)).status, LOCK_ERR_NOT_WAITING);
    fixtureFree(f);
}

/* ---- Limits ----------------------------------------------------------- */

static void test_name_length_is_validated(void **state) {
    (void)state;
    char name[LOCK_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[LOCK_NAME_MAX] = '\0';
    lockOp op = acquireOp(name, own(1, 1), 1, 0);
    assert_null(lockOpCheck(&op));
    op.name_len = LOCK_NAME_MAX + 1;
    assert_non_null(lockOpCheck(&op));
    assert_string_equal(lockOpCheck(&op), "lock name is longer than 512 bytes");
    op.name_len = 0;
    assert_string_equal(lockOpCheck(&op), "lock name is empty");
    op = acquireOp("k", own(0, 1), 1, 0);
    assert_non_null(lockOpCheck(&op));
    buf b;
    bufInit(&b);
    assert_int_equal(lockOpEncode(&b, &op), -1);
    assert_int_equal(b.len, 0);

    /* A 512-byte name works; a batch carrying 513 bytes is malformed. */
    fixture *f = fixtureNew();
    assert_int_equal(apply1(f, acquireOp(name, own(1, 1), 1, 0)).status, LOCK_OK);
    lockOp ok = acquireOp(name, own(1, 1), 1, 0);
    encodeBatch(&b, &ok, 1);
    b.data[3 + 9] = (char)((LOCK_NAME_MAX + 1) & 0xff); /* the u16 after kind and req */
    b.data[3 + 10] = (char)((LOCK_NAME_MAX + 1) >> 8);
    bufAppendChar(&b, 'n');
    assert_int_equal(lockTableApply(f->t, 5, (const uint8_t *)b.data, b.len, &f->rs, &f->gs),
                     LOCK_APPLY_MALFORMED);
    assert_int_equal(f->rs.n, 1);
    assert_int_equal(f->rs.r[0].status, LOCK_ERR_MALFORMED);
    assert_int_equal(lockTableLockCount(f->t), 1);
    bufFree(&b);
    fixtureFree(f);
}

static void test_waiters_per_lock_are_bounded(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    apply1(f, acquireOp("hot", own(1, 0), 0, 0));
    lockOp ops[LOCK_MAX_OPS_PER_BATCH];
    uint64_t client = 1;
    while (client <= LOCK_MAX_WAITERS) {
        size_t n = 0;
        while (n < LOCK_MAX_OPS_PER_BATCH && client <= LOCK_MAX_WAITERS) {
            ops[n] = acquireOp("hot", own(1, client), client, 0);
            n++, client++;
        }
        applyOps(f, ops, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(f->rs.r[i].status, LOCK_QUEUED);
    }
    assert_int_equal(waitersOf(f, "hot", NULL, 0), LOCK_MAX_WAITERS);
    lockResult r = apply1(f, acquireOp("hot", own(2, 1), 1, 0));
    assert_int_equal(r.status, LOCK_ERR_FULL);
    assert_int_equal(waitersOf(f, "hot", NULL, 0), LOCK_MAX_WAITERS);
    /* A waiter already queued still gets its place back, not FULL. */
    assert_int_equal(apply1(f, acquireOp("hot", own(1, 77), 77, 0)).status, LOCK_QUEUED);
    /* Other locks are not affected. */
    assert_int_equal(apply1(f, acquireOp("cold", own(2, 1), 2, 0)).status, LOCK_OK);
    /* The node's death empties the queue in one op. */
    apply1(f, nodeDeadOp(1));
    assert_int_equal(lockTableWaiterCount(f->t), 0);
    assert_int_equal(lockTableLockCount(f->t), 1);
    fixtureFree(f);
}

static void test_waiters_over_all_locks_are_bounded(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    enum { LOCKS = LOCK_MAX_WAITERS_TOTAL / LOCK_MAX_WAITERS };
    static char names[LOCKS + 1][16];
    lockOp ops[LOCK_MAX_OPS_PER_BATCH];
    /* Each lock: a holder (client 0) and a full queue, one node per lock. */
    for (uint32_t l = 0; l < LOCKS; l++) {
        snprintf(names[l], sizeof names[l], "q%u", l);
        for (uint64_t c = 0; c <= LOCK_MAX_WAITERS;) {
            size_t n = 0;
            for (; n < LOCK_MAX_OPS_PER_BATCH && c <= LOCK_MAX_WAITERS; n++, c++)
                ops[n] = acquireOp(names[l], own(l + 1, c), c, 0);
            applyOps(f, ops, n);
        }
    }
    assert_int_equal(lockTableWaiterCount(f->t), LOCK_MAX_WAITERS_TOTAL);
    snprintf(names[LOCKS], sizeof names[LOCKS], "q%u", LOCKS);
    /* A free lock is still granted; waiting anywhere is refused. */
    assert_int_equal(apply1(f, acquireOp(names[LOCKS], own(999, 1), 1, 0)).status, LOCK_OK);
    assert_int_equal(apply1(f, acquireOp(names[LOCKS], own(999, 2), 2, 0)).status, LOCK_ERR_FULL);
    /* A node's death frees its queue places. */
    apply1(f, nodeDeadOp(1));
    assert_int_equal(lockTableWaiterCount(f->t), LOCK_MAX_WAITERS_TOTAL - LOCK_MAX_WAITERS);
    assert_int_equal(apply1(f, acquireOp(names[LOCKS], own(999, 2), 2, 0)).status, LOCK_QUEUED);
    fixtureFree(f);
}

static void test_number_of_locks_is_bounded(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    lockOp ops[LOCK_MAX_OPS_PER_BATCH];
    static char names[LOCK_MAX_OPS_PER_BATCH][16];
    uint32_t made = 0;
    while (made < LOCK_MAX_LOCKS) {
        size_t n = 0;
        while (n < LOCK_MAX_OPS_PER_BATCH && made < LOCK_MAX_LOCKS) {
            snprintf(names[n], sizeof names[n], "lock-%u", made);
            ops[n] = acquireOp(names[n], own(1, made % 7), made, 0);
            n++, made++;
        }
        applyOps(f, ops, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(f->rs.r[i].status, LOCK_OK);
    }
    assert_int_equal(lockTableLockCount(f->t), LOCK_MAX_LOCKS);
    assert_int_equal(apply1(f, acquireOp("one-more", own(2, 1), 1, 0)).status, LOCK_ERR_FULL);
    assert_false(isHeld(f, "one-more"));
    /* Queueing on an existing lock is still possible. */
    assert_int_equal(apply1(f, acquireOp("lock-5", own(2, 1), 2, 0)).status, LOCK_QUEUED);
    /* A release frees room. */
    uint64_t tok = holderOf(f, "lock-6").token;
    assert_int_equal(apply1(f, releaseOp("lock-6", own(1, 6), tok)).status, LOCK_OK);
    assert_int_equal(apply1(f, acquireOp("one-more", own(2, 1), 1, 0)).status, LOCK_OK);
    fixtureFree(f);
}

/* ---- Apply: duplicates and malformed entries -------------------------- */

static void test_duplicate_index_is_ignored(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    f->index = 10;
    apply1(f, acquireOp("k", own(1, 1), 1, 0));
    buf before, after;
    snapshotOf(f->t, &before);
    lockOp again[] = {acquireOp("j", own(1, 1), 2, 0)};
    applyAt(f, 11, again, 1);
    assert_int_equal(f->last, LOCK_APPLY_DUPLICATE);
    assert_int_equal(f->rs.n, 0);
    assert_int_equal(f->gs.n, 0);
    applyAt(f, 3, again, 1);
    assert_int_equal(f->last, LOCK_APPLY_DUPLICATE);
    applyAt(f, 0, again, 1);
    assert_int_equal(f->last, LOCK_APPLY_DUPLICATE);
    snapshotOf(f->t, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    assert_false(isHeld(f, "j"));
    /* An index gap is fine: Raft spends indexes on its own entries. */
    applyAt(f, 15, again, 1);
    assert_int_equal(f->last, LOCK_APPLY_OK);
    assert_int_equal(f->rs.r[0].token, 15);
    bufFree(&before);
    bufFree(&after);
    fixtureFree(f);
}

static void test_malformed_op_fails_itself_and_the_rest_but_not_earlier_ops(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    buf b;
    bufInit(&b);
    lockOp ops[] = {acquireOp("a", own(1, 1), 1, 0), acquireOp("b", own(1, 1), 2, 0),
                    acquireOp("c", own(1, 1), 3, 0)};
    encodeBatch(&b, ops, 3);
    /* Op 1 starts after the header and op 0; kind 99 is no op. */
    size_t op_len = 1 + 8 + 2 + 1 + 4 + 8 + 4;
    b.data[3 + op_len] = 99;
    assert_int_equal(lockTableApply(f->t, 1, (const uint8_t *)b.data, b.len, &f->rs, &f->gs),
                     LOCK_APPLY_MALFORMED);
    assert_int_equal(f->rs.n, 3);
    assert_int_equal(f->rs.r[0].status, LOCK_OK);
    assert_int_equal(f->rs.r[1].status, LOCK_ERR_MALFORMED);
    assert_int_equal(f->rs.r[1].kind, 0);
    assert_int_equal(f->rs.r[2].status, LOCK_ERR_MALFORMED);
    assert_true(isHeld(f, "a"));
    assert_false(isHeld(f, "c"));
    assert_int_equal(lockTableLastApplied(f->t), 1);
    /* A bad header gives no results but still uses up the index. */
    uint8_t junk[] = {7, 1, 0};
    assert_int_equal(lockTableApply(f->t, 2, junk, sizeof junk, &f->rs, &f->gs),
                     LOCK_APPLY_MALFORMED);
    assert_int_equal(f->rs.n, 0);
    assert_int_equal(lockTableLastApplied(f->t), 2);
    assert_int_equal(lockTableApply(f->t, 3, NULL, 0, &f->rs, &f->gs), LOCK_APPLY_MALFORMED);
    /* An empty batch is a valid no-op. */
    uint8_t empty[] = {LOCK_BATCH_V1, 0, 0};
    assert_int_equal(lockTableApply(f->t, 4, empty, sizeof empty, &f->rs, &f->gs), LOCK_APPLY_OK);
    /* NULL outputs are allowed. */
    bufClear(&b);
    encodeBatch(&b, &ops[2], 1);
    assert_int_equal(lockTableApply(f->t, 5, (const uint8_t *)b.data, b.len, NULL, NULL),
                     LOCK_APPLY_OK);
    assert_true(isHeld(f, "c"));
    bufFree(&b);
    fixtureFree(f);
}

/* ---- Codecs ----------------------------------------------------------- */

static void assertOpEqual(const lockOp *a, const lockOp *b) {
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->req, b->req);
    assert_int_equal(a->name_len, b->name_len);
    if (a->name_len) assert_memory_equal(a->name, b->name, a->name_len);
    assert_int_equal(a->owner.node, b->owner.node);
    assert_int_equal(a->owner.client, b->owner.client);
    assert_int_equal(a->token, b->token);
    assert_int_equal(a->ttl_ms, b->ttl_ms);
    assert_int_equal(a->granted_index, b->granted_index);
}

/* Decodes a whole batch; 0 when every op decodes, -1 otherwise. */
static int decodeAll(const uint8_t *p, size_t len, lockOp *ops, size_t max, size_t *n) {
    lockBatchReader r;
    *n = 0;
    if (lockBatchOpen(&r, p, len) != 0) return -1;
    int rc;
    while ((rc = lockBatchNext(&r, &ops[*n])) == 1)
        if (++*n == max) break;
    return rc < 0 ? -1 : 0;
}

static void test_op_batches_round_trip_and_every_truncation_is_rejected(void **state) {
    (void)state;
    uint8_t bin[] = {0, 1, 0xff, '\r', '\n'};
    lockOp ops[] = {
        acquireOp("k1", own(1, UINT64_MAX), UINT64_MAX, UINT32_MAX),
        releaseOp("k2", own(UINT32_MAX, 0), 77),
        cancelOp("k3", own(2, 3), 4),
        expireOp("k4", 123456789012345ull),
        expireLeaseOp("k6", 9, UINT64_MAX),
        renewOp("k5", own(9, 8), 7, 6),
        ownerGoneOp(own(4, 44)),
        nodeDeadOp(5),
        {.kind = LOCK_OP_ACQUIRE, .req = 1, .name = bin, .name_len = sizeof bin, .owner = {1, 1}},
    };
    size_t n_ops = sizeof ops / sizeof ops[0];
    buf b, again;
    bufInit(&b);
    bufInit(&again);
    encodeBatch(&b, ops, n_ops);
    lockOp got[16];
    size_t n;
    assert_int_equal(decodeAll((const uint8_t *)b.data, b.len, got, 16, &n), 0);
    assert_int_equal(n, n_ops);
    for (size_t i = 0; i < n; i++) {
        /* Fields a kind does not carry come back zero. */
        lockOp want = ops[i];
        if (want.kind == LOCK_OP_NODE_DEAD) want.owner.client = 0;
        assertOpEqual(&got[i], &want);
    }
    encodeBatch(&again, got, n);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);

    /* Every proper prefix fails, and so does one byte more. */
    fixture *f = fixtureNew();
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_equal(decodeAll((const uint8_t *)b.data, cut, got, 16, &n), -1);
        assert_int_equal(lockTableApply(f->t, cut + 1, (const uint8_t *)b.data, cut, &f->rs, NULL),
                         LOCK_APPLY_MALFORMED);
    }
    bufAppendChar(&b, 0);
    assert_int_equal(decodeAll((const uint8_t *)b.data, b.len, got, 16, &n), -1);
    /* Bad format byte and too many ops. */
    b.len--;
    b.data[0] = 2;
    assert_int_equal(decodeAll((const uint8_t *)b.data, b.len, got, 16, &n), -1);
    uint8_t big[] = {LOCK_BATCH_V1, (LOCK_MAX_OPS_PER_BATCH + 1) & 0xff,
                     (LOCK_MAX_OPS_PER_BATCH + 1) >> 8};
    lockBatchReader r;
    assert_int_equal(lockBatchOpen(&r, big, sizeof big), -1);
    /* The writer refuses the op past the limit. */
    lockBatchWriter w;
    bufClear(&b);
    lockBatchBegin(&w, &b);
    for (unsigned i = 0; i < LOCK_MAX_OPS_PER_BATCH; i++)
        assert_int_equal(lockBatchAdd(&w, &ops[6]), 0);
    assert_int_equal(lockBatchAdd(&w, &ops[6]), -1);
    lockBatchEnd(&w);
    assert_int_equal(decodeAll((const uint8_t *)b.data, b.len, got, 16, &n), 0);
    bufFree(&b);
    bufFree(&again);
    fixtureFree(f);
}

static void test_results_round_trip_and_every_truncation_is_rejected(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    lockOp ops[] = {acquireOp("k", own(1, 1), 5, 0), acquireOp("k", own(2, 1), 6, 0),
                    releaseOp("k", own(3, 1), 1), cancelOp("k", own(2, 1), 6), nodeDeadOp(3)};
    applyOps(f, ops, 5);
    /* Make the last result a malformed one by hand. */
    f->rs.r[4] = (lockResult){.kind = 0, .status = LOCK_ERR_MALFORMED};
    buf b;
    bufInit(&b);
    lockResultsEncode(f->rs.r, f->rs.n, &b);
    assert_int_equal(b.len, LOCK_RESULTS_HEADER_BYTES + 5 * LOCK_RESULT_BYTES);
    lockResults got;
    lockResultsInit(&got);
    assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, b.len), 0);
    assert_int_equal(got.n, 5);
    assertResultsEqual(got.r, f->rs.r, 5);
    assert_int_equal(got.r[0].token, 1);
    assert_int_equal(got.r[1].status, LOCK_QUEUED);
    assert_int_equal(got.r[2].status, LOCK_ERR_NOT_HOLDER);
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, cut), -1);
        assert_int_equal(got.n, 0);
    }
    bufAppendChar(&b, 0);
    assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, b.len), -1);
    b.len--;
    /* Values the table never produces: a status out of range, a granted
     * ACQUIRE without a token, a malformed result with a req. */
    size_t first = LOCK_RESULTS_HEADER_BYTES;
    b.data[first + 1] = 7;
    assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, b.len), -1);
    b.data[first + 1] = LOCK_OK;
    memset(b.data + first + 10, 0, 8);
    assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, b.len), -1);
    b.data[first + 10] = 1;
    size_t last = first + 4 * LOCK_RESULT_BYTES;
    b.data[last + 2] = 1;
    assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, b.len), -1);
    b.data[last + 2] = 0;
    assert_int_equal(lockResultsDecode(&got, (const uint8_t *)b.data, b.len), 0);
    lockResultsFree(&got);
    bufFree(&b);
    fixtureFree(f);
}

/* A table with a bit of everything: several locks, queues, a renewal, a
 * name that is a prefix of another, and binary bytes in a name. */
static fixture *busyTable(void) {
    fixture *f = fixtureNew();
    lockOp ops[] = {
        acquireOp("ab", own(1, 1), 1, 100),  acquireOp("a", own(2, 1), 2, 0),
        acquireOp("ab", own(2, 1), 3, 200),  acquireOp("ab", own(3, 7), 4, 300),
        acquireOp("b\n\r", own(3, 7), 5, 5), acquireOp("a", own(1, 1), 6, 1),
    };
    applyOps(f, ops, 6);
    f->index = 30;
    apply1(f, renewOp("a", own(2, 1), 2, 999));
    return f;
}

static void test_snapshot_round_trip_re_encodes_byte_identical(void **state) {
    (void)state;
    fixture *f = busyTable();
    buf b, again;
    snapshotOf(f->t, &b);
    lockTable *t = lockTableCreate();
    assert_int_equal(lockTableDecode(t, (const uint8_t *)b.data, b.len), 0);
    snapshotOf(t, &again);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    assert_int_equal(lockTableLastApplied(t), 31);
    assert_int_equal(lockTableLastToken(t), lockTableLastToken(f->t));
    assert_int_equal(lockTableLockCount(t), 3);
    assert_int_equal(lockTableWaiterCount(t), 3);
    lockHolder h;
    assert_true(lockTableHolder(t, (const uint8_t *)"a", 1, &h));
    assert_int_equal(h.ttl_ms, 999);
    assert_int_equal(h.granted_index, 31);
    lockWaiter w[4];
    assert_int_equal(lockTableWaiters(t, (const uint8_t *)"ab", 2, w, 4), 2);
    assert_int_equal(w[0].owner.node, 2);
    assert_int_equal(w[1].ttl_ms, 300);

    /* The restored table carries on exactly as the original does. */
    lockTable *orig = f->t;
    lockOp next[] = {ownerGoneOp(own(1, 1)), acquireOp("c", own(9, 9), 50, 0)};
    buf e, s1, s2;
    bufInit(&e);
    encodeBatch(&e, next, 2);
    lockResults r1, r2;
    lockResultsInit(&r1);
    lockResultsInit(&r2);
    lockTableApply(orig, 40, (const uint8_t *)e.data, e.len, &r1, NULL);
    lockTableApply(t, 40, (const uint8_t *)e.data, e.len, &r2, NULL);
    assert_int_equal(r1.n, 2);
    assert_int_equal(r2.n, 2);
    assertResultsEqual(r1.r, r2.r, 2);
    snapshotOf(orig, &s1);
    snapshotOf(t, &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_equal(s1.data, s2.data, s1.len);
    /* Decoding over a table with contents replaces them. */
    assert_int_equal(lockTableDecode(t, (const uint8_t *)b.data, b.len), 0);
    assert_int_equal(lockTableLastApplied(t), 31);
    assert_false(lockTableHolder(t, (const uint8_t *)"c", 1, NULL));
    lockResultsFree(&r1);
    lockResultsFree(&r2);
    bufFree(&e);
    bufFree(&s1);
    bufFree(&s2);
    bufFree(&b);
    bufFree(&again);
    lockTableFree(t);
    fixtureFree(f);
}

/* Decodes p into a table holding something else, and checks that a
 * refusal left it untouched. */
static int decodeKeeps(const uint8_t *p, size_t len) {
    fixture *f = busyTable();
    buf before, after;
    snapshotOf(f->t, &before);
    int rc = lockTableDecode(f->t, p, len);
    if (rc != 0) {
        snapshotOf(f->t, &after);
        assert_int_equal(before.len, after.len);
        assert_memory_equal(before.data, after.data, before.len);
        bufFree(&after);
    }
    bufFree(&before);
    fixtureFree(f);
    return rc;
}

static void put32At(buf *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) b->data[at + i] = (char)(v >> (8 * i));
}

static void put64At(buf *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) b->data[at + i] = (char)(v >> (8 * i));
}

static void test_snapshot_rejects_every_truncation_and_bad_length(void **state) {
    (void)state;
    fixture *f = fixtureNew();
    lockOp ops[] = {acquireOp("a", own(1, 1), 1, 10), acquireOp("a", own(2, 1), 2, 20),
                    acquireOp("b", own(3, 1), 3, 30)};
    applyOps(f, ops, 3);
    buf b;
    snapshotOf(f->t, &b);
    /* Layout: header 21 | "a": 2+1, holder 40, count 4, waiter 24 | "b": 2+1, 40, 4. */
    const size_t lock_a = 21, waiters_a = lock_a + 3 + 40, lock_b = waiters_a + 4 + 24;
    assert_int_equal(b.len, lock_b + 3 + 40 + 4);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(decodeKeeps((const uint8_t *)b.data, cut), -1);
    bufAppendChar(&b, 0);
    assert_int_equal(decodeKeeps((const uint8_t *)b.data, b.len), -1);
    b.len--;
    assert_int_equal(decodeKeeps((const uint8_t *)b.data, b.len), 0);

    struct {
        size_t at;
        int width;
        uint64_t value;
    } bad[] = {
        {0, 1, 2},                            /* unknown format */
        {17, 4, 3},                           /* more locks than there are */
        {17, 4, 1},                           /* fewer locks: trailing bytes */
        {17, 4, LOCK_MAX_LOCKS + 1},          /* above the bound */
        {lock_a, 2, 0},                       /* empty name */
        {lock_a, 2, 2},                       /* name runs into the holder */
        {lock_a, 2, LOCK_NAME_MAX + 1},       /* name too long */
        {lock_b + 2, 1, 'a'},                 /* names not strictly increasing */
        {lock_a + 3, 4, 0},                   /* holder on node 0 */
        {lock_a + 3 + 20, 8, 0},              /* token 0 */
        {lock_a + 3 + 20, 8, 4},              /* token above the last one */
        {lock_a + 3 + 32, 8, 4},              /* granted after the last applied entry */
        {waiters_a, 4, 2},                    /* more waiters than there are */
        {waiters_a, 4, LOCK_MAX_WAITERS + 1}, /* above the bound */
        {waiters_a + 4, 4, 1},                /* waiter is the holder */
        {waiters_a + 4, 4, 0},                /* waiter on node 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf m;
        bufInit(&m);
        bufAppend(&m, b.data, b.len);
        if (bad[i].width == 1) m.data[bad[i].at] = (char)bad[i].value;
        if (bad[i].width == 2) {
            m.data[bad[i].at] = (char)bad[i].value;
            m.data[bad[i].at + 1] = (char)(bad[i].value >> 8);
        }
        if (bad[i].width == 4) put32At(&m, bad[i].at, (uint32_t)bad[i].value);
        if (bad[i].width == 8) put64At(&m, bad[i].at, bad[i].value);
        if (decodeKeeps((const uint8_t *)m.data, m.len) != -1) fail_msg("mutation %zu accepted", i);
        bufFree(&m);
    }
    bufFree(&b);
    fixtureFree(f);
}

/* ---- Queries ---------------------------------------------------------- */

typedef struct listing {
    buf text;
    size_t holders;
} listing;

static void listLock(void *ctx, const lockView *v) {
    listing *l = ctx;
    bufPrintf(&l->text, "%.*s=%u/%llu:", (int)v->holder.name_len, (const char *)v->holder.name,
              v->holder.owner.node, (unsigned long long)v->holder.owner.client);
    for (size_t i = 0; i < v->n_waiters; i++)
        bufPrintf(&l->text, " %u/%llu", v->waiters[i].owner.node,
                  (unsigned long long)v->waiters[i].owner.client);
    bufAppendChar(&l->text, ';');
}

static void countHolder(void *ctx, const lockHolder *h) {
    listing *l = ctx;
    bufPrintf(&l->text, "%.*s@%llu,%u,%llu;", (int)h->name_len, (const char *)h->name,
              (unsigned long long)h->token, h->ttl_ms, (unsigned long long)h->granted_index);
    l->holders++;
}

static void test_for_each_lists_locks_in_name_order_with_their_queues(void **state) {
    (void)state;
    fixture *f = busyTable();
    listing l = {.holders = 0};
    bufInit(&l.text);
    lockTableForEach(f->t, listLock, &l);
    bufAppendChar(&l.text, '\0');
    assert_string_equal(l.text.data, "a=2/1: 1/1;ab=1/1: 2/1 3/7;b\n\r=3/7:;");
    bufClear(&l.text);
    lockTableForEachHolder(f->t, countHolder, &l);
    bufAppendChar(&l.text, '\0');
    assert_int_equal(l.holders, 3);
    assert_string_equal(l.text.data, "a@2,999,31;ab@1,100,1;b\n\r@3,5,1;");
    bufFree(&l.text);
    fixtureFree(f);
}

static void test_names_of_kinds_and_statuses(void **state) {
    (void)state;
    assert_string_equal(lockOpKindName(LOCK_OP_NODE_DEAD), "NODE_DEAD");
    assert_string_equal(lockOpKindName((lockOpKind)0), "?");
    assert_string_equal(lockStatusName(LOCK_ERR_NOT_HOLDER), "NOT_HOLDER");
    for (int s = LOCK_OK; s <= LOCK_ERR_MALFORMED; s++) {
        assert_string_not_equal(lockStatusName((lockStatus)s), "?");
        assert_string_not_equal(lockStatusMessage((lockStatus)s), "unknown lock status");
    }
}

/* ---- Random operations against a reference model ---------------------- */

/* The rules of lock.h, written the obvious way: a few names in a fixed,
 * sorted array, an owner per (node, client) slot, queues as arrays. */
#define M_NAMES  6
#define M_NODES  3
#define M_CLIENT 3
#define M_OWNERS (M_NODES * M_CLIENT)

static const char *m_names[M_NAMES] = {"a", "a/b", "ab", "b", "lock:1", "z"}; /* bytewise sorted */

typedef struct mPlace {
    int owner;
    uint64_t req;
    uint32_t ttl;
} mPlace;

typedef struct mLock {
    bool held;
    mPlace holder;
    uint64_t token, granted;
    mPlace q[M_OWNERS];
    int nq;
} mLock;

typedef struct mGrant {
    int name, owner;
    uint64_t req, token;
    uint32_t ttl;
} mGrant;

typedef struct model {
    mLock l[M_NAMES];
    uint64_t index, last_token;
    mGrant g[64];
    int ng;
} model;

static lockOwner mOwner(int o) {
    return own((uint32_t)(o / M_CLIENT + 1), (uint64_t)(o % M_CLIENT));
}

static void mGrantTo(model *m, int n, mPlace p) {
    mLock *l = &m->l[n];
    uint64_t tok = m->index > m->last_token ? m->index : m->last_token + 1;
    m->last_token = tok;
    l->held = true;
    l->holder = p;
    l->token = tok;
    l->granted = m->index;
    assert_true(m->ng < 64);
    m->g[m->ng++] = (mGrant){n, p.owner, p.req, tok, p.ttl};
}

static void mRelease(model *m, int n) {
    mLock *l = &m->l[n];
    l->held = false;
    if (l->nq == 0) return;
    mPlace p = l->q[0];
    memmove(l->q, l->q + 1, (size_t)(l->nq - 1) * sizeof *l->q);
    l->nq--;
    mGrantTo(m, n, p);
}

static int mQueued(const mLock *l, int o) {
    for (int i = 0; i < l->nq; i++)
        if (l->q[i].owner == o) return i;
    return -1;
}

static void mUnqueue(mLock *l, int i) {
    memmove(l->q + i, l->q + i + 1, (size_t)(l->nq - i - 1) * sizeof *l->q);
    l->nq--;
}

/* Removes every place of owners for which gone() says so, name by name. */
static void mEvict(model *m, bool (*gone)(int owner, uint32_t arg), uint32_t arg) {
    for (int n = 0; n < M_NAMES; n++) {
        mLock *l = &m->l[n];
        for (int i = l->nq - 1; i >= 0; i--)
            if (gone(l->q[i].owner, arg)) mUnqueue(l, i);
        if (l->held && gone(l->holder.owner, arg)) mRelease(m, n);
    }
}

static bool isOwner(int owner, uint32_t arg) {
    return owner == (int)arg;
}

static bool onNode(int owner, uint32_t node) {
    return mOwner(owner).node == node;
}

typedef struct mOp {
    lockOpKind kind;
    int name, owner;
    uint64_t req, token;
    uint32_t ttl;
    uint32_t node;
    uint64_t granted; /* EXPIRE_LEASE */
} mOp;

static lockResult mApply(model *m, const mOp *op) {
    lockResult r = {.kind = (uint8_t)op->kind, .req = op->req};
    mLock *l = &m->l[op->name];
    bool holds = l->held && l->holder.owner == op->owner;
    switch (op->kind) {
    case LOCK_OP_ACQUIRE:
        if (!l->held) {
            mGrantTo(m, op->name, (mPlace){op->owner, op->req, op->ttl});
            r.token = l->token;
        } else if (holds) {
            r.token = l->token;
        } else {
            r.status = LOCK_QUEUED;
            if (mQueued(l, op->owner) < 0) l->q[l->nq++] = (mPlace){op->owner, op->req, op->ttl};
        }
        break;
    case LOCK_OP_RELEASE:
    case LOCK_OP_EXPIRE:
        if (l->held && l->token == op->token && (op->kind == LOCK_OP_EXPIRE || holds)) {
            r.token = op->token;
            mRelease(m, op->name);
        } else {
            r.status = LOCK_ERR_NOT_HOLDER;
        }
        break;
    case LOCK_OP_EXPIRE_LEASE:
        if (l->held && l->token == op->token && l->granted == op->granted) {
            r.token = op->token;
            mRelease(m, op->name);
        } else {
            r.status = LOCK_ERR_NOT_HOLDER;
        }
        break;
    case LOCK_OP_RENEW:
        if (holds && l->token == op->token) {
            l->holder.ttl = op->ttl;
            l->granted = m->index;
            r.token = op->token;
        } else {
            r.status = LOCK_ERR_NOT_HOLDER;
        }
        break;
    case LOCK_OP_CANCEL: {
        int i = mQueued(l, op->owner);
        if (holds && l->holder.req == op->req) {
            r.status = LOCK_ALREADY_GRANTED;
            r.token = l->token;
        } else if (i >= 0 && l->q[i].req == op->req) {
            mUnqueue(l, i);
        } else {
            r.status = LOCK_ERR_NOT_WAITING;
        }
        break;
    }
    case LOCK_OP_OWNER_GONE:
        mEvict(m, isOwner, (uint32_t)op->owner);
        break;
    case LOCK_OP_NODE_DEAD:
        mEvict(m, onNode, op->node);
        break;
    }
    return r;
}

static lockOp mToOp(const mOp *x) {
    lockOp op = {.kind = x->kind,
                 .req = x->req,
                 .token = x->token,
                 .ttl_ms = x->ttl,
                 .granted_index = x->granted};
    op.name = (const uint8_t *)m_names[x->name];
    op.name_len = strlen(m_names[x->name]);
    op.owner = mOwner(x->owner);
    if (x->kind == LOCK_OP_NODE_DEAD) op.owner = own(x->node, 0);
    return op;
}

static uint64_t rngState;

static uint64_t rnd(uint64_t n) {
    rngState ^= rngState >> 12;
    rngState ^= rngState << 25;
    rngState ^= rngState >> 27;
    return (rngState * 0x2545f4914f6cdd1dull) % n;
}

/* A plausible op: mostly right tokens and reqs, sometimes stale ones. */
static mOp mRandomOp(const model *m, uint64_t *next_req) {
    mOp op = {.name = (int)rnd(M_NAMES), .owner = (int)rnd(M_OWNERS), .ttl = (uint32_t)rnd(5000)};
    op.req = ++*next_req;
    const mLock *l = &m->l[op.name];
    uint64_t stale = rnd(m->last_token + 2);
    uint64_t k = rnd(100);
    if (k < 40) {
        op.kind = LOCK_OP_ACQUIRE;
        int i = mQueued(l, op.owner);
        if (rnd(4) == 0 && i >= 0) op.req = l->q[i].req; /* a retry */
    } else if (k < 62) {
        op.kind = LOCK_OP_RELEASE;
        if (l->held && rnd(5) != 0) op.owner = l->holder.owner;
        op.token = l->held && rnd(5) != 0 ? l->token : stale;
    } else if (k < 74) {
        op.kind = LOCK_OP_CANCEL;
        if (l->nq && rnd(3) != 0) {
            const mPlace *p = &l->q[rnd((uint64_t)l->nq)];
            op.owner = p->owner;
            op.req = p->req;
        } else if (l->held && rnd(2) == 0) {
            op.owner = l->holder.owner;
            op.req = l->holder.req;
        }
    } else if (k < 79) {
        op.kind = LOCK_OP_EXPIRE;
        op.token = l->held && rnd(2) == 0 ? l->token : stale;
    } else if (k < 84) {
        op.kind = LOCK_OP_EXPIRE_LEASE;
        op.token = l->held && rnd(2) == 0 ? l->token : stale;
        op.granted = l->held && rnd(3) != 0 ? l->granted : rnd(m->index + 2);
    } else if (k < 92) {
        op.kind = LOCK_OP_RENEW;
        if (l->held && rnd(4) != 0) op.owner = l->holder.owner;
        op.token = l->held && rnd(4) != 0 ? l->token : stale;
    } else if (k < 98) {
        op.kind = LOCK_OP_OWNER_GONE;
    } else {
        op.kind = LOCK_OP_NODE_DEAD;
        op.node = (uint32_t)rnd(M_NODES + 1) + 1; /* sometimes a node with nobody on it */
    }
    return op;
}

/* The table and the model hold the same locks, holders and queues. */
static void assertTableMatchesModel(const lockTable *t, const model *m) {
    size_t locks = 0, waiters = 0;
    for (int n = 0; n < M_NAMES; n++) {
        const mLock *l = &m->l[n];
        const uint8_t *name = (const uint8_t *)m_names[n];
        size_t len = strlen(m_names[n]);
        lockHolder h;
        bool held = lockTableHolder(t, name, len, &h);
        assert_int_equal(held, l->held);
        if (!held) {
            assert_int_equal(l->nq, 0);
            continue;
        }
        locks++;
        assert_int_equal(h.owner.node, mOwner(l->holder.owner).node);
        assert_int_equal(h.owner.client, mOwner(l->holder.owner).client);
        assert_int_equal(h.token, l->token);
        assert_int_equal(h.req, l->holder.req);
        assert_int_equal(h.ttl_ms, l->holder.ttl);
        assert_int_equal(h.granted_index, l->granted);
        lockWaiter w[M_OWNERS];
        assert_int_equal(lockTableWaiters(t, name, len, w, M_OWNERS), (size_t)l->nq);
        for (int i = 0; i < l->nq; i++) {
            assert_int_equal(w[i].owner.client, mOwner(l->q[i].owner).client);
            assert_int_equal(w[i].owner.node, mOwner(l->q[i].owner).node);
            assert_int_equal(w[i].req, l->q[i].req);
            assert_int_equal(w[i].ttl_ms, l->q[i].ttl);
        }
        waiters += (size_t)l->nq;
    }
    assert_int_equal(lockTableLockCount(t), locks);
    assert_int_equal(lockTableWaiterCount(t), waiters);
    assert_int_equal(lockTableLastToken(t), m->last_token);
}

static void test_random_ops_match_the_model_with_strictly_increasing_tokens(void **state) {
    (void)state;
    rngState = 0x5eed1234abcdull;
    fixture *f = fixtureNew();
    model m;
    memset(&m, 0, sizeof m);
    uint64_t next_req = 0, last_grant = 0;
    size_t ops_done = 0, grants_seen = 0, restores = 0;
    size_t seen[LOCK_ERR_MALFORMED + 1] = {0};
    buf b;
    bufInit(&b);
    while (ops_done < 10000) {
        /* Raft spends some indexes on entries of its own. */
        m.index = f->index + 1 + (rnd(8) == 0 ? rnd(3) : 0);
        m.ng = 0;
        size_t n = 1 + rnd(4);
        mOp mops[4];
        lockOp ops[4];
        lockResult want[4];
        for (size_t i = 0; i < n; i++) {
            mops[i] = mRandomOp(&m, &next_req);
            ops[i] = mToOp(&mops[i]);
            want[i] = mApply(&m, &mops[i]);
        }
        applyAt(f, m.index, ops, n);
        assert_int_equal(f->last, LOCK_APPLY_OK);
        assert_int_equal(f->rs.n, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(f->rs.r[i].kind, want[i].kind);
            assert_int_equal(f->rs.r[i].status, want[i].status);
            assert_int_equal(f->rs.r[i].req, want[i].req);
            assert_int_equal(f->rs.r[i].token, want[i].token);
            seen[want[i].status]++;
        }
        assert_int_equal(f->gs.n, (size_t)m.ng);
        for (int i = 0; i < m.ng; i++) {
            const lockGrant *g = &f->gs.g[i];
            assertGrant(g, m_names[m.g[i].name], mOwner(m.g[i].owner), m.g[i].req, m.g[i].token);
            assert_int_equal(g->ttl_ms, m.g[i].ttl);
            assert_true(g->token > last_grant);
            assert_true(g->token >= m.index);
            last_grant = g->token;
        }
        grants_seen += f->gs.n;
        assertTableMatchesModel(f->t, &m);

        /* Now and then: the same entry again (ignored), or a restart from
         * a snapshot (must carry on identically). */
        if (rnd(10) == 0) {
            applyAt(f, m.index, ops, n);
            assert_int_equal(f->last, LOCK_APPLY_DUPLICATE);
            assertTableMatchesModel(f->t, &m);
        }
        if (rnd(50) == 0) {
            bufClear(&b);
            lockTableEncode(f->t, &b);
            lockTable *t = lockTableCreate();
            assert_int_equal(lockTableDecode(t, (const uint8_t *)b.data, b.len), 0);
            lockTableFree(f->t);
            f->t = t;
            restores++;
        }
        ops_done += n;
    }
    assert_true(grants_seen > 1000);
    /* Every outcome but FULL and MALFORMED came up, many times. */
    for (int st = LOCK_OK; st <= LOCK_ERR_NOT_WAITING; st++) assert_true(seen[st] > 50);
    assert_true(restores > 10);
    bufFree(&b);
    fixtureFree(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_of_a_free_lock_grants_with_the_entry_index_as_token),
        cmocka_unit_test(test_waiters_are_granted_in_fifo_order),
        cmocka_unit_test(test_release_with_wrong_token_or_owner_is_refused),
        cmocka_unit_test(test_expire_applies_only_to_the_current_token),
        cmocka_unit_test(test_renew_extends_only_the_holders_lease),
        cmocka_unit_test(test_expire_lease_spares_a_lease_renewed_after_the_leader_decided),
        cmocka_unit_test(test_tokens_stop_at_the_maximum_and_nothing_wraps),
        cmocka_unit_test(test_owner_gone_releases_holds_and_waits_and_promotes_next_waiters),
        cmocka_unit_test(test_node_dead_releases_every_owner_on_the_node_in_name_order),
        cmocka_unit_test(test_several_grants_in_one_entry_get_distinct_increasing_tokens),
        cmocka_unit_test(test_acquire_retry_with_same_req_does_not_double_queue),
        cmocka_unit_test(test_cancel_removes_a_waiter_but_reports_an_existing_grant),
        cmocka_unit_test(test_name_length_is_validated),
        cmocka_unit_test(test_waiters_per_lock_are_bounded),
        cmocka_unit_test(test_waiters_over_all_locks_are_bounded),
        cmocka_unit_test(test_number_of_locks_is_bounded),
        cmocka_unit_test(test_duplicate_index_is_ignored),
        cmocka_unit_test(test_malformed_op_fails_itself_and_the_rest_but_not_earlier_ops),
        cmocka_unit_test(test_op_batches_round_trip_and_every_truncation_is_rejected),
        cmocka_unit_test(test_results_round_trip_and_every_truncation_is_rejected),
        cmocka_unit_test(test_snapshot_round_trip_re_encodes_byte_identical),
        cmocka_unit_test(test_snapshot_rejects_every_truncation_and_bad_length),
        cmocka_unit_test(test_for_each_lists_locks_in_name_order_with_their_queues),
        cmocka_unit_test(test_names_of_kinds_and_statuses),
        cmocka_unit_test(test_random_ops_match_the_model_with_strictly_increasing_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
