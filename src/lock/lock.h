/* The lock table: the deterministic state machine behind dmkv's
 * distributed mutex, and the binary forms of its inputs, outputs and
 * snapshots.
 *
 * Every node keeps a copy of the table and applies to it the same Raft log
 * entries in the same order, so every copy goes through the same states
 * and produces the same results; the Raft leader is the coordinator that
 * proposes entries. That only holds because the table is pure: it does no
 * I/O, reads no clock and draws no random numbers. Time never enters it:
 * a lease is recorded as (ttl_ms, index of the entry that granted or
 * renewed it), and only the leader, with its own monotonic clock, decides
 * that a lease ran out and proposes EXPIRE. The Raft glue (raftnode.c)
 * and the server are the only callers.
 *
 * What the table holds. A lock is a name (1 to LOCK_NAME_MAX bytes, any
 * bytes) with exactly one holder and a FIFO queue of waiters; a lock with
 * no holder does not exist (releasing the last holder of a lock without
 * waiters forgets it, and a released lock with waiters is granted at once
 * to the first). A holder or waiter is an owner, a client connection on a
 * node, and the req of the ACQUIRE that put it there. An owner has at most
 * one place per lock: held or queued. Bounds: LOCK_MAX_LOCKS locks,
 * LOCK_MAX_WAITERS per lock, LOCK_MAX_WAITERS_TOTAL in the table; an
 * ACQUIRE past them is refused with LOCK_ERR_FULL.
 *
 * Operations (a lockOp; every op carries a req chosen by the proposer,
 * echoed in its result):
 *   ACQUIRE(name, owner, ttl_ms)  free: granted now (LOCK_OK + token).
 *       Held or queued by this owner already: its current place is
 *       returned unchanged (LOCK_OK + its token, or LOCK_QUEUED), so a
 *       retry after a leader change never queues twice. Otherwise queued
 *       at the end (LOCK_QUEUED). ttl_ms 0 means no lease.
 *   RELEASE(name, owner, token)   the holder gives the lock back; the first
 *       waiter is granted. Anyone else: LOCK_ERR_NOT_HOLDER, no change.
 *   CANCEL(name, owner, req)      a waiter whose wait ran out gives up.
 *       Matches the place this owner got from the ACQUIRE with this req:
 *       still queued: removed (LOCK_OK); already granted:
 *       LOCK_ALREADY_GRANTED with the token, and the proposer should
 *       RELEASE it; no such place: LOCK_ERR_NOT_WAITING.
 *   EXPIRE_LEASE(name, token, granted_index)  the leader saw the lease
 *       run out. Applies only while that token still holds the lock and
 *       its lease was last started by the entry granted_index (else
 *       LOCK_ERR_NOT_HOLDER, no change): a RENEW committed after the
 *       leader decided, but before this op, keeps the lock. Proposing it
 *       twice is harmless.
 *   EXPIRE(name, token)           the older form, without granted_index:
 *       applies while that token holds the lock, renewed or not. Still
 *       decoded and applied so logs written by earlier versions replay
 *       the same; the coordinator proposes EXPIRE_LEASE.
 *   RENEW(name, owner, token, ttl_ms)  the holder extends its lease: ttl_ms
 *       and granted_index are reset to this op's values and entry.
 *   OWNER_GONE(owner)             the client connection closed: every lock
 *       it holds is released and every queue it waits in forgets it.
 *   NODE_DEAD(node)               gossip declared the node DEAD: the same,
 *       for every owner on that node.
 * A release by RELEASE, EXPIRE(_LEASE), OWNER_GONE or NODE_DEAD grants the lock
 * to the next waiter in the same step. When one op releases many locks,
 * they are processed in name order (bytewise), which every replica
 * agrees on whatever its memory layout.
 *
 * Fencing tokens. A grant's token is the Raft index of the entry that
 * granted it, or, when that is not above the last token ever granted
 * (one entry granting twice, or more), last token + 1:
 *     token = max(index, last_token + 1)
 * (at most LOCK_TOKEN_MAX; see there).
 * So tokens strictly increase over all grants of all locks, survive
 * leader changes and restarts (last_token is in the snapshot), and are
 * the entry's index whenever an entry grants once, which is the common
 * case. A token is never 0.
 *
 * Applying an entry. lockTableApply(t, index, data, len, results,
 * grants): every entry is one batch of ops (below). An index at or below
 * the last applied one is a duplicate and changes nothing. Ops are
 * applied in order and give one result each. An op that does not decode
 * gives LOCK_ERR_MALFORMED, as does every op after it (their boundaries
 * cannot be trusted), but the ops before it stay applied: every replica
 * sees the same bytes, so it makes the same choice. A batch whose header
 * is bad gives no results. Apply never fails in a way that should stop the
 * Raft state machine; its return value is only for logging.
 *
 * Grants. Every grant an entry makes, to an ACQUIRE on a free lock or to
 * a waiter promoted by a release, is appended to grants in the order made,
 * with the name, owner, token, ttl_ms and the req of the ACQUIRE that
 * queued it. A grant undone later in the same entry (its owner's
 * OWNER_GONE, say) is still listed. Each node wakes its own waiting
 * clients from this list (owner node == self), matching on (name, owner).
 * The leader also starts the lease clock of each grant with ttl_ms > 0
 * from it, restarts it on each RENEW that returns LOCK_OK, and on becoming
 * leader learns every current lease from lockTableForEachHolder.
 *
 * What the glue must do about races the table cannot see: a grant that
 * matches no waiting client (it went away or gave up meanwhile) must be
 * RELEASEd, and a LOCK_QUEUED for a client that is gone CANCELed; a retry
 * committed after its owner's OWNER_GONE leaves exactly such places. A
 * node that restarts has forgotten its old client ids, so before serving
 * it should propose NODE_DEAD for itself, which frees what its previous
 * life held.
 *
 * For libraft: fsm->apply does not receive the entry's index; during the
 * call it is raft_last_applied(r) + 1 (libraft applies in index order and
 * advances last_applied after each entry, its own entries included).
 * fsm->snapshot is lockTableEncode, fsm->restore is lockTableDecode.
 *
 * Wire forms, all integers little-endian, every variable field behind a
 * length; decoders check every length against what remains, reject
 * trailing bytes and values out of range, and never read past the end.
 * Every form is canonical: what decodes re-encodes to the same bytes.
 *
 *   Batch:    u8 format (LOCK_BATCH_V1) | u16 op count (<= LOCK_MAX_OPS_PER_BATCH) | ops
 *   Op:       u8 kind | u64 req | fields of the kind, in this order:
 *     ACQUIRE     name | owner | u32 ttl_ms
 *     RELEASE     name | owner | u64 token
 *     CANCEL      name | owner            (matched with the op's req)
 *     EXPIRE      name | u64 token
 *     RENEW       name | owner | u64 token | u32 ttl_ms
 *     OWNER_GONE  owner
 *     NODE_DEAD   u32 node
 *     EXPIRE_LEASE  name | u64 token | u64 granted_index
 *   name:     u16 length (1..LOCK_NAME_MAX) | bytes
 *   owner:    u32 node (never 0) | u64 client
 *
 *   Results:  u8 format (LOCK_RESULTS_V1) | u16 count | count * (u8 kind |
 *             u8 status | u64 req | u64 token)
 *             kind, req and token are 0 exactly when the status is
 *             LOCK_ERR_MALFORMED; the decoder accepts only the status and
 *             token combinations the table produces (lockResult, below).
 *
 *   Snapshot: u8 format (LOCK_SNAPSHOT_V1) | u64 last applied index |
 *             u64 last token | u32 lock count | locks, in strictly
 *             increasing name order (bytewise, a prefix first)
 *   Lock:     name | holder | u32 waiter count | waiters, first first
 *   holder:   owner | u64 req | u64 token | u32 ttl_ms | u64 granted_index
 *   waiter:   owner | u64 req | u32 ttl_ms
 * The snapshot decoder also checks the table's invariants: tokens in
 * 1..last token, granted indexes at most the last applied one, every
 * bound above, and no owner twice in one lock. */
