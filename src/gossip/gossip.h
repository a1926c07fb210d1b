/* Cluster membership and failure detection: SWIM with the Lifeguard
 * refinements, as a pure state machine.
 *
 * This module owns each node's view of the cluster: which members exist,
 * their addresses and metadata, and whether each is ALIVE, SUSPECT, DEAD or
 * LEFT, with the incarnation numbers that order those claims. It decides
 * whom to probe and when, turns silence into suspicion and suspicion into
 * death, refutes rumours about itself, and disseminates every change by
 * piggybacking it on protocol datagrams. It owns the binary forms of those
 * datagrams and of the full-state blob exchanged by push-pull (codec.h).
 *
 * It does no I/O and reads no clock: time comes in as now_ms arguments,
 * randomness from a generator seeded at creation, datagrams arrive through
 * gossipOnPacket and leave through gossipNextPacket, and membership changes
 * leave through gossipNextEvent. So the same code runs inside the agent
 * (bound to libuv UDP and TCP) and, by the thousand, inside the
 * deterministic simulator in tests/sim/sim_gossip.c.
 *
 * The protocol, by paper section:
 *  - SWIM §3.1 / §4.3: every protocol period a node pings one member,
 *    chosen in randomised round-robin order (the member list is shuffled,
 *    walked, and reshuffled at the end; a new member goes to a random
 *    place), so each member is probed at least once every 2(N-1) periods.
 *    If no ack comes within the probe timeout it asks indirect_checks other
 *    members to ping the target for it (ping-req) and relay the ack.
 *  - SWIM §4.2: no ack by the end of the period makes the target SUSPECT,
 *    not DEAD; a suspect that does not refute within the suspicion timeout
 *    becomes DEAD. Claims are ordered by the member's incarnation number,
 *    which only the member itself raises, to refute a suspicion.
 *  - SWIM §4.1: updates ride on pings, acks, ping-reqs, nacks, and on
 *    gossip datagrams sent every gossip_interval_ms to gossip_nodes random
 *    members, least-transmitted first; each is sent at most
 *    retransmit_mult * ceil(log10(N+1)) times.
 *  - Lifeguard's LHA-Suspicion: a suspicion timeout starts at its maximum
 *    and shrinks towards its minimum as independent confirmations arrive.
 *  - Lifeguard's LHA-Probe (local health): a node that misses acks and nacks it
 *    should have had raises its health score, which stretches its own
 *    probe interval and timeout, so a slow node suspects others less.
 *  - Lifeguard's Buddy System: a ping to a suspect carries the
 *    suspicion, so the suspect learns of it and refutes at once; a member
 *    that hears of a suspicion from others probes the suspect at its next
 *    period, so the suspect's ack brings it the refutation, or its failed
 *    probe is the independent confirmation that shortens the timeout.
 *  - Push-pull (memberlist's anti-entropy): the caller periodically
 *    exchanges full state with one member over TCP; the same exchange with
 *    a peer known only by its TCP address is how a node joins.
 *  - Two repairs for members that fall behind, because a rumour is sent a
 *    bounded number of times and under loss a few members miss it: a
 *    datagram carrying a claim older than ours is answered with our record
 *    (Demers et al.'s push-pull, per rumour), and, as memberlist gossips
 *    to the dead, gossip rounds also pick DEAD members and tell them, so a
 *    member wrongly declared dead, or on the far side of a healed
 *    partition, refutes within a round or two.
 *
 * Default timings and expected detection time. With probe interval I,
 * suspicion_mult S and N members:
 *
 *   T_dead ≈ T_first + T_suspicion + T_spread, where
 *   T_first     ≈ (1/2 + e/(e-1)) I ≈ 2.1 I   from a crash to the end of the
 *                 first failed probe of it: half a period of phase, then
 *                 SWIM §3.1's e/(e-1) periods until some member picks it (each
 *                 period all N-1 miss it with probability (1-1/(N-1))^(N-1),
 *                 1/4 for N = 3, -> 1/e), the last of which ends in failure
 *   T_suspicion = S * max(1, log10 N) * I      the minimum, reached as soon
 *                 as one independent confirmation (K = S-2 = 1) arrives,
 *                 which the re-probe above makes about one period; without
 *                 it, up to suspicion_max_timeout_mult times longer
 *   T_spread    ≈ 0-1 gossip interval: the others heard the suspicion one
 *                 gossip round after the first and their timers run about
 *                 as long, or the DEAD broadcast reaches them.
 *
 * With I = 500 ms, S = 3 and gossip every 200 ms, a 3-5 node LAN cluster
 * marks a kill -9'd member DEAD everywhere after about
 * 0.9-1.0 s + 1.5 s + 0.2 s ≈ 2.5 s (the simulator measures 2.3 s at
 * N = 10, 4.0 s at N = 100, 5.7 s at N = 1,000: tests/sim/sim_gossip.c
 * bench); log10 N stretches the suspicion in large clusters so that a
 * refutation has time to reach every member that heard the suspicion.
 * memberlist's DefaultLANConfig (I = 1 s, S = 4) gives
 * ≈ 2.1 + 4 * max(1, log10 N) s. The probe timeout of 200 ms is far above
 * a LAN round trip but lets an event loop busy with a disk flush answer;
 * a relay's nack arrives at 2 * 200 ms, before the 500 ms period ends,
 * which the health score needs.
 *
 * Calling contract: gossipTick must run when gossipNextDeadline says (the
 * agent also calls it every ~50 ms); after every call the caller drains
 * gossipNextPacket and gossipNextEvent. Incarnations of this node change
 * inside the module (refutations, metadata updates): every event whose id
 * is the node's own carries the new value, which the agent persists and
 * passes, raised by one, to gossipCreate after a restart. */
