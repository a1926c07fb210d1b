/* Encoder and bounds-checked decoder for gossip datagrams and push-pull
 * state blobs; the layout is described in codec.h.
 *
 * The decoder reads through a cursor that refuses any read past the end,
 * so every field access is checked in one place, and it validates values
 * as it goes: a field is either fully valid or the whole datagram is
 * dropped with a reason. Fixed-width little-endian integers keep the
 * encoder trivial and the size of each field known before it is read. */
#include "gossip/codec.h"

#include <arpa/inet.h>
#include <assert.h>
#include <string.h>

/* ---- Little-endian helpers -------------------------------------------- */

static uint8_t *put8(uint8_t *p, uint8_t v) {
    *p = v;
    return p + 1;
}

static uint8_t *put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
} cursor;

static bool get8(cursor *c, uint8_t *v) {
    if (c->len - c->pos < 1) return false;
    *v = c->p[c->pos++];
    return true;
}

static bool get16(cursor *c, uint16_t *v) {
    if (c->len - c->pos < 2) return false;
    *v = (uint16_t)(c->p[c->pos] | (uint16_t)c->p[c->pos + 1] << 8);
    c->pos += 2;
    return true;
}

static bool get32(cursor *c, uint32_t *v) {
    if (c->len - c->pos < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) x |= (uint32_t)c->p[c->pos + i] << (8 * i);
    c->pos += 4;
    *v = x;
    return true;
}

static bool get64(cursor *c, uint64_t *v) {
    if (c->len - c->pos < 8) return false;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)c->p[c->pos + i] << (8 * i);
    c->pos += 8;
    *v = x;
    return true;
}

static bool getBytes(cursor *c, void *out, size_t n) {
    if (c->len - c->pos < n) return false;
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return true;
}

/* ---- Addresses -------------------------------------------------------- */

bool gossipParseIPv4(const char *s, uint8_t out[4]) {
    for (int i = 0; i < 4; i++) {
        unsigned v = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        /* One to three digits, no leading zero, at most 255: the forms
         * inet_pton accepts. */
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[-(int)digits] == '0'))
            return false;
        out[i] = (uint8_t)v;
        if (*s++ != (i < 3 ? '.' : '\0')) return false;
    }
    return true;
}

static bool hostValid(const char *host) {
    size_t n = strnlen(host, GOSSIP_HOST_MAX);
    if (n == 0 || n > GOSSIP_HOST_LEN_MAX) return false;
    uint8_t ip[16];
    return gossipParseIPv4(host, ip) || inet_pton(AF_INET6, host, ip) == 1;
}

bool gossipAddrValid(const gossipAddr *a) {
    return a->udp_port != 0 && hostValid(a->host);
}

static size_t addrSize(const gossipAddr *a) {
    return 1 + strlen(a->host) + 4;
}

static uint8_t *putAddr(uint8_t *p, const gossipAddr *a) {
    size_t n = strlen(a->host);
    assert(n >= 1 && n <= GOSSIP_HOST_LEN_MAX);
    p = put8(p, (uint8_t)n);
    memcpy(p, a->host, n);
    p += n;
    p = put16(p, a->udp_port);
    return put16(p, a->tcp_port);
}

static int getAddr(cursor *c, gossipAddr *a, gossipDropReason *why) {
    uint8_t n;
    if (!get8(c, &n)) goto truncated;
    if (n == 0) goto bad;
    if (n > GOSSIP_HOST_LEN_MAX) {
        *why = GOSSIP_DROP_OVERSIZED;
        return -1;
    }
    if (!getBytes(c, a->host, n)) goto truncated;
    a->host[n] = '\0';
    if (!get16(c, &a->udp_port) || !get16(c, &a->tcp_port)) goto truncated;
    /* A NUL inside the host would make strlen disagree with n. */
    if (memchr(a->host, '\0', n) || !gossipAddrValid(a)) goto bad;
    return 0;
truncated:
    *why = GOSSIP_DROP_TRUNCATED;
    return -1;
bad:
    *why = GOSSIP_DROP_BAD_VALUE;
    return -1;
}