#ifndef DMKV_LOCK_LOCK_H
#define DMKV_LOCK_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define LOCK_NAME_MAX          512u
#define LOCK_MAX_WAITERS       10000u   /* per lock */
#define LOCK_MAX_LOCKS         100000u  /* locks in the table */
#define LOCK_MAX_WAITERS_TOTAL 1000000u /* waiters over all locks */
#define LOCK_MAX_OPS_PER_BATCH 1024u
/* Tokens never pass this; once they would, nothing more is granted:
 * ACQUIRE of a free lock gets LOCK_ERR_FULL and the waiters of a released
 * lock are dropped. (2^63 grants: a bound only a forged snapshot or log
 * can reach, but it keeps every token the table produces decodable.) */
#define LOCK_TOKEN_MAX (UINT64_MAX >> 1)

#define LOCK_BATCH_V1    1u
#define LOCK_RESULTS_V1  1u
#define LOCK_SNAPSHOT_V1 1u

/* Encoded sizes: the batch header, one result, the results header. */
#define LOCK_BATCH_HEADER_BYTES   3u
#define LOCK_RESULT_BYTES         18u
#define LOCK_RESULTS_HEADER_BYTES 3u

typedef struct lockOwner {
    uint32_t node;   /* the node the client is connected to; never 0 */
    uint64_t client; /* that node's id for the client connection */
} lockOwner;

