/* libFuzzer target for the lock table's decoders and its apply.
 *
 * Every input goes to the three decoders (op batch, results, snapshot)
 * and, as a Raft entry, to lockTableApply on a fresh table and on a table
 * that already holds locks and queues, twice in a row, as a retried entry
 * would be. All three wire forms are canonical, so whatever a decoder
 * accepts must re-encode to exactly the input. Whatever apply does, the
 * table it leaves must snapshot into something the snapshot decoder
 * accepts and re-encodes byte for byte (so apply keeps every invariant the
 * decoder checks), its results must be ones the results decoder accepts,
 * and its grants must carry tokens that strictly increase and are never
 * below the entry's index. A decoded snapshot must survive further ops. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock/lock.h"

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_lock: %s\n", what);
    abort();
}

static void fuzzBatchDecoder(const uint8_t *data, size_t size) {
    lockBatchReader r;
    if (lockBatchOpen(&r, data, size) != 0) return;
    buf b;
    bufInit(&b);
    lockBatchWriter w;
    lockBatchBegin(&w, &b);
    lockOp op;
    int rc;
    while ((rc = lockBatchNext(&r, &op)) == 1) {
        if (lockOpCheck(&op) != NULL) fuzzFail("decoded an op the encoder refuses");
        if (lockBatchAdd(&w, &op) != 0) fuzzFail("decoded op does not re-encode");
    }
    lockBatchEnd(&w);
    if (rc == 0 && (b.len != size || memcmp(b.data, data, size) != 0))
        fuzzFail("batch re-encoding differs");
    if (rc == 0 && w.count != r.count) fuzzFail("op count differs");
    bufFree(&b);
}

static void fuzzResultsDecoder(const uint8_t *data, size_t size) {
    lockResults rs;
    lockResultsInit(&rs);
    if (lockResultsDecode(&rs, data, size) == 0) {
        buf b;
        bufInit(&b);
        lockResultsEncode(rs.r, rs.n, &b);
        if (b.len != size || memcmp(b.data, data, size) != 0)
            fuzzFail("results re-encoding differs");
        bufFree(&b);
    } else if (rs.n != 0) {
        fuzzFail("refused results left behind");
    }
    lockResultsFree(&rs);
}

typedef struct walk {
    const lockTable *t;
    size_t locks, waiters;
} walk;

/* The queries agree with each other about every lock. */
static void walkLock(void *ctx, const lockView *v) {
    walk *w = ctx;
    lockHolder h;
    if (!lockTableHolder(w->t, v->holder.name, v->holder.name_len, &h) ||
        h.token != v->holder.token || h.owner.node != v->holder.owner.node)
        fuzzFail("holder query disagrees with the listing");
    if (lockTableWaiters(w->t, v->holder.name, v->holder.name_len, NULL, 0) != v->n_waiters)
        fuzzFail("waiter query disagrees with the listing");
    if (v->holder.token == 0 || v->holder.token > lockTableLastToken(w->t)) fuzzFail("bad token");
    w->locks++;
    w->waiters += v->n_waiters;
}