static int getMeta(cursor *c, gossipUpdate *u, gossipDropReason *why) {
    if (!get8(c, &u->meta_len)) {
        *why = GOSSIP_DROP_TRUNCATED;
        return -1;
    }
    if (u->meta_len > GOSSIP_META_MAX) {
        *why = GOSSIP_DROP_OVERSIZED;
        return -1;
    }
    if (!getBytes(c, u->meta, u->meta_len)) {
        *why = GOSSIP_DROP_TRUNCATED;
        return -1;
    }
    return 0;
}

static bool kindValid(uint8_t k) {
    return k >= GOSSIP_ALIVE && k <= GOSSIP_LEFT;
}

/* ---- Updates ---------------------------------------------------------- */

size_t gossipUpdateSize(const gossipUpdate *u) {
    size_t n = 13;
    switch (u->kind) {
    case GOSSIP_ALIVE:
        n += addrSize(&u->addr) + 1 + u->meta_len;
        break;
    case GOSSIP_SUSPECT:
    case GOSSIP_DEAD:
        n += 4;
        break;
    default:
        break;
    }
    return n;
}

size_t gossipEncodeUpdate(const gossipUpdate *u, uint8_t *out, size_t cap) {
    assert(kindValid((uint8_t)u->kind) && u->node != 0 && u->meta_len <= GOSSIP_META_MAX);
    size_t n = gossipUpdateSize(u);
    if (n > cap) return 0;
    uint8_t *p = out;
    p = put8(p, (uint8_t)u->kind);
    p = put32(p, u->node);
    p = put64(p, u->incarnation);
    if (u->kind == GOSSIP_ALIVE) {
        p = putAddr(p, &u->addr);
        p = put8(p, u->meta_len);
        memcpy(p, u->meta, u->meta_len);
        p += u->meta_len;
    } else if (u->kind != GOSSIP_LEFT) {
        p = put32(p, u->from);
    }
    assert((size_t)(p - out) == n);
    return n;
}

