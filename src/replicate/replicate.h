/* Replication of writes between members: the message that carries them
 * and the rule that decides what a replica keeps.
 *
 * A node pushes each local write to every live member in a batch message:
 * the sender's id and clocks (so the receiver's clocks merge, as for any
 * message) and the written records, each with the version it was written
 * at. A receiver compares the incoming version with the one it holds:
 * newer replaces, older or equal is ignored, concurrent is a conflict,
 * resolved by one deterministic rule (higher Lamport time, then higher
 * origin id) with the stored clock becoming the merge of both, so every
 * replica ends with the same value and version whatever the order in which
 * writes arrive. Pure code: no I/O, no clock reads. */
#ifndef DMKV_REPLICATE_REPLICATE_H
#define DMKV_REPLICATE_REPLICATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock/clock.h"
#include "store/store.h"
#include "util/buf.h"

#define REPL_FORMAT_V1   1u
#define REPL_MAX_RECORDS 100000u
#define REPL_MAX_MSG_ID  64u

/* ---- The batch message ---- */

typedef struct replHeader {
    uint32_t sender;
    uint64_t lamport;             /* sender's Lamport time at the send */
    vclock vc;                    /* sender's vector clock at the send */
    char msg_id[REPL_MAX_MSG_ID]; /* pairs the send and receive events */
} replHeader;

/* Wire form, little-endian: u8 format, u32 sender, u64 lamport, u16
 * clock length, clock (clock module encoding), u8 id length, message id,
 * u32 record count, then per record u16 key length, key, u32 record
 * length, record (store module encoding). */

/* Starts a batch in out; returns where the record count goes. */
size_t replBatchBegin(buf *out, uint32_t sender, uint64_t lamport, const vclock *vc,
                      const char *msg_id);
void replBatchAdd(buf *out, const void *key, size_t klen, const storeRecord *rec);
/* Writes the record count; call once, after the last replBatchAdd. */
void replBatchEnd(buf *out, size_t count_offset, uint32_t count);

typedef struct replBatchReader {
    const uint8_t *p;
    size_t len;
    size_t pos;
    uint32_t left;
} replBatchReader;

/* Parses the header (h->vc must be initialized by the caller). Returns 0,
 * or -1 for a malformed message. */
int replBatchOpen(const uint8_t *data, size_t len, replHeader *h, replBatchReader *r);
/* Next record: 1 with key and rec pointing into the message, 0 at the end,
 * -1 for a malformed record (the rest of the batch must be ignored). */
int replBatchNext(replBatchReader *r, const uint8_t **key, size_t *klen, storeRecord *rec);

/* ---- Anti-entropy ----
 *
 * Each node keeps a summary vector: for every origin, the highest write
 * sequence number up to which it has seen all of that origin's writes
 * (holds them, or a newer version of the same key). A node asks a peer for
 * what it lacks by sending its summary; the peer answers, page by page,
 * with every record it holds whose (origin, seq) is above the summary,
 * read from its change index, plus its own summary as it stood at the
 * first page. When the last page is applied the asker raises its summary
 * to the peer's: it now holds everything the peer had seen. */

#define REPL_SYNC_FORMAT_V1        1u
#define REPL_SYNC_MAX_PAGE_RECORDS 10000u

typedef struct replSyncRequest {
    uint32_t requester;
    uint64_t epoch;       /* the responder's feed numbering the position is in; 0 = none */
    uint64_t after;       /* read the feed after this change sequence number */
    uint32_t max_records; /* 1..REPL_SYNC_MAX_PAGE_RECORDS */
    vclock summary;       /* the requester's; initialized by the caller */
} replSyncRequest;

/* Wire form, little-endian: u8 format, u32 requester, u64 epoch, u64
 * after, u32 max records, u16 summary length, summary (clock module
 * encoding), nothing after. */
void replSyncRequestEncode(const replSyncRequest *q, buf *out);
/* Returns 0, or -1 for a malformed request. */
int replSyncRequestDecode(const uint8_t *p, size_t len, replSyncRequest *q);

typedef struct replSyncPage {
    bool done;      /* the feed was read to its end */
    bool recheck;   /* the responder forgot the asker for a while (it was
                       forced to leave): check your keys with me again */
    uint64_t epoch; /* the responder's feed numbering */
    uint64_t next;  /* where the next request continues ("after") */
    vclock summary; /* the responder's; initialized by the caller */
} replSyncPage;

