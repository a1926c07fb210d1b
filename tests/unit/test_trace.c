/* Unit and property tests for src/trace: the JSON Lines form and every
 * rule its decoder enforces, batches, the history ring and its duplicate
 * check, the three orderings and the concurrent writes on a scripted
 * three-node history whose answers are written out by hand, the same
 * against pairwise vclockCompare on random histories (whole and
 * windowed), the ShiViz export checked against ShiViz's rules, and the
 * text, JSON and HTML views. Clocks come from real nodeClock instances
 * driven through scripted or seeded-random message exchanges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace.h"

/* ---- Helpers ---------------------------------------------------------- */

/* xorshift64*: a fixed-seed generator, so a failing seed reproduces. */
typedef struct rng {
    uint64_t s;
} rng;

static void rngSeed(rng *r, uint64_t seed) {
    r->s = seed * 0x9e3779b97f4a7c15ull + 1;
}

static uint64_t rngNext(rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

static uint64_t rngBelow(rng *r, uint64_t n) {
    return rngNext(r) % n;
}

static void assertBufIs(const buf *b, const char *want) {
    size_t n = strlen(want);
    if (b->len != n || memcmp(b->data, want, n) != 0) {
        fail_msg("got \"%.*s\"\nwant \"%s\"", (int)b->len, b->data ? b->data : "", want);
    }
}

/* A NUL-terminated copy of a buffer's contents; free() it. */
static char *bufString(const buf *b) {
    return xstrndup(b->data ? b->data : "", b->len);
}

static void assertBufHasLine(const buf *b, const char *line) {
    char *text = bufString(b);
    size_t n = strlen(line);
    bool found = false;
    for (char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0')) found = true;
    }
    if (!found) fail_msg("line \"%s\" not in:\n%s", line, text);
    free(text);
}

/* A valid event line with one field replaced or added: `extra` is spliced
 * in after the opening brace, and a field named in `drop` is left out. */
static char *lineWith(const char *extra, const char *drop) {
    static const char *const parts[][2] = {
        {"node", "\"node\":1"},       {"seq", "\"seq\":5"},       {"ts_us", "\"ts_us\":1000"},
        {"lamport", "\"lamport\":7"}, {"vc", "\"vc\":{\"1\":3}"}, {"kind", "\"kind\":\"PUT\""},
        {"key", "\"key\":\"color\""},
    };
    buf b;
    bufInit(&b);
    bufAppendChar(&b, '{');
    bool first = true;
    if (extra) {
        bufAppendStr(&b, extra);
        first = false;
    }
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (drop && strcmp(drop, parts[i][0]) == 0) continue;
        if (extra) {
            /* A replacement: skip the defaults of the fields extra sets. */
            char name[32];
            snprintf(name, sizeof name, "\"%s\":", parts[i][0]);
            if (strstr(extra, name)) continue;
        }
        if (!first) bufAppendChar(&b, ',');
        bufAppendStr(&b, parts[i][1]);
        first = false;
    }
    bufAppendChar(&b, '}');
    bufAppendChar(&b, '\0');
    return b.data;
}

/* Decoding must fail, name `why` in the error, and leave out untouched. */
static void assertRejected(const char *line, size_t len, const char *why) {
    traceEvent e;
    traceEventInit(&e);
    e.node = 77;
    char err[256] = "";
    if (traceEventFromJson(line, len, &e, err, sizeof err) == 0)
        fail_msg("accepted: %.*s", (int)(len > 200 ? 200 : len), line);
    if (why && !strstr(err, why)) fail_msg("error \"%s\" does not mention \"%s\"", err, why);
    assert_int_equal(e.node, 77);
    traceEventFree(&e);
}

static void assertRejectedWith(const char *extra, const char *drop, const char *why) {
    char *line = lineWith(extra, drop);
    assertRejected(line, strlen(line), why);
    free(line);
}

static void assertAcceptedWith(const char *extra, traceEvent *out) {
    char *line = lineWith(extra, NULL);
    char err[256] = "";
    if (traceEventFromJson(line, strlen(line), out, err, sizeof err) != 0)
        fail_msg("rejected (%s): %s", err, line);
    free(line);
}

static void assertEventsEqual(const traceEvent *a, const traceEvent *b) {
    assert_int_equal(a->node, b->node);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->wall_us, b->wall_us);
    assert_int_equal(a->lamport, b->lamport);
    assert_int_equal(vclockCompare(&a->vc, &b->vc), VCLOCK_EQUAL);
    assert_string_equal(a->kind, b->kind);
#define SAME_STRING(f)                                                                             \
    do {                                                                                           \
        if (!a->f || !b->f)                                                                        \
            assert_true(a->f == b->f);                                                             \
        else                                                                                       \
            assert_string_equal(a->f, b->f);                                                       \
    } while (0)
    SAME_STRING(key);
    SAME_STRING(detail);
    SAME_STRING(msg);
#undef SAME_STRING
}

/* ---- Histories driven through real node clocks ------------------------ */

typedef struct sentMsg {
    char id[32];
    uint64_t lamport;
    vclock vc;
} sentMsg;

/* A growing history: one nodeClock per node, each event stamped with its
 * node's clocks after the tick or receive the event stands for. */
typedef struct history {
    uint32_t ids[8];
    nodeClock clocks[8];
    uint64_t seq[8];
    size_t nnodes;
    traceEvent *ev;
    size_t n, cap;
    sentMsg *sent;
    size_t nsent, sent_cap;
    uint64_t wall_us;
} history;

static void historyInit(history *h, const uint32_t *ids, size_t nnodes) {
    memset(h, 0, sizeof *h);
    h->nnodes = nnodes;
    for (size_t i = 0; i < nnodes; i++) {
        h->ids[i] = ids[i];
        nodeClockInit(&h->clocks[i], ids[i]);
    }
}

static void historyFree(history *h) {
    for (size_t i = 0; i < h->nnodes; i++) nodeClockFree(&h->clocks[i]);
    traceBatchFree(h->ev, h->n);
    for (size_t i = 0; i < h->nsent; i++) vclockFree(&h->sent[i].vc);
    free(h->sent);
}

static size_t slotOf(const history *h, uint32_t node) {
    for (size_t i = 0; i < h->nnodes; i++) {
        if (h->ids[i] == node) return i;
    }
    fail_msg("no node %" PRIu32, node);
    return 0;
}

static const sentMsg *findSent(const history *h, const char *id) {
    for (size_t i = 0; i < h->nsent; i++) {
        if (strcmp(h->sent[i].id, id) == 0) return &h->sent[i];
    }
    fail_msg("message %s was never sent", id);
    return NULL;
}

/* Records one event of node; a REPL_RECV merges the clocks its msg was
 * sent with, any other event with a msg sends them (a REPL_SEND, or a
 * write that carries its own clock to the replicas). */
static traceEvent *historyStep(history *h, uint32_t node, traceKind kind, const char *key,
                               const char *detail, const char *msg, uint64_t wall_us) {
    size_t s = slotOf(h, node);
    nodeClock *c = &h->clocks[s];
    if (kind == TRACE_KIND_REPL_RECV) {
        const sentMsg *m = findSent(h, msg);
        nodeClockReceive(c, m->lamport, &m->vc);
    } else {
        nodeClockTick(c);
    }
    if (msg && kind != TRACE_KIND_REPL_RECV) {
        if (h->nsent == h->sent_cap) {
            h->sent_cap = h->sent_cap ? h->sent_cap * 2 : 16;
            h->sent = xrealloc(h->sent, h->sent_cap * sizeof *h->sent);
        }
        sentMsg *m = &h->sent[h->nsent++];
        snprintf(m->id, sizeof m->id, "%s", msg);
        m->lamport = c->lamport;
        vclockInit(&m->vc);
        vclockCopy(&m->vc, &c->vc);
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->ev = xrealloc(h->ev, h->cap * sizeof *h->ev);
    }
    traceEvent *e = &h->ev[h->n++];
    traceEventInit(e);
    e->node = node;
    e->seq = ++h->seq[s];
    e->wall_us = wall_us;
    e->lamport = c->lamport;
    vclockCopy(&e->vc, &c->vc);
    traceEventSetKind(e, kind);
    e->key = key ? xstrdup(key) : NULL;
    e->detail = detail ? xstrdup(detail) : NULL;
    e->msg = msg ? xstrdup(msg) : NULL;
    return e;
}

/* The scripted history the ordering tests know by heart. Node 1 writes
 * red and replicates it to 2 and 3; node 2 writes blue before hearing of
 * red and replicates blue to 1 only; then 1 writes green and 3 black.
 * Physical clocks are skewed, so physical order is not causal order.
 *
 *   event  clock           L   wall
 *   n1#1   {1:1}           1   1300  PUT color red
 *   n2#1   {2:1}           1   1100  PUT color blue
 *   n1#2   {1:2}           2   1500  REPL_SEND color red   msg 1:2
 *   n3#1   {3:1}           1   1000  GET color
 *   n2#2   {1:2,2:2}       3   1600  REPL_RECV color red   msg 1:2
 *   n2#3   {1:2,2:3}       4   1700  REPL_SEND color blue  msg 2:3
 *   n3#2   {1:2,3:2}       3   1550  REPL_RECV color red   msg 1:2
 *   n3#3   {1:2,3:3}       4   1700  PUT size 10
 *   n1#3   {1:3,2:3}       5   2100  REPL_RECV color blue  msg 2:3
 *   n1#4   {1:4,2:3}       6   2200  PUT color green
 *   n3#4   {1:2,3:4}       5   1900  PUT color black */
