/* libFuzzer target for the replication batch decoder and the conflict rule.
 *
 * A batch arrives from a peer over the network, so replBatchOpen and
 * replBatchNext must never read outside the message, whatever it holds.
 * What they accept is checked three ways:
 *  - every field is in its documented range and every pointer lies inside
 *    the input;
 *  - the wire form is canonical: a batch accepted to its end re-encodes
 *    (replBatchBegin/Add/End) to exactly the input bytes (when its records
 *    are in the store's current format; older ones are read, not written);
 *  - every decoded record goes through replDecide against fixed stored
 *    records, and the rule must behave like an order: a version is never
 *    newer than itself, "newer" one way is "older" the other way, a
 *    conflict is a conflict both ways, and replResolve of a conflict is
 *    symmetric, its clock covers both sides and its merged writes are the
 *    pointwise maximum of both sides'. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"
#include "replicate/replicate.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_replicate: %s\n", what);
    abort();
}

/* The records a replica already holds: a clock that seed batches can be
 * newer than, older than or concurrent with, and the empty clock. */
typedef struct storedFixture {
    storeRecord rec;
    buf vc;
} storedFixture;

static void fixtureInit(storedFixture *f, const uint32_t *nodes, const uint64_t *counters, size_t n,
                        uint64_t lamport, uint32_t origin, const char *value) {
    vclock v;
    vclockInit(&v);
    for (size_t i = 0; i < n; i++) vclockSet(&v, nodes[i], counters[i]);
    bufInit(&f->vc);
    vclockEncode(&v, &f->vc);
    vclockFree(&v);
    memset(&f->rec, 0, sizeof f->rec);
    f->rec.ver.lamport = lamport;
    f->rec.ver.origin = origin;
    f->rec.ver.vclock = (const uint8_t *)f->vc.data;
    f->rec.ver.vclock_len = f->vc.len;
    f->rec.value = value;
    f->rec.value_len = strlen(value);
}

static bool clockOf(const storeVersion *v, vclock *out) {
    size_t used = 0;
    return vclockDecode(v->vclock, v->vclock_len, out, &used) == 0 && used == v->vclock_len;
}

static bool inside(const void *p, size_t n, const uint8_t *base, size_t size) {
    const uint8_t *q = p;
    return n == 0 || (q >= base && q <= base + size && n <= (size_t)(base + size - q));
}

/* A merge's merged writes are exactly the pointwise maximum of both
 * sides', and empty when either side's are unknown. */
static void checkMergedWrites(const storeRecord *x, const storeRecord *a, const storeRecord *b) {
    vclock wa, wb, got;
    vclockInit(&wa);
    vclockInit(&wb);
    vclockInit(&got);
    bool known = replResolvedWrites(&a->ver, &wa) && replResolvedWrites(&b->ver, &wb);
    if (!known && x->ver.merged_len) fuzzFail("merged writes made from unknown ones");
    if (known) {
        vclockMerge(&wa, &wb);
        bool fits = vclockEncodedSize(&wa) <= STORE_MAX_VCLOCK_BYTES;
        if (fits != (x->ver.merged_len != 0)) fuzzFail("merged writes missing");
        size_t used = 0;
        if (fits && (vclockDecode(x->ver.merged, x->ver.merged_len, &got, &used) != 0 ||
                     used != x->ver.merged_len || vclockCompare(&got, &wa) != VCLOCK_EQUAL))
            fuzzFail("merged writes are not the maximum of both sides");
    }
    vclockFree(&wa);
    vclockFree(&wb);
    vclockFree(&got);
}

