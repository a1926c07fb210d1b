/* libraft 0.15 glue for the lock coordinator; see raftnode.h.
 *
 * Ownership, as raft.h defines it and as this file relies on:
 *   - raft_apply() takes the entry buffer (raft_malloc'ed) only when it
 *     returns 0; on error we free it.
 *   - the fsm apply callback borrows the entry; its `result` pointer goes
 *     only to the proposer's raft_apply callback, and followers drop it, so
 *     results are kept in our proposal (found by log index), never in a
 *     heap block libraft would leak.
 *   - snapshot buffers (the array and each base) are raft_malloc'ed by us
 *     and raft_free'd by libraft (fsm version 1, no snapshot_finalize).
 *   - a restored snapshot buffer becomes ours on success (raft_free it);
 *     on failure libraft keeps it.
 *
 * Entries and snapshots travel in an envelope whose total length is a
 * multiple of 8 bytes. libraft 0.15 writes an entry padded to 8 bytes but
 * reads it back unpadded, so a node holding any other length cannot load
 * its own log after a restart ("entries batch 2 ... short read",
 * canonical/raft#189, #304). The envelope also versions the formats and
 * keeps an empty state from being a zero-length buffer:
 *
 *     entry:    u32 BE payload length | u8 version (1) | 3 zero bytes |
 *               payload | zero padding to a multiple of 8
 *     snapshot: "DMKVSNP1" | u64 BE payload length | payload | padding */
#include "lock/raftnode.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "lock/raftauth.h"
#include "util/log.h"

#define RAFT_NODE_DEFAULT_ELECTION_TIMEOUT_MS         300
#define RAFT_NODE_DEFAULT_HEARTBEAT_TIMEOUT_MS        50
#define RAFT_NODE_DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_MS 1000
#define RAFT_NODE_DEFAULT_SNAPSHOT_THRESHOLD          1024
#define RAFT_NODE_DEFAULT_SNAPSHOT_TRAILING           512
#define RAFT_NODE_DEFAULT_CONNECT_RETRY_MS            250
#define RAFT_NODE_DEFAULT_HANDSHAKE_TIMEOUT_MS        2000
#define RAFT_NODE_DEFAULT_MIN_FREE_BYTES              (64ull << 20)
#define RAFT_NODE_DEFAULT_MAX_ENTRY_BYTES             (4u << 20)

#define RAFT_NODE_ENTRY_VERSION         1
#define RAFT_NODE_ENTRY_HEADER_BYTES    8
#define RAFT_NODE_MAX_ENTRY_LIMIT       (1u << 30)
#define RAFT_NODE_SNAPSHOT_TAG          "DMKVSNP1"
#define RAFT_NODE_SNAPSHOT_TAG_BYTES    8
#define RAFT_NODE_SNAPSHOT_HEADER_BYTES 16

typedef struct raftProposal {
    struct raft_apply req;
    raftNode *n;
    raftNodeResultCb cb;
    void *ctx;
    size_t len;
    uint64_t term; /* the leader's term when proposed */
    bool applied;
    buf result;
    struct raftProposal *prev, *next;
} raftProposal;

typedef struct raftBarrierReq {
    struct raft_barrier req;
    raftNode *n;
    raftNodeResultCb cb;
    void *ctx;
} raftBarrierReq;

typedef struct raftChangeReq {
    struct raft_change req;
    raftNode *n;
    uint64_t id;
    raftNodeResultCb cb;
    void *ctx;
} raftChangeReq;

struct raftNode {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm raft_fsm;
    raftNodeFsm fsm;
    uint64_t id;
    char *raft_dir;
    int lock_fd;
    uint64_t min_free_bytes;
    size_t max_entry_bytes;

    bool started;
    bool closing, close_deferred, raft_closed, watch_closed;
    int callback_depth; /* >0 while a user callback runs */
    void (*close_done)(void *ctx);
    void *close_ctx;

    uv_check_t watch;
    void (*leader_cb)(void *ctx, uint64_t leader_id);
    void *leader_ctx;
    uint64_t seen_leader, seen_term;

    raftProposal *head, *tail; /* proposed here, oldest first */
    uint64_t npending, pending_bytes;
    unsigned outstanding; /* barriers and changes in flight */
    bool changing;        /* a membership change is in flight */

    buf apply_out;
    uint64_t entries_applied, snapshots_taken, snapshots_restored, leader_changes;
    char leader_address[RAFT_NODE_MAX_ADDRESS + 1];
    char errmsg[512];
};

static void raftNodeBeginClose(raftNode *n);

const char *raftNodeStatusName(int status) {
    switch (status) {
    case RAFT_NODE_OK:
        return "ok";
    case RAFT_NODE_NOT_LEADER:
        return "not leader";
    case RAFT_NODE_NO_SPACE:
        return "no disk space";
    case RAFT_NODE_TOO_BIG:
        return "entry too big";
    case RAFT_NODE_LEADERSHIP_LOST:
        return "leadership lost";
    case RAFT_NODE_CLOSED:
        return "closed";
    case RAFT_NODE_BUSY:
        return "busy";
    case RAFT_NODE_INVALID:
        return "invalid argument";
    default:
        return "error";
    }
}

