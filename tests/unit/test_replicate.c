/* Unit tests of the replication batch codec and the conflict rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "replicate/replicate.h"

typedef struct version {
    vclock vc;
    buf enc;
    storeRecord rec;
} version;

static void versionMake(version *v, uint64_t lamport, uint32_t origin, const char *value,
                        const uint32_t *nodes, const uint64_t *counters, size_t n) {
    vclockInit(&v->vc);
    for (size_t i = 0; i < n; i++) vclockSet(&v->vc, nodes[i], counters[i]);
    bufInit(&v->enc);
    vclockEncode(&v->vc, &v->enc);
    memset(&v->rec, 0, sizeof v->rec);
    v->rec.ver.lamport = lamport;
    v->rec.ver.origin = origin;
    v->rec.ver.vclock = (const uint8_t *)v->enc.data;
    v->rec.ver.vclock_len = v->enc.len;
    v->rec.value = value;
    v->rec.value_len = strlen(value);
}

static void versionFree(version *v) {
    vclockFree(&v->vc);
    bufFree(&v->enc);
}

static void test_newer_replaces_older_or_equal_is_kept_concurrent_conflicts(void **state) {
    (void)state;
    version a, b, c, d;
    uint32_t n12[] = {1, 2};
    versionMake(&a, 1, 1, "a", n12, (uint64_t[]){1, 0}, 1);
    versionMake(&b, 2, 1, "b", n12, (uint64_t[]){2, 0}, 1);
    versionMake(&c, 2, 2, "c", (uint32_t[]){2}, (uint64_t[]){1}, 1);
    versionMake(&d, 1, 1, "a", n12, (uint64_t[]){1, 0}, 1);
    assert_int_equal(replDecide(NULL, &a.rec.ver), REPL_REPLACE);
    assert_int_equal(replDecide(&a.rec.ver, &b.rec.ver), REPL_REPLACE);
    assert_int_equal(replDecide(&b.rec.ver, &a.rec.ver), REPL_KEEP);
    assert_int_equal(replDecide(&a.rec.ver, &d.rec.ver), REPL_KEEP);
    assert_int_equal(replDecide(&b.rec.ver, &c.rec.ver), REPL_CONFLICT);
    versionFree(&a);
    versionFree(&b);
    versionFree(&c);
    versionFree(&d);
}

static void test_conflicts_resolve_the_same_way_from_either_side(void **state) {
    (void)state;
    version x, y;
    versionMake(&x, 5, 1, "from1", (uint32_t[]){1}, (uint64_t[]){5}, 1);
    versionMake(&y, 5, 2, "from2", (uint32_t[]){2}, (uint64_t[]){3}, 1);
    storeRecord r1, r2;
    replResolveBufs v1, v2;
    replResolveBufsInit(&v1);
    replResolveBufsInit(&v2);
    replResolve(&x.rec, &y.rec, &r1, &v1);
    replResolve(&y.rec, &x.rec, &r2, &v2);
    /* Equal Lamport times: the higher origin wins, on both sides. */
    assert_int_equal(r1.ver.origin, 2);
    assert_int_equal(r2.ver.origin, 2);
    assert_memory_equal(r1.value, "from2", 5);
    assert_int_equal(r1.ver.lamport, 5);
    assert_int_equal(v1.vclock.len, v2.vclock.len);
    assert_memory_equal(v1.vclock.data, v2.vclock.data, v1.vclock.len);
    /* The merged clock dominates both, so neither side's old write wins later. */
    vclock m;
    vclockInit(&m);
    size_t used;
    assert_int_equal(vclockDecode((const uint8_t *)v1.vclock.data, v1.vclock.len, &m, &used), 0);
    assert_true(vclockDominates(&m, &x.vc) && vclockDominates(&m, &y.vc));
    assert_int_equal(replDecide(&r1.ver, &x.rec.ver), REPL_KEEP);
    assert_int_equal(replDecide(&r1.ver, &y.rec.ver), REPL_KEEP);
    vclockFree(&m);
    replResolveBufsFree(&v1);
    replResolveBufsFree(&v2);
    versionFree(&x);
    versionFree(&y);
}

