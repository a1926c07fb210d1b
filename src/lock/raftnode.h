/* One Raft server of the lock coordinator, on the agent's libuv loop.
 *
 * A raftNode runs a libraft 0.15 server (raft_uv storage under
 * <data_dir>/raft, TCP transport behind the cluster-key handshake of
 * raftauth.h) over a generic state machine of byte strings: the caller
 * proposes an entry, every node applies it in log order through
 * raftNodeFsm.apply, and the proposer is told the log index and the bytes
 * its own apply produced. The lock table (table.c) is that state machine;
 * this module knows nothing of locks.
 *
 * Why a wrapper and not libraft directly: libraft 0.15 leaves a lot to its
 * user, which we measured the hard way. This module takes care of it:
 *   - defaults that fail over in ~0.5-1 s (election 300 ms, heartbeat 50 ms,
 *     pre-vote) instead of libraft's 2-4.5 s;
 *   - a 1 s install-snapshot retry and bounded snapshot threshold/trailing,
 *     so a restarted follower does not stall 30 s catching up;
 *   - entries padded to 8 bytes: libraft cannot reload a log holding an
 *     entry of any other length (canonical/raft#189, #304);
 *   - a leader-change callback (0.15 has none: a uv_check watches
 *     raft_state()/raft_leader() after every loop iteration);
 *   - an apply adapter that never returns non-zero (that would stop all
 *     applying) and routes each result to its proposer only;
 *   - an exclusive flock on <data_dir>/raft/LOCK (libraft takes none) and a
 *     free-space check before each proposal (libraft crashed when the disk
 *     filled with applies in flight);
 *   - bootstrap on first start from the peer list, plain restart after;
 *   - messages that carry raft_errmsg() and the io layer's message, since
 *     raft_strerror() often says only "unknown error";
 *   - SIGPIPE ignored (if still at its default): libraft writes to sockets
 *     whose peer may be gone.
 *
 * Reads: raftNodeIsLeader() is a hint. A leader cut off from the others
 * believes it leads for up to an election timeout, so never answer a read
 * from leader state alone: go through the log (raftNodePropose) or call
 * raftNodeBarrier() first and answer in its callback.
 *
 * Ownership: raftNodeStart copies what it needs from cfg and fsm (the
 * strings, peer arrays and keys may be freed when it returns; fsm->ctx
 * must live until the close callback). raftNodePropose copies data. Every
 * pointer handed to a callback (apply's data, restore's data, a result's
 * data, leader_address and err) is valid only during that callback; copy
 * what you keep. apply and snapshot append to the buf they are given and
 * never free it. The string from raftNodeLeaderAddress() and
 * raftNodeErrmsg() lives until the next call on the node.
 *
 * Disk: a log segment that fails its checksum is handled by libraft: at
 * the tail of the log it is renamed corrupt-* (with the segments after it)
 * and the node starts from what is left, which we log as an error; further
 * back it stops raftNodeStart with a message naming the file. The way back
 * is on the docs page (remove the node, wipe <data_dir>/raft, rejoin).
 *
 * Everything here runs on the loop's thread. Callbacks never run inside the
 * call that registered them; pending ones may run inside raftNodeClose. */
#ifndef DMKV_LOCK_RAFTNODE_H
#define DMKV_LOCK_RAFTNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct uv_loop_s uv_loop_t;
typedef struct raftNode raftNode;

/* Status codes of raftNode calls and results; raftNodeStatusName() names
 * them. */
#define RAFT_NODE_OK              0
#define RAFT_NODE_NOT_LEADER      -1 /* ask raftNodeLeaderId/Address (or the result) where to go */
#define RAFT_NODE_NO_SPACE        -2 /* the data disk is below min_free_bytes */
#define RAFT_NODE_TOO_BIG         -3 /* entry larger than max_entry_bytes */
#define RAFT_NODE_LEADERSHIP_LOST -4 /* stepped down first: the entry may still commit */
#define RAFT_NODE_CLOSED          -5 /* the node is closing */
#define RAFT_NODE_BUSY            -6 /* another membership change is in progress */
#define RAFT_NODE_INVALID         -7 /* bad argument; the message says which */
#define RAFT_NODE_ERROR           -8 /* anything else; the message says what */

