/* libFuzzer target for the logger's queries: TRACE's arguments and the
 * HTTP query parameters, which both go through loggerQuerySet.
 *
 * The input is lines ("\n"); a line is name=value, split at its first
 * "=", or a bare name, which passes a NULL value (an HTTP parameter
 * without "="). The pairs are applied in turn, as cmdTrace and the HTTP
 * handler do, stopping at the first refusal. Each answer is checked
 * against an independent reading of the rules in query.h: accepted
 * exactly when the rules accept, the value then stored as given (a key
 * byte for byte and at most TRACE_KEY_MAX_BYTES, LAST as its decimal
 * value and at most LOGGER_QUERY_MAX_LAST), and a refusal leaving the
 * query untouched with a one-line message. An accepted query is then
 * rendered in every format against a small fixed history, and what is
 * shown must be exactly the selection: the events of the key, at most
 * LAST of them, as many as the JSON "count", the JSON events and the
 * ShiViz entries say. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "logger/query.h"

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_logger: %s\n", what);
    abort();
}

/* ---- the fixed history ---- */

#define HISTORY_EVENTS 8

static traceHistory *history;
static char long_key[TRACE_KEY_MAX_BYTES + 1];
/* The key of each event, in arrival order; NULL for an event without one. */
static const char *history_keys[HISTORY_EVENTS];

/* Three nodes writing x, y, "", a key of the largest size, and one event
 * without a key, with one message between nodes 1 and 2. */
static traceHistory *historyBuild(void) {
    memset(long_key, 'k', TRACE_KEY_MAX_BYTES);
    static const struct {
        unsigned node, seq, lamport;
        const char *vc, *kind, *key, *msg;
        unsigned ts_ms;
    } spec[HISTORY_EVENTS] = {
        {1, 1, 1, "\"1\":1", "PUT", "x", NULL, 5},
        {1, 2, 2, "\"1\":2", "REPL_SEND", "x", "1:2", 6},
        {2, 1, 3, "\"1\":2,\"2\":1", "REPL_RECV", "x", "1:2", 4},
        {2, 2, 4, "\"1\":2,\"2\":2", "PUT", "y", NULL, 7},
        {3, 1, 1, "\"3\":1", "PUT", "", NULL, 1},
        {3, 2, 2, "\"3\":2", "PUT", long_key, NULL, 9},
        {3, 3, 3, "\"3\":3", "MEMBER", NULL, NULL, 8},
        {2, 3, 5, "\"1\":2,\"2\":3", "DEL", "x", NULL, 3},
    };
    buf lines;
    bufInit(&lines);
    for (size_t i = 0; i < HISTORY_EVENTS; i++) {
        bufPrintf(
            &lines,
            "{\"node\":%u,\"seq\":%u,\"ts_us\":%u000,\"lamport\":%u,\"vc\":{%s},\"kind\":\"%s\"",
            spec[i].node, spec[i].seq, spec[i].ts_ms, spec[i].lamport, spec[i].vc, spec[i].kind);
        if (spec[i].key) bufPrintf(&lines, ",\"key\":\"%s\"", spec[i].key);
        if (spec[i].msg) bufPrintf(&lines, ",\"msg\":\"%s\"", spec[i].msg);
        bufAppendStr(&lines, "}\n");
        history_keys[i] = spec[i].key;
    }
    traceEvent *ev;
    size_t n;
    char err[256];
    if (traceBatchDecode(lines.data, lines.len, &ev, &n, err, sizeof err) != 0 ||
        n != HISTORY_EVENTS) {
        fprintf(stderr, "fixed history: %s\n", err);
        fuzzFail("the fixed history does not decode");
    }
    traceHistory *h = traceHistoryCreate(HISTORY_EVENTS);
    for (size_t i = 0; i < n; i++) {
        if (traceHistoryAdd(h, &ev[i]) != TRACE_OK) fuzzFail("the fixed history has a duplicate");
    }
    traceBatchFree(ev, n);
    bufFree(&lines);
    return h;
}

/* ---- the rules of query.h, read independently ---- */

static bool sameWord(const char *p, size_t len, const char *word) {
    if (strlen(word) != len) return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + ('a' - 'A'));
        if (c != word[i]) return false;
    }
    return true;
}

static const char *const names[] = {"order", "format", "key", "last"};
static const unsigned bits[] = {LOGGER_QUERY_GIVEN_ORDER, LOGGER_QUERY_GIVEN_FORMAT,
                                LOGGER_QUERY_GIVEN_KEY, LOGGER_QUERY_GIVEN_LAST};

