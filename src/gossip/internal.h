/* Internals shared by the files of src/gossip: the seeded generator, the
 * member table and the broadcast queue. Nothing outside the module
 * includes this header.
 *
 * Both tables are built for a simulator that runs ten thousand nodes, each
 * knowing ten thousand members, in one process: members live in one pool
 * of small fixed-size records addressed by a stable index, found by id
 * through an open-addressing hash, and every per-state list, the probe
 * order and the suspicion list hold indices, so lookups, insertions,
 * removals and random picks are O(1) and no operation scans the pool. */
#ifndef DMKV_GOSSIP_INTERNAL_H
#define DMKV_GOSSIP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip/codec.h"
#include "gossip/gossip.h"

#define GOSSIP_NO_INDEX UINT32_MAX

/* ---- Generator: xoshiro256**, seeded through splitmix64 ----------------- */

typedef struct gossipRng {
    uint64_t s[4];
} gossipRng;

void gossipRngSeed(gossipRng *r, uint64_t seed);
uint64_t gossipRngNext(gossipRng *r);
/* Uniform in [0, n); n > 0. */
uint32_t gossipRngBelow(gossipRng *r, uint32_t n);

/* ---- Member table ------------------------------------------------------ */

/* One member's record. The address is kept in binary (16 bytes instead of
 * a 46-byte literal) because a simulated 10,000-node cluster holds 10^8 of
 * these; the literal is rebuilt on the way out. */
typedef struct member {
    uint32_t id;
    uint8_t state; /* gossipState; GOSSIP_NONE marks a free pool slot */
    uint8_t meta_len;
    uint8_t family; /* 4 or 6 */
    uint8_t is_self;
    uint8_t ip[16];
    uint16_t udp_port, tcp_port;
    uint32_t order_idx; /* place in the probe order; GOSSIP_NO_INDEX for self */
    uint32_t state_idx; /* place in the list of its state */
    uint32_t susp_idx;  /* its suspicion, or GOSSIP_NO_INDEX */
    uint32_t bcast_idx; /* its queued broadcast, or GOSSIP_NO_INDEX */
    uint64_t inc;
    uint64_t since_ms;
    uint8_t *meta; /* meta_len bytes, NULL when empty */
} member;

typedef struct memberSlot {
    uint32_t id; /* 0: empty */
    uint32_t idx;
} memberSlot;

typedef struct memberTable {
    member *pool;
    uint32_t pool_len, pool_cap, free_head;
    memberSlot *slots;
    uint32_t slot_mask, slot_used;
    /* Randomised round-robin probe order (SWIM §4.3): indices of every
     * member but self; [0, probe_next) were probed in this round. */
    uint32_t *order;
    uint32_t order_len, order_cap, probe_next;
    uint32_t *bystate[5];
    uint32_t state_len[5], state_cap[5];
} memberTable;

void membersInit(memberTable *t);
void membersFree(memberTable *t);
/* Makes room for `extra` more members without reallocating per add. */
void membersReserve(memberTable *t, size_t extra);
uint32_t membersFind(const memberTable *t, uint32_t id);
/* Adds a member in state st at a random place of the probe order (self is
 * kept out of it). Pointers into the pool are invalid afterwards. */
uint32_t membersAdd(memberTable *t, gossipRng *r, uint32_t id, gossipState st, bool is_self);
void membersSetState(memberTable *t, uint32_t idx, gossipState st);
void membersRemove(memberTable *t, uint32_t idx);
/* Next ALIVE or SUSPECT member in probe order, reshuffling at the end of a
 * round; GOSSIP_NO_INDEX when there is none. */
uint32_t membersNextProbe(memberTable *t, gossipRng *r);
#define GOSSIP_MASK(st) (1u << (st))
/* Up to k distinct random members whose state is in mask (GOSSIP_MASK
 * bits), none of them self or `exclude`; returns how many. */
uint32_t membersRandom(const memberTable *t, gossipRng *r, unsigned mask, uint32_t exclude_id,
                       uint32_t k, uint32_t *out);
uint32_t membersCount(const memberTable *t, gossipState st);
/* The i-th member over all states; GOSSIP_NO_INDEX past the end. */
uint32_t membersAt(const memberTable *t, size_t i);

static inline member *membersGet(const memberTable *t, uint32_t idx) {
    return &t->pool[idx];
}

void memberSetAddr(member *m, const gossipAddr *a);
void memberGetAddr(const member *m, gossipAddr *a);
bool memberAddrEqual(const member *m, const gossipAddr *a);
void memberSetMeta(member *m, const uint8_t *meta, size_t len);

/* ---- Broadcast queue (SWIM §4.1 infection-style dissemination) --------- */

/* Highest number of transmissions an update can get; the live limit is
 * retransmit_mult * ceil(log10(N + 1)), clamped to this. */
#define GOSSIP_MAX_TRANSMITS 255

typedef struct bcastItem {
    uint32_t node;
    uint32_t transmits;
    uint32_t prev, next; /* in the list of its transmit count; next doubles as free link */
    uint16_t len;
    uint8_t bytes[GOSSIP_UPDATE_MAX_BYTES];
} bcastItem;

/* Items sit in one list per transmit count, newest first, so the
 * least-transmitted, newest updates are found first without sorting. */
typedef struct bcastQueue {
    bcastItem *items;
    uint32_t cap, used, free_head, count;
    uint32_t head[GOSSIP_MAX_TRANSMITS + 1];
    uint32_t top; /* buckets at or above this are empty */
} bcastQueue;

void bcastInit(bcastQueue *q);
void bcastFree(bcastQueue *q);
/* Queues an encoded update about node, replacing the member's previous
 * one: a newer claim about a node makes the older one pointless. */
void bcastPush(bcastQueue *q, memberTable *t, uint32_t member_idx, const uint8_t *bytes,
               size_t len);
/* Drops the member's queued update, if any. */
void bcastDrop(bcastQueue *q, memberTable *t, uint32_t member_idx);
/* Copies into out (room bytes) the least-transmitted updates that fit,
 * newest first among equals, skipping the nodes in skip; at most
 * max_updates. Each chosen update counts one transmission and is dropped
 * once it reaches limit. Returns the number written and sets *used. */
uint32_t bcastFill(bcastQueue *q, memberTable *t, uint32_t limit, uint8_t *out, size_t room,
                   const uint32_t *skip, size_t nskip, uint32_t max_updates, size_t *used);

#endif