const char *raftNodeStateName(int state) {
    switch (state) {
    case RAFT_NODE_FOLLOWER:
        return "follower";
    case RAFT_NODE_CANDIDATE:
        return "candidate";
    case RAFT_NODE_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

static int raftNodeFail(raftNode *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int raftNodeFail(raftNode *n, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->errmsg, sizeof n->errmsg, fmt, ap);
    va_end(ap);
    return status;
}

static void raftNodeLeader(raftNode *n, uint64_t *id, const char **address) {
    raft_id lid = 0;
    const char *laddr = NULL;
    if (n->started && !n->raft_closed) raft_leader(&n->raft, &lid, &laddr);
    snprintf(n->leader_address, sizeof n->leader_address, "%s", laddr ? laddr : "");
    *id = lid;
    *address = n->leader_address;
}

/* The sentence for "go elsewhere", naming the leader when one is known. */
static void raftNodeNotLeaderMsg(raftNode *n, char *out, size_t cap) {
    uint64_t lid;
    const char *laddr;
    raftNodeLeader(n, &lid, &laddr);
    if (lid != 0)
        snprintf(out, cap, "node %llu is not the raft leader; the leader is node %llu at %s",
                 (unsigned long long)n->id, (unsigned long long)lid, laddr);
    else
        snprintf(out, cap,
                 "node %llu is not the raft leader and no leader is known yet (election in "
                 "progress or no quorum); retry shortly",
                 (unsigned long long)n->id);
}

/* libraft's own words for a failure: the instance's message, else the io
 * layer's (raft_bootstrap, for one, leaves only the latter), and the code,
 * since raft_strerror() alone often says "unknown error". */
static void raftNodeDescribe(raftNode *n, int rv, char *out, size_t cap) {
    const char *msg = raft_errmsg(&n->raft);
    if (msg == NULL || msg[0] == '\0') msg = n->io.errmsg;
    if (msg[0] == '\0') msg = raft_strerror(rv);
    snprintf(out, cap, "%s (libraft error %d)", msg, rv);
}

/* Maps a libraft status (from a callback) to ours, with a sentence. */
static int raftNodeMapStatus(raftNode *n, int rv, char *msg, size_t cap) {
    switch (rv) {
    case 0:
        msg[0] = '\0';
        return RAFT_NODE_OK;
    case RAFT_NOTLEADER:
        raftNodeNotLeaderMsg(n, msg, cap);
        return RAFT_NODE_NOT_LEADER;
    case RAFT_LEADERSHIPLOST:
        snprintf(msg, cap,
                 "leadership was lost before the entry was applied; it may or may not commit, "
                 "so retry only if the operation is safe to repeat");
        return RAFT_NODE_LEADERSHIP_LOST;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        snprintf(msg, cap, "the raft node is shutting down");
        return RAFT_NODE_CLOSED;
    case RAFT_NOSPACE:
        snprintf(msg, cap, "raft storage is out of disk space: %s", raft_errmsg(&n->raft));
        logError("raft: %s", msg);
        return RAFT_NODE_NO_SPACE;
    case RAFT_TOOBIG:
        snprintf(msg, cap, "raft refused the entry as too big: %s", raft_errmsg(&n->raft));
        return RAFT_NODE_TOO_BIG;
    default: {
        char why[RAFT_ERRMSG_BUF_SIZE + 64];
        raftNodeDescribe(n, rv, why, sizeof why);
        snprintf(msg, cap, "raft: %s", why);
        return n->closing ? RAFT_NODE_CLOSED : RAFT_NODE_ERROR;
    }
    }
}

static void raftNodeDeliver(raftNode *n, raftNodeResultCb cb, void *ctx, int status, uint64_t index,
                            const buf *data, const char *err) {
    raftNodeResult res = {.status = status, .index = index, .err = err ? err : ""};
    if (data != NULL && status == RAFT_NODE_OK) {
        res.data = (const uint8_t *)data->data;
        res.len = data->len;
    }
    raftNodeLeader(n, &res.leader_id, &res.leader_address);
    n->callback_depth++;
    cb(ctx, &res);
    n->callback_depth--;
}

/* ---- envelopes ---- */

static size_t raftNodePad8(size_t len) {
    return (len + 7) & ~(size_t)7;
}

static void raftNodePut32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t raftNodeGet32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void raftNodePut64(uint8_t *p, uint64_t v) {
    raftNodePut32(p, (uint32_t)(v >> 32));
    raftNodePut32(p + 4, (uint32_t)v);
}

static uint64_t raftNodeGet64(const uint8_t *p) {
    return (uint64_t)raftNodeGet32(p) << 32 | raftNodeGet32(p + 4);
}

/* ---- proposals ---- */

static void raftProposalUnlink(raftNode *n, raftProposal *p) {
    if (p->prev)
        p->prev->next = p->next;
    else
        n->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        n->tail = p->prev;
    p->prev = p->next = NULL;
    n->npending--;
    n->pending_bytes -= p->len;
}

/* The local proposal that entry `index` is, if any. Only a leader still
 * in the term it proposed in can tell: within its own term a leader never
 * overwrites its log, while after any change of term the entry at that
 * index may be someone else's. */
static raftProposal *raftProposalFind(raftNode *n, uint64_t index) {
    if (raft_state(&n->raft) != RAFT_LEADER) return NULL;
    /* Entries apply in order, so the match is almost always the head. */
    for (raftProposal *p = n->head; p; p = p->next)
        if (p->req.index == index) return p->term == n->raft.current_term ? p : NULL;
    return NULL;
}

static void raftNodeOnApplied(struct raft_apply *req, int status, void *result) {
    raftProposal *p = req->data;
    raftNode *n = p->n;
    char msg[512];
    raftProposalUnlink(n, p);
    int st = raftNodeMapStatus(n, status, msg, sizeof msg);
    if (st == RAFT_NODE_OK && (result != p || !p->applied)) {
        /* libraft called back for an entry our adapter did not see. */
        st = RAFT_NODE_ERROR;
        snprintf(msg, sizeof msg, "raft reported entry %llu applied but no result was recorded",
                 (unsigned long long)req->index);
    }
    raftNodeDeliver(n, p->cb, p->ctx, st, req->index, &p->result, msg);
    bufFree(&p->result);
    free(p);
}

/* Free space on the Raft disk must stay above min_free_bytes even after
 * every entry in flight lands. */
static int raftNodeCheckSpace(raftNode *n, size_t len) {
    struct statvfs st;
    if (statvfs(n->raft_dir, &st) != 0) {
        logWarn("raft: cannot check free space on %s: %s", n->raft_dir, strerror(errno));
        return RAFT_NODE_OK;
    }
    uint64_t avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    uint64_t need = n->min_free_bytes + n->pending_bytes + len;
    if (avail < need)
        return raftNodeFail(n, RAFT_NODE_NO_SPACE,
                            "the raft data disk (%s) has %llu MiB free, below the %llu MiB "
                            "reserve (plus %llu bytes in flight); free disk space before "
                            "proposing more",
                            n->raft_dir, (unsigned long long)(avail >> 20),
                            (unsigned long long)(n->min_free_bytes >> 20),
                            (unsigned long long)(n->pending_bytes + len));
    return RAFT_NODE_OK;
}

static int raftNodeCheckLeader(raftNode *n) {
    if (n->closing) return raftNodeFail(n, RAFT_NODE_CLOSED, "the raft node is shutting down");
    if (raft_state(&n->raft) != RAFT_LEADER) {
        raftNodeNotLeaderMsg(n, n->errmsg, sizeof n->errmsg);
        return RAFT_NODE_NOT_LEADER;
    }
    return RAFT_NODE_OK;
}

int raftNodePropose(raftNode *n, const void *data, size_t len, raftNodeResultCb cb, void *ctx) {
    int st = raftNodeCheckLeader(n);
    if (st != RAFT_NODE_OK) return st;
    if (len == 0 || data == NULL || cb == NULL)
        return raftNodeFail(n, RAFT_NODE_INVALID, "a raft entry needs data and a callback");
    if (len > n->max_entry_bytes)
        return raftNodeFail(n, RAFT_NODE_TOO_BIG,
                            "raft entry of %zu bytes is over the %zu-byte limit; split the batch",
                            len, n->max_entry_bytes);
    size_t total = RAFT_NODE_ENTRY_HEADER_BYTES + raftNodePad8(len);
    st = raftNodeCheckSpace(n, total);
    if (st != RAFT_NODE_OK) return st;

    raftProposal *p = xcalloc(1, sizeof *p);
    p->n = n;
    p->cb = cb;
    p->ctx = ctx;
    p->len = total;
    p->term = n->raft.current_term;
    p->req.data = p;
    bufInit(&p->result);
    struct raft_buffer b = {.base = raft_calloc(1, total), .len = total};
    if (b.base == NULL) {
        free(p);
        return raftNodeFail(n, RAFT_NODE_ERROR, "out of memory for a %zu-byte raft entry", len);
    }
    uint8_t *e = b.base;
    raftNodePut32(e, (uint32_t)len);
    e[4] = RAFT_NODE_ENTRY_VERSION;
    memcpy(e + RAFT_NODE_ENTRY_HEADER_BYTES, data, len);
    int rv = raft_apply(&n->raft, &p->req, &b, 1, raftNodeOnApplied);
    if (rv != 0) {
        /* raft_apply kept nothing: the buffer is still ours. */
        raft_free(b.base);
        free(p);
        return raftNodeMapStatus(n, rv, n->errmsg, sizeof n->errmsg);
    }
    p->prev = n->tail;
    if (n->tail)
        n->tail->next = p;
    else
        n->head = p;
    n->tail = p;
    n->npending++;
    n->pending_bytes += len;
    return RAFT_NODE_OK;
}

static void raftNodeOnBarrier(struct raft_barrier *req, int status) {
    raftBarrierReq *b = req->data;
    raftNode *n = b->n;
    char msg[512];
    n->outstanding--;
    int st = raftNodeMapStatus(n, status, msg, sizeof msg);
    raftNodeDeliver(n, b->cb, b->ctx, st, req->index, NULL, msg);
    free(b);
}

int raftNodeBarrier(raftNode *n, raftNodeResultCb cb, void *ctx) {
    int st = raftNodeCheckLeader(n);
    if (st != RAFT_NODE_OK) return st;
    if (cb == NULL) return raftNodeFail(n, RAFT_NODE_INVALID, "a raft barrier needs a callback");
    raftBarrierReq *b = xcalloc(1, sizeof *b);
    b->n = n;
    b->cb = cb;
    b->ctx = ctx;
    b->req.data = b;
    int rv = raft_barrier(&n->raft, &b->req, raftNodeOnBarrier);
    if (rv != 0) {
        free(b);
        return raftNodeMapStatus(n, rv, n->errmsg, sizeof n->errmsg);
    }
    n->outstanding++;
    return RAFT_NODE_OK;
}

/* ---- membership ---- */

static void raftChangeFinish(raftChangeReq *c, int status) {
    raftNode *n = c->n;
    char msg[512];
    n->outstanding--;
    n->changing = false;
    int st = raftNodeMapStatus(n, status, msg, sizeof msg);
    if (st == RAFT_NODE_ERROR && status == RAFT_NOCONNECTION)
        snprintf(msg, sizeof msg,
                 "node %llu did not catch up with the log in time (is it running with join set, "
                 "the same cluster key, and reachable?)",
                 (unsigned long long)c->id);
    raftNodeDeliver(n, c->cb, c->ctx, st, 0, NULL, msg);
    free(c);
}

static void raftNodeOnPromoted(struct raft_change *req, int status) {
    raftChangeFinish(req->data, status);
}

static void raftNodeOnAdded(struct raft_change *req, int status) {
    raftChangeReq *c = req->data;
    raftNode *n = c->n;
    if (status != 0 || n->closing) {
        raftChangeFinish(c, status ? status : RAFT_SHUTDOWN);
        return;
    }
    int rv = raft_assign(&n->raft, &c->req, c->id, RAFT_VOTER, raftNodeOnPromoted);
    if (rv == RAFT_BADROLE)
        raftChangeFinish(c, 0); /* already a voter */
    else if (rv != 0)
        raftChangeFinish(c, rv);
}

static int raftNodeChangeBegin(raftNode *n, uint64_t id, raftNodeResultCb cb, void *ctx,
                               raftChangeReq **out) {
    int st = raftNodeCheckLeader(n);
    if (st != RAFT_NODE_OK) return st;
    if (id == 0 || cb == NULL)
        return raftNodeFail(n, RAFT_NODE_INVALID,
                            "a membership change needs a node id > 0 and a callback");
    if (n->changing)
        return raftNodeFail(n, RAFT_NODE_BUSY,
                            "another raft membership change is in progress; retry when it ends");
    raftChangeReq *c = xcalloc(1, sizeof *c);
    c->n = n;
    c->id = id;
    c->cb = cb;
    c->ctx = ctx;
    c->req.data = c;
    *out = c;
    return RAFT_NODE_OK;
}

/* Starts a change, or reports what libraft refused. */
static int raftNodeChangeStarted(raftNode *n, raftChangeReq *c, int rv) {
    if (rv != 0) {
        free(c);
        return raftNodeMapStatus(n, rv, n->errmsg, sizeof n->errmsg);
    }
    n->outstanding++;
    n->changing = true;
    return RAFT_NODE_OK;
}

int raftNodeAddVoter(raftNode *n, uint64_t id, const char *address, raftNodeResultCb cb,
                     void *ctx) {
    if (address == NULL || address[0] == '\0' || strlen(address) > RAFT_NODE_MAX_ADDRESS)
        return raftNodeFail(n, RAFT_NODE_INVALID, "a new raft voter needs an address host:port");
    raftChangeReq *c = NULL;
    int st = raftNodeChangeBegin(n, id, cb, ctx, &c);
    if (st != RAFT_NODE_OK) return st;
    int rv = raft_add(&n->raft, &c->req, id, address, raftNodeOnAdded);
    if (rv == RAFT_DUPLICATEID) {
        /* Already a member (a retried add): go straight to promotion. */
        rv = raft_assign(&n->raft, &c->req, id, RAFT_VOTER, raftNodeOnPromoted);
        if (rv == RAFT_BADROLE) {
            /* Already a voter: succeed once a barrier shows we still lead,
             * so the callback still comes later, from the loop. */
            free(c);
            return raftNodeBarrier(n, cb, ctx);
        }
    }
    if (rv == RAFT_DUPLICATEADDRESS) {
        free(c);
        return raftNodeFail(n, RAFT_NODE_INVALID,
                            "address %s already belongs to another raft member", address);
    }
    return raftNodeChangeStarted(n, c, rv);
}

int raftNodeRemove(raftNode *n, uint64_t id, raftNodeResultCb cb, void *ctx) {
    raftChangeReq *c = NULL;
    int st = raftNodeChangeBegin(n, id, cb, ctx, &c);
    if (st != RAFT_NODE_OK) return st;
    int rv = raft_remove(&n->raft, &c->req, id, raftNodeOnPromoted);
    if (rv == RAFT_BADID) {
        free(c);
        return raftNodeFail(n, RAFT_NODE_INVALID, "node %llu is not a raft member",
                            (unsigned long long)id);
    }
    return raftNodeChangeStarted(n, c, rv);
}

/* ---- the fsm adapter ---- */

static int raftNodeFsmApply(struct raft_fsm *f, const struct raft_buffer *b, void **result) {
    raftNode *n = f->data;
    /* libraft bumps last_applied after apply returns, so this entry's index
     * is the next one. */
    uint64_t index = raft_last_applied(&n->raft) + 1;
    const uint8_t *e = b->base;
    bufClear(&n->apply_out);
    if (b->len >= RAFT_NODE_ENTRY_HEADER_BYTES && e[4] == RAFT_NODE_ENTRY_VERSION &&
        raftNodeGet32(e) <= b->len - RAFT_NODE_ENTRY_HEADER_BYTES) {
        n->callback_depth++;
        n->fsm.apply(n->fsm.ctx, index, e + RAFT_NODE_ENTRY_HEADER_BYTES, raftNodeGet32(e),
                     &n->apply_out);
        n->callback_depth--;
    } else {
        /* Only a newer dmkv (or a bug) writes this; every node skips it
         * alike, so the replicas stay equal. */
        logError("raft: entry %llu (%zu bytes) is not a version-%d dmkv entry; skipped",
                 (unsigned long long)index, b->len, RAFT_NODE_ENTRY_VERSION);
    }
    n->entries_applied++;
    raftProposal *p = raftProposalFind(n, index);
    if (p != NULL) {
        buf tmp = p->result;
        p->result = n->apply_out;
        n->apply_out = tmp;
        p->applied = true;
    }
    *result = p;
    /* Never non-zero: libraft stops applying for good after a failed apply,
     * and every node must apply every entry. */
    return 0;
}

static int raftNodeFsmSnapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs) {
    raftNode *n = f->data;
    buf out;
    bufInit(&out);
    uint8_t header[RAFT_NODE_SNAPSHOT_HEADER_BYTES] = {0};
    bufAppend(&out, header, sizeof header);
    n->callback_depth++;
    int rv = n->fsm.snapshot(n->fsm.ctx, &out);
    n->callback_depth--;
    if (rv == 0) {
        size_t payload = out.len - RAFT_NODE_SNAPSHOT_HEADER_BYTES;
        memcpy(out.data, RAFT_NODE_SNAPSHOT_TAG, RAFT_NODE_SNAPSHOT_TAG_BYTES);
        raftNodePut64((uint8_t *)out.data + RAFT_NODE_SNAPSHOT_TAG_BYTES, payload);
        static const uint8_t zeros[8];
        bufAppend(&out, zeros, raftNodePad8(out.len) - out.len);
    }
    if (rv != 0) {
        bufFree(&out);
        logWarn("raft: state machine could not take a snapshot (%d); will retry later", rv);
        return RAFT_IOERR;
    }
    struct raft_buffer *arr = raft_malloc(sizeof *arr);
    void *base = raft_malloc(out.len);
    if (arr == NULL || base == NULL) {
        raft_free(arr);
        raft_free(base);
        bufFree(&out);
        return RAFT_NOMEM;
    }
    memcpy(base, out.data, out.len);
    arr[0].base = base;
    arr[0].len = out.len;
    bufFree(&out);
    *bufs = arr;
    *n_bufs = 1;
    n->snapshots_taken++;
    return 0;
}

static int raftNodeFsmRestore(struct raft_fsm *f, struct raft_buffer *b) {
    raftNode *n = f->data;
    const uint8_t *s = b->base;
    if (b->len < RAFT_NODE_SNAPSHOT_HEADER_BYTES ||
        memcmp(s, RAFT_NODE_SNAPSHOT_TAG, RAFT_NODE_SNAPSHOT_TAG_BYTES) != 0 ||
        raftNodeGet64(s + RAFT_NODE_SNAPSHOT_TAG_BYTES) >
            b->len - RAFT_NODE_SNAPSHOT_HEADER_BYTES) {
        logError("raft: snapshot of %zu bytes is not a dmkv snapshot; refusing to restore", b->len);
        return RAFT_CORRUPT;
    }
    size_t payload = (size_t)raftNodeGet64(s + RAFT_NODE_SNAPSHOT_TAG_BYTES);
    n->callback_depth++;
    int rv = n->fsm.restore(n->fsm.ctx, s + RAFT_NODE_SNAPSHOT_HEADER_BYTES, payload);
    n->callback_depth--;
    if (rv != 0) {
        logError("raft: state machine refused a %zu-byte snapshot (%d)", b->len, rv);
        return RAFT_CORRUPT;
    }
    raft_free(b->base); /* ours once restore succeeds */
    n->snapshots_restored++;
    return 0;
}

/* ---- leader watch ---- */

static void raftNodeOnWatch(uv_check_t *h) {
    raftNode *n = h->data;
    if (n->close_deferred) {
        n->close_deferred = false;
        raftNodeBeginClose(n);
        return;
    }
    if (n->closing || !n->started) return;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&n->raft, &lid, &laddr);
    uint64_t term = n->raft.current_term;
    if (lid == n->seen_leader && (lid == 0 || term == n->seen_term)) return;
    n->seen_leader = lid;
    n->seen_term = term;
    n->leader_changes++;
    if (lid == n->id)
        logInfo("raft: node %llu is the leader (term %llu)", (unsigned long long)n->id,
                (unsigned long long)term);
    else if (lid != 0)
        logInfo("raft: leader is node %llu at %s (term %llu)", (unsigned long long)lid,
                laddr ? laddr : "?", (unsigned long long)term);
    else
        logInfo("raft: no leader known (term %llu)", (unsigned long long)term);
    if (n->leader_cb == NULL) return;
    n->callback_depth++;
    n->leader_cb(n->leader_ctx, lid);
    n->callback_depth--;
    if (n->close_deferred) {
        n->close_deferred = false;
        raftNodeBeginClose(n);
    }
}

