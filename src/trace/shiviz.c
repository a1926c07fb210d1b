/* Export to ShiViz (the space-time visualiser for vector-clock logs).
 *
 * ShiViz takes a log whose clocks are complete: a host's own counter goes
 * 1, 2, 3... with one step per logged event, and an entry for another
 * host names one of that host's logged events. dmkv's history is rarely
 * complete (queues drop, the ring forgets, some ticks are never logged),
 * so the clocks are renumbered over the exported events, as trace.h
 * describes: the new counter of an event on its own node is its rank
 * among that node's exported events, and an entry for another node points
 * at the latest exported event of that node the original clock covered.
 * Those are the same lookups the causal layers make, so the renumbered
 * clocks keep exactly the causal order among the exported events. */
#include "trace/internal.h"

#include <inttypes.h>
#include <stdlib.h>

/* ShiViz's own default, spelled out: the event text on one line, then
 * "host {clock}" on the next. The second line of the file is the
 * multiple-executions delimiter, left empty. */
static const char shiviz_header[] = "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n\n";

/* PUT color red (node1#5 L=7 msg 1:17) */
static void appendDescription(buf *out, const traceEvent *e) {
    traceTextAppendWhat(out, e);
    bufPrintf(out, " (node%" PRIu32 "#%" PRIu64 " L=%" PRIu64, e->node, e->seq, e->lamport);
    if (e->msg) {
        bufAppendStr(out, " msg ");
        traceTextAppend(out, e->msg);
    }
    bufAppendStr(out, ")\n");
}

void traceShivizExport(const traceEvent *const *ev, size_t n, buf *out) {
    traceNodeIndex ix;
    traceNodeIndexBuild(&ix, ev, n);
    size_t *order = traceOrderLamport(ev, n);

    bufAppendStr(out, shiviz_header);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        const traceEvent *e = ev[i];
        appendDescription(out, e);

        const traceNodeRun *self = traceNodeIndexRun(&ix, e->node);
        bufPrintf(out, "node%" PRIu32 " {\"node%" PRIu32 "\":%zu", e->node, e->node,
                  ix.pos[i] - self->first + 1);
        for (size_t j = 0; j < e->vc.n; j++) {
            const vclockEntry *en = &e->vc.e[j];
            if (en->node == e->node) continue;
            const traceNodeRun *run = traceNodeIndexRun(&ix, en->node);
            size_t q = traceNodeIndexLatestAtMost(&ix, run, en->counter);
            if (q == TRACE_NONE) continue;
            bufPrintf(out, ", \"node%" PRIu32 "\":%zu", en->node, q - run->first + 1);
        }
        bufAppendStr(out, "}\n");
    }
    free(order);
    traceNodeIndexFree(&ix);
}
