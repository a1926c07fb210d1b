/* Lamport clocks and sparse vector clocks; see clock.h.
 *
 * A vector clock is a sorted array of (node, counter) with no zero
 * counters. Keeping it sorted makes merge, compare and dominance single
 * two-pointer walks, and keeping zeros out makes the representation (and
 * so the encoding) of a clock unique. Lookups are binary searches; an
 * insert shifts the tail, which is cheap at cluster sizes and happens only
 * when a node is heard from for the first time. */
#include "clock/clock.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void vclockInit(vclock *v) {
    v->e = NULL;
    v->n = 0;
    v->cap = 0;
}

void vclockFree(vclock *v) {
    free(v->e);
    vclockInit(v);
}

void vclockClear(vclock *v) {
    v->n = 0;
}

/* Makes room for `want` entries in total. */
static void vclockReserve(vclock *v, size_t want) {
    if (want <= v->cap) return;
    size_t cap = v->cap ? v->cap : 4;
    while (cap < want) cap *= 2;
    v->e = xrealloc(v->e, cap * sizeof *v->e);
    v->cap = cap;
}

void vclockCopy(vclock *dst, const vclock *src) {
    if (dst == src) return;
    vclockReserve(dst, src->n);
    if (src->n) memcpy(dst->e, src->e, src->n * sizeof *src->e);
    dst->n = src->n;
}

