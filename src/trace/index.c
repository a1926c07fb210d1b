/* The sort under every ordering, and the per-node index of a set of
 * events that the causal layers, the concurrent-write detection and the
 * ShiViz renumbering all look predecessors up in.
 *
 * Every ordering reduces to sorting (key, key, key, index) records:
 * copying the keys out of the events first keeps the comparisons off the
 * event pointers (one cache miss per event, not per comparison), and the
 * index as the last key makes the order total. Histories mostly arrive
 * in order already, so sorted input, and sorted stretches of it, are
 * recognised and copied rather than merged. */
#include "trace/internal.h"

#include <stdlib.h>
#include <string.h>

static inline bool recLess(const traceSortRec *a, const traceSortRec *b) {
    if (a->k1 != b->k1) return a->k1 < b->k1;
    if (a->k2 != b->k2) return a->k2 < b->k2;
    if (a->k3 != b->k3) return a->k3 < b->k3;
    return a->idx < b->idx;
}

/* Runs this short are sorted by insertion before merging. */
#define SORT_RUN 32

/* A bottom-up merge sort: the comparison is inlined rather than called
 * through a pointer, and the merge passes stream through memory. Input
 * that is already sorted costs one pass. */
void traceSortRecs(traceSortRec *r, size_t n) {
    size_t i = 1;
    while (i < n && recLess(&r[i - 1], &r[i])) i++;
    if (i >= n) return;

    for (size_t lo = 0; lo < n; lo += SORT_RUN) {
        size_t hi = lo + SORT_RUN < n ? lo + SORT_RUN : n;
        for (size_t k = lo + 1; k < hi; k++) {
            traceSortRec x = r[k];
            size_t j = k;
            while (j > lo && recLess(&x, &r[j - 1])) {
                r[j] = r[j - 1];
                j--;
            }
            r[j] = x;
        }
    }
    traceSortRec *tmp = xmalloc(n * sizeof *tmp), *src = r, *dst = tmp;
    for (size_t width = SORT_RUN; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, o = lo;
            if (mid == hi || !recLess(&src[mid], &src[mid - 1])) {
                /* Already in order: one copy. */
                memcpy(&dst[lo], &src[lo], (hi - lo) * sizeof *dst);
                continue;
            }
            while (a < mid && b < hi) dst[o++] = recLess(&src[b], &src[a]) ? src[b++] : src[a++];
            while (a < mid) dst[o++] = src[a++];
            while (b < hi) dst[o++] = src[b++];
        }
        traceSortRec *t = src;
        src = dst;
        dst = t;
    }
    if (src != r) memcpy(r, src, n * sizeof *r);
    free(tmp);
}

/* Node id -> run number, open addressing; sized for the distinct nodes,
 * which are few, so it stays in cache while every event is looked up. */
typedef struct nodeTable {
    uint32_t *node;
    size_t *run; /* TRACE_NONE for an empty slot */
    size_t cap, used;
} nodeTable;

static size_t nodeSlot(const nodeTable *t, uint32_t node) {
    size_t s = (size_t)((node * 0x9e3779b97f4a7c15ull) >> 40) & (t->cap - 1);
    while (t->run[s] != TRACE_NONE && t->node[s] != node) s = (s + 1) & (t->cap - 1);
    return s;
}

static void nodeTableInit(nodeTable *t, size_t cap) {
    t->node = xmalloc(cap * sizeof *t->node);
    t->run = xmalloc(cap * sizeof *t->run);
    for (size_t s = 0; s < cap; s++) t->run[s] = TRACE_NONE;
    t->cap = cap;
    t->used = 0;
}

static void nodeTableGrow(nodeTable *t) {
    nodeTable bigger;
    nodeTableInit(&bigger, t->cap * 2);
    for (size_t s = 0; s < t->cap; s++) {
        if (t->run[s] == TRACE_NONE) continue;
        size_t d = nodeSlot(&bigger, t->node[s]);
        bigger.node[d] = t->node[s];
        bigger.run[d] = t->run[s];
    }
    bigger.used = t->used;
    free(t->node);
    free(t->run);
    *t = bigger;
}

static int runByNode(const void *a, const void *b) {
    uint32_t x = ((const traceNodeRun *)a)->node, y = ((const traceNodeRun *)b)->node;
    return (x > y) - (x < y);
}

/* Events are bucketed by node keeping their input order, which for a
 * history is each node's own order already; only a run found out of
 * order is sorted. */
