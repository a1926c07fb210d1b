/* Text and JSON views of a set of events.
 *
 * The text view is what `dmkv trace` and the logger print: the same
 * history in physical, Lamport and causal order, then the writes that
 * raced, one event or one layer per line so it reads in a terminal and
 * greps. Strings are escaped so a key holding a newline cannot forge a
 * line. The JSON view carries the same information for the HTML page,
 * with every cross-reference as an index into its events array. */
#include "trace/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const view_names[] = {
    [TRACE_VIEW_ALL] = "all",
    [TRACE_VIEW_PHYSICAL] = "physical",
    [TRACE_VIEW_LAMPORT] = "lamport",
    [TRACE_VIEW_VECTOR] = "vector",
};

const char *traceViewName(traceView v) {
    if ((int)v < 0 || (size_t)v >= sizeof view_names / sizeof view_names[0]) return NULL;
    return view_names[v];
}

int traceViewParse(const char *name, traceView *out) {
    for (size_t v = 0; v < sizeof view_names / sizeof view_names[0]; v++) {
        if (strcmp(name, view_names[v]) == 0) {
            *out = (traceView)v;
            return 0;
        }
    }
    return -1;
}

/* ---- Text pieces ------------------------------------------------------ */

void traceTextAppend(buf *out, const char *s) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        unsigned char c = *p;
        size_t n = c >= 0x20 && c != 0x7f && c != '\\' ? traceUtf8SequenceLength(p, end - p) : 0;
        if (n) {
            bufAppend(out, p, n);
            p += n;
            continue;
        }
        if (c == '\n') {
            bufAppend(out, "\\n", 2);
        } else if (c == '\t') {
            bufAppend(out, "\\t", 2);
        } else if (c == '\\') {
            bufAppend(out, "\\\\", 2);
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            bufAppend(out, esc, 4);
        }
        p++;
    }
}

void traceTextAppendShort(buf *out, const traceEvent *e, bool with_detail) {
    bufPrintf(out, "node%" PRIu32 "#%" PRIu64 " ", e->node, e->seq);
    traceTextAppend(out, e->kind);
    if (e->key) {
        bufAppendChar(out, ' ');
        traceTextAppend(out, e->key);
        if (with_detail && e->detail) {
            bufAppendChar(out, '=');
            traceTextAppend(out, e->detail);
        }
    }
}

/* [2024-11-24 06:33:20.123456], in UTC; the bare number if out of range. */
static void appendWallTime(buf *out, uint64_t wall_us) {
    time_t secs = (time_t)(wall_us / 1000000);
    struct tm tm;
    if ((uint64_t)secs == wall_us / 1000000 && gmtime_r(&secs, &tm)) {
        bufPrintf(out, "[%04d-%02d-%02d %02d:%02d:%02d.%06u]", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_us % 1000000));
    } else {
        bufPrintf(out, "[%" PRIu64 "us]", wall_us);
    }
}

/* [ts] node1 #5 L=7 vc={1:3,2:1} PUT color red (msg 1:17) */
static void appendEventLine(buf *out, const traceEvent *e) {
    appendWallTime(out, e->wall_us);
    bufPrintf(out, " node%" PRIu32 " #%" PRIu64 " L=%" PRIu64 " vc=", e->node, e->seq, e->lamport);
    vclockFormat(&e->vc, out);
    bufAppendChar(out, ' ');
    traceTextAppendWhat(out, e);
    if (e->msg) {
        bufAppendStr(out, " (msg ");
        traceTextAppend(out, e->msg);
        bufAppendChar(out, ')');
    }
    bufAppendChar(out, '\n');
}

static void appendOrderSection(buf *out, const char *title, const traceEvent *const *ev,
                               const size_t *order, size_t n) {
    bufPrintf(out, "== %s ==\n", title);
    for (size_t k = 0; k < n; k++) appendEventLine(out, ev[order[k]]);
}

static void appendLayersSection(buf *out, const traceEvent *const *ev, const traceLayers *l) {
    bufAppendStr(out, "== causal layers ==\n");
    for (size_t L = 1; L <= l->nlayers; L++) {
        bufPrintf(out, "layer %zu:", L);
        for (size_t m = l->start[L - 1]; m < l->start[L]; m++) {
            bufAppendStr(out, m == l->start[L - 1] ? " " : " | ");
            traceTextAppendShort(out, ev[l->members[m]], false);
        }
        bufAppendChar(out, '\n');
    }
}