/* Bytes of one cluster key (the same 32-byte keys the keyring holds). */
#define RAFT_NODE_KEY_BYTES 32
/* Longest raft address, "host:port". */
#define RAFT_NODE_MAX_ADDRESS 255

/* The replicated state machine. Called on the loop, on every node, in log
 * order. */
typedef struct raftNodeFsm {
    void *ctx;
    /* Applies the committed entry at index and appends the result bytes to
     * out (may leave it empty). Must not fail: an operation that cannot be
     * done reports that inside its result, because every node must reach
     * the same state. data is valid only during the call. */
    void (*apply)(void *ctx, uint64_t index, const uint8_t *data, size_t len, buf *out);
    /* Appends the whole state to out. Non-zero: no snapshot this time. */
    int (*snapshot)(void *ctx, buf *out);
    /* Replaces the whole state with a snapshot's bytes (valid only during
     * the call). Non-zero means the bytes are corrupt; libraft then stops
     * this node. */
    int (*restore)(void *ctx, const uint8_t *data, size_t len);
} raftNodeFsm;

/* Every field that is 0 or NULL takes the default named beside it. */
typedef struct raftNodeConfig {
    uint64_t id;              /* dmkv node id, > 0, also the Raft server id */
    const char *address;      /* this node's Raft address "IPv4:port", as the others dial it */
    const char *bind_address; /* listen here instead, e.g. "0.0.0.0:6001" (same port) */
    const char *data_dir;     /* Raft files live in <data_dir>/raft (created 0700) */
    /* Initial configuration, used only on first start (no Raft data yet).
     * Identical on every node and including this one; all are voters. */
    size_t npeers;
    const uint64_t *peer_ids;
    const char *const *peer_addresses;
    /* Start with no configuration and wait to be added by the leader with
     * raftNodeAddVoter(); npeers must then be 0. */
    bool join;
    /* ncluster_keys keys of RAFT_NODE_KEY_BYTES, back to back: the first
     * one is used to connect, any of them is accepted (key rotation). 0
     * keys: Raft traffic is not authenticated. */
    const uint8_t *cluster_keys;
    size_t ncluster_keys;
    unsigned election_timeout_ms;         /* 300; libraft randomizes it to 1-2x */
    unsigned heartbeat_timeout_ms;        /* 50; must be below the election timeout */
    unsigned install_snapshot_timeout_ms; /* 1000; leader resends a snapshot after this */
    unsigned snapshot_threshold;          /* 1024 entries applied between snapshots */
    unsigned snapshot_trailing;           /* 512 entries kept in the log after a snapshot */
    unsigned connect_retry_ms;            /* 250; delay before redialing a peer */
    unsigned handshake_timeout_ms;        /* 2000; cluster-key handshake deadline */
    uint64_t min_free_bytes;              /* 64 MiB; proposals are refused below this */
    size_t max_entry_bytes;               /* 4 MiB; largest proposal */
} raftNodeConfig;

/* What a proposal, barrier or membership change came to. Pointers are
 * valid only during the callback. */
typedef struct raftNodeResult {
    int status;          /* RAFT_NODE_OK or an error code */
    uint64_t index;      /* log index of the entry, 0 if it never got one */
    const uint8_t *data; /* proposals: what this node's fsm apply wrote */
    size_t len;
    uint64_t leader_id;         /* leader known when the callback runs, 0 if none */
    const char *leader_address; /* its address, "" if none */
    const char *err;            /* a sentence when status != OK, else "" */
} raftNodeResult;

typedef void (*raftNodeResultCb)(void *ctx, const raftNodeResult *res);

enum raftNodeState {
    RAFT_NODE_UNAVAILABLE = 0,
    RAFT_NODE_FOLLOWER = 1,
    RAFT_NODE_CANDIDATE = 2,
    RAFT_NODE_LEADER = 3
};

