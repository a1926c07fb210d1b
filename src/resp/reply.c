/* RESP reply parser for dmkv's client side: the CLI and node-to-node links.
 *
 * Replies are small and arrive whole far more often than not, so the
 * parser keeps no state between calls: given the bytes received so far it
 * either returns one complete reply tree, says more bytes are needed, or
 * rejects the input. It walks the bytes twice, first only to check that a
 * whole, well-formed reply is there and then to build the tree, so an
 * incomplete reply costs no allocation however often it is retried. A
 * peer may be broken or hostile, so lengths, element counts and nesting
 * are bounded by respReplyLimits and every number is parsed strictly. */
#include "resp/resp.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_DEFAULT_MAX_BULK     (512ull * 1024 * 1024)
#define REPLY_DEFAULT_MAX_ELEMENTS (1024 * 1024)
/* Deep enough for every Redis reply (XREAD, CLUSTER SLOTS); recursion
 * depth, and so stack use, is bounded by it. */
#define REPLY_DEFAULT_MAX_DEPTH 16
/* A ':', '$' or '*' line holds a type byte, at most 20 characters of
 * number and a '\r'; anything longer without a '\n' cannot become valid. */
#define REPLY_MAX_NUMBER_LINE 32

typedef struct replyReader {
    const char *data;
    size_t len;
    respReplyLimits limits;
    const char *error;
} replyReader;

static int replyFail(replyReader *rd, const char *msg) {
    rd->error = msg;
    return RESP_PARSE_ERROR;
}

/* Strict decimal over the whole long long range: optional '-', digits
 * without a leading zero, no overflow. */
