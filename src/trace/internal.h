/* What the files of src/trace share and nobody else needs: the sort
 * every ordering is built on, the per-node index of a set of events, and
 * the string escapers of the JSON and text forms. */
#ifndef DMKV_TRACE_INTERNAL_H
#define DMKV_TRACE_INTERNAL_H

#include "trace/trace.h"

/* A sort record: three keys compared in turn, then the event index, so
 * every sort is total and its result does not depend on the algorithm. */
typedef struct traceSortRec {
    uint64_t k1, k2, k3;
    size_t idx;
} traceSortRec;

void traceSortRecs(traceSortRec *r, size_t n);

/* Events grouped by node, each node's events in own-counter order. */
typedef struct traceNodeRun {
    uint32_t node;
    size_t first, n; /* the run is order[first .. first+n) */
    bool dense;      /* own counters are consecutive: own[first] + k at first + k */
} traceNodeRun;

typedef struct traceNodeIndex {
    size_t *order;      /* event indices by (node, own counter, seq) */
    uint64_t *own;      /* own[p]: own counter of event order[p] */
    size_t *pos;        /* pos[i]: where event i sits in order */
    traceNodeRun *runs; /* by node id */
    size_t nruns;
} traceNodeIndex;

#define TRACE_NONE SIZE_MAX

void traceNodeIndexBuild(traceNodeIndex *ix, const traceEvent *const *ev, size_t n);
void traceNodeIndexFree(traceNodeIndex *ix);
/* The run of node, or NULL when no event of it was given. */
const traceNodeRun *traceNodeIndexRun(const traceNodeIndex *ix, uint32_t node);
/* Position in order of the run's latest event with own counter <= c, or
 * TRACE_NONE. */
size_t traceNodeIndexLatestAtMost(const traceNodeIndex *ix, const traceNodeRun *r, uint64_t c);

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) at s, or 0 if there is none. */
size_t traceUtf8SequenceLength(const unsigned char *s, size_t avail);
/* Appends s as a JSON string: at most max_bytes of decoded text, cut at a
 * character boundary, invalid UTF-8 replaced by U+FFFD. */
void traceJsonAppendString(buf *out, const char *s, size_t max_bytes);
void traceJsonAppendU64(buf *out, uint64_t v);
/* Appends the event's JSON object without its closing brace. */
void traceEventAppendJsonFields(const traceEvent *e, buf *out);
/* Appends s for a one-line text view: control characters, backslashes
 * and invalid UTF-8 bytes escaped as \n, \t, \\, \xNN. */
void traceTextAppend(buf *out, const char *s);
/* "KIND key detail", the parts present, escaped as traceTextAppend does. */
void traceTextAppendWhat(buf *out, const traceEvent *e);
/* "node1#5 PUT color" (and "=detail" when with_detail and there is one). */
void traceTextAppendShort(buf *out, const traceEvent *e, bool with_detail);

#endif
