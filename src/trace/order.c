/* The three orders of a history, and its concurrent writes.
 *
 * Physical and Lamport orders are sorts. The causal order is a partial
 * order; the view shows it as layers (longest causal chain ending at
 * each event), computed from immediate predecessors only, and concurrent
 * writes are counted per key and pair of nodes with two pointers. Both
 * use the property of dmkv's clocks stated in trace.h: an event f of
 * node j happened before an event e of another node exactly when
 * f.vc[j] <= e.vc[j]. So the events of j before e are a prefix of j's
 * events in own-counter order, and the latest of them is e's immediate
 * predecessor on j. */
#include "trace/internal.h"

#include <stdlib.h>
#include <string.h>

static size_t *indicesOf(traceSortRec *r, size_t n) {
    traceSortRecs(r, n);
    size_t *out = xmalloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = r[i].idx;
    free(r);
    return out;
}

size_t *traceOrderPhysical(const traceEvent *const *ev, size_t n) {
    traceSortRec *r = xmalloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        r[i] = (traceSortRec){ev[i]->wall_us, ev[i]->node, ev[i]->seq, i};
    }
    return indicesOf(r, n);
}

size_t *traceOrderLamport(const traceEvent *const *ev, size_t n) {
    traceSortRec *r = xmalloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        r[i] = (traceSortRec){ev[i]->lamport, ev[i]->node, ev[i]->seq, i};
    }
    return indicesOf(r, n);
}

/* ---- Causal layers ---------------------------------------------------- */

/* A vector clock's sum, a 128-bit number since 4096 counters of 64 bits
 * can pass 2^64. If f happened before e then f.vc <= e.vc pointwise and
 * differs somewhere, so f's sum is smaller. */
typedef struct clockSum {
    uint64_t hi, lo;
} clockSum;

static clockSum clockSumOf(const vclock *vc) {
    clockSum s = {0, 0};
    for (size_t k = 0; k < vc->n; k++) {
        s.lo += vc->e[k].counter;
        if (s.lo < vc->e[k].counter) s.hi++;
    }
    return s;
}

/* Runs visited in increasing sum of their next event: a k-way merge, as
 * a heap of run numbers. A node's clock only grows, so each run is in
 * increasing sum already, and the merge visits all events in increasing
 * sum, an order in which predecessors come first, without sorting them. */
typedef struct runHeap {
    size_t *run, n;
    const size_t *next;  /* next[r]: position of run r's next event */
    const clockSum *sum; /* by position */
} runHeap;

static bool runBefore(const runHeap *h, size_t a, size_t b) {
    clockSum x = h->sum[h->next[a]], y = h->sum[h->next[b]];
    if (x.hi != y.hi) return x.hi < y.hi;
    if (x.lo != y.lo) return x.lo < y.lo;
    return a < b;
}

static void runHeapDown(runHeap *h, size_t k) {
    for (;;) {
        size_t l = 2 * k + 1, r = l + 1, m = k;
        if (l < h->n && runBefore(h, h->run[l], h->run[m])) m = l;
        if (r < h->n && runBefore(h, h->run[r], h->run[m])) m = r;
        if (m == k) return;
        size_t t = h->run[k];
        h->run[k] = h->run[m];
        h->run[m] = t;
        k = m;
    }
}

