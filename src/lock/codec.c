/* Encoder and bounds-checked decoder for lock op batches and results; the
 * layouts are described in lock.h.
 *
 * Batches are Raft log entries: every replica decodes the same bytes, so
 * the decoder only has to be strict and deterministic, never clever. It
 * reads through a cursor that refuses any read past the end, and a field
 * is either fully valid or the op is malformed. Fixed-width little-endian
 * integers keep each field's size known before it is read, and make the
 * encoding canonical: one op, one byte string. */
#include "lock/lock.h"
#include "lock/wire.h"

#include <stdlib.h>
#include <string.h>

/* ---- Little-endian helpers -------------------------------------------- */

void putLE(buf *b, uint64_t v, int bytes) {
    uint8_t tmp[8];
    for (int i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    bufAppend(b, tmp, (size_t)bytes);
}

bool getLE(cursor *c, int bytes, uint64_t *v) {
    if (c->len - c->pos < (size_t)bytes) return false;
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++) x |= (uint64_t)c->p[c->pos + i] << (8 * i);
    c->pos += (size_t)bytes;
    *v = x;
    return true;
}

static bool get8(cursor *c, uint8_t *v) {
    uint64_t x;
    if (!getLE(c, 1, &x)) return false;
    *v = (uint8_t)x;
    return true;
}

static bool get16(cursor *c, uint16_t *v) {
    uint64_t x;
    if (!getLE(c, 2, &x)) return false;
    *v = (uint16_t)x;
    return true;
}

static bool get32(cursor *c, uint32_t *v) {
    uint64_t x;
    if (!getLE(c, 4, &x)) return false;
    *v = (uint32_t)x;
    return true;
}

static bool get64(cursor *c, uint64_t *v) {
    return getLE(c, 8, v);
}

/* ---- What each kind carries ------------------------------------------- */

enum { F_NAME = 1, F_OWNER = 2, F_NODE = 4, F_TOKEN = 8, F_TTL = 16, F_INDEX = 32 };

static int fieldsOf(uint8_t kind) {
    switch (kind) {
    case LOCK_OP_ACQUIRE:
        return F_NAME | F_OWNER | F_TTL;
    case LOCK_OP_RELEASE:
        return F_NAME | F_OWNER | F_TOKEN;
    case LOCK_OP_CANCEL:
        return F_NAME | F_OWNER;
    case LOCK_OP_EXPIRE:
        return F_NAME | F_TOKEN;
    case LOCK_OP_RENEW:
        return F_NAME | F_OWNER | F_TOKEN | F_TTL;
    case LOCK_OP_OWNER_GONE:
        return F_OWNER;
    case LOCK_OP_NODE_DEAD:
        return F_NODE;
    case LOCK_OP_EXPIRE_LEASE:
        return F_NAME | F_TOKEN | F_INDEX;
    default:
        return 0;
    }
}

/* ---- Ops -------------------------------------------------------------- */

const char *lockOpCheck(const lockOp *op) {
    int f = (unsigned)op->kind > 255 ? 0 : fieldsOf((uint8_t)op->kind);
    if (f == 0) return "unknown lock operation";
    if (f & F_NAME) {
        if (op->name_len == 0) return "lock name is empty";
        if (op->name_len > LOCK_NAME_MAX) return "lock name is longer than 512 bytes";
        if (!op->name) return "lock name is missing";
    }
    if ((f & (F_OWNER | F_NODE)) && op->owner.node == 0) return "node id 0 is not a valid node";
    return NULL;
}

int lockOpEncode(buf *out, const lockOp *op) {
    if (lockOpCheck(op)) return -1;
    int f = fieldsOf((uint8_t)op->kind);
    putLE(out, (uint64_t)op->kind, 1);
    putLE(out, op->req, 8);
    if (f & F_NAME) {
        putLE(out, op->name_len, 2);
        bufAppend(out, op->name, op->name_len);
    }
    if (f & (F_OWNER | F_NODE)) putLE(out, op->owner.node, 4);
    if (f & F_OWNER) putLE(out, op->owner.client, 8);
    if (f & F_TOKEN) putLE(out, op->token, 8);
    if (f & F_TTL) putLE(out, op->ttl_ms, 4);
    if (f & F_INDEX) putLE(out, op->granted_index, 8);
    return 0;
}