typedef enum lockOpKind {
    LOCK_OP_ACQUIRE = 1,
    LOCK_OP_RELEASE = 2,
    LOCK_OP_CANCEL = 3,
    LOCK_OP_EXPIRE = 4,
    LOCK_OP_RENEW = 5,
    LOCK_OP_OWNER_GONE = 6,
    LOCK_OP_NODE_DEAD = 7,
    LOCK_OP_EXPIRE_LEASE = 8,
} lockOpKind;

/* One operation. Fields the kind does not use (see the wire form above)
 * are ignored by the encoder and zeroed by the decoder; NODE_DEAD uses
 * owner.node only. name need not be NUL-terminated. */
typedef struct lockOp {
    lockOpKind kind;
    uint64_t req;
    const uint8_t *name;
    size_t name_len;
    lockOwner owner;
    uint64_t token;
    uint32_t ttl_ms;
    uint64_t granted_index; /* EXPIRE_LEASE: the entry that last started the lease */
} lockOp;

typedef enum lockStatus {
    LOCK_OK = 0,              /* done; for ACQUIRE, granted: token is the holder's */
    LOCK_QUEUED = 1,          /* ACQUIRE: waiting in the queue */
    LOCK_ALREADY_GRANTED = 2, /* CANCEL: too late, it holds token; release it */
    LOCK_ERR_NOT_HOLDER =
        3, /* RELEASE, RENEW, EXPIRE(_LEASE): that token/owner (lease) does not hold it */
    LOCK_ERR_NOT_WAITING = 4, /* CANCEL: this owner and req have no place in the lock */
    LOCK_ERR_FULL = 5,        /* ACQUIRE: a bound on locks or waiters was reached */
    LOCK_ERR_MALFORMED = 6,   /* the op (or one before it in the entry) did not decode */
} lockStatus;

typedef struct lockResult {
    uint8_t kind;   /* lockOpKind of the op; 0 when it did not decode */
    uint8_t status; /* lockStatus */
    uint64_t req;   /* the op's req; 0 when it did not decode */
    uint64_t token; /* LOCK_OK for ACQUIRE, RELEASE, EXPIRE(_LEASE), RENEW: the token;
                       LOCK_ALREADY_GRANTED: the token to release; else 0 */
} lockResult;

/* A growable list of results, owned by the caller and reused across
 * applies (each apply empties it first). */
typedef struct lockResults {
    lockResult *r;
    size_t n, cap;
} lockResults;

typedef struct lockGrant {
    const uint8_t *name; /* valid until the next apply into, or free of, the list */
    size_t name_len;
    lockOwner owner;
    uint64_t req; /* of the ACQUIRE that asked for it */
    uint64_t token;
    uint32_t ttl_ms;
} lockGrant;

/* Grants made by one apply, owned by the caller; names live in the
 * list's own buffer. */
typedef struct lockGrants {
    lockGrant *g;
    size_t n, cap;
    buf names;
} lockGrants;

typedef enum lockApplyStatus {
    LOCK_APPLY_OK = 0,
    LOCK_APPLY_DUPLICATE = 1, /* index <= last applied: nothing changed */
    LOCK_APPLY_MALFORMED = 2, /* bad header, or some op did not decode (see results) */
} lockApplyStatus;

/* A holder as the queries report it; name points into the table and is
 * valid until the table next changes. */
typedef struct lockHolder {
    const uint8_t *name;
    size_t name_len;
    lockOwner owner;
    uint64_t req;
    uint64_t token;
    uint32_t ttl_ms;
    uint64_t granted_index; /* entry that granted or last renewed it */
} lockHolder;

typedef struct lockWaiter {
    lockOwner owner;
    uint64_t req;
    uint32_t ttl_ms;
} lockWaiter;

/* One lock as lockTableForEach reports it: the holder and the queue, first
 * waiter first. Pointers are valid during the callback only. */
typedef struct lockView {
    lockHolder holder;
    const lockWaiter *waiters;
    size_t n_waiters;
} lockView;