static void assertMergedWrites(const storeRecord *r, const uint32_t *nodes, const uint64_t *seqs,
                               size_t n) {
    vclock got, want;
    vclockInit(&got);
    vclockInit(&want);
    for (size_t i = 0; i < n; i++) vclockSet(&want, nodes[i], seqs[i]);
    size_t used = 0;
    assert_true(r->ver.merged_len > 0);
    assert_int_equal(vclockDecode(r->ver.merged, r->ver.merged_len, &got, &used), 0);
    assert_int_equal(used, r->ver.merged_len);
    assert_int_equal(vclockCompare(&got, &want), VCLOCK_EQUAL);
    vclockFree(&got);
    vclockFree(&want);
}

static void test_a_merge_lists_the_writes_it_resolves(void **state) {
    (void)state;
    version x, y, z;
    versionMake(&x, 5, 1, "from1", (uint32_t[]){1}, (uint64_t[]){5}, 1);
    versionMake(&y, 6, 2, "from2", (uint32_t[]){2}, (uint64_t[]){3}, 1);
    x.rec.ver.seq = 4;
    y.rec.ver.seq = 2;
    storeRecord r1, r2;
    replResolveBufs b1, b2;
    replResolveBufsInit(&b1);
    replResolveBufsInit(&b2);
    replResolve(&x.rec, &y.rec, &r1, &b1);
    replResolve(&y.rec, &x.rec, &r2, &b2);
    /* Both writes, from either side, the same bytes. */
    assertMergedWrites(&r1, (uint32_t[]){1, 2}, (uint64_t[]){4, 2}, 2);
    assert_int_equal(r1.ver.merged_len, r2.ver.merged_len);
    assert_memory_equal(r1.ver.merged, r2.ver.merged, r1.ver.merged_len);
    /* A merge of the merge with a later write of node 1 made concurrently
     * with node 2's: node 1's entry is its latest write. */
    versionMake(&z, 9, 1, "again1", (uint32_t[]){1}, (uint64_t[]){7}, 1);
    z.rec.ver.seq = 6;
    assert_int_equal(replDecide(&r1.ver, &z.rec.ver), REPL_CONFLICT);
    storeRecord m = r1, r3;
    replResolveBufs b3;
    replResolveBufsInit(&b3);
    replResolve(&m, &z.rec, &r3, &b3);
    assert_memory_equal(r3.value, "again1", 6);
    assertMergedWrites(&r3, (uint32_t[]){1, 2}, (uint64_t[]){6, 2}, 2);
    /* A write with no seq (an older record) makes the list unknown: empty,
     * and so is every merge made from it. */
    y.rec.ver.seq = 0;
    replResolve(&x.rec, &y.rec, &r2, &b2);
    assert_true(r2.ver.flags & STORE_FLAG_MERGED);
    assert_int_equal(r2.ver.merged_len, 0);
    m = r2;
    replResolve(&m, &z.rec, &r3, &b3);
    assert_int_equal(r3.ver.merged_len, 0);
    /* So does a write without an origin (a peer can send anything). */
    y.rec.ver.seq = 2;
    y.rec.ver.origin = 0;
    replResolve(&x.rec, &y.rec, &r2, &b2);
    assert_int_equal(r2.ver.merged_len, 0);
    replResolveBufsFree(&b1);
    replResolveBufsFree(&b2);
    replResolveBufsFree(&b3);
    versionFree(&x);
    versionFree(&y);
    versionFree(&z);
}

static void test_higher_lamport_wins_a_conflict(void **state) {
    (void)state;
    version x, y;
    versionMake(&x, 9, 1, "late", (uint32_t[]){1}, (uint64_t[]){9}, 1);
    versionMake(&y, 4, 7, "early", (uint32_t[]){7}, (uint64_t[]){4}, 1);
    storeRecord r;
    replResolveBufs v;
    replResolveBufsInit(&v);
    replResolve(&y.rec, &x.rec, &r, &v);
    assert_int_equal(r.ver.origin, 1);
    assert_int_equal(r.ver.lamport, 9);
    replResolveBufsFree(&v);
    versionFree(&x);
    versionFree(&y);
}

