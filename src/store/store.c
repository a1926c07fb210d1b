/* The durable store: records in LMDB, written in group-committed batches.
 *
 * LMDB gives crash-safe copy-on-write B-trees with zero-copy reads, which
 * suits a store whose reads dominate and whose writes arrive in bursts per
 * event-loop iteration. The environment holds two named tables: "data"
 * (key -> record, see record.c) and "meta" (small named values, including
 * the format marker that tells a dmkv directory from any other LMDB file).
 *
 * Transactions follow the loop: the first write of an iteration begins one
 * write transaction, later writes join it, storeCommit() ends it. Reads use
 * the open write transaction when there is one, so a batch sees its own
 * writes; otherwise one read-only transaction is renewed lazily and reset
 * at every commit, so no read snapshot outlives a loop iteration and pins
 * old pages. MDB_NOTLS lets that read transaction coexist with the write
 * transaction on the same thread.
 *
 * Durability follows Redis's appendfsync: with "always" LMDB syncs inside
 * every commit; with "everysec" and "no" the environment is opened with
 * MDB_NOSYNC and storeSync() flushes from whatever thread the caller likes
 * (mdb_env_sync only calls fdatasync on the data file). The map is not
 * MDB_WRITEMAP, so an unsynced crash can lose the last batches but, on a
 * file system that keeps write order, not corrupt the tree.
 *
 * A directory is owned by one process at a time: an exclusive flock on
 * <dir>/LOCK, taken before LMDB is touched. Two LMDB handles on one file
 * in one process would break LMDB's own locking, and flock conflicts
 * between separate open file descriptions even in the same process, so the
 * lock also guards against a second storeOpen from this process. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/store.h"

#define STORE_FORMAT_MARKER     "dmkv-store-1"
#define STORE_META_FORMAT       "format"
#define STORE_DEFAULT_MAP_BYTES (16ull << 30)
#define STORE_DIR_MODE          0700
#define STORE_FILE_MODE         0600
/* LMDB's limit on one value in a table without duplicates. */
#define STORE_MAX_RECORD_BYTES 0xffffffffull
/* Bytes of a key quoted in an error message. */
#define STORE_ERR_KEY_BYTES 64
#define STORE_ERR_BYTES     1024
/* A failed write with less free space than this on the data disk is
 * reported as a full disk: LMDB turns a short write (the disk filled
 * part-way through a page) into EIO, which would otherwise read like a
 * failing device. */
#define STORE_LOW_SPACE_BYTES (16ull << 20)

struct store {
    MDB_env *env;
    MDB_dbi data_dbi;
    MDB_dbi meta_dbi;
    MDB_dbi changes_dbi; /* change_seq -> key, for every record */
    MDB_dbi tomb_dbi;    /* (origin, seq) -> key, for tombstones only */
    uint64_t next_change_seq;
    MDB_txn *wtxn;    /* the open batch; NULL between batches */
    MDB_txn *rtxn;    /* reusable read-only transaction, allocated on first read */
    bool rtxn_live;   /* rtxn holds a snapshot (renewed, not yet reset) */
    bool scanning;    /* inside storeScan's callback */
    bool batch_dirty; /* the batch changed something that needs a flush */
    uint64_t batch_writes;
    storeFsync fsync;
    int lock_fd;
    char *dir;
    char *data_path;
    /* Loop-thread counters. */
    uint64_t commits;
    uint64_t writes;
    uint64_t aborted;
    /* Shared with the thread that runs storeSync(). sync_lock keeps two
     * flushes from both subtracting the same pending count. */
    pthread_mutex_t sync_lock;
    _Atomic uint64_t syncs;
    _Atomic uint64_t pending_sync;
    char err[STORE_ERR_BYTES];
};

/* ---- Errors ---- */

static void storeFormatErr(char *dst, size_t dstlen, const char *fmt, va_list ap) {
    if (!dst || dstlen == 0) return;
    vsnprintf(dst, dstlen, fmt, ap);
}

static void storeOpenErr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void storeOpenErr(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    storeFormatErr(err, errlen, fmt, ap);
    va_end(ap);
}

/* Records why the last call failed and returns STORE_ERR. */
static int storeFail(store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int storeFail(store *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    storeFormatErr(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return STORE_ERR;
}

/* Errors that mean the file is not a healthy LMDB environment, as opposed
 * to the system refusing something (permissions, memory, space). */
static bool storeIsCorruption(int rc) {
    return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
           rc == MDB_PAGE_NOTFOUND || rc == MDB_PANIC;
}

static uint64_t storeMapBytes(const store *s) {
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) != 0) return 0;
    return info.me_mapsize;
}