void raftNodeOnLeaderChange(raftNode *n, void (*cb)(void *ctx, uint64_t leader_id), void *ctx) {
    n->leader_cb = cb;
    n->leader_ctx = ctx;
}

/* ---- queries ---- */

bool raftNodeIsLeader(raftNode *n) {
    return n->started && !n->closing && raft_state(&n->raft) == RAFT_LEADER;
}

uint64_t raftNodeLeaderId(raftNode *n) {
    uint64_t id;
    const char *addr;
    raftNodeLeader(n, &id, &addr);
    return id;
}

const char *raftNodeLeaderAddress(raftNode *n) {
    uint64_t id;
    const char *addr;
    raftNodeLeader(n, &id, &addr);
    return addr;
}

uint64_t raftNodeTerm(raftNode *n) {
    return n->raft.current_term;
}

const char *raftNodeErrmsg(raftNode *n) {
    return n->errmsg;
}

void raftNodeStats(raftNode *n, struct raftNodeStats *st) {
    memset(st, 0, sizeof *st);
    if (n->started && !n->raft_closed) {
        switch (raft_state(&n->raft)) {
        case RAFT_FOLLOWER:
            st->state = RAFT_NODE_FOLLOWER;
            break;
        case RAFT_CANDIDATE:
            st->state = RAFT_NODE_CANDIDATE;
            break;
        case RAFT_LEADER:
            st->state = RAFT_NODE_LEADER;
            break;
        default:
            st->state = RAFT_NODE_UNAVAILABLE;
            break;
        }
        st->last_index = raft_last_index(&n->raft);
        st->leader_id = raftNodeLeaderId(n);
        for (unsigned i = 0; i < n->raft.configuration.n; i++)
            if (n->raft.configuration.servers[i].role == RAFT_VOTER) st->voters++;
    }
    st->term = n->raft.current_term;
    st->commit_index = n->raft.commit_index;
    st->last_applied = n->raft.last_applied;
    st->entries_applied = n->entries_applied;
    st->snapshots_taken = n->snapshots_taken;
    st->snapshots_restored = n->snapshots_restored;
    st->leader_changes = n->leader_changes;
    st->proposals_pending = n->npending;
    st->pending_bytes = n->pending_bytes;
    raftAuthStats as;
    raftAuthTransportStats(&n->transport, &as);
    st->auth_accepted = as.accepted;
    st->auth_rejected = as.rejected;
    st->auth_connected = as.connected;
    st->auth_refused = as.refused;
}

