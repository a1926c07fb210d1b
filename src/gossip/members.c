/* The member table of one gossip node, and its seeded generator.
 *
 * Records live in a pool whose indices never change while a member is
 * known, so the hash (id -> index), the per-state lists, the probe order
 * and the suspicion list can all refer to a member by index and be kept
 * in step by swap-removal: every operation is O(1) except the reshuffle
 * at the end of a probe round, which is O(N) once every N periods.
 *
 * The probe order implements SWIM §4.3's round-robin probe target
 * selection: members are probed in the order of a random permutation,
 * which is reshuffled after each full pass, and a joining member is put at
 * a random place, so every member is probed within 2(N-1) periods however
 * the permutations fall, while the order stays unpredictable. */
#include "gossip/internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- Generator -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void gossipRngSeed(gossipRng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t gossipRngNext(gossipRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t gossipRngBelow(gossipRng *r, uint32_t n) {
    assert(n > 0);
    /* Lemire's multiply-shift with rejection: unbiased, one multiply. */
    uint64_t m = (gossipRngNext(r) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (gossipRngNext(r) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* ---- Small index arrays ----------------------------------------------- */

static void growIndexArray(uint32_t **a, uint32_t *cap, uint32_t want) {
    if (want <= *cap) return;
    uint32_t c = *cap ? *cap : 8;
    while (c < want) c *= 2;
    *a = xrealloc(*a, (size_t)c * sizeof **a);
    *cap = c;
}

static void reserveExact(uint32_t **a, uint32_t *cap, uint32_t want) {
    if (want <= *cap) return;
    *a = xrealloc(*a, (size_t)want * sizeof **a);
    *cap = want;
}

/* ---- Hash: linear probing with backward-shift deletion ---------------- */

static uint32_t hashId(uint32_t id) {
    id ^= id >> 16;
    id *= 0x7feb352du;
    id ^= id >> 15;
    id *= 0x846ca68bu;
    id ^= id >> 16;
    return id;
}

static void slotsInsert(memberSlot *slots, uint32_t mask, uint32_t id, uint32_t idx) {
    uint32_t i = hashId(id) & mask;
    while (slots[i].id != 0) i = (i + 1) & mask;
    slots[i].id = id;
    slots[i].idx = idx;
}

/* Keeps the load at most 3/4, which linear probing handles well while a
 * 10,000-member table stays at 128 KiB. */
static void slotsReserve(memberTable *t, uint32_t want_used) {
    uint32_t cap = t->slots ? t->slot_mask + 1 : 0;
    if ((uint64_t)want_used * 4 <= (uint64_t)cap * 3) return;
    uint32_t ncap = cap ? cap : 16;
    while ((uint64_t)want_used * 4 > (uint64_t)ncap * 3) ncap *= 2;
    memberSlot *ns = xcalloc(ncap, sizeof *ns);
    for (uint32_t i = 0; i < cap; i++) {
        if (t->slots[i].id) slotsInsert(ns, ncap - 1, t->slots[i].id, t->slots[i].idx);
    }
    free(t->slots);
    t->slots = ns;
    t->slot_mask = ncap - 1;
}

uint32_t membersFind(const memberTable *t, uint32_t id) {
    if (!t->slots || id == 0) return GOSSIP_NO_INDEX;
    uint32_t i = hashId(id) & t->slot_mask;
    while (t->slots[i].id != 0) {
        if (t->slots[i].id == id) return t->slots[i].idx;
        i = (i + 1) & t->slot_mask;
    }
    return GOSSIP_NO_INDEX;
}

static void slotsDelete(memberTable *t, uint32_t id) {
    uint32_t mask = t->slot_mask, i = hashId(id) & mask;
    while (t->slots[i].id != id) {
        assert(t->slots[i].id != 0);
        i = (i + 1) & mask;
    }
    /* Shift back every later entry of the run that may now sit after its
     * home slot, so lookups never need tombstones. */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (t->slots[j].id == 0) break;
        uint32_t home = hashId(t->slots[j].id) & mask;
        /* Move j to i unless its home lies cyclically in (i, j]. */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id = 0;
    t->slot_used--;
}

/* ---- Table ------------------------------------------------------------ */

void membersInit(memberTable *t) {
    memset(t, 0, sizeof *t);
    t->free_head = GOSSIP_NO_INDEX;
}

void membersFree(memberTable *t) {
    for (uint32_t i = 0; i < t->pool_len; i++) free(t->pool[i].meta);
    free(t->pool);
    free(t->slots);
    free(t->order);
    for (int s = 0; s < 5; s++) free(t->bystate[s]);
    membersInit(t);
}

void membersReserve(memberTable *t, size_t extra) {
    uint32_t known = t->slot_used;
    uint64_t want = (uint64_t)known + extra;
    if (want > UINT32_MAX / 2) want = UINT32_MAX / 2;
    slotsReserve(t, (uint32_t)want);
    /* Free slots are reused first; grow the pool for the rest, exactly, so
     * a large restore does not leave a half-empty doubled pool behind. */
    uint32_t free_slots = t->pool_len - known;
    if (extra > free_slots) {
        uint64_t need = (uint64_t)t->pool_len + (extra - free_slots);
        if (need > t->pool_cap) {
            t->pool = xrealloc(t->pool, (size_t)need * sizeof *t->pool);
            t->pool_cap = (uint32_t)need;
        }
        reserveExact(&t->order, &t->order_cap, (uint32_t)(t->order_len + extra));
        reserveExact(&t->bystate[GOSSIP_ALIVE], &t->state_cap[GOSSIP_ALIVE],
                     (uint32_t)(t->state_len[GOSSIP_ALIVE] + extra));
    }
}

static void stateListAdd(memberTable *t, uint32_t idx, gossipState st) {
    growIndexArray(&t->bystate[st], &t->state_cap[st], t->state_len[st] + 1);
    t->pool[idx].state_idx = t->state_len[st];
    t->bystate[st][t->state_len[st]++] = idx;
}

static void stateListRemove(memberTable *t, uint32_t idx) {
    member *m = &t->pool[idx];
    gossipState st = (gossipState)m->state;
    uint32_t pos = m->state_idx, last = t->bystate[st][--t->state_len[st]];
    t->bystate[st][pos] = last;
    t->pool[last].state_idx = pos;
}

uint32_t membersAdd(memberTable *t, gossipRng *r, uint32_t id, gossipState st, bool is_self) {
    assert(id != 0 && membersFind(t, id) == GOSSIP_NO_INDEX);
    assert(st >= GOSSIP_ALIVE && st <= GOSSIP_LEFT);
    uint32_t idx;
    if (t->free_head != GOSSIP_NO_INDEX) {
        idx = t->free_head;
        t->free_head = t->pool[idx].order_idx;
    } else {
        if (t->pool_len == t->pool_cap) {
            uint32_t cap = t->pool_cap ? t->pool_cap * 2 : 8;
            t->pool = xrealloc(t->pool, (size_t)cap * sizeof *t->pool);
            t->pool_cap = cap;
        }
        idx = t->pool_len++;
    }
    member *m = &t->pool[idx];
    memset(m, 0, sizeof *m);
    m->id = id;
    m->state = (uint8_t)st;
    m->is_self = is_self;
    m->family = 4;
    m->order_idx = GOSSIP_NO_INDEX;
    m->susp_idx = GOSSIP_NO_INDEX;
    m->bcast_idx = GOSSIP_NO_INDEX;

    slotsReserve(t, t->slot_used + 1);
    slotsInsert(t->slots, t->slot_mask, id, idx);
    t->slot_used++;
    stateListAdd(t, idx, st);

    if (!is_self) {
        /* memberlist's trick: append, then swap with a random position. */
        growIndexArray(&t->order, &t->order_cap, t->order_len + 1);
        uint32_t pos = gossipRngBelow(r, t->order_len + 1);
        uint32_t displaced = pos < t->order_len ? t->order[pos] : idx;
        t->order[t->order_len] = displaced;
        t->pool[displaced].order_idx = t->order_len;
        t->order[pos] = idx;
        m->order_idx = pos;
        t->order_len++;
    }
    return idx;
}

void membersSetState(memberTable *t, uint32_t idx, gossipState st) {
    member *m = &t->pool[idx];
    if (m->state == st) return;
    stateListRemove(t, idx);
    m->state = (uint8_t)st;
    stateListAdd(t, idx, st);
}

/* Removes idx from the probe order while keeping the probed part
 * [0, probe_next) and the unprobed part apart, so no member skips or
 * repeats its turn because another one left. */
static void orderRemove(memberTable *t, uint32_t idx) {
    uint32_t pos = t->pool[idx].order_idx;
    if (pos == GOSSIP_NO_INDEX) return;
    if (pos < t->probe_next) {
        uint32_t last_probed = --t->probe_next;
        uint32_t moved = t->order[last_probed];
        t->order[pos] = moved;
        t->pool[moved].order_idx = pos;
        pos = last_probed;
    }
    uint32_t last = t->order[--t->order_len];
    if (pos != t->order_len) {
        t->order[pos] = last;
        t->pool[last].order_idx = pos;
    }
}

void membersRemove(memberTable *t, uint32_t idx) {
    member *m = &t->pool[idx];
    assert(m->state != GOSSIP_NONE && m->susp_idx == GOSSIP_NO_INDEX &&
           m->bcast_idx == GOSSIP_NO_INDEX);
    slotsDelete(t, m->id);
    stateListRemove(t, idx);
    orderRemove(t, idx);
    free(m->meta);
    memset(m, 0, sizeof *m);
    m->state = GOSSIP_NONE;
    m->order_idx = t->free_head;
    t->free_head = idx;
}

uint32_t membersNextProbe(memberTable *t, gossipRng *r) {
    for (uint32_t seen = 0; seen <= t->order_len; seen++) {
        if (t->probe_next >= t->order_len) {
            if (t->order_len == 0) return GOSSIP_NO_INDEX;
            for (uint32_t i = t->order_len - 1; i > 0; i--) {
                uint32_t j = gossipRngBelow(r, i + 1), a = t->order[i], b = t->order[j];
                t->order[i] = b;
                t->order[j] = a;
                t->pool[b].order_idx = i;
                t->pool[a].order_idx = j;
            }
            t->probe_next = 0;
        }
        uint32_t idx = t->order[t->probe_next++];
        uint8_t st = t->pool[idx].state;
        if (st == GOSSIP_ALIVE || st == GOSSIP_SUSPECT) return idx;
    }
    return GOSSIP_NO_INDEX;
}

uint32_t membersCount(const memberTable *t, gossipState st) {
    return st >= GOSSIP_ALIVE && st <= GOSSIP_LEFT ? t->state_len[st] : 0;
}

uint32_t membersAt(const memberTable *t, size_t i) {
    for (int s = GOSSIP_ALIVE; s <= GOSSIP_LEFT; s++) {
        if (i < t->state_len[s]) return t->bystate[s][i];
        i -= t->state_len[s];
    }
    return GOSSIP_NO_INDEX;
}

/* The n-th member of the union of the lists selected by mask. */
static uint32_t unionAt(const memberTable *t, unsigned mask, uint32_t n) {
    for (int s = GOSSIP_ALIVE; s <= GOSSIP_LEFT; s++) {
        if (!(mask & GOSSIP_MASK(s))) continue;
        if (n < t->state_len[s]) return t->bystate[s][n];
        n -= t->state_len[s];
    }
    return GOSSIP_NO_INDEX;
}

uint32_t membersRandom(const memberTable *t, gossipRng *r, unsigned mask, uint32_t exclude_id,
                       uint32_t k, uint32_t *out) {
    uint32_t total = 0;
    for (int s = GOSSIP_ALIVE; s <= GOSSIP_LEFT; s++) {
        if (mask & GOSSIP_MASK(s)) total += t->state_len[s];
    }
    uint32_t got = 0;
    if (k == 0 || total == 0) return 0;
    if (total <= 4 * k + 8) {
        /* Few candidates: a partial Fisher-Yates over all eligible ones. */
        uint32_t cand[4 * 64 + 8], n = 0;
        assert(k <= 64);
        for (uint32_t i = 0; i < total; i++) {
            uint32_t idx = unionAt(t, mask, i);
            const member *m = &t->pool[idx];
            if (!m->is_self && m->id != exclude_id) cand[n++] = idx;
        }
        while (got < k && n > 0) {
            uint32_t j = gossipRngBelow(r, n);
            out[got++] = cand[j];
            cand[j] = cand[--n];
        }
        return got;
    }
    /* Many candidates: rejection sampling; with at most a quarter of them
     * wanted, a few tries per pick suffice. */
    for (uint32_t tries = 0; got < k && tries < 16 * k; tries++) {
        uint32_t idx = unionAt(t, mask, gossipRngBelow(r, total));
        const member *m = &t->pool[idx];
        if (m->is_self || m->id == exclude_id) continue;
        bool dup = false;
        for (uint32_t i = 0; i < got; i++) dup |= out[i] == idx;
        if (!dup) out[got++] = idx;
    }
    return got;
}

/* ---- Address and metadata --------------------------------------------- */

void memberSetAddr(member *m, const gossipAddr *a) {
    memset(m->ip, 0, sizeof m->ip);
    if (gossipParseIPv4(a->host, m->ip)) {
        m->family = 4;
    } else {
        int ok = inet_pton(AF_INET6, a->host, m->ip);
        assert(ok == 1); /* validated on the way in */
        (void)ok;
        m->family = 6;
    }
    m->udp_port = a->udp_port;
    m->tcp_port = a->tcp_port;
}

/* Dotted quad by hand: glibc's inet_ntop goes through sprintf, and every
 * datagram and event formats an address. */
static void formatIPv4(const uint8_t *ip, char *out) {
    char *p = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = ip[i];
        if (v >= 100) *p++ = (char)('0' + v / 100);
        if (v >= 10) *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

void memberGetAddr(const member *m, gossipAddr *a) {
    memset(a->host, 0, sizeof a->host);
    if (m->family == 4)
        formatIPv4(m->ip, a->host);
    else
        inet_ntop(AF_INET6, m->ip, a->host, sizeof a->host);
    a->udp_port = m->udp_port;
    a->tcp_port = m->tcp_port;
}

bool memberAddrEqual(const member *m, const gossipAddr *a) {
    member tmp;
    memberSetAddr(&tmp, a);
    return tmp.family == m->family && memcmp(tmp.ip, m->ip, 16) == 0 &&
           tmp.udp_port == m->udp_port && tmp.tcp_port == m->tcp_port;
}

void memberSetMeta(member *m, const uint8_t *meta, size_t len) {
    assert(len <= GOSSIP_META_MAX);
    if (len == m->meta_len && (len == 0 || memcmp(m->meta, meta, len) == 0)) return;
    free(m->meta);
    m->meta = NULL;
    m->meta_len = (uint8_t)len;
    if (len) {
        m->meta = xmalloc(len);
        memcpy(m->meta, meta, len);
    }
}