/* Quotes up to STORE_ERR_KEY_BYTES of a binary key for a one-line message. */
static void storeQuoteKey(const void *key, size_t klen, char *out, size_t outlen) {
    const unsigned char *k = key;
    size_t o = 0;
    size_t shown = klen < STORE_ERR_KEY_BYTES ? klen : STORE_ERR_KEY_BYTES;
    for (size_t i = 0; i < shown && o + 5 < outlen; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\') {
            out[o++] = (char)k[i];
        } else {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", k[i]);
        }
    }
    if (shown < klen && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* An LMDB error inside a batch: LMDB cannot continue the transaction, so
 * the whole batch goes. */
static int storeAbortBatch(store *s, int rc, const char *what) {
    if (s->wtxn) {
        mdb_txn_abort(s->wtxn);
        s->wtxn = NULL;
    }
    s->aborted++;
    if (rc == MDB_MAP_FULL)
        return storeFail(s,
                         "database is full (map size %llu bytes); the batch was discarded, "
                         "delete keys or raise the map size",
                         (unsigned long long)storeMapBytes(s));
    if (rc == MDB_TXN_FULL)
        return storeFail(s, "batch too large (too many pages changed in one transaction); "
                            "the batch was discarded");
    if (rc == MDB_BAD_VALSIZE)
        return storeFail(s, "key too large for LMDB; the batch was discarded");
    struct statvfs st;
    if ((rc == ENOSPC || rc == EDQUOT || rc == EIO) && statvfs(s->dir, &st) == 0) {
        unsigned long long avail = (unsigned long long)st.f_bavail * st.f_frsize;
        if (rc != EIO || avail < STORE_LOW_SPACE_BYTES)
            return storeFail(s,
                             "%s failed: no space left on the data disk (%llu KiB free in %s); "
                             "the batch was discarded, free disk space",
                             what, avail >> 10, s->dir);
    }
    return storeFail(s, "%s failed: %s; the batch was discarded", what, mdb_strerror(rc));
}

/* ---- Opening ---- */

static char *storeJoinPath(const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    char *p = xmalloc(dl + nl + 2);
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl + 1);
    return p;
}

/* mkdir -p with STORE_DIR_MODE for every directory it creates. */
static int storeMakeDir(const char *dir, char *err, size_t errlen) {
    char *path = xstrdup(dir);
    int rc = -1;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, STORE_DIR_MODE) != 0 && errno != EEXIST) {
            storeOpenErr(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
            goto out;
        }
        *p = c;
        if (c == '\0') break;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        storeOpenErr(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        storeOpenErr(err, errlen, "cannot create data directory %s: %s", dir, strerror(ENOTDIR));
        goto out;
    }
    rc = 0;
out:
    free(path);
    return rc;
}

/* Reads the pid a lock holder wrote into LOCK; 0 when unreadable (the
 * holder may be between truncating the file and writing it). */
static long storeLockHolder(int fd) {
    char text[32];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0) return 0;
    text[n] = '\0';
    char *end;
    long pid = strtol(text, &end, 10);
    return pid > 0 ? pid : 0;
}

static int storeLock(store *s, char *err, size_t errlen) {
    char *path = storeJoinPath(s->dir, "LOCK");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, STORE_FILE_MODE);
    if (fd < 0) {
        storeOpenErr(err, errlen, "data directory %s is not writable (cannot open %s: %s)", s->dir,
                     path, strerror(errno));
        goto err;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            storeOpenErr(err, errlen, "cannot lock %s: %s", path, strerror(errno));
            goto err;
        }
        long pid = storeLockHolder(fd);
        if (pid == (long)getpid())
            storeOpenErr(err, errlen,
                         "data directory %s is in use by another store in this process "
                         "(pid %ld)",
                         s->dir, pid);
        else if (pid > 0)
            storeOpenErr(err, errlen, "data directory %s is in use by another process (pid %ld)",
                         s->dir, pid);
        else
            storeOpenErr(err, errlen,
                         "data directory %s is in use by another process (pid unknown)", s->dir);
        goto err;
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        storeOpenErr(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto err;
    }
    s->lock_fd = fd;
    free(path);
    return 0;
err:
    if (fd >= 0) close(fd); /* also releases the flock, if taken */
    free(path);
    return -1;
}

