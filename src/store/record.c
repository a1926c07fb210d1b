/* The on-disk record: one key's value and version metadata in one buffer.
 *
 * A record is stored as a single LMDB value so a read costs one lookup and
 * a write one put. The layout is fixed-width little-endian fields in
 * front, the vector clock after them, and the value last, so the value
 * needs no length field (it is whatever remains) and decoding is a few
 * bounds checks with no allocation: the decoded fields point into the
 * stored bytes.
 *
 *   offset  size  field
 *        0     1  format version (RECORD_FORMAT_V2)
 *        1     1  flags (STORE_FLAG_*; any other bit is rejected)
 *        2     4  origin node id
 *        6     8  Lamport time
 *       14     8  fencing token
 *       22     8  origin's write sequence number
 *       30     8  change sequence number (local to this store)
 *       38     2  vclock_len
 *       40     n  encoded vector clock
 *     40+n     *  value
 *
 * A merged record that knows the writes it resolves is written as version
 * 3: the same fields, then at offset 40 a u16 merged_len (never 0), and
 * the merged writes (clock module encoding) between the clock and the
 * value. Every other record stays version 2, so the field costs nothing
 * where it is empty. Version 1 records (no sequence number, the clock
 * length at offset 22) are still read, with sequence 0. Unknown versions and flags are rejected
 * rather than ignored, so a record written by a newer dmkv is never
 * misread by an older one. */
#include <assert.h>
#include <string.h>

#include "store/store.h"

#define RECORD_HEADER_BYTES    40u
#define RECORD_V3_HEADER_BYTES 42u
#define RECORD_V1_HEADER_BYTES 24u
#define RECORD_KNOWN_FLAGS     STORE_KNOWN_FLAGS

static void recordPutU16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void recordPutU32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void recordPutU64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t recordGetU16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t recordGetU32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t recordGetU64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

size_t recordEncodedSize(const storeRecord *r) {
    size_t header = r->ver.merged_len ? RECORD_V3_HEADER_BYTES : RECORD_HEADER_BYTES;
    return header + r->ver.vclock_len + r->ver.merged_len + r->value_len;
}

/* memcpy with a NULL source is undefined even for zero bytes. */
static uint8_t *recordPutBytes(uint8_t *p, const void *src, size_t n) {
    if (n) memcpy(p, src, n);
    return p + n;
}

void recordEncode(const storeRecord *r, uint8_t *out) {
    assert(r->ver.vclock_len <= STORE_MAX_VCLOCK_BYTES);
    assert(r->ver.merged_len <= STORE_MAX_VCLOCK_BYTES);
    assert((r->ver.flags & ~RECORD_KNOWN_FLAGS) == 0);
    bool v3 = r->ver.merged_len != 0;
    out[0] = v3 ? RECORD_FORMAT_V3 : RECORD_FORMAT_V2;
    out[1] = r->ver.flags;
    recordPutU32(out + 2, r->ver.origin);
    recordPutU64(out + 6, r->ver.lamport);
    recordPutU64(out + 14, r->ver.token);
    recordPutU64(out + 22, r->ver.seq);
    recordPutU64(out + 30, r->ver.change_seq);
    recordPutU16(out + 38, (uint16_t)r->ver.vclock_len);
    uint8_t *p = out + RECORD_HEADER_BYTES;
    if (v3) {
        recordPutU16(p, (uint16_t)r->ver.merged_len);
        p += 2;
    }
    p = recordPutBytes(p, r->ver.vclock, r->ver.vclock_len);
    p = recordPutBytes(p, r->ver.merged, r->ver.merged_len);
    recordPutBytes(p, r->value, r->value_len);
}

int recordDecode(const uint8_t *data, size_t len, storeRecord *out) {
    if (len < 1) return -1;
    size_t header;
    if (data[0] == RECORD_FORMAT_V2)
        header = RECORD_HEADER_BYTES;
    else if (data[0] == RECORD_FORMAT_V3)
        header = RECORD_V3_HEADER_BYTES;
    else if (data[0] == RECORD_FORMAT_V1)
        header = RECORD_V1_HEADER_BYTES;
    else
        return -1;
    if (len < header) return -1;
    if (data[1] & ~RECORD_KNOWN_FLAGS) return -1;
    bool v1 = header == RECORD_V1_HEADER_BYTES;
    size_t vclock_len = recordGetU16(data + (v1 ? header - 2 : 38));
    size_t merged_len = header == RECORD_V3_HEADER_BYTES ? recordGetU16(data + 40) : 0;
    /* Version 3 exists only for a non-empty field: one encoding per record. */
    if (header == RECORD_V3_HEADER_BYTES && merged_len == 0) return -1;
    if (vclock_len > len - header || merged_len > len - header - vclock_len) return -1;

    out->ver.flags = data[1];
    out->ver.origin = recordGetU32(data + 2);
    out->ver.lamport = recordGetU64(data + 6);
    out->ver.token = recordGetU64(data + 14);
    out->ver.seq = v1 ? 0 : recordGetU64(data + 22);
    out->ver.change_seq = v1 ? 0 : recordGetU64(data + 30);
    out->ver.vclock = data + header;
    out->ver.vclock_len = vclock_len;
    out->ver.merged = merged_len ? data + header + vclock_len : NULL;
    out->ver.merged_len = merged_len;
    out->value = (const char *)data + header + vclock_len + merged_len;
    out->value_len = len - header - vclock_len - merged_len;
    return 0;
}
