/* The JSON Lines form of an event: the hand-written encoder a node runs
 * for every event it records, and the validating decoder the logger runs
 * on everything a node sends.
 *
 * The encoder writes straight into the output buffer with no parsing
 * library and no allocation, because it sits on the node's request path.
 * It never writes a line the decoder would refuse for its strings: they
 * are escaped, made valid UTF-8 and cut to their maximum sizes.
 *
 * The decoder uses cJSON and then checks every field, because a line
 * comes from the network and everything later (orderings, views, the
 * page) trusts what it accepts. JSON numbers are doubles to cJSON, so
 * integers are accepted only while a double holds them exactly. The line
 * is copied to a NUL-terminated scratch buffer first, so cJSON reads a
 * C string and "garbage after the object" is its own check. */
#include "trace/internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Encoding --------------------------------------------------------- */

size_t traceUtf8SequenceLength(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    }
    return len;
}

static const char hex_digits[] = "0123456789abcdef";

void traceJsonAppendString(buf *out, const char *s, size_t max_bytes) {
    size_t len = strlen(s);
    /* Each input byte taken adds at least one byte of decoded text, so at
     * most max_bytes are taken, and each becomes at most six bytes. */
    size_t take = len < max_bytes ? len : max_bytes;
    bufReserve(out, take * 6 + 2);
    char *o = out->data + out->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t used = 0; /* decoded bytes written */

    *o++ = '"';
    while (p < end) {
        unsigned char c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            if (used + 1 > max_bytes) break;
            *o++ = (char)c;
            p++;
            used++;
        } else if (c < 0x80) {
            if (used + 1 > max_bytes) break;
            *o++ = '\\';
            switch (c) {
            case '"':
                *o++ = '"';
                break;
            case '\\':
                *o++ = '\\';
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            case '\b':
                *o++ = 'b';
                break;
            case '\f':
                *o++ = 'f';
                break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex_digits[c >> 4];
                *o++ = hex_digits[c & 15];
            }
            p++;
            used++;
        } else {
            size_t n = traceUtf8SequenceLength(p, (size_t)(end - p));
            if (n) {
                if (used + n > max_bytes) break;
                memcpy(o, p, n);
                o += n;
                p += n;
                used += n;
            } else {
                if (used + 3 > max_bytes) break; /* U+FFFD is 3 bytes of UTF-8 */
                memcpy(o, "\\ufffd", 6);
                o += 6;
                p++;
                used += 3;
            }
        }
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
}

void traceJsonAppendU64(buf *out, uint64_t v) {
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    bufAppend(out, tmp + i, sizeof tmp - i);
}

void traceEventAppendJsonFields(const traceEvent *e, buf *out) {
    bufAppend(out, "{\"node\":", 8);
    traceJsonAppendU64(out, e->node);
    bufAppend(out, ",\"seq\":", 7);
    traceJsonAppendU64(out, e->seq);
    bufAppend(out, ",\"ts_us\":", 9);
    traceJsonAppendU64(out, e->wall_us);
    bufAppend(out, ",\"lamport\":", 11);
    traceJsonAppendU64(out, e->lamport);
    bufAppend(out, ",\"vc\":{", 7);
    for (size_t i = 0; i < e->vc.n; i++) {
        bufAppend(out, i ? ",\"" : "\"", i ? 2 : 1);
        traceJsonAppendU64(out, e->vc.e[i].node);
        bufAppend(out, "\":", 2);
        traceJsonAppendU64(out, e->vc.e[i].counter);
    }
    bufAppend(out, "},\"kind\":", 9);
    char kind[sizeof e->kind];
    memcpy(kind, e->kind, sizeof kind);
    kind[sizeof kind - 1] = '\0';
    traceJsonAppendString(out, kind, TRACE_KIND_MAX_BYTES);
    if (e->key) {
        bufAppend(out, ",\"key\":", 7);
        traceJsonAppendString(out, e->key, TRACE_KEY_MAX_BYTES);
    }
    if (e->detail) {
        bufAppend(out, ",\"detail\":", 10);
        traceJsonAppendString(out, e->detail, TRACE_DETAIL_MAX_BYTES);
    }
    if (e->msg) {
        bufAppend(out, ",\"msg\":", 7);
        traceJsonAppendString(out, e->msg, TRACE_MSG_MAX_BYTES);
    }
}