static void scriptedHistory(history *h) {
    static const uint32_t ids[] = {1, 2, 3};
    historyInit(h, ids, 3);
    historyStep(h, 1, TRACE_KIND_PUT, "color", "red", NULL, 1300);
    historyStep(h, 2, TRACE_KIND_PUT, "color", "blue", NULL, 1100);
    historyStep(h, 1, TRACE_KIND_REPL_SEND, "color", "red", "1:2", 1500);
    historyStep(h, 3, TRACE_KIND_GET, "color", NULL, NULL, 1000);
    historyStep(h, 2, TRACE_KIND_REPL_RECV, "color", "red", "1:2", 1600);
    historyStep(h, 2, TRACE_KIND_REPL_SEND, "color", "blue", "2:3", 1700);
    historyStep(h, 3, TRACE_KIND_REPL_RECV, "color", "red", "1:2", 1550);
    historyStep(h, 3, TRACE_KIND_PUT, "size", "10", NULL, 1700);
    historyStep(h, 1, TRACE_KIND_REPL_RECV, "color", "blue", "2:3", 2100);
    historyStep(h, 1, TRACE_KIND_PUT, "color", "green", NULL, 2200);
    historyStep(h, 3, TRACE_KIND_PUT, "color", "black", NULL, 1900);
}

/* Pointers to the events of h, leaving out node/seq pairs listed in drop
 * (pairs of numbers, terminated by 0). */
static size_t pointersWithout(const history *h, const uint64_t *drop, const traceEvent **out) {
    size_t m = 0;
    for (size_t i = 0; i < h->n; i++) {
        bool skip = false;
        for (const uint64_t *d = drop; d && d[0]; d += 2) {
            if (h->ev[i].node == d[0] && h->ev[i].seq == d[1]) skip = true;
        }
        if (!skip) out[m++] = &h->ev[i];
    }
    return m;
}

/* "n1#2 n3#1 ..." for events in the given order. */
static char *namesInOrder(const traceEvent *const *ev, const size_t *order, size_t n) {
    buf b;
    bufInit(&b);
    for (size_t k = 0; k < n; k++) {
        const traceEvent *e = ev[order ? order[k] : k];
        bufPrintf(&b, "%sn%" PRIu32 "#%" PRIu64, k ? " " : "", e->node, e->seq);
    }
    bufAppendChar(&b, '\0');
    return b.data;
}

/* "n1#1 n2#1 | n1#2 | ..." */
static char *layerNames(const traceEvent *const *ev, const traceLayers *l) {
    buf b;
    bufInit(&b);
    for (size_t L = 1; L <= l->nlayers; L++) {
        if (L > 1) bufAppendStr(&b, " | ");
        for (size_t m = l->start[L - 1]; m < l->start[L]; m++) {
            const traceEvent *e = ev[l->members[m]];
            bufPrintf(&b, "%sn%" PRIu32 "#%" PRIu64, m > l->start[L - 1] ? " " : "", e->node,
                      e->seq);
        }
    }
    bufAppendChar(&b, '\0');
    return b.data;
}

static char *pairNames(const traceEvent *const *ev, const traceConcurrent *c) {
    buf b;
    bufInit(&b);
    for (size_t k = 0; k < c->npairs; k++) {
        const traceEvent *x = ev[c->pairs[k].a], *y = ev[c->pairs[k].b];
        bufPrintf(&b, "%sn%" PRIu32 "#%" PRIu64 "||n%" PRIu32 "#%" PRIu64, k ? " " : "", x->node,
                  x->seq, y->node, y->seq);
    }
    bufAppendChar(&b, '\0');
    return b.data;
}

/* A random history: nnodes nodes with sparse ids exchange replication
 * messages (some broadcast), write a few keys, read, and now and then
 * tick without logging (so own counters and seq numbers part ways). */
static void randomHistory(history *h, uint64_t seed, size_t nnodes, size_t nevents,
                          bool silent_ticks) {
    static const uint32_t ids[] = {3, 7, 8, 20, 41, 1000};
    static const char *const keys[] = {"a", "b", "c"};
    historyInit(h, ids, nnodes);
    rng r;
    rngSeed(&r, seed);
    /* In-flight messages: (destination slot, message id). */
    struct inflight {
        size_t to;
        char id[32];
    } *q = NULL;
    size_t nq = 0, qcap = 0;
    while (h->n < nevents) {
        size_t s = rngBelow(&r, nnodes);
        uint32_t node = h->ids[s];
        h->wall_us += 1 + rngBelow(&r, 50);
        uint64_t wall = h->wall_us + rngBelow(&r, 400); /* skewed physical clocks */
        size_t mine = 0;
        for (size_t k = 0; k < nq; k++) mine += q[k].to == s;
        if (mine && rngBelow(&r, 2) == 0) {
            size_t pick = rngBelow(&r, mine);
            for (size_t k = 0; k < nq; k++) {
                if (q[k].to != s || pick--) continue;
                historyStep(h, node, TRACE_KIND_REPL_RECV, keys[0], NULL, q[k].id, wall);
                q[k] = q[--nq];
                break;
            }
            continue;
        }
        uint64_t dice = rngBelow(&r, 100);
        char id[32];
        snprintf(id, sizeof id, "%" PRIu32 ":%" PRIu64, node, h->seq[s] + 1);
        if (dice < 45) {
            static const traceKind writes[] = {TRACE_KIND_PUT, TRACE_KIND_DEL, TRACE_KIND_INCR,
                                               TRACE_KIND_APPLY_LOCAL};
            /* Some writes travel with their own clock, so a receiver's
             * clock can end exactly at a write of the sender. */
            bool sends = rngBelow(&r, 4) == 0;
            historyStep(h, node, writes[rngBelow(&r, 4)], keys[rngBelow(&r, 3)], "v",
                        sends ? id : NULL, wall);
            if (sends) {
                size_t to = (s + 1 + rngBelow(&r, nnodes - 1)) % nnodes;
                if (nq == qcap) {
                    qcap = qcap ? qcap * 2 : 16;
                    q = xrealloc(q, qcap * sizeof *q);
                }
                q[nq].to = to;
                snprintf(q[nq].id, sizeof q[nq].id, "%s", id);
                nq++;
            }
        } else if (dice < 70) {
            historyStep(h, node, TRACE_KIND_REPL_SEND, keys[0], NULL, id, wall);
            bool broadcast = rngBelow(&r, 3) == 0;
            size_t one = (s + 1 + rngBelow(&r, nnodes - 1)) % nnodes;
            for (size_t t = 0; t < nnodes; t++) {
                if (t == s || (!broadcast && t != one)) continue;
                if (nq == qcap) {
                    qcap = qcap ? qcap * 2 : 16;
                    q = xrealloc(q, qcap * sizeof *q);
                }
                q[nq].to = t;
                snprintf(q[nq].id, sizeof q[nq].id, "%s", id);
                nq++;
            }
        } else if (dice < 85 || !silent_ticks) {
            historyStep(h, node, TRACE_KIND_GET, keys[rngBelow(&r, 3)], NULL, NULL, wall);
        } else {
            nodeClockTick(&h->clocks[s]); /* an event the node did not log */
        }
    }
    free(q);
}

/* A window of h: each node's first few events gone, and a few dropped in
 * the middle, as a full queue or the history ring would. */
static size_t randomWindow(const history *h, uint64_t seed, const traceEvent **out) {
    rng r;
    rngSeed(&r, seed ^ 0x5eed);
    uint64_t skip[8];
    for (size_t i = 0; i < h->nnodes; i++) skip[i] = rngBelow(&r, 6);
    size_t m = 0;
    for (size_t i = 0; i < h->n; i++) {
        const traceEvent *e = &h->ev[i];
        if (e->seq <= skip[slotOf(h, e->node)] || rngBelow(&r, 20) == 0) continue;
        out[m++] = e;
    }
    return m;
}

static void shuffle(const traceEvent **ev, size_t n, rng *r) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rngBelow(r, i);
        const traceEvent *t = ev[i - 1];
        ev[i - 1] = ev[j];
        ev[j] = t;
    }
}

/* ---- JSON form -------------------------------------------------------- */

static void test_to_json_writes_the_wire_form_and_omits_null_strings(void **state) {
    (void)state;
    traceEvent e;
    traceEventInit(&e);
    e.node = 1;
    e.seq = 5;
    e.wall_us = 1732430000123456ull;
    e.lamport = 7;
    vclockSet(&e.vc, 1, 3);
    vclockSet(&e.vc, 2, 1);
    traceEventSetKind(&e, TRACE_KIND_PUT);
    e.key = xstrdup("color");
    e.detail = xstrdup("red");
    e.msg = xstrdup("1:17");
    buf b;
    bufInit(&b);
    traceEventToJson(&e, &b);
    assertBufIs(&b, "{\"node\":1,\"seq\":5,\"ts_us\":1732430000123456,\"lamport\":7,"
                    "\"vc\":{\"1\":3,\"2\":1},\"kind\":\"PUT\",\"key\":\"color\","
                    "\"detail\":\"red\",\"msg\":\"1:17\"}\n");
    free(e.detail);
    free(e.msg);
    e.detail = e.msg = NULL;
    bufClear(&b);
    traceEventToJson(&e, &b);
    assertBufIs(&b, "{\"node\":1,\"seq\":5,\"ts_us\":1732430000123456,\"lamport\":7,"
                    "\"vc\":{\"1\":3,\"2\":1},\"kind\":\"PUT\",\"key\":\"color\"}\n");
    bufFree(&b);
    traceEventFree(&e);
}

