/* Unit and property tests for src/clock: vector clock operations, the
 * binary and text forms, the node clock rules, and random message-passing
 * histories in which the vector clock order must match the happened-before
 * relation computed from the event graph itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"

/* ---- Helpers ---------------------------------------------------------- */

/* xorshift64*: a fixed-seed generator, so a failing seed reproduces. */
typedef struct rng {
    uint64_t s;
} rng;

static void rngSeed(rng *r, uint64_t seed) {
    r->s = seed * 0x9e3779b97f4a7c15ull + 1; /* never 0 */
}

static uint64_t rngNext(rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

static uint64_t rngBelow(rng *r, uint64_t n) {
    return rngNext(r) % n;
}

/* Checks the representation invariant: strictly increasing nonzero node
 * ids and no zero counters. */
static void assertWellFormed(const vclock *v) {
    assert_true(v->n <= v->cap);
    for (size_t i = 0; i < v->n; i++) {
        assert_int_not_equal(v->e[i].node, 0);
        assert_int_not_equal(v->e[i].counter, 0);
        if (i) assert_true(v->e[i - 1].node < v->e[i].node);
    }
}

static void assertBufIs(const buf *b, const char *want) {
    size_t n = strlen(want);
    if (b->len != n || memcmp(b->data, want, n) != 0) {
        fail_msg("got \"%.*s\", want \"%s\"", (int)b->len, b->data ? b->data : "", want);
    }
}

static void assertBytesAre(const buf *b, const uint8_t *want, size_t n) {
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

/* Builds a clock from (node, counter) pairs, terminated by node 0. */
static void clockOf(vclock *v, ...) {
    vclockInit(v);
    va_list ap;
    va_start(ap, v);
    for (;;) {
        uint32_t node = va_arg(ap, uint32_t);
        if (node == 0) break;
        uint64_t counter = va_arg(ap, uint64_t);
        vclockSet(v, node, counter);
    }
    va_end(ap);
}

#define N(x) ((uint32_t)(x))
#define C(x) ((uint64_t)(x))

/* ---- Get, set, increment, copy, clear --------------------------------- */

static void test_new_clock_is_empty_and_every_node_reads_zero(void **state) {
    vclock v;
    vclockInit(&v);
    assert_int_equal(v.n, 0);
    assert_int_equal(vclockGet(&v, 1), 0);
    assert_int_equal(vclockGet(&v, UINT32_MAX), 0);
    vclockFree(&v);
}

static void test_set_keeps_entries_sorted_by_node(void **state) {
    vclock v;
    vclockInit(&v);
    uint32_t order[] = {50, 3, 4000000000u, 7, 1, UINT32_MAX, 20};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        vclockSet(&v, order[i], i + 1);
        assertWellFormed(&v);
    }
    assert_int_equal(v.n, 7);
    uint32_t sorted[] = {1, 3, 7, 20, 50, 4000000000u, UINT32_MAX};
    for (size_t i = 0; i < 7; i++) assert_int_equal(v.e[i].node, sorted[i]);
    assert_int_equal(vclockGet(&v, 50), 1);
    assert_int_equal(vclockGet(&v, 4000000000u), 3);
    assert_int_equal(vclockGet(&v, UINT32_MAX), 6);
    assert_int_equal(vclockGet(&v, 2), 0);
    vclockFree(&v);
}

static void test_set_overwrites_existing_counter(void **state) {
    vclock v;
    clockOf(&v, N(7), C(3), N(4000000000u), C(9), N(0));
    vclockSet(&v, 7, 100);
    vclockSet(&v, 4000000000u, 1);
    assert_int_equal(v.n, 2);
    assert_int_equal(vclockGet(&v, 7), 100);
    assert_int_equal(vclockGet(&v, 4000000000u), 1);
    vclockFree(&v);
}

static void test_set_to_zero_removes_the_entry(void **state) {
    vclock v;
    clockOf(&v, N(1), C(1), N(7), C(2), N(4000000000u), C(3), N(0));
    vclockSet(&v, 7, 0);
    assertWellFormed(&v);
    assert_int_equal(v.n, 2);
    assert_int_equal(vclockGet(&v, 7), 0);
    assert_int_equal(vclockGet(&v, 1), 1);
    assert_int_equal(vclockGet(&v, 4000000000u), 3);
    vclockSet(&v, 4000000000u, 0);
    vclockSet(&v, 1, 0);
    assert_int_equal(v.n, 0);
    vclockFree(&v);
}

static void test_set_to_zero_of_absent_node_changes_nothing(void **state) {
    vclock v;
    clockOf(&v, N(1), C(1), N(9), C(2), N(0));
    vclockSet(&v, 5, 0);
    vclockSet(&v, 100, 0);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.e[0].node, 1);
    assert_int_equal(v.e[1].node, 9);
    vclockFree(&v);
}

static void test_increment_creates_entry_and_returns_new_counter(void **state) {
    vclock v;
    vclockInit(&v);
    assert_int_equal(vclockIncrement(&v, 4000000000u), 1);
    assert_int_equal(vclockIncrement(&v, 4000000000u), 2);
    assert_int_equal(vclockIncrement(&v, 7), 1);
    assert_int_equal(vclockGet(&v, 4000000000u), 2);
    assert_int_equal(vclockGet(&v, 7), 1);
    assert_int_equal(v.e[0].node, 7);
    vclockFree(&v);
}

