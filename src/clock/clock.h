/* Logical time: Lamport clocks and sparse vector clocks.
 *
 * This module owns the representation of causality in dmkv. Every event a
 * node records (a client write, a replication message, a lock grant, a
 * membership change) is stamped with the node's Lamport time, which gives
 * a total order consistent with causality, and with its vector clock,
 * which tells exactly whether two events are causally ordered or
 * concurrent. The vector clock is a sparse map from node id to counter,
 * kept as an array sorted by node id, because node ids are arbitrary
 * 32-bit numbers and members come and go: a clock only holds the nodes it
 * has heard from, and every operation on two clocks is one linear walk.
 *
 * The module also owns the wire and text forms of a vector clock. The
 * binary form is canonical (one clock, one encoding), so encoded clocks
 * can be compared and hashed byte-wise, and the decoder bounds everything
 * it reads before allocating, because clocks arrive from the network.
 *
 * Pure code: no time, no randomness, no I/O. */
#ifndef DMKV_CLOCK_CLOCK_H
#define DMKV_CLOCK_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Most entries a decoded clock may hold: more members than dmkv is built
 * for, few enough that a hostile count cannot make a receiver allocate
 * much. The encoder does not enforce it; a clock that grew past it will
 * not decode on the other side. */
#define VCLOCK_MAX_ENTRIES 4096

/* Longest LEB128 varint for a 64-bit value. */
#define VCLOCK_VARINT_MAX_BYTES 10

/* Upper bound on vclockEncodedSize() for a clock that fits
 * VCLOCK_MAX_ENTRIES: the count, then per entry a node delta (at most 5
 * bytes for 32 bits) and a counter. */
#define VCLOCK_MAX_ENCODED_SIZE (VCLOCK_VARINT_MAX_BYTES + VCLOCK_MAX_ENTRIES * (5 + 10))

/* Node ids are uint32_t; 0 is never a valid node id. */

typedef struct vclockEntry {
    uint32_t node;
    uint64_t counter;
} vclockEntry;

/* Entries sorted by strictly increasing node, every counter > 0; a node
 * that is absent has counter 0. e is NULL while cap is 0. */
typedef struct vclock {
    vclockEntry *e;
    size_t n, cap;
} vclock;

typedef enum vclockOrder {
    VCLOCK_EQUAL,
    VCLOCK_BEFORE,    /* a happened before b: a <= b pointwise and a != b */
    VCLOCK_AFTER,     /* b happened before a */
    VCLOCK_CONCURRENT /* neither dominates the other */
} vclockOrder;

void vclockInit(vclock *v);
void vclockFree(vclock *v);
/* dst must be initialized; its old contents are replaced. */
void vclockCopy(vclock *dst, const vclock *src);
/* Empties the clock but keeps its storage for reuse. */
void vclockClear(vclock *v);

uint64_t vclockGet(const vclock *v, uint32_t node);
/* Setting a counter to 0 removes the node's entry. */
void vclockSet(vclock *v, uint32_t node, uint64_t counter);
/* Returns the new counter. Saturates at UINT64_MAX rather than wrapping
 * to 0, which would make the clock run backwards. */
uint64_t vclockIncrement(vclock *v, uint32_t node);

/* dst = pointwise max(dst, src). */
void vclockMerge(vclock *dst, const vclock *src);
vclockOrder vclockCompare(const vclock *a, const vclock *b);
/* True when a >= b pointwise (so also when they are equal). */
bool vclockDominates(const vclock *a, const vclock *b);

/* Binary form: LEB128 varint entry count, then per entry varint (node -
 * previous node; the first entry stores its node) and varint counter.
 * vclockEncode appends to out. */
void vclockEncode(const vclock *v, buf *out);
size_t vclockEncodedSize(const vclock *v);
/* Decodes one clock from the front of p. On success returns 0, replaces
 * out's contents and sets *consumed (if not NULL) to the bytes used;
 * trailing bytes are the caller's business. On malformed input returns -1
 * and leaves out and *consumed untouched. Rejected: truncation, a varint
 * longer than 10 bytes, above 64 bits or not in its shortest form, a node
 * id of 0 or above UINT32_MAX, node ids that do not strictly increase, a
 * zero counter, and an entry count above VCLOCK_MAX_ENTRIES or above what
 * the remaining bytes could hold. out is allocated only for input that is
 * valid. */
int vclockDecode(const uint8_t *p, size_t len, vclock *out, size_t *consumed);

/* Appends the text form, {1:3,2:5}; the empty clock is {}. */
void vclockFormat(const vclock *v, buf *out);
/* Appends a JSON object, {"1":3,"2":5}. Counters are JSON integers, so a
 * reader that parses numbers as doubles loses precision above 2^53. */
void vclockFormatJson(const vclock *v, buf *out);

/* The clocks one node keeps: its Lamport time and its vector clock, both
 * advanced together so every event of the node carries a consistent pair. */
typedef struct nodeClock {
    uint32_t self;
    uint64_t lamport;
    vclock vc;
} nodeClock;

void nodeClockInit(nodeClock *c, uint32_t self);
void nodeClockFree(nodeClock *c);
/* A local event or a send: lamport += 1, vc[self] += 1. */
void nodeClockTick(nodeClock *c);
/* Receipt of a message stamped (lamport_in, vc_in): lamport =
 * max(lamport, lamport_in) + 1, vc = merge(vc, vc_in), then vc[self] += 1.
 * vc_in may be NULL for a message that carries no vector clock. */
void nodeClockReceive(nodeClock *c, uint64_t lamport_in, const vclock *vc_in);
/* Reloads persisted clocks after a restart. Keeps the max of the current
 * and the restored values, so restoring a stale snapshot never moves a
 * clock backwards. vc may be NULL. */
void nodeClockRestore(nodeClock *c, uint64_t lamport, const vclock *vc);

#endif
