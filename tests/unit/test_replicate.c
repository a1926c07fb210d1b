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
    buf v1, v2;
    bufInit(&v1);
    bufInit(&v2);
    replResolve(&x.rec, &y.rec, &r1, &v1);
    replResolve(&y.rec, &x.rec, &r2, &v2);
    /* Equal Lamport times: the higher origin wins, on both sides. */
    assert_int_equal(r1.ver.origin, 2);
    assert_int_equal(r2.ver.origin, 2);
    assert_memory_equal(r1.value, "from2", 5);
    assert_int_equal(r1.ver.lamport, 5);
    assert_int_equal(v1.len, v2.len);
    assert_memory_equal(v1.data, v2.data, v1.len);
    /* The merged clock dominates both, so neither side's old write wins later. */
    vclock m;
    vclockInit(&m);
    size_t used;
    assert_int_equal(vclockDecode((const uint8_t *)v1.data, v1.len, &m, &used), 0);
    assert_true(vclockDominates(&m, &x.vc) && vclockDominates(&m, &y.vc));
    assert_int_equal(replDecide(&r1.ver, &x.rec.ver), REPL_KEEP);
    assert_int_equal(replDecide(&r1.ver, &y.rec.ver), REPL_KEEP);
    vclockFree(&m);
    bufFree(&v1);
    bufFree(&v2);
    versionFree(&x);
    versionFree(&y);
}

static void test_higher_lamport_wins_a_conflict(void **state) {
    (void)state;
    version x, y;
    versionMake(&x, 9, 1, "late", (uint32_t[]){1}, (uint64_t[]){9}, 1);
    versionMake(&y, 4, 7, "early", (uint32_t[]){7}, (uint64_t[]){4}, 1);
    storeRecord r;
    buf v;
    bufInit(&v);
    replResolve(&y.rec, &x.rec, &r, &v);
    assert_int_equal(r.ver.origin, 1);
    assert_int_equal(r.ver.lamport, 9);
    bufFree(&v);
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
    buf v1, v2;
    bufInit(&v1);
    bufInit(&v2);
    replResolve(&x.rec, &y.rec, &r1, &v1);
    replResolve(&y.rec, &x.rec, &r2, &v2);
    assert_int_equal(r1.value_len, r2.value_len);
    assert_memory_equal(r1.value, r2.value, r1.value_len);
    assert_true(r1.ver.flags & STORE_FLAG_MERGED);
    assert_int_equal(r1.ver.flags, r2.ver.flags);
    assert_int_equal(v1.len, v2.len);
    assert_memory_equal(v1.data, v2.data, v1.len);
    bufFree(&v1);
    bufFree(&v2);
    versionFree(&x);
    versionFree(&y);
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
    assert_int_equal(pout.epoch, 42);
    assert_int_equal(pout.next, 1234);
    assert_int_equal(at, head);
    assert_int_equal(vclockCompare(&pout.summary, &pg.summary), VCLOCK_EQUAL);
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
        cmocka_unit_test(test_same_lamport_and_origin_still_resolve_the_same_way_from_either_side),
        cmocka_unit_test(test_sync_messages_round_trip_and_every_truncation_is_rejected),
        cmocka_unit_test(test_batches_round_trip_and_every_truncation_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