static void test_to_json_escapes_quotes_backslashes_and_control_characters(void **state) {
    (void)state;
    traceEvent e;
    traceEventInit(&e);
    e.node = 2;
    e.seq = 1;
    vclockSet(&e.vc, 2, 1);
    traceEventSetKind(&e, TRACE_KIND_DEL);
    e.key = xstrdup("a\"b\\c\nd\te\r\x01\x1f\b\f");
    buf b;
    bufInit(&b);
    traceEventToJson(&e, &b);
    assertBufIs(&b, "{\"node\":2,\"seq\":1,\"ts_us\":0,\"lamport\":0,\"vc\":{\"2\":1},"
                    "\"kind\":\"DEL\",\"key\":\"a\\\"b\\\\c\\nd\\te\\r\\u0001\\u001f\\b\\f\"}\n");
    bufFree(&b);
    traceEventFree(&e);
}

static void test_json_round_trip_keeps_escapes_and_utf8(void **state) {
    (void)state;
    traceEvent e, back;
    traceEventInit(&e);
    traceEventInit(&back);
    e.node = UINT32_MAX;
    e.seq = TRACE_JSON_MAX_INTEGER;
    e.wall_us = 1732430000123456ull;
    e.lamport = 42;
    vclockSet(&e.vc, 3, 9);
    vclockSet(&e.vc, UINT32_MAX, 4);
    traceEventSetKind(&e, TRACE_KIND_REPL_RECV);
    e.key = xstrdup("k\"ey\\ with \x7f and \x01 and \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    e.detail = xstrdup("line1\nline2\ttab \"quoted\" </script>");
    e.msg = xstrdup("4294967295:17");
    buf b;
    bufInit(&b);
    traceEventToJson(&e, &b);
    assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
    assert_null(memchr(b.data, '\n', b.len - 1)); /* one line */
    char err[256] = "";
    if (traceEventFromJson(b.data, b.len - 1, &back, err, sizeof err) != 0) fail_msg("%s", err);
    assertEventsEqual(&e, &back);
    bufFree(&b);
    traceEventFree(&e);
    traceEventFree(&back);
}