static void test_increment_saturates_instead_of_wrapping_to_zero(void **state) {
    vclock v;
    clockOf(&v, N(3), C(UINT64_MAX - 1), N(0));
    assert_true(vclockIncrement(&v, 3) == UINT64_MAX);
    assert_true(vclockIncrement(&v, 3) == UINT64_MAX);
    assert_true(vclockGet(&v, 3) == UINT64_MAX);
    assert_int_equal(v.n, 1);
    vclockFree(&v);
}

static void test_copy_replaces_destination_and_is_independent(void **state) {
    vclock a, b;
    clockOf(&a, N(1), C(3), N(7), C(5), N(4000000000u), C(8), N(0));
    clockOf(&b, N(2), C(99), N(0));
    vclockCopy(&b, &a);
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_EQUAL);
    assert_int_equal(vclockGet(&b, 2), 0);
    vclockSet(&a, 7, 6);
    assert_int_equal(vclockGet(&b, 7), 5);
    vclockCopy(&a, &a);
    assert_int_equal(vclockGet(&a, 7), 6);

    vclock empty;
    vclockInit(&empty);
    vclockCopy(&b, &empty);
    assert_int_equal(b.n, 0);
    vclockFree(&a);
    vclockFree(&b);
}

static void test_clear_empties_the_clock_and_keeps_storage(void **state) {
    vclock v;
    clockOf(&v, N(1), C(3), N(2), C(5), N(0));
    size_t cap = v.cap;
    vclockClear(&v);
    assert_int_equal(v.n, 0);
    assert_int_equal(v.cap, cap);
    assert_int_equal(vclockGet(&v, 1), 0);
    vclockSet(&v, 9, 1);
    assert_int_equal(vclockGet(&v, 9), 1);
    vclockFree(&v);
}

/* ---- Merge ------------------------------------------------------------ */

static void test_merge_of_disjoint_ids_is_their_union(void **state) {
    vclock a, b;
    clockOf(&a, N(1), C(4), N(50), C(1), N(4000000000u), C(2), N(0));
    clockOf(&b, N(7), C(9), N(60), C(3), N(UINT32_MAX), C(5), N(0));
    vclockMerge(&a, &b);
    assertWellFormed(&a);
    assert_int_equal(a.n, 6);
    assert_int_equal(vclockGet(&a, 1), 4);
    assert_int_equal(vclockGet(&a, 7), 9);
    assert_int_equal(vclockGet(&a, 50), 1);
    assert_int_equal(vclockGet(&a, 60), 3);
    assert_int_equal(vclockGet(&a, 4000000000u), 2);
    assert_int_equal(vclockGet(&a, UINT32_MAX), 5);
    assert_int_equal(b.n, 3); /* src untouched */
    vclockFree(&a);
    vclockFree(&b);
}

static void test_merge_of_overlapping_ids_takes_pointwise_max(void **state) {
    vclock a, b;
    clockOf(&a, N(1), C(4), N(7), C(2), N(4000000000u), C(10), N(0));
    clockOf(&b, N(1), C(2), N(5), C(1), N(7), C(8), N(4000000000u), C(10), N(0));
    vclockMerge(&a, &b);
    assertWellFormed(&a);
    assert_int_equal(a.n, 4);
    assert_int_equal(vclockGet(&a, 1), 4);
    assert_int_equal(vclockGet(&a, 5), 1);
    assert_int_equal(vclockGet(&a, 7), 8);
    assert_int_equal(vclockGet(&a, 4000000000u), 10);
    vclockFree(&a);
    vclockFree(&b);
}

static void test_merge_with_empty_and_with_itself(void **state) {
    vclock a, empty, c;
    clockOf(&a, N(3), C(1), N(9), C(2), N(0));
    vclockInit(&empty);
    vclockInit(&c);

    vclockMerge(&a, &empty);
    assert_int_equal(a.n, 2);
    vclockMerge(&empty, &a);
    assert_int_equal(vclockCompare(&empty, &a), VCLOCK_EQUAL);
    vclockCopy(&c, &a);
    vclockMerge(&a, &a);
    assert_int_equal(vclockCompare(&a, &c), VCLOCK_EQUAL);
    vclockFree(&a);
    vclockFree(&empty);
    vclockFree(&c);
}

/* Dense counters over a fixed set of sparse ids, as a reference model. */
static const uint32_t model_ids[] = {1, 2, 7, 300, 65536, 4000000000u, UINT32_MAX};
#define MODEL_IDS (sizeof model_ids / sizeof model_ids[0])

/* Builds v from the model m, inserting in a random order so that
 * vclockSet's insertion is exercised. */
static void modelBuild(rng *r, const uint64_t *m, vclock *v) {
    vclockClear(v);
    size_t start = rngBelow(r, MODEL_IDS);
    for (size_t k = 0; k < MODEL_IDS; k++) {
        size_t i = (start + k * 3) % MODEL_IDS; /* 3 is coprime to 7 */
        vclockSet(v, model_ids[i], m[i]);
    }
}