static void test_batches_round_trip_and_every_truncation_is_rejected(void **state) {
    (void)state;
    version a;
    versionMake(&a, 3, 2, "value\r\n\0x", (uint32_t[]){2}, (uint64_t[]){3}, 1);
    a.rec.value_len = 9;
    vclock sender;
    vclockInit(&sender);
    vclockSet(&sender, 2, 4);
    vclockSet(&sender, 5, 1);
    buf b;
    bufInit(&b);
    size_t at = replBatchBegin(&b, 2, 11, &sender, "2:4");
    replBatchAdd(&b, "k1", 2, &a.rec);
    replBatchAdd(&b, "key-two", 7, &a.rec);
    replBatchEnd(&b, at, 2);
    replHeader h;
    vclockInit(&h.vc);
    replBatchReader r;
    assert_int_equal(replBatchOpen((const uint8_t *)b.data, b.len, &h, &r), 0);
    assert_int_equal(h.sender, 2);
    assert_int_equal(h.lamport, 11);
    assert_string_equal(h.msg_id, "2:4");
    assert_int_equal(vclockCompare(&h.vc, &sender), VCLOCK_EQUAL);
    const uint8_t *k;
    size_t kl;
    storeRecord rec;
    assert_int_equal(replBatchNext(&r, &k, &kl, &rec), 1);
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "k1", 2);
    assert_int_equal(rec.value_len, 9);
    assert_memory_equal(rec.value, "value\r\n\0x", 9);
    assert_int_equal(rec.ver.lamport, 3);
    assert_int_equal(replBatchNext(&r, &k, &kl, &rec), 1);
    assert_memory_equal(k, "key-two", 7);
    assert_int_equal(replBatchNext(&r, &k, &kl, &rec), 0);
    vclockFree(&h.vc);
    /* Every truncation fails, in the header or in a record. */
    for (size_t cut = 0; cut < b.len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.data, cut);
        vclockInit(&h.vc);
        int ok = replBatchOpen(copy, cut, &h, &r) == 0;
        int rc = 0;
        if (ok) {
            while ((rc = replBatchNext(&r, &k, &kl, &rec)) == 1) {
            }
        }
        assert_true(!ok || rc == -1);
        vclockFree(&h.vc);
        free(copy);
    }
    vclockFree(&sender);
    bufFree(&b);
    versionFree(&a);
}

static void test_same_lamport_and_origin_still_resolve_the_same_way_from_either_side(void **state) {
    (void)state;
    version x, y;
    /* A node restarted under its old id with empty data can make these. */
    versionMake(&x, 5, 3, "first life", (uint32_t[]){3}, (uint64_t[]){5}, 1);
    versionMake(&y, 5, 3, "second life", (uint32_t[]){3, 4}, (uint64_t[]){2, 1}, 2);
    assert_int_equal(replDecide(&x.rec.ver, &y.rec.ver), REPL_CONFLICT);
    storeRecord r1, r2;
    replResolveBufs v1, v2;
    replResolveBufsInit(&v1);
    replResolveBufsInit(&v2);
    replResolve(&x.rec, &y.rec, &r1, &v1);
    replResolve(&y.rec, &x.rec, &r2, &v2);
    assert_int_equal(r1.value_len, r2.value_len);
    assert_memory_equal(r1.value, r2.value, r1.value_len);
    assert_true(r1.ver.flags & STORE_FLAG_MERGED);
    assert_int_equal(r1.ver.flags, r2.ver.flags);
    assert_int_equal(v1.vclock.len, v2.vclock.len);
    assert_memory_equal(v1.vclock.data, v2.vclock.data, v1.vclock.len);
    replResolveBufsFree(&v1);
    replResolveBufsFree(&v2);
    versionFree(&x);
    versionFree(&y);
}