static bool opDecode(cursor *c, lockOp *op) {
    memset(op, 0, sizeof *op);
    uint8_t kind;
    if (!get8(c, &kind)) return false;
    int f = fieldsOf(kind);
    if (f == 0) return false;
    op->kind = (lockOpKind)kind;
    if (!get64(c, &op->req)) return false;
    if (f & F_NAME) {
        uint16_t n;
        if (!get16(c, &n) || n == 0 || n > LOCK_NAME_MAX || c->len - c->pos < n) return false;
        op->name = c->p + c->pos;
        op->name_len = n;
        c->pos += n;
    }
    if (f & (F_OWNER | F_NODE)) {
        if (!get32(c, &op->owner.node) || op->owner.node == 0) return false;
    }
    if ((f & F_OWNER) && !get64(c, &op->owner.client)) return false;
    if ((f & F_TOKEN) && !get64(c, &op->token)) return false;
    if ((f & F_TTL) && !get32(c, &op->ttl_ms)) return false;
    if ((f & F_INDEX) && !get64(c, &op->granted_index)) return false;
    return true;
}

/* ---- Batches ---------------------------------------------------------- */

void lockBatchBegin(lockBatchWriter *w, buf *out) {
    w->out = out;
    w->start = out->len;
    w->count = 0;
    putLE(out, LOCK_BATCH_V1, 1);
    putLE(out, 0, 2);
}

int lockBatchAdd(lockBatchWriter *w, const lockOp *op) {
    if (w->count >= LOCK_MAX_OPS_PER_BATCH) return -1;
    if (lockOpEncode(w->out, op) != 0) return -1;
    w->count++;
    return 0;
}

void lockBatchEnd(lockBatchWriter *w) {
    uint8_t *p = (uint8_t *)w->out->data + w->start + 1;
    p[0] = (uint8_t)w->count;
    p[1] = (uint8_t)(w->count >> 8);
}

int lockBatchOpen(lockBatchReader *r, const uint8_t *data, size_t len) {
    memset(r, 0, sizeof *r);
    cursor c = {data, len, 0};
    uint8_t format;
    uint16_t count;
    if (!get8(&c, &format) || format != LOCK_BATCH_V1 || !get16(&c, &count)) return -1;
    if (count > LOCK_MAX_OPS_PER_BATCH || (count == 0 && c.pos != len)) return -1;
    r->p = data;
    r->len = len;
    r->pos = c.pos;
    r->count = count;
    return 0;
}

int lockBatchNext(lockBatchReader *r, lockOp *op) {
    if (r->bad) return -1;
    if (r->done == r->count) return 0;
    cursor c = {r->p, r->len, r->pos};
    bool ok = opDecode(&c, op);
    /* The last op must end exactly where the entry does. */
    if (ok && r->done + 1 == r->count && c.pos != c.len) ok = false;
    if (!ok) {
        r->bad = true;
        return -1;
    }
    r->pos = c.pos;
    r->done++;
    return 1;
}

/* ---- Results ---------------------------------------------------------- */

void lockResultsInit(lockResults *rs) {
    rs->r = NULL;
    rs->n = rs->cap = 0;
}

void lockResultsFree(lockResults *rs) {
    free(rs->r);
    lockResultsInit(rs);
}

/* The outcomes each kind can have, and which of them carry a token: what
 * the table produces, so a decoded result means the same to every reader. */
static bool resultValid(const lockResult *x) {
    bool tok = x->token != 0;
    switch (x->kind) {
    case 0:
        return x->status == LOCK_ERR_MALFORMED && x->req == 0 && !tok;
    case LOCK_OP_ACQUIRE:
        return (x->status == LOCK_OK && tok) ||
               ((x->status == LOCK_QUEUED || x->status == LOCK_ERR_FULL) && !tok);
    case LOCK_OP_RELEASE:
    case LOCK_OP_EXPIRE:
    case LOCK_OP_EXPIRE_LEASE:
    case LOCK_OP_RENEW:
        return (x->status == LOCK_OK && tok) || (x->status == LOCK_ERR_NOT_HOLDER && !tok);
    case LOCK_OP_CANCEL:
        return (x->status == LOCK_ALREADY_GRANTED && tok) ||
               ((x->status == LOCK_OK || x->status == LOCK_ERR_NOT_WAITING) && !tok);
    case LOCK_OP_OWNER_GONE:
    case LOCK_OP_NODE_DEAD:
        return x->status == LOCK_OK && !tok;
    default:
        return false;
    }
}

