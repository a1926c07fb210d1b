/* String commands: the key-value surface Redis clients expect.
 *
 * Values are opaque bytes. Every write is stamped with a fresh version
 * from the node clock and joins the store's batch (see server.c); reads
 * see the batch's own earlier writes. */
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/coordinator.h"
#include "server/events.h"
#include "server/replication.h"
#include "server/internal.h"

#define SCAN_DEFAULT_COUNT 10
#define SCAN_MAX_COUNT     100000

/* Store-level key rules: LMDB keys are 1..511 bytes. */
static bool keyValid(client *c, const cmdArg *k) {
    if (k->len == 0) {
        respAddError(c->out, "ERR empty keys are not supported by dmkv");
        return false;
    }
    if (k->len > STORE_MAX_KEY_BYTES) {
        respAddErrorFmt(c->out, "ERR key too long (%zu bytes; dmkv keys are at most %u bytes)",
                        k->len, STORE_MAX_KEY_BYTES);
        return false;
    }
    return true;
}

/* Looks a key up; tombstones read as absent. Returns STORE_OK,
 * STORE_NOTFOUND, or STORE_ERR after replying with the error. */
static int kvLookup(client *c, const cmdArg *k, storeRecord *rec) {
    if (k->len == 0 || k->len > STORE_MAX_KEY_BYTES) return STORE_NOTFOUND;
    int rc = storeGet(c->srv->st, k->p, k->len, rec);
    if (rc == STORE_ERR) {
        respAddErrorFmt(c->out, "ERR read failed: %s", storeError(c->srv->st));
        return STORE_ERR;
    }
    if (rc == STORE_OK && (rec->ver.flags & STORE_FLAG_TOMBSTONE)) return STORE_NOTFOUND;
    return rc;
}

/* Writes a value with a fresh version; the write is the event `kind`. */
static bool kvPutAs(client *c, const char *kind, const cmdArg *k, const char *val, size_t vlen) {
    storeRecord rec = {.value = val, .value_len = vlen};
    serverNewVersion(c->srv, &rec.ver);
    if (storePut(c->srv->st, k->p, k->len, &rec) != STORE_OK) {
        serverStoreFailed(c);
        return false;
    }
    eventsAtCurrentClock(c->srv, kind, k->p, k->len, val, vlen, NULL);
    replicationQueue(c->srv, k->p, k->len, &rec);
    return true;
}

static bool kvPut(client *c, const cmdArg *k, const char *val, size_t vlen) {
    return kvPutAs(c, "PUT", k, val, vlen);
}

static void cmdGet(client *c) {
    storeRecord rec;
    int rc = kvLookup(c, &c->argv[1], &rec);
    if (rc == STORE_ERR) return;
    if (eventsEnabled(c->srv))
        eventsLocal(c->srv, "GET", c->argv[1].p, c->argv[1].len, rc == STORE_OK ? rec.value : NULL,
                    rc == STORE_OK ? rec.value_len : 0);
    if (rc == STORE_NOTFOUND) {
        c->srv->stats.keyspace_misses++;
        respAddNil(c->out);
        return;
    }
    c->srv->stats.keyspace_hits++;
    respAddBulk(c->out, rec.value, rec.value_len);
}

/* The start of every read-modify-write: validates the key, joins the
 * batch and reads the current record. Returns STORE_OK, STORE_NOTFOUND,
 * or STORE_ERR after replying. */
static int kvWriteLookup(client *c, const cmdArg *k, storeRecord *rec) {
    if (!keyValid(c, k)) return STORE_ERR;
    serverWriteBegin(c);
    return kvLookup(c, k, rec);
}

static void replyBulkOrNil(client *c, bool present, const buf *b) {
    if (present)
        respAddBulk(c->out, b->data, b->len);
    else
        respAddNil(c->out);
}

