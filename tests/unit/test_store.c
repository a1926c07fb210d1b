/* Unit tests for the store: the record codec, batches and their failure
 * modes, durability across reopen, the directory lock, and the refusal of
 * directories that do not hold a healthy dmkv store. Every test works in
 * its own temporary directory. The throughput test prints figures and
 * asserts only correctness. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

#define TEST_PATH_BYTES 512
#define TEST_ERR_BYTES  1024

typedef struct testDir {
    char root[TEST_PATH_BYTES]; /* removed at teardown */
    char data[TEST_PATH_BYTES]; /* root/nested/data, not created up front */
} testDir;

static int testSetupDir(void **state) {
    testDir *d = calloc(1, sizeof *d);
    const char *tmp = getenv("TMPDIR");
    snprintf(d->root, sizeof d->root, "%s/dmkv-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d->root)) return -1;
    snprintf(d->data, sizeof d->data, "%s/nested/data", d->root);
    *state = d;
    return 0;
}

static int testRemoveEntry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700); /* so read-only test directories can be emptied */
    return remove(path);
}

static int testRemoveDirTree(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DNR) chmod(path, 0700);
    return 0;
}

static int testTeardownDir(void **state) {
    testDir *d = *state;
    nftw(d->root, testRemoveDirTree, 16, FTW_PHYS);
    nftw(d->root, testRemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
    return 0;
}

static store *testOpenWith(const char *dir, storeFsync fsync, uint64_t map_bytes) {
    storeOptions o = {.dir = dir, .fsync = fsync, .map_size_bytes = map_bytes};
    char err[TEST_ERR_BYTES];
    store *s = NULL;
    int rc = storeOpen(&s, &o, err, sizeof err);
    if (rc != STORE_OK) fail_msg("storeOpen(%s): %s", dir, err);
    assert_non_null(s);
    return s;
}

static store *testOpen(const char *dir) {
    return testOpenWith(dir, STORE_FSYNC_EVERYSEC, 0);
}

/* Expects storeOpen to fail and returns its message. */
static void testOpenFails(const char *dir, storeFsync fsync, char *err, size_t errlen) {
    storeOptions o = {.dir = dir, .fsync = fsync};
    store *s = (store *)&s;
    err[0] = '\0';
    assert_int_equal(storeOpen(&s, &o, err, errlen), STORE_ERR);
    assert_null(s);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
}

static void testPutStr(store *s, const char *key, const char *value, uint64_t lamport) {
    storeRecord r = {.ver = {.lamport = lamport, .origin = 1}};
    r.value = value;
    r.value_len = strlen(value);
    int rc = storePut(s, key, strlen(key), &r);
    if (rc != STORE_OK) fail_msg("storePut(%s): %s", key, storeError(s));
}

static void testExpectValue(store *s, const char *key, const char *value) {
    storeRecord r;
    int rc = storeGet(s, key, strlen(key), &r);
    if (rc != STORE_OK) fail_msg("storeGet(%s) = %d: %s", key, rc, storeError(s));
    assert_int_equal(r.value_len, strlen(value));
    assert_memory_equal(r.value, value, r.value_len);
}

static void testExpectMissing(store *s, const char *key) {
    storeRecord r;
    assert_int_equal(storeGet(s, key, strlen(key), &r), STORE_NOTFOUND);
}

static void testFillBytes(uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void testWriteFile(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static double testNowSeconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Record codec ---- */

static void test_record_round_trip_keeps_all_metadata(void **state) {
    (void)state;
    uint8_t vclock[300];
    testFillBytes(vclock, sizeof vclock, 7);
    const char value[] = "bin\0ary\0\xff value";
    storeRecord in = {.ver = {.lamport = 0x0102030405060708ull,
                              .token = UINT64_MAX - 3,
                              .origin = 0xdeadbeef,
                              .seq = 0x0a0b0c0d0e0f1011ull,
                              .change_seq = 77,
                              .flags = 0,
                              .vclock = vclock,
                              .vclock_len = sizeof vclock},
                      .value = value,
                      .value_len = sizeof value - 1};
    size_t n = recordEncodedSize(&in);
    assert_int_equal(n, 40 + 300 + in.value_len);
    uint8_t *enc = malloc(n);
    recordEncode(&in, enc);

    storeRecord out;
    assert_int_equal(recordDecode(enc, n, &out), 0);
    assert_int_equal(out.ver.lamport, in.ver.lamport);
    assert_int_equal(out.ver.token, in.ver.token);
    assert_int_equal(out.ver.origin, in.ver.origin);
    assert_int_equal(out.ver.seq, in.ver.seq);
    assert_int_equal(out.ver.change_seq, 77);
    assert_int_equal(out.ver.flags, 0);
    assert_int_equal(out.ver.vclock_len, 300);
    assert_memory_equal(out.ver.vclock, vclock, 300);
    assert_int_equal(out.value_len, in.value_len);
    assert_memory_equal(out.value, value, in.value_len);
    /* Decoded fields point into the encoded bytes: no copy. */
    assert_ptr_equal(out.ver.vclock, enc + 40);
    assert_ptr_equal(out.value, (const char *)enc + 40 + 300);
    free(enc);
}

static void test_record_round_trip_tombstone_with_empty_value(void **state) {
    (void)state;
    storeRecord in = {.ver = {.lamport = 9, .origin = 3, .flags = STORE_FLAG_TOMBSTONE}};
    uint8_t enc[40];
    assert_int_equal(recordEncodedSize(&in), sizeof enc);
    recordEncode(&in, enc);
    storeRecord out;
    assert_int_equal(recordDecode(enc, sizeof enc, &out), 0);
    assert_int_equal(out.ver.flags, STORE_FLAG_TOMBSTONE);
    assert_int_equal(out.ver.lamport, 9);
    assert_int_equal(out.ver.origin, 3);
    assert_int_equal(out.ver.token, 0);
    assert_int_equal(out.ver.vclock_len, 0);
    assert_int_equal(out.value_len, 0);
}

static void test_record_layout_is_v2_little_endian(void **state) {
    (void)state;
    const uint8_t vclock[2] = {0xaa, 0xbb};
    storeRecord in = {.ver = {.lamport = 0x1112131415161718ull,
                              .token = 0x2122232425262728ull,
                              .origin = 0x31323334,
                              .seq = 0x4142434445464748ull,
                              .change_seq = 0x5152535455565758ull,
                              .flags = STORE_FLAG_TOMBSTONE,
                              .vclock = vclock,
                              .vclock_len = 2},
                      .value = "v",
                      .value_len = 1};
    const uint8_t want[] = {2,    0x01, 0x34, 0x33, 0x32, 0x31, 0x18, 0x17, 0x16, 0x15, 0x14,
                            0x13, 0x12, 0x11, 0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
                            0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41, 0x58, 0x57, 0x56,
                            0x55, 0x54, 0x53, 0x52, 0x51, 0x02, 0x00, 0xaa, 0xbb, 'v'};
    uint8_t enc[sizeof want];
    assert_int_equal(recordEncodedSize(&in), sizeof want);
    recordEncode(&in, enc);
    assert_memory_equal(enc, want, sizeof want);
}

static void test_record_with_merged_writes_is_v3_and_round_trips(void **state) {
    (void)state;
    const uint8_t vclock[2] = {0xaa, 0xbb};
    const uint8_t merged[3] = {0xc1, 0xc2, 0xc3};
    storeRecord in = {.ver = {.lamport = 7,
                              .origin = 3,
                              .seq = 9,
                              .flags = STORE_FLAG_TOMBSTONE | STORE_FLAG_MERGED,
                              .vclock = vclock,
                              .vclock_len = 2,
                              .merged = merged,
                              .merged_len = 3},
                      .value = "v",
                      .value_len = 1};
    size_t n = recordEncodedSize(&in);
    assert_int_equal(n, 42 + 2 + 3 + 1);
    uint8_t enc[48];
    recordEncode(&in, enc);
    assert_int_equal(enc[0], RECORD_FORMAT_V3);
    assert_int_equal(enc[38], 2); /* the clock's length where version 2 has it */
    assert_int_equal(enc[40], 3); /* then the merged writes' length */
    assert_int_equal(enc[41], 0);
    assert_memory_equal(enc + 42, vclock, 2);
    assert_memory_equal(enc + 44, merged, 3);
    assert_int_equal(enc[47], 'v');
    storeRecord out;
    assert_int_equal(recordDecode(enc, n, &out), 0);
    assert_int_equal(out.ver.seq, 9);
    assert_int_equal(out.ver.flags, in.ver.flags);
    assert_int_equal(out.ver.vclock_len, 2);
    assert_memory_equal(out.ver.vclock, vclock, 2);
    assert_int_equal(out.ver.merged_len, 3);
    assert_ptr_equal(out.ver.merged, enc + 44);
    assert_int_equal(out.value_len, 1);
    /* Every cut before the value is refused. */
    for (size_t len = 0; len < 47; len++)
        if (recordDecode(enc, len, &out) != -1) fail_msg("v3 length %zu was accepted", len);
    /* Version 3 with an empty field has a version 2 encoding: refused. */
    enc[40] = 0;
    assert_int_equal(recordDecode(enc, n, &out), -1);
    /* Without merged writes a record stays version 2. */
    in.ver.merged_len = 0;
    in.ver.merged = NULL;
    recordEncode(&in, enc);
    assert_int_equal(enc[0], RECORD_FORMAT_V2);
    assert_int_equal(recordDecode(enc, recordEncodedSize(&in), &out), 0);
    assert_int_equal(out.ver.merged_len, 0);
}

static void test_record_v1_is_still_read_with_sequence_zero(void **state) {
    (void)state;
    const uint8_t v1[] = {1,    0x01, 0x34, 0x33, 0x32, 0x31, 0x18, 0x17, 0x16,
                          0x15, 0x14, 0x13, 0x12, 0x11, 0x28, 0x27, 0x26, 0x25,
                          0x24, 0x23, 0x22, 0x21, 0x02, 0x00, 0xaa, 0xbb, 'v'};
    storeRecord out;
    assert_int_equal(recordDecode(v1, sizeof v1, &out), 0);
    assert_int_equal(out.ver.origin, 0x31323334);
    assert_int_equal(out.ver.lamport, 0x1112131415161718ull);
    assert_int_equal(out.ver.token, 0x2122232425262728ull);
    assert_int_equal(out.ver.seq, 0);
    assert_int_equal(out.ver.flags, STORE_FLAG_TOMBSTONE);
    assert_int_equal(out.ver.vclock_len, 2);
    assert_ptr_equal(out.ver.vclock, v1 + 24);
    assert_int_equal(out.value_len, 1);
    assert_int_equal(out.value[0], 'v');
    for (size_t len = 0; len < 26; len++)
        if (recordDecode(v1, len, &out) != -1) fail_msg("v1 length %zu was accepted", len);
}

static void test_record_decode_rejects_truncation_before_the_value(void **state) {
    (void)state;
    uint8_t vclock[40];
    testFillBytes(vclock, sizeof vclock, 3);
    storeRecord in = {.ver = {.lamport = 5, .vclock = vclock, .vclock_len = sizeof vclock},
                      .value = "hello",
                      .value_len = 5};
    size_t n = recordEncodedSize(&in);
    uint8_t *enc = malloc(n);
    recordEncode(&in, enc);
    storeRecord out;
    /* Cut anywhere in the header or the clock: refused, for every length.
     * Each prefix is copied to an exact-size buffer so ASan catches a
     * read past its end. */
    for (size_t len = 0; len < 40 + sizeof vclock; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, enc, len);
        if (recordDecode(cut, len, &out) != -1) fail_msg("length %zu was accepted", len);
        free(cut);
    }
    /* Cut in the value: the value is whatever remains, so a shorter one. */
    for (size_t len = 40 + sizeof vclock; len <= n; len++) {
        assert_int_equal(recordDecode(enc, len, &out), 0);
        assert_int_equal(out.value_len, len - 40 - sizeof vclock);
        assert_int_equal(out.ver.vclock_len, sizeof vclock);
    }
    free(enc);
}

static void test_record_decode_rejects_unknown_version(void **state) {
    (void)state;
    storeRecord in = {.value = "x", .value_len = 1};
    uint8_t enc[41];
    recordEncode(&in, enc);
    storeRecord out;
    assert_int_equal(recordDecode(enc, sizeof enc, &out), 0);
    const uint8_t bad[] = {0, 3, 0x81, 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        enc[0] = bad[i];
        assert_int_equal(recordDecode(enc, sizeof enc, &out), -1);
    }
}

static void test_record_decode_rejects_unknown_flags(void **state) {
    (void)state;
    storeRecord in = {.value = "x", .value_len = 1};
    uint8_t enc[41];
    recordEncode(&in, enc);
    storeRecord out;
    for (unsigned bit = 2; bit < 8; bit++) {
        enc[1] = (uint8_t)(1u << bit);
        assert_int_equal(recordDecode(enc, sizeof enc, &out), -1);
        enc[1] = (uint8_t)((1u << bit) | STORE_FLAG_TOMBSTONE);
        assert_int_equal(recordDecode(enc, sizeof enc, &out), -1);
    }
    enc[1] = STORE_FLAG_TOMBSTONE;
    assert_int_equal(recordDecode(enc, sizeof enc, &out), 0);
}

static void test_record_decode_rejects_vclock_len_past_end(void **state) {
    (void)state;
    uint8_t vclock[10] = {0};
    storeRecord in = {.ver = {.vclock = vclock, .vclock_len = 10}};
    uint8_t enc[50];
    recordEncode(&in, enc);
    storeRecord out;
    assert_int_equal(recordDecode(enc, sizeof enc, &out), 0);
    enc[38] = 11; /* one byte more than there is */
    assert_int_equal(recordDecode(enc, sizeof enc, &out), -1);
    enc[38] = 0xff;
    enc[39] = 0xff;
    assert_int_equal(recordDecode(enc, sizeof enc, &out), -1);
}

/* ---- Batches ---- */

static void test_batch_sees_its_own_writes_and_commit_publishes_them(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    assert_false(storeInBatch(s));
    testExpectMissing(s, "k1");
    testPutStr(s, "k1", "v1", 1);
    assert_true(storeInBatch(s));
    testExpectValue(s, "k1", "v1");
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.commits, 0);
    assert_int_equal(st.writes, 0);

    assert_int_equal(storeCommit(s), STORE_OK);
    assert_false(storeInBatch(s));
    testExpectValue(s, "k1", "v1");
    storeGetStats(s, &st);
    assert_int_equal(st.commits, 1);
    assert_int_equal(st.writes, 1);

    /* Overwrite in a second batch: the batch sees the new value, and so
     * does a fresh read after its commit. */
    testPutStr(s, "k1", "v2", 2);
    testExpectValue(s, "k1", "v2");
    assert_int_equal(storeCommit(s), STORE_OK);
    testExpectValue(s, "k1", "v2");
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.writes, 2);
    storeClose(s);
}