static int storeOpenEnv(store *s, uint64_t map_bytes, char *err, size_t errlen) {
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        storeOpenErr(err, errlen, "cannot create LMDB environment: %s", mdb_strerror(rc));
        return -1;
    }
    unsigned flags = MDB_NOTLS;
    /* Lookups are random; readahead would fill the page cache with
     * neighbours of every key touched. */
    flags |= MDB_NORDAHEAD;
    if (s->fsync != STORE_FSYNC_ALWAYS) flags |= MDB_NOSYNC;
    if ((rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)map_bytes)) != 0) {
        storeOpenErr(err, errlen, "cannot configure LMDB environment: %s", mdb_strerror(rc));
        return -1;
    }
    rc = mdb_env_open(s->env, s->dir, flags, STORE_FILE_MODE);
    if (rc != 0) {
        if (storeIsCorruption(rc))
            storeOpenErr(err, errlen, "data directory %s is corrupt or not an LMDB store: %s",
                         s->dir, mdb_strerror(rc));
        else
            storeOpenErr(err, errlen, "cannot open LMDB store in %s (map size %llu bytes): %s",
                         s->dir, (unsigned long long)map_bytes, mdb_strerror(rc));
        return -1;
    }
    int max_key = mdb_env_get_maxkeysize(s->env);
    if (max_key < (int)STORE_MAX_KEY_BYTES) {
        storeOpenErr(err, errlen, "liblmdb was built with a %d-byte key limit; dmkv needs %u",
                     max_key, STORE_MAX_KEY_BYTES);
        return -1;
    }
    /* We hold the directory lock, so every reader slot left in lock.mdb
     * belongs to a dead process. */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    return 0;
}

static void storeSyncDir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

static bool storeIsPrintable(const MDB_val *v) {
    const unsigned char *p = v->mv_data;
    for (size_t i = 0; i < v->mv_size; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f) return false;
    return true;
}

/* Opens the two tables, creating them and the format marker in an empty
 * environment, and refuses an environment that some other program wrote. */
/* ---- The change feed and the tombstone index ----
 *
 * Every record is listed under its change sequence number, a counter of
 * this store that every put advances, so a peer that remembers where it
 * stopped reading asks for the rest with one range read. Tombstones are
 * also listed under their version's (origin, seq), the order in which
 * they become collectable. Both are maintained inside the write that
 * changes the record, in the same transaction. Index keys are big-endian
 * so LMDB's byte order is numeric order; the tombstone table allows
 * duplicates because records written before sequence numbers existed all
 * have seq 0. */

#define STORE_TOMB_KEY_BYTES 12

