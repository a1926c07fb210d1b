/* Durable storage of keys and their versions on LMDB.
 *
 * The store owns one LMDB environment under the node's data directory. A
 * key maps to a record: the value plus the version metadata the cluster
 * needs (encoded vector clock, Lamport time, origin node, fencing token,
 * tombstone flag), so replication and the mutex add no migration.
 *
 * Writes are grouped: the first write after a commit opens a batch (one
 * LMDB write transaction), every later write joins it, and storeCommit()
 * ends it. The server commits once per event-loop iteration, so all the
 * writes that arrived together cost one transaction, and with
 * STORE_FSYNC_ALWAYS one fsync, before any of their replies is sent.
 * Reads inside a batch see its writes. A write that fails inside LMDB
 * aborts the whole batch (LMDB cannot continue a transaction after an
 * error), and the caller must then treat every write of that batch as not
 * applied.
 *
 * Two kinds of write error return STORE_ERR, and storeInBatch() tells
 * them apart. Arguments the store rejects itself (empty key, key longer
 * than STORE_MAX_KEY_BYTES, vclock or merged writes longer than
 * STORE_MAX_VCLOCK_BYTES,
 * unknown flags, a record over 4 GiB, a write from inside a scan
 * callback) are checked before LMDB is called: the batch, and its earlier
 * writes, stay as they were. Errors from LMDB (map full, disk full, I/O)
 * abort the batch: its earlier writes are gone, storeInBatch() is false,
 * and the next write starts a new batch. A failed storeCommit() also
 * discards its batch.
 *
 * The store is used from the event-loop thread only, except storeSync(),
 * which may run on another thread (the everysec flush). */
#ifndef DMKV_STORE_STORE_H
#define DMKV_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef enum storeFsync {
    STORE_FSYNC_ALWAYS = 0,   /* every batch is on disk before storeCommit returns */
    STORE_FSYNC_EVERYSEC = 1, /* batches reach the OS at once, the disk within ~1 s */
    STORE_FSYNC_NO = 2,       /* the OS decides when */
} storeFsync;

enum storeResult {
    STORE_OK = 0,
    STORE_NOTFOUND = 1,
    STORE_ERR = -1, /* storeError() says what; an LMDB error aborted the batch */
};

#define STORE_FLAG_TOMBSTONE   0x01u
#define STORE_FLAG_MERGED      0x02u /* the resolution of concurrent writes (replicate.h) */
#define STORE_KNOWN_FLAGS      (STORE_FLAG_TOMBSTONE | STORE_FLAG_MERGED)
#define STORE_MAX_VCLOCK_BYTES 65535u
#define STORE_MAX_KEY_BYTES    511u /* LMDB's default maximum key size */

typedef struct storeVersion {
    uint64_t lamport;
    uint64_t token;  /* fencing token of the write; 0 when none */
    uint32_t origin; /* id of the node that made the write */
    uint64_t seq;    /* the origin's write sequence number (1, 2, ...; 0 when unknown) */
    uint64_t
        change_seq; /* local: this record's place in the store's change feed; set by storePut */
    uint8_t flags;  /* STORE_FLAG_* */
    const uint8_t *vclock; /* encoded vector clock (clock module format) */
    size_t vclock_len;     /* <= STORE_MAX_VCLOCK_BYTES */
    /* A merged record's resolved writes: per origin, the highest write
     * sequence number among the writes it resolves (clock module format),
     * so it can be collected once every member has seen them all. Empty
     * for other records, and for a merge of a write whose seq is unknown. */
    const uint8_t *merged;
    size_t merged_len; /* <= STORE_MAX_VCLOCK_BYTES */
} storeVersion;

typedef struct storeRecord {
    storeVersion ver;
    const char *value;
    size_t value_len;
} storeRecord;

/* ---- Record codec: pure, bounds-checked, fuzzed. ---- */
#define RECORD_FORMAT_V1 1u /* read only */
#define RECORD_FORMAT_V2 2u
#define RECORD_FORMAT_V3 3u /* V2 with a merged-writes field; written only when it is not empty */
size_t recordEncodedSize(const storeRecord *r);
/* Writes exactly recordEncodedSize(r) bytes to out. */
void recordEncode(const storeRecord *r, uint8_t *out);
/* Points out's fields into data. Returns 0, or -1 for a truncated record,
 * an unknown format version, unknown flags or a vclock longer than the
 * record. */