#ifndef DMKV_GOSSIP_GOSSIP_H
#define DMKV_GOSSIP_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Longest text form of an IPv6 address (INET6_ADDRSTRLEN), with its NUL. */
#define GOSSIP_HOST_MAX 46
/* Largest metadata blob a member may carry. */
#define GOSSIP_META_MAX 64
/* Hard bound on a gossip datagram's payload, whatever the configuration:
 * the design keeps every gossip datagram within 1400 bytes. */
#define GOSSIP_MAX_DATAGRAM_BYTES 1400
/* Smallest payload limit a configuration may set: one datagram must hold
 * any single message with at least one full-size update. */
#define GOSSIP_MIN_DATAGRAM_BYTES 512
/* Incarnations above this are rejected on the wire, so that a hostile or
 * corrupted peer cannot push a node's incarnation to where it can no
 * longer be raised to refute. */
#define GOSSIP_INCARNATION_MAX (UINT64_MAX / 2)

/* Where a member listens: host is an IPv4 or IPv6 literal. */
typedef struct gossipAddr {
    char host[GOSSIP_HOST_MAX];
    uint16_t udp_port;
    uint16_t tcp_port;
} gossipAddr;

typedef enum gossipState {
    GOSSIP_NONE = 0, /* in events only: not a member (before joining, after reaping) */
    GOSSIP_ALIVE = 1,
    GOSSIP_SUSPECT = 2,
    GOSSIP_DEAD = 3,
    GOSSIP_LEFT = 4
} gossipState;

const char *gossipStateName(gossipState s);

/* Every timing and limit, with defaults in gossipConfigDefault. */
typedef struct gossipConfig {
    uint32_t probe_interval_ms; /* 500: one protocol period (SWIM T') */
    uint32_t probe_timeout_ms;  /* 200: direct ack wait before ping-req; keep < interval/2 */
    uint32_t indirect_checks;   /* 3: members asked to ping-req a silent target (SWIM k) */
    uint32_t suspicion_mult;    /* 3: min suspicion = mult * max(1, log10 N) * interval */
    uint32_t suspicion_max_timeout_mult; /* 3: max suspicion = this * min suspicion */
    uint32_t retransmit_mult;            /* 4: sends per update = mult * ceil(log10(N + 1)) */
    uint32_t gossip_interval_ms;         /* 200: piggyback-only datagrams this often ... */
    uint32_t gossip_nodes;               /* 3: ... to this many random members; 0 turns it off */
    uint32_t push_pull_interval_ms; /* 30000: full-state exchange, see gossipPushPullIntervalMs */
    uint32_t dead_retain_ms;        /* 300000: DEAD and LEFT members are kept this long */
    uint32_t max_datagram_bytes;    /* 1359: 1400 minus the 41 bytes of the agent's encryption */
    uint32_t awareness_max_multiplier; /* 8: local health stretches timing up to this factor */
} gossipConfig;

void gossipConfigDefault(gossipConfig *c);
/* Returns 0, or -1 with a message in err saying which value is out of
 * range and what range is allowed. */
int gossipConfigCheck(const gossipConfig *c, char *err, size_t errlen);