static void storeBigEndian(uint8_t *out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t storeBigEndianGet(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | p[i];
    return v;
}

static void storeTombKey(uint8_t out[STORE_TOMB_KEY_BYTES], uint32_t origin, uint64_t seq) {
    storeBigEndian(out, origin, 4);
    storeBigEndian(out + 4, seq, 8);
}

/* Adds (add) or removes a record's index entries. */
static int storeIndexUpdate(store *s, MDB_txn *txn, const storeVersion *ver, const void *key,
                            size_t klen, bool add) {
    uint8_t ck[8];
    storeBigEndian(ck, ver->change_seq, 8);
    MDB_val k = {sizeof ck, ck}, v = {klen, (void *)key};
    /* Change numbers only grow: a new entry goes at the end of the table,
     * which LMDB appends without a search. */
    int rc = add ? mdb_put(txn, s->changes_dbi, &k, &v, MDB_APPEND)
                 : mdb_del(txn, s->changes_dbi, &k, NULL);
    if (rc == MDB_KEYEXIST && add) rc = mdb_put(txn, s->changes_dbi, &k, &v, 0);
    if (rc != 0 && !(rc == MDB_NOTFOUND && !add)) return rc;
    if (!(ver->flags & STORE_FLAG_TOMBSTONE)) return 0;
    uint8_t tk[STORE_TOMB_KEY_BYTES];
    storeTombKey(tk, ver->origin, ver->seq);
    MDB_val t = {sizeof tk, tk};
    rc = add ? mdb_put(txn, s->tomb_dbi, &t, &v, 0) : mdb_del(txn, s->tomb_dbi, &t, &v);
    if (rc != 0 && !(rc == MDB_NOTFOUND && !add)) return rc;
    return 0;
}

/* Opens the index tables, rebuilds them when they are missing or empty
 * beside data (a store made before they existed), and finds the next
 * change sequence number. */
static int storeOpenIndexes(store *s, MDB_txn *txn) {
    int rc;
    if ((rc = mdb_dbi_open(txn, "changes", MDB_CREATE, &s->changes_dbi)) != 0) return rc;
    if ((rc = mdb_dbi_open(txn, "tomb", MDB_CREATE | MDB_DUPSORT, &s->tomb_dbi)) != 0) return rc;
    MDB_stat data_st, index_st;
    if ((rc = mdb_stat(txn, s->data_dbi, &data_st)) != 0) return rc;
    if ((rc = mdb_stat(txn, s->changes_dbi, &index_st)) != 0) return rc;
    MDB_cursor *cur;
    MDB_val k, v;
    s->next_change_seq = 1;
    if (index_st.ms_entries != 0) {
        if ((rc = mdb_cursor_open(txn, s->changes_dbi, &cur)) != 0) return rc;
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == 8) s->next_change_seq = storeBigEndianGet(k.mv_data, 8) + 1;
        mdb_cursor_close(cur);
        return rc;
    }
    if (data_st.ms_entries == 0) return 0;
    if ((rc = mdb_cursor_open(txn, s->data_dbi, &cur)) != 0) return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* The record is rewritten with its new change_seq (which its
         * entry's removal needs later); decode from a copy, since the
         * put may move the original. */
        size_t n = v.mv_size;
        uint8_t *copy = xmalloc(n);
        memcpy(copy, v.mv_data, n);
        storeRecord r;
        if (recordDecode(copy, n, &r) != 0) { /* reported when read */
            free(copy);
            continue;
        }
        r.ver.change_seq = s->next_change_seq++;
        size_t en = recordEncodedSize(&r);
        uint8_t *enc = xmalloc(en);
        recordEncode(&r, enc);
        MDB_val nv = {en, enc};
        rc = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT);
        if (rc == 0) rc = storeIndexUpdate(s, txn, &r.ver, k.mv_data, k.mv_size, true);
        free(enc);
        free(copy);
        if (rc != 0) break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Removes the index entries of the record stored under key, if any.
 * next is the version replacing it (NULL for a delete): a tombstone
 * replaced by a tombstone of the same write (its merge with a concurrent
 * one) shares its tombstone entry, which therefore stays. */
static int storeUnindex(store *s, const void *key, size_t klen, const storeVersion *next) {
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(s->wtxn, s->data_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) return rc;
    storeRecord old;
    if (recordDecode(v.mv_data, v.mv_size, &old) != 0) return 0; /* never indexed */
    if (next && (next->flags & old.ver.flags & STORE_FLAG_TOMBSTONE) &&
        next->origin == old.ver.origin && next->seq == old.ver.seq)
        old.ver.flags &= (uint8_t)~STORE_FLAG_TOMBSTONE;
    return storeIndexUpdate(s, s->wtxn, &old.ver, key, klen, false);
}

static int storeOpenTables(store *s, char *err, size_t errlen) {
    MDB_txn *txn = NULL;
    bool fresh = false;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        txn = NULL;
        goto lmdb_err;
    }
    rc = mdb_dbi_open(txn, "meta", 0, &s->meta_dbi);
    if (rc == MDB_NOTFOUND) {
        MDB_dbi main_dbi;
        MDB_stat st;
        if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0) goto lmdb_err;
        if ((rc = mdb_stat(txn, main_dbi, &st)) != 0) goto lmdb_err;
        if (st.ms_entries != 0) {
            storeOpenErr(err, errlen, "%s does not hold a dmkv store (format marker missing)",
                         s->dir);
            goto err;
        }
        fresh = true;
        if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta_dbi)) != 0) goto lmdb_err;
        if ((rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data_dbi)) != 0) goto lmdb_err;
        MDB_val k = {strlen(STORE_META_FORMAT), STORE_META_FORMAT};
        MDB_val v = {strlen(STORE_FORMAT_MARKER), STORE_FORMAT_MARKER};
        if ((rc = mdb_put(txn, s->meta_dbi, &k, &v, 0)) != 0) goto lmdb_err;
    } else if (rc == MDB_INCOMPATIBLE) {
        storeOpenErr(err, errlen, "%s does not hold a dmkv store (format marker missing)", s->dir);
        goto err;
    } else if (rc != 0) {
        goto lmdb_err;
    } else {
        MDB_val k = {strlen(STORE_META_FORMAT), STORE_META_FORMAT}, v;
        rc = mdb_get(txn, s->meta_dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            storeOpenErr(err, errlen, "%s does not hold a dmkv store (format marker missing)",
                         s->dir);
            goto err;
        }
        if (rc != 0) goto lmdb_err;
        if (v.mv_size != strlen(STORE_FORMAT_MARKER) ||
            memcmp(v.mv_data, STORE_FORMAT_MARKER, v.mv_size) != 0) {
            if (v.mv_size <= 64 && storeIsPrintable(&v))
                storeOpenErr(err, errlen,
                             "%s does not hold a dmkv store (format marker \"%.*s\", "
                             "expected \"%s\")",
                             s->dir, (int)v.mv_size, (const char *)v.mv_data, STORE_FORMAT_MARKER);
            else
                storeOpenErr(err, errlen,
                             "%s does not hold a dmkv store (unrecognised format marker)", s->dir);
            goto err;
        }
        rc = mdb_dbi_open(txn, "data", 0, &s->data_dbi);
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
            storeOpenErr(err, errlen, "%s does not hold a dmkv store (data table missing)", s->dir);
            goto err;
        }
        if (rc != 0) goto lmdb_err;
    }
    if ((rc = storeOpenIndexes(s, txn)) != 0) goto lmdb_err;
    /* Table handles opened in a transaction survive only if it commits. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) goto lmdb_err;
    /* Make a new store, and whatever an unsynced predecessor left in the
     * page cache, durable before anything is acknowledged from it. */
    if ((rc = mdb_env_sync(s->env, 1)) != 0) goto lmdb_err;
    if (fresh) storeSyncDir(s->dir);
    return 0;