static void test_to_json_replaces_invalid_utf8_with_replacement_character(void **state) {
    (void)state;
    traceEvent e, back;
    traceEventInit(&e);
    traceEventInit(&back);
    e.node = 1;
    e.seq = 1;
    vclockSet(&e.vc, 1, 1);
    traceEventSetKind(&e, TRACE_KIND_PUT);
    /* A stray continuation byte, an overlong '/', a surrogate, a cut
     * sequence at the end. */
    e.key = xstrdup("a\x80"
                    "b\xc0\xaf"
                    "c\xed\xa0\x80"
                    "d\xe2\x82");
    buf b;
    bufInit(&b);
    traceEventToJson(&e, &b);
    char *text = bufString(&b);
    assert_non_null(strstr(text, "\"key\":\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd"
                                 "\\ufffd\\ufffd\""));
    free(text);
    assert_int_equal(traceEventFromJson(b.data, b.len - 1, &back, NULL, 0), 0);
    assert_string_equal(back.key, "a\xef\xbf\xbd"
                                  "b\xef\xbf\xbd\xef\xbf\xbd"
                                  "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                  "d\xef\xbf\xbd\xef\xbf\xbd");
    bufFree(&b);
    traceEventFree(&e);
    traceEventFree(&back);
}

static void test_to_json_cuts_long_strings_at_a_character_boundary_so_they_decode(void **state) {
    (void)state;
    traceEvent e, back;
    traceEventInit(&e);
    traceEventInit(&back);
    e.node = 1;
    e.seq = 1;
    vclockSet(&e.vc, 1, 1);
    traceEventSetKind(&e, TRACE_KIND_PUT);
    /* 511 ASCII bytes then a 2-byte character: it would end at 513. */
    char key[TRACE_KEY_MAX_BYTES + 8];
    memset(key, 'k', TRACE_KEY_MAX_BYTES - 1);
    memcpy(key + TRACE_KEY_MAX_BYTES - 1, "\xc3\xa9zz", 5);
    e.key = xstrdup(key);
    char *detail = xmalloc(3 * TRACE_DETAIL_MAX_BYTES + 1);
    memset(detail, '"', 3 * TRACE_DETAIL_MAX_BYTES); /* escapes double each byte */
    detail[3 * TRACE_DETAIL_MAX_BYTES] = '\0';
    e.detail = detail;
    e.msg = xstrdup("0123456789012345678901234567890123456789012345678901234567890123456789");
    buf b;
    bufInit(&b);
    traceEventToJson(&e, &b);
    char err[256] = "";
    if (traceEventFromJson(b.data, b.len - 1, &back, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(strlen(back.key), TRACE_KEY_MAX_BYTES - 1);
    assert_int_equal(strlen(back.detail), TRACE_DETAIL_MAX_BYTES);
    assert_int_equal(strlen(back.msg), TRACE_MSG_MAX_BYTES);
    assert_memory_equal(back.msg, e.msg, TRACE_MSG_MAX_BYTES);
    bufFree(&b);
    traceEventFree(&e);
    traceEventFree(&back);
}

static void test_decode_ignores_unknown_fields_and_accepts_limits(void **state) {
    (void)state;
    traceEvent e;
    traceEventInit(&e);
    assertAcceptedWith("\"future\":{\"nested\":[1,2,3]}", &e);
    assert_int_equal(e.node, 1);
    assert_int_equal(e.seq, 5);
    assert_int_equal(e.wall_us, 1000);
    assert_int_equal(e.lamport, 7);
    assert_int_equal(vclockGet(&e.vc, 1), 3);
    assert_string_equal(e.kind, "PUT");
    assert_string_equal(e.key, "color");
    assert_null(e.detail);
    assert_null(e.msg);
    /* Boundaries that must pass. */
    assertAcceptedWith("\"node\":4294967295,\"vc\":{\"4294967295\":9007199254740991}", &e);
    assert_int_equal(e.node, UINT32_MAX);
    assert_int_equal(vclockGet(&e.vc, UINT32_MAX), TRACE_JSON_MAX_INTEGER);
    assertAcceptedWith("\"lamport\":9007199254740991,\"ts_us\":0,\"seq\":1e3", &e);
    assert_int_equal(e.lamport, TRACE_JSON_MAX_INTEGER);
    assert_int_equal(e.seq, 1000);
    traceEventFree(&e);
}

static void test_decode_replaces_previous_contents_of_out(void **state) {
    (void)state;
    traceEvent e;
    traceEventInit(&e);
    assertAcceptedWith("\"detail\":\"first\",\"msg\":\"m\"", &e);
    assertAcceptedWith(NULL, &e); /* no detail, no msg: they must not linger */
    assert_null(e.detail);
    assert_null(e.msg);
    traceEventFree(&e);
}

/* ---- Decoder rules, one test each ------------------------------------- */

static void test_decode_rejects_line_longer_than_limit(void **state) {
    (void)state;
    size_t len = TRACE_LINE_MAX_BYTES + 1;
    char *line = xmalloc(len);
    const char *head = "{\"node\":1,\"seq\":1,\"ts_us\":0,\"lamport\":1,\"vc\":{\"1\":1},"
                       "\"kind\":\"PUT\",\"detail\":\"";
    memset(line, ' ', len);
    memcpy(line, head, strlen(head));
    memcpy(line + len - 2, "\"}", 2);
    assertRejected(line, len, "more than the 65536 allowed");
    free(line);
}

static void test_decode_rejects_nul_byte_in_line(void **state) {
    (void)state;
    char *line = lineWith(NULL, NULL);
    size_t len = strlen(line);
    char *copy = xmalloc(len + 4);
    memcpy(copy, line, len);
    memcpy(copy + len, "\0xx", 3); /* valid JSON, then a NUL and junk */
    assertRejected(copy, len + 3, "NUL");
    free(copy);
    free(line);
}

static void test_decode_rejects_escaped_nul_in_strings(void **state) {
    (void)state;
    assertRejectedWith("\"key\":\"ab\\u0000cd\"", NULL, "\\u0000");
    /* An escaped backslash followed by u0000 is just text. */
    traceEvent e;
    traceEventInit(&e);
    assertAcceptedWith("\"key\":\"ab\\\\u0000cd\"", &e);
    assert_string_equal(e.key, "ab\\u0000cd");
    traceEventFree(&e);
}

static void test_decode_rejects_text_that_is_not_one_json_object(void **state) {
    (void)state;
    assertRejected("", 0, "JSON");
    assertRejected("{\"node\":1", 9, "JSON");
    assertRejected("[1,2]", 5, "object");
    assertRejected("\"str\"", 5, "object");
    char *line = lineWith(NULL, NULL);
    char *two = xmalloc(2 * strlen(line) + 2);
    sprintf(two, "%s %s", line, line);
    assertRejected(two, strlen(two), "JSON");
    free(two);
    free(line);
}

static void test_decode_rejects_each_missing_required_field(void **state) {
    (void)state;
    static const char *const required[] = {"node", "seq", "ts_us", "lamport", "vc", "kind"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        char why[64];
        snprintf(why, sizeof why, "missing field \"%s\"", required[i]);
        assertRejectedWith(NULL, required[i], why);
    }
}

static void test_decode_rejects_repeated_field(void **state) {
    (void)state;
    char *line = lineWith(NULL, NULL);
    char *twice = xmalloc(strlen(line) + 16);
    sprintf(twice, "{\"seq\":6,%s", line + 1);
    assertRejected(twice, strlen(twice), "\"seq\" appears twice");
    free(twice);
    free(line);
}

static void test_decode_rejects_mistyped_fields(void **state) {
    (void)state;
    assertRejectedWith("\"node\":\"1\"", NULL, "\"node\"");
    assertRejectedWith("\"seq\":true", NULL, "\"seq\"");
    assertRejectedWith("\"ts_us\":null", NULL, "\"ts_us\"");
    assertRejectedWith("\"lamport\":[7]", NULL, "\"lamport\"");
    assertRejectedWith("\"vc\":[3]", NULL, "\"vc\" must be an object");
    assertRejectedWith("\"kind\":5", NULL, "\"kind\"");
    assertRejectedWith("\"key\":5", NULL, "\"key\" must be a string");
    assertRejectedWith("\"detail\":{}", NULL, "\"detail\" must be a string");
    assertRejectedWith("\"msg\":null", NULL, "\"msg\" must be a string");
}

static void test_decode_rejects_node_outside_uint32_range(void **state) {
    (void)state;
    assertRejectedWith("\"node\":0", NULL, "\"node\"");
    assertRejectedWith("\"node\":4294967296,\"vc\":{\"1\":3}", NULL, "\"node\"");
}

static void test_decode_rejects_seq_zero(void **state) {
    (void)state;
    assertRejectedWith("\"seq\":0", NULL, "\"seq\" must be an integer 1..");
}

static void test_decode_rejects_negative_integers(void **state) {
    (void)state;
    assertRejectedWith("\"ts_us\":-1", NULL, "\"ts_us\"");
    assertRejectedWith("\"lamport\":-7", NULL, "\"lamport\"");
}

static void test_decode_rejects_fractional_integers(void **state) {
    (void)state;
    assertRejectedWith("\"seq\":5.5", NULL, "\"seq\"");
    assertRejectedWith("\"ts_us\":1000.25", NULL, "\"ts_us\"");
    assertRejectedWith("\"vc\":{\"1\":2.5}", NULL, "vc entry \"1\"");
}

static void test_decode_rejects_integers_above_2_to_the_53(void **state) {
    (void)state;
    assertRejectedWith("\"lamport\":9007199254740992", NULL, "\"lamport\"");
    assertRejectedWith("\"ts_us\":1e300", NULL, "\"ts_us\"");
    assertRejectedWith("\"seq\":18446744073709551616", NULL, "\"seq\"");
    assertRejectedWith("\"vc\":{\"1\":9007199254740993}", NULL, "vc entry");
}

static void test_decode_rejects_vc_keys_that_are_not_node_ids(void **state) {
    (void)state;
    static const char *const bad[] = {"x", "01", "-1", "+1", "1.0", "0", "4294967296", "", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "\"vc\":{\"1\":3,\"%s\":1}", bad[i]);
        assertRejectedWith(extra, NULL, "is not a node id");
    }
}

static void test_decode_rejects_repeated_vc_key(void **state) {
    (void)state;
    assertRejectedWith("\"vc\":{\"1\":3,\"2\":1,\"1\":4}", NULL, "vc key \"1\" appears twice");
}

static void test_decode_rejects_vc_counters_that_are_not_positive_integers(void **state) {
    (void)state;
    assertRejectedWith("\"vc\":{\"1\":3,\"2\":0}", NULL, "vc entry \"2\"");
    assertRejectedWith("\"vc\":{\"1\":3,\"2\":\"1\"}", NULL, "vc entry \"2\"");
    assertRejectedWith("\"vc\":{\"1\":3,\"2\":-1}", NULL, "vc entry \"2\"");
}

static void test_decode_rejects_vc_without_own_node(void **state) {
    (void)state;
    assertRejectedWith("\"vc\":{\"2\":3}", NULL, "no entry for the event's own node 1");
    assertRejectedWith("\"vc\":{}", NULL, "own node");
}

static void test_decode_rejects_vc_with_more_than_max_entries(void **state) {
    (void)state;
    for (int count = VCLOCK_MAX_ENTRIES; count <= VCLOCK_MAX_ENTRIES + 1; count++) {
        buf b;
        bufInit(&b);
        bufAppendStr(&b, "\"vc\":{");
        for (int i = 1; i <= count; i++) bufPrintf(&b, "%s\"%d\":1", i > 1 ? "," : "", i);
        bufAppendChar(&b, '}');
        bufAppendChar(&b, '\0');
        if (count == VCLOCK_MAX_ENTRIES) {
            traceEvent e;
            traceEventInit(&e);
            assertAcceptedWith(b.data, &e);
            assert_int_equal(e.vc.n, VCLOCK_MAX_ENTRIES);
            traceEventFree(&e);
        } else {
            assertRejectedWith(b.data, NULL, "more than 4096 entries");
        }
        bufFree(&b);
    }
}

static void test_decode_rejects_unknown_kind(void **state) {
    (void)state;
    assertRejectedWith("\"kind\":\"put\"", NULL, "\"kind\" must be one of");
    assertRejectedWith("\"kind\":\"\"", NULL, "\"kind\"");
    assertRejectedWith("\"kind\":\"PUT_SOMETHING_VERY_LONG_INDEED\"", NULL, "\"kind\"");
}

/* A string field of exactly len bytes ("x" repeated). */
static char *stringField(const char *name, size_t len) {
    char *s = xmalloc(len + 32);
    int n = sprintf(s, "\"%s\":\"", name);
    memset(s + n, 'x', len);
    strcpy(s + n + len, "\"");
    return s;
}

static void checkStringLimit(const char *name, size_t max) {
    traceEvent e;
    traceEventInit(&e);
    char *ok = stringField(name, max), *bad = stringField(name, max + 1);
    assertAcceptedWith(ok, &e);
    char why[64];
    snprintf(why, sizeof why, "\"%s\" is %zu bytes", name, max + 1);
    assertRejectedWith(bad, NULL, why);
    free(ok);
    free(bad);
    traceEventFree(&e);
}

static void test_decode_rejects_key_over_512_bytes(void **state) {
    (void)state;
    checkStringLimit("key", TRACE_KEY_MAX_BYTES);
}

static void test_decode_rejects_detail_over_4096_bytes(void **state) {
    (void)state;
    checkStringLimit("detail", TRACE_DETAIL_MAX_BYTES);
}

static void test_decode_rejects_msg_over_64_bytes(void **state) {
    (void)state;
    checkStringLimit("msg", TRACE_MSG_MAX_BYTES);
}

static void test_decode_counts_string_limits_in_decoded_bytes(void **state) {
    (void)state;
    /* 512 escaped quotes: 1024 bytes of JSON, 512 bytes of key. */
    buf b;
    bufInit(&b);
    bufAppendStr(&b, "\"key\":\"");
    for (int i = 0; i < TRACE_KEY_MAX_BYTES; i++) bufAppendStr(&b, "\\\"");
    bufAppendStr(&b, "\"");
    bufAppendChar(&b, '\0');
    traceEvent e;
    traceEventInit(&e);
    assertAcceptedWith(b.data, &e);
    assert_int_equal(strlen(e.key), TRACE_KEY_MAX_BYTES);
    traceEventFree(&e);
    bufFree(&b);
}

static void test_decode_rejects_strings_that_are_not_utf8(void **state) {
    (void)state;
    assertRejectedWith("\"key\":\"a\x80z\"", NULL, "\"key\" is not valid UTF-8");
    assertRejectedWith("\"detail\":\"\xc0\xaf\"", NULL, "\"detail\" is not valid UTF-8");
    assertRejectedWith("\"msg\":\"\xed\xa0\x80\"", NULL, "\"msg\" is not valid UTF-8");
}

/* ---- Batches ---------------------------------------------------------- */

static void test_batch_decodes_lines_skipping_blank_ones_and_crlf(void **state) {
    (void)state;
    char *a = lineWith("\"seq\":1", NULL), *b = lineWith("\"seq\":2", NULL);
    buf in;
    bufInit(&in);
    bufPrintf(&in, "%s\r\n\n  \r\n%s", a, b); /* no final newline */
    traceEvent *ev;
    size_t n;
    char err[256] = "";
    if (traceBatchDecode(in.data, in.len, &ev, &n, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].seq, 1);
    assert_int_equal(ev[1].seq, 2);
    traceBatchFree(ev, n);
    assert_int_equal(traceBatchDecode("\n\n", 2, &ev, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(ev);
    bufFree(&in);
    free(a);
    free(b);
}

static void test_batch_with_one_bad_line_is_rejected_whole_naming_the_line(void **state) {
    (void)state;
    char *good = lineWith(NULL, NULL), *bad = lineWith("\"seq\":0", NULL);
    buf in;
    bufInit(&in);
    bufPrintf(&in, "%s\n\n%s\n%s\n", good, good, bad); /* the bad one is line 4 */
    traceEvent *ev = (traceEvent *)&in;                /* must come back NULL */
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(traceBatchDecode(in.data, in.len, &ev, &n, err, sizeof err), -1);
    assert_null(ev);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "line 4: "));
    assert_non_null(strstr(err, "\"seq\""));
    bufFree(&in);
    free(good);
    free(bad);
}

static void test_batch_rejects_more_than_max_events(void **state) {
    (void)state;
    char *line = lineWith(NULL, NULL);
    size_t len = strlen(line);
    buf in;
    bufInit(&in);
    for (int i = 0; i < TRACE_BATCH_MAX_EVENTS + 1; i++) {
        bufAppend(&in, line, len);
        bufAppendChar(&in, '\n');
    }
    traceEvent *ev;
    size_t n;
    char err[256] = "";
    assert_int_equal(traceBatchDecode(in.data, in.len, &ev, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 100000 events"));
    /* Exactly the maximum is fine. */
    assert_int_equal(traceBatchDecode(in.data, in.len - len - 1, &ev, &n, err, sizeof err), 0);
    assert_int_equal(n, TRACE_BATCH_MAX_EVENTS);
    traceBatchFree(ev, n);
    bufFree(&in);
    free(line);
}

/* ---- History ---------------------------------------------------------- */

static traceEvent simpleEvent(uint32_t node, uint64_t seq, uint64_t wall_us, const char *key) {
    traceEvent e;
    traceEventInit(&e);
    e.node = node;
    e.seq = seq;
    e.wall_us = wall_us;
    e.lamport = seq;
    vclockSet(&e.vc, node, seq);
    traceEventSetKind(&e, TRACE_KIND_PUT);
    e.key = key ? xstrdup(key) : NULL;
    return e;
}

static int addSimple(traceHistory *h, uint32_t node, uint64_t seq) {
    traceEvent e = simpleEvent(node, seq, seq, NULL);
    int rc = traceHistoryAdd(h, &e);
    traceEventFree(&e);
    return rc;
}

static void test_history_keeps_most_recent_events_and_counts_dropped(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(3);
    for (uint64_t s = 1; s <= 5; s++) assert_int_equal(addSimple(h, 1, s), TRACE_OK);
    assert_int_equal(traceHistoryCount(h), 3);
    for (size_t i = 0; i < 3; i++) assert_int_equal(traceHistoryAt(h, i)->seq, 3 + i);
    traceHistoryStats st;
    traceHistoryGetStats(h, &st);
    assert_int_equal(st.added, 5);
    assert_int_equal(st.dropped, 2);
    traceHistoryFree(h);
}

static void test_history_add_takes_the_event_contents(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(10);
    traceEvent e = simpleEvent(4, 1, 10, "k");
    char *key = e.key;
    assert_int_equal(traceHistoryAdd(h, &e), TRACE_OK);
    assert_null(e.key);
    assert_int_equal(e.vc.n, 0);
    assert_ptr_equal(traceHistoryAt(h, 0)->key, key);
    /* A rejected event stays the caller's. */
    traceEvent dup = simpleEvent(4, 1, 10, "k");
    assert_int_equal(traceHistoryAdd(h, &dup), TRACE_ERR_DUPLICATE);
    assert_string_equal(dup.key, "k");
    traceEventFree(&dup);
    traceHistoryFree(h);
}

static void test_history_rejects_duplicates_even_after_they_left_the_ring(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(2);
    for (uint64_t s = 1; s <= 4; s++) assert_int_equal(addSimple(h, 9, s), TRACE_OK);
    assert_int_equal(addSimple(h, 9, 4), TRACE_ERR_DUPLICATE); /* in the ring */
    assert_int_equal(addSimple(h, 9, 1), TRACE_ERR_DUPLICATE); /* long gone */
    assert_int_equal(addSimple(h, 8, 1), TRACE_OK);            /* other node */
    traceHistoryStats st;
    traceHistoryGetStats(h, &st);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.added, 5);
    assert_int_equal(traceHistoryAt(h, 1)->node, 8);
    traceHistoryFree(h);
}

static void test_history_accepts_out_of_order_arrival_and_fills_gaps(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(100);
    /* Node 2's batch arrives before node 1's; node 1's events come out of
     * order and with gaps that later fill. */
    static const uint64_t seqs2[] = {1, 2, 3};
    static const uint64_t seqs1[] = {5, 1, 3, 2, 7, 4, 6, 10};
    for (size_t i = 0; i < 3; i++) assert_int_equal(addSimple(h, 2, seqs2[i]), TRACE_OK);
    for (size_t i = 0; i < 8; i++) assert_int_equal(addSimple(h, 1, seqs1[i]), TRACE_OK);
    for (uint64_t s = 1; s <= 7; s++) assert_int_equal(addSimple(h, 1, s), TRACE_ERR_DUPLICATE);
    assert_int_equal(addSimple(h, 1, 10), TRACE_ERR_DUPLICATE);
    assert_int_equal(addSimple(h, 1, 9), TRACE_OK);
    assert_int_equal(addSimple(h, 1, 8), TRACE_OK);
    assert_int_equal(traceHistoryCount(h), 13);
    traceHistoryFree(h);
}

static void test_history_forgets_the_oldest_gap_past_the_cap(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(10);
    /* Odd seqs only: every one leaves a gap. */
    for (uint64_t s = 1; s <= 2 * TRACE_HISTORY_MAX_GAPS + 3; s += 2) {
        assert_int_equal(addSimple(h, 1, s), TRACE_OK);
    }
    /* Now one gap too many has been made; the oldest (seq 2) is taken as
     * seen, later ones still accept their straggler. */
    assert_int_equal(addSimple(h, 1, 2), TRACE_ERR_DUPLICATE);
    assert_int_equal(addSimple(h, 1, 4), TRACE_OK);
    assert_int_equal(addSimple(h, 1, 2 * TRACE_HISTORY_MAX_GAPS + 2), TRACE_OK);
    traceHistoryFree(h);
}

static void test_history_rejects_node_or_seq_zero(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(4);
    /* Node 0 cannot be in a vector clock, so that event is made from a
     * valid one with its node cleared afterwards. */
    traceEvent z = simpleEvent(1, 1, 1, NULL);
    z.node = 0;
    assert_int_equal(traceHistoryAdd(h, &z), TRACE_ERR_INVALID);
    traceEventFree(&z);
    traceEvent e = simpleEvent(1, 1, 1, NULL);
    e.seq = 0;
    assert_int_equal(traceHistoryAdd(h, &e), TRACE_ERR_INVALID);
    traceEventFree(&e);
    traceHistoryStats st;
    traceHistoryGetStats(h, &st);
    assert_int_equal(st.invalid, 2);
    assert_int_equal(traceHistoryCount(h), 0);
    traceHistoryFree(h);
}

static void test_history_select_filters_by_key_and_last_n_in_physical_order(void **state) {
    (void)state;
    traceHistory *h = traceHistoryCreate(100);
    /* Arrival order differs from physical order. */
    static const struct {
        uint32_t node;
        uint64_t seq, wall;
        const char *key;
    } in[] = {{1, 1, 50, "a"}, {1, 2, 60, "b"}, {2, 1, 10, "a"},
              {2, 2, 70, "a"}, {1, 3, 40, "a"}, {3, 1, 55, NULL}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        traceEvent e = simpleEvent(in[i].node, in[i].seq, in[i].wall, in[i].key);
        assert_int_equal(traceHistoryAdd(h, &e), TRACE_OK);
    }
    const traceEvent **sel;
    size_t n = traceHistorySelect(h, NULL, &sel);
    assert_int_equal(n, 6);
    free(sel);

    traceFilter by_key = {"a", 0};
    n = traceHistorySelect(h, &by_key, &sel);
    char *names = namesInOrder(sel, NULL, n);
    assert_string_equal(names, "n1#1 n2#1 n2#2 n1#3");
    free(names);
    free(sel);

    /* The two latest "a" by wall clock are n1#1 (50) and n2#2 (70), kept
     * in arrival order. */
    traceFilter key_last = {"a", 2};
    n = traceHistorySelect(h, &key_last, &sel);
    names = namesInOrder(sel, NULL, n);
    assert_string_equal(names, "n1#1 n2#2");
    free(names);
    free(sel);

    traceFilter last = {NULL, 3};
    n = traceHistorySelect(h, &last, &sel);
    names = namesInOrder(sel, NULL, n);
    assert_string_equal(names, "n1#2 n2#2 n3#1");
    free(names);
    free(sel);
    traceHistoryFree(h);
}

/* ---- Orderings on the scripted history -------------------------------- */

static void test_scripted_history_has_the_documented_clocks(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    static const char *const want[] = {
        "{1:1} L1",     "{2:1} L1",     "{1:2} L2",     "{3:1} L1",
        "{1:2,2:2} L3", "{1:2,2:3} L4", "{1:2,3:2} L3", "{1:2,3:3} L4",
        "{1:3,2:3} L5", "{1:4,2:3} L6", "{1:2,3:4} L5",
    };
    assert_int_equal(h.n, 11);
    for (size_t i = 0; i < h.n; i++) {
        buf b;
        bufInit(&b);
        vclockFormat(&h.ev[i].vc, &b);
        bufPrintf(&b, " L%" PRIu64, h.ev[i].lamport);
        bufAppendChar(&b, '\0');
        assert_string_equal(b.data, want[i]);
        bufFree(&b);
    }
    historyFree(&h);
}

static void test_physical_order_sorts_by_wall_clock_then_node_and_seq(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent **ev = traceEventPointers(h.ev, h.n);
    size_t *order = traceOrderPhysical(ev, h.n);
    char *names = namesInOrder(ev, order, h.n);
    /* n2#3 and n3#3 share 1700 us: node 2 first. */
    assert_string_equal(names, "n3#1 n2#1 n1#1 n1#2 n3#2 n2#2 n2#3 n3#3 n3#4 n1#3 n1#4");
    free(names);
    free(order);
    free(ev);
    historyFree(&h);
}

static void test_lamport_order_sorts_by_lamport_then_node(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent **ev = traceEventPointers(h.ev, h.n);
    size_t *order = traceOrderLamport(ev, h.n);
    char *names = namesInOrder(ev, order, h.n);
    assert_string_equal(names, "n1#1 n2#1 n3#1 n1#2 n2#2 n3#2 n2#3 n3#3 n1#3 n3#4 n1#4");
    free(names);
    free(order);
    free(ev);
    historyFree(&h);
}

static void test_layers_of_the_scripted_history(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent **ev = traceEventPointers(h.ev, h.n);
    traceLayers l;
    traceOrderLayers(ev, h.n, &l);
    char *names = layerNames(ev, &l);
    assert_string_equal(names, "n1#1 n2#1 n3#1 | n1#2 | n2#2 n3#2 | n2#3 n3#3 | n1#3 n3#4 | n1#4");
    assert_int_equal(l.nlayers, 6);
    assert_int_equal(l.layer[9], 6); /* n1#4 */
    free(names);
    traceLayersFree(&l);
    free(ev);
    historyFree(&h);
}

static void test_layers_of_a_window_count_missing_predecessors_as_layer_zero(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    static const uint64_t drop[] = {1, 1, 2, 1, 0};
    const traceEvent *ev[16];
    size_t n = pointersWithout(&h, drop, ev);
    traceLayers l;
    traceOrderLayers(ev, n, &l);
    char *names = layerNames(ev, &l);
    /* n1#2 lost its predecessor n1#1 and so moves up to layer 1, unlike
     * its Lamport time of 2. */
    assert_string_equal(names, "n1#2 n3#1 | n2#2 n3#2 | n2#3 n3#3 | n1#3 n3#4 | n1#4");
    free(names);
    traceLayersFree(&l);
    historyFree(&h);
}

static void test_layers_do_not_depend_on_input_order(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent *ev[16];
    for (size_t i = 0; i < h.n; i++) ev[i] = &h.ev[h.n - 1 - i];
    traceLayers l;
    traceOrderLayers(ev, h.n, &l);
    char *names = layerNames(ev, &l);
    assert_string_equal(names, "n1#1 n2#1 n3#1 | n1#2 | n2#2 n3#2 | n2#3 n3#3 | n1#3 n3#4 | n1#4");
    free(names);
    traceLayersFree(&l);
    historyFree(&h);
}

static void test_concurrent_writes_of_the_scripted_history(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent **ev = traceEventPointers(h.ev, h.n);
    traceConcurrent c;
    traceOrderConcurrentWrites(ev, h.n, 100, &c);
    char *names = pairNames(ev, &c);
    /* red || blue, green || black, blue || black; the replication events
     * and the GET are not writes, "size" has one writer. */
    assert_string_equal(names, "n1#1||n2#1 n1#4||n3#4 n2#1||n3#4");
    assert_int_equal(c.total, 3);
    free(names);
    traceConcurrentFree(&c);

    traceOrderConcurrentWrites(ev, h.n, 1, &c);
    assert_int_equal(c.npairs, 1);
    assert_int_equal(c.total, 3);
    traceConcurrentFree(&c);
    free(ev);
    historyFree(&h);
}

static void test_orderings_of_no_events_are_empty(void **state) {
    (void)state;
    traceLayers l;
    traceOrderLayers(NULL, 0, &l);
    assert_int_equal(l.nlayers, 0);
    assert_int_equal(l.start[0], 0);
    traceLayersFree(&l);
    traceConcurrent c;
    traceOrderConcurrentWrites(NULL, 0, 10, &c);
    assert_int_equal(c.total, 0);
    assert_int_equal(c.npairs, 0);
    traceConcurrentFree(&c);
    free(traceOrderPhysical(NULL, 0));
    free(traceOrderLamport(NULL, 0));
    buf b;
    bufInit(&b);
    traceRenderText(NULL, 0, TRACE_VIEW_ALL, &b);
    assertBufHasLine(&b, "concurrent writes: 0");
    bufClear(&b);
    traceRenderJson(NULL, 0, TRACE_VIEW_ALL, &b);
    assertBufIs(&b, "{\"order\":\"lamport\",\"count\":0,\"events\":[],\"layers\":[],"
                    "\"concurrent\":[],\"concurrent_total\":0}\n");
    bufFree(&b);
}

/* ---- Orderings on random histories ------------------------------------ */

/* Layers by definition: the longest chain of given events ending at each,
 * from pairwise comparisons, visiting in generation order (causal). */
static void referenceLayers(const traceEvent *const *ev, size_t n, size_t *layer) {
    for (size_t i = 0; i < n; i++) {
        layer[i] = 1;
        for (size_t j = 0; j < i; j++) {
            if (vclockCompare(&ev[j]->vc, &ev[i]->vc) == VCLOCK_BEFORE && layer[j] + 1 > layer[i])
                layer[i] = layer[j] + 1;
        }
    }
}

static int pairCompare(const void *pa, const void *pb) {
    const tracePair *a = pa, *b = pb;
    if (a->a != b->a) return a->a < b->a ? -1 : 1;
    return (a->b > b->b) - (a->b < b->b);
}

static void checkOrderingsAgainstPairwise(const traceEvent **gen, size_t n, rng *r) {
    /* gen is in generation order; the functions get a shuffled copy. */
    size_t *want = xmalloc(n * sizeof *want);
    referenceLayers(gen, n, want);
    const traceEvent **ev = xmalloc(n * sizeof *ev);
    memcpy(ev, gen, n * sizeof *ev);
    shuffle(ev, n, r);
    size_t *gen_of = xmalloc(n * sizeof *gen_of); /* shuffled index -> generation index */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            if (ev[i] == gen[j]) gen_of[i] = j;
        }
    }

    traceLayers l;
    traceOrderLayers(ev, n, &l);
    for (size_t i = 0; i < n; i++) {
        if (l.layer[i] != want[gen_of[i]])
            fail_msg("node %" PRIu32 " seq %" PRIu64 ": layer %zu, want %zu", ev[i]->node,
                     ev[i]->seq, l.layer[i], want[gen_of[i]]);
    }
    /* The properties themselves, on every pair. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            vclockOrder o = vclockCompare(&ev[i]->vc, &ev[j]->vc);
            if (o == VCLOCK_BEFORE) assert_true(l.layer[i] < l.layer[j]);
            if (l.layer[i] == l.layer[j])
                assert_true(o == VCLOCK_CONCURRENT || i == j || o == VCLOCK_EQUAL);
        }
    }
    size_t listed = 0;
    for (size_t L = 1; L <= l.nlayers; L++) {
        assert_true(l.start[L] > l.start[L - 1]); /* no empty layer */
        for (size_t m = l.start[L - 1]; m < l.start[L]; m++) {
            assert_int_equal(l.layer[l.members[m]], L);
            listed++;
        }
    }
    assert_int_equal(listed, n);
    traceLayersFree(&l);

    /* Physical and Lamport orders are sorted permutations. */
    size_t *phys = traceOrderPhysical(ev, n), *lam = traceOrderLamport(ev, n);
    for (size_t k = 1; k < n; k++) {
        const traceEvent *a = ev[phys[k - 1]], *b = ev[phys[k]];
        assert_true(a->wall_us < b->wall_us ||
                    (a->wall_us == b->wall_us &&
                     (a->node < b->node || (a->node == b->node && a->seq < b->seq))));
        a = ev[lam[k - 1]];
        b = ev[lam[k]];
        assert_true(a->lamport < b->lamport || (a->lamport == b->lamport && a->node < b->node));
        /* Lamport order extends happened-before. */
        assert_true(vclockCompare(&b->vc, &a->vc) != VCLOCK_BEFORE);
    }
    free(phys);
    free(lam);

    /* Concurrent writes against all pairs. */
    size_t cap = 64, nwant = 0;
    tracePair *pairs = xmalloc(cap * sizeof *pairs);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            const traceEvent *a = ev[i], *b = ev[j];
            if (a->node >= b->node || !traceKindIsWrite(a->kind) || !traceKindIsWrite(b->kind) ||
                strcmp(a->key, b->key) != 0)
                continue;
            if (vclockCompare(&a->vc, &b->vc) != VCLOCK_CONCURRENT) continue;
            if (nwant == cap) pairs = xrealloc(pairs, (cap *= 2) * sizeof *pairs);
            pairs[nwant++] = (tracePair){i, j};
        }
    }
    traceConcurrent c;
    traceOrderConcurrentWrites(ev, n, SIZE_MAX, &c);
    assert_int_equal(c.total, nwant);
    assert_int_equal(c.npairs, nwant);
    qsort(pairs, nwant, sizeof *pairs, pairCompare);
    qsort(c.pairs, c.npairs, sizeof *c.pairs, pairCompare);
    for (size_t k = 0; k < nwant; k++) {
        assert_int_equal(c.pairs[k].a, pairs[k].a);
        assert_int_equal(c.pairs[k].b, pairs[k].b);
    }
    traceConcurrentFree(&c);
    /* A cap lists a prefix and still counts everything. */
    traceOrderConcurrentWrites(ev, n, 5, &c);
    assert_int_equal(c.total, nwant);
    assert_int_equal(c.npairs, nwant < 5 ? nwant : 5);
    traceConcurrentFree(&c);

    free(pairs);
    free(gen_of);
    free(ev);
    free(want);
}

