/* The broadcast queue: membership updates waiting to be piggybacked.
 *
 * SWIM §4.1 disseminates updates "infection-style" on the protocol's own
 * messages, each update being sent a bounded number of times: with
 * lambda * log(N) transmissions per node an update reaches every member
 * with high probability. memberlist's TransmitLimitedQueue refines the
 * choice: when a datagram has room for only some updates, take those sent
 * the fewest times first, and the newest among equals, so a fresh rumour
 * overtakes old ones. Here each transmit count has its own list, newest at
 * the head, so filling a datagram walks from the least-sent list upwards
 * and stops when the datagram is full: no sorting, and cost proportional
 * to what is sent. A member has at most one queued update (the latest
 * claim about it supersedes older ones), found through its record. */
#include "gossip/internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define GOSSIP_FILL_MAX_MISSES 16

void bcastInit(bcastQueue *q) {
    memset(q, 0, sizeof *q);
    q->free_head = GOSSIP_NO_INDEX;
    for (size_t i = 0; i <= GOSSIP_MAX_TRANSMITS; i++) q->head[i] = GOSSIP_NO_INDEX;
}

void bcastFree(bcastQueue *q) {
    free(q->items);
    bcastInit(q);
}

static void listUnlink(bcastQueue *q, uint32_t i) {
    bcastItem *it = &q->items[i];
    if (it->prev != GOSSIP_NO_INDEX)
        q->items[it->prev].next = it->next;
    else
        q->head[it->transmits] = it->next;
    if (it->next != GOSSIP_NO_INDEX) q->items[it->next].prev = it->prev;
}

static void listPushFront(bcastQueue *q, uint32_t i) {
    bcastItem *it = &q->items[i];
    it->prev = GOSSIP_NO_INDEX;
    it->next = q->head[it->transmits];
    if (it->next != GOSSIP_NO_INDEX) q->items[it->next].prev = i;
    q->head[it->transmits] = i;
    if (it->transmits + 1 > q->top) q->top = it->transmits + 1;
}

/* Returns an item to the free list, and gives the memory back once the
 * queue is empty: a node that merged a large state briefly queues
 * thousands of updates, and a simulator runs thousands of nodes. */
static void itemRelease(bcastQueue *q, memberTable *t, uint32_t i) {
    bcastItem *it = &q->items[i];
    uint32_t idx = membersFind(t, it->node);
    if (idx != GOSSIP_NO_INDEX && membersGet(t, idx)->bcast_idx == i)
        membersGet(t, idx)->bcast_idx = GOSSIP_NO_INDEX;
    it->next = q->free_head;
    q->free_head = i;
    q->count--;
    if (q->count == 0 && q->cap > 64) bcastFree(q);
}

void bcastDrop(bcastQueue *q, memberTable *t, uint32_t member_idx) {
    uint32_t i = membersGet(t, member_idx)->bcast_idx;
    if (i == GOSSIP_NO_INDEX) return;
    listUnlink(q, i);
    itemRelease(q, t, i);
}

void bcastPush(bcastQueue *q, memberTable *t, uint32_t member_idx, const uint8_t *bytes,
               size_t len) {
    assert(len <= GOSSIP_UPDATE_MAX_BYTES);
    bcastDrop(q, t, member_idx);
    uint32_t i;
    if (q->free_head != GOSSIP_NO_INDEX) {
        i = q->free_head;
        q->free_head = q->items[i].next;
    } else {
        if (q->used == q->cap) {
            uint32_t cap = q->cap ? q->cap * 2 : 16;
            q->items = xrealloc(q->items, (size_t)cap * sizeof *q->items);
            q->cap = cap;
        }
        i = q->used++;
    }
    bcastItem *it = &q->items[i];
    it->node = membersGet(t, member_idx)->id;
    it->transmits = 0;
    it->len = (uint16_t)len;
    memcpy(it->bytes, bytes, len);
    listPushFront(q, i);
    q->count++;
    membersGet(t, member_idx)->bcast_idx = i;
}

uint32_t bcastFill(bcastQueue *q, memberTable *t, uint32_t limit, uint8_t *out, size_t room,
                   const uint32_t *skip, size_t nskip, uint32_t max_updates, size_t *used) {
    assert(limit >= 1 && limit <= GOSSIP_MAX_TRANSMITS);
    *used = 0;
    /* The limit follows the cluster size; updates already sent as often as
     * a smaller cluster now allows are done. */
    for (uint32_t b = limit; b < q->top; b++) {
        while (q->head[b] != GOSSIP_NO_INDEX) {
            uint32_t i = q->head[b];
            listUnlink(q, i);
            itemRelease(q, t, i);
            if (q->count == 0) break;
        }
        if (q->count == 0) break;
    }
    if (q->top > limit) q->top = limit;
    if (q->count == 0) return 0;

    uint32_t picked[GOSSIP_MAX_UPDATES_PER_PACKET], n = 0, misses = 0;
    if (max_updates > GOSSIP_MAX_UPDATES_PER_PACKET) max_updates = GOSSIP_MAX_UPDATES_PER_PACKET;
    for (uint32_t b = 0; b < q->top && n < max_updates; b++) {
        for (uint32_t i = q->head[b]; i != GOSSIP_NO_INDEX && n < max_updates;
             i = q->items[i].next) {
            const bcastItem *it = &q->items[i];
            if (room - *used < GOSSIP_UPDATE_MIN_BYTES) goto full;
            /* A nearly full datagram is not worth a walk of the whole
             * queue in search of an update small enough. */
            if (it->len > room - *used) {
                if (++misses == GOSSIP_FILL_MAX_MISSES) goto full;
                continue;
            }
            bool skipped = false;
            for (size_t s = 0; s < nskip; s++) skipped |= skip[s] == it->node;
            if (skipped) continue;
            memcpy(out + *used, it->bytes, it->len);
            *used += it->len;
            picked[n++] = i;
        }
    }
full:
    /* Move each chosen item up one list (or out), in reverse so that those
     * picked together keep their newest-first order. */
    for (uint32_t k = n; k-- > 0;) {
        uint32_t i = picked[k];
        listUnlink(q, i);
        q->items[i].transmits++;
        if (q->items[i].transmits >= limit)
            itemRelease(q, t, i);
        else
            listPushFront(q, i);
    }
    return n;
}
