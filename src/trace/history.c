/* The logger's memory: the most recent events, and which (node, seq)
 * pairs it has already taken.
 *
 * Events sit in a ring in arrival order; when it is full the oldest is
 * freed and counted as dropped. The ring grows geometrically up to its
 * limit, so a logger configured for millions of events costs nothing
 * until they come.
 *
 * Duplicates are found per node in a sorted list of the seq ranges seen.
 * A node sends its events in order, so the list is normally one range
 * whose end moves up by one: an O(1) check. Events a node dropped leave
 * gaps, each one more range, and a late event fills its gap; the number
 * of ranges is capped (TRACE_HISTORY_MAX_GAPS) by forgetting the oldest
 * gap. Ranges outlive the events in the ring, so an event replayed after
 * it was dropped from the ring is still refused. */
#include "trace/internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct seqRange {
    uint64_t lo, hi;
} seqRange;

typedef struct seenNode {
    uint32_t node;
    seqRange *r; /* disjoint, non-adjacent, increasing */
    size_t n, cap;
} seenNode;

struct traceHistory {
    traceEvent *ring;
    size_t max_events, cap, head, count; /* events are ring[(head + i) % cap] */
    seenNode *nodes;                     /* by node id */
    size_t nnodes, nodes_cap;
    traceHistoryStats stats;
};

traceHistory *traceHistoryCreate(size_t max_events) {
    assert(max_events >= 1);
    traceHistory *h = xcalloc(1, sizeof *h);
    h->max_events = max_events;
    return h;
}

void traceHistoryFree(traceHistory *h) {
    if (!h) return;
    for (size_t i = 0; i < h->count; i++) traceEventFree(&h->ring[(h->head + i) % h->cap]);
    free(h->ring);
    for (size_t i = 0; i < h->nnodes; i++) free(h->nodes[i].r);
    free(h->nodes);
    free(h);
}

static seenNode *seenNodeFor(traceHistory *h, uint32_t node) {
    size_t lo = 0, hi = h->nnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->nodes[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < h->nnodes && h->nodes[lo].node == node) return &h->nodes[lo];
    if (h->nnodes == h->nodes_cap) {
        h->nodes_cap = h->nodes_cap ? h->nodes_cap * 2 : 8;
        h->nodes = xrealloc(h->nodes, h->nodes_cap * sizeof *h->nodes);
    }
    memmove(&h->nodes[lo + 1], &h->nodes[lo], (h->nnodes - lo) * sizeof *h->nodes);
    h->nnodes++;
    h->nodes[lo] = (seenNode){node, NULL, 0, 0};
    return &h->nodes[lo];
}

static void rangeInsertAt(seenNode *s, size_t i, uint64_t seq) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->r = xrealloc(s->r, s->cap * sizeof *s->r);
    }
    memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof *s->r);
    s->r[i] = (seqRange){seq, seq};
    s->n++;
}

static void rangeRemoveAt(seenNode *s, size_t i) {
    memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof *s->r);
    s->n--;
}

/* Records seq as seen; false when it already was. */
static bool seenInsert(seenNode *s, uint64_t seq) {
    if (s->n && s->r[s->n - 1].hi < seq) {
        if (s->r[s->n - 1].hi + 1 == seq) {
            s->r[s->n - 1].hi = seq; /* the usual case: the next one */
            return true;
        }
    }
    /* i = first range starting above seq. */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->r[mid].lo <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo;
    if (i > 0 && seq <= s->r[i - 1].hi) return false;
    bool joins_prev = i > 0 && s->r[i - 1].hi + 1 == seq;
    bool joins_next = i < s->n && s->r[i].lo - 1 == seq;
    if (joins_prev && joins_next) {
        s->r[i - 1].hi = s->r[i].hi;
        rangeRemoveAt(s, i);
    } else if (joins_prev) {
        s->r[i - 1].hi = seq;
    } else if (joins_next) {
        s->r[i].lo = seq;
    } else {
        rangeInsertAt(s, i, seq);
        if (s->n > TRACE_HISTORY_MAX_GAPS + 1) {
            s->r[0].hi = s->r[1].hi; /* forget the oldest gap */
            rangeRemoveAt(s, 1);
        }
    }
    return true;
}

int traceHistoryAdd(traceHistory *h, traceEvent *e) {
    if (e->node == 0 || e->seq == 0) {
        h->stats.invalid++;
        return TRACE_ERR_INVALID;
    }
    if (!seenInsert(seenNodeFor(h, e->node), e->seq)) {
        h->stats.duplicates++;
        return TRACE_ERR_DUPLICATE;
    }
    if (h->count == h->cap && h->cap < h->max_events) {
        /* Not yet full, so nothing was dropped and head is still 0. */
        assert(h->head == 0);
        size_t cap = h->cap ? h->cap * 2 : 1024;
        if (cap > h->max_events) cap = h->max_events;
        h->ring = xrealloc(h->ring, cap * sizeof *h->ring);
        h->cap = cap;
    }
    if (h->count == h->cap) {
        traceEventFree(&h->ring[h->head]);
        h->ring[h->head] = *e;
        h->head = (h->head + 1) % h->cap;
        h->stats.dropped++;
    } else {
        h->ring[(h->head + h->count) % h->cap] = *e;
        h->count++;
    }
    traceEventInit(e);
    h->stats.added++;
    return TRACE_OK;
}

size_t traceHistoryCount(const traceHistory *h) {
    return h->count;
}

const traceEvent *traceHistoryAt(const traceHistory *h, size_t i) {
    assert(i < h->count);
    return &h->ring[(h->head + i) % h->cap];
}

void traceHistoryGetStats(const traceHistory *h, traceHistoryStats *out) {
    *out = h->stats;
}

size_t traceHistorySelect(const traceHistory *h, const traceFilter *f, const traceEvent ***out) {
    const traceEvent **all = xmalloc((h->count ? h->count : 1) * sizeof *all);
    for (size_t i = 0; i < h->count; i++) all[i] = traceHistoryAt(h, i);
    if (!f || (!f->key && !f->last_n)) {
        *out = all;
        return h->count;
    }
    const traceEvent **picked = xmalloc((h->count ? h->count : 1) * sizeof *picked);
    size_t n = traceFilterApply(all, h->count, f, picked);
    free(all);
    *out = picked;
    return n;
}

size_t traceFilterApply(const traceEvent *const *in, size_t n, const traceFilter *f,
                        const traceEvent **out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (f && f->key && (!in[i]->key || strcmp(in[i]->key, f->key) != 0)) continue;
        out[m++] = in[i];
    }
    if (!f || !f->last_n || m <= f->last_n) return m;

    /* Keep the last_n latest in physical order, in their input order. */
    size_t *order = traceOrderPhysical(out, m);
    bool *keep = xcalloc(m, sizeof *keep);
    for (size_t k = m - f->last_n; k < m; k++) keep[order[k]] = true;
    size_t kept = 0;
    for (size_t i = 0; i < m; i++) {
        if (keep[i]) out[kept++] = out[i];
    }
    free(keep);
    free(order);
    return kept;
}