/* Index of node's entry, or of where it would be inserted. */
static size_t vclockSearch(const vclock *v, uint32_t node, bool *found) {
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->e[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < v->n && v->e[lo].node == node;
    return lo;
}

uint64_t vclockGet(const vclock *v, uint32_t node) {
    bool found;
    size_t i = vclockSearch(v, node, &found);
    return found ? v->e[i].counter : 0;
}

void vclockSet(vclock *v, uint32_t node, uint64_t counter) {
    assert(node != 0);
    bool found;
    size_t i = vclockSearch(v, node, &found);
    if (found) {
        if (counter) {
            v->e[i].counter = counter;
        } else {
            memmove(&v->e[i], &v->e[i + 1], (v->n - i - 1) * sizeof *v->e);
            v->n--;
        }
        return;
    }
    if (counter == 0) return;
    vclockReserve(v, v->n + 1);
    memmove(&v->e[i + 1], &v->e[i], (v->n - i) * sizeof *v->e);
    v->e[i].node = node;
    v->e[i].counter = counter;
    v->n++;
}

uint64_t vclockIncrement(vclock *v, uint32_t node) {
    uint64_t c = vclockGet(v, node);
    if (c < UINT64_MAX) c++;
    vclockSet(v, node, c);
    return c;
}

void vclockMerge(vclock *dst, const vclock *src) {
    if (dst == src || src->n == 0) return;

    /* Size of the union first, so the merge can run in place from the
     * back: the write position never overtakes the unread part of dst. */
    size_t i = 0, j = 0, total = 0;
    while (i < dst->n && j < src->n) {
        uint32_t a = dst->e[i].node, b = src->e[j].node;
        if (a <= b) i++;
        if (b <= a) j++;
        total++;
    }
    total += (dst->n - i) + (src->n - j);
    vclockReserve(dst, total);

    size_t di = dst->n, si = src->n, k = total;
    while (si > 0) {
        const vclockEntry *s = &src->e[si - 1];
        if (di > 0 && dst->e[di - 1].node > s->node) {
            dst->e[--k] = dst->e[--di];
        } else if (di > 0 && dst->e[di - 1].node == s->node) {
            vclockEntry merged = dst->e[--di];
            if (s->counter > merged.counter) merged.counter = s->counter;
            dst->e[--k] = merged;
            si--;
        } else {
            dst->e[--k] = *s;
            si--;
        }
    }
    /* What is left of dst is already in place. */
    assert(k == di);
    dst->n = total;
}

vclockOrder vclockCompare(const vclock *a, const vclock *b) {
    bool a_less = false, a_greater = false;
    size_t i = 0, j = 0;
    while (i < a->n && j < b->n && !(a_less && a_greater)) {
        const vclockEntry *x = &a->e[i], *y = &b->e[j];
        if (x->node < y->node) {
            a_greater = true; /* b lacks this node: b's counter is 0 */
            i++;
        } else if (y->node < x->node) {
            a_less = true;
            j++;
        } else {
            if (x->counter < y->counter) a_less = true;
            if (x->counter > y->counter) a_greater = true;
            i++;
            j++;
        }
    }
    if (i < a->n) a_greater = true;
    if (j < b->n) a_less = true;
    if (a_less && a_greater) return VCLOCK_CONCURRENT;
    if (a_less) return VCLOCK_BEFORE;
    if (a_greater) return VCLOCK_AFTER;
    return VCLOCK_EQUAL;
}

bool vclockDominates(const vclock *a, const vclock *b) {
    size_t i = 0;
    for (size_t j = 0; j < b->n; j++) {
        while (i < a->n && a->e[i].node < b->e[j].node) i++;
        if (i == a->n || a->e[i].node != b->e[j].node) return false;
        if (a->e[i].counter < b->e[j].counter) return false;
    }
    return true;
}

/* ---- Binary form ------------------------------------------------------ */

static size_t varintSize(uint64_t x) {
    size_t n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varintPut(uint8_t *p, uint64_t x) {
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

/* Reads one varint at p[*pos], advancing *pos. Only the shortest encoding
 * of a value is accepted, so that decode followed by encode gives back the
 * same bytes. */
static int varintGet(const uint8_t *p, size_t len, size_t *pos, uint64_t *out) {
    uint64_t x = 0;
    for (size_t i = 0; i < VCLOCK_VARINT_MAX_BYTES; i++) {
        if (*pos + i >= len) return -1;
        uint8_t byte = p[*pos + i];
        /* The tenth byte holds bit 63 only. */
        if (i == VCLOCK_VARINT_MAX_BYTES - 1 && byte > 1) return -1;
        x |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (byte == 0 && i > 0) return -1; /* padded with a zero group */
            *pos += i + 1;
            *out = x;
            return 0;
        }
    }
    return -1;
}

size_t vclockEncodedSize(const vclock *v) {
    size_t size = varintSize(v->n);
    uint32_t prev = 0;
    for (size_t i = 0; i < v->n; i++) {
        size += varintSize(v->e[i].node - prev) + varintSize(v->e[i].counter);
        prev = v->e[i].node;
    }
    return size;
}

void vclockEncode(const vclock *v, buf *out) {
    size_t size = vclockEncodedSize(v);
    bufReserve(out, size);
    uint8_t *start = (uint8_t *)out->data + out->len, *p = start;
    p = varintPut(p, v->n);
    uint32_t prev = 0;
    for (size_t i = 0; i < v->n; i++) {
        assert(v->e[i].node > prev && v->e[i].counter > 0);
        p = varintPut(p, v->e[i].node - prev);
        p = varintPut(p, v->e[i].counter);
        prev = v->e[i].node;
    }
    assert((size_t)(p - start) == size);
    out->len += size;
}

/* Smallest encoding of one entry: a one-byte delta and a one-byte counter. */
#define VCLOCK_MIN_ENTRY_BYTES 2

/* Walks an encoded clock, validating every field; stores the entries in
 * `into` when it is not NULL. Run once without storing, so that malformed
 * input never causes an allocation and never disturbs the caller's clock. */
static int vclockScan(const uint8_t *p, size_t len, vclockEntry *into, size_t *count_out,
                      size_t *consumed) {
    size_t pos = 0;
    uint64_t count;
    if (varintGet(p, len, &pos, &count) == -1) return -1;
    if (count > VCLOCK_MAX_ENTRIES) return -1;
    if (count > (len - pos) / VCLOCK_MIN_ENTRY_BYTES) return -1;

    uint64_t prev = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t delta, counter;
        if (varintGet(p, len, &pos, &delta) == -1) return -1;
        if (delta == 0 || delta > UINT32_MAX - prev) return -1;
        if (varintGet(p, len, &pos, &counter) == -1) return -1;
        if (counter == 0) return -1;
        prev += delta;
        if (into) {
            into[i].node = (uint32_t)prev;
            into[i].counter = counter;
        }
    }
    *count_out = (size_t)count;
    *consumed = pos;
    return 0;
}

int vclockDecode(const uint8_t *p, size_t len, vclock *out, size_t *consumed) {
    size_t count, used;
    if (vclockScan(p, len, NULL, &count, &used) == -1) return -1;
    vclockReserve(out, count);
    int ok = vclockScan(p, len, out->e, &count, &used);
    assert(ok == 0);
    (void)ok;
    out->n = count;
    if (consumed) *consumed = used;
    return 0;
}

/* ---- Text forms ------------------------------------------------------- */

void vclockFormat(const vclock *v, buf *out) {
    bufAppendChar(out, '{');
    for (size_t i = 0; i < v->n; i++) {
        bufPrintf(out, "%s%" PRIu32 ":%" PRIu64, i ? "," : "", v->e[i].node, v->e[i].counter);
    }
    bufAppendChar(out, '}');
}

void vclockFormatJson(const vclock *v, buf *out) {
    bufAppendChar(out, '{');
    for (size_t i = 0; i < v->n; i++) {
        bufPrintf(out, "%s\"%" PRIu32 "\":%" PRIu64, i ? "," : "", v->e[i].node, v->e[i].counter);
    }
    bufAppendChar(out, '}');
}

/* ---- Node clock ------------------------------------------------------- */

void nodeClockInit(nodeClock *c, uint32_t self) {
    assert(self != 0);
    c->self = self;
    c->lamport = 0;
    vclockInit(&c->vc);
}

void nodeClockFree(nodeClock *c) {
    vclockFree(&c->vc);
}

/* Like vclockIncrement, saturating: a clock that stops is still a valid
 * clock, one that wraps to 0 is not. */
static uint64_t lamportNext(uint64_t t) {
    return t < UINT64_MAX ? t + 1 : t;
}

void nodeClockTick(nodeClock *c) {
    c->lamport = lamportNext(c->lamport);
    vclockIncrement(&c->vc, c->self);
}

void nodeClockReceive(nodeClock *c, uint64_t lamport_in, const vclock *vc_in) {
    c->lamport = lamportNext(lamport_in > c->lamport ? lamport_in : c->lamport);
    if (vc_in) vclockMerge(&c->vc, vc_in);
    vclockIncrement(&c->vc, c->self);
}

void nodeClockRestore(nodeClock *c, uint64_t lamport, const vclock *vc) {
    if (lamport > c->lamport) c->lamport = lamport;
    if (vc) vclockMerge(&c->vc, vc);
}