static void test_merge_compare_dominates_match_a_dense_model(void **state) {
    rng r;
    rngSeed(&r, 42);
    vclock a, b, merged;
    vclockInit(&a);
    vclockInit(&b);
    vclockInit(&merged);
    int seen[4] = {0};
    for (int iter = 0; iter < 20000; iter++) {
        /* b is mostly a copy of a, so that equal and ordered pairs are as
         * common as concurrent ones. */
        uint64_t ma[MODEL_IDS], mb[MODEL_IDS];
        for (size_t i = 0; i < MODEL_IDS; i++) {
            ma[i] = rngBelow(&r, 3) == 0 ? 0 : rngBelow(&r, 4);
            mb[i] = rngBelow(&r, 4) == 0 ? rngBelow(&r, 4) : ma[i];
        }
        modelBuild(&r, ma, &a);
        modelBuild(&r, mb, &b);
        assertWellFormed(&a);

        bool le = true, ge = true;
        for (size_t i = 0; i < MODEL_IDS; i++) {
            if (ma[i] > mb[i]) le = false;
            if (ma[i] < mb[i]) ge = false;
        }
        vclockOrder want = le && ge ? VCLOCK_EQUAL
                           : le     ? VCLOCK_BEFORE
                           : ge     ? VCLOCK_AFTER
                                    : VCLOCK_CONCURRENT;
        vclockOrder got = vclockCompare(&a, &b);
        assert_int_equal(got, want);
        seen[got]++;
        assert_int_equal(vclockDominates(&a, &b), ge);
        assert_int_equal(vclockDominates(&b, &a), le);

        vclockCopy(&merged, &a);
        vclockMerge(&merged, &b);
        assertWellFormed(&merged);
        for (size_t i = 0; i < MODEL_IDS; i++) {
            uint64_t want_c = ma[i] > mb[i] ? ma[i] : mb[i];
            assert_int_equal(vclockGet(&merged, model_ids[i]), want_c);
        }
    }
    /* The generator reaches every outcome, so the loop above tested them. */
    for (int k = 0; k < 4; k++) assert_true(seen[k] > 100);
    vclockFree(&a);
    vclockFree(&b);
    vclockFree(&merged);
}

/* ---- Compare and dominates -------------------------------------------- */

static void test_compare_equal_clocks_including_empty(void **state) {
    vclock a, b;
    vclockInit(&a);
    vclockInit(&b);
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_EQUAL);
    vclockSet(&a, 7, 2);
    vclockSet(&a, 4000000000u, 5);
    vclockSet(&b, 4000000000u, 5);
    vclockSet(&b, 7, 2);
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_EQUAL);
    vclockFree(&a);
    vclockFree(&b);
}

static void test_compare_before_when_pointwise_less_or_missing(void **state) {
    vclock a, b;
    clockOf(&a, N(1), C(1), N(7), C(2), N(0));
    clockOf(&b, N(1), C(1), N(7), C(3), N(0));
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_BEFORE);
    assert_int_equal(vclockCompare(&b, &a), VCLOCK_AFTER);
    /* b knows a node a has never heard of: a is still before b. */
    vclockSet(&b, 7, 2);
    vclockSet(&b, 4000000000u, 1);
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_BEFORE);
    assert_int_equal(vclockCompare(&b, &a), VCLOCK_AFTER);
    vclock empty;
    vclockInit(&empty);
    assert_int_equal(vclockCompare(&empty, &a), VCLOCK_BEFORE);
    assert_int_equal(vclockCompare(&a, &empty), VCLOCK_AFTER);
    vclockFree(&a);
    vclockFree(&b);
}

static void test_compare_concurrent_when_each_has_something_newer(void **state) {
    vclock a, b;
    clockOf(&a, N(1), C(2), N(7), C(1), N(0));
    clockOf(&b, N(1), C(1), N(7), C(2), N(0));
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_CONCURRENT);
    assert_int_equal(vclockCompare(&b, &a), VCLOCK_CONCURRENT);
    vclockFree(&a);
    vclockFree(&b);
    /* Disjoint nodes: each holds an entry the other lacks. */
    clockOf(&a, N(7), C(1), N(0));
    clockOf(&b, N(4000000000u), C(1), N(0));
    assert_int_equal(vclockCompare(&a, &b), VCLOCK_CONCURRENT);
    assert_int_equal(vclockCompare(&b, &a), VCLOCK_CONCURRENT);
    vclockFree(&a);
    vclockFree(&b);
}

static void test_dominates_is_pointwise_greater_or_equal(void **state) {
    vclock a, b, empty;
    clockOf(&a, N(1), C(3), N(7), C(2), N(4000000000u), C(1), N(0));
    clockOf(&b, N(1), C(3), N(4000000000u), C(1), N(0));
    vclockInit(&empty);
    assert_true(vclockDominates(&a, &a));
    assert_true(vclockDominates(&a, &b));
    assert_false(vclockDominates(&b, &a));
    assert_true(vclockDominates(&a, &empty));
    assert_true(vclockDominates(&empty, &empty));
    assert_false(vclockDominates(&empty, &a));
    vclockSet(&b, 4000000000u, 2);
    assert_false(vclockDominates(&a, &b)); /* now concurrent */
    assert_false(vclockDominates(&b, &a));
    vclockFree(&a);
    vclockFree(&b);
}