/* SET key value [NX|XX] [GET] [KEEPTTL] */
static void cmdSet(client *c) {
    bool nx = false, xx = false, get = false;
    for (size_t i = 3; i < c->argc; i++) {
        const cmdArg *a = &c->argv[i];
        if (argIs(a, "nx"))
            nx = true;
        else if (argIs(a, "xx"))
            xx = true;
        else if (argIs(a, "get"))
            get = true;
        else if (argIs(a, "keepttl"))
            continue; /* keys never expire: nothing to keep */
        else if (argIs(a, "ex") || argIs(a, "px") || argIs(a, "exat") || argIs(a, "pxat")) {
            respAddErrorFmt(c->out, "ERR SET %.*s is not supported: dmkv keys do not expire",
                            (int)a->len, a->p);
            return;
        } else {
            replySyntaxError(c);
            return;
        }
    }
    if (nx && xx) {
        replySyntaxError(c);
        return;
    }
    const cmdArg *k = &c->argv[1];
    bool exists = false;
    buf old;
    bufInit(&old);
    if (nx || xx || get) {
        storeRecord rec;
        int rc = kvWriteLookup(c, k, &rec);
        if (rc == STORE_ERR) return;
        exists = rc == STORE_OK;
        if (exists && get) bufAppend(&old, rec.value, rec.value_len);
    } else {
        if (!keyValid(c, k)) return;
        serverWriteBegin(c);
    }
    if ((nx && exists) || (xx && !exists)) {
        replyBulkOrNil(c, get && exists, &old);
    } else if (kvPut(c, k, c->argv[2].p, c->argv[2].len)) {
        if (get)
            replyBulkOrNil(c, exists, &old);
        else
            serverReplyOk(c);
    }
    bufFree(&old);
}

static void cmdSetnx(client *c) {
    storeRecord rec;
    int rc = kvWriteLookup(c, &c->argv[1], &rec);
    if (rc == STORE_ERR) return;
    if (rc == STORE_OK)
        respAddInt(c->out, 0);
    else if (kvPut(c, &c->argv[1], c->argv[2].p, c->argv[2].len))
        respAddInt(c->out, 1);
}

static void cmdGetset(client *c) {
    storeRecord rec;
    int rc = kvWriteLookup(c, &c->argv[1], &rec);
    if (rc == STORE_ERR) return;
    buf old;
    bufInit(&old);
    if (rc == STORE_OK) bufAppend(&old, rec.value, rec.value_len);
    if (kvPut(c, &c->argv[1], c->argv[2].p, c->argv[2].len))
        replyBulkOrNil(c, rc == STORE_OK, &old);
    bufFree(&old);
}

/* In a cluster a delete is a write like any other: a tombstone with a
 * fresh version, replicated, so that a replica which has not seen the
 * delete yet cannot bring the value back. Tombstones are collected once
 * every member has seen them (replication.c). A node that has never had a
 * member removes the key at once. */
static bool kvDelete(client *c, const cmdArg *k, bool *deleted) {
    *deleted = false;
    if (k->len == 0 || k->len > STORE_MAX_KEY_BYTES) return true;
    storeRecord cur;
    int rc = kvLookup(c, k, &cur);
    if (rc == STORE_ERR) return false;
    if (rc == STORE_NOTFOUND) return true;
    if (!replicationHasMembers(c->srv)) {
        if (storeDelete(c->srv->st, k->p, k->len) == STORE_ERR) {
            serverStoreFailed(c);
            return false;
        }
        *deleted = true;
        c->srv->clock_dirty = true;
        eventsLocal(c->srv, "DEL", k->p, k->len, NULL, 0);
        return true;
    }
    storeRecord rec = {.value = NULL, .value_len = 0};
    serverNewVersion(c->srv, &rec.ver);
    rec.ver.flags = STORE_FLAG_TOMBSTONE;
    if (storePut(c->srv->st, k->p, k->len, &rec) != STORE_OK) {
        serverStoreFailed(c);
        return false;
    }
    *deleted = true;
    eventsAtCurrentClock(c->srv, "DEL", k->p, k->len, NULL, 0, NULL);
    replicationQueue(c->srv, k->p, k->len, &rec);
    return true;
}