static void appendConcurrentSection(buf *out, const traceEvent *const *ev,
                                    const traceConcurrent *c) {
    bufPrintf(out, "concurrent writes: %" PRIu64 "\n", c->total);
    for (size_t k = 0; k < c->npairs; k++) {
        bufAppendStr(out, "  ");
        traceTextAppendShort(out, ev[c->pairs[k].a], true);
        bufAppendStr(out, " || ");
        traceTextAppendShort(out, ev[c->pairs[k].b], true);
        bufAppendChar(out, '\n');
    }
    if (c->total > c->npairs) bufPrintf(out, "  ... and %" PRIu64 " more\n", c->total - c->npairs);
}

void traceRenderText(const traceEvent *const *ev, size_t n, traceView view, buf *out) {
    if (view == TRACE_VIEW_ALL || view == TRACE_VIEW_PHYSICAL) {
        size_t *order = traceOrderPhysical(ev, n);
        appendOrderSection(out, "physical order", ev, order, n);
        free(order);
    }
    if (view == TRACE_VIEW_ALL || view == TRACE_VIEW_LAMPORT) {
        size_t *order = traceOrderLamport(ev, n);
        appendOrderSection(out, "Lamport order", ev, order, n);
        free(order);
    }
    if (view == TRACE_VIEW_ALL || view == TRACE_VIEW_VECTOR) {
        traceLayers layers;
        traceOrderLayers(ev, n, &layers);
        appendLayersSection(out, ev, &layers);
        traceLayersFree(&layers);
    }
    traceConcurrent c;
    traceOrderConcurrentWrites(ev, n, TRACE_MAX_LISTED_PAIRS, &c);
    appendConcurrentSection(out, ev, &c);
    traceConcurrentFree(&c);
}

/* ---- JSON view -------------------------------------------------------- */

void traceRenderJson(const traceEvent *const *ev, size_t n, traceView view, buf *out) {
    if (view == TRACE_VIEW_ALL) view = TRACE_VIEW_LAMPORT;
    traceLayers layers;
    traceOrderLayers(ev, n, &layers);
    size_t *order;
    if (view == TRACE_VIEW_PHYSICAL) {
        order = traceOrderPhysical(ev, n);
    } else if (view == TRACE_VIEW_LAMPORT) {
        order = traceOrderLamport(ev, n);
    } else {
        order = xmalloc(n * sizeof *order);
        if (n) memcpy(order, layers.members, n * sizeof *order);
    }
    size_t *at = xmalloc(n * sizeof *at); /* at[event] = its place in "events" */
    for (size_t k = 0; k < n; k++) at[order[k]] = k;

    bufPrintf(out, "{\"order\":\"%s\",\"count\":%zu,\"events\":[", view_names[view], n);
    for (size_t k = 0; k < n; k++) {
        if (k) bufAppendChar(out, ',');
        traceEventAppendJsonFields(ev[order[k]], out);
        bufAppendStr(out, ",\"layer\":");
        traceJsonAppendU64(out, layers.layer[order[k]]);
        bufAppendChar(out, '}');
    }
    bufAppendStr(out, "],\"layers\":[");
    for (size_t L = 1; L <= layers.nlayers; L++) {
        bufAppendStr(out, L > 1 ? ",[" : "[");
        for (size_t m = layers.start[L - 1]; m < layers.start[L]; m++) {
            if (m > layers.start[L - 1]) bufAppendChar(out, ',');
            traceJsonAppendU64(out, at[layers.members[m]]);
        }
        bufAppendChar(out, ']');
    }
    bufAppendStr(out, "],\"concurrent\":[");
    traceConcurrent c;
    traceOrderConcurrentWrites(ev, n, TRACE_MAX_LISTED_PAIRS, &c);
    for (size_t k = 0; k < c.npairs; k++) {
        bufAppendStr(out, k ? ",[" : "[");
        traceJsonAppendU64(out, at[c.pairs[k].a]);
        bufAppendChar(out, ',');
        traceJsonAppendU64(out, at[c.pairs[k].b]);
        bufAppendChar(out, ']');
    }
    bufPrintf(out, "],\"concurrent_total\":%" PRIu64 "}\n", c.total);

    traceConcurrentFree(&c);
    free(at);
    free(order);
    traceLayersFree(&layers);
}

void traceTextAppendWhat(buf *out, const traceEvent *e) {
    traceTextAppend(out, e->kind);
    if (e->key) {
        bufAppendChar(out, ' ');
        traceTextAppend(out, e->key);
    }
    if (e->detail) {
        bufAppendChar(out, ' ');
        traceTextAppend(out, e->detail);
    }
}