static int getUpdate(cursor *c, gossipUpdate *u, gossipDropReason *why) {
    uint8_t kind;
    if (!get8(c, &kind) || !get32(c, &u->node) || !get64(c, &u->incarnation)) {
        *why = GOSSIP_DROP_TRUNCATED;
        return -1;
    }
    if (!kindValid(kind) || u->node == 0 || u->incarnation > GOSSIP_INCARNATION_MAX) {
        *why = GOSSIP_DROP_BAD_VALUE;
        return -1;
    }
    u->kind = (gossipState)kind;
    u->from = 0;
    u->meta_len = 0;
    memset(&u->addr, 0, sizeof u->addr);
    switch (u->kind) {
    case GOSSIP_ALIVE:
        if (getAddr(c, &u->addr, why) == -1) return -1;
        if (getMeta(c, u, why) == -1) return -1;
        break;
    case GOSSIP_SUSPECT:
    case GOSSIP_DEAD:
        if (!get32(c, &u->from)) {
            *why = GOSSIP_DROP_TRUNCATED;
            return -1;
        }
        if (u->from == 0) {
            *why = GOSSIP_DROP_BAD_VALUE;
            return -1;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* ---- Datagrams -------------------------------------------------------- */

static size_t bodySize(const gossipMsgHeader *m) {
    switch (m->type) {
    case GOSSIP_MSG_PING:
        return 9;
    case GOSSIP_MSG_ACK:
    case GOSSIP_MSG_NACK:
        return 4;
    case GOSSIP_MSG_PING_REQ:
        return 8 + addrSize(&m->target_addr);
    default:
        return 0;
    }
}

size_t gossipEncodeMsgHeader(const gossipMsgHeader *m, uint8_t *out, size_t cap) {
    assert(m->type >= GOSSIP_MSG_PING && m->type <= GOSSIP_MSG_GOSSIP && m->sender != 0);
    size_t n = 6 + bodySize(m) + 1;
    if (n > cap) return 0;
    uint8_t *p = out;
    p = put8(p, GOSSIP_WIRE_VERSION);
    p = put8(p, (uint8_t)m->type);
    p = put32(p, m->sender);
    switch (m->type) {
    case GOSSIP_MSG_PING:
        p = put32(p, m->seq);
        p = put32(p, m->target);
        p = put8(p, m->flags);
        break;
    case GOSSIP_MSG_ACK:
    case GOSSIP_MSG_NACK:
        p = put32(p, m->seq);
        break;
    case GOSSIP_MSG_PING_REQ:
        p = put32(p, m->seq);
        p = put32(p, m->target);
        p = putAddr(p, &m->target_addr);
        break;
    default:
        break;
    }
    p = put8(p, 0);
    assert((size_t)(p - out) == n);
    return n;
}

size_t gossipEncodePacket(const gossipMsg *m, uint8_t *out, size_t cap) {
    assert(m->n_updates <= GOSSIP_MAX_UPDATES_PER_PACKET);
    size_t n = gossipEncodeMsgHeader(&m->h, out, cap);
    if (n == 0) return 0;
    for (size_t i = 0; i < m->n_updates; i++) {
        size_t u = gossipEncodeUpdate(&m->updates[i], out + n, cap - n);
        if (u == 0) return 0;
        n += u;
    }
    /* The count is the header's last byte. */
    size_t count_at = 6 + bodySize(&m->h);
    out[count_at] = (uint8_t)m->n_updates;
    return n;
}

int gossipDecodePacket(const uint8_t *p, size_t len, gossipMsg *msg, gossipDropReason *why) {
    cursor c = {p, len, 0};
    gossipMsgHeader *m = &msg->h;
    uint8_t version, type, count;
    if (len > GOSSIP_MAX_DATAGRAM_BYTES) {
        *why = GOSSIP_DROP_OVERSIZED;
        return -1;
    }
    if (!get8(&c, &version)) goto truncated;
    if (version != GOSSIP_WIRE_VERSION) {
        *why = GOSSIP_DROP_BAD_VERSION;
        return -1;
    }
    if (!get8(&c, &type)) goto truncated;
    if (type < GOSSIP_MSG_PING || type > GOSSIP_MSG_GOSSIP) {
        *why = GOSSIP_DROP_UNKNOWN_TYPE;
        return -1;
    }
    m->type = (gossipMsgType)type;
    m->seq = 0;
    m->target = 0;
    m->flags = 0;
    memset(&m->target_addr, 0, sizeof m->target_addr);
    if (!get32(&c, &m->sender)) goto truncated;
    if (m->sender == 0) goto bad;
    switch (m->type) {
    case GOSSIP_MSG_PING:
        if (!get32(&c, &m->seq) || !get32(&c, &m->target) || !get8(&c, &m->flags)) goto truncated;
        if (m->target == 0 || (m->flags & ~GOSSIP_PING_JOIN)) goto bad;
        break;
    case GOSSIP_MSG_ACK:
    case GOSSIP_MSG_NACK:
        if (!get32(&c, &m->seq)) goto truncated;
        break;
    case GOSSIP_MSG_PING_REQ:
        if (!get32(&c, &m->seq) || !get32(&c, &m->target)) goto truncated;
        if (m->target == 0) goto bad;
        if (getAddr(&c, &m->target_addr, why) == -1) return -1;
        break;
    default:
        break;
    }
    if (!get8(&c, &count)) goto truncated;
    if (count > GOSSIP_MAX_UPDATES_PER_PACKET) {
        *why = GOSSIP_DROP_OVERSIZED;
        return -1;
    }
    if ((size_t)count * GOSSIP_UPDATE_MIN_BYTES > len - c.pos) goto truncated;
    for (size_t i = 0; i < count; i++) {
        if (getUpdate(&c, &msg->updates[i], why) == -1) return -1;
    }
    msg->n_updates = count;
    if (c.pos != len) goto bad;
    return 0;
truncated:
    *why = GOSSIP_DROP_TRUNCATED;
    return -1;
bad:
    *why = GOSSIP_DROP_BAD_VALUE;
    return -1;
}

/* ---- State blobs ------------------------------------------------------ */

void gossipEncodeStateHeader(buf *out, uint32_t sender, uint32_t count) {
    uint8_t h[GOSSIP_STATE_HEADER_BYTES], *p = h;
    p = put8(p, GOSSIP_WIRE_VERSION);
    p = put8(p, GOSSIP_MSG_STATE);
    p = put32(p, sender);
    p = put32(p, count);
    bufAppend(out, h, sizeof h);
}

void gossipEncodeStateEntry(buf *out, const gossipUpdate *e) {
    assert(kindValid((uint8_t)e->kind) && e->node != 0 && e->meta_len <= GOSSIP_META_MAX);
    uint8_t tmp[GOSSIP_STATE_ENTRY_MAX_BYTES], *p = tmp;
    p = put8(p, (uint8_t)e->kind);
    p = put32(p, e->node);
    p = put64(p, e->incarnation);
    p = putAddr(p, &e->addr);
    p = put8(p, e->meta_len);
    memcpy(p, e->meta, e->meta_len);
    p += e->meta_len;
    bufAppend(out, tmp, (size_t)(p - tmp));
}

static int getStateEntry(cursor *c, gossipUpdate *e, gossipDropReason *why) {
    uint8_t kind;
    if (!get8(c, &kind) || !get32(c, &e->node) || !get64(c, &e->incarnation)) {
        *why = GOSSIP_DROP_TRUNCATED;
        return -1;
    }
    if (!kindValid(kind) || e->node == 0 || e->incarnation > GOSSIP_INCARNATION_MAX) {
        *why = GOSSIP_DROP_BAD_VALUE;
        return -1;
    }
    e->kind = (gossipState)kind;
    e->from = 0;
    if (getAddr(c, &e->addr, why) == -1) return -1;
    return getMeta(c, e, why);
}

int gossipStateOpen(gossipStateReader *r, const uint8_t *p, size_t len, gossipDropReason *why) {
    cursor c = {p, len, 0};
    uint8_t version, type;
    uint32_t sender, count;
    if (len > GOSSIP_STATE_MAX_BYTES) {
        *why = GOSSIP_DROP_OVERSIZED;
        return -1;
    }
    if (!get8(&c, &version)) goto truncated;
    if (version != GOSSIP_WIRE_VERSION) {
        *why = GOSSIP_DROP_BAD_VERSION;
        return -1;
    }
    if (!get8(&c, &type)) goto truncated;
    if (type != GOSSIP_MSG_STATE) {
        *why = GOSSIP_DROP_UNKNOWN_TYPE;
        return -1;
    }
    if (!get32(&c, &sender) || !get32(&c, &count)) goto truncated;
    if (sender == 0) {
        *why = GOSSIP_DROP_BAD_VALUE;
        return -1;
    }
    if (count > GOSSIP_STATE_MAX_MEMBERS) {
        *why = GOSSIP_DROP_OVERSIZED;
        return -1;
    }
    if ((size_t)count * GOSSIP_STATE_ENTRY_MIN_BYTES > len - c.pos) goto truncated;
    size_t first = c.pos;
    gossipUpdate e;
    for (uint32_t i = 0; i < count; i++) {
        if (getStateEntry(&c, &e, why) == -1) return -1;
    }
    if (c.pos != len) {
        *why = GOSSIP_DROP_BAD_VALUE;
        return -1;
    }
    r->p = p;
    r->len = len;
    r->pos = first;
    r->sender = sender;
    r->count = count;
    r->next = 0;
    return 0;
truncated:
    *why = GOSSIP_DROP_TRUNCATED;
    return -1;
}

bool gossipStateNext(gossipStateReader *r, gossipUpdate *out) {
    if (r->next == r->count) return false;
    cursor c = {r->p, r->len, r->pos};
    gossipDropReason why;
    int ok = getStateEntry(&c, out, &why);
    /* gossipStateOpen validated every entry. */
    assert(ok == 0);
    (void)ok;
    r->pos = c.pos;
    r->next++;
    return true;
}