lmdb_err:
    if (storeIsCorruption(rc))
        storeOpenErr(err, errlen, "data directory %s is corrupt or not an LMDB store: %s", s->dir,
                     mdb_strerror(rc));
    else
        storeOpenErr(err, errlen, "cannot open the tables in %s: %s", s->dir, mdb_strerror(rc));
err:
    if (txn) mdb_txn_abort(txn);
    return -1;
}

static void storeFree(store *s) {
    if (s->rtxn) mdb_txn_abort(s->rtxn);
    if (s->env) mdb_env_close(s->env);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s->dir);
    free(s->data_path);
    pthread_mutex_destroy(&s->sync_lock);
    free(s);
}

int storeOpen(store **out, const storeOptions *opts, char *err, size_t errlen) {
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    if (!opts->dir || !opts->dir[0]) {
        storeOpenErr(err, errlen, "no data directory given");
        return STORE_ERR;
    }
    if (opts->fsync != STORE_FSYNC_ALWAYS && opts->fsync != STORE_FSYNC_EVERYSEC &&
        opts->fsync != STORE_FSYNC_NO) {
        storeOpenErr(err, errlen, "unknown fsync policy %d", (int)opts->fsync);
        return STORE_ERR;
    }
    uint64_t map_bytes = opts->map_size_bytes ? opts->map_size_bytes : STORE_DEFAULT_MAP_BYTES;
    if (map_bytes > SIZE_MAX) {
        storeOpenErr(err, errlen, "map size %llu bytes does not fit in the address space",
                     (unsigned long long)map_bytes);
        return STORE_ERR;
    }

    store *s = xcalloc(1, sizeof *s);
    s->lock_fd = -1;
    s->fsync = opts->fsync;
    s->dir = xstrdup(opts->dir);
    s->data_path = storeJoinPath(s->dir, "data.mdb");
    atomic_init(&s->syncs, 0);
    atomic_init(&s->pending_sync, 0);
    pthread_mutex_init(&s->sync_lock, NULL);

    if (storeMakeDir(s->dir, err, errlen) != 0) goto err;
    if (storeLock(s, err, errlen) != 0) goto err;
    if (storeOpenEnv(s, map_bytes, err, errlen) != 0) goto err;
    if (storeOpenTables(s, err, errlen) != 0) goto err;
    *out = s;
    return STORE_OK;
err:
    storeFree(s);
    return STORE_ERR;
}

void storeClose(store *s) {
    if (!s) return;
    storeCommit(s);
    if (s->env) mdb_env_sync(s->env, 1);
    storeFree(s);
}

/* ---- Transactions ---- */

/* The transaction reads go through: the batch if one is open, else the
 * read snapshot, renewed on first use after a commit. */
static int storeView(store *s, MDB_txn **out) {
    if (s->wtxn) {
        *out = s->wtxn;
        return STORE_OK;
    }
    if (!s->rtxn_live) {
        int rc;
        if (s->rtxn) {
            rc = mdb_txn_renew(s->rtxn);
        } else {
            MDB_txn *txn = NULL;
            rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
            if (rc == 0) s->rtxn = txn;
        }
        if (rc != 0) return storeFail(s, "cannot start a read transaction: %s", mdb_strerror(rc));
        s->rtxn_live = true;
    }
    *out = s->rtxn;
    return STORE_OK;
}

static void storeViewRelease(store *s) {
    if (s->rtxn_live) {
        mdb_txn_reset(s->rtxn);
        s->rtxn_live = false;
    }
}