static void cmdGetdel(client *c) {
    const cmdArg *k = &c->argv[1];
    serverWriteBegin(c);
    storeRecord rec;
    int rc = kvLookup(c, k, &rec);
    if (rc == STORE_ERR) return;
    if (rc == STORE_NOTFOUND) {
        respAddNil(c->out);
        return;
    }
    buf old;
    bufInit(&old);
    bufAppend(&old, rec.value, rec.value_len);
    bool deleted;
    if (kvDelete(c, k, &deleted)) respAddBulk(c->out, old.data, old.len);
    bufFree(&old);
}

static void cmdDel(client *c) {
    serverWriteBegin(c);
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++) {
        bool deleted;
        if (!kvDelete(c, &c->argv[i], &deleted)) return;
        n += deleted;
    }
    respAddInt(c->out, n);
}

static void cmdExists(client *c) {
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++) {
        storeRecord rec;
        int rc = kvLookup(c, &c->argv[i], &rec);
        if (rc == STORE_ERR) return;
        n += rc == STORE_OK;
    }
    respAddInt(c->out, n);
}

static void incrGeneric(client *c, const cmdArg *k, long long by) {
    storeRecord rec;
    int rc = kvWriteLookup(c, k, &rec);
    if (rc == STORE_ERR) return;
    long long cur = 0;
    if (rc == STORE_OK) {
        cmdArg v = {rec.value, rec.value_len};
        if (!argToLongLong(&v, &cur)) {
            respAddError(c->out, "ERR value is not an integer or out of range");
            return;
        }
    }
    if ((by > 0 && cur > INT64_MAX - by) || (by < 0 && cur < INT64_MIN - by)) {
        respAddError(c->out, "ERR increment or decrement would overflow");
        return;
    }
    cur += by;
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", cur);
    if (kvPutAs(c, "INCR", k, num, (size_t)n)) respAddInt(c->out, cur);
}

static void cmdIncr(client *c) {
    incrGeneric(c, &c->argv[1], 1);
}

static void cmdDecr(client *c) {
    incrGeneric(c, &c->argv[1], -1);
}

static void cmdIncrby(client *c) {
    long long by;
    if (!argToLongLong(&c->argv[2], &by)) {
        respAddError(c->out, "ERR value is not an integer or out of range");
        return;
    }
    incrGeneric(c, &c->argv[1], by);
}