void traceOrderLayers(const traceEvent *const *ev, size_t n, traceLayers *out) {
    traceNodeIndex ix;
    traceNodeIndexBuild(&ix, ev, n);
    clockSum *sum = xmalloc(n * sizeof *sum);
    for (size_t p = 0; p < n; p++) sum[p] = clockSumOf(&ev[ix.order[p]]->vc);
    size_t *next = xmalloc(ix.nruns * sizeof *next);
    runHeap heap = {xmalloc(ix.nruns * sizeof *heap.run), ix.nruns, next, sum};
    for (size_t r = 0; r < ix.nruns; r++) {
        next[r] = ix.runs[r].first;
        heap.run[r] = r;
    }
    for (size_t k = heap.n / 2; k-- > 0;) runHeapDown(&heap, k);

    size_t *layer = xcalloc(n, sizeof *layer); /* 0 until computed */
    size_t nlayers = 0;
    while (heap.n) {
        size_t r = heap.run[0], p = next[r];
        const traceNodeRun *run = &ix.runs[r];
        size_t i = ix.order[p];
        const traceEvent *e = ev[i];
        size_t best = 0;
        /* The previous event of the node, if its own counter is lower. */
        if (p > run->first && ix.own[p - 1] < ix.own[p]) best = layer[ix.order[p - 1]];
        for (size_t j = 0; j < e->vc.n; j++) {
            const vclockEntry *en = &e->vc.e[j];
            if (en->node == e->node) continue;
            size_t q =
                traceNodeIndexLatestAtMost(&ix, traceNodeIndexRun(&ix, en->node), en->counter);
            if (q != TRACE_NONE && layer[ix.order[q]] > best) best = layer[ix.order[q]];
        }
        layer[i] = best + 1;
        if (layer[i] > nlayers) nlayers = layer[i];

        if (++next[r] == run->first + run->n) heap.run[0] = heap.run[--heap.n];
        if (heap.n) runHeapDown(&heap, 0);
    }
    free(heap.run);
    free(next);
    free(sum);

    /* Group by layer (a counting sort), walking events in (node, own
     * counter) order so each layer lists them that way. */
    size_t *start = xcalloc(nlayers + 1, sizeof *start);
    for (size_t i = 0; i < n; i++) start[layer[i]]++;
    for (size_t l = 1; l <= nlayers; l++) start[l] += start[l - 1];
    size_t *cursor = xmalloc((nlayers + 1) * sizeof *cursor);
    memcpy(cursor, start, (nlayers + 1) * sizeof *cursor);
    size_t *members = xmalloc(n * sizeof *members);
    for (size_t p = 0; p < n; p++) {
        size_t i = ix.order[p];
        members[cursor[layer[i] - 1]++] = i;
    }
    free(cursor);
    traceNodeIndexFree(&ix);

    out->n = n;
    out->nlayers = nlayers;
    out->layer = layer;
    out->start = start;
    out->members = members;
}

void traceLayersFree(traceLayers *l) {
    free(l->layer);
    free(l->start);
    free(l->members);
    memset(l, 0, sizeof *l);
}

/* ---- Concurrent writes ------------------------------------------------ */