/* ---- start and close ---- */

static void raftNodeFree(raftNode *n) {
    /* libraft failed every request before its close callback; anything
     * left here would be a proposal it never heard of. */
    while (n->head) {
        raftProposal *p = n->head;
        raftProposalUnlink(n, p);
        raftNodeDeliver(n, p->cb, p->ctx, RAFT_NODE_CLOSED, 0, NULL, "the raft node closed");
        bufFree(&p->result);
        free(p);
    }
    if (n->outstanding != 0)
        logWarn("raft: %u barrier/membership requests never completed", n->outstanding);
    if (n->lock_fd >= 0) close(n->lock_fd); /* releases the flock */
    void (*done)(void *) = n->close_done;
    void *ctx = n->close_ctx;
    bufFree(&n->apply_out);
    free(n->raft_dir);
    free(n);
    if (done) done(ctx);
}

static void raftNodeMaybeFree(raftNode *n) {
    if (n->raft_closed && n->watch_closed) raftNodeFree(n);
}

static void raftNodeOnRaftClosed(struct raft *r) {
    raftNode *n = r->data;
    raft_uv_close(&n->io);
    raftAuthTransportClose(&n->transport);
    n->raft_closed = true;
    raftNodeMaybeFree(n);
}

static void raftNodeOnWatchClosed(uv_handle_t *h) {
    raftNode *n = h->data;
    n->watch_closed = true;
    raftNodeMaybeFree(n);
}