/* Why an incoming datagram or state blob was dropped. */
typedef enum gossipDropReason {
    GOSSIP_DROP_TRUNCATED,    /* ends inside a field or before its updates */
    GOSSIP_DROP_BAD_VERSION,  /* first byte is not the wire version */
    GOSSIP_DROP_UNKNOWN_TYPE, /* message type byte not known */
    GOSSIP_DROP_BAD_VALUE,    /* impossible value: state byte, zero id or port,
                                 host that is not an IP literal, unknown flag,
                                 sender claiming our id, trailing bytes */
    GOSSIP_DROP_OVERSIZED,    /* datagram, host, meta or count above its limit */
    GOSSIP_DROP_WRONG_TARGET, /* a ping meant for another node id at this address */
    GOSSIP_DROP_OVERLOAD,     /* a ping-req while too many relays are pending */
    GOSSIP_DROP__COUNT
} gossipDropReason;

const char *gossipDropReasonName(gossipDropReason r);

typedef struct gossipStats {
    uint64_t probes_sent;             /* direct pings of our own probes */
    uint64_t acks_received;           /* our probes answered, directly or through a relay */
    uint64_t probes_failed;           /* our probes with no ack by the end of the period */
    uint64_t indirect_probes_sent;    /* ping-reqs we sent */
    uint64_t indirect_probes_relayed; /* ping-reqs we served for others */
    uint64_t nacks_received;
    uint64_t suspicions_raised;     /* ALIVE -> SUSPECT after our own failed probe */
    uint64_t suspicions_refuted;    /* times we raised our incarnation to refute */
    uint64_t members_declared_dead; /* our own suspicion timers that expired */
    uint64_t updates_sent;          /* membership updates carried by our datagrams */
    uint64_t updates_received;
    uint64_t msgs_sent, bytes_sent;
    uint64_t msgs_received, bytes_received;
    uint64_t stale_acks;       /* acks that matched no pending probe or relay */
    uint64_t corrections_sent; /* newer records sent back to senders of stale claims */
    uint64_t unknown_probers;  /* pings from members not yet known, asked for their record */
    uint64_t states_merged, states_rejected; /* push-pull blobs */
    uint64_t dropped[GOSSIP_DROP__COUNT];
} gossipStats;

/* One datagram to send. to_id is the destination's node id, or 0 when the
 * destination is known only by address. */
typedef struct gossipPacket {
    gossipAddr to;
    uint32_t to_id;
    size_t len;
    uint8_t data[GOSSIP_MAX_DATAGRAM_BYTES];
} gossipPacket;

/* A change in the record of one member (this node included): its state,
 * incarnation, address or metadata. old_state NONE means a new member,
 * new_state NONE means a DEAD or LEFT member was forgotten after
 * dead_retain_ms; old == new means only the incarnation, address or
 * metadata changed. */
typedef struct gossipEvent {
    uint32_t id;
    gossipAddr addr;
    gossipState old_state, new_state;
    uint64_t incarnation;
    uint64_t at_ms;
} gossipEvent;

typedef struct gossipMember {
    uint32_t id;
    gossipAddr addr;
    uint8_t meta[GOSSIP_META_MAX];
    size_t meta_len;
    gossipState state;
    uint64_t incarnation;
    uint64_t since_ms; /* last change of state */
    bool is_self;
} gossipMember;

typedef struct gossip gossip;

/* Returns NULL when the configuration fails gossipConfigCheck, self_id is
 * 0, self is not a valid address (IP literal host, non-zero UDP port),
 * meta_len exceeds GOSSIP_META_MAX or incarnation exceeds
 * GOSSIP_INCARNATION_MAX. The node starts knowing only itself. */
gossip *gossipCreate(const gossipConfig *cfg, uint32_t self_id, const gossipAddr *self,
                     const uint8_t *meta, size_t meta_len, uint64_t incarnation, uint64_t seed,
                     uint64_t now_ms);
void gossipFree(gossip *g);

/* Runs whatever is due at now_ms: probes, indirect probes, nacks owed as a
 * relay, suspicion expiry, gossip rounds and reaping. */
void gossipTick(gossip *g, uint64_t now_ms);
/* The earliest time gossipTick has something to do, UINT64_MAX if none. */
uint64_t gossipNextDeadline(const gossip *g);

/* One decrypted datagram from the UDP address `from`. Malformed input is
 * counted in the stats by reason and otherwise ignored. */
void gossipOnPacket(gossip *g, uint64_t now_ms, const uint8_t *data, size_t len,
                    const gossipAddr *from);

/* Outgoing datagrams, oldest first; each at most max_datagram_bytes. */
bool gossipNextPacket(gossip *g, gossipPacket *out);
/* Membership changes, oldest first. */
bool gossipNextEvent(gossip *g, gossipEvent *ev);

/* ---- Queries ---------------------------------------------------------- */