static void test_delete_within_and_across_batches(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutStr(s, "a", "1", 1);
    testPutStr(s, "b", "2", 1);
    assert_int_equal(storeCommit(s), STORE_OK);

    assert_int_equal(storeDelete(s, "a", 1), STORE_OK);
    testExpectMissing(s, "a");
    testExpectValue(s, "b", "2");
    /* Deleting what is absent is NOTFOUND and keeps the batch. */
    assert_int_equal(storeDelete(s, "zz", 2), STORE_NOTFOUND);
    assert_true(storeInBatch(s));
    assert_int_equal(storeDelete(s, "a", 1), STORE_NOTFOUND);
    assert_int_equal(storeCommit(s), STORE_OK);
    testExpectMissing(s, "a");
    testExpectValue(s, "b", "2");

    /* Put and delete of the same key in one batch. */
    testPutStr(s, "c", "3", 1);
    assert_int_equal(storeDelete(s, "c", 1), STORE_OK);
    testExpectMissing(s, "c");
    assert_int_equal(storeCommit(s), STORE_OK);
    testExpectMissing(s, "c");

    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.writes, 5); /* 2 puts, 1 delete, 1 put, 1 delete */
    assert_int_equal(st.aborted, 0);
    storeClose(s);
}

static void test_tombstone_is_a_record_and_delete_removes_it(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    storeRecord t = {.ver = {.lamport = 4, .origin = 2, .flags = STORE_FLAG_TOMBSTONE}};
    assert_int_equal(storePut(s, "gone", 4, &t), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeRecord r;
    assert_int_equal(storeGet(s, "gone", 4, &r), STORE_OK);
    assert_int_equal(r.ver.flags, STORE_FLAG_TOMBSTONE);
    assert_int_equal(r.value_len, 0);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(storeDelete(s, "gone", 4), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    assert_int_equal(storeGet(s, "gone", 4, &r), STORE_NOTFOUND);
    storeClose(s);
}

/* Collects "key@seq" strings from an index scan. */
typedef struct testChanges {
    char list[1024];
    int n;
} testChanges;

static int testCollectChange(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    testChanges *c = ctx;
    size_t at = strlen(c->list);
    snprintf(c->list + at, sizeof c->list - at, "%s%.*s@%llu", at ? " " : "", (int)klen,
             (const char *)key, (unsigned long long)rec->ver.seq);
    c->n++;
    return 0;
}

static void testPutSeq(store *s, const char *key, uint32_t origin, uint64_t seq, uint8_t flags) {
    storeRecord r = {.ver = {.lamport = seq, .origin = origin, .seq = seq, .flags = flags},
                     .value = "v",
                     .value_len = 1};
    if (flags & STORE_FLAG_TOMBSTONE) r.value_len = 0;
    if (storePut(s, key, strlen(key), &r) != STORE_OK)
        fail_msg("storePut(%s): %s", key, storeError(s));
}

static void test_change_feed_lists_each_record_once_at_its_latest_change(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    uint64_t first = storeNextChangeSeq(s);
    testPutSeq(s, "a", 1, 1, 0);
    testPutSeq(s, "b", 1, 2, 0);
    testPutSeq(s, "c", 2, 1, 0);
    testPutSeq(s, "a", 1, 3, 0); /* a moves to the end of the feed */
    assert_int_equal(storeNextChangeSeq(s), first + 4);
    testChanges c = {{0}, 0};
    /* Inside the batch and after the commit alike. */
    for (int round = 0; round < 2; round++) {
        memset(&c, 0, sizeof c);
        assert_int_equal(storeScanChanges(s, 0, testCollectChange, &c), STORE_OK);
        assert_string_equal(c.list, "b@2 c@1 a@3");
        memset(&c, 0, sizeof c);
        assert_int_equal(storeScanChanges(s, first + 1, testCollectChange, &c), STORE_OK);
        assert_string_equal(c.list, "c@1 a@3");
        memset(&c, 0, sizeof c);
        assert_int_equal(storeScanChanges(s, first + 3, testCollectChange, &c), STORE_OK);
        assert_int_equal(c.n, 0);
        assert_int_equal(storeCommit(s), STORE_OK);
    }
    storeRecord r;
    assert_int_equal(storeGet(s, "a", 1, &r), STORE_OK);
    assert_int_equal(r.ver.change_seq, first + 3);
    /* A physical delete leaves the feed too. */
    assert_int_equal(storeDelete(s, "b", 1), STORE_OK);
    memset(&c, 0, sizeof c);
    assert_int_equal(storeScanChanges(s, 0, testCollectChange, &c), STORE_OK);
    assert_string_equal(c.list, "c@1 a@3");
    assert_int_equal(storeCommit(s), STORE_OK);
    storeClose(s);
    /* After a reopen the feed is intact and numbering goes on after it. */
    s = testOpen(d->data);
    memset(&c, 0, sizeof c);
    assert_int_equal(storeScanChanges(s, 0, testCollectChange, &c), STORE_OK);
    assert_string_equal(c.list, "c@1 a@3");
    assert_int_equal(storeNextChangeSeq(s), first + 4);
    storeClose(s);
}

/* Overwriting one key many times in a batch keeps its feed entry on the
 * same page: the commit writes a handful of pages, not one per write (the
 * data file would grow by thousands of pages). */
static void test_rewriting_one_key_in_a_batch_dirties_a_few_pages(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutStr(s, "hot", "0", 1);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeStats before, after;
    storeGetStats(s, &before);
    for (int round = 0; round < 3; round++) {
        for (uint64_t i = 0; i < 2000; i++) testPutStr(s, "hot", "v", 2 + i);
        assert_int_equal(storeCommit(s), STORE_OK);
    }
    storeGetStats(s, &after);
    assert_true(after.file_bytes - before.file_bytes <= 64 * 4096);
    testChanges c = {{0}, 0};
    assert_int_equal(storeScanChanges(s, 0, testCollectChange, &c), STORE_OK);
    assert_int_equal(c.n, 1);
    storeClose(s);
}

static void test_tombstones_are_counted_and_listed_until_overwritten(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutSeq(s, "x", 1, 1, 0);
    testPutSeq(s, "y", 1, 2, 0);
    testPutSeq(s, "x", 1, 3, STORE_FLAG_TOMBSTONE);
    testPutSeq(s, "z", 2, 4, STORE_FLAG_TOMBSTONE);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 3);
    assert_int_equal(st.tombstones, 2);
    assert_int_equal(st.live_keys, 1);
    testChanges c = {{0}, 0};
    assert_int_equal(storeScanTombstones(s, 1, 2, testCollectChange, &c), STORE_OK);
    assert_int_equal(c.n, 0); /* x's tombstone is seq 3 */
    assert_int_equal(storeScanTombstones(s, 1, 3, testCollectChange, &c), STORE_OK);
    assert_string_equal(c.list, "x@3");
    /* Writing x again ends its tombstone. */
    testPutSeq(s, "x", 1, 5, 0);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeGetStats(s, &st);
    assert_int_equal(st.tombstones, 1);
    assert_int_equal(st.live_keys, 2);
    memset(&c, 0, sizeof c);
    assert_int_equal(storeScanTombstones(s, 1, UINT64_MAX, testCollectChange, &c), STORE_OK);
    assert_int_equal(c.n, 0);
    /* Dropping everything empties the index and the tombstones. */
    assert_int_equal(storeDrop(s), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.tombstones, 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(storeScanChanges(s, 0, testCollectChange, &c), STORE_OK);
    assert_int_equal(c.n, 0);
    storeClose(s);
}

static void test_a_tombstone_merged_into_one_of_the_same_write_stays_listed(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutSeq(s, "x", 3, 7, STORE_FLAG_TOMBSTONE);
    assert_int_equal(storeCommit(s), STORE_OK);
    /* A conflict resolved for the tombstone: same origin and seq, merged. */
    testPutSeq(s, "x", 3, 7, STORE_FLAG_TOMBSTONE | STORE_FLAG_MERGED);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.tombstones, 1);
    assert_int_equal(st.live_keys, 0);
    testChanges c = {{0}, 0};
    assert_int_equal(storeScanTombstones(s, 3, 7, testCollectChange, &c), STORE_OK);
    assert_string_equal(c.list, "x@7");
    /* And a value of the same write (a merge the value won) ends it. */
    testPutSeq(s, "x", 3, 7, STORE_FLAG_MERGED);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeGetStats(s, &st);
    assert_int_equal(st.tombstones, 0);
    assert_int_equal(st.live_keys, 1);
    storeClose(s);
}

static void test_invalid_arguments_leave_the_batch_intact(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutStr(s, "kept", "yes", 1);
    assert_true(storeInBatch(s));

    char big[STORE_MAX_KEY_BYTES + 1];
    memset(big, 'k', sizeof big);
    storeRecord r = {.value = "v", .value_len = 1};
    assert_int_equal(storePut(s, big, sizeof big, &r), STORE_ERR);
    assert_string_equal(storeError(s), "key too long (max 511 bytes)");
    assert_true(storeInBatch(s));
    assert_int_equal(storePut(s, "", 0, &r), STORE_ERR);
    assert_non_null(strstr(storeError(s), "empty key"));
    assert_true(storeInBatch(s));
    assert_int_equal(storeDelete(s, big, sizeof big), STORE_ERR);
    assert_int_equal(storeDelete(s, "", 0), STORE_ERR);
    storeRecord out;
    assert_int_equal(storeGet(s, big, sizeof big, &out), STORE_ERR);
    assert_int_equal(storeGet(s, "", 0, &out), STORE_ERR);

    storeRecord bad_flags = {.ver = {.flags = 0x80}};
    assert_int_equal(storePut(s, "f", 1, &bad_flags), STORE_ERR);
    assert_non_null(strstr(storeError(s), "flags"));
    static uint8_t clock[STORE_MAX_VCLOCK_BYTES + 1];
    storeRecord long_clock = {.ver = {.vclock = clock, .vclock_len = sizeof clock}};
    assert_int_equal(storePut(s, "c", 1, &long_clock), STORE_ERR);
    assert_non_null(strstr(storeError(s), "vector clock too long"));
    assert_int_equal(storeMetaPut(s, "format", "x", 1), STORE_ERR);
    assert_true(storeInBatch(s));

    /* The longest legal key works, in the same batch. */
    assert_int_equal(storePut(s, big, STORE_MAX_KEY_BYTES, &r), STORE_OK);
    /* And so does the longest legal clock. */
    long_clock.ver.vclock_len = STORE_MAX_VCLOCK_BYTES;
    assert_int_equal(storePut(s, "c", 1, &long_clock), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    testExpectValue(s, "kept", "yes");
    assert_int_equal(storeGet(s, big, STORE_MAX_KEY_BYTES, &out), STORE_OK);
    assert_int_equal(storeGet(s, "c", 1, &out), STORE_OK);
    assert_int_equal(out.ver.vclock_len, STORE_MAX_VCLOCK_BYTES);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.aborted, 0);
    assert_int_equal(st.writes, 3);
    storeClose(s);
}

/* Invalid writes before any valid one open no batch. */
static void test_invalid_first_write_opens_no_batch(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    storeRecord r = {.value = "v", .value_len = 1};
    assert_int_equal(storePut(s, "", 0, &r), STORE_ERR);
    assert_false(storeInBatch(s));
    storeClose(s);
}

typedef struct scanLog {
    char keys[16][8];
    size_t n;
    size_t stop_after; /* 0 = never stop */
} scanLog;

static int testScanCollect(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    scanLog *log = ctx;
    assert_true(klen < sizeof log->keys[0]);
    assert_true(log->n < 16);
    memcpy(log->keys[log->n], key, klen);
    log->keys[log->n][klen] = '\0';
    /* The value of every key in these tests is the key upper-cased. */
    assert_int_equal(rec->value_len, klen);
    log->n++;
    return log->stop_after && log->n >= log->stop_after;
}

static void testScanExpect(store *s, const char *after, const char *want) {
    scanLog log = {0};
    assert_int_equal(storeScan(s, after, after ? strlen(after) : 0, testScanCollect, &log),
                     STORE_OK);
    char got[256] = "";
    for (size_t i = 0; i < log.n; i++) {
        if (i) strcat(got, ",");
        strcat(got, log.keys[i]);
    }
    assert_string_equal(got, want);
}

static void testPutSelf(store *s, const char *key) {
    char v[16];
    size_t n = strlen(key);
    for (size_t i = 0; i <= n; i++)
        v[i] = (char)(key[i] >= 'a' && key[i] <= 'z' ? key[i] - 32 : key[i]);
    testPutStr(s, key, v, 1);
}

static int testScanFirstLength(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    (void)key;
    (void)rec;
    *(size_t *)ctx = klen;
    return 1;
}

static void test_scan_visits_keys_in_byte_order_strictly_after(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    const char *keys[] = {"b", "ab", "c", "a", "ba", "abc"};
    for (size_t i = 0; i < 6; i++) testPutSelf(s, keys[i]);
    assert_int_equal(storeCommit(s), STORE_OK);

    testScanExpect(s, NULL, "a,ab,abc,b,ba,c");
    testScanExpect(s, "", "a,ab,abc,b,ba,c");
    testScanExpect(s, "a", "ab,abc,b,ba,c");  /* exact match skipped */
    testScanExpect(s, "aa", "ab,abc,b,ba,c"); /* absent: next greater */
    testScanExpect(s, "abc", "b,ba,c");
    testScanExpect(s, "b", "ba,c");
    testScanExpect(s, "c", "");
    testScanExpect(s, "zzz", "");

    /* A bound longer than any storable key still orders correctly. */
    char longer[600];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    testScanExpect(s, longer, "ab,abc,b,ba,c");
    longer[0] = 'b';
    testScanExpect(s, longer, "c"); /* "ba" < "baaa..." */
    /* The longest storable prefix of the bound is itself before it. */
    storeRecord r = {.value = "x", .value_len = 1};
    assert_int_equal(storePut(s, longer, STORE_MAX_KEY_BYTES, &r), STORE_OK);
    size_t first_len = 0;
    assert_int_equal(storeScan(s, longer, sizeof longer - 1, testScanFirstLength, &first_len),
                     STORE_OK);
    assert_int_equal(first_len, 1); /* "c" */
    assert_int_equal(storeScan(s, longer, STORE_MAX_KEY_BYTES - 1, testScanFirstLength, &first_len),
                     STORE_OK);
    assert_int_equal(first_len, STORE_MAX_KEY_BYTES);
    assert_int_equal(storeDelete(s, longer, STORE_MAX_KEY_BYTES), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);

    /* fn returning non-zero stops the scan; it resumes from the last key. */
    scanLog log = {.stop_after = 2};
    assert_int_equal(storeScan(s, NULL, 0, testScanCollect, &log), STORE_OK);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.keys[1], "ab");
    testScanExpect(s, log.keys[1], "abc,b,ba,c");

    /* A scan inside a batch sees the batch's puts and deletes. */
    testPutSelf(s, "aa");
    assert_int_equal(storeDelete(s, "b", 1), STORE_OK);
    testScanExpect(s, NULL, "a,aa,ab,abc,ba,c");
    assert_int_equal(storeCommit(s), STORE_OK);
    testScanExpect(s, "a", "aa,ab,abc,ba,c");
    storeClose(s);
}