int recordDecode(const uint8_t *data, size_t len, storeRecord *out);

/* ---- The store ---- */
typedef struct store store;

typedef struct storeOptions {
    const char *dir; /* created (with parents) if missing */
    storeFsync fsync;
    uint64_t map_size_bytes; /* the largest the data file may grow; 0 = default (16 GiB) */
} storeOptions;

typedef struct storeStats {
    uint64_t keys;      /* records, tombstones included */
    uint64_t live_keys; /* records that are not tombstones */
    uint64_t tombstones;
    uint64_t commits;      /* batches committed */
    uint64_t writes;       /* puts and deletes committed */
    uint64_t aborted;      /* batches aborted by an error */
    uint64_t syncs;        /* explicit flushes to disk */
    uint64_t pending_sync; /* batches committed since the last flush */
    uint64_t file_bytes;   /* size of the data file */
    uint64_t map_bytes;    /* the map size limit */
} storeStats;

/* Opens (or creates) the store. On failure returns STORE_ERR with a
 * one-line reason in err: directory not writable, in use by another
 * process (the store holds an exclusive flock on <dir>/LOCK), not a dmkv
 * store, corrupt. */
int storeOpen(store **out, const storeOptions *opts, char *err, size_t errlen);
/* Commits any open batch, flushes to disk and releases everything. */
void storeClose(store *s);

/* out's pointers stay valid until the next write, commit or close. */
int storeGet(store *s, const void *key, size_t klen, storeRecord *out);
/* rec must not point into a record read in the current batch (the write
 * may move it); copy such a record first. */
int storePut(store *s, const void *key, size_t klen, const storeRecord *rec);
/* Removes the key physically (tombstones are records with the flag). */
int storeDelete(store *s, const void *key, size_t klen);
/* Removes every key (FLUSHALL). */
int storeDrop(store *s);

/* Ends the current batch, if any, and releases the read snapshot. */
int storeCommit(store *s);
bool storeInBatch(const store *s);

/* Calls fn for each key strictly after `after` (from the first key when
 * after is NULL) in byte order, until fn returns non-zero or the keys run
 * out. Returns STORE_OK or STORE_ERR. */
typedef int (*storeScanFn)(void *ctx, const void *key, size_t klen, const storeRecord *rec);
int storeScan(store *s, const void *after, size_t after_len, storeScanFn fn, void *ctx);

/* The change feed: every put gives the record the next change sequence
 * number of this store (in-memory monotonic for the life of the open
 * store), so "what changed here after n" is one range read, not a scan.
 * storeScanChanges calls fn for each record with change_seq > after, in
 * order. Tombstones are also listed by their version's (origin, seq), so
 * counting live keys and collecting tombstones every member has seen need
 * no scan either: storeScanTombstones calls fn for each tombstone of this
 * origin with seq <= upto_seq. Like storeScan, fn may not write; it
 * returns non-zero to stop. */
typedef int (*storeChangeFn)(void *ctx, const void *key, size_t klen, const storeRecord *rec);
int storeScanChanges(store *s, uint64_t after, storeChangeFn fn, void *ctx);
int storeScanTombstones(store *s, uint32_t origin, uint64_t upto_seq, storeChangeFn fn, void *ctx);
/* The change sequence number the next put will get. */
uint64_t storeNextChangeSeq(const store *s);

/* Small named values beside the data (the node's clock, its identity);
 * written within the current batch. storeMetaGet replaces out's contents.
 * The name "format" is the store's own and cannot be written. */
int storeMetaGet(store *s, const char *name, buf *out);
int storeMetaPut(store *s, const char *name, const void *data, size_t len);

/* Flushes committed batches to disk. Safe to call from another thread
 * while the loop thread writes (the everysec timer runs it on libuv's
 * thread pool), but not during storeClose(). A no-op when nothing is
 * pending. On failure returns STORE_ERR with errno set in the calling
 * thread (storeError() belongs to the loop thread and is left alone), and
 * the batches stay counted in pending_sync. */
int storeSync(store *s);
void storeGetStats(store *s, storeStats *st);
const char *storeError(const store *s);
const char *storeDir(const store *s);

#endif
