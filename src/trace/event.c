/* The event record: kind names, ownership of its strings and clock.
 *
 * kind is kept as a short string rather than the enum because it is what
 * the wire, the views and the page all show, and so that an event decoded
 * by a newer logger from an older node (or the reverse) needs no mapping
 * table; the enum exists so that node code names kinds without typos. */
#include "trace/internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[TRACE_KIND_COUNT] = {
    [TRACE_KIND_GET] = "GET",
    [TRACE_KIND_PUT] = "PUT",
    [TRACE_KIND_DEL] = "DEL",
    [TRACE_KIND_INCR] = "INCR",
    [TRACE_KIND_APPLY_LOCAL] = "APPLY_LOCAL",
    [TRACE_KIND_REPL_SEND] = "REPL_SEND",
    [TRACE_KIND_REPL_RECV] = "REPL_RECV",
    [TRACE_KIND_MUTEX_REQ] = "MUTEX_REQ",
    [TRACE_KIND_MUTEX_GOT] = "MUTEX_GOT",
    [TRACE_KIND_MUTEX_REL] = "MUTEX_REL",
    [TRACE_KIND_MEMBER] = "MEMBER",
    [TRACE_KIND_CONFLICT] = "CONFLICT",
};

const char *traceKindName(traceKind k) {
    if ((int)k < 0 || k >= TRACE_KIND_COUNT) return NULL;
    return kind_names[k];
}

int traceKindFromName(const char *name) {
    for (int k = 0; k < TRACE_KIND_COUNT; k++) {
        if (strcmp(name, kind_names[k]) == 0) return k;
    }
    return -1;
}

bool traceKindIsWrite(const char *kind) {
    int k = traceKindFromName(kind);
    return k == TRACE_KIND_PUT || k == TRACE_KIND_DEL || k == TRACE_KIND_INCR ||
           k == TRACE_KIND_APPLY_LOCAL;
}

bool traceKindIsSend(const char *kind) {
    return strcmp(kind, kind_names[TRACE_KIND_REPL_SEND]) == 0;
}

bool traceKindIsReceive(const char *kind) {
    return strcmp(kind, kind_names[TRACE_KIND_REPL_RECV]) == 0;
}

void traceEventInit(traceEvent *e) {
    memset(e, 0, sizeof *e);
    vclockInit(&e->vc);
}

void traceEventFree(traceEvent *e) {
    vclockFree(&e->vc);
    free(e->key);
    free(e->detail);
    free(e->msg);
    traceEventInit(e);
}

static char *dupOrNull(const char *s) {
    return s ? xstrdup(s) : NULL;
}

void traceEventCopy(traceEvent *dst, const traceEvent *src) {
    if (dst == src) return;
    /* Duplicate first: src may share nothing with dst, but this order
     * would also survive it sharing strings. */
    char *key = dupOrNull(src->key), *detail = dupOrNull(src->detail), *msg = dupOrNull(src->msg);
    free(dst->key);
    free(dst->detail);
    free(dst->msg);
    vclockCopy(&dst->vc, &src->vc);
    dst->node = src->node;
    dst->seq = src->seq;
    dst->wall_us = src->wall_us;
    dst->lamport = src->lamport;
    memcpy(dst->kind, src->kind, sizeof dst->kind);
    dst->kind[sizeof dst->kind - 1] = '\0';
    dst->key = key;
    dst->detail = detail;
    dst->msg = msg;
}

void traceEventSetKind(traceEvent *e, traceKind k) {
    const char *name = traceKindName(k);
    memset(e->kind, 0, sizeof e->kind);
    if (name) memcpy(e->kind, name, strlen(name));
}

uint64_t traceEventOwnCounter(const traceEvent *e) {
    return vclockGet(&e->vc, e->node);
}

const traceEvent **traceEventPointers(const traceEvent *events, size_t n) {
    const traceEvent **p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = &events[i];
    return p;
}
