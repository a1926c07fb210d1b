/* Growable byte buffers.
 *
 * Connections, the RESP writer and the record encoder all build byte
 * strings whose final size is unknown up front. A buf grows geometrically
 * and aborts on out-of-memory (like Redis's zmalloc): there is no useful
 * way for a server to continue after malloc fails, and checking every
 * append would bury the code that matters. */
#ifndef DMKV_UTIL_BUF_H
#define DMKV_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf;

void bufInit(buf *b);
void bufFree(buf *b);
/* Ensures room for at least `extra` more bytes after len. */
void bufReserve(buf *b, size_t extra);
void bufAppend(buf *b, const void *p, size_t n);
void bufAppendStr(buf *b, const char *s);
void bufAppendChar(buf *b, char c);
/* printf-style append. */
void bufPrintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes, moving the rest to the front. */
void bufConsume(buf *b, size_t n);
void bufClear(buf *b);
/* Gives the memory back when a buffer grew large but is empty again. */
void bufShrink(buf *b, size_t keep_cap);

/* Aborting allocators used everywhere in dmkv. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