static int testScanWrites(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    store *s = ctx;
    (void)key;
    (void)klen;
    (void)rec;
    storeRecord r = {.value = "x", .value_len = 1};
    assert_int_equal(storePut(s, "new", 3, &r), STORE_ERR);
    assert_int_equal(storeDelete(s, "a", 1), STORE_ERR);
    assert_int_equal(storeCommit(s), STORE_ERR);
    assert_non_null(strstr(storeError(s), "scan callback"));
    return 0;
}

static void test_write_from_inside_a_scan_is_refused(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutSelf(s, "a");
    assert_int_equal(storeCommit(s), STORE_OK);
    assert_int_equal(storeScan(s, NULL, 0, testScanWrites, s), STORE_OK);
    assert_false(storeInBatch(s));
    testExpectMissing(s, "new");
    testExpectValue(s, "a", "A");
    storeClose(s);
}

static void test_drop_removes_every_key_but_keeps_meta(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        testPutStr(s, k, "v", 1);
    }
    assert_int_equal(storeMetaPut(s, "node", "7", 1), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    assert_int_equal(storeDrop(s), STORE_OK);
    testExpectMissing(s, "key5"); /* the batch sees its drop */
    testPutStr(s, "after", "v", 1);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 1);
    testExpectMissing(s, "key5");
    testExpectValue(s, "after", "v");
    buf b;
    bufInit(&b);
    assert_int_equal(storeMetaGet(s, "node", &b), STORE_OK);
    assert_int_equal(b.len, 1);
    assert_memory_equal(b.data, "7", 1);
    bufFree(&b);
    storeClose(s);
}