static int replyNumber(const char *s, size_t n, long long *out) {
    int negative = 0;
    if (n > 0 && s[0] == '-') {
        negative = 1;
        s++;
        n--;
    }
    if (n == 0) return 0;
    if (s[0] == '0') {
        if (n != 1 || negative) return 0;
        *out = 0;
        return 1;
    }
    unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9 || v > (limit - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = negative ? (long long)(0ull - v) : (long long)v;
    return 1;
}

/* Finds the line that starts with the type byte at `start`. On success
 * [*body, *body_len) is the text between the type byte and the CRLF and
 * *next the offset after the CRLF. */
static int replyLine(replyReader *rd, size_t start, size_t max, const char *too_long,
                     const char **body, size_t *body_len, size_t *next) {
    size_t avail = rd->len - start;
    size_t scan = avail > max ? max + 1 : avail;
    const char *nl = memchr(rd->data + start, '\n', scan);
    if (!nl) return avail > max ? replyFail(rd, too_long) : RESP_PARSE_MORE;
    size_t end = (size_t)(nl - rd->data);
    if (end - start < 2 || rd->data[end - 1] != '\r')
        return replyFail(rd, "reply line not terminated by CRLF");
    *body = rd->data + start + 1;
    *body_len = end - 1 - (start + 1);
    *next = end + 1;
    return RESP_PARSE_DONE;
}

static int replyNumberLine(replyReader *rd, size_t start, const char *invalid, long long *v,
                           size_t *next) {
    const char *body;
    size_t n;
    int rc = replyLine(rd, start, REPLY_MAX_NUMBER_LINE, invalid, &body, &n, next);
    if (rc != RESP_PARSE_DONE) return rc;
    if (!replyNumber(body, n, v)) return replyFail(rd, invalid);
    return RESP_PARSE_DONE;
}

static respReply *replyNew(int type) {
    respReply *r = xcalloc(1, sizeof *r);
    r->type = type;
    return r;
}

/* Parses the reply at *pos. With out == NULL it only validates; the build
 * pass runs on input already validated, so it cannot fail. */
static int replyRead(replyReader *rd, size_t *pos, int depth, respReply **out) {
    size_t start = *pos, next;
    const char *body;
    size_t n;
    long long v;
    int rc;

    if (start >= rd->len) return RESP_PARSE_MORE;
    char type = rd->data[start];
    switch (type) {
    case '+':
    case '-':
        rc = replyLine(rd, start, rd->limits.max_bulk_bytes + 2, "reply line too long", &body, &n,
                       &next);
        if (rc != RESP_PARSE_DONE) return rc;
        if (out) {
            *out = replyNew(type == '+' ? RESP_STRING : RESP_ERROR);
            (*out)->str = xstrndup(body, n);
            (*out)->len = n;
        }
        break;

    case ':':
        rc = replyNumberLine(rd, start, "invalid integer reply", &v, &next);
        if (rc != RESP_PARSE_DONE) return rc;
        if (out) {
            *out = replyNew(RESP_INTEGER);
            (*out)->integer = v;
        }
        break;

    case '$':
        rc = replyNumberLine(rd, start, "invalid bulk length", &v, &next);
        if (rc != RESP_PARSE_DONE) return rc;
        if (v == -1) {
            if (out) *out = replyNew(RESP_NIL);
            break;
        }
        if (v < 0) return replyFail(rd, "invalid bulk length");
        if ((unsigned long long)v > rd->limits.max_bulk_bytes)
            return replyFail(rd, "bulk reply too large");
        n = (size_t)v;
        if (rd->len - next < n + 2) return RESP_PARSE_MORE;
        if (rd->data[next + n] != '\r' || rd->data[next + n + 1] != '\n')
            return replyFail(rd, "expected CRLF after bulk data");
        if (out) {
            *out = replyNew(RESP_BULK);
            (*out)->str = xstrndup(rd->data + next, n);
            (*out)->len = n;
        }
        next += n + 2;
        break;

    case '*':
        rc = replyNumberLine(rd, start, "invalid array length", &v, &next);
        if (rc != RESP_PARSE_DONE) return rc;
        if (v == -1) {
            if (out) *out = replyNew(RESP_NIL_ARRAY);
            break;
        }
        if (v < 0) return replyFail(rd, "invalid array length");
        if ((unsigned long long)v > rd->limits.max_elements)
            return replyFail(rd, "array reply has too many elements");
        if (depth >= rd->limits.max_depth) return replyFail(rd, "reply nested too deeply");
        respReply *arr = NULL;
        if (out) {
            arr = replyNew(RESP_ARRAY);
            arr->integer = v;
            arr->elements = (size_t)v;
            /* Safe to size from v here: validation saw every element. */
            if (v > 0) arr->element = xcalloc((size_t)v, sizeof *arr->element);
        }
        for (long long i = 0; i < v; i++) {
            rc = replyRead(rd, &next, depth + 1, arr ? &arr->element[i] : NULL);
            if (rc != RESP_PARSE_DONE) {
                respReplyFree(arr);
                return rc;
            }
        }
        if (out) *out = arr;
        break;

    default:
        return replyFail(rd, "unknown reply type");
    }
    *pos = next;
    return RESP_PARSE_DONE;
}

int respReplyParse(const char *data, size_t len, const respReplyLimits *limits, respReply **out,
                   size_t *consumed, const char **error) {
    /* A zero limit means "the default", so callers set only what they change. */
    replyReader rd = {.data = data,
                      .len = len,
                      .limits = {.max_bulk_bytes = REPLY_DEFAULT_MAX_BULK,
                                 .max_elements = REPLY_DEFAULT_MAX_ELEMENTS,
                                 .max_depth = REPLY_DEFAULT_MAX_DEPTH}};
    if (limits) {
        if (limits->max_bulk_bytes) rd.limits.max_bulk_bytes = limits->max_bulk_bytes;
        if (limits->max_elements) rd.limits.max_elements = limits->max_elements;
        if (limits->max_depth > 0) rd.limits.max_depth = limits->max_depth;
    }
    /* Keeps "length + CRLF" arithmetic from wrapping around. */
    if (rd.limits.max_bulk_bytes > SIZE_MAX / 2) rd.limits.max_bulk_bytes = SIZE_MAX / 2;
    *out = NULL;

    size_t pos = 0;
    int rc = replyRead(&rd, &pos, 0, NULL);
    if (rc == RESP_PARSE_ERROR && error) *error = rd.error;
    if (rc != RESP_PARSE_DONE) return rc;

    pos = 0;
    rc = replyRead(&rd, &pos, 0, out);
    if (consumed) *consumed = pos;
    return rc;
}

void respReplyFree(respReply *r) {
    if (!r) return;
    if (r->element) {
        for (size_t i = 0; i < r->elements; i++) respReplyFree(r->element[i]);
        free(r->element);
    }
    free(r->str);
    free(r);
}