/* ---- Binary form ------------------------------------------------------ */

static void test_encode_writes_count_deltas_and_counters(void **state) {
    vclock v;
    clockOf(&v, N(1), C(3), N(2), C(5), N(0));
    buf b;
    bufInit(&b);
    bufAppendStr(&b, "x");
    vclockEncode(&v, &b);
    const uint8_t want[] = {'x', 0x02, 0x01, 0x03, 0x01, 0x05};
    assertBytesAre(&b, want, sizeof want);
    vclockFree(&v);

    /* 300 = 0xac 0x02; the second delta is 4000000000 - 300. */
    clockOf(&v, N(300), C(1), N(4000000000u), C(UINT64_MAX), N(0));
    bufClear(&b);
    vclockEncode(&v, &b);
    const uint8_t want2[] = {0x02, 0xac, 0x02, 0x01, 0xd4, 0xcd, 0xac, 0xf3, 0x0e, 0xff,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assertBytesAre(&b, want2, sizeof want2);
    assert_int_equal(vclockEncodedSize(&v), sizeof want2);
    vclockFree(&v);
    bufFree(&b);
}

static void test_empty_clock_encodes_as_one_zero_byte(void **state) {
    vclock v, out;
    vclockInit(&v);
    clockOf(&out, N(5), C(5), N(0));
    buf b;
    bufInit(&b);
    vclockEncode(&v, &b);
    const uint8_t want[] = {0x00};
    assertBytesAre(&b, want, 1);
    assert_int_equal(vclockEncodedSize(&v), 1);
    size_t used = 99;
    assert_int_equal(vclockDecode((uint8_t *)b.data, b.len, &out, &used), 0);
    assert_int_equal(used, 1);
    assert_int_equal(out.n, 0);
    vclockFree(&out);
    bufFree(&b);
}

/* Encodes v, checks the size prediction, decodes, and requires the same
 * clock and all bytes consumed. */
static void assertRoundTrips(const vclock *v) {
    buf b;
    bufInit(&b);
    vclockEncode(v, &b);
    assert_int_equal(b.len, vclockEncodedSize(v));
    vclock out;
    vclockInit(&out);
    size_t used = 0;
    assert_int_equal(vclockDecode((uint8_t *)b.data, b.len, &out, &used), 0);
    assert_int_equal(used, b.len);
    assertWellFormed(&out);
    assert_int_equal(vclockCompare(v, &out), VCLOCK_EQUAL);
    assert_int_equal(out.n, v->n);
    vclockFree(&out);
    bufFree(&b);
}

static void test_round_trip_single_entry_and_extremes(void **state) {
    vclock v;
    clockOf(&v, N(1), C(1), N(0));
    assertRoundTrips(&v);
    vclockFree(&v);
    clockOf(&v, N(UINT32_MAX), C(UINT64_MAX), N(0));
    assertRoundTrips(&v);
    vclockFree(&v);
    clockOf(&v, N(1), C(UINT64_MAX), N(7), C(UINT64_MAX - 1), N(4000000000u), C(1ull << 63),
            N(UINT32_MAX), C(127), N(0));
    assertRoundTrips(&v);
    vclockFree(&v);
}

static void test_round_trip_of_maximum_size_clock(void **state) {
    rng r;
    rngSeed(&r, 7);
    vclock v;
    vclockInit(&v);
    /* Sparse ids spread over the whole 32-bit range, varied counter sizes. */
    for (uint32_t i = 0; i < VCLOCK_MAX_ENTRIES; i++) {
        uint32_t node = i * 1048000u + 1 + (uint32_t)rngBelow(&r, 1000);
        uint64_t counter = rngNext(&r) >> rngBelow(&r, 64);
        vclockSet(&v, node, counter ? counter : 1);
    }
    assert_int_equal(v.n, VCLOCK_MAX_ENTRIES);
    assert_true(vclockEncodedSize(&v) <= VCLOCK_MAX_ENCODED_SIZE);
    assertRoundTrips(&v);
    vclockFree(&v);
}

static void test_decode_reports_consumed_and_leaves_trailing_bytes(void **state) {
    const uint8_t in[] = {0x02, 0x01, 0x03, 0x01, 0x05, 0xde, 0xad};
    vclock v;
    clockOf(&v, N(9), C(9), N(0));
    size_t used = 0;
    assert_int_equal(vclockDecode(in, sizeof in, &v, &used), 0);
    assert_int_equal(used, 5);
    assert_int_equal(v.n, 2); /* old {9:9} replaced, not merged */
    assert_int_equal(vclockGet(&v, 1), 3);
    assert_int_equal(vclockGet(&v, 2), 5);
    assert_int_equal(vclockGet(&v, 9), 0);
    vclockFree(&v);
}

/* Decoding must fail and leave the destination clock exactly as it was. */
static void assertRejected(const uint8_t *p, size_t len) {
    vclock v;
    clockOf(&v, N(42), C(42), N(0));
    vclockEntry *e = v.e;
    size_t cap = v.cap, used = 12345;
    assert_int_equal(vclockDecode(p, len, &v, &used), -1);
    assert_true(v.e == e);
    assert_int_equal(v.cap, cap);
    assert_int_equal(v.n, 1);
    assert_int_equal(vclockGet(&v, 42), 42);
    assert_int_equal(used, 12345);
    vclockFree(&v);
}

static void test_decode_rejects_every_truncation(void **state) {
    vclock v;
    clockOf(&v, N(1), C(3), N(300), C(70000), N(4000000000u), C(UINT64_MAX), N(UINT32_MAX), C(1),
            N(0));
    buf b;
    bufInit(&b);
    vclockEncode(&v, &b);
    for (size_t len = 0; len < b.len; len++) assertRejected((uint8_t *)b.data, len);
    vclock out;
    vclockInit(&out);
    assert_int_equal(vclockDecode((uint8_t *)b.data, b.len, &out, NULL), 0);
    vclockFree(&out);
    vclockFree(&v);
    bufFree(&b);
}

static void test_decode_rejects_varint_longer_than_ten_bytes(void **state) {
    /* Count with eleven bytes (value 0 with padding), then nothing. */
    const uint8_t count[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assertRejected(count, sizeof count);
    /* Counter with eleven bytes. */
    const uint8_t counter[] = {0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0x81, 0x00};
    assertRejected(counter, sizeof counter);
}

static void test_decode_rejects_varint_overflowing_64_bits(void **state) {
    /* A ten-byte counter whose last byte sets bit 64... */
    const uint8_t over[] = {0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    assertRejected(over, sizeof over);
    /* ...while UINT64_MAX itself is fine. */
    const uint8_t max[] = {0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    vclock v;
    vclockInit(&v);
    assert_int_equal(vclockDecode(max, sizeof max, &v, NULL), 0);
    assert_true(vclockGet(&v, 1) == UINT64_MAX);
    vclockFree(&v);
}

static void test_decode_rejects_varint_not_in_shortest_form(void **state) {
    /* Each would decode to {1:3} if padding were allowed, and then
     * re-encode to different bytes. */
    const uint8_t count[] = {0x81, 0x00, 0x01, 0x03};
    const uint8_t node[] = {0x01, 0x81, 0x00, 0x03};
    const uint8_t counter[] = {0x01, 0x01, 0x83, 0x00};
    const uint8_t counter_long[] = {0x01, 0x01, 0x83, 0x80, 0x80, 0x00};
    assertRejected(count, sizeof count);
    assertRejected(node, sizeof node);
    assertRejected(counter, sizeof counter);
    assertRejected(counter_long, sizeof counter_long);
}

static void test_decode_rejects_node_zero(void **state) {
    const uint8_t in[] = {0x01, 0x00, 0x05};
    assertRejected(in, sizeof in);
}

static void test_decode_rejects_node_above_uint32_max(void **state) {
    /* First node 2^32. */
    const uint8_t first[] = {0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01};
    assertRejected(first, sizeof first);
    /* UINT32_MAX, then a delta of 1 past it. */
    const uint8_t sum[] = {0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x01, 0x01};
    assertRejected(sum, sizeof sum);
    /* A huge delta that would wrap a 64-bit sum back into range. */
    const uint8_t wrap[] = {0x02, 0x05, 0x01, 0xfc, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01};
    assertRejected(wrap, sizeof wrap);
    /* UINT32_MAX on its own is a valid id. */
    vclock v;
    vclockInit(&v);
    const uint8_t max[] = {0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(vclockDecode(max, sizeof max, &v, NULL), 0);
    assert_int_equal(vclockGet(&v, UINT32_MAX), 1);
    vclockFree(&v);
}

static void test_decode_rejects_non_increasing_node_ids(void **state) {
    /* Node 5 twice: a zero delta after the first entry. */
    const uint8_t in[] = {0x02, 0x05, 0x01, 0x00, 0x01};
    assertRejected(in, sizeof in);
}

static void test_decode_rejects_zero_counter(void **state) {
    const uint8_t first[] = {0x01, 0x05, 0x00};
    const uint8_t later[] = {0x02, 0x05, 0x01, 0x02, 0x00};
    assertRejected(first, sizeof first);
    assertRejected(later, sizeof later);
}

/* count entries {1:1},{2:1},... each two bytes. */
static void encodeCountedEntries(buf *b, size_t count) {
    bufInit(b);
    uint8_t c[VCLOCK_VARINT_MAX_BYTES];
    size_t n = 0;
    uint64_t x = count;
    while (x >= 0x80) {
        c[n++] = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    c[n++] = (uint8_t)x;
    bufAppend(b, c, n);
    for (size_t i = 0; i < count; i++) bufAppend(b, "\x01\x01", 2);
}

static void test_decode_rejects_more_than_max_entries(void **state) {
    buf b;
    encodeCountedEntries(&b, VCLOCK_MAX_ENTRIES);
    vclock v;
    vclockInit(&v);
    assert_int_equal(vclockDecode((uint8_t *)b.data, b.len, &v, NULL), 0);
    assert_int_equal(v.n, VCLOCK_MAX_ENTRIES);
    assert_int_equal(vclockGet(&v, VCLOCK_MAX_ENTRIES), 1);
    vclockFree(&v);
    bufFree(&b);

    encodeCountedEntries(&b, VCLOCK_MAX_ENTRIES + 1);
    assertRejected((uint8_t *)b.data, b.len);
    bufFree(&b);
}

static void test_decode_rejects_count_larger_than_remaining_bytes(void **state) {
    /* Three entries announced, bytes for two and a half. */
    const uint8_t in[] = {0x03, 0x01, 0x01, 0x01, 0x01, 0x01};
    assertRejected(in, sizeof in);
}

static void test_decode_of_huge_count_fails_without_allocating(void **state) {
    /* Count 2^32 followed by three bytes. */
    const uint8_t in[] = {0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x01, 0x01};
    vclock v;
    vclockInit(&v);
    assert_int_equal(vclockDecode(in, sizeof in, &v, NULL), -1);
    assert_null(v.e);
    assert_int_equal(v.cap, 0);
    assert_int_equal(v.n, 0);
    vclockFree(&v);
    assertRejected(in, sizeof in);
}

static void test_decode_allocates_nothing_for_input_invalid_near_the_end(void **state) {
    /* A full-size clock whose last counter is zero. */
    buf b;
    encodeCountedEntries(&b, VCLOCK_MAX_ENTRIES);
    b.data[b.len - 1] = 0x00;
    vclock v;
    vclockInit(&v);
    assert_int_equal(vclockDecode((uint8_t *)b.data, b.len, &v, NULL), -1);
    assert_null(v.e);
    assert_int_equal(v.cap, 0);
    vclockFree(&v);
    bufFree(&b);
}

/* ---- Text forms ------------------------------------------------------- */

static void test_format_appends_braced_node_counter_pairs(void **state) {
    buf b;
    bufInit(&b);
    vclock v;
    vclockInit(&v);
    vclockFormat(&v, &b);
    assertBufIs(&b, "{}");
    bufClear(&b);
    bufAppendStr(&b, "vc=");
    vclockSet(&v, 2, 5);
    vclockSet(&v, 1, 3);
    vclockFormat(&v, &b);
    assertBufIs(&b, "vc={1:3,2:5}");
    bufClear(&b);
    vclockSet(&v, 4000000000u, UINT64_MAX);
    vclockFormat(&v, &b);
    assertBufIs(&b, "{1:3,2:5,4000000000:18446744073709551615}");
    vclockFree(&v);
    bufFree(&b);
}

static void test_format_json_appends_object_with_string_keys(void **state) {
    buf b;
    bufInit(&b);
    vclock v;
    vclockInit(&v);
    vclockFormatJson(&v, &b);
    assertBufIs(&b, "{}");
    bufClear(&b);
    bufAppendStr(&b, "[");
    vclockSet(&v, 2, 5);
    vclockSet(&v, 1, 3);
    vclockFormatJson(&v, &b);
    assertBufIs(&b, "[{\"1\":3,\"2\":5}");
    bufClear(&b);
    vclockClear(&v);
    vclockSet(&v, 7, 1);
    vclockSet(&v, 4000000000u, 12);
    vclockFormatJson(&v, &b);
    assertBufIs(&b, "{\"7\":1,\"4000000000\":12}");
    vclockFree(&v);
    bufFree(&b);
}

/* ---- Node clock ------------------------------------------------------- */

static void test_node_clock_starts_at_zero(void **state) {
    nodeClock c;
    nodeClockInit(&c, 4000000000u);
    assert_int_equal(c.self, 4000000000u);
    assert_int_equal(c.lamport, 0);
    assert_int_equal(c.vc.n, 0);
    nodeClockFree(&c);
}

static void test_tick_advances_lamport_and_own_entry(void **state) {
    nodeClock c;
    nodeClockInit(&c, 7);
    nodeClockTick(&c);
    nodeClockTick(&c);
    assert_int_equal(c.lamport, 2);
    assert_int_equal(vclockGet(&c.vc, 7), 2);
    assert_int_equal(c.vc.n, 1);
    nodeClockFree(&c);
}

static void test_receive_takes_max_lamport_plus_one_and_merges(void **state) {
    nodeClock c;
    nodeClockInit(&c, 7);
    nodeClockTick(&c); /* lamport 1, {7:1} */
    vclock in;
    clockOf(&in, N(3), C(4), N(7), C(5), N(0));
    nodeClockReceive(&c, 10, &in);
    assert_int_equal(c.lamport, 11);
    assert_int_equal(vclockGet(&c.vc, 3), 4);
    /* The sender had seen more of our history than we kept (after a
     * restart, say): merge first, then count the receive itself. */
    assert_int_equal(vclockGet(&c.vc, 7), 6);

    /* An older message still advances our own time by one. */
    vclock old;
    clockOf(&old, N(3), C(1), N(0));
    nodeClockReceive(&c, 2, &old);
    assert_int_equal(c.lamport, 12);
    assert_int_equal(vclockGet(&c.vc, 3), 4);
    assert_int_equal(vclockGet(&c.vc, 7), 7);

    nodeClockReceive(&c, 0, NULL);
    assert_int_equal(c.lamport, 13);
    assert_int_equal(vclockGet(&c.vc, 7), 8);
    vclockFree(&in);
    vclockFree(&old);
    nodeClockFree(&c);
}

static void test_receive_and_tick_saturate_lamport(void **state) {
    nodeClock c;
    nodeClockInit(&c, 1);
    nodeClockReceive(&c, UINT64_MAX, NULL);
    assert_true(c.lamport == UINT64_MAX);
    nodeClockTick(&c);
    assert_true(c.lamport == UINT64_MAX);
    nodeClockFree(&c);
}

static void test_restore_never_moves_clocks_backwards(void **state) {
    nodeClock c;
    nodeClockInit(&c, 2);
    vclock saved;
    clockOf(&saved, N(1), C(5), N(2), C(9), N(0));
    nodeClockRestore(&c, 20, &saved); /* fresh process: take the snapshot */
    assert_int_equal(c.lamport, 20);
    assert_int_equal(vclockCompare(&c.vc, &saved), VCLOCK_EQUAL);

    nodeClockTick(&c);
    assert_int_equal(c.lamport, 21);
    assert_int_equal(vclockGet(&c.vc, 2), 10);

    vclock stale;
    clockOf(&stale, N(1), C(2), N(2), C(3), N(3), C(1), N(0));
    nodeClockRestore(&c, 4, &stale);
    assert_int_equal(c.lamport, 21);
    assert_int_equal(vclockGet(&c.vc, 1), 5);
    assert_int_equal(vclockGet(&c.vc, 2), 10);
    assert_int_equal(vclockGet(&c.vc, 3), 1); /* new knowledge is kept */
    nodeClockRestore(&c, 30, NULL);
    assert_int_equal(c.lamport, 30);
    vclockFree(&saved);
    vclockFree(&stale);
    nodeClockFree(&c);
}

/* ---- Random histories ------------------------------------------------- */

/* Processes exchange messages; every event records its clocks, and the
 * happened-before relation is computed separately from the event graph
 * (program order plus send -> receive edges) as a reachability bitset. */

#define HIST_MAX_PROCS  8
#define HIST_MAX_EVENTS 200
#define HIST_WORDS      ((HIST_MAX_EVENTS + 63) / 64)

typedef struct histEvent {
    uint64_t lamport;
    vclock vc;
    uint64_t before[HIST_WORDS]; /* events that happened before this one */
} histEvent;

typedef struct histMsg {
    int to;
    int send_event;
    uint64_t lamport;
    vclock vc;
} histMsg;

typedef struct histStats {
    long before, concurrent;
} histStats;

static void bitsetAddClosure(uint64_t *dst, const histEvent *events, int e) {
    for (int w = 0; w < HIST_WORDS; w++) dst[w] |= events[e].before[w];
    dst[e / 64] |= 1ull << (e % 64);
}

static bool bitsetHas(const uint64_t *s, int e) {
    return (s[e / 64] >> (e % 64)) & 1;
}

static void runHistory(uint64_t seed, histStats *stats) {
    rng r;
    rngSeed(&r, seed);
    int nprocs = 3 + (int)rngBelow(&r, HIST_MAX_PROCS - 3 + 1);
    int nevents = 40 + (int)rngBelow(&r, HIST_MAX_EVENTS - 40 + 1);

    nodeClock procs[HIST_MAX_PROCS];
    int last[HIST_MAX_PROCS];
    uint32_t ids[HIST_MAX_PROCS];
    for (int p = 0; p < nprocs; p++) {
        bool fresh;
        do { /* distinct sparse ids, some near the top of the range */
            ids[p] = (uint32_t)(rngNext(&r) >> (rngBelow(&r, 2) ? 32 : 58));
            fresh = ids[p] != 0;
            for (int q = 0; q < p; q++) fresh = fresh && ids[q] != ids[p];
        } while (!fresh);
        nodeClockInit(&procs[p], ids[p]);
        last[p] = -1;
    }

    static histEvent events[HIST_MAX_EVENTS];
    static histMsg msgs[HIST_MAX_EVENTS];
    int nmsgs = 0;

    for (int e = 0; e < nevents; e++) {
        int p = (int)rngBelow(&r, nprocs);
        uint64_t kind = rngBelow(&r, 10);
        histEvent *ev = &events[e];
        memset(ev->before, 0, sizeof ev->before);

        if (kind < 5 && nmsgs > 0) {
            /* Deliver a random in-flight message: any order, any pair. */
            int m = (int)rngBelow(&r, nmsgs);
            histMsg msg = msgs[m];
            msgs[m] = msgs[--nmsgs];
            p = msg.to;
            nodeClockReceive(&procs[p], msg.lamport, &msg.vc);
            bitsetAddClosure(ev->before, events, msg.send_event);
            vclockFree(&msg.vc);
        } else {
            nodeClockTick(&procs[p]);
            if (kind < 8) {
                histMsg *msg = &msgs[nmsgs++];
                msg->to = (p + 1 + (int)rngBelow(&r, nprocs - 1)) % nprocs;
                msg->send_event = e;
                msg->lamport = procs[p].lamport;
                vclockInit(&msg->vc);
                vclockCopy(&msg->vc, &procs[p].vc);
            }
        }
        if (last[p] >= 0) bitsetAddClosure(ev->before, events, last[p]);
        last[p] = e;
        ev->lamport = procs[p].lamport;
        vclockInit(&ev->vc);
        vclockCopy(&ev->vc, &procs[p].vc);

        if (rngBelow(&r, 20) == 0) {
            /* Restart from the state persisted with this event. */
            nodeClockFree(&procs[p]);
            nodeClockInit(&procs[p], ids[p]);
            nodeClockRestore(&procs[p], ev->lamport, &ev->vc);
        }
    }

    for (int a = 0; a < nevents; a++) {
        assertWellFormed(&events[a].vc);
        if (a % 16 == 0) assertRoundTrips(&events[a].vc);
        for (int b = 0; b < nevents; b++) {
            if (a == b) continue;
            bool a_hb_b = bitsetHas(events[b].before, a);
            bool b_hb_a = bitsetHas(events[a].before, b);
            vclockOrder got = vclockCompare(&events[a].vc, &events[b].vc);
            if (a_hb_b) {
                assert_int_equal(got, VCLOCK_BEFORE);
                assert_true(events[a].lamport < events[b].lamport);
                assert_true(vclockDominates(&events[b].vc, &events[a].vc));
                stats->before++;
            } else if (b_hb_a) {
                assert_int_equal(got, VCLOCK_AFTER);
            } else {
                assert_int_equal(got, VCLOCK_CONCURRENT);
                assert_false(vclockDominates(&events[b].vc, &events[a].vc));
                stats->concurrent++;
            }
        }
    }

    for (int e = 0; e < nevents; e++) vclockFree(&events[e].vc);
    for (int m = 0; m < nmsgs; m++) vclockFree(&msgs[m].vc);
    for (int p = 0; p < nprocs; p++) nodeClockFree(&procs[p]);
}

static void test_vector_order_matches_happened_before_in_random_histories(void **state) {
    histStats stats = {0, 0};
    for (uint64_t seed = 1; seed <= 300; seed++) runHistory(seed, &stats);
    /* Both relations occur often, so neither branch above went untested. */
    assert_true(stats.before > 100000);
    assert_true(stats.concurrent > 100000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_clock_is_empty_and_every_node_reads_zero),
        cmocka_unit_test(test_set_keeps_entries_sorted_by_node),
        cmocka_unit_test(test_set_overwrites_existing_counter),
        cmocka_unit_test(test_set_to_zero_removes_the_entry),
        cmocka_unit_test(test_set_to_zero_of_absent_node_changes_nothing),
        cmocka_unit_test(test_increment_creates_entry_and_returns_new_counter),
        cmocka_unit_test(test_increment_saturates_instead_of_wrapping_to_zero),
        cmocka_unit_test(test_copy_replaces_destination_and_is_independent),
        cmocka_unit_test(test_clear_empties_the_clock_and_keeps_storage),
        cmocka_unit_test(test_merge_of_disjoint_ids_is_their_union),
        cmocka_unit_test(test_merge_of_overlapping_ids_takes_pointwise_max),
        cmocka_unit_test(test_merge_with_empty_and_with_itself),
        cmocka_unit_test(test_merge_compare_dominates_match_a_dense_model),
        cmocka_unit_test(test_compare_equal_clocks_including_empty),
        cmocka_unit_test(test_compare_before_when_pointwise_less_or_missing),
        cmocka_unit_test(test_compare_concurrent_when_each_has_something_newer),
        cmocka_unit_test(test_dominates_is_pointwise_greater_or_equal),
        cmocka_unit_test(test_encode_writes_count_deltas_and_counters),
        cmocka_unit_test(test_empty_clock_encodes_as_one_zero_byte),
        cmocka_unit_test(test_round_trip_single_entry_and_extremes),
        cmocka_unit_test(test_round_trip_of_maximum_size_clock),
        cmocka_unit_test(test_decode_reports_consumed_and_leaves_trailing_bytes),
        cmocka_unit_test(test_decode_rejects_every_truncation),
        cmocka_unit_test(test_decode_rejects_varint_longer_than_ten_bytes),
        cmocka_unit_test(test_decode_rejects_varint_overflowing_64_bits),
        cmocka_unit_test(test_decode_rejects_varint_not_in_shortest_form),
        cmocka_unit_test(test_decode_rejects_node_zero),
        cmocka_unit_test(test_decode_rejects_node_above_uint32_max),
        cmocka_unit_test(test_decode_rejects_non_increasing_node_ids),
        cmocka_unit_test(test_decode_rejects_zero_counter),
        cmocka_unit_test(test_decode_rejects_more_than_max_entries),
        cmocka_unit_test(test_decode_rejects_count_larger_than_remaining_bytes),
        cmocka_unit_test(test_decode_of_huge_count_fails_without_allocating),
        cmocka_unit_test(test_decode_allocates_nothing_for_input_invalid_near_the_end),
        cmocka_unit_test(test_format_appends_braced_node_counter_pairs),
        cmocka_unit_test(test_format_json_appends_object_with_string_keys),
        cmocka_unit_test(test_node_clock_starts_at_zero),
        cmocka_unit_test(test_tick_advances_lamport_and_own_entry),
        cmocka_unit_test(test_receive_takes_max_lamport_plus_one_and_merges),
        cmocka_unit_test(test_receive_and_tick_saturate_lamport),
        cmocka_unit_test(test_restore_never_moves_clocks_backwards),
        cmocka_unit_test(test_vector_order_matches_happened_before_in_random_histories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