/* Wire form: u8 format, u8 flags (1 done, 2 recheck), u64 epoch, u64
 * next, u16 summary length, summary, then a replication batch (the
 * records). */
void replSyncPageEncodeHead(const replSyncPage *pg, buf *out);
/* Parses the head; *batch_at is where the batch starts. Returns 0 or -1. */
int replSyncPageDecodeHead(const uint8_t *p, size_t len, replSyncPage *pg, size_t *batch_at);

/* ---- Checking what a returning node holds ----
 *
 * Tombstones are collected once every member has seen them; a member that
 * left the cluster is not waited for. When it comes back with its data it
 * may hold keys deleted meanwhile, which no one can send it a delete for
 * any more. So once per start a node asks a live member about every key it
 * holds, a page at a time: for each (key, origin, seq) the member answers
 * whether it has *collected* that write: it holds no record for the key
 * and its summary covers the write, so it has seen the write and a delete
 * that superseded it has been collected (the same reasoning by which a
 * replica ignores such a write as old news). The asker removes those keys,
 * if it still holds the same write. */

#define REPL_VERIFY_FORMAT_V1 1u
#define REPL_VERIFY_MAX_KEYS  2000u

/* Request, little-endian: u8 format, u32 requester, u32 count (1 ..
 * REPL_VERIFY_MAX_KEYS), then per key u16 key length, key, u32 origin, u64
 * seq (both > 0). Answer: u8 format, u32 count (the request's), then the
 * bits, key i in byte i / 8 at bit i % 8, set when collected; unused bits
 * are 0. */
size_t replVerifyBegin(buf *out, uint32_t requester);
void replVerifyAdd(buf *out, const void *key, size_t klen, uint32_t origin, uint64_t seq);
void replVerifyEnd(buf *out, size_t count_offset, uint32_t count);

typedef struct replVerifyReader {
    const uint8_t *p;
    size_t len, pos;
    uint32_t left;
} replVerifyReader;

/* Returns 0 with the requester and a reader over the keys, or -1. */
int replVerifyOpen(const uint8_t *p, size_t len, uint32_t *requester, replVerifyReader *r);
/* 1 with the next key, 0 at the end, -1 for a malformed request. */
int replVerifyNext(replVerifyReader *r, const uint8_t **key, size_t *klen, uint32_t *origin,
                   uint64_t *seq);

/* bits holds (count + 7) / 8 bytes. */
void replVerifyAnswerEncode(buf *out, uint32_t count, const uint8_t *bits);
/* Points *bits into p; -1 unless the answer is well formed for count keys. */
int replVerifyAnswerDecode(const uint8_t *p, size_t len, uint32_t count, const uint8_t **bits);

/* ---- The rule ---- */

typedef enum replDecision {
    REPL_KEEP = 0,     /* what is stored is newer or the same: ignore the incoming */
    REPL_REPLACE = 1,  /* the incoming is newer: store it as it is */
    REPL_CONFLICT = 2, /* concurrent: store replResolve's result */
} replDecision;

/* Compares the incoming version with the stored one (NULL when the key is
 * not stored). Versions whose clocks cannot be decoded count as older. */
replDecision replDecide(const storeVersion *stored, const storeVersion *incoming);

/* The writes a record stands for, per origin the highest seq (into out):
 * a merge's merged writes, any other record's own write. False when
 * unknown: a write without a seq or origin, or a merge without the list. */
bool replResolvedWrites(const storeVersion *v, vclock *out);

/* Where replResolve encodes the fields it makes. */
typedef struct replResolveBufs {
    buf vclock;
    buf merged;
} replResolveBufs;
void replResolveBufsInit(replResolveBufs *b);
void replResolveBufsFree(replResolveBufs *b);

/* For a conflict: the winner (higher Lamport, then higher origin) with
 * Lamport = max of both, the clock = merge of both, flagged merged, and
 * its merged writes (storeVersion.merged) = per origin the highest seq
 * among the writes either side stands for (a plain write stands for
 * itself), or empty when either side's are unknown. Both are encoded into
 * bufs, which out->ver then points to; out->value points to the winner's
 * value. Symmetric: resolve(a, b) == resolve(b, a). */
void replResolve(const storeRecord *stored, const storeRecord *incoming, storeRecord *out,
                 replResolveBufs *bufs);

#endif