static int storeBatchBegin(store *s) {
    if (s->wtxn) return STORE_OK;
    /* Reads from here on go through the batch; the old snapshot would only
     * keep the pages this batch frees from being reused. */
    storeViewRelease(s);
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) return storeFail(s, "cannot start a write batch: %s", mdb_strerror(rc));
    s->wtxn = txn;
    s->batch_writes = 0;
    s->batch_dirty = false;
    return STORE_OK;
}

bool storeInBatch(const store *s) {
    return s->wtxn != NULL;
}

int storeCommit(store *s) {
    if (s->scanning) return storeFail(s, "cannot commit from inside a scan callback");
    storeViewRelease(s);
    if (!s->wtxn) return STORE_OK;
    MDB_txn *txn = s->wtxn;
    s->wtxn = NULL;
    /* mdb_txn_commit frees the transaction whether or not it succeeds. */
    int rc = mdb_txn_commit(txn);
    if (rc != 0) return storeAbortBatch(s, rc, "commit");
    s->commits++;
    s->writes += s->batch_writes;
    if (s->batch_dirty && s->fsync != STORE_FSYNC_ALWAYS) atomic_fetch_add(&s->pending_sync, 1);
    return STORE_OK;
}

/* ---- Validation (never touches the batch) ---- */

static int storeCheckKey(store *s, size_t klen) {
    if (klen == 0) return storeFail(s, "empty key (keys are 1 to %u bytes)", STORE_MAX_KEY_BYTES);
    if (klen > STORE_MAX_KEY_BYTES)
        return storeFail(s, "key too long (max %u bytes)", STORE_MAX_KEY_BYTES);
    return STORE_OK;
}

static int storeCheckWritable(store *s) {
    if (s->scanning) return storeFail(s, "cannot write to the store from inside a scan callback");
    return STORE_OK;
}

/* ---- Data ---- */

int storeGet(store *s, const void *key, size_t klen, storeRecord *out) {
    if (storeCheckKey(s, klen) != STORE_OK) return STORE_ERR;
    MDB_txn *txn = NULL;
    if (storeView(s, &txn) != STORE_OK) return STORE_ERR;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, s->data_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
    if (rc != 0) return storeFail(s, "read failed: %s", mdb_strerror(rc));
    if (recordDecode(v.mv_data, v.mv_size, out) != 0) {
        char quoted[4 * STORE_ERR_KEY_BYTES + 8];
        storeQuoteKey(key, klen, quoted, sizeof quoted);
        return storeFail(s, "corrupt record for key \"%s\"", quoted);
    }
    return STORE_OK;
}

int storePut(store *s, const void *key, size_t klen, const storeRecord *rec) {
    if (storeCheckWritable(s) != STORE_OK) return STORE_ERR;
    if (storeCheckKey(s, klen) != STORE_OK) return STORE_ERR;
    if (rec->ver.vclock_len > STORE_MAX_VCLOCK_BYTES)
        return storeFail(s, "vector clock too long (%zu bytes, max %u)", rec->ver.vclock_len,
                         STORE_MAX_VCLOCK_BYTES);
    if (rec->ver.merged_len > STORE_MAX_VCLOCK_BYTES)
        return storeFail(s, "merged writes too long (%zu bytes, max %u)", rec->ver.merged_len,
                         STORE_MAX_VCLOCK_BYTES);
    if (rec->ver.flags & ~STORE_KNOWN_FLAGS)
        return storeFail(s, "unknown record flags 0x%02x", (unsigned)rec->ver.flags);
    storeRecord head = {.ver = rec->ver};
    if (rec->value_len > STORE_MAX_RECORD_BYTES - recordEncodedSize(&head))
        return storeFail(s, "value too large (%zu bytes, a record is at most %llu bytes)",
                         rec->value_len, STORE_MAX_RECORD_BYTES);
    if (storeBatchBegin(s) != STORE_OK) return STORE_ERR;

    /* LMDB hands out the space in the page and the record is encoded
     * straight into it. */
    storeRecord r = *rec;
    r.ver.change_seq = s->next_change_seq++;
    /* The new entry goes in before the old one comes out: a table emptied
     * even for a moment gives up its root page, and the next append takes
     * a fresh one, which the commit then writes, once per write. */
    int rc = storeIndexUpdate(s, s->wtxn, &r.ver, key, klen, true);
    if (rc == 0) rc = storeUnindex(s, key, klen, &r.ver);
    if (rc != 0) return storeAbortBatch(s, rc, "index update");
    MDB_val k = {klen, (void *)key};
    MDB_val v = {recordEncodedSize(&r), NULL};
    rc = mdb_put(s->wtxn, s->data_dbi, &k, &v, MDB_RESERVE);
    if (rc != 0) return storeAbortBatch(s, rc, "put");
    recordEncode(&r, v.mv_data);
    s->batch_writes++;
    s->batch_dirty = true;
    return STORE_OK;
}