/* ---- Durability ---- */

static void testReopenKeepsData(const char *dir, storeFsync fsync) {
    uint8_t vclock[300];
    testFillBytes(vclock, sizeof vclock, (uint32_t)fsync + 11);
    const char value[] = "v\0with\0nuls";
    store *s = testOpenWith(dir, fsync, 0);
    storeRecord r = {.ver = {.lamport = 77,
                             .token = 1234567890123ull,
                             .origin = 42,
                             .vclock = vclock,
                             .vclock_len = sizeof vclock},
                     .value = value,
                     .value_len = sizeof value - 1};
    assert_int_equal(storePut(s, "key", 3, &r), STORE_OK);
    storeRecord t = {.ver = {.lamport = 78, .origin = 43, .flags = STORE_FLAG_TOMBSTONE}};
    assert_int_equal(storePut(s, "dead", 4, &t), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    /* Left open in a batch: storeClose commits it. */
    testPutStr(s, "late", "batch", 1);
    storeClose(s);

    s = testOpenWith(dir, fsync, 0);
    storeRecord out;
    assert_int_equal(storeGet(s, "key", 3, &out), STORE_OK);
    assert_int_equal(out.ver.lamport, 77);
    assert_int_equal(out.ver.token, 1234567890123ull);
    assert_int_equal(out.ver.origin, 42);
    assert_int_equal(out.ver.flags, 0);
    assert_int_equal(out.ver.vclock_len, sizeof vclock);
    assert_memory_equal(out.ver.vclock, vclock, sizeof vclock);
    assert_int_equal(out.value_len, sizeof value - 1);
    assert_memory_equal(out.value, value, sizeof value - 1);
    assert_int_equal(storeGet(s, "dead", 4, &out), STORE_OK);
    assert_int_equal(out.ver.flags, STORE_FLAG_TOMBSTONE);
    assert_int_equal(out.ver.lamport, 78);
    testExpectValue(s, "late", "batch");
    storeClose(s);
}

static void test_data_survives_reopen_with_fsync_always(void **state) {
    testReopenKeepsData(((testDir *)*state)->data, STORE_FSYNC_ALWAYS);
}

static void test_data_survives_reopen_with_fsync_everysec(void **state) {
    testReopenKeepsData(((testDir *)*state)->data, STORE_FSYNC_EVERYSEC);
}

static void test_data_survives_reopen_with_fsync_no(void **state) {
    testReopenKeepsData(((testDir *)*state)->data, STORE_FSYNC_NO);
}

static void test_meta_values_survive_reopen(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    buf b;
    bufInit(&b);
    assert_int_equal(storeMetaGet(s, "clock", &b), STORE_NOTFOUND);
    const uint8_t clock[] = {1, 0, 2, 0, 0xff};
    assert_int_equal(storeMetaPut(s, "clock", clock, sizeof clock), STORE_OK);
    assert_true(storeInBatch(s));
    assert_int_equal(storeMetaGet(s, "clock", &b), STORE_OK); /* seen in the batch */
    assert_int_equal(b.len, sizeof clock);
    assert_int_equal(storeMetaPut(s, "empty", "", 0), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    /* Meta entries are not keys. */
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 0);
    storeClose(s);

    s = testOpen(d->data);
    bufAppendStr(&b, "junk that must be replaced");
    assert_int_equal(storeMetaGet(s, "clock", &b), STORE_OK);
    assert_int_equal(b.len, sizeof clock);
    assert_memory_equal(b.data, clock, sizeof clock);
    assert_int_equal(storeMetaGet(s, "empty", &b), STORE_OK);
    assert_int_equal(b.len, 0);
    bufFree(&b);
    storeClose(s);
}

static void test_pending_sync_counts_commits_until_store_sync(void **state) {
    testDir *d = *state;
    store *s = testOpenWith(d->data, STORE_FSYNC_EVERYSEC, 0);
    for (int i = 0; i < 3; i++) {
        testPutStr(s, "k", "v", (uint64_t)i);
        assert_int_equal(storeCommit(s), STORE_OK);
    }
    /* A batch that changed nothing needs no flush. */
    assert_int_equal(storeDelete(s, "absent", 6), STORE_NOTFOUND);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.pending_sync, 3);
    assert_int_equal(st.syncs, 0);
    assert_int_equal(storeSync(s), STORE_OK);
    storeGetStats(s, &st);
    assert_int_equal(st.pending_sync, 0);
    assert_int_equal(st.syncs, 1);
    assert_int_equal(storeSync(s), STORE_OK); /* nothing pending: no flush */
    storeGetStats(s, &st);
    assert_int_equal(st.syncs, 1);
    storeClose(s);

    s = testOpenWith(d->data, STORE_FSYNC_ALWAYS, 0);
    testPutStr(s, "k", "v", 9);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeGetStats(s, &st);
    assert_int_equal(st.pending_sync, 0); /* the commit itself synced */
    storeClose(s);
}