/* Index of the name in names[], or -1. */
static int nameIndex(const char *name, size_t nlen) {
    for (int i = 0; i < 4; i++) {
        if (sameWord(name, nlen, names[i])) return i;
    }
    return -1;
}

/* The decimal value of an all-digit string, or UINT64_MAX when it is not
 * one or exceeds LOGGER_QUERY_MAX_LAST. */
static uint64_t lastValue(const char *v, size_t len) {
    if (len == 0) return UINT64_MAX;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') return UINT64_MAX;
    }
    while (len > 1 && v[0] == '0') v++, len--;
    if (len > 9) return UINT64_MAX;
    char tmp[10];
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    uint64_t n = strtoull(tmp, NULL, 10);
    return n <= LOGGER_QUERY_MAX_LAST ? n : UINT64_MAX;
}

static bool orderAccepted(const char *v, size_t len, traceView *view) {
    static const traceView views[] = {TRACE_VIEW_ALL, TRACE_VIEW_PHYSICAL, TRACE_VIEW_LAMPORT,
                                      TRACE_VIEW_VECTOR};
    for (size_t i = 0; i < 4; i++) {
        if (sameWord(v, len, traceViewName(views[i]))) {
            *view = views[i];
            return true;
        }
    }
    return false;
}

static bool formatAccepted(const char *v, size_t len, loggerFormat *format) {
    static const char *const formats[] = {"text", "json", "shiviz"};
    static const loggerFormat values[] = {LOGGER_FORMAT_TEXT, LOGGER_FORMAT_JSON,
                                          LOGGER_FORMAT_SHIVIZ};
    for (size_t i = 0; i < 3; i++) {
        if (sameWord(v, len, formats[i])) {
            *format = values[i];
            return true;
        }
    }
    return false;
}

/* Field by field: struct padding is not part of a query. */
static bool sameQuery(const loggerQuery *a, const loggerQuery *b) {
    return a->view == b->view && a->format == b->format && a->has_key == b->has_key &&
           a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len + 1) == 0 &&
           a->last_n == b->last_n && a->given == b->given;
}

/* Applies one pair and checks the answer against the rules. Returns
 * whether it was accepted. */
static bool applyPair(loggerQuery *q, const char *name, size_t nlen, const char *val, size_t vlen) {
    loggerQuery before;
    memcpy(&before, q, sizeof before);
    char err[128];
    memset(err, 0, sizeof err);
    int r = loggerQuerySet(q, name, nlen, val, vlen, err, sizeof err);
    int idx = nameIndex(name, nlen);

    if (r != LOGGER_QUERY_OK) {
        if (r != (idx < 0 ? LOGGER_QUERY_ERR_NAME : LOGGER_QUERY_ERR_VALUE))
            fuzzFail("wrong error code");
        if (!sameQuery(q, &before)) fuzzFail("a refusal changed the query");
        if (err[0] == '\0') fuzzFail("a refusal without a message");
        for (const char *p = err; *p; p++) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
                fuzzFail("an error message with a control character");
        }
    }
    if (idx < 0) {
        if (r == LOGGER_QUERY_OK) fuzzFail("an unknown name was accepted");
        return false;
    }

    /* What the rules say of this pair. */
    bool ok = !(before.given & bits[idx]) && val && !memchr(val, '\0', vlen);
    loggerQuery expect;
    memcpy(&expect, &before, sizeof expect);
    expect.given |= bits[idx];
    if (ok) {
        uint64_t last;
        switch (idx) {
        case 0:
            ok = orderAccepted(val, vlen, &expect.view);
            break;
        case 1:
            ok = formatAccepted(val, vlen, &expect.format);
            break;
        case 2:
            ok = vlen <= TRACE_KEY_MAX_BYTES;
            if (ok) {
                memcpy(expect.key, val, vlen);
                expect.key[vlen] = '\0';
                expect.key_len = vlen;
                expect.has_key = true;
            }
            break;
        default:
            last = lastValue(val, vlen);
            ok = last != UINT64_MAX;
            expect.last_n = (size_t)last;
            break;
        }
    }
    if (ok != (r == LOGGER_QUERY_OK))
        fuzzFail(ok ? "a valid pair was refused" : "a bad pair was accepted");
    if (!ok) return false;
    if (!sameQuery(q, &expect)) fuzzFail("the accepted pair was not stored as given");
    if (q->key_len > TRACE_KEY_MAX_BYTES || strlen(q->key) != q->key_len)
        fuzzFail("the key is longer than allowed or holds a NUL");
    if (q->last_n > LOGGER_QUERY_MAX_LAST) fuzzFail("LAST above the cap");
    return true;
}