static void raftNodeBeginClose(raftNode *n) {
    uv_check_stop(&n->watch);
    uv_close((uv_handle_t *)&n->watch, raftNodeOnWatchClosed);
    raft_close(&n->raft, raftNodeOnRaftClosed);
}

void raftNodeClose(raftNode *n, void (*done)(void *ctx), void *ctx) {
    if (n->closing) return;
    n->closing = true;
    n->close_done = done;
    n->close_ctx = ctx;
    /* Inside a libraft callback raft_close() would pull the instance out
     * from under the code that called us: finish in the check phase of
     * this same loop iteration instead. */
    if (n->callback_depth > 0)
        n->close_deferred = true;
    else
        raftNodeBeginClose(n);
}

/* libraft writes to peer sockets that may have closed; with SIGPIPE at its
 * default that kills the process. A disposition someone chose is kept. */
static void raftNodeIgnoreSigpipe(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

/* How many segments libraft's auto-recovery has set aside in dir. */
static int raftNodeCountCorrupt(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "corrupt-", 8) == 0) count++;
    closedir(d);
    return count;
}

static int raftNodeMkdir(const char *path, char *err, size_t errlen) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        snprintf(err, errlen, "%s exists and is not a directory", path);
        return -1;
    }
    snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
    return -1;
}