void traceEventToJson(const traceEvent *e, buf *out) {
    traceEventAppendJsonFields(e, out);
    bufAppend(out, "}\n", 2);
}

/* ---- Decoding --------------------------------------------------------- */

/* Scratch space one decoder reuses from line to line. */
typedef struct decoder {
    buf text;             /* the line, NUL-terminated */
    vclockEntry *entries; /* vc entries before sorting */
    size_t entries_cap;
} decoder;

static void decoderInit(decoder *d) {
    bufInit(&d->text);
    d->entries = NULL;
    d->entries_cap = 0;
}

static void decoderFree(decoder *d) {
    bufFree(&d->text);
    free(d->entries);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An integer JSON number in 0..TRACE_JSON_MAX_INTEGER. */
static bool jsonExactInteger(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > (double)TRACE_JSON_MAX_INTEGER) return false;
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return false;
    *out = v;
    return true;
}

/* A vc key: a decimal node id 1..UINT32_MAX, no sign, no leading zero. */
static bool parseNodeId(const char *s, uint32_t *out) {
    size_t len = strlen(s);
    if (len == 0 || len > 10 || s[0] == '0') return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

static bool validUtf8(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = traceUtf8SequenceLength(p, (size_t)(end - p));
        if (!n) return false;
        p += n;
    }
    return true;
}

/* True when the JSON text has a \u0000 escape: cJSON would cut the string
 * there without a word, and a C string cannot hold it. Every backslash in
 * a valid JSON text starts a two-character escape, so skipping pairs
 * finds exactly the real escapes. */
static bool hasEscapedNul(const char *s, size_t len) {
    const char *p = s, *end = s + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) return true;
        p += 2;
        if (p >= end) break;
    }
    return false;
}

static int entryByNode(const void *a, const void *b) {
    uint32_t x = ((const vclockEntry *)a)->node, y = ((const vclockEntry *)b)->node;
    return (x > y) - (x < y);
}

static int decodeClock(decoder *d, const cJSON *obj, vclock *vc, char *err, size_t errlen) {
    if (!cJSON_IsObject(obj)) return fail(err, errlen, "field \"vc\" must be an object");
    size_t n = 0;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (n == VCLOCK_MAX_ENTRIES)
            return fail(err, errlen, "field \"vc\" has more than %d entries", VCLOCK_MAX_ENTRIES);
        uint32_t node;
        uint64_t counter;
        if (!parseNodeId(it->string, &node))
            return fail(err, errlen, "vc key \"%.32s\" is not a node id (a decimal 1..%" PRIu32 ")",
                        it->string, UINT32_MAX);
        if (!jsonExactInteger(it, &counter) || counter == 0)
            return fail(err, errlen, "vc entry \"%s\" must be an integer 1..%llu", it->string,
                        (unsigned long long)TRACE_JSON_MAX_INTEGER);
        if (n == d->entries_cap) {
            d->entries_cap = d->entries_cap ? d->entries_cap * 2 : 16;
            d->entries = xrealloc(d->entries, d->entries_cap * sizeof *d->entries);
        }
        d->entries[n].node = node;
        d->entries[n].counter = counter;
        n++;
    }
    if (n > 1) qsort(d->entries, n, sizeof *d->entries, entryByNode);
    for (size_t i = 1; i < n; i++) {
        if (d->entries[i].node == d->entries[i - 1].node)
            return fail(err, errlen, "vc key \"%" PRIu32 "\" appears twice", d->entries[i].node);
    }
    /* Sorted, so every set appends. */
    for (size_t i = 0; i < n; i++) vclockSet(vc, d->entries[i].node, d->entries[i].counter);
    return 0;
}