typedef struct lockTable lockTable;

/* ---- The table ---- */

lockTable *lockTableCreate(void);
void lockTableFree(lockTable *t);

/* Applies the Raft entry at index; results and grants may be NULL when
 * nobody needs them (replaying after a restart, say). */
lockApplyStatus lockTableApply(lockTable *t, uint64_t index, const uint8_t *data, size_t len,
                               lockResults *results, lockGrants *grants);

/* ---- Queries (read-only; they never change the table) ---- */

/* Fills *out (if not NULL) and returns true when the lock is held. */
bool lockTableHolder(const lockTable *t, const uint8_t *name, size_t name_len, lockHolder *out);
/* Copies up to max waiters of the lock, first first, and returns how many
 * it has (0 for a lock that does not exist). */
size_t lockTableWaiters(const lockTable *t, const uint8_t *name, size_t name_len, lockWaiter *out,
                        size_t max);
/* Calls fn for every holder, in name order. fn must not change the table. */
void lockTableForEachHolder(const lockTable *t, void (*fn)(void *ctx, const lockHolder *h),
                            void *ctx);
/* Calls fn for every lock with its queue, in name order (for LOCKS); fn
 * must not change the table. */
void lockTableForEach(const lockTable *t, void (*fn)(void *ctx, const lockView *v), void *ctx);
size_t lockTableLockCount(const lockTable *t);
size_t lockTableWaiterCount(const lockTable *t);
uint64_t lockTableLastApplied(const lockTable *t);
uint64_t lockTableLastToken(const lockTable *t);

/* ---- Snapshot ---- */

/* Appends the snapshot of the whole table to out. */
void lockTableEncode(const lockTable *t, buf *out);
/* Replaces t's contents with the snapshot in p. Returns 0, or -1 for a
 * malformed snapshot, leaving t as it was. */
int lockTableDecode(lockTable *t, const uint8_t *p, size_t len);

/* ---- Op batches ---- */

/* NULL when the op can be encoded, else what is wrong with it, in words a
 * user can act on ("lock name is longer than 512 bytes"). */
const char *lockOpCheck(const lockOp *op);

typedef struct lockBatchWriter {
    buf *out;
    size_t start; /* where the header is in out */
    uint16_t count;
} lockBatchWriter;

/* Starts a batch at the end of out. */
void lockBatchBegin(lockBatchWriter *w, buf *out);
/* Appends one op (lockOpEncode). Returns 0, or -1 with nothing appended
 * when lockOpCheck refuses it or the batch is full. */
int lockBatchAdd(lockBatchWriter *w, const lockOp *op);
/* Writes the op count into the header; call once after the last add. */
void lockBatchEnd(lockBatchWriter *w);
/* Appends one op, without a batch header. -1 when lockOpCheck refuses it. */
int lockOpEncode(buf *out, const lockOp *op);

typedef struct lockBatchReader {
    const uint8_t *p;
    size_t len, pos;
    uint16_t count; /* ops the header announces */
    uint16_t done;  /* ops read so far */
    bool bad;       /* a read failed: every later read fails too */
} lockBatchReader;

/* Reads the header. Returns 0, or -1 for a bad format byte, a count above
 * LOCK_MAX_OPS_PER_BATCH, or an empty batch with trailing bytes. */
int lockBatchOpen(lockBatchReader *r, const uint8_t *data, size_t len);
/* Next op, with op->name pointing into the batch: 1, 0 after the last op,
 * -1 when the op is malformed (so is every later one); the last op must
 * end exactly at the end of the data. */
int lockBatchNext(lockBatchReader *r, lockOp *op);

/* ---- Results and grants ---- */

void lockResultsInit(lockResults *rs);
void lockResultsFree(lockResults *rs);
void lockResultsEncode(const lockResult *r, size_t n, buf *out);
/* Replaces rs's contents with the decoded results. Returns 0, or -1 for
 * malformed input (rs then holds no results). */
int lockResultsDecode(lockResults *rs, const uint8_t *p, size_t len);

void lockGrantsInit(lockGrants *gs);
void lockGrantsFree(lockGrants *gs);

/* ---- Names for logs and replies ---- */

const char *lockOpKindName(lockOpKind k);    /* "ACQUIRE", ...; "?" when unknown */
const char *lockStatusName(lockStatus s);    /* "OK", "QUEUED", "NOT_HOLDER", ... */
const char *lockStatusMessage(lockStatus s); /* a sentence for an -ERR reply */

#endif