struct raftNodeStats {
    int state; /* enum raftNodeState */
    uint64_t term;
    uint64_t commit_index;
    uint64_t last_applied;
    uint64_t last_index;
    uint64_t leader_id;
    unsigned voters;             /* voters in the current configuration */
    uint64_t entries_applied;    /* fsm applies since start */
    uint64_t snapshots_taken;    /* fsm snapshots since start */
    uint64_t snapshots_restored; /* fsm restores since start (at start-up or installed) */
    uint64_t leader_changes;     /* leader-change notifications since start */
    uint64_t proposals_pending;  /* proposed here, not yet applied or failed */
    uint64_t pending_bytes;
    uint64_t auth_accepted;  /* incoming Raft connections that proved the cluster key */
    uint64_t auth_rejected;  /* incoming Raft connections dropped by the handshake */
    uint64_t auth_connected; /* outgoing connections whose peer proved the key */
    uint64_t auth_refused;   /* outgoing handshakes that failed */
};

/* Starts a node: locks <data_dir>/raft, bootstraps on first start, starts
 * the server and its listener. Sets SIGPIPE to ignored if it is still at
 * its default. Returns RAFT_NODE_OK and sets *out, or an error code with a
 * sentence in err. If the failure comes after libraft was initialized,
 * cleanup finishes on the loop: run it before closing the loop. */
int raftNodeStart(uv_loop_t *loop, const raftNodeConfig *cfg, const raftNodeFsm *fsm,
                  raftNode **out, char *err, size_t errlen);

/* Proposes one entry (copied; pack a batch into one entry). Returns
 * RAFT_NODE_OK and later calls cb exactly once: OK with the index and this
 * node's apply result once applied here, or a failure. On any other return
 * cb is never called and raftNodeErrmsg() says why. */
int raftNodePropose(raftNode *n, const void *data, size_t len, raftNodeResultCb cb, void *ctx);
/* Appends a barrier; cb runs once every entry before it is applied here,
 * which also proves this node was still leader when it committed. Same
 * return rules as raftNodePropose. */
int raftNodeBarrier(raftNode *n, raftNodeResultCb cb, void *ctx);
/* Membership changes, on the leader, one at a time. AddVoter adds the node
 * as a spare, then promotes it once it has caught up; adding an existing
 * voter again succeeds (after a barrier). The new node must be running
 * with join set. Same return rules as raftNodePropose. */
int raftNodeAddVoter(raftNode *n, uint64_t id, const char *address, raftNodeResultCb cb, void *ctx);
int raftNodeRemove(raftNode *n, uint64_t id, raftNodeResultCb cb, void *ctx);

bool raftNodeIsLeader(raftNode *n);
uint64_t raftNodeLeaderId(raftNode *n);
/* "" when no leader is known. Valid until the next call or loop iteration. */
const char *raftNodeLeaderAddress(raftNode *n);
uint64_t raftNodeTerm(raftNode *n);
/* cb runs (on the loop, after the change) whenever the known leader or,
 * with a leader known, the term changes; leader_id 0 means none is known.
 * One callback per node; NULL removes it. */
void raftNodeOnLeaderChange(raftNode *n, void (*cb)(void *ctx, uint64_t leader_id), void *ctx);
void raftNodeStats(raftNode *n, struct raftNodeStats *st);
/* The sentence for the last error a call on n returned. */
const char *raftNodeErrmsg(raftNode *n);

/* Stops the node: pending proposals fail (LEADERSHIP_LOST or CLOSED),
 * connections close, the data directory is unlocked, n is freed and then
 * done(ctx) runs (done may be NULL). Call once; n must not be used after.
 * Safe from inside any raftNode callback. */
void raftNodeClose(raftNode *n, void (*done)(void *ctx), void *ctx);

const char *raftNodeStatusName(int status);
const char *raftNodeStateName(int state);

#endif