void lockResultsEncode(const lockResult *r, size_t n, buf *out) {
    putLE(out, LOCK_RESULTS_V1, 1);
    putLE(out, n, 2);
    for (size_t i = 0; i < n; i++) {
        putLE(out, r[i].kind, 1);
        putLE(out, r[i].status, 1);
        putLE(out, r[i].req, 8);
        putLE(out, r[i].token, 8);
    }
}

int lockResultsDecode(lockResults *rs, const uint8_t *p, size_t len) {
    rs->n = 0;
    cursor c = {p, len, 0};
    uint8_t format;
    uint16_t count;
    if (!get8(&c, &format) || format != LOCK_RESULTS_V1 || !get16(&c, &count)) return -1;
    if (count > LOCK_MAX_OPS_PER_BATCH || len - c.pos != (size_t)count * LOCK_RESULT_BYTES)
        return -1;
    if (rs->cap < count) {
        rs->r = xrealloc(rs->r, count * sizeof *rs->r);
        rs->cap = count;
    }
    for (uint16_t i = 0; i < count; i++) {
        lockResult *x = &rs->r[i];
        /* The length check above guarantees every read succeeds. */
        get8(&c, &x->kind);
        get8(&c, &x->status);
        get64(&c, &x->req);
        get64(&c, &x->token);
        if (!resultValid(x)) {
            rs->n = 0;
            return -1;
        }
    }
    rs->n = count;
    return 0;
}

/* ---- Names ------------------------------------------------------------ */

const char *lockOpKindName(lockOpKind k) {
    switch (k) {
    case LOCK_OP_ACQUIRE:
        return "ACQUIRE";
    case LOCK_OP_RELEASE:
        return "RELEASE";
    case LOCK_OP_CANCEL:
        return "CANCEL";
    case LOCK_OP_EXPIRE:
        return "EXPIRE";
    case LOCK_OP_RENEW:
        return "RENEW";
    case LOCK_OP_OWNER_GONE:
        return "OWNER_GONE";
    case LOCK_OP_NODE_DEAD:
        return "NODE_DEAD";
    case LOCK_OP_EXPIRE_LEASE:
        return "EXPIRE_LEASE";
    }
    return "?";
}

const char *lockStatusName(lockStatus s) {
    switch (s) {
    case LOCK_OK:
        return "OK";
    case LOCK_QUEUED:
        return "QUEUED";
    case LOCK_ALREADY_GRANTED:
        return "ALREADY_GRANTED";
    case LOCK_ERR_NOT_HOLDER:
        return "NOT_HOLDER";
    case LOCK_ERR_NOT_WAITING:
        return "NOT_WAITING";
    case LOCK_ERR_FULL:
        return "FULL";
    case LOCK_ERR_MALFORMED:
        return "MALFORMED";
    }
    return "?";
}

const char *lockStatusMessage(lockStatus s) {
    switch (s) {
    case LOCK_OK:
        return "ok";
    case LOCK_QUEUED:
        return "waiting for the lock";
    case LOCK_ALREADY_GRANTED:
        return "the lock was granted before the wait was cancelled";
    case LOCK_ERR_NOT_HOLDER:
        return "this client does not hold the lock with that token (released, expired or "
               "never granted); take the lock again";
    case LOCK_ERR_NOT_WAITING:
        return "this client is not waiting for the lock";
    case LOCK_ERR_FULL:
        return "too many locks or waiters (at most 100000 locks and 10000 waiters per lock); "
               "release locks or retry later";
    case LOCK_ERR_MALFORMED:
        return "internal error: a malformed lock operation was replicated";
    }
    return "unknown lock status";
}