typedef struct syncThread {
    store *s;
    atomic_bool stop;
    atomic_int failures;
    atomic_long calls;
} syncThread;

static void *testSyncLoop(void *arg) {
    syncThread *t = arg;
    while (!atomic_load(&t->stop)) {
        if (storeSync(t->s) != STORE_OK) atomic_fetch_add(&t->failures, 1);
        atomic_fetch_add(&t->calls, 1);
    }
    return NULL;
}

static void test_sync_from_another_thread_during_commits(void **state) {
    testDir *d = *state;
    store *s = testOpenWith(d->data, STORE_FSYNC_EVERYSEC, 0);
    syncThread t = {.s = s};
    atomic_init(&t.stop, false);
    atomic_init(&t.failures, 0);
    atomic_init(&t.calls, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, testSyncLoop, &t), 0);

    const int commits = 200, per_batch = 50;
    for (int c = 0; c < commits; c++) {
        for (int i = 0; i < per_batch; i++) {
            char k[32], v[32];
            snprintf(k, sizeof k, "c%03d-%02d", c, i);
            snprintf(v, sizeof v, "value-%d-%d", c, i);
            testPutStr(s, k, v, (uint64_t)c);
        }
        assert_int_equal(storeCommit(s), STORE_OK);
    }
    atomic_store(&t.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&t.failures), 0);
    assert_true(atomic_load(&t.calls) > 0);

    assert_int_equal(storeSync(s), STORE_OK);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.pending_sync, 0);
    assert_true(st.syncs >= 1);
    assert_int_equal(st.commits, commits);
    assert_int_equal(st.writes, commits * per_batch);
    assert_int_equal(st.keys, commits * per_batch);
    storeClose(s);

    s = testOpen(d->data);
    for (int c = 0; c < commits; c++) {
        for (int i = 0; i < per_batch; i++) {
            char k[32], v[32];
            snprintf(k, sizeof k, "c%03d-%02d", c, i);
            snprintf(v, sizeof v, "value-%d-%d", c, i);
            testExpectValue(s, k, v);
        }
    }
    storeClose(s);
}