/* The table's snapshot decodes and re-encodes to itself. */
static void checkSnapshot(const lockTable *t) {
    walk w = {t, 0, 0};
    lockTableForEach(t, walkLock, &w);
    if (w.locks != lockTableLockCount(t) || w.waiters != lockTableWaiterCount(t))
        fuzzFail("listing disagrees with the counts");
    buf a, b;
    bufInit(&a);
    bufInit(&b);
    lockTableEncode(t, &a);
    lockTable *u = lockTableCreate();
    if (lockTableDecode(u, (const uint8_t *)a.data, a.len) != 0)
        fuzzFail("snapshot of an applied table is refused");
    lockTableEncode(u, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        fuzzFail("snapshot re-encoding differs");
    if (lockTableLockCount(u) != lockTableLockCount(t) ||
        lockTableWaiterCount(u) != lockTableWaiterCount(t))
        fuzzFail("snapshot counts differ");
    lockTableFree(u);
    bufFree(&a);
    bufFree(&b);
}

static void applyChecked(lockTable *t, uint64_t index, const uint8_t *data, size_t size,
                         lockResults *rs, lockGrants *gs) {
    uint64_t last = lockTableLastToken(t);
    bool fresh = index > lockTableLastApplied(t);
    lockApplyStatus st = lockTableApply(t, index, data, size, rs, gs);
    if (!fresh && (st != LOCK_APPLY_DUPLICATE || rs->n || gs->n)) fuzzFail("duplicate applied");
    if (rs->n > LOCK_MAX_OPS_PER_BATCH) fuzzFail("too many results");
    for (size_t i = 0; i < gs->n; i++) {
        const lockGrant *g = &gs->g[i];
        if (g->token <= last || g->token < index) fuzzFail("grant token not increasing");
        last = g->token;
        if (g->name_len == 0 || g->name_len > LOCK_NAME_MAX || g->owner.node == 0)
            fuzzFail("bad grant");
    }
    if (lockTableLastToken(t) != last) fuzzFail("last token is not the last grant's");
    buf b;
    bufInit(&b);
    lockResultsEncode(rs->r, rs->n, &b);
    lockResults back;
    lockResultsInit(&back);
    if (lockResultsDecode(&back, (const uint8_t *)b.data, b.len) != 0)
        fuzzFail("apply produced a result the decoder refuses");
    lockResultsFree(&back);
    bufFree(&b);
    checkSnapshot(t);
}

/* Locks "a" and "b" with queues, owners on nodes 1-3, so fuzzed ops that
 * name them reach releases, promotions and evictions. */
static lockTable *busyTable(void) {
    lockTable *t = lockTableCreate();
    buf b;
    bufInit(&b);
    lockBatchWriter w;
    lockBatchBegin(&w, &b);
    for (uint32_t i = 0; i < 6; i++) {
        lockOp op = {.kind = LOCK_OP_ACQUIRE,
                     .req = i + 1,
                     .name = (const uint8_t *)(i % 2 ? "b" : "a"),
                     .name_len = 1,
                     .owner = {i % 3 + 1, i / 3 + 1},
                     .ttl_ms = 1000 * i};
        if (lockBatchAdd(&w, &op) != 0) fuzzFail("setup op refused");
    }
    lockBatchEnd(&w);
    if (lockTableApply(t, 1, (const uint8_t *)b.data, b.len, NULL, NULL) != LOCK_APPLY_OK)
        fuzzFail("setup failed");
    bufFree(&b);
    return t;
}

static void fuzzSnapshotDecoder(const uint8_t *data, size_t size, lockResults *rs, lockGrants *gs) {
    lockTable *t = busyTable();
    if (lockTableDecode(t, data, size) != 0) {
        lockTableFree(t);
        return;
    }
    buf b;
    bufInit(&b);
    lockTableEncode(t, &b);
    if (b.len != size || memcmp(b.data, data, size) != 0) fuzzFail("snapshot re-encoding differs");
    /* Exercise what was decoded: evictions walk every list it built. */
    lockOp ops[] = {{.kind = LOCK_OP_NODE_DEAD, .owner = {1, 0}},
                    {.kind = LOCK_OP_OWNER_GONE, .owner = {2, 1}}};
    lockBatchWriter w;
    bufClear(&b);
    lockBatchBegin(&w, &b);
    for (size_t i = 0; i < 2; i++) lockBatchAdd(&w, &ops[i]);
    lockBatchEnd(&w);
    uint64_t index = lockTableLastApplied(t) + 1;
    if (index != 0) applyChecked(t, index, (const uint8_t *)b.data, b.len, rs, gs);
    bufFree(&b);
    lockTableFree(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lockResults rs;
    lockGrants gs;
    lockResultsInit(&rs);
    lockGrantsInit(&gs);

    fuzzBatchDecoder(data, size);
    fuzzResultsDecoder(data, size);
    fuzzSnapshotDecoder(data, size, &rs, &gs);

    lockTable *t = lockTableCreate();
    applyChecked(t, 1, data, size, &rs, &gs);
    lockTableFree(t);

    t = busyTable();
    applyChecked(t, 10, data, size, &rs, &gs);
    applyChecked(t, 10, data, size, &rs, &gs); /* a duplicate: ignored */
    applyChecked(t, 11, data, size, &rs, &gs); /* the same ops again, as a retry */
    lockTableFree(t);

    lockResultsFree(&rs);
    lockGrantsFree(&gs);
    return 0;
}