static void test_orderings_match_pairwise_comparison_on_random_histories(void **state) {
    (void)state;
    rng r;
    rngSeed(&r, 99);
    for (uint64_t seed = 1; seed <= 24; seed++) {
        size_t nnodes = 3 + seed % 4;
        history h;
        randomHistory(&h, seed, nnodes, 200 + 20 * (seed % 8), seed % 2 == 0);
        const traceEvent **all = traceEventPointers(h.ev, h.n);
        checkOrderingsAgainstPairwise(all, h.n, &r);
        const traceEvent **win = xmalloc(h.n * sizeof *win);
        size_t m = randomWindow(&h, seed, win);
        checkOrderingsAgainstPairwise(win, m, &r);
        free(win);
        free(all);
        historyFree(&h);
    }
}

/* ---- ShiViz ----------------------------------------------------------- */

static void test_shiviz_export_of_a_window_renumbers_clocks(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    static const uint64_t drop[] = {1, 1, 2, 1, 0};
    const traceEvent *ev[16];
    size_t n = pointersWithout(&h, drop, ev);
    buf b;
    bufInit(&b);
    traceShivizExport(ev, n, &b);
    assertBufIs(&b, "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n"
                    "\n"
                    "GET color (node3#1 L=1)\n"
                    "node3 {\"node3\":1}\n"
                    "REPL_SEND color red (node1#2 L=2 msg 1:2)\n"
                    "node1 {\"node1\":1}\n"
                    "REPL_RECV color red (node2#2 L=3 msg 1:2)\n"
                    "node2 {\"node2\":1, \"node1\":1}\n"
                    "REPL_RECV color red (node3#2 L=3 msg 1:2)\n"
                    "node3 {\"node3\":2, \"node1\":1}\n"
                    "REPL_SEND color blue (node2#3 L=4 msg 2:3)\n"
                    "node2 {\"node2\":2, \"node1\":1}\n"
                    "PUT size 10 (node3#3 L=4)\n"
                    "node3 {\"node3\":3, \"node1\":1}\n"
                    "REPL_RECV color blue (node1#3 L=5 msg 2:3)\n"
                    "node1 {\"node1\":2, \"node2\":2}\n"
                    "PUT color black (node3#4 L=5)\n"
                    "node3 {\"node3\":4, \"node1\":1}\n"
                    "PUT color green (node1#4 L=6)\n"
                    "node1 {\"node1\":3, \"node2\":2}\n");
    bufFree(&b);
    historyFree(&h);
}