void traceNodeIndexBuild(traceNodeIndex *ix, const traceEvent *const *ev, size_t n) {
    size_t *run_of = xmalloc(n * sizeof *run_of);
    nodeTable t;
    nodeTableInit(&t, 16);
    traceNodeRun *runs = NULL;
    size_t runs_cap = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = nodeSlot(&t, ev[i]->node);
        if (t.run[s] == TRACE_NONE) {
            if (2 * (t.used + 1) > t.cap) {
                nodeTableGrow(&t);
                s = nodeSlot(&t, ev[i]->node);
            }
            if (t.used == runs_cap) {
                runs_cap = runs_cap ? runs_cap * 2 : 8;
                runs = xrealloc(runs, runs_cap * sizeof *runs);
            }
            runs[t.used] = (traceNodeRun){ev[i]->node, 0, 0, true};
            t.node[s] = ev[i]->node;
            t.run[s] = t.used++;
        }
        run_of[i] = t.run[s];
        runs[run_of[i]].n++;
    }
    size_t nruns = t.used;

    /* Runs by node id; first = where each starts. */
    size_t *renumber = xmalloc(nruns * sizeof *renumber);
    for (size_t r = 0; r < nruns; r++) runs[r].first = r; /* remember the old number */
    if (nruns > 1) qsort(runs, nruns, sizeof *runs, runByNode);
    size_t first = 0;
    for (size_t r = 0; r < nruns; r++) {
        renumber[runs[r].first] = r;
        runs[r].first = first;
        first += runs[r].n;
    }
    free(t.node);
    free(t.run);

    ix->order = xmalloc(n * sizeof *ix->order);
    ix->own = xmalloc(n * sizeof *ix->own);
    ix->pos = xmalloc(n * sizeof *ix->pos);
    size_t *cursor = xmalloc(nruns * sizeof *cursor);
    for (size_t r = 0; r < nruns; r++) cursor[r] = runs[r].first;
    for (size_t i = 0; i < n; i++) {
        size_t p = cursor[renumber[run_of[i]]]++;
        ix->order[p] = i;
        ix->own[p] = traceEventOwnCounter(ev[i]);
    }
    free(cursor);
    free(renumber);
    free(run_of);

    for (size_t r = 0; r < nruns; r++) {
        traceNodeRun *run = &runs[r];
        size_t lo = run->first, hi = run->first + run->n;
        bool sorted = true;
        for (size_t p = lo + 1; p < hi && sorted; p++) {
            const traceEvent *a = ev[ix->order[p - 1]], *b = ev[ix->order[p]];
            sorted = ix->own[p - 1] < ix->own[p] ||
                     (ix->own[p - 1] == ix->own[p] &&
                      (a->seq < b->seq || (a->seq == b->seq && ix->order[p - 1] < ix->order[p])));
        }
        if (!sorted) {
            traceSortRec *rec = xmalloc(run->n * sizeof *rec);
            for (size_t p = lo; p < hi; p++) {
                rec[p - lo] = (traceSortRec){ix->own[p], ev[ix->order[p]]->seq, 0, ix->order[p]};
            }
            traceSortRecs(rec, run->n);
            for (size_t p = lo; p < hi; p++) {
                ix->order[p] = rec[p - lo].idx;
                ix->own[p] = rec[p - lo].k1;
            }
            free(rec);
        }
        for (size_t p = lo; p < hi; p++) {
            ix->pos[ix->order[p]] = p;
            if (p > lo && ix->own[p] != ix->own[p - 1] + 1) run->dense = false;
        }
    }
    ix->runs = runs;
    ix->nruns = nruns;
}

void traceNodeIndexFree(traceNodeIndex *ix) {
    free(ix->order);
    free(ix->own);
    free(ix->pos);
    free(ix->runs);
}

const traceNodeRun *traceNodeIndexRun(const traceNodeIndex *ix, uint32_t node) {
    size_t lo = 0, hi = ix->nruns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->runs[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ix->nruns && ix->runs[lo].node == node ? &ix->runs[lo] : NULL;
}

size_t traceNodeIndexLatestAtMost(const traceNodeIndex *ix, const traceNodeRun *r, uint64_t c) {
    if (!r || r->n == 0 || c < ix->own[r->first]) return TRACE_NONE;
    if (r->dense) {
        uint64_t off = c - ix->own[r->first];
        return r->first + (off < r->n ? (size_t)off : r->n - 1);
    }
    /* Last position with own <= c: the first with own > c, minus one. */
    size_t lo = r->first, hi = r->first + r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->own[mid] <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}