static void checkResolve(const storeRecord *stored, const storeRecord *in) {
    replResolveBufs ab, ba;
    replResolveBufsInit(&ab);
    replResolveBufsInit(&ba);
    storeRecord x, y;
    replResolve(stored, in, &x, &ab);
    replResolve(in, stored, &y, &ba);
    /* The same winner whichever order the two arrive in (identical
     * records may be either argument, so values compare by content). */
    if (x.value_len != y.value_len || (x.value_len && memcmp(x.value, y.value, x.value_len) != 0))
        fuzzFail("resolve picks another winner");
    if (x.ver.lamport != y.ver.lamport || x.ver.origin != y.ver.origin ||
        x.ver.flags != y.ver.flags)
        fuzzFail("resolve is not symmetric");
    if (ab.vclock.len != ba.vclock.len ||
        memcmp(ab.vclock.data, ba.vclock.data, ab.vclock.len) != 0)
        fuzzFail("resolved clocks differ");
    if (x.ver.merged_len != y.ver.merged_len ||
        (x.ver.merged_len && memcmp(x.ver.merged, y.ver.merged, x.ver.merged_len) != 0))
        fuzzFail("resolved merged writes differ");
    checkMergedWrites(&x, stored, in);
    uint64_t maxl = stored->ver.lamport > in->ver.lamport ? stored->ver.lamport : in->ver.lamport;
    if (x.ver.lamport != maxl) fuzzFail("resolved Lamport is not the max");
    if (x.value != stored->value && x.value != in->value) fuzzFail("resolved value from nowhere");
    vclock m, a, b;
    vclockInit(&m);
    vclockInit(&a);
    vclockInit(&b);
    if (!clockOf(&x.ver, &m) || !clockOf(&stored->ver, &a) || !clockOf(&in->ver, &b))
        fuzzFail("resolved clock does not decode");
    if (!vclockDominates(&m, &a) || !vclockDominates(&m, &b))
        fuzzFail("resolved clock does not cover both");
    /* The merged version is newer than both sides (or equal): a replica
     * that already resolved keeps its result when either side comes back. */
    if (replDecide(&x.ver, &stored->ver) != REPL_KEEP || replDecide(&x.ver, &in->ver) != REPL_KEEP)
        fuzzFail("resolved version is not final");
    vclockFree(&m);
    vclockFree(&a);
    vclockFree(&b);
    replResolveBufsFree(&ab);
    replResolveBufsFree(&ba);
}

static void checkRule(const storeRecord *stored, const storeRecord *in) {
    if (replDecide(NULL, &in->ver) != REPL_REPLACE) fuzzFail("a missing key must take the write");
    replDecision d = replDecide(&stored->ver, &in->ver);
    if (d != REPL_KEEP && d != REPL_REPLACE && d != REPL_CONFLICT) fuzzFail("unknown decision");
    vclock c;
    vclockInit(&c);
    bool decodes = clockOf(&in->ver, &c);
    vclockFree(&c);
    if (!decodes) {
        if (d != REPL_KEEP) fuzzFail("an undecodable clock must count as older");
        return;
    }
    if (replDecide(&in->ver, &in->ver) != REPL_KEEP) fuzzFail("a version is newer than itself");
    replDecision back = replDecide(&in->ver, &stored->ver);
    if (d == REPL_REPLACE && back != REPL_KEEP) fuzzFail("newer both ways");
    if (d == REPL_CONFLICT && back != REPL_CONFLICT) fuzzFail("conflict one way only");
    if (d == REPL_KEEP && back == REPL_CONFLICT) fuzzFail("conflict one way only");
    if (d == REPL_CONFLICT) checkResolve(stored, in);
}

/* The anti-entropy request and page head: accepted ones re-encode to the
 * same bytes. */