/* A writer killed mid-batch: every batch it had committed is there after
 * a restart (a process crash leaves the page cache intact, so this holds
 * with everysec too), the torn batch is not, and the dead process's lock
 * does not block the restart. */
static void test_killed_writer_keeps_committed_batches(void **state) {
    testDir *d = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        storeOptions o = {.dir = d->data, .fsync = STORE_FSYNC_EVERYSEC};
        char err[TEST_ERR_BYTES];
        store *s;
        if (storeOpen(&s, &o, err, sizeof err) != STORE_OK) _exit(2);
        for (uint32_t batch = 0;; batch++) {
            for (int i = 0; i < 20; i++) {
                char k[32];
                snprintf(k, sizeof k, "b%06u-%02d", batch, i);
                storeRecord r = {.ver = {.lamport = batch}, .value = k, .value_len = strlen(k)};
                if (storePut(s, k, strlen(k), &r) != STORE_OK) _exit(3);
            }
            if (storeCommit(s) != STORE_OK) _exit(4);
            /* Acknowledge the batch only once it is committed. */
            if (write(fds[1], &batch, sizeof batch) != sizeof batch) _exit(5);
        }
    }
    close(fds[1]);
    uint32_t acked = 0, got;
    int seen = 0;
    while (seen < 300 && read(fds[0], &got, sizeof got) == sizeof got) {
        acked = got;
        seen++;
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* Batches acknowledged after we stopped reading are committed too. */
    while (read(fds[0], &got, sizeof got) == sizeof got) acked = got;
    close(fds[0]);
    assert_int_equal(seen, 300);

    store *s = testOpen(d->data);
    for (uint32_t batch = 0; batch <= acked; batch++) {
        for (int i = 0; i < 20; i++) {
            char k[32];
            snprintf(k, sizeof k, "b%06u-%02d", batch, i);
            testExpectValue(s, k, k);
        }
    }
    /* Whatever the killed process had not committed is absent as a whole. */
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys % 20, 0);
    assert_true(st.keys >= (uint64_t)(acked + 1) * 20);
    storeClose(s);
}

/* ---- A full map ---- */

static int testPutBig(store *s, const char *prefix, int i, size_t value_bytes) {
    static char value[4096];
    memset(value, 'x', sizeof value);
    char k[32];
    snprintf(k, sizeof k, "%s%05d", prefix, i);
    storeRecord r = {.ver = {.lamport = (uint64_t)i}, .value = value, .value_len = value_bytes};
    return storePut(s, k, strlen(k), &r);
}

static void test_full_map_aborts_the_batch_and_the_store_recovers(void **state) {
    testDir *d = *state;
    const uint64_t map = 1u << 20; /* 1 MiB */
    store *s = testOpenWith(d->data, STORE_FSYNC_EVERYSEC, map);
    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.map_bytes, map);

    for (int i = 0; i < 10; i++) testPutStr(s, i % 2 ? "keep1" : "keep0", "safe", (uint64_t)i);
    assert_int_equal(storeCommit(s), STORE_OK);

    /* One batch that cannot fit. */
    int rc = STORE_OK, i;
    for (i = 0; i < 10000 && rc == STORE_OK; i++) rc = testPutBig(s, "fill", i, 1000);
    assert_int_equal(rc, STORE_ERR);
    assert_true(i > 10); /* some puts succeeded before the map ran out */
    assert_non_null(strstr(storeError(s), "full"));
    assert_non_null(strstr(storeError(s), "1048576"));
    assert_false(storeInBatch(s));
    storeGetStats(s, &st);
    assert_int_equal(st.aborted, 1);
    /* None of the batch's earlier writes survived; earlier batches did. */
    testExpectMissing(s, "fill00000");
    testExpectMissing(s, "fill00005");
    testExpectValue(s, "keep0", "safe");
    testExpectValue(s, "keep1", "safe");
    assert_int_equal(st.keys, 2);

    /* Smaller writes work again, in a new batch. */
    testPutStr(s, "small", "ok", 1);
    assert_true(storeInBatch(s));
    assert_int_equal(storeCommit(s), STORE_OK);
    testExpectValue(s, "small", "ok");

    /* Fill the map across committed batches, then free it with a drop. */
    int committed = 0;
    rc = STORE_OK;
    for (i = 0; i < 10000 && rc == STORE_OK; i += 10) {
        for (int j = 0; j < 10 && rc == STORE_OK; j++) rc = testPutBig(s, "many", i + j, 1000);
        if (rc == STORE_OK) rc = storeCommit(s);
        if (rc == STORE_OK) committed = i + 10;
    }
    assert_int_equal(rc, STORE_ERR);
    assert_non_null(strstr(storeError(s), "full"));
    assert_false(storeInBatch(s));
    assert_true(committed > 0);
    testExpectValue(s, "keep0", "safe");
    storeRecord out;
    assert_int_equal(storeGet(s, "many00000", 9, &out), STORE_OK);
    char last[32];
    snprintf(last, sizeof last, "many%05d", committed - 1);
    assert_int_equal(storeGet(s, last, strlen(last), &out), STORE_OK);
    snprintf(last, sizeof last, "many%05d", committed);
    assert_int_equal(storeGet(s, last, strlen(last), &out), STORE_NOTFOUND);

    assert_int_equal(storeDrop(s), STORE_OK);
    if (storeCommit(s) != STORE_OK) fail_msg("commit of the drop: %s", storeError(s));
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 0);
    /* LMDB reuses the dropped pages once the commit after the drop is
     * durable too (the previous snapshot stays intact until then), so a
     * small batch goes first. */
    testPutStr(s, "small", "again", 1);
    if (storeCommit(s) != STORE_OK) fail_msg("commit after the drop: %s", storeError(s));
    for (i = 0; i < 50; i++) assert_int_equal(testPutBig(s, "again", i, 1000), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeGetStats(s, &st);
    assert_int_equal(st.keys, 51);
    testExpectValue(s, "small", "again");
    storeClose(s);

    /* The map size is a per-open setting: a larger one lifts the limit. */
    s = testOpenWith(d->data, STORE_FSYNC_EVERYSEC, 8u << 20);
    for (i = 50; i < 1500; i++) assert_int_equal(testPutBig(s, "again", i, 1000), STORE_OK);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeClose(s);
}