static void test_verify_messages_round_trip_and_bad_ones_are_rejected(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    size_t at = replVerifyBegin(&b, 3);
    replVerifyAdd(&b, "alpha", 5, 1, 10);
    replVerifyAdd(&b, "b", 1, 2, 0x0102030405060708ull);
    replVerifyEnd(&b, at, 2);
    uint32_t requester = 0, origin;
    uint64_t seq;
    const uint8_t *k;
    size_t kl;
    replVerifyReader r;
    assert_int_equal(replVerifyOpen((const uint8_t *)b.data, b.len, &requester, &r), 0);
    assert_int_equal(requester, 3);
    assert_int_equal(replVerifyNext(&r, &k, &kl, &origin, &seq), 1);
    assert_int_equal(kl, 5);
    assert_memory_equal(k, "alpha", 5);
    assert_int_equal(origin, 1);
    assert_int_equal(seq, 10);
    assert_int_equal(replVerifyNext(&r, &k, &kl, &origin, &seq), 1);
    assert_int_equal(seq, 0x0102030405060708ull);
    assert_int_equal(replVerifyNext(&r, &k, &kl, &origin, &seq), 0);
    /* Every truncation, and a byte too many, is malformed. */
    for (size_t cut = 0; cut <= b.len; cut++) {
        uint8_t *copy = malloc(cut + 1);
        memcpy(copy, b.data, cut < b.len ? cut : b.len);
        size_t len = cut < b.len ? cut : b.len + 1;
        if (cut == b.len) copy[b.len] = 0;
        int rc = -1;
        if (replVerifyOpen(copy, len, &requester, &r) == 0)
            while ((rc = replVerifyNext(&r, &k, &kl, &origin, &seq)) == 1) {
            }
        assert_int_equal(rc, -1);
        free(copy);
    }
    /* No keys, too many keys, and a write without a seq are refused. */
    buf e;
    bufInit(&e);
    at = replVerifyBegin(&e, 3);
    replVerifyEnd(&e, at, 0);
    assert_int_equal(replVerifyOpen((const uint8_t *)e.data, e.len, &requester, &r), -1);
    replVerifyEnd(&e, at, REPL_VERIFY_MAX_KEYS + 1);
    assert_int_equal(replVerifyOpen((const uint8_t *)e.data, e.len, &requester, &r), -1);
    bufClear(&e);
    at = replVerifyBegin(&e, 3);
    replVerifyAdd(&e, "k", 1, 1, 0);
    replVerifyEnd(&e, at, 1);
    assert_int_equal(replVerifyOpen((const uint8_t *)e.data, e.len, &requester, &r), 0);
    assert_int_equal(replVerifyNext(&r, &k, &kl, &origin, &seq), -1);
    /* The answer: one bit per key, the unused ones 0. */
    uint8_t bits[2] = {0x05, 0x01}; /* keys 0, 2 and 8 of 9 */
    bufClear(&e);
    replVerifyAnswerEncode(&e, 9, bits);
    const uint8_t *got;
    assert_int_equal(replVerifyAnswerDecode((const uint8_t *)e.data, e.len, 9, &got), 0);
    assert_memory_equal(got, bits, 2);
    assert_int_equal(replVerifyAnswerDecode((const uint8_t *)e.data, e.len, 10, &got), -1);
    assert_int_equal(replVerifyAnswerDecode((const uint8_t *)e.data, e.len - 1, 9, &got), -1);
    e.data[e.len - 1] = 0x03; /* a bit for a tenth key */
    assert_int_equal(replVerifyAnswerDecode((const uint8_t *)e.data, e.len, 9, &got), -1);
    bufFree(&e);
    bufFree(&b);
}

