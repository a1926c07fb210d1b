/* Reading a query of the logger's history; see query.h.
 *
 * Values are compared in place with their length, never copied into a
 * fixed buffer first, so a long value cannot be cut down into an
 * accepted one ("lamport" + 60 bytes of junk) and a NUL byte cannot hide
 * the rest of a value from a C-string comparison. */
#include "logger/query.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*queryParseFn)(loggerQuery *q, const char *val, size_t vlen, char *err, size_t errlen);

typedef struct queryField {
    const char *name;  /* lower case, as matched */
    const char *label; /* as error messages name it */
    unsigned bit;      /* LOGGER_QUERY_GIVEN_* */
    queryParseFn parse;
} queryField;

/* At most this many bytes of an unknown name are quoted back. */
#define QUERY_QUOTE_MAX_BYTES 32

static int queryFail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int queryFail(char *err, size_t errlen, const char *fmt, ...) {
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return LOGGER_QUERY_ERR_VALUE;
}

/* p[0..len) equals word (lower case) in ASCII, ignoring case; bytes
 * outside A-Z are compared as they are, whatever the locale. */
static bool queryWordIs(const char *p, size_t len, const char *word) {
    if (strlen(word) != len) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)word[i]) return false;
    }
    return true;
}

static int queryParseOrder(loggerQuery *q, const char *val, size_t vlen, char *err, size_t errlen) {
    static const traceView views[] = {TRACE_VIEW_PHYSICAL, TRACE_VIEW_LAMPORT, TRACE_VIEW_VECTOR,
                                      TRACE_VIEW_ALL};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        if (queryWordIs(val, vlen, traceViewName(views[i]))) {
            q->view = views[i];
            return LOGGER_QUERY_OK;
        }
    }
    return queryFail(err, errlen, "ORDER must be physical, lamport or vector");
}

static int queryParseFormat(loggerQuery *q, const char *val, size_t vlen, char *err,
                            size_t errlen) {
    static const struct {
        const char *name;
        loggerFormat format;
    } formats[] = {{"text", LOGGER_FORMAT_TEXT},
                   {"json", LOGGER_FORMAT_JSON},
                   {"shiviz", LOGGER_FORMAT_SHIVIZ}};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (queryWordIs(val, vlen, formats[i].name)) {
            q->format = formats[i].format;
            return LOGGER_QUERY_OK;
        }
    }
    return queryFail(err, errlen, "FORMAT must be text, json or shiviz");
}

static int queryParseKey(loggerQuery *q, const char *val, size_t vlen, char *err, size_t errlen) {
    if (vlen > TRACE_KEY_MAX_BYTES)
        return queryFail(err, errlen, "key too long (%zu bytes; KEY is at most %d bytes)", vlen,
                         TRACE_KEY_MAX_BYTES);
    memcpy(q->key, val, vlen);
    q->key[vlen] = '\0';
    q->key_len = vlen;
    q->has_key = true;
    return LOGGER_QUERY_OK;
}

static int queryParseLast(loggerQuery *q, const char *val, size_t vlen, char *err, size_t errlen) {
    if (vlen == 0) return queryFail(err, errlen, "LAST must be a number of events");
    for (size_t i = 0; i < vlen; i++) {
        if (val[i] < '0' || val[i] > '9')
            return queryFail(err, errlen, "LAST must be a number of events");
    }
    size_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        size_t digit = (size_t)(val[i] - '0');
        if (n > (LOGGER_QUERY_MAX_LAST - digit) / 10)
            return queryFail(err, errlen, "LAST must be at most %u events", LOGGER_QUERY_MAX_LAST);
        n = n * 10 + digit;
    }
    q->last_n = n;
    return LOGGER_QUERY_OK;
}

static const queryField query_fields[] = {
    {"order", "ORDER", LOGGER_QUERY_GIVEN_ORDER, queryParseOrder},
    {"format", "FORMAT", LOGGER_QUERY_GIVEN_FORMAT, queryParseFormat},
    {"key", "KEY", LOGGER_QUERY_GIVEN_KEY, queryParseKey},
    {"last", "LAST", LOGGER_QUERY_GIVEN_LAST, queryParseLast},
};

/* Copies up to QUERY_QUOTE_MAX_BYTES of s into dst as printable ASCII
 * ('?' for anything else), so an error quoting user input stays one line. */
static void queryQuote(char *dst, size_t cap, const char *s, size_t len) {
    size_t n = len < QUERY_QUOTE_MAX_BYTES ? len : QUERY_QUOTE_MAX_BYTES;
    if (cap == 0) return;
    if (n > cap - 1) n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
    }
    dst[n] = '\0';
}

void loggerQueryInit(loggerQuery *q) {
    memset(q, 0, sizeof *q);
    q->view = TRACE_VIEW_LAMPORT;
    q->format = LOGGER_FORMAT_TEXT;
}

int loggerQuerySet(loggerQuery *q, const char *name, size_t nlen, const char *val, size_t vlen,
                   char *err, size_t errlen) {
    size_t nfields = sizeof query_fields / sizeof query_fields[0];
    size_t f = 0;
    while (f < nfields && !queryWordIs(name, nlen, query_fields[f].name)) f++;
    if (f == nfields) {
        char quoted[QUERY_QUOTE_MAX_BYTES + 1];
        queryQuote(quoted, sizeof quoted, name, nlen);
        queryFail(err, errlen, "unknown argument '%s%s'", quoted,
                  nlen > QUERY_QUOTE_MAX_BYTES ? "..." : "");
        return LOGGER_QUERY_ERR_NAME;
    }
    const queryField *field = &query_fields[f];
    if (q->given & field->bit) return queryFail(err, errlen, "%s given twice", field->label);
    if (!val) return queryFail(err, errlen, "%s needs a value", field->label);
    if (memchr(val, '\0', vlen)) return queryFail(err, errlen, "%s holds a NUL byte", field->label);
    /* Parse into a copy, so a refused value leaves q as it was. */
    loggerQuery next = *q;
    int r = field->parse(&next, val, vlen, err, errlen);
    if (r != LOGGER_QUERY_OK) return r;
    next.given |= field->bit;
    *q = next;
    return LOGGER_QUERY_OK;
}

traceFilter loggerQueryFilter(const loggerQuery *q) {
    traceFilter f = {.key = q->has_key ? q->key : NULL, .last_n = q->last_n};
    return f;
}

size_t loggerQueryRender(const loggerQuery *q, const traceHistory *h, buf *out) {
    traceFilter f = loggerQueryFilter(q);
    const traceEvent **sel = NULL;
    size_t n = traceHistorySelect(h, &f, &sel);
    switch (q->format) {
    case LOGGER_FORMAT_SHIVIZ:
        traceShivizExport(sel, n, out);
        break;
    case LOGGER_FORMAT_JSON:
        traceRenderJson(sel, n, q->view, out);
        break;
    case LOGGER_FORMAT_TEXT:
        traceRenderText(sel, n, q->view, out);
        break;
    }
    free(sel);
    return n;
}
