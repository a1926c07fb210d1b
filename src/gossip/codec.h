/* Wire format of gossip datagrams and push-pull state blobs.
 *
 * Both forms start with a version byte and a type byte, store every
 * integer little-endian at a fixed width and every variable field behind
 * an explicit length, so a decoder can bound each read before making it.
 * Every datagram comes from the network, so the decoder checks every
 * length against what remains, rejects impossible values, and rejects
 * trailing bytes: an accepted datagram re-encodes to exactly its bytes,
 * and no proper prefix of a valid datagram is itself valid. This file is
 * separate from the state machine so the fuzz target can drive it alone.
 *
 * Datagram:
 *   u8 version (1) | u8 type | u32 sender id | body | u8 n | n updates
 *   PING      u32 seq | u32 target id | u8 flags (bit 0: join)
 *   ACK, NACK u32 seq
 *   PING_REQ  u32 seq | u32 target id | addr
 *   GOSSIP    (nothing: updates only)
 * Update:
 *   u8 kind (1 alive, 2 suspect, 3 dead, 4 left) | u32 node | u64 incarnation
 *   alive:          addr | u8 meta_len | meta
 *   suspect, dead:  u32 from (the accuser)
 *   left:           (nothing)
 * Address:
 *   u8 host_len | host (IPv4/IPv6 literal, no NUL) | u16 udp port | u16 tcp port
 * State blob:
 *   u8 version (1) | u8 type (16) | u32 sender id | u32 count |
 *   count * (u8 state | u32 node | u64 incarnation | addr | u8 meta_len | meta) */
#ifndef DMKV_GOSSIP_CODEC_H
#define DMKV_GOSSIP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip/gossip.h"
#include "util/buf.h"

#define GOSSIP_WIRE_VERSION 1

typedef enum gossipMsgType {
    GOSSIP_MSG_PING = 1,
    GOSSIP_MSG_ACK = 2,
    GOSSIP_MSG_PING_REQ = 3,
    GOSSIP_MSG_NACK = 4,
    GOSSIP_MSG_GOSSIP = 5,
    GOSSIP_MSG_STATE = 16 /* push-pull blob; never a datagram */
} gossipMsgType;

/* PING flag: the sender is joining and wants our record in the ack. */
#define GOSSIP_PING_JOIN 0x01

/* Longest host literal, without NUL. */
#define GOSSIP_HOST_LEN_MAX (GOSSIP_HOST_MAX - 1)
/* A left update: kind, node, incarnation. */
#define GOSSIP_UPDATE_MIN_BYTES 13
/* An alive update with the longest host and metadata. */
#define GOSSIP_UPDATE_MAX_BYTES (13 + 1 + GOSSIP_HOST_LEN_MAX + 4 + 1 + GOSSIP_META_MAX)
/* More than fit in GOSSIP_MAX_DATAGRAM_BYTES of the smallest updates. */
#define GOSSIP_MAX_UPDATES_PER_PACKET 128

/* Push-pull: entries in one blob, and the largest blob, so a TCP reader
 * can refuse a length before buffering it. */
#define GOSSIP_STATE_MAX_MEMBERS     65536
#define GOSSIP_STATE_HEADER_BYTES    10
#define GOSSIP_STATE_ENTRY_MIN_BYTES 20
#define GOSSIP_STATE_ENTRY_MAX_BYTES (13 + 1 + GOSSIP_HOST_LEN_MAX + 4 + 1 + GOSSIP_META_MAX)
#define GOSSIP_STATE_MAX_BYTES                                                                     \
    (GOSSIP_STATE_HEADER_BYTES + (size_t)GOSSIP_STATE_MAX_MEMBERS * GOSSIP_STATE_ENTRY_MAX_BYTES)

/* One membership claim. kind is ALIVE..LEFT; addr and meta are meaningful
 * for ALIVE (and in state blobs for every kind), from for SUSPECT and
 * DEAD in datagrams. */
typedef struct gossipUpdate {
    gossipState kind;
    uint32_t node;
    uint64_t incarnation;
    uint32_t from;
    gossipAddr addr;
    uint8_t meta_len;
    uint8_t meta[GOSSIP_META_MAX];
} gossipUpdate;

/* The fixed part of a datagram. seq for PING, ACK, NACK, PING_REQ; target
 * for PING and PING_REQ; target_addr for PING_REQ; flags for PING. */
typedef struct gossipMsgHeader {
    gossipMsgType type;
    uint32_t sender;
    uint32_t seq;
    uint32_t target;
    uint8_t flags;
    gossipAddr target_addr;
} gossipMsgHeader;

/* A decoded datagram. */
typedef struct gossipMsg {
    gossipMsgHeader h;
    size_t n_updates;
    gossipUpdate updates[GOSSIP_MAX_UPDATES_PER_PACKET];
} gossipMsg;

/* True when host is a NUL-terminated IPv4 or IPv6 literal and the UDP port
 * is not 0. */
bool gossipAddrValid(const gossipAddr *a);

/* Parses a dotted-quad IPv4 literal as inet_pton does, without its
 * overhead: the decoder checks every address it reads. */
bool gossipParseIPv4(const char *s, uint8_t out[4]);

/* Bytes gossipEncodeUpdate writes for u. */
size_t gossipUpdateSize(const gossipUpdate *u);
/* Writes u at out; returns its size, or 0 (writing nothing) if it needs
 * more than cap bytes. u must be valid. */
size_t gossipEncodeUpdate(const gossipUpdate *u, uint8_t *out, size_t cap);
/* Writes the fixed part (version, type, sender, body) and an update count
 * of 0 as its last byte; returns the size, or 0 if above cap. */
size_t gossipEncodeMsgHeader(const gossipMsgHeader *h, uint8_t *out, size_t cap);
/* Writes all of m, updates included; returns the size, or 0 if above cap. */
size_t gossipEncodePacket(const gossipMsg *m, uint8_t *out, size_t cap);
/* Decodes one datagram. Returns 0, or -1 with *why set (and out in an
 * unspecified state) on malformed input. */
int gossipDecodePacket(const uint8_t *p, size_t len, gossipMsg *out, gossipDropReason *why);

/* State blob: a header, then count entries (kind = the member's state). */
void gossipEncodeStateHeader(buf *out, uint32_t sender, uint32_t count);
void gossipEncodeStateEntry(buf *out, const gossipUpdate *e);

/* Reads a state blob: gossipStateOpen validates the whole blob first, so a
 * caller can apply it all or nothing; gossipStateNext then returns the
 * entries one by one. */
typedef struct gossipStateReader {
    const uint8_t *p;
    size_t len, pos;
    uint32_t sender;
    uint32_t count, next;
} gossipStateReader;

int gossipStateOpen(gossipStateReader *r, const uint8_t *p, size_t len, gossipDropReason *why);
bool gossipStateNext(gossipStateReader *r, gossipUpdate *out);

#endif