static void cmdDecrby(client *c) {
    long long by;
    if (!argToLongLong(&c->argv[2], &by)) {
        respAddError(c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (by == INT64_MIN) {
        respAddError(c->out, "ERR decrement would overflow");
        return;
    }
    incrGeneric(c, &c->argv[1], -by);
}

static void cmdMget(client *c) {
    respAddArrayLen(c->out, (long long)(c->argc - 1));
    for (size_t i = 1; i < c->argc; i++) {
        storeRecord rec;
        int rc = storeGet(c->srv->st, c->argv[i].p, c->argv[i].len, &rec);
        if (c->argv[i].len == 0 || c->argv[i].len > STORE_MAX_KEY_BYTES) rc = STORE_NOTFOUND;
        if (rc == STORE_OK && !(rec.ver.flags & STORE_FLAG_TOMBSTONE)) {
            c->srv->stats.keyspace_hits++;
            respAddBulk(c->out, rec.value, rec.value_len);
        } else {
            /* A key that cannot be read is reported as missing so the
             * array keeps its shape; the error is in the log. */
            c->srv->stats.keyspace_misses++;
            respAddNil(c->out);
        }
    }
}

static void cmdMset(client *c) {
    if ((c->argc - 1) % 2 != 0) {
        replyWrongArity(c);
        return;
    }
    for (size_t i = 1; i < c->argc; i += 2)
        if (!keyValid(c, &c->argv[i])) return;
    serverWriteBegin(c);
    for (size_t i = 1; i < c->argc; i += 2)
        if (!kvPut(c, &c->argv[i], c->argv[i + 1].p, c->argv[i + 1].len)) return;
    serverReplyOk(c);
}

/* VERSION key -> [vector clock "{1:3,2:1}", lamport, origin, token,
 * tombstone 0|1], or nil when the key was never written. */
static void cmdVersion(client *c) {
    const cmdArg *k = &c->argv[1];
    if (k->len == 0 || k->len > STORE_MAX_KEY_BYTES) {
        respAddNilArray(c->out);
        return;
    }
    storeRecord rec;
    int rc = storeGet(c->srv->st, k->p, k->len, &rec);
    if (rc == STORE_ERR) {
        respAddErrorFmt(c->out, "ERR read failed: %s", storeError(c->srv->st));
        return;
    }
    if (rc == STORE_NOTFOUND) {
        respAddNilArray(c->out);
        return;
    }
    vclock vc;
    vclockInit(&vc);
    size_t used = 0;
    buf text;
    bufInit(&text);
    if (vclockDecode(rec.ver.vclock, rec.ver.vclock_len, &vc, &used) == 0)
        vclockFormat(&vc, &text);
    else
        bufAppendStr(&text, "?");
    respAddArrayLen(c->out, 5);
    respAddBulk(c->out, text.data, text.len);
    respAddInt(c->out, (long long)rec.ver.lamport);
    respAddInt(c->out, rec.ver.origin);
    respAddInt(c->out, (long long)rec.ver.token);
    respAddInt(c->out, (rec.ver.flags & STORE_FLAG_TOMBSTONE) ? 1 : 0);
    bufFree(&text);
    vclockFree(&vc);
}

static void cmdStrlen(client *c) {
    storeRecord rec;
    int rc = kvLookup(c, &c->argv[1], &rec);
    if (rc == STORE_ERR) return;
    respAddInt(c->out, rc == STORE_OK ? (long long)rec.value_len : 0);
}

static void cmdType(client *c) {
    storeRecord rec;
    int rc = kvLookup(c, &c->argv[1], &rec);
    if (rc == STORE_ERR) return;
    respAddSimple(c->out, rc == STORE_OK ? "string" : "none");
}

static void cmdDbsize(client *c) {
    storeStats st;
    storeGetStats(c->srv->st, &st);
    respAddInt(c->out, (long long)st.live_keys);
}

/* FLUSHALL deletes every key the cluster way: a replicated tombstone per
 * live key, so the keys stay deleted on every replica. */
static int flushCollect(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    buf *keys = ctx;
    if (rec->ver.flags & STORE_FLAG_TOMBSTONE) return 0;
    uint16_t n = (uint16_t)klen;
    bufAppend(keys, &n, sizeof n);
    bufAppend(keys, key, klen);
    return 0;
}

static void cmdFlushall(client *c) {
    if (c->argc > 2 ||
        (c->argc == 2 && !argIs(&c->argv[1], "sync") && !argIs(&c->argv[1], "async"))) {
        replySyntaxError(c);
        return;
    }
    serverWriteBegin(c);
    if (!replicationHasMembers(c->srv)) {
        if (storeDrop(c->srv->st) != STORE_OK)
            serverStoreFailed(c);
        else
            serverReplyOk(c);
        return;
    }
    buf keys;
    bufInit(&keys);
    if (storeScan(c->srv->st, NULL, 0, flushCollect, &keys) != STORE_OK) {
        respAddErrorFmt(c->out, "ERR read failed: %s", storeError(c->srv->st));
        bufFree(&keys);
        return;
    }
    for (size_t at = 0; at < keys.len;) {
        uint16_t n;
        memcpy(&n, keys.data + at, sizeof n);
        cmdArg k = {keys.data + at + sizeof n, n};
        at += sizeof n + n;
        bool deleted;
        if (!kvDelete(c, &k, &deleted)) {
            bufFree(&keys);
            return;
        }
    }
    bufFree(&keys);
    serverReplyOk(c);
}

/* ---- KEYS and SCAN ---- */

typedef struct keyMatch {
    const cmdArg *pattern; /* NULL: everything */
    char *pat;             /* NUL-terminated copy for fnmatch */
    buf *keys;             /* collected replies */
    long long count;
    long long examined;
    long long limit; /* SCAN: stop after this many examined; 0 = no limit */
    buf last;        /* last examined key */
    char kbuf[STORE_MAX_KEY_BYTES + 1];
} keyMatch;

/* Redis glob patterns are fnmatch patterns without path rules; keys
 * holding NUL bytes are matched on the part before the first NUL. */
static bool keyMatches(keyMatch *m, const void *key, size_t klen) {
    if (!m->pat) return true;
    memcpy(m->kbuf, key, klen);
    m->kbuf[klen] = '\0';
    return fnmatch(m->pat, m->kbuf, 0) == 0;
}

static int keyCollect(void *ctx, const void *key, size_t klen, const storeRecord *rec) {
    keyMatch *m = ctx;
    m->examined++;
    bufClear(&m->last);
    bufAppend(&m->last, key, klen);
    if (!(rec->ver.flags & STORE_FLAG_TOMBSTONE) && keyMatches(m, key, klen)) {
        respAddBulk(m->keys, key, klen);
        m->count++;
    }
    return m->limit && m->examined >= m->limit;
}

static void keyMatchInit(keyMatch *m, const cmdArg *pattern) {
    memset(m, 0, sizeof *m);
    bufInit(&m->last);
    if (pattern && !(pattern->len == 1 && pattern->p[0] == '*'))
        m->pat = xstrndup(pattern->p, strnlen(pattern->p, pattern->len));
}

static void cmdKeys(client *c) {
    keyMatch m;
    keyMatchInit(&m, &c->argv[1]);
    buf keys;
    bufInit(&keys);
    m.keys = &keys;
    if (storeScan(c->srv->st, NULL, 0, keyCollect, &m) != STORE_OK) {
        respAddErrorFmt(c->out, "ERR read failed: %s", storeError(c->srv->st));
    } else {
        respAddArrayLen(c->out, m.count);
        bufAppend(c->out, keys.data, keys.len);
    }
    bufFree(&keys);
    bufFree(&m.last);
    free(m.pat);
}

/* SCAN cursors are ids of server-side positions (the last key returned),
 * kept in a ring of SCAN_CURSORS; a cursor older than that is reported as
 * invalid and the client starts over from 0. */
static void cmdScan(client *c) {
    server *s = c->srv;
    cmdArg *cur = &c->argv[1];
    long long cursor_signed;
    uint64_t cursor = 0;
    if (!(cur->len == 1 && cur->p[0] == '0')) {
        char tmp[24];
        if (cur->len == 0 || cur->len >= sizeof tmp) {
            respAddError(c->out, "ERR invalid cursor");
            return;
        }
        memcpy(tmp, cur->p, cur->len);
        tmp[cur->len] = '\0';
        char *end;
        cursor = strtoull(tmp, &end, 10);
        if (*end || cursor == 0) {
            respAddError(c->out, "ERR invalid cursor");
            return;
        }
    }
    (void)cursor_signed;
    const cmdArg *pattern = NULL;
    long long count = SCAN_DEFAULT_COUNT;
    bool strings_only = true;
    for (size_t i = 2; i < c->argc; i++) {
        if (argIs(&c->argv[i], "match") && i + 1 < c->argc) {
            pattern = &c->argv[++i];
        } else if (argIs(&c->argv[i], "count") && i + 1 < c->argc) {
            if (!argToLongLong(&c->argv[++i], &count) || count < 1) {
                respAddError(c->out, "ERR value is not an integer or out of range");
                return;
            }
            if (count > SCAN_MAX_COUNT) count = SCAN_MAX_COUNT;
        } else if (argIs(&c->argv[i], "type") && i + 1 < c->argc) {
            strings_only = argIs(&c->argv[++i], "string");
        } else {
            replySyntaxError(c);
            return;
        }
    }
    const void *after = NULL;
    size_t after_len = 0;
    scanCursor *slot = NULL;
    if (cursor) {
        for (size_t i = 0; i < SCAN_CURSORS; i++) {
            if (s->cursors[i].id == cursor) {
                slot = &s->cursors[i];
                break;
            }
        }
        if (!slot) {
            respAddError(c->out, "ERR invalid cursor (it expired; start again from 0)");
            return;
        }
        after = slot->last_key.data;
        after_len = slot->last_key.len;
    }
    keyMatch m;
    keyMatchInit(&m, pattern);
    buf keys;
    bufInit(&keys);
    m.keys = &keys;
    m.limit = count;
    int rc = strings_only ? storeScan(s->st, after, after_len, keyCollect, &m) : STORE_OK;
    if (rc != STORE_OK) {
        respAddErrorFmt(c->out, "ERR read failed: %s", storeError(s->st));
        goto done;
    }
    uint64_t next = 0;
    if (strings_only && m.examined >= count) {
        /* More keys may follow: remember where this page ended. */
        if (!slot) {
            slot = &s->cursors[s->cursor_next];
            s->cursor_next = (s->cursor_next + 1) % SCAN_CURSORS;
        }
        next = ++s->cursor_seq;
        slot->id = next;
        bufClear(&slot->last_key);
        bufAppend(&slot->last_key, m.last.data, m.last.len);
    } else if (slot) {
        slot->id = 0;
    }
    respAddArrayLen(c->out, 2);
    respAddBulkInt(c->out, (long long)next);
    respAddArrayLen(c->out, m.count);
    bufAppend(c->out, keys.data, keys.len);
done:
    bufFree(&keys);
    bufFree(&m.last);
    free(m.pat);
}

/* ---- command table ---- */
void cmdPing(client *c);
void cmdEcho(client *c);
void cmdQuit(client *c);
void cmdSelect(client *c);
void cmdAuth(client *c);
void cmdHello(client *c);
void cmdClient(client *c);
void cmdCommand(client *c);
void cmdConfig(client *c);
void cmdInfo(client *c);
void cmdTime(client *c);
void cmdShutdown(client *c);
void cmdMembers(client *c);
void cmdForceLeave(client *c);
void cmdPushPull(client *c);

#define W CMD_WRITE
#define R CMD_READ
#define F CMD_FAST
#define N CMD_NOAUTH
#define A CMD_ADMIN

command serverCommands[] = {
    {"get", cmdGet, 2, R | F, 1, 1, 1, "Get the value of a key", 0},
    {"set", cmdSet, -3, W, 1, 1, 1, "Set a key to a value (NX, XX, GET)", 0},
    {"put", cmdSet, -3, W, 1, 1, 1, "Alias of SET", 0},
    {"setnx", cmdSetnx, 3, W | F, 1, 1, 1, "Set a key only if it does not exist", 0},
    {"getset", cmdGetset, 3, W | F, 1, 1, 1, "Set a key and return its old value", 0},
    {"getdel", cmdGetdel, 2, W | F, 1, 1, 1, "Get a key and delete it", 0},
    {"del", cmdDel, -2, W, 1, -1, 1, "Delete keys", 0},
    {"unlink", cmdDel, -2, W, 1, -1, 1, "Delete keys (same as DEL)", 0},
    {"exists", cmdExists, -2, R | F, 1, -1, 1, "Count how many of the keys exist", 0},
    {"incr", cmdIncr, 2, W | F, 1, 1, 1, "Add 1 to an integer value", 0},
    {"incrby", cmdIncrby, 3, W | F, 1, 1, 1, "Add to an integer value", 0},
    {"decr", cmdDecr, 2, W | F, 1, 1, 1, "Subtract 1 from an integer value", 0},
    {"decrby", cmdDecrby, 3, W | F, 1, 1, 1, "Subtract from an integer value", 0},
    {"mget", cmdMget, -2, R | F, 1, -1, 1, "Get the values of several keys", 0},
    {"mset", cmdMset, -3, W, 1, -1, 2, "Set several keys at once, atomically", 0},
    {"strlen", cmdStrlen, 2, R | F, 1, 1, 1, "Length of a value", 0},
    {"version", cmdVersion, 2, R | F, 1, 1, 1,
     "Stored version of a key: vector clock, Lamport, origin, token, tombstone", 0},
    {"type", cmdType, 2, R | F, 1, 1, 1, "Type of a key (string or none)", 0},
    {"dbsize", cmdDbsize, 1, R | F, 0, 0, 0, "Number of keys", 0},
    {"keys", cmdKeys, 2, R, 0, 0, 0, "Keys matching a glob pattern", 0},
    {"scan", cmdScan, -2, R, 0, 0, 0, "Iterate keys (MATCH, COUNT, TYPE)", 0},
    {"flushall", cmdFlushall, -1, W | A, 0, 0, 0, "Delete every key", 0},
    {"flushdb", cmdFlushall, -1, W | A, 0, 0, 0, "Delete every key", 0},
    {"ping", cmdPing, -1, F | N, 0, 0, 0, "Check the connection", 0},
    {"echo", cmdEcho, 2, F, 0, 0, 0, "Return the argument", 0},
    {"quit", cmdQuit, -1, F | N, 0, 0, 0, "Close the connection", 0},
    {"select", cmdSelect, 2, F, 0, 0, 0, "Select database 0 (the only one)", 0},
    {"auth", cmdAuth, -2, F | N, 0, 0, 0, "Authenticate with --requirepass", 0},
    {"hello", cmdHello, -1, F | N, 0, 0, 0, "Handshake (protocol 2)", 0},
    {"client", cmdClient, -2, 0, 0, 0, 0, "Connection info: ID SETNAME GETNAME SETINFO LIST", 0},
    {"command", cmdCommand, -1, 0, 0, 0, 0, "Describe commands: COUNT INFO DOCS LIST", 0},
    {"config", cmdConfig, -2, A, 0, 0, 0, "Read configuration: CONFIG GET pattern", 0},
    {"info", cmdInfo, -1, 0, 0, 0, 0, "Server information and statistics", 0},
    {"time", cmdTime, 1, F, 0, 0, 0, "Server time", 0},
    {"shutdown", cmdShutdown, -1, A, 0, 0, 0, "Stop the agent cleanly", 0},
    {"members", cmdMembers, 1, 0, 0, 0, 0,
     "Cluster members: id, host, tcp, udp, state, incarnation, ms since change", 0},
    {"force-leave", cmdForceLeave, 2, A, 0, 0, 0,
     "FORCE-LEAVE id: a dead member is taken to have left; nobody waits for it", 0},
    {"dmkv.pushpull", cmdPushPull, 2, CMD_PEER, 0, 0, 0, "Node-to-node membership exchange", 0},
    {"dmkv.repl", cmdRepl, 2, CMD_PEER | W, 0, 0, 0, "Node-to-node replication of writes", 0},
    {"lock", cmdLock, -2, 0, 1, 1, 1,
     "LOCK name [ttl_ms] [wait_ms]: take a distributed lock; the fencing token", 0},
    {"unlock", cmdUnlock, 3, 0, 1, 1, 1, "UNLOCK name token: release a lock", 0},
    {"renew", cmdRenew, 4, 0, 1, 1, 1, "RENEW name token ttl_ms: extend a lock's lease", 0},
    {"locks", cmdLocks, 1, R, 0, 0, 0, "Locks, holders, tokens and queues", 0},
    {"leader", cmdLeader, 1, F, 0, 0, 0, "The lock coordinator (Raft leader)", 0},
    {"raft", cmdRaft, -3, CMD_ADMIN, 0, 0, 0, "RAFT ADD id host:port | RAFT REMOVE id", 0},
    {"dmkv.lockop", cmdLockop, 2, CMD_PEER, 0, 0, 0,
     "Node-to-node: a lock operation for the leader", 0},
    {"dmkv.sync", cmdSync, 2, CMD_PEER, 0, 0, 0,
     "Node-to-node anti-entropy: a page of the change feed", 0},
    {"dmkv.verify", cmdVerify, 2, CMD_PEER, 0, 0, 0,
     "Node-to-node: which of a returning node's writes were collected here", 0},
};
const size_t serverCommandCount = sizeof serverCommands / sizeof serverCommands[0];