int storeDelete(store *s, const void *key, size_t klen) {
    if (storeCheckWritable(s) != STORE_OK) return STORE_ERR;
    if (storeCheckKey(s, klen) != STORE_OK) return STORE_ERR;
    if (storeBatchBegin(s) != STORE_OK) return STORE_ERR;
    int rc = storeUnindex(s, key, klen, NULL);
    if (rc != 0) return storeAbortBatch(s, rc, "index update");
    MDB_val k = {klen, (void *)key};
    rc = mdb_del(s->wtxn, s->data_dbi, &k, NULL);
    /* A missing key leaves the transaction usable. */
    if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
    if (rc != 0) return storeAbortBatch(s, rc, "delete");
    s->batch_writes++;
    s->batch_dirty = true;
    return STORE_OK;
}

int storeDrop(store *s) {
    if (storeCheckWritable(s) != STORE_OK) return STORE_ERR;
    if (storeBatchBegin(s) != STORE_OK) return STORE_ERR;
    MDB_dbi tables[3] = {s->data_dbi, s->changes_dbi, s->tomb_dbi};
    for (int i = 0; i < 3; i++) {
        int rc = mdb_drop(s->wtxn, tables[i], 0);
        if (rc != 0) return storeAbortBatch(s, rc, "drop");
    }
    s->batch_dirty = true;
    return STORE_OK;
}

/* LMDB's default key order: bytes, then length. */
static int storeKeyCompare(const MDB_val *a, const void *b, size_t blen) {
    size_t n = a->mv_size < blen ? a->mv_size : blen;
    int c = n ? memcmp(a->mv_data, b, n) : 0;
    if (c != 0) return c;
    return a->mv_size < blen ? -1 : a->mv_size > blen;
}

int storeScan(store *s, const void *after, size_t after_len, storeScanFn fn, void *ctx) {
    if (s->scanning) return storeFail(s, "cannot start a scan from inside a scan callback");
    MDB_txn *txn = NULL;
    if (storeView(s, &txn) != STORE_OK) return STORE_ERR;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->data_dbi, &cur);
    if (rc != 0) return storeFail(s, "cannot open a cursor: %s", mdb_strerror(rc));

    bool from_start = after == NULL || after_len == 0;
    MDB_val k, v;
    if (from_start) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        /* No stored key is longer than the limit, so positioning on the
         * longest storable prefix of `after` and skipping keys <= after
         * below is exact. */
        k.mv_size = after_len < STORE_MAX_KEY_BYTES ? after_len : STORE_MAX_KEY_BYTES;
        k.mv_data = (void *)after;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    int result = STORE_OK;
    s->scanning = true;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!from_start && storeKeyCompare(&k, after, after_len) <= 0) continue;
        storeRecord r;
        if (recordDecode(v.mv_data, v.mv_size, &r) != 0) {
            char quoted[4 * STORE_ERR_KEY_BYTES + 8];
            storeQuoteKey(k.mv_data, k.mv_size, quoted, sizeof quoted);
            result = storeFail(s, "corrupt record for key \"%s\"", quoted);
            break;
        }
        if (fn(ctx, k.mv_data, k.mv_size, &r) != 0) break;
    }
    s->scanning = false;
    if (result == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = storeFail(s, "scan failed: %s", mdb_strerror(rc));
    mdb_cursor_close(cur);
    return result;
}

/* Calls fn for the record each index entry in [from, upto] names;
 * entries are (8-byte change seq) or (4-byte origin, 8-byte seq). */
static int storeScanIndex(store *s, MDB_dbi dbi, const uint8_t *from, const uint8_t *upto,
                          size_t klen, storeChangeFn fn, void *ctx) {
    if (s->scanning) return storeFail(s, "cannot start a scan from inside a scan callback");
    MDB_txn *txn = NULL;
    if (storeView(s, &txn) != STORE_OK) return STORE_ERR;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) return storeFail(s, "cannot open a cursor: %s", mdb_strerror(rc));
    MDB_val k = {klen, (void *)from}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    int result = STORE_OK;
    s->scanning = true;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != klen) {
            result = storeFail(s, "corrupt index entry");
            break;
        }
        if (memcmp(k.mv_data, upto, klen) > 0) break;
        MDB_val dv;
        storeRecord r;
        if (mdb_get(txn, s->data_dbi, &v, &dv) != 0 ||
            recordDecode(dv.mv_data, dv.mv_size, &r) != 0) {
            result = storeFail(s, "an index entry names a missing or corrupt record");
            break;
        }
        if (fn(ctx, v.mv_data, v.mv_size, &r) != 0) break;
    }
    s->scanning = false;
    if (result == STORE_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = storeFail(s, "scan failed: %s", mdb_strerror(rc));
    mdb_cursor_close(cur);
    return result;
}