static int raftNodeLock(raftNode *n, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", n->raft_dir);
    n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (n->lock_fd < 0) {
        snprintf(err, errlen, "cannot open raft lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(n->lock_fd);
        n->lock_fd = -1;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen,
                     "raft data directory %s is in use by another node (lock %s is held); "
                     "give each node its own --data-dir",
                     n->raft_dir, path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

static int raftNodeValidate(const raftNodeConfig *cfg, const raftNodeFsm *fsm, char *err,
                            size_t errlen) {
    if (cfg->id == 0) {
        snprintf(err, errlen, "raft node id must be > 0");
        return -1;
    }
    if (cfg->address == NULL || cfg->address[0] == '\0' ||
        strlen(cfg->address) > RAFT_NODE_MAX_ADDRESS || strchr(cfg->address, ':') == NULL) {
        snprintf(err, errlen, "raft address must be host:port");
        return -1;
    }
    if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0' || strlen(cfg->data_dir) > 3000) {
        snprintf(err, errlen, "raft needs a data directory");
        return -1;
    }
    if (fsm == NULL || fsm->apply == NULL || fsm->snapshot == NULL || fsm->restore == NULL) {
        snprintf(err, errlen, "raft state machine needs apply, snapshot and restore");
        return -1;
    }
    if (cfg->max_entry_bytes > RAFT_NODE_MAX_ENTRY_LIMIT) {
        snprintf(err, errlen, "raft max entry size is at most %u bytes", RAFT_NODE_MAX_ENTRY_LIMIT);
        return -1;
    }
    if (cfg->ncluster_keys > RAFT_AUTH_MAX_KEYS ||
        (cfg->ncluster_keys > 0 && cfg->cluster_keys == NULL)) {
        snprintf(err, errlen, "raft takes 0 to %d cluster keys", RAFT_AUTH_MAX_KEYS);
        return -1;
    }
    if (cfg->join) {
        if (cfg->npeers != 0) {
            snprintf(err, errlen,
                     "a joining raft node takes no initial peers: the leader "
                     "adds it");
            return -1;
        }
        return 0;
    }
    if (cfg->npeers == 0 || cfg->peer_ids == NULL || cfg->peer_addresses == NULL) {
        snprintf(err, errlen, "raft needs the initial peers (including this node), or join");
        return -1;
    }
    bool self = false;
    for (size_t i = 0; i < cfg->npeers; i++) {
        const char *a = cfg->peer_addresses[i];
        if (cfg->peer_ids[i] == 0 || a == NULL || a[0] == '\0' ||
            strlen(a) > RAFT_NODE_MAX_ADDRESS) {
            snprintf(err, errlen, "raft peer %zu needs an id > 0 and an address host:port", i + 1);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (cfg->peer_ids[j] == cfg->peer_ids[i] || strcmp(cfg->peer_addresses[j], a) == 0) {
                snprintf(err, errlen, "raft peers %zu and %zu share an id or an address", j + 1,
                         i + 1);
                return -1;
            }
        }
        if (cfg->peer_ids[i] == cfg->id) {
            if (strcmp(a, cfg->address) != 0) {
                snprintf(err, errlen,
                         "raft peer list gives node %llu the address %s, but it "
                         "listens at %s",
                         (unsigned long long)cfg->id, a, cfg->address);
                return -1;
            }
            self = true;
        }
    }
    if (!self) {
        snprintf(err, errlen, "raft peer list does not include this node (%llu)",
                 (unsigned long long)cfg->id);
        return -1;
    }
    return 0;
}

static int raftNodeComparePeer(const void *a, const void *b) {
    const struct raft_server *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* First start only: every node writes the same configuration (sorted by
 * id) as entry 1, so a fresh cluster elects a leader with no extra step.
 * With data already present libraft says RAFT_CANTBOOTSTRAP: a restart. */
static int raftNodeBootstrap(raftNode *n, const raftNodeConfig *cfg, char *err, size_t errlen) {
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    for (size_t i = 0; i < cfg->npeers && rv == 0; i++)
        rv = raft_configuration_add(&conf, cfg->peer_ids[i], cfg->peer_addresses[i], RAFT_VOTER);
    if (rv == 0) {
        qsort(conf.servers, conf.n, sizeof conf.servers[0], raftNodeComparePeer);
        rv = raft_bootstrap(&n->raft, &conf);
    }
    raft_configuration_close(&conf);
    if (rv == 0) {
        logInfo("raft: bootstrapped a new cluster of %zu voters in %s", cfg->npeers, n->raft_dir);
        return 0;
    }
    if (rv == RAFT_CANTBOOTSTRAP) return 0;
    char why[RAFT_ERRMSG_BUF_SIZE + 64];
    raftNodeDescribe(n, rv, why, sizeof why);
    snprintf(err, errlen, "raft bootstrap in %s failed: %s", n->raft_dir, why);
    return -1;
}

int raftNodeStart(uv_loop_t *loop, const raftNodeConfig *cfg, const raftNodeFsm *fsm,
                  raftNode **out, char *err, size_t errlen) {
    char scratch[1];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    *out = NULL;
    if (raftNodeValidate(cfg, fsm, err, errlen) != 0) return RAFT_NODE_INVALID;
    unsigned election =
        cfg->election_timeout_ms ? cfg->election_timeout_ms : RAFT_NODE_DEFAULT_ELECTION_TIMEOUT_MS;
    unsigned heartbeat = cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms
                                                   : RAFT_NODE_DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (heartbeat >= election) {
        snprintf(err, errlen,
                 "raft heartbeat timeout (%u ms) must be below the election timeout "
                 "(%u ms)",
                 heartbeat, election);
        return RAFT_NODE_INVALID;
    }

    raftNodeIgnoreSigpipe();
    raftNode *n = xcalloc(1, sizeof *n);
    n->loop = loop;
    n->fsm = *fsm;
    n->id = cfg->id;
    n->lock_fd = -1;
    n->min_free_bytes =
        cfg->min_free_bytes ? cfg->min_free_bytes : RAFT_NODE_DEFAULT_MIN_FREE_BYTES;
    n->max_entry_bytes =
        cfg->max_entry_bytes ? cfg->max_entry_bytes : RAFT_NODE_DEFAULT_MAX_ENTRY_BYTES;
    bufInit(&n->apply_out);
    size_t dlen = strlen(cfg->data_dir) + sizeof "/raft";
    n->raft_dir = xmalloc(dlen);
    snprintf(n->raft_dir, dlen, "%s/raft", cfg->data_dir);
    if (raftNodeMkdir(cfg->data_dir, err, errlen) != 0 ||
        raftNodeMkdir(n->raft_dir, err, errlen) != 0 || raftNodeLock(n, err, errlen) != 0)
        goto err_free;

    int rv = raftAuthTransportInit(&n->transport, loop, cfg->cluster_keys, cfg->ncluster_keys,
                                   cfg->handshake_timeout_ms, cfg->bind_address);
    if (rv != 0) {
        snprintf(err, errlen, "raft transport: %s", n->transport.errmsg);
        goto err_free;
    }
    rv = raft_uv_init(&n->io, loop, n->raft_dir, &n->transport);
    if (rv != 0) {
        snprintf(err, errlen, "raft storage in %s: %s", n->raft_dir, n->io.errmsg);
        goto err_transport;
    }
    raft_uv_set_connect_retry_delay(
        &n->io, cfg->connect_retry_ms ? cfg->connect_retry_ms : RAFT_NODE_DEFAULT_CONNECT_RETRY_MS);
    n->raft_fsm.version = 1;
    n->raft_fsm.data = n;
    n->raft_fsm.apply = raftNodeFsmApply;
    n->raft_fsm.snapshot = raftNodeFsmSnapshot;
    n->raft_fsm.restore = raftNodeFsmRestore;
    rv = raft_init(&n->raft, &n->io, &n->raft_fsm, cfg->id, cfg->address);
    if (rv != 0) {
        /* Storage probing happens here: ramfs, for one, is refused. */
        char why[RAFT_ERRMSG_BUF_SIZE + 64];
        raftNodeDescribe(n, rv, why, sizeof why);
        snprintf(err, errlen,
                 "raft cannot use %s: %s (libraft needs a filesystem such as ext4, xfs or "
                 "tmpfs; ramfs is not supported)",
                 n->raft_dir, why);
        goto err_io;
    }
    n->raft.data = n;
    raft_set_election_timeout(&n->raft, election);
    raft_set_heartbeat_timeout(&n->raft, heartbeat);
    raft_set_install_snapshot_timeout(
        &n->raft, cfg->install_snapshot_timeout_ms ? cfg->install_snapshot_timeout_ms
                                                   : RAFT_NODE_DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_MS);
    raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold
                                              ? cfg->snapshot_threshold
                                              : RAFT_NODE_DEFAULT_SNAPSHOT_THRESHOLD);
    raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing
                                             ? cfg->snapshot_trailing
                                             : RAFT_NODE_DEFAULT_SNAPSHOT_TRAILING);
    /* Pre-vote: a node that was cut off does not bump everyone's term
     * (and depose a healthy leader) when it comes back. */
    raft_set_pre_vote(&n->raft, true);

    uv_check_init(loop, &n->watch);
    n->watch.data = n;
    if (!cfg->join && raftNodeBootstrap(n, cfg, err, errlen) != 0) goto err_async;
    /* A segment failing its checksum is renamed corrupt-* by libraft, with
     * every segment after it, and the node starts from the log before it.
     * raft_uv_set_auto_recovery(false) did not stop that in 0.15, so we can
     * only say it happened, loudly. */
    int corrupt_before = raftNodeCountCorrupt(n->raft_dir);
    rv = raft_start(&n->raft);
    if (rv != 0) {
        char why[RAFT_ERRMSG_BUF_SIZE + 64];
        raftNodeDescribe(n, rv, why, sizeof why);
        snprintf(err, errlen, "raft start in %s failed: %s", n->raft_dir, why);
        goto err_async;
    }
    n->started = true;
    uv_check_start(&n->watch, raftNodeOnWatch);
    if (raftNodeCountCorrupt(n->raft_dir) > corrupt_before)
        logError("raft: part of the log in %s failed its checksum; libraft renamed it to "
                 "corrupt-* and started from the entries before it, which the leader will "
                 "resend. If several nodes report this, committed entries may be lost: check "
                 "the disks",
                 n->raft_dir);
    if (cfg->ncluster_keys == 0)
        logWarn("raft: no cluster key: any host that can reach %s can take part in raft",
                cfg->address);
    *out = n;
    return RAFT_NODE_OK;

err_async:
    /* libraft is initialized: only raft_close can undo that, and it
     * finishes on the loop. */
    n->closing = true;
    raftNodeBeginClose(n);
    return RAFT_NODE_ERROR;
err_io:
    raft_uv_close(&n->io);
err_transport:
    raftAuthTransportClose(&n->transport);
err_free:
    if (n->lock_fd >= 0) close(n->lock_fd);
    bufFree(&n->apply_out);
    free(n->raft_dir);
    free(n);
    return RAFT_NODE_ERROR;
}