typedef struct shivizEntry {
    uint32_t host;
    vclock vc; /* renumbered, keyed by host number */
    const traceEvent *orig;
} shivizEntry;

/* Parses an export and checks it against ShiViz's rules and against the
 * original clocks of the events given. */
static void checkShivizExport(const buf *out, const traceEvent *const *ev, size_t n) {
    char *text = bufString(out);
    /* The regex, then the empty multiple-executions delimiter line. */
    static const char head[] = "(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})\n\n";
    assert_true(strncmp(text, head, strlen(head)) == 0);
    char *save = NULL;
    char *line = strtok_r(text + strlen(head), "\n", &save);
    if (n == 0) assert_null(line);
    shivizEntry *en = xcalloc(n, sizeof *en);
    size_t m = 0;
    for (; line; line = strtok_r(NULL, "\n", &save)) {
        /* The description names the original event: "(nodeN#S ". */
        char *id = strrchr(line, '(');
        assert_non_null(id);
        uint32_t node;
        uint64_t seq;
        assert_int_equal(sscanf(id, "(node%" SCNu32 "#%" SCNu64, &node, &seq), 2);
        assert_true(m < n);
        for (size_t i = 0; i < n; i++) {
            if (ev[i]->node == node && ev[i]->seq == seq) en[m].orig = ev[i];
        }
        assert_non_null(en[m].orig);
        line = strtok_r(NULL, "\n", &save);
        assert_non_null(line);
        char *space = strchr(line, ' ');
        assert_non_null(space);
        assert_int_equal(sscanf(line, "node%" SCNu32, &en[m].host), 1);
        assert_int_equal(en[m].host, node);
        cJSON *clock = cJSON_Parse(space + 1);
        assert_non_null(clock);
        vclockInit(&en[m].vc);
        for (cJSON *it = clock->child; it; it = it->next) {
            uint32_t host;
            assert_int_equal(sscanf(it->string, "node%" SCNu32, &host), 1);
            assert_true(cJSON_IsNumber(it) && it->valuedouble >= 1);
            vclockSet(&en[m].vc, host, (uint64_t)it->valuedouble);
        }
        cJSON_Delete(clock);
        m++;
    }
    assert_int_equal(m, n);

    for (size_t k = 0; k < m; k++) {
        /* Own counter: 1, 2, 3... per host in file order; own clock only
         * grows. */
        uint64_t own = vclockGet(&en[k].vc, en[k].host), count = 0;
        const shivizEntry *prev = NULL;
        for (size_t j = 0; j < k; j++) {
            if (en[j].host == en[k].host) {
                count++;
                prev = &en[j];
            }
        }
        assert_int_equal(own, count + 1);
        if (prev) assert_true(vclockDominates(&en[k].vc, &prev->vc));
        /* Every entry names an exported event of that host, whose clock
         * this one covers (ShiViz derives its edges from this). */
        for (size_t x = 0; x < en[k].vc.n; x++) {
            uint32_t host = en[k].vc.e[x].node;
            uint64_t c = en[k].vc.e[x].counter, seen = 0;
            const shivizEntry *named = NULL;
            for (size_t j = 0; j < m; j++) {
                if (en[j].host == host && ++seen == c) named = &en[j];
            }
            assert_non_null(named);
            assert_true(vclockDominates(&en[k].vc, &named->vc));
        }
    }
    /* The renumbered clocks order the events exactly as the originals. */
    for (size_t a = 0; a < m; a++) {
        for (size_t b = 0; b < m; b++) {
            assert_int_equal(vclockCompare(&en[a].vc, &en[b].vc),
                             vclockCompare(&en[a].orig->vc, &en[b].orig->vc));
        }
    }
    for (size_t k = 0; k < m; k++) vclockFree(&en[k].vc);
    free(en);
    free(text);
}