/* ---- Opening: directory, lock, format ---- */

static void test_open_creates_the_directory_with_parents_private(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    struct stat st;
    assert_int_equal(stat(d->data, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_string_equal(storeDir(s), d->data);
    storeStats ss;
    storeGetStats(s, &ss);
    assert_true(ss.file_bytes > 0);
    assert_int_equal(ss.map_bytes, 16ull << 30);
    /* The data file grows with use; it does not take the whole map up front. */
    assert_true(ss.file_bytes < (64u << 20));
    storeClose(s);
}

static void test_lock_file_names_the_holder(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    char path[TEST_PATH_BYTES + 8], text[32] = "";
    snprintf(path, sizeof path, "%s/LOCK", d->data);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_int_equal(atol(text), (long)getpid());
    storeClose(s);
}

static void test_second_open_of_a_locked_directory_fails(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutStr(s, "k", "v", 1);
    assert_int_equal(storeCommit(s), STORE_OK);

    char err[TEST_ERR_BYTES];
    testOpenFails(d->data, STORE_FSYNC_EVERYSEC, err, sizeof err);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    assert_non_null(strstr(err, "is in use by"));
    assert_non_null(strstr(err, pid));
    assert_non_null(strstr(err, d->data));

    /* The refused open disturbed nothing: the first store still works. */
    testExpectValue(s, "k", "v");
    testPutStr(s, "k2", "v2", 2);
    assert_int_equal(storeCommit(s), STORE_OK);
    storeClose(s);

    /* Closing released the lock. */
    s = testOpen(d->data);
    testExpectValue(s, "k2", "v2");
    storeClose(s);
}

static void test_garbage_data_file_is_refused(void **state) {
    testDir *d = *state;
    char path[TEST_PATH_BYTES + 16], err[TEST_ERR_BYTES];
    snprintf(path, sizeof path, "%s/nested", d->root);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mkdir(d->data, 0700), 0);
    snprintf(path, sizeof path, "%s/data.mdb", d->data);

    static uint8_t junk[16384];
    testFillBytes(junk, sizeof junk, 99);
    const size_t sizes[] = {sizeof junk, 4096, 100, 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        testWriteFile(path, junk, sizes[i]);
        testOpenFails(d->data, STORE_FSYNC_EVERYSEC, err, sizeof err);
        if (!strstr(err, "is corrupt or not an LMDB store"))
            fail_msg("%zu garbage bytes: %s", sizes[i], err);
        assert_non_null(strstr(err, d->data));
    }
    /* The failed opens released the lock: with the garbage gone it opens. */
    assert_int_equal(unlink(path), 0);
    store *s = testOpen(d->data);
    storeClose(s);
}

static void test_overwritten_header_pages_are_refused(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutStr(s, "k", "v", 1);
    storeClose(s);
    char path[TEST_PATH_BYTES + 16], err[TEST_ERR_BYTES];
    snprintf(path, sizeof path, "%s/data.mdb", d->data);
    /* Both LMDB meta pages live in the first two pages. */
    static uint8_t junk[2 * 4096];
    testFillBytes(junk, sizeof junk, 5);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    close(fd);
    testOpenFails(d->data, STORE_FSYNC_ALWAYS, err, sizeof err);
    assert_non_null(strstr(err, "is corrupt or not an LMDB store"));
}

/* Writes one key straight into an LMDB environment, bypassing the store. */
static void testRawPut(const char *dir, const char *table, const void *key, size_t klen,
                       const void *val, size_t vlen) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, table, MDB_CREATE, &dbi), 0);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_foreign_lmdb_environment_is_refused(void **state) {
    testDir *d = *state;
    char path[TEST_PATH_BYTES + 16], err[TEST_ERR_BYTES];
    snprintf(path, sizeof path, "%s/nested", d->root);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mkdir(d->data, 0700), 0);
    testRawPut(d->data, NULL, "someone", 7, "else", 4);
    testOpenFails(d->data, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "does not hold a dmkv store (format marker missing)"));
    /* It was left as it was. */
    testOpenFails(d->data, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "format marker missing"));
}

static void test_store_with_another_format_marker_is_refused(void **state) {
    testDir *d = *state;
    char err[TEST_ERR_BYTES];
    store *s = testOpen(d->data);
    storeClose(s);
    testRawPut(d->data, "meta", "format", 6, "dmkv-store-9", 12);
    testOpenFails(d->data, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "does not hold a dmkv store"));
    assert_non_null(strstr(err, "dmkv-store-9"));
}

static void test_corrupt_record_is_reported_not_returned(void **state) {
    testDir *d = *state;
    store *s = testOpen(d->data);
    testPutSelf(s, "a");
    testPutSelf(s, "c");
    storeClose(s);
    const uint8_t bad[] = {9, 0, 0}; /* unknown version, truncated */
    testRawPut(d->data, "data", "b\x01", 2, bad, sizeof bad);

    s = testOpen(d->data);
    storeRecord r;
    assert_int_equal(storeGet(s, "b\x01", 2, &r), STORE_ERR);
    assert_non_null(strstr(storeError(s), "corrupt record for key \"b\\x01\""));
    testExpectValue(s, "a", "A");
    scanLog log = {0};
    assert_int_equal(storeScan(s, NULL, 0, testScanCollect, &log), STORE_ERR);
    assert_int_equal(log.n, 1); /* "a" came before the bad record */
    assert_non_null(strstr(storeError(s), "corrupt record"));
    storeClose(s);
}

