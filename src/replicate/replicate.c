/* The replication batch codec and the conflict rule; see replicate.h. */
#include "replicate/replicate.h"

#include <string.h>

static void putU16(buf *b, uint16_t v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    bufAppend(b, x, 2);
}

static void putU32(buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    bufAppend(b, x, 4);
}

static void putU64(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    bufAppend(b, x, 8);
}

static uint64_t getLE(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void putClock(buf *out, const vclock *vc) {
    buf enc;
    bufInit(&enc);
    vclockEncode(vc, &enc);
    putU16(out, (uint16_t)enc.len);
    bufAppend(out, enc.data, enc.len);
    bufFree(&enc);
}

/* Reads a u16-prefixed clock at *pos; -1 when it does not fit exactly. */
static int getClock(const uint8_t *p, size_t len, size_t *pos, vclock *out) {
    if (len - *pos < 2) return -1;
    size_t n = (size_t)getLE(p + *pos, 2);
    *pos += 2;
    if (len - *pos < n) return -1;
    size_t used = 0;
    if (vclockDecode(p + *pos, n, out, &used) != 0 || used != n) return -1;
    *pos += n;
    return 0;
}

size_t replBatchBegin(buf *out, uint32_t sender, uint64_t lamport, const vclock *vc,
                      const char *msg_id) {
    bufAppendChar(out, (char)REPL_FORMAT_V1);
    putU32(out, sender);
    putU64(out, lamport);
    putClock(out, vc);
    size_t idlen = msg_id ? strnlen(msg_id, REPL_MAX_MSG_ID - 1) : 0;
    bufAppendChar(out, (char)idlen);
    bufAppend(out, msg_id, idlen);
    size_t at = out->len;
    putU32(out, 0);
    return at;
}

void replBatchAdd(buf *out, const void *key, size_t klen, const storeRecord *rec) {
    putU16(out, (uint16_t)klen);
    bufAppend(out, key, klen);
    size_t n = recordEncodedSize(rec);
    putU32(out, (uint32_t)n);
    bufReserve(out, n);
    recordEncode(rec, (uint8_t *)out->data + out->len);
    out->len += n;
}

void replBatchEnd(buf *out, size_t count_offset, uint32_t count) {
    for (int i = 0; i < 4; i++)
        out->data[count_offset + (size_t)i] = (char)(uint8_t)(count >> (8 * i));
}

int replBatchOpen(const uint8_t *p, size_t len, replHeader *h, replBatchReader *r) {
    size_t pos = 0;
    if (len < 1 + 4 + 8 + 2 || p[0] != REPL_FORMAT_V1) return -1;
    h->sender = (uint32_t)getLE(p + 1, 4);
    h->lamport = getLE(p + 5, 8);
    size_t vclen = (size_t)getLE(p + 13, 2);
    pos = 15;
    if (h->sender == 0 || len - pos < vclen) return -1;
    size_t used = 0;
    if (vclockDecode(p + pos, vclen, &h->vc, &used) != 0 || used != vclen) return -1;
    pos += vclen;
    if (len - pos < 1) return -1;
    size_t idlen = p[pos++];
    if (idlen >= REPL_MAX_MSG_ID || len - pos < idlen + 4) return -1;
    /* The id is used as a C string: a NUL inside would cut it short. */
    if (memchr(p + pos, '\0', idlen)) return -1;
    memcpy(h->msg_id, p + pos, idlen);
    h->msg_id[idlen] = '\0';
    pos += idlen;
    uint32_t count = (uint32_t)getLE(p + pos, 4);
    pos += 4;
    if (count > REPL_MAX_RECORDS) return -1;
    r->p = p;
    r->len = len;
    r->pos = pos;
    r->left = count;
    return 0;
}

int replBatchNext(replBatchReader *r, const uint8_t **key, size_t *klen, storeRecord *rec) {
    if (r->left == 0) return r->pos == r->len ? 0 : -1; /* trailing bytes are malformed */
    if (r->len - r->pos < 2) return -1;
    size_t kl = (size_t)getLE(r->p + r->pos, 2);
    r->pos += 2;
    if (kl == 0 || kl > STORE_MAX_KEY_BYTES || r->len - r->pos < kl + 4) return -1;
    *key = r->p + r->pos;
    *klen = kl;
    r->pos += kl;
    size_t rl = (size_t)getLE(r->p + r->pos, 4);
    r->pos += 4;
    if (r->len - r->pos < rl) return -1;
    if (recordDecode(r->p + r->pos, rl, rec) != 0) return -1;
    r->pos += rl;
    r->left--;
    return 1;
}

void replSyncRequestEncode(const replSyncRequest *q, buf *out) {
    bufAppendChar(out, (char)REPL_SYNC_FORMAT_V1);
    putU32(out, q->requester);
    putU64(out, q->epoch);
    putU64(out, q->after);
    putU32(out, q->max_records);
    putClock(out, &q->summary);
}

int replSyncRequestDecode(const uint8_t *p, size_t len, replSyncRequest *q) {
    if (len < 1 + 4 + 8 + 8 + 4 || p[0] != REPL_SYNC_FORMAT_V1) return -1;
    q->requester = (uint32_t)getLE(p + 1, 4);
    q->epoch = getLE(p + 5, 8);
    q->after = getLE(p + 13, 8);
    q->max_records = (uint32_t)getLE(p + 21, 4);
    if (q->requester == 0 || q->max_records == 0 || q->max_records > REPL_SYNC_MAX_PAGE_RECORDS)
        return -1;
    size_t pos = 25;
    if (getClock(p, len, &pos, &q->summary) != 0) return -1;
    return pos == len ? 0 : -1;
}

void replSyncPageEncodeHead(const replSyncPage *pg, buf *out) {
    bufAppendChar(out, (char)REPL_SYNC_FORMAT_V1);
    bufAppendChar(out, (char)((pg->done ? 1 : 0) | (pg->recheck ? 2 : 0)));
    putU64(out, pg->epoch);
    putU64(out, pg->next);
    putClock(out, &pg->summary);
}

int replSyncPageDecodeHead(const uint8_t *p, size_t len, replSyncPage *pg, size_t *batch_at) {
    if (len < 1 + 1 + 8 + 8 || p[0] != REPL_SYNC_FORMAT_V1 || p[1] > 3) return -1;
    pg->done = p[1] & 1;
    pg->recheck = (p[1] & 2) != 0;
    pg->epoch = getLE(p + 2, 8);
    pg->next = getLE(p + 10, 8);
    if (pg->epoch == 0) return -1;
    size_t pos = 18;
    if (getClock(p, len, &pos, &pg->summary) != 0) return -1;
    *batch_at = pos;
    return 0;
}

size_t replVerifyBegin(buf *out, uint32_t requester) {
    bufAppendChar(out, (char)REPL_VERIFY_FORMAT_V1);
    putU32(out, requester);
    size_t at = out->len;
    putU32(out, 0);
    return at;
}

void replVerifyAdd(buf *out, const void *key, size_t klen, uint32_t origin, uint64_t seq) {
    putU16(out, (uint16_t)klen);
    bufAppend(out, key, klen);
    putU32(out, origin);
    putU64(out, seq);
}

void replVerifyEnd(buf *out, size_t count_offset, uint32_t count) {
    replBatchEnd(out, count_offset, count);
}

int replVerifyOpen(const uint8_t *p, size_t len, uint32_t *requester, replVerifyReader *r) {
    if (len < 1 + 4 + 4 || p[0] != REPL_VERIFY_FORMAT_V1) return -1;
    *requester = (uint32_t)getLE(p + 1, 4);
    uint32_t count = (uint32_t)getLE(p + 5, 4);
    if (*requester == 0 || count == 0 || count > REPL_VERIFY_MAX_KEYS) return -1;
    r->p = p;
    r->len = len;
    r->pos = 9;
    r->left = count;
    return 0;
}

int replVerifyNext(replVerifyReader *r, const uint8_t **key, size_t *klen, uint32_t *origin,
                   uint64_t *seq) {
    if (r->left == 0) return r->pos == r->len ? 0 : -1;
    if (r->len - r->pos < 2) return -1;
    size_t kl = (size_t)getLE(r->p + r->pos, 2);
    r->pos += 2;
    if (kl == 0 || kl > STORE_MAX_KEY_BYTES || r->len - r->pos < kl + 4 + 8) return -1;
    *key = r->p + r->pos;
    *klen = kl;
    r->pos += kl;
    *origin = (uint32_t)getLE(r->p + r->pos, 4);
    *seq = getLE(r->p + r->pos + 4, 8);
    r->pos += 12;
    if (*origin == 0 || *seq == 0) return -1;
    r->left--;
    return 1;
}

void replVerifyAnswerEncode(buf *out, uint32_t count, const uint8_t *bits) {
    bufAppendChar(out, (char)REPL_VERIFY_FORMAT_V1);
    putU32(out, count);
    bufAppend(out, bits, ((size_t)count + 7) / 8);
}

int replVerifyAnswerDecode(const uint8_t *p, size_t len, uint32_t count, const uint8_t **bits) {
    size_t n = ((size_t)count + 7) / 8;
    if (len != 1 + 4 + n || p[0] != REPL_VERIFY_FORMAT_V1 || getLE(p + 1, 4) != count) return -1;
    /* The bits past the last key are 0: one encoding per answer. */
    if (count % 8 && (p[5 + n - 1] >> (count % 8))) return -1;
    *bits = p + 5;
    return 0;
}

static bool decodeClock(const storeVersion *v, vclock *out) {
    size_t used = 0;
    return vclockDecode(v->vclock, v->vclock_len, out, &used) == 0 && used == v->vclock_len;
}

replDecision replDecide(const storeVersion *stored, const storeVersion *incoming) {
    if (!stored) return REPL_REPLACE;
    /* Every replicated write is decided here: the decoded clocks are kept
     * (per thread) and reused, so deciding allocates nothing once warm. */
    static _Thread_local vclock a, b;
    vclockClear(&a);
    vclockClear(&b);
    bool ok_a = decodeClock(stored, &a), ok_b = decodeClock(incoming, &b);
    if (!ok_b) return REPL_KEEP;
    if (!ok_a) return REPL_REPLACE;
    switch (vclockCompare(&b, &a)) {
    case VCLOCK_AFTER:
        return REPL_REPLACE;
    case VCLOCK_CONCURRENT:
        return REPL_CONFLICT;
    default:
        return REPL_KEEP; /* before or equal */
    }
}

/* Compares byte strings: shorter first, then by bytes. */
static int bytesCompare(const void *a, size_t alen, const void *b, size_t blen) {
    if (alen != blen) return alen < blen ? -1 : 1;
    return alen ? memcmp(a, b, alen) : 0;
}

/* Higher Lamport wins; on a tie the higher origin. Two concurrent writes
 * with the same Lamport time and origin cannot come from one healthy node,
 * but a node restarted under its old id with empty data could make them:
 * the flags, the clock and then the value decide, so the choice is still
 * the same whichever arrives first. */
static bool firstWins(const storeRecord *x, const storeRecord *y) {
    if (x->ver.lamport != y->ver.lamport) return x->ver.lamport > y->ver.lamport;
    if (x->ver.origin != y->ver.origin) return x->ver.origin > y->ver.origin;
    if (x->ver.flags != y->ver.flags) return x->ver.flags > y->ver.flags;
    int c = bytesCompare(x->ver.vclock, x->ver.vclock_len, y->ver.vclock, y->ver.vclock_len);
    if (c != 0) return c > 0;
    return bytesCompare(x->value, x->value_len, y->value, y->value_len) > 0;
}

bool replResolvedWrites(const storeVersion *v, vclock *out) {
    vclockClear(out);
    if (!(v->flags & STORE_FLAG_MERGED)) {
        if (v->seq == 0 || v->origin == 0) return false;
        vclockSet(out, v->origin, v->seq);
        return true;
    }
    size_t used = 0;
    return v->merged_len && vclockDecode(v->merged, v->merged_len, out, &used) == 0 &&
           used == v->merged_len && out->n > 0;
}

void replResolveBufsInit(replResolveBufs *b) {
    bufInit(&b->vclock);
    bufInit(&b->merged);
}

void replResolveBufsFree(replResolveBufs *b) {
    bufFree(&b->vclock);
    bufFree(&b->merged);
}

void replResolve(const storeRecord *stored, const storeRecord *incoming, storeRecord *out,
                 replResolveBufs *bufs) {
    const storeRecord *win = firstWins(stored, incoming) ? stored : incoming;
    const storeRecord *lose = win == stored ? incoming : stored;
    vclock m, o;
    vclockInit(&m);
    vclockInit(&o);
    decodeClock(&win->ver, &m);
    decodeClock(&lose->ver, &o);
    vclockMerge(&m, &o);
    bufClear(&bufs->vclock);
    vclockEncode(&m, &bufs->vclock);
    /* The merge stands for every write either side stands for. */
    bufClear(&bufs->merged);
    if (replResolvedWrites(&win->ver, &m) && replResolvedWrites(&lose->ver, &o)) {
        vclockMerge(&m, &o);
        if (vclockEncodedSize(&m) <= STORE_MAX_VCLOCK_BYTES) vclockEncode(&m, &bufs->merged);
    }
    vclockFree(&m);
    vclockFree(&o);
    *out = *win;
    out->ver.lamport = win->ver.lamport > lose->ver.lamport ? win->ver.lamport : lose->ver.lamport;
    out->ver.vclock = (const uint8_t *)bufs->vclock.data;
    out->ver.vclock_len = bufs->vclock.len;
    out->ver.merged = bufs->merged.len ? (const uint8_t *)bufs->merged.data : NULL;
    out->ver.merged_len = bufs->merged.len;
    out->ver.flags |= STORE_FLAG_MERGED;
}
