/* libFuzzer target for the logger's input: traceBatchDecode on arbitrary
 * bytes, and everything the logger then does with what it accepted.
 *
 * A rejected batch must come back empty with an error message. An
 * accepted one must hold only events the decoder's rules allow, each must
 * survive encode then decode unchanged, and the history, the orderings,
 * the text and JSON views and the ShiViz export must all run on it (the
 * sanitizers watch them) and return well-formed results: permutations,
 * a layering that covers every event once, pairs within range. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace.h"

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_trace: %s\n", what);
    abort();
}

static void checkPermutation(const size_t *order, size_t n) {
    char *seen = xcalloc(n, 1);
    for (size_t k = 0; k < n; k++) {
        if (order[k] >= n || seen[order[k]]) fuzzFail("order is not a permutation");
        seen[order[k]] = 1;
    }
    free(seen);
}

static bool sameString(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void checkRoundTrip(const traceEvent *e) {
    if (e->node == 0 || e->seq == 0 || traceEventOwnCounter(e) == 0) fuzzFail("invalid event");
    if (traceKindFromName(e->kind) < 0) fuzzFail("unknown kind accepted");
    if ((e->key && strlen(e->key) > TRACE_KEY_MAX_BYTES) ||
        (e->detail && strlen(e->detail) > TRACE_DETAIL_MAX_BYTES) ||
        (e->msg && strlen(e->msg) > TRACE_MSG_MAX_BYTES))
        fuzzFail("oversized string accepted");
    buf b;
    bufInit(&b);
    traceEventToJson(e, &b);
    traceEvent back;
    traceEventInit(&back);
    char err[256];
    if (traceEventFromJson(b.data, b.len - 1, &back, err, sizeof err) != 0) {
        fprintf(stderr, "re-decode: %s\n", err);
        fuzzFail("encoded event does not decode");
    }
    if (back.node != e->node || back.seq != e->seq || back.wall_us != e->wall_us ||
        back.lamport != e->lamport || vclockCompare(&back.vc, &e->vc) != VCLOCK_EQUAL ||
        strcmp(back.kind, e->kind) != 0 || !sameString(back.key, e->key) ||
        !sameString(back.detail, e->detail) || !sameString(back.msg, e->msg))
        fuzzFail("round trip changed the event");
    traceEventFree(&back);
    bufFree(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    traceEvent *events = (traceEvent *)&size;
    size_t n = 1;
    char err[256] = "";
    if (traceBatchDecode((const char *)data, size, &events, &n, err, sizeof err) != 0) {
        if (events != NULL || n != 0 || err[0] == '\0') fuzzFail("rejected batch not empty");
        return 0;
    }
    for (size_t i = 0; i < n; i++) checkRoundTrip(&events[i]);

    const traceEvent **ev = traceEventPointers(events, n);
    size_t *order = traceOrderPhysical(ev, n);
    checkPermutation(order, n);
    free(order);
    order = traceOrderLamport(ev, n);
    checkPermutation(order, n);
    free(order);

    traceLayers layers;
    traceOrderLayers(ev, n, &layers);
    if (layers.start[layers.nlayers] != n) fuzzFail("layers do not cover the events");
    checkPermutation(layers.members, n);
    for (size_t L = 1; L <= layers.nlayers; L++) {
        for (size_t m = layers.start[L - 1]; m < layers.start[L]; m++) {
            if (layers.layer[layers.members[m]] != L) fuzzFail("member in the wrong layer");
        }
    }
    traceLayersFree(&layers);

    traceConcurrent c;
    traceOrderConcurrentWrites(ev, n, 16, &c);
    if (c.npairs > 16 || c.npairs > c.total) fuzzFail("pair count out of range");
    for (size_t k = 0; k < c.npairs; k++) {
        if (c.pairs[k].a >= n || c.pairs[k].b >= n) fuzzFail("pair out of range");
    }
    traceConcurrentFree(&c);

    buf out;
    bufInit(&out);
    traceRenderText(ev, n, TRACE_VIEW_ALL, &out);
    traceRenderJson(ev, n, TRACE_VIEW_VECTOR, &out);
    traceRenderJson(ev, n, TRACE_VIEW_PHYSICAL, &out);
    traceShivizExport(ev, n, &out);
    bufFree(&out);

    traceHistory *h = traceHistoryCreate(8);
    for (size_t i = 0; i < n; i++) {
        traceEvent copy;
        traceEventInit(&copy);
        traceEventCopy(&copy, &events[i]);
        if (traceHistoryAdd(h, &copy) != TRACE_OK) traceEventFree(&copy);
    }
    traceFilter last = {NULL, 3};
    const traceEvent **sel;
    size_t m = traceHistorySelect(h, &last, &sel);
    if (m > 3 || m > traceHistoryCount(h)) fuzzFail("filter kept too many");
    free(sel);
    traceHistoryFree(h);

    free(ev);
    traceBatchFree(events, n);
    return 0;
}