int storeScanChanges(store *s, uint64_t after, storeChangeFn fn, void *ctx) {
    if (after == UINT64_MAX) return STORE_OK;
    uint8_t from[8], upto[8];
    storeBigEndian(from, after + 1, 8);
    storeBigEndian(upto, UINT64_MAX, 8);
    return storeScanIndex(s, s->changes_dbi, from, upto, 8, fn, ctx);
}

int storeScanTombstones(store *s, uint32_t origin, uint64_t upto_seq, storeChangeFn fn, void *ctx) {
    uint8_t from[STORE_TOMB_KEY_BYTES], upto[STORE_TOMB_KEY_BYTES];
    storeTombKey(from, origin, 0);
    storeTombKey(upto, origin, upto_seq);
    return storeScanIndex(s, s->tomb_dbi, from, upto, STORE_TOMB_KEY_BYTES, fn, ctx);
}

uint64_t storeNextChangeSeq(const store *s) {
    return s->next_change_seq;
}

/* ---- Meta ---- */

static int storeCheckMetaName(store *s, const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > STORE_MAX_KEY_BYTES)
        return storeFail(s, "meta name must be 1 to %u bytes", STORE_MAX_KEY_BYTES);
    return STORE_OK;
}

int storeMetaGet(store *s, const char *name, buf *out) {
    if (storeCheckMetaName(s, name) != STORE_OK) return STORE_ERR;
    MDB_txn *txn = NULL;
    if (storeView(s, &txn) != STORE_OK) return STORE_ERR;
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, s->meta_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
    if (rc != 0) return storeFail(s, "read failed: %s", mdb_strerror(rc));
    bufClear(out);
    bufAppend(out, v.mv_data, v.mv_size);
    return STORE_OK;
}

int storeMetaPut(store *s, const char *name, const void *data, size_t len) {
    if (storeCheckWritable(s) != STORE_OK) return STORE_ERR;
    if (storeCheckMetaName(s, name) != STORE_OK) return STORE_ERR;
    if (strcmp(name, STORE_META_FORMAT) == 0)
        return storeFail(s, "meta name \"%s\" is reserved for the store format", name);
    if (len > STORE_MAX_RECORD_BYTES) return storeFail(s, "meta value too large (%zu bytes)", len);
    if (storeBatchBegin(s) != STORE_OK) return STORE_ERR;
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {len, (void *)data};
    int rc = mdb_put(s->wtxn, s->meta_dbi, &k, &v, 0);
    if (rc != 0) return storeAbortBatch(s, rc, "meta put");
    s->batch_dirty = true;
    return STORE_OK;
}

/* ---- Durability and introspection ---- */

int storeSync(store *s) {
    pthread_mutex_lock(&s->sync_lock);
    /* Commits that land while fdatasync runs stay counted as pending. */
    uint64_t pending = atomic_load(&s->pending_sync);
    int rc = pending ? mdb_env_sync(s->env, 1) : 0;
    if (rc == 0 && pending) {
        atomic_fetch_sub(&s->pending_sync, pending);
        atomic_fetch_add(&s->syncs, 1);
    }
    pthread_mutex_unlock(&s->sync_lock);
    if (rc != 0) {
        /* storeError() belongs to the loop thread; errno is this thread's. */
        errno = rc;
        return STORE_ERR;
    }
    return STORE_OK;
}

void storeGetStats(store *s, storeStats *st) {
    memset(st, 0, sizeof *st);
    st->commits = s->commits;
    st->writes = s->writes;
    st->aborted = s->aborted;
    st->syncs = atomic_load(&s->syncs);
    st->pending_sync = atomic_load(&s->pending_sync);
    st->map_bytes = storeMapBytes(s);
    MDB_txn *txn = NULL;
    MDB_stat ms;
    if (storeView(s, &txn) == STORE_OK && mdb_stat(txn, s->data_dbi, &ms) == 0) {
        st->keys = ms.ms_entries;
        if (mdb_stat(txn, s->tomb_dbi, &ms) == 0) st->tombstones = ms.ms_entries;
        st->live_keys = st->keys >= st->tombstones ? st->keys - st->tombstones : 0;
    }
    struct stat fst;
    if (stat(s->data_path, &fst) == 0) st->file_bytes = (uint64_t)fst.st_size;
}

const char *storeError(const store *s) {
    return s->err;
}

const char *storeDir(const store *s) {
    return s->dir;
}