static uint64_t hashKey(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

typedef struct keyName {
    const char *key;
    size_t group;
} keyName;

static int keyNameCompare(const void *a, const void *b) {
    return strcmp(((const keyName *)a)->key, ((const keyName *)b)->key);
}

/* Numbers the distinct keys of the writes in byte order of the key:
 * rank[k] for write k. Returns the number of keys. */
static size_t rankKeys(const traceEvent *const *ev, const size_t *writes, size_t nw,
                       uint64_t *rank) {
    size_t cap = 16;
    while (cap < nw * 2) cap *= 2;
    size_t *slot = xmalloc(cap * sizeof *slot); /* group id, or TRACE_NONE */
    for (size_t s = 0; s < cap; s++) slot[s] = TRACE_NONE;
    keyName *names = xmalloc(nw * sizeof *names);
    size_t ngroups = 0;

    for (size_t k = 0; k < nw; k++) {
        const char *key = ev[writes[k]]->key;
        size_t s = (size_t)hashKey(key) & (cap - 1);
        while (slot[s] != TRACE_NONE && strcmp(names[slot[s]].key, key) != 0) {
            s = (s + 1) & (cap - 1);
        }
        if (slot[s] == TRACE_NONE) {
            names[ngroups] = (keyName){key, ngroups};
            slot[s] = ngroups++;
        }
        rank[k] = slot[s];
    }
    free(slot);

    qsort(names, ngroups, sizeof *names, keyNameCompare);
    size_t *rank_of_group = xmalloc(ngroups * sizeof *rank_of_group);
    for (size_t r = 0; r < ngroups; r++) rank_of_group[names[r].group] = r;
    for (size_t k = 0; k < nw; k++) rank[k] = rank_of_group[rank[k]];
    free(rank_of_group);
    free(names);
    return ngroups;
}

typedef struct pairSink {
    traceConcurrent *out;
    size_t max_pairs, cap;
} pairSink;

static void pairSinkAdd(pairSink *s, size_t a, size_t b) {
    traceConcurrent *c = s->out;
    if (c->npairs == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        if (s->cap > s->max_pairs) s->cap = s->max_pairs;
        c->pairs = xrealloc(c->pairs, s->cap * sizeof *c->pairs);
    }
    c->pairs[c->npairs++] = (tracePair){a, b};
}

/* The writes of node i (a[0..na)) and of node j (b[0..nb)) to one key,
 * each in own-counter order (k3 of the records). A write w of i and a
 * write f of j are concurrent when f is not before w (f.own > w.vc[j]:
 * a suffix of b) and w is not before f (f.vc[i] < w.own: a prefix of b,
 * since j's clock only grows). As w advances, both ends move forward. */
static void pairNodes(const traceEvent *const *ev, const traceSortRec *a, size_t na,
                      const traceSortRec *b, size_t nb, pairSink *sink) {
    uint32_t i = ev[a[0].idx]->node, j = ev[b[0].idx]->node;
    size_t s = 0, p = 0;
    for (size_t x = 0; x < na; x++) {
        const traceEvent *w = ev[a[x].idx];
        uint64_t w_knows_j = vclockGet(&w->vc, j), w_own = a[x].k3;
        while (s < nb && b[s].k3 <= w_knows_j) s++;
        while (p < nb && vclockGet(&ev[b[p].idx]->vc, i) < w_own) p++;
        if (p <= s) continue;
        sink->out->total += p - s;
        for (size_t y = s; y < p && sink->out->npairs < sink->max_pairs; y++) {
            pairSinkAdd(sink, a[x].idx, b[y].idx);
        }
    }
}

void traceOrderConcurrentWrites(const traceEvent *const *ev, size_t n, size_t max_pairs,
                                traceConcurrent *out) {
    out->pairs = NULL;
    out->npairs = 0;
    out->total = 0;

    size_t *writes = xmalloc(n * sizeof *writes), nw = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i]->key && traceKindIsWrite(ev[i]->kind)) writes[nw++] = i;
    }
    uint64_t *rank = xmalloc(nw * sizeof *rank);
    rankKeys(ev, writes, nw, rank);
    traceSortRec *r = xmalloc(nw * sizeof *r);
    for (size_t k = 0; k < nw; k++) {
        const traceEvent *e = ev[writes[k]];
        r[k] = (traceSortRec){rank[k], e->node, traceEventOwnCounter(e), writes[k]};
    }
    free(rank);
    free(writes);
    traceSortRecs(r, nw);

    pairSink sink = {out, max_pairs, 0};
    /* Per key, the start of each node's run of writes. */
    size_t *runs = xmalloc((nw + 1) * sizeof *runs);
    for (size_t g = 0; g < nw;) {
        size_t ge = g;
        while (ge < nw && r[ge].k1 == r[g].k1) ge++;
        size_t nruns = 0;
        for (size_t k = g; k < ge; k++) {
            if (k == g || r[k].k2 != r[k - 1].k2) runs[nruns++] = k;
        }
        runs[nruns] = ge;
        for (size_t x = 0; x < nruns; x++) {
            for (size_t y = x + 1; y < nruns; y++) {
                pairNodes(ev, &r[runs[x]], runs[x + 1] - runs[x], &r[runs[y]],
                          runs[y + 1] - runs[y], &sink);
            }
        }
        g = ge;
    }
    free(runs);
    free(r);
}

void traceConcurrentFree(traceConcurrent *c) {
    free(c->pairs);
    memset(c, 0, sizeof *c);
}