uint32_t gossipSelfId(const gossip *g);
uint64_t gossipSelfIncarnation(const gossip *g);
/* Members known, in any state, this node included. */
size_t gossipMemberCount(const gossip *g);
size_t gossipCountState(const gossip *g, gossipState s);
/* The i-th member for 0 <= i < gossipMemberCount, in no particular order;
 * any other call on g may reorder them. */
bool gossipMemberAt(const gossip *g, size_t i, gossipMember *out);
bool gossipLookup(const gossip *g, uint32_t id, gossipMember *out);
/* Lifeguard health score: 0 is healthy; timing is stretched by score+1. */
uint32_t gossipHealthScore(const gossip *g);
const gossipStats *gossipGetStats(const gossip *g);

/* ---- Own record ------------------------------------------------------- */

/* Replaces this node's metadata, raises its incarnation and broadcasts it.
 * Returns -1 if meta_len exceeds GOSSIP_META_MAX or the node has left. */
int gossipUpdateMeta(gossip *g, uint64_t now_ms, const uint8_t *meta, size_t meta_len);

/* Sends a join ping to a peer whose UDP address and id are known. It
 * carries this node's record, and asks the peer to answer with its own, so
 * each learns the other and the rest follows by gossip. Datagrams get
 * lost: the caller repeats it until the peer shows up as a member, and
 * prefers push-pull when the peer's TCP address is known. Returns -1 for
 * an invalid address or an id that is 0 or our own. */
int gossipJoin(gossip *g, uint64_t now_ms, uint32_t peer_id, const gossipAddr *peer);

/* Graceful leave: marks this node LEFT, broadcasts it, stops probing.
 * Others record LEFT, never DEAD. The caller keeps the node running (ticks,
 * packets) until gossipLeaveDone or a short timeout, so the news spreads
 * and pings sent meanwhile are still answered. */
void gossipLeave(gossip *g, uint64_t now_ms);
/* True once the LEFT broadcast has been sent its full number of times, or
 * there is nobody left to tell. */
bool gossipLeaveDone(const gossip *g);

/* Operator's removal of a failed member (Consul's force-leave): marks a
 * DEAD member LEFT at its incarnation and broadcasts it, so that every
 * member stops waiting for it. LEFT already is accepted as done. If the
 * member is in fact running, it refutes the claim when it hears it and is
 * ALIVE again everywhere. */
typedef enum gossipForceLeaveResult {
    GOSSIP_FORCE_LEAVE_OK = 0,
    GOSSIP_FORCE_LEAVE_UNKNOWN,   /* no member with that id */
    GOSSIP_FORCE_LEAVE_SELF,      /* this node: stop it instead (SIGTERM) */
    GOSSIP_FORCE_LEAVE_NOT_FAILED /* ALIVE or SUSPECT: only DEAD members */
} gossipForceLeaveResult;
gossipForceLeaveResult gossipForceLeave(gossip *g, uint64_t now_ms, uint32_t id);

/* ---- Push-pull -------------------------------------------------------- */

/* Picks the member to exchange state with next: a random ALIVE member, or,
 * with probability dead / (alive + dead), a random DEAD one still retained
 * (Serf's reconnect), which is how the two sides of a healed partition
 * that declared each other DEAD meet again. Returns false when there is
 * nobody. */
bool gossipPickPushPullTarget(gossip *g, gossipMember *out);
/* How often to push-pull: push_pull_interval_ms, scaled as memberlist does
 * above 32 members by ceil(log2 N - log2 32) + 1, so that the cluster-wide
 * cost of full-state exchanges grows like N log N rather than N^2. */
uint64_t gossipPushPullIntervalMs(const gossip *g);

/* Appends the full state blob: every member known, in every state, with
 * its address, metadata and incarnation. */
void gossipEncodeState(const gossip *g, buf *out);
/* Applies a peer's state blob with the same rules as gossip, except that a
 * member the peer holds DEAD is only suspected here (memberlist does the
 * same: the peer's view may be old, and a suspicion lets the member refute
 * where a death would be final). Entries about this node that claim it is
 * suspect, dead or left are refuted. Returns 0, or -1 on malformed input,
 * in which case nothing is applied. In an exchange the responder merges
 * first and then encodes its reply, so the reply carries its refutations. */
int gossipMergeState(gossip *g, uint64_t now_ms, const uint8_t *data, size_t len);
/* Like gossipMergeState but queues no broadcasts: for a node reloading a
 * member list it saved, or a simulator building an already-joined cluster
 * without a storm of redundant rumours. */
int gossipRestoreState(gossip *g, uint64_t now_ms, const uint8_t *data, size_t len);

#endif