static void test_directory_under_a_file_fails_cleanly(void **state) {
    testDir *d = *state;
    char file[TEST_PATH_BYTES + 16], dir[TEST_PATH_BYTES + 32], err[TEST_ERR_BYTES];
    snprintf(file, sizeof file, "%s/plain", d->root);
    testWriteFile(file, "x", 1);
    snprintf(dir, sizeof dir, "%s/plain/data", d->root);
    testOpenFails(dir, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "cannot create data directory"));
    assert_non_null(strstr(err, "Not a directory"));
    /* The directory itself being a file. */
    testOpenFails(file, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "cannot create data directory"));
}

static void test_read_only_directory_fails_cleanly(void **state) {
    testDir *d = *state;
    if (geteuid() == 0) skip(); /* root ignores permission bits */
    char err[TEST_ERR_BYTES], ro[TEST_PATH_BYTES + 16], below[TEST_PATH_BYTES + 32];
    snprintf(ro, sizeof ro, "%s/ro", d->root);
    assert_int_equal(mkdir(ro, 0500), 0);
    /* The directory exists but cannot take the store's files. */
    testOpenFails(ro, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "is not writable"));
    assert_non_null(strstr(err, "Permission denied"));
    /* A directory to be created below it cannot be. */
    snprintf(below, sizeof below, "%s/data", ro);
    testOpenFails(below, STORE_FSYNC_EVERYSEC, err, sizeof err);
    assert_non_null(strstr(err, "cannot create data directory"));
    assert_non_null(strstr(err, "Permission denied"));
}

/* ---- Throughput (printed, not asserted) ---- */

static void test_throughput_of_batched_puts_and_gets(void **state) {
    testDir *d = *state;
    store *s = testOpenWith(d->data, STORE_FSYNC_EVERYSEC, 0);
    enum { KEYS = 200000, BATCH = 100, GETS = 1000000, GETS_PER_ITERATION = 1000, KEY_BYTES = 16 };
    /* Keys are made up front so only the store is timed, and inserted in a
     * scattered order, as hashed client keys would arrive. */
    char(*keys)[KEY_BYTES] = malloc((size_t)KEYS * KEY_BYTES);
    for (uint32_t i = 0; i < KEYS; i++) {
        uint32_t id = (uint32_t)(((uint64_t)i * 2654435761u) % KEYS);
        snprintf(keys[i], KEY_BYTES, "key:%08u", id); /* 12 bytes */
    }
    uint8_t vclock[16];
    testFillBytes(vclock, sizeof vclock, 1);
    char value[32];
    memset(value, 'v', sizeof value);
    storeRecord r = {.ver = {.origin = 1, .vclock = vclock, .vclock_len = sizeof vclock},
                     .value = value,
                     .value_len = sizeof value};

    double t0 = testNowSeconds();
    for (uint32_t i = 0; i < KEYS; i++) {
        r.ver.lamport = i;
        if (storePut(s, keys[i], 12, &r) != STORE_OK) fail_msg("put: %s", storeError(s));
        if ((i + 1) % BATCH == 0) assert_int_equal(storeCommit(s), STORE_OK);
    }
    assert_int_equal(storeCommit(s), STORE_OK);
    double t1 = testNowSeconds();

    uint64_t found = 0;
    uint32_t x = 12345;
    for (uint32_t i = 0; i < GETS; i++) {
        x = x * 1664525u + 1013904223u;
        storeRecord out;
        if (storeGet(s, keys[x % KEYS], 12, &out) == STORE_OK)
            found += out.value_len == sizeof value;
        if ((i + 1) % GETS_PER_ITERATION == 0) storeCommit(s);
    }
    double t2 = testNowSeconds();
    assert_int_equal(found, GETS);

    storeStats st;
    storeGetStats(s, &st);
    assert_int_equal(st.keys, KEYS);
    printf("[ store    ] %d puts of scattered keys in batches of %d (everysec): %.0f puts/s\n",
           KEYS, BATCH, KEYS / (t1 - t0));
    printf("[ store    ] %d random gets, snapshot reset every %d: %.0f gets/s\n", GETS,
           GETS_PER_ITERATION, GETS / (t2 - t1));
    printf("[ store    ] data file %.1f MiB for %d keys\n", (double)st.file_bytes / (1 << 20),
           KEYS);
    free(keys);
    storeClose(s);
}

#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, testSetupDir, testTeardownDir)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip_keeps_all_metadata),
        cmocka_unit_test(test_record_round_trip_tombstone_with_empty_value),
        cmocka_unit_test(test_record_layout_is_v2_little_endian),
        cmocka_unit_test(test_record_with_merged_writes_is_v3_and_round_trips),
        cmocka_unit_test(test_record_v1_is_still_read_with_sequence_zero),
        cmocka_unit_test(test_record_decode_rejects_truncation_before_the_value),
        cmocka_unit_test(test_record_decode_rejects_unknown_version),
        cmocka_unit_test(test_record_decode_rejects_unknown_flags),
        cmocka_unit_test(test_record_decode_rejects_vclock_len_past_end),
        DIR_TEST(test_batch_sees_its_own_writes_and_commit_publishes_them),
        DIR_TEST(test_delete_within_and_across_batches),
        DIR_TEST(test_tombstone_is_a_record_and_delete_removes_it),
        DIR_TEST(test_rewriting_one_key_in_a_batch_dirties_a_few_pages),
        DIR_TEST(test_change_feed_lists_each_record_once_at_its_latest_change),
        DIR_TEST(test_tombstones_are_counted_and_listed_until_overwritten),
        DIR_TEST(test_a_tombstone_merged_into_one_of_the_same_write_stays_listed),
        DIR_TEST(test_invalid_arguments_leave_the_batch_intact),
        DIR_TEST(test_invalid_first_write_opens_no_batch),
        DIR_TEST(test_scan_visits_keys_in_byte_order_strictly_after),
        DIR_TEST(test_write_from_inside_a_scan_is_refused),
        DIR_TEST(test_drop_removes_every_key_but_keeps_meta),
        DIR_TEST(test_data_survives_reopen_with_fsync_always),
        DIR_TEST(test_data_survives_reopen_with_fsync_everysec),
        DIR_TEST(test_data_survives_reopen_with_fsync_no),
        DIR_TEST(test_meta_values_survive_reopen),
        DIR_TEST(test_pending_sync_counts_commits_until_store_sync),
        DIR_TEST(test_sync_from_another_thread_during_commits),
        DIR_TEST(test_killed_writer_keeps_committed_batches),
        DIR_TEST(test_full_map_aborts_the_batch_and_the_store_recovers),
        DIR_TEST(test_open_creates_the_directory_with_parents_private),
        DIR_TEST(test_lock_file_names_the_holder),
        DIR_TEST(test_second_open_of_a_locked_directory_fails),
        DIR_TEST(test_garbage_data_file_is_refused),
        DIR_TEST(test_overwritten_header_pages_are_refused),
        DIR_TEST(test_foreign_lmdb_environment_is_refused),
        DIR_TEST(test_store_with_another_format_marker_is_refused),
        DIR_TEST(test_corrupt_record_is_reported_not_returned),
        DIR_TEST(test_directory_under_a_file_fails_cleanly),
        DIR_TEST(test_read_only_directory_fails_cleanly),
        DIR_TEST(test_throughput_of_batched_puts_and_gets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