/* ---- rendering ---- */

static size_t expectedSelection(const loggerQuery *q) {
    size_t n = 0;
    for (size_t i = 0; i < HISTORY_EVENTS; i++) {
        if (!q->has_key || (history_keys[i] && strcmp(history_keys[i], q->key) == 0)) n++;
    }
    return q->last_n && q->last_n < n ? q->last_n : n;
}

static size_t countChar(const buf *b, char c) {
    size_t n = 0;
    for (size_t i = 0; i < b->len; i++) n += b->data[i] == c;
    return n;
}

/* Lines of the text view that show one event ("[time] nodeN #seq ..."). */
static size_t countEventLines(const buf *b) {
    size_t n = 0;
    for (size_t i = 0; i < b->len; i++) {
        if ((i == 0 || b->data[i - 1] == '\n') && b->data[i] == '[') n++;
    }
    return n;
}

static void checkRender(const loggerQuery *accepted) {
    size_t want = expectedSelection(accepted);
    if (accepted->last_n && want > accepted->last_n) fuzzFail("selection exceeds LAST");

    traceFilter f = loggerQueryFilter(accepted);
    const traceEvent **sel = NULL;
    size_t m = traceHistorySelect(history, &f, &sel);
    if (m != want) fuzzFail("traceHistorySelect disagrees with the filter");
    for (size_t i = 0; i < m; i++) {
        if (accepted->has_key && (!sel[i]->key || strcmp(sel[i]->key, accepted->key) != 0))
            fuzzFail("an event of another key was selected");
    }
    free(sel);

    static const loggerFormat formats[] = {LOGGER_FORMAT_TEXT, LOGGER_FORMAT_JSON,
                                           LOGGER_FORMAT_SHIVIZ};
    for (size_t k = 0; k < 3; k++) {
        loggerQuery q = *accepted;
        q.format = formats[k];
        buf out;
        bufInit(&out);
        size_t n = loggerQueryRender(&q, history, &out);
        if (n != want) fuzzFail("render shows another number of events");
        if (q.format == LOGGER_FORMAT_JSON) {
            cJSON *doc = cJSON_ParseWithLength(out.data, out.len);
            if (!doc) fuzzFail("JSON view does not parse");
            const cJSON *count = cJSON_GetObjectItem(doc, "count");
            const cJSON *events = cJSON_GetObjectItem(doc, "events");
            const cJSON *order = cJSON_GetObjectItem(doc, "order");
            if (!cJSON_IsNumber(count) || count->valuedouble != (double)n)
                fuzzFail("JSON count is not the selection");
            if (!cJSON_IsArray(events) || (size_t)cJSON_GetArraySize(events) != n)
                fuzzFail("JSON events are not the selection");
            traceView shown = q.view == TRACE_VIEW_ALL ? TRACE_VIEW_LAMPORT : q.view;
            if (!cJSON_IsString(order) || strcmp(order->valuestring, traceViewName(shown)) != 0)
                fuzzFail("JSON order is not the one asked for");
            cJSON_Delete(doc);
        } else if (q.format == LOGGER_FORMAT_SHIVIZ) {
            /* The regex line, the empty delimiter, then two lines per event. */
            if (countChar(&out, '\n') != 2 + 2 * n)
                fuzzFail("ShiViz entries are not the selection");
        } else if (q.view == TRACE_VIEW_PHYSICAL || q.view == TRACE_VIEW_LAMPORT) {
            if (countEventLines(&out) != n) fuzzFail("text lines are not the selection");
        } else if (q.view == TRACE_VIEW_ALL) {
            if (countEventLines(&out) != 2 * n) fuzzFail("text sections are not the selection");
        }
        bufFree(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!history) history = historyBuild();
    const char *p = (const char *)data, *end = p + size;
    loggerQuery q;
    loggerQueryInit(&q);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            const char *val = eq ? eq + 1 : NULL;
            size_t vlen = eq ? (size_t)(line_end - val) : 0;
            if (!applyPair(&q, p, nlen, val, vlen))
                return 0; /* as the callers: first refusal ends it */
        }
        p = nl ? nl + 1 : end;
    }
    checkRender(&q);
    return 0;
}