/* Copies a string field, checking its size and encoding. */
static int decodeString(const cJSON *item, const char *name, size_t max_bytes, char **out,
                        char *err, size_t errlen) {
    if (!cJSON_IsString(item)) return fail(err, errlen, "field \"%s\" must be a string", name);
    size_t len = strlen(item->valuestring);
    if (len > max_bytes)
        return fail(err, errlen, "field \"%s\" is %zu bytes, more than the %zu allowed", name, len,
                    max_bytes);
    if (!validUtf8(item->valuestring, len))
        return fail(err, errlen, "field \"%s\" is not valid UTF-8", name);
    *out = xstrndup(item->valuestring, len);
    return 0;
}

enum {
    FIELD_NODE = 1 << 0,
    FIELD_SEQ = 1 << 1,
    FIELD_TS = 1 << 2,
    FIELD_LAMPORT = 1 << 3,
    FIELD_VC = 1 << 4,
    FIELD_KIND = 1 << 5,
    FIELD_KEY = 1 << 6,
    FIELD_DETAIL = 1 << 7,
    FIELD_MSG = 1 << 8,
    FIELDS_REQUIRED = FIELD_NODE | FIELD_SEQ | FIELD_TS | FIELD_LAMPORT | FIELD_VC | FIELD_KIND,
};

static const struct {
    int bit;
    const char *name;
} fields[] = {
    {FIELD_NODE, "node"},       {FIELD_SEQ, "seq"},       {FIELD_TS, "ts_us"},
    {FIELD_LAMPORT, "lamport"}, {FIELD_VC, "vc"},         {FIELD_KIND, "kind"},
    {FIELD_KEY, "key"},         {FIELD_DETAIL, "detail"}, {FIELD_MSG, "msg"},
};

static int fieldBit(const char *name) {
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(name, fields[i].name) == 0) return fields[i].bit;
    }
    return 0;
}

/* Checks one integer field into *out; node and seq have tighter ranges. */
static int decodeInteger(const cJSON *item, const char *name, uint64_t min, uint64_t max,
                         uint64_t *out, char *err, size_t errlen) {
    uint64_t v;
    if (!jsonExactInteger(item, &v) || v < min || v > max)
        return fail(err, errlen, "field \"%s\" must be an integer %llu..%llu", name,
                    (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

static int decodeObject(decoder *d, const cJSON *root, traceEvent *ev, char *err, size_t errlen) {
    int seen = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        int bit = fieldBit(it->string);
        if (!bit) continue; /* a field from a newer node */
        if (seen & bit) return fail(err, errlen, "field \"%s\" appears twice", it->string);
        seen |= bit;
        uint64_t v = 0;
        int rc = 0;
        switch (bit) {
        case FIELD_NODE:
            rc = decodeInteger(it, "node", 1, UINT32_MAX, &v, err, errlen);
            ev->node = (uint32_t)v;
            break;
        case FIELD_SEQ:
            rc = decodeInteger(it, "seq", 1, TRACE_JSON_MAX_INTEGER, &ev->seq, err, errlen);
            break;
        case FIELD_TS:
            rc = decodeInteger(it, "ts_us", 0, TRACE_JSON_MAX_INTEGER, &ev->wall_us, err, errlen);
            break;
        case FIELD_LAMPORT:
            rc = decodeInteger(it, "lamport", 0, TRACE_JSON_MAX_INTEGER, &ev->lamport, err, errlen);
            break;
        case FIELD_VC:
            rc = decodeClock(d, it, &ev->vc, err, errlen);
            break;
        case FIELD_KIND:
            if (!cJSON_IsString(it) || traceKindFromName(it->valuestring) < 0)
                return fail(err, errlen,
                            "field \"kind\" must be one of GET, PUT, DEL, INCR, "
                            "APPLY_LOCAL, REPL_SEND, REPL_RECV, MUTEX_REQ, "
                            "MUTEX_GOT, MUTEX_REL, MEMBER, CONFLICT");
            traceEventSetKind(ev, (traceKind)traceKindFromName(it->valuestring));
            break;
        case FIELD_KEY:
            rc = decodeString(it, "key", TRACE_KEY_MAX_BYTES, &ev->key, err, errlen);
            break;
        case FIELD_DETAIL:
            rc = decodeString(it, "detail", TRACE_DETAIL_MAX_BYTES, &ev->detail, err, errlen);
            break;
        case FIELD_MSG:
            rc = decodeString(it, "msg", TRACE_MSG_MAX_BYTES, &ev->msg, err, errlen);
            break;
        }
        if (rc) return rc;
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if ((FIELDS_REQUIRED & fields[i].bit) && !(seen & fields[i].bit))
            return fail(err, errlen, "missing field \"%s\"", fields[i].name);
    }
    if (traceEventOwnCounter(ev) == 0)
        return fail(err, errlen, "vc has no entry for the event's own node %" PRIu32, ev->node);
    return 0;
}

static int decodeLine(decoder *d, const char *line, size_t len, traceEvent *out, char *err,
                      size_t errlen) {
    if (len > TRACE_LINE_MAX_BYTES)
        return fail(err, errlen, "line is %zu bytes, more than the %d allowed", len,
                    TRACE_LINE_MAX_BYTES);
    if (memchr(line, '\0', len)) return fail(err, errlen, "line holds a NUL byte");
    if (hasEscapedNul(line, len)) return fail(err, errlen, "a string holds \\u0000");

    bufClear(&d->text);
    bufAppend(&d->text, line, len);
    bufAppendChar(&d->text, '\0');
    cJSON *root = cJSON_ParseWithOpts(d->text.data, NULL, 1);
    if (!root) return fail(err, errlen, "not a single JSON value");
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "not a JSON object");
    }
    traceEvent ev;
    traceEventInit(&ev);
    int rc = decodeObject(d, root, &ev, err, errlen);
    cJSON_Delete(root);
    if (rc) {
        traceEventFree(&ev);
        return rc;
    }
    traceEventFree(out);
    *out = ev;
    return 0;
}