static void test_shiviz_export_satisfies_shiviz_rules_on_random_windows(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 16; seed++) {
        history h;
        randomHistory(&h, seed * 7, 3 + seed % 4, 150, seed % 2 == 1);
        const traceEvent **win = xmalloc(h.n * sizeof *win);
        size_t m = randomWindow(&h, seed, win);
        buf b;
        bufInit(&b);
        traceShivizExport(win, m, &b);
        checkShivizExport(&b, win, m);
        bufClear(&b);
        const traceEvent **all = traceEventPointers(h.ev, h.n);
        traceShivizExport(all, h.n, &b);
        checkShivizExport(&b, all, h.n);
        free(all);
        bufFree(&b);
        free(win);
        historyFree(&h);
    }
}

/* ---- Views ------------------------------------------------------------ */

static void test_text_view_prints_each_order_layers_and_concurrent_writes(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent **ev = traceEventPointers(h.ev, h.n);
    buf b;
    bufInit(&b);
    traceRenderText(ev, h.n, TRACE_VIEW_ALL, &b);
    bufAppendChar(&b, '\0');
    assertBufHasLine(&b, "== physical order ==");
    assertBufHasLine(&b, "== Lamport order ==");
    assertBufHasLine(&b, "== causal layers ==");
    assertBufHasLine(&b, "[1970-01-01 00:00:00.001500] node1 #2 L=2 vc={1:2} REPL_SEND color red "
                         "(msg 1:2)");
    assertBufHasLine(&b, "[1970-01-01 00:00:00.001100] node2 #1 L=1 vc={2:1} PUT color blue");
    assertBufHasLine(&b, "layer 1: node1#1 PUT color | node2#1 PUT color | node3#1 GET color");
    assertBufHasLine(&b, "layer 3: node2#2 REPL_RECV color | node3#2 REPL_RECV color");
    assertBufHasLine(&b, "layer 6: node1#4 PUT color");
    assertBufHasLine(&b, "concurrent writes: 3");
    assertBufHasLine(&b, "  node1#1 PUT color=red || node2#1 PUT color=blue");
    assertBufHasLine(&b, "  node1#4 PUT color=green || node3#4 PUT color=black");
    assertBufHasLine(&b, "  node2#1 PUT color=blue || node3#4 PUT color=black");
    /* Sections in order; physical first lists n3#1 (wall 1000). */
    const char *phys = strstr(b.data, "== physical order ==\n");
    const char *lam = strstr(b.data, "== Lamport order ==");
    assert_true(phys && lam && phys < lam);
    assert_true(strncmp(phys + 21, "[1970-01-01 00:00:00.001000] node3 #1", 37) == 0);

    bufClear(&b);
    traceRenderText(ev, h.n, TRACE_VIEW_VECTOR, &b);
    bufAppendChar(&b, '\0');
    assert_null(strstr(b.data, "== physical order =="));
    assertBufHasLine(&b, "layer 5: node1#3 REPL_RECV color | node3#4 PUT color");
    bufFree(&b);
    free(ev);
    historyFree(&h);
}

static void test_text_view_escapes_control_characters_so_one_event_is_one_line(void **state) {
    (void)state;
    traceEvent e = simpleEvent(1, 1, 0, "two\nlines\\");
    e.detail = xstrdup("tab\there\x01");
    const traceEvent *ev[1] = {&e};
    buf b;
    bufInit(&b);
    traceRenderText(ev, 1, TRACE_VIEW_PHYSICAL, &b);
    assertBufHasLine(&b, "[1970-01-01 00:00:00.000000] node1 #1 L=1 vc={1:1} PUT two\\nlines\\\\ "
                         "tab\\there\\x01");
    bufFree(&b);
    traceEventFree(&e);
}