static void fuzzSyncMessages(const uint8_t *in, size_t size) {
    replSyncRequest q;
    vclockInit(&q.summary);
    if (replSyncRequestDecode(in, size, &q) == 0) {
        if (q.requester == 0 || q.max_records == 0 || q.max_records > REPL_SYNC_MAX_PAGE_RECORDS)
            fuzzFail("request out of range accepted");
        buf b;
        bufInit(&b);
        replSyncRequestEncode(&q, &b);
        if (b.len != size || memcmp(b.data, in, size) != 0)
            fuzzFail("request does not re-encode the same");
        bufFree(&b);
    }
    vclockFree(&q.summary);
    replSyncPage pg;
    vclockInit(&pg.summary);
    size_t at = 0;
    if (replSyncPageDecodeHead(in, size, &pg, &at) == 0) {
        if (at > size) fuzzFail("page batch starts past the end");
        buf b;
        bufInit(&b);
        replSyncPageEncodeHead(&pg, &b);
        if (b.len != at || memcmp(b.data, in, at) != 0)
            fuzzFail("page head does not re-encode the same");
        bufFree(&b);
    }
    vclockFree(&pg.summary);
    /* The returning node's key check: request and answer. */
    uint32_t requester;
    replVerifyReader vr;
    if (replVerifyOpen(in, size, &requester, &vr) == 0) {
        if (requester == 0 || vr.left == 0 || vr.left > REPL_VERIFY_MAX_KEYS)
            fuzzFail("verification request out of range accepted");
        buf b;
        bufInit(&b);
        size_t count_at = replVerifyBegin(&b, requester);
        uint32_t n = 0, origin;
        uint64_t seq;
        const uint8_t *k;
        size_t kl;
        int rc;
        while ((rc = replVerifyNext(&vr, &k, &kl, &origin, &seq)) == 1) {
            if (!inside(k, kl, in, size) || kl == 0 || kl > STORE_MAX_KEY_BYTES || origin == 0 ||
                seq == 0)
                fuzzFail("verification key out of range accepted");
            replVerifyAdd(&b, k, kl, origin, seq);
            n++;
        }
        if (rc == 0) {
            replVerifyEnd(&b, count_at, n);
            if (b.len != size || memcmp(b.data, in, size) != 0)
                fuzzFail("verification request does not re-encode the same");
        }
        bufFree(&b);
    }
    const uint8_t *bits;
    uint32_t count = size >= 5 ? (uint32_t)in[1] | (uint32_t)in[2] << 8 | (uint32_t)in[3] << 16 |
                                     (uint32_t)in[4] << 24
                               : 0;
    if (replVerifyAnswerDecode(in, size, count, &bits) == 0) {
        if (!inside(bits, (count + 7) / 8, in, size)) fuzzFail("answer bits outside the input");
        buf b;
        bufInit(&b);
        replVerifyAnswerEncode(&b, count, bits);
        if (b.len != size || memcmp(b.data, in, size) != 0)
            fuzzFail("verification answer does not re-encode the same");
        bufFree(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static storedFixture fixtures[2];
    static bool ready;
    if (!ready) {
        const uint32_t nodes[] = {1, 2, 3};
        const uint64_t counters[] = {4, 2, 1};
        fixtureInit(&fixtures[0], nodes, counters, 3, 7, 2, "stored");
        fixtures[0].rec.ver.seq = 2; /* a plain write: it stands for itself */
        fixtureInit(&fixtures[1], NULL, NULL, 0, 0, 1, "");
        ready = true;
    }
    /* An exact-size copy, so ASan catches a read one byte past the end. */
    uint8_t *in = malloc(size ? size : 1);
    if (size) memcpy(in, data, size);
    fuzzSyncMessages(in, size);

    replHeader h;
    memset(&h, 0, sizeof h);
    vclockInit(&h.vc);
    replBatchReader r;
    if (replBatchOpen(in, size, &h, &r) != 0) {
        vclockFree(&h.vc);
        free(in);
        return 0;
    }
    if (h.sender == 0) fuzzFail("sender 0 accepted");
    size_t idlen = strnlen(h.msg_id, sizeof h.msg_id);
    if (idlen >= REPL_MAX_MSG_ID) fuzzFail("message id not terminated");
    if (r.left > REPL_MAX_RECORDS) fuzzFail("record count above the limit");
    if (r.pos > size) fuzzFail("reader past the end");

    buf again;
    bufInit(&again);
    size_t count_at = replBatchBegin(&again, h.sender, h.lamport, &h.vc, h.msg_id);
    uint32_t n = 0;
    const uint8_t *key;
    size_t klen;
    storeRecord rec;
    int rc;
    /* Records in the store's read-only older format are accepted but
     * re-encode in the current one, so only all-current batches must
     * round-trip byte for byte. */
    bool all_current = true;
    size_t at = r.pos;
    while ((rc = replBatchNext(&r, &key, &klen, &rec)) == 1) {
        size_t rec_at = at + 2 + klen + 4;
        if (rec_at >= size) fuzzFail("record outside the message");
        all_current = all_current && in[rec_at] != RECORD_FORMAT_V1;
        at = r.pos;
        if (klen == 0 || klen > STORE_MAX_KEY_BYTES) fuzzFail("key length out of range");
        if (!inside(key, klen, in, size)) fuzzFail("key outside the message");
        if (!inside(rec.value, rec.value_len, in, size)) fuzzFail("value outside the message");
        if (!inside(rec.ver.vclock, rec.ver.vclock_len, in, size))
            fuzzFail("clock outside the message");
        if (!inside(rec.ver.merged, rec.ver.merged_len, in, size))
            fuzzFail("merged writes outside the message");
        if (rec.ver.flags & ~STORE_KNOWN_FLAGS) fuzzFail("unknown flags accepted");
        if (r.pos > size) fuzzFail("reader past the end");
        replBatchAdd(&again, key, klen, &rec);
        n++;
        for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
            checkRule(&fixtures[i].rec, &rec);
    }
    if (rc != 0 && rc != -1) fuzzFail("replBatchNext returned something else");
    if (rc == 0 && all_current) {
        replBatchEnd(&again, count_at, n);
        if (again.len != size || memcmp(again.data, in, size) != 0)
            fuzzFail("accepted batch does not re-encode to the same bytes");
    }
    bufFree(&again);
    vclockFree(&h.vc);
    free(in);
    return 0;
}
