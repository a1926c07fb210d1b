/* Growable byte buffers and aborting allocators; see buf.h. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    fprintf(stderr, "dmkv: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s) {
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void bufInit(buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void bufFree(buf *b) {
    free(b->data);
    bufInit(b);
}

void bufReserve(buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t need = b->len + extra;
    if (need < b->len) oom(SIZE_MAX); /* overflow */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void bufAppend(buf *b, const void *p, size_t n) {
    if (n == 0) return;
    bufReserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void bufAppendStr(buf *b, const char *s) {
    bufAppend(b, s, strlen(s));
}

void bufAppendChar(buf *b, char c) {
    bufReserve(b, 1);
    b->data[b->len++] = c;
}

void bufPrintf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        bufAppend(b, small, (size_t)n);
        return;
    }
    bufReserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void bufConsume(buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void bufClear(buf *b) {
    b->len = 0;
}

void bufShrink(buf *b, size_t keep_cap) {
    if (b->len == 0 && b->cap > keep_cap) {
        free(b->data);
        bufInit(b);
    }
}