static void test_sync_messages_round_trip_and_every_truncation_is_rejected(void **state) {
    (void)state;
    replSyncRequest q = {
        .requester = 7, .epoch = 0x1122334455667788ull, .after = 99, .max_records = 500};
    vclockInit(&q.summary);
    vclockSet(&q.summary, 1, 10);
    vclockSet(&q.summary, 7, 3);
    buf b;
    bufInit(&b);
    replSyncRequestEncode(&q, &b);
    replSyncRequest out;
    vclockInit(&out.summary);
    assert_int_equal(replSyncRequestDecode((const uint8_t *)b.data, b.len, &out), 0);
    assert_int_equal(out.requester, 7);
    assert_int_equal(out.epoch, q.epoch);
    assert_int_equal(out.after, 99);
    assert_int_equal(out.max_records, 500);
    assert_int_equal(vclockCompare(&out.summary, &q.summary), VCLOCK_EQUAL);
    for (size_t len = 0; len < b.len; len++) {
        vclockClear(&out.summary);
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, b.data, len);
        if (replSyncRequestDecode(cut, len, &out) != -1)
            fail_msg("request cut to %zu was accepted", len);
        free(cut);
    }
    /* A trailing byte, a zero or oversized page, requester 0: refused. */
    bufAppendChar(&b, 0);
    assert_int_equal(replSyncRequestDecode((const uint8_t *)b.data, b.len, &out), -1);
    q.max_records = 0;
    bufClear(&b);
    replSyncRequestEncode(&q, &b);
    assert_int_equal(replSyncRequestDecode((const uint8_t *)b.data, b.len, &out), -1);
    q.max_records = REPL_SYNC_MAX_PAGE_RECORDS + 1;
    bufClear(&b);
    replSyncRequestEncode(&q, &b);
    assert_int_equal(replSyncRequestDecode((const uint8_t *)b.data, b.len, &out), -1);

    replSyncPage pg = {.done = true, .epoch = 42, .next = 1234};
    vclockInit(&pg.summary);
    vclockSet(&pg.summary, 2, 8);
    bufClear(&b);
    replSyncPageEncodeHead(&pg, &b);
    size_t head = b.len;
    bufAppend(&b, "batch", 5);
    replSyncPage pout;
    vclockInit(&pout.summary);
    size_t at = 0;
    assert_int_equal(replSyncPageDecodeHead((const uint8_t *)b.data, b.len, &pout, &at), 0);
    assert_true(pout.done);
    assert_false(pout.recheck);
    assert_int_equal(pout.epoch, 42);
    assert_int_equal(pout.next, 1234);
    assert_int_equal(at, head);
    assert_int_equal(vclockCompare(&pout.summary, &pg.summary), VCLOCK_EQUAL);
    /* The two flags travel independently; any other flag bit is refused. */
    for (int f = 0; f < 4; f++) {
        replSyncPage two = pg;
        two.done = f & 1;
        two.recheck = (f & 2) != 0;
        buf t;
        bufInit(&t);
        replSyncPageEncodeHead(&two, &t);
        assert_int_equal(replSyncPageDecodeHead((const uint8_t *)t.data, t.len, &pout, &at), 0);
        assert_int_equal(pout.done, two.done);
        assert_int_equal(pout.recheck, two.recheck);
        t.data[1] = (char)(4 | f);
        assert_int_equal(replSyncPageDecodeHead((const uint8_t *)t.data, t.len, &pout, &at), -1);
        bufFree(&t);
    }
    for (size_t len = 0; len < head; len++) {
        vclockClear(&pout.summary);
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, b.data, len);
        if (replSyncPageDecodeHead(cut, len, &pout, &at) != -1)
            fail_msg("page cut to %zu was accepted", len);
        free(cut);
    }
    vclockFree(&q.summary);
    vclockFree(&out.summary);
    vclockFree(&pg.summary);
    vclockFree(&pout.summary);
    bufFree(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_replaces_older_or_equal_is_kept_concurrent_conflicts),
        cmocka_unit_test(test_conflicts_resolve_the_same_way_from_either_side),
        cmocka_unit_test(test_higher_lamport_wins_a_conflict),
        cmocka_unit_test(test_a_merge_lists_the_writes_it_resolves),
        cmocka_unit_test(test_verify_messages_round_trip_and_bad_ones_are_rejected),
        cmocka_unit_test(test_same_lamport_and_origin_still_resolve_the_same_way_from_either_side),
        cmocka_unit_test(test_sync_messages_round_trip_and_every_truncation_is_rejected),
        cmocka_unit_test(test_batches_round_trip_and_every_truncation_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