static void test_json_view_indexes_layers_and_pairs_into_its_events(void **state) {
    (void)state;
    history h;
    scriptedHistory(&h);
    const traceEvent **ev = traceEventPointers(h.ev, h.n);
    for (traceView v = TRACE_VIEW_ALL; v <= TRACE_VIEW_VECTOR; v++) {
        buf b;
        bufInit(&b);
        traceRenderJson(ev, h.n, v, &b);
        bufAppendChar(&b, '\0');
        cJSON *doc = cJSON_Parse(b.data);
        assert_non_null(doc);
        const char *order = cJSON_GetObjectItem(doc, "order")->valuestring;
        assert_string_equal(order, v == TRACE_VIEW_ALL ? "lamport" : traceViewName(v));
        cJSON *events = cJSON_GetObjectItem(doc, "events");
        assert_int_equal(cJSON_GetArraySize(events), 11);
        assert_int_equal(cJSON_GetObjectItem(doc, "count")->valuedouble, 11);
        /* Every layer's members carry that layer. */
        cJSON *layers = cJSON_GetObjectItem(doc, "layers");
        assert_int_equal(cJSON_GetArraySize(layers), 6);
        int L = 1, listed = 0;
        for (cJSON *layer = layers->child; layer; layer = layer->next, L++) {
            for (cJSON *i = layer->child; i; i = i->next, listed++) {
                cJSON *e = cJSON_GetArrayItem(events, (int)i->valuedouble);
                assert_int_equal(cJSON_GetObjectItem(e, "layer")->valuedouble, L);
            }
        }
        assert_int_equal(listed, 11);
        /* Pairs point at writes of color on different nodes. */
        cJSON *pairs = cJSON_GetObjectItem(doc, "concurrent");
        assert_int_equal(cJSON_GetArraySize(pairs), 3);
        assert_int_equal(cJSON_GetObjectItem(doc, "concurrent_total")->valuedouble, 3);
        for (cJSON *p = pairs->child; p; p = p->next) {
            cJSON *a = cJSON_GetArrayItem(events, (int)p->child->valuedouble);
            cJSON *c = cJSON_GetArrayItem(events, (int)p->child->next->valuedouble);
            assert_string_equal(cJSON_GetObjectItem(a, "key")->valuestring, "color");
            assert_string_equal(cJSON_GetObjectItem(c, "kind")->valuestring, "PUT");
            assert_true(cJSON_GetObjectItem(a, "node")->valuedouble <
                        cJSON_GetObjectItem(c, "node")->valuedouble);
        }
        /* Events come in the view's order. */
        if (v == TRACE_VIEW_PHYSICAL) {
            cJSON *first = events->child;
            assert_int_equal(cJSON_GetObjectItem(first, "ts_us")->valuedouble, 1000);
        }
        cJSON_Delete(doc);
        bufFree(&b);
    }
    free(ev);
    historyFree(&h);
}

static void test_view_names_parse_and_print(void **state) {
    (void)state;
    traceView v;
    assert_int_equal(traceViewParse("vector", &v), 0);
    assert_int_equal(v, TRACE_VIEW_VECTOR);
    assert_int_equal(traceViewParse("physical", &v), 0);
    assert_int_equal(v, TRACE_VIEW_PHYSICAL);
    assert_int_equal(traceViewParse("Lamport", &v), -1);
    assert_string_equal(traceViewName(TRACE_VIEW_LAMPORT), "lamport");
}

static void test_kind_helpers_classify_writes_sends_and_receives(void **state) {
    (void)state;
    for (int k = 0; k < TRACE_KIND_COUNT; k++) {
        const char *name = traceKindName((traceKind)k);
        assert_non_null(name);
        assert_int_equal(traceKindFromName(name), k);
        bool write = k == TRACE_KIND_PUT || k == TRACE_KIND_DEL || k == TRACE_KIND_INCR ||
                     k == TRACE_KIND_APPLY_LOCAL;
        assert_int_equal(traceKindIsWrite(name), write);
        assert_int_equal(traceKindIsSend(name), k == TRACE_KIND_REPL_SEND);
        assert_int_equal(traceKindIsReceive(name), k == TRACE_KIND_REPL_RECV);
    }
    assert_null(traceKindName(TRACE_KIND_COUNT));
    assert_int_equal(traceKindFromName("NOPE"), -1);
}

static void test_event_copy_is_deep_and_replaces_old_contents(void **state) {
    (void)state;
    traceEvent a = simpleEvent(3, 4, 5, "k"), b = simpleEvent(9, 9, 9, "old");
    a.detail = xstrdup("d");
    b.msg = xstrdup("stale");
    traceEventCopy(&b, &a);
    assertEventsEqual(&a, &b);
    assert_ptr_not_equal(a.key, b.key);
    traceEventFree(&a);
    assert_string_equal(b.key, "k");
    assert_int_equal(vclockGet(&b.vc, 3), 4);
    traceEventFree(&b);
}

static void test_page_is_self_contained_and_fetches_events_json(void **state) {
    (void)state;
    const char *page = tracePageHtml();
    assert_true(strncmp(page, "<!DOCTYPE html>", 15) == 0);
    assert_non_null(strstr(page, "fetch('/events.json'"));
    assert_non_null(strstr(page, "id=\"placement\""));
    assert_non_null(strstr(page, "</html>"));
    /* No CDN or other origin: the only absolute URL is the SVG namespace. */
    for (const char *p = page; (p = strstr(p, "http")) != NULL; p++) {
        if (strncmp(p, "https://", 8) == 0) fail_msg("external URL in page");
        if (strncmp(p, "http://", 7) == 0)
            assert_true(strncmp(p, "http://www.w3.org/2000/svg", 26) == 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_json_writes_the_wire_form_and_omits_null_strings),
        cmocka_unit_test(test_to_json_escapes_quotes_backslashes_and_control_characters),
        cmocka_unit_test(test_json_round_trip_keeps_escapes_and_utf8),
        cmocka_unit_test(test_to_json_replaces_invalid_utf8_with_replacement_character),
        cmocka_unit_test(test_to_json_cuts_long_strings_at_a_character_boundary_so_they_decode),
        cmocka_unit_test(test_decode_ignores_unknown_fields_and_accepts_limits),
        cmocka_unit_test(test_decode_replaces_previous_contents_of_out),
        cmocka_unit_test(test_decode_rejects_line_longer_than_limit),
        cmocka_unit_test(test_decode_rejects_nul_byte_in_line),
        cmocka_unit_test(test_decode_rejects_escaped_nul_in_strings),
        cmocka_unit_test(test_decode_rejects_text_that_is_not_one_json_object),
        cmocka_unit_test(test_decode_rejects_each_missing_required_field),
        cmocka_unit_test(test_decode_rejects_repeated_field),
        cmocka_unit_test(test_decode_rejects_mistyped_fields),
        cmocka_unit_test(test_decode_rejects_node_outside_uint32_range),
        cmocka_unit_test(test_decode_rejects_seq_zero),
        cmocka_unit_test(test_decode_rejects_negative_integers),
        cmocka_unit_test(test_decode_rejects_fractional_integers),
        cmocka_unit_test(test_decode_rejects_integers_above_2_to_the_53),
        cmocka_unit_test(test_decode_rejects_vc_keys_that_are_not_node_ids),
        cmocka_unit_test(test_decode_rejects_repeated_vc_key),
        cmocka_unit_test(test_decode_rejects_vc_counters_that_are_not_positive_integers),
        cmocka_unit_test(test_decode_rejects_vc_without_own_node),
        cmocka_unit_test(test_decode_rejects_vc_with_more_than_max_entries),
        cmocka_unit_test(test_decode_rejects_unknown_kind),
        cmocka_unit_test(test_decode_rejects_key_over_512_bytes),
        cmocka_unit_test(test_decode_rejects_detail_over_4096_bytes),
        cmocka_unit_test(test_decode_rejects_msg_over_64_bytes),
        cmocka_unit_test(test_decode_counts_string_limits_in_decoded_bytes),
        cmocka_unit_test(test_decode_rejects_strings_that_are_not_utf8),
        cmocka_unit_test(test_batch_decodes_lines_skipping_blank_ones_and_crlf),
        cmocka_unit_test(test_batch_with_one_bad_line_is_rejected_whole_naming_the_line),
        cmocka_unit_test(test_batch_rejects_more_than_max_events),
        cmocka_unit_test(test_history_keeps_most_recent_events_and_counts_dropped),
        cmocka_unit_test(test_history_add_takes_the_event_contents),
        cmocka_unit_test(test_history_rejects_duplicates_even_after_they_left_the_ring),
        cmocka_unit_test(test_history_accepts_out_of_order_arrival_and_fills_gaps),
        cmocka_unit_test(test_history_forgets_the_oldest_gap_past_the_cap),
        cmocka_unit_test(test_history_rejects_node_or_seq_zero),
        cmocka_unit_test(test_history_select_filters_by_key_and_last_n_in_physical_order),
        cmocka_unit_test(test_scripted_history_has_the_documented_clocks),
        cmocka_unit_test(test_physical_order_sorts_by_wall_clock_then_node_and_seq),
        cmocka_unit_test(test_lamport_order_sorts_by_lamport_then_node),
        cmocka_unit_test(test_layers_of_the_scripted_history),
        cmocka_unit_test(test_layers_of_a_window_count_missing_predecessors_as_layer_zero),
        cmocka_unit_test(test_layers_do_not_depend_on_input_order),
        cmocka_unit_test(test_concurrent_writes_of_the_scripted_history),
        cmocka_unit_test(test_orderings_of_no_events_are_empty),
        cmocka_unit_test(test_orderings_match_pairwise_comparison_on_random_histories),
        cmocka_unit_test(test_shiviz_export_of_a_window_renumbers_clocks),
        cmocka_unit_test(test_shiviz_export_satisfies_shiviz_rules_on_random_windows),
        cmocka_unit_test(test_text_view_prints_each_order_layers_and_concurrent_writes),
        cmocka_unit_test(test_text_view_escapes_control_characters_so_one_event_is_one_line),
        cmocka_unit_test(test_json_view_indexes_layers_and_pairs_into_its_events),
        cmocka_unit_test(test_view_names_parse_and_print),
        cmocka_unit_test(test_kind_helpers_classify_writes_sends_and_receives),
        cmocka_unit_test(test_event_copy_is_deep_and_replaces_old_contents),
        cmocka_unit_test(test_page_is_self_contained_and_fetches_events_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
