/* RESP reply writer: appends RESP2 replies to a connection's output buf.
 *
 * Every reply is a handful of bytes around a number or a string, and a
 * busy server writes one or more per command, so numbers are formatted by
 * hand instead of through printf and each reply reserves its buffer space
 * once. Single-line replies (+status, -error) must stay one line whatever
 * text a handler passes, or the client would read the rest as a new
 * reply, so CR and LF in them become spaces. */
#include "resp/resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "-9223372036854775808" is the longest long long. */
#define WRITER_MAX_INT_CHARS 20
/* A type byte, a number and CRLF. */
#define WRITER_MAX_HEADER (1 + WRITER_MAX_INT_CHARS + 2)
/* Formatted error messages up to this size need no heap allocation. */
#define WRITER_ERROR_STACK_BYTES 256

/* Writes v in decimal to dst (room for WRITER_MAX_INT_CHARS) and returns
 * the length. Works in unsigned so LLONG_MIN needs no special case. */
static size_t writerFormatInt(char *dst, long long v) {
    char tmp[WRITER_MAX_INT_CHARS];
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0) dst[len++] = '-';
    while (n) dst[len++] = tmp[--n];
    return len;
}

/* Appends "<type><v>\r\n"; the caller has reserved WRITER_MAX_HEADER. */
static void writerHeader(buf *b, char type, long long v) {
    char *d = b->data + b->len;
    size_t n = 0;
    d[n++] = type;
    n += writerFormatInt(d + n, v);
    d[n++] = '\r';
    d[n++] = '\n';
    b->len += n;
}

/* Appends "<type><s>\r\n" with any CR or LF in s turned into a space. */
static void writerLine(buf *b, char type, const char *s, size_t n) {
    bufReserve(b, n + 3);
    char *d = b->data + b->len;
    d[0] = type;
    memcpy(d + 1, s, n);
    for (size_t i = strcspn(s, "\r\n"); i < n; i++)
        if (d[1 + i] == '\r' || d[1 + i] == '\n') d[1 + i] = ' ';
    d[1 + n] = '\r';
    d[2 + n] = '\n';
    b->len += n + 3;
}

void respAddSimple(buf *b, const char *s) {
    writerLine(b, '+', s, strlen(s));
}

void respAddError(buf *b, const char *msg) {
    writerLine(b, '-', msg, strlen(msg));
}

void respAddErrorFmt(buf *b, const char *fmt, ...) {
    char small[WRITER_ERROR_STACK_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        /* Only an invalid format gets here; still send an error line so the
         * client is not left waiting for a reply. */
        respAddError(b, "ERR internal error formatting a reply");
        return;
    }
    if ((size_t)n < sizeof small) {
        writerLine(b, '-', small, (size_t)n);
        return;
    }
    char *big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    writerLine(b, '-', big, (size_t)n);
    free(big);
}

void respAddInt(buf *b, long long v) {
    bufReserve(b, WRITER_MAX_HEADER);
    writerHeader(b, ':', v);
}

void respAddBulk(buf *b, const void *p, size_t n) {
    bufReserve(b, WRITER_MAX_HEADER + n + 2);
    writerHeader(b, '$', (long long)n);
    if (n) memcpy(b->data + b->len, p, n);
    b->data[b->len + n] = '\r';
    b->data[b->len + n + 1] = '\n';
    b->len += n + 2;
}

/* A NULL string is sent as the nil bulk, which is what a handler means by it. */
void respAddBulkStr(buf *b, const char *s) {
    if (!s) {
        respAddNil(b);
        return;
    }
    respAddBulk(b, s, strlen(s));
}

void respAddBulkInt(buf *b, long long v) {
    char digits[WRITER_MAX_INT_CHARS];
    size_t n = writerFormatInt(digits, v);
    respAddBulk(b, digits, n);
}

void respAddNil(buf *b) {
    bufAppend(b, "$-1\r\n", 5);
}

void respAddArrayLen(buf *b, long long n) {
    bufReserve(b, WRITER_MAX_HEADER);
    writerHeader(b, '*', n);
}

void respAddNilArray(buf *b) {
    bufAppend(b, "*-1\r\n", 5);
}

/* lens may be NULL when every argument is a NUL-terminated string. */
void respAddCommand(buf *b, size_t argc, const char *const *argv, const size_t *lens) {
    respAddArrayLen(b, (long long)argc);
    for (size_t i = 0; i < argc; i++) respAddBulk(b, argv[i], lens ? lens[i] : strlen(argv[i]));
}
