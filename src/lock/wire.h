/* Little-endian helpers shared by the lock module's codecs (codec.c for
 * ops and results, table.c for snapshots). Not a public header. */
#ifndef DMKV_LOCK_WIRE_H
#define DMKV_LOCK_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
} cursor;

/* Appends v as `bytes` little-endian bytes. */
void putLE(buf *b, uint64_t v, int bytes);
/* Reads `bytes` little-endian bytes; false when fewer remain. */
bool getLE(cursor *c, int bytes, uint64_t *v);

#endif