int traceEventFromJson(const char *line, size_t len, traceEvent *out, char *err, size_t errlen) {
    decoder d;
    decoderInit(&d);
    int rc = decodeLine(&d, line, len, out, err, errlen);
    decoderFree(&d);
    return rc;
}

/* A line with nothing but spaces, tabs or a carriage return. */
static bool blankLine(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    }
    return true;
}

/* The number of non-blank lines in data; counting stops once it passes
 * limit. */
static size_t countEvents(const char *data, size_t len, size_t limit) {
    size_t count = 0, pos = 0;
    while (pos < len && count <= limit) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (!blankLine(data + pos, end - pos)) count++;
        pos = end + 1;
    }
    return count;
}

int traceBatchDecode(const char *data, size_t len, traceEvent **events, size_t *n, char *err,
                     size_t errlen) {
    *events = NULL;
    *n = 0;
    size_t count = countEvents(data, len, TRACE_BATCH_MAX_EVENTS);
    if (count > TRACE_BATCH_MAX_EVENTS)
        return fail(err, errlen, "batch has more than %d events; send smaller batches",
                    TRACE_BATCH_MAX_EVENTS);
    if (count == 0) return 0;

    traceEvent *out = xcalloc(count, sizeof *out); /* zeroed = initialized */
    decoder d;
    decoderInit(&d);
    char why[256];
    size_t pos = 0, lineno = 0, k = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t linelen = end - pos;
        lineno++;
        if (!blankLine(data + pos, linelen)) {
            if (linelen && data[pos + linelen - 1] == '\r') linelen--;
            if (decodeLine(&d, data + pos, linelen, &out[k], why, sizeof why) != 0) {
                decoderFree(&d);
                traceBatchFree(out, k);
                return fail(err, errlen, "line %zu: %s", lineno, why);
            }
            k++;
        }
        pos = end + 1;
    }
    decoderFree(&d);
    *events = out;
    *n = k;
    return 0;
}

void traceBatchFree(traceEvent *events, size_t n) {
    for (size_t i = 0; i < n; i++) traceEventFree(&events[i]);
    free(events);
}
