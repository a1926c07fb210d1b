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

struct store {
    MDB_env *env;
    MDB_dbi data_dbi;
    MDB_dbi meta_dbi;
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
    if ((rc = mdb_env_set_maxdbs(s->env, 2)) != 0 ||
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
    if (rec->ver.flags & ~STORE_FLAG_TOMBSTONE)
        return storeFail(s, "unknown record flags 0x%02x", (unsigned)rec->ver.flags);
    storeRecord head = {.ver = rec->ver};
    if (rec->value_len > STORE_MAX_RECORD_BYTES - recordEncodedSize(&head))
        return storeFail(s, "value too large (%zu bytes, a record is at most %llu bytes)",
                         rec->value_len, STORE_MAX_RECORD_BYTES);
    if (storeBatchBegin(s) != STORE_OK) return STORE_ERR;

    /* LMDB hands out the space in the page and the record is encoded
     * straight into it. */
    MDB_val k = {klen, (void *)key};
    MDB_val v = {recordEncodedSize(rec), NULL};
    int rc = mdb_put(s->wtxn, s->data_dbi, &k, &v, MDB_RESERVE);
    if (rc != 0) return storeAbortBatch(s, rc, "put");
    recordEncode(rec, v.mv_data);
    s->batch_writes++;
    s->batch_dirty = true;
    return STORE_OK;
}

int storeDelete(store *s, const void *key, size_t klen) {
    if (storeCheckWritable(s) != STORE_OK) return STORE_ERR;
    if (storeCheckKey(s, klen) != STORE_OK) return STORE_ERR;
    if (storeBatchBegin(s) != STORE_OK) return STORE_ERR;
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(s->wtxn, s->data_dbi, &k, NULL);
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
    int rc = mdb_drop(s->wtxn, s->data_dbi, 0);
    if (rc != 0) return storeAbortBatch(s, rc, "drop");
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
    if (storeView(s, &txn) == STORE_OK && mdb_stat(txn, s->data_dbi, &ms) == 0)
        st->keys = ms.ms_entries;
    struct stat fst;
    if (stat(s->data_path, &fst) == 0) st->file_bytes = (uint64_t)fst.st_size;
}

const char *storeError(const store *s) {
    return s->err;
}

const char *storeDir(const store *s) {
    return s->dir;
}
